import dataclasses
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TWITTER_LIKE_COUNTS, save_image, sentiment_image
from vsent.data.datasets import Dataset, describe, load_dataset
from vsent.errors import DataError, VsentError


def _label_file(root: Path, subset: str = "five") -> Path:
    return root / "ground_truth" / f"twitter_{subset}_agrees.txt"


def _expected_rows(root: Path, subset: str) -> list[tuple[str, int]]:
    lines = _label_file(root, subset).read_text().splitlines()
    return [(line.split()[0], int(line.split()[1])) for line in lines]


# ------------------------------------------------------------------------------------------
# Twitter I layout


@pytest.mark.parametrize("subset", ["five", "four", "three"])
def test_twitter_layout(twitter_like, subset):
    ds = load_dataset(twitter_like, subset=subset)
    rows = _expected_rows(twitter_like, subset)
    assert isinstance(ds, Dataset)
    assert len(ds) == TWITTER_LIKE_COUNTS[subset] == len(rows)
    assert ds.names == [name for name, _ in rows]
    np.testing.assert_array_equal(ds.labels, [label for _, label in rows])
    assert ds.labels.dtype == np.int64 and not ds.labels.flags.writeable
    assert ds.paths == [twitter_like.resolve() / "images" / n for n in ds.names]
    assert all(p.is_absolute() and p.is_file() for p in ds.paths)
    assert (ds.source, ds.subset, ds.skipped) == ("twitter", subset, [])
    assert ds.root == twitter_like.resolve()


def test_describe(twitter_like, caplog):
    with caplog.at_level(logging.INFO, logger="vsent"):
        ds = load_dataset(twitter_like)
    n_pos = int(ds.labels.sum())
    line = describe(ds)
    assert line.startswith(f"36 images ({n_pos} positive, {36 - n_pos} negative)")
    assert "twitter five-agree" in line and "\n" not in line
    # mut60c D96: every load says that line in the log (a run's log tells what it read)
    assert f"dataset: {line}" in caplog.messages


def test_dataset_is_frozen(twitter_like):
    ds = load_dataset(twitter_like)
    with pytest.raises(AttributeError):
        ds.names = []
    assert load_dataset(ds) is ds
    names = list(ds.names)
    with pytest.raises(dataclasses.FrozenInstanceError):  # refused by the frozen dataclass
        ds.labels = np.zeros(len(ds), np.int64)
    assert ds.names == names and len(ds.labels) == 36


def _rewrite_labels(root: Path, lines: list[str], subset: str = "five") -> Path:
    path = _label_file(root, subset)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _load_error(data) -> str:
    """The message of the DataError :func:`load_dataset` raises for ``data``."""
    with pytest.raises(DataError) as info:
        load_dataset(data)
    return str(info.value)


def test_every_label_problem_is_listed_with_file_and_line(twitter_like):
    rows = _expected_rows(twitter_like, "five")
    lines = [f"{n} {lab}" for n, lab in rows[:5]]
    lines[1] = f"{rows[1][0]} 2"  # wrong label value
    lines.append("ghost.jpg 1")  # unknown file
    lines.append(f"{rows[0][0]} 0")  # duplicate
    lines.append(f"  {rows[6][0]} 1 extra\t")  # malformed (quoted without its blanks)
    lines.append("")  # blank lines are allowed
    lines.append(rows[7][0])  # malformed: missing label
    path = _rewrite_labels(twitter_like, lines)
    msg = _load_error(twitter_like)
    assert msg.startswith("5 bad label entries")
    assert f"{path}:2: label '2' of {rows[1][0]} is not 0 (negative) or 1 (positive)" in msg
    assert f"{path}:6: ghost.jpg: no such image in " in msg
    assert f"{path}:7: {rows[0][0]} is a duplicate of line 1" in msg
    assert f"{path}:8: expected '<file name> <label>' (2 fields), got 3: " \
           f"'{rows[6][0]} 1 extra'" in msg
    assert f"{path}:10: expected '<file name> <label>' (2 fields), got 1" in msg
    # mut60c D86: the headline says both ways out, the CLI's and Python's
    assert msg.splitlines()[0] == ("5 bad label entries (fix them or skip them with "
                                   "--skip-bad, or skip_bad=True in Python):")


def test_a_twitter_name_with_a_folder_is_refused(twitter_like):
    """./0.jpg would list 0.jpg a second time (with another label, past the duplicate check),
    ../x.jpg reaches outside images/: a Twitter I name is a file name."""
    rows = _expected_rows(twitter_like, "five")
    name, label = rows[0]
    path = _rewrite_labels(twitter_like, [f"{name} {label}", f"./{name} {1 - label}",
                                          f"../images/{rows[1][0]} 1", *(f"{n} {lab}" for n, lab
                                                                         in rows[2:6])])
    msg = _load_error(twitter_like)
    assert msg.startswith("2 bad label entries")
    assert f"{path}:2: ./{name} is not a file name in " in msg
    assert f"{path}:3: ../images/{rows[1][0]} is not a file name in " in msg


def test_long_problem_lists_are_capped(twitter_like):
    path = _rewrite_labels(twitter_like, [f"ghost{i}.jpg 1" for i in range(25)])
    lines = _load_error(twitter_like).splitlines()
    assert lines[0].startswith("25 bad label entries")
    assert len(lines) == 1 + 20 + 1
    assert lines[20].strip().startswith(f"{path}:20: ghost19.jpg")
    assert lines[-1].strip() == "and 5 more"


def test_skip_bad_drops_bad_lines_and_records_them(twitter_like, caplog):
    rows = _expected_rows(twitter_like, "five")
    lines = [f"{n} {lab}" for n, lab in rows]
    lines[3] = f"{rows[3][0]} yes"
    lines.append("ghost.jpg 0")
    path = _rewrite_labels(twitter_like, lines)
    with caplog.at_level(logging.WARNING, logger="vsent"):
        ds = load_dataset(twitter_like, skip_bad=True)
    assert len(ds) == len(rows) - 1
    assert rows[3][0] not in ds.names
    assert [w for w, _ in ds.skipped] == [f"{path}:4", f"{path}:{len(rows) + 1}"]
    assert f"skipping {path}:4: label 'yes'" in caplog.text


