"""vsent.analyses.handcrafted against values computed independently here (numpy only).

test_baselines.py covers the histogram layouts on square or solid images, the dense grid, the
BoW counts with a fitted k-means and the Fisher vector formula; these tests cover what those
cannot see: uneven LCH blocks, the grey copy SIFT reads, the descriptor sample a vocabulary is
learnt from, words from saved centres, and the colour features of decoded, cached files.
"""

from __future__ import annotations

import logging
from re import escape as re_escape

import numpy as np
import pytest
from PIL import Image

from vsent.analyses import handcrafted as hc
from vsent.analyses.handcrafted import learn_vocabulary


def _hist64(pixels: np.ndarray) -> np.ndarray:
    """Joint RGB histogram, 4 levels per channel (value // 64), red most significant, as a
    share of the pixels."""
    lv = pixels.reshape(-1, 3).astype(np.int64) // 64
    counts = np.bincount(lv[:, 0] * 16 + lv[:, 1] * 4 + lv[:, 2], minlength=64)
    return counts / len(lv)


def test_lch_blocks_of_an_uneven_image_have_rounded_edges():
    # 10 x 7 pixels: edges round(linspace(0, 10, 5)) = 0 2 5 8 10 (2.5 and 7.5 round to even)
    # and round(linspace(0, 7, 5)) = 0 2 4 5 7; truncating would give 0 2 5 7 10 / 0 1 3 5 7.
    # A noise image (a solid one, as in test_baselines, looks the same in every block)
    img = np.random.default_rng(0).integers(0, 256, (10, 7, 3), dtype=np.uint8)
    rows, cols = [0, 2, 5, 8, 10], [0, 2, 4, 5, 7]
    want = np.concatenate([_hist64(img[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]) / 16
                           for i in range(4) for j in range(4)])
    np.testing.assert_allclose(hc.lch(img), want, atol=1e-6)
    # every level's edge values, 255 included (level 3; calcHist's range ends at 256, not 255,
    # which would leave white out of the histogram): noise of 70 pixels may hold no 255 at all
    edges = np.array([[[0, 63, 64], [127, 128, 191], [192, 255, 255], [255, 255, 255]]],
                     np.uint8)
    np.testing.assert_allclose(hc.gch(edges), _hist64(edges), atol=1e-6)


def test_an_empty_image_is_refused_as_the_cues_refuse_it_but_an_empty_block_is_zero():
    """code38 #9: image_features (and sift_descriptors) of an empty image reached OpenCV's
    resize (cv2.error); the cues refused it with a ValueError. One check now
    (opencv.check_rgb); gch and lch keep their all-zero histograms of empty blocks."""
    from vsent.analyses import cues

    empty = np.zeros((0, 8, 3), np.uint8)
    said = r"^image must be a non-empty RGB uint8 array \(H, W, 3\), got uint8 \(0, 8, 3\)$"
    for refuse in (hc.image_features, hc.sift_descriptors, cues.colour_cues):
        with pytest.raises(ValueError, match=said):
            refuse(empty)
    assert not hc.gch(empty).any() and hc.gch(empty).shape == (64,)
    assert not hc.lch(empty).any() and hc.lch(empty).shape == (1024,)
    with pytest.raises(ValueError, match=r"^image must be an RGB uint8 array \(H, W, 3\), got "
                                         r"float32 \(4, 4, 3\)$"):
        hc.gch(np.zeros((4, 4, 3), np.float32))
    # a grey or RGBA image is refused by name, and the array returned is C-contiguous (mut53i)
    from vsent.analyses.opencv import check_rgb

    # (4, 4, 3, 1): a fourth axis is refused though its third is 3 (mut56l O2)
    for shape in ((4, 4), (4, 4, 4), (4, 4, 3, 1)):
        with pytest.raises(ValueError, match=re_escape(f"got uint8 {shape}") + "$"):
            check_rgb(np.zeros(shape, np.uint8))
    flipped = np.zeros((4, 5, 3), np.uint8)[:, ::-1]
    assert check_rgb(flipped).flags.c_contiguous and not flipped.flags.c_contiguous
    # an array-like such as a PIL RGB image is taken as its array (mut58j O15)
    pil = check_rgb(Image.new("RGB", (5, 4), (10, 20, 30)))
    assert pil.shape == (4, 5, 3) and pil[0, 0].tolist() == [10, 20, 30]


