"""CLIP image towers (open_clip) with a 2-way head: ``create_model("clip/<arch>")``.

* ``clip/ViT-B-32``, ``clip/RN50``, ... : any architecture open_clip knows
  (``open_clip.list_models()``, plus configurations added with ``open_clip.add_model_config``).
* The model holds open_clip's image tower as ``visual`` and a new linear ``head`` on its
  embedding: ``forward_features(x) = visual(x)`` (B, embed_dim), ``forward_head`` = ``head``.
  Its ``state_dict`` keys are those of an open_clip checkpoint (``visual.conv1.weight``, ...)
  plus ``head.*``, so a full open_clip state dict (``.pth``/``.bin``/``.safetensors``) loads with
  ``--init PATH`` (the text tower's keys are dropped).
* Preprocessing is CLIP's own: the tower's image size (no extra crop margin: open_clip resizes
  the shortest side to the image size, vsent warps to that square), CLIP's mean/std (x 255),
  bicubic interpolation (recorded in ``info.extra``).
* Pretrained weights are named by open_clip's tags (``openai``, ``laion2b_s34b_b79k``, ...):
  :func:`pretrained_weights` returns the record for one tag; open_clip downloads the file when
  online, and offline the error names the file and the folder. ``--init TAG=PATH`` loads a
  file of TAG's weights with TAG's mean/std; a plain path is refused where tags take other
  statistics than the default (MobileCLIP), as a file does not say which apply.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError, WeightsError
from vsent.models.base import ZS_PREFIX, ModelInfo, SentimentModel, import_extra
from vsent.models.timm_models import has_module, probe_pools
from vsent.models.weights import (
    HF_WEIGHTS_NAMES,
    damaged_file_message,
    hf_cache_dir,
    hf_cached_file,
    hub_download,
    init_new_linear,
)

PREFIX = "clip/"
#: CLIP's (OpenAI) normalisation, used when a configuration states none (0..1 units).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def open_clip_module():
    """The ``open_clip`` package; a one-line error when the extra is not installed."""
    return import_extra("open_clip", "a CLIP model")


class _QuietRandomBuild(logging.Filter):
    """open_clip logs each step of a build (INFO, on the root logger, so vsent's console shows
    them) and warns whenever it builds a model without pretrained weights; vsent builds random
    towers on purpose (weights come next, or --init random was asked). Both are dropped; its
    other warnings, and everyone else's records, pass."""

    def __init__(self, package_dir: str) -> None:
        super().__init__()
        self.package_dir = package_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.pathname.startswith(self.package_dir):
            return False
        return "No pretrained weights loaded" not in record.getMessage()


def random_clip(arch: str, quick_gelu: bool = False) -> nn.Module:
    """The full open_clip model ``arch`` with its own random initialisation (no download);
    ``quick_gelu``: its GELUs are QuickGELUs (:func:`quick_gelu_of`)."""
    open_clip = open_clip_module()
    # a filter on the root logger only, for this build: a level would hide other threads' logs
    quiet = _QuietRandomBuild(os.path.join(os.path.dirname(open_clip.__file__), ""))
    logging.getLogger().addFilter(quiet)
    try:
        return open_clip.create_model(arch, pretrained=None, load_weights=False,
                                      force_quick_gelu=quick_gelu)
    finally:
        logging.getLogger().removeFilter(quiet)


def quick_gelu_of(arch: str, tag: str) -> bool:
    """Whether the weights of ``arch``/``tag`` were trained with QuickGELU (OpenAI's CLIP, and
    a few others) where the architecture's configuration says GELU: open_clip builds ``arch``
    with GELU and only warns, so vsent asks for QuickGELU (``quick_gelu=True``)."""
    open_clip = open_clip_module()
    wants = bool((open_clip.get_pretrained_cfg(arch, tag) or {}).get("quick_gelu", False))
    return wants and not (open_clip.get_model_config(arch) or {}).get("quick_gelu", False)


def pooled_embedding(visual: nn.Module, x: Tensor) -> Tensor:
    """``visual(x)``, the (B, embed_dim) image embedding of an open_clip tower; for a tower that
    also returns its tokens (CoCa's: (pooled, tokens)), the pooled embedding. Every vsent model
    on a CLIP tower (fine-tuned and zero-shot) calls it, so all of them take any tower."""
    out = visual(x)
    return out[0] if isinstance(out, tuple) else out