def test_empty_label_file(twitter_like):
    path = _rewrite_labels(twitter_like, ["", "   "])
    with pytest.raises(DataError, match=re.escape(f"{path}: empty label file")):
        load_dataset(twitter_like, skip_bad=True)


def test_all_lines_bad_with_skip_bad(twitter_like):
    _rewrite_labels(twitter_like, ["ghost.jpg 1"])
    with pytest.raises(DataError, match="no usable images"):
        load_dataset(twitter_like, skip_bad=True)


def test_missing_label_file_for_subset(twitter_like):
    _label_file(twitter_like, "four").unlink()
    with pytest.raises(DataError, match=re.escape(
            f"{_label_file(twitter_like.resolve(), 'four')}: no such file or directory")):
        load_dataset(twitter_like, subset="four")


def test_bad_subset_value(twitter_like):
    with pytest.raises(VsentError, match="subset must be one of five, four, three, got 'two'"):
        load_dataset(twitter_like, subset="two")


# ------------------------------------------------------------------------------------------
# image validation


def _break_images(root: Path, bad_images: dict[str, Path]) -> dict[str, Path]:
    """Replace three listed images by corrupt, empty and text files."""
    names = [n for n, _ in _expected_rows(root, "five")]
    broken = {}
    for name, case in zip(names[:3], ("truncated", "empty", "text"), strict=True):
        target = root / "images" / name
        target.write_bytes(bad_images[case].read_bytes())
        broken[case] = target.resolve()
    return broken


def test_validate_lists_every_undecodable_image(twitter_like, bad_images):
    broken = _break_images(twitter_like, bad_images)
    msg = _load_error(twitter_like)
    assert msg.startswith("3 of 36 images cannot be decoded")
    assert f"{broken['truncated']}: truncated image file" in msg
    assert f"{broken['empty']}: empty file" in msg
    assert f"{broken['text']}: cannot identify image file" in msg


def test_validate_false_does_not_decode(twitter_like, bad_images):
    _break_images(twitter_like, bad_images)
    assert len(load_dataset(twitter_like, validate=False)) == 36
    # mut60c D82: numpy's bool (a flag read from an array) is taken as the bool it is
    assert len(load_dataset(twitter_like, validate=np.False_)) == 36


def test_skip_bad_drops_undecodable_images(twitter_like, bad_images, caplog):
    broken = _break_images(twitter_like, bad_images)
    with caplog.at_level(logging.WARNING, logger="vsent"):
        ds = load_dataset(twitter_like, skip_bad=True)
    assert len(ds) == 33 and len(ds.labels) == 33
    assert not set(broken.values()) & set(ds.paths)
    assert sorted(ds.skipped) == sorted([
        (str(broken["truncated"]), "truncated image file"),
        (str(broken["empty"]), "empty file"),
        (str(broken["text"]), "cannot identify image file"),
    ])
    assert f"skipping {broken['empty']}: empty file" in caplog.text
    assert "3 bad items skipped" in describe(ds)


def test_validation_catches_oversized_images(twitter_like, monkeypatch):
    from vsent.data import images

    monkeypatch.setattr(images, "MAX_PIXELS", 30 * 30)
    with pytest.raises(DataError, match="above the limit of 900"):
        load_dataset(twitter_like)


# ------------------------------------------------------------------------------------------
# positive/ + negative/ folders


def test_folder_layout(learnable_dataset):
    # extras that must be ignored: non-image files and hidden files; nested folders are read
    (learnable_dataset / "positive" / "README.txt").write_text("notes")
    (learnable_dataset / "negative" / ".DS_Store").write_bytes(b"\0\0")
    save_image(sentiment_image(0, np.random.default_rng(3)), learnable_dataset / "negative"
               / "sub" / "deep.PNG")
    ds = load_dataset(learnable_dataset)
    assert (ds.source, ds.subset) == ("folder", None)
    assert len(ds) == 49
    assert ds.names[0] == "positive/positive_000.jpg"
    assert "negative/sub/deep.PNG" in ds.names
    assert all(n.startswith("positive/") == bool(lab) for n, lab in zip(ds.names, ds.labels,
                                                                         strict=True))
    assert int(ds.labels.sum()) == 24
    assert ds.paths[0] == learnable_dataset.resolve() / "positive" / "positive_000.jpg"
    # mut60c D101: every image format the folder layout takes is found (names only here)
    exts = (".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm",
            ".pbm")
    for ext in exts:
        (learnable_dataset / "positive" / f"fmt{ext}").write_bytes(b"")
    names = load_dataset(learnable_dataset, validate=False).names
    assert {f"positive/fmt{ext}" for ext in exts} <= set(names)


def test_class_names_index_the_labels(learnable_dataset):
    # label 1 is "positive", 0 "negative" (CLASS_NAMES[label]): checkpoints and predictions
    # name outputs with it, so it must agree with the folder a label came from
    from vsent.data.datasets import CLASS_NAMES

    assert CLASS_NAMES == ("negative", "positive")
    ds = load_dataset(learnable_dataset, validate=False)
    assert {n.split("/")[0] for n, lab in zip(ds.names, ds.labels, strict=True)
            if CLASS_NAMES[lab] == "positive"} == {"positive"}
    assert [CLASS_NAMES[lab] for lab in ds.labels].count("negative") == 24


def test_folder_without_images(tmp_path):
    (tmp_path / "positive").mkdir()
    (tmp_path / "negative").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: no image files")):
        load_dataset(tmp_path)


def test_unknown_folder_layout(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: not a dataset: expected")):
        load_dataset(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope'}: no such file or "
                                                  f"directory")):
        load_dataset(tmp_path / "nope")


def test_folder_with_a_bad_image(learnable_dataset, bad_images):
    bad = learnable_dataset / "negative" / "broken.jpg"
    bad.write_bytes(bad_images["truncated"].read_bytes())
    with pytest.raises(DataError, match=re.escape(f"{bad.resolve()}: truncated image file")):
        load_dataset(learnable_dataset)
    ds = load_dataset(learnable_dataset, skip_bad=True)
    assert len(ds) == 48 and "negative/broken.jpg" not in ds.names


