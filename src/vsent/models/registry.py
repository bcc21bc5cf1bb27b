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
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

from torch import nn

from vsent.errors import VsentError
from vsent.models.base import ModelInfo
from vsent.models.weights import PretrainedWeights, apply_init

#: Methods every registered model implements (besides ``forward``).
MODEL_METHODS = ("forward_features", "forward_head")


@dataclass(frozen=True)
class ModelEntry:
    """One architecture: its builder and, if it has any, its pretrained (ImageNet) weights."""

    name: str
    builder: Callable[..., nn.Module]
    weights: PretrainedWeights | None = None
    #: Named pretrained sets (CLIP tags): ``tagged(init)`` -> the record of ``--init init``, or
    #: None when ``init`` is not one of its tags (then it is a path).
    tagged: Callable[[str], PretrainedWeights | None] | None = None
    #: The names ``tagged`` knows, for messages (``--init imagenet`` or a misspelt tag).
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFamily:
    """Names resolved by prefix (see the module docstring)."""

    prefix: str
    resolve: Callable[[str], ModelEntry]
    list_names: Callable[[str], list[str]]


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
) -> None:
    """Let a family resolve every name starting with ``prefix`` (e.g. ``"timm/"``).

    ``resolve(name)`` gets the full name (prefix included) and returns its :class:`ModelEntry`
    (``entry.name == name``) or raises :class:`VsentError` with a one-line message;
    ``list_names(pattern)`` returns full names matching ``pattern``.
    """
    if not prefix or prefix in _FAMILIES:
        raise ValueError(f"model family prefix {prefix!r} is empty or already registered")
    clash = [n for n in _REGISTRY if n.startswith(prefix)]
    clash += [p for p in _FAMILIES if p.startswith(prefix) or prefix.startswith(p)]
    if clash:
        raise ValueError(f"model family prefix {prefix!r} overlaps {', '.join(clash)}")
    _FAMILIES[prefix] = ModelFamily(prefix, resolve, list_names)


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
    known = [*sorted(n for n in _REGISTRY), *(f"{p}..." for p in sorted(_FAMILIES)
                                              if p != "zeroshot/")]
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
    num_classes : int, default 2
        Width of the new classification layer (raw ablations such as CaffeNet ``fc7-4096``
        keep their pretrained width; see ``model.info.num_outputs``).
    init : {"random", "imagenet"} or path, default "random"
        ``"random"``: the architecture's own initialisation; ``"imagenet"``: the family's
        pretrained weights except ``info.new_layers`` (the model then takes the preprocessing of
        the weights record); a path: a ``.pt``/``.pth`` state dict, a vsent checkpoint or a
        ``.caffemodel``.
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
    entry = get_model_entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise VsentError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:  # validate options here so a typo is a user error, not a TypeError deep inside
        inspect.signature(entry.builder).bind(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise VsentError(f"model {name!r}: {exc}") from None
    _check_option_types(name, entry.builder, kwargs)
    weights = entry.weights
    if entry.tagged is not None and isinstance(init, str) and init not in ("random", "imagenet"):
        weights = entry.tagged(init) or weights  # a tag (CLIP "openai"); else init is a path
    try:
        model = entry.builder(num_classes=num_classes, **kwargs)
    except (ValueError, TypeError) as exc:  # a value the builder refuses (dropout=2)
        raise VsentError(f"model {name!r}: {' '.join(str(exc).split())}") from None
    check_interface(model, name)
    apply_init(model, name, init, weights=weights, new_layers=model.info.new_layers,
               tags=entry.tags)
    if weights is not None and isinstance(init, str) and init in ("imagenet", weights.tag):
        # The pretrained weights expect their own input statistics; a size the user chose
        # (``image_size``) keeps its crop.
        pre = weights.preprocess
        if "image_size" in kwargs:
            pre = pre.with_crop(model.info.preprocess.crop)
        model.info = dataclasses.replace(model.info, preprocess=pre)
    model.spec = {"name": name, "num_classes": num_classes, **kwargs}
    return model


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
