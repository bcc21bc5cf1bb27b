"""Issue 10 wired into crossval: --extra-train (schedules), --fusion, `vsent fuse`, config.json.

Every run is the tiny Twitter-like fixture (36 five-agree of 50 three-agree images), 1 epoch
per stage, so each takes seconds. What a run trains on is observed by wrapping
``vsent.crossval.fit`` and mapping the pixels it receives back to file names through an image
cache built here, independently of the run.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from vsent.cli import main
from vsent.config import RunConfig
from vsent.crossval import PRESETS, crossval
from vsent.data import load_dataset
from vsent.data.cache import image_cache
from vsent.errors import VsentError


def _cfg(data, **kw) -> RunConfig:
    train = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    return RunConfig(data=str(data), model="smallcnn", init="random", train=train, **kw)


def _lines(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _with_copy_of_a_test_image(root: Path) -> str:
    """Give the three-agree set a byte copy (another name) of fold 1's first test image."""
    victim = _lines(root / "folds/campos/five_agrees/test1/test.txt")[0]
    shutil.copy(root / "images" / victim, root / "images" / "copy_of_test_image.jpg")
    with (root / "ground_truth" / "twitter_three_agrees.txt").open("a") as f:
        f.write("copy_of_test_image.jpg 1\n")
    return victim


class _Recorder:
    """Wraps ``fit``: records the names of the images (by pixels) and labels of every call."""

    def __init__(self, monkeypatch, root: Path) -> None:
        import vsent.crossval as cv

        three = load_dataset(root, "three")  # every image, the copy included
        cache = image_cache(three, size=64, progress=False)  # smallcnn's input size
        # a byte copy has its original's pixels: it is seen as the original (listed first)
        self.by_pixels: dict[bytes, str] = {}
        for i in range(len(three)):
            self.by_pixels.setdefault(cache[i].tobytes(), three.names[i])
        self.calls: list[dict] = []
        real = cv.fit

        def fit(model, images, labels, cfg, **kw):
            names = [self.by_pixels[np.asarray(images[i]).tobytes()] for i in range(len(images))]
            self.calls.append({"names": names, "labels": np.asarray(labels).tolist(),
                               "epochs": cfg.epochs, "lr": cfg.lr, "seed": cfg.seed,
                               "desc": kw.get("desc")})
            return real(model, images, labels, cfg, **kw)

        monkeypatch.setattr(cv, "fit", fit)


def test_extra_train_never_trains_on_a_test_image(make_twitter_like, tmp_path, monkeypatch):
    root = make_twitter_like()
    victim = _with_copy_of_a_test_image(root)
    rec = _Recorder(monkeypatch, root)
    out = tmp_path / "run"
    summary = crossval(_cfg(root, extra_train="three", fusion="cues"), out, progress=False)

    five = _lines(root / "ground_truth/twitter_five_agrees.txt")
    three = _lines(root / "ground_truth/twitter_three_agrees.txt")
    gt = dict(line.split() for line in
              (root / "ground_truth/twitter_three_agrees.txt").read_text().splitlines())
    expected_extra = set(three) - set(five) - {"copy_of_test_image.jpg"}
    assert len(expected_extra) == 14
    extra = json.loads((out / "extra.json").read_text())
    assert set(extra["names"]) == expected_extra
    assert [n for n, _ in extra["skipped"]] == ["copy_of_test_image.jpg"]
    assert victim in extra["skipped"][0][1]

    assert len(rec.calls) == 5  # schedule "joint": one fit per fold
    for k, call in enumerate(rec.calls, 1):
        fold = root / f"folds/campos/five_agrees/test{k}"
        test, train = set(_lines(fold / "test.txt")), set(_lines(fold / "train.txt"))
        trained = set(call["names"])
        assert len(trained) == len(call["names"])  # each image once
        assert not trained & test, f"fold {k} trained on a test image"
        assert trained == train | expected_extra
        # labels as the label files say (extra images: their three-agree majority label)
        assert call["labels"] == [int(gt[n]) for n in call["names"]]
    # (the copy has the pixels of fold 1's test image ``victim``: had it been trained on,
    # fold 1 would have trained on ``victim``, which the loop above refuses)
    assert victim in _lines(root / "folds/campos/five_agrees/test1/test.txt")
    # test predictions: only the five-agree images, each once, by the fold that held it out
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["n_images"] == 35
    assert {r["name"] for r in rows} <= set(five)
    # the run's page and summary say it took them (trial41 F5: they read as a plain run's)
    assert summary["extra_train"] == {"subset": "three", "schedule": "joint", "n_images": 14}
    assert (out / "summary.md").read_text().splitlines()[0].endswith(
        ", centre crop, + 14 weakly labelled three-agree images (joint); the CNN alone (fused "
        "late with cues below)")

    # trial41 F2: a fold model records the weak labels beside its subset, and its card says so
    from vsent.models.card import card_markdown, model_card
    from vsent.models.checkpoint import read_checkpoint

    meta = read_checkpoint(out / "fold1" / "model.pt")["meta"]
    assert (meta["extra_train"], meta["extra_schedule"], meta["n_extra"]) == ("three", "joint", 14)
    n_train = len(_lines(root / "folds/campos/five_agrees/test1/train.txt"))
    assert meta["n_train"] == n_train
    card = model_card(out / "fold1" / "model.pt")
    assert card["training"]["extra"] == {"subset": "three", "n_images": 14, "schedule": "joint"}
    assert (f"- Training images: {n_train}\n- Extra training images: 14 weakly labelled "
            "(three-agree images not in five-agree; --extra-schedule joint)\n") \
        in card_markdown(card)
    # trial41 F1: data holding only those weak-label images is data the model trained on
    # (the --init check compared the five-agree images alone, and let it be tested on them)
    from vsent.data.leakage import check_other_data

    folder = tmp_path / "weak"
    for name in sorted(expected_extra)[:4]:
        (folder / ("positive" if gt[name] == "1" else "negative")).mkdir(parents=True,
                                                                          exist_ok=True)
        shutil.copy(root / "images" / name, folder / ("positive" if gt[name] == "1"
                                                      else "negative") / name)
    with pytest.raises(VsentError, match=r"which holds 4 of the images of .*weak"):
        check_other_data(out / "fold1" / "model.pt", meta, str(folder))
    # a fold model saved before it recorded them: its run's config says (review41 F5)
    older = {k: v for k, v in meta.items() if k not in ("extra_train", "extra_schedule",
                                                         "n_extra")}
    with pytest.raises(VsentError, match=r"which holds 4 of the images of .*weak"):
        check_other_data(out / "fold1" / "model.pt", older, str(folder))
    (tmp_path / "link.pt").symlink_to(out / "fold1" / "model.pt")  # (review41b #4)
    with pytest.raises(VsentError, match=r"which holds 4 of the images of .*weak"):
        check_other_data(tmp_path / "link.pt", older, str(folder))
    shutil.copy(out / "fold1" / "model.pt", tmp_path / "alone.pt")  # no run beside it
    check_other_data(tmp_path / "alone.pt", older, str(folder))  # (nothing says it took them)
    # nor a model of another fold copied into this run's folder: not the run's own
    (out / "fold9").mkdir()
    shutil.copy(out / "fold1" / "model.pt", out / "fold9" / "model.pt")
    check_other_data(out / "fold9" / "model.pt", older, str(folder))


