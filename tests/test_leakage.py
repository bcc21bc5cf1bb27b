"""vsent.data.leakage: a checkpoint trained on the images a run tests on is refused (crossval
--init, finetune --fold --init, pcnn-transfer). Each test pins a behaviour a mutation of the
module changed unseen (mut40)."""

from __future__ import annotations

import json
import logging
import shutil
from typing import Any

import pytest

from vsent.data.datasets import load_dataset
from vsent.data.leakage import check_other_data, quiet_logs
from vsent.errors import VsentError
from vsent.models import create_model
from vsent.models.checkpoint import load_checkpoint, save_checkpoint


def _weak(tmp_path, twitter_like, rows, files):
    """weak/weak.csv listing ``rows`` (name, label); ``files``: name -> source path."""
    weak = tmp_path / "weak"
    weak.mkdir(exist_ok=True)
    for name, src in files.items():
        shutil.copy(src, weak / name)
    (weak / "weak.csv").write_text("path,label\n" + "".join(f"{n},{y}\n" for n, y in rows))
    ckpt = save_checkpoint(tmp_path / "weak.pt", create_model("smallcnn", widths=[8]),
                           data=str(weak / "weak.csv"))
    return ckpt, load_checkpoint(ckpt)[1]


def test_quiet_logs_restores_the_callers_own_disable_level():
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with quiet_logs(logging.INFO):
            assert logging.root.manager.disable == logging.INFO
        assert logging.root.manager.disable == logging.WARNING
    finally:
        logging.disable(before)


def test_unreadable_training_data_is_said_in_a_warning(twitter_like, tmp_path, caplog):
    elsewhere = save_checkpoint(tmp_path / "flickr.pt", create_model("smallcnn", widths=[8]),
                                data=str(tmp_path / "flickr"))
    with caplog.at_level(logging.WARNING, logger="vsent"):
        check_other_data(elsewhere, load_checkpoint(elsewhere)[1], str(twitter_like))
    assert any("which cannot be read here: its images are not checked against" in
               r.getMessage() for r in caplog.records)
    # (mut58e L40) it names the checkpoint, its data, then the data given
    assert (f"{elsewhere} was trained on {tmp_path / 'flickr'}, which cannot be read here: its "
            f"images are not checked against {twitter_like}'s test images") in caplog.text


def test_a_checkpoint_without_recorded_data_is_not_checked_and_says_nothing(
        twitter_like, tmp_path, caplog):
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn", widths=[8]))
    meta = load_checkpoint(ckpt)[1]
    assert not isinstance(meta.get("data"), str)
    with caplog.at_level(logging.INFO, logger="vsent"):
        check_other_data(ckpt, meta, str(twitter_like))
    assert not caplog.records


def test_an_image_of_a_later_subset_alone_is_found_when_all_subsets_are_checked(
        twitter_like, tmp_path):
    five = set(load_dataset(twitter_like, "five", validate=False).names)
    three_only = next(p for p in load_dataset(twitter_like, "three", validate=False).paths
                      if p.name not in five)
    ckpt, meta = _weak(tmp_path, twitter_like, [("x.jpg", 1)], {"x.jpg": three_only})
    with pytest.raises(VsentError, match=r"holds 1 of the images of .* \(five/four/three-agree"):
        check_other_data(ckpt, meta, str(twitter_like), ("five", "four", "three"))


def test_weak_label_rows_of_missing_files_do_not_hide_the_shared_images(twitter_like, tmp_path,
                                                                        caplog):
    some = sorted((twitter_like / "images").iterdir())[0]
    ckpt, meta = _weak(tmp_path, twitter_like, [("x.jpg", 1), ("gone.jpg", 0)],
                       {"x.jpg": some})
    with caplog.at_level(logging.INFO, logger="vsent"), \
            pytest.raises(VsentError, match=r"which holds 1 of the images of"):
        check_other_data(ckpt, meta, str(twitter_like))
    # (mut56g L20) the check's own load of the training data warns of no missing row
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    # (mut60e L53) the check says what it compares: the one training image that exists
    assert f"checking the 1 training images of {meta['data']} against {twitter_like}'s" in \
        caplog.text


def test_an_image_held_twice_in_the_training_data_counts_once(twitter_like, tmp_path):
    some = sorted((twitter_like / "images").iterdir())[0]
    ckpt, meta = _weak(tmp_path, twitter_like, [("x.jpg", 1), ("y.jpg", 1)],
                       {"x.jpg": some, "y.jpg": some})
    with pytest.raises(VsentError, match=r"which holds 1 of the images of"):
        check_other_data(ckpt, meta, str(twitter_like))


