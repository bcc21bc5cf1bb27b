"""Cross-validation runs end to end on a tiny Twitter-like dataset: files, resume, errors."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import interrupt_after, warning_lines
from vsent.cli import main
from vsent.crossval import PRESETS, RunConfig, crossval, open_run
from vsent.errors import VsentError
from vsent.runs import RECORDS


def _cfg(data, **kw) -> RunConfig:
    train = PRESETS["quick"]["train"].replace(epochs=2, batch_size=8, device="cpu")
    return RunConfig(data=str(data), model="smallcnn", init="random", train=train, **kw)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished 5-fold run shared by the tests that only read it."""
    from conftest import build_twitter_like

    tmp = tmp_path_factory.mktemp("cv")
    # its image cache goes to pytest's temp folder, not ~/.cache/vsent (tests38 #1)
    assert os.environ["VSENT_CACHE"].startswith(str(tmp_path_factory.getbasetemp()))
    data = build_twitter_like(tmp / "tw")
    out = tmp / "run"
    summary = crossval(_cfg(data), out, progress=False)
    return data, out, summary


def test_run_directory_holds_config_folds_models_predictions_and_summary(finished_run):
    data, out, summary = finished_run
    for name in ("config.json", "versions.json", "run.log", "folds.json", "predictions.csv",
                 "summary.json", "summary.md", "skipped.json", "curves.png"):
        assert (out / name).exists(), name
    stored = json.loads((out / "summary.json").read_text())
    assert set(stored["accuracy"]) == {"mean", "std"}
    assert [f["fold"] for f in stored["folds"]] == [1, 2, 3, 4, 5]
    assert stored["n_images"] == 35  # the twitter_like five subset has 36 items, one in no fold
    for k in range(1, 6):
        assert (out / f"fold{k}" / "model.pt").exists()
        assert not (out / f"fold{k}" / "train_state.pt").exists()
        history = json.loads((out / f"fold{k}" / "history.json").read_text())
        assert [h["epoch"] for h in history] == [1, 2]  # (the curves of curves.png)
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "smallcnn" and config["train"]["epochs"] == 2
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 35
    # every test image is predicted exactly once, by the fold that held it out
    run = open_run(out)
    tested = sorted(i for f in run.folds for i in f.test)
    assert len(tested) == len(set(tested)) == 35
    assert run.checkpoint(3).name == "model.pt"
    meta = torch.load(run.checkpoint(3), weights_only=False)["meta"]
    assert meta["subset"] == "five"
    # the data's fingerprint (pcnn-transfer recognises a copy of it by this)
    assert meta["data_sha256"] == json.loads((out / "data.json").read_text())["sha256"]
    assert "# smallcnn on Twitter five-agree, 5 folds" in (out / "summary.md").read_text()
    # the figure of the run (training and ROC curves), shown by the summary
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "](curves.png)" in (out / "summary.md").read_text()
    # the summary's accuracies are those of the predictions written (centre crop leads)
    with (out / "predictions.csv").open(newline="") as f:
        preds = list(csv.DictReader(f))
    fold_of = {run.dataset.names[i]: f.index for f in run.folds for i in f.test}
    assert {r["name"]: int(r["fold"]) for r in preds} == fold_of and len(preds) == 35
    per_fold = []
    for k in range(1, 6):
        rows = [r for r in preds if r["fold"] == str(k)]
        assert all(r["pred"] == str(int(float(r["prob_positive"]) > 0.5)) for r in rows)
        per_fold.append(np.mean([r["pred"] == r["label"] for r in rows]))
        assert stored["folds"][k - 1]["n"] == len(rows)
    assert [f["accuracy"] for f in stored["folds"]] == pytest.approx(per_fold)
    assert stored["accuracy"]["mean"] == pytest.approx(np.mean(per_fold))
    assert stored["accuracy"]["std"] == pytest.approx(np.std(per_fold))


