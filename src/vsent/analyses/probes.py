"""Linear probes of a network's layers (Campos et al. 2015, Table 2): the features and the
classifiers, apart from any run directory.

* :func:`extract_layer_features`: a model's activations of some layers for a set of images,
  written as float32 ``.npy`` files (reduced as the model declares, or average-pooled to at
  most ``max_features`` values per image).
* :func:`gram_matrix`, :func:`gram_embedding`: the linear kernel of a feature file, read in
  column blocks, and the rows expressed in a basis of the training rows' span.
* :func:`linear_probe`: a linear SVM or softmax classifier (:func:`make_classifier`) with ``C``
  chosen by an inner cross-validation on the training rows (:class:`ProbeConfig`), scored on the
  test rows; :func:`probe_features` runs both classifiers on in-memory features.

:mod:`vsent.analyses.layers` runs them over the folds of a crossval run (``vsent layers``).

**Few samples, many features.** A fold has ~704 training images while conv1 has 290,400
features. L2-regularised linear models have their weight vector in the span of the training
rows, so with ``K = X_tr X_tr^T = Q L Q^T`` (eigenvalues below ``n * eps * max`` dropped), the
rows ``Z_tr = Q L^{1/2}`` and ``Z_te = X_te X_tr^T Q L^{-1/2}`` have the same inner products
with the training rows as ``X`` itself: ``Z`` is ``X`` expressed in an orthonormal basis of the
training rows' span. A linear model trained on ``Z`` therefore reaches the same optimum, with the
same decision values on every row (inner-CV subsets included, since they are training rows),
as one trained on ``X``; only the n x n kernel is needed (see :func:`gram_embedding`).

**Scaling.** Each classifier sees the features centred on the mean of the rows it is fitted on
and divided by one global factor (the root mean squared norm of those centred rows), fitted on
training rows only (inside the inner CV, on the inner training rows). This keeps the geometry
of the raw activations, which is what Campos et al. fed to liblinear (a global factor only moves
the best ``C`` along the grid and centring only shifts the bias), while letting one ``C`` grid
serve layers whose activations differ by orders of magnitude. Per-feature standardisation is
deliberately not used: it would inflate rarely active conv units by orders of magnitude, and it
cannot be expressed through the kernel.

**Softmax with two classes.** A 2-way softmax with L2 penalty on both weight vectors has the
optimum ``w_1 = -w_0``, i.e. it is the binary logistic regression with ``C`` doubled; since ``C``
is cross-validated, L2 logistic regression on two classes is the paper's softmax.

**Feature sizes and memory.** With ``max_features=None`` a layer is kept raw, as the paper
kept CaffeNet's (:mod:`vsent.analyses.layers` does so for CaffeNet): 290,400 (conv1) ... 2
(fc8) values per image, about 3.6 MB per image in all, i.e. ~3.2 GB of float32 per fold of 880
images (~16 GB for five folds; the layers analysis can delete a fold's feature files once its
results exist, keeping the 6 MB Gram matrices). Given ``max_features`` (the layers analysis
gives other backbones 65,536), a spatial activation with more values (torchvision stages such
as resnet50 ``layer1`` = 256 x 56 x 56) is average-pooled (:func:`torch.nn.functional.
adaptive_avg_pool2d`) to the largest square grid within it (:func:`pooled_grid`), so the files
stay bounded. Peak memory: extraction holds the model plus one
batch of activations of all probed layers (~3.6 MB per image for CaffeNet, 115 MB at batch 32);
each batch is written straight into the memory-mapped ``.npy`` files, which are unmapped after
every write, so the features of all images are never in memory. The kernel is accumulated over
column blocks of ``block_bytes`` (64 MB) of one layer file; the classifiers then work on n x n
matrices (~4 MB each).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits
from torch import nn

from vsent.config import check_seed, config_from_dict, positive_floats
from vsent.data._common import is_int_at_least
from vsent.data.folds import disjoint_rows
from vsent.errors import VsentError
from vsent.files import reserve_space
from vsent.metrics import binary_metrics
from vsent.progress import progress_bar

log = logging.getLogger("vsent")

#: The two linear classifiers of Campos et al. Table 2.
CLASSIFIERS = ("svm", "softmax")
#: Default grid of the regularisation parameter C (features centred, unit mean squared norm).
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
_BLOCK_BYTES = 64 << 20


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class ProbeConfig:
    """How the linear probes are trained (saved in ``config.json``).

    Attributes
    ----------
    Cs : tuple of float
        Grid of ``C`` searched by the inner cross-validation (smallest ``C`` wins ties).
    inner_splits : int
        Folds of the inner :class:`~sklearn.model_selection.StratifiedKFold` (shuffled with
        ``seed``) on each fold's training images.
    seed : int
        Seed of the inner splits and of liblinear's coordinate order.
    classifiers : tuple of str
        Subset of :data:`CLASSIFIERS`.
    max_iter : int
        Iteration cap of both solvers; hitting it is recorded as ``"converged": false``.
    """

    Cs: tuple[float, ...] = DEFAULT_CS
    inner_splits: int = 5
    seed: int = 0
    classifiers: tuple[str, ...] = CLASSIFIERS
    max_iter: int = 10_000

    def __post_init__(self) -> None:
        cs = positive_floats(self.Cs)
        if cs is None:
            raise VsentError(f"--Cs must be positive numbers, got {self.Cs!r}")
        object.__setattr__(self, "Cs", tuple(sorted(set(cs))))
        if not is_int_at_least(self.inner_splits, 2):
            raise VsentError(f"--inner-splits (inner_splits) must be an integer >= 2, "
                             f"got {self.inner_splits!r}")
        check_seed(self.seed)
        if isinstance(self.classifiers, str):  # "svm" would be read as ("s", "v", "m")
            object.__setattr__(self, "classifiers", (self.classifiers,))
        unknown = [c for c in self.classifiers if c not in CLASSIFIERS]
        if unknown or not self.classifiers:
            raise VsentError(
                f"--classifiers: unknown classifier(s) {unknown or self.classifiers!r}; choose "
                f"from {', '.join(CLASSIFIERS)}"
            )
        object.__setattr__(self, "classifiers", tuple(self.classifiers))
        if not is_int_at_least(self.max_iter, 1):
            raise VsentError(f"probe max_iter must be a positive integer, got {self.max_iter!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeConfig:
        """Rebuild from ``config.json``'s ``probe`` entry; unknown keys are refused."""
        return config_from_dict(cls, d, "layers probe", train_fields=())


