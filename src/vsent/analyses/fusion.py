"""Fusing the CNN with hand-crafted classifiers and cues: the rules (late and early).

Issue 10's levers 3 and 4 (docs/accuracy_plan.md). The rules are pure functions; the fold
loop that applies them to a finished crossval run (``vsent fuse``, ``crossval --fusion``) is
:mod:`vsent.analyses.fusion_run`.

* :func:`hand_crafted_probabilities` - P(positive) of a linear classifier on hand-crafted
  features (the GCH/LCH/BoW baselines of :mod:`vsent.analyses.baselines`, the affect cues of
  :mod:`vsent.analyses.cues`, or both), fitted on a training fold only; its regularisation C
  and its calibration come from an inner cross-validation *inside* the training fold.
* :func:`fuse_probabilities` - late fusion of two P(positive) columns:
  ``"mean"``: ``w * p_a + (1 - w) * p_b``; ``"logit"``: ``sigmoid(w * logit(p_a) +
  (1 - w) * logit(p_b))``, which equals the normalised product of experts
  ``p_a^w p_b^(1-w) / (p_a^w p_b^(1-w) + (1-p_a)^w (1-p_b)^(1-w))``.
* :func:`ensemble_mean` - the mean of several models' P(positive) (``vsent ensemble``).
* :func:`choose_weight` - the CNN's weight ``w`` that fits out-of-fold predictions best
  (``vsent fuse --weight inner``).

A building block no command calls (kept, tested, for analyses by hand):

* :func:`early_fusion` - standardised feature blocks concatenated, each block with the same
  total weight, statistics from training rows.

**The rule fixed in advance** (:data:`DEFAULT_RULE`, :data:`DEFAULT_WEIGHT`): mean of the two
probabilities with ``w = 0.5``. Choosing ``w`` by :func:`choose_weight` needs out-of-fold CNN
predictions on the training fold, i.e. an inner CNN cross-validation per outer fold
(``--weight inner``: ``INNER_SPLITS - 1`` times the training cost); the plain mean needs
none, and neither looks at a test fold. At
``w = 0.5`` the logit rule takes the same decisions as the mean (``(a + b) / 2 > 0.5`` and
``(logit a + logit b) / 2 > 0`` both say ``a + b > 1``): only the fused probabilities differ.
At other weights they part, and in logit space an over-confident network (a CNN trained from
scratch to a near-zero training loss) would outvote the calibrated classifier: the mean is
the rule fixed in advance.

A predicted class is ``p > 0.5`` (a tie is negative, as ``argmax`` over ``[1 - p, p]`` in
:func:`vsent.evaluate.evaluate`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from vsent.analyses.baselines import (
    DEFAULT_CS,
    BaselineConfig,
    BlockScaler,
    fold_blocks,
    make_classifier,
    parse_features,
)
from vsent.analyses.handcrafted import ImageFeatures
from vsent.data._common import is_real
from vsent.data.folds import disjoint_rows
from vsent.errors import VsentError

log = logging.getLogger("vsent")

__all__ = [
    "DEFAULT_RULE", "DEFAULT_WEIGHT", "DEFAULT_WEIGHTS", "METHODS", "RULES", "HandCrafted",
    "baseline_fold_features", "choose_weight", "early_fusion", "ensemble_mean",
    "fit_hand_crafted", "fuse_probabilities", "hand_crafted_probabilities",
    "positive_probability", "predict",
]

#: Late-fusion rules of :func:`fuse_probabilities`.
RULES = ("mean", "logit")
#: The fusion fixed in advance (see the module docstring).
DEFAULT_RULE = "mean"
DEFAULT_WEIGHT = 0.5
#: Grid of :func:`choose_weight` (weight of the first input, the CNN).
DEFAULT_WEIGHTS = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 2))
#: Classifiers of :func:`hand_crafted_probabilities`.
METHODS = ("logistic", "svm")
#: Probabilities are clipped to [EPS, 1 - EPS] before logits (a hard 0/1 would be infinite).
EPS = 1e-6


# --------------------------------------------------------------------------------------------
# probability arithmetic


def positive_probability(p: np.ndarray) -> np.ndarray:
    """P(positive) as float64 (N,): from (N,) itself or from (N, 2) class probabilities
    (column 1, as :func:`vsent.evaluate.predict_proba` orders them)."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1:
        raise ValueError(f"probabilities must have shape (N,) or (N, 2), got {p.shape}")
    if not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        raise ValueError("probabilities must be finite and in [0, 1]")
    return p


