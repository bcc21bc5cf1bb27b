"""Prediction: Python API on PIL images/arrays/paths, and the CLI's per-item error rows."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from vsent.cli import main
from vsent.errors import EXIT_ITEMS_FAILED, ImageError
from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint
from vsent.predict import Predictor, expand_inputs


@pytest.fixture
def checkpoint(tmp_path):
    model = create_model("smallcnn")
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    paths = []
    for i, where in enumerate(["a.jpg", "b.png", "sub/c.jpg"]):
        p = folder / where
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    (folder / "notes.txt").write_text("not an image")
    return folder, paths


def test_api_accepts_paths_pil_images_and_arrays_with_the_same_result(checkpoint, images):
    _, paths = images
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    pil = [Image.open(p) for p in paths]
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    by_path = pred.predict_proba(paths)
    assert by_path.shape == (3, 2)
    np.testing.assert_allclose(pred.predict_proba(pil), by_path, atol=1e-6)
    np.testing.assert_allclose(pred.predict_proba(arrays), by_path, atol=1e-6)
    np.testing.assert_array_equal(pred.predict(paths), by_path.argmax(1))


def test_oversampling_averages_ten_crops(checkpoint, images):
    _, paths = images
    one = Predictor.from_checkpoint(checkpoint, device="cpu").predict_proba(paths)
    ten = Predictor.from_checkpoint(checkpoint, device="cpu", oversample=True).predict_proba(paths)
    assert ten.shape == one.shape and np.allclose(ten.sum(1), 1, atol=1e-5)


def test_api_raises_on_a_bad_image(checkpoint, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    with pytest.raises(ImageError, match="bad.jpg"):
        Predictor.from_checkpoint(checkpoint, device="cpu").predict_proba([bad])


def test_expand_inputs_folders_globs_and_missing(images, tmp_path):
    folder, paths = images
    found, missing = expand_inputs([str(folder), str(folder / "*.png"), str(tmp_path / "no.jpg")])
    assert sorted(found[:3]) == sorted(paths)  # folder: recursive, images only
    assert found[3:] == [folder / "b.png"]
    assert [m["path"] for m in missing] == [str(tmp_path / "no.jpg")]


def test_cli_scores_good_images_writes_error_rows_and_exits_3(checkpoint, images, tmp_path,
                                                              capsys):
    folder, paths = images
    bad = folder / "broken.jpg"
    bad.write_bytes(b"")
    out = tmp_path / "scores.csv"
    rc = main(["predict", "--model", str(checkpoint), str(folder), str(tmp_path / "missing.jpg"),
               "--out", str(out), "--device", "cpu", "--no-progress"])
    assert rc == EXIT_ITEMS_FAILED
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5
    by_path = {r["path"]: r for r in rows}
    assert by_path[str(bad)]["error"] and "empty" in by_path[str(bad)]["error"]
    assert by_path[str(tmp_path / "missing.jpg")]["error"]
    for p in paths:
        r = by_path[str(p)]
        assert r["error"] == "" and 0 <= float(r["prob_positive"]) <= 1
        assert r["label"] in ("positive", "negative")
    assert "2 failed" in capsys.readouterr().err


def test_cli_jsonl_and_success_exit_code(checkpoint, images, capsys):
    _, paths = images
    rc = main(["predict", "--model", str(checkpoint), *map(str, paths), "--format", "jsonl",
               "--device", "cpu", "--no-progress"])
    assert rc == 0
    lines = [json.loads(x) for x in io.StringIO(capsys.readouterr().out)]
    assert [x["path"] for x in lines] == [str(p) for p in paths]


def test_cli_bad_checkpoint_is_a_user_error(tmp_path, images, capsys):
    _, paths = images
    fake = tmp_path / "fake.pt"
    fake.write_text("nope")
    assert main(["predict", "--model", str(fake), str(paths[0])]) == 2
    err = capsys.readouterr().err
    assert "fake.pt" in err and "Traceback" not in err