# --------------------------------------------------------------------------------------------
# kernel-space linear models


class CenterScale(TransformerMixin, BaseEstimator):
    """Centre on the fitted rows' mean and divide by their root mean squared centred norm.

    Unlike :class:`~sklearn.preprocessing.StandardScaler` it applies one factor to every feature,
    so it commutes with the orthonormal change of basis of :func:`gram_embedding` (the result is
    the same whether it is applied to the raw features or to the kernel embedding).
    """

    def fit(self, X: np.ndarray, y: Any = None) -> CenterScale:
        """Learn ``mean_`` (float64 (d,)) and ``scale_`` (float, > 0; 1 for constant rows)
        from ``X``, any real (n, d) array with n >= 1 and finite values (``y`` is ignored).
        Sets ``n_features_in_`` = d. Returns ``self``."""
        # sklearn's checks: a 1-D, empty or non-finite X is a ValueError saying so (was an
        # AxisError, or NaNs with RuntimeWarnings)
        X = validate_data(self, X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        scale = math.sqrt(float(np.mean(np.sum((X - self.mean_) ** 2, axis=1))))
        self.scale_ = scale if scale > 0 else 1.0
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean_) / scale_``: float64 (m, d) for a real (m, d) array ``X`` with the d
        columns it was fitted on (NotFittedError before :meth:`fit`; ValueError naming both
        counts for another d, not numpy's broadcast error)."""
        check_is_fitted(self, ("mean_", "scale_"))
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) / self.scale_


def make_classifier(name: str, C: float = 1.0, *, seed: int = 0, max_iter: int = 10_000,
                    tol: float = 1e-4) -> Pipeline:
    """``CenterScale`` + the linear classifier ``name`` ("svm" or "softmax") with ``C``.

    Both are liblinear's L2-regularised dual solvers, the library Campos et al. used:
    "svm" is :class:`LinearSVC` (squared hinge, liblinear's default), "softmax" is
    :class:`LogisticRegression` with ``solver="liblinear"`` (two classes: the softmax, see the
    module docstring). liblinear regularises the bias like a feature of value 1, the same for
    both. (lbfgs was 10x slower here and stopped far from the optimum for large ``C``.)
    """
    if name == "svm":
        clf = LinearSVC(C=C, dual=True, max_iter=max_iter, tol=tol, random_state=seed)
    elif name == "softmax":
        clf = LogisticRegression(C=C, solver="liblinear", dual=True, max_iter=max_iter, tol=tol,
                                 random_state=seed)
    else:
        raise VsentError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")
    return Pipeline([("scale", CenterScale()), ("clf", clf)])


