"""Fusion arithmetic (vsent.analyses.fusion) against hand-computed values."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logit
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from conftest import assert_reruns_after_interrupt, build_learnable, gch_hand_model
from vsent.analyses import fusion, fusion_run
from vsent.analyses.baselines import BaselineConfig
from vsent.analyses.fused_model import fit_hand_crafted_model
from vsent.analyses.fusion import (
    DEFAULT_RULE,
    DEFAULT_WEIGHT,
    baseline_fold_features,
    choose_weight,
    early_fusion,
    ensemble_mean,
    fit_hand_crafted,
    fuse_probabilities,
    hand_crafted_probabilities,
    positive_probability,
    predict,
)
from vsent.analyses.fusion_run import fuse_run, fusion_markdown
from vsent.analyses.handcrafted import ImageFeatures
from vsent.data.datasets import load_dataset
from vsent.data.folds import Fold
from vsent.errors import VsentError


def test_mean_rule_by_hand():
    p_cnn = np.array([0.9, 0.2, 0.5])
    p_cue = np.array([0.3, 0.6, 0.5])
    assert fuse_probabilities(p_cnn, p_cue).tolist() == pytest.approx([0.6, 0.4, 0.5])
    # w = 0.25: 0.25 * 0.9 + 0.75 * 0.3 = 0.45; 0.25 * 0.2 + 0.75 * 0.6 = 0.5
    assert fuse_probabilities(p_cnn, p_cue, 0.25).tolist() == pytest.approx([0.45, 0.5, 0.5])
    assert fuse_probabilities(p_cnn, p_cue, 1.0).tolist() == pytest.approx(p_cnn.tolist())
    assert DEFAULT_RULE == "mean" and DEFAULT_WEIGHT == 0.5  # the rule fixed in advance


def test_logit_rule_is_a_normalised_product_of_experts():
    # logit(0.8) = ln 4, logit(0.5) = 0 -> sigmoid(ln 2) = 2/3
    assert fuse_probabilities([0.8], [0.5], 0.5, "logit")[0] == pytest.approx(2 / 3)
    # w = 0.25: sigmoid(0.25 ln 4 + 0.75 ln(1/4)) = sigmoid(-ln 2) = 1/3
    assert fuse_probabilities([0.8], [0.2], 0.25, "logit")[0] == pytest.approx(1 / 3)
    a, b, w = np.array([0.7, 0.1, 0.95]), np.array([0.4, 0.3, 0.6]), 0.3
    num = a**w * b ** (1 - w)
    expected = num / (num + (1 - a) ** w * (1 - b) ** (1 - w))
    assert fuse_probabilities(a, b, w, "logit") == pytest.approx(expected)
    # hard 0/1 inputs stay finite
    out = fuse_probabilities([1.0, 0.0], [0.0, 0.0], 0.5, "logit")
    assert np.all(np.isfinite(out)) and out[0] == pytest.approx(0.5) and out[1] < 1e-5


def test_two_column_input_and_prediction_threshold():
    two = np.array([[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]])
    assert positive_probability(two).tolist() == [0.9, 0.4, 0.5]
    # column 1 as it is, not 1 - column 0: a network's float32 rows do not sum to 1 exactly
    # (mut58g U45)
    p32 = np.array([[0.1, 0.9]], np.float32)
    assert positive_probability(p32).tolist() == [float(p32[0, 1])]
    assert fuse_probabilities(two, [0.5, 0.5, 0.5]).tolist() == pytest.approx([0.7, 0.45, 0.5])
    assert predict(two).tolist() == [1, 0, 0]  # a tie is negative, as argmax([1-p, p])
    assert predict(two).tolist() == two.argmax(1).tolist()
    # no tolerance: the float just above 0.5 is positive (mut53b M28: > 0.5 + 1e-12)
    assert predict([np.nextafter(0.5, 1.0)]).tolist() == [1]


def test_ensemble_mean_by_hand():
    got = ensemble_mean([[0.2, 0.9], np.array([[0.6, 0.4], [0.5, 0.5]]), [0.8, 0.1]])
    assert got.tolist() == pytest.approx([(0.2 + 0.4 + 0.8) / 3, (0.9 + 0.5 + 0.1) / 3])
    # the message counts each model's images (mut53b M11: the counts dropped)
    with pytest.raises(ValueError,
                       match=r"^models scored different numbers of images: \[2, 1\]$"):
        ensemble_mean([[0.2, 0.3], [0.1]])


def test_choose_weight_by_hand():
    y = np.array([1, 0, 1])
    p_a, p_b = np.array([0.9, 0.6, 0.4]), np.array([0.2, 0.1, 0.9])
    # w=0: p_b -> [0, 0, 1] acc 2/3; w=1: p_a -> [1, 1, 0] acc 1/3;
    # w=0.5: [0.55, 0.35, 0.65] -> [1, 0, 1] acc 1
    w, acc = choose_weight(p_a, p_b, y, weights=[0.0, 0.5, 1.0])
    assert w == 0.5
    assert acc == pytest.approx({0.0: 2 / 3, 0.5: 1.0, 1.0: 1 / 3})
    # all equal: nearest 0.5 wins, then the smaller
    w, _ = choose_weight([0.9], [0.9], [1], weights=[0.0, 0.3, 0.7, 1.0])
    assert w == 0.3


def test_bad_arguments():
    # no option named (no command has --fusion-rule or --fusion-weight): the callers add
    # theirs (fuse checks --rule and --weight, a checkpoint's entry names its file)
    with pytest.raises(VsentError, match="^fusion rule 'max': choose one of mean, logit$"):
        fuse_probabilities([0.5], [0.5], rule="max")
    with pytest.raises(VsentError, match=r"^fusion weight 1\.5 is out of range \(0 \.\. 1\)$"):
        fuse_probabilities([0.5], [0.5], w=1.5)
    with pytest.raises(VsentError, match=r"^fusion weight -0\.1 is out of range"):
        fuse_probabilities([0.5], [0.5], w=-0.1)
    # api60 F10: a string was TypeError "'<=' not supported", naming nothing
    with pytest.raises(TypeError, match=r"^fusion weight w must be a number in \[0, 1\], "
                                        r"got '0\.5' \(str\)$"):
        fuse_probabilities([0.5], [0.5], w="0.5")
    # a bool is no weight (True would be w = 1 silently: a flag passed in the wrong place)
    with pytest.raises(TypeError, match=r"^fusion weight w must be a number in \[0, 1\], "
                                        r"got True \(bool\)$"):
        fuse_probabilities([0.5], [0.5], w=True)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fuse_probabilities([1.2], [0.5])
    with pytest.raises(ValueError, match="^2 and 1 probabilities: not the same images$"):
        fuse_probabilities([0.5, 0.4], [0.5])
    with pytest.raises(ValueError, match="finite and in"):
        fuse_probabilities([np.nan], [0.5])


def test_early_fusion_by_hand():
    a = np.array([[1.0], [2.0], [3.0], [100.0]])  # row 3 is a test row: not in the stats
    b = np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0], [-50.0, 7.0]])
    out = early_fusion([a, b], train=np.array([0, 1, 2]))
    z = math.sqrt(1.5)  # (x - 2) / sqrt(2/3) at x = 3
    assert out.shape == (4, 3)
    assert out[:3, 0].tolist() == pytest.approx([-z, 0, z])
    # block b: 2 columns -> weight 1/sqrt(2); its constant column gives 0
    assert out[:3, 1].tolist() == pytest.approx([-z / math.sqrt(2), 0, z / math.sqrt(2)])
    assert out[:3, 2].tolist() == [0, 0, 0]
    assert out[3, 0] == pytest.approx((100 - 2) / math.sqrt(2 / 3))
    # the test row never moves the training rows
    a2 = a.copy()
    a2[3] = -1e6
    assert np.allclose(early_fusion([a2, b], np.array([0, 1, 2]))[:3], out[:3])
    # float64 throughout: a column far from 0 keeps its spread (mut53b M17: in float32
    # 1e8 + 1 is 1e8, a constant column)
    big = early_fusion([np.array([[1e8], [1e8 + 1], [1e8 + 2]])], np.arange(3))
    assert big[:, 0].tolist() == pytest.approx([-z, 0, z])


def _separable(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(0, 1, (n, 4))
    X[:, 0] += 3 * (2 * y - 1)
    return X, y


@pytest.mark.parametrize("method", ["logistic", "svm"])
def test_hand_crafted_probabilities_only_learn_from_training_rows(method):
    X, y = _separable()
    train, test = np.arange(40), np.arange(40, 60)
    res = hand_crafted_probabilities(X, y, train, test, method=method, Cs=[0.1, 1.0],
                                     oof=True)
    assert res.test.shape == (20,) and res.train_oof.shape == (40,)
    assert np.all((res.test >= 0) & (res.test <= 1))
    assert np.mean((res.test > 0.5) == y[test]) >= 0.9
    assert np.mean((res.train_oof > 0.5) == y[train]) >= 0.9
    assert res.C in (0.1, 1.0) and res.method == method
    # flipping every test label changes nothing: they are never read
    y2 = y.copy()
    y2[test] = 1 - y2[test]
    again = hand_crafted_probabilities(X, y2, train, test, method=method, Cs=[0.1, 1.0])
    assert np.allclose(again.test, res.test)
    with pytest.raises(ValueError, match="overlap"):
        hand_crafted_probabilities(X, y, train, np.array([0, 41]), method=method)


def test_unknown_classifier():
    X, y = _separable()
    with pytest.raises(VsentError, match="^classifier 'tree': choose one of logistic, svm$"):
        hand_crafted_probabilities(X, y, np.arange(40), np.arange(40, 60), method="tree")


def test_baseline_fold_features_learn_vocabulary_on_training_rows():
    rng = np.random.default_rng(0)
    n = 12
    # training images' descriptors near 0, test images' near 200: a vocabulary learnt on
    # training rows only has every word near 0
    desc = [rng.normal(0 if i < 8 else 200, 1, (20, 128)).clip(0, 255).astype(np.uint8)
            for i in range(n)]
    feats = ImageFeatures(gch=rng.random((n, 64)).astype(np.float32),
                          lch=rng.random((n, 1024)).astype(np.float32), descriptors=desc)
    from vsent.analyses.baselines import BaselineConfig
    X, blocks = baseline_fold_features(feats, np.arange(8), "gch+bow",
                                       BaselineConfig(k=4, max_descriptors=1000))
    assert blocks == [64, 4] and X.shape == (n, 68)
    assert np.array_equal(X[:, :64], feats.gch)
    assert np.allclose(X[:, 64:].sum(1), 1)  # l1-normalised histograms
    from vsent.analyses.handcrafted import bow_histograms, learn_vocabulary
    vocab = learn_vocabulary(desc[:8], k=4, max_descriptors=1000, seed=0)
    assert np.all(vocab.cluster_centers_ < 50)  # words of the training rows only
    assert np.allclose(X[:, 64:], bow_histograms(vocab, desc))
    X2, _ = baseline_fold_features(feats, np.arange(8), "gch",
                                   BaselineConfig(k=4, max_descriptors=1000))
    assert X2.shape == (n, 64)


def _fake_run(root, data, p_cnn: dict[str, float], p_10crop: dict[str, float] | None = None,
              skip_bad: bool = False):
    """A finished crossval run directory: config.json and predictions.csv only (with a
    ``prob_positive_10crop`` column when ``p_10crop`` is given)."""
    import csv
    import json

    from vsent.data import load_dataset, make_folds

    root.mkdir()
    (root / "config.json").write_text(json.dumps({"data": str(data), "subset": "five",
                                                  "folds": "campos", "seed": 0,
                                                  "model": "smallcnn", "skip_bad": skip_bad}))
    ds = load_dataset(data, "five", skip_bad=skip_bad, validate=skip_bad)
    with (root / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "fold", "label", "prob_positive"]
                   + ([] if p_10crop is None else ["prob_positive_10crop"]))
        for fold in make_folds(ds, "campos"):
            for i in fold.test:
                w.writerow([ds.names[i], fold.index, ds.labels[i], p_cnn[ds.names[i]]]
                           + ([] if p_10crop is None else [p_10crop[ds.names[i]]]))
    return root


def test_fuse_run_with_cues(twitter_like, tmp_path):
    from vsent.analyses.fusion_run import fuse_run
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    # a "CNN" that is sure and right on even rows, unsure (0.5) on odd rows
    p = {n: (0.9 if y else 0.1) if k % 2 == 0 else 0.5
         for k, (n, y) in enumerate(zip(ds.names, ds.labels, strict=True))}
    run = _fake_run(tmp_path / "run", twitter_like, p)
    out = fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    assert out["features"] == "cues" and out["rule"] == "mean" and out["weight"] == 0.5
    assert len(out["rows"]) == 35 and len(out["fused"]["folds"]) == 5  # campos: 35 of 36
    for r in out["rows"]:
        assert r["prob_cnn"] == p[r["name"]]
        assert r["prob_fused"] == pytest.approx(0.5 * r["prob_cnn"] + 0.5 * r["prob_hand"])
        assert r["label"] == ds.labels[ds.names.index(r["name"])]
    labels = np.array([r["label"] for r in out["rows"]])
    hand = np.array([r["prob_hand"] for r in out["rows"]])
    # warm/bright vs cold/dark pictures: colour cues alone separate them
    assert np.mean((hand > 0.5) == labels) >= 0.9
    assert out["hand"]["accuracy"]["mean"] >= 0.9
    # fold accuracies recomputed from the rows: mean over folds of (p_fused > 0.5) == label
    fused = np.array([r["prob_fused"] for r in out["rows"]])
    fold_of = np.array([r["fold"] for r in out["rows"]])
    per_fold = [np.mean((fused[fold_of == k] > 0.5) == labels[fold_of == k]) for k in range(1, 6)]
    assert out["fused"]["accuracy"]["mean"] == pytest.approx(np.mean(per_fold))
    # the unsure CNN rows (0.5, a tie: negative) are decided by the cues
    assert out["fused"]["accuracy"]["mean"] > out["cnn"]["accuracy"]["mean"]


def test_fuse_run_refuses_incomplete_runs(twitter_like, tmp_path):
    from vsent.analyses.fusion_run import fuse_run
    from vsent.config import RunConfig, parse_fusion_blocks

    with pytest.raises(VsentError, match="not a finished crossval run"):
        fuse_run(tmp_path)
    ds_names = [line.split()[0] for line in (twitter_like / "ground_truth" /
                                            "twitter_five_agrees.txt").read_text().splitlines()]
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds_names, 0.5))
    lines = (run / "predictions.csv").read_text().splitlines()
    # a run stopped before its predictions: the files it needs said (mut53b N54: config.json
    # alone asked for, another message)
    (run / "predictions.csv").unlink()
    with pytest.raises(VsentError, match=re.escape(
            f"{run}: not a finished crossval run (needs config.json and predictions.csv)")):
        fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    # every image there, one under another fold: a prediction of a model that trained on it
    name, fold, rest = lines[-1].split(",", 2)
    (run / "predictions.csv").write_text(
        "\n".join([*lines[:-1], f"{name},{int(fold) % 5 + 1},{rest}"]) + "\n")
    with pytest.raises(VsentError, match="^" + re.escape(  # (mut53b N06: the file unnamed)
            f"{run / 'predictions.csv'}: 1 test images of fold {fold} have no prediction of "
            f"that fold (e.g. {name})")):
        fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    (run / "predictions.csv").write_text("\n".join(lines[:-1]) + "\n")  # one image lost
    with pytest.raises(VsentError, match="have no prediction of that fold"):
        fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    # a raw ablation's prob_positive is one output of a many-way softmax: refused, naming it
    cfg_file = run / "config.json"
    cfg = json.loads(cfg_file.read_text())
    for arch, refused in (("fc8-1000", True), ("fc7-4096", True), ("fc9-2", False)):
        cfg_file.write_text(json.dumps({**cfg, "model": "caffenet",
                                        "model_kwargs": {"arch": arch}}))
        if refused:
            with pytest.raises(VsentError, match=re.escape(
                    f"{run}: fusion and ensembles average P(positive) of 2-way models; caffenet "
                    f"{{'arch': '{arch}'}} has {arch.split('-')[1]} outputs")):
                fuse_run(run, "cues", cache_dir=tmp_path / "cache")
        else:  # a 2-way surgery passes this check and stops at the lost image
            with pytest.raises(VsentError, match="have no prediction of that fold"):
                fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    assert parse_fusion_blocks("gch+bow+cues", "--fusion") == ("gch", "bow", "cues")
    assert parse_fusion_blocks("gch+fv", "--fusion") == ("gch", "fv")
    assert parse_fusion_blocks(" GCH + Bow", "--features") == ("gch", "bow")
    for bad in ("sift", "gch+gch", "", "gch++bow", "gch+", "GCH+gch"):
        with pytest.raises(VsentError, match="--features"):
            parse_fusion_blocks(bad, "--features")
    # crossval's option says it also takes none; its config keeps the value as given (a run
    # stored with "gch + bow" resumes), read as its blocks where it is used
    assert RunConfig(data="d", fusion=" GCH + Bow").fusion == " GCH + Bow"
    with pytest.raises(VsentError, match="--fusion 'gch\\+\\+bow': none, or blocks"):
        RunConfig(data="d", fusion="gch++bow")


@pytest.mark.parametrize("damage,message", [
    ("missing column", r"line 1: no column 'fold'"),
    ("not a number", r"line 3: unreadable row \(prob_positive: could not convert string to "
                     r"float: 'abc'\)"),
    ("row cut short", r"line \d+: unreadable row \(cut short: 2 of 4 fields\)"),
])
def test_a_damaged_predictions_file_is_one_line_naming_it_and_the_line(
        twitter_like, tmp_path, capsys, damage, message):
    """compare's reader (vsent.analyses.compare.read_predictions), before any feature is
    computed: a KeyError, ValueError or TypeError traceback before."""
    from vsent.analyses.fusion_run import fuse_run
    from vsent.cli import main
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")  # finished, for `vsent fuse`
    pred_file = run / "predictions.csv"
    lines = pred_file.read_text().splitlines()
    if damage == "missing column":
        lines = [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in lines]
    elif damage == "not a number":
        lines[2] = ",".join([*lines[2].split(",")[:3], "abc"])
    else:
        lines[-1] = ",".join(lines[-1].split(",")[:2])
    pred_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(VsentError, match=re.escape(str(pred_file)) + ", " + message):
        fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    assert main(["fuse", str(run), "--features", "cues", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {pred_file}, line ")


def test_fuse_run_refuses_labels_changed_since_the_run(make_twitter_like, tmp_path):
    from vsent.analyses.fusion_run import fuse_run

    data = make_twitter_like()
    names = [line.split()[0] for line in (data / "ground_truth" /
                                         "twitter_five_agrees.txt").read_text().splitlines()]
    run = _fake_run(tmp_path / "run", data, dict.fromkeys(names, 0.5))
    from vsent.data import load_dataset, make_folds
    from vsent.data.folds import save_folds

    ds = load_dataset(data, "five", validate=False)  # a real run's folds.json: names only
    save_folds(make_folds(ds, "campos"), ds, run / "folds.json")
    gt = data / "ground_truth" / "twitter_five_agrees.txt"
    lines = gt.read_text().splitlines()
    name, label = lines[0].split()
    gt.write_text("\n".join([f"{name} {1 - int(label)}", *lines[1:]]) + "\n")  # one flipped
    with pytest.raises(VsentError, match=re.escape(
            f"{run / 'predictions.csv'}: 1 test images of fold ") + r"\d have another label in "
            + re.escape(f"{data} now (e.g. {name})")):
        fuse_run(run, "cues", cache_dir=tmp_path / "cache")


def test_fuse_run_of_a_skip_bad_run_leaves_its_bad_images_out(make_twitter_like, tmp_path):
    """A --skip-bad run dropped its undecodable images; the fusion must drop them too (it
    decoded every image for its features and stopped on the bad one)."""
    from vsent.analyses.fusion_run import fuse_run
    from vsent.data import load_dataset, make_folds

    data = make_twitter_like()
    bad = load_dataset(data, "five", validate=False).paths[0]
    bad.write_bytes(b"not an image")
    ds = load_dataset(data, "five", skip_bad=True)
    assert bad not in ds.paths
    run = _fake_run(tmp_path / "run", data, dict.fromkeys(ds.names, 0.5), skip_bad=True)
    out = fuse_run(run, "gch", cache_dir=tmp_path / "cache")
    assert len(out["rows"]) == sum(len(f.test) for f in make_folds(ds, "campos"))
    assert bad.name not in {r["name"] for r in out["rows"]}


def test_fuse_run_early_rule_uses_each_folds_model(twitter_like, tmp_path):
    """--rule early: one classifier per fold on [that fold model's penultimate features, the
    hand-crafted blocks]; the CNN and hand-crafted columns stay as in late fusion."""
    import torch

    from vsent.analyses.fusion_run import fold_cnn_features, fuse_run
    from vsent.data import load_dataset, make_folds
    from vsent.models import create_model, save_checkpoint

    ds = load_dataset(twitter_like, "five", validate=False)
    p = dict.fromkeys(ds.names, 0.6)
    # with 10-crop probabilities: the early classifier fuses the centre crop's features only
    # (mut47b F54: no 10-crop fused record, not an empty one)
    run = _fake_run(tmp_path / "run", twitter_like, p, dict.fromkeys(ds.names, 0.7))
    with pytest.raises(VsentError, match="the early rule needs each fold's model"):
        fuse_run(run, "cues", rule="early", cache_dir=tmp_path / "cache")
    for k in range(1, 6):
        torch.manual_seed(k)  # five different models
        (run / f"fold{k}").mkdir()
        save_checkpoint(run / f"fold{k}" / "model.pt", create_model("smallcnn", widths=(4, 8)))
    folds = make_folds(ds, "campos")
    feats = fold_cnn_features(run, ds, folds, cache_dir=tmp_path / "cache")
    assert sorted(feats) == [1, 2, 3, 4, 5] and feats[1].shape == (36, 8)
    assert not np.allclose(feats[1], feats[2])  # fold k's features come from fold k's model

    out = fuse_run(run, "cues", rule="early", cache_dir=tmp_path / "cache")
    late = fuse_run(run, "cues", cache_dir=tmp_path / "cache")
    assert out["rule"] == "early" and "fused_10crop" not in out and len(out["C"]) == 5
    assert out["cnn"] == late["cnn"] and out["hand"] == late["hand"]
    assert out["cnn_10crop"] == late["cnn_10crop"] and "fused_10crop" in late
    probs = np.array([r["prob_fused"] for r in out["rows"]])
    assert ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs, [r["prob_fused"] for r in late["rows"]])
    labels = np.array([r["label"] for r in out["rows"]])
    fold_of = np.array([r["fold"] for r in out["rows"]])
    per_fold = [np.mean((probs[fold_of == k] > 0.5) == labels[fold_of == k]) for k in range(1, 6)]
    assert out["fused"]["accuracy"]["mean"] == pytest.approx(np.mean(per_fold))
    # the colour cues separate the pictures; an untrained CNN's features do not hide that
    assert out["fused"]["accuracy"]["mean"] >= 0.8 > out["cnn"]["accuracy"]["mean"]


def test_fuse_run_uses_the_baseline_configs_C_grid(twitter_like, tmp_path):
    """BaselineConfig.Cs and inner_splits reach the hand-crafted classifier (they were
    ignored: the default grid was searched whatever the config said)."""
    from vsent.analyses.baselines import BaselineConfig
    from vsent.analyses.fusion_run import fuse_run
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.6))
    one_c = BaselineConfig(Cs=(0.37,), inner_splits=2)
    out = fuse_run(run, "cues", baseline_config=one_c, cache_dir=tmp_path / "cache")
    assert out["C"] == [0.37] * 5
    assert fuse_run(run, "cues", cache_dir=tmp_path / "cache")["C"] != [0.37] * 5
    svm = fuse_run(run, "cues", method="svm", baseline_config=one_c,
                   cache_dir=tmp_path / "cache")
    assert svm["C"] == [0.37] * 5


def test_cli_fuse_early_rule_refuses_a_weight(tmp_path, capsys):
    from vsent.cli import main

    assert main(["fuse", str(tmp_path), "--features", "cues", "--rule", "early", "--weight",
                 "0.3"]) == 2
    assert "vsent: error: --weight: the early rule has no weight" in capsys.readouterr().err


def test_fuse_run_early_rule_refuses_a_weight_before_reading_the_run(tmp_path):
    """code43 #11: only `fuse` refused it; `fuse_run(rule="early", weight=0.3)` ran and recorded
    a weight it never used. Checked before any work (the run here does not exist)."""
    from vsent.analyses.fusion_run import fuse_run

    with pytest.raises(VsentError, match=r"^--weight: the early rule has no weight"):
        fuse_run(tmp_path / "no-run", "cues", rule="early", weight=0.3)


def test_cli_fuse_histogram_map_reaches_the_hand_crafted_blocks(twitter_like, tmp_path,
                                                                monkeypatch):
    import csv
    import json

    import vsent.analyses.fusion as fusion
    from conftest import spy_histogram_maps
    from vsent.cli import main
    from vsent.data import load_dataset

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")  # the CLI asks for a finished run
    maps = spy_histogram_maps(monkeypatch, fusion)
    hand = {}
    for hmap, sub in (("none", "gch-mean-w0.5-logistic"), ("sqrt", "gch-mean-w0.5-logistic-sqrt")):
        maps.clear()
        assert main(["fuse", str(run), "--features", "gch", "--histogram-map", hmap,
                     "--no-progress"]) == 0
        assert maps == [hmap] * 5
        res = json.loads((run / "fuse" / sub / "summary.json").read_text())
        assert res.get("histogram_map", "none") == hmap
        md = (run / "fuse" / sub / "summary.md").read_text()
        assert (hmap in md) == (hmap == "sqrt")
        assert md.startswith(f"# {run}\n\n## Late fusion with gch\n")  # (mut53b N18)
        with (run / "fuse" / sub / "predictions.csv").open() as f:
            hand[hmap] = {r["name"]: float(r["prob_hand"]) for r in csv.DictReader(f)}
    assert hand["sqrt"] != hand["none"]  # another classifier, not the same one relabelled
    # the Python API under the command: the same default directory, read back when finished
    res, out = fusion_run.fuse(run, features="gch", histogram_map="sqrt", progress=False)
    assert out == run / "fuse" / "gch-mean-w0.5-logistic-sqrt"
    assert res == json.loads((out / "summary.json").read_text())
    # a fusion recorded before the hand-crafted settings and the seed were: still finished
    stored = json.loads((out / "config.json").read_text())
    del stored["hand_crafted"], stored["seed"]
    (out / "config.json").write_text(json.dumps(stored))
    assert fusion_run.fuse(run, features="gch", histogram_map="sqrt", progress=False)[0] == res
    for kw, message in (({"weight": 1.5}, "--weight 1.5 is out of range"),
                        ({"rule": "max"}, "--rule 'max': choose one of mean, logit, early"),
                        ({"classifier": "svc"}, "--classifier 'svc': choose one of"),
                        ({"extra_train": "two"}, "--extra-train 'two': choose one of four"),
                        ({"rule": "early", "extra_train": "three"}, "needs a late rule")):
        with pytest.raises(VsentError, match=message):
            fusion_run.fuse(run, tmp_path / "bad", features="gch", **kw)
        assert not (tmp_path / "bad").exists()  # refused before the output is made


def test_cli_fuse_interrupted_is_done_again_by_the_same_command(twitter_like, tmp_path,
                                                               monkeypatch, capsys):
    """fuse has no --resume: after a Ctrl-C the same command fuses again instead of asking for
    an option it does not have."""
    from vsent.data import load_dataset

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")  # the CLI asks for a finished run
    argv = ["fuse", str(run), "--features", "gch", "--no-progress"]
    assert_reruns_after_interrupt(monkeypatch, capsys, argv, fusion_run, "fuse_run")
    assert (run / "fuse" / "gch-mean-w0.5-logistic" / "summary.json").is_file()


def test_cli_fuse_refuses_to_report_a_fusion_of_a_run_that_changed_since(twitter_like,
                                                                         tmp_path, capsys,
                                                                         monkeypatch):
    from vsent.cli import main
    from vsent.data import load_dataset

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")
    argv = ["fuse", str(run), "--features", "gch", "--no-progress"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0 and capsys.readouterr().out == first  # the stored result
    pred = run / "predictions.csv"
    pred.write_text(pred.read_text().replace(",0.5", ",0.9"))  # the run was made again
    assert main(argv) == 2
    assert (f"vsent: error: {pred.resolve()} changed since {run / 'fuse'}"
            in capsys.readouterr().err)
    assert main([*argv, "--overwrite"]) == 0 and capsys.readouterr().out != first


def test_cli_fuse_of_a_copied_or_moved_run_reads_its_own_fusion_back(twitter_like, tmp_path,
                                                                      capsys, monkeypatch):
    """trial32 #4: the fusion inside a run stored the run's absolute path, so a copy of the
    run (or the run moved) refused its own fusion as another run's; it is identified by its
    inputs' SHA-256 now. A fusion outside the run still names the run it was made from."""
    import shutil

    from vsent.cli import main
    from vsent.data import load_dataset

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")
    assert main(["fuse", str(run), "--features", "gch", "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert str(run / "fuse") in first
    outside = tmp_path / "fused-outside"
    assert main(["fuse", str(run), "--features", "gch", "--no-progress",
                 "--out", str(outside)]) == 0
    capsys.readouterr()
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    moved = tmp_path / "moved"
    run.rename(moved)
    monkeypatch.setattr(fusion_run, "fuse_run", lambda *a, **k: pytest.fail("fused again"))
    for where in (copy, moved):
        assert main(["fuse", str(where), "--features", "gch", "--no-progress"]) == 0
        assert capsys.readouterr().out == first.replace(str(run), str(where))  # read back
    # the copy's predictions changed: its fusion is not reported
    pred = copy / "predictions.csv"
    pred.write_text(pred.read_text().replace(",0.5", ",0.9"))
    assert main(["fuse", str(copy), "--features", "gch", "--no-progress"]) == 2
    assert f"run: stored '{run.resolve()}', now '{copy.resolve()}'" in capsys.readouterr().err
    # a fusion outside the run: made from the run where it was then
    assert main(["fuse", str(moved), "--features", "gch", "--no-progress",
                 "--out", str(outside)]) == 2
    assert f"run: stored '{run.resolve()}', now '{moved.resolve()}'" in capsys.readouterr().err
    # review33 #2: another run's fusion put in this run's folder (--out), or a copied run's
    # fusion made before inputs.json, is no fusion of this run
    other = _fake_run(tmp_path / "other", twitter_like, dict.fromkeys(ds.names, 0.7))
    (other / "summary.json").write_text("{}")
    monkeypatch.undo()
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    into = moved / "fuse" / "gch-mean-w0.7-logistic"
    assert main(["fuse", str(other), "--features", "gch", "--no-progress", "--weight", "0.7",
                 "--out", str(into)]) == 0
    capsys.readouterr()
    assert main(["fuse", str(moved), "--features", "gch", "--no-progress",
                 "--weight", "0.7"]) == 2
    assert f"run: stored '{other.resolve()}', now '{moved.resolve()}'" in capsys.readouterr().err
    shutil.copytree(moved, tmp_path / "copy2")
    (tmp_path / "copy2" / "fuse" / "gch-mean-w0.5-logistic" / "inputs.json").unlink()
    assert main(["fuse", str(tmp_path / "copy2"), "--features", "gch", "--no-progress"]) == 2
    assert f"run: stored '{run.resolve()}', now '{(tmp_path / 'copy2').resolve()}'" in \
        capsys.readouterr().err


def test_extra_train_on_a_folder_dataset_is_refused_before_overwrite_empties_the_fusion(
        learnable_dataset, tmp_path, capsys, monkeypatch):
    """robust36 #1: `fuse RUN --extra-train four --overwrite` on a run of a folder dataset
    deleted the finished fusion in --out, then said the data has no agreement subsets."""
    import csv

    from vsent.cli import main
    from vsent.data import load_dataset, make_folds

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "command": "crossval", "data": str(learnable_dataset), "subset": "five",
        "folds": "stratified", "seed": 0, "model": "smallcnn"}))
    ds = load_dataset(learnable_dataset, validate=False)
    with (run / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "fold", "label", "prob_positive"])
        for fold in make_folds(ds, "stratified"):
            w.writerows([ds.names[i], fold.index, ds.labels[i], 0.6] for i in fold.test)
    (run / "summary.json").write_text("{}")
    out = tmp_path / "fused"
    argv = ["fuse", str(run), "--features", "gch", "--out", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*argv, "--extra-train", "four", "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        f"vsent: error: {learnable_dataset}: --extra-train needs the Twitter I layout "
        "(agreement subsets); this is a folder dataset\n")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept


def test_fuse_run_extra_train_adds_weak_labels_to_the_hand_crafted_training_rows_only(
        twitter_like, tmp_path, monkeypatch):
    import vsent.analyses.fusion as fusion
    from vsent.data import load_dataset, make_folds
    from vsent.data.extra import extra_train_set

    ds = load_dataset(twitter_like, "five", validate=False)
    extra = extra_train_set(twitter_like, "five", "three")
    assert len(extra) > 0
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    fits = []
    real = fusion.hand_crafted_probabilities

    def spy(X, y, train, test, **kw):
        fits.append((np.asarray(train), np.asarray(test), np.asarray(y)))
        return real(X, y, train, test, **kw)

    monkeypatch.setattr(fusion_run, "hand_crafted_probabilities", spy)
    encoded = []  # the rows each fold's blocks learn from (BoW vocabulary, histogram maps)
    real_blocks = fusion_run.baseline_fold_features

    def blocks_spy(feats, train, *a, **kw):
        encoded.append(np.asarray(train))
        return real_blocks(feats, train, *a, **kw)

    monkeypatch.setattr(fusion_run, "baseline_fold_features", blocks_spy)
    out = fuse_run(run, "gch", extra_train="three", cache_dir=tmp_path / "cache")
    assert (out["extra_train"], out["n_extra"]) == ("three", len(extra))
    n = len(ds)
    folds = make_folds(ds, "campos")
    assert len(fits) == len(folds)
    for fold, (train, test, y) in zip(folds, fits, strict=True):
        # the fold's training rows, then every extra row; the test rows are the fold's own
        np.testing.assert_array_equal(train, np.union1d(fold.train, np.arange(n, n + len(extra))))
        np.testing.assert_array_equal(test, np.sort(fold.test))
        np.testing.assert_array_equal(y[:n], ds.labels)
        np.testing.assert_array_equal(y[n:], extra.labels)
    # the blocks are encoded with what the same rows give (mut50d R07: the fold's own rows)
    assert len(encoded) == len(folds)
    for (train, _, _), rows in zip(fits, encoded, strict=True):
        np.testing.assert_array_equal(rows, train)
    assert {r["name"] for r in out["rows"]} <= set(ds.names)  # extra images are never scored
    assert "also trained on" in fusion_markdown(out)
    plain = fuse_run(run, "gch", cache_dir=tmp_path / "cache")
    assert "extra_train" not in plain and len(fits) == 2 * len(folds)
    assert all(t.max() < n for t, _, _ in fits[len(folds):])
    with pytest.raises(VsentError, match="late rule"):
        fuse_run(run, "gch", rule="early", extra_train="three", cache_dir=tmp_path / "cache")
    # the CLI: its own directory, the option in config.json and summary.json
    import json

    from vsent.cli import main

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    (run / "summary.json").write_text("{}")
    assert main(["fuse", str(run), "--features", "gch", "--extra-train", "three",
                 "--no-progress"]) == 0
    fdir = run / "fuse" / "gch-mean-w0.5-logistic-extrathree"
    assert json.loads((fdir / "config.json").read_text())["extra_train"] == "three"
    assert json.loads((fdir / "summary.json").read_text())["n_extra"] == len(extra)