def test_a_fifo_or_device_named_like_an_image_is_said_not_dropped(learnable_dataset, tmp_path):
    """audit_errors28 #4, #5: a FIFO in a class folder was dropped without a word, and one
    (or /dev/zero) listed in a CSV was "no such file or directory"."""
    import os

    fifo = learnable_dataset / "positive" / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=re.escape(f"{fifo}: is not a regular file")):
        load_dataset(learnable_dataset, validate=False)
    ds = load_dataset(learnable_dataset, skip_bad=True, validate=False)
    assert "positive/pipe.jpg" not in ds.names and any("pipe.jpg" in s for s, _ in ds.skipped)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,label\n{fifo},1\n/dev/zero,0\n")
    with pytest.raises(DataError) as e:
        load_dataset(csv, validate=False)
    assert f"{csv}:2: {fifo}: not a regular file" in str(e.value)
    assert f"{csv}:3: /dev/zero: not a regular file" in str(e.value)


# ------------------------------------------------------------------------------------------
# CSV


@pytest.fixture
def csv_data(tmp_path):
    rng = np.random.default_rng(0)
    save_image(sentiment_image(1, rng), tmp_path / "imgs" / "a.jpg")
    save_image(sentiment_image(0, rng), tmp_path / "imgs" / "b.png")
    save_image(sentiment_image(1, rng), tmp_path / "elsewhere" / "c.jpg")
    return tmp_path


def _write_csv(folder: Path, text: str, name: str = "labels.csv", **kw) -> Path:
    path = folder / name
    path.write_text(text, **kw)
    return path


def test_csv(csv_data):
    absolute = csv_data / "elsewhere" / "c.jpg"
    path = _write_csv(csv_data, f"path,label\nimgs/a.jpg,1\nimgs/b.png,negative\n\n"
                                f"{absolute},Positive\n")
    ds = load_dataset(path)
    assert (ds.source, ds.subset, ds.root) == ("csv", None, csv_data.resolve())
    assert ds.names == ["imgs/a.jpg", "imgs/b.png", str(absolute)]
    assert ds.paths == [csv_data.resolve() / "imgs/a.jpg", csv_data.resolve() / "imgs/b.png",
                        absolute]
    np.testing.assert_array_equal(ds.labels, [1, 0, 1])
    # named as itself in titles: two CSVs of one folder are two datasets
    assert ds.label_file == path.resolve()
    assert ds.title == f"{csv_data.resolve().name}/labels.csv"


def test_a_csv_dataset_is_named_by_its_file_in_messages(csv_data):
    """``--data labels.csv``: the one-line description and a fold error name the CSV file,
    not its folder (two CSVs of one folder are two datasets)."""
    from vsent.data import make_folds
    from vsent.data.datasets import describe

    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\nimgs/b.png,0\n")
    ds = load_dataset(path)
    assert ds.location == path.resolve()
    assert describe(ds).endswith(f"csv dataset at {path.resolve()}")
    with pytest.raises(DataError, match=f"^{re.escape(str(path.resolve()))}: cannot make 5 "):
        make_folds(ds, "stratified")


def test_csv_extra_columns_and_bom(csv_data):
    path = _write_csv(csv_data, "\ufeffid,Label,Path\n1,0,imgs/a.jpg\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.names == ["imgs/a.jpg"] and ds.labels.tolist() == [0]


def test_a_csv_that_is_not_utf8_names_its_line_and_byte(csv_data):
    """The offset was the decoder's in its chunk (byte 2668 for a bad byte at 60012), and no
    line was given (audit_input25 #3)."""
    good = "".join(f"imgs/a{i}.jpg,1\n" for i in range(5000))
    path = csv_data / "labels.csv"
    data = ("\ufeffpath,label\n" + good).encode() + b"imgs/caf\xe9.jpg,0\n"
    path.write_bytes(data)
    bad = data.index(b"caf\xe9") + 3
    assert bad > 60_000  # far past the decoder's first chunk
    assert _load_error(path) == (f"{path.resolve()}:5002: not a UTF-8 CSV file (invalid "
                                 f"continuation byte at byte {bad})")


def test_a_folder_where_a_label_file_is_expected_is_named_a_folder(twitter_like, csv_data):
    """It was 'no such file or directory' (audit_input25 #6)."""
    label = _label_file(twitter_like)
    label.unlink()
    label.mkdir()
    assert _load_error(twitter_like) == f"{label.resolve()}: is a folder, not a text file"
    folder = csv_data / "labels.csv"
    folder.mkdir()
    assert _load_error(folder).startswith(f"{folder.resolve()}: ")  # a folder dataset then


def test_csv_problems_name_file_and_line(csv_data):
    path = _write_csv(csv_data, "path,label\n"
                                "imgs/a.jpg,1\n"          # 2 ok
                                "imgs/b.png,maybe\n"      # 3 bad label
                                "imgs/a.jpg,1\n"          # 4 duplicate of 2
                                "imgs/zzz.jpg,0\n"        # 5 missing file
                                "imgs/b.png\n"            # 6 field count
                                "imgs/b.png,0,extra\n")   # 7 field count
    msg = _load_error(path)
    assert msg.startswith("5 bad label entries")
    assert f"{path}:3: label 'maybe' of imgs/b.png is not 0/1 or negative/positive" in msg
    assert f"{path}:4: imgs/a.jpg is a duplicate of line 2" in msg
    assert f"{path}:5: {path.parent / 'imgs/zzz.jpg'}: no such file or directory" in msg
    assert f"{path}:6: expected 2 fields (path,label), got 1" in msg
    assert f"{path}:7: expected 2 fields (path,label), got 3" in msg
    ds = load_dataset(path, skip_bad=True)
    assert ds.names == ["imgs/a.jpg"] and len(ds.skipped) == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("file,target\na.jpg,1\n", "1: expected a header with columns path,label"),
        ("path,label\n", "no rows after the header"),
        # mut60c D91: the csv module's own refusal (a cell over its field size limit)
        pytest.param("path,label\n" + "x" * 140_000 + ",1\n",
                     "malformed CSV: field larger than field limit", id="cell-over-limit"),
    ],
)
def test_csv_structure_errors(csv_data, text, message):
    path = _write_csv(csv_data, text)
    with pytest.raises(DataError, match=re.escape(f"{path.resolve()}") + r":? ?" +
                       re.escape(message)):
        load_dataset(path)


