"""Affect cues (vsent.analyses.cues) on images with known answers."""

from __future__ import annotations

import colorsys
import logging
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from vsent.analyses import cues as cues_module
from vsent.analyses.cues import (
    COLOUR_CUES,
    CUE_NAMES,
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
    assert first.names == CUE_NAMES
    assert first.column("saturation_mean").tolist() == pytest.approx([1.0, 0.0, 0.85])
    assert first.column("cool_share").tolist() == [0.0, 0.0, 1.0]
    import vsent.analyses.cues as mod
    monkeypatch.setattr(mod, "image_cues", lambda *a, **k: pytest.fail("not cached"))
    again = dataset_cues(paths, cache_dir=tmp_path / "cache", progress=False)
    assert again.decoded == 0 and np.array_equal(again.values, first.values)
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
    with pytest.raises(VsentError, match=r"face and smile cues needs cv2\.CascadeClassifier, "
                                         r"which this OpenCV .*opencv-contrib-python-headless"):
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
