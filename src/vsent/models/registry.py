"""Model registry: builders registered by name or by family prefix, create_model, list_models.

A builder is a function ``builder(*, num_classes, **kwargs) -> SentimentModel`` that returns the
architecture with its own (random) initialisation and its record ``model.info``
(:class:`vsent.models.base.ModelInfo`: preprocessing, head, new layers, probe/CAM layers, ...),
and implements ``forward_features`` / ``forward_head`` (see :mod:`vsent.models.base`).

Two ways to register:

* ``@register_model(name, weights=PretrainedWeights(...))`` on one builder;
* ``register_family(prefix, resolve, list_names)`` for a family whose names are open-ended
  (``"timm/resnet18"``, ``"clip/ViT-B-32"``): ``resolve(name)`` returns the :class:`ModelEntry`
  of a full name starting with ``prefix`` (or raises :class:`VsentError`), ``list_names(pattern)``
  the full names the family offers that match the shell-style ``pattern``. A family with a large
  catalogue may list only the names it vouches for; ``create_model`` accepts any name its
  ``resolve`` accepts.

``create_model`` checks the interface, hands the entry's weights record to
:func:`vsent.models.weights.apply_init` (``init``) and records ``model.spec``, the dict that
rebuilds the architecture (used by checkpoints). :mod:`vsent.models.weights` imports nothing
from this module.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike, fspath
from pathlib import Path
from typing import Any

from torch import nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError, WeightsError
from vsent.models.base import ZS_PREFIX, ModelInfo
from vsent.models.weights import PretrainedWeights, apply_init, saved_preprocess, saved_spec

#: Methods every registered model implements (besides ``forward``).
MODEL_METHODS = ("forward_features", "forward_head")


@dataclass(frozen=True)
class ModelEntry:
    """One architecture: its builder and, if it has any, its pretrained (ImageNet) weights."""

    name: str
    builder: Callable[..., nn.Module]
    weights: PretrainedWeights | None = None
    #: Named pretrained sets (CLIP tags): ``tagged(init)`` -> the record of ``--init init`` (a
    #: tag, or ``TAG=PATH``: a file holding that tag's weights), or None when ``init`` is not
    #: one of its tags (then it is a path).
    tagged: Callable[[str], PretrainedWeights | None] | None = None
    #: The names ``tagged`` knows, for messages (``--init imagenet`` or a misspelt tag).
    tags: tuple[str, ...] = ()
    #: Builder options a tag's weights need (CLIP's OpenAI tags: ``{"quick_gelu": True}``, the
    #: activation they were trained with): ``tag_options(tag)``; the model is built with them
    #: (unless given) and its spec records them, so a checkpoint rebuilds the same network.
    tag_options: Callable[[str], Mapping[str, Any]] | None = None
    #: The builder options that follow the weights (CLIP: ``quick_gelu``): a vsent checkpoint
    #: of this model given as ``--init`` passes the values its spec records (unless given).
    weight_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFamily:
    """Names resolved by prefix (see the module docstring)."""

    prefix: str
    resolve: Callable[[str], ModelEntry]
    list_names: Callable[[str], list[str]]
    #: Non-empty for a family whose names only rebuild saved checkpoints (``zeroshot/``): its
    #: empty models are no architecture to train, so :func:`create_model` refuses them with
    #: this advice (``{rest}``: the name after the prefix) and only :func:`rebuild_model`
    #: builds them.
    saved_only: str = ""


_REGISTRY: dict[str, ModelEntry] = {}
_FAMILIES: dict[str, ModelFamily] = {}


def register_model(
    name: str, *, weights: PretrainedWeights | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(*, num_classes, **kwargs) -> nn.Module`` under ``name``.

    ``weights`` is used by ``init="imagenet"`` (see :class:`PretrainedWeights`).
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if _family_of(name) is not None:
            raise ValueError(f"model {name!r} falls under the family prefix of "
                             f"{_family_of(name).prefix!r}")
        _REGISTRY[name] = ModelEntry(name, builder, weights)
        return builder

    return decorator


def register_family(
    prefix: str,
    resolve: Callable[[str], ModelEntry],
    list_names: Callable[[str], list[str]],
    *,
    saved_only: str = "",
) -> None:
    """Let a family resolve every name starting with ``prefix`` (e.g. ``"timm/"``).

    ``resolve(name)`` gets the full name (prefix included) and returns its :class:`ModelEntry`
    (``entry.name == name``) or raises :class:`VsentError` with a one-line message;
    ``list_names(pattern)`` returns full names matching ``pattern``. ``saved_only``: see
    :attr:`ModelFamily.saved_only` (the advice :func:`create_model` gives for such a name).
    """
    if not prefix or prefix in _FAMILIES:
        raise ValueError(f"model family prefix {prefix!r} is empty or already registered")
    clash = [n for n in _REGISTRY if n.startswith(prefix)]
    clash += [p for p in _FAMILIES if p.startswith(prefix) or prefix.startswith(p)]
    if clash:
        raise ValueError(f"model family prefix {prefix!r} overlaps {', '.join(clash)}")
    _FAMILIES[prefix] = ModelFamily(prefix, resolve, list_names, saved_only)


def _family_of(name: str) -> ModelFamily | None:
    return next((f for p, f in _FAMILIES.items() if name.startswith(p)), None)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the models matching the shell-style ``pattern`` (families included),
    case ignored (``vit-b-32*`` finds ``clip/ViT-B-32``)."""
    _import_builtin_models()
    names = {n for n in _REGISTRY if matches(n, pattern)}
    for family in _FAMILIES.values():
        names.update(n for n in family.list_names(pattern) if matches(n, pattern))
    return sorted(names)


