import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import build_learnable
from vsent.data.datasets import load_dataset
from vsent.data.folds import Fold, make_folds, save_folds
from vsent.errors import DataError, VsentError


def _fold_names(root: Path, subset: str, k: int, part: str) -> list[str]:
    path = root / "folds" / "campos" / f"{subset}_agrees" / f"test{k}" / f"{part}.txt"
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _check_partition_like(folds: list[Fold], n: int) -> None:
    assert [f.index for f in folds] == list(range(1, len(folds) + 1))
    for f in folds:
        assert f.train.dtype == np.int64 and f.test.dtype == np.int64
        assert not np.intersect1d(f.train, f.test).size
        assert f.train.min() >= 0 and f.train.max() < n and f.test.max() < n


# ------------------------------------------------------------------------------------------
# campos


@pytest.mark.parametrize("subset", ["five", "four", "three"])
def test_campos_folds_follow_the_files(twitter_like, subset):
    ds = load_dataset(twitter_like, subset=subset, validate=False)
    folds = make_folds(ds, "campos")
    assert len(folds) == 5
    _check_partition_like(folds, len(ds))
    for f in folds:
        for part, idx in (("train", f.train), ("test", f.test)):
            assert sorted(ds.names[i] for i in idx) == sorted(
                _fold_names(twitter_like, subset, f.index, part))
    # the test folds partition all items but the last one, which is in no fold
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(len(ds) - 1))
    assert all(len(f.train) + len(f.test) == len(ds) - 1 for f in folds)


def test_campos_drops_skipped_names_with_a_warning(twitter_like, caplog):
    victim = _fold_names(twitter_like, "five", 2, "test")[0]
    (twitter_like / "images" / victim).write_bytes(b"")
    ds = load_dataset(twitter_like, skip_bad=True)
    assert victim not in ds.names
    with caplog.at_level(logging.WARNING, logger="vsent"):
        folds = make_folds(ds, "campos")
    assert len(folds[1].test) == 6 and all(len(f.test) == 7 for i, f in enumerate(folds) if i != 1)
    assert re.search(r"test2/test\.txt: 1 name not in the dataset is left out \(" +
                     re.escape(victim), caplog.text)
    assert re.search(r"test1/train\.txt: 1 name not in the dataset is left out", caplog.text)
    # three names left out: all three named, no ", ..." (four and more: the first three, ...)
    victims = _fold_names(twitter_like, "five", 2, "test")[:3]
    for v in victims[1:]:
        (twitter_like / "images" / v).write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsent"):
        make_folds(load_dataset(twitter_like, skip_bad=True), "campos")
    assert re.search(r"test2/test\.txt: 3 names not in the dataset are left out \(" +
                     re.escape(", ".join(victims)) + r"\)", caplog.text)  # (mut51b)
    # a fourth: the first three named, then ", ..." (mut59d D14)
    fourth = _fold_names(twitter_like, "five", 2, "test")[3]
    (twitter_like / "images" / fourth).write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsent"):
        make_folds(load_dataset(twitter_like, skip_bad=True), "campos")
    assert re.search(r"test2/test\.txt: 4 names not in the dataset are left out \(" +
                     re.escape(", ".join(victims) + ", ...") + r"\)", caplog.text)
    # a file gone from images/ (not only damaged): its label line lets it out too (mut54b)
    gone = _fold_names(twitter_like, "five", 3, "test")[0]
    (twitter_like / "images" / gone).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsent"):
        make_folds(load_dataset(twitter_like, skip_bad=True), "campos")
    assert re.search(r"test3/test\.txt: 1 name not in the dataset is left out \(" +
                     re.escape(gone), caplog.text)


def test_a_campos_fold_file_naming_no_image_of_the_dataset_stops_at_its_line(twitter_like):
    """trial32 #9: a typo in a fold file was a warning without a line, and the split changed
    silently (the image was evaluated in no fold); only --skip-bad's images are left out."""
    test2 = twitter_like / "folds" / "campos" / "five_agrees" / "test2" / "test.txt"
    lines = test2.read_text().splitlines(keepends=True)
    lines[2] = "nonexistent_image.jpg 1\n"
    test2.write_text("".join(lines))
    ds = load_dataset(twitter_like, validate=False)
    with pytest.raises(DataError, match=re.escape(
            f"{test2}:3: nonexistent_image.jpg is not an image of the dataset "
            f"({ds.root})")):
        make_folds(ds, "campos")
    # also when --skip-bad left another image out (review32b #1): only that one is dropped
    victim = _fold_names(twitter_like, "five", 1, "test")[0]
    (twitter_like / "images" / victim).write_bytes(b"")
    ds = load_dataset(twitter_like, skip_bad=True)
    assert victim not in ds.names and ds.skipped
    with pytest.raises(DataError, match=re.escape(f"{test2}:3: nonexistent_image.jpg is not")):
        make_folds(ds, "campos")
    # an image whose line was taken out of the label file is left out, with the warning
    test2.write_text("".join(lines[:2] + lines[3:]))
    five = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    gone = five.read_text().splitlines()[1].split()[0]
    five.write_text("".join(x + "\n" for x in five.read_text().splitlines() if gone not in x))
    ds = load_dataset(twitter_like, skip_bad=True)
    assert gone not in ds.names
    make_folds(ds, "campos")  # no error


