"""torchvision ImageNet architectures with a new ``num_classes`` head.

Each model is built with ``torchvision.models.get_model(name, weights=None)``; its last linear
layer (``fc``, ``classifier.6``, ...) is replaced by a new ``nn.Linear(in, num_classes)``
initialised like the new layers of Campos et al. (Gaussian std 0.01, zero bias). ``init="imagenet"``
loads torchvision's ``DEFAULT`` weights for everything but that head.

Probe layers give post-activation outputs where the network has fully connected stages: for
AlexNet and VGG they name the ReLU modules after the hidden linears (``classifier.2``), because
these ReLUs are in place and would otherwise overwrite a tensor captured at the linear itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from http.client import HTTPException

import torchvision
from torch import Tensor, nn

from vsent.data.transforms import IMAGENET_PREPROCESS
from vsent.errors import WeightsError
from vsent.models.registry import register_model
from vsent.models.weights import download_failed_message, hub_checkpoint_dir, init_new_linear

#: torchvision's ImageNet preprocessing: resize 256, centre crop 224, RGB, mean/std normalised.
TORCHVISION_PREPROCESS = replace(IMAGENET_PREPROCESS, resize=256, crop=224)


@dataclass(frozen=True)
class TorchvisionSpec:
    """Where a torchvision architecture keeps its head and which modules to probe."""

    name: str
    head: str
    probe_layers: tuple[str, ...]


def _stages(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(n))


_RESNET_PROBES = ("layer1", "layer2", "layer3", "layer4", "avgpool", "fc")

TORCHVISION_MODELS: tuple[TorchvisionSpec, ...] = (
    # features.N: max pools after conv2, conv5 (AlexNet) / after each block (VGG16).
    TorchvisionSpec("alexnet", "classifier.6",
                    ("features.2", "features.5", "features.12",
                     "classifier.2", "classifier.5", "classifier.6")),
    TorchvisionSpec("vgg16", "classifier.6",
                    ("features.4", "features.9", "features.16", "features.23", "features.30",
                     "classifier.1", "classifier.4", "classifier.6")),
    TorchvisionSpec("resnet18", "fc", _RESNET_PROBES),
    TorchvisionSpec("resnet50", "fc", _RESNET_PROBES),
    TorchvisionSpec("efficientnet_b0", "classifier.1",
                    (*_stages("features", 9), "avgpool", "classifier.1")),
    TorchvisionSpec("convnext_tiny", "classifier.2",
                    (*_stages("features", 8), "avgpool", "classifier.2")),
)


def build_torchvision(spec: TorchvisionSpec, *, num_classes: int = 2) -> nn.Module:
    """``torchvision.models.get_model(spec.name)`` with a new ``num_classes`` head."""
    model = torchvision.models.get_model(spec.name, weights=None)
    old = model.get_submodule(spec.head)
    assert isinstance(old, nn.Linear), f"{spec.name}.{spec.head} is not a linear layer"
    parent_name, _, attr = spec.head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, init_new_linear(nn.Linear(old.in_features, num_classes)))
    model.preprocess = TORCHVISION_PREPROCESS
    model.new_layers = [spec.head]
    model.probe_layers = list(spec.probe_layers)
    model.default_lr = None
    model.num_outputs = num_classes
    return model


def imagenet_state_dict(name: str, model: nn.Module) -> dict[str, Tensor]:
    """torchvision's ``DEFAULT`` ImageNet weights of ``name`` (cached in the torch hub dir)."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=True)
    except (OSError, HTTPException) as exc:  # URLError is an OSError
        raise WeightsError(
            download_failed_message(name, weights.url, hub_checkpoint_dir())
        ) from exc


def _register(spec: TorchvisionSpec) -> None:
    def builder(*, num_classes: int = 2) -> nn.Module:
        return build_torchvision(spec, num_classes=num_classes)

    builder.__name__ = builder.__qualname__ = spec.name
    builder.__doc__ = f"torchvision {spec.name} with a new ``num_classes`` head ``{spec.head}``."
    register_model(spec.name, pretrained_loader=partial(imagenet_state_dict, spec.name))(builder)


for _spec in TORCHVISION_MODELS:
    _register(_spec)
