"""Model registry: builders registered by name, ``create_model`` and ``list_models``.

A builder is a function ``builder(*, num_classes, **kwargs) -> nn.Module`` that returns the
architecture with its own (random) initialisation and sets the attributes every vsent model has:

* ``preprocess``: :class:`vsent.data.transforms.Preprocess` the model expects,
* ``new_layers``: module names of the layers that replace the pretrained head (freshly
  initialised even with ``init="imagenet"``; the training loop gives them a higher lr),
* ``probe_layers``: module names in depth order for layer probes (``model.get_submodule``),
* ``default_lr``: architecture-specific base learning rate hint, or ``None``,
* ``num_outputs``: width of the logits returned by ``forward``.

``create_model`` then applies the weights (``init``, see :mod:`vsent.models.weights`) and records
``model.spec``, the dict that rebuilds the architecture (used by checkpoints).
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

from torch import Tensor, nn

from vsent.errors import VsentError

#: Returns the ImageNet state dict of a family (downloading it if needed) for the given model.
PretrainedLoader = Callable[[nn.Module], Mapping[str, Tensor]]

#: Attributes every builder must set on the model it returns.
MODEL_ATTRIBUTES = ("preprocess", "new_layers", "probe_layers", "default_lr", "num_outputs")


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture: its builder and, if it has any, its ImageNet weights."""

    name: str
    builder: Callable[..., nn.Module]
    pretrained_loader: PretrainedLoader | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, pretrained_loader: PretrainedLoader | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(*, num_classes, **kwargs) -> nn.Module`` under ``name``.

    ``pretrained_loader(model)`` returns the family's ImageNet state dict for ``init="imagenet"``.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, pretrained_loader)
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the shell-style ``pattern``."""
    _import_builtin_models()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_model_entry(name: str) -> ModelEntry:
    """Registry entry of ``name``; raises :class:`VsentError` listing the known names."""
    _import_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise VsentError(
            f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


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
        Registered model name (see :func:`list_models`).
    num_classes : int, default 2
        Width of the new classification layer (raw ablations such as CaffeNet ``fc7-4096``
        keep their pretrained width; see ``model.num_outputs``).
    init : {"random", "imagenet"} or path, default "random"
        ``"random"``: the architecture's own initialisation; ``"imagenet"``: the family's
        ImageNet weights except ``new_layers``; a path: a ``.pt``/``.pth`` state dict, a vsent
        checkpoint or a ``.caffemodel``.
    **kwargs
        Architecture options of the builder (e.g. ``arch="fc7-2"`` for CaffeNet).

    Returns
    -------
    nn.Module
        ``forward(x: float (B, 3, H, W)) -> logits (B, model.num_outputs)``, with the attributes
        ``spec``, ``preprocess``, ``new_layers``, ``probe_layers``, ``default_lr``, ``num_outputs``.
    """
    from vsent.models.weights import apply_init  # weights looks entries up in this module

    entry = get_model_entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise VsentError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:  # validate options here so a typo is a user error, not a TypeError deep inside
        inspect.signature(entry.builder).bind(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise VsentError(f"model {name!r}: {exc}") from None
    model = entry.builder(num_classes=num_classes, **kwargs)
    missing = [a for a in MODEL_ATTRIBUTES if not hasattr(model, a)]
    assert not missing, f"builder of {name!r} did not set {missing}"
    apply_init(model, name, init, new_layers=model.new_layers)
    model.spec = {"name": name, "num_classes": num_classes, **kwargs}
    return model


def _import_builtin_models() -> None:
    """Import the modules that register vsent's own architectures (idempotent)."""
    import vsent.models  # noqa: F401  (its __init__ imports every family module)
