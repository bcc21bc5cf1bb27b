"""Object proposals for affective regions: an edge map, then OpenCV contrib's EdgeBoxes.

Sun et al. (2016) generate N object proposals per image with EdgeBoxes (Zitnick & Dollar 2014)
on top of the Structured Edge detector (SED, Dollar & Zitnick 2013). SED needs a trained random
forest (``model.yml.gz``, research-only licence) that vsent does not ship and cannot download
offline, so by default the edge map comes from a small detector of our own:

``gradient`` (default)
    colour gradient magnitude on a triangle-smoothed CIE Lab image (largest response over the
    three channels), saturated to [0, 1) by ``1 - exp(-m / EDGE_TAU)``, orientation from the
    second derivatives of the smoothed edge map (as ``StructuredEdgeDetection.computeOrientation``
    does), then non-maximum suppression across the edge (as ``edgesNms`` does).
``sed``
    OpenCV's structured edge detector with a user-supplied model file (``--edge-model``),
    followed by OpenCV's own ``computeOrientation`` and ``edgesNms``.

EdgeBoxes scores depend on the edge map, so objectness values (and the regions they select) are
only comparable between runs that used the same detector; :attr:`EdgeDetector.name` records it.

Boxes are ``(x0, y0, x1, y1)`` integer pixel coordinates of the *original* image, end-exclusive,
always inside the image and at least one pixel wide. An image on which EdgeBoxes finds nothing
(a flat image) or that is smaller than the smallest allowed box gets the whole image as its only
proposal, with objectness 0 (see :func:`propose`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vsent.analyses.opencv import cv2_feature, resize_longer_side
from vsent.errors import VsentError
from vsent.files import NPZ_READ_ERRORS, file_sha256, mark_used, write_cache_file

__all__ = [
    "BOXES",
    "EDGE_TAU",
    "EdgeDetector",
    "ProposalConfig",
    "Proposals",
    "cached_proposals",
    "proposal_cache_dir",
    "edge_orientation",
    "edges_nms",
    "gradient_edges",
    "make_edge_detector",
    "propose",
    "triangle_smooth",
]

log = logging.getLogger("vsent")

#: Gradient magnitude (Lab units / 100 per pixel) mapped to 1 - 1/e ~ 0.63 by the default
#: detector. A clean step of 20 L* units gives about 0.75 after the smoothing (its steepest
#: slope is 5/18 of the step: 1 - exp(-0.2 * 5/18 / 0.04)); JPEG noise and soft texture stay
#: below EdgeBoxes' edgeMinMag of 0.1.
EDGE_TAU = 0.04


# --------------------------------------------------------------------------------------------
# edge maps


def triangle_smooth(img: np.ndarray, radius: int) -> np.ndarray:
    """Separable triangle filter of the given radius (Dollar's ``convTri``; OpenCV's ``imsmooth``).

    ``radius`` 0 returns the input. (The toolbox's [1 p 1] kernel for radii up to 1 is this
    triangle, [1 2 1] / 4, at radius 1: the radius here is a whole number.)
    """
    if radius <= 0:
        return img
    half = np.arange(1, radius + 2, dtype=np.float32)
    kernel = np.concatenate([half, half[-2::-1]]) / (radius + 1) ** 2
    return cv2.sepFilter2D(img, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def edge_orientation(edges: np.ndarray, radius: int = 4) -> np.ndarray:
    """Edge normal orientation in [0, pi) from the second derivatives of the smoothed edge map.

    The same formula as ``cv2.ximgproc.StructuredEdgeDetection.computeOrientation``:
    ``O = atan(Oyy * sign(-Oxy) / (Oxx + 1e-5)) mod pi``, where angle 0 means the edge's normal
    points along +x (a vertical edge). That method cannot be called without a SED model, hence
    this copy (which differs only where ``Oxy == 0`` exactly, see below).

    Parameters
    ----------
    edges : float32 (H, W) edge map.
    radius : triangle smoothing radius before differentiating.

    Returns
    -------
    float32 (H, W), values in [0, pi).
    """
    e = triangle_smooth(np.ascontiguousarray(edges, np.float32), radius)
    oxx = cv2.Sobel(e, cv2.CV_32F, 2, 0)
    oxy = cv2.Sobel(e, cv2.CV_32F, 1, 1)
    oyy = cv2.Sobel(e, cv2.CV_32F, 0, 2)
    # sign(-Oxy), with +1 where Oxy is exactly 0: OpenCV's 0 there gives a perfectly
    # horizontal edge orientation 0 instead of pi/2
    xysign = np.where(oxy > 0, -1.0, 1.0).astype(np.float32)
    o = np.arctan(oyy * xysign / (oxx + 1e-5))
    o = np.mod(o, np.pi).astype(np.float32)
    o[o >= np.float32(np.pi)] = 0.0  # float32 rounding of pi - tiny
    return o


def edges_nms(
    edges: np.ndarray, orientation: np.ndarray, r: int = 2, s: int = 0, m: float = 1.0
) -> np.ndarray:
    """Suppress edge pixels that are weaker than a neighbour across the edge.

    Vectorised version of ``StructuredEdgeDetection.edgesNms`` (which, too, needs a SED model to
    be called): a pixel is set to 0 if ``m * E`` is below the bilinearly interpolated edge value
    at distance ``d`` in ``1..r`` along the normal ``(cos O, sin O)`` on either side; the ``s``
    pixels next to the border are ramped down linearly.

    Returns
    -------
    float32 (H, W), same range as ``edges``.
    """
    e = np.ascontiguousarray(edges, np.float32)
    h, w = e.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = np.cos(orientation).astype(np.float32), np.sin(orientation).astype(np.float32)
    keep = np.ones_like(e, dtype=bool)
    em = e * np.float32(m)
    for d in [*range(-r, 0), *range(1, r + 1)]:
        mx = np.clip(xs + d * dx, 0, w - 1.001)
        my = np.clip(ys + d * dy, 0, h - 1.001)
        neighbour = cv2.remap(e, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        keep &= em >= neighbour
    out = np.where(keep, e, 0.0).astype(np.float32)
    s = min(s, h // 2, w // 2)
    if s > 0:
        ramp = np.arange(s, dtype=np.float32) / s
        out[:s] *= ramp[:, None]
        out[h - s:] *= ramp[::-1, None]
        out[:, :s] *= ramp[None, :]
        out[:, w - s:] *= ramp[None, ::-1]
    return out


def gradient_edges(
    rgb: np.ndarray, *, smooth: int = 2, orient_radius: int = 4, nms_radius: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """vsent's model-free edge detector: (edges in [0, 1), orientation in [0, pi)).

    Parameters
    ----------
    rgb : uint8 (H, W, 3) RGB image.
    smooth : triangle smoothing radius of the Lab image before the Sobel derivatives.
    orient_radius : smoothing radius of :func:`edge_orientation`.
    nms_radius : radius of :func:`edges_nms`.

    Returns
    -------
    edges, orientation : float32 (H, W) each.
    """
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab *= np.float32(1.0 / 100.0)  # L in [0, 1], a/b in about [-1.3, 1.3]
    lab = triangle_smooth(lab, smooth)
    # ksize 3 Sobel sums 8 x the per-pixel derivative
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT)
    mag = np.sqrt(gx * gx + gy * gy).max(axis=2)
    edges = (1.0 - np.exp(-mag / EDGE_TAU)).astype(np.float32)
    orientation = edge_orientation(edges, orient_radius)
    return edges_nms(edges, orientation, r=nms_radius), orientation


@dataclass(frozen=True)
class EdgeDetector:
    """A named edge detector: ``detect(rgb uint8 (H, W, 3)) -> (edges, orientation)``.

    ``name`` goes into run configs and cache keys: ``gradient`` or ``sed:<model file name>@<the
    first 12 hex digits of its SHA-256>``.
    """

    name: str
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


#: The options OpenCV reads from a SED model and divides by, and the forest's arrays: a file
#: OpenCV reads (YAML, XML, JSON) without them is loaded with zeros, and the first image then
#: kills the process (SIGFPE), without a message. (OpenCV's loader, modules/ximgproc/src/
#: structured_edge_detection.cpp, computes numberOfOutputChannels: a model does not hold it.)
SED_OPTIONS = ("numberOfTrees", "numberOfTreesToEvaluate", "stride", "shrinkNumber",
               "patchSize", "patchInnerSize", "selfsimilarityGridSize")
SED_ARRAYS = ("childs", "featureIds", "thresholds", "edgeBoundaries", "edgeBins")


def _check_sed_model(path: Path) -> None:
    """VsentError naming ``path`` unless it is an OpenCV file holding a SED forest (its
    positive :data:`SED_OPTIONS` and non-empty :data:`SED_ARRAYS`)."""
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as e:  # SystemError: OpenCV's error, wrapped by its binding
        msg = str(e.__cause__ or e).strip().splitlines()[-1]
        raise VsentError(f"--edge-model {path}: OpenCV cannot read it as a SED model: {msg}"
                         ) from None
    try:
        options = fs.getNode("options")
        bad = [k for k in SED_OPTIONS if not options.isMap() or options.getNode(k).real() < 1]
        bad += [k for k in SED_ARRAYS if fs.getNode(k).empty() or fs.getNode(k).size() == 0]
    finally:
        fs.release()
    if bad:
        raise VsentError(f"--edge-model {path}: not a SED model (no {', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}): give the model.yml.gz of "
                         "OpenCV's structured edge detection")


def make_edge_detector(edge_model: str | os.PathLike | None = None) -> EdgeDetector:
    """The default ``gradient`` detector, or OpenCV's SED when given its model file.

    Raises
    ------
    VsentError
        The model file is missing or OpenCV cannot read it.
    """
    if edge_model is None:
        return EdgeDetector("gradient", gradient_edges)
    path = Path(edge_model)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise VsentError(f"--edge-model {path}: {what} (a SED model.yml.gz)")
    ximgproc = cv2_feature("ximgproc", "--edge-model")
    _check_sed_model(path)
    try:
        sed = ximgproc.createStructuredEdgeDetection(str(path))
    except cv2.error as e:
        msg = str(e).strip().splitlines()[-1]
        raise VsentError(f"--edge-model {path}: OpenCV cannot read it as a SED model: {msg}"
                         ) from None

    def detect(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = sed.detectEdges(rgb.astype(np.float32) / 255.0)  # SED wants RGB float [0, 1]
        orientation = sed.computeOrientation(edges)
        return sed.edgesNms(edges, orientation, 2, 0, 1, True), orientation

    # the file's content, not only its name, keys the proposal cache and a resumed run
    return EdgeDetector(f"sed:{path.name}@{file_sha256(path)[:12]}", detect)


# --------------------------------------------------------------------------------------------
# EdgeBoxes


@dataclass(frozen=True)
class ProposalConfig:
    """How proposals are made; every field goes into the cache key and the run config.

    Parameters
    ----------
    n_proposals : at most this many boxes per image (EdgeBoxes' best-scoring ones).
    max_side : the image is downscaled so its longer side is at most this many pixels before the
        edge detection (boxes are mapped back to the original resolution). EdgeBoxes' cost grows
        with the image area: about 0.2 s per image at 320, 0.5 s at 500 on one CPU core.
    min_box_area : smallest box area in pixels of the downscaled image (EdgeBoxes' minBoxArea).
    alpha, beta : EdgeBoxes' sliding-window step and NMS IoU threshold (its defaults).
    max_aspect_ratio : EdgeBoxes' maxAspectRatio.
    """

    n_proposals: int = 100
    max_side: int = 320
    min_box_area: int = 1000
    alpha: float = 0.65
    beta: float = 0.75
    max_aspect_ratio: float = 3.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> ProposalConfig:
        """Raise :class:`VsentError` naming the first bad option (run when built: propose()
        given n_proposals=-5 fell back to the whole image); ``self``."""
        if self.n_proposals < 1:
            raise VsentError(f"--n-proposals must be >= 1, got {self.n_proposals}")
        if self.max_side < 16:
            raise VsentError(f"--proposal-side must be >= 16 pixels, got {self.max_side}")
        if self.min_box_area < 1:
            raise VsentError(f"--min-box-area must be >= 1, got {self.min_box_area}")
        return self


@dataclass(frozen=True)
class Proposals:
    """Proposal boxes of one image.

    Attributes
    ----------
    boxes : int32 (n, 4) ``x0, y0, x1, y1`` in original-image pixels, end-exclusive, n >= 1.
    objectness : float32 (n,) EdgeBoxes scores, best first (0 for the whole-image fallback).
    size : (width, height) of the original image.
    fallback : True when ``boxes`` is just the whole image (nothing found / image too small).
    seconds : wall-clock time of the edge detection + EdgeBoxes (0 when read from the cache).
    """

    boxes: np.ndarray
    objectness: np.ndarray
    size: tuple[int, int]
    fallback: bool
    seconds: float = 0.0


def _whole_image(w: int, h: int, seconds: float) -> Proposals:
    return Proposals(np.array([[0, 0, w, h]], np.int32), np.zeros(1, np.float32), (w, h), True,
                     seconds)


#: How vsent reads EdgeBoxes' boxes, kept with what it computed from them (the proposal cache
#: key, a regions run's fold files): OpenCV's x, y are 1-based and are read as such since
#: session 24; what was made before (every box one proposal-scale pixel off) is made again.
BOXES = "0-based"


def propose(
    rgb: np.ndarray, config: ProposalConfig = ProposalConfig(), detector: EdgeDetector | None = None
) -> Proposals:
    """EdgeBoxes proposals of one image.

    Parameters
    ----------
    rgb : uint8 (H, W, 3) RGB image, original resolution.
    config : proposal settings.
    detector : edge detector (default: :func:`make_edge_detector` ``()``, the gradient one).

    Returns
    -------
    Proposals with 1 <= n <= ``config.n_proposals`` boxes. If the (downscaled) image is smaller
    than ``config.min_box_area`` or EdgeBoxes finds no box (e.g. a flat image), the whole image
    is the only proposal (``fallback=True``, objectness 0), so every image has a region to score.
    """
    start = time.perf_counter()
    detector = detector or make_edge_detector()
    h, w = rgb.shape[:2]
    scale = min(1.0, config.max_side / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    if sw * sh < config.min_box_area or min(sw, sh) < 8:
        return _whole_image(w, h, time.perf_counter() - start)
    small = resize_longer_side(rgb, config.max_side, enlarge=False)  # (sw x sh)
    edges, orientation = detector.detect(np.ascontiguousarray(small))
    eb = cv2_feature("ximgproc", "EdgeBoxes proposals").createEdgeBoxes(
        alpha=config.alpha, beta=config.beta, maxAspectRatio=config.max_aspect_ratio,
        minBoxArea=config.min_box_area, maxBoxes=config.n_proposals,
    )
    boxes, scores = eb.getBoundingBoxes(edges, orientation)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(boxes) == 0:
        return _whole_image(w, h, time.perf_counter() - start)
    # (x, y, w, h) at the small scale -> end-exclusive corners at the original scale, clipped;
    # OpenCV's x, y are 1-based (its port of Dollar's MATLAB code adds 1): the first pixel is 0
    boxes[:, :2] -= 1
    x0 = np.floor(boxes[:, 0] / scale)
    y0 = np.floor(boxes[:, 1] / scale)
    x1 = np.ceil((boxes[:, 0] + boxes[:, 2]) / scale)
    y1 = np.ceil((boxes[:, 1] + boxes[:, 3]) / scale)
    x0, x1 = np.clip(x0, 0, w - 1), np.clip(x1, 1, w)
    y0, y1 = np.clip(y0, 0, h - 1), np.clip(y1, 1, h)
    x1, y1 = np.maximum(x1, x0 + 1), np.maximum(y1, y0 + 1)
    out = np.stack([x0, y0, x1, y1], axis=1).astype(np.int32)
    order = np.argsort(-scores, kind="stable")  # EdgeBoxes returns them sorted; make it a contract
    return Proposals(out[order], scores[order], (w, h), False, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# cache


def proposal_cache_dir(config: ProposalConfig, detector: EdgeDetector) -> Path:
    """``$VSENT_CACHE/proposals/<hash of detector + config>`` (default cache ``~/.cache/vsent``)."""
    from vsent.data.cache import cache_dir_default

    root = cache_dir_default()
    # boxes: entries cached before OpenCV's 1-based x, y were mapped to 0-based are not read
    key = json.dumps({"detector": detector.name, **asdict(config), "boxes": BOXES},
                     sort_keys=True)
    return root / "proposals" / hashlib.sha1(key.encode()).hexdigest()[:16]


def _file_key(path: Path) -> str:
    from vsent.data.cache import content_key

    return content_key([path], 0)  # the file's bytes: copies and chmod reuse the entry


def cached_proposals(
    path: str | os.PathLike,
    rgb: np.ndarray | Callable[[], np.ndarray],
    config: ProposalConfig,
    detector: EdgeDetector,
    cache_dir: Path | None = None,
) -> Proposals:
    """:func:`propose` for an image file, reading/writing one ``.npz`` per file in the cache.

    Proposals do not depend on the sentiment model, so every fold, run and subset shares them.
    The key is the file's contents (:func:`vsent.data.cache.content_key`) plus the detector
    and ``config``.
    ``rgb`` may be a callable so a cache hit does not decode the image. ``seconds`` of a cache
    hit is the time it took when it was computed.
    """
    path = Path(path)
    cache_dir = cache_dir or proposal_cache_dir(config, detector)
    file = cache_dir / f"{_file_key(path)}.npz"
    mark_used(cache_dir)  # one entry of `vsent cache`: its last use
    if file.exists():
        try:
            with np.load(file) as z:
                return Proposals(z["boxes"], z["objectness"], tuple(int(v) for v in z["size"]),
                                 bool(z["fallback"]), float(z["seconds"]))
        except NPZ_READ_ERRORS:
            log.warning("%s: unreadable proposal cache entry, recomputing", file)
    props = propose(rgb() if callable(rgb) else rgb, config, detector)
    # atomic: concurrent runs and threads (images of the same bytes) never read half a file
    write_cache_file(file, lambda f: np.savez(
        f, boxes=props.boxes, objectness=props.objectness, size=np.array(props.size),
        fallback=props.fallback, seconds=props.seconds), "proposal cache")
    return props
