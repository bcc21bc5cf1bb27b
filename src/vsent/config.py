"""Frozen, validated configuration records (no torch import: the CLI builds them cheaply).

Every config is a frozen dataclass checked in ``__post_init__`` (a bad value raises
:class:`VsentError` naming the CLI option when the record is built, so nothing downstream
validates again); :func:`config_from_dict` rebuilds one from its ``config.json`` and refuses
unknown keys. Run options that do not change a recipe's results (``device``; the output
directory, ``resume``, ``progress`` are function arguments, not config fields) are ignored
when a stored config is compared with a new one (:data:`vsent.runs.RUN_OPTIONS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vsent.errors import VsentError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (validated when built). Epochs count passes over the images.

    The defaults are the recipe of Campos et al. 2015 (Caffe solver): SGD with momentum 0.9,
    weight decay 5e-4, base lr 0.001 divided by 10 every 6 epochs, 65 epochs, the new layer
    at 10x the base lr, biases at 2x their layer's lr without weight decay.
    """

    epochs: int = 65
    batch_size: int = 64
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str = "step"
    lr_step: int = 6  # epochs between lr drops (schedule="step")
    lr_gamma: float = 0.1
    head_lr_mult: float = 10.0  # lr multiplier of the layers the model lists in ``new_layers``
    bias_lr_mult: float = 2.0  # Caffe convention: biases at 2x lr, no weight decay
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"  # a run option: not compared when a run is resumed

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise VsentError naming the first option out of range (run when built)."""
        checks = [
            ("epochs", self.epochs >= 1), ("batch_size", self.batch_size >= 1),
            ("lr", self.lr > 0), ("momentum", 0 <= self.momentum < 1),
            ("weight_decay", self.weight_decay >= 0), ("lr_step", self.lr_step >= 1),
            ("lr_gamma", 0 < self.lr_gamma <= 1), ("head_lr_mult", self.head_lr_mult > 0),
            ("bias_lr_mult", self.bias_lr_mult > 0),
            ("label_smoothing", 0 <= self.label_smoothing < 1),
        ]
        for name, ok in checks:
            if not ok:
                option = name.replace("_", "-")
                raise VsentError(f"--{option} {getattr(self, name)!r} is out of range")
        if self.optimizer not in OPTIMIZERS:
            raise VsentError(
                f"--optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise VsentError(f"--schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(cls: type, d: Mapping[str, Any], what: str, *,
                     train_fields: tuple[str, ...] = ("train",)) -> Any:
    """Rebuild the config dataclass ``cls`` from its ``config.json`` dict.

    The ``train_fields`` become :class:`TrainConfig` objects; a ``command`` key (written by the
    run directory) is ignored and any other unknown key (also inside a train field) is a user
    error naming ``what``.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known - {"command"}
    if unknown:
        raise VsentError(f"unknown {what} config keys: {', '.join(sorted(unknown))}")
    train_known = {f.name for f in dataclasses.fields(TrainConfig)}
    kwargs = {k: v for k, v in d.items() if k in known}
    for name in train_fields:
        sub = d.get(name, {})
        bad = set(sub) - train_known
        if bad:
            raise VsentError(f"unknown {what} config keys: "
                             f"{', '.join(f'{name}.{k}' for k in sorted(bad))}")
        kwargs[name] = TrainConfig(**sub)
    return cls(**kwargs)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a fine-tuning or cross-validation run (saved as config.json).

    ``preset`` names the recipe the training options came from; it is None when the user set
    the learning rate (see :func:`vsent.presets.resolve_lr`). ``train.lr`` is the lr the run
    trains at, resolved before the run directory is written.
    """

    data: str
    subset: str = "five"
    folds: str = "campos"
    model: str = "caffenet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "imagenet"
    train: TrainConfig = field(default_factory=TrainConfig)
    oversample: bool = False  # which of the two evaluations summary.json leads with
    skip_bad: bool = False
    seed: int = 0
    eval_batch_size: int = 64
    preset: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        if self.eval_batch_size < 1:
            raise VsentError(f"--eval-batch-size must be >= 1, got {self.eval_batch_size}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        return config_from_dict(cls, d, "run")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)
