"""Late fusion that travels with a checkpoint: the CNN plus a hand-crafted classifier.

``vsent crossval --preset strong`` measures the CNN fused late with a logistic regression on
GCH+BoW (:func:`vsent.analyses.fusion_run.fuse_run`). To *use* that model on new images,
the hand-crafted half must be saved beside the network and recomputed per image. This module holds
it as plain arrays, so a checkpoint that carries it still loads with
``torch.load(weights_only=True)``:

* :class:`HandCraftedModel` - the features of one image (:func:`vsent.analyses.handcrafted.
  image_features`: GCH, LCH, SIFT on a copy whose longer side is 256 px), the BoW vocabulary,
  the block scaling and the logistic regression: ``P(positive)`` of any RGB image.
* :func:`fit_hand_crafted_model` - fitted on training images exactly as ``fuse_run`` fits it
  on a fold (same blocks, same inner CV for C, same seed), so its probabilities are the ones
  that cross-validation measured.
* :class:`LateFusion` - the model plus the rule fixed in advance (mean, w = 0.5):
  ``p = w p_cnn + (1 - w) p_hand``; :meth:`LateFusion.to_state` / :meth:`from_state` are the
  checkpoint's ``fusion`` entry (:func:`vsent.models.checkpoint.save_checkpoint`).

Blocks ``gch``, ``lch`` and ``bow`` can travel; ``fv`` and ``cues`` are measured by
``crossval``/``fuse`` only (a saved model refuses them with a clear message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from vsent.analyses.baselines import BaselineConfig
from vsent.analyses.fusion import (
    DEFAULT_RULE,
    DEFAULT_WEIGHT,
    baseline_fold_features,
    fit_hand_crafted,
    fuse_probabilities,
)
from vsent.analyses.handcrafted import (
    ImageFeatures,
    SiftParams,
    bow_histograms,
    image_features,
)
from vsent.config import SAVED_FUSION_BLOCKS, parse_fusion_blocks
from vsent.errors import VsentError

__all__ = ["SAVED_BLOCKS", "HandCraftedModel", "LateFusion", "check_saved_blocks",
           "fit_hand_crafted_model"]

#: Hand-crafted blocks a checkpoint can carry (their encoders are a histogram or a vocabulary).
SAVED_BLOCKS = SAVED_FUSION_BLOCKS
STATE_FORMAT = "vsent-late-fusion/1"


def check_saved_blocks(features: str) -> tuple[str, ...]:
    """The blocks of ``features`` (e.g. ``gch+bow``); VsentError for one a model cannot carry."""
    parts = parse_fusion_blocks(features, "--fusion")
    unsaved = [p for p in parts if p not in SAVED_BLOCKS]
    if unsaved:
        raise VsentError(f"--fusion {features!r}: a saved model can carry the blocks "
                         f"{', '.join(SAVED_BLOCKS)}; {', '.join(unsaved)} are measured by "
                         "`vsent crossval --fusion` and `vsent fuse` only")
    return parts


@dataclass
class HandCraftedModel:
    """A logistic regression on hand-crafted blocks of one image, held as arrays.

    Attributes
    ----------
    blocks : the feature blocks in column order, e.g. ("gch", "bow").
    sift, bow_norm, histogram_map : how the features are computed (as in the baselines).
    vocabulary : float32 (k, 128) BoW centres, or None without a ``bow`` block.
    mean, std : float64 (d,) the training rows' column statistics (StandardScaler; a constant
        column has std 1); block_weight : float64 (d,) 1 / sqrt(block width).
    coef : float64 (d,), intercept : the logistic regression on the scaled columns.
    C : regularisation chosen by the inner CV; n_train : training images.
    """

    blocks: tuple[str, ...]
    sift: SiftParams
    bow_norm: str
    histogram_map: str
    # (not in the repr: a REPL printed the 500 x 128 vocabulary)
    vocabulary: np.ndarray | None = field(repr=False)
    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)
    block_weight: np.ndarray = field(repr=False)
    coef: np.ndarray = field(repr=False)
    intercept: float
    C: float
    n_train: int

    @property
    def dim(self) -> int:
        """Number of feature columns d."""
        return len(self.coef)

    def features(self, image: np.ndarray) -> np.ndarray:
        """float64 (d,) features of one RGB uint8 image (H, W, 3), full resolution as decoded
        (:func:`vsent.data.load_rgb`): the columns the classifier was fitted on."""
        g, loc, desc = image_features(image, self.sift, need_sift="bow" in self.blocks)
        return self._columns(g[None], loc[None], [desc])[0]

    def dataset_features(self, feats: ImageFeatures, rows: Sequence[int]) -> np.ndarray:
        """float64 (n, d) features of rows ``rows`` of a dataset's cached
        :func:`vsent.analyses.handcrafted.extract_features` (the same as :meth:`features`)."""
        rows = np.asarray(rows, np.int64)
        return self._columns(feats.gch[rows], feats.lch[rows],
                             [feats.descriptors[i] for i in rows])

    def _columns(self, gch: np.ndarray, lch: np.ndarray, descriptors: Sequence[np.ndarray | None]
                 ) -> np.ndarray:
        parts = {"gch": gch, "lch": lch}
        if "bow" in self.blocks:
            parts["bow"] = bow_histograms(self.vocabulary, descriptors, norm=self.bow_norm)
        if self.histogram_map == "sqrt":  # every saved block is a histogram
            parts = {k: np.sqrt(v) for k, v in parts.items()}
        return np.hstack([np.asarray(parts[b], np.float64) for b in self.blocks])

    def proba_from_features(self, X: np.ndarray) -> np.ndarray:
        """P(positive), float64 (N,), of feature rows X (N, d) from :meth:`features`."""
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:  # (a reshape gave numpy's text)
            raise ValueError(f"hand_features must be of shape (N, {self.dim}) (the "
                             f"{'+'.join(self.blocks)} features of each image; one image's: "
                             f"features[None]), got {X.shape}")
        if not np.isfinite(X).all():  # (was "probabilities must be finite" from the fusion)
            raise ValueError("hand_features hold NaN/inf")
        z = ((X - self.mean) / self.std * self.block_weight) @ self.coef + self.intercept
        return expit(z)  # as LogisticRegression.predict_proba; no overflow warning

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(positive), float64 (N,), of RGB uint8 images."""
        if not len(images):
            return np.zeros(0)
        return self.proba_from_features(np.stack([self.features(im) for im in images]))