class ClipImageModel(SentimentModel):
    """open_clip image tower ``visual`` + linear ``head`` (embed_dim -> num_classes)."""

    def __init__(self, visual: nn.Module, embed_dim: int, num_classes: int,
                 info: ModelInfo) -> None:
        super().__init__()
        self.visual = visual
        self.head = init_new_linear(nn.Linear(embed_dim, num_classes))
        self.info = info

    def forward_features(self, x: Tensor) -> Tensor:
        """float (B, 3, S, S) normalised -> (B, embed_dim) CLIP image embedding (unnormalised)."""
        return pooled_embedding(self.visual, x)

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, embed_dim) -> logits (B, num_classes)."""
        return self.head(features)


def clip_preprocess(visual: nn.Module, cfg: dict[str, Any] | None = None) -> tuple[Preprocess,
                                                                                  dict[str, Any]]:
    """CLIP's preprocessing of a tower (and of a pretrained tag's configuration ``cfg``, whose
    mean/std win). Returns ``(preprocess, {"interpolation", "resize_mode"})``."""
    size = getattr(visual, "image_size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    own = dict(getattr(visual, "preprocess_cfg", None) or {})
    own.update({k: v for k, v in (cfg or {}).items() if v is not None})
    mean = own.get("mean") or OPENAI_MEAN
    std = own.get("std") or OPENAI_STD
    pre = Preprocess(resize=size, crop=size, mean=tuple(255.0 * float(m) for m in mean),
                     std=tuple(255.0 * float(s) for s in std), channel_order="RGB")
    return pre, {"interpolation": own.get("interpolation", "bicubic"),
                 "resize_mode": own.get("resize_mode", "shortest")}


def _probe_layers(visual: nn.Module) -> tuple[str, ...]:
    """Blocks of the tower in depth order: transformer blocks, ResNet stages, or for a tower
    built on timm (SigLIP, ConvNeXt, EVA: ``visual.trunk``) the modules of timm's
    ``feature_info``, as for a ``timm/`` model."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if isinstance(blocks, nn.ModuleList):
        return tuple(f"visual.transformer.resblocks.{i}" for i in range(len(blocks)))
    trunk = getattr(visual, "trunk", None)
    if isinstance(trunk, nn.Module):
        names = [fi["module"] for fi in getattr(trunk, "feature_info", None) or []]
        return tuple(f"visual.trunk.{n}" for n in names if has_module(trunk, n))
    stages = [f"layer{i}" for i in range(1, 5) if hasattr(visual, f"layer{i}")]
    return tuple(f"visual.{s}" for s in stages)


def build_clip(arch: str, *, num_classes: int = 2, quick_gelu: bool = False) -> ClipImageModel:
    """open_clip ``arch``'s image tower (random weights) with a new ``num_classes`` head;
    ``quick_gelu``: QuickGELU activations (the weights of OpenAI's tags need them)."""
    open_clip = open_clip_module()
    if arch not in open_clip.list_models():
        raise VsentError(f"unknown CLIP architecture {arch!r} (open_clip knows: "
                         f"{', '.join(open_clip.list_models()[:8])}, ...)")
    clip = random_clip(arch, quick_gelu)
    visual = clip.visual
    embed_dim = int(open_clip.get_model_config(arch)["embed_dim"])
    pre, facts = clip_preprocess(visual)
    probes = _probe_layers(visual)
    info_base = dict(name=PREFIX + arch, family="clip", preprocess=pre, num_outputs=num_classes,
                     head="head", new_layers=("head",), feature_dim=embed_dim,
                     extra={**facts, "open_clip_arch": arch})
    model = ClipImageModel(visual, embed_dim, num_classes, ModelInfo(
        **info_base, probe_layers=(), cam_layer=""))
    # the key holds the tower's configuration: open_clip can register another under a name
    key = PREFIX + arch + json.dumps(open_clip.get_model_config(arch)["vision_cfg"],
                                     sort_keys=True, default=str)
    pools = probe_pools(model, probes, pre.crop, key=key)
    cams = [p for p in probes if pools.get(p) == "avg"]
    model.info = ModelInfo(**info_base, probe_layers=probes, probe_pool=pools,
                           cam_layer=cams[-1] if cams else "")
    return model


# --- weights ----------------------------------------------------------------------------------