def test_csv_with_a_bad_image(csv_data, bad_images):
    (csv_data / "imgs" / "bad.jpg").write_bytes(b"")
    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\nimgs/bad.jpg,0\n")
    with pytest.raises(DataError, match=re.escape(f"{csv_data.resolve() / 'imgs/bad.jpg'}: "
                                                  f"empty file")):
        load_dataset(path)


# ------------------------------------------------------------------------------------------
# the real data


def test_real_twitter_five_agree(twitter1):
    ds = load_dataset(twitter1, subset="five")
    assert len(ds) == 882
    assert int((ds.labels == 1).sum()) == 581 and int((ds.labels == 0).sum()) == 301
    assert ds.skipped == []


@pytest.mark.parametrize(("subset", "n", "n_pos"), [("four", 1116, 689), ("three", 1269, 769)])
def test_real_twitter_subset_counts(twitter1, subset, n, n_pos):
    # the counts of the dataset's ground-truth files (positive + negative): four-agree
    # 689 + 427, three-agree 769 + 500; a subset read from the wrong file would differ
    ds = load_dataset(twitter1, subset=subset, validate=False)
    assert (len(ds), int((ds.labels == 1).sum()), ds.subset) == (n, n_pos, subset)


# ------------------------------------------------------------------------------------------
# one file listed twice under two spellings (audit_data23 #1), ~user paths (#2), messages (#11)

NO_SUCH_USER = "~vsent_no_such_user_7f3a"  # a ~user that no machine running the tests has


def test_csv_rows_naming_a_listed_file_another_way_are_duplicates(csv_data):
    # sub/../a.jpg and a link to a.jpg are a.jpg again: with a second row it could be trained
    # on and tested in one fold, maybe under the other label
    (csv_data / "imgs" / "sub").mkdir()
    (csv_data / "imgs" / "link.jpg").symlink_to(csv_data / "imgs" / "a.jpg")
    path = _write_csv(csv_data, "path,label\n"
                                "imgs/a.jpg,1\n"           # 2
                                "imgs/b.png,0\n"           # 3
                                "imgs/sub/../a.jpg,0\n"    # 4: the file of line 2
                                "imgs/link.jpg,1\n"        # 5: a link to it
                                "./imgs//b.png,0\n")       # 6: line 3, spelt as Path spells it
    msg = _load_error(path)
    assert msg.startswith("3 bad label entries")
    assert f"{path}:4: imgs/sub/../a.jpg is the file of line 2 (imgs/a.jpg)" in msg
    assert f"{path}:5: imgs/link.jpg is the file of line 2 (imgs/a.jpg)" in msg
    assert f"{path}:6: ./imgs//b.png is a duplicate of line 3" in msg
    ds = load_dataset(path, skip_bad=True)
    assert ds.names == ["imgs/a.jpg", "imgs/b.png"]
    assert len({p.resolve() for p in ds.paths}) == len(ds)


def test_a_folder_dataset_follows_linked_folders_and_names_a_broken_link(make_learnable,
                                                                          tmp_path):
    """positive/ assembled from links to other folders lost their images silently
    (Path.rglob does not follow linked folders), and a link to a deleted image was skipped
    without a word; a link loop must still end."""
    data = make_learnable(n_pos=3, n_neg=3)
    more = make_learnable(tmp_path / "more", n_pos=2, n_neg=0) / "positive"
    (data / "positive" / "more").symlink_to(more, target_is_directory=True)
    (data / "positive" / "loop").symlink_to(data / "positive", target_is_directory=True)
    ds = load_dataset(data, validate=False)
    assert sorted(n for n in ds.names if n.startswith("positive/more/")) == [
        "positive/more/positive_000.jpg", "positive/more/positive_001.jpg"]
    assert int(ds.labels.sum()) == 5 and len(ds) == 8
    (data / "positive" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    with pytest.raises(DataError, match=r"gone\.jpg: is a broken link"):
        load_dataset(data, validate=False)
    kept = load_dataset(data, validate=False, skip_bad=True)
    assert len(kept) == 8 and [w for w, _ in kept.skipped] == [str(data / "positive/gone.jpg")]


def test_a_folder_dataset_of_broken_links_only_names_them(tmp_path):
    """mut49c D56: a folder whose every image is a broken link read "no image files", hiding
    the links it had found; they are named as for a folder with other images too."""
    for cls in ("positive", "negative"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "a.jpg").symlink_to(tmp_path / f"deleted_{cls}.jpg")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path, validate=False)
    assert str(e.value).splitlines()[1:] == [
        f"  {tmp_path / 'positive/a.jpg'}: is a broken link (what it points to is gone)",
        f"  {tmp_path / 'negative/a.jpg'}: is a broken link (what it points to is gone)"]
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: no usable images (all "
                                                  "skipped)")):
        load_dataset(tmp_path, validate=False, skip_bad=True)


def test_a_run_folder_inside_a_class_folder_is_no_data(make_learnable, caplog):
    """`--out data/positive/run`: the run's figures (curves.png) were read as positive images
    by its next load (a resume refused as changed data, a later run trained on a plot)."""
    from vsent.runs import open_run_dir

    data = make_learnable(n_pos=3, n_neg=3)
    names = load_dataset(data, validate=False).names
    with open_run_dir(data / "positive" / "run", {"command": "demo", "data": str(data)}) as rd:
        save_image(np.zeros((8, 8, 3), np.uint8), rd / "curves.png")
        # mut60c D95: nor are the folders inside it (a fold's overlays)
        (rd / "fold0").mkdir()
        save_image(np.zeros((8, 8, 3), np.uint8), rd / "fold0" / "overlay.png")
    (data / "positive" / "notes").mkdir()  # a folder of the user's (no run): read as always
    save_image(np.zeros((8, 8, 3), np.uint8), data / "positive" / "notes" / "x.png")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        again = load_dataset(data, validate=False)
    assert len(again) == len(names) + 1
    assert set(again.names) == {*names, "positive/notes/x.png"}
    assert f"{data / 'positive' / 'run'} holds a vsent run: its files are not read as images" \
        in caplog.text