def fit_hand_crafted_model(feats: ImageFeatures, labels: np.ndarray, train: np.ndarray,
                           features: str = "gch+bow", *, config: BaselineConfig | None = None,
                           seed: int = 0) -> HandCraftedModel:
    """Fit the hand-crafted half of the late fusion on rows ``train`` of ``feats``.

    The same blocks (:func:`vsent.analyses.baselines.fold_blocks`: vocabulary learnt from the
    training rows) and classifier (:func:`vsent.analyses.fusion.fit_hand_crafted`, logistic,
    C by inner CV on log-loss, ``seed``) as :func:`vsent.analyses.fusion_run.fuse_run` per
    fold.

    Parameters
    ----------
    feats : :func:`vsent.analyses.handcrafted.extract_features` of the dataset's images.
    labels : int (N,) 0/1 of every image; train : int indices of the training rows.
    features : blocks joined with '+' (``gch``, ``lch``, ``bow``).
    """
    parts = check_saved_blocks(features)
    config = config or BaselineConfig()
    train = np.asarray(train, np.int64)
    encoders: dict[str, Any] = {}
    # the matrix fuse_run builds for a fold: one function, so the saved half is the measured one
    X, widths = baseline_fold_features(feats, train, "+".join(parts), config, encoders=encoders)
    search = fit_hand_crafted(X[train], np.asarray(labels)[train], blocks=widths,
                              method="logistic", Cs=config.Cs,
                              inner_splits=config.inner_splits, seed=seed)
    pipe = search.best_estimator_
    scaler, clf = pipe.named_steps["scale"], pipe.named_steps["clf"]
    vocab = encoders.get("bow")
    return HandCraftedModel(
        blocks=parts, sift=config.sift, bow_norm=config.bow_norm,
        histogram_map=config.histogram_map,
        vocabulary=None if vocab is None else np.asarray(vocab.cluster_centers_, np.float32),
        mean=scaler.scaler_.mean_.astype(np.float64), std=scaler.scaler_.scale_.astype(np.float64),
        block_weight=np.asarray(scaler.weights_, np.float64),
        # classes_ is the sorted 0/1 labels: coef_ points to classes_[1], the positive class
        coef=clf.coef_[0].astype(np.float64), intercept=float(clf.intercept_[0]),
        C=float(search.best_params_["clf__C"]), n_train=len(train))