def test_fusion_summary_keys_and_arithmetic(make_twitter_like, tmp_path, caplog):
    root = make_twitter_like()
    out = tmp_path / "run"
    caplog.set_level("INFO", logger="vsent")
    summary = crossval(_cfg(root, fusion="cues"), out, progress=False)
    fusion = summary["fusion"]
    # the last line printed is the run's result, the fused one; the CNN's is labelled as such
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("accuracy over")]
    f, f10 = fusion["fused"]["accuracy"], fusion["fused_10crop"]["accuracy"]
    assert said[0].startswith("accuracy over 5 folds, the CNN alone: centre crop ")
    assert said[-1] == (f"accuracy over 5 folds, the CNN fused late with cues: centre crop "
                        f"{f['mean']:.3f} +- {f['std']:.3f}, 10-crop {f10['mean']:.3f} +- "
                        f"{f10['std']:.3f}")
    # the run's data said once: the fusion reads the run it has just made (walk42)
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if r.getMessage().startswith("dataset:"))) == 1
    assert set(fusion) == {"features", "rule", "weight", "method", "C", "cnn", "hand", "fused",
                           "cnn_10crop", "fused_10crop"}
    assert (fusion["features"], fusion["rule"], fusion["weight"], fusion["method"]) == (
        "cues", "mean", 0.5, "logistic")
    # the CNN's own numbers are untouched and are what fusion started from
    assert fusion["cnn"]["accuracy"] == summary["center"]["accuracy"]
    assert fusion["cnn_10crop"]["accuracy"] == summary["ten_crop"]["accuracy"]
    assert json.loads((out / "summary.json").read_text())["fusion"] == fusion
    md = (out / "summary.md").read_text()
    assert "## Late fusion with cues" in md and f"{fusion['fused']['accuracy']['mean']:.3f}" in md
    # trial32 #8: the table that opens the page is the CNN's, and says so
    assert md.splitlines()[0].endswith("; the CNN alone (fused late with cues below)")

    with (out / "predictions.csv").open() as f:
        cnn = {r["name"]: r for r in csv.DictReader(f)}
    with (out / "fusion" / "predictions.csv").open() as f:
        fused = list(csv.DictReader(f))
    assert {r["name"] for r in fused} == set(cnn)
    acc = {k: [] for k in range(1, 6)}
    acc10 = {k: [] for k in range(1, 6)}
    for r in fused:
        c = cnn[r["name"]]
        assert float(r["prob_cnn"]) == pytest.approx(float(c["prob_positive"]))
        p = 0.5 * float(c["prob_positive"]) + 0.5 * float(r["prob_hand"])
        p10 = 0.5 * float(c["prob_positive_10crop"]) + 0.5 * float(r["prob_hand"])
        assert float(r["prob_fused"]) == pytest.approx(p)
        acc[int(r["fold"])].append((p > 0.5) == int(c["label"]))
        acc10[int(r["fold"])].append((p10 > 0.5) == int(c["label"]))
    assert fusion["fused"]["accuracy"]["mean"] == pytest.approx(
        np.mean([np.mean(v) for v in acc.values()]))
    assert fusion["fused_10crop"]["accuracy"]["mean"] == pytest.approx(
        np.mean([np.mean(v) for v in acc10.values()]))

    # `vsent fuse` on the finished run: another rule, its own directory, the run untouched
    before = (out / "summary.json").read_text()
    assert main(["fuse", str(out), "--features", "cues", "--rule", "logit",
                 "--weight", "0.25"]) == 0
    fdir = out / "fuse" / "cues-logit-w0.25-logistic"
    res = json.loads((fdir / "summary.json").read_text())
    assert (res["rule"], res["weight"]) == ("logit", 0.25)
    assert json.loads((fdir / "folds.json").read_text()) == \
        json.loads((out / "folds.json").read_text())  # the folds it used, beside its results
    with (fdir / "predictions.csv").open() as f:
        for r in csv.DictReader(f):
            a, b = float(r["prob_cnn"]), float(r["prob_hand"])
            a, b = min(max(a, 1e-6), 1 - 1e-6), min(max(b, 1e-6), 1 - 1e-6)
            num = a**0.25 * b**0.75
            assert float(r["prob_fused"]) == pytest.approx(num / (num + (1 - a)**0.25
                                                                  * (1 - b)**0.75))
    assert (out / "summary.json").read_text() == before
    assert main(["fuse", str(out), "--features", "cues", "--rule", "logit",
                 "--weight", "0.25"]) == 0  # finished: stored result, nothing redone
    # the finished run reopened: its result lines said again; a summary.json edited to lose
    # "fusion" still says the CNN's line (mut58j X41: the fused line's KeyError hid it)
    caplog.clear()
    edited = {k: v for k, v in json.loads(before).items() if k != "fusion"}
    (out / "summary.json").write_text(json.dumps(edited))
    assert crossval(_cfg(root, fusion="cues"), out, progress=False) == edited
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("accuracy over")]
    assert len(said) == 1 and said[0].startswith("accuracy over 5 folds, the CNN alone: ")