def _fold_accuracies(rows, column):
    """Per-fold accuracy of ``prob > 0.5`` recomputed from fuse_run's rows."""
    folds = sorted({r["fold"] for r in rows})
    return [np.mean([(r[column] > 0.5) == r["label"] for r in rows if r["fold"] == k])
            for k in folds]


def _spy_hand_fits(monkeypatch):
    """Record every hand_crafted_probabilities call fuse_run makes (X, train, test, blocks,
    result); a grid of two Cs keeps the tests fast (these tests check rows and formulas,
    not the choice of C)."""
    import vsent.analyses.fusion as fusion

    real, calls = fusion.hand_crafted_probabilities, []

    def spy(X, y, train, test, **kw):
        res = real(X, y, train, test, **{**kw, "Cs": (0.1, 1.0)})
        calls.append({"X": np.array(X), "y": np.array(y), "train": np.array(train),
                      "test": np.array(test), "blocks": kw["blocks"], "res": res})
        return res

    monkeypatch.setattr(fusion_run, "hand_crafted_probabilities", spy)
    return calls


def _random_run(root, data, ds):
    """A _fake_run with a random CNN probability per image, centre and 10-crop (seed 0):
    returns the run and the two {name: probability}."""
    rng = np.random.default_rng(0)
    p = {n: float(v) for n, v in zip(ds.names, rng.uniform(0.05, 0.95, len(ds)), strict=True)}
    p10 = {n: float(v) for n, v in zip(ds.names, rng.uniform(0.05, 0.95, len(ds)),
                                       strict=True)}
    return _fake_run(root, data, p, p10), p, p10


