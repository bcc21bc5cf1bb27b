"""CaffeNet (BVLC reference model) as fine-tuned by Campos et al. 2015, and its surgery variants.

Layers follow ``models/bvlc_reference_caffenet/train_val.prototxt``::

    conv1 96@11x11/4 + ReLU -> pool1 max 3/2 -> norm1 LRN(5, 1e-4, 0.75)
    conv2 256@5x5 pad 2 groups 2 + ReLU -> pool2 -> norm2
    conv3 384@3x3 pad 1 + ReLU -> conv4 384@3x3 pad 1 groups 2 + ReLU
    conv5 256@3x3 pad 1 groups 2 + ReLU -> pool5
    fc6 4096 + ReLU + dropout 0.5 -> fc7 4096 + ReLU + dropout 0.5 -> fc8 1000

Shapes for a 227x227 input (Caffe pools in ceil mode): conv1 96x55x55, pool1/norm1 96x27x27,
conv2 256x27x27, pool2/norm2 256x13x13, conv3/conv4 384x13x13, conv5 256x13x13,
pool5 256x6x6, fc6/fc7 4096, fc8 1000.

Caffe semantics of the layer outputs: Caffe's ReLU (and dropout) layers work in place, so the
blob called ``conv1`` holds the *post-ReLU* values. Here ``conv1``..``conv5`` and ``fc6``/``fc7``
are :class:`Conv2dReLU`/:class:`LinearReLU` modules whose output is already rectified, so a forward
hook on ``model.conv1`` sees what Caffe's ``conv1`` blob holds. The dropouts are separate children
(``drop6``, ``drop7``) and are the identity in eval mode. State-dict keys are the Caffe layer
names: ``conv1.weight``, ``conv1.bias``, ..., ``fc8.bias`` (what
:func:`vsent.models.caffe.load_caffemodel` returns).

Surgery variants (``arch=``, Campos et al. Tables 3 and 4):

============  ================================================  ==============  ==========
arch          top of the network                                new_layers      outputs
============  ================================================  ==============  ==========
``fc8-2``     fc7 -> new fc8 (default)                          ``["fc8"]``     num_classes
``fc7-4096``  fc7 (post-ReLU) as logits, no new layer           ``[]``          4096
``fc6-4096``  fc6 (post-ReLU) as logits, no new layer           ``[]``          4096
``fc7-2``     fc6 -> new fc7                                    ``["fc7"]``     num_classes
``fc6-2``     pool5 -> new fc6 (default_lr 1e-4)                ``["fc6"]``     num_classes
``fc8-1000``  the whole ImageNet network                        ``[]``          1000
``fc9-2``     fc8 1000 + ReLU -> new fc9                        ``["fc9"]``     num_classes
============  ================================================  ==============  ==========

For the raw ablations (``fc7-4096``, ``fc6-4096``) the prototxt keeps ``relu7``/``drop7`` in place
on the top blob after removing fc8, so the softmax sees post-ReLU values (and, in training,
dropped-out ones). This module does the same. New layers end in a plain linear layer (logits).

Interface (:mod:`vsent.models.base`): the head (``info.head``) is the new layer (``fc8``, ``fc7``,
``fc6`` or ``fc9``) and ``forward_features`` returns its input (after the dropout below it, as
Caffe feeds it); the raw ablations (``fc7-4096``, ``fc6-4096``, ``fc8-1000``) have no head
(``info.head == ""``): ``forward_features`` is the whole network and ``forward_head`` the
identity. Grad-CAM uses ``conv5`` (13x13); every probe layer is flattened as it is.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch.nn.functional as F
from torch import Tensor, nn

from vsent.data.transforms import CAFFE_PREPROCESS
from vsent.errors import VsentError
from vsent.models.base import ModelInfo, SentimentModel
from vsent.models.registry import register_model
from vsent.models.weights import PretrainedWeights, WeightsFile, init_new_linear

#: BVLC reference CaffeNet trained on ImageNet (ILSVRC 2012), BGR input in 0..255 minus the mean.
CAFFENET_IMAGENET = WeightsFile(
    url="http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel",
    file_name="bvlc_reference_caffenet.caffemodel",
    sha1="4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46",  # from the Caffe model zoo readme
    description="BVLC reference CaffeNet, ImageNet top-1 57.4% (Caffe model zoo)",
)

#: CaffeNet input: warped to 256x256, 227x227 crop, BGR, mean subtracted, no scaling.
CAFFENET_PREPROCESS = replace(CAFFE_PREPROCESS, resize=256, crop=227)

#: Names of all CaffeNet layers in depth order (the blobs of the prototxt).
CAFFENET_LAYERS = (
    "conv1", "pool1", "norm1", "conv2", "pool2", "norm2",
    "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8",
)


class Conv2dReLU(nn.Conv2d):
    """``nn.Conv2d`` followed by ReLU: the output is what Caffe's in-place ``conv`` blob holds."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))

    def extra_repr(self) -> str:
        return super().extra_repr() + ", relu=True"


