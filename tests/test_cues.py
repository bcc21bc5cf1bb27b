"""Affect cues (vsent.analyses.cues) on images with known answers."""

from __future__ import annotations

import colorsys
import logging
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from vsent.analyses import cues as cues_module
from vsent.analyses.cues import (
    COLOUR_CUES,
    CUE_NAMES,
    CueFeatures,
    CueParams,
    colour_cues,
    colourfulness,
    dataset_cues,
    face_cues,
    image_cues,
)
from vsent.errors import VsentError


def flat(rgb, h=20, w=30):
    return np.tile(np.array(rgb, np.uint8), (h, w, 1))


def cues(image) -> dict[str, float]:
    return dict(zip(COLOUR_CUES, colour_cues(image), strict=True))


def test_saturated_red_vs_grey():
    red, grey = cues(flat((255, 0, 0))), cues(flat((128, 128, 128)))
    assert red["saturation_mean"] == pytest.approx(1.0)
    assert red["brightness_mean"] == pytest.approx(1.0)
    assert red["warm_share"] == 1.0 and red["cool_share"] == 0.0
    # Hasler & Suesstrunk: rg = 255, yb = 127.5, no spread -> 0.3 * hypot(255, 127.5)
    assert red["colourfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-6)
    assert grey["saturation_mean"] == 0.0 and grey["colourfulness"] == 0.0
    assert grey["brightness_mean"] == pytest.approx(128 / 255)
    assert grey["warm_share"] == grey["cool_share"] == 0.0
    assert red["brightness_std"] == grey["saturation_std"] == 0.0


def test_warm_and_cool_shares_and_stds():
    # left half orange, right quarter blue, last quarter dark blue (too dark to count)
    img = np.concatenate([flat((255, 140, 0), w=20), flat((30, 60, 200), w=10),
                          flat((0, 0, 30), w=10)], axis=1)
    c = cues(img)
    assert c["warm_share"] == pytest.approx(0.5)
    assert c["cool_share"] == pytest.approx(0.25)
    # an independent HSV computation (colorsys) of the brightness and saturation stats
    hsv = np.array([colorsys.rgb_to_hsv(*(px / 255.0)) for px in img.reshape(-1, 3)])
    assert c["brightness_mean"] == pytest.approx(hsv[:, 2].mean(), abs=1e-6)
    assert c["brightness_std"] == pytest.approx(hsv[:, 2].std(), abs=1e-6)
    assert c["saturation_mean"] == pytest.approx(hsv[:, 1].mean(), abs=1e-6)
    assert c["saturation_std"] == pytest.approx(hsv[:, 1].std(), abs=1e-6)
    green = cues(flat((0, 200, 0)))  # hue 120: neither warm nor cool
    assert green["warm_share"] == green["cool_share"] == 0.0
    assert cues(flat((255, 0, 40)))["warm_share"] == 1.0  # hue ~351: wraps to warm


def test_colourfulness_formula_on_random_pixels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    r, g, b = (img[..., k].astype(float).ravel() for k in range(3))
    rg, yb = r - g, (r + g) / 2 - b
    expected = (np.sqrt(np.var(rg) + np.var(yb))
                + 0.3 * np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2))
    assert colourfulness(img) == pytest.approx(expected)


def test_no_faces_in_flat_or_noise():
    rng = np.random.default_rng(0)
    for img in (flat((200, 180, 160), 120, 160), rng.integers(0, 256, (120, 160, 3), np.uint8)):
        assert face_cues(img).tolist() == [0.0, 0.0, 0.0]


def _sample_face() -> Path:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip("matplotlib's sample portrait grace_hopper.jpg is not installed")
    return path


