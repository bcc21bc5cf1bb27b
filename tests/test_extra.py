"""Extra weakly labelled training images (vsent.data.extra): no test image ever gets in."""

from __future__ import annotations

import math
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import save_image
from vsent.data import describe, extra, load_dataset, make_folds
from vsent.data.extra import (
    JointSet,
    extra_train_set,
    near_duplicates,
    progressive_filter,
    select_kept,
    thumbnails,
    with_extra,
)
from vsent.data.folds import Fold
from vsent.errors import DataError, VsentError


def _label_lines(root, subset):
    path = root / "ground_truth" / f"twitter_{subset}_agrees.txt"
    return dict(line.split() for line in path.read_text().splitlines() if line.strip())


def test_extra_set_is_larger_subset_minus_base_with_its_labels(twitter_like):
    five, three = _label_lines(twitter_like, "five"), _label_lines(twitter_like, "three")
    ex = extra_train_set(twitter_like, "five", "three")
    expected = [n for n in three if n not in five]  # in label-file order
    assert ex.names == expected and len(ex) == 50 - 36
    assert ex.labels.tolist() == [int(three[n]) for n in expected]
    assert not set(ex.names) & set(five)
    assert ex.subset == "three-not-five" and ex.source == "twitter"
    assert all(p == twitter_like / "images" / n for n, p in zip(ex.names, ex.paths, strict=True))
    four = _label_lines(twitter_like, "four")
    ex4 = extra_train_set(twitter_like, "five", "four")
    assert ex4.names == [n for n in four if n not in five]


def test_extra_images_never_in_any_test_fold(twitter_like):
    base = load_dataset(twitter_like, "five")
    ex = extra_train_set(base, "five", "three")
    joint = with_extra(base, ex)
    folds = make_folds(base, "campos")
    for fold in folds:
        train = joint.fold_train(fold)
        test_names = {base.names[i] for i in fold.test}
        train_names = [joint.dataset.names[i] for i in train]
        assert not test_names & set(train_names)
        # base rows keep their indices: the fold's training rows, then every extra row
        assert sorted(train_names) == sorted([base.names[i] for i in fold.train] + ex.names)
        assert np.array_equal(joint.dataset.labels[fold.test], base.labels[fold.test])
        assert joint.is_extra(train).sum() == len(ex)
    assert joint.dataset.names[: len(base)] == base.names
    assert joint.dataset.labels[len(base):].tolist() == ex.labels.tolist()


def test_a_joint_set_keeps_the_label_source_of_its_base(tmp_path):
    """mut59d D67: with_extra on a CSV dataset: the joint set is titled and located by the
    base's CSV file (a folds file saved for it records the title; messages name the file)."""
    from vsent.data import Dataset

    def csv_set(csv: str, names: list[str]) -> Dataset:
        return Dataset(root=tmp_path, names=names, paths=[tmp_path / n for n in names],
                       labels=np.arange(len(names), dtype=np.int64) % 2, source="csv",
                       label_file=tmp_path / csv)

    base = csv_set("labels.csv", ["a.jpg", "b.jpg"])
    joint = with_extra(base, csv_set("more.csv", ["c.jpg"])).dataset
    assert (joint.title, joint.location) == (f"{tmp_path.name}/labels.csv",
                                             tmp_path / "labels.csv")


def test_copies_of_base_images_are_dropped(twitter_like):
    five = list(_label_lines(twitter_like, "five"))
    extra_names = [n for n in _label_lines(twitter_like, "three") if n not in five]
    images = twitter_like / "images"
    # a byte copy and a rescaled, re-encoded copy of two five-agree images, under extra names
    shutil.copyfile(images / five[0], images / extra_names[0])
    im = Image.open(images / five[1])
    im.resize((im.width * 2, im.height * 2)).save(images / extra_names[1], quality=80)
    ex = extra_train_set(twitter_like, "five", "three")
    assert extra_names[0] not in ex.names and extra_names[1] not in ex.names
    assert ex.names == extra_names[2:]
    reasons = dict(ex.skipped)
    assert five[0] in reasons[extra_names[0]] and "same bytes" in reasons[extra_names[0]]
    assert five[1] in reasons[extra_names[1]] and "similarity" in reasons[extra_names[1]]
    # the log line counts them as copies, not as bad images
    line = describe(ex)
    assert "2 copies of base images left out" in line and "bad items" not in line
    # measuring the leak itself stays possible
    assert len(extra_train_set(twitter_like, "five", "three", drop_copies=False)) == 14
    # bytes alone (no thumbnails): each copy is matched to its own base image, whatever
    # the two lists' order (mut59d D91: the lists swapped)
    shutil.copyfile(images / five[-1], images / extra_names[2])
    ex = extra_train_set(twitter_like, "five", "three", threshold=1.1)
    assert ex.names == [extra_names[1], *extra_names[3:]]
    reasons = dict(ex.skipped)
    assert reasons[extra_names[2]] == f"copy of five-agree image {five[-1]} (same bytes)"