def test_fuse_run_applies_the_weight_to_the_cnn_and_the_rule_to_both_crops(
        twitter_like, tmp_path, monkeypatch):
    """fuse_run with w = 0.25 and the logit rule, on a run with 10-crop probabilities: the
    default w = 0.5 mean (the other fuse_run tests) is symmetric, so it cannot tell the CNN's
    side from the classifier's, nor the rule, nor which CNN column is fused."""
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run, p, p10 = _random_run(tmp_path / "run", twitter_like, ds)
    _spy_hand_fits(monkeypatch)
    out = fuse_run(run, "gch", rule="logit", weight=0.25, cache_dir=tmp_path / "cache")
    assert (out["rule"], out["weight"]) == ("logit", 0.25)
    assert "logit P(positive) = 0.25 x logit CNN + 0.75 x logit hand-crafted (logit rule" in \
        fusion_markdown(out)  # not the mean rule's formula
    # each fold's C is said (mut47b F65), and a fixed weight has no per-fold weights (F57)
    said = fusion_markdown(out).split("C by inner CV: ")[1].split(")")[0].split(", ")
    assert len(out["C"]) == len(out["fused"]["folds"]) > 1
    assert [float(c) for c in said] == pytest.approx(out["C"])
    assert "weights" not in out
    assert "histogram_map" not in out  # said only when not "none" (mut53b N05)

    def logit(x):  # the rule clips at 1e-6 (fusion.EPS) before taking logits
        x = np.clip(x, 1e-6, 1 - 1e-6)
        return np.log(x / (1 - x))

    rows = out["rows"]
    cnn = np.array([p[r["name"]] for r in rows])
    cnn10 = np.array([p10[r["name"]] for r in rows])
    hand = np.array([r["prob_hand"] for r in rows])
    assert np.abs(hand - 0.5).max() > 0.1  # the classifier says something: sides differ
    np.testing.assert_allclose([r["prob_cnn"] for r in rows], cnn)
    np.testing.assert_allclose([r["prob_cnn_10crop"] for r in rows], cnn10)
    want = 1 / (1 + np.exp(-(0.25 * logit(cnn) + 0.75 * logit(hand))))
    want10 = 1 / (1 + np.exp(-(0.25 * logit(cnn10) + 0.75 * logit(hand))))
    np.testing.assert_allclose([r["prob_fused"] for r in rows], want, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose([r["prob_fused_10crop"] for r in rows], want10, rtol=1e-9,
                               atol=1e-15)
    # the mean rule or the weight on the other side would give other numbers here
    assert not np.allclose(want, 0.25 * cnn + 0.75 * hand, atol=1e-3)
    assert not np.allclose(want, 1 / (1 + np.exp(-(0.75 * logit(cnn) + 0.25 * logit(hand)))),
                           atol=1e-3)
    # the 10-crop summaries are scored on the 10-crop columns
    for key, col in (("cnn_10crop", "prob_cnn_10crop"), ("fused_10crop", "prob_fused_10crop"),
                     ("fused", "prob_fused")):
        assert [f["accuracy"] for f in out[key]["folds"]] == pytest.approx(
            _fold_accuracies(rows, col))
    # each fold's record names its fold (mut53b N58: the numbers dropped)
    for key in ("cnn", "hand", "fused", "cnn_10crop", "fused_10crop"):
        assert [f["fold"] for f in out[key]["folds"]] == [1, 2, 3, 4, 5]


def test_fuse_run_learns_the_bow_vocabulary_on_each_training_fold_only(twitter_like, tmp_path,
                                                                       monkeypatch):
    """gch+bow: each fold's k-means gets the descriptors of that fold's training images and
    nothing else, and the classifier gets the two blocks with their own widths (each block
    the same weight)."""
    import vsent.analyses.baselines as bl
    from vsent.analyses.baselines import BaselineConfig
    from vsent.analyses.handcrafted import extract_features
    from vsent.data import load_dataset, make_folds

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    vocab_calls, real_learn = [], bl.learn_vocabulary

    def spy_learn(descriptors, **kw):
        vocab_calls.append(list(descriptors))
        return real_learn(descriptors, **kw)

    monkeypatch.setattr(bl, "learn_vocabulary", spy_learn)
    fits = _spy_hand_fits(monkeypatch)
    fuse_run(run, "gch+bow", baseline_config=BaselineConfig(k=8, max_descriptors=2000),
             cache_dir=tmp_path / "cache")
    feats = extract_features(ds.paths, cache_dir=tmp_path / "cache", progress=False)
    folds = make_folds(ds, "campos")
    assert len(vocab_calls) == len(fits) == len(folds)
    for fold, passed, fit in zip(folds, vocab_calls, fits, strict=True):
        want = [feats.descriptors[i] for i in fold.train]
        assert len(passed) == len(want)
        assert all(np.array_equal(a, b) for a, b in zip(passed, want, strict=True))
        np.testing.assert_array_equal(fit["train"], fold.train)
        np.testing.assert_array_equal(fit["test"], np.sort(fold.test))
        assert fit["blocks"] == [64, 8] and fit["X"].shape == (len(ds), 72)
        np.testing.assert_allclose(fit["X"][:, :64], feats.gch)
        np.testing.assert_allclose(fit["X"][:, 64:].sum(1), 1, rtol=1e-5)  # l1 BoW histograms


def test_fuse_run_early_rule_joins_each_folds_own_cnn_features(twitter_like, tmp_path,
                                                                monkeypatch):
    """--rule early: fold k's classifier gets fold k's CNN features (another fold's model was
    trained on fold k's test images) next to the hand-crafted block, and its probabilities
    are the fused column."""
    from vsent.analyses.handcrafted import extract_features
    from vsent.data import load_dataset, make_folds

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.6))
    rng = np.random.default_rng(0)
    fake = {k: rng.normal(k, 1.0, (len(ds), 3)) for k in range(1, 6)}  # fold k: mean k
    monkeypatch.setattr(fusion_run, "fold_cnn_features", lambda *a, **kw: fake)
    calls = _spy_hand_fits(monkeypatch)
    out = fuse_run(run, "gch", rule="early", cache_dir=tmp_path / "cache")
    gch = extract_features(ds.paths, need_sift=False, cache_dir=tmp_path / "cache",
                           progress=False).gch
    folds = make_folds(ds, "campos")
    assert len(calls) == 2 * len(folds)  # per fold: the hand-crafted one, then the joint one
    for j, fold in enumerate(folds):
        hand, joint = calls[2 * j: 2 * j + 2]
        assert hand["blocks"] == [64] and joint["blocks"] == [3, 64]
        np.testing.assert_allclose(hand["X"], gch)
        np.testing.assert_array_equal(joint["X"][:, :3], fake[fold.index])
        np.testing.assert_allclose(joint["X"][:, 3:], gch)
        np.testing.assert_array_equal(joint["train"], fold.train)
        np.testing.assert_array_equal(joint["test"], np.sort(fold.test))
        rows = [r for r in out["rows"] if r["fold"] == fold.index]
        assert [r["name"] for r in rows] == [ds.names[i] for i in np.sort(fold.test)]
        np.testing.assert_allclose([r["prob_fused"] for r in rows], joint["res"].test)
        np.testing.assert_allclose([r["prob_hand"] for r in rows], hand["res"].test)


@pytest.mark.parametrize("method", ["logistic", "svm"])
def test_out_of_fold_probabilities_are_out_of_fold_and_ignore_the_test_rows(method):
    """train_oof (the input of choose_weight) must be predictions of models that never saw
    the row, and never saw the test rows: on noise labels an in-sample fit scores far above
    chance, out-of-fold ones do not; flipping the test labels changes nothing."""
    rng = np.random.default_rng(0)
    n, d = 60, 30
    X, y = rng.normal(size=(n, d)), rng.integers(0, 2, n)
    train, test = np.arange(40), np.arange(40, 60)
    res = hand_crafted_probabilities(X, y, train, test, method=method, Cs=[1.0], oof=True)
    assert res.train_oof.shape == (40,)
    # an in-sample fit of 30 noise columns on 40 rows nearly memorises them (so the bound
    # below can fail), out-of-fold predictions stay near chance
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1.0, max_iter=5000).fit(X[train], y[train])
    assert fitted.score(X[train], y[train]) > 0.9
    assert np.mean((res.train_oof > 0.5) == y[train]) < 0.75
    y2 = y.copy()
    y2[test] = 1 - y2[test]
    X2 = X.copy()
    X2[test] = rng.normal(size=(20, d))
    again = hand_crafted_probabilities(X2, y2, train, test, method=method, Cs=[1.0], oof=True)
    np.testing.assert_allclose(again.train_oof, res.train_oof)


def test_cli_fuse_of_a_run_that_is_no_crossval_run_leaves_nothing_in_it(tmp_path, capsys):
    """A config without 'data' (a fuse run's own, given as RUN) passed the data check, which
    read Path("") as "." (found), and RUN/fuse/<setting>/ was made before the refusal
    (audit_base24 #5)."""
    from vsent.cli import main

    run = tmp_path / "fused"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"command": "fuse", "run": "x"}))
    for name in ("predictions.csv", "summary.json"):
        (run / name).write_text("{}" if name.endswith("json") else "name,fold,label\n")
    before = sorted(p.name for p in run.iterdir())
    assert main(["fuse", str(run), "--features", "cues"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"vsent: error: {run / 'config.json'}: not a crossval config (no 'data' "
                   "entry)"]
    assert sorted(p.name for p in run.iterdir()) == before


def test_at_equal_weights_the_logit_rule_takes_the_mean_rules_decisions():
    """(a + b) / 2 > 0.5 and (logit a + logit b) / 2 > 0 both say a + b > 1: at w = 0.5 the
    two late rules label every image alike (only the probabilities differ); at another weight
    they part. The docs said the logit rule would let an over-confident CNN outvote the
    hand-crafted classifier at the default weight (audit_ens27 #3)."""
    from vsent.analyses.fusion import fuse_probabilities

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(size=50_000), rng.uniform(0, 1e-4, 5_000),
                        1 - rng.uniform(0, 1e-4, 5_000)])  # also over-confident networks
    b = rng.uniform(size=a.size)
    mean, logit = (fuse_probabilities(a, b, 0.5, r) > 0.5 for r in ("mean", "logit"))
    assert np.array_equal(mean, logit)
    assert not np.allclose(fuse_probabilities(a, b, 0.5, "mean"),
                           fuse_probabilities(a, b, 0.5, "logit"))
    mean, logit = (fuse_probabilities(a, b, 0.8, r) > 0.5 for r in ("mean", "logit"))
    assert not np.array_equal(mean, logit)


def _inner_crossval_spy(monkeypatch, prob):
    """Replace vsent.crossval.crossval (what --weight inner trains its inner runs with) by one
    that trains nothing: a new run writes its config.json, folds.json (the split it was given)
    and, for each inner test image, ``prob(label, name)`` into its predictions.csv; a run
    found reads its stored split. Returns the calls: (cfg, out, the split, resume)."""
    import csv

    import vsent.crossval

    calls = []

    def fake(cfg, out, *, resume=False, overwrite=False, progress=True, init_checked=False):
        assert init_checked  # (the run's --init was checked when it was trained: not 5x again)
        if (out / "folds.json").is_file():  # as crossval: a run keeps its own split
            assert json.loads((out / "config.json").read_text())["folds"] == cfg.folds
            doc = json.loads((out / "folds.json").read_text())
        else:
            doc = json.loads(Path(cfg.folds).read_text())
        calls.append((cfg, out, doc, resume))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"command": "crossval",
                                                     "folds": cfg.folds}))
        (out / "folds.json").write_text(json.dumps(doc))
        labels = dict(zip(*_names_labels(cfg.data), strict=True))
        with (out / "predictions.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "fold", "label", "prob_positive"])
            for entry in doc["folds"]:
                for n in entry["test"]:
                    w.writerow([n, entry["fold"], labels[n], prob(labels[n], n)])
        return {}

    monkeypatch.setattr(vsent.crossval, "crossval", fake)
    return calls


def _spread(name: str) -> float:
    """A value in [0, 0.4) of an image's name: each image its own probability."""
    import zlib

    return 0.4 * (zlib.crc32(name.encode()) % 97) / 97


def _wrong(label: int, name: str) -> float:
    """A CNN wrong on every image, each with its own confidence."""
    return (0.05 if label else 0.55) + _spread(name)


def _names_labels(data):
    from vsent.data import load_dataset

    ds = load_dataset(data, "five", validate=False)
    return ds.names, [int(v) for v in ds.labels]


def test_fuse_run_inner_weight_is_chosen_on_out_of_fold_training_predictions(
        twitter_like, tmp_path, monkeypatch):
    """--weight inner: each fold's weight is choose_weight's on the out-of-fold probabilities
    of that fold's training images (the CNN's from inner runs of the run's recipe on those
    images only, the classifier's from its own inner CV), and applied to the fold's test
    rows. Inner runs whose CNN is always wrong out of fold must hand the decision to the
    hand-crafted classifier (w < 0.5); w = 0.5 (the fixed rule) would not."""
    from vsent.data import load_dataset, make_folds

    ds = load_dataset(twitter_like, "five", validate=False)
    run, p, p10 = _random_run(tmp_path / "run", twitter_like, ds)
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(command="crossval", seed=3, fusion="gch+bow", train={"device": "cpu"})
    (run / "config.json").write_text(json.dumps(cfg))
    calls = _inner_crossval_spy(monkeypatch, _wrong)
    hand_calls = _spy_hand_fits(monkeypatch)
    out = fuse_run(run, "gch", weight="inner", inner_dir=tmp_path / "inner",
                   cache_dir=tmp_path / "cache")

    folds = make_folds(ds, "campos")
    assert len(calls) == len(folds) == 5
    for fold, (inner_cfg, inner_out, doc, resume) in zip(folds, calls, strict=True):
        assert inner_out == (tmp_path / "inner" / f"fold{fold.index}").resolve()
        assert not resume  # a new inner run: not one "--resume" found missing (fuse has none)
        assert (inner_cfg.model, inner_cfg.seed, inner_cfg.fusion) == ("smallcnn", 3, None)
        assert inner_cfg.train.device == "auto"  # this machine's, not the run's (a GPU's)
        train = {ds.names[i] for i in fold.train}
        tests = [n for e in doc["folds"] for n in e["test"]]
        assert len(doc["folds"]) == fusion_run.INNER_SPLITS
        assert sorted(tests) == sorted(train)  # every training image scored once, out of fold
        # the inner split: stratified, shuffled with the run's seed (mut53b N35: seed + 1)
        split = StratifiedKFold(5, shuffle=True, random_state=3).split(
            fold.train, ds.labels[fold.train])
        assert [sorted(e["test"]) for e in doc["folds"]] == [
            sorted(ds.names[i] for i in fold.train[b]) for _, b in split]
        for e in doc["folds"]:
            assert set(e["train"]) == train - set(e["test"])  # no outer test image anywhere
            assert {ds.labels[ds.names.index(n)] for n in e["test"]} == {0, 1}  # stratified
    assert len(out["weights"]) == 5 and all(w < 0.5 for w in out["weights"])
    y = ds.labels
    for fold, call, w in zip(folds, hand_calls, out["weights"], strict=True):
        oof = call["res"].train_oof
        assert oof is not None and np.array_equal(call["train"], fold.train)
        wrong = [_wrong(ds.labels[i], ds.names[i]) for i in fold.train]  # (by name)
        assert w == choose_weight(np.array(wrong), oof, y[fold.train])[0]
        rows = [r for r in out["rows"] if r["fold"] == fold.index]
        np.testing.assert_allclose([r["prob_fused"] for r in rows],
                                   [w * r["prob_cnn"] + (1 - w) * r["prob_hand"] for r in rows])
        np.testing.assert_allclose([r["prob_fused_10crop"] for r in rows],  # the same w
                                   [w * p10[r["name"]] + (1 - w) * r["prob_hand"] for r in rows])
    assert out["weight"] == "inner"
    assert fuse_run(run, "gch", weight="inner", inner_dir=tmp_path / "inner",
                    cache_dir=tmp_path / "cache")["weights"] == out["weights"]
    assert [c[3] for c in calls[5:]] == [True] * 5  # the inner runs found are resumed
    assert "w chosen in each fold on out-of-fold predictions of its training images (5 " \
           f"inner runs of the CNN's recipe): {', '.join(f'{w:g}' for w in out['weights'])}" \
        in fusion_markdown(out)


def test_fuse_run_inner_weight_trusts_a_cnn_that_is_right_out_of_fold(twitter_like, tmp_path,
                                                                     monkeypatch):
    """The other side of the choice: inner runs whose CNN is right on every training image
    out of fold give it the weight: w >= 0.5, where the fusion is right on every one."""
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "command": "crossval"}))
    _inner_crossval_spy(monkeypatch, lambda label, name: 1 - _wrong(label, name))  # right
    hand_calls = _spy_hand_fits(monkeypatch)
    out = fuse_run(run, "gch", weight="inner", inner_dir=tmp_path / "inner",
                   cache_dir=tmp_path / "cache")
    for call, w in zip(hand_calls, out["weights"], strict=True):
        y = call["y"][call["train"]]
        right = [1 - _wrong(ds.labels[i], ds.names[i]) for i in call["train"]]
        w_best, acc = choose_weight(np.array(right), call["res"].train_oof, y)
        assert w == w_best >= 0.5 and acc[w] == 1.0