def matches(name: str, pattern: str) -> bool:
    """``fnmatch`` of a model name, case ignored: the families spell their names in their own
    cases (open_clip's ``ViT-B-32``, timm's ``vit_base_patch16_224``)."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def family_prefixes() -> list[str]:
    """The registered family prefixes (``["clip/", "timm/", ...]``), sorted."""
    _import_builtin_models()
    return sorted(_FAMILIES)


def get_model_entry(name: str) -> ModelEntry:
    """Registry entry of ``name``; raises :class:`VsentError` listing the known names."""
    _import_builtin_models()
    if name in _REGISTRY:
        return _REGISTRY[name]
    family = _family_of(name)
    if family is not None:
        entry = family.resolve(name)
        assert entry.name == name, f"family {family.prefix!r} resolved {name!r} as {entry.name!r}"
        return entry
    known = [*sorted(n for n in _REGISTRY), *(f"{p}..." for p, f in sorted(_FAMILIES.items())
                                              if not f.saved_only)]
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in _REGISTRY], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise VsentError(f"unknown model {name!r}; {hint}available: {', '.join(known)}")


def create_model(
    name: str,
    *,
    num_classes: int = 2,
    init: str | PathLike[str] = "random",
    **kwargs: Any,
) -> nn.Module:
    """Build the registered architecture ``name`` and initialise its weights.

    Parameters
    ----------
    name : str
        Registered model name (see :func:`list_models`), e.g. ``"caffenet"``, ``"timm/resnet18"``.
        Names of a family that only rebuilds checkpoints (``zeroshot/clip/<arch>``) are refused:
        their empty models would train to nothing (:func:`rebuild_model` builds them).
    num_classes : int, default 2
        Width of the new classification layer (raw ablations such as CaffeNet ``fc7-4096``
        keep their pretrained width; see ``model.info.num_outputs``).
    init : {"random", "imagenet"}, a tag, ``TAG=PATH`` or a path, default "random"
        ``"random"``: the architecture's own initialisation; ``"imagenet"`` (or a family's tag,
        CLIP ``openai``): the pretrained weights except ``info.new_layers`` (the model then takes
        the preprocessing of the weights record); ``TAG=PATH``: the file PATH holding the weights
        of TAG (downloaded by hand), with TAG's preprocessing; a path: a ``.pt``/``.pth`` state
        dict, a vsent checkpoint (its recorded input statistics are kept) or a ``.caffemodel``.
        A plain file for an architecture whose tags expect other input statistics than its
        default is refused (nothing says which apply): name its tag with ``TAG=PATH``.
    **kwargs
        Architecture options of the builder (e.g. ``arch="fc7-2"`` for CaffeNet).

    Returns
    -------
    nn.Module
        A :class:`~vsent.models.base.SentimentModel`: ``model.info`` (:class:`ModelInfo`),
        ``forward_features(x: float (B, 3, H, W)) -> (B, info.feature_dim)``,
        ``forward_head(f) -> logits (B, info.num_outputs)``, ``forward`` = both, and
        ``model.spec`` (name + options that rebuild it).
    """
    if not isinstance(name, str):  # (None was an AttributeError on .startswith)
        raise TypeError(f"create_model takes a model name (vsent models lists them), got "
                        f"{name!r}")
    _import_builtin_models()
    family = _family_of(name)
    if family is not None and family.saved_only:
        raise VsentError(f"{name!r} names a saved model, not an architecture to build: "
                         f"{family.saved_only.format(rest=name[len(family.prefix):])}")
    return _build(name, num_classes, init, kwargs)


def rebuild_model(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """The architecture of a saved spec with random weights, for a checkpoint's weights to
    fill (:func:`vsent.models.checkpoint.build_model`); unlike :func:`create_model` it also
    builds the names only checkpoints hold (``zeroshot/clip/<arch>``)."""
    return _build(name, num_classes, "random", kwargs)


def _build(name: str, num_classes: int, init: str | PathLike[str],
           kwargs: dict[str, Any]) -> nn.Module:
    """:func:`create_model` once the name is allowed."""
    entry = get_model_entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise VsentError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:  # validate options here so a typo is a user error, not a TypeError deep inside
        inspect.signature(entry.builder).bind(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise VsentError(f"model {name!r}: {exc}") from None
    _check_option_types(name, entry.builder, kwargs)
    weights, init, named = _init_weights(entry, init)
    if named and weights is not None and weights.tag and entry.tag_options is not None:
        kwargs = {**entry.tag_options(weights.tag), **kwargs}
    elif entry.weight_options and not named and not (isinstance(init, str) and init in (
            "random", "imagenet")) and Path(init).is_file():
        spec = saved_spec(init) or {}
        # a checkpoint of this model, or a zero-shot model of it (zeroshot/clip/<arch> holds
        # clip/<arch>'s tower): the network its weights had
        if spec.get("name") in (name, ZS_PREFIX + name):
            kwargs = {**{k: spec[k] for k in entry.weight_options if k in spec}, **kwargs}
    try:
        model = entry.builder(num_classes=num_classes, **kwargs)
    except (ValueError, TypeError) as exc:  # a value the builder refuses (dropout=2)
        raise VsentError(f"model {name!r}: {' '.join(str(exc).split())}") from None
    check_interface(model, name)
    # the pretrained weights expect their own input statistics (checked before a file loads)
    pre = weights.preprocess if named and weights is not None else \
        _file_statistics(entry, init, model.info.preprocess)
    apply_init(model, name, init, weights=weights, new_layers=model.info.new_layers,
               tags=entry.tags)
    if pre is not None:
        if "image_size" in kwargs:  # a size the user chose keeps its crop
            pre = pre.with_crop(model.info.preprocess.crop)
        model.info = dataclasses.replace(model.info, preprocess=pre)
    if named and weights is not None and weights.interpolation:  # the tag's, not the tower's
        model.info = dataclasses.replace(
            model.info, extra={**model.info.extra, "interpolation": weights.interpolation})
    model.spec = {"name": name, "num_classes": num_classes, **kwargs}
    return model


def _init_weights(entry: ModelEntry, init: str | PathLike[str]) -> tuple[
        PretrainedWeights | None, str | PathLike[str], bool]:
    """The weights record of ``init``, the ``init`` :func:`apply_init` reads and whether the
    model takes the record's preprocessing: yes for ``imagenet`` and a tag (CLIP ``openai``),
    whose weights the record loads, and for ``TAG=PATH``, a file of TAG's weights that expect
    TAG's input statistics (apply_init reads PATH)."""
    weights = entry.weights
    if not isinstance(init, str) or init == "random":
        return weights, init, False
    if init == "imagenet" or entry.tagged is None:
        return weights, init, init == "imagenet" and weights is not None
    tag, path = split_tagged_init(init, entry.tags)
    record = entry.tagged(tag or init)
    return (weights, init, False) if record is None else (record, path, True)