def test_base_names_come_from_the_raw_label_file(twitter_like):
    """A five-agree line that load_dataset would reject still keeps its image out."""
    gt = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    lines = gt.read_text().splitlines()
    extra_name = [n for n in _label_lines(twitter_like, "three")
                  if n not in _label_lines(twitter_like, "five")][0]
    gt.write_text("\n".join([*lines, f"{extra_name} maybe"]) + "\n")
    ex = extra_train_set(twitter_like, "five", "three", drop_copies=False)
    assert extra_name not in ex.names and len(ex) == 13


def test_thumbnail_similarity_is_the_smaller_cosine():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 2, 768))
    a /= np.linalg.norm(a, axis=2, keepdims=True)
    s = near_duplicates(a, a[:2])
    assert s.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            cos = [float(np.dot(a[i, v], a[j, v])) for v in (0, 1)]
            assert s[i, j] == pytest.approx(min(cos))


def test_thumbnails_of_copies_match(tmp_path):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) + rng.normal(0, 5, (48, 64, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).resize((128, 96)).save(tmp_path / "b.jpg", quality=85)
    Image.fromarray(img[:, ::-1]).save(tmp_path / "c.png")  # mirrored: another picture
    Image.fromarray(img[..., ::-1]).save(tmp_path / "d.png")  # channels swapped: recoloured
    Image.fromarray(np.full((30, 30, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    names = ("a.png", "b.jpg", "c.png", "d.png", "flat.png", "broken.jpg")
    t = thumbnails([tmp_path / n for n in names], workers=1)
    assert t.shape == (6, 2, 768) and t.dtype == np.float32
    # no image: no thumbnail, of the same shape and dtype (mut54b)
    empty = thumbnails([])
    assert empty.shape == (0, 2, 768) and empty.dtype == np.float32
    assert np.allclose(np.linalg.norm(t[:4], axis=2), 1, atol=1e-5)
    assert not t[4].any() and not t[5].any()  # flat or undecodable: nothing to compare
    # view 0: all values centred together; view 1: each channel centred (independent check)
    x = np.asarray(Image.open(tmp_path / "a.png").resize((16, 16), Image.BILINEAR), float)
    v1 = (x - x.mean(axis=(0, 1))).ravel()
    assert np.dot(t[0, 1], v1 / np.linalg.norm(v1)) > 0.99
    s = near_duplicates(t, t)
    assert s[0, 1] > 0.97  # rescaled, re-encoded copy
    assert s[0, 2] < 0.97 and s[0, 3] < 0.97  # mirrored, recoloured
    assert s[4, 0] == 0


def test_subset_and_layout_errors(twitter_like, learnable_dataset):
    with pytest.raises(VsentError, match="larger agreement subset"):
        extra_train_set(twitter_like, "five", "five")
    with pytest.raises(VsentError, match="larger agreement subset"):
        extra_train_set(twitter_like, "three", "four")
    with pytest.raises(VsentError, match="subsets are"):
        extra_train_set(twitter_like, "five", "two")
    # an unknown base subset too: said, not a ValueError from SUBSETS.index (mut57d F118)
    with pytest.raises(VsentError, match="subsets are five, four, three; got base 'all'"):
        extra_train_set(twitter_like, "all", "three")
    with pytest.raises(DataError, match="Twitter I layout"):
        extra_train_set(learnable_dataset, "five", "three")


def test_fold_train_refuses_leaks_and_foreign_folds(twitter_like):
    base = load_dataset(twitter_like, "five", validate=False)
    ex = extra_train_set(base, "five", "three", validate=False)
    joint = with_extra(base, ex)
    ds, n = joint.dataset, len(base)
    with pytest.raises(DataError, match="fold 3 indexes image"):
        joint.fold_train(Fold(index=3, train=np.arange(3), test=np.array([len(ds)])))

    def joint_with_last(name, path):  # the last extra row replaced by (name, path)
        return JointSet(dataset=type(ds)(root=ds.root, names=[*ds.names[:-1], name],
                                         paths=[*ds.paths[:-1], path], labels=ds.labels,
                                         source="twitter"), n_base=n)

    fold = Fold(index=4, train=np.arange(1, 5), test=np.array([0, 7]))
    assert len(joint_with_last(ds.names[-1], ds.paths[-1]).fold_train(fold)) == 4 + len(ex)
    with pytest.raises(DataError, match="fold 4: 1 extra training images are test images"):
        joint_with_last(base.names[7], ds.paths[-1]).fold_train(fold)  # same name
    with pytest.raises(DataError, match="fold 4: 1 extra training images are test images"):
        joint_with_last("other.jpg", base.paths[0]).fold_train(fold)  # same file
    # two leaks: both named (mut54b)
    two = JointSet(dataset=type(ds)(root=ds.root, names=[*ds.names[:-2], *base.names[:2]],
                                    paths=ds.paths, labels=ds.labels, source="twitter"), n_base=n)
    with pytest.raises(DataError, match=re.escape(
            f"fold 1: 2 extra training images are test images of the fold (e.g. "
            f"{base.names[0]}, {base.names[1]})")):
        two.fold_train(Fold(index=1, train=np.arange(2, 5), test=np.array([0, 1])))
    with pytest.raises(DataError, match="also base images"):
        with_extra(base, load_dataset(twitter_like, "three", validate=False))


def test_the_first_extra_row_is_no_fold_index_and_an_extra_file_of_a_base_image_clashes(
        twitter_like, tmp_path):
    base = load_dataset(twitter_like, "five", validate=False)
    ex = extra_train_set(base, "five", "three", validate=False)
    joint = with_extra(base, ex)
    n = len(base)
    # index n is the first extra row, not a base image: a fold naming it is another dataset's
    with pytest.raises(DataError, match=f"fold 2 indexes image {n} but the base dataset has {n}"):
        joint.fold_train(Fold(index=2, train=np.arange(3), test=np.array([n])))
    assert len(joint.fold_train(Fold(index=2, train=np.arange(3), test=np.array([n - 1])))) \
        == 3 + len(ex)
    # an extra item under another name whose file is a base image (a link to it) is refused
    link = tmp_path / "alias.jpg"
    link.symlink_to(base.paths[0])
    alias = type(ex)(root=ex.root, names=["alias.jpg"], paths=[link],
                     labels=np.array([1]), source="twitter")
    with pytest.raises(DataError, match=r"1 extra images are also base images \(e.g. alias.jpg"):
        with_extra(base, alias)


def test_progressive_filter_rule():
    # |s1 - s2| = 0 -> p = 1 (always dropped); >= ln 2 -> p = 0 (always kept)
    scores = np.array([[0.5, 0.5], [0.9, 0.1], [0.15, 0.85], [0.5, 0.5]])
    for seed in range(20):
        kept = progressive_filter(scores, np.random.default_rng(seed))
        assert kept.tolist() == [False, True, True, False]
        only = progressive_filter(scores, np.random.default_rng(seed),
                                  candidates=np.array([True, True, True, False]))
        assert only.tolist() == [False, True, True, True]  # a non-candidate is never dropped
    # in between: kept with probability 1 - (2 - exp(d)), from the same uniform draws
    d = 0.3
    s = np.tile([(1 + d) / 2, (1 - d) / 2], (20000, 1))
    kept = progressive_filter(s, np.random.default_rng(7))
    p_drop = 2 - math.exp(d)
    assert np.array_equal(kept, np.random.default_rng(7).random(20000) >= p_drop)
    assert abs((~kept).mean() - p_drop) < 0.015
    with pytest.raises(ValueError, match="candidates"):
        progressive_filter(s[:3], np.random.default_rng(0), candidates=np.ones(2, bool))


def test_a_corrupt_base_image_does_not_stop_the_copy_check(twitter_like):
    five = list(_label_lines(twitter_like, "five"))
    (twitter_like / "images" / five[3]).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match="cannot be decoded"):
        extra_train_set(twitter_like, "five", "three")
    ex = extra_train_set(twitter_like, "five", "three", skip_bad=True)
    assert len(ex) == 14 and five[3] not in ex.names
    assert any(five[3] in where for where, _ in ex.skipped)  # the bad image, as load_dataset


def test_a_bad_base_image_counts_once_in_the_joint_set(twitter_like):
    # the extra set is read from three-agree, which holds the base images too: its skipped
    # list repeats the base dataset's bad image (audit_data23 #9)
    five = list(_label_lines(twitter_like, "five"))
    bad = twitter_like / "images" / five[3]
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    base = load_dataset(twitter_like, "five", skip_bad=True)
    extra = extra_train_set(twitter_like, "five", "three", skip_bad=True)
    joint = with_extra(base, extra)
    wheres = [where for where, _ in joint.dataset.skipped]
    assert wheres.count(str(bad.resolve())) == 1
    line = describe(joint.dataset)
    assert ", 1 bad item skipped" in line and "items" not in line


def test_a_base_label_file_that_is_not_utf8_is_one_line(twitter_like):
    # the three readers of '<name> <label>' files report the same way (audit_data23 #3, #12)
    path = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    n_lines = len(path.read_text().splitlines())
    path.write_bytes(path.read_bytes() + b"caf\xe9.jpg 1\n")
    with pytest.raises(DataError) as info:
        extra_train_set(twitter_like, "five", "three", drop_copies=False)
    assert str(info.value).startswith(f"{path.resolve()}:{n_lines + 1}: not a UTF-8 text file")


def test_no_base_image_means_no_copy_rather_than_an_error(twitter_like):
    """extra_train_set with skip_bad=True may be left with no base image: no extra image
    copies one (the thumbnail comparison has nothing to take a best match from)."""
    from vsent.data.extra import _copies

    paths = sorted((twitter_like / "images").iterdir())[:3]
    assert _copies(paths, [], 0.99, 1) == {}
    assert _copies([], paths, 0.99, 1) == {}


def test_same_bytes_pairs_files_by_content_and_reads_only_files_of_a_shared_size(tmp_path,
                                                                                monkeypatch):
    """One helper finds files with the same bytes under other names: the extra set's copies,
    the benchmark's leak and pcnn-transfer's check of a model's training data all use it."""
    import vsent.files
    from vsent.files import same_bytes

    def put(name: str, data: bytes):
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    a = [put("a0", b"abc"), put("a1", b"xyz"), put("a2", b"12345"), tmp_path / "missing",
         put("a4", b"abcd")]
    b = [put("b0", b"xyw"), put("b1", b"abc"), put("b2", b"abc"), put("b3", b"zz")]
    read = []
    sha = vsent.files.file_sha256
    monkeypatch.setattr(vsent.files, "file_sha256", lambda p: read.append(p) or sha(p))
    # a0 is b1 (the first of the two copies); a1 has b0's size, not its bytes; a2 and a4 have
    # no file of their size in b, and a missing file matches nothing
    assert same_bytes(a, b, workers=2) == {0: 1}
    assert sorted(p.name for p in read) == ["a0", "a1", "b0", "b1", "b2"]
    assert same_bytes([], b) == {} and same_bytes(a, []) == {}

    def unreadable_b1(p):
        if os.path.basename(p) == "b1":
            raise PermissionError(13, "Permission denied", str(p))
        return sha(p)

    monkeypatch.setattr(vsent.files, "file_sha256", unreadable_b1)
    assert same_bytes(a, b) == {0: 2}  # a file that cannot be read matches nothing


def test_byte_groups_name_each_files_first_copy_and_the_leak_finder_reads_each_file_once(
        tmp_path, monkeypatch, twitter_like):
    """byte_groups: the first file with the same bytes (itself when none before), None for a
    file that cannot be read, only files of a shared size read. The benchmark's leak finder
    reads the dataset once, not once a fold (each fold hashed its copies again)."""
    import collections
    import shutil

    import vsent.files
    from vsent.data import load_dataset, make_folds
    from vsent.data.extra import train_copies_of_test_images
    from vsent.files import byte_groups, same_bytes

    def put(name: str, data: bytes):
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    files = [put("x", b"abc"), put("y", b"abc"), put("z", b"abd"), tmp_path / "missing",
             put("w", b"abc"), put("u", b"q")]
    read = []
    sha = vsent.files.file_sha256
    monkeypatch.setattr(vsent.files, "file_sha256", lambda p: read.append(p) or sha(p))
    assert byte_groups(files, workers=2) == [0, 0, 2, None, 0, 5]
    assert sorted(p.name for p in read) == ["w", "x", "y", "z"]
    # same_bytes reads the files of a size found in both lists only, not those whose size
    # repeats within one (a large weak-label set against Twitter I: review35 #3)
    read.clear()
    assert same_bytes([files[0], files[1], files[5]], [put("v", b"qq"), files[2]]) == {}
    assert sorted(p.name for p in read) == ["x", "y", "z"]
    read.clear()
    assert same_bytes(files[:2], [files[5]]) == {} and same_bytes([], files[:2]) == {}
    assert read == []

    ds = load_dataset(twitter_like, "five", validate=False)
    folds = make_folds(ds, "campos")
    t0, r0 = int(folds[0].test[0]), int(folds[0].train[0])
    shutil.copy(ds.paths[t0], ds.paths[r0])  # a test image of fold 1 copied under a training name
    read.clear()
    leaks = train_copies_of_test_images(ds, folds, threshold=1.1)  # (same bytes only)
    assert leaks[ds.names[t0]] == (ds.names[r0], "same bytes")
    assert read and max(collections.Counter(map(str, read)).values()) == 1


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


def _smooth(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random RGB picture (low-frequency noise upsampled): distinct per seed."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def test_a_near_copy_of_a_late_base_image_is_found(tmp_path):
    """_copies pairs each *candidate* with its most similar base image (argmax over the base
    axis): a rescaled copy of base image 3 is found although only two candidates are given
    (mut42 ex15: the argmax over the candidates' axis paired it with base 0 or 1, and let
    the copy of a test image into the extra training set)."""
    base = []
    for i in range(4):
        p = tmp_path / f"base{i}.png"
        Image.fromarray(_smooth(i)).save(p)
        base.append(p)
    copy = tmp_path / "cand0.png"  # base3 rescaled: other bytes, the same picture
    Image.fromarray(_smooth(3)).resize((97, 97), Image.BILINEAR).save(copy)
    other = tmp_path / "cand1.png"
    Image.fromarray(_smooth(10)).save(other)
    found = extra._copies([copy, other], base, extra.NEAR_DUPLICATE_THRESHOLD, workers=1)
    assert set(found) == {0}, found
    assert found[0][0] == 3 and found[0][1].startswith("thumbnail similarity")


class Draws:
    """A generator stand-in whose uniform draws are chosen."""

    def __init__(self, u):
        self.u = np.asarray(u, np.float64)

    def random(self, n):
        assert n == len(self.u)
        return self.u.copy()


def test_an_image_is_removed_only_when_its_draw_is_below_p():
    """select_kept's rule, "removed when u_i < p_i": a draw equal to p keeps the image; in
    particular a draw of exactly 0 (U[0, 1) includes it) never removes an image whose p is 0
    (|s1 - s2| >= ln 2, always kept) (mut42 ex07: ``u > p`` removed it)."""
    scores = np.array([[0.95, 0.05], [0.5, 0.5], [0.6, 0.4], [0.6, 0.4]])
    p = extra.removal_probability(scores)
    assert p[0] == 0.0 and p[1] == 1.0
    kept = select_kept(scores, Draws([0.0, 0.999, p[2], np.nextafter(p[3], 0.0)]))
    assert kept.tolist() == [True, False, True, False]


def test_a_threshold_of_1_still_compares_thumbnails(tmp_path, monkeypatch):
    """``threshold`` 1.0 is a threshold like any other up to 1 (only > 1 turns the thumbnail
    test off, as in train_copies_of_test_images): a candidate whose thumbnail similarity
    reaches 1.0 is a copy (mut42 ex20: ``threshold < 1.0`` skipped the thumbnails at 1.0)."""
    rng = np.random.default_rng(0)
    paths = [save_image(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), tmp_path / f"{n}.png")
             for n in ("cand", "base")]
    monkeypatch.setattr(extra, "near_duplicates", lambda a, b: np.ones((len(a), len(b))))
    assert extra._copies(paths[:1], paths[1:], 1.0, 1) == {0: (0, "thumbnail similarity 1.000")}
    assert extra._copies(paths[:1], paths[1:], 1.0 + 1e-9, 1) == {}


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47d): vsent.data.extra mutants the suite missed


def test_extra_train_refusals_name_the_choices_and_each_layout(learnable_dataset, tmp_path):
    """--extra-train says which larger subsets there are (none above three-agree); a folder
    dataset, given as a Dataset or a path, and a CSV file are refused before any run."""
    from vsent.data.extra import check_extra_train

    with pytest.raises(VsentError, match=r"cross-validated four-agree \(choose from three\)"):
        check_extra_train(learnable_dataset, "four", "five")
    with pytest.raises(VsentError, match=r"three-agree \(choose from none\)"):
        check_extra_train(learnable_dataset, "three", "three")
    with pytest.raises(DataError, match="this is a folder dataset"):
        check_extra_train(load_dataset(learnable_dataset), "five", "three")
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("path,label\n")
    with pytest.raises(DataError, match="this is a csv dataset"):
        check_extra_train(csv_file, "five", "three")


def test_no_extra_image_left_is_an_error_and_the_sets_labels_are_read_only(twitter_like):
    """A larger subset with nothing beyond the base is an error naming both, not an empty
    training addition; the extra and joint labels cannot be changed in place (as no
    Dataset's can)."""
    base = load_dataset(twitter_like, "five")
    ex = extra_train_set(twitter_like, "five", "three")
    joint = with_extra(base, ex)
    for labels in (ex.labels, joint.dataset.labels):
        with pytest.raises(ValueError, match="read-only"):
            labels[0] = 1 - labels[0]
    gt = twitter_like / "ground_truth"
    shutil.copy(gt / "twitter_five_agrees.txt", gt / "twitter_three_agrees.txt")
    with pytest.raises(DataError, match="no three-agree images outside five-agree"):
        extra_train_set(twitter_like, "five", "three")


def test_the_leak_finder_pairs_a_test_image_with_its_rescaled_copy_in_training(twitter_like):
    """train_copies_of_test_images: a training image that is a rescaled copy of a test
    image (other bytes, the same picture) is found by its thumbnail, paired with that test
    image by the most similar training image (not the least)."""
    from vsent.data.extra import train_copies_of_test_images

    ds = load_dataset(twitter_like, "five", validate=False)
    folds = make_folds(ds, "campos")
    t0, r0 = int(folds[0].test[0]), int(folds[0].train[0])
    with Image.open(ds.paths[t0]) as im:
        im.resize((im.width * 2, im.height * 2), Image.BILINEAR).save(ds.paths[r0], quality=95)
    t1, r1 = int(folds[0].test[1]), int(folds[0].train[1])
    shutil.copyfile(ds.paths[t1], ds.paths[r1])  # a byte copy is said as one (mut51b)
    leaks = train_copies_of_test_images(ds, folds)
    assert leaks[ds.names[t0]][0] == ds.names[r0]
    assert leaks[ds.names[t0]][1].startswith("thumbnail similarity")
    assert leaks[ds.names[t1]] == (ds.names[r1], "same bytes")


def test_the_leak_finder_takes_a_similarity_equal_to_the_threshold_of_1(twitter_like,
                                                                        monkeypatch):
    """As in extra_train_set: a threshold up to 1.0 compares thumbnails, and a similarity
    equal to it is a copy; a fold without training images has no leak (no argmax of none)."""
    from vsent.data.extra import train_copies_of_test_images

    ds = load_dataset(twitter_like, "five", validate=False)
    monkeypatch.setattr(extra, "near_duplicates", lambda a, b: np.ones((len(a), len(b))))
    fold = Fold(1, train=np.array([3, 4]), test=np.array([0, 1]))
    leaks = train_copies_of_test_images(ds, [fold], threshold=1.0)
    assert leaks == {ds.names[i]: (ds.names[3], "thumbnail similarity 1.000") for i in (0, 1)}
    lone = Fold(1, train=np.array([], np.int64), test=np.array([0, 1]))
    assert train_copies_of_test_images(ds, [lone], threshold=1.0) == {}


def test_a_recoloured_picture_is_no_near_copy(tmp_path):
    """View 0 subtracts one mean over all values (colour counts), view 1 each channel's
    (layout alone): the same layout shifted in colour matches in view 1 only, and the
    similarity, the smaller cosine, stays far below the threshold."""
    a = (_smooth(4).astype(np.int16) // 3 + 90).astype(np.uint8)  # values in 90..175
    b = np.clip(a.astype(np.int16) + np.array([70, 0, -70]), 0, 255).astype(np.uint8)
    paths = [save_image(x, tmp_path / f"{n}.png") for n, x in (("a", a), ("b", b))]
    ta, tb = thumbnails(paths[:1]), thumbnails(paths[1:])
    assert float(ta[0, 1] @ tb[0, 1]) > 0.99  # the same layout
    assert near_duplicates(ta, tb)[0, 0] < extra.NEAR_DUPLICATE_THRESHOLD


def test_keep_threshold_is_where_the_removal_probability_reaches_0():
    """KEEP_THRESHOLD (pcnn's share of images always kept) is ln 2 exactly: a difference of
    it is never removed, one a hair below it may be."""
    k = extra.KEEP_THRESHOLD
    p = extra.removal_probability(np.array([[k, 0.0], [np.nextafter(k, 0.0), 0.0]]))
    assert p[0] == 0.0 and p[1] > 0.0


def test_a_removal_file_reads_back_the_exact_draw_of_the_same_images_only(tmp_path):
    """removal.csv keeps scores to the last bit (repr) and names that are not UTF-8 as their
    bytes, so a resumed run redraws nothing; a file of fewer images than the data's (a run
    on data since grown) is not reused."""
    from vsent.data.extra import read_removal, write_removal

    path = tmp_path / "removal.csv"
    names, labels = ["a.jpg", "caf\udce9.jpg"], np.array([1, 0])  # (a name not UTF-8)
    scores = np.array([[1 / 3, 2 / 3], [0.1234567891, 0.8765432109]])
    write_removal(path, names, labels, scores, np.array([True, False]))
    kept, back = read_removal(path, names, labels)
    assert kept.tolist() == [True, False] and np.array_equal(back, scores)
    # no image: the scores are still (N, 2) (mut54b)
    write_removal(tmp_path / "none.csv", [], np.zeros(0, int), np.zeros((0, 2)), np.ones(0, bool))
    kept0, back0 = read_removal(tmp_path / "none.csv", [])
    assert kept0.shape == (0,) and back0.shape == (0, 2)
    with pytest.raises(VsentError, match="its images are not those of the dataset"):
        read_removal(path, [*names, "c.jpg"])
    with pytest.raises(VsentError, match="its images are not those of the dataset"):
        read_removal(path, names[::-1])  # the same images in another order (mut51b)
    # diff and p are written as removal_probability gives them (the record's reader)
    rows = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    p = extra.removal_probability(scores)
    assert rows[1] == f"a.jpg,1,{1 / 3!r},{2 / 3!r},{abs(1 / 3 - 2 / 3)!r},{float(p[0])!r},0"
    path.write_text(rows[0] + "\na.jpg,1,inf,0.5,0.0,0.0,0\n")  # not finite: refused
    with pytest.raises(VsentError, match=re.escape(f"{path}, line 2: ") +
                       ".*'inf' is not a finite number"):
        read_removal(path, ["a.jpg"])


def test_a_removal_file_without_its_name_column_is_one_line(tmp_path):
    """The name column is required like the others (it was a KeyError traceback)."""
    from vsent.data.extra import read_removal

    path = tmp_path / "removal.csv"
    path.write_text("label,s1,s2,diff,p,removed\n1,0.5,0.5,0.0,1.0,1\n")
    with pytest.raises(VsentError, match=re.escape(f"{path}, line 1: no column 'name'")):
        read_removal(path, ["a.jpg"])
    # two missing: the first of the file's order named (mut59d D93)
    path.write_text("name,label,s1,diff,p\na.jpg,1,0.5,0.0,1.0\n")
    with pytest.raises(VsentError, match=re.escape(f"{path}, line 1: no column 's2' (a ")):
        read_removal(path, ["a.jpg"])