def test_a_hard_link_to_a_listed_file_is_the_same_image(csv_data, learnable_dataset):
    """A hard link has its own resolved path but the same inode: still one picture."""
    os.link(csv_data / "imgs" / "a.jpg", csv_data / "imgs" / "hard.jpg")
    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\nimgs/b.png,0\nimgs/hard.jpg,0\n")
    assert f"{path}:4: imgs/hard.jpg is the file of line 2 (imgs/a.jpg)" in _load_error(path)
    root = learnable_dataset.resolve()
    hard = root / "negative" / "hard.jpg"
    os.link(root / "positive" / "positive_000.jpg", hard)
    assert f"{hard}: is the file of positive/positive_000.jpg" in _load_error(learnable_dataset)


def test_files_without_inode_numbers_are_told_apart_by_name(csv_data, monkeypatch):
    """FAT and some SMB/FUSE mounts report inode 0 for every file: not all one image."""
    real_stat = Path.stat

    def no_inodes(self, *a, **k):
        st = real_stat(self, *a, **k)
        return os.stat_result((st.st_mode, 0, *tuple(st)[2:]))

    monkeypatch.setattr(Path, "stat", no_inodes)
    ds = load_dataset(_write_csv(csv_data, "path,label\nimgs/a.jpg,1\nimgs/b.png,0\n"))
    assert ds.names == ["imgs/a.jpg", "imgs/b.png"]
    # mut58c D64: told apart by the name the link resolves to: a link in negative/ to an
    # image in positive/ is still that image a second time
    (csv_data / "positive").mkdir()
    (csv_data / "negative").mkdir()
    shutil.copyfile(csv_data / "imgs" / "a.jpg", csv_data / "positive" / "a.jpg")
    shutil.copyfile(csv_data / "imgs" / "b.png", csv_data / "negative" / "b.png")
    (csv_data / "negative" / "x.jpg").symlink_to(Path("..") / "positive" / "a.jpg")
    assert "x.jpg: is the file of positive/a.jpg" in _load_error(csv_data)


def test_folder_layout_refuses_one_file_reached_twice(learnable_dataset):
    root = learnable_dataset.resolve()
    link = root / "negative" / "x.jpg"
    link.symlink_to(Path("..") / "positive" / "positive_000.jpg")  # the other class
    msg = _load_error(learnable_dataset)
    assert msg.startswith("1 bad label entry")
    assert f"{link}: is the file of positive/positive_000.jpg" in msg
    ds = load_dataset(learnable_dataset, skip_bad=True)
    assert len(ds) == 48 and "negative/x.jpg" not in ds.names
    assert "positive/positive_000.jpg" in ds.names
    assert [where for where, _ in ds.skipped] == [str(link)]


def test_a_twitter_name_linking_to_a_listed_image_is_a_duplicate(twitter_like):
    rows = _expected_rows(twitter_like, "five")
    (twitter_like / "images" / "link.jpg").symlink_to(twitter_like / "images" / rows[0][0])
    path = _rewrite_labels(twitter_like, [*(f"{n} {lab}" for n, lab in rows), "link.jpg 0"])
    msg = _load_error(twitter_like)
    assert f"{path}:{len(rows) + 1}: link.jpg is the file of line 1 ({rows[0][0]})" in msg
    assert len(load_dataset(twitter_like, skip_bad=True)) == len(rows)
    # the first name is shown as any name of the file is: its repr if it holds an escape
    (twitter_like / "images" / "a\x1b.jpg").write_bytes(b"")
    (twitter_like / "images" / "b.jpg").symlink_to(twitter_like / "images" / "a\x1b.jpg")
    _rewrite_labels(twitter_like, ["a\x1b.jpg 1", "b.jpg 0"])
    assert f"{path}:2: b.jpg is the file of line 1 ('a\\x1b.jpg')" in _load_error(twitter_like)


def test_tilde_user_paths_are_one_line_errors(csv_data):
    path = _write_csv(csv_data, f"path,label\nimgs/a.jpg,1\n{NO_SUCH_USER}/a.jpg,1\n")
    msg = _load_error(path)
    assert f"{path}:3: cannot expand ~ in {NO_SUCH_USER}/a.jpg" in msg
    assert load_dataset(path, skip_bad=True).names == ["imgs/a.jpg"]
    with pytest.raises(DataError) as info:
        load_dataset(f"{NO_SUCH_USER}/data")
    assert str(info.value) == (f"{NO_SUCH_USER}/data: cannot expand ~ (no such user, or no "
                               f"home directory)")


def test_csv_row_naming_a_directory_or_holding_a_nul(csv_data):
    # mut60c D94: a link loop (RuntimeError from resolve() before Python 3.13) is a line too
    (csv_data / "imgs" / "loop.jpg").symlink_to("loop2.jpg")
    (csv_data / "imgs" / "loop2.jpg").symlink_to("loop.jpg")
    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\nimgs,0\nimgs/b\0.png,0\n"
                                "imgs/loop.jpg,1\n")
    msg = _load_error(path)
    assert msg.startswith("3 bad label entries")
    assert f"{path}:5: {path.parent / 'imgs' / 'loop.jpg'}: " in msg
    assert f"{path}:3: {path.parent / 'imgs'}: is a directory, not an image file" in msg
    # echoed as its repr: a raw NUL (or escape sequence) must not reach the terminal
    assert "\0" not in msg
    nul = f"{path.parent / 'imgs'}/b\0.png"
    assert f"{path}:4: {nul!r}: not a valid path" in msg


def test_real_twitter_subsets_list_every_file_once(twitter1):
    # (the counts themselves: test_real_twitter_five_agree and _subset_counts, tests38 #12)
    for subset in ("five", "four", "three"):
        ds = load_dataset(twitter1, subset=subset, validate=False)
        assert ds.skipped == []
        assert len({p.resolve() for p in ds.paths}) == len(ds)


# mutation round 43b (mut43b): tests that kill mutants the suite missed


# ------------------------------------------------------------------------------------------
# mutation testing (mut43b): layout detection, limits of the problem list, label parsing