def test_fuse_run_inner_runs_are_known_by_their_split_not_by_where_they_lie(
        twitter_like, tmp_path, monkeypatch):
    """An unfinished fusion moved (or reached by another path) resumes its inner runs with the
    split they recorded; inner runs of another split (the run's seed changed since) are
    refused, not reused: their networks saw other images (review35 #1)."""
    import shutil

    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = {**json.loads((run / "config.json").read_text()), "command": "crossval"}
    (run / "config.json").write_text(json.dumps(cfg))
    calls = _inner_crossval_spy(monkeypatch, _wrong)
    _spy_hand_fits(monkeypatch)
    first = fuse_run(run, "gch", weight="inner", inner_dir=tmp_path / "a",
                     cache_dir=tmp_path / "cache")
    specs = [c[0].folds for c in calls]
    shutil.move(tmp_path / "a", tmp_path / "b")
    again = fuse_run(run, "gch", weight="inner", inner_dir=tmp_path / "b",
                     cache_dir=tmp_path / "cache")
    assert [c[0].folds for c in calls[5:]] == specs and all(c[3] for c in calls[5:])
    assert again["weights"] == first["weights"]
    (run / "config.json").write_text(json.dumps({**cfg, "seed": 7}))
    with pytest.raises(VsentError, match=r"b/fold1 holds inner runs of another split \(the "
                                         r"run's folds, data or seed changed since"):
        fuse_run(run, "gch", weight="inner", inner_dir=tmp_path / "b",
                 cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("argv,message", [
    (["--weight", "inner", "--extra-train", "three"], "--weight inner: not with --extra-train"),
    (["--weight", "heavy"], "argument --weight: 'heavy': a number from 0 to 1, or inner"),
    (["--weight", "1.5"], "--weight 1.5 is out of range (0 .. 1, or inner)"),
])
def test_cli_fuse_inner_weight_options_refused_before_any_work(tmp_path, capsys, argv,
                                                              message):
    from vsent.cli import main

    try:
        code = main(["fuse", str(tmp_path / "run"), "--features", "gch", *argv])
    except SystemExit as e:  # argparse's own refusal
        code = e.code
    assert code == 2 and message in capsys.readouterr().err


def test_cli_fuse_inner_weight_needs_a_crossval_runs_recipe(twitter_like, tmp_path, capsys,
                                                            monkeypatch):
    """An ensemble (or a run from elsewhere) has no recipe for the inner runs to repeat."""
    from vsent.cli import main
    from vsent.data import load_dataset

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "command": "ensemble"}))
    (run / "summary.json").write_text("{}")
    assert main(["fuse", str(run), "--features", "gch", "--weight", "inner",
                 "--no-progress"]) == 2
    assert ("vsent: error: --weight inner: needs a crossval run, whose recipe the inner runs "
            "repeat (this run was made by vsent ensemble)") in capsys.readouterr().err
    assert not (run / "fuse").exists()  # refused before the fusion's folder is made


def test_cli_fuse_inner_weight_end_to_end_trains_resumes_and_reads_back(twitter_like, tmp_path,
                                                                       capsys, monkeypatch,
                                                                       caplog):
    """A real crossval run (1 epoch), fused with --weight inner: 5 inner crossval runs of its
    recipe, one per fold, each on that fold's training images only; a Ctrl-C in the third
    leaves the first two to be read back by the same command (each inner run's images in no
    test fold said once, not again by the check of its stored split), and a finished fusion
    is read back without training."""
    import vsent.crossval
    from conftest import interrupt_after
    from vsent.cli import main
    from vsent.crossval import PRESETS, RunConfig, crossval
    from vsent.data import load_dataset, make_folds

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    train = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    run = tmp_path / "run"
    crossval(RunConfig(data=str(twitter_like), model="smallcnn", init="random", train=train,
                       model_kwargs={"widths": (4, 8)}), run, progress=False)
    argv = ["fuse", str(run), "--features", "gch", "--weight", "inner", "--no-progress"]
    real, started = vsent.crossval.crossval, []
    with monkeypatch.context() as m:
        def counted(cfg, out, **kw):
            started.append(out.name)
            if len(started) == 3:
                interrupt_after(m, 0)  # Ctrl-C as the third inner run starts training
            return real(cfg, out, **kw)

        m.setattr(vsent.crossval, "crossval", counted)
        assert main(argv) == 130
    inner = run / "fuse" / "gch-mean-w-inner-logistic" / "inner"
    assert [(inner / f"fold{k}" / "summary.json").is_file() for k in (1, 2, 3)] == \
        [True, True, False]
    done = {k: (inner / f"fold{k}" / "summary.json").stat().st_mtime_ns for k in (1, 2)}
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vsent"):
        assert main(argv) == 0, capsys.readouterr().err
    line = capsys.readouterr().out
    assert "; w per fold " in line
    untested = [r.getMessage() for r in caplog.records if "in no test fold" in r.getMessage()]
    # said by each inner run that trains (the third, stopped, and the two never started),
    # not by the check of a stored split nor by a finished inner run read back (fuse's own
    # line says which images its inner runs leave out)
    assert sorted(m.split(": ")[0].replace(str(inner), "") for m in untested) == [
        "/fold3-folds.json", "/fold4-folds.json", "/fold5-folds.json", str(run / "folds.json")]
    assert {k: (inner / f"fold{k}" / "summary.json").stat().st_mtime_ns for k in (1, 2)} == done
    ds = load_dataset(twitter_like, "five", validate=False)
    for fold in make_folds(ds, "campos"):
        doc = json.loads((inner / f"fold{fold.index}" / "folds.json").read_text())
        tested = sorted(n for e in doc["folds"] for n in e["test"])
        assert tested == sorted(ds.names[i] for i in fold.train)
        inner_cfg = json.loads((inner / f"fold{fold.index}" / "config.json").read_text())
        assert (inner_cfg["train"]["epochs"], inner_cfg["model_kwargs"]) == (1, {"widths": [4, 8]})
    res = json.loads((inner.parent / "summary.json").read_text())
    assert res["weight"] == "inner" and len(res["weights"]) == 5
    stored = json.loads((inner.parent / "config.json").read_text())
    assert (stored["weight"], stored["inner_splits"]) == ("inner", 5)  # (mut53b N14)

    def no_training(*a, **kw):
        raise AssertionError("a finished fusion trained again")

    monkeypatch.setattr(vsent.crossval, "crossval", no_training)
    assert main(argv) == 0 and capsys.readouterr().out == line


def test_fusions_of_one_run_share_their_inner_runs_through_inner_dir(twitter_like, tmp_path,
                                                                      monkeypatch):
    """--inner-dir: a second fusion of the run (other features) finds the inner runs the first
    trained and trains none (review35 #2: 25 networks a setting); without --weight inner the
    option is refused."""
    from vsent.data import load_dataset

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = {**json.loads((run / "config.json").read_text()), "command": "crossval"}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "summary.json").write_text("{}")
    calls = _inner_crossval_spy(monkeypatch, _wrong)
    _spy_hand_fits(monkeypatch)
    shared = tmp_path / "inner"
    fusion_run.fuse(run, features="gch", weight="inner", inner_dir=shared, progress=False)
    _, out = fusion_run.fuse(run, features="lch", weight="inner", inner_dir=shared, progress=False)
    assert [c[3] for c in calls] == [False] * 5 + [True] * 5  # found, not trained again
    assert {c[1] for c in calls} == {(shared / f"fold{k}").resolve() for k in range(1, 6)}
    assert not (out / "inner").exists()
    with pytest.raises(VsentError, match="--inner-dir applies to --weight inner"):
        fusion_run.fuse(run, features="gch", inner_dir=shared, progress=False)


def test_fusion_markdown_heads_each_column_with_its_folds_number():
    """code37 #2: a folds JSON may number its folds as it likes (5, 2); the table headed the
    columns 1..n by position, so fold 5's accuracy stood under "fold 1"."""
    from vsent.metrics import summarize_folds

    folds = summarize_folds([{"fold": 5, "accuracy": 0.7, "precision": 0.7, "recall": 0.7,
                              "f1": 0.7},
                             {"fold": 2, "accuracy": 0.8, "precision": 0.8, "recall": 0.8,
                              "f1": 0.8}])
    res = {"features": "gch", "rule": "mean", "weight": 0.5, "method": "logistic",
           "C": [1, 1], "cnn": folds, "hand": folds, "fused": folds}
    lines = fusion_markdown(res).splitlines()
    assert "| | accuracy | fold 5 | fold 2 |" in lines
    assert "| fused (centre crop) | 0.750 +- 0.050 | 0.700 | 0.800 |" in lines
    # the weights as %g writes them: 1 - 0.7 is 0.30000000000000004 (mut53b N71: {w})
    assert "P(positive) = 0.7 x CNN + 0.3 x hand-crafted (mean rule" in fusion_markdown(
        {**res, "weight": 0.7})
    # one fold has no spread: "m (1 fold)", as the table above it in summary.md (review38 #6)
    one = summarize_folds([{"fold": 3, "accuracy": 0.75, "precision": 0.7, "recall": 0.7,
                            "f1": 0.7}])
    lines = fusion_markdown({**res, "C": [1], "cnn": one, "hand": one, "fused": one}).splitlines()
    assert "| fused (centre crop) | 0.750 (1 fold) | 0.750 |" in lines


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