def test_progressive_schedule_applies_the_removal_rule(make_twitter_like, tmp_path,
                                                       monkeypatch, caplog):
    import vsent.crossval as cv

    root = make_twitter_like()
    rec = _Recorder(monkeypatch, root)
    # scores of the stage-1 network spread over [0, 1], so p_i spans 0..1 (an untrained
    # network's scores are all near 0.5: everything would go)
    drawn: dict[int, np.ndarray] = {}

    def fake_scores(model, images, **kw):
        s = np.random.default_rng(len(drawn)).random(len(images))
        drawn[len(drawn) + 1] = np.stack([1 - s, s], axis=1)
        return drawn[len(drawn)]

    monkeypatch.setattr(cv, "predict_proba", fake_scores)
    finetune = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, lr=1e-4, device="cpu")
    out = tmp_path / "run"
    summary = crossval(_cfg(root, extra_train="three", extra_schedule="progressive",
                            finetune=finetune), out, progress=False)

    assert summary["extra_train"] == {"subset": "three", "schedule": "progressive",
                                      "n_images": 14}
    assert len(rec.calls) == 15  # joint, progressive, finetune per fold
    five = set(_lines(root / "ground_truth/twitter_five_agrees.txt"))
    for k in range(1, 6):
        joint, kept_call, ft_call = rec.calls[3 * k - 3: 3 * k]
        fold = root / f"folds/campos/five_agrees/test{k}"
        test, train = set(_lines(fold / "test.txt")), set(_lines(fold / "train.txt"))
        with (out / f"fold{k}" / "removal.csv").open() as f:
            rows = list(csv.DictReader(f))
        names = [r["name"] for r in rows]
        assert names == joint["names"]  # every row of stage 1 was scored, in order
        s = drawn[k]
        assert [float(r["s2"]) for r in rows] == pytest.approx(s[:, 1].tolist())
        # the rule, computed here: p = max(0, 2 - exp(|s1 - s2|)); removed when u < p with
        # u from default_rng(the fold's training seed = seed * 1000 + k)
        p = np.clip(2 - np.exp(np.abs(s[:, 0] - s[:, 1])), 0, 1)
        u = np.random.default_rng(0 * 1000 + k).random(len(p))
        assert [float(r["p"]) for r in rows] == pytest.approx(p.tolist())
        removed = [r["removed"] == "1" for r in rows]
        assert removed == (u < p).tolist()
        assert 0 < sum(removed) < len(rows)
        # stage 2 trains on exactly the kept rows, stage 3 on the clean training fold
        assert kept_call["names"] == [n for n, r in zip(names, removed, strict=True) if not r]
        assert set(ft_call["names"]) == train and not set(ft_call["names"]) & test
        assert not set(joint["names"]) & test and set(joint["names"]) - five
        assert (joint["epochs"], kept_call["lr"], ft_call["lr"]) == (1, 1e-4, 1e-4)
        assert len({joint["seed"], kept_call["seed"], ft_call["seed"]}) == 3
        history = json.loads((out / f"fold{k}" / "history.json").read_text())
        assert [h["stage"] for h in history] == ["joint", "progressive", "finetune"]
        # said as the stages are ("fold 1, stage ..."; it said "fold1, selection")
        extra = sum(r and n not in five for n, r in zip(names, removed, strict=True))
        assert (f"fold {k}, selection: removed {sum(removed)} of {len(rows)} training images "
                f"({extra} of them extra)" in caplog.text)
        kept = kept_call["names"]  # and the stage says what it trains on (mut53j M32)
        assert (f"fold {k}, stage progressive: {len(kept)} training images "
                f"({sum(n not in five for n in kept)} extra)" in caplog.text)

    # a resumed fold does not redo finished stages: fold 5 loses its metrics (not done)
    (out / "summary.json").unlink()
    (out / "fold5" / "metrics.json").unlink()
    rec.calls.clear()
    crossval(_cfg(root, extra_train="three", extra_schedule="progressive", finetune=finetune),
             out, resume=True, progress=False)
    assert [len(c["names"]) for c in rec.calls] == [len(set(_lines(
        root / "folds/campos/five_agrees/test5/train.txt")))]  # the last stage only
    # a stage progressive to redo trains on the rows removal.csv kept: read, not drawn again
    # (mut53j M35: every row)
    (out / "summary.json").unlink()
    (out / "fold5" / "metrics.json").unlink()
    (out / "fold5" / "stages" / "progressive.pt").unlink()
    rec.calls.clear()
    n_scored = len(drawn)
    crossval(_cfg(root, extra_train="three", extra_schedule="progressive", finetune=finetune),
             out, resume=True, progress=False)
    with (out / "fold5" / "removal.csv").open() as f:
        kept = [r["name"] for r in csv.DictReader(f) if r["removed"] == "0"]
    assert rec.calls[0]["names"] == kept and len(rec.calls) == 2 and len(drawn) == n_scored

    # a damaged finished stage is one line naming its file and how to redo the stage
    (out / "summary.json").unlink()
    (out / "fold5" / "metrics.json").unlink()
    stages = out / "fold5" / "stages"
    good = (stages / "joint.json").read_bytes()
    for file, damage in (("joint.json", b"[{"), ("joint.json", b'{"loss": 1}'),
                         ("joint.json", b"[1]"), ("joint.pt", b"PK\x03\x04 cut")):
        kept = (stages / file).read_bytes()
        (stages / file).write_bytes(damage)
        with pytest.raises(VsentError, match=re.escape(str(stages / file)) + ": (unreadable|not "
                           "a stage's history).*to redo stage joint of fold 5"):
            crossval(_cfg(root, extra_train="three", extra_schedule="progressive",
                          finetune=finetune), out, resume=True, progress=False)
        (stages / file).write_bytes(kept)
    assert (stages / "joint.json").read_bytes() == good