def test_item_lines_say_minus_one_for_a_file_that_is_gone(csv_data):
    """mut43b DS04: an item's line is ``name<TAB>label<TAB>size``, the size -1 for a file that
    is gone (Dataset.item_lines): an image that went missing must not hash like an empty
    file (size 0)."""
    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\nimgs/b.png,0\n")
    ds = load_dataset(path)
    size_b = ds.paths[1].stat().st_size
    ds.paths[0].unlink()
    assert ds.item_lines() == [b"imgs/a.jpg\t1\t-1", f"imgs/b.png\t0\t{size_b}".encode()]
    ds.paths[0].write_bytes(b"")  # an empty file is another state: size 0
    assert ds.item_lines()[0] == b"imgs/a.jpg\t1\t0"


def test_a_layout_needs_both_of_its_folders(make_learnable, learnable_dataset):
    """mut43b DS11, DS12: positive/ alone is no dataset (it loaded every image as positive,
    without a word), and a folder dataset that also holds an images/ folder (but no
    ground_truth/) is still a folder dataset, not a Twitter I folder missing its labels."""
    only_positive = make_learnable(learnable_dataset.parent / "only_pos", n_pos=4, n_neg=0)
    assert not (only_positive / "negative").exists()
    with pytest.raises(DataError, match="not a dataset: expected images/ "):
        load_dataset(only_positive)
    (learnable_dataset / "images").mkdir()
    ds = load_dataset(learnable_dataset, validate=False)
    assert (ds.source, len(ds), int(ds.labels.sum())) == ("folder", 48, 24)


def test_exactly_max_listed_problems_are_listed_without_an_and_more_line(twitter_like):
    """mut43b DS21: 20 problems (MAX_LISTED) are all listed, with no "and 0 more" line."""
    from vsent.data.datasets import MAX_LISTED

    assert MAX_LISTED == 20
    path = _rewrite_labels(twitter_like, [f"ghost{i}.jpg 1" for i in range(20)])
    lines = _load_error(twitter_like).splitlines()
    assert lines[0].startswith("20 bad label entries")
    assert len(lines) == 1 + 20
    assert lines[-1].strip().startswith(f"{path}:20: ghost19.jpg: no such image")


def test_a_twitter_name_of_a_folder_in_images_is_no_image(twitter_like):
    """mut43b DS28: a label line naming a folder of images/ is "no such image" (not a file),
    also without image validation (a folder passed to training)."""
    rows = _expected_rows(twitter_like, "five")
    (twitter_like / "images" / "sub.jpg").mkdir()
    path = _rewrite_labels(twitter_like, [*(f"{n} {lab}" for n, lab in rows[:3]), "sub.jpg 1"])
    msg = str(pytest.raises(DataError, load_dataset, twitter_like, validate=False).value)
    assert msg.startswith("1 bad label entry")
    assert f"{path}:4: sub.jpg: no such image in {twitter_like.resolve() / 'images'}" in msg