def test_campos_needs_the_twitter_layout(learnable_dataset):
    ds = load_dataset(learnable_dataset, validate=False)
    with pytest.raises(DataError, match=re.escape(
            f"{ds.root}: campos folds need the Twitter I layout (this is a folder dataset); "
            "pass --folds stratified, or --folds with a folds JSON file")):
        make_folds(ds, "campos")
    # a CSV dataset is named by its file, not by the folder that holds it (walk24 #4)
    csv_file = learnable_dataset.parent / "labels.csv"
    csv_file.write_text("path,label\n" + "".join(
        f"{p},{y}\n" for p, y in zip(ds.paths, ds.labels, strict=True)))
    csv_ds = load_dataset(csv_file, validate=False)
    with pytest.raises(DataError, match=f"^{re.escape(str(csv_file))}: campos folds need .*csv "
                                        "dataset"):
        make_folds(csv_ds, "campos")
    # said from the path before any work; only for campos (mut51b)
    from vsent.data.folds import check_split_data
    with pytest.raises(DataError, match=f"^{re.escape(str(csv_file))}: campos folds need .*csv "
                                        "dataset"):
        check_split_data("campos", csv_file)
    assert check_split_data("stratified", csv_file) is None
    assert check_split_data("stratified", learnable_dataset) is None
    # a Twitter Dataset built without its agreement subset has no campos folder to name
    # (else: "<root>/folds/campos/None_agrees: no such file or directory") (mut57d)
    with pytest.raises(DataError, match="campos folds need the Twitter I layout"):
        make_folds(replace(ds, source="twitter", subset=None), "campos")


def test_campos_folder_missing(twitter_like):
    import shutil

    shutil.rmtree(twitter_like / "folds" / "campos" / "four_agrees")
    ds = load_dataset(twitter_like, subset="four", validate=False)
    with pytest.raises(DataError, match=re.escape(
            f"{twitter_like.resolve() / 'folds/campos/four_agrees'}: no such file or directory")):
        make_folds(ds, "campos")
    # a file in the folder's place: the same one line, not an OSError of listing it (mut54b)
    (twitter_like / "folds" / "campos" / "four_agrees").write_text("")
    with pytest.raises(DataError, match=re.escape(
            f"{twitter_like.resolve() / 'folds/campos/four_agrees'}: ")):
        make_folds(ds, "campos")


def _fold_file(root: Path, k: int, part: str) -> Path:
    return root / "folds" / "campos" / "five_agrees" / f"test{k}" / f"{part}.txt"


def test_campos_overlap_is_an_error_naming_the_fold(twitter_like):
    leaked = _fold_names(twitter_like, "five", 3, "test")[0]
    train = _fold_file(twitter_like, 3, "train")
    label = dict(line.split() for line in train.parent.joinpath("test.txt").read_text()
                 .splitlines())[leaked]
    train.write_text(train.read_text() + f"{leaked} {label}\n")
    ds = load_dataset(twitter_like, validate=False)
    with pytest.raises(DataError) as info:
        make_folds(ds, "campos")
    msg = str(info.value)
    assert "test3/{train,test}.txt: fold 3: 1 item is in both train and test" in msg
    assert leaked in msg


def test_an_image_in_two_test_sets_is_an_error_naming_both_folds(twitter_like, tmp_path):
    # results are keyed by image name: an image tested twice would lose one of its predictions
    twice = _fold_names(twitter_like, "five", 1, "test")[0]
    test2 = _fold_file(twitter_like, 2, "test")
    train2 = _fold_file(twitter_like, 2, "train")
    label = dict(line.split() for line in _fold_file(twitter_like, 1, "test").read_text()
                 .splitlines())[twice]
    test2.write_text(test2.read_text() + f"{twice} {label}\n")
    train2.write_text("".join(line + "\n" for line in train2.read_text().splitlines()
                              if line.split()[0] != twice))
    ds = load_dataset(twitter_like, validate=False)
    folder = twitter_like / "folds" / "campos" / "five_agrees"
    with pytest.raises(DataError, match=re.escape(
            f"{folder}: {twice} is a test image of fold 1 and of fold 2 (test sets must be "
            "disjoint)")):
        make_folds(ds, "campos")
    # the same in a folds JSON file
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"folds": [
        {"fold": 1, "train": ds.names[5:], "test": ds.names[:5]},
        {"fold": 2, "train": ds.names[:4] + ds.names[9:], "test": ds.names[4:9]}]}))
    with pytest.raises(DataError, match=re.escape(
            f"{path}: {ds.names[4]} is a test image of fold 1 and of fold 2")):
        make_folds(ds, path)


