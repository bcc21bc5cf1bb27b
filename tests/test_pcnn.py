"""Progressive training and domain transfer (You et al. 2015): the sampling rule, the run
directory of ``vsent pcnn``, noisy labels removed more often, and ``vsent pcnn-transfer``."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import build_learnable, build_twitter_like, save_image
from vsent import papers
from vsent.analyses.pcnn import (
    ProgressiveConfig,
    TransferConfig,
    progressive,
    removal_report,
    transfer,
)
from vsent.cli import main
from vsent.data import load_dataset
from vsent.data.cache import image_cache
from vsent.data.extra import read_removal, removal_probability, select_kept
from vsent.data.leakage import check_other_data
from vsent.errors import VsentError
from vsent.evaluate import predict_proba
from vsent.models import create_model, load_checkpoint, save_checkpoint
from vsent.predict import Predictor
from vsent.presets import CROSSVAL as CROSSVAL_PRESETS
from vsent.presets import PCNN as PCNN_PRESETS

# --------------------------------------------------------------------------------------------
# the sampling rule


def test_removal_probability_follows_the_rule():
    d = np.array([0.0, 0.05, 0.2, 0.4, 0.6, 0.69, math.log(2), 0.7, 0.9, 1.0])
    s1 = (1 + d) / 2
    scores = np.stack([s1, 1 - s1], axis=1)
    p = removal_probability(scores)
    expected = [max(0.0, 2.0 - math.exp(abs(a - b))) for a, b in scores]
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-12)
    assert p[0] == 1.0  # equal scores: always removed
    assert np.all(p[d > math.log(2) + 1e-9] == 0.0)  # confident: never removed
    assert removal_probability([[math.log(2), 0.0]])[0] == 0.0  # d = ln 2 exactly
    assert np.all((p[1:6] > 0) & (p[1:6] < 1))
    assert np.all(np.diff(p) <= 0)  # the more confident, the less likely to go
    # only |s1 - s2| counts: swapping the columns changes nothing
    np.testing.assert_array_equal(removal_probability(scores[:, ::-1]), p)


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.zeros(4), [[0.5, np.nan]]])
def test_removal_probability_rejects_bad_scores(bad):
    with pytest.raises(ValueError, match="scores"):
        removal_probability(bad)


def test_removal_frequencies_match_p():
    d = np.array([0.0, 0.1, 0.3, 0.5, 0.65, 0.8])
    reps = 20000
    s1 = np.repeat((1 + d) / 2, reps)
    scores = np.stack([s1, 1 - s1], axis=1)
    kept = select_kept(scores, np.random.default_rng(123))
    removed_freq = (~kept).reshape(len(d), reps).mean(axis=1)
    p = np.maximum(0.0, 2.0 - np.exp(d))
    sigma = np.sqrt(p * (1 - p) / reps)
    assert np.all(np.abs(removed_freq - p) <= 4 * sigma + 1e-12), (removed_freq, p)
    assert removed_freq[0] == 1.0 and removed_freq[-1] == 0.0


def test_select_kept_is_deterministic_with_a_seed():
    scores = np.full((500, 2), 0.5) + np.linspace(0, 0.15, 500)[:, None] * [1, -1]
    a = select_kept(scores, np.random.default_rng(7))
    b = select_kept(scores, np.random.default_rng(7))
    c = select_kept(scores, np.random.default_rng(8))
    assert a.dtype == bool and a.shape == (500,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_removal_report_counts_by_class_and_sums_the_probabilities():
    """removal.json's figures on a draw written out here: the expected count is the sum of p
    (not its mean), "always kept" the share with |s1 - s2| >= ln 2 (not below it)."""
    scores = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.05, 0.95], [0.45, 0.55]])
    kept = np.array([False, True, True, True, False])
    labels = np.array([0, 1, 0, 1, 1])
    r = removal_report(scores, kept, labels)
    assert (r["n_images"], r["n_kept"], r["n_removed"]) == (5, 3, 2)
    assert r["removed_share"] == pytest.approx(0.4)
    # p = 1, 2 - e^0.2, 0, 0, 2 - e^0.1 (|s1 - s2| = 0, 0.2, 0.8, 0.9, 0.1)
    assert r["expected_removed"] == pytest.approx(1 + (2 - math.exp(0.2)) + (2 - math.exp(0.1)))
    assert r["share_always_kept"] == pytest.approx(0.4)  # rows 2 and 3
    assert r["by_label"] == {"negative": {"n": 2, "removed": 1},
                             "positive": {"n": 3, "removed": 1}}
    assert r["histogram"]["diff"].sum() == 5 and r["histogram"]["diff_removed"].sum() == 2


# --------------------------------------------------------------------------------------------
# Algorithm 1 end to end


def _train_opts(epochs: int, finetune_epochs: int) -> list[str]:
    return ["--preset", "quick", "--model-arg", "widths=[16, 32]", "--epochs", str(epochs),
            "--lr", "5e-3", "--finetune-epochs", str(finetune_epochs), "--batch-size", "16",
            "--device", "cpu", "--no-progress"]


def test_pcnn_command_writes_its_run_directory(make_learnable, tmp_path):
    data = make_learnable(n_pos=30, n_neg=30)
    out = tmp_path / "run"
    args = ["pcnn", "--data", str(data), "--out", str(out), "--seed", "3", *_train_opts(3, 1)]
    assert main(args) == 0

    for name in ("config.json", "versions.json", "run.log", "stage1/model.pt",
                 "stage1/history.json", "removal.csv", "removal.json", "removal.png",
                 "stage2/history.json", "model.pt", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("train_state.pt"))
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["model"] == "smallcnn"
    assert config["model_kwargs"] == {"widths": [16, 32]}
    assert config["finetune"]["lr"] == pytest.approx(2e-4)  # --lr sets stage 1 only
    assert config["train"]["epochs"] == 3 and config["finetune"]["epochs"] == 1
    assert len(json.loads((out / "stage1/history.json").read_text())) == 3
    assert len(json.loads((out / "stage2/history.json").read_text())) == 1
    assert (out / "removal.png").read_bytes()[:4] == b"\x89PNG"

    # the removal file is the seeded draw on its own scores, and the counts agree with it
    with (out / "removal.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60
    names = [r["name"] for r in rows]
    kept, scores = read_removal(out / "removal.csv", names)
    np.testing.assert_array_equal(kept, select_kept(scores, np.random.default_rng(3)))
    np.testing.assert_allclose([float(r["p"]) for r in rows], removal_probability(scores))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # softmax scores
    report = json.loads((out / "removal.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert report["n_removed"] == summary["n_removed"] == int((~kept).sum())
    assert summary["stage2_skipped"] is False
    # a folder dataset has no agreement subset (--subset's default "five" is not recorded)
    assert summary["subset"] is None and summary["dataset"] == data.name
    assert f"({data.name}, 60 images)" in (out / "summary.md").read_text()
    assert report["n_kept"] == int(kept.sum()) >= 2
    assert sum(c["removed"] for c in report["by_label"].values()) == report["n_removed"]
    assert sum(report["histogram"]["diff"]) == 60

    # the stage-1 scores are those of stage1/model.pt on the training images
    cnn, _ = load_checkpoint(out / "stage1" / "model.pt")
    pred = Predictor(cnn, class_names=("negative", "positive"), device="cpu")
    first = [data / n for n in names[:4]]
    np.testing.assert_allclose(pred.predict_proba(first)[:, 1], scores[:4, 1], atol=1e-4)

    # the final model loads and scores images; it was changed by stage 2
    pcnn, meta = load_checkpoint(out / "model.pt")
    assert meta["n_kept"] == report["n_kept"] and meta["subset"] is None
    assert meta["data_sha256"] == load_dataset(data, validate=False).fingerprint()["sha256"]
    assert pcnn.spec["name"] == "smallcnn"
    w1, w2 = cnn.state_dict(), pcnn.state_dict()
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
    assert main(["predict", str(data / names[0]), "--model", str(out / "model.pt"),
                 "--out", str(tmp_path / "pred.csv"), "--no-progress"]) == 0
    # its card says how it was trained, from the checkpoint alone (trial41 F3: "not
    # recorded" for what the run knew, stage 2's settings left out)
    from vsent.models.card import card_markdown, model_card

    shutil.copy(out / "model.pt", tmp_path / "copied.pt")
    for file, how in ((out / "stage1" / "model.pt", "PCNN stage 1 (the CNN before the "
                                                    "selection)"),
                      (tmp_path / "copied.pt", "progressive (You et al.): stage 1 on 60 images, "
                                               f"stage 2 on the {report['n_kept']} the "
                                               "selection kept")):
        text = card_markdown(model_card(file))
        assert f"- Command: pcnn\n- Training: {how}\n" in text
        assert "- Training images: 60\n- Held-out images: none (trained on every image)\n" \
            in text
        assert "- Training settings: epochs=3, " in text and ", seed=3, " in text
        # stage 2 trains with the next seed (review41 F6: the card said the run's)
        assert ("- Stage-2 settings: epochs=1, " in text) == (file.name == "copied.pt")
        assert (", seed=4, " in text) == (file.name == "copied.pt")

    # a second run into the same folder with another recipe is refused (naming it); the same
    # one returns the stored result; --resume keeps the finished stages
    assert main([*args, "--finetune-lr", "1e-3"]) == 2
    before = (out / "model.pt").stat().st_mtime_ns
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0
    assert (out / "model.pt").stat().st_mtime_ns == before
    # a stage's history damaged before the summary was written: left out of it, with a
    # warning (it was a JSONDecodeError traceback after both stages had trained)
    assert summary["stage1_final"]["epoch"] == 3
    history = json.loads((out / "stage2" / "history.json").read_text())  # mut48b P35
    assert summary["stage2_final"] == {k: history[-1][k] for k in ("epoch", "loss",
                                                                   "train_accuracy")}
    (out / "summary.json").unlink()
    (out / "stage1" / "history.json").write_text('{"cut')
    assert main([*args, "--resume"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert "stage1_final" not in again and again["stage2_final"] == summary["stage2_final"]
    assert (out / "model.pt").stat().st_mtime_ns == before


def test_a_stage_history_that_holds_no_records_is_left_out_of_the_summary(tmp_path, caplog):
    """mut56b P42: a history.json of no epoch records (``[1]``: a TypeError to index) is left
    out with a warning, as a cut one is; the other stage's last epoch is kept."""
    from vsent.analyses.pcnn import _last_epochs

    last = {"epoch": 2, "loss": 0.5, "train_accuracy": 0.75}
    for stage, text in (("stage1", "[1]"), ("stage2", json.dumps([{**last, "lr": 0.1}]))):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "history.json").write_text(text)
    with caplog.at_level(logging.WARNING):
        assert _last_epochs(tmp_path) == {"stage2_final": last}
    assert "summary leaves out stage1's last epoch" in caplog.text