def _noisy(n: int = 90, d: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(0, 1, (n, d)) + 0.35 * y[:, None] * (np.arange(d) < 6)
    return X, y


def test_svm_probabilities_are_platt_scaled():
    """method="svm" calibrates the SVM with Platt's sigmoid: each calibration fold's
    P(positive) is a logistic function of its SVM's decision value, so logit(p) is affine
    in it (mut42 fu10: isotonic calibration, a step function, passed every test)."""
    X, y = _noisy()
    model = fit_hand_crafted(X, y, method="svm", inner_splits=3, seed=0)
    for cal in model.calibrated_classifiers_:
        f = cal.estimator.decision_function(X)
        p = cal.predict_proba(X)[:, list(model.classes_).index(1)]
        z = logit(np.clip(p, 1e-12, 1 - 1e-12))
        slope, icpt = np.polyfit(f, z, 1)
        assert abs(slope) > 1e-3
        np.testing.assert_allclose(z, slope * f + icpt, atol=1e-6)


def test_the_saved_hand_crafted_model_is_fitted_with_the_runs_seed():
    """fit_hand_crafted_model(seed=s) is the classifier fuse_run fits on the fold with seed s
    (the inner CV that picks C is shuffled with it): mut42 fm04 fitted it with seed 0, so a
    run of another seed saved a classifier cross-validation never measured."""
    rng = np.random.default_rng(3)
    n = 80
    y = np.arange(n) % 2
    gch = rng.dirichlet(np.ones(64), n) + 0.004 * y[:, None] * (np.arange(64) < 8)
    feats = ImageFeatures(gch=gch.astype(np.float32), lch=np.zeros((n, 1024), np.float32),
                          descriptors=[np.zeros((0, 128), np.uint8)] * n)
    train = np.arange(n)
    config = BaselineConfig()
    X = feats.gch.astype(np.float64)
    chosen = {s: fit_hand_crafted(X[train], y[train], blocks=[64], Cs=config.Cs,
                                  inner_splits=config.inner_splits, seed=s).best_params_["clf__C"]
              for s in range(12)}
    other = [s for s in chosen if chosen[s] != chosen[0]]
    assert other, chosen  # a seed whose inner CV picks another C than seed 0's
    s = other[0]
    model = fit_hand_crafted_model(feats, y, train, "gch", config=config, seed=s)
    assert chosen[s] == model.C


# --------------------------------------------------------------------------------------------
# LateFusion (fused_model): the CNN's weight, kept through a checkpoint

def test_late_fusion_weighs_the_cnn_by_its_weight():
    """LateFusion.fuse is ``w p_cnn + (1 - w) p_hand`` (w: the CNN's weight, as in
    fuse_probabilities(p_cnn, p_hand, w)); at w = 0.5 the mean cannot tell the two apart, at
    0.8 it can (mut42 fm08: the CNN and hand-crafted probabilities swapped)."""
    from vsent.analyses.fused_model import LateFusion
    from vsent.analyses.fusion import fuse_probabilities

    hand = gch_hand_model()
    rng = np.random.default_rng(1)
    X = rng.dirichlet(np.ones(64), 6)
    p_hand = hand.proba_from_features(X)
    cnn = np.stack([1 - np.linspace(0.05, 0.95, 6), np.linspace(0.05, 0.95, 6)], axis=1)
    for rule in ("mean", "logit"):
        fused = LateFusion(hand, rule=rule, weight=0.8).fuse(cnn, X)
        want = fuse_probabilities(cnn[:, 1], p_hand, 0.8, rule)
        np.testing.assert_allclose(fused[:, 1], want, rtol=1e-6)
        np.testing.assert_allclose(fused.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(LateFusion(hand, weight=0.8).fuse(cnn, X)[:, 1],
                               0.8 * cnn[:, 1] + 0.2 * p_hand, rtol=1e-6)


def test_a_late_fusion_state_keeps_its_rule_and_weight():
    """to_state/from_state (the checkpoint's ``fusion`` entry) give back the rule *and* the
    weight (mut42 fm05: the weight came back as the default 0.5, so a model saved with
    another weight scored other probabilities once loaded)."""
    from vsent.analyses.fused_model import LateFusion

    fusion = LateFusion(gch_hand_model(), rule="logit", weight=0.3)
    again = LateFusion.from_state(fusion.to_state(), "test")
    assert (again.rule, again.weight) == ("logit", 0.3)
    X = np.random.default_rng(2).dirichlet(np.ones(64), 4)
    cnn = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    np.testing.assert_array_equal(again.fuse(cnn, X), fusion.fuse(cnn, X))


def test_the_out_of_fold_split_is_seeded_apart_from_the_c_search():
    """``oof=True``: the training rows' out-of-fold probabilities come from a split seeded with
    ``(seed + 1) % 2**32`` (the derived seed the fusion has always used, so a fused run's chosen
    weight is reproduced), not the inner C-search's ``seed`` (mut42 fu18: the same seed, so the
    out-of-fold split was the final model's C-search split and every inner weight changed)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6))
    y = (X[:, 0] + rng.normal(scale=1.5, size=60) > 0).astype(np.int64)
    train, test = np.arange(48), np.arange(48, 60)
    seed = 4
    got = fusion.hand_crafted_probabilities(X, y, train, test, seed=seed, oof=True).train_oof
    for split_seed, same in ((seed + 1, True), (seed, False)):
        est = fusion._estimator("logistic", None, fusion.DEFAULT_CS, 3, seed)
        cv = StratifiedKFold(3, shuffle=True, random_state=split_seed)
        want = cross_val_predict(est, X[train], y[train], cv=cv, method="predict_proba")[:, 1]
        assert np.allclose(got, want) is same
    # the out-of-fold models weigh the blocks as the final one does (mut53b M18: blocks dropped)
    got = fusion.hand_crafted_probabilities(X, y, train, test, blocks=[5, 1], Cs=(1.0,),
                                            seed=seed, oof=True).train_oof
    cv = StratifiedKFold(3, shuffle=True, random_state=seed + 1)
    for blocks, same in (([5, 1], True), (None, False)):
        est = fusion._estimator("logistic", blocks, (1.0,), 3, seed)
        want = cross_val_predict(est, X[train], y[train], cv=cv, method="predict_proba")[:, 1]
        assert np.allclose(got, want) is same


def test_inner_weight_accepts_exactly_one_image_of_a_class_per_inner_fold(tmp_path, monkeypatch):
    """``--weight inner`` splits each fold's training images into INNER_SPLITS stratified
    folds: INNER_SPLITS images of a class are enough (one per inner fold), one fewer is
    refused (mut42 fu20: ``<=`` refused exactly INNER_SPLITS before any inner run)."""
    k = fusion_run.INNER_SPLITS
    root = build_learnable(tmp_path / "data", n_pos=12, n_neg=k + 1)
    ds = load_dataset(root, validate=False)
    neg, pos = np.flatnonzero(ds.labels == 0), np.flatnonzero(ds.labels == 1)
    run_cfg = {"command": "crossval", "data": str(root), "folds": "stratified",
               "model": "smallcnn", "init": "random"}

    class Reached(Exception):
        pass

    def stop(*a, **kw):
        raise Reached

    monkeypatch.setattr("vsent.crossval.crossval", stop)
    enough = Fold(1, np.sort(np.r_[neg[:k], pos[:-1]]), np.r_[neg[k:], pos[-1:]])
    with pytest.raises(Reached):  # past the check: the inner runs start
        fusion_run.inner_cnn_probabilities(run_cfg, ds, [enough], tmp_path / "inner")
    short = Fold(1, np.sort(np.r_[neg[:k - 1], pos[:-1]]), np.r_[neg[k - 1:], pos[-1:]])
    with pytest.raises(VsentError, match=f"4 of one class, fewer than its {k} inner folds"):
        fusion_run.inner_cnn_probabilities(run_cfg, ds, [short], tmp_path / "inner2")
    # no positive at all (mut53b N36: without minlength, k + 1 negatives alone passed)
    negatives = Fold(1, neg, pos)
    with pytest.raises(VsentError, match=f"0 of one class, fewer than its {k} inner folds"):
        fusion_run.inner_cnn_probabilities(run_cfg, ds, [negatives], tmp_path / "inner3")


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47b): vsent.analyses.fusion mutants the suite missed


def test_probabilities_of_three_classes_are_refused_not_read_as_two() -> None:
    """positive_probability takes (N,) or (N, 2) only: a (N, 3) array (a 3-way model) has no
    P(positive) column, so reading its column 1 would fuse a class that is not 'positive'."""
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, 2\), got \(2, 3\)"):
        positive_probability(np.full((2, 3), 1 / 3))


def test_the_early_rule_is_no_rule_of_late_fusion() -> None:
    """"early" is a rule of fuse_run (one classifier), not of fuse_probabilities: a caller that
    passes it there is told so instead of getting the logit rule's numbers."""
    with pytest.raises(VsentError, match="^fusion rule 'early': choose one of mean, logit$"):
        fuse_probabilities([0.5], [0.5], rule="early")


def test_nothing_to_average_or_choose_from_is_said_in_words() -> None:
    """ensemble_mean of no model and choose_weight over no weight name what is missing (not
    numpy's "need at least one array" or max()'s "empty sequence")."""
    with pytest.raises(ValueError, match="^no probabilities to average$"):
        ensemble_mean([])
    with pytest.raises(ValueError, match="^no weights to choose from$"):
        choose_weight([0.5], [0.5], [1], weights=[])


def test_early_fusion_names_missing_or_mismatched_blocks() -> None:
    """No block, or blocks of different images (row counts), is a ValueError that says so
    (with the row counts), not numpy's concatenate message."""
    with pytest.raises(ValueError, match="^no feature blocks$"):
        early_fusion([], train=np.array([0]))
    with pytest.raises(ValueError, match=r"different numbers of rows: \[3, 2\]"):
        early_fusion([np.zeros((3, 1)), np.zeros((2, 4))], train=np.array([0, 1]))


def test_the_svms_reported_c_is_the_median_of_its_calibration_folds() -> None:
    """method="svm" fits one SVM (with its own C search) per calibration fold; HandCrafted.C,
    the C a fusion's summary reports, is their median (seed 0's data: the three folds pick
    0.01, 0.001 and 100, so the max or the mean would report 100 or 33)."""
    rng = np.random.default_rng(0)
    n, d = 60, 20  # training rows; then 6 test rows
    y = np.arange(n + 6) % 2
    X = np.vstack([rng.normal(0, 1, (n, d)), rng.normal(0, 1, (6, d))])
    X += 0.5 * y[:, None] * (np.arange(d) < 3)
    hand = hand_crafted_probabilities(X, y, np.arange(n), np.arange(n, n + 6),
                                      method="svm", inner_splits=3, seed=0)
    model = fit_hand_crafted(X[:n], y[:n], method="svm", inner_splits=3, seed=0)
    cs = sorted(float(c.estimator.best_params_["svm__C"]) for c in model.calibrated_classifiers_)
    assert len(set(cs)) == 3  # (the folds disagree: the statistic matters)
    assert cs[1] == hand.C and hand.method == "svm"


def test_ensembles_and_zero_shot_runs_are_not_rebuilt_to_check_their_width() -> None:
    """check_run_two_way skips an ensemble (its members were checked when it was made) and a
    zero-shot run (2-way by construction), whatever model its config names: either one alone
    suffices (a config naming a 1000-way caffenet is refused otherwise)."""
    wide = {"model": "caffenet", "model_kwargs": {"arch": "fc8-1000"}}
    with pytest.raises(VsentError, match="has 1000 outputs"):
        fusion_run.check_run_two_way(wide, "run")
    fusion_run.check_run_two_way({**wide, "command": "ensemble"}, "run")
    fusion_run.check_run_two_way({**wide, "zero_shot": True}, "run")


def test_a_model_this_machine_cannot_build_is_logged_not_a_traceback(monkeypatch,
                                                                     caplog) -> None:
    """A run of a model whose extra is not installed here (an ImportError when built) is not
    width-checked: only its stored predictions are read, and the log says why."""
    import vsent.models

    def cannot(*a, **kw):
        raise ImportError("no module named timm")

    monkeypatch.setattr(vsent.models, "create_model", cannot)
    caplog.set_level(logging.INFO, logger="vsent")
    fusion_run.check_run_two_way({"model": "timm/some-net"}, "the run")
    assert "the run: timm/some-net cannot be built here to check its output width" in caplog.text


def test_inner_runs_that_lost_a_training_images_prediction_name_it(tmp_path,
                                                                   monkeypatch) -> None:
    """An inner run's predictions.csv edited since (one training image's row gone) is a
    VsentError naming the file, the count and an image, and saying what mends it (not a
    KeyError from the lookup)."""
    root = build_learnable(tmp_path / "data", n_pos=6, n_neg=6)
    ds = load_dataset(root, validate=False)
    run_cfg = {"command": "crossval", "data": str(root), "folds": "stratified",
               "model": "smallcnn", "init": "random"}
    fold = Fold(1, np.sort(np.r_[np.flatnonzero(ds.labels == 0)[:5],
                                 np.flatnonzero(ds.labels == 1)[:5]]),
                np.r_[np.flatnonzero(ds.labels == 0)[5:], np.flatnonzero(ds.labels == 1)[5:]])
    lost = ds.names[fold.train[0]]

    def fake_crossval(cfg, fdir, **kw):  # every training image scored but one
        fdir.mkdir(parents=True, exist_ok=True)
        rows = ["name,fold,label,prob_positive"] + [
            f"{ds.names[i]},1,{ds.labels[i]},0.5" for i in fold.train[1:]]
        (fdir / "predictions.csv").write_text("\n".join(rows) + "\n")

    monkeypatch.setattr("vsent.crossval.crossval", fake_crossval)
    fdir = (tmp_path / "inner").resolve() / "fold1"
    with pytest.raises(VsentError, match=re.escape(
            f"{fdir / 'predictions.csv'}: no prediction of 1 training images of fold 1 "
            f"(e.g. {lost}); delete {fdir} to train its inner runs again")):
        fusion_run.inner_cnn_probabilities(run_cfg, ds, [fold], tmp_path / "inner")


@pytest.mark.parametrize("made_by", ["train", "ensemble", None])
def test_only_a_crossval_runs_recipe_can_be_repeated_by_inner_runs(made_by: str | None) -> None:
    """--weight inner repeats the run's crossval recipe: a run made by any other command (or
    none recorded) is refused, naming it."""
    cfg = {} if made_by is None else {"command": made_by}
    with pytest.raises(VsentError, match=re.escape(f"made by vsent {made_by or '?'})")):
        fusion_run.check_inner_recipe(cfg)
    fusion_run.check_inner_recipe({"command": "crossval"})


def test_an_inner_run_is_read_back_only_when_its_config_names_its_folds_file(tmp_path) -> None:
    """_inner_folds_spec returns the folds file an inner run's config.json records when its
    folds.json is the split asked for; a config that records no folds file (hand-edited, or
    of another kind of run) is refused like another split, not resumed under a new one."""
    from vsent.data.folds import save_folds
    from vsent.runs import CONFIG, FOLDS

    root = build_learnable(tmp_path / "data", n_pos=4, n_neg=4)
    ds = load_dataset(root, validate=False)
    idx = np.arange(len(ds))
    inner = [Fold(1, idx[::2], idx[1::2]), Fold(2, idx[1::2], idx[::2])]
    fdir = tmp_path / "fold1"
    fdir.mkdir()
    save_folds(inner, ds, fdir / FOLDS)
    spec = str(tmp_path / "fold1-folds.json")
    (fdir / CONFIG).write_text(json.dumps({"command": "crossval", "folds": spec}))
    assert fusion_run._inner_folds_spec(fdir, inner, ds) == spec
    (fdir / CONFIG).write_text(json.dumps({"command": "crossval"}))
    with pytest.raises(VsentError, match="holds inner runs of another split"):
        fusion_run._inner_folds_spec(fdir, inner, ds)
    # compared fold by fold: its numbers and its test rows too (mut53b N40, N41); a run
    # stopped before its folds.json was written starts again (N39)
    (fdir / CONFIG).write_text(json.dumps({"command": "crossval", "folds": spec}))
    for other in ([Fold(2, idx[::2], idx[1::2]), Fold(1, idx[1::2], idx[::2])],
                  [Fold(1, idx[::2], idx[1:-1:2]), Fold(2, idx[1::2], idx[::2])]):
        save_folds(other, ds, fdir / FOLDS)
        with pytest.raises(VsentError, match="holds inner runs of another split"):
            fusion_run._inner_folds_spec(fdir, inner, ds)
    (fdir / FOLDS).write_text("{")  # a damaged split says what mends it (mut53b N67)
    with pytest.raises(VsentError, match=re.escape(
            f"; delete {fdir} to train its inner runs again") + "$"):
        fusion_run._inner_folds_spec(fdir, inner, ds)
    (fdir / FOLDS).unlink()
    assert fusion_run._inner_folds_spec(fdir, inner, ds) is None


def test_an_ensembles_own_data_record_comes_before_its_first_members(tmp_path) -> None:
    """_data_record: an ensemble that keeps its own data.json is checked by it (the record of
    its test images), its first member's only when it has none; a "runs" list whose first
    entry is no path gives no record (not a TypeError)."""
    from vsent.provenance import DATA_RECORD

    ens, member = tmp_path / "ens", tmp_path / "member"
    for d in (ens, member):
        d.mkdir()
        (d / DATA_RECORD).write_text("{}")
    cfg = {"command": "ensemble", "runs": [str(member), "/gone/b"]}
    assert fusion_run._data_record(ens, cfg) == (ens / DATA_RECORD, ens)
    (ens / DATA_RECORD).unlink()
    assert fusion_run._data_record(ens, cfg) == (member / DATA_RECORD, member)
    assert fusion_run._data_record(ens, {**cfg, "runs": [3, str(member)]}) == (None, ens)
    assert fusion_run._data_record(ens, {**cfg, "command": "crossval"}) == (None, ens)


def test_an_empty_out_is_the_settings_own_folder(tmp_path) -> None:
    """fusion_out: ``out`` None or "" (an empty --out) is the settings' folder under the run,
    named by the features as --features reads them, the weight, the map and the extra set;
    any other ``out`` is itself."""
    run = str(tmp_path / "run") + "/"
    want = tmp_path / "run" / "fuse" / "gch+cues-logit-w0.3-svm-sqrt-extrathree"
    for out in (None, ""):
        assert fusion_run.fusion_out(run, out, " GCH + cues", "logit", 0.3, "svm", "sqrt",
                                 "three") == want
    assert fusion_run.fusion_out(run, None, "gch", "mean", "inner", "logistic") == \
        tmp_path / "run" / "fuse" / "gch-mean-w-inner-logistic"
    assert fusion_run.fusion_out(run, tmp_path / "o", "gch", "mean", 0.5, "logistic") == \
        tmp_path / "o"


def test_an_early_fusions_config_records_no_weight(twitter_like, tmp_path) -> None:
    """The early rule has no weight (one classifier on both feature sets): its config.json
    leaves "weight" out (it is written before the fold models are read, here missing)."""
    from vsent.analyses.fusion_run import fuse
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")
    with pytest.raises(VsentError, match="the early rule needs each fold's model"):
        fuse(run, tmp_path / "early", features="cues", rule="early", progress=False)
    config = json.loads((tmp_path / "early" / "config.json").read_text())
    assert config["rule"] == "early" and "weight" not in config


def test_a_fusions_config_records_only_the_options_given(twitter_like, tmp_path,
                                                         monkeypatch) -> None:
    """config.json of vsent fuse (written before the work): the histogram map, the extra set
    and inner_splits only when asked for (options at their defaults stay out, so fusions
    made before them stay finished); --weight inner records its INNER_SPLITS."""
    from vsent.data import load_dataset

    class Stop(Exception):
        pass

    def stop(*a, **kw):
        raise Stop

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "command": "crossval"}))
    (run / "summary.json").write_text("{}")
    monkeypatch.setattr(fusion_run, "fuse_run", stop)
    optional = {"histogram_map", "extra_train", "inner_splits"}
    for kwargs, want in (({}, {}), ({"histogram_map": "sqrt"}, {"histogram_map": "sqrt"}),
                         ({"weight": "inner"}, {"inner_splits": fusion_run.INNER_SPLITS})):
        with pytest.raises(Stop):
            fusion_run.fuse(run, None, features="gch", progress=False, **kwargs)
        out = fusion_run.fusion_out(run, None, "gch", "mean", kwargs.get("weight", 0.5), "logistic",
                                kwargs.get("histogram_map", "none"))
        config = json.loads((out / "config.json").read_text())
        assert {k: config[k] for k in optional if k in config} == want, kwargs