def test_campos_label_mismatch_and_bad_lines(twitter_like):
    test = _fold_file(twitter_like, 1, "test")
    lines = test.read_text().splitlines()
    name, label = lines[2].split()
    lines[2] = f"{name} {1 - int(label)}"
    test.write_text("\n".join(lines) + "\n")
    ds = load_dataset(twitter_like, validate=False)
    with pytest.raises(DataError, match=re.escape(
            f"{test.resolve()}:3: label {1 - int(label)} of {name} disagrees with the dataset "
            f"label {label}")):
        make_folds(ds, "campos")
    lines[2] = f"{name} x"  # a label that is no number: the same one line (mut54b)
    test.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(
            f"{test.resolve()}:3: label x of {name} disagrees with the dataset label {label}")):
        make_folds(ds, "campos")
    lines[2] = f"{name} {label} surplus"
    test.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{test.resolve()}:3: expected")):
        make_folds(ds, "campos")
    lines[2] = name  # the label column may be left out (mut59d D83)
    test.write_text("\n".join(lines) + "\n")
    assert ds.names.index(name) in make_folds(ds, "campos")[0].test


# ------------------------------------------------------------------------------------------
# stratified


def test_stratified_folds(learnable_dataset):
    ds = load_dataset(learnable_dataset, validate=False)
    folds = make_folds(ds, "stratified", n_splits=4, seed=3)
    assert len(folds) == 4
    _check_partition_like(folds, len(ds))
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(ds)))
    for f in folds:
        assert len(f.test) == 12 and int(ds.labels[f.test].sum()) == 6  # 24/24 over 4 folds
        np.testing.assert_array_equal(np.sort(np.concatenate([f.train, f.test])),
                                      np.arange(len(ds)))


def test_stratified_is_seeded(twitter_like):
    ds = load_dataset(twitter_like, validate=False)
    a = make_folds(ds, "stratified", seed=1)
    b = make_folds(ds, "stratified", seed=1)
    c = make_folds(ds, "stratified", seed=2)
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.test, y.test) for x, y in zip(a, c, strict=True))


def test_stratified_needs_enough_of_each_class(make_learnable):
    ds = load_dataset(make_learnable(n_pos=10, n_neg=3), validate=False)
    with pytest.raises(DataError, match="cannot make 5 stratified folds: .* 10 positive and 3 "
                                        "negative"):
        make_folds(ds, "stratified")
    with pytest.raises(VsentError, match="n_splits must be an integer >= 2, got 1"):
        make_folds(ds, "stratified", n_splits=1)
    # one class only: no positive at all is fewer than 5 too (sklearn would split it) (mut54b)
    one_class = replace(ds, labels=np.zeros(len(ds), np.int64))
    with pytest.raises(DataError, match="only 0 positive and 13 negative"):
        make_folds(one_class, "stratified")


# ------------------------------------------------------------------------------------------
# JSON


def test_save_and_reuse_folds(twitter_like, tmp_path):
    ds = load_dataset(twitter_like, validate=False)
    folds = make_folds(ds, "campos")
    path = save_folds(folds, ds, tmp_path / "out" / "in" / "folds.json")  # (parents: mut54b)
    doc = json.loads(path.read_text())
    assert doc["n_splits"] == 5 and [f["fold"] for f in doc["folds"]] == [1, 2, 3, 4, 5]
    assert set(doc["folds"][0]) == {"fold", "train", "test"}
    assert sorted(doc["folds"][0]["test"]) == sorted(_fold_names(twitter_like, "five", 1, "test"))
    again = make_folds(ds, path)
    assert all(np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
               for a, b in zip(folds, again, strict=True))
    # the file refers to names, so a dataset in another order maps to the same images
    three = load_dataset(twitter_like, subset="three", validate=False)
    remapped = make_folds(three, str(path))
    assert [three.names[i] for i in remapped[0].test] == [ds.names[i] for i in folds[0].test]


