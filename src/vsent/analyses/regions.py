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
baseline). :func:`vsent.analyses.regions_run.evaluate_regions` runs all of this on a
cross-validation run directory with each fold's model on that fold's test images (the CLI is
``vsent regions``); :func:`predict_rows` and :func:`fused_proba` score new images
(``vsent predict --regions``, the service).

Published reference: Sun et al.'s Table 1 (:data:`vsent.papers.SUN2016_TABLE1`, e.g. VGGNet +
affective regions, late fusion, best K = 11: 88.94 % on Twitter I five-agree); ``table1.md``
quotes their best-K row and ``vsent reproduce sun2016`` sets the whole table beside ours.
Figure 4 (accuracy against K) gives no values in the text: not available.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsent.analyses.opencv import check_rgb
from vsent.analyses.proposals import (
    EdgeDetector,
    ProposalConfig,
    Proposals,
    make_edge_detector,
    propose,
)
from vsent.config import RANKINGS, SENTI_LOGS, check_seed, config_from_dict
from vsent.data._common import is_real, positive_int
from vsent.data.images import ImageSource, load_resized, load_rgb, resize_rgb
from vsent.errors import VsentError
from vsent.inference import infer, prefetch

__all__ = [
    "RANKINGS",
    "RegionConfig",
    "RegionScores",
    "SENTI_LOGS",
    "affective_score",
    "crop_regions",
    "decode_views",
    "fused_proba",
    "fusion_curve",
    "late_fusion",
    "normalize_objectness",
    "predict_rows",
    "rank_regions",
    "score_images",
    "score_regions",
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


def _non_negative(value: float, what: str) -> float:
    """``value`` as a float, or ValueError "<what> must be a finite number >= 0, got ..." (a
    string, a bool, NaN or inf; a string failed as TypeError '<', NaN went through)."""
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def affective_score(obj_norm: np.ndarray, senti: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``AR = sqrt(obj^2 + alpha * senti^2)`` (element-wise): float64, the broadcast shape of
    ``obj_norm`` (normalised objectness, in [0, 1]) and ``senti`` (:func:`sentiment_score`);
    ``alpha``, the weight of the sentiment, is a finite number >= 0."""
    alpha = _non_negative(alpha, "alpha")
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
    alpha : weight of the sentiment score in AR, a finite number >= 0 (checked whatever
        ``by``).
    rng : generator for "random" (default: seed 0).
    senti_log : the log of the sentiment score (:func:`sentiment_score`).

    Returns
    -------
    int64 (n,) permutation. Ties keep the proposal order (EdgeBoxes' best first).
    """
    _non_negative(alpha, "alpha")  # (by="objectness" would take alpha="1" silently)
    n = len(objectness)
    if len(probs) != n:  # one row of probs broadcast over every proposal
        raise ValueError(f"{n} objectness scores and {len(probs)} rows of probs: one row per "
                         "proposal")
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
    p_regions : (K, M) probabilities of the selected regions, the same M classes (one region
        may be given as (M,); K = 0, any empty array: the global view stands in for the mean
        region, ``(1 + beta) * p_global``).
    beta : weight of the regions' mean, a finite number >= 0.

    Returns
    -------
    (M,) float64 fused scores (they sum to 1 + beta; divide by that for probabilities).
    """
    beta = _non_negative(beta, "beta")  # a negative beta gave negative "probabilities"
    p_global = np.asarray(p_global, np.float64)
    if p_global.ndim != 1:
        raise ValueError(f"p_global must be (M,) class probabilities, got shape "
                         f"{p_global.shape}")
    m = len(p_global)
    p_regions = np.asarray(p_regions, np.float64)
    if p_regions.size and p_regions.shape not in ((m,), (p_regions.shape[0], m)):
        # (K, 3) against M = 2 was a reshape error, or rows of mixed classes
        raise ValueError(f"p_regions must be (K, {m}) probabilities of p_global's {m} classes, "
                         f"got shape {p_regions.shape}")
    p_regions = p_regions.reshape(-1, m)
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
    image : uint8 (H, W, 3) RGB, not empty.
    boxes : int (n, 4) ``x0, y0, x1, y1`` in pixels, end-exclusive. A box reaching outside
        the image is clipped to it (as EdgeBoxes' boxes are); a box with no pixel inside it is
        refused (ValueError).
    size : side of the crops in pixels (>= 1).

    Returns
    -------
    uint8 (n, size, size, 3).
    """
    image = check_rgb(image)  # a float image was PIL's "Cannot handle this data type"
    size = positive_int(size, "size")
    b = np.asarray(boxes)
    if b.size == 0:  # no boxes: no crops ([] is 1-D)
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4 or b.dtype.kind not in "iuf":
        raise ValueError(f"boxes must be an (n, 4) array of x0, y0, x1, y1, got {b.dtype} "
                         f"{b.shape}")
    h, w = image.shape[:2]
    # clipped: slicing past the end clipped already, but a negative x0 counted from the end
    b = np.clip(b.astype(int), 0, [w, h, w, h])
    empty = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if empty.size:  # was warped silently from nothing
        i = int(empty[0])
        raise ValueError(f"box {i} {np.asarray(boxes)[i].tolist()} has no pixel inside the "
                         f"{w}x{h} image ({empty.size} such boxes)")
    out = np.empty((len(b), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(b):
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
    rgb, glob = decode_views(image, model.info.preprocess.resize)
    return _fused(model, rgb, glob, k=k, alpha=alpha, beta=beta, senti_log=senti_log,
                  detector=detector, config=config, batch_size=batch_size, device=device)


def decode_views(image: ImageSource, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The original RGB pixels (H, W, 3) for proposals and crops, and the global view
    (size, size, 3) through :func:`load_resized`, the decode of the image cache and predict."""
    return np.asarray(load_rgb(image)), load_resized(image, size)


def _fused(model: nn.Module, rgb: np.ndarray, glob: np.ndarray, *, k: int, alpha: float,
           beta: float, senti_log: str, detector: EdgeDetector | None, config: ProposalConfig,
           batch_size: int, device: torch.device | str) -> dict[str, Any]:
    """:func:`fused_proba` on a decoded image (``rgb``, ``glob``: see :func:`decode_views`)."""
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
    for path, decoded, error in prefetch(lambda p: decode_views(p, size), paths, workers=1,
                                         ahead=2):
        if error is not None:
            yield error_row(str(path), str(error))
            continue
        r = _fused(model, *decoded, k=k, alpha=alpha, beta=beta, senti_log=senti_log,
                   detector=detector, config=config, batch_size=128, device=device)
        # the row of every engine: NaN/inf scores are an error row, not "NaN, negative"
        yield scores_row(str(path), r["proba"], class_names)


# --------------------------------------------------------------------------------------------
# settings (vsent regions; their checks serve vsent predict --regions too)


@dataclass(frozen=True)
class RegionConfig:
    """Settings of :func:`vsent.analyses.regions_run.evaluate_regions` (saved as the run's
    config.json).

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
