"""torchvision ImageNet architectures with a new ``num_classes`` head.

Each model is built with ``torchvision.models.get_model(name, weights=None)``; its last linear
layer (``fc``, ``classifier.6``, ...) is replaced by a new ``nn.Linear(in, num_classes)``
initialised like the new layers of Campos et al. (Gaussian std 0.01, zero bias). ``init="imagenet"``
loads torchvision's ``DEFAULT`` weights for everything but that head.

Probe layers give post-activation outputs where the network has fully connected stages: for
AlexNet and VGG they name the ReLU modules after the hidden linears (``classifier.2``), because
these ReLUs are in place and would otherwise overwrite a tensor captured at the linear itself.

Interface (:mod:`vsent.models.base`): :class:`TorchvisionModel` takes over the children of the
torchvision network under their own names, so state-dict keys and module names are torchvision's
(``layer4.1.conv2.weight``, ``classifier.6``) and ImageNet weights load without remapping.
``forward_features`` runs torchvision's own forward up to the head's input (the flattened pooled
map, through the hidden classifier layers for AlexNet/VGG/EfficientNet/ConvNeXt) and
``forward_head`` is the new linear layer. Grad-CAM uses the last spatial probe layer that
contains a convolution, else the last spatial one (AlexNet/VGG: the last max pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from http.client import HTTPException
from typing import Literal
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from vsent.data.transforms import IMAGENET_PREPROCESS, Preprocess
from vsent.errors import VsentError, WeightsError
from vsent.models.base import ModelInfo, SentimentModel
from vsent.models.registry import register_model
from vsent.models.weights import (
    PretrainedWeights,
    damaged_file_message,
    download_failed_message,
    hub_checkpoint_dir,
    hub_checkpoint_file,
    init_new_linear,
    resolvable,
)

#: torchvision's ImageNet preprocessing: resize 256, centre crop 224, RGB, mean/std normalised
#: (vsent's IMAGENET_PREPROCESS is torchvision's).
TORCHVISION_PREPROCESS = IMAGENET_PREPROCESS


def torchvision_preprocess(crop: int = 224) -> Preprocess:
    """:data:`TORCHVISION_PREPROCESS` for ``crop`` x ``crop`` crops, the warp keeping the 256:224
    ratio (``crop`` 96 -> images warped to 110 x 110)."""
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 32:
        raise VsentError(f"torchvision image_size must be an integer of at least 32 pixels, "
                         f"got {crop!r}")
    return TORCHVISION_PREPROCESS.with_crop(crop)


@dataclass(frozen=True)
class TorchvisionSpec:
    """Where a torchvision architecture keeps its head and which modules to probe.

    ``layout`` says how torchvision's forward reaches the head: ``"resnet"`` (stem, layer1..4,
    avgpool, flatten, fc) or ``"classifier"`` (features, avgpool, [flatten], classifier[:-1],
    classifier[-1]); ``flatten`` whether ``torch.flatten`` runs before the classifier
    (ConvNeXt's classifier flattens itself). ``cam_layer``: Grad-CAM's layer. ``weights``:
    torchvision's ``DEFAULT`` ImageNet weights, by name (a test holds it to torchvision's; the
    name lets the registry describe them without importing torchvision, ~2.5 s a process).
    """

    name: str
    head: str
    probe_layers: tuple[str, ...]
    cam_layer: str
    weights: str
    layout: Literal["resnet", "classifier"] = "classifier"
    flatten: bool = True


def _stages(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(n))


_RESNET_PROBES = ("layer1", "layer2", "layer3", "layer4", "avgpool", "fc")

TORCHVISION_MODELS: tuple[TorchvisionSpec, ...] = (
    # features.N: max pools after conv2, conv5 (AlexNet) / after each block (VGG16).
    TorchvisionSpec("alexnet", "classifier.6",
                    ("features.2", "features.5", "features.12",
                     "classifier.2", "classifier.5", "classifier.6"), "features.12",
                    "AlexNet_Weights.IMAGENET1K_V1"),
    TorchvisionSpec("vgg16", "classifier.6",
                    ("features.4", "features.9", "features.16", "features.23", "features.30",
                     "classifier.1", "classifier.4", "classifier.6"), "features.30",
                    "VGG16_Weights.IMAGENET1K_V1"),
    TorchvisionSpec("resnet18", "fc", _RESNET_PROBES, "layer4", "ResNet18_Weights.IMAGENET1K_V1",
                    layout="resnet"),
    TorchvisionSpec("resnet50", "fc", _RESNET_PROBES, "layer4", "ResNet50_Weights.IMAGENET1K_V2",
                    layout="resnet"),
    TorchvisionSpec("efficientnet_b0", "classifier.1",
                    (*_stages("features", 9), "avgpool", "classifier.1"), "features.8",
                    "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    TorchvisionSpec("convnext_tiny", "classifier.2",
                    (*_stages("features", 8), "avgpool", "classifier.2"), "features.7",
                    "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", flatten=False),
)


class TorchvisionModel(SentimentModel):
    """A torchvision network (its children, under their own names) with a new head.

    ``forward_features(x: float (B, 3, H, W)) -> (B, D)``: torchvision's forward up to the
    input of ``spec.head``; ``forward_head(f) -> logits (B, num_classes)``.
    """

    def __init__(self, net: nn.Module, spec: TorchvisionSpec, *, num_classes: int = 2,
                 image_size: int = 224) -> None:
        super().__init__()
        for name, child in net.named_children():  # same module names, same state-dict keys
            self.add_module(name, child)
        old = self.get_submodule(spec.head)
        assert isinstance(old, nn.Linear), f"{spec.name}.{spec.head} is not a linear layer"
        parent_name, _, attr = spec.head.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, attr, init_new_linear(nn.Linear(old.in_features, num_classes)))
        self.layout = spec.layout
        self.flatten_features = spec.flatten
        self.info = ModelInfo(
            name=spec.name,
            family="torchvision",
            preprocess=torchvision_preprocess(image_size),
            num_outputs=num_classes,
            head=spec.head,
            new_layers=(spec.head,),
            probe_layers=spec.probe_layers,
            probe_pool=dict.fromkeys(spec.probe_layers, "flatten"),
            cam_layer=spec.cam_layer,
            feature_dim=old.in_features,
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """What torchvision's forward feeds its last linear layer: (B, head.in_features)."""
        if self.layout == "resnet":
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.flatten(self.avgpool(x), 1)
        x = self.avgpool(self.features(x))
        if self.flatten_features:
            x = torch.flatten(x, 1)
        return self.classifier[:-1](x)

    def forward_head(self, features: Tensor) -> Tensor:
        """The new linear layer: (B, D) -> logits (B, num_classes)."""
        return self.get_submodule(self.info.head)(features)