def test_json_with_unknown_names(twitter_like, tmp_path):
    three = load_dataset(twitter_like, subset="three", validate=False)
    path = save_folds(make_folds(three, "stratified"), three, tmp_path / "folds.json")
    five = load_dataset(twitter_like, subset="five", validate=False)
    with pytest.raises(DataError, match=re.escape(f"{path}: fold 1: ") +
                       r"\d+ names are not in the dataset"):
        make_folds(five, path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a folds JSON file"),
        ('{"folds": []}', "expected a JSON object with a non-empty 'folds' list"),
        ('{"n_splits": 3, "folds": [{"train": [], "test": []}]}', "n_splits is 3 but 1 folds"),
        ('{"folds": [{"fold": 1, "train": ["x"]}]}', "fold entry 1 needs 'train' and 'test'"),
        ('{"folds": [{"fold": 1, "train": [["x"]], "test": []}]}',
         "fold entry 1 needs 'train' and 'test' lists of image names"),
        ('{"folds": [{"fold": "two", "train": [], "test": []}]}',
         "fold entry 1: 'fold' must be a number from 1, got 'two'"),
        ('{"folds": [{"fold": null, "train": [], "test": []}]}',
         "fold entry 1: 'fold' must be a number from 1, got None"),
        ('{"folds": [{"fold": 0, "train": [], "test": []}]}',
         "fold entry 1: 'fold' must be a number from 1, got 0"),
        ('{"folds": [{"fold": 2.7, "train": [], "test": []}]}',
         "fold entry 1: 'fold' must be a number from 1, got 2.7"),
        # a count given as text is named as text, not taken for the number it spells
        ('{"n_splits": "1", "folds": [{"train": [], "test": []}]}',
         "n_splits must be a positive integer, got '1'"),
        ('{"n_splits": 1.0, "folds": [{"train": [], "test": []}]}',
         "n_splits must be a positive integer, got 1.0"),
    ],
)
def test_json_structure_errors(twitter_like, tmp_path, text, message):
    path = tmp_path / "folds.json"
    path.write_text(text)
    ds = load_dataset(twitter_like, validate=False)
    with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
        make_folds(ds, path)


def test_json_with_a_fold_number_used_twice(twitter_like, tmp_path):
    """Runs keep fold k under fold<k>/: a second fold 1 would be taken for the first, done."""
    ds = load_dataset(twitter_like, validate=False)
    doc = json.loads(save_folds(make_folds(ds, "stratified"), ds,
                                tmp_path / "folds.json").read_text())
    doc["folds"][2]["fold"] = 1
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold entry 3: fold number 1 is "
                                                  f"used twice")):
        make_folds(ds, path)


def test_json_listing_a_name_twice_says_so_and_counts_it_once(twitter_like, tmp_path, caplog):
    """audit59: a test (or train) name listed twice in a fold was de-duplicated silently."""
    ds = load_dataset(twitter_like, validate=False)
    path = save_folds(make_folds(ds, "stratified"), ds, tmp_path / "folds.json")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        first = make_folds(ds, path)
    assert "more than once" not in caplog.text
    doc = json.loads(path.read_text())
    again = doc["folds"][1]["test"][0]
    doc["folds"][1]["test"].append(again)
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="vsent"):
        folds = make_folds(ds, path)
    assert [f.test.tolist() for f in folds] == [f.test.tolist() for f in first]
    assert (f"{path}: fold 2: 1 name is listed more than once in its test list, counted once "
            f"(e.g. {again})") in caplog.text


def test_json_leaving_images_out_of_every_test_fold_says_so(twitter_like, tmp_path, caplog):
    """Images the file's folds never test (added since it was made) are named in the log."""
    ds = load_dataset(twitter_like, validate=False)
    path = save_folds(make_folds(ds, "stratified"), ds, tmp_path / "folds.json")
    with caplog.at_level(logging.INFO, logger="vsent"):
        make_folds(ds, path)
    assert "in no test fold" not in caplog.text
    doc = json.loads(path.read_text())
    dropped = doc["folds"][0]["test"].pop()
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.INFO, logger="vsent"):
        folds = make_folds(ds, path)
    assert sum(len(f.test) for f in folds) == len(ds) - 1
    assert (f"1 of {len(ds)} images are in no test fold (e.g. {dropped}): they are trained on "
            "or left out, never evaluated, as the split says") in caplog.text
    # more than three: the first three in the dataset's order are named (mut51b)
    doc["folds"][1]["test"] = doc["folds"][1]["test"][:1]
    path.write_text(json.dumps(doc))
    tested = {n for f in doc["folds"] for n in f["test"]}
    untested = [n for n in ds.names if n not in tested]
    assert len(untested) > 3
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vsent"):
        make_folds(ds, path)
    assert (f"{len(untested)} of {len(ds)} images are in no test fold (e.g. "
            f"{', '.join(untested[:3])}): they") in caplog.text