def split_tagged_init(init: str | PathLike[str],
                      tags: Sequence[str]) -> tuple[str | None, str | PathLike[str]]:
    """``--init TAG=PATH`` -> ``(TAG, PATH)``: a file holding the weights of the pretrained tag
    TAG (fetched where there is a network); anything else -> ``(None, init)``, an existing
    file whose name holds a ``=`` included. :class:`WeightsError` for ``TAG=`` alone."""
    if not isinstance(init, str) or Path(init).exists():
        return None, init
    tag, sep, path = init.partition("=")
    if not sep or tag not in tags:
        return None, init
    if not path:
        raise WeightsError(f"--init {init}: give the weights file after '{tag}='")
    return tag, path


def _file_statistics(entry: ModelEntry, init: str | PathLike[str],
                     default: Preprocess) -> Preprocess | None:
    """The input statistics of weights read from the file ``init`` when they are not the
    architecture's ``default``: a vsent checkpoint's recorded ones (mean, std, channel order;
    the crop stays the model's). A plain file says nothing: :func:`check_file_statistics`.
    None for the default, or for no file (apply_init says what is wrong)."""
    if (isinstance(init, str) and init in ("random", "imagenet")) or not Path(init).is_file():
        return None
    saved = saved_preprocess(init)
    if saved is not None:
        return dataclasses.replace(default, mean=saved.mean, std=saved.std,
                                   channel_order=saved.channel_order)
    check_file_statistics(entry, init, default)
    return None