class LinearReLU(nn.Linear):
    """``nn.Linear`` followed by ReLU: the output is what Caffe's in-place ``fc`` blob holds."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))

    def extra_repr(self) -> str:
        return super().extra_repr() + ", relu=True"


@dataclass(frozen=True)
class Surgery:
    """A CaffeNet variant: the pretrained fc layers it keeps and the new layer on top, if any."""

    kept: tuple[str, ...]
    new: str | None
    default_lr: float | None = None

    def describe(self, num_classes: int = 2) -> str:
        """The change in words, as Campos et al.'s Tables 3-4 rows (e.g. ``"fc7, fc8 replaced
        by a 2-way fc7"``)."""
        removed = [fc for fc in _FC_WIDTH if fc not in self.kept]
        span = ", ".join(removed) if len(removed) < 3 else f"{removed[0]}-{removed[-1]}"
        if self.new is None:
            return (f"{span} removed, {self.kept[-1]} raw as logits" if removed
                    else f"the ImageNet network, {_FC_WIDTH['fc8']} outputs")
        if not removed:  # fc9-2: a ReLU on fc8 below it, as below every other fc (not stated)
            return f"a {num_classes}-way {self.new} added on ReLU({self.kept[-1]})"
        return f"{span} replaced by a {num_classes}-way {self.new}"


SURGERIES: dict[str, Surgery] = {
    "fc8-2": Surgery(kept=("fc6", "fc7"), new="fc8"),
    "fc7-4096": Surgery(kept=("fc6", "fc7"), new=None),
    "fc6-4096": Surgery(kept=("fc6",), new=None),
    "fc7-2": Surgery(kept=("fc6",), new="fc7"),
    # Campos et al. had to lower the base lr for this variant to make it converge.
    "fc6-2": Surgery(kept=(), new="fc6", default_lr=1e-4),
    "fc8-1000": Surgery(kept=("fc6", "fc7", "fc8"), new=None),
    "fc9-2": Surgery(kept=("fc6", "fc7", "fc8"), new="fc9"),
}

_FC_WIDTH = {"fc6": 4096, "fc7": 4096, "fc8": 1000}
_POOL5_SIZE = 256 * 6 * 6


def output_width(arch: str, num_classes: int = 2) -> int:
    """The number of outputs of CaffeNet ``arch``: ``num_classes`` under a new layer, else the
    raw top layer's (4096 for fc7-4096 and fc6-4096, 1000 for fc8-1000)."""
    surgery = SURGERIES[arch]
    return num_classes if surgery.new is not None else _FC_WIDTH[surgery.kept[-1]]