def test_campos_folds_say_the_images_they_leave_out_in_every_session(twitter_like, caplog):
    """Only a resumed run (its folds.json) said so, which read as if the data had changed."""
    ds = load_dataset(twitter_like, validate=False)
    with caplog.at_level(logging.INFO, logger="vsent"):
        folds = make_folds(ds, "campos")
    left = len(ds) - sum(len(f.test) for f in folds)
    assert left > 0  # (build_twitter_like leaves each subset's last image out, as the paper)
    assert f"campos folds: {left} of {len(ds)} images are in no test fold (e.g. " in (
        caplog.text)


def test_json_overlap_and_missing_file(twitter_like, tmp_path):
    ds = load_dataset(twitter_like, validate=False)
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"n_splits": 1, "folds": [
        {"fold": 1, "train": ds.names[:10], "test": ds.names[9:12]}]}))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold 1: 1 item is in both train "
                                                  f"and test (e.g. {ds.names[9]})")):
        make_folds(ds, path)
    path.write_text(json.dumps({"n_splits": 1, "folds": [
        {"fold": 1, "train": ds.names[:10], "test": ds.names[6:12]}]}))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold 1: 4 items are in both train "
                                                  f"and test (e.g. {', '.join(ds.names[6:9])})")):
        make_folds(ds, path)  # (the first three named: mut51b)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.json'}: no such file or "
                                                  f"directory (--folds expects campos")):
        make_folds(ds, tmp_path / "nope.json")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: is a folder, not a folds JSON "
                                                  "file (--folds expects campos")):
        make_folds(ds, tmp_path)  # it was "no such file or directory" (audit_input25 #6)


# ------------------------------------------------------------------------------------------
# the real data


def test_real_twitter_campos_folds(twitter1):
    ds = load_dataset(twitter1, subset="five", validate=False)
    assert len(ds) == 882
    assert int((ds.labels == 1).sum()) == 581 and int((ds.labels == 0).sum()) == 301
    folds = make_folds(ds, "campos")
    assert len(folds) == 5
    _check_partition_like(folds, len(ds))
    assert [len(f.test) for f in folds] == [176] * 5
    assert [len(f.train) for f in folds] == [704] * 5
    tests = np.concatenate([f.test for f in folds])
    assert len(np.unique(tests)) == 880  # the paper's folds cover 880 of the 882 images


def test_inner_splits_check_gives_advice_that_can_be_followed():
    from vsent.data.folds import check_inner_splits

    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    few = Fold(1, train=np.array([0, 1, 3, 4, 5]), test=np.array([2, 6, 7]))  # 2 negatives
    with pytest.raises(VsentError, match="fewer than --inner-splits 3; use fewer inner splits"):
        check_inner_splits(labels, [few], 3)
    check_inner_splits(labels, [few], 2)
    # one class alone: no number of inner splits (two at least) can help
    one = Fold(2, train=np.array([3, 4, 5]), test=np.array([0, 1, 2]))
    with pytest.raises(VsentError, match="have 0 of one class, fewer than --inner-splits 2; "
                                         "its folds need images of both classes"):
        check_inner_splits(labels, [one], 2)


# ------------------------------------------------------------------------------------------
# unreadable fold files (audit_data23 #3), the dataset a JSON was made for (#6), ~user (#2)


def test_a_fold_file_that_is_not_utf8_or_unreadable_is_one_line_naming_it(twitter_like,
                                                                          monkeypatch):
    ds = load_dataset(twitter_like, validate=False)
    path = twitter_like / "folds" / "campos" / "five_agrees" / "test1" / "test.txt"
    n_lines = len(path.read_text().splitlines())
    path.write_bytes(path.read_bytes() + b"caf\xe9.jpg 1\n")  # a Latin-1 name
    with pytest.raises(DataError) as info:
        make_folds(ds, "campos")
    msg = str(info.value)
    assert msg.startswith(f"{path.resolve()}:{n_lines + 1}: not a UTF-8 text file (")
    assert "\n" not in msg
    path.write_bytes(path.read_bytes()[:-len(b"caf\xe9.jpg 1\n")])
    real = Path.read_bytes

    def denied(self):
        if self.name == "test.txt" and self.parent.name == "test1":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError, match=re.escape(f"{path.resolve()}: Permission denied")):
        make_folds(ds, "campos")


def test_an_unreadable_folds_json_is_one_line(twitter_like, tmp_path, monkeypatch):
    ds = load_dataset(twitter_like, validate=False)
    path = save_folds(make_folds(ds, "stratified"), ds, tmp_path / "folds.json")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(DataError, match=re.escape(f"{path}: Permission denied")):
        make_folds(ds, path)


