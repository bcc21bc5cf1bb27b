"""CLIP zero-shot sentiment: an image is scored by its similarity to positive and negative
prompts, with no training.

For each class the prompts are encoded by CLIP's text tower, L2-normalised, averaged and
normalised again (the prompt ensembling of Radford et al. 2021); an image's logits are
``logit_scale * cos(image embedding, class embedding)`` and its probabilities their softmax, in
the class order (negative, positive) of every vsent model.

:func:`zero_shot_model` returns a :class:`ZeroShotModel`, a vsent model (``info``,
``forward_features``, ``forward_head``), so :class:`vsent.predict.Predictor` scores files with it
(the same rows as a trained model) and :func:`vsent.export.export_module` exports it.

Prompts: :data:`DEFAULT_PROMPTS`, or the user's (``positive=``/``negative=`` lists, or a file read
by :func:`read_prompts`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError, WeightsError, check_many
from vsent.models.base import ModelInfo, SentimentModel
from vsent.models.clip_models import (
    PREFIX,
    ZS_PREFIX,
    build_clip,
    load_clip,
    open_clip_module,
    pooled_embedding,
    pretrained_weights,
    quick_gelu_of,
    random_clip,
    tags,
    tower_preprocess,
)
from vsent.models.weights import PretrainedWeights, read_state_dict

log = logging.getLogger("vsent")

#: The default prompt sets (class -> prompts). Short captions of the kind CLIP was trained on,
#: each stating the sentiment the image evokes; every prompt of a class counts equally.
DEFAULT_PROMPTS: Mapping[str, tuple[str, ...]] = {
    "positive": (
        "a photo that evokes positive emotions.",
        "a happy photo.",
        "a joyful, uplifting picture.",
        "a photo of something beautiful and pleasant.",
        "a cheerful image.",
    ),
    "negative": (
        "a photo that evokes negative emotions.",
        "a sad photo.",
        "a depressing, upsetting picture.",
        "a photo of something ugly and unpleasant.",
        "a gloomy image.",
    ),
}
CLASS_NAMES = ("negative", "positive")


class ZeroShotModel(SentimentModel):
    """CLIP image tower + a fixed head of class text embeddings.

    ``forward_features(x)`` -> (B, D) L2-normalised image embeddings; ``forward_head(f)`` ->
    ``logit_scale * f @ class_embeddings.T`` (B, 2), classes (negative, positive).
    """

    def __init__(self, visual: nn.Module, class_embeddings: Tensor, logit_scale: float,
                 info: ModelInfo, prompts: Mapping[str, Sequence[str]],
                 quick_gelu: bool = False) -> None:
        super().__init__()
        self.visual = visual
        self.register_buffer("class_embeddings", class_embeddings)  # (2, D), unit rows
        # a buffer, so a checkpoint of the model keeps it (load_checkpoint rebuilds the model)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        self.info = info
        self.prompts = {k: list(v) for k, v in prompts.items()}
        arch = info.name.removeprefix(PREFIX)
        self.spec = {"name": ZS_PREFIX + PREFIX + arch, "num_classes": 2,
                     "prompts": self.prompts}
        if quick_gelu:  # the tower's activation (clip_models.quick_gelu_of): rebuilt so
            self.spec["quick_gelu"] = True

    def forward_features(self, x: Tensor) -> Tensor:
        return F.normalize(pooled_embedding(self.visual, x).float(), dim=-1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.logit_scale * features @ self.class_embeddings.T


def read_prompts(path: str | PathLike[str]) -> dict[str, list[str]]:
    """User prompts from a file: JSON ``{"positive": [...], "negative": [...]}``, or text with
    one ``positive: <prompt>`` / ``negative: <prompt>`` per line (blank lines and ``#`` comments
    skipped). Both classes need at least one prompt."""
    from vsent.data.datasets import read_text

    path = Path(path)
    text = read_text(path, "prompts file")  # one line naming the file (and a bad byte's line)
    prompts: dict[str, list[str]] = {"positive": [], "negative": []}
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise VsentError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(doc, Mapping) or set(doc) - set(prompts):
            raise VsentError(f'{path}: expected {{"positive": [...], "negative": [...]}}')
        for key, values in doc.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise VsentError(f"{path}: {key!r} must be a list of strings")
            prompts[key] = [v.strip() for v in values if v.strip()]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, prompt = line.partition(":")
            if not sep or key.strip().lower() not in prompts or not prompt.strip():
                raise VsentError(f"{path}:{number}: expected 'positive: <prompt>' or "
                                 f"'negative: <prompt>', got {line[:60]!r}")
            prompts[key.strip().lower()].append(prompt.strip())
    return check_prompts(prompts, where=str(path))


def check_prompts(prompts: Mapping[str, Sequence[str]], where: str = "prompts") -> dict[str,
                                                                                        list[str]]:
    """Both classes present with at least one non-empty prompt; returns plain lists."""
    out = {k: [p for p in prompts.get(k, ()) if p.strip()] for k in ("positive", "negative")}
    empty = [k for k, v in out.items() if not v]
    if empty:
        raise VsentError(f"{where}: no {' and no '.join(empty)} prompt")
    return out


def zero_shot_model(
    arch: str,
    init: str | PathLike[str],
    *,
    positive: Sequence[str] | None = None,
    negative: Sequence[str] | None = None,
    prompts_file: str | PathLike[str] | None = None,
) -> ZeroShotModel:
    """The zero-shot model of CLIP ``arch`` (``"ViT-B-32"`` or ``"clip/ViT-B-32"``).

    Parameters
    ----------
    init : an open_clip pretrained tag (``"openai"``, downloaded by open_clip when online), a
        path to a full open_clip state dict (``.pt``/``.pth``/``.bin``/``.safetensors``: image
        and text towers), or ``"random"`` (for tests only: its scores mean nothing).
    positive, negative : prompts replacing the defaults of that class.
    prompts_file : a file for :func:`read_prompts` (the lists above override its classes).
    """
    check_many(positive, "zero_shot_model(positive=...)", "prompts")  # not one per letter
    check_many(negative, "zero_shot_model(negative=...)", "prompts")
    open_clip = open_clip_module()
    arch = arch[len(PREFIX):] if arch.startswith(PREFIX) else arch
    prompts = dict(DEFAULT_PROMPTS)
    if prompts_file is not None:
        prompts.update(read_prompts(prompts_file))
    if positive:
        prompts["positive"] = list(positive)
    if negative:
        prompts["negative"] = list(negative)
    prompts = check_prompts(prompts)
    source, record = _init_source(arch, init)
    quick_gelu = record is not None and quick_gelu_of(arch, record.tag)
    clip = _load_full(arch, source, quick_gelu)
    clip.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.no_grad():
        rows = []
        for name in CLASS_NAMES:
            emb = F.normalize(clip.encode_text(tokenizer(prompts[name])).float(), dim=-1)
            rows.append(F.normalize(emb.mean(dim=0), dim=-1))
        class_embeddings = torch.stack(rows)
        scale = float(clip.logit_scale.exp()) if hasattr(clip, "logit_scale") else 100.0
    facts: dict[str, object] = {"init": str(init)}
    if record is not None and record.interpolation:  # the tag's (MobileCLIP2: bilinear)
        facts["interpolation"] = record.interpolation
    info = _zero_shot_info(arch, int(class_embeddings.shape[1]), facts,
                           record.preprocess if record is not None else None)
    return ZeroShotModel(clip.visual, class_embeddings, scale, info, prompts,
                         quick_gelu).eval()


def _init_source(arch: str, init: str | PathLike[str]) -> tuple[str | PathLike[str],
                                                                  PretrainedWeights | None]:
    """What :func:`_load_full` reads for ``init`` and the record of the input the weights
    expect, as ``create_model(init=...)`` decides them: a tag's own (MobileCLIP: mean 0, std 1),
    also for ``TAG=PATH`` (PATH holds TAG's weights); None (the architecture's) for random
    weights or a plain file, refused when some tag expects other statistics (nothing says which
    apply)."""
    from vsent.models.registry import check_file_statistics, get_model_entry, split_tagged_init

    known = tags(arch)
    tag, source = split_tagged_init(init, known)
    if tag is None and isinstance(init, str) and init in known:
        tag = init
    if tag is not None:
        return source, pretrained_weights(arch, tag)
    if not (isinstance(init, str) and init == "random") and Path(init).is_file():
        check_file_statistics(get_model_entry(PREFIX + arch), init, tower_preprocess(arch))
    return init, None


def _zero_shot_info(arch: str, embed_dim: int, extra: Mapping[str, object],
                    preprocess: Preprocess | None = None) -> ModelInfo:
    """The zero-shot model's info: the tower's (probes, Grad-CAM layer), with ``preprocess``
    (the loaded weights' input statistics) in place of the architecture's when given."""
    proto = build_clip(arch, num_classes=2)  # for the tower's info (preprocess, probes)
    return ModelInfo(
        name=f"{PREFIX}{arch}", family="clip", preprocess=preprocess or proto.info.preprocess,
        num_outputs=2,
        head="", new_layers=(), probe_layers=proto.info.probe_layers,
        probe_pool=proto.info.probe_pool, cam_layer=proto.info.cam_layer,
        feature_dim=int(embed_dim), extra={**proto.info.extra, "zero_shot": True, **extra},
    )


def resolve_checkpoint(name: str):
    """Registry entry of ``zeroshot/clip/<arch>``: the empty zero-shot model (random tower,
    zero class embeddings) that :func:`vsent.models.checkpoint.load_checkpoint` fills with a
    saved one's weights, class embeddings and logit scale. Not a way to get a zero-shot model:
    use :func:`zero_shot_model`."""
    from vsent.models.registry import ModelEntry

    arch = name[len(ZS_PREFIX) + len(PREFIX):]
    if not name.startswith(ZS_PREFIX + PREFIX) or arch not in open_clip_module().list_models():
        raise VsentError(f"unknown zero-shot model {name!r} (expected zeroshot/clip/<arch>)")

    def builder(*, num_classes: int = 2, prompts: Mapping[str, Sequence[str]] | None = None,
                quick_gelu: bool = False) -> ZeroShotModel:
        if num_classes != 2:
            raise VsentError(f"{name}: a zero-shot model has 2 classes")
        visual = random_clip(arch, quick_gelu).visual
        dim = int(open_clip_module().get_model_config(arch)["embed_dim"])
        return ZeroShotModel(visual, torch.zeros(2, dim), 100.0,
                             _zero_shot_info(arch, dim, {}), prompts or DEFAULT_PROMPTS,
                             quick_gelu)

    builder.__name__ = builder.__qualname__ = name
    return ModelEntry(name, builder, None)


def _load_full(arch: str, init: str | PathLike[str], quick_gelu: bool = False) -> nn.Module:
    """The full open_clip model (image and text towers) with the weights ``init``;
    ``quick_gelu`` for a file of a tag's weights that need it (a tag loads with its own)."""
    if isinstance(init, str) and init == "random":
        log.warning("zero-shot CLIP %s from random weights (--init random): its scores mean "
                    "nothing; give an open_clip tag (e.g. --init openai) or a weights file",
                    arch)
        return random_clip(arch)
    if isinstance(init, str) and init in tags(arch):
        return load_clip(arch, init)
    if not Path(init).is_file():
        raise WeightsError(f"--init {init}: neither an open_clip tag of {arch} "
                           f"({', '.join(tags(arch)) or 'none'}) nor a weights file")
    clip = random_clip(arch, quick_gelu)
    state = read_state_dict(init)  # (.safetensors, .bin, .pt: open_clip's files)
    own = clip.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        bad = (missing + wrong)[:3]
        raise WeightsError(f"{init}: not an open_clip {arch} state dict ({len(missing)} missing, "
                           f"{len(wrong)} of another shape, e.g. {', '.join(bad)})")
    clip.load_state_dict({k: state[k] for k in own})
    return clip