@pytest.mark.parametrize("positive_score", [0.5, 1.0])
def test_a_selection_of_fewer_than_two_classes_skips_its_stage(make_twitter_like, tmp_path,
                                                               monkeypatch, caplog,
                                                               positive_score):
    """An unconfident network (scores 0.5: p_i = 1) drops every image; one confident only on
    the positive images keeps those alone. Either way the progressive fine-tuning has no two
    classes to learn from: it is skipped with a warning and the fold goes on to the clean
    fine-tuning (a 5-fold run is not stopped after hours of training)."""
    import vsent.crossval as cv

    root = make_twitter_like()
    rec = _Recorder(monkeypatch, root)
    three = load_dataset(root, "three")
    labels = dict(zip(three.names, three.labels.tolist(), strict=True))
    names_of_rows: list[list[str]] = []

    def scores(model, images, **kw):  # s2 = positive_score on positive images, else 0.5
        names = [rec.by_pixels[np.asarray(im).tobytes()] for im in images]
        names_of_rows.append(names)
        s = np.array([positive_score if labels[n] else 0.5 for n in names])
        return np.stack([1 - s, s], axis=1)

    monkeypatch.setattr(cv, "predict_proba", scores)
    finetune = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="vsent.crossval"):
        summary = crossval(_cfg(root, extra_train="three", extra_schedule="progressive",
                                finetune=finetune), out, progress=False)
    assert len(summary["folds"]) == 5
    assert len(rec.calls) == 10  # joint and finetune per fold, no progressive stage
    for k in range(1, 6):
        with (out / f"fold{k}" / "removal.csv").open() as f:
            kept = [r["name"] for r in csv.DictReader(f) if r["removed"] == "0"]
        want = [] if positive_score == 0.5 else [n for n in names_of_rows[k - 1] if labels[n]]
        assert kept == want
        history = json.loads((out / f"fold{k}" / "history.json").read_text())
        assert [h["stage"] for h in history] == ["joint", "finetune"]
        assert rec.calls[2 * k - 1]["names"] == _lines(
            root / f"folds/campos/five_agrees/test{k}/train.txt")
    warnings = [r.getMessage() for r in caplog.records if "stage progressive skipped" in
                r.getMessage()]
    assert len(warnings) == 5
    assert f"left {len(want)} images of fewer than two classes" in warnings[-1]
    assert str(out / "fold5" / "removal.csv") in warnings[-1]