def test_face_and_smile_found_in_a_portrait():
    img = np.asarray(Image.open(_sample_face()).convert("RGB"))  # 512x600, one smiling face
    vec = image_cues(img)
    out = dict(zip(CUE_NAMES, vec, strict=True))
    assert vec.dtype == np.float32 and vec.shape == (len(CUE_NAMES),)
    assert out["faces"] == 1 and out["smiles"] == 1
    assert 0.05 < out["face_area"] < 0.5
    # the same face under a flat grey mask: gone
    masked = img.copy()
    masked[: img.shape[0] * 2 // 3] = 128
    assert image_cues(masked)[CUE_NAMES.index("faces")] == 0


def test_cues_do_not_depend_on_upload_size():
    rng = np.random.default_rng(1)
    small = np.repeat(np.repeat(rng.integers(0, 256, (20, 30, 3), np.uint8), 8, 0), 8, 1)
    big = np.repeat(np.repeat(small, 3, 0), 3, 1)  # 480x720 -> shrunk to 320 wide
    a, b = image_cues(small), image_cues(big)
    assert np.allclose(a[:4], b[:4], atol=0.02)


def test_dataset_cues_cached(tmp_path, monkeypatch, caplog):
    paths = []
    for i, rgb in enumerate([(255, 0, 0), (128, 128, 128), (30, 60, 200)]):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(flat(rgb, 40, 50)).save(paths[-1])
    first = dataset_cues(paths, cache_dir=tmp_path / "cache", n_jobs=2, progress=False)
    assert first.values.shape == (3, len(CUE_NAMES)) and first.decoded == 3
    assert first.values.dtype == np.float32  # as documented, computed or read from the cache
    assert first.names == CUE_NAMES
    assert first.column("saturation_mean").tolist() == pytest.approx([1.0, 0.0, 0.85])
    assert first.column("cool_share").tolist() == [0.0, 0.0, 1.0]
    import vsent.analyses.cues as mod
    monkeypatch.setattr(mod, "image_cues", lambda *a, **k: pytest.fail("not cached"))
    again = dataset_cues(paths, cache_dir=tmp_path / "cache", progress=False)
    assert again.decoded == 0 and np.array_equal(again.values, first.values)
    assert again.values.dtype == np.float32
    entries = list((tmp_path / "cache" / "cues").glob("*.npz"))
    assert len(entries) == 1
    # a damaged entry (robust36 #4: a traceback) is computed again, with a warning
    monkeypatch.undo()
    entries[0].write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        third = dataset_cues(paths, cache_dir=tmp_path / "cache", progress=False)
    assert third.decoded == 3 and np.array_equal(third.values, first.values)
    assert f"{entries[0]}: unreadable cue cache entry, recomputing" in caplog.text
    assert dataset_cues(paths, cache_dir=tmp_path / "cache", progress=False).decoded == 0
    # a cache folder given as ~/... is the home's (read here: nothing decoded), not a folder
    # named "~" in the working directory
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert dataset_cues(paths, cache_dir="~/cache", progress=False).decoded == 0
    assert not (tmp_path / "~").exists()


def test_bad_input():
    with pytest.raises(ValueError, match="RGB uint8"):
        colour_cues(np.zeros((4, 4), np.uint8))
    with pytest.raises(VsentError, match="invalid cue parameters"):
        CueParams(face_scale=1.0)


def test_an_opencv_without_the_cascades_is_a_one_line_user_error(monkeypatch):
    """OpenCV 5 and builds other than opencv-contrib 4.x have no cv2.CascadeClassifier."""
    import threading

    import cv2

    from vsent.analyses import cues as C

    monkeypatch.setattr(C, "_CASCADES", threading.local())  # no pair loaded in this thread yet
    monkeypatch.delattr(cv2, "CascadeClassifier")
    from vsent.analyses.opencv import INSTALL_HINT

    # the installed version is named, then the whole install hint (mut58j O14)
    with pytest.raises(VsentError, match="^" + re.escape(
            f"face and smile cues needs cv2.CascadeClassifier, which this OpenCV "
            f"({cv2.__version__}) lacks: {INSTALL_HINT}") + "$"):
        face_cues(flat((200, 180, 160), 120, 160))


def test_warm_and_cool_hue_ranges_across_the_colour_wheel():
    # one column per hue, full saturation and value, each hue 10 degrees or more from the
    # documented edges (warm [330, 360) and [0, 90), cool [150, 270)); yellow-green (80),
    # teal (160) and violet-blue (260) tell the ranges from narrower ones
    hues = [10, 80, 100, 140, 160, 200, 260, 280, 320, 340]
    cols = [np.rint(np.array(colorsys.hsv_to_rgb(h / 360, 1.0, 1.0)) * 255) for h in hues]
    img = np.concatenate([flat(c, h=6, w=3) for c in cols], axis=1)
    got = [colorsys.rgb_to_hsv(*(c / 255))[0] * 360 for c in cols]  # hues after rounding
    assert got == pytest.approx(hues, abs=1)
    warm = np.mean([(h >= 330) or (h < 90) for h in got])
    cool = np.mean([150 <= h < 270 for h in got])
    assert (warm, cool) == (0.3, 0.3)
    c = cues(img)
    assert c["warm_share"] == pytest.approx(warm)
    assert c["cool_share"] == pytest.approx(cool)


def test_working_copy_shrinks_the_longer_side_to_max_side_and_never_enlarges():
    # noise: area averaging lowers the spread of V and S by an amount that depends on the
    # factor, so the cues tell which copy they were computed on
    import cv2

    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (400, 800, 3), dtype=np.uint8)  # longer side 800 -> 320
    want = colour_cues(cv2.resize(big, (320, 160), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(image_cues(big)[:7], want, rtol=1e-5, atol=1e-6)
    other = colour_cues(cv2.resize(big, (640, 320), interpolation=cv2.INTER_AREA))
    assert abs(other[1] - want[1]) > 0.01  # brightness_std: the check above can tell
    small = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)  # under 320: used as it is
    np.testing.assert_allclose(image_cues(small)[:7], colour_cues(small), rtol=1e-5, atol=1e-6)


def test_dataset_cues_cache_is_per_parameters(tmp_path):
    # the same image with other parameters is computed again, not read from the first cache
    # file: a smallest face larger than the portrait's face finds none. (A parameter that
    # changes the working size would change the file name anyway: the size is in the key.)
    path = _sample_face()
    first = dataset_cues([path], cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    no_face = dataset_cues([path], CueParams(min_face=300), cache_dir=tmp_path / "cache",
                           n_jobs=1, progress=False)
    assert (first.decoded, no_face.decoded) == (1, 1)
    assert first.column("faces").tolist() == [1.0] and no_face.column("faces").tolist() == [0.0]
    img = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_allclose(first.values[0], image_cues(img))
    np.testing.assert_allclose(no_face.values[0], image_cues(img, CueParams(min_face=300)))
    assert len(list((tmp_path / "cache" / "cues").glob("*.npz"))) == 2
    # n_jobs below 1 means all cores (as None), not a pool of -1 threads (a ValueError)
    assert dataset_cues([path], n_jobs=-1, progress=False).values.tolist() == \
        first.values.tolist()


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


class _Cascade:
    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
        self.calls = 0

    def detectMultiScale(self, gray, **kw):  # noqa: N802 (OpenCV's name)
        self.calls += 1
        return self.boxes


def _image(h: int = 60, w: int = 80) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_smiles_count_faces_with_a_smile_not_smile_detections(monkeypatch):
    """``smiles`` is the number of faces with a smile: two detections in one mouth are one
    smiling face (mut42 cu08: counted 2, more smiles than faces)."""
    face = _Cascade([[10, 5, 40, 40]])
    smile = _Cascade([[5, 5, 30, 12], [50, 6, 30, 12]])
    monkeypatch.setattr(cues_module, "_cascades", lambda: (face, smile))
    faces, smiles, _ = cues_module.face_cues(_image())
    assert (faces, smiles) == (1.0, 1.0)
    assert smile.calls == 1


def test_face_area_is_capped_at_the_whole_image(monkeypatch):
    """``face_area`` is the share of the image covered by face boxes, at most 1: overlapping
    boxes must not add up to more than the image (mut42 cu07: 2.0 here)."""
    h, w = 60, 80
    face = _Cascade([[0, 0, w, h], [0, 0, w, h]])
    monkeypatch.setattr(cues_module, "_cascades", lambda: (face, _Cascade([])))
    faces, smiles, area = cues_module.face_cues(_image(h, w))
    assert (faces, smiles) == (2.0, 0.0)
    assert area == 1.0


# --------------------------------------------------------------------------------------------
# mutation round 46 (mut46e): vsent.analyses.cues mutants the suite missed


def test_hue_range_edges_and_the_chromatic_threshold() -> None:
    """mut46e C13, C16-C19: the documented ranges are [start, end): hues 90 and 270 are
    neither warm nor cool, 150 is cool and 330 warm, and hues 88 and 268 just inside count.
    C20, C21: a pixel is chromatic from S >= 0.2 and V >= 0.2 (0.216 and 0.220 count, 0.176
    and 0.196 do not). Every hue and value here is exact in OpenCV's float conversion."""
    edges = [(136, 255, 0), (127, 254, 0), (0, 254, 127), (119, 0, 255), (127, 0, 254),
             (254, 0, 127)]  # hues 88 (warm), 90, 150 (cool), 268 (cool), 270, 330 (warm)
    c = cues(np.concatenate([flat(p, h=4, w=5) for p in edges], axis=1))
    assert (c["warm_share"], c["cool_share"]) == (pytest.approx(2 / 6), pytest.approx(2 / 6))
    # hue 0 (warm), saturation 0.216 / 0.176 at V = 1, then value 0.220 / 0.196 at S = 1
    reds = [(255, 200, 200), (255, 210, 210), (56, 0, 0), (50, 0, 0)]
    c = cues(np.concatenate([flat(p, h=4, w=5) for p in reds], axis=1))
    assert (c["warm_share"], c["cool_share"]) == (0.5, 0.0)


class _Recorder:
    """A cascade that returns fixed boxes and keeps what each call was given."""

    def __init__(self, boxes: list[list[int]]) -> None:
        self.boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
        self.calls: list[tuple[np.ndarray, dict[str, object]]] = []

    def detectMultiScale(self, gray: np.ndarray, **kw: object) -> np.ndarray:  # noqa: N802
        self.calls.append((gray.copy(), kw))
        return self.boxes


def test_faces_are_searched_on_the_equalised_grey_image_with_the_given_parameters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """mut46e C32, C33: the face cascade sees the grey (RGB order) copy histogram-equalised;
    C34, C35, C42-C44: CueParams' scale factors, neighbours and the smile window (mouth width
    / 5 x / 10) reach OpenCV; C37-C41: the smile search sees the lower half of each face box
    resized to ``mouth_width`` (at least 18 px high, the smile window's height); C46, C47:
    ``face_area`` is the summed box areas over the image's pixels."""
    import cv2

    params = CueParams(face_scale=1.3, face_neighbors=2, min_face=10, mouth_width=60,
                       smile_scale=1.2, smile_neighbors=7)
    img = _image(60, 80)
    face = _Recorder([[10, 5, 40, 30], [0, 40, 60, 8]])  # one face, one wide flat box
    smile = _Recorder([])
    monkeypatch.setattr(cues_module, "_cascades", lambda: (face, smile))
    faces, smiles, area = cues_module.face_cues(img, params)
    assert (faces, smiles) == (2.0, 0.0)
    assert area == pytest.approx((40 * 30 + 60 * 8) / (60 * 80))
    gray = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    ((seen, kw),) = face.calls
    np.testing.assert_array_equal(seen, gray)
    assert kw == {"scaleFactor": 1.3, "minNeighbors": 2, "minSize": (10, 10)}
    # lower halves 15 x 40 -> 60 x round(60 * 15 / 40) = 22; 4 x 60 -> 60 x 4, raised to 18
    want = [cv2.resize(gray[20:35, 10:50], (60, 22), interpolation=cv2.INTER_LINEAR),
            cv2.resize(gray[44:48, 0:60], (60, 18), interpolation=cv2.INTER_LINEAR)]
    assert len(smile.calls) == 2
    for (mouth, kw), w in zip(smile.calls, want, strict=True):
        np.testing.assert_array_equal(mouth, w)
        assert kw == {"scaleFactor": 1.2, "minNeighbors": 7, "minSize": (12, 6)}


def test_a_missing_cascade_file_is_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """mut46e C31: a cascade that does not load (a broken OpenCV install) is said, naming the
    file, not left to fail inside detectMultiScale."""
    import threading

    import cv2

    monkeypatch.setattr(cues_module, "_CASCADES", threading.local())
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path))
    with pytest.raises(VsentError, match=r"haarcascade_frontalface_default\.xml: cannot load "
                                         r"OpenCV's Haar cascade"):
        face_cues(flat((200, 180, 160), 120, 160))


