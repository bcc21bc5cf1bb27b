"""Any timm architecture as a vsent model: ``create_model("timm/<arch>")``.

* The network is ``timm.create_model(arch, pretrained=False)``; its head is replaced through
  timm's own API (``reset_classifier(num_classes)``), so every architecture timm knows works.
* The model shares timm's module and parameter dictionaries (:class:`TimmModel`), so its
  ``state_dict()`` keys are timm's own (``patch_embed.proj.weight``, ``head.weight``, ...): a timm
  state dict (``.pth`` or ``.safetensors``) loads with ``--init PATH`` and a vsent checkpoint's
  weights load back into ``timm.create_model``.
* Probe layers are the modules of timm's ``feature_info`` (stage outputs), in depth order.
* The preprocessing comes from the architecture's pretrained configuration
  (``pretrained_cfg``): crop = input size, ``resize = floor(crop / crop_pct)`` (vsent warps to a
  square of that side, then crops the centre), mean/std (0..1 in timm) x 255, RGB; the
  interpolation is recorded in ``info.extra``.
* ``--init imagenet`` loads timm's pretrained weights of the architecture's default tag
  (``<arch>.<tag>`` chooses another) through timm's own download (Hugging Face hub); offline the
  error names the file to fetch and where to put it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError, WeightsError
from vsent.inference import capture_outputs
from vsent.models.base import ModelInfo, PoolMode, SentimentModel, import_extra
from vsent.models.weights import (
    HF_WEIGHTS_NAMES,
    damaged_file_message,
    hf_cache_dir,
    hf_cached_file,
    hub_checkpoint_dir,
    hub_checkpoint_file,
    hub_download,
    url_file_name,
)

log = logging.getLogger(__name__)

PREFIX = "timm/"
#: crop_pct timm assumes when a configuration has none.
DEFAULT_CROP_PCT = 0.875


class SharedModuleModel(SentimentModel):
    """A vsent model that *is* another library's network: it shares that network's module,
    parameter and buffer dictionaries, so names (``state_dict`` keys, ``get_submodule``) are the
    library's own and moving/casting one moves the other. Subclasses call the library's
    methods on ``self.net``."""

    def __init__(self, net: nn.Module, info: ModelInfo) -> None:
        super().__init__()
        # Not registered as a submodule: its children are already ours (same dicts).
        object.__setattr__(self, "net", net)
        self._modules = net._modules
        self._parameters = net._parameters
        self._buffers = net._buffers
        self._non_persistent_buffers_set = net._non_persistent_buffers_set
        self.info = info

    def train(self, mode: bool = True) -> SharedModuleModel:
        super().train(mode)
        self.net.training = mode  # the library's own forward may read self.training
        return self


class TimmModel(SharedModuleModel):
    """timm network with a ``num_classes`` head: ``forward_features`` is timm's pooled
    pre-logits feature (B, D), ``forward_head`` its classifier."""

    def forward_features(self, x: Tensor) -> Tensor:
        """float (B, 3, H, W) normalised -> (B, D) pooled features (timm's ``pre_logits``)."""
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, D) -> logits (B, num_classes)."""
        return self.net.get_classifier()(features)


def preprocess_from_cfg(cfg: Mapping[str, Any]) -> tuple[Preprocess, dict[str, Any]]:
    """vsent :class:`Preprocess` and the facts it cannot hold, from a timm ``pretrained_cfg``.

    ``input_size`` (3, H, W) -> crop H; ``resize = floor(crop / crop_pct)`` (as timm's eval
    transform); ``mean``/``std`` 0..1 -> 0..255. Returns
    ``(preprocess, {"interpolation", "crop_pct", "crop_mode"})``.
    """
    _, h, w = cfg.get("input_size", (3, 224, 224))
    if h != w:
        log.warning("timm input size %dx%d is not square: vsent crops %dx%d", h, w, h, h)
    crop = int(h)
    crop_pct = float(cfg.get("crop_pct") or DEFAULT_CROP_PCT)
    resize = max(crop, math.floor(crop / crop_pct))
    pre = Preprocess(resize=resize, crop=crop,
                     mean=tuple(255.0 * float(m) for m in cfg.get("mean", (0.485, 0.456, 0.406))),
                     std=tuple(255.0 * float(s) for s in cfg.get("std", (0.229, 0.224, 0.225))),
                     channel_order="RGB")
    return pre, {"interpolation": cfg.get("interpolation", "bicubic"), "crop_pct": crop_pct,
                 "crop_mode": cfg.get("crop_mode", "center")}


#: Pools :func:`probe_pools` found, per (architecture key, probe layers, input size): a layer's
#: output layout depends on the architecture and the input size, not on the weights.
_KNOWN_POOLS: dict[tuple[str, tuple[str, ...], int], dict[str, PoolMode]] = {}


def probe_pools(model: nn.Module, layers: Sequence[str], size: int, *,
                key: str | None = None) -> dict[str, PoolMode]:
    """How each layer's output is pooled, from one (1, 3, size, size) forward pass at build time:
    (B, C, h, w) -> "avg", (B, T, C) -> "tokens". Layers with another layout (channels-last
    maps) are left out (flattened if probed).

    No pass when it would tell nothing new: no layers, or the pools found earlier in this
    process for the same ``key`` (the architecture), layers and size (crossval's folds, a run's
    fold models, serve's predictors build one architecture again and again).
    """
    layers = tuple(layers)
    if not layers:
        return {}
    known = None if key is None else (key, layers, int(size))
    if known is not None and known in _KNOWN_POOLS:
        return dict(_KNOWN_POOLS[known])
    was_training = model.training
    try:
        with torch.no_grad(), capture_outputs(model, layers) as outputs:
            model.eval()(torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
    shapes = {n: tuple(o.shape) for n, o in outputs.items() if torch.is_tensor(o)}
    pools: dict[str, PoolMode] = {}
    for n, s in shapes.items():
        if len(s) == 3:
            pools[n] = "tokens"
        elif len(s) == 4 and s[2] == s[3] and s[1] != s[2]:
            pools[n] = "avg"
    if known is not None:
        _KNOWN_POOLS[known] = dict(pools)
    return pools


def _timm():
    return import_extra("timm", "a timm model")


def build_timm(arch: str, *, num_classes: int = 2) -> TimmModel:
    """``timm.create_model(arch)`` (random weights) with a ``num_classes`` head, as a vsent model.

    ``arch`` is a timm name, optionally with a pretrained tag (``convnext_tiny.fb_in22k``), which
    chooses the preprocessing and the ``--init imagenet`` weights.
    """
    timm = _timm()
    if not timm.is_model(arch):
        raise VsentError(f"unknown timm architecture {arch!r} (list them with "
                         f"`vsent models 'timm/*'`)")
    net = timm.create_model(arch, pretrained=False)
    net.reset_classifier(num_classes)
    head_module = net.get_classifier()
    if not isinstance(head_module, nn.Module) or isinstance(head_module, nn.Identity):
        raise VsentError(f"timm/{arch}: its classifier {type(head_module).__name__} cannot be "
                         "used as one sentiment head (distilled or headless model)")
    head = next(n for n, m in net.named_modules() if m is head_module)
    cfg = dict(net.pretrained_cfg)
    pre, facts = preprocess_from_cfg(cfg)
    probes = tuple(fi["module"] for fi in getattr(net, "feature_info", []) or [])
    probes = tuple(p for p in probes if has_module(net, p))
    pools = probe_pools(net, probes, pre.crop, key=PREFIX + arch)
    cams = [p for p in probes if pools.get(p) == "avg"]
    feature_dim = (head_module.in_features if isinstance(head_module, nn.Linear)
                   else int(getattr(net, "head_hidden_size", None) or net.num_features))
    tag = cfg.get("tag")
    info = ModelInfo(
        name=PREFIX + arch, family="timm", preprocess=pre, num_outputs=num_classes, head=head,
        new_layers=(head,), probe_layers=probes, probe_pool=pools,
        cam_layer=cams[-1] if cams else "", feature_dim=feature_dim,
        extra={**facts, "timm_arch": cfg.get("architecture", arch), "pretrained_tag": tag,
               "hf_hub_id": cfg.get("hf_hub_id") or None, "url": cfg.get("url") or None,
               "license": cfg.get("license")},
    )
    return TimmModel(net, info)


def has_module(net: nn.Module, name: str) -> bool:
    """Whether ``net`` has a submodule ``name`` (dotted)."""
    try:
        net.get_submodule(name)
    except AttributeError:
        return False
    return True


# --- weights ----------------------------------------------------------------------------------


def _pretrained_cfg(arch: str) -> dict[str, Any]:
    """timm's pretrained configuration of ``arch`` (``{}`` when it has none);
    :class:`VsentError` naming the valid tags for an unknown ``<arch>.<tag>``."""
    timm = _timm()
    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except RuntimeError:  # timm.is_model accepts any tag, its configurations do not
        name, tag = timm.models.split_model_name_tag(arch)
        tags = [t.partition(".")[2] for t in timm.models.get_arch_pretrained_cfgs(name)]
        raise VsentError(f"unknown timm pretrained tag {tag!r} for {name} (tags: "
                         f"{', '.join(tags) or 'none'})") from None
    return {} if cfg is None else cfg.to_dict()


def weights_location(cfg: Mapping[str, Any]) -> str:
    """Where timm downloads a configuration's weights from (Hugging Face repo or URL), or the
    local file a configuration of one's own names (``pretrained_cfg_overlay=dict(file=...)``)."""
    if cfg.get("hf_hub_id"):
        return f"https://huggingface.co/{cfg['hf_hub_id']}"
    return cfg.get("url") or cfg.get("file") or "nowhere (timm lists no file for it)"


def load_pretrained(arch: str, model: nn.Module) -> dict[str, Tensor]:
    """timm's pretrained state dict of ``arch`` (timm's keys = the model's keys), downloaded
    by timm if needed; :class:`WeightsError` naming the file and folder when it cannot be."""
    timm = _timm()
    num_classes = model.info.num_outputs
    try:
        # timm drops a pretrained classifier of another width itself (the head stays fresh)
        with hub_download():
            net = timm.create_model(arch, pretrained=True, num_classes=num_classes)
    except Exception as exc:  # hub, HTTP, OS errors differ with the download backend
        cfg = _pretrained_cfg(arch)
        cached = cached_weights_file(cfg)
        if cached is not None:  # there, so reading it failed, not the download
            raise WeightsError(damaged_file_message(cached, exc, weights_location(cfg))) \
                from exc
        raise WeightsError(offline_message(arch, exc)) from exc
    return net.state_dict()


def cached_weights_file(cfg: Mapping[str, Any]) -> Path | None:
    """The weights file of a pretrained configuration already downloaded (the Hugging Face
    cache, or torch.hub's folder for a URL), or None."""
    if cfg.get("hf_hub_id"):
        own = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else ()
        return hf_cached_file(cfg["hf_hub_id"], (*own, *HF_WEIGHTS_NAMES))
    if cfg.get("url"):
        path = hub_checkpoint_file(cfg["url"])
        return path if path.is_file() else None
    return None


def offline_message(arch: str, exc: BaseException | None = None) -> str:
    """One line: what timm could not download, where it looks, and the --init PATH way out."""
    cfg = _pretrained_cfg(arch)
    cache = hf_cache_dir()
    why = f" ({type(exc).__name__})" if exc is not None else ""
    where = weights_location(cfg)
    if cfg.get("hf_hub_id"):
        name = cfg.get("hf_hub_filename") or HF_WEIGHTS_NAMES[0]
        fetch = (f"`hf download {cfg['hf_hub_id']}` where there is a network, then copy the "
                 f"Hugging Face cache ({cache}) here")
    else:  # the URL's own file (a .pth), which timm fetches into torch.hub's folder
        name = url_file_name(cfg.get("url") or "") or HF_WEIGHTS_NAMES[0]
        fetch = f"download {where} into {hub_checkpoint_dir()}"
    return (f"cannot download timm weights for {arch}{why} (no network?): pass --init PATH "
            f"to its {name} (from {where}), or {fetch}")


def pretrained_weights(arch: str):
    """The :class:`vsent.models.weights.PretrainedWeights` record of ``arch``'s default (or
    given) tag, or None when timm has no pretrained weights for it."""
    from vsent.models.weights import PretrainedWeights

    timm = _timm()
    cfg = _pretrained_cfg(arch)
    if not cfg or not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
        return None
    if not timm.models.is_model_pretrained(arch.split(".")[0]):
        return None
    pre, _ = preprocess_from_cfg(cfg)
    tag = cfg.get("tag")
    return PretrainedWeights(
        loader=lambda model: load_pretrained(arch, model), preprocess=pre,
        source=f"timm {cfg.get('architecture', arch)}{'.' + tag if tag else ''} "
               f"({weights_location(cfg)})",
        licence=cfg.get("license") or "unknown",
        description=_notes_text(cfg.get("notes")),
    )


def _notes_text(notes: Any) -> str:
    """A pretrained configuration's ``notes`` as one line: timm writes them as a tuple of
    sentences (``("natively QuickGELU, ...",)``), some configurations as one string."""
    if isinstance(notes, str):
        return notes
    if isinstance(notes, (list, tuple)) and all(isinstance(n, str) for n in notes):
        return " ".join(n.strip() for n in notes if n.strip())
    return ""


def describe_weights(arch: str, init: str) -> dict[str, Any]:
    """Card entry for ``--init init`` of ``timm/arch`` (no download, no model build)."""
    if init != "imagenet":
        return {"source": "weights file (timm key names)", "library": "timm", "location": init}
    cfg = _pretrained_cfg(arch)
    tag = cfg.get("tag")
    return {"source": f"timm pretrained weights {cfg.get('architecture', arch)}"
                      f"{'.' + tag if tag else ''}",
            "library": "timm", "tag": tag, "licence": cfg.get("license"),
            "location": weights_location(cfg)}


def interpolation_of(arch: str) -> str | None:
    """The resampling filter of ``arch``'s pretrained configuration (``"bicubic"``, ...)."""
    return _pretrained_cfg(arch).get("interpolation")


# --- registry ---------------------------------------------------------------------------------


def list_names(pattern: str = "*") -> list[str]:
    """``timm/<arch>`` for the timm architectures matching ``pattern``, when the pattern names
    the family (``timm/convnext*``): timm's catalogue (> 1000 names) is not listed by ``*``.
    A pattern with a ``.`` lists pretrained tags (``timm/resnet18.*``: ``timm/resnet18.a1_in1k``,
    ...), as ``--model`` takes them. timm's names are lower case."""
    if not pattern.lower().startswith(PREFIX):
        return []
    arch = pattern[len(PREFIX):].lower() or "*"
    return [PREFIX + n for n in _timm().list_models(arch, pretrained="." in arch)]


def resolve(name: str):
    """Registry entry of ``timm/<arch>`` (see :func:`vsent.models.registry.register_family`)."""
    from vsent.models.registry import ModelEntry

    arch = name[len(PREFIX):]
    if not arch or not _timm().is_model(arch):
        raise VsentError(f"unknown timm architecture {arch!r} (list them with "
                         f"`vsent models 'timm/*'`)")

    def builder(*, num_classes: int = 2) -> TimmModel:
        return build_timm(arch, num_classes=num_classes)

    builder.__name__ = builder.__qualname__ = name
    return ModelEntry(name, builder, pretrained_weights(arch))


def register() -> None:
    """Register the ``timm/`` family (idempotent)."""
    from vsent.models import registry

    if PREFIX not in getattr(registry, "_FAMILIES", {}):
        registry.register_family(PREFIX, resolve, list_names)


register()
