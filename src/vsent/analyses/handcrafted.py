"""Hand-crafted image features: colour histograms, SIFT, bag of visual words, Fisher vectors.

The features of You et al.'s (2015) baselines, after Siersdorfer et al. (2010), and a stronger
encoding of the same descriptors (issue 10):

* **GCH** - global colour histogram: RGB quantised to 4 levels per channel, one joint 64-bin
  histogram, L1-normalised (:func:`gch`).
* **LCH** - local colour histograms: the image cut into a 4 x 4 grid, one 64-bin histogram per
  block, 1024 values (:func:`lch`).
* **SIFT** - OpenCV SIFT descriptors on a grayscale copy whose longer side is 256 px, on a dense
  grid or at detected keypoints (:func:`sift_descriptors`, :class:`SiftParams`).
* **BoW** - the descriptors quantised against a k-means vocabulary (:func:`learn_vocabulary`,
  :func:`bow_histograms`).
* **FV** - the improved Fisher vector (Perronnin et al. 2010): RootSIFT, PCA, a diagonal
  Gaussian mixture (:func:`learn_fisher`, :func:`fisher_vectors`).

:func:`extract_features` computes the per-image part (histograms, descriptors) of a whole
dataset once and caches it on disk; vocabularies and mixtures are learnt per training fold by
the callers (:func:`vsent.analyses.baselines.fold_blocks`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from vsent.analyses.opencv import check_rgb, resize_longer_side
from vsent.data import load_rgb
from vsent.data._common import default_workers, positive_int
from vsent.data.cache import cache_dir_default, content_key, key_number
from vsent.errors import VsentError
from vsent.files import load_cache_entry, mark_used, write_cache_file
from vsent.progress import progress_bar
from vsent.runs import Timer

log = logging.getLogger("vsent.handcrafted")

# ---------------------------------------------------------------------------------------------
# Features of one image
# ---------------------------------------------------------------------------------------------


def gch(image: np.ndarray, bins: int = 4) -> np.ndarray:
    """Global colour histogram: one joint RGB histogram, L1-normalised.

    Each channel is quantised to ``bins`` equal levels (level = value * bins // 256) and the
    bin of a pixel is ``(r_level * bins + g_level) * bins + b_level`` (red most significant).

    Parameters
    ----------
    image : uint8 array (H, W, 3), RGB.
    bins : levels per channel, an integer >= 1 (default 4, giving 64 bins).

    Returns
    -------
    float32 array (bins ** 3,) summing to 1 (all zeros for an empty image).
    """
    bins = positive_int(bins, "bins")  # "4" was OpenCV's overload error, 0 an AttributeError
    image = check_rgb(image, allow_empty=True)  # an empty block of lch
    if image.size == 0:
        return np.zeros(bins**3, np.float32)
    hist = cv2.calcHist([image], [0, 1, 2], None, [bins] * 3, [0, 256] * 3)  # [r, g, b]
    hist = hist.reshape(-1)
    total = hist.sum()
    return (hist / total if total > 0 else hist).astype(np.float32)


def lch(image: np.ndarray, grid: int = 4, bins: int = 4) -> np.ndarray:
    """Local colour histograms: a ``grid`` x ``grid`` partition, one :func:`gch` per block.

    Blocks are taken in row-major order (top-left, then left to right, then the next row
    down); block edges are ``round(linspace(0, H, grid + 1))`` (same for W). Each block's
    histogram is normalised by its own pixel count and divided by ``grid ** 2``, so every
    block sums to ``1 / grid ** 2`` and the whole vector to 1, whatever the block sizes (an
    image fewer than ``grid`` pixels high or wide has empty blocks, all zeros: less than 1).

    Parameters
    ----------
    image : uint8 array (H, W, 3), RGB.
    grid : blocks per side, an integer >= 1; bins : levels per channel, as :func:`gch`.

    Returns
    -------
    float32 array (grid * grid * bins ** 3,), 1024 values for the defaults.
    """
    grid = positive_int(grid, "grid")  # 0 was numpy's "need at least one array to concatenate"
    image = check_rgb(image, allow_empty=True)  # its blocks may be empty (see above)
    h, w = image.shape[:2]
    rows = np.linspace(0, h, grid + 1).round().astype(int)
    cols = np.linspace(0, w, grid + 1).round().astype(int)
    blocks = [
        gch(image[rows[i]:rows[i + 1], cols[j]:cols[j + 1]], bins)
        for i in range(grid) for j in range(grid)
    ]
    return (np.concatenate(blocks) / grid**2).astype(np.float32)


@dataclass(frozen=True)
class SiftParams:
    """How SIFT descriptors are extracted (part of the cache key).

    Attributes
    ----------
    mode : ``"dense"`` (default) - descriptors on a regular grid, every ``step`` px, patch
        diameter ``size`` px; every image gets about (256 / step) ** 2 descriptors, also flat
        images (text on a plain background is common in tweets) where the detector finds few
        or none. ``"keypoints"`` - OpenCV's difference-of-Gaussian detector, about
        ``max_keypoints`` per image (may be zero; OpenCV's cut may keep a few more: 501 for
        500 on a 128 x 128 noise image).
    max_side : the grayscale image is resized (aspect kept) so its longer side has this many
        pixels, so descriptor counts and scales do not depend on the upload size.
    """

    mode: str = "dense"
    max_side: int = 256
    step: int = 12
    size: float = 16.0
    max_keypoints: int = 500

    def __post_init__(self) -> None:
        if self.mode not in ("dense", "keypoints"):
            raise VsentError(f"--sift must be 'dense' or 'keypoints', got {self.mode!r}")
        if self.step < 1:  # the one number of these the CLI sets
            raise VsentError(f"--sift-step must be >= 1 pixel, got {self.step}")
        bad = [f"{name} {value}" for name, value, ok in (
            ("max_side", self.max_side, self.max_side >= 16), ("size", self.size, self.size > 0),
            ("max_keypoints", self.max_keypoints, self.max_keypoints >= 1)) if not ok]
        if bad:
            raise VsentError(f"SIFT parameters out of range: {', '.join(bad)} (max_side >= 16, "
                             "size > 0, max_keypoints >= 1)")

    def key(self) -> str:
        """Short stable text naming these parameters (for cache folder names)."""
        if self.mode == "dense":
            return f"dense-s{self.max_side}-st{self.step}-sz{key_number(self.size)}"
        return f"kp-s{self.max_side}-n{self.max_keypoints}"


def sift_descriptors(image: np.ndarray, params: SiftParams | None = None) -> np.ndarray:
    """SIFT descriptors of an RGB image (see :class:`SiftParams`).

    Returns
    -------
    uint8 array (n, 128). OpenCV's SIFT descriptors are integers in 0..255, so uint8 is
    lossless and four times smaller in the cache. ``n`` may be 0: in keypoint mode, or in
    dense mode for an image whose resized copy is too thin for one grid point (a banner).
    """
    params = params or SiftParams()
    image = check_rgb(image)  # an empty one: refused here, not by OpenCV's resize
    gray = cv2.cvtColor(resize_longer_side(image, params.max_side), cv2.COLOR_RGB2GRAY)
    if params.mode == "dense":
        h, w = gray.shape
        half = params.step / 2
        keypoints = [cv2.KeyPoint(float(x), float(y), params.size)
                     for y in np.arange(half, h, params.step)
                     for x in np.arange(half, w, params.step)]
        if not keypoints:  # OpenCV fails on an empty list rather than returning nothing
            return np.zeros((0, 128), np.uint8)
        _, desc = cv2.SIFT_create().compute(gray, keypoints)
    else:
        _, desc = cv2.SIFT_create(nfeatures=params.max_keypoints).detectAndCompute(gray, None)
    if desc is None:
        return np.zeros((0, 128), np.uint8)
    return np.clip(np.rint(desc), 0, 255).astype(np.uint8)


def image_features(image: np.ndarray, sift: SiftParams | None = None, *, colour: bool = True,
                   need_sift: bool = True
                   ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """GCH (64,), LCH (1024,) and SIFT descriptors (n, 128) of one RGB image, as
    :func:`extract_features` computes them: all on one copy whose longer side is
    ``sift.max_side`` px. A feature not asked for (``colour``, ``need_sift``) is None."""
    sift = sift or SiftParams()
    rgb = resize_longer_side(check_rgb(image), sift.max_side)
    desc = sift_descriptors(rgb, sift) if need_sift else None  # already resized: a no-op there
    if colour:
        return gch(rgb), lch(rgb), desc
    return None, None, desc


# ---------------------------------------------------------------------------------------------
# Features of a dataset, cached
# ---------------------------------------------------------------------------------------------

@dataclass
class ImageFeatures:
    """Features of every image of a dataset, in dataset order.

    Attributes
    ----------
    gch : float32 (N, 64); lch : float32 (N, 1024); descriptors : N uint8 arrays (n_i, 128).
    seconds : wall time of :func:`extract_features`; decoded : images decoded (cache misses).
    """

    gch: np.ndarray
    lch: np.ndarray
    descriptors: list[np.ndarray]
    seconds: float = 0.0
    decoded: int = 0


# Bump when the histogram or descriptor code changes, so stale cache files are not reused.
_CACHE_FORMAT = "v1"


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write atomically: concurrent runs and threads (two images of the same bytes share an
    entry) and interrupted writes never leave half a file."""
    write_cache_file(path, lambda f: np.save(f, array), "feature cache")


def _load_image(path: Path) -> np.ndarray:
    return np.asarray(load_rgb(path), dtype=np.uint8)  # safe decoding, EXIF, alpha, 16-bit


def extract_features(
    paths: Sequence[str | Path],
    *,
    sift: SiftParams | None = None,
    colour: bool = True,
    need_sift: bool = True,
    cache_dir: str | Path | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> ImageFeatures:
    """Colour histograms and SIFT descriptors of the images, computed once and cached.

    Colour histograms are computed on the same resized copy as SIFT (longer side
    ``sift.max_side``; averaging pixels changes them only slightly) and cached as one ``.npz``
    per list of images; descriptors are cached per image as ``.npy``, so the nested Twitter
    subsets share them. Cache keys hold each file's contents (SHA-1 of its bytes) and the
    parameters.
    Images are processed by ``n_jobs`` threads (default: all CPU cores; OpenCV and Pillow
    release the GIL).

    Parameters
    ----------
    paths : image files (anything :func:`vsent.data.load_rgb` reads).
    colour, need_sift : which features are needed (the others are returned empty).
    """
    sift = sift or SiftParams()
    root = Path(cache_dir) if cache_dir is not None else cache_dir_default()
    base = root / "baselines"
    sift_dir = base / f"sift-{_CACHE_FORMAT}-{sift.key()}"
    try:
        sift_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VsentError(f"cannot create feature cache {sift_dir}: {e.strerror}") from None
    paths = [Path(p) for p in paths]
    timer = Timer()
    n = len(paths)

    # keyed by the files' contents, in order, and the resize side
    colour_file = base / f"colour-{_CACHE_FORMAT}-{content_key(paths, sift.max_side)[:24]}.npz"
    gch_all = np.zeros((n, 64), np.float32)
    lch_all = np.zeros((n, 1024), np.float32)
    entry = load_cache_entry(colour_file, "colour histogram cache entry", ("gch", "lch")) \
        if colour else None
    need_colour = colour and entry is None
    if entry is not None:
        gch_all, lch_all = entry
        mark_used(colour_file)
    if need_sift:
        mark_used(sift_dir)  # one entry of `vsent cache`: its last use

    def work(i: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, bool]:
        desc_file = sift_dir / f"{content_key([paths[i]], sift.max_side)[:24]}.npy"
        desc = load_cache_entry(desc_file, "SIFT cache entry") if need_sift else None
        if not need_colour and (desc is not None or not need_sift):
            return None, None, desc, False
        g, loc, new_desc = image_features(_load_image(paths[i]), sift, colour=need_colour,
                                          need_sift=need_sift and desc is None)
        if new_desc is not None:
            desc = new_desc
            _save_npy(desc_file, desc)
        return g, loc, desc, True

    descriptors: list[np.ndarray] = [np.zeros((0, 128), np.uint8)] * n
    decoded = 0
    workers = default_workers(n_jobs if n_jobs and n_jobs > 0 else None)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(work, range(n))
        for i, (g, loc, desc, was_decoded) in enumerate(
            progress_bar(results, total=n, desc="features", unit="img", enabled=progress)
        ):
            if g is not None:
                gch_all[i], lch_all[i] = g, loc
            if desc is not None:
                descriptors[i] = desc
            decoded += was_decoded
    if need_colour:
        write_cache_file(colour_file, lambda f: np.savez(f, gch=gch_all, lch=lch_all),
                         "feature cache")
    log.info("features of %d images: %d decoded, %d from cache, %.1f s",
             n, decoded, n - decoded, timer.elapsed)
    return ImageFeatures(gch_all, lch_all, descriptors, seconds=timer.elapsed, decoded=decoded)


# ---------------------------------------------------------------------------------------------
# Bag of visual words
# ---------------------------------------------------------------------------------------------

def _sample_descriptors(descriptors: Sequence[np.ndarray], max_descriptors: int,
                        seed: int) -> np.ndarray:
    """All descriptors stacked (n, 128), or a seeded uniform sample of ``max_descriptors``."""
    stacked = np.concatenate([np.asarray(d).reshape(-1, 128) for d in descriptors])
    if len(stacked) > max_descriptors:
        rng = np.random.default_rng(seed)
        stacked = stacked[rng.choice(len(stacked), max_descriptors, replace=False)]
    return stacked


def learn_vocabulary(
    descriptors: Sequence[np.ndarray], *, k: int = 500, max_descriptors: int = 50_000,
    seed: int = 0,
) -> MiniBatchKMeans:
    """k-means vocabulary of SIFT descriptors (MiniBatchKMeans, k-means++ init, seeded).

    Pass the descriptors of the *training* images only. When they hold more than
    ``max_descriptors`` rows, a seeded uniform sample of that many is clustered (the usual
    practice for BoW vocabularies; it keeps each fold's k-means to seconds). Five-agree
    training folds hold about 240k dense descriptors.

    Returns
    -------
    fitted MiniBatchKMeans with ``cluster_centers_`` of shape (k, 128).
    """
    stacked = _sample_descriptors(descriptors, max_descriptors, seed)
    if len(stacked) < k:
        raise VsentError(f"vocabulary size k={k} is larger than the {len(stacked)} SIFT "
                         f"descriptors of the training images; use a smaller k (--k)")
    # 10 passes over the sample: measured on Twitter five-agree, the held-out inertia is within
    # 1.3 % of 100k descriptors x 10 passes at a third of the time (bench/bench_baselines.py)
    kmeans = MiniBatchKMeans(n_clusters=k, batch_size=2048, n_init=1, max_iter=10,
                             random_state=seed)
    # one BLAS thread, as sklearn runs the mini-batch steps: its k-means++ init (k steps of
    # small products over 3 x batch_size descriptors, whatever the data size) was 10-20x
    # slower with a thread per core on busy cores; the centres are the same bits
    with threadpool_limits(1, user_api="blas"):
        return kmeans.fit(stacked.astype(np.float32))


def nearest_centres(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index (n,) of the nearest of ``centres`` (k, d) for each row of ``X`` (n, d): k-means'
    assignment, in float64 with plain numpy (sklearn's OpenMP kernels warn when a thread pool
    of ours calls them, as :class:`vsent.predict.Predictor` does)."""
    X, C = np.asarray(X, np.float64), np.asarray(centres, np.float64)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centre
    return np.argmin((C * C).sum(1) - 2.0 * X @ C.T, axis=1)


def bow_histograms(
    vocabulary: MiniBatchKMeans | np.ndarray, descriptors: Sequence[np.ndarray], *,
    norm: str = "l1",
) -> np.ndarray:
    """Bag-of-words histogram of each image: counts of nearest visual words, normalised.

    Parameters
    ----------
    vocabulary : fitted k-means (see :func:`learn_vocabulary`), or its ``cluster_centers_``
        (k, 128) as saved in a checkpoint (words by the same nearest-centre rule).
    descriptors : one (n_i, 128) array per image.
    norm : ``"l1"`` (histogram sums to 1) or ``"l2"`` (unit Euclidean norm). Images without
        descriptors get a zero row.

    Returns
    -------
    float32 array (N, k).
    """
    if norm not in ("l1", "l2"):
        raise VsentError(f"BoW norm must be 'l1' or 'l2', got {norm!r}")
    centres = vocabulary if isinstance(vocabulary, np.ndarray) else None
    k = len(centres) if centres is not None else vocabulary.n_clusters
    counts = np.array([len(d) for d in descriptors])
    hist = np.zeros((len(descriptors), k), np.float32)
    if counts.sum() == 0:
        return hist
    stacked = np.concatenate([np.asarray(d).reshape(-1, 128) for d in descriptors])
    if centres is not None:
        words = nearest_centres(stacked, centres)
    else:
        words = vocabulary.predict(stacked.astype(np.float32))
    owner = np.repeat(np.arange(len(descriptors)), counts)
    np.add.at(hist, (owner, words), 1.0)
    denom = hist.sum(1) if norm == "l1" else np.sqrt((hist**2).sum(1))
    nonzero = denom > 0
    hist[nonzero] /= denom[nonzero, None]
    return hist


# ---------------------------------------------------------------------------------------------
# Fisher vectors
# ---------------------------------------------------------------------------------------------

def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic and Zisserman 2012): each row L1-normalised, then its square root.

    (n, 128) uint8 or float -> float32 (n, 128) whose rows have unit L2 norm (zero rows stay 0).
    """
    d = np.asarray(descriptors, np.float32).reshape(-1, 128)
    total = d.sum(1, keepdims=True)
    return np.sqrt(np.divide(d, total, out=np.zeros_like(d), where=total > 0))


@dataclass
class FisherEncoder:
    """What :func:`fisher_vectors` needs: a PCA of RootSIFT and a diagonal Gaussian mixture."""

    pca: PCA
    gmm: GaussianMixture

    @property
    def dim(self) -> int:
        """Length of one Fisher vector: 2 x components x PCA dimensions."""
        return 2 * self.gmm.n_components * self.pca.n_components_


def learn_fisher(
    descriptors: Sequence[np.ndarray], *, n_components: int = 64, pca_dims: int = 64,
    max_descriptors: int = 50_000, seed: int = 0,
) -> FisherEncoder:
    """PCA and Gaussian mixture (diagonal covariances, seeded) of RootSIFT descriptors.

    Pass the descriptors of the *training* images only; a seeded sample of at most
    ``max_descriptors`` rows is used, as for the BoW vocabulary.
    """
    sample = root_sift(_sample_descriptors(descriptors, max_descriptors, seed))
    if len(sample) < max(n_components, pca_dims):
        raise VsentError(f"{len(sample)} SIFT descriptors in the training images are too few "
                         f"for a {n_components}-component mixture in {pca_dims} dimensions")
    pca = PCA(pca_dims, random_state=seed).fit(sample)
    gmm = GaussianMixture(n_components, covariance_type="diag", reg_covar=1e-6,
                          random_state=seed).fit(pca.transform(sample))
    return FisherEncoder(pca, gmm)


def fisher_vectors(encoder: FisherEncoder, descriptors: Sequence[np.ndarray]) -> np.ndarray:
    """Improved Fisher vector of each image (Perronnin, Sanchez and Mensink 2010).

    For the T descriptors x_t of an image (RootSIFT, PCA-projected) and the mixture's weights
    w_k, means mu_k and standard deviations sigma_k, with posteriors g_tk:
    ``d_k = 1 / (T sqrt(w_k)) sum_t g_tk (x_t - mu_k) / sigma_k`` and
    ``v_k = 1 / (T sqrt(2 w_k)) sum_t g_tk (((x_t - mu_k) / sigma_k)^2 - 1)``, concatenated
    (all d_k, then all v_k), then signed square root and L2 normalisation.

    Returns
    -------
    float32 (N, encoder.dim); an image without descriptors gets a zero row.
    """
    gmm = encoder.gmm
    mu, sigma, w = gmm.means_, np.sqrt(gmm.covariances_), gmm.weights_
    out = np.zeros((len(descriptors), encoder.dim), np.float32)
    # one BLAS thread: a few small products per image (a few hundred descriptors each) were
    # 3-4x slower with a thread per core on busy cores; the vectors are the same bits
    with threadpool_limits(1, user_api="blas"):
        for i, d in enumerate(descriptors):
            if len(d) == 0:
                continue
            x = encoder.pca.transform(root_sift(d))
            gamma = gmm.predict_proba(x)                                  # (T, K)
            z = (x[:, None, :] - mu[None]) / sigma[None]                   # (T, K, D)
            t = len(x)
            d_mu = np.einsum("tk,tkd->kd", gamma, z) / (t * np.sqrt(w))[:, None]
            d_var = np.einsum("tk,tkd->kd", gamma, z**2 - 1) / (t * np.sqrt(2 * w))[:, None]
            fv = np.concatenate([d_mu.ravel(), d_var.ravel()])
            fv = np.sign(fv) * np.sqrt(np.abs(fv))
            norm = np.linalg.norm(fv)
            out[i] = fv / norm if norm > 0 else fv
    return out