def test_json_folds_record_their_dataset_and_warn_on_another(twitter_like, tmp_path, caplog):
    five = load_dataset(twitter_like, subset="five", validate=False)
    four = load_dataset(twitter_like, subset="four", validate=False)
    path = save_folds(make_folds(five, "stratified"), five, tmp_path / "folds.json")
    doc = json.loads(path.read_text())
    assert doc["dataset"] == "Twitter five-agree"
    with caplog.at_level(logging.WARNING, logger="vsent"):
        make_folds(five, path)
    assert "made for" not in caplog.text
    # five-agree folds on four-agree run, but test 176 of 223 images a fold: say so
    with caplog.at_level(logging.WARNING, logger="vsent"):
        folds = make_folds(four, path)
    assert len(folds) == 5
    warnings = [r for r in caplog.records if "made for" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (f"{path}: these folds were made for Twitter five-agree, "
                                        f"and are applied to Twitter four-agree")
    # a file written before the title was recorded loads as before, without a warning
    del doc["dataset"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsent"):
        again = make_folds(four, old)
    assert "made for" not in caplog.text
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again, strict=True))


def test_json_with_one_unknown_name_says_name_is(twitter_like, tmp_path):
    ds = load_dataset(twitter_like, validate=False)
    doc = json.loads(save_folds(make_folds(ds, "stratified"), ds,
                                tmp_path / "folds.json").read_text())
    doc["folds"][0]["test"].append("ghost.jpg")
    path = tmp_path / "ghost.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold 1: 1 name is not in the "
                                                  f"dataset")):
        make_folds(ds, path)
    # unknown training names are refused as well, the first three named (mut51b)
    doc["folds"][0]["test"].pop()
    doc["folds"][0]["train"] += ["ghost.jpg", "ghost2.jpg"]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold 1: 2 names are not in the "
                                                  f"dataset {ds.location} (e.g. ghost.jpg, "
                                                  "ghost2.jpg)")):
        make_folds(ds, path)
    doc["folds"][0]["train"] += ["ghost3.jpg", "ghost4.jpg"]  # four: the first three (mut54b)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape("4 names are not in the dataset "
                                                  f"{ds.location} (e.g. ghost.jpg, ghost2.jpg, "
                                                  "ghost3.jpg);")):
        make_folds(ds, path)


def test_a_folds_path_with_an_unknown_user_is_one_line(twitter_like, tmp_path, monkeypatch):
    ds = load_dataset(twitter_like, validate=False)
    with pytest.raises(DataError, match=re.escape("~vsent_no_such_user_7f3a/folds.json: cannot "
                                                  "expand ~")):
        make_folds(ds, "~vsent_no_such_user_7f3a/folds.json")
    # a folds file under ~ is read from there, not from a folder named "~" (mut54b)
    folds = save_folds(make_folds(ds, "stratified"), ds, tmp_path / "folds.json")
    monkeypatch.setenv("HOME", str(tmp_path))
    again = make_folds(ds, "~/folds.json")
    assert [f.test.tolist() for f in again] == [f.test.tolist()
                                                for f in make_folds(ds, folds)]


def test_fold_numbers_are_known_before_the_data_is_read_or_said_unknown(twitter_like,
                                                                        tmp_path, monkeypatch):
    from vsent.data.folds import fold_numbers, fold_numbers_text

    assert fold_numbers(twitter_like, "five", "campos") == [1, 2, 3, 4, 5]
    assert fold_numbers(twitter_like, "five", "stratified", n_splits=3) == [1, 2, 3]
    ds = load_dataset(twitter_like)
    path = save_folds(make_folds(ds, "stratified"), ds, tmp_path / "folds.json")
    assert fold_numbers(twitter_like, "five", path) == [1, 2, 3, 4, 5]
    # "~" paths (as make_folds reads them) are known too (mut59d D80, D81)
    monkeypatch.setenv("HOME", str(twitter_like.parent))
    assert fold_numbers(f"~/{twitter_like.name}", "five", "campos") == [1, 2, 3, 4, 5]
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fold_numbers(twitter_like, "five", "~/folds.json") == [1, 2, 3, 4, 5]
    doc = json.loads(path.read_text())
    # no valid split (make_folds names what is wrong): not known here (review33 #5)
    for bad in ("1", 0, -1, 2, True, [1], {"k": 1}):  # (a list: unhashable, mut54b)
        doc["folds"][0]["fold"] = bad
        path.write_text(json.dumps(doc))
        assert fold_numbers(twitter_like, "five", path) is None, bad
    campos = twitter_like / "folds" / "campos" / "five_agrees"
    (campos / "test3").rename(campos / "test9")  # test1, test2, test4, test5, test9
    assert fold_numbers(twitter_like, "five", "campos") is None
    (campos / "test9").rename(campos / "test3")
    path.write_text("{")
    assert fold_numbers(twitter_like, "five", path) is None
    # no list of folds (mut54b), or fold entries that are no objects (mut59d D77)
    for text in ('{"folds": 5}', "{}", "[1]", '{"folds": [1, 2]}'):
        path.write_text(text)
        assert fold_numbers(twitter_like, "five", path) is None, text
    assert fold_numbers(tmp_path / "no-such-folder", "five", "campos") is None
    assert fold_numbers(twitter_like, "five", tmp_path / "missing.json") is None
    assert fold_numbers_text([1, 2, 3]) == "1..3" and fold_numbers_text([2, 5]) == "2, 5"