def predict(p: np.ndarray) -> np.ndarray:
    """Predicted class, int64 (N,): 1 where P(positive) > 0.5."""
    return (positive_probability(p) > 0.5).astype(np.int64)


def fuse_probabilities(p_a: np.ndarray, p_b: np.ndarray, w: float = DEFAULT_WEIGHT,
                       rule: str = DEFAULT_RULE) -> np.ndarray:
    """Late fusion of two models' P(positive): float64 (N,).

    Parameters
    ----------
    p_a, p_b : (N,) P(positive) or (N, 2) class probabilities of the same images, in [0, 1].
    w : weight of ``p_a``, a real number in [0, 1] (``1 - w`` for ``p_b``).
    rule : ``"mean"`` (weighted mean of probabilities) or ``"logit"`` (weighted mean of
        logits = normalised weighted geometric mean, a product of experts).
    """
    # no option named: the callers have their own (fuse --rule/--weight, a checkpoint's entry)
    if rule not in RULES:
        raise VsentError(f"fusion rule {rule!r}: choose one of {', '.join(RULES)}")
    if not is_real(w):  # "0.5": TypeError '<='
        raise TypeError(f"fusion weight w must be a number in [0, 1], got {w!r} "
                        f"({type(w).__name__})")
    if not 0.0 <= w <= 1.0:
        raise VsentError(f"fusion weight {w!r} is out of range (0 .. 1)")
    a, b = positive_probability(p_a), positive_probability(p_b)
    if a.shape != b.shape:
        raise ValueError(f"{a.shape[0]} and {b.shape[0]} probabilities: not the same images")
    if rule == "mean":
        return w * a + (1.0 - w) * b
    a, b = np.clip(a, EPS, 1 - EPS), np.clip(b, EPS, 1 - EPS)
    z = w * np.log(a / (1 - a)) + (1.0 - w) * np.log(b / (1 - b))
    return 1.0 / (1.0 + np.exp(-z))