def gram_embedding(
    K: np.ndarray, train: np.ndarray, test: np.ndarray, *, rtol: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows in an orthonormal basis of the training rows' span, from the linear kernel only.

    Parameters
    ----------
    K : (n, n) array
        ``X X^T`` over all rows (training and test).
    train, test : int arrays
        Row indices into ``K``.
    rtol : float, optional
        Eigenvalues of ``K[train, train]`` at or below ``rtol * max`` are dropped (the
        numerical null space); default ``len(train) * float64 eps`` as ``numpy.linalg.
        matrix_rank`` does.

    Returns
    -------
    Z_train : (n_train, r) float64
        ``Q L^{1/2}``, so ``Z_train Z_train^T = K[train, train]`` (up to the dropped part).
    Z_test : (n_test, r) float64
        ``K[test, train] Q L^{-1/2}``: ``Z_test Z_train^T = K[test, train]``.

    ``r`` is the numerical rank (at least 1: a layer with all-zero features gives a zero column,
    so a classifier still fits its bias).
    """
    train, test = np.asarray(train), np.asarray(test)
    K_tr = np.asarray(K[np.ix_(train, train)], dtype=np.float64)
    K_tr = (K_tr + K_tr.T) / 2  # exact symmetry for eigh
    w, Q = np.linalg.eigh(K_tr)
    rtol = len(train) * np.finfo(np.float64).eps if rtol is None else rtol
    keep = w > rtol * max(float(w.max(initial=0.0)), 0.0)
    if not keep.any():
        return np.zeros((len(train), 1)), np.zeros((len(test), 1))
    Q, w = Q[:, keep], w[keep]
    root = np.sqrt(w)
    K_te = np.asarray(K[np.ix_(test, train)], dtype=np.float64)
    return Q * root, (K_te @ Q) / root


def linear_probe(
    K: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, classifier: str,
    config: ProbeConfig = ProbeConfig(), *,
    embedding: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Fit ``classifier`` on the training rows (C by inner CV) and score it on the test rows.

    Parameters
    ----------
    K : (n, n) float linear kernel of all rows (:func:`gram_matrix`), not the (n, d) features.
    y : (n,) int labels in {0, 1} (bool too).
    train, test : int row indices or (n,) boolean masks, disjoint. Only ``K[train, train]``,
        ``y[train]`` and ``K[test, train]`` are read; the test labels are used only to score.
    classifier : "svm" or "softmax".
    embedding : ``gram_embedding(K, train, test)`` when already computed (shared by both
        classifiers of a layer).

    Returns
    -------
    dict
        :func:`vsent.metrics.binary_metrics` on the test rows plus ``C`` (chosen),
        ``inner_accuracy`` (its mean inner-CV accuracy), ``inner_scores`` (mean inner-CV
        accuracy per C of ``config.Cs``), ``converged`` and ``rank`` (kernel rank used).
    """
    shape = np.shape(K)  # (not np.asarray: K may be a large memory map)
    if len(shape) != 2 or shape[0] != shape[1]:  # X (n, d) for K: an IndexError further on
        raise ValueError(f"K must be the (n, n) linear kernel of the rows (gram_matrix of the "
                         f"features), got shape {shape}")
    y = np.asarray(y)
    if y.shape != (shape[0],):
        raise ValueError(f"y must hold one label per row of K, shape ({shape[0]},), got "
                         f"{y.shape}")
    disjoint_rows(train, test)  # (boolean masks too, as hand_crafted_probabilities)
    y_tr = y[train]
    if not np.isin(y_tr, (0, 1)).all() or not np.isin(y[test], (0, 1)).all():
        # {0, 2} read as "0 images of one class", strings as a numpy cast error
        raise ValueError(f"y must hold labels 0/1, got values such as "
                         f"{np.unique(y)[:3].tolist()}")
    counts = np.bincount(y_tr.astype(np.int64), minlength=2)
    if counts.min() < config.inner_splits:
        raise VsentError(
            f"the training rows have {counts.min()} images of one class, fewer than the "
            f"{config.inner_splits} inner folds; use fewer inner splits"
        )
    inner = StratifiedKFold(config.inner_splits, shuffle=True, random_state=config.seed)
    search = GridSearchCV(
        make_classifier(classifier, seed=config.seed, max_iter=config.max_iter),
        {"clf__C": list(config.Cs)}, cv=inner, scoring="accuracy", refit=True, n_jobs=1,
    )
    # One BLAS thread: the matrices are small, and threads only contend with each other.
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        Z_tr, Z_te = gram_embedding(K, train, test) if embedding is None else embedding
        search.fit(Z_tr, y_tr)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # pass on anything that is not the (recorded) convergence warning
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    pred = search.predict(Z_te)
    result = binary_metrics(y[test], pred)
    result.update(
        C=float(search.best_params_["clf__C"]),
        inner_accuracy=float(search.best_score_),
        inner_scores=[float(s) for s in search.cv_results_["mean_test_score"]],
        converged=converged,
        rank=int(Z_tr.shape[1]),
    )
    return result


def gram_matrix(features: np.ndarray | str | Path, *, block_bytes: int = _BLOCK_BYTES
                ) -> np.ndarray:
    """``X X^T`` in float64, accumulated over column blocks of ``X``.

    Parameters
    ----------
    features : (n, d) array, or the path of a C-order float32/float64 ``.npy`` file, which is
        read one column block (about ``block_bytes`` as float64) at a time with plain reads
        (a 1 GB conv1 file never sits in memory; a memory map would count the whole file in
        the resident set once every row has been touched).

    Returns
    -------
    (n, n) float64 array.
    """
    K: np.ndarray | None = None
    for block in _column_blocks(features, block_bytes):
        if K is None:
            K = np.zeros((block.shape[0],) * 2, dtype=np.float64)
        K += block @ block.T  # numpy uses syrk for A @ A.T
    return K


def _column_blocks(features: np.ndarray | str | Path, block_bytes: int) -> Iterator[np.ndarray]:
    """The column blocks of ``features`` (as :func:`gram_matrix` takes them), in order, each
    float64 (n, <= step) of about ``block_bytes``; at least one block (an (n, 0) array's is
    empty), so that the caller knows n."""
    if not isinstance(features, (str, Path)):
        X = np.asarray(features)
        X = X.reshape(X.shape[0], -1)
        n, d = X.shape
        step = _columns_per_block(n, block_bytes)
        for start in range(0, max(d, 1), step):
            yield np.asarray(X[:, start:start + step], dtype=np.float64)
        return
    path = Path(features)
    with path.open("rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        if fortran or dtype.kind != "f" or len(shape) != 2:
            raise VsentError(f"{path}: expected a C-order 2-D float array, got {dtype} "
                             f"{shape}{' (Fortran order)' if fortran else ''}")
        offset, (n, d), size = f.tell(), shape, dtype.itemsize
        step = _columns_per_block(n, block_bytes)
        for start in range(0, max(d, 1), step):
            block = np.empty((n, max(0, min(step, d - start))), dtype=dtype)
            for i in range(n):  # one contiguous read per row
                f.seek(offset + (i * d + start) * size)
                if f.readinto(memoryview(block[i]).cast("B")) != block.shape[1] * size:
                    raise VsentError(f"{path}: file is shorter than its header says")
            yield block.astype(np.float64)


def _columns_per_block(n: int, block_bytes: int) -> int:
    """Columns of an (n, d) matrix in a block of about ``block_bytes`` as float64 (>= 1)."""
    return max(1, block_bytes // (8 * max(n, 1)))


def probe_features(
    X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
    config: ProbeConfig = ProbeConfig(),
) -> dict[str, dict[str, Any]]:
    """Both classifiers of ``config`` on in-memory features ``X`` (n, d).

    See :func:`linear_probe`; returns ``{classifier: result}``.
    """
    K = gram_matrix(np.asarray(X))
    emb = gram_embedding(K, train, test)
    return {c: linear_probe(K, y, train, test, c, config, embedding=emb)
            for c in config.classifiers}


# --------------------------------------------------------------------------------------------
# feature extraction


def pooled_grid(shape: Sequence[int], max_features: int | None) -> int | None:
    """Side ``s`` of the average-pooling grid for an activation of ``shape`` (C, H, W), or None.

    None when the activation is not spatial or already has at most ``max_features`` values;
    otherwise the largest ``s`` with ``C * s * s <= max_features`` (at least 1).
    """
    if max_features is None or len(shape) != 3:
        return None
    c, h, w = shape
    if c * h * w <= max_features:
        return None
    return max(1, min(h, w, math.isqrt(max_features // c)))


def _reduce(act: torch.Tensor, pool: str, max_features: int | None
            ) -> tuple[torch.Tensor, int | str | None]:
    """One layer's batch of activations (B, ...) -> (B, dim) as it is stored, and how it was
    pooled: ``model.info.pool_of(layer)`` first ("avg": global average of a (B, C, h, w) map,
    recorded as grid 1; "tokens": mean over T of (B, T, C)), then a spatial map with more than
    ``max_features`` values is average-pooled to the grid of :func:`pooled_grid`."""
    if pool == "avg" and act.dim() == 4:
        return act.mean(dim=(2, 3)), 1
    if pool == "tokens" and act.dim() == 3:
        return act.mean(dim=1), "tokens"
    grid = pooled_grid(tuple(act.shape[1:]), max_features)
    if grid is not None:
        act = F.adaptive_avg_pool2d(act, grid)
    return act.reshape(len(act), -1), grid


def extract_layer_features(
    model: nn.Module,
    images: np.ndarray,
    out_dir: str | Path,
    *,
    layers: Sequence[str] | None = None,
    rows: np.ndarray | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    max_features: int | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Write the flattened activations of ``layers`` for ``images[rows]`` into ``out_dir``.

    The network runs through :func:`vsent.inference.infer` (centre crop, captured layers).

    Parameters
    ----------
    model : a vsent model (``model.info``); put in eval mode.
    images : uint8 (N, S, S, 3) RGB, ``S = model.info.preprocess.resize`` (the image cache).
    layers : module names (default ``model.info.probe_layers``).
    rows : indices of the images to use, in output order (default all).
    max_features : spatial activations with more values are average-pooled (see
        :func:`pooled_grid`); None keeps every layer raw. Layers the model declares pooled
        (``model.info.pool_of``: "avg", "tokens") are reduced that way first.

    Returns
    -------
    dict layer -> {"path", "shape" (activation shape per image), "dim" (stored values per image),
    "pooled" (grid side, "tokens" or None)}. Each file is a float32 ``.npy`` of shape
    (len(rows), dim).
    """
    from vsent.inference import infer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = list(model.info.probe_layers if layers is None else layers)
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    info: dict[str, dict[str, Any]] = {}
    it = progress_bar(range(0, len(rows), batch_size), desc=f"features -> {out_dir.name}",
                      unit="batch", enabled=progress)
    for start in it:
        idx = rows[start:start + batch_size]
        # one batch at a time: the activations of all images never sit in memory together
        acts = infer(model, images[idx], batch_size=len(idx), device=device,
                     capture=layers).activations
        for name in layers:
            act = torch.from_numpy(acts.pop(name))
            shape = tuple(act.shape[1:])
            flat, pooled = _reduce(act, model.info.pool_of(name), max_features)
            if name not in info:
                path = out_dir / f"{name}.npy"
                try:
                    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                              shape=(len(rows), flat.shape[1]))
                    reserve_space(path)  # a full disk: said here, not a SIGBUS later
                except OSError as e:
                    raise VsentError(
                        f"{path}: cannot write the {name} features ({e.strerror or e}; "
                        f"{4 * len(rows) * flat.shape[1] / 1e6:.1f} MB): make room, or probe "
                        "fewer layers at a time (--layers, --delete-features)") from None
                info[name] = {"path": str(path), "shape": list(shape), "dim": flat.shape[1],
                              "pooled": pooled}
            mm = np.load(info[name]["path"], mmap_mode="r+")
            mm[start:start + len(idx)] = flat.numpy()
            mm.flush()
            del mm  # unmapped after every batch: written pages do not pile up in memory
    return info


__all__ = [
    "CLASSIFIERS", "CenterScale", "DEFAULT_CS", "ProbeConfig", "extract_layer_features",
    "gram_embedding", "gram_matrix", "linear_probe", "make_classifier", "pooled_grid",
    "probe_features",
]