def test_the_centre_crop_and_the_10_crops_keep_their_columns_and_the_centre_leads(
        tmp_path, monkeypatch, caplog):
    """In the shared run the two evaluations agree on every image, so which one fills each
    column and leads summary.json went unseen: here the centre crop says positive on every
    image and the 10 crops negative."""
    import vsent.crossval as cv
    from conftest import build_twitter_like
    from vsent.metrics import binary_metrics

    def evaluate(model, cfg, images, labels, paths, idx, *, oversample=False, **kw):
        p = np.tile([0.7, 0.3] if oversample else [0.2, 0.8], (len(idx), 1))
        return binary_metrics(labels[idx], p.argmax(axis=1)), p

    monkeypatch.setattr(cv, "evaluate_model", evaluate)
    data = build_twitter_like(tmp_path / "tw")
    cfg = _cfg(data)
    caplog.set_level("INFO", logger="vsent")
    summary = crossval(cfg.replace(train=cfg.train.replace(epochs=1)), tmp_path / "run",
                       progress=False)
    # the log lines name each evaluation's own accuracy
    c, t = summary["center"]["accuracy"], summary["ten_crop"]["accuracy"]
    assert (f"accuracy over 5 folds: centre crop {c['mean']:.3f} +- {c['std']:.3f}, 10-crop "
            f"{t['mean']:.3f} +- {t['std']:.3f}" in caplog.text)
    c1, t1 = summary["center"]["folds"][0], summary["ten_crop"]["folds"][0]
    assert (f"fold 1: accuracy {c1['accuracy']:.3f} (centre) {t1['accuracy']:.3f} (10-crop)"
            in caplog.text)
    with (tmp_path / "run" / "predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 35
    assert {(r["prob_positive"], r["pred"], r["prob_positive_10crop"], r["pred_10crop"])
            for r in rows} == {("0.8", "1", "0.3", "0")}
    share_positive = np.mean([r["label"] == "1" for r in rows])
    assert share_positive != 0.5  # the two evaluations' accuracies differ
    assert summary["evaluation"] == "center"
    assert summary["accuracy"]["mean"] == pytest.approx(share_positive)
    assert summary["center"]["accuracy"]["mean"] == pytest.approx(share_positive)
    assert summary["ten_crop"]["accuracy"]["mean"] == pytest.approx(1 - share_positive)


def test_resume_of_a_finished_run_returns_the_stored_summary(finished_run, tmp_path):
    # (the skipping of finished folds: test_resume_redoes_only_an_unfinished_fold)
    data, out, summary = finished_run
    before = {k: (out / f"fold{k}" / "model.pt").stat().st_mtime_ns for k in range(1, 6)}
    again = crossval(_cfg(data), out, resume=True, progress=False)
    after = {k: (out / f"fold{k}" / "model.pt").stat().st_mtime_ns for k in range(1, 6)}
    assert before == after
    assert again["accuracy"] == summary["accuracy"]


def test_a_finished_run_in_a_read_only_folder_is_shown(finished_run, tmp_path, capsys,
                                                        caplog, monkeypatch):
    """A finished run's folder the user cannot write to (shared read-only, another user's):
    its run.log cannot be opened; that was a PermissionError traceback, now the stored result
    (what the console says is not logged there)."""
    import shutil

    data, out, summary = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    log_before = (copy / "run.log").read_bytes()
    opened = logging.FileHandler._open

    def refused(handler):
        if Path(handler.baseFilename) == (copy / "run.log").absolute():
            raise PermissionError(13, "Permission denied", handler.baseFilename)
        return opened(handler)

    monkeypatch.setattr(logging.FileHandler, "_open", refused)
    capsys.readouterr()
    assert main(["crossval", "--resume", "--out", str(copy), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Logging error" not in captured.err
    assert f"{copy}: finished run with the same config: its results are read back" in caplog.text
    assert caplog.text.count("finished run") == 1  # said once (it was said by two layers)
    # and what it found, as when it ended (walk42: a finished `make run` showed no number)
    c, t = summary["center"]["accuracy"], summary["ten_crop"]["accuracy"]
    assert (f"accuracy over {len(summary['center']['folds'])} folds: centre crop "
            f"{c['mean']:.3f} +- {c['std']:.3f}, 10-crop {t['mean']:.3f} +- {t['std']:.3f}"
            in caplog.text)
    assert captured.out.strip().splitlines()[-1].startswith(f"results in {copy}/summary.md")
    assert (copy / "run.log").read_bytes() == log_before
    # a summary.json edited by hand: its result is shown from the file, not a traceback
    edited = json.loads((copy / "summary.json").read_text())
    # a console handler as the CLI's (pytest's own raises its format errors instead of saying
    # "--- Logging error ---" with a traceback, as logging's handlers do: review42 F4)
    console = logging.StreamHandler(sys.stderr)
    logging.getLogger("vsent").addHandler(console)
    try:
        for edit in ("missing", "not a number"):
            if edit == "missing":
                del edited["ten_crop"]
            else:
                edited["ten_crop"] = {**summary["ten_crop"],
                                      "accuracy": {"mean": "n/a", "std": 0.0}}
            (copy / "summary.json").write_text(json.dumps(edited))
            caplog.clear()
            assert main(["crossval", "--resume", "--out", str(copy), "--no-progress"]) == 0
            err = capsys.readouterr().err
            assert "accuracy over" not in caplog.text
            assert "Traceback" not in err and "Logging error" not in err, err
    finally:
        logging.getLogger("vsent").removeHandler(console)


def test_resume_redoes_only_an_unfinished_fold(finished_run, tmp_path, caplog):
    import shutil

    data, out, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "fold4" / "metrics.json").unlink()  # as if interrupted during fold 4,
    (copy / "summary.json").unlink()  # so the run has no summary yet
    stamps = {k: (copy / f"fold{k}" / "model.pt").stat().st_mtime_ns for k in range(1, 6)}
    caplog.set_level("INFO", logger="vsent")
    crossval(_cfg(data), copy, resume=True, progress=False)
    changed = [k for k in range(1, 6)
               if (copy / f"fold{k}" / "model.pt").stat().st_mtime_ns != stamps[k]]
    assert changed == [4]
    assert [k for k in range(1, 6)
            if f"fold {k}: already done, skipped" in caplog.text] == [1, 2, 3, 5]


def test_cli_resume_alone_continues_the_stored_config(finished_run, tmp_path, capsys):
    """`vsent crossval --resume --out DIR` needs no recipe options: the stored ones are used
    (without this it built the default campos2015 recipe and tried to download weights)."""
    import shutil

    data, out, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "fold2" / "metrics.json").unlink()
    (copy / "summary.json").unlink()
    config = (copy / "config.json").read_text()
    stamps = {k: (copy / f"fold{k}" / "model.pt").stat().st_mtime_ns for k in range(1, 6)}
    assert main(["crossval", "--resume", "--out", str(copy), "--no-progress"]) == 0
    changed = [k for k in range(1, 6)
               if (copy / f"fold{k}" / "model.pt").stat().st_mtime_ns != stamps[k]]
    assert changed == [2] and (copy / "summary.json").exists()
    assert (copy / "config.json").read_text() == config
    # the last line names where the results are, the figure among them
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"results in {copy}/summary.md (summary.json, curves.png, predictions.csv, "
        "fold<k>/model.pt)")
    # recipe options beside --resume must be the stored ones: another is refused by name
    (copy / "summary.json").unlink()
    assert main(["crossval", "--resume", "--out", str(copy), "--data", str(data),
                 "--preset", "quick", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {copy} was started with other " in err and "Traceback" not in err
    assert "train.epochs: stored 2, now 3" in err
    # one recipe option alone: named, not the default recipe's CaffeNet weights loaded
    assert main(["crossval", "--resume", "--out", str(copy), "--epochs", "20"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"vsent: error: --resume: {copy} was started with other "
                           "train.epochs (train.epochs: stored 2, now 20): give no recipe option "
                           "to continue it as it was started, or --overwrite to start again")
    # recipe options that are the stored ones are accepted
    assert main(["crossval", "--resume", "--out", str(copy), "--epochs", "2",
                 "--no-progress"]) == 0


def test_cli_resume_with_recipe_options_compares_as_the_run_directory_does(tmp_path):
    """resume31: recipe options given beside --resume were compared whole, so a stored
    fine-tuning recipe whose device differed (a GPU run, or 'auto' against --device cpu) and a
    train.seed recorded before it followed --seed were refused, although the run directory
    itself takes both as no difference."""
    from vsent.cli import build_parser
    from vsent.cli.crossval import run_config

    out = tmp_path / "run"
    out.mkdir()
    argv = ["crossval", "--preset", "quick", "--extra-train", "three", "--extra-schedule",
            "joint+finetune", "--seed", "3", "--out", str(out), "--device", "cpu"]
    cfg, _ = run_config(build_parser().parse_args(argv))
    stored = cfg.to_dict()
    stored["finetune"]["device"] = "cuda"  # the run was started on a GPU
    stored["train"]["seed"] = 0  # recorded before train.seed followed --seed
    (out / "config.json").write_text(json.dumps({"command": "crossval", **stored}))
    resumed, kept = run_config(build_parser().parse_args([*argv, "--resume"]))
    assert kept["finetune"]["device"] == "cuda" and resumed.seed == 3
    # a recipe difference inside the fine-tuning recipe is still one
    with pytest.raises(VsentError, match=r"was started with other finetune \(finetune.epochs: "
                                         r"stored \d+, now 7\)"):
        run_config(build_parser().parse_args([*argv, "--resume", "--finetune-epochs", "7"]))
    # a key the stored run never had (an older vsent's) is said so: it read "stored None"
    del stored["train"]["label_smoothing"]
    (out / "config.json").write_text(json.dumps({"command": "crossval", **stored}))
    with pytest.raises(VsentError, match=r"; train.label_smoothing: not in the stored config, "
                                         r"now 0.1\)"):
        run_config(build_parser().parse_args([*argv, "--resume", "--label-smoothing", "0.1"]))


def test_cli_resume_skip_bad_after_a_bad_image_keeps_the_runs_recipe(make_learnable, tmp_path,
                                                                     capsys):
    """A run stopped by a bad image (no result yet), then `--resume --skip-bad`, as its error
    says: refused as another skip_bad (review40 #2's crossval side). It is laid over the stored
    recipe; on a run with results it is compared when the run opens."""
    data = make_learnable(n_pos=10, n_neg=10)
    (data / "positive" / "zz_bad.jpg").write_bytes(b"junk")
    out = tmp_path / "run"
    argv = ["crossval", "--data", str(data), "--folds", "stratified", "--out", str(out)]
    assert main([*argv, "--preset", "quick", "--epochs", "1", "--no-progress"]) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main([*argv, "--resume", "--skip-bad", "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "quick" and config["skip_bad"] is True
    assert config["train"]["epochs"] == 1
    # the image left out is listed, with why
    skipped = json.loads((out / "skipped.json").read_text())
    assert [Path(name).name for name, _ in skipped] == ["zz_bad.jpg"] and skipped[0][1]


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_cli_resume_alone_of_a_folder_without_a_run_is_refused(tmp_path, capsys, command):
    """A misspelt --out with --resume alone started the default recipe (CaffeNet from ImageNet,
    hours) in a new folder (walk24 #5)."""
    typo = tmp_path / "runs" / "qtypo"
    where = ["--fold", "2"] if command == "finetune" else []  # selects work: no recipe
    for seed in ([], ["--seed", "1"]):  # (--seed 1 went past it: review40c #1)
        assert main([command, "--resume", "--out", str(typo), "--data", str(tmp_path), *where,
                     *seed]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"vsent: error: --resume: {typo} holds no run to continue (no "
                       "config.json); check --out, or give the recipe options (e.g. --preset "
                       "quick) to start one"]
    assert not typo.exists()
    # the default recipe typed out is a recipe given: it starts (here it stops at the data)
    assert main([command, "--preset", "campos2015", "--resume", "--out", str(typo), "--data",
                 str(tmp_path / "no-data")]) == 2
    err = capsys.readouterr().err
    assert "holds no run" not in err and "no-data" in err


def test_cli_finetune_resume_alone_keeps_the_stored_fold(finished_run, tmp_path, capsys):
    data, _, _ = finished_run
    out = tmp_path / "ft"
    argv = ["finetune", "--preset", "quick", "--data", str(data), "--fold", "2", "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"  # its training curves
    (out / "metrics.json").unlink()  # as if interrupted before the end
    assert main(["finetune", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert "fold 2 accuracy" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["center"] == first["center"]
    # finished, its model gone (a run directory copied without it): not "model written"
    (out / "model.pt").unlink()
    assert main(["finetune", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(
        f"finished earlier, but its model is gone from {out / 'model.pt'} (--overwrite trains "
        "it again); fold 2 accuracy")


def test_existing_run_is_never_redone_and_another_config_is_refused(finished_run, tmp_path):
    import shutil

    data, out, summary = finished_run
    stamps = {k: (out / f"fold{k}" / "model.pt").stat().st_mtime_ns for k in range(1, 6)}
    # finished, same config: the stored summary, nothing redone (with or without --resume)
    assert crossval(_cfg(data), out, progress=False) == json.loads(
        (out / "summary.json").read_text())
    assert stamps == {k: (out / f"fold{k}" / "model.pt").stat().st_mtime_ns for k in stamps}
    # another config is refused, naming the keys that differ, resume or not
    other = _cfg(data, folds="stratified")
    for resume in (False, True):
        with pytest.raises(VsentError, match="already holds a run") as e:
            crossval(other, out, resume=resume, progress=False)
        assert "folds: stored 'campos', now 'stratified'" in str(e.value)
        assert "train" not in str(e.value)
    # an unfinished run needs --resume
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "summary.json").unlink()
    with pytest.raises(VsentError, match="unfinished run: pass --resume"):
        crossval(_cfg(data), copy, progress=False)
    # --overwrite starts again with the new config
    crossval(other.replace(train=other.train.replace(epochs=1)), copy, overwrite=True,
             progress=False)
    stored = json.loads((copy / "config.json").read_text())
    assert stored["folds"] == "stratified" and stored["train"]["epochs"] == 1
    assert len(json.loads((copy / "fold1" / "history.json").read_text())) == 1


def test_finetune_interrupted_then_another_lr_is_refused_not_resumed(twitter_like, tmp_path,
                                                                     monkeypatch, capsys):
    """Issue 8: finetune --out X interrupted, then run again on X with --lr 0.5 silently
    resumed with the old lr while config.json said 0.5."""
    out = tmp_path / "ft"
    argv = ["finetune", "--data", str(twitter_like), "--out", str(out), "--preset", "quick",
            "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(argv) == 130
    assert (out / "train_state.pt").exists() and not (out / "model.pt").exists()
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        assert main([*argv, "--lr", "0.5", *extra]) == 2
        err = capsys.readouterr().err
        assert "train.lr: stored 0.002, now 0.5" in err and "Traceback" not in err
        assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.002
    assert main(argv) == 2  # same config, unfinished: needs --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(h["lr"] <= 0.002 for h in history)
    assert not (out / "train_state.pt").exists()
    stamp = (out / "model.pt").stat().st_mtime_ns
    assert main(argv) == 0  # finished: the stored result, not redone
    assert (out / "model.pt").stat().st_mtime_ns == stamp
    assert main([*argv, "--lr", "0.5", "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.5
    assert json.loads((out / "history.json").read_text())[0]["lr"] == pytest.approx(0.5)


def test_learnable_data_beats_chance_clearly(finished_run):
    _, _, summary = finished_run
    # twitter_like is 2:1 positive, so always-positive scores 0.67
    assert summary["accuracy"]["mean"] >= 0.85


def test_cli_exit_codes(finished_run, tmp_path, capsys):
    data, out, _ = finished_run
    assert main(["crossval", "--out", str(out), "--data", str(data), "--preset", "quick"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["crossval", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"),
                 "--preset", "quick"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["crossval", "--data", str(data), "--out", str(tmp_path / "r2"),
                 "--preset", "quick", "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse usage errors exit 2 too
        main(["crossval", "--subset", "seven"])
    assert e.value.code == 2


def test_missing_weights_stop_the_run_before_its_directory_exists(finished_run, tmp_path, capsys):
    data, _, _ = finished_run
    out = tmp_path / "r"
    weights = tmp_path / "absent.pt"
    assert main(["crossval", "--data", str(data), "--out", str(out), "--preset", "quick",
                 "--init", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "absent.pt" in err and "Traceback" not in err
    assert not out.exists()  # so the same command works as is once the weights are there


def test_a_folder_dataset_is_named_as_itself_not_as_twitter_five_agree(make_learnable, tmp_path):
    data = make_learnable(n_pos=10, n_neg=10)
    out = tmp_path / "run"
    crossval(_cfg(data, folds="stratified").replace(train=_cfg(data).train.replace(epochs=1)),
             out, progress=False)
    assert f"# smallcnn on {data.name}, 5 folds" in (out / "summary.md").read_text()
    # --subset's default is not the data's: a folder has no agreement subset
    assert torch.load(out / "fold1" / "model.pt", weights_only=False)["meta"]["subset"] is None


def test_a_fold_does_not_depend_on_the_rng_state_before_it(tmp_path, monkeypatch):
    import torch

    import vsent.crossval as C
    from conftest import build_twitter_like
    from vsent.config import fold_seed

    data = build_twitter_like(tmp_path / "tw", n_folds=2)  # (2 folds show it: tests38 #6)
    cfg = _cfg(data).train.replace(epochs=1)
    seeds = []  # mut51f C33: each fold's network starts from its own seed's weights
    real = C.fresh_model
    monkeypatch.setattr(C, "fresh_model", lambda c, seed: seeds.append(seed) or real(c, seed))
    losses = []
    for i, noise in enumerate((0, 7)):
        torch.rand(noise)  # whatever ran before (a cache build, another fold) used the RNG
        crossval(RunConfig(data=str(data), model="smallcnn", init="random", train=cfg),
                 tmp_path / f"run{i}", progress=False)
        losses.append([json.loads((tmp_path / f"run{i}" / f"fold{k}" / "history.json")
                                  .read_text())[0]["loss"] for k in (1, 2)])
    # fold 1 after other RNG use, fold 2 after another fold trained
    assert losses[0] == losses[1]
    assert seeds == [fold_seed(0, 1), fold_seed(0, 2)] * 2


def test_a_missing_data_path_stops_crossval_before_its_directory_exists(tmp_path):
    """A first try with a wrong --data must not leave a run directory that refuses the next
    try with the right data."""
    from vsent.config import RunConfig
    from vsent.crossval import crossval
    from vsent.errors import VsentError

    out = tmp_path / "run"
    cfg = RunConfig(data=str(tmp_path / "missing"), model="smallcnn", init="random")
    with pytest.raises(VsentError, match="missing: no such file or directory"):
        crossval(cfg, out, progress=False)
    assert not out.exists()
    # a CSV file of labels is data too: prepare checks that it exists, not that it is a folder
    from vsent.crossval import prepare

    # prepare's own check: finetune without --fold and --nproc's launcher read no folds
    # (crossval's split check above says it first) (mut58j X26)
    with pytest.raises(VsentError, match="missing: no such file or directory$"):
        prepare(cfg)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n")
    assert prepare(cfg.replace(data=str(labels)))[0].data == str(labels)


def test_a_subset_typo_is_refused_when_the_config_is_built(tmp_path):
    """The Python API as the CLI (whose --subset has choices): a typo is refused by RunConfig,
    not found after the run directory holds config.json."""
    with pytest.raises(VsentError, match=r"^--subset 'fiv': choose one of five, four, three$"):
        RunConfig(data=str(tmp_path), subset="fiv")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("eval_batch_size", 2.5, r"^--eval-batch-size must be an integer >= 1, got 2\.5$"),
    ("eval_batch_size", "4", r"^--eval-batch-size must be an integer >= 1, got '4'$"),
    ("oversample", "no", r"^oversample must be True or False, got 'no'$"),
    ("skip_bad", 1, r"^skip_bad must be True or False, got 1$"),
    ("data", 3, r"^--data 3 is not a path$"),
])
def test_run_config_refuses_values_of_another_kind_when_built(tmp_path, field, value, message):
    """api37 #4: eval_batch_size 2.5 failed after fold 1 had trained, oversample "no" led the
    summary with 10-crop, data 3 was pathlib's TypeError at the run."""
    with pytest.raises(VsentError, match=message):
        RunConfig(**{"data": str(tmp_path), field: value})
    assert RunConfig(data=tmp_path).data == str(tmp_path)  # a Path is stored as its text


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_a_folds_typo_stops_the_python_api_before_its_directory_exists(twitter_like, tmp_path,
                                                                       command):
    import vsent.crossval

    out = tmp_path / "run"
    cfg = RunConfig(data=str(twitter_like), folds="stratifed", model="smallcnn", init="random")
    with pytest.raises(VsentError, match=r"stratifed: no such file or directory \(--folds "
                                         r"expects campos, stratified or a folds JSON file\)$"):
        getattr(vsent.crossval, command)(cfg, out, progress=False)
    assert not out.exists()


def test_campos_folds_of_a_folder_or_csv_dataset_stop_before_the_run_directory(
        learnable_dataset, tmp_path, capsys, monkeypatch):
    """walk36 #2: the default split (campos) on a folder or CSV dataset was refused once the
    run directory held its records; the dataset's layout says it before. finetune without
    --fold reads no folds: not refused."""
    import vsent.crossval as cv
    from vsent.cli import main
    from vsent.data import load_dataset

    csv_file = tmp_path / "labels.csv"
    ds = load_dataset(learnable_dataset, validate=False)
    csv_file.write_text("path,label\n" + "".join(
        f"{p},{y}\n" for p, y in zip(ds.paths, ds.labels, strict=True)))
    for data, kind in ((learnable_dataset, "folder"), (csv_file, "csv")):
        said = (f"{data}: campos folds need the Twitter I layout (this is a {kind} dataset); "
                "pass --folds stratified, or --folds with a folds JSON file")
        for command, fold in (("crossval", None), ("finetune", 1)):
            out = tmp_path / f"{command}-{kind}"
            kw = {} if fold is None else {"fold": fold}
            with pytest.raises(VsentError, match=f"^{re.escape(said)}$"):
                getattr(cv, command)(_cfg(data), out, progress=False, **kw)
            assert not out.exists()
        assert main(["crossval", "--data", str(data), "--out", str(tmp_path / "cli"),
                     "--no-progress"]) == 2
        assert capsys.readouterr().err == f"vsent: error: {said}\n"
        assert not (tmp_path / "cli").exists()

    def no_cache(*a, **kw):  # (the check passed: the run would train now)
        raise KeyboardInterrupt

    monkeypatch.setattr(cv, "image_cache", no_cache)
    with pytest.raises(KeyboardInterrupt):
        cv.finetune(_cfg(learnable_dataset), tmp_path / "whole", progress=False)


def test_check_new_run_folds_checks_all_but_the_split_a_run_records(tmp_path):
    """crossval, finetune, --nproc's launcher and pcnn-transfer share it."""
    from vsent.crossval import check_new_run_folds

    check_new_run_folds("campos", tmp_path / "new", overwrite=False)
    with pytest.raises(VsentError, match="gone.json: no such file"):
        check_new_run_folds(str(tmp_path / "gone.json"), tmp_path / "new", overwrite=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"folds": str(tmp_path / "gone.json")}))
    check_new_run_folds(str(tmp_path / "gone.json"), run, overwrite=False)  # its own split
    with pytest.raises(VsentError, match="gone.json: no such file"):  # replaced: checked
        check_new_run_folds(str(tmp_path / "gone.json"), run, overwrite=True)
    with pytest.raises(VsentError, match="other.json: no such file"):  # another split
        check_new_run_folds(str(tmp_path / "other.json"), run, overwrite=False)
    # a config.json that is no JSON object records no split: checked (mut58j X27)
    (run / "config.json").write_text(json.dumps([str(tmp_path / "gone.json")]))
    with pytest.raises(VsentError, match="gone.json: no such file"):
        check_new_run_folds(str(tmp_path / "gone.json"), run, overwrite=False)


def test_a_run_reopens_and_resumes_after_its_folds_file_moved(twitter_like, tmp_path):
    """The run reads its own folds.json: the --folds file it was made from may move (review30
    #1: the check of a new run's --folds refused every reopening and resume)."""
    from vsent.data import load_dataset, make_folds, save_folds

    ds = load_dataset(twitter_like)
    split = save_folds(make_folds(ds, "stratified", seed=3), ds, tmp_path / "split.json")
    out = tmp_path / "run"
    cfg = RunConfig(data=str(twitter_like), folds=str(split), model="smallcnn", init="random",
                    train=PRESETS["quick"]["train"].replace(epochs=1, device="cpu"))
    first = crossval(cfg, out, progress=False)
    split.rename(tmp_path / "moved.json")
    assert crossval(cfg, out, progress=False) == first  # finished: its stored summary
    (out / "summary.json").unlink()
    (out / "fold2" / "metrics.json").unlink()  # as if stopped in fold 2
    again = crossval(cfg, out, resume=True, progress=False)
    assert again["accuracy"] == first["accuracy"]  # the same split, fold 2 trained again
    with pytest.raises(VsentError, match="split.json: no such file"):  # a new run checks it
        crossval(cfg, tmp_path / "new", progress=False)


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_a_run_stopped_by_bad_data_does_not_refuse_the_next_try(twitter_like, tmp_path, capsys,
                                                                command):
    """A bad image, label line or --folds file is named, and the run directory it leaves holds
    no result, so the next try (--skip-bad, or the fixed file) is not refused as another or
    unfinished run."""
    five = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    first = five.read_text().split()[0]
    (twitter_like / "images" / first).write_bytes(b"")
    out = tmp_path / "run"
    argv = [command, "--data", str(twitter_like), "--out", str(out), "--preset", "quick",
            "--epochs", "1", "--no-progress"]
    assert main(argv) == 2
    assert f"{first}: empty file" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} <= RECORDS
    good = five.read_text().splitlines()[1:]
    five.write_text("\n".join([*good, "nothing.jpg 1"]) + "\n")
    assert main(argv) == 2
    assert f"{five}:{len(good) + 1}: nothing.jpg: no such image" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} <= RECORDS
    if command == "crossval":
        # a --folds file that does not exist is refused before the run directory is opened
        # (folds.check_folds_spec): its config stays that of the last try
        config = (out / "config.json").read_bytes()
        assert main([*argv, "--skip-bad", "--folds", str(tmp_path / "none.json")]) == 2
        assert "none.json: no such file" in capsys.readouterr().err
        assert (out / "config.json").read_bytes() == config
        assert {p.name for p in out.iterdir()} <= RECORDS
        assert main([*argv, "--skip-bad"]) == 0  # the next try, with its fixed options
        assert json.loads((out / "config.json").read_text())["skip_bad"] is True
    else:  # finetune --skip-bad: the line naming no image is left out and listed
        assert main([*argv, "--skip-bad"]) == 0
        skipped = json.loads((out / "skipped.json").read_text())
        assert [Path(name).name for name, _ in skipped] == [f"{five.name}:{len(good) + 1}"]
        assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]


@pytest.mark.parametrize("train_mode", ["all", "head"])
def test_each_fold_trains_on_its_train_list_and_on_no_test_image(make_twitter_like, tmp_path,
                                                                  monkeypatch, train_mode):
    """The tests above check what each fold predicts, not what it trains on: a fold trained
    on train + test (a leak that only raises the accuracy) went unseen. Each training call is
    mapped back to file names (by pixels, or by feature rows for ``--train head``)."""
    import vsent.crossval as cv
    import vsent.frozen as frozen
    import vsent.train
    from test_crossval_extra import _lines, _Recorder
    from vsent.data import load_dataset

    root = make_twitter_like(n=16, n_four=16, n_five=16)  # small: head mode 10-crops them all
    if train_mode == "all":
        rec = _Recorder(monkeypatch, root)  # wraps vsent.crossval.fit (the --extra-train path)
        # frozen.train_model imports vsent.train.fit when called: route it through the wrapper
        monkeypatch.setattr(vsent.train, "fit", cv.fit)
        calls = rec.calls
    else:  # fit_head gets rows of the features of every image: match them to those rows
        names, full, calls = load_dataset(root, "five").names, [], []
        real_features, real_head = frozen.cached_features, frozen.fit_head

        def cached_features(*args, **kw):
            feats = real_features(*args, **kw)
            full.append(np.array(feats))
            return feats

        def fit_head(model, feats, labels, cfg, head="linear"):
            row_of = {row.tobytes(): i for i, row in enumerate(full[-1])}
            assert len(row_of) == len(names)  # distinct rows: each one names a single image
            calls.append({"names": [names[row_of[f.tobytes()]] for f in np.asarray(feats)],
                          "labels": np.asarray(labels).tolist()})
            return real_head(model, feats, labels, cfg, head)

        monkeypatch.setattr(frozen, "cached_features", cached_features)
        monkeypatch.setattr(frozen, "fit_head", fit_head)
    cfg = _cfg(root, train_mode=train_mode)
    crossval(cfg.replace(train=cfg.train.replace(epochs=1)), tmp_path / "run", progress=False)

    gt = dict(line.split() for line in
              (root / "ground_truth/twitter_five_agrees.txt").read_text().splitlines())
    assert len(calls) == 5
    for k, call in enumerate(calls, 1):
        fold = root / f"folds/campos/five_agrees/test{k}"
        train, test = _lines(fold / "train.txt"), _lines(fold / "test.txt")
        assert not set(call["names"]) & set(test), f"fold {k} trained on a test image"
        assert sorted(call["names"]) == sorted(train)  # each training image once, no other
        assert call["labels"] == [int(gt[n]) for n in call["names"]]


def test_finetune_fold_trains_on_its_train_list_and_on_no_test_image(make_twitter_like, tmp_path,
                                                                     monkeypatch):
    """The test above covers crossval's folds; ``vsent finetune --fold k`` picks its fold's
    images on its own path, and a network trained on every image (fold k's test images
    included, while ``n_train`` and the fused hand-crafted half stayed right) went unseen."""
    import vsent.crossval as cv
    import vsent.train
    from test_crossval_extra import _lines, _Recorder

    root = make_twitter_like(n=16, n_four=16, n_five=16)
    rec = _Recorder(monkeypatch, root)  # wraps vsent.crossval.fit
    monkeypatch.setattr(vsent.train, "fit", cv.fit)  # frozen.train_model's route to it
    cfg = _cfg(root)
    cv.finetune(cfg.replace(train=cfg.train.replace(epochs=1)), tmp_path / "ft", fold=2,
                progress=False)
    fold = root / "folds/campos/five_agrees/test2"
    train, test = _lines(fold / "train.txt"), _lines(fold / "test.txt")
    assert len(rec.calls) == 1
    assert not set(rec.calls[0]["names"]) & set(test), "fold 2 trained on a test image"
    assert sorted(rec.calls[0]["names"]) == sorted(train)  # each training image once


def _resume_refused_until_the_label_is_restored(data, out, argv, record, capsys) -> None:
    """Flip the first five-agree label of ``data``: ``--resume`` of the interrupted run at
    ``out`` is one line and exit 2; with the label restored the run continues and finishes."""
    gt = data / "ground_truth" / "twitter_five_agrees.txt"
    lines = gt.read_text().splitlines(keepends=True)
    name, label = lines[0].split()
    # the interrupted session's run.log says so (it went on to the next session's first line)
    last = (out / "run.log").read_text().splitlines()[-1]
    assert last.endswith(" WARNING interrupted: the run is kept; --resume continues it"), last
    gt.write_text("".join([f"{name} {1 - int(label)}\n", *lines[1:]]))
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{data}: its images or labels changed since {out} started (36 images, " \
           f"{record['n_positive']} positive then; 36 images, " in err and "Traceback" not in err
    last = (out / "run.log").read_text().splitlines()[-1]
    assert f" ERROR stopped: {data}: its images or labels changed since " in last, last
    # and versions.json's entry of that session says it did no work, not as if it ran
    session = json.loads((out / "versions.json").read_text())["resumed"][-1]
    assert session["stopped"].startswith(f"stopped: {data}: its images or labels changed")
    gt.write_text("".join(lines))  # restored: the run continues
    assert main([*argv, "--resume"]) == 0


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path, monkeypatch, capsys):
    """A label flipped while a run was interrupted: resuming would train the next folds on
    other labels than the first folds were tested on."""
    from conftest import build_twitter_like

    data = build_twitter_like(tmp_path / "tw", n_folds=2)  # (2 folds show it: tests38 #7)
    out = tmp_path / "cv"
    argv = ["crossval", "--data", str(data), "--out", str(out), "--preset", "quick",
            "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    with monkeypatch.context() as mp:
        interrupt_after(mp, 3)  # fold 1 done, fold 2 part way
        assert main(argv) == 130
    record = json.loads((out / "data.json").read_text())
    assert (record["n_images"], len(record["sha256"])) == (36, 64)
    _resume_refused_until_the_label_is_restored(data, out, argv, record, capsys)


def test_a_train_mode_the_model_lacks_stops_before_the_run_directory(make_learnable, tmp_path,
                                                                      capsys):
    data = make_learnable(n_pos=6, n_neg=6)
    out = tmp_path / "run"
    base = ["crossval", "--data", str(data), "--folds", "stratified", "--preset", "quick",
            "--epochs", "1", "--no-progress", "--out", str(out)]
    assert main([*base, "--train", "last-9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vsent: error: --train last-9: smallcnn has 4 blocks besides the "
                          "head (features.block1, ") and "\n" not in err
    assert not out.exists()  # so the corrected command runs as it is
    caffenet = [*base, "--model", "caffenet", "--arch", "fc7-4096", "--train", "head"]
    assert main(caffenet) == 2
    assert "--train head: caffenet has no separate head" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--train", "last-1"]) == 0
    assert json.loads((out / "summary.json").read_text())["training"] == "last 1 blocks + head"


def test_model_arg_num_classes_is_refused_in_one_line(tmp_path, capsys):
    """The task has two classes: a 3-way head would train with an empty class (its checkpoint
    naming two). CaffeNet's raw 4096/1000-wide tops come with --arch, not num_classes."""
    from vsent.cli import build_parser

    for command in (["crossval", "--preset", "quick"], ["pcnn"]):
        with pytest.raises(SystemExit) as e:
            main([*command, "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                  "--model-arg", "dropout=0.2", "--model-arg", "num_classes=3"])
        assert e.value.code == 2
        assert capsys.readouterr().err == (
            "vsent: error: --model-arg num_classes=3: the task sets num_classes (2: negative, "
            "positive); CaffeNet's raw tops (fc7-4096, fc8-1000) come with --arch\n")
    assert not (tmp_path / "o").exists()
    args = build_parser().parse_args(["crossval", "--model", "caffenet", "--arch", "fc7-4096",
                                      "--model-arg", "dropout=0.2", "--model-arg", "x=[1]"])
    assert args.model_arg == [("dropout", 0.2), ("x", [1])] and args.arch == "fc7-4096"
    assert build_parser().parse_args(["crossval"]).model_arg == []
    # the task's own value is no error
    assert build_parser().parse_args(["crossval", "--model-arg", "num_classes=2"]).model_arg \
        == [("num_classes", 2)]


# --------------------------------------------------------------------------------------------
# audit_core23: resume checks, damaged files, time, fold range, records


def _ft_argv(data, out, *extra):
    return ["finetune", "--data", str(data), "--out", str(out), "--preset", "quick",
            "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--no-progress", *extra]


def test_finetune_resume_refuses_data_that_changed_since_it_started(tmp_path, monkeypatch,
                                                                    capsys):
    """As crossval: finetune records its data (data.json, skipped.json) and a resume on
    flipped labels is refused instead of training on them."""
    from conftest import build_twitter_like

    data = build_twitter_like(tmp_path / "tw")
    out = tmp_path / "ft"
    argv = _ft_argv(data, out)
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(argv) == 130
    record = json.loads((out / "data.json").read_text())
    assert (record["n_images"], len(record["sha256"])) == (36, 64)
    assert json.loads((out / "skipped.json").read_text()) == []
    _resume_refused_until_the_label_is_restored(data, out, argv, record, capsys)


def test_finetune_fold_resumes_on_the_split_it_started_with(tmp_path, monkeypatch):
    """finetune --fold K read the fold lists again in every session (and wrote folds.json
    over): lists changed meanwhile swapped a test image it had trained on into its test
    fold. As crossval, a resumed run trains and tests on its folds.json."""
    from conftest import build_twitter_like

    data = build_twitter_like(tmp_path / "tw")
    out = tmp_path / "ft"
    argv = _ft_argv(data, out, "--fold", "2")
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(argv) == 130
    stored = (out / "folds.json").read_text()
    base = data / "folds" / "campos" / "five_agrees"

    def lines(k: int, part: str) -> list[str]:
        return (base / f"test{k}" / f"{part}.txt").read_text().splitlines()

    t2, t3, r2, r3 = lines(2, "test"), lines(3, "test"), lines(2, "train"), lines(3, "train")
    a, b = t2[0], t3[0]  # a: tested in fold 2; b: trained on in fold 2's first epoch
    for k, part, new_lines in ((2, "test", [b, *t2[1:]]), (3, "test", [a, *t3[1:]]),
                               (2, "train", [a if x == b else x for x in r2]),
                               (3, "train", [b if x == a else x for x in r3])):
        (base / f"test{k}" / f"{part}.txt").write_text("\n".join(new_lines) + "\n")
    import vsent.crossval as cv

    tested: set[str] = set()
    real = cv.evaluate_model

    def evaluate(model, cfg, images, labels, paths, idx, **kw):
        tested.update(Path(paths[i]).name for i in idx)
        return real(model, cfg, images, labels, paths, idx, **kw)

    monkeypatch.setattr(cv, "evaluate_model", evaluate)
    assert main([*argv, "--resume"]) == 0
    assert (out / "folds.json").read_text() == stored
    assert a.split()[0] in tested and b.split()[0] not in tested


def test_an_sgd_run_made_before_momentum_form_reopens_and_resumes_in_its_form(
        tmp_path, monkeypatch, capsys):
    """Its config.json has no momentum_form (torch's form, as --momentum-form torch writes
    it): the same command, whose default is now Caffe's form, was refused as a run "made
    with other train.momentum_form" (finished or not). It resumes, in torch's form."""
    from conftest import build_twitter_like, record_momentum_forms, resume_form_refusal

    data = build_twitter_like(tmp_path / "tw", n_folds=3)  # (3 folds show it: tests38 #7)
    out = tmp_path / "ft"
    argv = _ft_argv(data, out, "--optimizer", "sgd", "--lr", "0.01")
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main([*argv, "--momentum-form", "torch"]) == 130
    assert "momentum_form" not in json.loads((out / "config.json").read_text())["train"]
    used = record_momentum_forms(monkeypatch)
    capsys.readouterr()
    assert main(argv) == 2  # (unfinished: --resume continues it)
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume", "--momentum-form", "caffe"]) == 2  # given: not silently
    assert capsys.readouterr().err == resume_form_refusal(out, "torch", "caffe")
    assert used == []
    assert main([*argv, "--resume"]) == 0
    assert used == ["torch"]
    assert main(argv) == 0  # finished: its metrics
    assert "momentum_form" not in json.loads((out / "config.json").read_text())["train"]
    # from Python (as pcnn, pcnn-transfer and reproduce resume: with the caller's config)
    cv_out = tmp_path / "cv"
    sgd = _cfg(data).train.replace(optimizer="sgd", lr=0.01, epochs=1)
    with monkeypatch.context() as mp:
        interrupt_after(mp, 2)
        with pytest.raises(KeyboardInterrupt):
            crossval(_cfg(data).replace(train=sgd.replace(momentum_form="torch")), cv_out,
                     progress=False)
    used.clear()
    crossval(_cfg(data).replace(train=sgd), cv_out, resume=True, progress=False)
    assert set(used) == {"torch"} and len(used) == 1  # fold 3, as folds 1-2 trained
    assert "train trains on in the momentum form it started with (torch)" in (
        cv_out / "run.log").read_text()


@pytest.mark.parametrize("command", ["crossval", "pcnn"])
def test_a_file_name_that_is_not_utf8_goes_through_a_run(make_learnable, tmp_path, command):
    """Written as its bytes (RunDir.write_csv), the name was read back as strict UTF-8: crossval
    failed at the end of its fold, for good (the remedy it gave failed the same way), and
    pcnn's removal.csv raised a UnicodeEncodeError traceback."""
    import os

    data = make_learnable(n_pos=10, n_neg=10)
    odd = os.fsdecode(bytes(data / "positive") + b"/caf\xe9.jpg")
    os.rename(data / "positive" / "positive_000.jpg", odd)
    out = tmp_path / "run"
    argv = [command, "--data", str(data), "--out", str(out), "--preset", "quick",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    if command == "crossval":
        argv += ["--folds", "stratified"]
        assert main(argv) == 0
        rows = (out / "predictions.csv").read_bytes()
    else:
        assert main([*argv, "--finetune-epochs", "1"]) == 0
        rows = (out / "removal.csv").read_bytes()
    assert b"caf\xe9.jpg" in rows  # the name's own bytes


def test_an_lr_given_equal_to_the_presets_is_the_same_recipe(tmp_path, monkeypatch, capsys):
    """`--lr 0.002` beside `--preset quick` (whose lr that is) records preset None: the run
    was refused as one "made with other preset" by the same command without --lr, and the
    other way round with --resume. The lr is compared (train.lr), the preset's name not."""
    from conftest import build_twitter_like

    data = build_twitter_like(tmp_path / "tw")
    out = tmp_path / "ft"
    assert PRESETS["quick"]["train"].lr == 0.002
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(_ft_argv(data, out, "--lr", "0.002")) == 130
    assert json.loads((out / "config.json").read_text())["preset"] is None
    capsys.readouterr()
    assert main([*_ft_argv(data, out), "--resume"]) == 0, capsys.readouterr().err
    assert main(_ft_argv(data, out)) == 0  # finished: its metrics, not "other preset"
    assert main(["finetune", "--resume", "--out", str(out), "--lr", "0.002"]) == 0
    assert main(_ft_argv(data, out, "--lr", "0.003")) == 2  # another lr is another recipe
    assert "other train.lr (train.lr: stored 0.002, now 0.003" in capsys.readouterr().err
    # a preset name against another still counts: --preset quick on a strong run is refused,
    # naming the preset's other field as well (fusion: quick has none, strong's is stored)
    strong = tmp_path / "strong"
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(["finetune", "--data", str(data), "--out", str(strong), "--preset",
                     "strong", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                     "--no-progress"]) == 130
    capsys.readouterr()
    assert main(["finetune", "--resume", "--out", str(strong), "--preset", "quick",
                 "--epochs", "2", "--batch-size", "8"]) == 2
    err = capsys.readouterr().err
    assert "other preset, fusion (preset: stored 'strong', now 'quick'; fusion: stored " in err


def test_an_init_file_is_recorded_absolute_and_the_run_resumes_from_anywhere(
        tmp_path, monkeypatch, capsys):
    """--init init.pt was stored as typed: the run could not be resumed, nor a finished one
    opened, from another directory ("init.pt: no such file")."""
    from conftest import build_twitter_like
    from vsent.models import create_model
    from vsent.runs import config_diff

    data = build_twitter_like(tmp_path / "tw")
    (tmp_path / "w").mkdir()
    (tmp_path / "elsewhere").mkdir()
    torch.save(create_model("smallcnn").state_dict(), tmp_path / "w" / "init.pt")
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "w")
    argv = _ft_argv(data, out, "--init", "init.pt")
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(argv) == 130
    init = str(tmp_path / "w" / "init.pt")
    assert json.loads((out / "config.json").read_text())["init"] == init
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["finetune", "--resume", "--out", str(out), "--no-progress"]) == 0, (
        capsys.readouterr().err)
    # a run recorded before, with the name as typed, is the same init from its directory
    monkeypatch.chdir(tmp_path / "w")
    assert config_diff({"init": "init.pt"}, {"init": init}) == []
    assert config_diff({"init": "init.pt"}, {"init": "imagenet"}) != []
    assert config_diff({"init": "openai=init.pt"}, {"init": f"openai={init}"}) == []
    assert config_diff({"init": "openai=init.pt"}, {"init": f"laion={init}"}) != []
    record = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**record, "init": "init.pt"}))
    assert main(["finetune", "--resume", "--out", str(out), "--init", "init.pt",
                 "--no-progress"]) == 0, capsys.readouterr().err  # (compared with !=)


@pytest.mark.parametrize("command", ["crossval", "finetune"])
def test_resume_refuses_init_weights_that_changed_since_the_run_started(tmp_path, monkeypatch,
                                                                         capsys, command):
    """--init FILE was compared by its path: weights retrained to the same path started the
    remaining folds (or epochs) from other weights. Its SHA-256 is kept in init.json and in
    the checkpoints; a run recorded before keeps resuming."""
    from conftest import build_twitter_like
    from vsent.files import file_sha256
    from vsent.models import create_model

    data = build_twitter_like(tmp_path / "tw")
    weights = tmp_path / "init.pt"
    torch.manual_seed(1)
    torch.save(create_model("smallcnn").state_dict(), weights)
    sha = file_sha256(weights)
    out = tmp_path / "run"
    epochs = "1" if command == "crossval" else "2"  # stopped after fold 1 / epoch 1
    argv = [command, "--data", str(data), "--out", str(out), "--preset", "quick", "--init",
            str(weights), "--epochs", epochs, "--batch-size", "8", "--device", "cpu",
            "--no-progress"]
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        assert main(argv) == 130
    assert json.loads((out / "init.json").read_text()) == {"init": str(weights), "sha256": sha}
    torch.manual_seed(2)
    torch.save(create_model("smallcnn").state_dict(), weights)  # retrained, same path
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vsent: error: {weights}: the --init weights changed since {out} "
                          f"started (SHA-256 {sha[:12]} then, ") and "\n" not in err
    assert "pass --overwrite to start again" in err
    (out / "init.json").unlink()  # a run recorded before init.json: resumes (and records it)
    assert main([*argv, "--resume"]) == 0

    def recorded(model):
        return torch.load(out / model, weights_only=False)["meta"]["init_sha256"]

    if command == "crossval":  # fold 1 trained from the first weights, fold 2 from these
        assert (recorded("fold1/model.pt"), recorded("fold2/model.pt")) == (
            sha, file_sha256(weights))
    else:
        assert recorded("model.pt") == file_sha256(weights)


def test_finetune_interrupted_during_evaluation_keeps_its_trained_epochs(twitter_like, tmp_path,
                                                                        monkeypatch):
    """train_state.pt was removed before the test fold's evaluation: a Ctrl-C there threw the
    training away (65 epochs for campos2015). It goes once metrics.json is written."""
    import vsent.crossval as cv
    import vsent.train as train_mod

    cfg = _cfg(twitter_like).replace(train=_cfg(twitter_like).train.replace(epochs=3))
    out = tmp_path / "ft"

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(cv, "evaluate_model", interrupted)
        with pytest.raises(KeyboardInterrupt):
            cv.finetune(cfg, out, fold=1, progress=False)
    assert (out / "train_state.pt").exists() and not (out / "metrics.json").exists()
    real, trained = train_mod.train_one_epoch, []
    monkeypatch.setattr(train_mod, "train_one_epoch",
                        lambda *a, **kw: trained.append(1) or real(*a, **kw))
    result = cv.finetune(cfg, out, fold=1, resume=True, progress=False)
    assert trained == [] and "center" in result
    assert not (out / "train_state.pt").exists() and (out / "metrics.json").exists()


@pytest.mark.parametrize("n_folds, how", [(5, "loss nan"), (2, "weights hold nan/inf")])
def test_a_run_that_diverged_in_its_first_epoch_does_not_refuse_the_corrected_command(
        make_twitter_like, tmp_path, capsys, n_folds, how):
    """The error says to lower the lr; the lower lr was then refused as another config, because
    an empty fold1/ counted as a result. A fold's folder is made with its first file now. With
    2 folds the epoch's mean loss stays finite and its last step makes the weights NaN: that
    epoch's state was saved before the check, and refused the corrected command too."""
    out = tmp_path / "run"
    data = make_twitter_like(n_folds=n_folds)
    argv = ["crossval", "--data", str(data), "--out", str(out), "--preset", "quick",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--lr", "1e9"]) == 2
    err = capsys.readouterr().err
    assert f"fold 1: training diverged at epoch 1 ({how}" in err
    assert "lower the learning rate" in err
    assert {p.name for p in out.iterdir()} <= RECORDS
    assert main([*argv, "--lr", "1e-3"]) == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 1e-3
    assert (out / "summary.json").exists()


def _copy_without_summary(out, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "summary.json").unlink()
    return copy


@pytest.mark.parametrize("blocked", ["skipped.json", "fold2/train_state.pt"])
def test_a_file_the_run_cannot_write_is_one_line_naming_it(finished_run, tmp_path, capsys,
                                                            blocked):
    """A folder where a record goes, a file where a fold's folder goes: an IsADirectoryError /
    FileExistsError traceback; now one line naming the file, and the run is kept."""
    import shutil

    data, out, _ = finished_run
    copy = _copy_without_summary(out, tmp_path)
    if blocked == "skipped.json":
        (copy / "skipped.json").unlink()
        (copy / "skipped.json").mkdir()
    else:
        shutil.rmtree(copy / "fold2")
        (copy / "fold2").write_text("x")
    capsys.readouterr()
    assert main(["crossval", "--resume", "--out", str(copy), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vsent: error: {copy / blocked}: cannot be written (") and (
        "\n" not in err), err
    assert err.endswith("free that name or make room, then resume the run")


@pytest.mark.parametrize("damage, file, why", [
    ("metrics cut", "fold2/metrics.json", "unreadable ("),
    ("metrics without keys", "fold2/metrics.json", "not a fold's metrics (center and "
                                                   "ten_crop, each with accuracy, precision, "
                                                   "recall, f1)"),
    ("predictions missing", "fold2/predictions.csv", "unreadable ("),
    ("predictions cut", "fold2/predictions.csv", "1 rows for the 7 test images of fold 2"),
    # (cut inside a row: stitched in with empty cells, review38 #7)
    ("predictions cut in a row", "fold2/predictions.csv, line 3",
     "unreadable row (cut short: 1 of 8 fields)"),
    # (these two were stitched into the run's predictions.csv as blank rows, exit 0)
    ("predictions of other columns", "fold2/predictions.csv", "no column name, path, fold, "),
    ("predictions of fold 3", "fold2/predictions.csv", "not the test images of fold 2 (e.g. "),
    # the right count, one test image twice and another missing
    ("predictions with a row twice", "fold2/predictions.csv",
     "not the test images of fold 2 (e.g. "),
    ("state garbage", "fold2/train_state.pt", "not a training state this run can resume ("),
])
def test_a_damaged_fold_file_is_one_line_naming_it(finished_run, tmp_path, capsys, damage, file,
                                                   why):
    """A file cut by a full disk, copied in part or edited: one line naming it and what to
    delete, not a traceback (JSONDecodeError, KeyError, FileNotFoundError, RuntimeError)."""
    data, out, _ = finished_run
    copy = _copy_without_summary(out, tmp_path)
    fold2 = copy / "fold2"
    if damage == "metrics cut":
        (fold2 / "metrics.json").write_text('{"center": {"accur')
    elif damage == "metrics without keys":
        (fold2 / "metrics.json").write_text('{"center": {}}')
    elif damage == "predictions missing":
        (fold2 / "predictions.csv").unlink()
    elif damage == "predictions cut":
        lines = (fold2 / "predictions.csv").read_text().splitlines(keepends=True)
        (fold2 / "predictions.csv").write_text("".join(lines[:2]))
    elif damage == "predictions cut in a row":
        lines = (fold2 / "predictions.csv").read_text().splitlines(keepends=True)
        (fold2 / "predictions.csv").write_text("".join(lines[:2]) + lines[2][:20])
    elif damage == "predictions of other columns":
        (fold2 / "predictions.csv").write_text("a,b\n" + "1,2\n" * 7)
    elif damage == "predictions of fold 3":  # 7 rows too
        lines = (copy / "fold3" / "predictions.csv").read_text().splitlines(keepends=True)
        assert len(lines) == 8
        (fold2 / "predictions.csv").write_text("".join(lines))
    elif damage == "predictions with a row twice":
        lines = (fold2 / "predictions.csv").read_text().splitlines(keepends=True)
        (fold2 / "predictions.csv").write_text("".join([*lines[:-1], lines[1]]))
    else:
        (fold2 / "metrics.json").unlink()
        (fold2 / "train_state.pt").write_bytes(b"PK\x03\x04garbage")
    capsys.readouterr()
    assert main(["crossval", "--resume", "--out", str(copy), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vsent: error: {copy / file}: {why}") and "\n" not in err, err
    if damage == "state garbage":
        assert err.endswith("; delete it to start fold 2 again from its first epoch")
    else:
        assert err.endswith(f"; delete {fold2 / 'metrics.json'} to redo fold 2 "
                            "(crossval --resume)")


def _interrupt_fold3(copy, data, monkeypatch) -> RunConfig:
    """Fold 3 of the finished run ``copy`` undone, then trained again and stopped after its
    first epoch (its train_state.pt holds that epoch): the config to resume it with."""
    (copy / "fold3" / "metrics.json").unlink()
    cfg = _cfg(data)
    with monkeypatch.context() as mp:
        interrupt_after(mp, 1)
        with pytest.raises(KeyboardInterrupt):
            crossval(cfg, copy, resume=True, progress=False)
    return cfg


def test_summary_seconds_count_every_session(finished_run, tmp_path, monkeypatch):
    """summary.json's seconds counted the last session only (0.01 s for a run whose last
    session found every fold done). Each fold records its seconds, earlier sessions' epochs
    included; the summary adds them up with this session's own time."""
    data, out, summary = finished_run
    folds = [json.loads((out / f"fold{k}" / "metrics.json").read_text()) for k in range(1, 6)]
    assert all(f["seconds"] > 0 for f in folds)
    assert summary["seconds"] >= sum(f["seconds"] for f in folds)
    copy = _copy_without_summary(out, tmp_path)
    # folds of 1000 s each (earlier sessions'): this session, which finds them done, is far
    # shorter on any machine, so a session that counted them shows whatever the load
    for k in range(1, 6):
        file = copy / f"fold{k}" / "metrics.json"
        file.write_text(json.dumps({**json.loads(file.read_text()), "seconds": 1000.0}))
    again = crossval(_cfg(data), copy, resume=True, progress=False)
    # (abs: "seconds" and "session_seconds" read the clock one after the other; the default
    # relative tolerance, ~20 us here, failed on a loaded machine with no bug present)
    assert again["seconds"] == pytest.approx(5000.0 + again["session_seconds"], abs=0.05)
    assert 0 < again["session_seconds"] < 1000.0
    # a fold interrupted after its first epoch counts that epoch's seconds when it ends
    (copy / "summary.json").unlink()
    cfg = _interrupt_fold3(copy, data, monkeypatch)
    import vsent.train as train_mod

    first = train_mod.state_seconds(copy / "fold3" / "train_state.pt")
    assert first > 0
    seen: list[float] = []
    real = train_mod.train_one_epoch

    def timed(*a, **kw):
        stats = real(*a, **kw)
        seen.append(stats["seconds"])
        return stats

    monkeypatch.setattr(train_mod, "train_one_epoch", timed)
    crossval(cfg, copy, resume=True, progress=False)
    fold3 = json.loads((copy / "fold3" / "metrics.json").read_text())["seconds"]
    assert len(seen) == 1 and fold3 >= first + seen[0]


def test_finetune_fold_out_of_range_stops_before_its_run_directory(twitter_like, tmp_path,
                                                                   monkeypatch):
    """trial32 #13: --fold 9 was refused once the run directory held its records (replaced by
    the next command, but made for nothing); the split's fold numbers are known before."""
    import vsent.crossval as cv

    def no_cache(*a, **kw):
        raise AssertionError("the image cache was built for a fold that does not exist")

    monkeypatch.setattr(cv, "image_cache", no_cache)
    with pytest.raises(VsentError, match=r"^--fold 9: the split has folds 1\.\.5$"):
        cv.finetune(_cfg(twitter_like), tmp_path / "ft", fold=9, progress=False)
    assert not (tmp_path / "ft").exists()
    with pytest.raises(VsentError, match=r"^--fold 6: the split has folds 1\.\.5$"):
        cv.finetune(_cfg(twitter_like, folds="stratified"), tmp_path / "ft", fold=6,
                    progress=False)
    assert not (tmp_path / "ft").exists()
    # where the numbers are not known before the folds are made, they are checked then
    monkeypatch.setattr(cv, "fold_numbers", lambda *a, **k: None)
    with pytest.raises(VsentError, match=r"^--fold 9: the split has folds 1\.\.5$"):
        cv.finetune(_cfg(twitter_like), tmp_path / "ft", fold=9, progress=False)
    assert {p.name for p in (tmp_path / "ft").iterdir()} <= RECORDS  # replaced by the next
    monkeypatch.undo()
    monkeypatch.setattr(cv, "image_cache", no_cache)
    # a folds file numbering its folds otherwise: the numbers it has (audit_errors28 #3)
    from vsent.data import load_dataset
    from vsent.data.folds import make_folds, save_folds

    ds = load_dataset(twitter_like)
    path = save_folds(make_folds(ds, "stratified"), ds, tmp_path / "folds.json")
    doc = json.loads(path.read_text())
    for entry, k in zip(doc["folds"], (2, 3, 4, 5, 9), strict=True):
        entry["fold"] = k
    path.write_text(json.dumps(doc))
    with pytest.raises(VsentError, match=r"^--fold 1: the split has folds 2, 3, 4, 5, 9$"):
        cv.finetune(_cfg(twitter_like, folds=str(path)), tmp_path / "ft2", fold=1,
                    progress=False)
    assert not (tmp_path / "ft2").exists()
    for fold in (True, 2.0, "2"):  # from Python (review33 #6: True trained fold 1)
        with pytest.raises(VsentError, match=r"^--fold must be a fold number \(an integer "
                                             rf"from 1\), got {re.escape(repr(fold))}$"):
            cv.finetune(_cfg(twitter_like), tmp_path / "ft3", fold=fold, progress=False)
    assert not (tmp_path / "ft3").exists()


def test_the_module_docstring_names_every_file_of_a_run_directory(finished_run):
    import vsent.crossval as cv

    _, out, _ = finished_run
    names = {p.relative_to(out).as_posix().replace("fold1/", "fold<k>/")
             for p in out.rglob("*") if p.is_file() and p.parent.name in (out.name, "fold1")}
    missing = sorted(n for n in names if n not in cv.__doc__)
    assert not missing, missing


def test_train_seed_is_the_run_seed_and_runs_recorded_otherwise_still_resume(finished_run,
                                                                            tmp_path):
    """config.json's train.seed was whatever a Python-built TrainConfig held (7 below), though
    fold k trains with seed * 1000 + k: RunConfig sets it to seed. A run recorded with another
    train.seed resumes."""
    from vsent.config import TrainConfig

    cfg = RunConfig(data="d", seed=5, train=TrainConfig(seed=7))
    assert cfg.train.seed == 5 and cfg.to_dict()["train"]["seed"] == 5
    assert RunConfig.from_dict({"data": "d", "seed": 2, "train": {"seed": 0}}).train.seed == 2
    data, out, summary = finished_run
    copy = _copy_without_summary(out, tmp_path)
    (copy / "fold5" / "metrics.json").unlink()
    stored = json.loads((copy / "config.json").read_text())
    stored["train"]["seed"] = 7  # what such a run holds
    (copy / "config.json").write_text(json.dumps(stored))
    again = crossval(_cfg(data), copy, resume=True, progress=False)
    assert again["accuracy"] == summary["accuracy"]  # fold 5 again: the same seed trains
    assert json.loads((copy / "config.json").read_text())["train"]["seed"] == 7


def test_the_train_mode_is_parsed_in_one_place():
    import vsent.frozen as frozen
    from vsent.config import parse_train_mode

    assert frozen.parse_train_mode is parse_train_mode
    assert [parse_train_mode(m) for m in ("all", "head", "last-2")] == [None, 0, 2]
    for bad in ("last-0", "some"):
        with pytest.raises(VsentError, match=f"^--train '{bad}': use all, head or last-N "):
            RunConfig(data="d", train_mode=bad)


# --------------------------------------------------------------------------------------------
# review23 #8, #10: damaged records and fold seconds


def test_a_fold_seconds_that_is_no_number_counts_as_nothing(finished_run, tmp_path):
    """``float(done.get("seconds", 0.0))`` raised a TypeError / ValueError traceback for a
    null or a string (an edited metrics.json): such a fold counts 0 seconds."""
    data, out, _ = finished_run
    copy = _copy_without_summary(out, tmp_path)
    seconds = []
    for k, bad in ((2, None), (3, "12 s"), (4, True)):
        file = copy / f"fold{k}" / "metrics.json"
        done = json.loads(file.read_text())
        done["seconds"] = bad
        file.write_text(json.dumps(done))
    for k in (1, 5):
        seconds.append(json.loads((copy / f"fold{k}" / "metrics.json").read_text())["seconds"])
    again = crossval(_cfg(data), copy, resume=True, progress=False)
    # (abs: "seconds" and "session_seconds" read the clock one after the other)
    assert again["seconds"] == pytest.approx(sum(seconds) + again["session_seconds"], abs=0.05)


def test_damaged_init_and_extra_records_are_one_line(tmp_path):
    """init.json / extra.json that is a folder (OSError) or lacks its fields gave a traceback
    or "SHA-256 None then": one line naming the file, from one reader (provenance.read_record)."""
    import vsent.crossval as cv
    from vsent.runs import RunDir

    class Extra:  # what _check_same_extra reads of an extra training set
        subset, names, labels, skipped = "four", ["a", "b"], np.array([0, 1]), []

        def __len__(self) -> int:
            return 2

        def item_lines(self) -> list[bytes]:
            return [b"a\t0\t1", b"b\t1\t1"]

        def fingerprint(self, lines=None) -> dict:
            return {"n_images": 2, "n_positive": 1, "sha256": "ab"}

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    cfg = RunConfig(data=str(tmp_path), init=str(weights))
    extra = Extra()
    with RunDir(tmp_path / "run") as rd:
        for name, check in (("init.json", lambda: cv._check_same_init(cfg, rd)),
                            ("extra.json", lambda: cv._check_same_extra(cfg, rd, extra))):
            file = rd / name
            file.mkdir()
            with pytest.raises(VsentError, match=f"^{file}: not readable \\(\\[Errno 21\\] "):
                check()
            file.rmdir()
        (rd / "init.json").write_text('{"init": "w.pt"}')  # no sha256
        with pytest.raises(VsentError, match=f"^{rd / 'init.json'}: not the record of the "
                                             r"--init weights \(keys sha256\); restore it "):
            cv._check_same_init(cfg, rd)
        (rd / "init.json").write_text("{")
        with pytest.raises(VsentError, match=r"init.json: not readable JSON \(Expecting"):
            cv._check_same_init(cfg, rd)
        (rd / "init.json").unlink()
        assert cv._check_same_init(cfg, rd) == json.loads((rd / "init.json").read_text())[
            "sha256"]
        (rd / "extra.json").write_text(json.dumps({"fingerprint": {"sha256": "cd"}}))
        with pytest.raises(VsentError, match=f"^{rd / 'extra.json'}: not the record of an "
                                             "extra training set; restore it from a copy "):
            cv._check_same_extra(cfg, rd, extra)  # (a KeyError traceback when compared)
        (rd / "extra.json").unlink()
        cv._check_same_extra(cfg, rd, extra)  # a new record, then the same set again
        cv._check_same_extra(cfg, rd, extra)
        # data.json (crossval, finetune, pcnn) goes through the same reader
        (rd / "data.json").mkdir()
        with pytest.raises(VsentError, match=f"^{rd / 'data.json'}: not readable \\(\\[Errno "):
            cv.check_data_record(rd / "data.json", extra, cfg.data, "then", "fix it")


def test_the_file_of_a_tagged_clip_init_is_recorded_and_checked_on_resume(tmp_path):
    """``--init TAG=PATH`` (a CLIP tag's weights in a file) is no plain path: its file was not
    hashed, so a resumed run would not see it replaced."""
    import vsent.crossval as cv
    from vsent.models.registry import get_model_entry
    from vsent.runs import RunDir

    model = "clip/RN50"
    tag = get_model_entry(model).tags[0]
    weights = tmp_path / "rn50.pt"
    weights.write_bytes(b"weights")
    cfg = RunConfig(data=str(tmp_path), model=model, init=f"{tag}={weights}")
    with RunDir(tmp_path / "run") as rd:
        sha = cv._check_same_init(cfg, rd)
        assert sha is not None
        assert json.loads((rd / "init.json").read_text()) == {"init": f"{tag}={weights}",
                                                              "sha256": sha}
        weights.write_bytes(b"other weights")
        with pytest.raises(VsentError, match=r"the --init weights changed since"):
            cv._check_same_init(cfg, rd)
    # the --nproc launcher's check reads the file of TAG=PATH too (review24 #5)
    with pytest.raises(VsentError, match=re.escape(f"--init {tmp_path / 'none.pt'}: no such "
                                                   "file")):
        cv._check_init_exists(cfg.replace(init=f"{tag}={tmp_path / 'none.pt'}"))
    cv._check_init_exists(cfg)  # the file is there


def test_a_finished_finetune_run_moved_elsewhere_names_its_model_where_it_is(twitter_like,
                                                                             tmp_path, capsys,
                                                                             caplog):
    """audit_errors28 #6: the stored metrics.json named the model where the run was made.
    audit59: a copy without its model.pt says so (one line) and still shows the results."""
    import shutil

    out = tmp_path / "ft"
    assert main(_ft_argv(twitter_like, out, "--epochs", "1")) == 0
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    capsys.readouterr()
    with caplog.at_level("WARNING", logger="vsent"):
        assert main(_ft_argv(twitter_like, moved, "--epochs", "1")) == 0
        assert warning_lines(caplog) == []
        assert capsys.readouterr().out.startswith(f"model written to {moved / 'model.pt'}")
        (moved / "model.pt").unlink()
        assert main(_ft_argv(twitter_like, moved, "--epochs", "1")) == 0
    assert warning_lines(caplog) == [
        f"{moved}: finished run without model.pt (deleted, or copied without it?): its results "
        "are read back, but commands that load it need the run made again (--overwrite)"]


def test_a_fold_model_copied_out_of_its_run_keeps_its_command_and_held_out_count(
        finished_run, make_twitter_like, tmp_path):
    """A copied model.pt's card said "not recorded" for the command and the held-out images
    (only the run folder held them); the checkpoint records both now."""
    import shutil

    import vsent.crossval as cv
    from test_crossval_extra import _lines
    from vsent.models.card import card_markdown, model_card

    data, out, _ = finished_run
    n_test = len(open_run(out).folds[2].test)
    shutil.copy(out / "fold3" / "model.pt", tmp_path / "copied.pt")
    t = model_card(tmp_path / "copied.pt")["training"]
    assert (t["command"], t["fold"], t["n_test"]) == ("crossval", 3, n_test)
    text = card_markdown(model_card(tmp_path / "copied.pt"))
    assert "- Command: crossval" in text and f"- Held-out images: {n_test}\n" in text
    # finetune --fold K holds fold K's test images out; on every image, none
    root = make_twitter_like(n=16, n_four=16, n_five=16)
    cfg = _cfg(root)
    cfg = cfg.replace(train=cfg.train.replace(epochs=1))
    for fold, held_out in ((2, len(_lines(root / "folds/campos/five_agrees/test2/test.txt"))),
                           (None, 0)):
        ft = tmp_path / f"ft{fold}"
        cv.finetune(cfg, ft, fold=fold, progress=False)
        shutil.copy(ft / "model.pt", tmp_path / f"ft{fold}.pt")
        t = model_card(tmp_path / f"ft{fold}.pt")["training"]
        assert (t["command"], t["fold"], t["n_test"]) == ("finetune", fold, held_out)


def test_finetune_init_file_says_what_it_loaded_once(twitter_like, tmp_path, caplog):
    """session 36: the prototype `prepare` builds to check --init loaded the file too, and
    "loaded 26 of 26 model tensors" was said twice for one model."""
    from vsent.models import create_model

    weights = tmp_path / "init.pt"
    torch.save(create_model("smallcnn").state_dict(), weights)
    with caplog.at_level(logging.INFO, logger="vsent"):
        assert main(["finetune", "--data", str(twitter_like), "--out", str(tmp_path / "ft"),
                     "--preset", "quick", "--init", str(weights), "--epochs", "1",
                     "--batch-size", "8", "--device", "cpu", "--no-progress"]) == 0
    said = [r.getMessage() for r in caplog.records if "model tensors" in r.getMessage()]
    assert said == [f"{weights}: loaded 26 of 26 model tensors"]


def test_init_trained_on_the_same_images_is_refused(twitter_like, tmp_path, capsys):
    """robust38 #1: crossval --init / finetune --fold K --init took a vsent checkpoint trained
    on the data they test on (a finetune of all of it, a fold model of the same run): every
    test fold was scored by weights that had seen it, silently. pcnn-transfer refused it."""
    import shutil

    from vsent.data.datasets import load_dataset
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    model = create_model("smallcnn")
    own = save_checkpoint(tmp_path / "own.pt", model, command="finetune",
                          data=str(twitter_like), subset="five", fold=None)
    base = ["--data", str(twitter_like), "--preset", "quick", "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--no-progress"]
    for argv in (["crossval", *base], ["finetune", *base, "--fold", "2"],
                 ["crossval", *base, "--nproc", "2"]):
        out = tmp_path / f"{argv[0]}{len(argv)}"
        assert main([*argv, "--init", str(own), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{own} was trained on {twitter_like}, the data it would be fine-tuned and " \
               f"tested on: its test folds hold its training images. --init needs weights " \
               f"trained on other data" in err, argv
        assert not out.exists()
    # a copy of the data elsewhere is the same data (its fingerprint)
    copy = shutil.copytree(twitter_like, tmp_path / "copy")
    sha = load_dataset(copy, "five", validate=False).fingerprint()["sha256"]
    on_copy = save_checkpoint(tmp_path / "copy.pt", model, data=str(copy), subset="five",
                              data_sha256=sha)
    assert main(["crossval", *base, "--init", str(on_copy), "--out", str(tmp_path / "c")]) == 2
    assert f"(a copy of {twitter_like}: same images and labels)" in capsys.readouterr().err
    # finetune without --fold tests nothing: the same weights are a start like any other
    assert main(["finetune", *base, "--init", str(own), "--out", str(tmp_path / "ft")]) == 0
    # and weights trained on other data start a crossval
    other = save_checkpoint(tmp_path / "other.pt", model, data=str(tmp_path / "flickr"))
    assert main(["crossval", *base, "--init", str(other),
                 "--out", str(tmp_path / "cv")]) == 0


def test_cli_resume_on_another_commands_run_says_so(tmp_path, capsys):
    """review40b #3: `crossval --resume --out <a pcnn run>` compared the pcnn config key by
    key ("--finetune-epochs/--finetune-lr apply to ..." with neither typed), and a user's own
    config.json was "unknown run config keys: foo"."""
    pcnn = tmp_path / "pcnn"
    pcnn.mkdir()
    (pcnn / "config.json").write_text(json.dumps({"command": "pcnn", "data": "d",
                                                  "finetune": {"epochs": 1}}))
    (pcnn / "versions.json").write_text("{}")
    (pcnn / "stage1").mkdir()
    (pcnn / "stage1" / "history.json").write_text("[]")  # (a run with no result is replaced)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"foo": 1}')
    fresh = tmp_path / "fresh"  # a pcnn run stopped before its first result (a bad image)
    fresh.mkdir()
    for name in ("config.json", "versions.json"):
        (fresh / name).write_text((pcnn / name).read_text())
    notjson = tmp_path / "notjson"
    notjson.mkdir()
    (notjson / "config.json").write_text("not json")
    for command, out, said in (("crossval", fresh, f"{fresh} holds a pcnn run, not a crossval "
                                                   "run: choose another --out"),  # (review40c)
                               ("crossval", notjson, f"{notjson} holds a config.json that is "
                                                     "not a vsent run's"),
                               ("crossval", pcnn, f"{pcnn} holds a pcnn run, not a crossval "
                                                  "run: choose another --out"),
                               ("finetune", pcnn, f"{pcnn} holds a pcnn run, not a finetune "
                                                  "run: choose another --out"),
                               ("crossval", mine, f"{mine} holds a config.json that is not a "
                                                  "vsent run's")):
        assert main([command, "--resume", "--out", str(out), "--data", str(tmp_path)]) == 2
        assert capsys.readouterr().err.startswith(f"vsent: error: {said}")


def test_cli_resume_with_an_option_that_needs_a_stored_one_says_how_to_continue(tmp_path,
                                                                                capsys):
    """review40b #11: `crossval --resume --out <a --train head run> --head logistic` is read
    as options on their own ("--head logistic applies to --train head"), which is false of
    the run: the refusal says so, and what continues it. Another command's run, or none,
    keeps the plain error."""
    run = tmp_path / "head"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"command": "crossval", "train_mode": "head"}))
    argv = ["/venv/bin/vsent", "crossval", "--train", "head", "--out", str(run)]
    (run / "versions.json").write_text(json.dumps({"argv": argv}))
    assert main(["crossval", "--resume", "--out", str(run), "--head", "logistic"]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --head logistic applies to --train head; with --resume, the options "
        f"given are read on their own, not with the run's: `--resume --out {run}` alone "
        "continues it as it was started (it was started as `vsent crossval --train head "
        f"--out {run}`)\n")
    # a finished run: shown again, not continued
    (run / "summary.json").write_text("{}")
    assert main(["crossval", "--resume", "--out", str(run), "--head", "logistic"]) == 2
    assert f"`--resume --out {run}` alone shows it again (it was started as " in \
        capsys.readouterr().err
    # an error that needs no other option: said alone (review41 F4)
    assert main(["crossval", "--resume", "--out", str(run), "--epochs", "0"]) == 2
    assert "read on their own" not in capsys.readouterr().err
    # nor one the run's options would not mend: --head on a run that trains everything
    # (review41b #3)
    (run / "config.json").write_text(json.dumps({"command": "crossval"}))
    assert main(["crossval", "--resume", "--out", str(run), "--head", "logistic"]) == 2
    assert capsys.readouterr().err == ("vsent: error: --head logistic applies to --train "
                                       "head\n")
    (run / "config.json").write_text(json.dumps({"command": "pcnn"}))
    for out in (run, tmp_path / "none"):
        assert main(["crossval", "--resume", "--out", str(out), "--head", "logistic"]) == 2
        assert capsys.readouterr().err == ("vsent: error: --head logistic applies to --train "
                                           "head\n")


def test_cli_resume_uses_a_typed_data_even_at_the_defaults_path(tmp_path, monkeypatch):
    """review40c #9: a --data typed that named the default's folder ($VSENT_DATA, set to where
    the data moved) was dropped for the stored path, which was gone: "no such file"."""
    from vsent.cli import build_parser
    from vsent.cli.crossval import run_config

    out = tmp_path / "run"
    out.mkdir()
    argv = ["crossval", "--preset", "quick", "--data", str(tmp_path / "old"), "--out", str(out)]
    cfg, _ = run_config(build_parser().parse_args(argv))
    (out / "config.json").write_text(json.dumps({"command": "crossval", **cfg.to_dict()}))
    (out / "versions.json").write_text("{}")
    monkeypatch.setenv("VSENT_DATA", str(tmp_path / "new"))
    for typed_data, want in ((["--data", str(tmp_path / "new")], tmp_path / "new"),
                             ([], tmp_path / "old")):
        args = build_parser().parse_args(["crossval", "--resume", "--out", str(out),
                                          *typed_data])
        args.argv = ["--resume", "--out", str(out), *typed_data]  # (as vsent.cli.main sets it)
        assert run_config(args)[0].data == str(want)


@pytest.mark.parametrize("command", ["crossval", "finetune --fold 1", "check_launch"])
def test_a_finished_run_is_shown_without_reading_its_inits_data_again(command, twitter_like,
                                                                      tmp_path, monkeypatch):
    """review43 #2, #3: the --init leakage check reads the weights' training data (slow, and
    it may be gone since); a finished run that is only shown skips it, in crossval, finetune
    --fold and --nproc's launch check alike. With --overwrite it runs (the run is made
    again), before the run directory is touched."""
    import vsent.crossval as C

    cfg = _cfg(twitter_like).replace(train=_cfg(twitter_like).train.replace(epochs=1))
    out = tmp_path / "run"
    make = C.finetune if command.startswith("finetune") else C.crossval
    kw = {"fold": 1} if make is C.finetune else {}
    make(cfg, out, progress=False, **kw)
    checked: list[str] = []

    def stop(cfg):
        checked.append(cfg.init)
        raise VsentError("stopped by the test")

    monkeypatch.setattr(C, "_check_init_data", stop)
    if command == "check_launch":
        C.check_launch(cfg, out, command="crossval", nproc=1)
        with pytest.raises(VsentError, match="stopped by the test"):
            C.check_launch(cfg, out, command="crossval", nproc=1, overwrite=True)
    else:
        make(cfg, out, progress=False, **kw)  # shown: no check
        with pytest.raises(VsentError, match="stopped by the test"):
            make(cfg, out, progress=False, overwrite=True, **kw)
        done = "summary.json" if make is C.crossval else "metrics.json"
        assert (out / done).is_file()  # refused before --overwrite emptied it
    assert checked == ["random"]


# mutation round 45 (mut45d): vsent.crossval mutants the suite missed


def test_finetune_fold_is_checked_against_the_stored_split_unless_overwritten(twitter_like,
                                                                             tmp_path):
    """check_fold_number: a run already in ``out`` keeps its folds.json (its numbers decide
    --fold); --overwrite replaces the run, so the split given now decides."""
    from vsent.crossval import check_fold_number

    out = tmp_path / "ft"
    out.mkdir()
    (out / "folds.json").write_text(json.dumps({"folds": [{"fold": 7}, {"fold": 8}]}))
    cfg = _cfg(twitter_like, folds="stratified")  # folds 1..5
    check_fold_number(cfg, out, 7, overwrite=False)  # the stored split's
    with pytest.raises(VsentError, match=r"^--fold 1: the split has folds 7, 8$"):
        check_fold_number(cfg, out, 1, overwrite=False)
    check_fold_number(cfg, out, 1, overwrite=True)  # the split given now
    with pytest.raises(VsentError, match=r"^--fold 7: the split has folds 1\.\.5$"):
        check_fold_number(cfg, out, 7, overwrite=True)


def test_check_launch_refuses_campos_folds_of_a_folder_for_finetune_fold_only(
        learnable_dataset, tmp_path):
    """The --nproc launcher says what finetune --fold would: the campos split of a folder
    dataset is no split; finetune without --fold reads no folds and is not refused."""
    from vsent.crossval import check_launch

    cfg = _cfg(learnable_dataset)  # folds: campos (the default)
    with pytest.raises(VsentError, match="campos folds need the Twitter I layout"):
        check_launch(cfg, tmp_path / "ft", command="finetune", nproc=1, fold=1)
    check_launch(cfg, tmp_path / "whole", command="finetune", nproc=1)
    assert not (tmp_path / "ft").exists() and not (tmp_path / "whole").exists()


def test_check_launch_refuses_imagenet_weights_an_architecture_lacks(twitter_like, tmp_path):
    """``--init imagenet`` of a model without ImageNet weights is said by the launcher,
    before any rank starts or the run directory exists."""
    from vsent.crossval import check_launch

    with pytest.raises(VsentError, match="^smallcnn has no ImageNet weights"):
        check_launch(_cfg(twitter_like).replace(init="imagenet"), tmp_path / "run",
                     command="crossval", nproc=1)
    assert not (tmp_path / "run").exists()
    # mut51f C48: the fine-tuning stage's recipe is checked too (its batches split over N)
    from vsent.config import RunConfig, TrainConfig

    staged = RunConfig(data=str(twitter_like), extra_train="four",
                       extra_schedule="progressive", finetune=TrainConfig(batch_size=2))
    with pytest.raises(VsentError, match="^batches of 2 cannot be split over 4 processes"):
        check_launch(staged, tmp_path / "run", command="crossval", nproc=4)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("how", ["init_checked", "launched", "neither"])
def test_the_init_data_check_is_skipped_where_it_was_done_before(twitter_like, tmp_path,
                                                                 monkeypatch, how):
    """crossval(init_checked=True) (pcnn-transfer checked every subset) and a rank started by
    the --nproc launcher (check_launch did it) do not check --init's data again."""
    import vsent.crossval as cv
    from vsent.errors import LAUNCHED_BY_VSENT

    calls: list[str] = []
    monkeypatch.setattr(cv, "_check_init_data", lambda cfg: calls.append(cfg.init))
    monkeypatch.delenv(LAUNCHED_BY_VSENT, raising=False)
    if how == "launched":
        monkeypatch.setenv(LAUNCHED_BY_VSENT, "1")
    cv._preflight(_cfg(twitter_like, folds="stratified"), tmp_path / "run", command="crossval",
                  init_checked=how == "init_checked")
    assert calls == ([] if how != "neither" else ["random"])


def test_finetune_fusion_blocks_a_model_cannot_carry_stop_before_the_run(twitter_like,
                                                                         tmp_path):
    """finetune --fusion saves its blocks in model.pt: cues (crossval's to measure) is refused
    before the run directory exists; crossval with cues passes that check."""
    import vsent.crossval as cv

    cfg = _cfg(twitter_like, folds="stratified", fusion="gch+cues")
    with pytest.raises(VsentError, match="a saved model can carry the blocks"):
        cv.finetune(cfg, tmp_path / "ft", progress=False)
    assert not (tmp_path / "ft").exists()
    cv._check_prepared(cfg, tmp_path / "cv", command="crossval", fold=None, overwrite=False)


def test_a_finished_folds_metrics_need_both_crops_and_take_any_number(tmp_path):
    """_finished_fold: metrics.json without its ten_crop scores is damaged (said, not a
    KeyError later); whole numbers (an accuracy of 1 written by hand or another tool) are
    numbers."""
    from vsent.crossval import _finished_fold
    from vsent.data.folds import Fold
    from vsent.metrics import SCALARS

    fold = Fold(2, np.arange(3), np.arange(3, 5))
    scores = dict.fromkeys(SCALARS, 1)
    (tmp_path / "metrics.json").write_text(json.dumps({"center": scores}))
    with pytest.raises(VsentError, match=r"metrics.json: not a fold's metrics .*; delete .* "
                                         r"to redo fold 2"):
        _finished_fold(tmp_path, fold)
    done = {"center": scores, "ten_crop": {**scores, "accuracy": 0.5}}
    (tmp_path / "metrics.json").write_text(json.dumps(done))
    assert _finished_fold(tmp_path, fold) == done


def test_a_fold_file_with_a_row_more_than_its_test_images_is_damaged(tmp_path):
    """_fold_rows: a row written twice (8 rows, every test image among them) would be
    stitched into the run's predictions.csv twice: refused, naming the counts."""
    from vsent.crossval import FOLD_COLUMNS, _fold_rows
    from vsent.data.folds import Fold

    names = [f"im{i}.jpg" for i in range(6)]
    fold = Fold(1, np.arange(3), np.arange(3, 6))
    rows = [",".join([names[i], f"/x/{names[i]}", "1", "1", "0.7", "1", "0.6", "1"])
            for i in (3, 4, 5)]
    file = tmp_path / "predictions.csv"
    file.write_text(",".join(FOLD_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    assert [r["name"] for r in _fold_rows(tmp_path, fold, names)] == names[3:]
    file.write_text(",".join(FOLD_COLUMNS) + "\n" + "\n".join([*rows, rows[0]]) + "\n")
    with pytest.raises(VsentError, match=r"predictions.csv: 4 rows for the 3 test images of "
                                         r"fold 1; delete"):
        _fold_rows(tmp_path, fold, names)
    # im5 missing, im0 (a training image) instead: the first of the two is named
    other = rows[2].replace(names[5], names[0])
    file.write_text(",".join(FOLD_COLUMNS) + "\n" + "\n".join([*rows[:2], other]) + "\n")
    with pytest.raises(VsentError, match=r"predictions.csv: not the test images of fold 1 "
                                         r"\(e.g. 'im0.jpg'\); delete"):
        _fold_rows(tmp_path, fold, names)
    # the last column lost (a tool that rewrote the file): named, not stitched in without it
    file.write_text(",".join(FOLD_COLUMNS[:-1]) + "\n"
                    + "\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    with pytest.raises(VsentError, match=r"predictions.csv: no column pred_10crop; delete"):
        _fold_rows(tmp_path, fold, names)


def test_earlier_seconds_count_finished_extra_stages_and_skip_a_damaged_one(tmp_path):
    """_earlier_seconds: an unfinished --extra-train fold carries the epochs of its finished
    stages (stages/<name>.json) into summary.json's seconds; a damaged file counts nothing."""
    from vsent.crossval import _earlier_seconds

    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "joint.json").write_text(json.dumps([{"seconds": 2.5}, {"seconds": 1.5}]))
    (stages / "progressive.json").write_text(json.dumps([{"epoch": 1}]))  # no seconds: 0
    assert _earlier_seconds(tmp_path) == 4.0
    (stages / "progressive.json").write_text('[{"seconds": ')  # cut short
    assert _earlier_seconds(tmp_path) == 4.0


def test_summary_seconds_count_an_interrupted_folds_earlier_epochs(finished_run, tmp_path,
                                                                   monkeypatch):
    """summary.json's seconds: the finished folds' own, plus the epochs an interrupted fold
    trained in an earlier session (its train_state.pt), plus this session's time."""
    data, out, _ = finished_run
    copy = _copy_without_summary(out, tmp_path)
    for k in (1, 2, 4, 5):
        file = copy / f"fold{k}" / "metrics.json"
        file.write_text(json.dumps({**json.loads(file.read_text()), "seconds": 1000.0}))
    cfg = _interrupt_fold3(copy, data, monkeypatch)
    # that first epoch took 500 s (far more than this whole session on any machine)
    state_file = copy / "fold3" / "train_state.pt"
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    state["history"] = [{**h, "seconds": 500.0} for h in state["history"]]
    torch.save(state, state_file)
    again = crossval(cfg, copy, resume=True, progress=False)
    assert again["seconds"] == pytest.approx(4500.0 + again["session_seconds"], abs=0.05)
    fold3 = json.loads((copy / "fold3" / "metrics.json").read_text())["seconds"]
    assert 500.0 < fold3 < 1000.0


def test_only_a_run_that_did_not_fine_tune_says_how_it_trained_and_evaluated(finished_run,
                                                                             tmp_path,
                                                                             monkeypatch):
    """summary.json "training" (and the summary's title) name a run that did not fine-tune
    the whole network (--train head here); a fine-tuning run, Campos et al.'s, has none."""
    data, out, summary = finished_run
    assert "training" not in summary
    assert "fine-tuning" not in (out / "summary.md").read_text().splitlines()[0]
    assert "centre crop" in (out / "summary.md").read_text().splitlines()[0]
    cfg = _cfg(data, folds="stratified", train_mode="head", oversample=True)
    import vsent.crossval as cv

    figure = cv.crossval_figure
    ten_crop = []  # curves.png's ROC curves are those of the 10-crop scores too (mut53j M42)
    monkeypatch.setattr(cv, "crossval_figure", lambda *a, **kw: ten_crop.append(
        kw["ten_crop"]) or figure(*a, **kw))
    head = crossval(cfg.replace(train=cfg.train.replace(epochs=1)), tmp_path / "head",
                    progress=False)
    assert ten_crop == [True]
    assert head["training"] == "frozen features + linear head"
    assert head["evaluation"] == "ten_crop"  # --oversample: 10-crop leads, the title says it
    title = (tmp_path / "head" / "summary.md").read_text().splitlines()[0]
    assert "frozen features + linear head" in title and "10-crop" in title


def test_each_fold_trains_with_its_own_seed_and_lists_its_images_in_dataset_order(
        finished_run):
    """Fold k trains with seed * 1000 + k (config.fold_seed; recorded in its model.pt), not
    one seed for every fold; its predictions.csv rows follow the dataset's order."""
    from vsent.data import load_dataset
    from vsent.models.weights import saved_meta

    data, out, _ = finished_run
    seed = json.loads((out / "config.json").read_text())["seed"]
    assert [saved_meta(out / f"fold{k}" / "model.pt")["train"]["seed"]
            for k in range(1, 6)] == [seed * 1000 + k for k in range(1, 6)]
    dataset = load_dataset(data)
    position = {name: i for i, name in enumerate(dataset.names)}
    for k in range(1, 6):
        with open(out / f"fold{k}" / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        order = [position[r["name"]] for r in rows]
        assert order == sorted(order)
        assert [r["path"] for r in rows] == [str(dataset.paths[i]) for i in order]
    # the run's predictions.csv: the folds' files stitched in fold order, as written
    folds = [(out / f"fold{k}" / "predictions.csv").read_text().splitlines() for k in range(1, 6)]
    assert (out / "predictions.csv").read_text().splitlines() == [
        folds[0][0], *(row for lines in folds for row in lines[1:])]


def test_a_resumed_run_gives_its_folds_the_sha256_of_the_init_weights(tmp_path):
    """_check_same_init: the SHA-256 the checkpoints record is returned when init.json is
    written and again when a resume checks it (a resumed run's folds recorded none)
    (mut48c C13)."""
    from types import SimpleNamespace

    from vsent.crossval import _check_same_init
    from vsent.files import file_sha256
    from vsent.runs import RunDir

    weights = tmp_path / "init.pt"
    weights.write_bytes(b"some weights")
    cfg = SimpleNamespace(model="smallcnn", init=str(weights))
    with RunDir(tmp_path / "run") as rd:
        assert _check_same_init(cfg, rd) == file_sha256(weights)  # a new run: recorded
        assert (rd / "init.json").is_file()
        assert _check_same_init(cfg, rd) == file_sha256(weights)  # resumed: checked
        assert _check_same_init(SimpleNamespace(model="smallcnn", init="random"), rd) is None


def test_earlier_seconds_count_the_training_states_of_the_fold_and_of_its_stages(tmp_path):
    """_earlier_seconds: the epochs of fold<k>/train_state.pt and of an unfinished stage's
    stages/<name>_state.pt both count (mut48c C20)."""
    from vsent.crossval import _earlier_seconds

    (tmp_path / "stages").mkdir()
    torch.save({"history": [{"seconds": 3.0}]}, tmp_path / "train_state.pt")
    torch.save({"history": [{"seconds": 2.0}, {"seconds": 0.5}]},
               tmp_path / "stages" / "progressive_state.pt")
    assert _earlier_seconds(tmp_path) == 5.5


def test_the_folds_are_drawn_from_the_run_seed_and_a_resume_keeps_them(twitter_like, tmp_path):
    """_run_folds: a stratified split is drawn from the run's seed (not make_folds' default)
    and written to folds.json, which a resumed run reads whatever the seed says now
    (mut48c C23, C22)."""
    from types import SimpleNamespace

    from vsent.crossval import _run_folds
    from vsent.data.datasets import load_dataset
    from vsent.data.folds import make_folds
    from vsent.runs import RunDir

    ds = load_dataset(twitter_like, "five", validate=False)
    want = [sorted(f.test) for f in make_folds(ds, "stratified", seed=7)]
    assert want != [sorted(f.test) for f in make_folds(ds, "stratified", seed=0)]
    with RunDir(tmp_path / "run") as rd:
        folds = _run_folds(SimpleNamespace(folds="stratified", seed=7), rd, ds)
        assert [sorted(f.test) for f in folds] == want and (rd / "folds.json").is_file()
        again = _run_folds(SimpleNamespace(folds="stratified", seed=0), rd, ds)
        assert [sorted(f.test) for f in again] == want


def test_init_that_is_a_folder_is_named_as_one_by_the_launchers_check(tmp_path):
    """_check_init_exists: --init naming a folder says "a folder", a missing path "no such
    file" (mut48c C52)."""
    from types import SimpleNamespace

    from vsent.crossval import _check_init_exists

    def cfg(init):
        return SimpleNamespace(init=init, zero_shot=False, model="smallcnn", model_kwargs={})

    with pytest.raises(VsentError, match=rf"^--init {re.escape(str(tmp_path))}: a folder "
                                         r"\(random, imagenet or a weights file\)$"):
        _check_init_exists(cfg(str(tmp_path)))
    with pytest.raises(VsentError, match=r"^--init .*gone\.pt: no such file \(random"):
        _check_init_exists(cfg(str(tmp_path / "gone.pt")))
    clip = SimpleNamespace(init=str(tmp_path / "gone.pt"), zero_shot=False, model="clip/RN50",
                           model_kwargs={})  # a model with named weights offers them (M49)
    with pytest.raises(VsentError, match=r"^--init .*gone\.pt: no such file \(random, "
                                         r"imagenet or a weights file, or a tag of clip/RN50\)$"):
        _check_init_exists(clip)


def test_the_runs_figure_leaves_out_a_fold_whose_history_is_no_list_of_epochs(tmp_path,
                                                                               monkeypatch):
    """_write_figure: a history.json that is no list of dicts (edited, another tool's) is
    left out of curves.png rather than drawn or a traceback (mut48c C57)."""
    from types import SimpleNamespace

    import vsent.crossval as cv
    from vsent.data.folds import Fold

    drawn = {}
    monkeypatch.setattr(cv, "crossval_figure",
                        lambda histories, rows, path, **kw: drawn.update(histories))
    for k, history in ((1, [{"loss": 1.0}]), (2, {"loss": 1.0}), (3, [1.0, 2.0])):
        (tmp_path / f"fold{k}").mkdir()
        (tmp_path / f"fold{k}" / "history.json").write_text(json.dumps(history))
    folds = [Fold(k, np.arange(2), np.arange(2, 3)) for k in (1, 2, 3, 4)]
    assert cv._write_figure(SimpleNamespace(path=tmp_path), folds, [], ten_crop=False,
                            title="t") == "curves.png"
    assert drawn == {1: [{"loss": 1.0}]}
