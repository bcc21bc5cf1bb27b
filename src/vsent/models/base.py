"""The interface every vsent model has: one record (:class:`ModelInfo`) and two forward halves.

A registered builder returns an ``nn.Module`` that

* has ``model.info``: a frozen :class:`ModelInfo` saying what analyses need to know (layers to
  probe and how to pool them, the Grad-CAM layer, the width of ``forward_features``
  (``feature_dim``: regions and early fusion use it), preprocessing, head, default lr, width
  of the logits);
* implements ``forward_features(x: float (B, 3, H, W)) -> float (B, D)``: the pooled, flattened
  input of the classification head (the "penultimate feature");
* implements ``forward_head(features: (B, D)) -> logits (B, info.num_outputs)``;
* has ``forward(x) == forward_head(forward_features(x))``.

Analyses read ``model.info`` and call these two methods; they never search for "the last
``nn.Linear``", run a dummy forward pass to find a layer, or keep lists of model names.
(:class:`SentimentModel` is a mixin giving ``forward`` from the two halves.)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType, ModuleType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vsent import errors
from vsent.data.transforms import Preprocess
from vsent.errors import VsentError

#: How a probed layer's output is reduced before a linear probe: ``"flatten"`` keeps every value,
#: ``"avg"`` global-average-pools a (B, C, h, w) map to (B, C), ``"tokens"`` averages a
#: (B, T, C) token sequence over T.
PoolMode = Literal["flatten", "avg", "tokens"]
#: Registry prefix of saved zero-shot models, ``zeroshot/clip/<arch>`` (:mod:`vsent.zeroshot`):
#: such a checkpoint holds ``clip/<arch>``'s tower (the registry reads its build options).
ZS_PREFIX = "zeroshot/"


@dataclass(frozen=True)
class ModelInfo:
    """What an architecture is, set once by its builder (``model.info``).

    Attributes
    ----------
    name : registered name (``create_model(name)``), e.g. ``"caffenet"``, ``"timm/resnet18"``.
    family : the file/family it comes from, e.g. ``"caffenet"``, ``"torchvision"``,
        ``"smallcnn"``, ``"timm"``, ``"clip"``.
    preprocess : the input the network expects (size, crop, mean/std, channel order).
    num_outputs : width of the logits (2, or 1000/4096 for CaffeNet's raw ablations).
    head : module name of the classification head (``forward_head``); ``""`` when the top of
        the network is used as logits as it is (CaffeNet ``fc7-4096``).
    new_layers : module names freshly initialised even with pretrained weights (the replaced
        head); the training loop gives them ``head_lr_mult`` x lr (and ``head`` too when a
        parameter is frozen: :func:`vsent.train.head_layers`).
    probe_layers : module names in depth order for layer probes (``model.get_submodule``).
    probe_pool : per probe layer, how its output is reduced (:data:`PoolMode`); a layer not
        listed is flattened.
    cam_layer : module whose (B, C, h, w) output Grad-CAM weighs (the last convolutional map);
        ``""`` for a network without a spatial map (``vsent explain`` then needs ``--layer``).
    feature_dim : D, the width of ``forward_features``.
    default_lr : base learning rate the architecture needs (e.g. CaffeNet fc6-2: 1e-4), or None.
    extra : family-specific facts worth recording (e.g. the timm pretrained tag), JSON types.
    """

    name: str
    family: str
    preprocess: Preprocess
    num_outputs: int
    head: str
    new_layers: tuple[str, ...]
    probe_layers: tuple[str, ...]
    cam_layer: str
    feature_dim: int
    probe_pool: Mapping[str, PoolMode] = field(default_factory=dict)
    default_lr: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "new_layers", tuple(self.new_layers))
        object.__setattr__(self, "probe_layers", tuple(self.probe_layers))
        object.__setattr__(self, "probe_pool", MappingProxyType(dict(self.probe_pool)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def __deepcopy__(self, memo: dict) -> ModelInfo:
        return self  # immutable: a copied model (e.g. the EMA of its weights) shares it

    def __reduce__(self) -> tuple[type[ModelInfo], tuple[Any, ...]]:
        # mappingproxy cannot be pickled (torch.save(model), multiprocessing): rebuild from
        # plain dicts, which __post_init__ wraps again
        return ModelInfo, tuple(dict(v) if isinstance(v, MappingProxyType) else v
                                for v in (getattr(self, f.name) for f in fields(self)))

    def pool_of(self, layer: str) -> PoolMode:
        """How ``layer``'s output is reduced for a probe (default ``"flatten"``)."""
        return self.probe_pool.get(layer, "flatten")


def import_extra(module: str, what: str, extra: str = "backbones") -> ModuleType:
    """A model family's optional library (``timm``, ``open_clip``), or one line naming the
    extra to install: :func:`vsent.errors.import_extra`, with the backbones extra by default
    (where model families, vsent's and others', have imported it from)."""
    return errors.import_extra(module, what, extra)


def positive_ints(value: Any, what: str, count: int | None = None) -> tuple[int, ...]:
    """``value`` (a list or tuple, e.g. ``--model-arg widths=[16,32]``) as a tuple of positive
    integers; :class:`VsentError` "<what> must be [count] positive integers, got ..." for text,
    fractions (not truncated), bools, another length or an empty sequence."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0 \
        and (count is None or len(value) == count) \
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                for v in value)
    if not ok:
        raise VsentError(f"{what} must be {f'{count} ' if count else ''}positive integers, "
                         f"got {value!r}")
    return tuple(int(v) for v in value)


class SentimentModel(nn.Module):
    """Mixin: ``forward(x) = forward_head(forward_features(x))``; subclasses set ``info``.

    ``info`` is replaced as a whole (``model.info = dataclasses.replace(model.info, ...)``),
    never mutated; it is the only place these facts live (no per-attribute copies).
    """

    info: ModelInfo

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Penultimate features: float (B, 3, H, W) -> (B, info.feature_dim)."""
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Logits of the head: (B, info.feature_dim) -> (B, info.num_outputs)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def non_finite_tensors(module: nn.Module) -> list[str]:
    """Names of ``module``'s floating-point weights and buffers holding NaN or inf (a
    diverged training run: such a model scores every image NaN)."""
    return [name for name, t in module.state_dict().items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_two_way(num_outputs: int, model: str, model_kwargs: dict[str, Any], what: str) -> None:
    """VsentError unless the model has 2 outputs: late fusion needs its P(positive), which a
    many-way softmax (a raw ablation such as CaffeNet fc8-1000) does not give. ``what`` names
    the run or option that asked for the fusion."""
    if num_outputs != 2:
        raise VsentError(f"{what}: fusion and ensembles average P(positive) of 2-way models; "
                         f"{model} {model_kwargs} has {num_outputs} outputs")