def test_one_resize_to_the_longer_side_serves_sift_the_cues_and_edgeboxes():
    """code38 #9: three copies of it (handcrafted, cues, proposals) are one
    (opencv.resize_longer_side): the area filter shrinking, bilinear enlarging for SIFT's
    grid; the cues and EdgeBoxes only shrink."""
    import cv2

    from vsent.analyses.opencv import resize_longer_side

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 61, 3), dtype=np.uint8)
    small = resize_longer_side(image, 20)
    assert small.shape == (10, 20, 3)  # 30 * 20 / 61 = 9.8 -> 10
    np.testing.assert_array_equal(small, cv2.resize(image, (20, 10), interpolation=cv2.INTER_AREA))
    big = resize_longer_side(image, 122)
    np.testing.assert_array_equal(big, cv2.resize(image, (122, 60),
                                                  interpolation=cv2.INTER_LINEAR))
    assert resize_longer_side(image, 122, enlarge=False) is image
    assert resize_longer_side(image, 61) is image
    thin = np.zeros((1, 500), np.uint8)  # a side never rounds to 0
    assert resize_longer_side(thin, 50).shape == (1, 50)


def test_sift_reads_the_luma_of_rgb_not_of_bgr():
    # red holds vertical stripes, blue horizontal ones: the grey copy (0.299 R + 0.587 G +
    # 0.114 B) is mostly red's pattern; read as BGR it would be mostly blue's
    yy, xx = np.mgrid[0:256, 0:256]  # longer side 256: no resize
    red = np.rint(127.5 + 127.5 * np.sin(xx / 5.0))
    blue = np.rint(127.5 + 127.5 * np.sin(yy / 5.0))
    img = np.stack([red, np.zeros_like(red), blue], -1).astype(np.uint8)

    def grey(wr, wb):
        g = np.clip(np.rint(wr * red + wb * blue), 0, 255).astype(np.uint8)
        return np.stack([g, g, g], -1)  # a grey image is its own luma either way

    got = hc.sift_descriptors(img).astype(np.float64)
    right = hc.sift_descriptors(grey(0.299, 0.114)).astype(np.float64)
    wrong = hc.sift_descriptors(grey(0.114, 0.299)).astype(np.float64)
    assert got.shape == right.shape == (21 * 21, 128)
    assert np.abs(got - right).max() <= 2  # rounding of the luma only
    assert np.abs(got - wrong).mean() > 10


def test_vocabulary_sample_is_drawn_from_every_image():
    # 300 descriptors near 20 (first image), 300 near 200 (second); a sample of 100 taken
    # uniformly holds both groups, so a 2-word vocabulary has one word near each.
    # The first 100 rows would all come from the first image.
    rng = np.random.default_rng(0)
    descs = [np.clip(rng.normal(m, 3, (300, 128)), 0, 255).astype(np.uint8) for m in (20, 200)]
    sample = hc._sample_descriptors(descs, 100, seed=0)
    assert sample.shape == (100, 128)
    n_second = int((sample.mean(1) > 100).sum())
    assert 30 <= n_second <= 70  # binomial-like draw: about 50
    stacked = {r.tobytes() for d in descs for r in d}
    assert all(r.tobytes() in stacked for r in sample)  # rows of the images, not made up
    np.testing.assert_array_equal(sample, hc._sample_descriptors(descs, 100, seed=0))
    vocab = hc.learn_vocabulary(descs, k=2, max_descriptors=100, seed=0)
    means = np.sort(vocab.cluster_centers_.mean(1))
    assert means == pytest.approx([20, 200], abs=3)
    # seeded: the same call gives the same words
    again = hc.learn_vocabulary(descs, k=2, max_descriptors=100, seed=0)
    np.testing.assert_array_equal(again.cluster_centers_, vocab.cluster_centers_)