def test_the_refusal_names_three_shared_images_then_dots(twitter_like, tmp_path):
    some = sorted((twitter_like / "images").iterdir())[:4]
    names = [f"f{i}.jpg" for i in range(4)]
    ckpt, meta = _weak(tmp_path, twitter_like, [(n, 1) for n in names],
                       dict(zip(names, some, strict=True)))
    with pytest.raises(VsentError) as e:
        check_other_data(ckpt, meta, str(twitter_like))
    msg = str(e.value)
    assert "holds 4 of the images" in msg and msg.count(" is ") == 3 and ", ...)" in msg, msg
    # (mut56g L18) each copy is named as "copy is ours": the training file, then the test image
    pairs = msg.split("e.g. ")[1].split(", ...)")[0].split(", ")
    assert all(p.startswith(str(tmp_path / "weak")) and f" is {twitter_like}" in p
               for p in pairs), msg


def test_data_without_the_checkpoints_subset_is_other_data(twitter_like, tmp_path):
    """The fingerprint comparison loads ``data`` with the checkpoint's subset; data without that
    subset's label file is not the same data (no error from that load)."""
    (twitter_like / "ground_truth" / "twitter_three_agrees.txt").unlink()
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn", widths=[8]),
                           data=str(tmp_path / "elsewhere"), subset="three",
                           data_sha256="0" * 64)
    check_other_data(ckpt, load_checkpoint(ckpt)[1], str(twitter_like), ("five",))  # no error


def test_skip_bad_data_is_still_checked_for_shared_images(twitter_like, tmp_path, caplog):
    """crossval --skip-bad --init: a bad label entry in the data must not switch the check off
    (the targets' load without skip_bad raised BadItemsError and the check returned)."""
    five = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    five.write_text(five.read_text() + "missing_img.jpg 1\n")
    some = sorted((twitter_like / "images").iterdir())[0]
    ckpt, meta = _weak(tmp_path, twitter_like, [("x.jpg", 1)], {"x.jpg": some})
    with caplog.at_level(logging.INFO, logger="vsent"), \
            pytest.raises(VsentError, match=r"which holds 1 of the images of"):
        check_other_data(ckpt, meta, str(twitter_like))
    # (mut58e L43) the check's load of the data skips its bad entry without a word: the
    # run's own load says it
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# mutation round 46 (mut46c): vsent.data.leakage mutants the suite missed
def _ckpt(path, **meta: Any):
    """A smallcnn checkpoint at ``path`` whose metadata holds ``meta``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(path, create_model("smallcnn", widths=[8]), **meta)
    return ckpt, load_checkpoint(ckpt)[1]


def _copy_without_five(twitter_like, root, image: str):
    """A copy of the data whose five-agree list leaves ``image`` out (three-agree holds it):
    other data, sharing that image only through its larger subsets."""
    shutil.copytree(twitter_like, root)
    five = root / "ground_truth" / "twitter_five_agrees.txt"
    five.write_text("".join(line for line in five.read_text().splitlines(keepends=True)
                            if not line.startswith(image)))
    return root


def test_a_model_of_the_same_data_is_refused_as_such(twitter_like, tmp_path, monkeypatch):
    """The same path: the refusal says the data itself (not some shared images)."""
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(twitter_like))
    with pytest.raises(VsentError, match=r"was trained on .*, the data it would be fine-tuned "
                                         r"and tested on: its test folds hold its training"
                                         r" images\. Give another model\.$"):  # (mut58e L37)
        check_other_data(ckpt, meta, str(twitter_like), needs="Give another model.")
    # (mut52g K23) the same path spelt with ~ is the data itself too
    monkeypatch.setenv("HOME", str(twitter_like.parent))
    meta = {**meta, "data": f"~/{twitter_like.name}"}
    with pytest.raises(VsentError, match=rf"was trained on ~/{twitter_like.name}, the data it "
                                         r"would be fine-tuned and tested on"):
        check_other_data(ckpt, meta, str(twitter_like))


def test_a_copy_of_the_data_is_the_same_data_by_its_subsets_fingerprint(twitter_like,
                                                                        tmp_path):
    """A copy elsewhere with the checkpoint's subset's fingerprint (three-agree here, which the
    five-agree fingerprint is not) is the same data; loading it says nothing (quiet logs)."""
    copy = tmp_path / "copy"
    shutil.copytree(twitter_like, copy)
    sha = load_dataset(copy, "three", validate=False).fingerprint()["sha256"]
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(copy), subset="three", data_sha256=sha)
    with pytest.raises(VsentError, match=r"\(a copy of .*: same images and labels\), the data "
                                         r"it would be fine-tuned and tested on") as e:
        check_other_data(ckpt, meta, str(twitter_like))
    # (mut52g K24) the checkpoint's data is named as the copy of the data given
    assert str(e.value).startswith(f"{ckpt} was trained on {copy} (a copy of {twitter_like}: ")


def test_a_copy_is_recognised_despite_a_bad_entry_in_its_list(twitter_like, tmp_path):
    """The fingerprint is taken with skip_bad, as a --skip-bad run took it: a label line of a
    missing image does not make the copy other data."""
    five = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    five.write_text(five.read_text() + "missing_img.jpg 1\n")
    sha = load_dataset(twitter_like, "five", skip_bad=True, validate=False).fingerprint()
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(tmp_path / "gone"),
                       data_sha256=sha["sha256"])
    with pytest.raises(VsentError, match=r"\(a copy of .*: same images and labels\)"):
        check_other_data(ckpt, meta, str(twitter_like))


def test_the_checks_own_loads_log_nothing(twitter_like, tmp_path, caplog):
    """Both loads run with the logs quiet: the run's own load says the data once."""
    copy = tmp_path / "other"
    shutil.copytree(twitter_like, copy)
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(copy), data_sha256="0" * 64)
    with caplog.at_level(logging.INFO, logger="vsent"), pytest.raises(VsentError):
        check_other_data(ckpt, meta, str(twitter_like))
    assert not [r for r in caplog.records if r.getMessage().startswith(("dataset:", "skipping"))]