def tags(arch: str) -> list[str]:
    """open_clip's pretrained tags of ``arch`` (``openai``, ``laion2b_s34b_b79k``, ...)."""
    return list(open_clip_module().list_pretrained_tags_by_model(arch))


def weights_location(arch: str, tag: str) -> str:
    """The URL or Hugging Face repository open_clip downloads ``arch``/``tag`` from."""
    cfg = open_clip_module().get_pretrained_cfg(arch, tag) or {}
    if cfg.get("hf_hub"):
        return f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')}"
    return cfg.get("url") or "nowhere (open_clip lists no file for it)"


def offline_message(arch: str, tag: str, exc: BaseException | None = None) -> str:
    """One line: what open_clip could not download, where it looks, and the --init PATH way."""
    cache = hf_cache_dir()
    why = f" ({type(exc).__name__})" if exc is not None else ""
    where = weights_location(arch, tag)
    hub = where.removeprefix("https://huggingface.co/")
    # open_clip keeps a URL's file in its own folder, not the Hugging Face cache
    fetch = (f"`hf download {hub}` where there is a network, then copy the Hugging Face cache "
             f"({cache}) here" if hub != where else f"download {where} into {url_cache_dir()}")
    # TAG=PATH: a file alone does not say which tag's input statistics it needs
    return (f"cannot download CLIP weights {arch}/{tag}{why} (no network?): pass --init "
            f"{tag}=PATH with PATH its open_clip state dict (.bin or .safetensors, from "
            f"{where}), or {fetch}")


def load_clip(arch: str, tag: str) -> nn.Module:
    """The full open_clip model ``arch`` with the weights of ``tag`` (open_clip downloads them
    if needed); :class:`WeightsError` with :func:`offline_message` when it cannot."""
    open_clip = open_clip_module()
    if tag not in tags(arch):
        raise WeightsError(f"clip/{arch}: unknown pretrained tag {tag!r} (open_clip has: "
                           f"{', '.join(tags(arch)) or 'none'})")
    try:
        # require_pretrained: a failed download must raise, not leave random weights behind
        with hub_download():
            return open_clip.create_model(arch, pretrained=tag, require_pretrained=True,
                                          force_quick_gelu=quick_gelu_of(arch, tag))
    except Exception as exc:  # hub, HTTP and OS errors differ with the download backend
        cached = cached_weights_file(arch, tag)
        if cached is not None:  # there, so reading it failed, not the download
            raise WeightsError(damaged_file_message(cached, exc, weights_location(arch, tag))) \
                from exc
        raise WeightsError(offline_message(arch, tag, exc)) from exc


def url_cache_dir() -> Path:
    """Where open_clip keeps the weights it downloads from a URL (not from the hub)."""
    return Path("~/.cache/clip").expanduser()


def cached_weights_file(arch: str, tag: str) -> Path | None:
    """The weights file of ``arch``/``tag`` open_clip already downloaded (the Hugging Face
    cache, or its own folder :func:`url_cache_dir` for a URL), or None."""
    cfg = open_clip_module().get_pretrained_cfg(arch, tag) or {}
    if cfg.get("hf_hub"):
        repo, name = os.path.split(cfg["hf_hub"])  # "owner/repo/" or "owner/repo/file.bin"
        found = hf_cached_file(repo, (*((name,) if name else ()), *HF_WEIGHTS_NAMES))
        if found is not None:
            return found
    if cfg.get("url"):
        path = url_cache_dir() / os.path.basename(cfg["url"])
        return path if path.is_file() else None
    return None


def pretrained_weights(arch: str, tag: str):
    """The :class:`vsent.models.weights.PretrainedWeights` record of ``arch`` with ``tag``."""
    from vsent.models.weights import PretrainedWeights

    cfg = open_clip_module().get_pretrained_cfg(arch, tag) or {}
    pre = tower_preprocess(arch, cfg)

    def loader(model: nn.Module) -> dict[str, Tensor]:
        state = load_clip(arch, tag).state_dict()
        return {k: v for k, v in state.items() if k.startswith("visual.")}

    return PretrainedWeights(loader=loader, preprocess=pre,
                             source=f"open_clip {arch} {tag} ({weights_location(arch, tag)})",
                             licence="not stated by open_clip", tag=tag,
                             interpolation=cfg.get("interpolation") or interpolation_of(arch))