def test_a_path_or_a_bad_seed_where_the_python_api_takes_a_dataset_is_said(learnable_dataset):
    """api37 #13: make_folds / image_cache given the dataset's path were an AttributeError on
    ``.labels`` / ``.paths``; a negative seed numpy's text; create_model(None) an
    AttributeError on ``.startswith``."""
    from vsent.data.cache import image_cache
    from vsent.models import create_model

    path = str(learnable_dataset)
    for call, where in ((lambda: make_folds(path, "stratified"), "make_folds"),
                        (lambda: image_cache(path, 64), "image_cache")):
        with pytest.raises(TypeError, match=rf"^{where} takes a Dataset, got the path '.*': "
                                            r"pass vsent\.data\.load_dataset\("):
            call()
    with pytest.raises(VsentError, match=r"^--seed must be an integer in 0\.\.\d+, got -1$"):
        make_folds(load_dataset(learnable_dataset), "stratified", seed=-1)
    # api60: the number of folds given as the spec
    with pytest.raises(TypeError, match=r"^spec must be 'campos', 'stratified' or a folds JSON "
                                        r"path, got 5 \(n_splits sets the number of stratified "
                                        r"folds\)$"):
        make_folds(load_dataset(learnable_dataset), 5)
    with pytest.raises(TypeError, match=r"^create_model takes a model name .*, got None$"):
        create_model(None)


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


def test_stratified_folds_need_as_many_images_of_each_class_as_folds_and_no_more(tmp_path):
    """k stratified folds need k images of each class (one per test fold): 5 negatives make 5
    folds, each testing one of them; 4 do not (mut42 fo09: ``<=`` refused exactly k)."""
    ds = load_dataset(build_learnable(tmp_path / "five", n_pos=10, n_neg=5), validate=False)
    folds = make_folds(ds, "stratified", n_splits=5, seed=0)
    assert len(folds) == 5
    assert [int((ds.labels[f.test] == 0).sum()) for f in folds] == [1] * 5
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(ds)))
    ds4 = load_dataset(build_learnable(tmp_path / "four", n_pos=10, n_neg=4), validate=False)
    with pytest.raises(DataError, match="cannot make 5 stratified folds"):
        make_folds(ds4, "stratified", n_splits=5, seed=0)


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47d): vsent.data.folds mutants the suite missed


def _campos_five(root: Path) -> Path:
    return root / "folds" / "campos" / "five_agrees"


def test_inner_splits_check_counts_a_class_absent_from_the_end_of_the_labels():
    """Training images of the negative class alone have 0 positives (bincount's minlength=2:
    without it the missing class 1 was not counted); one image of a class is no remedy for
    fewer inner splits (two at least), so the advice is other folds."""
    from vsent.data.folds import check_inner_splits

    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    negatives = Fold(1, train=np.array([0, 1, 2]), test=np.array([3, 4, 5, 6]))
    with pytest.raises(VsentError, match="fold 1: the training images have 0 of one class"):
        check_inner_splits(labels, [negatives], 2)
    one_positive = Fold(2, train=np.array([0, 1, 2, 4]), test=np.array([3, 5, 6]))
    with pytest.raises(VsentError, match="have 1 of one class, fewer than --inner-splits 2; "
                                         "its folds need images of both classes"):
        check_inner_splits(labels, [one_positive], 2)


def test_campos_fold_indices_are_sorted_and_unique_whatever_the_file_order(twitter_like):
    """Fold.train/test are documented sorted (np.unique): a fold file listed backwards, with
    a line twice, gives the same fold as the file in order."""
    ds = load_dataset(twitter_like)
    before = make_folds(ds, "campos")
    train = _campos_five(twitter_like) / "test1" / "train.txt"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*reversed(lines), lines[0]]) + "\n")
    test = train.with_name("test.txt")  # and the test file too (mut51b)
    lines = test.read_text().splitlines()
    test.write_text("\n".join([*reversed(lines), lines[0]]) + "\n")
    after = make_folds(ds, "campos")
    assert np.all(np.diff(after[0].train) > 0) and np.all(np.diff(after[0].test) > 0)
    assert after[0].train.tolist() == before[0].train.tolist()
    assert after[0].test.tolist() == before[0].test.tolist()