def test_progressive_scope_extra_keeps_every_clean_row(make_twitter_like, tmp_path,
                                                        monkeypatch):
    import vsent.crossval as cv

    root = make_twitter_like()
    monkeypatch.setattr(cv, "predict_proba",
                        lambda model, images, **kw: np.full((len(images), 2), 0.5))  # p = 1
    five = set(_lines(root / "ground_truth/twitter_five_agrees.txt"))
    finetune = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    out = tmp_path / "run"
    crossval(_cfg(root, extra_train="three", extra_schedule="progressive",
                  progressive_scope="extra", finetune=finetune), out, progress=False)
    with (out / "fold1" / "removal.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["name"] for r in rows if r["removed"] == "1"} == {r["name"] for r in rows} - five


def test_config_json_unchanged_without_the_new_options(twitter_like, tmp_path):
    """A run without --extra-train/--fusion writes the config.json keys of before (so old run
    directories, whose config.json lacks the keys, still resume and count as the same run)."""
    old_keys = {"command", "data", "subset", "folds", "model", "model_kwargs", "init", "train",
                "oversample", "skip_bad", "seed", "eval_batch_size", "preset"}
    cfg = _cfg(twitter_like)
    assert set({"command": "crossval", **cfg.to_dict()}) == old_keys
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    d = _cfg(twitter_like, extra_train="three", extra_schedule="joint+finetune",
             finetune=cfg.train.replace(epochs=3), fusion="gch+bow").to_dict()
    assert {k for k in d if k not in old_keys} == {"extra_train", "extra_schedule", "finetune",
                                                   "fusion"}
    back = RunConfig.from_dict(json.loads(json.dumps(d)))
    assert back.finetune.epochs == 3 and back.extra_schedule == "joint+finetune"


@pytest.mark.parametrize("kw, message", [
    ({"extra_train": "five"}, "--extra-train 'five'"),
    ({"extra_schedule": "progressive"}, "needs --extra-train"),
    ({"extra_train": "three", "extra_schedule": "joint+finetune"}, "fine-tuning recipe"),
    # a dict is no recipe: refused when built (mut58b C57: only None was)
    ({"extra_train": "three", "extra_schedule": "progressive", "finetune": {"epochs": 3}},
     "fine-tuning recipe"),
    ({"extra_train": "three", "progressive_scope": "extra"}, "--progressive-scope"),
    ({"fusion": "gch+sift"}, "--fusion 'gch+sift'"),
])
def test_bad_option_combinations(twitter_like, kw, message):
    with pytest.raises(VsentError, match=re.escape(message)):
        _cfg(twitter_like, **kw)


def test_extra_train_of_folder_data_is_refused_before_overwrite_empties_the_run(
        learnable_dataset, tmp_path, capsys):
    """review36 #4: `crossval --extra-train four --overwrite` on a folder dataset emptied the
    finished run in --out, then refused the data (it has no agreement subsets)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"command": "crossval", "data": "x"}))
    (out / "summary.json").write_text("{}")
    kept = {p: p.read_bytes() for p in out.iterdir()}
    argv = ["crossval", "--data", str(learnable_dataset), "--folds", "stratified",
            "--preset", "quick", "--extra-train", "four", "--out", str(out), "--overwrite",
            "--no-progress"]
    said = (f"vsent: error: {learnable_dataset}: --extra-train needs the Twitter I layout "
            "(agreement subsets); this is a folder dataset\n")
    for nproc in ([], ["--nproc", "2"]):  # (the launcher of --nproc checks it too)
        assert main([*argv, *nproc]) == 2
        assert capsys.readouterr().err == said
        assert {p: p.read_bytes() for p in out.iterdir()} == kept


def test_fusion_of_a_raw_ablation_is_refused_before_the_run_starts(twitter_like, tmp_path):
    # fc8-1000 keeps ImageNet's 1000 outputs: P(positive) is not one of them
    cfg = _cfg(twitter_like, fusion="gch+bow").replace(model="caffenet",
                                                       model_kwargs={"arch": "fc8-1000"})
    with pytest.raises(VsentError, match=re.escape(
            "--fusion gch+bow: fusion and ensembles average P(positive) of 2-way models; caffenet "
            "{'arch': 'fc8-1000'} has 1000 outputs")):
        crossval(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_options_reach_the_config(twitter_like, tmp_path, capsys):
    from vsent.cli import build_parser
    from vsent.cli.crossval import config_from_args

    args = build_parser().parse_args(
        ["crossval", "--preset", "quick", "--data", str(twitter_like), "--extra-train", "four",
         "--extra-schedule", "joint+finetune", "--finetune-epochs", "2", "--fusion", "gch+bow"])
    cfg = config_from_args(args)
    assert (cfg.extra_train, cfg.extra_schedule, cfg.fusion) == ("four", "joint+finetune",
                                                                  "gch+bow")
    quick = PRESETS["quick"]["train"]
    assert (cfg.finetune.epochs, cfg.finetune.lr, cfg.finetune.optimizer) == (
        2, pytest.approx(quick.lr / 10), quick.optimizer)
    plain = config_from_args(build_parser().parse_args(
        ["crossval", "--preset", "quick", "--data", str(twitter_like)]))
    assert plain == _cfg(twitter_like).replace(train=plain.train, preset="quick")
    assert plain.extra_train is None and plain.fusion is None and plain.finetune is None
    # --preset strong: quick's network and recipe, --fusion gch+bow by default (finetune too:
    # it saves the fusion in model.pt)

    def preset_cfg(*argv):
        return config_from_args(build_parser().parse_args(
            [argv[0], "--preset", "strong", "--data", str(twitter_like), *argv[1:]]))

    strong = preset_cfg("crossval")
    assert (strong.fusion, strong.preset) == ("gch+bow", "strong")
    assert strong.replace(fusion=None, preset="quick") == plain
    assert preset_cfg("crossval", "--fusion", "none").fusion is None
    assert preset_cfg("crossval", "--fusion", "cues").fusion == "cues"
    assert preset_cfg("finetune").fusion == "gch+bow"
    assert preset_cfg("finetune", "--fusion", "none").fusion is None
    assert preset_cfg("finetune", "--fusion", "lch").fusion == "lch"
    sized = config_from_args(build_parser().parse_args(
        ["crossval", "--preset", "quick", "--data", str(twitter_like), "--model-arg",
         "image_size=96", "--model-arg", "widths=[8,16]"]))
    assert sized.model_kwargs == {"image_size": 96, "widths": [8, 16]}
    surgery = config_from_args(build_parser().parse_args(
        ["crossval", "--data", str(twitter_like), "--arch", "fc7-2", "--model-arg",
         "num_classes=2"]))
    assert surgery.model_kwargs == {"num_classes": 2, "arch": "fc7-2"}
    # user errors: one line, exit 2, before any run directory exists
    out = tmp_path / "never"
    capsys.readouterr()
    for argv, message in (
            (["--finetune-epochs", "3"], "vsent: error: --finetune-epochs/--finetune-lr apply "
                                         "to --extra-schedule joint+finetune or progressive"),
            (["--extra-schedule", "progressive"],
             "vsent: error: --extra-schedule progressive needs --extra-train"),
            (["--extra-train", "three", "--extra-schedule", "progressive",
              "--finetune-epochs", "0"], "--finetune-epochs 0")):
        assert main(["crossval", "--preset", "quick", "--data", str(twitter_like),
                     "--out", str(out), *argv]) == 2
        assert not out.exists()
        err = capsys.readouterr().err
        # each refusal gives its own reason, on one line
        assert message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    # vsent fuse refuses a folder that is not a finished run, naming it
    assert main(["fuse", str(tmp_path), "--features", "cues"]) == 2
    assert f"{tmp_path}: not a finished crossval run" in capsys.readouterr().err
    assert main(["fuse", str(tmp_path), "--features", "sift"]) == 2
    assert "--features 'sift'" in capsys.readouterr().err


def test_default_finetune_lr_is_a_tenth_of_the_lr_the_model_trains_at(twitter_like):
    """CaffeNet fc6-2 trains at its hint 1e-4 (not the preset's 1e-3): the fine-tuning stages'
    default lr is a tenth of that, as --finetune-lr's help says; a given one is kept."""
    from vsent.cli import build_parser
    from vsent.cli.crossval import config_from_args
    from vsent.crossval import prepare

    base = ["crossval", "--data", str(twitter_like), "--preset", "campos2015", "--model",
            "caffenet", "--model-arg", "arch=fc6-2", "--init", "random", "--extra-train",
            "three", "--extra-schedule", "joint+finetune"]
    cfg, _ = prepare(config_from_args(build_parser().parse_args(base)))
    assert (cfg.train.lr, cfg.finetune.lr) == (1e-4, pytest.approx(1e-5))
    given = build_parser().parse_args([*base, "--finetune-lr", "3e-4"])
    cfg, _ = prepare(config_from_args(given))
    assert (cfg.train.lr, cfg.finetune.lr) == (1e-4, 3e-4)
    # the quick model has no hint: a tenth of the preset's lr, as before
    quick = build_parser().parse_args(["crossval", "--data", str(twitter_like), "--preset",
                                       "quick", "--extra-train",
                                       "three", "--extra-schedule", "joint+finetune"])
    cfg, _ = prepare(config_from_args(quick))
    assert cfg.finetune.lr == pytest.approx(cfg.train.lr / 10) == pytest.approx(2e-4)


# --------------------------------------------------------------------------------------------
# audit_core23 #1, #17, #19


def test_resume_refuses_extra_images_that_changed_since_the_run_started(twitter_like, tmp_path,
                                                                        monkeypatch):
    """extra.json was rewritten by every session and never compared: flipped four-agree
    labels trained the remaining folds on another extra set. It keeps the set's fingerprint
    now and a changed set is refused as the base data is; a run recorded without the
    fingerprint resumes (its names and labels are compared)."""
    from conftest import interrupt_after

    out = tmp_path / "run"
    cfg = _cfg(twitter_like, extra_train="four")
    with monkeypatch.context() as mp:
        interrupt_after(mp, 2)  # folds 1 and 2 done (1 epoch each), fold 3 starting
        with pytest.raises(KeyboardInterrupt):
            crossval(cfg, out, progress=False)
    record = json.loads((out / "extra.json").read_text())
    assert record["fingerprint"]["n_images"] == record["n"] == 8
    five = set(_lines(twitter_like / "ground_truth/twitter_five_agrees.txt"))
    gt = twitter_like / "ground_truth" / "twitter_four_agrees.txt"
    original = gt.read_text()
    gt.write_text("".join(
        f"{name} {1 - int(label) if name not in five else label}\n"
        for name, label in (line.split() for line in original.splitlines())))
    with pytest.raises(VsentError) as e:
        crossval(cfg, out, resume=True, progress=False)
    positive = record["n_positive"]
    # named as the extra set (it read as the base data, whose 36 images are not these 8), its
    # relabelled images named (extra.json keeps their digests)
    assert str(e.value) == (
        f"{twitter_like} (its --extra-train four-not-five images): its images or labels "
        f"changed since {out} started (8 images, {positive} positive then; 8 images, "
        f"{8 - positive} positive now; changed or added: {', '.join(record['names'][:3])} "
        "and 5 more; see "
        f"{out / 'extra.json'}): restore them, or pass --overwrite to start again")
    assert json.loads((out / "extra.json").read_text()) == record  # the first version kept
    # a record without the fingerprint (an older vsent): its names and labels are compared
    del record["fingerprint"]
    (out / "extra.json").write_text(json.dumps(record))
    with pytest.raises(VsentError, match="its images or labels changed since"):
        crossval(cfg, out, resume=True, progress=False)
    gt.write_text(original)
    summary = crossval(cfg, out, resume=True, progress=False)
    assert summary["n_images"] == 35
    assert "fingerprint" in json.loads((out / "extra.json").read_text())


def test_a_given_finetune_lr_equal_to_the_default_is_kept(twitter_like):
    """--finetune-lr 1e-4 with CaffeNet fc6-2 (preset lr 1e-3, hint 1e-4): the lr hint made
    prepare take the given value for the default (a tenth of 1e-3) and divide it again."""
    from vsent.cli import build_parser
    from vsent.cli.crossval import config_from_args
    from vsent.crossval import prepare

    base = ["crossval", "--data", str(twitter_like), "--preset", "campos2015", "--model",
            "caffenet", "--model-arg", "arch=fc6-2", "--init", "random", "--extra-train",
            "three", "--extra-schedule", "joint+finetune"]
    cfg, _ = prepare(config_from_args(build_parser().parse_args([*base, "--finetune-lr",
                                                                 "1e-4"])))
    assert (cfg.train.lr, cfg.finetune.lr) == (1e-4, 1e-4)
    # how finetune.lr was chosen is not part of the record
    assert "finetune_lr_default" not in json.dumps(cfg.to_dict())


def test_finetune_options_of_the_joint_schedule_are_refused_by_the_config_itself(twitter_like):
    """The CLI repeated RunConfig's check word for word; it hands the options to RunConfig."""
    from vsent.cli import build_parser
    from vsent.cli.crossval import _weak_label_and_fusion_fields

    args = build_parser().parse_args(["crossval", "--preset", "quick", "--data",
                                      str(twitter_like), "--finetune-lr", "0.1"])
    train = PRESETS["quick"]["train"]
    fields = _weak_label_and_fusion_fields(args, train, PRESETS["quick"])
    with pytest.raises(VsentError, match=r"^--finetune-epochs/--finetune-lr apply to "
                                         r"--extra-schedule joint\+finetune or progressive$"):
        RunConfig(data=str(twitter_like), train=train, **fields)


def test_finetune_refuses_extra_train_from_the_python_api(twitter_like, tmp_path):
    """code43 #5: `finetune(cfg with extra_train=...)` trained on the dataset alone and recorded
    extra_train in config.json (the CLI has no such option); it is refused before anything is
    written."""
    from vsent.crossval import finetune

    out = tmp_path / "ft"
    with pytest.raises(VsentError, match=r"^extra_train 'three': the weakly labelled extra "
                                         r"images train crossval's folds"):
        finetune(_cfg(twitter_like, extra_train="three"), out, progress=False)
    assert not out.exists()


# mutation round 45 (mut45d): vsent.crossval mutants the suite missed


def test_progressive_stages_seeds_files_and_a_resumed_selection(make_twitter_like, tmp_path,
                                                                monkeypatch):
    """train_fold_with_extra on one fold: stage seeds are the fold's seed, + 1, + 2; every
    stage but the last leaves its weights and history in stages/ (no training state); called
    again (a resumed fold), the selection is read from removal.csv, not drawn anew."""
    import vsent.crossval as cv
    from vsent.config import fold_seed
    from vsent.data.extra import extra_train_set, with_extra
    from vsent.data.folds import make_folds

    root = make_twitter_like()
    finetune = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    cfg = _cfg(root, extra_train="three", extra_schedule="progressive", finetune=finetune)
    dataset = load_dataset(root, cfg.subset)
    joint = with_extra(dataset, extra_train_set(dataset, cfg.subset, "three"))
    images = image_cache(joint.dataset, size=64, progress=False)
    fold = make_folds(dataset, cfg.folds, seed=cfg.seed)[0]
    train_cfg = cfg.train.replace(seed=fold_seed(cfg.seed, fold.index))
    calls = iter(range(100))  # each scoring spreads its scores anew: p_i spans 0..1

    def scores(model, images, **kw):
        s = np.random.default_rng(next(calls)).random(len(images))
        return np.stack([1 - s, s], axis=1)

    monkeypatch.setattr(cv, "predict_proba", scores)
    seeds: list[tuple[str, int]] = []
    real = cv.fit

    def fit(model, images, labels, stage_cfg, **kw):
        seeds.append((kw["desc"], stage_cfg.seed))
        return real(model, images, labels, stage_cfg, **kw)

    monkeypatch.setattr(cv, "fit", fit)
    fdir = tmp_path / "fold1"

    def train() -> list[dict]:
        return cv.train_fold_with_extra(cfg, cv.fresh_model(cfg, train_cfg.seed), images,
                                        joint.dataset.labels, joint, fold, train_cfg, fdir,
                                        progress=False)

    history = train()
    s = train_cfg.seed
    assert seeds == [("fold 1 joint", s), ("fold 1 progressive", s + 1),
                     ("fold 1 finetune", s + 2)]
    assert [h["stage"] for h in history] == ["joint", "progressive", "finetune"]
    assert {p.name for p in (fdir / "stages").iterdir()} == {
        "joint.pt", "joint.json", "progressive.pt", "progressive.json"}
    removal = (fdir / "removal.csv").read_bytes()
    seeds.clear()
    assert [h["stage"] for h in train()] == ["joint", "progressive", "finetune"]
    assert seeds == [("fold 1 finetune", s + 2)]  # the finished stages are loaded
    assert (fdir / "removal.csv").read_bytes() == removal  # the draw it made, kept
    # killed between a stage's weights and its history (written last): the stage is redone
    # (mut48c C45)
    (fdir / "stages" / "progressive.json").unlink()
    seeds.clear()
    assert [h["stage"] for h in train()] == ["joint", "progressive", "finetune"]
    assert seeds == [("fold 1 progressive", s + 1), ("fold 1 finetune", s + 2)]
    assert (fdir / "stages" / "progressive.json").is_file()
    # its weights gone, its history kept: the stage is redone too, not loaded from nothing
    (fdir / "stages" / "progressive.pt").unlink()
    seeds.clear()
    assert [h["stage"] for h in train()] == ["joint", "progressive", "finetune"]
    assert seeds == [("fold 1 progressive", s + 1), ("fold 1 finetune", s + 2)]


def test_skip_bad_leaves_a_bad_extra_image_out_of_the_extra_set(make_twitter_like, tmp_path):
    """--skip-bad covers the --extra-train images too: a broken one is listed in extra.json's
    "skipped", not a refusal of the run."""
    from vsent.crossval import _joint_set
    from vsent.data import load_dataset
    from vsent.runs import RunDir

    root = make_twitter_like()
    extra = sorted(set(_lines(root / "ground_truth/twitter_three_agrees.txt"))
                   - set(_lines(root / "ground_truth/twitter_five_agrees.txt")))
    (root / "images" / extra[0]).write_bytes(b"junk")
    cfg = _cfg(root, extra_train="three", skip_bad=True)
    with RunDir(tmp_path / "run") as run:  # (closed: its run.log handler leaves the logger)
        joint = _joint_set(cfg, run, load_dataset(root, skip_bad=True))
    assert len(joint.extra_index) == len(extra) - 1
    record = json.loads((tmp_path / "run" / "extra.json").read_text())
    assert [Path(n).name for n, _ in record["skipped"]] == [extra[0]]