def test_a_bom_before_the_path_column_or_a_twitter_name_is_dropped(csv_data, twitter_like):
    """mut43b DS33: a UTF-8 BOM (Excel's CSV, Notepad's text) is not part of the first column's
    name nor of the first file name (the existing test put it before a column nobody reads)."""
    path = _write_csv(csv_data, "\ufeffpath,label\nimgs/a.jpg,1\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.names == ["imgs/a.jpg"] and ds.labels.tolist() == [1]
    names = [n for n, _ in _expected_rows(twitter_like, "five")]
    label = _label_file(twitter_like)
    label.write_text("\ufeff" + label.read_text(), encoding="utf-8")
    ds = load_dataset(twitter_like, validate=False)
    assert ds.names == names and ds.skipped == []


def test_a_bad_byte_starting_a_line_is_named_on_that_line(csv_data):
    """mut43b DS34: a byte that is not UTF-8 at the very start of line 3 is on line 3, not 2
    (the existing test's bad byte is in the middle of its line)."""
    path = csv_data / "labels.csv"
    data = b"path,label\nimgs/a.jpg,1\n\xe9.jpg,0\n"
    path.write_bytes(data)
    assert data.index(b"\xe9") == 24
    assert _load_error(path) == (f"{path.resolve()}:3: not a UTF-8 CSV file (invalid "
                                 "continuation byte at byte 24)")


def test_hidden_image_files_and_folders_are_no_data(learnable_dataset):
    """mut43b DS36: a name starting with "." is hidden: macOS's "._photo.jpg" companions (not
    images) and a ".thumbnails/" folder in a class folder are left out."""
    (learnable_dataset / "positive" / "._positive_000.jpg").write_bytes(b"\0\5\26\7 Mac OS X")
    save_image(sentiment_image(1, np.random.default_rng(5)),
               learnable_dataset / "negative" / ".thumbnails" / "t.jpg")
    ds = load_dataset(learnable_dataset)
    assert len(ds) == 48 and not any("/." in n for n in ds.names)


@pytest.mark.parametrize("header", ["path,target", "file,label"])
def test_a_csv_header_missing_one_of_its_columns_is_named(csv_data, header):
    """mut43b DS39: a header with only one of path and label is refused in one line (the
    existing test's header lacked both; one alone ended in a ValueError traceback)."""
    path = _write_csv(csv_data, f"{header}\nimgs/a.jpg,1\n")
    assert _load_error(path) == (f"{path.resolve()}:1: expected a header with columns "
                                 f"path,label, got '{header}'")


def test_csv_cells_may_have_blanks_around_them(csv_data):
    """mut43b DS42: "a.jpg, 1" (a space after the comma, as many editors write) is label 1."""
    path = _write_csv(csv_data, "path, label\n imgs/a.jpg , 1\nimgs/b.png,\tnegative \n")
    ds = load_dataset(path)
    assert ds.names == ["imgs/a.jpg", "imgs/b.png"] and ds.labels.tolist() == [1, 0]


def test_csv_lines_holding_only_blanks_are_skipped(csv_data):
    """mut43b DS48: a line of spaces, or of empty cells, is a blank line (skipped), not a
    record with a wrong number of fields."""
    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\n   \n , \nimgs/b.png,0\n")
    ds = load_dataset(path)
    assert ds.names == ["imgs/a.jpg", "imgs/b.png"] and ds.skipped == []


def test_a_relative_dataset_path_gives_an_absolute_root(twitter_like, monkeypatch):
    """mut43b DS52: Dataset.root and paths are absolute (the class docstring) when the path
    given is relative, e.g. ``--data tw``: a run resumed from another folder finds them."""
    monkeypatch.chdir(twitter_like.parent)
    ds = load_dataset(twitter_like.name, validate=False)
    assert ds.root == twitter_like.resolve() and ds.root.is_absolute()
    assert ds.paths[0] == twitter_like.resolve() / "images" / ds.names[0]


def test_a_blank_csv_path_and_a_twitter_name_dot_dot_are_named_for_what_they_are(csv_data,
                                                                                twitter_like):
    """mut43b DS25, DS44: a CSV row without a path is "empty path" (not the CSV's folder taken
    for an image, then its duplicate), and ".." in a label file is "not a file name" (not a
    missing image)."""
    path = _write_csv(csv_data, "path,label\nimgs/a.jpg,1\n,0\n ,1\n")
    msg = _load_error(path)
    assert msg.startswith("2 bad label entries")
    assert f"{path}:3: empty path" in msg and f"{path}:4: empty path" in msg
    rows = _expected_rows(twitter_like, "five")
    label = _rewrite_labels(twitter_like, [*(f"{n} {lab}" for n, lab in rows[:3]), ".. 0"])
    assert f"{label}:4: .. is not a file name in " in _load_error(twitter_like)


# ------------------------------------------------------------------------------------------
# mutation testing (mut49c): titles, the skipped count, messages of bad label lines


def test_a_twitter_dataset_is_titled_by_its_agreement_subset(twitter_like):
    """mut49c D3: titles name the subset as the paper does ("Twitter four-agree"), the
    figures' and reports' headings read it."""
    ds = load_dataset(twitter_like, subset="four", validate=False)
    assert ds.title == "Twitter four-agree"


def test_describe_counts_one_bad_item_in_the_singular(twitter_like):
    """mut49c D10: "1 bad item skipped", not "1 bad items"."""
    rows = _expected_rows(twitter_like, "five")
    _rewrite_labels(twitter_like, [*(f"{n} {lab}" for n, lab in rows[:4]), "ghost.jpg 1"])
    ds = load_dataset(twitter_like, skip_bad=True, validate=False)
    assert describe(ds).endswith(", 1 bad item skipped")
    # mut58c D52: one copy of a base image left out (vsent.data.extra) is said too, apart
    one_copy = dataclasses.replace(ds, skipped=[("x.jpg", "copy of a.jpg (same bytes)")])
    line = describe(one_copy)
    assert line.endswith(", 1 copy of a base image left out") and "skipped" not in line


def test_a_label_file_whose_every_line_is_skipped_says_all_were_skipped(twitter_like):
    """mut49c D19: "no usable images (all skipped)" tells a label file of bad lines from one
    that lists nothing."""
    _rewrite_labels(twitter_like, ["ghost.jpg 1", "other.jpg 2"])
    with pytest.raises(DataError) as info:
        load_dataset(twitter_like, skip_bad=True)
    assert str(info.value) == f"{twitter_like.resolve()}: no usable images (all skipped)"


def test_a_folder_dataset_has_no_label_file_and_is_titled_by_its_folder(learnable_dataset):
    """mut49c D21: only a CSV dataset has a label file; a folder dataset's title is its
    folder's name (not "<folder>/<folder>")."""
    ds = load_dataset(learnable_dataset, validate=False)
    assert ds.label_file is None
    assert ds.title == learnable_dataset.name and ds.location == learnable_dataset.resolve()


def test_a_long_malformed_label_line_is_quoted_to_80_characters(twitter_like):
    """mut49c D30: a malformed line is quoted in the message cut to its first 80 characters
    (a file of one huge line, e.g. a CSV given as a label file, must not flood the error)."""
    rows = _expected_rows(twitter_like, "five")
    long = " ".join(f"word{i:03d}" for i in range(40))  # 319 characters, 40 fields
    path = _rewrite_labels(twitter_like, [f"{n} {lab}" for n, lab in rows[:3]] + [long])
    msg = _load_error(twitter_like)
    assert f"{path}:4: expected '<file name> <label>' (2 fields), got 40: {long[:80]!r}" \
        in msg.splitlines()[1]
    assert long[:81] not in msg


def test_label_file_names_are_the_first_field_of_every_line(tmp_path):
    """mut49c D45: the names of a label file (the fold reader and the extra training set
    compare file names with them) are its first fields, whatever follows on the line."""
    from vsent.data.datasets import label_file_names

    path = tmp_path / "labels.txt"
    path.write_text("a.jpg 1\n\n  b.jpg   0 extra\nc.jpg\n")
    assert label_file_names(path) == {"a.jpg", "b.jpg", "c.jpg"}


def test_a_csv_record_spanning_two_lines_keeps_the_next_records_line_numbers(csv_data):
    """mut49c D70: a quoted cell holding a line break makes one record of two lines; the
    records after it are named by the line they start on (as an editor numbers it)."""
    path = _write_csv(csv_data, 'path,label\nimgs/a.jpg,1\n"two\nlines.jpg",0\n'
                                "imgs/zzz.jpg,1\n")
    msg = _load_error(path)
    two = repr(str(path.parent / "two\nlines.jpg"))  # (not printable: shown as its repr)
    assert msg.startswith("2 bad label entries")
    assert f"{path}:3: {two}: no such file or directory" in msg
    assert f"{path}:5: {path.parent / 'imgs/zzz.jpg'}: no such file or directory" in msg


def test_a_pathlib_path_where_a_dataset_is_expected_is_said(tmp_path):
    """mut49c D13: a ``Path`` (not only a str) given where the Python API takes a Dataset is a
    TypeError saying what to pass, not an AttributeError on ``.labels`` later."""
    from vsent.data.datasets import check_dataset

    with pytest.raises(TypeError) as info:
        check_dataset(tmp_path, "make_folds")
    assert str(info.value) == (f"make_folds takes a Dataset, got the path {tmp_path!r}: pass "
                               f"vsent.data.load_dataset({tmp_path!r})")
    # mut56e D5: a bytes path (os.fsencode) is a path too
    with pytest.raises(TypeError, match=r"^make_folds takes a Dataset, got the path b'/d'"):
        check_dataset(b"/d", "make_folds")
    # api60: anything else that is no Dataset (labels, None) is named too
    for value, name in ((None, "NoneType"), (np.array([0, 1]), "ndarray")):
        with pytest.raises(TypeError, match=rf"^make_folds takes a Dataset \(vsent.data."
                                            rf"load_dataset\), got {name}$"):
            check_dataset(value, "make_folds")


# ------------------------------------------------------------------------------------------
# mutation testing (mut52e): label values, separators, read_text's errors


def test_a_twitter_label_line_may_be_separated_by_tabs_or_several_blanks(twitter_like):
    """mut52e D33: ``<file name><TAB><label>`` and ``<file name>   <label> `` are label lines
    (a file saved by a spreadsheet or aligned by hand), not lines of 1 or 3 fields."""
    rows = _expected_rows(twitter_like, "five")
    (a, la), (b, lb), (c, lc) = rows[:3]
    _rewrite_labels(twitter_like, [f"{a}\t{la}", f"{b}   {lb} ", f" {c} {lc}"])
    ds = load_dataset(twitter_like, validate=False)
    assert ds.names == [a, b, c] and ds.labels.tolist() == [la, lb, lc]


@pytest.mark.parametrize("raw", ["-1", "1.0"])
def test_a_twitter_label_other_than_0_or_1_is_refused(twitter_like, raw):
    """mut52e D21: only "0" and "1" are labels: "-1" (the other common binary coding) or
    "1.0" would become a third class, or a label parsed by int() as another value."""
    rows = _expected_rows(twitter_like, "five")
    path = _rewrite_labels(twitter_like, [*(f"{n} {lab}" for n, lab in rows[:2]),
                                          f"{rows[2][0]} {raw}"])
    msg = _load_error(twitter_like)
    assert msg.splitlines()[1] == (f"  {path}:3: label {raw!r} of {rows[2][0]} is not 0 "
                                   "(negative) or 1 (positive)")


def test_read_text_keeps_the_bytes_of_a_file_vsent_wrote_with_surrogateescape(tmp_path):
    """mut52e D43: ``errors="surrogateescape"`` (predictions.csv holding a file name in
    another encoding) reads the byte back as a surrogate; the default refuses it."""
    from vsent.data.datasets import read_text

    path = tmp_path / "predictions.csv"
    path.write_bytes(b"\xef\xbb\xbfname\n\xe9.jpg\n")
    assert read_text(path, "CSV file", errors="surrogateescape") == "name\n\udce9.jpg\n"
    assert os.fsencode("\udce9.jpg") == b"\xe9.jpg"
    with pytest.raises(DataError, match=r":2: not a UTF-8 CSV file \(invalid continuation"):
        read_text(path, "CSV file")


def test_the_fingerprint_counts_the_items_kept_and_their_positives(twitter_like):
    """mut52e D73, D81: ``n_images`` is the dataset's length also when bad lines were skipped
    (they are not items), ``n_positive`` its label-1 items (a resumed run compares both)."""
    rows = _expected_rows(twitter_like, "five")
    _rewrite_labels(twitter_like, [*(f"{n} {lab}" for n, lab in rows[:5]), "ghost.jpg 1"])
    ds = load_dataset(twitter_like, skip_bad=True, validate=False)
    fp = ds.fingerprint()
    assert (fp["n_images"], len(ds.skipped)) == (5, 1)
    assert fp["n_positive"] == sum(lab for _, lab in rows[:5])


def test_a_folder_image_named_in_another_encoding_is_fingerprinted(learnable_dataset):
    """mut56e D45: a file name that is not UTF-8 (os.listdir gives its byte as a surrogate)
    is hashed as the bytes the file system holds, not refused by the UTF-8 encoder."""
    name = os.fsdecode(b"caf\xe9.jpg")
    shutil.copy(next((learnable_dataset / "positive").iterdir()),
                learnable_dataset / "positive" / name)
    ds = load_dataset(learnable_dataset)
    line = ds.item_lines()[ds.names.index(f"positive/{name}")]
    assert line.startswith(b"positive/caf\xe9.jpg\t1\t")
    assert ds.fingerprint()["n_images"] == len(ds)


def test_no_path_where_the_python_api_takes_one_is_named(tmp_path):
    """api60: None (or a number) given as a path was Python's "expected str, bytes or
    os.PathLike object, not NoneType", naming no argument; a dict as crossval's config was an
    AttributeError on ``.folds``. Nothing is written."""
    from vsent.config import RunConfig
    from vsent.crossval import crossval, finetune
    from vsent.models import create_model, load_checkpoint, save_checkpoint
    from vsent.models.checkpoint import read_checkpoint

    def said(call, message: str) -> None:
        with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
            call()

    said(lambda: load_dataset(None), "load_dataset's data must be a path (str or os.PathLike), "
                                     "got NoneType")
    said(lambda: load_dataset(tmp_path, skip_bad="no"), "load_dataset's skip_bad must be True "
                                                        "or False, got 'no'")
    said(lambda: load_dataset(tmp_path, validate=1), "load_dataset's validate must be True or "
                                                     "False, got 1")
    said(lambda: load_checkpoint(None), "load_checkpoint's path must be a path (str or "
                                        "os.PathLike), got NoneType")
    said(lambda: read_checkpoint(5), "read_checkpoint's path must be a path (str or "
                                     "os.PathLike), got int")
    said(lambda: save_checkpoint(None, create_model("smallcnn")), "save_checkpoint's path must "
         "be a path (str or os.PathLike), got NoneType")
    cfg = RunConfig(data=str(tmp_path))
    said(lambda: crossval(cfg, None), "crossval's out must be a path (str or os.PathLike), got "
                                      "NoneType")
    said(lambda: finetune(cfg, None), "finetune's out must be a path (str or os.PathLike), got "
                                      "NoneType")
    said(lambda: crossval({"data": str(tmp_path)}, tmp_path / "r"),
         "crossval takes a RunConfig (vsent.config.RunConfig.from_dict turns a dict into one), "
         "got dict")
    assert list(tmp_path.iterdir()) == []