def _shared(twitter_like, tmp_path, **meta: Any) -> str:
    """The refusal for a model trained on a copy of the data whose five-agree list leaves the
    first image out: it shares 36 images (five) or 35 (five of the copy)."""
    first = sorted(load_dataset(twitter_like, "five", validate=False).names)[0]
    copy = _copy_without_five(twitter_like, tmp_path / "other", first)
    meta.setdefault("data", str(copy))
    ckpt, meta = _ckpt(meta.pop("where", tmp_path / "m.pt"), **meta)
    with pytest.raises(VsentError) as e:
        check_other_data(ckpt, meta, str(twitter_like))
    return str(e.value)


def test_shared_images_are_those_of_the_subset_the_model_trained_on(twitter_like, tmp_path):
    """subset three: its 50 training images hold all 36 of the five-agree test images."""
    assert "which holds 36 of the images" in _shared(twitter_like, tmp_path, subset="three")


def test_shared_images_count_those_of_the_extra_train_subset(twitter_like, tmp_path):
    """--extra-train three: the weak labels' images are training images too."""
    assert "which holds 36 of the images" in _shared(twitter_like, tmp_path, subset="five",
                                                     extra_train="three")
    assert "which holds 35 of the images" in _shared(twitter_like, tmp_path / "b",
                                                     subset="five")
    # (mut52g K39) a checkpoint that records no subset trained on five-agree
    assert "which holds 35 of the images" in _shared(twitter_like, tmp_path / "c")


def _crossval_run(run, data: str, config: dict[str, Any]) -> None:
    """A crossval run's config.json: data ``data`` given --extra-train three, and ``config``."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"command": "crossval", "data": data,
                                                 "extra_train": "three"} | config))


def test_a_fold_model_of_a_crossval_run_takes_the_runs_extra_train(twitter_like, tmp_path,
                                                                   monkeypatch):
    """A checkpoint saved before it recorded extra_train: its run's config says it."""
    run = tmp_path / "run"
    _crossval_run(run, str(tmp_path / "other"), {})
    assert "which holds 36 of the images" in _shared(
        twitter_like, tmp_path, subset="five", fold=0, command="crossval",
        where=run / "fold0" / "model.pt")
    # (mut58e L30, L31) an older checkpoint that recorded no command and no fold either
    old = tmp_path / "old"
    _crossval_run(old / "run", str(old / "other"), {})
    assert "which holds 36 of the images" in _shared(
        twitter_like, old, subset="five", where=old / "run" / "fold0" / "model.pt")
    # (mut58e L38) the checkpoint's own record wins over its run's config
    own = tmp_path / "own"
    _crossval_run(own / "run", str(own / "other"), {})
    assert "which holds 35 of the images" in _shared(
        twitter_like, own, subset="five", fold=0, command="crossval", extra_train="five",
        where=own / "run" / "fold0" / "model.pt")
    # (mut60e L49) the run's config spells its data with ~: the same data as the model's
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    _crossval_run(home / "run", "~/other", {})
    assert "which holds 36 of the images" in _shared(
        twitter_like, home, subset="five", fold=0, command="crossval",
        where=home / "run" / "fold0" / "model.pt")