def tower_preprocess(arch: str, cfg: dict[str, Any] | None = None) -> Preprocess:
    """:func:`clip_preprocess` of ``arch``'s tower from its configuration, no model built: the
    architecture's default, or with a tag's pretrained configuration ``cfg``."""
    open_clip = open_clip_module()
    tower = SimpleNamespace(image_size=open_clip.get_model_config(arch)["vision_cfg"].get(
        "image_size", 224))
    pre, _ = clip_preprocess(tower, {k: (cfg or {}).get(k)
                                     for k in ("mean", "std", "interpolation")})
    return pre


def describe_weights(arch: str, init: str) -> dict[str, Any]:
    """Card entry for ``--init init`` of ``clip/arch`` (no download, no model build)."""
    from vsent.models.registry import split_tagged_init

    if init in tags(arch):
        return {"source": f"open_clip pretrained weights {arch} {init}", "library": "open_clip",
                "tag": init, "licence": None, "location": weights_location(arch, init)}
    tag, path = split_tagged_init(init, tags(arch))
    if tag is not None:  # TAG=PATH
        return {"source": f"weights file of open_clip {arch} {tag}", "library": "open_clip",
                "tag": tag, "licence": None, "location": str(path)}
    return {"source": "weights file (open_clip key names)", "library": "open_clip",
            "location": init}


def interpolation_of(arch: str) -> str:
    """CLIP's resampling filter (open_clip uses bicubic for every tower it configures)."""
    cfg = open_clip_module().get_model_config(arch) or {}
    return (cfg.get("preprocess_cfg") or {}).get("interpolation", "bicubic")


# --- registry ---------------------------------------------------------------------------------


def list_names(pattern: str = "*") -> list[str]:
    """``clip/<arch>`` for the open_clip architectures matching ``pattern`` (only when the
    pattern names the family, e.g. ``clip/*``: the catalogue is long)."""
    from vsent.models.registry import matches

    if not pattern.lower().startswith(PREFIX):
        return []
    return [n for n in (PREFIX + a for a in open_clip_module().list_models())
            if matches(n, pattern)]


def resolve(name: str):
    """Registry entry of ``clip/<arch>`` (see :func:`vsent.models.registry.register_family`).

    It carries no ``imagenet`` weights: CLIP weights are chosen by tag (``--init openai``:
    ``entry.tagged`` returns :func:`pretrained_weights` of the tag; ``entry.tags`` lists them).
    """
    from vsent.models.registry import ModelEntry, split_tagged_init

    arch = name[len(PREFIX):]
    if arch not in open_clip_module().list_models():
        raise VsentError(f"unknown CLIP architecture {arch!r} (list them with "
                         f"`vsent models 'clip/*'`)")

    def builder(*, num_classes: int = 2, quick_gelu: bool = False) -> ClipImageModel:
        return build_clip(arch, num_classes=num_classes, quick_gelu=quick_gelu)

    builder.__name__ = builder.__qualname__ = name
    known = tuple(tags(arch))

    def tag_options(tag: str) -> dict[str, Any]:
        # OpenAI's weights in a GELU tower compute another function (open_clip only warns)
        return {"quick_gelu": True} if quick_gelu_of(arch, tag) else {}

    def tagged(init: str):
        # --init openai: the tag's record (downloaded when the model is built); --init
        # openai=PATH: its record too (PATH holds its weights); else a path
        tag = split_tagged_init(init, known)[0] or init
        return pretrained_weights(arch, tag) if tag in known else None

    return ModelEntry(name, builder, None, tagged=tagged, tags=known, tag_options=tag_options,
                      weight_options=("quick_gelu",))


def register() -> None:
    """Register the ``clip/`` family (idempotent)."""
    from vsent.models import registry

    if PREFIX not in getattr(registry, "_FAMILIES", {}):
        registry.register_family(PREFIX, resolve, list_names)
    if ZS_PREFIX not in getattr(registry, "_FAMILIES", {}):
        # zero-shot checkpoints rebuild through vsent.zeroshot (imported when one is loaded)
        registry.register_family(ZS_PREFIX, _resolve_zero_shot, lambda pattern: [],
                                 saved_only="a zero-shot model comes from --zero-shot --model "
                                            "{rest} (vsent.zeroshot.zero_shot_model)")


def _resolve_zero_shot(name: str):
    from vsent.zeroshot import resolve_checkpoint

    return resolve_checkpoint(name)


register()