def test_a_run_that_records_no_seed_is_fused_with_seed_0(tmp_path) -> None:
    """run_seed: crossval's default seed is 0, so a config.json without "seed" (an older run)
    is fused with seed 0, the seed its folds were shuffled with; a recorded seed is used."""
    assert fusion_run.run_seed(tmp_path, {}) == 0
    assert fusion_run.run_seed(tmp_path, {"seed": 7}) == 7


def test_a_text_weight_other_than_inner_is_refused_naming_it(tmp_path) -> None:
    """--weight takes a number in [0, 1] or "inner": any other text (here "0.5" as text, as
    a caller passing the option's string) is a VsentError naming it, before the run is read,
    not a TypeError from comparing text with numbers."""
    with pytest.raises(VsentError, match=re.escape(
            "--weight '0.5' is out of range (0 .. 1, or inner)")):
        fuse_run(tmp_path / "no-run", "gch", weight="0.5")


def test_a_bad_extra_train_set_is_refused_before_the_run_is_read(tmp_path) -> None:
    """--extra-train takes a larger Twitter subset (four, three), and a late rule only: both
    refused naming the option before any work (here, before the missing run is noticed)."""
    with pytest.raises(VsentError, match=r"^--extra-train 'five': choose one of four, three$"):
        fuse_run(tmp_path / "no-run", "gch", extra_train="five")
    with pytest.raises(VsentError, match="^--extra-train needs a late rule"):
        fuse_run(tmp_path / "no-run", "gch", rule="early", extra_train="three")


def test_a_stored_fusion_is_compared_on_every_option_but_those_recorded_since(
        tmp_path) -> None:
    """_compared_keys: a fusion stored before hand_crafted/seed were recorded is compared
    without them (it stays finished), but an option it lacks because it was left at its
    default (here --histogram-map) is compared: a finished fusion is not read back as one
    with another map; an early rule's unused weight is never compared; overwrite compares
    nothing."""
    base = {"command": "fuse", "run": "/r", "features": "gch", "rule": "mean", "weight": 0.5,
            "classifier": "logistic"}
    (tmp_path / "config.json").write_text(json.dumps(base))
    now = {**base, "histogram_map": "sqrt", "hand_crafted": {}, "seed": 0}
    keys = fusion_run._compared_keys(tmp_path, now, overwrite=False)
    assert set(keys) == {*base, "histogram_map"}
    early = {**now, "rule": "early"}
    del early["weight"]
    assert "weight" not in fusion_run._compared_keys(tmp_path, early, overwrite=False)
    assert fusion_run._compared_keys(tmp_path, now, overwrite=True) is None
    # --weight inner's inner_splits is recorded since too: a fusion stored without it is
    # compared on the rest (mut50d R15)
    inner = {**base, "weight": "inner"}
    (tmp_path / "config.json").write_text(json.dumps(inner))
    later = {**inner, "inner_splits": fusion_run.INNER_SPLITS, "hand_crafted": {}, "seed": 0}
    assert set(fusion_run._compared_keys(tmp_path, later, overwrite=False)) == set(inner)
    # an option only the stored fusion has (a --histogram-map left at its default now) is
    # compared too: that fusion is not read back as this one (mut50d R19)
    (tmp_path / "config.json").write_text(json.dumps({**base, "histogram_map": "sqrt"}))
    assert set(fusion_run._compared_keys(tmp_path, base, overwrite=False)) == {
        *base, "histogram_map"}


def test_fuse_run_writes_the_folds_it_used(twitter_like, tmp_path) -> None:
    """folds_file: the fusion's output folder records its folds like a crossval run
    (vsent fuse's folds.json): the run's own split, fold by fold."""
    from vsent.data import load_dataset, make_folds

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    folds_file = tmp_path / "folds.json"
    fuse_run(run, "cues", folds_file=folds_file, cache_dir=tmp_path / "cache")
    for a, b in zip(make_folds(ds, str(folds_file)), make_folds(ds, "campos"), strict=True):
        assert a.index == b.index and np.array_equal(a.test, b.test)


# mutation round 47 (mut47c): vsent.cli.fuse mutants the suite missed


def _fuse_spy(monkeypatch, res: dict) -> list[dict]:
    """Replace fusion_run.fuse with one that records its arguments and returns ``res``."""

    calls: list[dict] = []

    def spy(run, out, **kwargs):
        calls.append({"run": run, "out": out, **kwargs})
        return res, Path(out)

    monkeypatch.setattr(fusion_run, "fuse", spy)
    return calls


FUSED = {"fused": {"accuracy": {"mean": 0.75, "std": 0.05}},
         "cnn": {"accuracy": {"mean": 0.7, "std": 0.1}}}


def test_cli_fuse_defaults_are_the_rule_fixed_in_advance(monkeypatch, capsys):
    """Left out, the options are the rule fixed in advance (gch+bow, mean, w = 0.5, logistic,
    no map, no extra images), written to the settings' own folder under the run."""
    from vsent.cli import main

    calls = _fuse_spy(monkeypatch, FUSED)
    assert main(["fuse", "r"]) == 0
    assert calls.pop() == {
        "run": "r", "out": "r/fuse/gch+bow-mean-w0.5-logistic", "features": "gch+bow",
        "rule": "mean", "weight": 0.5, "classifier": "logistic", "histogram_map": "none",
        "extra_train": None, "overwrite": False, "inner_dir": None, "progress": False}
    assert capsys.readouterr().out == (
        "fused accuracy 0.750 +- 0.050 (CNN alone 0.700); results in "
        "r/fuse/gch+bow-mean-w0.5-logistic/summary.md\n")


def test_cli_fuse_options_reach_the_fusion_and_name_its_folder(monkeypatch, capsys):
    from vsent.cli import main

    calls = _fuse_spy(monkeypatch, {**FUSED, "weights": [0.25, 0.75]})
    monkeypatch.setattr("vsent.progress.on_terminal", lambda progress: progress)  # a terminal
    assert main(["fuse", "r", "--features", "gch", "--rule", "logit", "--weight", "inner",
                 "--classifier", "svm", "--histogram-map", "sqrt", "--extra-train", "four",
                 "--inner-dir", "shared", "--overwrite", "--no-progress"]) == 0
    out = "r/fuse/gch-logit-w-inner-svm-sqrt-extrafour"
    assert calls.pop() == {
        "run": "r", "out": out, "features": "gch", "rule": "logit", "weight": "inner",
        "classifier": "svm", "histogram_map": "sqrt", "extra_train": "four",
        "overwrite": True, "inner_dir": "shared", "progress": False}
    # the weights chosen per fold are said
    assert "(CNN alone 0.700; w per fold 0.25, 0.75)" in capsys.readouterr().out
    assert main(["fuse", "r", "--weight", "0.7", "--out", "o"]) == 0
    call = calls.pop()
    assert (call["weight"], call["out"], call["progress"]) == (0.7, "o", True)
    # spaces around the word are allowed as around a number (mut54a F37: " inner " refused)
    assert main(["fuse", "r", "--weight", " inner ", "--out", "o"]) == 0
    assert calls.pop()["weight"] == "inner"


def test_cli_fuse_a_summary_without_the_cnns_accuracy_is_one_line(monkeypatch, capsys):
    from vsent.cli import main

    _fuse_spy(monkeypatch, {"fused": FUSED["fused"]})
    assert main(["fuse", "r"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "not a fusion summary (KeyError('cnn'))" in err[0]
    # an accuracy that is no {mean, std} (TypeError) or whose mean is no number (ValueError):
    # the same one line, no traceback (mut57c)
    for cnn, why in ((0.7, "TypeError("), ({"mean": "0.7", "std": 0.1}, "ValueError(")):
        _fuse_spy(monkeypatch, {**FUSED, "cnn": {"accuracy": cnn}})
        assert main(["fuse", "r"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and f"not a fusion summary ({why}" in err[0]


def test_cli_fuse_inner_dir_expands_the_home_folder(monkeypatch, tmp_path):
    from vsent.cli import main

    calls = _fuse_spy(monkeypatch, {**FUSED, "weights": [0.5]})
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["fuse", "r", "--weight", "inner", "--inner-dir", "~/shared"]) == 0
    assert calls.pop()["inner_dir"] == str(tmp_path / "shared")


# --------------------------------------------------------------------------------------------
# mutation round 50 (mut50d): vsent.analyses.fusion and fusion_run mutants the suite missed


def test_a_negative_probability_is_refused_and_predictions_are_int64() -> None:
    """positive_probability refuses below 0 as it refuses above 1 (mut50d F03: only ``> 1``
    and NaN were tested); predict's classes are int64, as documented (F07: int32 passed)."""
    with pytest.raises(ValueError, match=r"^probabilities must be finite and in \[0, 1\]$"):
        fuse_probabilities([-0.1], [0.5])
    with pytest.raises(ValueError, match="finite and in"):
        positive_probability(np.array([[1.1, -0.1]]))
    assert predict([0.7, 0.2]).dtype == np.int64


def test_the_logit_rule_clips_a_hard_probability_at_eps() -> None:
    """A hard 1 is clipped to 1 - 1e-6 (fusion.EPS) before its logit: fused at w = 0.5 with a
    0.5 it is sigmoid(logit(1 - 1e-6) / 2) = 1 / (1 + sqrt(1e-6 / (1 - 1e-6))) = 0.999001
    (mut50d F13: EPS 1e-7 gave 0.999684 and passed "stays finite")."""
    assert fusion.EPS == 1e-6
    want = 1 / (1 + math.sqrt(1e-6 / (1 - 1e-6)))
    got = fuse_probabilities([1.0, 0.0], [0.5, 0.5], 0.5, "logit")
    assert got.tolist() == pytest.approx([want, 1 - want], rel=1e-12)
    # the second input is clipped at both ends alike (mut53b M05: its hard 1 unclipped gave 1.0)
    got = fuse_probabilities([0.5, 0.5], [1.0, 0.0], 0.5, "logit")
    assert got.tolist() == pytest.approx([want, 1 - want], rel=1e-12)


def test_choose_weight_scores_each_weight_with_the_rule_asked() -> None:
    """A CNN confidently wrong (0.99 for a negative) against a classifier right (0.2): the mean
    rule is right up to w = 0.3, the logit rule only up to w = 0.2 (0.3 logit 0.99 + 0.7 logit
    0.2 = 0.41 > 0), so the weights chosen differ (mut50d F25: the rule was not passed on, so
    --rule logit --weight inner chose the mean rule's weight)."""
    w, acc = choose_weight([0.99], [0.2], [0], rule="logit")
    assert w == 0.2
    assert [k for k, v in acc.items() if v == 1.0] == [0.0, 0.1, 0.2]
    assert choose_weight([0.99], [0.2], [0])[0] == 0.3


def test_fuse_run_fits_with_the_runs_seed_and_the_configs_inner_splits(twitter_like, tmp_path,
                                                                        monkeypatch) -> None:
    """Each fold's classifier is fitted with the run's seed (config.json: 5 here, the seed a
    saved fused model is fitted with) and BaselineConfig.inner_splits; a training fold with
    fewer images of a class than inner splits is refused in words before any fit (mut50d R12:
    seed 0, R11: inner_splits dropped, its single C hid it; R13: the check dropped, sklearn's
    ValueError instead)."""
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.6))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "seed": 5}))
    seen = []
    real = fusion_run.hand_crafted_probabilities

    def spy(X, y, train, test, **kw):
        seen.append((kw["seed"], kw["inner_splits"]))
        return real(X, y, train, test, **kw)

    monkeypatch.setattr(fusion_run, "hand_crafted_probabilities", spy)
    fuse_run(run, "gch", baseline_config=BaselineConfig(Cs=(1.0,), inner_splits=2),
             cache_dir=tmp_path / "cache")
    assert seen == [(5, 2)] * 5
    with pytest.raises(VsentError, match=r"of one class, fewer than --inner-splits 20; use"):
        fuse_run(run, "gch", baseline_config=BaselineConfig(inner_splits=20),
                 cache_dir=tmp_path / "cache")
    assert len(seen) == 5