def test_stage_2_trains_on_exactly_the_images_kept(make_learnable, tmp_path, monkeypatch):
    """Stage 2 was only seen to run: had it fine-tuned on every image, the selection would do
    nothing and no test would fail. Its training call is mapped back to names by pixels."""
    import vsent.analyses.pcnn as pcnn_module
    from vsent.data import load_dataset
    from vsent.data.cache import image_cache

    data = make_learnable(n_pos=12, n_neg=12)
    dataset = load_dataset(data)
    cache = image_cache(dataset, size=64, progress=False)  # smallcnn's input size
    name_of = {cache[i].tobytes(): n for i, n in enumerate(dataset.names)}
    assert len(name_of) == 24
    calls = []
    real_fit = pcnn_module.fit

    starts = []

    def fit(model, images, labels, cfg, **kw):
        calls.append(([name_of[np.asarray(images[i]).tobytes()] for i in range(len(images))],
                      np.asarray(labels).tolist(), cfg.seed))
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_fit(model, images, labels, cfg, **kw)

    monkeypatch.setattr(pcnn_module, "fit", fit)
    # a fixed draw (two thirds of each class kept), whatever stage 1 learnt
    monkeypatch.setattr(pcnn_module, "select_kept", lambda scores, rng: np.arange(24) % 3 > 0)
    scored = []  # mut52b P48: the selection scores in batches of --eval-batch-size
    real_predict = pcnn_module.predict_proba
    monkeypatch.setattr(pcnn_module, "predict_proba", lambda model, images, **kw: (
        scored.append(kw["batch_size"]) or real_predict(model, images, **kw)))
    quick = CROSSVAL_PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    cfg = ProgressiveConfig(data=str(data), model="smallcnn", model_kwargs={"widths": [8, 16]},
                            train=quick, finetune=quick, seed=0, preset=None, eval_batch_size=5)
    progressive(cfg, tmp_path / "run", progress=False)
    assert scored == [5]
    # mut52b P07: stage 1 starts from the weights torch.manual_seed(--seed) draws
    torch.manual_seed(0)
    drawn = create_model("smallcnn", widths=[8, 16]).state_dict()
    assert all(torch.equal(starts[0][k], drawn[k]) for k in drawn)
    # mut52b P50: the two checkpoints say which stage they are
    assert load_checkpoint(tmp_path / "run" / "stage1" / "model.pt")[1]["stage"] == "pcnn-stage1"
    meta = load_checkpoint(tmp_path / "run" / "model.pt")[1]
    assert meta["stage"] == "pcnn"
    assert (meta["n_removed"], meta["n_kept"]) == (8, 16)  # (left52 P16: the draw's counts)

    with (tmp_path / "run" / "removal.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r["name"] for r in rows if r["removed"] == "0"]
    assert len(kept) == 16 and len(rows) == 24

    def label(name):  # from the folder, not from vsent
        return int(Path(name).parts[0] == "positive")

    assert len(calls) == 2
    assert sorted(calls[0][0]) == sorted(dataset.names)  # stage 1: every image once
    # the seeds summary.json reports: stage 1 trains with --seed, stage 2 with --seed + 1
    assert [seed for _, _, seed in calls] == [0, 1] == [cfg.seeds["stage1"], cfg.seeds["stage2"]]
    names, labels, _ = calls[1]
    assert sorted(names) == sorted(kept)  # stage 2: the kept images, each once, no other
    assert labels == [label(n) for n in names]
    assert sorted(set(labels)) == [0, 1]


@pytest.mark.parametrize("keep", ["none", "positives"])
def test_a_selection_of_fewer_than_two_classes_skips_stage_2(keep, make_learnable, tmp_path,
                                                              monkeypatch, caplog):
    # an unconfident network drops (almost) everything; a one-class set would teach "always
    # that class", so stage 2 is skipped and the PCNN is the stage-1 network
    import vsent.analyses.pcnn as pcnn_module

    data = make_learnable(n_pos=10, n_neg=10)
    labels = {}

    def draw(scores, rng):
        kept = np.zeros(len(scores), dtype=bool)
        if keep == "positives":
            kept[labels["positive"]] = True
        return kept

    real_load = pcnn_module.load_dataset

    def load(*args, **kwargs):
        dataset = real_load(*args, **kwargs)
        labels["positive"] = np.flatnonzero(dataset.labels == 1)
        return dataset

    monkeypatch.setattr(pcnn_module, "select_kept", draw)
    monkeypatch.setattr(pcnn_module, "load_dataset", load)
    out = tmp_path / "run"
    args = ["pcnn", "--data", str(data), "--out", str(out), *_train_opts(1, 1)]
    with caplog.at_level("WARNING", logger="vsent"):
        assert main(args) == 0
    n_kept = 0 if keep == "none" else 10
    assert (f"selection kept {n_kept} of 20 images, of fewer than two classes (see "
            f"{out / 'removal.csv'}); stage 2 skipped") in caplog.text

    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage2_skipped"] is True
    assert summary["n_kept"] == n_kept and summary["n_removed"] == 20 - n_kept
    assert "stage2_final" not in summary and not (out / "stage2").exists()
    assert "stage 2 skipped" in (out / "summary.md").read_text()
    cnn, _ = load_checkpoint(out / "stage1" / "model.pt")
    pcnn, meta = load_checkpoint(out / "model.pt")
    assert meta["stage2_skipped"] is True and meta["n_kept"] == n_kept
    assert meta["training"] == ("progressive (You et al.): stage 1 on 20 images; stage 2 "
                                f"skipped (the selection kept {n_kept}, of fewer than two "
                                "classes)") and "finetune" not in meta
    w1, w2 = cnn.state_dict(), pcnn.state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # a run resumed before its end reads the draw from removal.csv and takes the same decision
    (out / "model.pt").unlink()
    (out / "summary.json").unlink()
    monkeypatch.setattr(pcnn_module, "select_kept", None)  # the draw is not made again
    assert main([*args, "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["stage2_skipped"] is True
    assert not (out / "stage2").exists()


def test_pcnn_command_needs_a_dataset_and_sound_options(learnable_dataset, tmp_path, capsys):
    assert main(["pcnn", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"),
                 *_train_opts(1, 1)]) == 2
    assert "nothing" in capsys.readouterr().err
    base = ["pcnn", "--data", str(learnable_dataset), *_train_opts(1, 1)]
    with pytest.raises(SystemExit) as e:  # an argparse usage error (type=key_value)
        main([*base, "--model-arg", "widths", "--out", str(tmp_path / "a")])
    assert e.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "--finetune-epochs", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--finetune-epochs 0" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    # a stage-2 lr of 0 is refused too, not taken for "the preset's" (mut59c C178)
    assert main([*base, "--finetune-lr", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--finetune-lr 0.0 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    # weights that cannot be had stop it before the run directory and the image cache
    assert main([*base, "--init", "imagenet", "--out", str(tmp_path / "c")]) == 2
    assert "no ImageNet weights" in capsys.readouterr().err
    assert main([*base, "--init", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "d")]) == 2
    assert "absent.pt" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("o", "c", "d"))
    # the Python API names the missing data first, before it looks for the init weights
    # (mut58a P76: "absent.pt" was the error, the data's only after them)
    cfg = ProgressiveConfig(data=str(tmp_path / "nothing"), model="smallcnn",
                            model_kwargs={"widths": [8, 16]}, init=str(tmp_path / "absent.pt"))
    with pytest.raises(VsentError, match=r"nothing: no such file or directory$"):
        progressive(cfg, tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()


def test_a_twitter_run_selects_its_agreement_subset(tmp_path):
    """--subset is refused for data without subsets only: a Twitter I folder's run reads the
    subset it names (mut58a P77: every --subset but "five" was refused)."""
    from vsent.analyses.pcnn import _read_run_data
    from vsent.runs import open_run_dir

    data = build_twitter_like(tmp_path / "tw", n=30, n_four=25, n_five=20)
    cfg = ProgressiveConfig(data=str(data), subset="four")
    run = open_run_dir(tmp_path / "run", {"command": "pcnn", **cfg.to_dict()})
    with run:
        dataset, _ = _read_run_data(cfg, run)
    assert dataset.subset == "four" and len(dataset) == len(load_dataset(data, "four")) == 25


def test_pcnn_command_refuses_a_dataset_of_one_class(make_learnable, tmp_path, capsys):
    """Stage 1 would learn one answer, the selection drop every image and the run end with
    the stage-1 model called PCNN: refused before any training."""
    import shutil

    # all negative too: no class 1 to count (left52 P19: a count of one class, never 0)
    for kept, moved in (("positive", "negative"), ("negative", "positive")):
        data = make_learnable(tmp_path / kept, n_pos=6, n_neg=6)
        for f in (data / moved).iterdir():
            shutil.move(f, data / kept / f"m_{f.name}")
        assert main(["pcnn", "--data", str(data), "--out", str(tmp_path / "o"),
                     *_train_opts(1, 1)]) == 2
        err = capsys.readouterr().err
        assert (f"{data}: all 12 images are {kept}; progressive training needs both classes"
                in err)
        assert not (tmp_path / "o" / "stage1").exists()


WARM = np.array([215.0, 160.0, 80.0])
COLD = np.array([45.0, 70.0, 140.0])


def build_weakly_labelled(root: Path, n: int = 120, seed: int = 0) -> tuple[Path, set[str]]:
    """A positive/ + negative/ folder whose labels are noisy where the images are ambiguous.

    Each image has a sentiment strength ``t ~ U(-1, 1)`` (its colour goes from cold at -1 to
    warm at +1); its true label is ``t > 0``; a weak labeller gets it wrong with probability
    ``0.5 exp(-(t / 0.3)^2)``, i.e. mostly on the ambiguous images, as a machine labeller
    does. Returns the folder and the names (``<class>/<file>``) of the mislabelled images.
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, n)
    true = (t > 0).astype(int)
    flip = rng.random(n) < 0.5 * np.exp(-((t / 0.3) ** 2))
    weak = np.where(flip, 1 - true, true)
    noisy = set()
    for i in range(n):
        colour = (WARM + COLD) / 2 + t[i] * (WARM - COLD) / 2
        img = np.clip(colour + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        name = f"{'positive' if weak[i] else 'negative'}/img{i:03d}.png"
        save_image(img, root / name)
        if flip[i]:
            noisy.add(name)
    return root, noisy


def test_progressive_selection_removes_noisy_labels_more_often(tmp_path):
    data, noisy = build_weakly_labelled(tmp_path / "weak")
    quick = CROSSVAL_PRESETS["quick"]["train"]
    cfg = ProgressiveConfig(
        data=str(data), model="smallcnn", model_kwargs={"widths": [16, 32]},
        train=quick.replace(epochs=5, batch_size=16, lr=5e-3, device="cpu"),
        finetune=quick.replace(epochs=1, batch_size=16, device="cpu"),
        seed=0, preset=None,
    )
    summary = progressive(cfg, tmp_path / "run", progress=False)
    with (tmp_path / "run" / "removal.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    is_noisy = np.array([r["name"] in noisy for r in rows])
    removed = np.array([r["removed"] == "1" for r in rows])
    p = np.array([float(r["p"]) for r in rows])
    assert 5 <= is_noisy.sum() <= 40  # the generator made a noisy minority
    # expected and realised removal rates are both higher among the mislabelled images
    assert p[is_noisy].mean() > 1.5 * p[~is_noisy].mean(), (p[is_noisy].mean(), p[~is_noisy].mean())
    assert removed[is_noisy].mean() > removed[~is_noisy].mean()
    assert summary["n_removed"] == removed.sum()


# --------------------------------------------------------------------------------------------
# Algorithm 2: domain transfer


@pytest.mark.parametrize("reference, architecture, caveat", [
    ("pcnn", "caffenet", None),
    ("pcnn", "pcnn", "a CaffeNet-based network, not the 2CONV-4FC network"),
    ("cnn", "pcnn", None),
    ("cnn", "smallcnn", "the 2CONV-4FC network, not smallcnn"),
])
def test_transfer_table_says_when_the_published_row_is_another_network(reference, architecture,
                                                                       caveat):
    from vsent.analyses.pcnn import PUBLISHED_SOURCE, transfer_markdown

    md = transfer_markdown({"reference": reference, "architecture": architecture, "model": "m.pt",
                            "folds": "campos", "evaluation": "centre", "rows": [],
                            "published_source": PUBLISHED_SOURCE})
    label = papers.YOU2015_QUOTED_LABELS[reference]
    assert f"/ published {label}{': ' + caveat if caveat else ''}." in md


def test_transfer_rows_set_the_chosen_published_row_beside_ours():
    """--reference cnn had no test of its rows: rows reading the PCNN's published values
    whatever it said passed the suite (tests38 #5)."""
    from vsent.analyses.pcnn import TransferConfig, transfer_row
    from vsent.metrics import summarize_folds

    summary = summarize_folds([{"fold": k, "accuracy": 0.7, "precision": 0.7, "recall": 0.7,
                                "f1": 0.7} for k in (1, 2)])
    summary["n_images"] = 10  # crossval's count of the images tested over the folds
    for reference in ("pcnn", "cnn"):
        row = transfer_row("five", summary, reference)
        # transfer.csv's counts are the subset's (mut58a P64: n_images None)
        assert (row["subset"], row["n_images"], row["n_folds"]) == ("five", 10, 2)
        assert row["accuracy_published"] == \
            papers.YOU2015_TABLE6[reference]["five"]["accuracy"].mean
    assert transfer_row("five", summary, "cnn")["accuracy_published"] != \
        transfer_row("five", summary, "pcnn")["accuracy_published"]
    with pytest.raises(VsentError, match=r"^--reference 'x': choose pcnn or cnn$"):
        TransferConfig(model="m.pt", data="d", reference="x")


def test_transfer_table_says_how_many_folds_the_split_had():
    """code37 #11: the table said "5-fold fine-tuning" whatever the split (a folds file may
    hold 3); a table written before its rows recorded the count, on Campos et al.'s split,
    still says 5."""
    from vsent.analyses.pcnn import PUBLISHED_SOURCE, transfer_markdown, transfer_row
    from vsent.metrics import summarize_folds

    summary = summarize_folds([{"fold": k, "accuracy": 0.7, "precision": 0.7, "recall": 0.7,
                                "f1": 0.7} for k in (1, 2, 3)])
    table = {"reference": "pcnn", "architecture": "pcnn", "model": "m.pt",
             "folds": "my_folds.json", "evaluation": "centre",
             "rows": [transfer_row("five", summary)], "published_source": PUBLISHED_SOURCE}
    md = transfer_markdown(table)
    assert "\n3-fold fine-tuning on Twitter I (my_folds.json folds" in md
    # mut56b P33: a published cell keeps the paper's decimals (its 77.30 %), not 3 of ours
    assert "| five | 0.700 +- 0.000 / 0.7730 | " in md
    old = {**table, "folds": "campos",
           "rows": [{k: v for k, v in table["rows"][0].items() if k != "n_folds"}]}
    assert "\n5-fold fine-tuning on Twitter I (campos folds" in transfer_markdown(old)


def test_pcnn_transfer_fine_tunes_the_checkpoint_per_subset(make_twitter_like, tmp_path,
                                                            caplog, capsys, monkeypatch):
    twitter_like = make_twitter_like(n=30, n_four=25, n_five=20)
    torch.manual_seed(0)
    pretrained = create_model("smallcnn", widths=[8, 16])
    ckpt = save_checkpoint(tmp_path / "pretrained.pt", pretrained)
    out = tmp_path / "transfer"
    # an lr of 1e-12 leaves the weights where the checkpoint put them: we can see they loaded
    args = ["pcnn-transfer", "--model", str(ckpt), "--data", str(twitter_like),
            "--subsets", "five,four", "--out", str(out), "--epochs", "1", "--lr", "1e-12",
            "--batch-size", "8", "--device", "cpu", "--no-progress"]
    with caplog.at_level(logging.INFO, logger="vsent"):
        assert main(args) == 0
    # the data said once a subset, by its run (walk36 #10: once more by the checks before)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dataset: ")]
    assert [m.split("twitter ")[1].split("-agree")[0] for m in said] == ["five", "four"], said

    table = json.loads((out / "transfer.json").read_text())
    assert [r["subset"] for r in table["rows"]] == ["five", "four"]
    for row in table["rows"]:
        summary = json.loads((out / row["subset"] / "summary.json").read_text())
        for key in ("precision", "recall", "f1", "accuracy"):
            assert row[f"{key}_mean"] == pytest.approx(summary[key]["mean"])
            assert row[f"{key}_std"] == pytest.approx(summary[key]["std"])
            published = papers.YOU2015_TABLE6["pcnn"][row["subset"]][key]
            assert row[f"{key}_published"] == published.mean
        assert len(summary["folds"]) == 5
    with (out / "transfer.csv").open(newline="") as f:
        assert [r["subset"] for r in csv.DictReader(f)] == ["five", "four"]
    md = (out / "transfer.md").read_text()
    # You et al.'s PCNN precision/recall/F1 are not available (vsent.papers): no number beside
    # ours, the cell says so in papers' words; the accuracy quoted by Sun et al. is shown
    assert "| five |" in md and f" / {papers.NOT_AVAILABLE_TEXT} |" in md
    # as Sun et al. printed them: 77.30 % and 70.09 % (70.09 was rounded to 0.701)
    assert " / 0.7730 |" in md and " / 0.7009 |" in md and "0.701 " not in md
    assert "verified" not in md
    # the published row is named as its source names it, and is not this network (fidelity31)
    assert ("/ published PCNN + CaffeNet (You et al.; quoted by Sun et al. 2016, Table 1): a "
            "CaffeNet-based network, not smallcnn.") in md

    # a finished transfer resumed: nothing trained; a table written by an older vsent gets
    # today's published values and labels again (review31 #3), its numbers are the run's
    files = {n: (out / n).read_bytes() for n in ("transfer.json", "transfer.csv", "transfer.md")}
    old = json.loads(files["transfer.json"])
    old["published_source"] = "You et al., Twitter 5-fold table"
    old["rows"][0]["accuracy_published"] = 0.5
    (out / "transfer.json").write_text(json.dumps(old))
    (out / "transfer.md").write_text("old")
    stamp = (out / "five" / "fold1" / "model.pt").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    assert {n: (out / n).read_bytes() for n in files} == files
    assert (out / "five" / "fold1" / "model.pt").stat().st_mtime_ns == stamp
    fold_model, _ = load_checkpoint(out / "four" / "fold2" / "model.pt")
    assert fold_model.spec["widths"] == [8, 16]
    ref = pretrained.state_dict()
    for key, value in fold_model.state_dict().items():
        if key.endswith(".weight") and "features" in key and value.ndim == 4:
            torch.testing.assert_close(value, ref[key], rtol=0, atol=1e-6)

    # stopped between its subsets (five finished, four not begun), then the checkpoint or the
    # data changed: a resume would set two starts side by side in one table (robust38 #2)
    shutil.rmtree(out / "four")
    (out / "transfer.json").unlink()
    kept = ckpt.read_bytes()
    save_checkpoint(ckpt, create_model("smallcnn", widths=[8, 16]))  # retrained in place
    assert main([*args, "--resume"]) == 2
    assert f"{ckpt}: the --model checkpoint changed since {out / 'five'} started (SHA-256 " \
           in capsys.readouterr().err
    ckpt.write_bytes(kept)
    labels = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    first, *rest = labels.read_text().splitlines(keepends=True)
    name, label = first.split()
    labels.write_text("".join([f"{name} {1 - int(label)}\n", *rest]))
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{twitter_like}: its images or labels changed since {out / 'five'} was made" in err
    assert f"changed or added: {name}" in err
    assert not (out / "four").exists()

    # labels restored: `--resume --out DIR` alone, from another folder, continues the run as
    # it was started (as crossval's; --model was required, and the defaults were refused)
    labels.write_text("".join([first, *rest]))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    stored = (out / "config.json").read_text()
    assert main(["pcnn-transfer", "--resume", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err  # other options: compared with the run's, which names them
    assert "train.epochs: stored 1, now 2" in err and "--model is required" not in err
    assert main(["pcnn-transfer", "--resume", "--out", str(out), "--no-progress"]) == 0
    table = json.loads((out / "transfer.json").read_text())
    assert [r["subset"] for r in table["rows"]] == ["five", "four"]
    assert (out / "config.json").read_text() == stored
    assert main(["pcnn-transfer", "--out", str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err == ("vsent: error: --model is required (the checkpoint to "
                                       "fine-tune)\n")
    # another checkpoint given: compared, not dropped for the stored one (review40b #2)
    other = save_checkpoint(tmp_path / "other.pt", create_model("smallcnn", widths=[8, 16]))
    assert main(["pcnn-transfer", "--resume", "--out", str(out), "--model", str(other)]) == 2
    assert "made with other model (model: stored " in capsys.readouterr().err
    # options built without vsent.cli.main (no argv): a --model given is not dropped for the
    # stored one either (review40c #2)
    from vsent.cli import build_parser
    from vsent.cli.pcnn import run_transfer

    with pytest.raises(VsentError, match="made with other model"):
        run_transfer(build_parser().parse_args(["pcnn-transfer", "--resume", "--out", str(out),
                                                "--model", str(other)]))
    # a misspelt --out with the checkpoint alone: refused, not a default transfer (#8)
    assert main(["pcnn-transfer", "--resume", "--out", str(tmp_path / "typo"), "--model",
                 str(ckpt)]) == 2
    assert f"{tmp_path / 'typo'} holds no run to continue" in capsys.readouterr().err

    # the checkpoint moved (note40's kept item): each refusal says what continues the run
    # (a link at the stored path: a checkpoint is compared as the file system resolves it)
    (tmp_path / "moved").mkdir()
    moved = ckpt.rename(tmp_path / "moved" / ckpt.name)
    assert main(["pcnn-transfer", "--resume", "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"vsent: error: {ckpt}: no such file (the --model {out} was started with: if it "
        "moved, a link at that path to its new place continues the run)\n")
    assert main(["pcnn-transfer", "--resume", "--out", str(out), "--model", str(moved)]) == 2
    assert capsys.readouterr().err.endswith(
        "; if the checkpoint moved, a link at the stored path to it, and no --model, "
        "continues it\n")
    ckpt.symlink_to(moved)
    for given in ([], ["--model", str(moved)]):
        assert main(["pcnn-transfer", "--resume", "--out", str(out), "--no-progress",
                     *given]) == 0, capsys.readouterr().err
    assert (out / "config.json").read_text() == stored


def test_pcnn_transfer_rejects_bad_subsets_and_models(twitter_like, make_learnable, tmp_path,
                                                      capsys):
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn", widths=[8]))
    base = ["pcnn-transfer", "--data", str(twitter_like), "--epochs", "1", "--no-progress"]
    assert main([*base, "--model", str(ckpt), "--subsets", "five,two",
                 "--out", str(tmp_path / "a")]) == 2
    assert "--subsets" in capsys.readouterr().err
    three_way = save_checkpoint(tmp_path / "m3.pt",
                                create_model("smallcnn", num_classes=3, widths=[8]))
    assert main([*base, "--model", str(three_way), "--out", str(tmp_path / "b")]) == 2
    assert "2-way" in capsys.readouterr().err
    assert main([*base, "--model", str(tmp_path / "missing.pt"),
                 "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and "Traceback" not in err  # the error names the file
    # one folds file for three subsets: make_folds would keep its images only, so the four-
    # and three-agree rows would be five-agree's
    folds_file = tmp_path / "folds.json"
    folds_file.write_text("{}")
    assert main([*base, "--model", str(ckpt), "--folds", str(folds_file),
                 "--out", str(tmp_path / "d")]) == 2
    assert "holds the folds of one subset; use --subsets five, four or three" in \
        capsys.readouterr().err
    # a --folds file that does not exist: named before any run directory is opened
    assert main([*base, "--model", str(ckpt), "--subsets", "five", "--folds",
                 str(tmp_path / "none.json"), "--out", str(tmp_path / "e")]) == 2
    assert f"{tmp_path / 'none.json'}: no such file or directory (--folds expects" in \
        capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    # a model trained on these very images (vsent pcnn and crossval record their data): its
    # test folds would hold its training images
    on_twitter = save_checkpoint(tmp_path / "own.pt", create_model("smallcnn", widths=[8]),
                                 data=str(twitter_like))
    assert main([*base, "--model", str(on_twitter), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"own.pt was trained on {twitter_like}, the data it would be fine-tuned" in err
    # ... or on a copy of them elsewhere (recognised by the five-agree subset's fingerprint)
    copy = shutil.copytree(twitter_like, tmp_path / "copy of twitter")
    sha = load_dataset(copy, "five", validate=False).fingerprint()["sha256"]
    on_copy = save_checkpoint(tmp_path / "copy.pt", create_model("smallcnn", widths=[8]),
                              data=str(copy), subset="five", data_sha256=sha)
    assert main([*base, "--model", str(on_copy), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert f"copy.pt was trained on {copy} (a copy of {twitter_like}: same images" in err
    elsewhere = save_checkpoint(tmp_path / "flickr.pt", create_model("smallcnn", widths=[8]),
                                data=str(tmp_path / "flickr"))
    check_other_data(elsewhere, load_checkpoint(elsewhere)[1], str(twitter_like))  # no error
    # a copy with one label changed is not the same data (fingerprint), but it holds the same
    # images: refused as other data that holds them (trial32 #3)
    five = copy / "ground_truth" / "twitter_five_agrees.txt"
    first, *rest = five.read_text().splitlines(keepends=True)
    name, label = first.split()
    five.write_text("".join([f"{name} {1 - int(label)}\n", *rest]))
    on_original = save_checkpoint(tmp_path / "original.pt", create_model("smallcnn", widths=[8]),
                                  data=str(twitter_like), subset="five", data_sha256=sha)
    with pytest.raises(VsentError, match=r"original.pt was trained on .*, which holds \d+ of "
                                         r"the images of .*copy of twitter \(five-agree; e.g. "):
        check_other_data(on_original, load_checkpoint(on_original)[1], str(copy))
    # trial32 #3: weak-label data (a CSV) that lists a few Twitter images, under other names
    weak = tmp_path / "weak"
    weak.mkdir()
    some = sorted((twitter_like / "images").iterdir())[:2]
    for i, f in enumerate(some):
        shutil.copy(f, weak / f"flickr{i}.jpg")
    (weak / "other.jpg").write_bytes(b"\xff\xd8" + bytes(range(256)) * 40)
    (weak / "weak.csv").write_text("path,label\nflickr0.jpg,1\nflickr1.jpg,0\nother.jpg,1\n")
    on_weak = save_checkpoint(tmp_path / "weak.pt", create_model("smallcnn", widths=[8]),
                              data=str(weak / "weak.csv"))
    assert main([*base, "--model", str(on_weak), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert f"weak.pt was trained on {weak / 'weak.csv'}, which holds 2 of the images of " \
           f"{twitter_like} (five/four/three-agree; e.g. {weak / 'flickr0.jpg'} is {some[0]}, " \
           f"{weak / 'flickr1.jpg'} is {some[1]}): the test folds would hold training " \
           "images" in err
    assert not (tmp_path / "w").exists()
    # a CSV listing the Twitter images themselves: each named once, not "X is X" (walk42 #5)
    (weak / "weak.csv").write_text(f"path,label\n{some[0]},1\n{some[1]},0\nother.jpg,1\n")
    with pytest.raises(VsentError) as same:
        check_other_data(on_weak, load_checkpoint(on_weak)[1], str(twitter_like))
    assert f"(five-agree; e.g. {some[0]}, {some[1]}): the test folds" in \
        str(same.value)
    # readable weak-label data without any of them passes (review32b #6)
    (weak / "weak.csv").write_text("path,label\nother.jpg,1\n")
    check_other_data(on_weak, load_checkpoint(on_weak)[1], str(twitter_like))  # no error
    # an image of the three-agree subset alone is in no five-agree test fold (review32b #2)
    five_names = set(load_dataset(twitter_like, "five", validate=False).names)
    three_only = next(p for p in load_dataset(twitter_like, "three", validate=False).paths
                      if p.name not in five_names)
    shutil.copy(three_only, weak / "flickr9.jpg")
    (weak / "weak.csv").write_text("path,label\nother.jpg,1\nflickr9.jpg,0\n")
    check_other_data(on_weak, load_checkpoint(on_weak)[1], str(twitter_like), ("five",))
    with pytest.raises(VsentError, match=r"which holds 1 of the images of .* \(three-agree; "):
        check_other_data(on_weak, load_checkpoint(on_weak)[1], str(twitter_like), ("three",))
    # a folder dataset has no agreement subsets: its rows would stand beside the paper's
    folder = make_learnable(tmp_path / "folder", n_pos=4, n_neg=4)
    argv = [*base, "--model", str(ckpt), "--out", str(tmp_path / "g")]
    argv[argv.index("--data") + 1] = str(folder)
    assert main(argv) == 2
    assert f"{folder} is a folder dataset (use vsent crossval --init" in capsys.readouterr().err
    for name in ("a", "b", "c", "d", "e", "f", "g"):  # refused before any run directory
        assert not (tmp_path / name).exists(), name


def _sgd_run_stopped_in_torch_form(data, out, monkeypatch, epochs: int, done: int) -> list:
    """``vsent pcnn`` with SGD in torch's momentum form (as every SGD run made before
    --momentum-form), stopped by Ctrl-C after ``done`` epochs; its command line, without
    --momentum-form."""
    from conftest import interrupt_after

    args = ["pcnn", "--data", str(data), "--out", str(out), *_train_opts(epochs, 1),
            "--optimizer", "sgd"]
    with monkeypatch.context() as mp:
        interrupt_after(mp, done)
        assert main([*args, "--momentum-form", "torch"]) == 130
    return args


def test_pcnn_resume_with_another_momentum_form_is_refused(make_learnable, tmp_path,
                                                           monkeypatch, capsys):
    """A run started in torch's momentum form (as every SGD run made before --momentum-form)
    resumes in it; --resume --momentum-form caffe on it was an info line in the log while it
    went on in torch's form: now one line, and nothing trained (review26, as crossval)."""
    from conftest import record_momentum_forms, resume_form_refusal

    out = tmp_path / "run"
    args = _sgd_run_stopped_in_torch_form(make_learnable(n_pos=20, n_neg=20), out, monkeypatch,
                                          epochs=2, done=1)
    assert "momentum_form" not in json.loads((out / "config.json").read_text())["train"]
    used = record_momentum_forms(monkeypatch)
    capsys.readouterr()
    assert main([*args, "--resume", "--momentum-form", "caffe"]) == 2
    assert capsys.readouterr().err == resume_form_refusal(out, "torch", "caffe")
    assert used == []
    assert main([*args, "--resume", "--momentum-form", "torch"]) == 0  # its own form: goes on
    assert used and set(used) <= {"torch"}


@pytest.mark.parametrize("command", ["pcnn", "pcnn-transfer"])
def test_both_pcnn_commands_check_a_resumed_momentum_form_with_their_config(
        command, tmp_path, monkeypatch, capsys):
    """mut51a N22: pcnn-transfer's check (the test above runs pcnn's) was one line away from
    not being made; each command hands it its own config, before any work."""
    import vsent.cli.pcnn as cli_pcnn
    from vsent.cli import main

    seen = []

    def check(args, cfg):
        seen.append((args.command, type(cfg).__name__, cfg.train.momentum_form))
        raise VsentError("checked")

    monkeypatch.setattr(cli_pcnn, "check_resumed_momentum_form", check)
    given = (["--data", str(tmp_path)] if command == "pcnn" else
             ["--model", str(tmp_path / "m.pt"), "--data", str(tmp_path)])
    assert main([command, *given, "--out", str(tmp_path / "o"), "--resume", "--momentum-form",
                 "caffe"]) == 2
    assert capsys.readouterr().err == "vsent: error: checked\n"
    config = "ProgressiveConfig" if command == "pcnn" else "TransferConfig"
    assert seen == [(command, config, "caffe")]


def test_pcnn_resume_with_a_momentum_form_starts_a_run_that_wrote_no_results(
        make_learnable, tmp_path, monkeypatch, capsys):
    """review28 #1: a run stopped before its first result (only its records) is replaced by a
    new run, so `--resume --momentum-form caffe` starts one in Caffe's form (it was refused as
    if a torch run would go on); another command's run is refused as such, not for its form."""
    from conftest import record_momentum_forms

    out = tmp_path / "run"
    args = _sgd_run_stopped_in_torch_form(make_learnable(n_pos=20, n_neg=20), out, monkeypatch,
                                          epochs=1, done=0)
    used = record_momentum_forms(monkeypatch)
    assert main([*args, "--resume", "--momentum-form", "caffe"]) == 0
    assert used and set(used) == {"caffe"}
    assert json.loads((out / "config.json").read_text())["train"]["momentum_form"] == "caffe"
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"command": "crossval", "train": {}}))
    (other / "summary.json").write_text("{}")
    capsys.readouterr()
    assert main([*args[:4], str(other), *args[5:], "--resume", "--momentum-form", "caffe"]) == 2
    assert f"{other} holds a crossval run, not a pcnn run" in capsys.readouterr().err


def test_pcnn_resume_alone_continues_the_run_as_it_was_started(make_learnable, tmp_path,
                                                               monkeypatch, capsys):
    """`vsent pcnn --resume --out DIR` (as crossval's) continues the stored run: it said --data
    was required, and with --data the preset's defaults (not the run's) were refused. Other
    options without --data take the run's data and are compared with the run's options."""
    from conftest import interrupt_after

    data, out = make_learnable(n_pos=20, n_neg=20), tmp_path / "run"
    args = ["pcnn", "--data", str(data), "--out", str(out), *_train_opts(2, 1)]
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        mp.setattr("sys.argv", ["vsent", *args])  # (versions.json records it)
        assert main(args) == 130
    stored = (out / "config.json").read_text()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["pcnn", "--resume", "--out", str(out), "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "--data is required" not in err and "(it was started as `vsent pcnn --data" in err
    # an option typed at its default value is an option given: compared (review40b #1)
    assert main(["pcnn", "--resume", "--out", str(out), "--preset", "you2015"]) == 2
    assert "made with other" in capsys.readouterr().err
    import vsent.analyses.pcnn as analyses_pcnn

    real, devices = analyses_pcnn.progressive, []  # --device reaches both stages (mut51a N18)
    monkeypatch.setattr(analyses_pcnn, "progressive", lambda cfg, *a, **k: devices.append(
        (cfg.train.device, cfg.finetune.device)) or real(cfg, *a, **k))
    # (started on cpu: resumed on auto, the device typed now, not the stored one)
    assert main(["pcnn", "--resume", "--out", str(out), "--device", "auto",
                 "--no-progress"]) == 0
    assert devices == [("auto", "auto")]
    assert (out / "summary.json").is_file() and (out / "config.json").read_text() == stored
    history = json.loads((out / "stage1" / "history.json").read_text())
    assert [e["epoch"] for e in history] == [1, 2]  # its 2 epochs, not the preset's
    capsys.readouterr()
    assert main(["pcnn", "--out", str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err == ("vsent: error: --data is required (the weakly labelled "
                                       "images)\n")
    assert main(["pcnn", "--resume", "--out", str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err == (f"vsent: error: --resume: {tmp_path / 'new'} holds no run "
                                       "to continue (no config.json); check --out, or give the "
                                       "recipe options (e.g. --preset quick) to start one\n")
    assert not (tmp_path / "new").exists()
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "config.json").write_text('{"command": "explain"}')
    assert main(["pcnn", "--resume", "--out", str(tmp_path / "ex")]) == 2
    assert capsys.readouterr().err == (f"vsent: error: --data is required (the weakly labelled "
                                       f"images): {tmp_path / 'ex'} holds an explain run, not a "
                                       "pcnn run\n")
    (tmp_path / "ex" / "config.json").write_text('{"command": "pcnn", "data": 5}')  # damaged
    assert main(["pcnn", "--resume", "--out", str(tmp_path / "ex")]) == 2
    assert capsys.readouterr().err == (f"vsent: error: --data is required (the weakly labelled "
                                       f"images): {tmp_path / 'ex' / 'config.json'} records "
                                       "none\n")


def test_pcnn_transfer_skip_bad_skips_a_bad_label_entry(make_twitter_like, tmp_path, capsys):
    """mut40 B2: pcnn-transfer --skip-bad refused data with a bad label entry, saying to skip
    it with --skip-bad (its first load, which checks the data is Twitter I's, did not skip)."""
    data = make_twitter_like(n=30, n_four=25, n_five=20)
    five = data / "ground_truth" / "twitter_five_agrees.txt"
    five.write_text(five.read_text() + "missing_img.jpg 1\n")
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn", widths=[8]))
    argv = ["pcnn-transfer", "--model", str(ckpt), "--data", str(data), "--subsets", "five",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2  # without: named, as every command
    assert "missing_img.jpg" in capsys.readouterr().err
    assert main([*argv, "--skip-bad", "--out", str(tmp_path / "b")]) == 0
    skipped = json.loads((tmp_path / "b" / "five" / "skipped.json").read_text())
    assert skipped == [[f"{five}:21", f"missing_img.jpg: no such image in {data / 'images'}"]]


def test_pcnn_resume_skip_bad_after_a_bad_image_keeps_the_runs_recipe(make_learnable, tmp_path,
                                                                      capsys):
    """review40 #2: a run stopped by a bad image (no result yet) and `--resume --out DIR
    --skip-bad`, as its error says, started the default you2015 recipe (hours): the run's
    config with the options given laid over it."""
    data = make_learnable(n_pos=12, n_neg=12)
    (data / "positive" / "zz_bad.jpg").write_bytes(b"junk")
    out = tmp_path / "run"
    assert main(["pcnn", "--data", str(data), "--out", str(out), *_train_opts(1, 1)]) == 2
    assert "--skip-bad" in capsys.readouterr().err
    # with another option, the options make the config: compared, not the defaults started
    # in its place (review40c #5: you2015 at 256 px, for --seed 0, the run's own seed)
    assert main(["pcnn", "--resume", "--out", str(out), "--skip-bad", "--seed", "0"]) == 2
    assert "--resume: " in capsys.readouterr().err and not (out / "stage1").exists()
    assert main(["pcnn", "--resume", "--out", str(out), "--skip-bad", "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "quick" and config["skip_bad"] is True
    assert (config["train"]["epochs"], config["finetune"]["epochs"]) == (1, 1)
    assert config["model_kwargs"] == {"widths": [16, 32]}
    # the image skipped is recorded, as crossval's runs record theirs
    skipped = json.loads((out / "skipped.json").read_text())
    assert [Path(entry[0]).name for entry in skipped] == ["zz_bad.jpg"]


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


def _opts(epochs: int = 1, finetune: int = 1) -> list[str]:
    return ["--preset", "quick", "--model-arg", "widths=[8, 16]", "--epochs", str(epochs),
            "--lr", "5e-3", "--finetune-epochs", str(finetune), "--batch-size", "16",
            "--device", "cpu", "--no-progress"]


def test_oversample_scores_the_selection_with_ten_crops(tmp_path):
    """``vsent pcnn --oversample`` scores the training images with 10 crops before drawing
    which to drop: removal.csv holds the stage-1 network's 10-crop softmax (mut42 ap08: the
    centre crop's, with the option recorded in config.json and ignored)."""
    data = build_learnable(tmp_path / "data", n_pos=12, n_neg=12)
    out = tmp_path / "run"
    assert main(["pcnn", "--data", str(data), "--out", str(out), "--oversample",
                 *_opts(epochs=3)]) == 0
    assert json.loads((out / "config.json").read_text())["oversample"] is True
    ds = load_dataset(data)
    _, scores = read_removal(out / "removal.csv", ds.names)
    cnn, _ = load_checkpoint(out / "stage1" / "model.pt")
    images = image_cache(ds, size=cnn.info.preprocess.resize, progress=False)
    ten = predict_proba(cnn, images, oversample=True, device="cpu")
    centre = predict_proba(cnn, images, oversample=False, device="cpu")
    assert np.abs(ten - centre).max() > 1e-5  # (the two views differ here)
    np.testing.assert_allclose(scores, ten, rtol=0, atol=1e-7)  # (written with repr)


def test_stage_1_starts_from_the_seeds_weights_whatever_the_global_rng(tmp_path):
    """The stage-1 network's initial weights are drawn from the run's seed: two runs of one
    config give the same stage-1 model whatever torch's global generator held before
    (mut42 ap09: without torch.manual_seed(seeds["stage1"]) they came from that state)."""
    data = build_learnable(tmp_path / "data", n_pos=10, n_neg=10)
    models = []
    for i, before in enumerate((11, 999)):
        torch.manual_seed(before)
        torch.rand(7)
        out = tmp_path / f"run{i}"
        assert main(["pcnn", "--data", str(data), "--out", str(out), "--seed", "2",
                     *_opts()]) == 0
        models.append(load_checkpoint(out / "stage1" / "model.pt")[0].state_dict())
    for k in models[0]:
        assert torch.equal(models[0][k], models[1][k]), k


def _transfer_five(tmp_path, *options: str):
    """``pcnn-transfer`` of a random smallcnn on the five-agree subset, 1 epoch: its --out."""
    data = build_twitter_like(tmp_path / "tw", n=30, n_four=25, n_five=20)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "pre.pt", create_model("smallcnn", widths=[8, 16]))
    out = tmp_path / "transfer"
    assert main(["pcnn-transfer", "--model", str(ckpt), "--data", str(data), "--subsets",
                 "five", "--out", str(out), "--epochs", "1", "--lr", "1e-3", "--batch-size",
                 "8", *options, "--device", "cpu", "--no-progress"]) == 0
    return out


def test_transfer_passes_its_seed_to_every_subsets_run(tmp_path, monkeypatch):
    """``pcnn-transfer --seed 5``: each subset's crossval run trains with seed 5 (mut42 ap11:
    seed 0 whatever was asked, recorded as 0 in the subsets' config.json and 5 in the
    transfer's)."""
    out = _transfer_five(tmp_path, "--seed", "5")
    assert json.loads((out / "config.json").read_text())["seed"] == 5
    sub = json.loads((out / "five" / "config.json").read_text())
    assert sub["seed"] == 5
    # mut52b P38: a resumed transfer resumes its subsets' runs (one cut short before its
    # summary goes on; a new run into its folder would be refused)
    import vsent.analyses.pcnn as pcnn_module

    resumed = []
    monkeypatch.setattr(pcnn_module, "crossval", lambda rc, sub, **kw: (
        resumed.append(kw["resume"]) or json.loads((sub / "summary.json").read_text())))
    table = json.loads((out / "transfer.json").read_text())
    (out / "transfer.json").unlink()
    assert main(["pcnn-transfer", "--model", str(tmp_path / "pre.pt"), "--data",
                 str(tmp_path / "tw"), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert resumed == [True]
    assert json.loads((out / "transfer.json").read_text())["rows"] == table["rows"]


def test_transfer_gives_each_subsets_run_its_eval_batch_size_and_skip_bad(tmp_path, monkeypatch):
    """The Python API's ``eval_batch_size`` and ``skip_bad`` reach every subset's crossval run
    (mut58a P85/P86: 64 and False whatever was asked; the CLI has no --eval-batch-size)."""
    import vsent.analyses.pcnn as pcnn_module

    data = build_twitter_like(tmp_path / "tw", n=30, n_four=25, n_five=20)
    ckpt = save_checkpoint(tmp_path / "pre.pt", create_model("smallcnn", widths=[8]))
    asked = []

    class Asked(Exception):
        pass

    def record(rc, sub, **kw):  # the subset's run config is all this test needs
        asked.append(rc)
        raise Asked

    monkeypatch.setattr(pcnn_module, "crossval", record)
    with pytest.raises(Asked):
        transfer(TransferConfig(model=str(ckpt), data=str(data), subsets=["five"],
                                eval_batch_size=5, skip_bad=True), tmp_path / "t",
                 progress=False)
    assert (asked[0].subset, asked[0].eval_batch_size, asked[0].skip_bad) == ("five", 5, True)


def test_transfer_oversample_evaluates_every_subset_with_ten_crops(tmp_path):
    """``pcnn-transfer --oversample``: each subset's crossval evaluates (and reports) the ten
    crops, the table's numbers are the ten-crop ones, as its ``evaluation`` field says (mut42
    ap13: the subsets ran centre-crop, the table said ten_crop over centre-crop numbers)."""
    out = _transfer_five(tmp_path, "--oversample")
    table = json.loads((out / "transfer.json").read_text())
    assert table["evaluation"] == "ten_crop"
    # and transfer.md says so (mut58a P61: "centre crop evaluation" over ten-crop numbers)
    assert "(campos folds, 10-crop evaluation)" in (out / "transfer.md").read_text()
    assert json.loads((out / "five" / "config.json").read_text())["oversample"] is True
    summary = json.loads((out / "five" / "summary.json").read_text())
    assert summary["evaluation"] == "ten_crop"
    row = table["rows"][0]
    for key in ("precision", "recall", "f1", "accuracy"):
        assert row[f"{key}_mean"] == pytest.approx(summary["ten_crop"][key]["mean"])


# --- extend43: a preset's keys reach the CLI's config --------------------------------------


@pytest.mark.parametrize("name", sorted(PCNN_PRESETS))
def test_every_pcnn_preset_reaches_the_cli_config_whole(name):
    """Every key of a `vsent pcnn` preset is one the CLI reads, and `--preset NAME` builds the
    config the preset says (a key the CLI did not read was dropped without a word)."""
    from vsent.cli import build_parser
    from vsent.cli.pcnn import PRESET_KEYS, progressive_config_from_args

    preset = PCNN_PRESETS[name]
    assert set(preset) <= set(PRESET_KEYS), set(preset) - set(PRESET_KEYS)
    cfg = progressive_config_from_args(build_parser().parse_args(["pcnn", "--preset", name]))
    want = ProgressiveConfig(data=cfg.data, **preset)
    for key in preset:
        got, expected = getattr(cfg, key), getattr(want, key)
        if key in ("train", "finetune"):
            got, expected = got.replace(seed=0, device="auto"), expected.replace(seed=0,
                                                                               device="auto")
        assert got == expected, key


def test_a_pcnn_presets_model_kwargs_reach_the_cli_config(monkeypatch):
    """A preset's model_kwargs build the preset's model, under --model-arg."""
    from vsent.cli import build_parser
    from vsent.cli import pcnn as C
    from vsent.cli.pcnn import progressive_config_from_args

    monkeypatch.setitem(C.PRESETS, "small32", {**C.PRESETS["quick"],
                                               "model_kwargs": {"image_size": 32}})

    def config(*options):
        return progressive_config_from_args(build_parser().parse_args(
            ["pcnn", "--preset", "small32", *options]))

    assert config().model_kwargs == {"image_size": 32}
    assert config("--model-arg", "image_size=48").model_kwargs == {"image_size": 48}
    assert config("--model", "pcnn").model_kwargs == {}


# mutation round 47 (mut47c): vsent.cli.pcnn mutants the suite missed


def test_pcnn_options_left_out_are_the_documented_defaults(tmp_path):
    """`vsent pcnn --data D` is the you2015 preset from random weights, and `vsent
    pcnn-transfer --model M` fine-tunes on five, four and three-agree with the campos folds
    beside the pcnn rows, with the recipe its help states (TRANSFER_TRAIN)."""
    from vsent.analyses.pcnn import TransferConfig
    from vsent.cli import build_parser
    from vsent.cli.pcnn import progressive_config_from_args, transfer_config_from_args
    from vsent.presets import TRANSFER_TRAIN

    data = str(tmp_path)
    cfg = progressive_config_from_args(build_parser().parse_args(["pcnn", "--data", data]))
    you = PCNN_PRESETS["you2015"]
    assert (cfg.preset, cfg.model, cfg.init) == ("you2015", you["model"], "random")
    assert cfg.train == you["train"].replace(seed=0, device="auto")
    assert cfg.finetune == you["finetune"].replace(seed=0, device="auto")
    assert (cfg.oversample, cfg.skip_bad, cfg.subset) == (False, False, "five")
    # mut56b P35: the Python API's config left to its defaults scores as the CLI's does
    assert ProgressiveConfig(data=data).eval_batch_size == cfg.eval_batch_size == 64
    model = str(tmp_path / "model.pt")
    args = build_parser().parse_args(["pcnn-transfer", "--model", model, "--data", data])
    assert transfer_config_from_args(args) == TransferConfig(
        model=model, data=data, subsets=["five", "four", "three"], folds="campos",
        train=TRANSFER_TRAIN.replace(seed=0, device="auto"), reference="pcnn")
    # the Python API's config left to its defaults is the CLI's (mut58a P80, P81: the
    # stratified folds, the cnn row)
    api = TransferConfig(model=model, data=data)
    assert (api.subsets, api.folds, api.reference, api.train) == (
        ["five", "four", "three"], "campos", "pcnn", TRANSFER_TRAIN)


def test_pcnn_options_reach_both_stages_as_documented(tmp_path):
    """--epochs and --lr set stage 1 only; --finetune-epochs and --finetune-lr stage 2; the
    other recipe options, --seed and --device both; the rest reach the config."""
    from vsent.cli import build_parser
    from vsent.cli.pcnn import progressive_config_from_args

    def config(*options: str):
        return progressive_config_from_args(build_parser().parse_args(
            ["pcnn", "--data", str(tmp_path), "--preset", "quick", *options]))

    quick = PCNN_PRESETS["quick"]
    cfg = config("--epochs", "3", "--lr", "0.01", "--batch-size", "4", "--seed", "7",
                 "--device", "cpu")
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (3, 0.01, 4)
    assert (cfg.finetune.epochs, cfg.finetune.lr, cfg.finetune.batch_size) == (
        quick["finetune"].epochs, quick["finetune"].lr, 4)
    assert {(t.seed, t.device) for t in (cfg.train, cfg.finetune)} == {(7, "cpu")}
    assert cfg.seed == 7
    cfg = config("--finetune-epochs", "2", "--finetune-lr", "0.002", "--model", "pcnn",
                 "--init", "imagenet", "--oversample", "--skip-bad")
    assert (cfg.finetune.epochs, cfg.finetune.lr) == (2, 0.002)
    assert (cfg.train.epochs, cfg.train.lr) == (quick["train"].epochs, quick["train"].lr)
    assert (cfg.model, cfg.init, cfg.oversample, cfg.skip_bad) == ("pcnn", "imagenet", True, True)


def test_pcnn_help_states_each_presets_epochs_and_stage_2_lr(capsys):
    """mut50b S03/S04: the quick preset's 15 + 5 epochs were documented nowhere (the help
    gave its stage-2 values only, typed by hand)."""
    from vsent.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["pcnn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("from scratch with SGD, 20 + 10 epochs (solver", "with AdamW, 15 + 5 epochs,",
                  "(default: the preset's, 10 for you2015, 5 for quick;",
                  "(default: the preset's, 1e-5 for you2015, 0.0002 for quick;"):
        assert words in text, words


def test_pcnn_transfer_options_reach_its_config(tmp_path):
    from vsent.cli import build_parser
    from vsent.cli.pcnn import transfer_config_from_args

    cfg = transfer_config_from_args(build_parser().parse_args([
        "pcnn-transfer", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path),
        "--subsets", "four,three", "--folds", "stratified", "--oversample", "--skip-bad",
        "--reference", "cnn", "--seed", "3", "--device", "cpu", "--epochs", "2"]))
    assert (cfg.subsets, cfg.folds, cfg.oversample, cfg.skip_bad, cfg.reference, cfg.seed) == (
        ["four", "three"], "stratified", True, True, "cnn", 3)
    assert (cfg.train.epochs, cfg.train.seed, cfg.train.device) == (2, 3, "cpu")


def test_pcnn_transfer_resume_with_its_model_continues_the_run_as_started(tmp_path,
                                                                          monkeypatch):
    """`--resume --out RUN --model M` names only where the run is and what it fine-tunes:
    the run continues with the recipe it was started with (subsets, epochs), not the
    defaults (which its opening would refuse as another run)."""
    import vsent.analyses.pcnn as P
    from vsent.presets import TRANSFER_TRAIN

    out = tmp_path / "run"
    out.mkdir()
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    started = P.TransferConfig(model=str(model), data=str(tmp_path), subsets=["four"],
                               train=TRANSFER_TRAIN.replace(epochs=2))
    (out / "config.json").write_text(json.dumps({"command": "pcnn-transfer",
                                                 **started.to_dict()}))
    (out / "versions.json").write_text("{}")
    seen: list = []
    monkeypatch.setattr(P, "transfer", lambda cfg, out, **kw: seen.append(cfg) or {"rows": []})
    assert main(["pcnn-transfer", "--resume", "--out", str(out), "--model", str(model)]) == 0
    assert (seen[0].subsets, seen[0].train.epochs, seen[0].model) == (["four"], 2, str(model))


def test_pcnn_transfer_without_model_is_one_line_naming_it(tmp_path, capsys):
    assert main(["pcnn-transfer", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --model is required (the checkpoint to fine-tune)\n")
    assert not (tmp_path / "o").exists()


# mutation round 48 (mut48b): vsent.analyses.pcnn mutants the suite missed


def test_removal_report_counts_the_ln2_boundary_as_always_kept_and_bins_each_histogram():
    """mut48b P12, P17, P19: |s1 - s2| = ln 2 exactly is "always kept" (p = 0 there); the
    histograms of removal.json have 20 bins over [0, 1], "p" of the probabilities, "diff" of
    |s1 - s2| and "diff_removed" of the removed images' |s1 - s2| only."""
    scores = np.array([[0.5, 0.5], [math.log(2), 0.0], [0.75, 0.25], [0.95, 0.05]])
    kept = np.array([False, True, True, True])
    r = removal_report(scores, kept, np.array([0, 1, 0, 1]))
    assert r["share_always_kept"] == 0.5  # |s1 - s2| = ln 2 and 0.9
    h = r["histogram"]
    np.testing.assert_array_equal(h["edges"], np.linspace(0, 1, 21))

    def counts(bins):
        return np.bincount(bins, minlength=20)

    # |s1 - s2| = 0, ln 2, 0.5, 0.9; p = 1, 0, 2 - e^0.5 = 0.35, 0
    np.testing.assert_array_equal(h["diff"], counts([0, 13, 10, 17]))
    np.testing.assert_array_equal(h["p"], counts([19, 0, 7, 0]))
    np.testing.assert_array_equal(h["diff_removed"], counts([0]))


def test_progressive_summary_markdown_gives_shares_in_percent():
    """mut48b P21, P33: summary.md's "always kept" and per-label shares are percentages; a
    label without images has a 0.0 % share, not a division by zero or 100 %."""
    from vsent.analyses.pcnn import _progressive_markdown

    summary = {"data": "d", "dataset": "D", "n_images": 4, "n_removed": 1, "n_kept": 3,
               "removed_share": 0.25, "stage2_skipped": False, "seeds": {"stage1": 0},
               "stage1_model": "s1.pt", "model": "m.pt"}
    report = {"expected_removed": 1.5, "share_always_kept": 0.5,
              "by_label": {"negative": {"n": 4, "removed": 1}, "positive": {"n": 0, "removed": 0}}}
    md = _progressive_markdown(summary, report)
    assert "- removed 1 images (25.0%), expected 1.5; kept 3\n" in md
    assert "- always kept (|s1 - s2| >= ln 2): 50.0% of images\n" in md
    assert "| negative | 4 | 1 | 25.0% |\n| positive | 0 | 0 | 0.0% |\n" in md
    assert "stage 2 skipped" not in md
    # each label's share is of its own images, not of all (left52 P32)
    report["by_label"]["positive"] = {"n": 6, "removed": 3}
    md = _progressive_markdown(summary, report)
    assert "| negative | 4 | 1 | 25.0% |\n| positive | 6 | 3 | 50.0% |\n" in md


def test_transfer_table_of_an_unknown_or_mixed_fold_count_says_k_fold():
    """mut48b P25, P26: rows that never recorded their fold count on a folds file, or rows of
    different counts, are "k-fold" (not "None-fold", not Campos et al.'s 5)."""
    from vsent.analyses.pcnn import PUBLISHED_SOURCE, transfer_markdown, transfer_row
    from vsent.metrics import summarize_folds

    def row(subset, k):
        return transfer_row(subset, summarize_folds([
            {"fold": i, "accuracy": 0.7, "precision": 0.7, "recall": 0.7, "f1": 0.7}
            for i in range(1, k + 1)]))

    table = {"reference": "pcnn", "architecture": "pcnn", "model": "m.pt",
             "folds": "my_folds.json", "evaluation": "centre", "published_source": PUBLISHED_SOURCE}
    old_rows = [{k: v for k, v in row("five", 3).items() if k != "n_folds"}]
    for rows in (old_rows, [row("five", 3), row("four", 2)]):
        md = transfer_markdown({**table, "rows": rows})
        assert "\nk-fold fine-tuning on Twitter I (my_folds.json folds" in md


def test_a_finished_transfer_missing_one_subsets_summary_returns_its_stored_table(tmp_path):
    """mut52b P40: the table is built again from the subsets' summaries only when every one is
    there; with one gone (of two), the stored table is returned, not a VsentError on it."""
    from vsent.analyses.pcnn import TransferConfig, _transfer_table_again
    from vsent.metrics import summarize_folds
    from vsent.runs import RunDir

    cfg = TransferConfig(model="m.pt", data="d", subsets=["five", "four"])
    summary = summarize_folds([{"fold": 1, "accuracy": 0.7, "precision": 0.7, "recall": 0.7,
                                "f1": 0.7}])
    with RunDir(tmp_path / "run") as run:
        run.write_json("transfer.json", {"rows": ["stored"]})
        (run.path / "five").mkdir()
        run.write_json("five/summary.json", summary)  # four's is gone
        assert _transfer_table_again(run, cfg) == {"rows": ["stored"]}


def test_a_finished_transfer_table_built_again_is_written_again(tmp_path):
    """mut56b P29: a finished transfer whose stored table differs from today's (published
    values, labels, columns) writes its table files again, so they say what it returns."""
    from vsent.analyses.pcnn import TransferConfig, _transfer_table_again
    from vsent.metrics import summarize_folds
    from vsent.runs import RunDir

    cfg = TransferConfig(model="m.pt", data="d", subsets=["five"])
    summary = summarize_folds([{"fold": 1, "accuracy": 0.7, "precision": 0.7, "recall": 0.7,
                                "f1": 0.7}])
    stored = {"model": "m.pt", "architecture": "pcnn", "folds": "campos",
              "evaluation": "center", "reference": "pcnn", "published_source": "old",
              "rows": [], "seconds": 1.0}
    with RunDir(tmp_path / "run") as run:
        run.write_json("transfer.json", stored)
        (run.path / "five").mkdir()
        run.write_json("five/summary.json", summary)
        table = _transfer_table_again(run, cfg)
        assert table["rows"][0]["subset"] == "five" and table != stored
        assert run.read_json("transfer.json") == table
        assert "| five | 0.700 +- " in (run.path / "transfer.md").read_text()


def test_transfer_config_refuses_a_subset_twice_and_a_folds_file_for_two_subsets():
    """mut48b P27, P28: a subset named twice would fine-tune it twice into one folder; a folds
    file holds one subset's folds, so two subsets with it are refused as three are."""
    from vsent.analyses.pcnn import TransferConfig

    with pytest.raises(VsentError, match=r"^--subsets 'five,five' names a subset twice$"):
        TransferConfig(model="m.pt", data="d", subsets=["five", "five"])
    for subsets in ([], ["five", "seven"]):  # none, or one that is no subset (left52 P33)
        with pytest.raises(VsentError, match=r"^--subsets '.*': choose among five, four, "
                                             r"three$"):
            TransferConfig(model="m.pt", data="d", subsets=subsets)
    with pytest.raises(VsentError, match=r"^a folds file \(f\.json\) holds the folds of one "
                                         r"subset; use --subsets five, four or three with it$"):
        TransferConfig(model="m.pt", data="d", subsets=["five", "four"], folds="f.json")
    assert TransferConfig(model="m.pt", data="d", subsets=["four"], folds="f.json").subsets == \
        ["four"]
    assert TransferConfig(model="m.pt", data="d", subsets=["five", "four"],
                          folds="stratified").folds == "stratified"


def test_checkpoint_spec_refuses_a_model_whose_outputs_are_not_two_whatever_its_classes(
        tmp_path, monkeypatch):
    """mut48b P30: a network of 2 classes whose output is another width (CaffeNet's
    fc7-4096 features) is not a 2-way classifier either."""
    import types

    import vsent.analyses.pcnn as P

    def fake(num_outputs, num_classes):
        model = types.SimpleNamespace(spec={"name": "caffenet", "num_classes": num_classes},
                                      info=types.SimpleNamespace(num_outputs=num_outputs))
        monkeypatch.setattr(P, "load_checkpoint", lambda path: (model, {"stage": "x"}))

    fake(4096, 2)
    with pytest.raises(VsentError, match=r"^m\.pt: a caffenet with 4096 outputs; domain "
                                         r"transfer needs a 2-way"):
        P.checkpoint_spec("m.pt")
    # mut56b P22: nor is one of two outputs built for another number of classes
    fake(2, 3)
    with pytest.raises(VsentError, match=r"^m\.pt: a caffenet with 2 outputs; domain "
                                         r"transfer needs a 2-way"):
        P.checkpoint_spec("m.pt")
    fake(2, 2)
    assert P.checkpoint_spec("m.pt") == ("caffenet", {}, {"stage": "x"})


def test_a_stage_1_model_that_recorded_no_data_hash_is_not_refused(tmp_path, monkeypatch):
    """mut48b P32: a stage-1 checkpoint made by a vsent that recorded no data_sha256 goes on
    (nothing to compare); one that recorded another hash is refused naming both."""
    import vsent.analyses.pcnn as P

    stage1 = tmp_path / "model.pt"
    stage1.write_bytes(b"x")
    now = "ab" * 32
    for meta in ({}, {"data_sha256": None}, {"data_sha256": now}):
        monkeypatch.setattr(P, "load_checkpoint", lambda path, meta=meta: (None, meta))
        P._check_stage1_data(stage1, "d", now)
    monkeypatch.setattr(P, "load_checkpoint", lambda path: (None, {"data_sha256": "cd" * 32}))
    with pytest.raises(VsentError, match=r"^d: its images or labels changed since .*model\.pt "
                                         r"was trained on them \(data_sha256 cdcdcdcdcdcd then, "
                                         r"abababababab now\)"):
        P._check_stage1_data(stage1, "d", now)
    P._check_stage1_data(tmp_path / "none.pt", "d", now)  # no stage-1 model: nothing to check


def test_progressive_refuses_a_model_of_three_outputs_before_its_run_folder(tmp_path):
    """mut48b P34: the removal rule reads two softmax scores; a 3-way network is refused (not
    only one of fewer outputs), before the run folder exists. mut56b P3: so is a 1-output one
    (refusing only more than two outputs let it through)."""
    for outputs in (3, 1):
        cfg = ProgressiveConfig(data=str(tmp_path), model_kwargs={"num_classes": outputs,
                                                                  "fc_widths": [8, 8, 8]})
        with pytest.raises(VsentError, match=r"^progressive training needs a 2-way model, pcnn "
                                             rf"has {outputs} outputs$"):
            progressive(cfg, tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()


def test_a_resume_after_stage_1_scores_with_the_stage_1_network(make_learnable, tmp_path):
    """mut48b P37: a run stopped after stage 1 resumes by loading stage1/model.pt, so the
    selection scores are that network's (as a run that never stopped made them), not those of
    a new untrained network."""
    data = make_learnable(n_pos=6, n_neg=6)
    quick = CROSSVAL_PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    cfg = ProgressiveConfig(data=str(data), model="smallcnn", model_kwargs={"widths": [8, 16]},
                            train=quick, finetune=quick, seed=0, preset=None)
    out = tmp_path / "run"
    progressive(cfg, out, progress=False)

    def scores():
        with (out / "removal.csv").open(newline="") as f:
            return [(r["name"], r["s1"], r["s2"]) for r in csv.DictReader(f)]

    first = scores()
    for name in ("removal.csv", "model.pt", "summary.json"):
        (out / name).unlink()
    progressive(cfg, out, resume=True, progress=False)
    assert scores() == first


def test_an_eval_batch_size_that_is_not_a_positive_integer_is_refused_when_built():
    """mut48b P4 and a fix: --eval-batch-size must be an integer >= 1 for both commands, as
    crossval's RunConfig says (ProgressiveConfig took 2.5, which stopped a run only when it
    scored the images after stage 1; TransferConfig took 0 and stopped after its run folder
    was made, when the first subset's run was set up)."""
    from vsent.analyses.pcnn import TransferConfig

    assert ProgressiveConfig(data="d", eval_batch_size=1).eval_batch_size == 1
    assert TransferConfig(model="m", data="d", eval_batch_size=1).eval_batch_size == 1
    for bad in (0, 2.5, "4", True):
        said = rf"^--eval-batch-size must be an integer >= 1, got {re.escape(repr(bad))}$"
        with pytest.raises(VsentError, match=said):
            ProgressiveConfig(data="d", eval_batch_size=bad)
        with pytest.raises(VsentError, match=said):
            TransferConfig(model="m", data="d", eval_batch_size=bad)
