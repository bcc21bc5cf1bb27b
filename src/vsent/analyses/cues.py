"""Affect cues of an image: colour statistics and faces/smiles, as a fixed-length vector.

Issue 10, lever 3: features the literature ties to affect, to be fused with the CNN
(:mod:`vsent.analyses.fusion_run`). One row per image, columns :data:`CUE_NAMES`:

* ``brightness_mean``, ``brightness_std`` - HSV value V = max(R, G, B) / 255, in [0, 1]
  (Valdez & Mehrabian 1994; Machajdik & Hanbury 2010 use brightness and saturation means).
* ``saturation_mean``, ``saturation_std`` - HSV saturation S = (max - min) / max, in [0, 1]
  (0 for black pixels).
* ``colourfulness`` - Hasler & Suesstrunk (2003): with ``rg = R - G`` and
  ``yb = (R + G) / 2 - B`` (0..255 units), ``sqrt(std_rg^2 + std_yb^2) +
  0.3 sqrt(mean_rg^2 + mean_yb^2)``; 0 for any grey image, 85.5 for pure red.
* ``warm_share``, ``cool_share`` - share of *all* pixels that are chromatic (S >= 0.2 and
  V >= 0.2) with a warm hue (red, orange, yellow: H in [330, 360) or [0, 90) degrees) or a cool
  hue (cyan, blue: H in [150, 270)); greens and purples count as neither.
* ``faces`` - number of frontal faces (OpenCV's bundled Haar cascade
  ``haarcascade_frontalface_default.xml``); ``smiles`` - number of those faces with a smile
  (``haarcascade_smile.xml`` in the lower half of the face box, scaled to a fixed width so
  small faces are searched at the cascade's scale); ``face_area`` - share of the image covered
  by face boxes (capped at 1).

Every cue is computed on a copy whose longer side is :attr:`CueParams.max_side` px (aspect
kept), so values do not depend on the upload size. :func:`dataset_cues` computes them for many
images in threads and caches them like the baselines' features (``$VSENT_CACHE/cues``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vsent.analyses.opencv import check_rgb, cv2_feature, resize_longer_side
from vsent.data._common import default_workers
from vsent.data.cache import cache_dir_default, content_key, key_number
from vsent.data.datasets import Dataset
from vsent.data.images import load_rgb
from vsent.errors import VsentError
from vsent.files import load_cache_entry, mark_used, write_cache_file
from vsent.progress import progress_bar
from vsent.runs import Timer

__all__ = [
    "COLOUR_CUES", "CUE_NAMES", "FACE_CUES", "CueFeatures", "CueParams", "colour_cues",
    "colourfulness", "dataset_cues", "face_cues", "image_cues",
]

log = logging.getLogger("vsent")

#: Columns of :func:`colour_cues`.
COLOUR_CUES = ("brightness_mean", "brightness_std", "saturation_mean", "saturation_std",
               "colourfulness", "warm_share", "cool_share")
#: Columns of :func:`face_cues`.
FACE_CUES = ("faces", "smiles", "face_area")
#: Columns of :func:`image_cues` and :func:`dataset_cues`, in order.
CUE_NAMES = COLOUR_CUES + FACE_CUES

#: Hue ranges in degrees, [start, end); warm wraps around 0.
WARM_HUES = ((330.0, 360.0), (0.0, 90.0))
COOL_HUES = ((150.0, 270.0),)
#: A pixel has a hue worth counting from this saturation and value on (both in [0, 1]).
CHROMATIC_MIN = 0.2

# Bump when a cue's definition changes, so stale cache files are not reused.
_CACHE_FORMAT = "v1"


@dataclass(frozen=True)
class CueParams:
    """How cues are computed (part of the cache key).

    Attributes
    ----------
    max_side : longer side of the working copy, px (faces of 24 px, 1/13 of it, are found).
    face_scale, face_neighbors : ``detectMultiScale`` scaleFactor and minNeighbors of faces.
    min_face : smallest face side, px on the working copy.
    mouth_width : the lower half of each face box is resized to this width before the smile
        search (the smile cascade's window is 36 x 18 px).
    smile_scale, smile_neighbors : the same for smiles (strict: the smile cascade fires easily).

    The defaults were set by eye on OpenCV's sample settings and 60 five-agree images (faces
    boxed, smiles found on the smiling ones), never from labels or accuracy; about 0.2 s per
    image on one core, dominated by the face cascade.
    """

    max_side: int = 320
    face_scale: float = 1.1
    face_neighbors: int = 5
    min_face: int = 24
    mouth_width: int = 100
    smile_scale: float = 1.1
    smile_neighbors: int = 20

    def __post_init__(self) -> None:
        if (self.max_side < 32 or self.face_scale <= 1 or self.smile_scale <= 1
                or self.face_neighbors < 0 or self.smile_neighbors < 0 or self.min_face < 1
                or self.mouth_width < 36):
            raise VsentError(f"invalid cue parameters: {self}")

    def key(self) -> str:
        """Short stable text naming these parameters (for cache file names)."""
        return "-".join(key_number(v) if isinstance(v, float) else str(v)
                        for v in asdict(self).values())


# --------------------------------------------------------------------------------------------
# one image


def colourfulness(image: np.ndarray) -> float:
    """Hasler & Suesstrunk's colourfulness M of an RGB uint8 image (0..255 units).

    ``M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)`` with
    ``rg = R - G``, ``yb = (R + G) / 2 - B`` over all pixels (population std).
    """
    x = check_rgb(image).astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _in_ranges(h: np.ndarray, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    return np.logical_or.reduce([(h >= lo) & (h < hi) for lo, hi in ranges])


def colour_cues(image: np.ndarray) -> np.ndarray:
    """The :data:`COLOUR_CUES` of an RGB uint8 image (H, W, 3): float64 (7,)."""
    image = check_rgb(image)
    # float input: OpenCV gives H in degrees [0, 360), S and V in [0, 1] (no 8-bit rounding)
    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV).astype(np.float64)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chromatic = (s >= CHROMATIC_MIN) & (v >= CHROMATIC_MIN)
    warm = float(np.mean(chromatic & _in_ranges(h, WARM_HUES)))
    cool = float(np.mean(chromatic & _in_ranges(h, COOL_HUES)))
    return np.array([v.mean(), v.std(), s.mean(), s.std(), colourfulness(image), warm, cool])


_CASCADES = threading.local()  # one pair per thread: a CascadeClassifier is not thread-safe


def _cascades() -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier]:
    if not hasattr(_CASCADES, "pair"):
        pair = []
        for name in ("haarcascade_frontalface_default.xml", "haarcascade_smile.xml"):
            path = Path(cv2.data.haarcascades) / name
            clf = cv2_feature("CascadeClassifier", "face and smile cues")(str(path))
            if clf.empty():
                raise VsentError(f"{path}: cannot load OpenCV's Haar cascade (broken "
                                 f"opencv install?)")
            pair.append(clf)
        _CASCADES.pair = tuple(pair)
    return _CASCADES.pair


def face_cues(image: np.ndarray, params: CueParams | None = None) -> np.ndarray:
    """The :data:`FACE_CUES` of an RGB uint8 image: float64 (3,) = faces, smiles, face area.

    The image should already be at the working size (:func:`image_cues` resizes it); the
    grey copy is histogram-equalised, as OpenCV's face detection samples do.
    """
    params = params or CueParams()
    image = check_rgb(image)
    face_clf, smile_clf = _cascades()
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    faces = face_clf.detectMultiScale(gray, scaleFactor=params.face_scale,
                                      minNeighbors=params.face_neighbors,
                                      minSize=(params.min_face, params.min_face))
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 4)
    smiles = 0
    for x, y, w, h in faces:
        mouth = gray[y + h // 2: y + h, x: x + w]  # smiles are in the lower half of a face
        mw = params.mouth_width
        mouth = cv2.resize(mouth, (mw, max(18, round(mw * mouth.shape[0] / mouth.shape[1]))),
                           interpolation=cv2.INTER_LINEAR)
        found = smile_clf.detectMultiScale(mouth, scaleFactor=params.smile_scale,
                                           minNeighbors=params.smile_neighbors,
                                           minSize=(mw // 5, mw // 10))
        smiles += len(found) > 0
    area = float(np.sum(faces[:, 2] * faces[:, 3])) / gray.size if len(faces) else 0.0
    return np.array([float(len(faces)), float(smiles), min(1.0, area)])


def image_cues(image: np.ndarray, params: CueParams | None = None) -> np.ndarray:
    """All :data:`CUE_NAMES` of an RGB uint8 image (H, W, 3): float32 (10,).

    The image is first shrunk (aspect kept) so its longer side is at most ``max_side``.
    """
    params = params or CueParams()
    # never enlarged: it adds no detail and only slows the cascades
    work = resize_longer_side(check_rgb(image), params.max_side, enlarge=False)
    return np.concatenate([colour_cues(work), face_cues(work, params)]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# many images, cached


@dataclass
class CueFeatures:
    """Cues of a list of images.

    Attributes
    ----------
    values : float32 (N, len(names)); names : column names (:data:`CUE_NAMES`).
    seconds : wall time; decoded : images decoded (0 when read from the cache).
    """

    values: np.ndarray
    names: tuple[str, ...] = CUE_NAMES
    seconds: float = 0.0
    decoded: int = 0

    def column(self, name: str) -> np.ndarray:
        """One cue for every image: float32 (N,)."""
        return self.values[:, self.names.index(name)]


def dataset_cues(
    data: Dataset | Sequence[str | os.PathLike],
    params: CueParams | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> CueFeatures:
    """:func:`image_cues` of every image of a dataset (or list of paths), cached.

    The cache file ``<cache>/cues/cues-v1-<key>.npz`` is keyed by the images' contents
    (:func:`vsent.data.cache.content_key`) and by ``params``; it is written atomically.
    Images are decoded by :func:`vsent.data.load_rgb` in ``n_jobs`` threads (None or <= 0:
    all cores; OpenCV releases the GIL).

    Returns
    -------
    CueFeatures, rows in the order of ``data.paths`` (or of the paths given).
    """
    params = params or CueParams()
    paths = [Path(p) for p in (data.paths if isinstance(data, Dataset) else data)]
    timer = Timer()
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_dir_default()
    key = content_key(paths, params.max_side)[:24]
    file = root / "cues" / f"cues-{_CACHE_FORMAT}-{params.key()}-{key}.npz"
    entry = load_cache_entry(file, "cue cache entry", ("values", "names"))
    if entry is not None:  # (else computed again and rewritten below)
        values, names = entry[0], tuple(str(n) for n in entry[1])
        if names == CUE_NAMES and values.shape == (len(paths), len(CUE_NAMES)):
            log.info("cues of %d images from %s", len(paths), file)
            mark_used(file)
            return CueFeatures(values, names, seconds=timer.elapsed, decoded=0)

    def work(p: Path) -> np.ndarray:
        return image_cues(np.asarray(load_rgb(p), dtype=np.uint8), params)

    workers = default_workers(n_jobs if n_jobs and n_jobs > 0 else None)
    values = np.zeros((len(paths), len(CUE_NAMES)), np.float32)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = pool.map(work, paths)
        for i, row in enumerate(progress_bar(rows, total=len(paths), desc="cues",
                                             unit="img", enabled=progress)):
            values[i] = row
    write_cache_file(file, lambda f: np.savez(f, values=values, names=np.array(CUE_NAMES)),
                     "cue cache")
    log.info("cues of %d images: %.1f s", len(paths), timer.elapsed)
    return CueFeatures(values, CUE_NAMES, seconds=timer.elapsed, decoded=len(paths))