def ensemble_mean(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean P(positive) of several models on the same images: float64 (N,)."""
    if not len(probs):
        raise ValueError("no probabilities to average")
    cols = [positive_probability(p) for p in probs]
    if len({c.shape for c in cols}) != 1:
        raise ValueError(f"models scored different numbers of images: {[len(c) for c in cols]}")
    # image by image (each row's own sum): the same bits as the mean of each image's list
    # that vsent ensemble took before, whatever the number of models
    return np.stack(cols, axis=1).mean(axis=1)


def choose_weight(p_a: np.ndarray, p_b: np.ndarray, y: np.ndarray,
                  weights: Sequence[float] = DEFAULT_WEIGHTS,
                  rule: str = DEFAULT_RULE) -> tuple[float, dict[float, float]]:
    """The weight of ``p_a`` with the best accuracy of the fused prediction on ``y``.

    Use it only on out-of-fold predictions of *training* images (never on a test fold).
    Ties go to the weight nearest 0.5 (the prior: both models equal), then to the smaller.

    Returns
    -------
    (w, {weight: accuracy}) for every weight tried.
    """
    y = np.asarray(y)
    n = len(positive_probability(p_a))
    if y.shape != (n,) or not np.isin(y, (0, 1)).all():  # (n, 1) or [1] broadcast, "pos" != 1:
        raise ValueError(f"y must be labels 0/1 of shape ({n},) as the probabilities, got "
                         f"{y.dtype} {y.shape}")  # every accuracy silently wrong
    if not len(weights):
        raise ValueError("no weights to choose from")
    acc = {float(w): float(np.mean(predict(fuse_probabilities(p_a, p_b, w, rule)) == y))
           for w in weights}
    best = max(acc.values())
    w = min((w for w, a in acc.items() if a == best), key=lambda w: (round(abs(w - 0.5), 9), w))
    return w, acc


# --------------------------------------------------------------------------------------------
# early fusion


def early_fusion(blocks: Sequence[np.ndarray], train: np.ndarray) -> np.ndarray:
    """Concatenate feature blocks, standardised on the training rows, equal weight per block.

    Parameters
    ----------
    blocks : arrays (N, d_k) of the same N images (e.g. CNN penultimate features, cues, GCH).
    train : int indices of the training rows: the only rows whose mean and std are used.

    Returns
    -------
    float64 (N, sum d_k): column ``c`` of block ``k`` is ``(x - mean_train) / std_train /
    sqrt(d_k)`` (a constant column gives 0), so each block has total variance 1 on the
    training rows whatever its width.
    """
    if not blocks:
        raise ValueError("no feature blocks")
    mats = [np.asarray(b, np.float64).reshape(len(b), -1) for b in blocks]
    if len({len(m) for m in mats}) != 1:
        raise ValueError(f"blocks have different numbers of rows: {[len(m) for m in mats]}")
    X = np.hstack(mats)
    scaler = BlockScaler([m.shape[1] for m in mats]).fit(X[np.asarray(train)])
    return scaler.transform(X)


# --------------------------------------------------------------------------------------------
# a hand-crafted classifier's probabilities, inside one training fold


@dataclass
class HandCrafted:
    """Probabilities of a hand-crafted classifier fitted on one training fold.

    Attributes
    ----------
    test : float64 (n_test,) P(positive) of the test rows, in the order given.
    train_oof : float64 (n_train,) out-of-fold P(positive) of the training rows (inner CV,
        for :func:`choose_weight`), or None when not asked for.
    C : the regularisation chosen by the inner CV; method : ``logistic`` or ``svm``.
    """

    test: np.ndarray
    train_oof: np.ndarray | None
    C: float
    method: str


def _estimator(method: str, blocks: Sequence[int] | None, Cs: Sequence[float],
               inner_splits: int, seed: int):
    inner = StratifiedKFold(inner_splits, shuffle=True, random_state=seed)
    if method == "logistic":
        pipe = Pipeline([("scale", BlockScaler(blocks)),
                         ("clf", LogisticRegression(max_iter=5000, random_state=seed))])
        return GridSearchCV(pipe, {"clf__C": list(Cs)}, scoring="neg_log_loss", cv=inner,
                            refit=True)
    if method == "svm":
        # Platt scaling of the baselines' SVM (C by inner CV): each calibration fold fits
        # the SVM (and its C search) on part of the training fold, the sigmoid on the rest
        svm = make_classifier(blocks, Cs=Cs, inner_splits=inner_splits, seed=seed)
        return CalibratedClassifierCV(svm, method="sigmoid", cv=inner, ensemble=True)
    raise VsentError(f"classifier {method!r}: choose one of {', '.join(METHODS)}")


def _chosen_c(model) -> float:
    if isinstance(model, GridSearchCV):
        return float(model.best_params_["clf__C"])
    cs = [float(c.estimator.best_params_["svm__C"]) for c in model.calibrated_classifiers_]
    return float(np.median(cs))


def fit_hand_crafted(X: np.ndarray, y: np.ndarray, *, blocks: Sequence[int] | None = None,
                     method: str = "logistic", Cs: Sequence[float] = DEFAULT_CS,
                     inner_splits: int = 3, seed: int = 0):
    """The calibrated linear classifier of :func:`hand_crafted_probabilities`, fitted on
    training rows ``X`` (n, d), ``y`` (n,): a ``GridSearchCV`` (logistic) or a
    ``CalibratedClassifierCV`` (svm) with ``predict_proba``."""
    model = _estimator(method, blocks, Cs, inner_splits, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # LinearSVC at large C, as baselines
        return model.fit(np.asarray(X), np.asarray(y))


def hand_crafted_probabilities(
    X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, *,
    blocks: Sequence[int] | None = None, method: str = "logistic",
    Cs: Sequence[float] = DEFAULT_CS, inner_splits: int = 3, seed: int = 0,
    oof: bool = False,
) -> HandCrafted:
    """Fit a calibrated linear classifier on rows ``train`` and score rows ``test``.

    Parameters
    ----------
    X : (N, d) features of every image (only rows ``train`` are used for fitting: scaling,
        C and calibration all come from them).
    y : (N,) labels (those of ``test`` are never read).
    train, test : int indices into X, or (N,) boolean masks; disjoint.
    blocks : column widths of concatenated feature blocks (each block gets the same weight;
        see :class:`vsent.analyses.baselines.BlockScaler`); None = one block.
    method : ``"logistic"`` - logistic regression, C by inner CV on log-loss (its outputs
        are probabilities already); ``"svm"`` - the baselines' linear SVM (C by inner CV on
        accuracy) with Platt (sigmoid) calibration, ``CalibratedClassifierCV`` over
        ``inner_splits`` folds of the training rows.
    oof : also return out-of-fold probabilities of the training rows (one more inner CV).
    """
    X, y = np.asarray(X), np.asarray(y)
    train, test = disjoint_rows(train, test)  # (boolean masks too, as linear_probe)
    if not np.isin(y[train], (0, 1)).all():  # was "1 is not in list" after the whole fit
        raise ValueError(f"y must hold labels 0/1, got values such as "
                         f"{np.unique(y[train])[:3].tolist()}")
    model = fit_hand_crafted(X[train], y[train], blocks=blocks, method=method, Cs=Cs,
                             inner_splits=inner_splits, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # LinearSVC at large C, as baselines
        p_test = model.predict_proba(X[test])[:, list(model.classes_).index(1)]
        train_oof = None
        if oof:
            outer = StratifiedKFold(inner_splits, shuffle=True, random_state=(seed + 1) % 2**32)
            proba = cross_val_predict(_estimator(method, blocks, Cs, inner_splits, seed),
                                      X[train], y[train], cv=outer, method="predict_proba")
            # the positive class's column, found as for p_test (cross_val_predict orders the
            # columns by the sorted labels of y[train])
            train_oof = proba[:, list(np.unique(y[train])).index(1)]
    return HandCrafted(test=np.asarray(p_test, np.float64), train_oof=train_oof,
                       C=_chosen_c(model), method=method)


def baseline_fold_features(feats: ImageFeatures, train: np.ndarray, feature_set: str = "gch+bow",
                           config: BaselineConfig | None = None, *,
                           encoders: dict[str, Any] | None = None
                           ) -> tuple[np.ndarray, list[int]]:
    """The baselines' feature matrix for one fold: (N, d) and the block widths.

    ``feature_set`` is a baselines feature set (``gch``, ``lch``, ``bow``, ``gch+bow``,
    ``gch+fv``, ...); the blocks come from :func:`vsent.analyses.baselines.fold_blocks` (BoW
    vocabulary and Fisher encoder learnt from rows ``train`` only, ``config.histogram_map``
    applied), as :func:`vsent.analyses.baselines.cross_validate` uses them. ``encoders``, when
    given, receives what was learnt (the vocabulary: a fused model saves it).
    """
    (name,) = parse_features([feature_set])
    parts = name.split("+")
    blocks = fold_blocks(feats, train, parts, config, encoders=encoders)
    mats = [np.asarray(blocks[p], np.float64) for p in parts]
    return np.hstack(mats), [m.shape[1] for m in mats]