def test_campos_ignores_entries_that_are_not_test_k_folders(twitter_like):
    """Only folders named test<digits> are folds: a file ``test6`` or a folder ``test_old``
    beside them is neither a sixth fold nor an int('_old') traceback."""
    folder = _campos_five(twitter_like)
    (folder / "test6").write_text("not a fold\n")
    (folder / "test_old").mkdir()
    ds = load_dataset(twitter_like)
    assert [f.index for f in make_folds(ds, "campos")] == [1, 2, 3, 4, 5]
    from vsent.data.folds import fold_numbers
    assert fold_numbers(twitter_like, "five", "campos") == [1, 2, 3, 4, 5]


def test_campos_folder_without_test_folders_is_an_error_saying_none(twitter_like):
    """No test<k> folder at all is no split (not zero folds that run nothing)."""
    import shutil

    folder = _campos_five(twitter_like)
    ds = load_dataset(twitter_like)
    (folder / "test3").rename(folder / "test7")  # a gap: no split either (mut51b)
    with pytest.raises(DataError, match=re.escape(f"{folder}: expected fold folders test1 .. "
                                                  "testK, found test1, test2, test4, test5, "
                                                  "test7")):
        make_folds(ds, "campos")
    for k in (1, 2, 4, 5, 7):
        shutil.rmtree(folder / f"test{k}")
    with pytest.raises(DataError, match=re.escape(f"{folder}: expected fold folders test1 .. "
                                                  "testK, found none")):
        make_folds(ds, "campos")


@pytest.mark.parametrize("empty", ["train", "test"])
def test_a_json_fold_with_an_empty_split_names_which(twitter_like, tmp_path, empty):
    ds = load_dataset(twitter_like, validate=False)
    entry = {"fold": 1, "train": ds.names[:5], "test": ds.names[5:10], empty: []}
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"folds": [entry]}))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold 1: empty {empty} split")):
        make_folds(ds, path)


def test_json_fold_numbers_default_to_positions_and_are_given_sorted(twitter_like, tmp_path):
    """A folds JSON without 'fold' keys numbers its folds 1..K by position, in make_folds and
    fold_numbers alike; fold_numbers lists a file's numbers sorted (its order may differ)."""
    from vsent.data.folds import fold_numbers

    ds = load_dataset(twitter_like, validate=False)
    n = ds.names
    doc = {"folds": [{"train": n[10:20], "test": n[:5]}, {"train": n[10:20], "test": n[5:10]}]}
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(doc))
    assert [f.index for f in make_folds(ds, path)] == [1, 2]
    assert fold_numbers(twitter_like, "five", path) == [1, 2]
    doc["folds"][0]["fold"], doc["folds"][1]["fold"] = 3, 1
    path.write_text(json.dumps(doc))
    assert fold_numbers(twitter_like, "five", path) == [1, 3]
    assert [f.index for f in make_folds(ds, path)] == [3, 1]  # its own numbers, in its order


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # True is an int to isinstance, not fold 1
        ({"fold": True, "train": ["a"], "test": ["b"]}, "'fold' must be a number from 1, got True"),
        # the test list is checked like the train list (a number is no image name)
        ({"fold": 1, "train": ["a"], "test": [3]}, "needs 'train' and 'test' lists of image names"),
    ],
)
def test_json_fold_entries_checked_in_full(twitter_like, tmp_path, entry, message):
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"folds": [entry]}))
    with pytest.raises(DataError, match=re.escape(f"{path}: fold entry 1")) as info:
        make_folds(load_dataset(twitter_like, validate=False), path)
    assert message in str(info.value)


def test_json_n_splits_below_the_folds_listed_is_refused(twitter_like, tmp_path):
    ds = load_dataset(twitter_like, validate=False)
    path = save_folds(make_folds(ds, "stratified", n_splits=2), ds, tmp_path / "folds.json")
    doc = json.loads(path.read_text())
    assert doc["n_splits"] == 2
    doc["n_splits"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(f"{path}: n_splits is 1 but 2 folds")):
        make_folds(ds, path)


def test_a_folds_json_that_is_not_utf8_is_one_line(twitter_like, tmp_path):
    path = tmp_path / "folds.json"
    path.write_bytes(b'{"folds": "\xff\xfe"}')
    with pytest.raises(DataError, match=re.escape(f"{path}: not a folds JSON file (")):
        make_folds(load_dataset(twitter_like, validate=False), path)


def test_a_folds_spec_that_is_no_regular_file_is_refused_before_reading(tmp_path):
    """A FIFO exists but is no folds file (reading it would wait for a writer forever)."""
    import os

    from vsent.data.folds import check_folds_spec

    fifo = tmp_path / "folds.fifo"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=re.escape(f"{fifo}: not a regular file (--folds ")):
        check_folds_spec(fifo)