class CaffeNet(SentimentModel, nn.Sequential):
    """CaffeNet with the top given by ``arch`` (see the module docstring).

    Parameters
    ----------
    num_classes : int, default 2
        Width of the new top layer (ignored by the variants without a new layer).
    arch : str, default "fc8-2"
        Surgery variant, a key of :data:`SURGERIES`.
    dropout : float, default 0.5
        Dropout probability after fc6 and fc7.

    ``forward(x: float (B, 3, 227, 227), BGR, mean-subtracted 0..255) -> (B, num_outputs)``;
    ``forward_features(x) -> (B, info.feature_dim)`` is the input of the new layer (9216 for
    ``fc6-2``, 1000 for ``fc9-2``, else 4096) or, without one, the output of the top layer.
    """

    def __init__(self, num_classes: int = 2, *, arch: str = "fc8-2", dropout: float = 0.5) -> None:
        if arch not in SURGERIES:
            raise VsentError(
                f"unknown CaffeNet arch {arch!r}; choose one of {', '.join(SURGERIES)}"
            )
        surgery = SURGERIES[arch]
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=Conv2dReLU(3, 96, kernel_size=11, stride=4),
            pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            norm1=nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
            conv2=Conv2dReLU(96, 256, kernel_size=5, padding=2, groups=2),
            pool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            norm2=nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
            conv3=Conv2dReLU(256, 384, kernel_size=3, padding=1),
            conv4=Conv2dReLU(384, 384, kernel_size=3, padding=1, groups=2),
            conv5=Conv2dReLU(384, 256, kernel_size=3, padding=1, groups=2),
            pool5=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            flatten=nn.Flatten(1),
        )
        width = _POOL5_SIZE
        for name in surgery.kept:
            if name == "fc8":
                # relu8 exists only below an added fc9; fc8 of the ImageNet net gives logits.
                cls = LinearReLU if surgery.new is not None else nn.Linear
                layers[name] = cls(width, _FC_WIDTH[name])
            else:
                layers[name] = LinearReLU(width, _FC_WIDTH[name])
                layers["drop" + name[2:]] = nn.Dropout(dropout)
            width = _FC_WIDTH[name]
        feature_dim = width
        if surgery.new is not None:
            layers[surgery.new] = nn.Linear(width, num_classes)
            width = num_classes
        super().__init__(layers)
        self.arch = arch
        probe_layers = tuple(n for n in (*CAFFENET_LAYERS, "fc9") if n in layers)
        self.info = ModelInfo(
            name="caffenet",
            family="caffenet",
            preprocess=CAFFENET_PREPROCESS,
            num_outputs=width,
            head=surgery.new or "",
            new_layers=(surgery.new,) if surgery.new else (),
            probe_layers=probe_layers,
            probe_pool=dict.fromkeys(probe_layers, "flatten"),  # raw blobs, as in the paper
            cam_layer="conv5",
            feature_dim=feature_dim,
            default_lr=surgery.default_lr,
            extra={"arch": arch},
        )
        self.reset_parameters()

    def forward_features(self, x: Tensor) -> Tensor:
        """Input of the head (B, feature_dim); the top layer's output when there is no head."""
        head = self.info.head
        for name, module in self.named_children():
            if name == head:
                break
            x = module(x)
        return x

    def forward_head(self, features: Tensor) -> Tensor:
        """The new layer (logits); the identity for the raw ablations."""
        head = self.info.head
        return self.get_submodule(head)(features) if head else features

    def reset_parameters(self) -> None:
        """Gaussian fillers of the BVLC reference ``train_val.prototxt``; new layers std 0.01."""
        fillers = {  # name: (weight std, bias value)
            "conv1": (0.01, 0.0), "conv2": (0.01, 1.0), "conv3": (0.01, 0.0),
            "conv4": (0.01, 1.0), "conv5": (0.01, 1.0), "fc6": (0.005, 1.0),
            "fc7": (0.005, 1.0), "fc8": (0.01, 0.0),
        }
        for name, module in self.named_children():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            if name in self.info.new_layers:
                init_new_linear(module)
            else:
                std, bias = fillers[name]
                nn.init.normal_(module.weight, std=std)
                nn.init.constant_(module.bias, bias)


def _imagenet_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """BVLC reference CaffeNet weights, downloaded once into the torch hub cache."""
    from vsent.models.caffe import load_caffemodel  # protobuf reader, only needed here

    return dict(load_caffemodel(CAFFENET_IMAGENET.fetch("caffenet")))


#: ImageNet weights of every CaffeNet variant (the new layers stay fresh).
CAFFENET_WEIGHTS = PretrainedWeights(
    loader=_imagenet_state_dict,
    preprocess=CAFFENET_PREPROCESS,
    source=CAFFENET_IMAGENET.url,
    licence="unrestricted use (BVLC model zoo readme)",
    description=CAFFENET_IMAGENET.description,
    file=CAFFENET_IMAGENET,
)


@register_model("caffenet", weights=CAFFENET_WEIGHTS)
def caffenet(*, num_classes: int = 2, arch: str = "fc8-2", dropout: float = 0.5) -> CaffeNet:
    """CaffeNet of Campos et al. 2015; ``arch`` picks the surgery variant (default ``fc8-2``)."""
    return CaffeNet(num_classes, arch=arch, dropout=dropout)
