"""PCNN: the 2-conv, 4-fc network of You et al. 2015 (AAAI), Figure 2.

::

    conv1 96@11x11 stride 4 + ReLU -> pool1 max 3/2 -> norm1 LRN(5, 1e-4, 0.75)
    conv2 256@5x5 stride 2 + ReLU  -> pool2 max 3/2 -> norm2 LRN(5, 1e-4, 0.75)
    fc1 512 + ReLU + dropout -> fc2 512 + ReLU + dropout -> fc3 24 + ReLU -> fc4 num_classes

The 24-unit fc3 is the layer the paper singles out as the second to last; the conv shapes and
the widths 512, 512 of fc1 and fc2 are vsent's reading of the paper's Figure 2, which
``shared/papers/published.md`` does not transcribe. The paper does not give paddings, dropout
or LRN parameters, so the convolutions are unpadded and the rest follows CaffeNet (the paper's
network was trained with Caffe: ceil-mode pooling, BGR mean-subtracted input). Shapes for a
227 input: conv1 96x55x55, pool1 96x27x27, conv2 256x12x12, pool2 256x6x6 (9216 values); for
256: conv1 96x62x62, pool1 96x31x31, conv2 256x14x14, pool2 256x7x7. The paper states a 256x256
input; vsent's default is CaffeNet's 227-px crops of 256-px images (random crops and mirrors
for training, 10-crop testing), and ``input_size=256`` builds the paper's size.

As in :mod:`vsent.models.caffenet`, ``conv1``/``conv2``/``fc1``..``fc3`` output post-ReLU values.

Interface (:mod:`vsent.models.base`): the head is ``fc4`` (trained from scratch like the rest, so
``info.new_layers == ()``), ``forward_features`` is fc3's output (B, fc_widths[2]) and Grad-CAM
uses ``conv2``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace

from torch import Tensor, nn

from vsent.data.transforms import CAFFE_PREPROCESS
from vsent.errors import VsentError
from vsent.models.base import ModelInfo, SentimentModel, positive_ints
from vsent.models.caffenet import Conv2dReLU, LinearReLU
from vsent.models.registry import register_model
from vsent.models.weights import init_new_linear


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output size of a convolution (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a ceil-mode max pool (Caffe), as ``nn.MaxPool2d(ceil_mode=True)``."""
    out = math.ceil((size - kernel) / stride) + 1
    if (out - 1) * stride >= size:  # the last window must start inside the input
        out -= 1
    return out


class PCNN(SentimentModel, nn.Sequential):
    """You et al.'s PCNN: ``forward(x: float (B, 3, S, S)) -> logits (B, num_classes)``.

    Parameters
    ----------
    num_classes : int, default 2
    input_size : {227, 256}, default 227
        Side S of the (square) input crop; sets the flattened size fed to fc1.
    fc_widths : tuple of 3 int, default (512, 512, 24)
        Widths of fc1, fc2, fc3 (fc3's 24 units are the paper's; 512, 512 vsent's reading of
        its Figure 2).
    dropout : float, default 0.5
        Dropout probability after fc1 and fc2.
    """

    def __init__(
        self,
        num_classes: int = 2,
        *,
        input_size: int = 227,
        fc_widths: tuple[int, int, int] = (512, 512, 24),
        dropout: float = 0.5,
    ) -> None:
        if input_size not in (227, 256):
            raise VsentError(f"pcnn input_size must be 227 or 256, got {input_size!r}")
        w1, w2, w3 = positive_ints(fc_widths, "pcnn fc_widths", 3)  # 1.5 is refused, not cut
        side = pool_out(conv_out(pool_out(conv_out(input_size, 11, 4), 3, 2), 5, 2), 3, 2)
        super().__init__(OrderedDict(
            conv1=Conv2dReLU(3, 96, kernel_size=11, stride=4),
            pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            norm1=nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
            conv2=Conv2dReLU(96, 256, kernel_size=5, stride=2),
            pool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            norm2=nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
            flatten=nn.Flatten(1),
            fc1=LinearReLU(256 * side * side, w1),
            drop1=nn.Dropout(dropout),
            fc2=LinearReLU(w1, w2),
            drop2=nn.Dropout(dropout),
            fc3=LinearReLU(w2, w3),
            fc4=nn.Linear(w3, num_classes),
        ))
        self.input_size = input_size
        probe_layers = ("conv1", "conv2", "fc1", "fc2", "fc3", "fc4")
        self.info = ModelInfo(
            name="pcnn",
            family="pcnn",
            preprocess=replace(CAFFE_PREPROCESS, resize=256, crop=input_size),
            num_outputs=num_classes,
            head="fc4",
            new_layers=(),
            probe_layers=probe_layers,
            probe_pool=dict.fromkeys(probe_layers, "flatten"),
            cam_layer="conv2",
            feature_dim=w3,
        )
        self.reset_parameters()

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, fc_widths[2]): fc3's post-ReLU output (input of ``fc4``)."""
        for name, module in self.named_children():
            if name == "fc4":
                break
            x = module(x)
        return x

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, fc_widths[2]) -> logits (B, num_classes)."""
        return self.fc4(features)

    def reset_parameters(self) -> None:
        """He init for the ReLU layers, Gaussian std 0.01 for fc4, zero biases.

        The paper does not give its fillers; He init keeps the signal from vanishing through
        the four fc layers when training from scratch.
        """
        for name, module in self.named_children():
            if name == "fc4":
                init_new_linear(module)
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)


@register_model("pcnn")
def pcnn(
    *,
    num_classes: int = 2,
    input_size: int = 227,
    fc_widths: tuple[int, int, int] = (512, 512, 24),
    dropout: float = 0.5,
) -> PCNN:
    """PCNN of You et al. 2015 (see :class:`PCNN`)."""
    return PCNN(num_classes, input_size=input_size, fc_widths=fc_widths, dropout=dropout)
