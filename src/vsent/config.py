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
import logging
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vsent.errors import VsentError

#: The largest seed a user gives: numpy's legacy generators and scikit-learn's
#: ``random_state`` take 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
#: The largest seed of a training stage: seeds derived from the user's (crossval's fold k
#: trains with seed * 1000 + k, later stages add 1 or 2) go to torch's and numpy's
#: generators, which take any of these.
MAX_TRAIN_SEED = 2**63 - 1


def fold_seed(seed: int, fold: int) -> int:
    """The training seed of crossval's fold ``fold`` (1-based) in a run of seed ``seed``."""
    return seed * 1000 + fold


def check_seed(seed: Any, limit: int = MAX_SEED) -> None:
    """Raise VsentError unless ``seed`` is an integer in 0 .. ``limit`` (a negative or huge
    seed would stop a run at its first scikit-learn step, after hours of work)."""
    if isinstance(seed, bool) or not hasattr(seed, "__index__") or not 0 <= seed <= limit:
        raise VsentError(f"--seed must be an integer in 0..{limit}, got {seed!r}")


def check_eval_batch_size(value: Any) -> None:
    """Raise VsentError unless ``value`` is an integer >= 1 (2.5 or 0 would otherwise stop a
    run only when it first scores images, after a fold or a stage had trained)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise VsentError(f"--eval-batch-size must be an integer >= 1, got {value!r}")


def is_finite(value: Any) -> bool:
    """False for a float that is inf or nan (``lr > 0`` holds for inf); an integer (or a
    value that is no number, refused by its own check) counts as finite."""
    if isinstance(value, numbers.Integral) or not isinstance(value, numbers.Real):
        return True
    return math.isfinite(value)


def positive_floats(values: Any) -> tuple[float, ...] | None:
    """``values`` (a classifier's grid of C values, ...) as floats, in order; None when there
    are none, or one is not a finite number > 0 (a bool is none: ``float(True)`` is 1.0).
    Each caller says the error its own way."""
    try:
        floats = tuple(math.nan if isinstance(v, bool) else float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return floats if floats and all(math.isfinite(v) and v > 0 for v in floats) else None


#: The scalar metrics of a fold, summarised over folds (:data:`vsent.metrics.SCALARS`) and
#: shown on the model card (:data:`vsent.models.card.CARD_METRICS`), in this order.
SCALAR_METRICS = ("accuracy", "precision", "recall", "f1")
#: Agreement subsets of Twitter I (how many of the five workers agreed on the label), most first.
SUBSETS = ("five", "four", "three")
OPTIMIZERS = ("sgd", "adamw")
#: ``--dist-backend`` choices (:mod:`vsent.distributed`): auto is nccl when the ranks train on
#: CUDA, else gloo.
DIST_BACKENDS = ("auto", "gloo", "nccl")
#: Forms of SGD's momentum (:class:`vsent.train.CaffeSGD`): "caffe" (``V = m V + lr g;
#: w -= V``, the velocity keeps the lr it was built with) or "torch" (``v = m v + g;
#: w -= lr v``, torch.optim.SGD). The same steps at a constant lr; not after an lr drop.
MOMENTUM_FORMS = ("caffe", "torch")
#: The form a config.json of an SGD run without ``momentum_form`` trained with (vsent before
#: the field: torch.optim.SGD).
LEGACY_MOMENTUM_FORM = "torch"
#: Config keys a config.json written before them lacks, whose value the stored config decides
#: (:func:`with_stored_momentum_form`): their absence there is no difference from a command's
#: config (:func:`vsent.runs.config_diff`), so such a run is reopened or resumed as it was made.
STORED_DECIDES = ("momentum_form",)
SCHEDULES = ("step", "cosine", "constant")
#: Training-time augmentation (``--augment``): Caffe's random crop + mirror, or torchvision's
#: RandomResizedCrop (scale 0.35-1) + mirror + TrivialAugmentWide (see vsent.data.transforms).
AUGMENTS = ("crop-flip", "trivial")
#: Batch mixing (``--mix``): none, torchvision's MixUp (alpha 0.2), CutMix (alpha 1.0), or one of
#: the two drawn per batch (``mixup|cutmix``, as torchvision's classification references).
MIXES = ("none", "mixup", "cutmix", "mixup|cutmix")
#: Issue 10: weakly labelled extra training subsets (``--extra-train``), how they are used
#: (``--extra-schedule``, see :func:`vsent.crossval.train_fold_with_extra`), which rows the
#: progressive step may drop, and the hand-crafted blocks of late fusion (``--fusion``, joined
#: with '+').
EXTRA_TRAIN = ("four", "three")
EXTRA_SCHEDULES = ("joint", "joint+finetune", "progressive")
PROGRESSIVE_SCOPES = ("all", "extra")
#: Hand-crafted blocks of late fusion (``--fusion``, ``vsent fuse --features``): the baselines'
#: blocks (vsent.analyses.baselines.BLOCKS) and fusion's own (vsent.analyses.fusion_run.
#: FUSION_ONLY_BLOCKS); a test checks the three agree.
FUSION_BLOCKS = ("gch", "lch", "bow", "fv", "cues")
#: The blocks a fused model's checkpoint can carry (vsent.analyses.fused_model: their encoders
#: are a histogram or a vocabulary); ``finetune --fusion`` takes these.
SAVED_FUSION_BLOCKS = ("gch", "lch", "bow")


def split_blocks(spec: str) -> tuple[str, ...]:
    """``"gch + BoW"`` -> ``("gch", "bow")``: the one reading of hand-crafted blocks joined
    with '+' (blanks and case ignored), for :func:`parse_fusion_blocks` and ``vsent baselines
    --features`` (:func:`vsent.analyses.baselines.parse_features`), which check the names
    against their own blocks. Nothing is checked here (an empty part stays '')."""
    return tuple(p.strip().lower() for p in spec.split("+"))


def parse_fusion_blocks(spec: str, option: str, *, none_ok: bool = False) -> tuple[str, ...]:
    """``"gch+bow+cues"`` -> ``("gch", "bow", "cues")`` (blanks and case ignored,
    :func:`split_blocks`): a hand-crafted block list of late fusion (``crossval --fusion``,
    ``vsent fuse --features``, a fused model's blocks). VsentError naming ``option`` for an
    unknown, empty or repeated block (``none_ok``: the option also takes ``none``, and says
    so)."""
    parts = split_blocks(spec)
    if not all(parts) or any(p not in FUSION_BLOCKS for p in parts) \
            or len(set(parts)) != len(parts):
        raise VsentError(f"{option} {spec!r}: {'none, or ' if none_ok else ''}blocks "
                         f"{', '.join(FUSION_BLOCKS)} joined with '+' (each once), e.g. "
                         "gch+bow or gch+bow+cues")
    return parts


#: Maps of the hand-crafted histograms (``--histogram-map``): ``none``, or ``sqrt`` - the square
#: root of each L1-normalised histogram, so that a linear classifier computes the Hellinger
#: kernel between histograms (elementwise: nothing is learnt from data).
HISTOGRAM_MAPS = ("none", "sqrt")
#: Issue 11: heads of ``--train head`` (vsent.frozen).
HEADS = ("linear", "logistic")
#: Sun et al. 2016 (vsent.analyses.regions): orders of the proposals (the paper's affective
#: score ``ar`` and its ablations) and readings of the log in the sentiment score
#: (``--senti-log``: base M, the number of classes, scores in [0, 1], vsent's default; or
#: natural, the formula as printed).
RANKINGS = ("ar", "objectness", "sentiment", "random")
SENTI_LOGS = ("classes", "natural")


def parse_train_mode(mode: str) -> int | None:
    """``"all"`` -> None (everything trains), ``"head"`` -> 0, ``"last-N"`` -> N (>= 1).

    Raises :class:`VsentError` naming ``--train`` for anything else (:mod:`vsent.frozen`
    re-exports it; here so that RunConfig validates with it without importing torch).
    """
    if mode == "all":
        return None
    if mode == "head":
        return 0
    if mode.startswith("last-") and mode[5:].isdigit() and int(mode[5:]) >= 1:
        return int(mode[5:])
    raise VsentError(f"--train {mode!r}: use all, head or last-N (N >= 1, e.g. last-2)")


def record_dict(record: Any) -> dict[str, Any]:
    """``record`` (a config dataclass) as a dict, field by field; a field holding another
    config is that config's ``to_dict()`` (so TrainConfig leaves out its defaults there too)."""

    def value(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return v.to_dict() if hasattr(v, "to_dict") else record_dict(v)
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(value(x) for x in v)
        return v

    return {f.name: value(getattr(record, f.name)) for f in dataclasses.fields(record)}


def omit_defaults(record: Any, d: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``d`` (``record`` as a dict) without the fields ``names`` that hold their default:
    options added after runs were made stay out of those runs' config.json."""
    defaults = {f.name: f.default for f in dataclasses.fields(record)}
    return {k: v for k, v in d.items() if not (k in names and v == defaults[k])}


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (validated when built). Epochs count passes over the images.

    The defaults are the recipe of Campos et al. 2015 (Caffe solver): SGD with momentum 0.9
    in Caffe's form (``momentum_form``, see :data:`MOMENTUM_FORMS`), weight decay 5e-4, base
    lr 0.001 divided by 10 every 6 epochs, 65 epochs, the new layer at 10x the base lr, biases
    at 2x their layer's lr without weight decay.
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
    # lr multiplier of the layers the model lists in ``new_layers``, and of its head when a
    # parameter is frozen (vsent.train.head_layers)
    head_lr_mult: float = 10.0
    bias_lr_mult: float = 2.0  # Caffe convention: biases at 2x lr, no weight decay
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"  # a run option: not compared when a run is resumed
    # issue 10; left out of config.json at their defaults (see to_dict)
    augment: str = "crop-flip"  # AUGMENTS
    ema: float = 0.0  # decay of an exponential moving average of the weights per step (0: off)
    mix: str = "none"  # MIXES
    # SGD only (MOMENTUM_FORMS); in config.json when "caffe" (see to_dict and from_dict)
    momentum_form: str = "caffe"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise VsentError naming the first option out of range (run when built)."""
        checks: list[tuple[str, Callable[[Any], bool], str]] = [  # (field, in range, said)
            ("epochs", lambda v: v >= 1, "an integer >= 1"),
            ("batch_size", lambda v: v >= 1, "an integer >= 1"),
            ("lr", lambda v: v > 0, "a finite number > 0"),
            ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("weight_decay", lambda v: v >= 0, "a finite number >= 0"),
            ("lr_step", lambda v: v >= 1, "an integer >= 1"),
            ("lr_gamma", lambda v: 0 < v <= 1, "a number in (0, 1]"),
            ("head_lr_mult", lambda v: v > 0, "a finite number > 0"),
            ("bias_lr_mult", lambda v: v > 0, "a finite number > 0"),
            ("label_smoothing", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("ema", lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ]
        for name, in_range, allowed in checks:
            value = getattr(self, name)
            # a number of the right kind first (from Python, epochs="3" was a TypeError);
            # ``lr > 0`` holds for inf (nan fails it only by chance): a non-finite number
            # trains on into NaN weights, so every float option must be finite too
            kind = numbers.Integral if allowed.startswith("an integer") else numbers.Real
            kind_ok = isinstance(value, kind) and not isinstance(value, bool)
            option = name.replace("_", "-")
            if not kind_ok:
                raise VsentError(f"--{option} {value!r} is not {allowed}")
            if not in_range(value) or not is_finite(value):
                raise VsentError(f"--{option} {value!r} is out of range ({allowed})")
        if self.optimizer not in OPTIMIZERS:
            raise VsentError(
                f"--optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise VsentError(f"--schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.augment not in AUGMENTS:
            raise VsentError(f"--augment {self.augment!r}: choose one of {', '.join(AUGMENTS)}")
        if self.mix not in MIXES:
            raise VsentError(f"--mix {self.mix!r}: choose one of {', '.join(MIXES)}")
        if self.momentum_form not in MOMENTUM_FORMS:
            raise VsentError(f"--momentum-form {self.momentum_form!r}: choose one of "
                             f"{', '.join(MOMENTUM_FORMS)}")
        check_seed(self.seed, MAX_TRAIN_SEED)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as config.json holds it; ``augment``, ``ema`` and ``mix`` only when not at
        their default, so the runs made before they existed keep their config (and resume);
        ``momentum_form`` only for SGD in Caffe's form (an SGD config without it trained in
        :data:`LEGACY_MOMENTUM_FORM`: :meth:`from_dict`)."""
        d = omit_defaults(self, dataclasses.asdict(self), ("augment", "ema", "mix"))
        if self.optimizer != "sgd" or self.momentum_form == LEGACY_MOMENTUM_FORM:
            del d["momentum_form"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """The config a :meth:`to_dict` dict (config.json's) holds: an SGD config without
        ``momentum_form`` was written by a vsent that trained in the torch form."""
        d = dict(d)
        if d.get("optimizer", "sgd") == "sgd":
            d.setdefault("momentum_form", LEGACY_MOMENTUM_FORM)
        return cls(**d)


def config_from_dict(cls: type, d: Mapping[str, Any], what: str, *,
                     train_fields: tuple[str, ...] = ("train",),
                     records: Mapping[str, type] | None = None) -> Any:
    """Rebuild the config dataclass ``cls`` from its ``config.json`` dict.

    The ``train_fields`` become :class:`TrainConfig` objects; ``records`` maps other fields to
    the config dataclass they hold (e.g. ``{"probe": ProbeConfig}``), rebuilt from their dict
    when present. A ``command`` key (written by the run directory) is ignored and any other
    unknown key (also inside a train field or record) is a user error naming ``what``.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known - {"command"}
    if unknown:
        raise VsentError(f"unknown {what} config keys: {', '.join(sorted(unknown))}")
    kwargs = {k: v for k, v in d.items() if k in known}
    subs = {**dict.fromkeys(train_fields, TrainConfig), **(records or {})}
    for name, sub_cls in subs.items():
        if name not in d and sub_cls is not TrainConfig:
            continue  # the record's default
        sub = d.get(name, {})
        bad = set(sub) - {f.name for f in dataclasses.fields(sub_cls)}
        if bad:
            raise VsentError(f"unknown {what} config keys: "
                             f"{', '.join(f'{name}.{k}' for k in sorted(bad))}")
        if sub_cls is not TrainConfig:
            kwargs[name] = sub_cls(**sub)
        else:  # (a recorded one in the form it trained with; none recorded: the default)
            kwargs[name] = TrainConfig.from_dict(sub) if name in d else TrainConfig()
    return cls(**kwargs)


def stored_momentum_forms(cfg: Any, stored: Mapping[str, Any] | None
                          ) -> dict[str, TrainConfig]:
    """The TrainConfigs of ``cfg`` (a config dataclass holding them: RunConfig, the pcnn
    configs) that train in another momentum form than the run's ``stored`` config.json
    records for them, by field name, each with the recorded form: a run made before
    ``momentum_form`` existed trained in torch's form (its config.json reads so,
    :meth:`TrainConfig.from_dict`)."""
    changes = {}
    for f in dataclasses.fields(cfg):
        train, record = getattr(cfg, f.name), (stored or {}).get(f.name)
        if not (isinstance(train, TrainConfig) and isinstance(record, Mapping)):
            continue
        legacy = record.get("optimizer", "sgd") == "sgd"
        form = record.get("momentum_form", LEGACY_MOMENTUM_FORM if legacy else None)
        if form in MOMENTUM_FORMS and form != train.momentum_form:
            changes[f.name] = train.replace(momentum_form=form)
    return changes


def with_stored_momentum_form(cfg: Any, stored: Mapping[str, Any] | None) -> Any:
    """``cfg`` whose TrainConfigs train in the momentum form that the run's ``stored``
    config.json records for them (:func:`stored_momentum_forms`): a run made before
    ``momentum_form`` existed goes on in torch's form, whatever the command's default; a new
    run's record is the command's own config (no change)."""
    changes = stored_momentum_forms(cfg, stored)
    if not changes:
        return cfg
    logging.getLogger("vsent").info(
        "made before --momentum-form: %s trains on in the momentum form it started with (%s)",
        ", ".join(changes), ", ".join(sorted({c.momentum_form for c in changes.values()})))
    return dataclasses.replace(cfg, **changes)


def zero_shot_train_error(fields: list[str]) -> VsentError:
    """The error for training options (TrainConfig ``fields``) given with --zero-shot."""
    options = ", ".join("--" + f.replace("_", "-") for f in fields)
    return VsentError(f"{options}: not with --zero-shot (nothing is trained)")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a fine-tuning or cross-validation run (saved as config.json).

    ``preset`` names the recipe the training options came from; it is None when the user set
    the learning rate (see :func:`vsent.presets.resolve_lr`). ``train.lr`` is the lr the run
    trains at, resolved before the run directory is written.

    ``train.seed`` is ``seed`` (set so when built): the runs train with seeds derived from
    ``seed`` (crossval's fold k with ``seed * 1000 + k``), so config.json records no other.
    ``finetune_lr_default``: ``finetune.lr`` was not given but is the default, a tenth of
    ``train.lr``, and follows it when :func:`vsent.crossval.prepare` resolves the lr (an
    architecture's hint); not saved in config.json, which holds the resolved lr.
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
    # issue 10 (crossval only); left out of config.json at their defaults (see to_dict)
    extra_train: str | None = None  # EXTRA_TRAIN: add <subset>-agree minus base to each fold
    extra_schedule: str = "joint"  # EXTRA_SCHEDULES
    progressive_scope: str = "all"  # rows the progressive step may drop (all: You et al.)
    # recipe of --extra-schedule's fine-tuning stages on the clean fold (not "joint"; nothing
    # to do with the `vsent finetune` command); its seed is unused (a stage seeds from
    # ``seed``, fold k's with seed * 1000 + k + 1 or 2) and kept as recorded for resume
    finetune: TrainConfig | None = None
    fusion: str | None = None  # hand-crafted blocks fused with the CNN, e.g. "gch+bow"
    # issue 11 (vsent.frozen, vsent.zeroshot); left out of config.json at their defaults
    train_mode: str = "all"  # all (fine-tune), head (frozen features), last-N: parse_train_mode
    head: str = "linear"  # HEADS, for train_mode "head": linear (the solver) or logistic
    zero_shot: bool = False  # CLIP zero-shot scoring by prompts, no training (init = a tag)
    prompts: dict[str, list[str]] | None = None  # zero-shot prompts (None: the defaults)
    # not saved (see to_dict) nor compared: how finetune.lr was chosen, not what it is
    finetune_lr_default: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        # the kinds first, as TrainConfig's (eval_batch_size 2.5 failed after fold 1
        # had trained, oversample "no" was true, data 3 a pathlib TypeError)
        if not isinstance(self.data, str | os.PathLike):
            raise VsentError(f"--data {self.data!r} is not a path")
        object.__setattr__(self, "data", os.fspath(self.data))  # a Path given: stored as text
        for name in ("oversample", "skip_bad"):
            if not isinstance(getattr(self, name), bool):
                raise VsentError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_eval_batch_size(self.eval_batch_size)
        if self.subset not in SUBSETS:
            raise VsentError(f"--subset {self.subset!r}: choose one of {', '.join(SUBSETS)}")
        check_seed(self.seed)
        if self.train.seed != self.seed:  # a TrainConfig built apart keeps its default seed
            object.__setattr__(self, "train", self.train.replace(seed=self.seed))
        self._validate_extra_and_fusion()
        self._validate_train_mode()

    def _validate_train_mode(self) -> None:
        """--train / --head / --zero-shot and their combinations."""
        mode = self.train_mode
        parse_train_mode(mode)
        if self.head not in HEADS:
            raise VsentError(f"--head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.head != "linear" and mode != "head":
            raise VsentError(f"--head {self.head} applies to --train head")
        if self.zero_shot and (mode != "all" or not self.model.startswith("clip/")):
            raise VsentError("--zero-shot needs a CLIP model (--model clip/<arch>) and no --train")
        if self.zero_shot and self.model_kwargs:  # the model is what its weights define
            raise VsentError(f"--model-arg {', '.join(self.model_kwargs)}: not with --zero-shot "
                             "(the CLIP model is scored as its weights define it)")
        if self.prompts is not None and not self.zero_shot:
            raise VsentError("--prompts applies to --zero-shot")
        if self.extra_train is not None and (mode != "all" or self.zero_shot):
            raise VsentError("--extra-train trains the whole network: not with --train "
                             f"{mode}{' or --zero-shot' if self.zero_shot else ''}")

    def check_zero_shot_recipe(self) -> None:
        """A zero-shot run trains nothing: a recipe other than its preset's would be stored in
        config.json (and shown on its cards) though it never ran. Checked where a run starts
        (:func:`vsent.crossval.prepare`), not when a stored config is read: runs made before
        the check still open. A config without a preset (the user's lr, refused by the CLI; a
        Python-made recipe) has nothing to compare."""
        from vsent.presets import CROSSVAL  # here: vsent.presets imports this module

        preset = CROSSVAL.get(self.preset or "")
        if not self.zero_shot or preset is None:
            return
        # seed, device: run options, not a recipe; momentum_form: read as the legacy form
        # from the config.json of a zero-shot run made before the option
        changed = [f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("seed", "device", "momentum_form")
                   and getattr(self.train, f.name) != getattr(preset["train"], f.name)]
        if changed:
            raise zero_shot_train_error(changed)

    def _validate_extra_and_fusion(self) -> None:
        """The --extra-train / --extra-schedule / --fusion options and their combinations."""
        if self.extra_train not in (None, *EXTRA_TRAIN):
            raise VsentError(f"--extra-train {self.extra_train!r}: choose one of none, "
                             f"{', '.join(EXTRA_TRAIN)}")
        if self.extra_schedule not in EXTRA_SCHEDULES:
            raise VsentError(f"--extra-schedule {self.extra_schedule!r}: choose one of "
                             f"{', '.join(EXTRA_SCHEDULES)}")
        if self.extra_schedule != "joint" and self.extra_train is None:
            raise VsentError(f"--extra-schedule {self.extra_schedule} needs --extra-train "
                             f"({' or '.join(EXTRA_TRAIN)})")
        if self.progressive_scope not in PROGRESSIVE_SCOPES:
            raise VsentError(f"--progressive-scope {self.progressive_scope!r}: choose one of "
                             f"{', '.join(PROGRESSIVE_SCOPES)}")
        if self.progressive_scope != "all" and self.extra_schedule != "progressive":
            raise VsentError("--progressive-scope applies to --extra-schedule progressive")
        staged = self.extra_schedule != "joint"
        if staged and not isinstance(self.finetune, TrainConfig):
            raise VsentError(f"--extra-schedule {self.extra_schedule} needs a fine-tuning "
                             "recipe (--finetune-epochs, --finetune-lr)")
        if not staged and self.finetune is not None:
            raise VsentError("--finetune-epochs/--finetune-lr apply to --extra-schedule "
                             "joint+finetune or progressive")
        if self.fusion is not None:  # kept as given: a run stored "gch + bow" still resumes
            parse_fusion_blocks(str(self.fusion), "--fusion", none_ok=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        staged = d.get("finetune") is not None
        return config_from_dict(cls, d, "run",
                                train_fields=("train", "finetune") if staged else ("train",))

    def to_dict(self) -> dict[str, Any]:
        """The config as config.json holds it; the issue-10 fields only when not at their
        default, so a run without them keeps the config (and resumes the run directories)
        of before they existed (:func:`vsent.runs.config_diff` counts a missing key as a
        difference)."""
        d = omit_defaults(self, record_dict(self), OMITTED_AT_DEFAULT)
        del d["finetune_lr_default"]  # how finetune.lr was chosen: config.json holds its value
        return d

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


#: RunConfig keys a crossval/finetune run directory does not compare: ``preset`` is None when
#: ``--lr`` was given, and the lr it stands for (``train.lr``) is compared: ``--lr 0.002``
#: beside ``--preset quick`` (whose lr it is) is the same recipe.
NOT_COMPARED = ("preset",)
#: RunConfig fields written to config.json only when they differ from their default.
OMITTED_AT_DEFAULT = ("extra_train", "extra_schedule", "progressive_scope", "finetune", "fusion",
                      "train_mode", "head", "zero_shot", "prompts")


#: ``vsent baselines``' config.json keys written only when they differ from these defaults
#: (:class:`vsent.analyses.baselines.BaselineConfig`'s, a test checks): a run made before the
#: option existed resumes.
BASELINE_OMITTED_AT_DEFAULT = {"histogram_map": "none", "fisher_components": 64, "fisher_pca": 64}


def omitted_defaults() -> dict[str, Any]:
    """The defaults of :data:`OMITTED_AT_DEFAULT` and :data:`BASELINE_OMITTED_AT_DEFAULT`
    (:func:`vsent.runs.config_diff` takes a config.json that holds them at these values as
    one that leaves them out)."""
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    return {**{name: defaults[name] for name in OMITTED_AT_DEFAULT},
            **BASELINE_OMITTED_AT_DEFAULT}
