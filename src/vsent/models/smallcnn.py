"""A small BatchNorm CNN for the quick CPU configuration (64 px images, 56 px crops by default).

``block1``..``blockN`` are conv3x3 -> BatchNorm -> ReLU -> max pool 2x2, followed by global
average pooling, dropout and a linear layer. With widths (32, 64, 128, 256) a 56x56 crop goes
56 -> 28 -> 14 -> 7 -> 3 pixels. Everything is trained from scratch (``info.new_layers == ()``).

Interface (:mod:`vsent.models.base`): ``forward_features`` is the globally pooled last block
(B, widths[-1]) after dropout (the input of the head ``fc``); Grad-CAM uses the last block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError
from vsent.models.base import ModelInfo, SentimentModel, positive_ints
from vsent.models.registry import register_model
from vsent.models.weights import init_new_linear

#: Images warped to 64x64, 56x56 crops, RGB scaled to [-1, 1] (dataset-agnostic statistics).
SMALLCNN_PREPROCESS = Preprocess(
    resize=64, crop=56, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5), channel_order="RGB"
)


def smallcnn_preprocess(crop: int = 56, blocks: int = 4) -> Preprocess:
    """:data:`SMALLCNN_PREPROCESS` for ``crop`` x ``crop`` crops, the warp keeping the 64:56
    ratio (``crop`` 96 -> images warped to 110 x 110). Each of the ``blocks`` halves the side,
    so ``crop`` must be at least ``2 ** blocks`` (else the last pool has nothing to pool)."""
    crop = int(crop)
    if crop < 2 ** blocks:
        raise VsentError(f"smallcnn image_size must be at least {2 ** blocks} pixels for "
                         f"{blocks} blocks, got {crop}")
    return SMALLCNN_PREPROCESS.with_crop(crop)


class SmallCNN(SentimentModel):
    """Small CNN: ``forward(x: float (B, 3, H, W)) -> logits (B, num_classes)``, H, W >= 2**n
    for n blocks (``image_size`` is checked against it).

    Parameters
    ----------
    num_classes : int, default 2
    widths : sequence of int, default (32, 64, 128, 256)
        Output channels of each block; each block halves the resolution.
    dropout : float, default 0.3
        Dropout probability before the classifier.
    image_size : int, default 56
        Training/test crop in pixels (images warped to ``image_size * 64 / 56`` first); the
        network itself accepts any size, this sets its preprocessing.
    """

    def __init__(
        self,
        num_classes: int = 2,
        *,
        widths: Sequence[int] = (32, 64, 128, 256),
        dropout: float = 0.3,
        image_size: int = 56,
    ) -> None:
        super().__init__()
        widths = positive_ints(widths, "smallcnn widths")
        preprocess = smallcnn_preprocess(image_size, len(widths))  # before building anything
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = 3
        for i, width in enumerate(widths, start=1):
            blocks[f"block{i}"] = nn.Sequential(
                nn.Conv2d(c_in, width, kernel_size=3, padding=1, bias=False),  # BN has the bias
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            c_in = width
        self.features = nn.Sequential(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)
        probe_layers = (*(f"features.{name}" for name in blocks), "pool", "fc")
        self.info = ModelInfo(
            name="smallcnn",
            family="smallcnn",
            preprocess=preprocess,
            num_outputs=num_classes,
            head="fc",
            new_layers=(),
            probe_layers=probe_layers,
            probe_pool=dict.fromkeys(probe_layers, "flatten"),
            cam_layer=f"features.block{len(blocks)}",
            feature_dim=c_in,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for convolutions (ReLU), unit BatchNorm, Gaussian std 0.01 classifier."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        init_new_linear(self.fc)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, widths[-1]): pooled last block, after dropout (input of ``fc``)."""
        return self.dropout(self.pool(self.features(x)).flatten(1))

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, widths[-1]) -> logits (B, num_classes)."""
        return self.fc(features)


@register_model("smallcnn")
def smallcnn(
    *, num_classes: int = 2, widths: Sequence[int] = (32, 64, 128, 256), dropout: float = 0.3,
    image_size: int = 56,
) -> SmallCNN:
    """Small BatchNorm CNN for quick CPU runs at 56 px (see :class:`SmallCNN`)."""
    return SmallCNN(num_classes, widths=widths, dropout=dropout, image_size=image_size)