@pytest.mark.parametrize(("config", "meta", "where"), [
    ({"command": "finetune"}, {}, "fold0/model.pt"),  # another command's run
    ({}, {"command": "finetune"}, "fold0/model.pt"),  # another command's model, copied there
    ({}, {"fold": 1}, "fold0/model.pt"),  # another fold's model
    ({"data": "elsewhere"}, {}, "fold0/model.pt"),  # a model of other data
    ({"data": None}, {}, "fold0/model.pt"),
    ({"extra_train": 3}, {}, "fold0/model.pt"),  # (no subset name)
    ({}, {}, "model.pt"),  # at the run's top, with no fold: not a fold's model
])
def test_a_model_that_is_not_the_runs_own_ignores_its_extra_train(
        config, meta, where, twitter_like, tmp_path):
    run = tmp_path / "run"
    _crossval_run(run, str(tmp_path / "other"), config)
    assert "which holds 35 of the images" in _shared(
        twitter_like, tmp_path, subset="five", where=run / where, **meta)


def test_a_checkpoint_whose_data_is_no_path_is_not_checked(twitter_like, tmp_path, caplog):
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=["a", "b"])
    with caplog.at_level(logging.INFO, logger="vsent"):
        check_other_data(ckpt, meta, str(twitter_like))
    assert not caplog.records


def test_the_same_file_listed_by_a_weak_label_csv_is_named_once(twitter_like, tmp_path):
    """A CSV listing the data's own files names each as it is; a copy as 'copy is ours'.
    Three shared images are all named, with no dots."""
    some = sorted((twitter_like / "images").iterdir())[:3]
    weak = tmp_path / "weak.csv"
    weak.write_text("path,label\n" + "".join(f"{p},1\n" for p in some))
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(weak))
    with pytest.raises(VsentError) as e:
        check_other_data(ckpt, meta, str(twitter_like))
    msg = str(e.value)
    assert "holds 3 of the images" in msg and " is " not in msg and ", ...)" not in msg, msg
    assert all(str(p) in msg for p in some), msg
    # (mut56g L26) the same file spelt another way (through '..') is still named once
    weak.write_text("path,label\n" + "".join(f"{p.parent}/../{p.parent.name}/{p.name},1\n"
                                              for p in some))
    with pytest.raises(VsentError) as e:
        check_other_data(ckpt, meta, str(twitter_like))
    assert "holds 3 of the images" in str(e.value) and " is " not in str(e.value), e.value
    # (mut60e L54, L55) the refusal names the training data, then says what to do
    assert str(e.value).startswith(f"{ckpt} was trained on {weak}, which holds 3 of the "
                                   f"images of {twitter_like} (five-agree; e.g. ")
    assert str(e.value).endswith("): the test folds would hold training images. Leave them "
                                 "out of its training data")


def test_data_that_lacks_a_checked_subset_is_left_to_its_own_load(twitter_like, tmp_path,
                                                                   caplog):
    """The test data unreadable with its subsets: no refusal here (its load says why)."""
    other = _copy_without_five(twitter_like, tmp_path / "other", "nothing")
    (twitter_like / "ground_truth" / "twitter_four_agrees.txt").unlink()
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(other))
    with caplog.at_level(logging.INFO, logger="vsent"):
        check_other_data(ckpt, meta, str(twitter_like), ("five", "four"))  # no error
    assert "checking the" not in caplog.text  # (mut60e L58: no check it did not make)


def test_a_run_with_an_unreadable_config_gives_no_extra_train(twitter_like, tmp_path):
    """A damaged config.json beside a fold model: the check goes on with the model's own
    subset (its run is not known), not stopped by the run's error."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    assert "which holds 35 of the images" in _shared(
        twitter_like, tmp_path, subset="five", where=run / "fold0" / "model.pt")


# mutation round 49 (mut49e): vsent.data.leakage mutants the suite missed
def test_the_same_path_is_named_as_itself_not_as_a_copy(twitter_like, tmp_path):
    """The same path with its fingerprint recorded: the data itself, not "a copy of" it."""
    sha = load_dataset(twitter_like, "five", skip_bad=True, validate=False).fingerprint()
    ckpt, meta = _ckpt(tmp_path / "m.pt", data=str(twitter_like), data_sha256=sha["sha256"])
    with pytest.raises(VsentError) as e:
        check_other_data(ckpt, meta, str(twitter_like))
    assert str(e.value).startswith(f"{ckpt} was trained on {twitter_like}, the data it would "
                                   "be fine-tuned and tested on")