def build_torchvision(spec: TorchvisionSpec, *, num_classes: int = 2,
                      image_size: int = 224) -> TorchvisionModel:
    """``torchvision.models.get_model(spec.name)`` with a new ``num_classes`` head.

    ``image_size``: the crop side in pixels (default 224, the ImageNet recipe's); the networks
    pool adaptively, so a smaller crop only changes the preprocessing (and the cost, e.g. to
    train from random weights on a CPU).
    """
    import torchvision

    net = torchvision.models.get_model(spec.name, weights=None)
    return TorchvisionModel(net, spec, num_classes=num_classes, image_size=image_size)


def imagenet_state_dict(name: str, model: nn.Module) -> dict[str, Tensor]:
    """torchvision's ``DEFAULT`` ImageNet weights of ``name`` (cached in the torch hub dir).

    Without the file in the cache and without a network, the one-line :class:`WeightsError`
    comes before torch.hub starts (it would first print its "Downloading: ..." line); a cached
    file torch cannot read (a ``wget`` cut short) is named in one line too.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    url = urlparse(weights.url)
    cached = hub_checkpoint_file(weights.url)
    failed = download_failed_message(name, weights.url, hub_checkpoint_dir())
    if not cached.is_file() and not resolvable(url.hostname or ""):
        raise WeightsError(failed)
    try:
        return weights.get_state_dict(progress=True)
    except Exception as exc:  # torch.load of a damaged file: UnpicklingError, RuntimeError, ...
        if cached.is_file():  # the file is there: reading it failed, not the network
            raise WeightsError(damaged_file_message(cached, exc, weights.url)) from exc
        if isinstance(exc, (OSError, HTTPException)):  # URLError is an OSError
            raise WeightsError(failed) from exc
        raise


def _register(spec: TorchvisionSpec) -> None:
    def builder(*, num_classes: int = 2, image_size: int = 224) -> nn.Module:
        return build_torchvision(spec, num_classes=num_classes, image_size=image_size)

    builder.__name__ = builder.__qualname__ = spec.name
    builder.__doc__ = f"torchvision {spec.name} with a new ``num_classes`` head ``{spec.head}``."
    weights = PretrainedWeights(
        loader=partial(imagenet_state_dict, spec.name),
        # torchvision resizes the shorter side (to 232-256 by architecture); vsent warps every
        # image to 256x256 before the 224 crop (as Campos et al.), with the same mean/std.
        preprocess=TORCHVISION_PREPROCESS,
        source=f"torchvision {spec.weights}",
        licence="unknown (see the torchvision documentation of the weights)",
        description=f"torchvision {spec.name} ImageNet-1k weights (DEFAULT)",
    )
    register_model(spec.name, weights=weights)(builder)


for _spec in TORCHVISION_MODELS:
    _register(_spec)
