"""Affective regions (Sun et al. 2016): proposals scored by objectness and sentiment, fused.

Sun, Yang, Wang and Shen, "Discovering affective regions in deep convolutional neural networks
for visual sentiment prediction", ICME 2016. For each image:

1. N object proposals with EdgeBoxes (:mod:`vsent.analyses.proposals`).
2. Every proposal is cropped from the original image, warped to ``preprocess.resize``
   squared with the same filter as the image cache, and scored by the fine-tuned model on its
   centre crop, like the whole image. The whole image (the global view) is decoded and warped by
   :func:`vsent.data.images.load_resized`, the decode of training and ``vsent predict``, so its
   score is the one the model gives the image elsewhere. All N crops and the global view of one
   image go through :func:`vsent.inference.infer` in one pass (batches of ``batch_size``).
3. Sentiment score of a region with class probabilities s (M classes):
   ``senti = 1 + sum_i s_i log_M s_i`` (1 - normalised entropy: 0 for a uniform split, 1 for a
   certain prediction). The paper prints ``log`` without a base; ``senti_log="natural"``
   (``vsent regions --senti-log natural``) takes it as ln, which for M = 2 gives scores in
   [1 - ln 2, 1] = [0.31, 1], an affine map of ours that weighs sentiment less in AR.
   Objectness is min-max normalised over the image's proposals (best box 1, worst 0; 1 for
   every box when they are all equal, e.g. the whole-image fallback).
   Affective score ``AR = sqrt(obj^2 + alpha * senti^2)``; the top K regions are kept.
4. Late fusion: ``Y = Y_global + beta / K * sum_j Y_AR_j``, predicted class ``argmax Y``
   (``Y / (1 + beta)`` is reported as the fused probability: it sums to 1). When an image has
   fewer than K proposals, the mean is over those it has. Early fusion: penultimate features
   (``model.forward_features``) of the whole image concatenated with the mean feature of its
   top-K regions, then a linear classifier (standardised features, logistic regression at a
   fixed C = 1: the paper gives none, and unlike the probes of :mod:`vsent.analyses.layers` C
   is not searched) trained on the training fold.

Ablations rank the regions by objectness only, by sentiment only, or at random (a sanity
baseline). :func:`evaluate_regions` runs all of this on a cross-validation run directory with
each fold's model on that fold's test images (the CLI is ``vsent regions``).

Published reference: Sun et al.'s Table 1 (:data:`vsent.papers.SUN2016_TABLE1`, e.g. VGGNet +
affective regions, late fusion, best K = 11: 88.94 % on Twitter I five-agree); ``table1.md``
quotes their best-K row and ``vsent reproduce sun2016`` sets the whole table beside ours.
Figure 4 (accuracy against K) gives no values in the text: not available.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsent import figures, papers
from vsent.analyses.proposals import (
    BOXES,
    EdgeDetector,
    ProposalConfig,
    Proposals,
    cached_proposals,
    make_edge_detector,
    propose,
)
from vsent.config import RANKINGS, SENTI_LOGS, check_seed, config_from_dict
from vsent.data.images import ImageSource, load_resized, load_rgb, resize_rgb
from vsent.errors import VsentError
from vsent.files import NPZ_READ_ERRORS, atomic_open, file_sha256
from vsent.inference import infer, prefetch
from vsent.metrics import mean_std_text

__all__ = [
    "RANKINGS",
    "RegionConfig",
    "RegionScores",
    "SENTI_LOGS",
    "affective_score",
    "crop_regions",
    "evaluate_regions",
    "fused_proba",
    "fusion_curve",
    "late_fusion",
    "normalize_objectness",
    "predict_rows",
    "rank_regions",
    "score_images",
    "score_regions",
    "scored_with_current_models",
    "sentiment_score",
]

log = logging.getLogger("vsent")


# --------------------------------------------------------------------------------------------
# scores and fusion (pure numpy)


def sentiment_score(probs: np.ndarray, log: str = "classes") -> np.ndarray:
    """``1 + sum_i s_i log s_i`` over the last axis: 1 for certainty.

    Parameters
    ----------
    probs : (..., M) class probabilities, M >= 2 (rows sum to 1).
    log : "classes" (log base M: 0 for a uniform split) or "natural" (ln: 1 - ln M for a
        uniform split), see :data:`SENTI_LOGS`.

    Returns
    -------
    (...,) float64 in [0, 1] ("classes") or [1 - ln M, 1] ("natural").
    """
    if log not in SENTI_LOGS:
        raise ValueError(f"unknown log {log!r}; use one of {SENTI_LOGS}")
    p = np.clip(np.asarray(probs, np.float64), 0.0, 1.0)
    m = p.shape[-1]
    if m < 2:
        raise ValueError(f"sentiment_score needs at least 2 classes, got {m}")
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)  # 0 log 0 = 0
    if log == "natural":
        return np.clip(1.0 + plogp.sum(axis=-1), 1.0 - np.log(m), 1.0)
    return np.clip(1.0 + plogp.sum(axis=-1) / np.log(m), 0.0, 1.0)


def normalize_objectness(objectness: np.ndarray) -> np.ndarray:
    """Min-max normalisation over one image's proposals: best 1, worst 0.

    All-equal scores (one proposal, e.g. the whole-image fallback) all become 1.
    """
    o = np.asarray(objectness, np.float64)
    if o.size == 0:
        return o
    lo, hi = o.min(), o.max()
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.ones_like(o)
    return (o - lo) / (hi - lo)


def affective_score(obj_norm: np.ndarray, senti: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``AR = sqrt(obj^2 + alpha * senti^2)`` (element-wise)."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    obj_norm, senti = np.asarray(obj_norm, np.float64), np.asarray(senti, np.float64)
    return np.sqrt(obj_norm**2 + alpha * senti**2)


def rank_regions(
    objectness: np.ndarray,
    probs: np.ndarray,
    *,
    by: str = "ar",
    alpha: float = 1.0,
    rng: np.random.Generator | None = None,
    senti_log: str = "classes",
) -> np.ndarray:
    """Indices of one image's proposals, best first.

    Parameters
    ----------
    objectness : (n,) raw EdgeBoxes scores.
    probs : (n, M) class probabilities of the proposals.
    by : "ar" (affective score), "objectness", "sentiment" or "random".
    alpha : weight of the sentiment score in AR.
    rng : generator for "random" (default: seed 0).
    senti_log : the log of the sentiment score (:func:`sentiment_score`).

    Returns
    -------
    int64 (n,) permutation. Ties keep the proposal order (EdgeBoxes' best first).
    """
    n = len(objectness)
    if by == "random":
        return (rng or np.random.default_rng(0)).permutation(n).astype(np.int64)
    if by == "objectness":
        score = normalize_objectness(objectness)
    elif by == "sentiment":
        score = sentiment_score(probs, senti_log)
    elif by == "ar":
        score = affective_score(normalize_objectness(objectness),
                                sentiment_score(probs, senti_log), alpha)
    else:
        raise ValueError(f"unknown ranking {by!r}; use one of {RANKINGS}")
    return np.argsort(-score, kind="stable").astype(np.int64)


def late_fusion(p_global: np.ndarray, p_regions: np.ndarray, beta: float = 0.5) -> np.ndarray:
    """``Y = p_global + beta / K * sum_j p_regions[j]`` (K = number of regions given).

    Parameters
    ----------
    p_global : (M,) probabilities of the whole image.
    p_regions : (K, M) probabilities of the selected regions (K = 0: the global view stands
        in for the mean region, ``(1 + beta) * p_global``).

    Returns
    -------
    (M,) float64 fused scores (they sum to 1 + beta; divide by that for probabilities).
    """
    p_global = np.asarray(p_global, np.float64)
    p_regions = np.asarray(p_regions, np.float64).reshape(-1, p_global.shape[-1])
    if len(p_regions) == 0:
        return (1.0 + beta) * p_global
    return p_global + beta / len(p_regions) * p_regions.sum(axis=0)


def fusion_curve(
    p_global: np.ndarray, ranked_probs: np.ndarray, beta: float, k_max: int
) -> np.ndarray:
    """:func:`late_fusion` with the top K ranked regions for every K = 1..k_max.

    Returns
    -------
    (k_max, M) float64; row K-1 fuses the first min(K, n) rows of ``ranked_probs`` (with no
    rows, ``(1 + beta) * p_global`` as :func:`late_fusion`).
    """
    p_global = np.asarray(p_global, np.float64)
    r = np.asarray(ranked_probs, np.float64)
    if len(r) == 0:
        return np.repeat((1.0 + beta) * p_global[None], k_max, axis=0)
    ks = np.minimum(np.arange(1, k_max + 1), len(r))
    cum = np.cumsum(r, axis=0)[ks - 1]  # (k_max, M)
    return p_global[None] + beta * cum / ks[:, None]


# --------------------------------------------------------------------------------------------
# the network side


def score_images(
    model: nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    features: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax scores and penultimate features of images warped to ``preprocess.resize``.

    :func:`vsent.inference.infer` on the centre crop, as :func:`vsent.evaluate.predict_proba`.

    Parameters
    ----------
    images : uint8 (N, S, S, 3), RGB, S = ``model.info.preprocess.resize``.

    Returns
    -------
    probs : float32 (N, num_outputs)
    feats : float32 (N, D) ``model.forward_features`` (D = ``model.info.feature_dim``), or None
        if ``features=False``.
    """
    r = infer(model, images, batch_size=batch_size, device=device, features=features)
    return r.probs, r.features


def crop_regions(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box of ``image`` warped to ``size`` x ``size`` (as the image cache warps images).

    Parameters
    ----------
    image : uint8 (H, W, 3) RGB.
    boxes : int (n, 4) ``x0, y0, x1, y1``, end-exclusive, inside the image.

    Returns
    -------
    uint8 (n, size, size, 3).
    """
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, int)):
        out[i] = resize_rgb(_pil(image[y0:y1, x0:x1]), size)
    return out


def _pil(a: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(a))


@dataclass
class RegionScores:
    """One image's proposals with the model's scores.

    Attributes
    ----------
    boxes : int32 (n, 4) ``x0, y0, x1, y1`` in original pixels; objectness : float32 (n,) raw.
    probs : float32 (n, M) region probabilities; global_probs : float32 (M,) whole image.
    features : float32 (n, D) region features and global_features (D,), or None.
    fallback : the whole image is the only region (no proposal found).
    seconds : dict with ``proposals``, ``crop`` and ``score`` wall-clock seconds.
    """

    boxes: np.ndarray
    objectness: np.ndarray
    probs: np.ndarray
    global_probs: np.ndarray
    features: np.ndarray | None = None
    global_features: np.ndarray | None = None
    fallback: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def order(self, by: str = "ar", alpha: float = 1.0, rng=None,
              senti_log: str = "classes") -> np.ndarray:
        return rank_regions(self.objectness, self.probs, by=by, alpha=alpha, rng=rng,
                            senti_log=senti_log)


def score_regions(
    model: nn.Module,
    image: np.ndarray,
    proposals: Proposals,
    *,
    global_view: np.ndarray | None = None,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    features: bool = False,
) -> RegionScores:
    """Score the whole image and every proposal of it with ``model`` in one pass.

    Parameters
    ----------
    image : uint8 (H, W, 3) RGB original image (the one ``proposals`` were made on).
    global_view : uint8 (S, S, 3) the whole image as :func:`vsent.data.images.load_resized`
        makes it from the image's file (S = ``preprocess.resize``; for a JPEG much larger than S
        it decodes at a reduced DCT scale, so it can differ slightly from warping ``image``).
        Default: ``load_resized(image, S)``.
    """
    size = model.info.preprocess.resize
    t0 = time.perf_counter()
    if global_view is None:
        global_view = load_resized(image, size)
    crops = np.concatenate([global_view[None], crop_regions(image, proposals.boxes, size)])
    t1 = time.perf_counter()
    probs, feats = score_images(model, crops, batch_size=batch_size, device=device,
                                features=features)
    t2 = time.perf_counter()
    return RegionScores(
        boxes=proposals.boxes, objectness=proposals.objectness, probs=probs[1:],
        global_probs=probs[0], features=None if feats is None else feats[1:],
        global_features=None if feats is None else feats[0], fallback=proposals.fallback,
        seconds={"proposals": proposals.seconds, "crop": t1 - t0, "score": t2 - t1},
    )


def fused_proba(
    model: nn.Module,
    image: ImageSource,
    *,
    k: int = 11,
    alpha: float = 1.0,
    beta: float = 0.5,
    n_proposals: int | None = None,
    senti_log: str = "classes",
    detector: EdgeDetector | None = None,
    proposal_config: ProposalConfig | None = None,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Late-fusion sentiment of one image (what ``vsent predict --regions`` reports).

    Parameters
    ----------
    model : a vsent model; image : anything :func:`vsent.data.images.load_rgb` accepts.
    k, alpha, beta, n_proposals : see the module docstring (``n_proposals`` default 100, or
        ``proposal_config``'s: giving both with different values is refused).
    senti_log : the log of the sentiment score in AR (:func:`sentiment_score`), as
        ``vsent regions --senti-log``.

    Returns
    -------
    dict with ``proba`` (M,) fused probabilities ``Y / (1 + beta)``, ``global_proba`` (M,),
    ``boxes`` (k', 4) and ``region_proba`` (k', M) of the chosen regions (best first),
    ``ar`` (k',) their affective scores, ``fallback`` and ``seconds``.
    """
    # the checks of predict --regions and serve (beta -1 gave inf, a K above the
    # proposals was capped without a word)
    config = check_predict_options(k=k, alpha=alpha, beta=beta, n_proposals=n_proposals,
                                   senti_log=senti_log, proposals=proposal_config)
    rgb, glob = _decode(image, model.info.preprocess.resize)
    return _fused(model, rgb, glob, k=k, alpha=alpha, beta=beta, senti_log=senti_log,
                  detector=detector, config=config, batch_size=batch_size, device=device)


def _decode(image: ImageSource, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The original RGB pixels (H, W, 3) for proposals and crops, and the global view
    (size, size, 3) through :func:`load_resized`, the decode of the image cache and predict."""
    return np.asarray(load_rgb(image)), load_resized(image, size)


def _fused(model: nn.Module, rgb: np.ndarray, glob: np.ndarray, *, k: int, alpha: float,
           beta: float, senti_log: str, detector: EdgeDetector | None, config: ProposalConfig,
           batch_size: int, device: torch.device | str) -> dict[str, Any]:
    """:func:`fused_proba` on a decoded image (``rgb``, ``glob``: see :func:`_decode`)."""
    props = propose(rgb, config, detector)
    s = score_regions(model, rgb, props, global_view=glob, batch_size=batch_size, device=device)
    order = s.order("ar", alpha, senti_log=senti_log)[:k]
    ar = affective_score(normalize_objectness(s.objectness),
                         sentiment_score(s.probs, senti_log), alpha)
    fused = late_fusion(s.global_probs, s.probs[order], beta) / (1.0 + beta)
    return {"proba": fused, "global_proba": s.global_probs.astype(np.float64),
            "boxes": s.boxes[order], "region_proba": s.probs[order], "ar": ar[order],
            "fallback": s.fallback, "seconds": s.seconds}


def predict_rows(
    model: nn.Module,
    paths: Sequence[str | Path],
    *,
    class_names: Sequence[str] = ("negative", "positive"),
    k: int = 11,
    alpha: float = 1.0,
    beta: float = 0.5,
    n_proposals: int = 100,
    senti_log: str = "classes",
    device: torch.device | str = "cpu",
) -> Iterator[dict[str, Any]]:
    """``vsent predict --regions``: rows ``path, prob_positive, label, error`` as
    :meth:`vsent.predict.Predictor.score` writes them, with the late-fusion probability.

    An image that cannot be read yields a row with ``error`` set; the others are scored.
    Images are decoded ahead of the model (:func:`vsent.inference.prefetch`); ``paths`` may be
    any iterable. Bad settings raise VsentError here, before any image is read.
    """
    config = check_predict_options(k=k, alpha=alpha, beta=beta, n_proposals=n_proposals,
                                   senti_log=senti_log)
    return _predict_rows(model, paths, class_names, k, alpha, beta, senti_log, config, device)


def check_predict_options(*, k: int, alpha: float, beta: float, n_proposals: int | None = None,
                          senti_log: str = "classes",
                          proposals: ProposalConfig | None = None) -> ProposalConfig:
    """The proposal settings of :func:`predict_rows` and :func:`fused_proba` (``proposals``,
    else the defaults with ``n_proposals``), or VsentError naming a bad option (the checks of
    :class:`RegionConfig`, with no K sweep)."""
    if proposals is not None and n_proposals not in (None, proposals.n_proposals):
        raise VsentError(f"n_proposals {n_proposals} differs from proposal_config's "
                         f"{proposals.n_proposals}: give one of them")
    proposals = proposals or ProposalConfig(
        **({} if n_proposals is None else {"n_proposals": n_proposals}))
    return RegionConfig(k=k, k_max=k, alpha=alpha, beta=beta, senti_log=senti_log,
                        proposals=proposals).proposals


def _check_senti_log(senti_log: str) -> None:
    """VsentError unless ``senti_log`` is one of :data:`SENTI_LOGS` (as ``--senti-log``)."""
    if senti_log not in SENTI_LOGS:
        raise VsentError(f"--senti-log {senti_log!r}: choose one of {', '.join(SENTI_LOGS)}")


def _predict_rows(model: nn.Module, paths: Sequence[str | Path], class_names: Sequence[str],
                  k: int, alpha: float, beta: float, senti_log: str, config: ProposalConfig,
                  device: torch.device | str) -> Iterator[dict[str, Any]]:
    from vsent.predict import error_row, scores_row

    detector = make_edge_detector()
    size = model.info.preprocess.resize
    for path, decoded, error in prefetch(lambda p: _decode(p, size), paths, workers=1, ahead=2):
        if error is not None:
            yield error_row(str(path), str(error))
            continue
        r = _fused(model, *decoded, k=k, alpha=alpha, beta=beta, senti_log=senti_log,
                   detector=detector, config=config, batch_size=128, device=device)
        # the row of every engine: NaN/inf scores are an error row, not "NaN, negative"
        yield scores_row(str(path), r["proba"], class_names)


# --------------------------------------------------------------------------------------------
# cross-validation evaluation (vsent regions)


@dataclass(frozen=True)
class RegionConfig:
    """Settings of :func:`evaluate_regions` (saved as the run's config.json).

    Parameters
    ----------
    k : regions kept for the fused prediction (the paper's K = 11).
    k_max : the K sweep runs K = 1..k_max (default 20; the paper's Figure 4 finds its best K
        at 10 to 13).
    alpha : weight of the sentiment score in AR; beta : weight of the regions in late fusion.
    senti_log : the log of the sentiment score, "classes" (base M) or "natural"
        (:func:`sentiment_score`); recorded in config.json only when not the default, so
        earlier runs stay resumable.
    proposals : EdgeBoxes settings (``n_proposals`` is the paper's N).
    edge_model : SED model file, or None for vsent's gradient edge detector.
    early_fusion : also score the training images' regions and fit the early-fusion classifier
        (about 5x the cost of the test-set evaluation).
    overlays : draw the chosen regions on this many test images (the first ones of fold 1, ...).
    batch_size, device, seed : network batch size, torch device, seed of the random ranking and
        the classifier.
    folds : evaluate only these folds (1-based; default all): a quick look, not the paper's
        protocol.
    """

    k: int = 11
    k_max: int = 20
    alpha: float = 1.0
    beta: float = 0.5
    senti_log: str = "classes"
    proposals: ProposalConfig = ProposalConfig()
    edge_model: str | None = None
    early_fusion: bool = True
    overlays: int = 8
    batch_size: int = 128
    device: str = "auto"
    seed: int = 0
    folds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> RegionConfig:
        """Raise :class:`VsentError` naming the first bad option (run when built); ``self``."""
        check_seed(self.seed)
        for name in ("k", "k_max", "overlays", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise VsentError(f"--{name.replace('_', '-')} must be an integer, got {v!r}")
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.number)) or isinstance(v, bool) \
                    or not np.isfinite(v):
                raise VsentError(f"--{name} must be a number, got {v!r}")
        if self.k < 1:
            raise VsentError(f"--k must be >= 1, got {self.k}")
        if self.k_max < self.k:
            raise VsentError(f"--k-max ({self.k_max}) must be >= --k ({self.k})")
        if self.alpha < 0:
            raise VsentError(f"--alpha must be >= 0, got {self.alpha}")
        if self.beta < 0:
            raise VsentError(f"--beta must be >= 0, got {self.beta}")
        _check_senti_log(self.senti_log)
        if self.overlays < 0:
            raise VsentError(f"--overlays must be >= 0, got {self.overlays}")
        if self.batch_size < 1:
            raise VsentError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not isinstance(self.proposals, ProposalConfig):
            raise TypeError(f"proposals must be a ProposalConfig, got "
                            f"{type(self.proposals).__name__}")
        self.proposals.validate()
        if self.k > self.proposals.n_proposals:  # (it was capped silently)
            default = self.k == type(self).__dataclass_fields__["k"].default
            raise VsentError(f"--k ({self.k}{', its default' if default else ''}) must be <= "
                             f"--n-proposals "
                             f"({self.proposals.n_proposals}): the K regions are chosen among "
                             "an image's proposals")
        if self.edge_model is not None and not isinstance(self.edge_model, str):
            raise VsentError(f"--edge-model must be a file name, got {self.edge_model!r}")
        if not isinstance(self.early_fusion, bool):
            raise VsentError(f"early_fusion must be true or false, got {self.early_fusion!r}")
        if not isinstance(self.device, str):
            raise VsentError(f"--device must be a device name, got {self.device!r}")
        if self.folds is not None:
            if isinstance(self.folds, str) or not self.folds or not all(
                    isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1
                    for k in self.folds):
                raise VsentError(f"--folds must be fold numbers >= 1, got {self.folds!r}")
            object.__setattr__(self, "folds", tuple(int(k) for k in self.folds))
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegionConfig:
        """Rebuild from a regions run's ``config.json`` (the facts :func:`evaluate_regions`
        records beside the settings, :data:`_RUN_FACTS`, are skipped); unknown keys (also in
        ``proposals``) are refused."""
        d = {k: v for k, v in d.items() if k not in _RUN_FACTS}
        return config_from_dict(cls, d, "regions", train_fields=(),
                                records={"proposals": ProposalConfig})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["senti_log"] == "classes":  # runs from before the option stay resumable
            del d["senti_log"]
        return d


#: Keys of a regions run's config.json that are facts about the run, not RegionConfig fields.
_RUN_FACTS = ("run", "subset", "model", "edge_detector", "crop_policy")

#: Table 1 rows: key -> description.
METHODS = {
    "global": "whole image only (the fine-tuned model, centre crop)",
    "random": "late fusion, K random proposals (sanity baseline)",
    "objectness": "late fusion, top-K by objectness only",
    "sentiment": "late fusion, top-K by sentiment score only",
    "ar": "late fusion, top-K by affective score AR (Sun et al.)",
    "global_linear": "linear classifier on whole-image features (control for early fusion)",
    "early_fusion": "linear classifier on [whole-image, mean top-K AR region] features",
}


def _score_set(model, paths, cfg: RegionConfig, detector, device, *, keep_regions: bool,
               progress: bool, desc: str) -> dict[str, np.ndarray]:
    """Score every image of ``paths``: ragged region arrays + top-K AR feature means."""
    from vsent.progress import progress_bar

    glob_p, glob_f, ef, offsets = [], [], [], [0]
    boxes, obj, probs, fallback, secs = [], [], [], [], []
    size = model.info.preprocess.resize
    # one decoding thread, one image ahead: the network already uses the cores
    decoded = prefetch(lambda p: _decode(p, size), paths, workers=1, ahead=1)
    for path, images, error in progress_bar(decoded, total=len(paths), desc=desc,
                                            enabled=progress, unit="img"):
        if error is not None:
            raise error  # the crossval run decoded these images: a failure now is a real error
        rgb, glob = images
        props = cached_proposals(path, rgb, cfg.proposals, detector)
        s = score_regions(model, rgb, props, global_view=glob, batch_size=cfg.batch_size,
                          device=device, features=cfg.early_fusion)
        glob_p.append(s.global_probs)
        if cfg.early_fusion:
            top = s.order("ar", cfg.alpha, senti_log=cfg.senti_log)[: cfg.k]
            glob_f.append(s.global_features)
            ef.append(s.features[top].mean(axis=0))
        if keep_regions:
            boxes.append(s.boxes)
            obj.append(s.objectness)
            probs.append(s.probs)
            offsets.append(offsets[-1] + len(s.boxes))
            fallback.append(s.fallback)
            secs.append([s.seconds["proposals"], s.seconds["crop"], s.seconds["score"]])
    out = {"global_probs": np.stack(glob_p).astype(np.float32)}
    if cfg.early_fusion:
        out["global_features"] = np.stack(glob_f).astype(np.float32)
        out["region_features"] = np.stack(ef).astype(np.float32)
    if keep_regions:
        out.update(boxes=np.concatenate(boxes).astype(np.int32),
                   objectness=np.concatenate(obj).astype(np.float32),
                   probs=np.concatenate(probs).astype(np.float32),
                   offsets=np.asarray(offsets, np.int64), fallback=np.asarray(fallback),
                   seconds=np.asarray(secs, np.float64))
    return out


def _fold_regions(run, fold, cfg: RegionConfig, detector, device, out: Path,
                  progress: bool) -> dict[str, np.ndarray]:
    """Score fold ``fold``'s test (and, for early fusion, training) images; cached in npz."""
    file = out / f"fold{fold.index}" / "regions.npz"
    ckpt = run.checkpoint(fold.index)
    sha = file_sha256(ckpt)
    if file.exists():
        try:
            with np.load(file) as z:
                res = dict(z)
        except NPZ_READ_ERRORS as e:  # damaged outside
            log.warning("fold %d: %s is unreadable (%s): scoring fold %d again", fold.index,
                        file, e, fold.index)
            res = {"checkpoint_sha256": ""}
        kept = str(res.pop("checkpoint_sha256", sha))  # absent: scored by an older vsent
        origin = str(res.pop("boxes_origin", ""))
        if kept == sha and origin == BOXES:
            log.info("fold %d: regions already scored (%s)", fold.index, file)
            return res
        if kept == sha:  # one table must not mix the two readings of EdgeBoxes' boxes
            log.warning("fold %d: %s was scored with EdgeBoxes' boxes one pixel off (a vsent "
                        "before their 1-based x, y were read as such): scoring fold %d again",
                        fold.index, file, fold.index)
        elif kept:
            log.warning("fold %d: %s is not the model %s was scored with (the run was "
                        "trained again?): scoring fold %d again", fold.index, ckpt, file,
                        fold.index)
    model, _ = run.load_model(fold.index, map_location=device)  # refuses another fold's
    ds = run.dataset
    test = np.sort(fold.test)
    res = {"test_index": test, "test_labels": ds.labels[test]}
    t = _score_set(model, [ds.paths[i] for i in test], cfg, detector, device, keep_regions=True,
                   progress=progress, desc=f"fold {fold.index} test regions")
    res["test_global_probs"] = t.pop("global_probs")
    if cfg.early_fusion:
        res["test_global_features"] = t.pop("global_features")
        res["test_region_features"] = t.pop("region_features")
    res.update(t)  # boxes, objectness, probs, offsets, fallback, seconds (test images)
    if cfg.early_fusion:  # (features of the images the fold model was fine-tuned on: said
        train = np.sort(fold.train)  # in the README; held out, they would need nested runs)
        tr = _score_set(model, [ds.paths[i] for i in train], cfg, detector, device,
                        keep_regions=False, progress=progress,
                        desc=f"fold {fold.index} train regions")
        res.update(train_index=train, train_labels=ds.labels[train],
                   train_global_features=tr["global_features"],
                   train_region_features=tr["region_features"])
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(file, "wb") as f:  # written last: marks the fold done
        np.savez(f, **res, checkpoint_sha256=np.asarray(sha), boxes_origin=np.asarray(BOXES))
    return res


def _linear_classifier(x_train, y_train, x_test, seed: int) -> np.ndarray:
    """Early fusion's classifier (and its whole-image control): standardised features, a
    logistic regression at C = 1, fixed in advance (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000,
                                                             random_state=seed))
    clf.fit(x_train, y_train)
    return clf.predict(x_test)


def _fold_predictions(res: dict[str, np.ndarray], cfg: RegionConfig, fold_index: int
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Predictions of every method at K, the K sweep's predictions, and per-image details."""
    gp = res["test_global_probs"]
    offsets = res["offsets"]
    n = len(gp)
    rng = np.random.default_rng([cfg.seed, fold_index])
    curves = {by: np.empty((n, cfg.k_max, gp.shape[1])) for by in RANKINGS}
    orders = {}
    for i in range(n):
        sl = slice(offsets[i], offsets[i + 1])
        obj, probs = res["objectness"][sl], res["probs"][sl]
        for by in RANKINGS:
            order = rank_regions(obj, probs, by=by, alpha=cfg.alpha, rng=rng,
                                 senti_log=cfg.senti_log)
            curves[by][i] = fusion_curve(gp[i], probs[order[: cfg.k_max]], cfg.beta, cfg.k_max)
            if by == "ar":
                orders[i] = order
    sweep = {by: c.argmax(axis=2) for by, c in curves.items()}  # (n, k_max)
    at_k = {"global": gp.argmax(axis=1), **{by: s[:, cfg.k - 1] for by, s in sweep.items()}}
    if cfg.early_fusion:
        ytr = res["train_labels"]
        gtr, rtr = res["train_global_features"], res["train_region_features"]
        gte, rte = res["test_global_features"], res["test_region_features"]
        at_k["global_linear"] = _linear_classifier(gtr, ytr, gte, cfg.seed)
        at_k["early_fusion"] = _linear_classifier(np.hstack([gtr, rtr]), ytr,
                                                  np.hstack([gte, rte]), cfg.seed)
    fused = curves["ar"][:, cfg.k - 1] / (1.0 + cfg.beta)
    return at_k, sweep, {"orders": orders, "fused": fused}


def evaluate_regions(
    run_dir: str | Path, out: str | Path, cfg: RegionConfig = RegionConfig(), *,
    resume: bool = False, overwrite: bool = False, progress: bool = True,
) -> dict[str, Any]:
    """Affective-region evaluation of a cross-validation run (Sun et al. 2016, Table 1, Fig. 4).

    Each fold's fine-tuned model scores the proposals of that fold's test images. Writes into
    ``out``: ``table1.{json,csv,md}`` (accuracy etc. mean +- std over folds for every method at
    K), ``k_sweep.{json,csv,png}`` (accuracy vs K = 1..k_max), ``predictions.csv`` (one row per
    test image), ``cost.json`` (seconds per image), ``overlays/*.png``, ``fold<k>/regions.npz``
    (all proposals and scores, reused on ``resume``), ``config.json``, ``run.log``.

    Returns
    -------
    The table as a dict: method -> summary of :func:`vsent.metrics.summarize_folds`.
    """
    from vsent.inference import resolve_device
    from vsent.metrics import binary_metrics, summarize_folds
    from vsent.runs import Timer, open_run, open_run_dir, record_run_read, run_moved_since

    out = Path(out)
    run = open_run(run_dir)
    detector = make_edge_detector(cfg.edge_model)
    device = resolve_device(cfg.device)
    config = {"command": "regions", "run": str(Path(run_dir).resolve()),
              "subset": run.dataset.subset, "model": run.config.model,
              "edge_detector": detector.name, **cfg.to_dict(),
              "crop_policy": "box cropped from the original image, warped to "
                             "preprocess.resize, centre crop (as the whole image); whole "
                             "image through load_resized"}
    folds = _selected_folds(run, cfg)  # before --out is opened: a wrong --folds leaves it be
    for fold in folds:  # every fold's model now, not after the first folds' work
        run.checkpoint(fold.index)
    timer = Timer()
    # vsent.runs.open_run_dir: a run there is continued only with --resume and the same
    # scoring settings (the per-fold regions.npz are reused); --overwrite starts again
    # a regions run inside its crossval run continues where the two were moved together
    moved = None if overwrite else run_moved_since(out, run.path)
    rd = open_run_dir(out, config, resume=resume, overwrite=overwrite, done=None,
                      compare=[k for k in _SCORING_KEYS if not (moved and k == "run")])
    with rd:
        record_run_read(rd, run, moved)
        log.info("regions: %s (%s, %s), %s, edge detector %s, N=%d K=%d",
                 run.path, run.config.model, run.dataset.title,
                 f"{len(run.folds)} folds" if len(folds) == len(run.folds)
                 else f"folds {[f.index for f in folds]} of {len(run.folds)}",
                 detector.name, cfg.proposals.n_proposals, cfg.k)
        per_fold: dict[str, list[dict]] = {m: [] for m in METHODS}
        sweep_acc: dict[str, list[list[float]]] = {by: [] for by in RANKINGS}
        sweep_one: dict[str, list[list[bool]]] = {by: [] for by in RANKINGS}  # one class at K
        rows, all_res = [], []
        for fold in folds:
            res = _fold_regions(run, fold, cfg, detector, device, out, progress)
            at_k, sweep, detail = _fold_predictions(res, cfg, fold.index)
            y = res["test_labels"]
            for method, pred in at_k.items():
                per_fold[method].append({"fold": fold.index, **binary_metrics(y, pred)})
            for by, s in sweep.items():
                sweep_acc[by].append([float((s[:, k] == y).mean()) for k in range(cfg.k_max)])
                # the fold's fusion answered a single class at K (learnt the prior only)
                sweep_one[by].append([bool((s[:, k] == s[0, k]).all()) for k in range(cfg.k_max)])
            rows.extend(_prediction_rows(run, res, at_k, detail, cfg, fold.index))
            all_res.append((fold.index, res, detail))
            log.info("fold %d: global %.3f, AR late fusion %.3f%s", fold.index,
                     per_fold["global"][-1]["accuracy"], per_fold["ar"][-1]["accuracy"],
                     f", early fusion {per_fold['early_fusion'][-1]['accuracy']:.3f}"
                     if cfg.early_fusion else "")
        table = {m: summarize_folds(v) for m, v in per_fold.items() if v}
        _write_table(rd, table, cfg, run)
        _write_sweep(rd, sweep_acc, sweep_one, table["global"], cfg, run)
        rd.write_csv("predictions.csv", rows, list(rows[0]))
        cost = _cost(all_res, cfg)
        cost["total_seconds"] = timer.elapsed
        if cost["fallback_images"] > cost["images"] / 10:  # (a flat image or two is normal)
            log.warning("%d of %d test images had no proposal (none of --min-box-area %d px or "
                        "more in the image, downscaled to at most %d px): their only region is the "
                        "whole image, so AR equals global there", cost["fallback_images"],
                        cost["images"], cfg.proposals.min_box_area, cfg.proposals.max_side)
        rd.write_json("cost.json", cost)
        # a resume may change what only selects or presents (beta, seed, K sweep, folds): the
        # tables and overlays are this session's, and so is the config beside them
        for old in (rd / "overlays").glob("*.png"):
            old.unlink()
        if cfg.overlays:
            _write_overlays(rd, run, all_res, cfg)
        rd.write_json("config.json", config)
        log.info("regions: global %.3f, AR late fusion (K=%d) %s  [%s]",
                 table["global"]["accuracy"]["mean"], cfg.k,
                 mean_std_text(table["ar"]["accuracy"], len(table["ar"]["folds"])), rd.path)
        return table


def scored_with_current_models(run_dir: str | Path, out: str | Path) -> bool:
    """True when ``out`` holds a finished regions run (``cost.json``) whose every scored fold
    was scored with the model that fold's directory in ``run_dir`` holds now (a reproduction
    reuses such a sub-run; one of a run trained again is scored again).

    A fold whose model is gone (``results/`` keeps the small files of runs, no models) has no
    newer model to score again with, and nothing to score with: its scores stand, as do
    those of a run kept without its ``regions.npz`` files and models alike.
    """
    from vsent.runs import FOLD_MODEL, fold_dir

    out = Path(out)
    if not (out / "cost.json").exists():
        return False
    try:  # the table a report reads, deleted or cut: the run (resumed) writes it again
        if not isinstance(json.loads((out / "table1.json").read_text()).get("results"), dict):
            return False
    except (OSError, ValueError, AttributeError):
        return False
    files = sorted(out.glob("fold*/regions.npz"))
    if not files:
        return not any(Path(run_dir).glob(f"fold*/{FOLD_MODEL}"))
    for file in files:
        ckpt = fold_dir(run_dir, int(file.parent.name.removeprefix("fold"))) / FOLD_MODEL
        try:
            with np.load(file) as z:
                kept = str(z["checkpoint_sha256"])
                origin = str(z["boxes_origin"]) if "boxes_origin" in z.files else ""
        except NPZ_READ_ERRORS:
            return False
        if origin != BOXES or (ckpt.is_file() and kept != file_sha256(ckpt)):
            return False
    return True


def _selected_folds(run, cfg: RegionConfig) -> list:
    if cfg.folds is None:
        return run.folds
    known = {f.index for f in run.folds}
    unknown = sorted(set(cfg.folds) - known)
    if unknown:
        raise VsentError(f"--folds {unknown}: the run has folds {sorted(known)}")
    return [f for f in run.folds if f.index in set(cfg.folds)]


#: Config keys a resumed regions run must share with the stored one (the others select work
#: or only change the outputs' presentation).
_SCORING_KEYS = ("run", "edge_detector", "proposals", "alpha", "senti_log", "k",
                 "early_fusion", "crop_policy")


def _prediction_rows(run, res, at_k, detail, cfg, fold_index) -> list[dict]:
    rows = []
    for i, idx in enumerate(res["test_index"]):
        sl = slice(res["offsets"][i], res["offsets"][i + 1])
        top = detail["orders"][i][: cfg.k]
        rows.append({
            "name": run.dataset.names[idx], "fold": fold_index, "label": int(res["test_labels"][i]),
            "prob_positive_global": round(float(res["test_global_probs"][i][1]), 6),
            "prob_positive_fused": round(float(detail["fused"][i][1]), 6),
            **{f"pred_{m}": int(p[i]) for m, p in at_k.items()},
            "n_proposals": int(sl.stop - sl.start), "fallback": bool(res["fallback"][i]),
            "top_boxes": json.dumps(res["boxes"][sl][top].tolist()),
        })
    return rows


def _fmt(s: dict, n_folds: int) -> str:
    return mean_std_text(s, n_folds, digits=2, scale=100)


def _write_table(rd, table: dict, cfg: RegionConfig, run) -> None:
    rd.write_json("table1.json", {"k": cfg.k, "alpha": cfg.alpha, "beta": cfg.beta,
                                  "senti_log": cfg.senti_log, "methods": METHODS,
                                  "results": table})
    metrics = ("accuracy", "precision", "recall", "f1")
    csv_rows = [{"method": m, **{f"{k}_{s}": table[m][k][s] for k in metrics
                                 for s in ("mean", "std")}} for m in table]
    rd.write_csv("table1.csv", csv_rows, list(csv_rows[0]))
    log_name = "log_M" if cfg.senti_log == "classes" else "ln"
    lines = [
        f"# Affective regions on {run.dataset.title} ({run.config.model}, "
        f"{len(table['global']['folds'])} of {len(run.folds)} folds)", "",
        f"N = {cfg.proposals.n_proposals} proposals, K = {cfg.k}, alpha = {cfg.alpha}, "
        f"beta = {cfg.beta}, sentiment score 1 + sum s {log_name} s. Percent, mean +- std over "
        f"folds.", "",
        "| method | accuracy | precision | recall | F1 |", "|---|---|---|---|---|",
    ]
    for m in table:
        n = len(table[m]["folds"])
        lines.append(f"| {m}: {METHODS[m]} | " + " | ".join(_fmt(table[m][k], n)
                                                            for k in metrics) + " |")
    row = "ft_obj_senti_lf_best"
    best = papers.SUN2016_TABLE1[row]
    quoted = ", ".join(f"{papers.SUN2016_COLUMNS[c]} {100 * best[c].mean:.2f} % (K = {best[c].k})"
                       for c in ("five", "four", "three"))
    lines += ["", f"Published (Sun et al. 2016, Table 1, {papers.SUN2016_ROWS[row]}): {quoted}. "
              f"Their Figure 4 (accuracy against K): {papers.NOT_AVAILABLE_TEXT}.", ""]
    rd.write_text("table1.md", "\n".join(lines))


def _write_sweep(rd, sweep_acc: dict, sweep_one: dict, global_summary: dict, cfg: RegionConfig,
                 run) -> None:
    """``k_sweep.{json,csv,png}``. Per ranking, in the JSON: ``mean``/``std`` per K, and per
    fold the accuracy per K (``folds``) and whether its fusion answered one class (``one_class``,
    the reports' one-class flag)."""
    plt = figures.pyplot()

    ks = list(range(1, cfg.k_max + 1))
    result = {by: {"mean": np.mean(v, axis=0).tolist(), "std": np.std(v, axis=0).tolist(),
                   "folds": v, "one_class": sweep_one[by]} for by, v in sweep_acc.items()}
    rd.write_json("k_sweep.json", {"k": ks, "global": global_summary["accuracy"], **result})
    rows = [{"k": k, **{f"{by}_{s}": result[by][s][k - 1] for by in result
                        for s in ("mean", "std")}} for k in ks]
    rd.write_csv("k_sweep.csv", rows, list(rows[0]))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for by, style in zip(RANKINGS, ("o-", "s--", "^--", "x:"), strict=True):
        ax.plot(ks, 100 * np.asarray(result[by]["mean"]), style, label=by, markersize=4)
    # the folds' spread, drawn: differences within it are not results
    whole = global_summary["accuracy"]
    ax.axhline(100 * whole["mean"], color="k", lw=1, label="whole image (+- std: grey)")
    ax.axhspan(100 * (whole["mean"] - whole["std"]), 100 * (whole["mean"] + whole["std"]),
               color="grey", alpha=0.15, lw=0)
    ax.axvline(cfg.k, color="grey", lw=0.8, ls=":", label=f"K = {cfg.k} (table1)")
    ax.set_xlabel("K (regions fused)")
    ax.set_ylabel("accuracy (%), mean over folds")
    ax.set_title(f"Late fusion vs K, {run.config.model}, {run.dataset.title}\n"
                 f"{cfg.proposals.n_proposals} proposals, alpha {cfg.alpha:g}, beta "
                 f"{cfg.beta:g}, senti-log {cfg.senti_log}", fontsize=10)
    ax.set_xticks(ks)
    ax.legend(fontsize=8)
    figures.save_figure(fig, rd / "k_sweep.png", dpi=120)


def _cost(all_res, cfg: RegionConfig) -> dict[str, Any]:
    secs = np.concatenate([res["seconds"] for _, res, _ in all_res])  # (n, 3)
    mean = secs.mean(axis=0)
    return {
        "images": int(len(secs)),
        "seconds_per_image": {"proposals": float(mean[0]), "crop": float(mean[1]),
                              "score": float(mean[2])},
        "proposals_per_image": float(np.mean(np.concatenate(
            [np.diff(res["offsets"]) for _, res, _ in all_res]))),
        "fallback_images": int(sum(res["fallback"].sum() for _, res, _ in all_res)),
        "note": "proposals: edge map + EdgeBoxes when first computed (cached afterwards); "
                "crop + score: N crops and the whole image through the model in one pass, "
                f"batch {cfg.batch_size}, test images only",
    }


def _write_overlays(rd, run, all_res, cfg: RegionConfig) -> None:
    plt = figures.pyplot()
    from matplotlib.patches import Rectangle

    folder = rd / "overlays"
    folder.mkdir(exist_ok=True)
    done = 0
    for fold_index, res, detail in all_res:
        for i, idx in enumerate(res["test_index"]):
            if done >= cfg.overlays:
                return
            sl = slice(res["offsets"][i], res["offsets"][i + 1])
            boxes, probs, obj = res["boxes"][sl], res["probs"][sl], res["objectness"][sl]
            obj = normalize_objectness(obj)  # as AR sees it: 1 = the image's best box
            ar = affective_score(obj, sentiment_score(probs, cfg.senti_log), cfg.alpha)
            top = detail["orders"][i][: cfg.k]
            img = np.asarray(load_rgb(run.dataset.paths[idx]))
            fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]))
            ax.imshow(img)
            for rank in range(len(top) - 1, -1, -1):  # best drawn last, on top
                j = top[rank]
                x0, y0, x1, y1 = boxes[j]
                color = "lime" if probs[j][1] >= 0.5 else "red"
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color,
                                       lw=2.5 if rank == 0 else 1))
                ax.text(x0 + 1, y0 + 1, str(rank + 1), color="white", fontsize=7, va="top",
                        bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "lw": 0})
            label = "positive" if res["test_labels"][i] == 1 else "negative"
            ax.set_title(f"{run.dataset.names[idx][:40]} ({label}); p+ global "
                         f"{res['test_global_probs'][i][1]:.2f}, fused "
                         f"{detail['fused'][i][1]:.2f}", fontsize=8)
            ax.axis("off")
            legend = "  ".join(f"{r + 1}: AR {ar[j]:.2f} obj {obj[j]:.2f} p+ {probs[j][1]:.2f}"
                               for r, j in enumerate(top[:6]))
            fig.text(0.5, 0.01, legend + ("  ..." if len(top) > 6 else ""), ha="center",
                     fontsize=5, wrap=True)
            name = f"fold{fold_index}_{Path(run.dataset.names[idx]).stem}.png"
            figures.save_figure(fig, folder / name, dpi=100, rect=(0, 0.04, 1, 1))
            done += 1