def test_bow_from_saved_centres_counts_the_nearest_centre():
    # the checkpoint path (centres as an array): each descriptor's word is the centre at the
    # smallest Euclidean distance, written out here in full
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 255, (5, 128))
    descs = [rng.integers(0, 256, (n, 128)).astype(np.uint8) for n in (12, 0, 30)]
    got = hc.bow_histograms(centres, descs)
    assert got.shape == (3, 5)
    for d, row in zip(descs, got, strict=True):
        if not len(d):
            assert not row.any()
            continue
        dist = ((d.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(-1)
        words = dist.argmin(1)
        assert len(set(words.tolist())) > 1  # the check below can tell words apart
        np.testing.assert_allclose(row, np.bincount(words, minlength=5) / len(d), atol=1e-6)
    # mut52b H34: a norm other than l1 and l2 is refused, not taken as l2
    from vsent.errors import VsentError

    with pytest.raises(VsentError, match=r"^BoW norm must be 'l1' or 'l2', got 'l3'$"):
        hc.bow_histograms(centres, descs, norm="l3")


def test_extracted_colour_features_are_rgb_histograms_of_the_resized_decode(tmp_path):
    # a PNG of noise, 30 x 40: decoded as RGB, enlarged to a longer side of 256 (192 x 256,
    # bilinear), then histogrammed; a second call with max_side 64 is another cache entry
    import cv2

    arr = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "im.png")
    paths = [tmp_path / "im.png"]
    for side, size in ((256, (256, 192)), (64, (64, 48))):
        feats = hc.extract_features(paths, sift=hc.SiftParams(max_side=side), need_sift=False,
                                    cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
        assert feats.decoded == 1  # not the other size's cache file
        big = cv2.resize(arr, size, interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(feats.gch[0], _hist64(big), atol=1e-6)
        # and the BGR order would give another histogram
        assert np.abs(_hist64(big[..., ::-1]) - feats.gch[0]).sum() > 0.1
        h, w = size[1], size[0]
        r, c = np.linspace(0, h, 5).round().astype(int), np.linspace(0, w, 5).round().astype(int)
        want = np.concatenate([_hist64(big[r[i]:r[i + 1], c[j]:c[j + 1]]) / 16
                               for i in range(4) for j in range(4)])
        np.testing.assert_allclose(feats.lch[0], want, atol=1e-6)


def test_sift_parameters_out_of_range_name_the_option_or_the_field():
    from vsent.errors import VsentError

    with pytest.raises(VsentError, match="--sift-step must be >= 1 pixel, got 0"):
        hc.SiftParams(step=0)
    with pytest.raises(VsentError, match="--sift must be 'dense' or 'keypoints', got 'grid'"):
        hc.SiftParams(mode="grid")
    with pytest.raises(VsentError, match=r"out of range: max_side 8, size 0\.0 \(max_side"):
        hc.SiftParams(max_side=8, size=0.0)


def test_two_threads_writing_one_cache_entry_both_succeed(tmp_path):
    """Two images of the same bytes share a cache entry; the threads of one process wrote the
    same temporary name, and the second replace found it gone (FileNotFoundError out of
    baselines, fuse, crossval --fusion: audit_base24 #1). Both writers are held inside their
    write until the other is there too."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from vsent.files import write_cache_file

    entry = tmp_path / "cache" / "entry.npy"
    both_writing = threading.Barrier(2, timeout=10)

    def write(f):
        both_writing.wait()
        np.save(f, np.arange(3))

    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(write_cache_file, entry, write, "feature cache")
                    for _ in range(2)]:
            job.result()
    np.testing.assert_array_equal(np.load(entry), np.arange(3))
    assert [p.name for p in entry.parent.iterdir()] == ["entry.npy"]  # no temporary left


def test_copies_of_one_image_are_extracted_on_a_cold_cache(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"copy{i}.png")
        Image.fromarray(arr).save(paths[-1])
    feats = hc.extract_features(paths, cache_dir=tmp_path / "cache", n_jobs=4, progress=False)
    assert all(np.array_equal(d, feats.descriptors[0]) for d in feats.descriptors)
    assert len(feats.descriptors[0]) > 0
    # n_jobs below 1 means all cores (as None), not a pool of -1 threads (a ValueError)
    again = hc.extract_features(paths[:2], cache_dir=tmp_path / "other", n_jobs=-1,
                                progress=False)
    assert np.array_equal(again.descriptors[1], feats.descriptors[0])


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut short"])
def test_a_damaged_feature_cache_entry_is_computed_again(tmp_path, caplog, damage):
    """robust36 #4: half a colour histogram .npz (a killed copy, a full disk) was a
    BadZipFile traceback in fuse and baselines, a damaged SIFT .npy a ValueError; the other
    caches recompute such an entry with a warning, and so do these (and rewrite it)."""
    rng = np.random.default_rng(5)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(paths[-1])
    cache = tmp_path / "cache"
    first = hc.extract_features(paths, cache_dir=cache, n_jobs=1, progress=False)
    colour = next((cache / "baselines").glob("colour-*.npz"))
    sift = sorted((cache / "baselines").glob("sift-*/*.npy"))
    assert len(sift) == 3
    for file in (colour, sift[1]):
        file.write_bytes(damage)
    with caplog.at_level(logging.WARNING):
        again = hc.extract_features(paths, cache_dir=cache, n_jobs=1, progress=False)
    np.testing.assert_array_equal(again.gch, first.gch)
    np.testing.assert_array_equal(again.lch, first.lch)
    for a, b in zip(again.descriptors, first.descriptors, strict=True):
        np.testing.assert_array_equal(a, b)
    said = caplog.text
    assert f"{colour}: unreadable colour histogram cache entry, recomputing" in said
    assert f"{sift[1]}: unreadable SIFT cache entry, recomputing" in said
    caplog.clear()
    hc.extract_features(paths, cache_dir=cache, n_jobs=1, progress=False)  # rewritten
    assert "unreadable" not in caplog.text


def test_a_feature_cache_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch):
    """A read-only or full $VSENT_CACHE was a PermissionError traceback (audit_base24 #4)."""
    from vsent.errors import VsentError

    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(tmp_path / "im.png")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    sift_dir = tmp_path / "cache" / "baselines" / f"sift-{hc._CACHE_FORMAT}-{hc.SiftParams().key()}"
    with pytest.raises(VsentError, match=re_escape(
            f"{sift_dir}: cannot write the feature cache (No space left on device); set "
            "$VSENT_CACHE to a writable folder")):
        hc.extract_features([tmp_path / "im.png"], cache_dir=tmp_path / "cache", n_jobs=1,
                            progress=False)


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


def test_the_vocabulary_k_means_is_seeded_with_the_given_seed():
    """learn_vocabulary(seed=s) seeds its k-means with s (its docstring: "seeded"), not only
    the descriptor sample: with fewer descriptors than ``max_descriptors`` (no sample drawn)
    two seeds still give two vocabularies (mut42 hc12: ``random_state=0`` whatever the seed,
    so every fold's and every run's k-means started alike)."""
    rng = np.random.default_rng(0)
    descriptors = [rng.random((300, 128), dtype=np.float32) for _ in range(3)]
    a = learn_vocabulary(descriptors, k=16, seed=1)
    b = learn_vocabulary(descriptors, k=16, seed=2)
    assert a.random_state == 1 and b.random_state == 2
    # the batch, the 10 passes and the one initialisation bench_baselines.py measured
    assert (a.batch_size, a.max_iter, a.n_init) == (2048, 10, 1)
    # SIFT's uint8 rows are clustered in float32, the type the words are predicted in
    # (bow_histograms) and the centres saved in (fused_model): float64 centres, rounded when
    # saved, would be another vocabulary than the one the run fitted
    words = learn_vocabulary([(255 * d).astype(np.uint8) for d in descriptors], k=16)
    assert words.cluster_centers_.dtype == np.float32
    # the default vocabulary is the usual 500 words: 300 descriptors are too few for it
    from vsent.errors import VsentError

    with pytest.raises(VsentError, match="k=500 is larger than the 300 SIFT"):
        learn_vocabulary(descriptors[:1])
    assert not np.allclose(a.cluster_centers_, b.cluster_centers_)
    again = learn_vocabulary(descriptors, k=16, seed=1)
    np.testing.assert_array_equal(a.cluster_centers_, again.cluster_centers_)


# --------------------------------------------------------------------------------------------
# mutation round 44 (mut44b): vsent.analyses.handcrafted mutants the suite missed


def test_histograms_of_other_bin_counts_keep_their_length_in_every_block():
    """mut44b HC04, HC06: ``bins`` reaches every block of lch and the empty histogram of gch
    (every test used the default 4 levels, where 64 is right by chance)."""
    img = np.random.default_rng(4).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    assert hc.gch(np.zeros((0, 3, 3), np.uint8), bins=2).shape == (8,)

    def hist8(block):
        lv = block.reshape(-1, 3).astype(np.int64) // 128
        return np.bincount(lv[:, 0] * 4 + lv[:, 1] * 2 + lv[:, 2], minlength=8) / len(lv)

    np.testing.assert_allclose(hc.gch(img, bins=2), hist8(img), atol=1e-6)
    want = np.concatenate([hist8(img[r:r + 3, c:c + 2]) / 4 for r in (0, 3) for c in (0, 2)])
    np.testing.assert_allclose(hc.lch(img, grid=2, bins=2), want, atol=1e-6)
    # a grid finer than the image: the empty blocks are bins ** 3 zeros too
    assert hc.lch(img[:1, :1], grid=2, bins=2).shape == (4 * 8,)
    # api60 F10: "4" was OpenCV's overload error, 0 an AttributeError on None, grid 0 numpy's
    # "need at least one array to concatenate"
    for bins in ("4", 0, 2.0):
        with pytest.raises(ValueError, match=rf"^bins must be a positive integer, got {bins!r}$"):
            hc.gch(img, bins=bins)
    with pytest.raises(ValueError, match=r"^bins must be a positive integer, got 0$"):
        hc.gch(np.zeros((0, 3, 3), np.uint8), bins=0)  # the empty image's shortcut too
    with pytest.raises(ValueError, match=r"^grid must be a positive integer, got 0$"):
        hc.lch(img, grid=0)


def test_sift_parameters_at_their_limits_and_each_one_in_the_cache_key():
    """mut44b HC10-HC13: max_side 16 is allowed, max_keypoints 0 is not; the cache folder's
    key names every parameter of its mode (descriptors of another patch size or keypoint
    count are other descriptors, never reused)."""
    from vsent.errors import VsentError

    assert hc.SiftParams(max_side=16).max_side == 16
    with pytest.raises(VsentError, match=r"out of range: max_keypoints 0 \("):
        hc.SiftParams(max_keypoints=0)
    dense = hc.SiftParams()
    keys = {dense.key(), hc.SiftParams(max_side=128).key(), hc.SiftParams(step=6).key(),
            hc.SiftParams(size=8.0).key()}
    assert len(keys) == 4
    kp = hc.SiftParams(mode="keypoints")
    keys = {kp.key(), hc.SiftParams(mode="keypoints", max_side=128).key(),
            hc.SiftParams(mode="keypoints", max_keypoints=50).key(), dense.key()}
    assert len(keys) == 4


def test_the_dense_grid_runs_across_then_down_with_the_given_patch_size():
    """mut44b HC15, HC17, HC18: descriptors at (x, y) = (half a step + i x step, ...), x
    across each row first, up to the last pixel column, patches of ``size`` px, against
    OpenCV called here with the points written out."""
    import cv2

    rng = np.random.default_rng(6)
    for (h, w), params in (((100, 256), hc.SiftParams()),
                           ((256, 247), hc.SiftParams(size=8.0))):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # longer side 256: no resize
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        points = [cv2.KeyPoint(float(x), float(y), params.size)
                  for y in range(6, h, 12) for x in range(6, w, 12)]
        _, want = cv2.SIFT_create().compute(gray, points)
        got = hc.sift_descriptors(img, params)
        assert got.shape == (len(range(6, h, 12)) * len(range(6, w, 12)), 128)
        np.testing.assert_array_equal(got, np.rint(want).astype(np.uint8))


def test_keypoint_sift_keeps_at_most_about_max_keypoints():
    """mut44b HC16: the detector is told max_keypoints (OpenCV keeps ties of the weakest: a
    few more at most)."""
    img = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    few = hc.sift_descriptors(img, hc.SiftParams(mode="keypoints", max_keypoints=20))
    many = hc.sift_descriptors(img, hc.SiftParams(mode="keypoints"))
    assert 0 < len(few) <= 25 < len(many)


def test_colour_features_alone_from_the_cache_decode_nothing(tmp_path, monkeypatch):
    """mut44b HC22: with need_sift=False and the colour histograms cached, no image is
    decoded again (baselines --features gch,lch on a warm cache). mut52b H36: n_jobs is the
    size of the thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = []

    class Pool(ThreadPoolExecutor):
        def __init__(self, max_workers=None, **kw):
            sizes.append(max_workers)
            super().__init__(max_workers, **kw)

    monkeypatch.setattr(hc, "ThreadPoolExecutor", Pool)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(paths[-1])
    kw = dict(need_sift=False, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    first = hc.extract_features(paths, **kw)
    written: list[object] = []  # a warm cache is read, not written again
    monkeypatch.setattr(hc, "write_cache_file", lambda path, *args: written.append(path))
    again = hc.extract_features(paths, **{**kw, "n_jobs": 7})
    assert (first.decoded, again.decoded) == (3, 0) and written == []
    assert sizes == [1, 7]
    np.testing.assert_array_equal(first.lch, again.lch)
    assert all(len(d) == 0 for d in again.descriptors)


def test_the_descriptor_sample_has_no_row_twice_and_k_may_equal_the_rows():
    """mut44b HC27, HC28: a sample drawn without replacement (distinct rows of the images);
    a vocabulary of exactly as many words as descriptors is allowed."""
    rng = np.random.default_rng(8)
    descs = [rng.integers(0, 256, (n, 128), dtype=np.uint8) for n in (60, 40)]
    sample = hc._sample_descriptors(descs, 90, seed=3)
    assert len({r.tobytes() for r in sample}) == 90
    vocab = hc.learn_vocabulary(descs[1:], k=40, seed=0)
    assert vocab.cluster_centers_.shape == (40, 128)


def test_bow_of_images_without_any_descriptor_is_all_zeros_with_a_fitted_vocabulary():
    """mut44b HC31: a test fold of flat images (keypoint mode) has no descriptors at all:
    zero rows, not sklearn's error about 0 samples."""
    rng = np.random.default_rng(9)
    vocab = hc.learn_vocabulary([rng.integers(0, 256, (30, 128), dtype=np.uint8)], k=4)
    empty = [np.zeros((0, 128), np.uint8)] * 2
    got = hc.bow_histograms(vocab, empty)
    assert got.shape == (2, 4) and got.dtype == np.float32 and not got.any()


def test_too_few_descriptors_for_the_pca_is_a_clear_error():
    """mut44b HC34: fewer descriptors than PCA dimensions (more than mixture components) is
    the one-line VsentError, not scikit-learn's ValueError. mut52b H31: so is fewer
    descriptors than mixture components (more than PCA dimensions)."""
    from vsent.errors import VsentError

    descs = [np.random.default_rng(10).integers(0, 256, (20, 128), dtype=np.uint8)]
    with pytest.raises(VsentError, match="20 SIFT descriptors .* too few for a 2-component "
                                         "mixture in 64 dimensions"):
        hc.learn_fisher(descs, n_components=2, pca_dims=64)
    with pytest.raises(VsentError, match="^20 SIFT descriptors in the training images are too "
                                         "few for a 64-component mixture in 2 dimensions$"):
        hc.learn_fisher(descs, n_components=64, pca_dims=2)
    # the defaults: a 64-component mixture in 64 dimensions
    with pytest.raises(VsentError, match="few for a 64-component mixture in 64 dimensions$"):
        hc.learn_fisher(descs)
    # exactly as many descriptors as PCA dimensions is enough
    assert hc.learn_fisher(descs, n_components=2, pca_dims=20).dim == 2 * 2 * 20


def test_dense_sift_sizes_that_differ_have_cache_names_that_differ():
    """As the cue cache's names (mut46e): a descriptor size named to 6 digits made 16 and
    16.0000001 one SIFT cache; the default's name is the one it always had."""
    from vsent.analyses.handcrafted import SiftParams

    assert SiftParams(mode="dense").key() == "dense-s256-st12-sz16"
    assert SiftParams(mode="dense", size=16.0000001).key() != SiftParams(mode="dense").key()
    assert SiftParams(mode="dense", size=12.5).key() == "dense-s256-st12-sz12.5"


# mutation round 48 (mut48b): vsent.analyses.handcrafted mutants the suite missed


def test_keypoint_defaults_and_a_one_pixel_step_are_the_documented_ones():
    """mut48b H19, H20: the keypoint mode keeps the documented 500 keypoints (its cache name
    says so: another count is another cache), and a dense step of 1 px is allowed (the limit
    the error message states)."""
    assert hc.SiftParams(mode="keypoints").key() == "kp-s256-n500"
    assert hc.SiftParams(step=1).key() == "dense-s256-st1-sz16"


def test_images_without_descriptors_give_uint8_rows_in_either_mode():
    """mut48b H31, H32: no descriptors (a flat image in keypoint mode, a banner too thin for
    the dense grid) is a (0, 128) uint8 array, as every other image's: float rows would be
    cached as such and make the stacked descriptors float."""
    flat = np.full((64, 64, 3), 90, np.uint8)
    banner = np.random.default_rng(11).integers(0, 256, (8, 1200, 3), dtype=np.uint8)
    for got in (hc.sift_descriptors(flat, hc.SiftParams(mode="keypoints")),
                hc.sift_descriptors(banner)):
        assert got.shape == (0, 128) and got.dtype == np.uint8


def test_a_warm_sift_cache_is_read_not_computed_again_and_its_entries_are_marked(
        tmp_path, monkeypatch):
    """mut48b H35, H41, H42: colour histograms asked for after the descriptors were cached
    decode the images but take the descriptors from the cache; a hit sets the modification
    time (the last use ``vsent cache --clean`` reads) of the colour entry and the SIFT
    folder."""
    import os

    rng = np.random.default_rng(12)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(paths[-1])
    kw = dict(cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    first = hc.extract_features(paths, colour=False, **kw)
    assert not first.gch.any()

    def no_sift(*args, **kwargs):
        raise AssertionError("SIFT computed again on a warm cache")

    monkeypatch.setattr(hc, "sift_descriptors", no_sift)
    both = hc.extract_features(paths, **kw)
    assert both.decoded == 2 and both.gch.sum(1) == pytest.approx([1, 1])
    for a, b in zip(first.descriptors, both.descriptors, strict=True):
        np.testing.assert_array_equal(a, b)
    (colour,) = (tmp_path / "cache" / "baselines").glob("colour-*.npz")
    (sift_dir,) = (tmp_path / "cache" / "baselines").glob("sift-*")
    for entry in (colour, sift_dir):
        os.utime(entry, (1e9, 1e9))
    assert hc.extract_features(paths, **kw).decoded == 0
    assert colour.stat().st_mtime > 1e9 + 1e6 and sift_dir.stat().st_mtime > 1e9 + 1e6


def test_a_feature_cache_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path):
    """mut48b H43: the message names the folder it could not create (here under a file)."""
    from vsent.errors import VsentError

    (tmp_path / "cache").write_text("not a folder")
    sift_dir = tmp_path / "cache" / "baselines" / f"sift-{hc._CACHE_FORMAT}-{hc.SiftParams().key()}"
    with pytest.raises(VsentError, match=re_escape(
            f"cannot create feature cache {sift_dir}: Not a directory")):
        hc.extract_features([tmp_path / "im.png"], cache_dir=tmp_path / "cache", progress=False)


def test_descriptors_that_all_fit_in_the_sample_are_all_taken_in_order():
    """mut48b H45: exactly ``max_descriptors`` rows are not a sample: all of them, stacked in
    image order (as fewer rows are)."""
    rng = np.random.default_rng(13)
    descs = [rng.integers(0, 256, (n, 128), dtype=np.uint8) for n in (30, 20)]
    for limit in (50, 51):
        np.testing.assert_array_equal(hc._sample_descriptors(descs, limit, seed=0),
                                      np.concatenate(descs))


def test_the_descriptor_sample_is_drawn_with_the_given_seed():
    """mut48b H47: another seed draws another sample (folds of another seed learn their
    vocabulary from other rows), the same seed the same one."""
    descs = [np.random.default_rng(14).integers(0, 256, (200, 128), dtype=np.uint8)]
    first, again, other = (hc._sample_descriptors(descs, 20, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(first, descs[0][np.random.default_rng(1).choice(200, 20,
                                                                                  replace=False)])


def test_the_vocabulary_is_fitted_on_every_descriptor_of_the_sample():
    """mut48b H50: a one-word vocabulary is the mean of all descriptors (both images: 20 and
    200 in equal numbers, mean 110), not of a part of them."""
    descs = [np.full((100, 128), v, np.uint8) for v in (20, 200)]
    vocab = hc.learn_vocabulary(descs, k=1, seed=0)
    assert vocab.cluster_centers_.shape == (1, 128)
    assert vocab.cluster_centers_.mean() == pytest.approx(110, abs=5)