@dataclass
class LateFusion:
    """The CNN's P(positive) fused with a :class:`HandCraftedModel`'s by a fixed rule.

    ``rule``/``weight`` as :func:`vsent.analyses.fusion.fuse_probabilities` (weight of the CNN).
    """

    hand: HandCraftedModel
    rule: str = DEFAULT_RULE
    weight: float = DEFAULT_WEIGHT

    @property
    def features(self) -> str:
        """The blocks, as ``--fusion`` spells them (e.g. ``gch+bow``)."""
        return "+".join(self.hand.blocks)

    def fuse(self, cnn_probs: np.ndarray, hand_features: np.ndarray) -> np.ndarray:
        """Fused class probabilities float32 (N, 2) ``[1 - p, p]`` from the CNN's (N, 2) and
        the hand-crafted feature rows (N, d) of the same images; argmax is the fused label
        (a tie, p = 0.5, is negative, as in :func:`vsent.analyses.fusion.predict`)."""
        cnn_probs = np.asarray(cnn_probs)
        if cnn_probs.ndim != 2 or cnn_probs.shape[1] != 2:
            raise VsentError(f"late fusion needs a two-class model, got scores of shape "
                             f"{cnn_probs.shape}")
        if not len(cnn_probs):
            return np.zeros((0, 2), np.float32)
        p = fuse_probabilities(cnn_probs, self.hand.proba_from_features(hand_features),
                               self.weight, self.rule)
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """What a model card shows: blocks, rule, weight, C and training images."""
        h = self.hand
        return {"features": self.features, "rule": self.rule, "weight": self.weight,
                "classifier": "logistic regression", "C": h.C, "n_train": h.n_train,
                "histogram_map": h.histogram_map,
                **({"bow_words": len(h.vocabulary)} if h.vocabulary is not None else {})}

    # ---- the checkpoint's "fusion" entry: plain types and tensors (weights_only-safe) ------

    def to_state(self) -> dict[str, Any]:
        h = self.hand

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a))

        return {"format": STATE_FORMAT, "rule": self.rule, "weight": float(self.weight),
                "blocks": list(h.blocks), "sift": asdict(h.sift), "bow_norm": h.bow_norm,
                "histogram_map": h.histogram_map,
                "vocabulary": None if h.vocabulary is None else t(h.vocabulary),
                "mean": t(h.mean), "std": t(h.std), "block_weight": t(h.block_weight),
                "coef": t(h.coef), "intercept": float(h.intercept), "C": float(h.C),
                "n_train": int(h.n_train)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], where: str = "checkpoint") -> LateFusion:
        """Rebuild from :meth:`to_state`; VsentError naming ``where`` when it is not one."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise VsentError(f"{where}: its fusion entry is not a {STATE_FORMAT} state")

        def a(key: str) -> np.ndarray:
            return state[key].numpy().astype(np.float64)

        try:
            vocab = state["vocabulary"]
            hand = HandCraftedModel(
                blocks=tuple(state["blocks"]), sift=SiftParams(**state["sift"]),
                bow_norm=state["bow_norm"], histogram_map=state["histogram_map"],
                vocabulary=None if vocab is None else vocab.numpy().astype(np.float32),
                mean=a("mean"), std=a("std"), block_weight=a("block_weight"), coef=a("coef"),
                intercept=float(state["intercept"]), C=float(state["C"]),
                n_train=int(state["n_train"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise VsentError(f"{where}: incomplete fusion entry ({e})") from None
        check_saved_blocks("+".join(hand.blocks))
        if len({len(hand.mean), len(hand.std), len(hand.block_weight), hand.dim}) != 1:
            raise VsentError(f"{where}: fusion entry with inconsistent column counts")
        try:  # checked now, naming the file (fuse_probabilities names no option), not at
            # the first image
            rule, weight = str(state["rule"]), float(state["weight"])
            fuse_probabilities([0.5], [0.5], weight, rule)
        except (KeyError, TypeError, ValueError, VsentError) as e:
            raise VsentError(f"{where}: fusion entry with a bad rule or weight ({e})") from None
        return cls(hand=hand, rule=rule, weight=weight)