def check_file_statistics(entry: ModelEntry, init: str | PathLike[str],
                          default: Preprocess) -> None:
    """:class:`WeightsError` when some of ``entry``'s pretrained tags expect other input
    statistics than the architecture's ``default`` (MobileCLIP: mean 0, std 1): a plain
    weights file ``init`` does not say which it holds, and feeding it the default would give
    wrong features without a word; the user names the tag with ``--init TAG=PATH``."""
    if entry.tagged is None:
        return
    records = {t: entry.tagged(t) for t in entry.tags}
    differ = [t for t, r in records.items()
              if r is not None and not same_statistics(r.preprocess, default)]
    if differ:
        path = fspath(init)
        raise WeightsError(
            f"--init {path}: a weights file does not say which input statistics its weights "
            f"expect, and pretrained tags of {entry.name} take others than its default "
            f"({_statistics(default)}; {differ[0]}: "
            f"{_statistics(records[differ[0]].preprocess)}): name the tag the file holds, "
            f"--init TAG={path} (tags: {', '.join(entry.tags)})")


def same_statistics(a: Preprocess, b: Preprocess) -> bool:
    """Whether ``a`` and ``b`` normalise pixels alike (mean, std, channel order)."""
    close = all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6)
                for x, y in zip((*a.mean, *a.std), (*b.mean, *b.std), strict=True))
    return close and a.channel_order == b.channel_order


def _statistics(pre: Preprocess) -> str:
    """``mean 122.77/116.75/104.09 std 68.5/66.63/70.32`` (0..255 pixel units), for messages."""
    return (f"mean {'/'.join(f'{m:.4g}' for m in pre.mean)} "
            f"std {'/'.join(f'{s:.4g}' for s in pre.std)}")


def check_interface(model: nn.Module, name: str) -> None:
    """Assert that the builder of ``name`` returned a model with the vsent interface.

    A failure is a bug of the builder, not a user error.
    """
    info = getattr(model, "info", None)
    assert isinstance(info, ModelInfo), f"builder of {name!r} did not set model.info (ModelInfo)"
    missing = [m for m in MODEL_METHODS if not callable(getattr(model, m, None))]
    assert not missing, f"model {name!r} lacks {missing}"
    for layer in {*info.probe_layers, *info.new_layers, info.cam_layer, info.head} - {""}:
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise AssertionError(f"model {name!r}: info names {layer!r}, not a module") from None


def _import_builtin_models() -> None:
    """Import the modules that register vsent's own architectures (idempotent)."""
    import vsent.models  # noqa: F401  (its __init__ imports every family module)


#: Builder annotations checked against ``--model-arg`` values, and how to name them.
_NUMBER_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false"}


def _check_option_types(name: str, builder: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """VsentError for a text value of an option the builder annotates as a plain ``int``,
    ``float`` or ``bool`` (``--model-arg image_size=abc``), a fraction for an ``int`` and a
    bool for an ``int`` or ``float`` (``image_size=true``); other checks are the builder's."""
    params = inspect.signature(builder).parameters
    for key, value in kwargs.items():
        annotation = getattr(params.get(key), "annotation", None)
        if not isinstance(annotation, str):
            annotation = getattr(annotation, "__name__", None)
        # a bool is an int to Python, not a size or a rate to a user (image_size=true)
        wrong = isinstance(value, str) or (annotation == "int" and isinstance(value, float)) \
            or (annotation in ("int", "float") and isinstance(value, bool))
        if annotation in _NUMBER_TYPES and wrong:
            raise VsentError(f"model {name!r}: {key} must be {_NUMBER_TYPES[annotation]}, "
                             f"got {value!r}")
