"""vsent.data.leakage: a checkpoint trained on the images a run tests on is refused (crossval
--init, finetune --fold --init, pcnn-transfer). Each test pins a behaviour a mutation of the
module changed unseen (mut40)."""

from __future__ import annotations

import logging
import shutil

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


def test_weak_label_rows_of_missing_files_do_not_hide_the_shared_images(twitter_like, tmp_path):
    some = sorted((twitter_like / "images").iterdir())[0]
    ckpt, meta = _weak(tmp_path, twitter_like, [("x.jpg", 1), ("gone.jpg", 0)],
                       {"x.jpg": some})
    with pytest.raises(VsentError, match=r"which holds 1 of the images of"):
        check_other_data(ckpt, meta, str(twitter_like))


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


def test_data_without_the_checkpoints_subset_is_other_data(twitter_like, tmp_path):
    """The fingerprint comparison loads ``data`` with the checkpoint's subset; data without that
    subset's label file is not the same data (no error from that load)."""
    (twitter_like / "ground_truth" / "twitter_three_agrees.txt").unlink()
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn", widths=[8]),
                           data=str(tmp_path / "elsewhere"), subset="three",
                           data_sha256="0" * 64)
    check_other_data(ckpt, load_checkpoint(ckpt)[1], str(twitter_like), ("five",))  # no error


def test_skip_bad_data_is_still_checked_for_shared_images(twitter_like, tmp_path):
    """crossval --skip-bad --init: a bad label entry in the data must not switch the check off
    (the targets' load without skip_bad raised BadItemsError and the check returned)."""
    five = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    five.write_text(five.read_text() + "missing_img.jpg 1\n")
    some = sorted((twitter_like / "images").iterdir())[0]
    ckpt, meta = _weak(tmp_path, twitter_like, [("x.jpg", 1)], {"x.jpg": some})
    with pytest.raises(VsentError, match=r"which holds 1 of the images of"):
        check_other_data(ckpt, meta, str(twitter_like))