def test_a_weight_of_exactly_0_or_1_is_a_fusion_and_names_its_folder_as_g_formats_it() -> None:
    """The weight's bounds are inclusive (w = 1: the CNN alone, w = 0: the classifier alone;
    mut50d R24: ``0 < w < 1`` refused both), and the default folder writes it as ``%g``
    does, 1.0 as w1 (R23: ``w1.0``, another folder than the CLI's ``--weight 1``)."""
    for w in (0.0, 1.0):
        fusion_run._check_options("mean", w, "logistic", None)
    assert fusion_run.default_fusion_dir("r", "gch", "mean", 1.0, "logistic") == \
        "r/fuse/gch-mean-w1-logistic"
    assert fusion_run.default_fusion_dir("r/", "gch", "logit", 0.0, "svm") == \
        "r/fuse/gch-logit-w0-svm"


def test_an_early_fusions_markdown_says_one_classifier_and_no_weight() -> None:
    """The early rule's summary.md heads its table as early fusion of the CNN's features, with
    no formula of weights (mut50d R37: it got the late rules' "P(positive) = 0.5 x CNN"
    formula, a weight the early rule never used)."""
    from vsent.metrics import summarize_folds

    folds = summarize_folds([{"fold": 1, "accuracy": 0.7, "precision": 0.7, "recall": 0.7,
                              "f1": 0.7}])
    res = {"features": "cues", "rule": "early", "weight": 0.5, "method": "svm", "C": [0.1],
           "cnn": folds, "hand": folds, "fused": folds}
    text = fusion_markdown(res)
    assert text.startswith("## Early fusion of the CNN's features with cues\n\nP(positive) of "
                           "one linear SVM + Platt scaling on the fold model's penultimate "
                           "features (centre crop) and cues, each block the same weight, "
                           "fitted on each training fold, C by inner CV: 0.1\n")
    assert "x CNN" not in text


def test_the_early_rules_c_is_its_joint_classifiers(twitter_like, tmp_path, monkeypatch):
    """--rule early fuses by one classifier on the CNN's features and the blocks: the C said
    per fold (summary.json, summary.md) is that classifier's, not the hand-crafted one's
    fitted beside it for the "hand" column (mut50d R09; each is given a one-C grid here, so
    the two differ)."""
    from vsent.data import load_dataset, make_folds

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.6))
    rng = np.random.default_rng(0)
    fake = {k: rng.normal(size=(len(ds), 3)) for k in range(1, 6)}
    monkeypatch.setattr(fusion_run, "fold_cnn_features", lambda *a, **kw: fake)
    real = fusion.hand_crafted_probabilities

    def spy(X, y, train, test, **kw):
        joint = len(kw["blocks"]) == 2  # [CNN width, GCH width]
        # (a C of each fold's own: said in the folds' order, mut53b N62)
        cs = (0.37 + int(min(test)),) if joint else (0.1,)
        return real(X, y, train, test, **{**kw, "Cs": cs})

    monkeypatch.setattr(fusion_run, "hand_crafted_probabilities", spy)
    out = fuse_run(run, "gch", rule="early", cache_dir=tmp_path / "cache")
    want = [0.37 + int(min(f.test)) for f in make_folds(ds, "campos")]
    assert out["C"] == pytest.approx(want) and want != want[::-1]
    assert f"C by inner CV: {', '.join(f'{c:g}' for c in want)}\n" in fusion_markdown(out)


def test_the_hand_crafted_classifiers_c_search_is_the_documented_one() -> None:
    """fit_hand_crafted's logistic model: C searched over the grid given, on log-loss, by a
    shuffled StratifiedKFold seeded with ``seed``, each block weighed by its width; the svm's
    Platt-scaled SVM weighs the blocks the same way. Its C, calibration and probabilities
    change little on a toy set, so the settings are read from the fitted search (mut50d F35:
    an unshuffled inner CV, F36: accuracy scoring, F38/F43: blocks dropped, F39: C fixed at
    1, all passed)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 15)
    X = rng.normal(size=(30, 3)) + y[:, None] * [1.0, 0.0, 0.5]
    model = fit_hand_crafted(X, y, blocks=[2, 1], Cs=(0.1, 1.0), inner_splits=3, seed=7)
    assert model.scoring == "neg_log_loss"
    assert model.param_grid == {"clf__C": [0.1, 1.0]}
    cv = model.cv
    assert isinstance(cv, StratifiedKFold)
    assert (cv.n_splits, cv.shuffle, cv.random_state) == (3, True, 7)
    # left out, the inner CV has the baselines' number of folds, as hand_crafted_probabilities'
    # (mut58g U41: 5 folds)
    default = fit_hand_crafted(X, y, blocks=[2, 1], Cs=(1.0,), seed=7)
    assert default.cv.n_splits == BaselineConfig().inner_splits == 3
    scale = model.best_estimator_.named_steps["scale"]
    np.testing.assert_allclose(scale.weights_, [2 ** -0.5, 2 ** -0.5, 1.0])
    svm = fit_hand_crafted(X, y, blocks=[2, 1], method="svm", Cs=(0.1, 1.0), inner_splits=3,
                           seed=7)
    for calibrated in svm.calibrated_classifiers_:
        scale = calibrated.estimator.best_estimator_.named_steps["scale"]
        np.testing.assert_allclose(scale.weights_, [2 ** -0.5, 2 ** -0.5, 1.0])
        # each calibration fold's C search: the same seeded split (mut53b M23: seed 0, M24:
        # another number of splits)
        cv = calibrated.estimator.cv
        assert (cv.n_splits, cv.shuffle, cv.random_state) == (3, True, 7)
    # the calibration folds: the shuffled, seeded split too (M22: an unshuffled 3-fold cv)
    assert (svm.cv.n_splits, svm.cv.shuffle, svm.cv.random_state) == (3, True, 7)


def test_fuse_run_inner_weight_is_chosen_by_the_rule_fused(twitter_like, tmp_path,
                                                           monkeypatch) -> None:
    """--rule logit --weight inner: each fold's weight is the logit rule's best on the
    out-of-fold predictions, not the mean rule's (mut50d R05: choose_weight was called without
    the rule; with a CNN confidently wrong out of fold the two rules choose apart)."""
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "command": "crossval"}))
    _inner_crossval_spy(monkeypatch, _wrong)
    hand_calls = _spy_hand_fits(monkeypatch)
    out = fuse_run(run, "gch", rule="logit", weight="inner", inner_dir=tmp_path / "inner",
                   cache_dir=tmp_path / "cache")
    apart = 0
    for call, w in zip(hand_calls, out["weights"], strict=True):
        y = call["y"][call["train"]]
        wrong = np.array([_wrong(ds.labels[i], ds.names[i]) for i in call["train"]])
        assert w == choose_weight(wrong, call["res"].train_oof, y, rule="logit")[0]
        apart += w != choose_weight(wrong, call["res"].train_oof, y)[0]
    assert apart > 0


def test_a_runs_stratified_folds_are_rebuilt_with_its_seed(twitter_like, tmp_path) -> None:
    """A run without folds.json whose config says ``"folds": "stratified"`` is fused on the
    folds its seed drew (mut53b N09: seed 0 drew others, and every fold's predictions were
    refused as another fold's)."""
    from vsent.data import load_dataset, make_folds

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "folds": "stratified", "seed": 3}))
    _, _, _, folds, seed = fusion_run._open_fused_run(run)
    tests = [f.test.tolist() for f in folds]
    assert seed == 3
    assert tests == [f.test.tolist() for f in make_folds(ds, "stratified", seed=3)]
    assert tests != [f.test.tolist() for f in make_folds(ds, "stratified", seed=0)]


def test_the_hand_crafted_inputs_cover_the_extra_images_as_the_run_made_them(
        twitter_like, monkeypatch) -> None:
    """--extra-train: the extra images are those of the run's own subset and skip_bad
    (config.json), and every hand-crafted block has a row for each of them, the cues too
    (mut53b N61: subset "five", N34: skip_bad False, N33: cues of the run's images only)."""
    import vsent.data.extra as extra_mod
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    seen = []
    real = extra_mod.extra_train_set

    def spy(dataset, subset, extra_train, **kw):
        seen.append((subset, extra_train, kw))
        return real(dataset, "five", extra_train)

    monkeypatch.setattr(extra_mod, "extra_train_set", spy)
    monkeypatch.setitem(fusion_run._FUSION_ONLY, "cues",
                        lambda dataset, *a: np.zeros((len(dataset), 10)))
    joint, feats, mats = fusion_run._hand_inputs(
        {"subset": "four", "skip_bad": True}, ds, ["cues"], "three", BaselineConfig(), None,
        None, False)
    assert seen == [("four", "three", {"skip_bad": True})]
    assert feats is None and len(joint.dataset) == len(ds) + len(joint.extra_index) > len(ds)
    assert mats["cues"].shape == (len(joint.dataset), 10)


def test_the_inner_weight_without_inner_dir_is_said_in_words(twitter_like, tmp_path) -> None:
    """fuse_run(weight="inner") needs the folder its inner runs train in: a ValueError naming
    it (mut53b N57: without the check, a TypeError from Path(None))."""
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    with pytest.raises(ValueError, match="^weight 'inner' needs inner_dir, where its inner "
                                         "runs train$"):
        fuse_run(run, "gch", weight="inner")


def test_extra_train_is_checked_against_the_runs_own_subset_before_out_is_made(
        twitter_like, tmp_path) -> None:
    """A four-agree run takes three-agree extras only: `--extra-train four` is refused by the
    run's subset before --out is made (mut53b N60: checked against five-agree, it passed the
    check and --out was made before the refusal)."""
    from vsent.analyses.fusion_run import fuse
    from vsent.data import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    run = _fake_run(tmp_path / "run", twitter_like, dict.fromkeys(ds.names, 0.5))
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "subset": "four"}))
    (run / "summary.json").write_text("{}")
    out = tmp_path / "fused"
    with pytest.raises(VsentError, match=r"^--extra-train four: must be a larger agreement "
                                         r"subset than the cross-validated four-agree \(choose "
                                         r"from three\)$"):
        fuse(run, out, features="gch", extra_train="four", progress=False)
    assert not out.exists()


@pytest.mark.parametrize("bad_y", [
    np.array([0, 1] * 5)[:, None],  # a column: broadcast to (10, 10), every accuracy 0.5
    np.array([1]),  # broadcast: the share of positive predictions
    np.array(["negative", "positive"] * 5),  # never == the predicted 0/1: all accuracies 0
    np.array([0, 2] * 5),
])
def test_choose_weight_refuses_labels_that_broadcast_or_are_not_0_1(bad_y):
    y = np.array([0, 1] * 5)
    p_a, p_b = np.where(y == 1, 0.9, 0.1), np.full(10, 0.3)
    assert fusion.choose_weight(p_a, p_b, y)[1][1.0] == 1.0
    with pytest.raises(ValueError, match=r"y must be labels 0/1 of shape \(10,\)"):
        fusion.choose_weight(p_a, p_b, bad_y)


def test_hand_crafted_probabilities_takes_boolean_masks_and_refuses_other_labels():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    X = rng.normal(size=(40, 4)) + y[:, None]
    train = np.arange(40) < 30
    by_mask = fusion.hand_crafted_probabilities(X, y, train, ~train)
    by_index = fusion.hand_crafted_probabilities(X, y, np.arange(30), np.arange(30, 40))
    np.testing.assert_array_equal(by_mask.test, by_index.test)
    with pytest.raises(ValueError, match="y must hold labels 0/1"):
        fusion.hand_crafted_probabilities(X, y * 2, np.arange(30), np.arange(30, 40))
    # a mask and indices that share a row (disjoint_rows, as linear_probe's)
    with pytest.raises(ValueError, match=r"^train and test rows overlap \(1 rows, e\.g\. "
                                         r"\[29\]\)$"):
        fusion.hand_crafted_probabilities(X, y, train, np.arange(29, 40))