def test_cue_parameters_are_checked_at_their_documented_limits() -> None:
    """mut46e C01, C03-C07: the smallest accepted values (a 32 px working copy, scale factors
    above 1, no neighbours required, 1 px faces, a 36 px mouth: the smile window's width) and
    the first refused ones."""
    CueParams(max_side=32, face_scale=1.01, smile_scale=1.01, face_neighbors=0,
              smile_neighbors=0, min_face=1, mouth_width=36)
    for bad in ({"max_side": 31}, {"smile_scale": 1.0}, {"face_neighbors": -1},
                {"smile_neighbors": -1}, {"min_face": 0}, {"mouth_width": 35}):
        with pytest.raises(VsentError, match="invalid cue parameters"):
            CueParams(**bad)


def test_max_side_sets_the_working_copy() -> None:
    """mut46e C51: ``CueParams.max_side`` (not the default 320) is the working copy's longer
    side."""
    import cv2

    big = np.random.default_rng(4).integers(0, 256, (200, 400, 3), dtype=np.uint8)
    want = colour_cues(cv2.resize(big, (160, 80), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(image_cues(big, CueParams(max_side=160))[:7], want, rtol=1e-5,
                               atol=1e-6)
    assert abs(colour_cues(cv2.resize(big, (320, 160), interpolation=cv2.INTER_AREA))[1]
               - want[1]) > 0.01  # brightness_std tells the two copies apart


def test_cue_features_columns_follow_their_names() -> None:
    """mut46e C55: ``column`` looks a name up in the rows' own ``names``."""
    feats = CueFeatures(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), names=("faces", "smiles"))
    assert feats.column("smiles").tolist() == [2.0, 4.0]


def test_a_cache_entry_of_other_columns_or_images_is_computed_again_and_a_hit_is_marked(
        tmp_path: Path) -> None:
    """mut46e C58, C59: an entry whose column names or shape are not this version's is not
    used (it is recomputed and rewritten); C60: a hit sets the entry's modification time, the
    last use ``vsent cache --clean`` reads."""
    import os

    paths = []
    for i, rgb in enumerate([(255, 0, 0), (30, 60, 200)]):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(flat(rgb, 40, 50)).save(paths[-1])
    first = dataset_cues(paths, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    (entry,) = (tmp_path / "cache" / "cues").glob("*.npz")
    others = [(np.zeros((2, len(CUE_NAMES)), np.float32), np.array(CUE_NAMES[::-1])),
              (np.zeros((3, len(CUE_NAMES)), np.float32), np.array(CUE_NAMES))]
    for values, names in others:
        with entry.open("wb") as f:
            np.savez(f, values=values, names=names)
        again = dataset_cues(paths, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
        assert again.decoded == 2 and np.array_equal(again.values, first.values)
    os.utime(entry, (1e9, 1e9))
    assert dataset_cues(paths, cache_dir=tmp_path / "cache", progress=False).decoded == 0
    assert entry.stat().st_mtime > 1e9 + 1e6


def test_cue_parameters_that_differ_have_cache_names_that_differ():
    """mut46e: parameters 1.1 and 1.1000001 shared one cache file name (6 significant digits)
    and the second read the first's cues; a name now reads back as its number. The defaults
    keep the name they always had (caches made before stay valid)."""
    from vsent.analyses.cues import CueParams

    assert CueParams().key() == "320-1.1-5-24-100-1.1-20"
    assert CueParams(face_scale=1.1000001).key() != CueParams().key()
    assert CueParams(smile_scale=1.25).key() == "320-1.1-5-24-100-1.25-20"
