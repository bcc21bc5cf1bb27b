"""A late-fused model that travels in a checkpoint (vsent.analyses.fused_model): its hand-crafted
half reproduces what cross-validation measured, and finetune, predict, serve and the card use it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.cluster import MiniBatchKMeans

from conftest import save_image, sentiment_image
from vsent.analyses import handcrafted as hc
from vsent.analyses.baselines import BaselineConfig
from vsent.analyses.fused_model import HandCraftedModel, LateFusion, fit_hand_crafted_model
from vsent.analyses.fusion import (
    baseline_fold_features,
    fuse_probabilities,
    hand_crafted_probabilities,
)
from vsent.cli import main
from vsent.data import load_dataset, load_rgb, make_folds
from vsent.errors import VsentError
from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint
from vsent.predict import Predictor


def _fold(root):
    ds = load_dataset(root, "five", validate=False)
    fold = make_folds(ds, "campos")[0]
    return ds, np.sort(fold.train), np.sort(fold.test)


@pytest.mark.parametrize("features, config", [
    ("gch+bow", None), ("gch+lch", BaselineConfig(histogram_map="sqrt")),
    ("gch", BaselineConfig(Cs=(0.37,), inner_splits=2))])
def test_saved_classifier_gives_the_probabilities_cross_validation_measured(
        twitter_like, tmp_path, features, config):
    ds, train, test = _fold(twitter_like)
    sift = (config or BaselineConfig()).sift
    grid = {"Cs": (config or BaselineConfig()).Cs,
            "inner_splits": (config or BaselineConfig()).inner_splits}
    feats = hc.extract_features(ds.paths, sift=sift, need_sift="bow" in features,
                                cache_dir=tmp_path / "cache", progress=False)
    model = fit_hand_crafted_model(feats, ds.labels, train, features, config=config, seed=0)
    # what fuse_run computes for this fold: one block matrix per name, the same classifier
    mats, widths = [], []
    for name in features.split("+"):
        X, w = baseline_fold_features(feats, train, name, config)
        mats.append(X)
        widths += w
    want = hand_crafted_probabilities(np.hstack(mats), ds.labels, train, test, blocks=widths,
                                      seed=0, **grid)
    got = model.proba_from_features(model.dataset_features(feats, test))
    np.testing.assert_allclose(got, want.test, rtol=1e-9, atol=1e-12)
    assert model.C == want.C and model.C in grid["Cs"]
    assert model.n_train == len(train) and model.dim == sum(widths)
    assert np.ptp(got) > 0.05  # the images really score differently
    # one image from its file, as predict and serve compute it = the cached dataset's row
    for i in test[:3]:
        row = model.features(np.asarray(load_rgb(ds.paths[i])))
        np.testing.assert_allclose(row, model.dataset_features(feats, [i])[0], atol=1e-12)


def test_nearest_centres_are_the_k_means_words():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (3000, 128)).astype(np.uint8)
    km = hc.learn_vocabulary([X], k=40, seed=0)
    assert isinstance(km, MiniBatchKMeans)
    words = km.predict(X.astype(np.float32))
    assert np.array_equal(hc.nearest_centres(X, km.cluster_centers_), words)
    np.testing.assert_array_equal(hc.bow_histograms(km.cluster_centers_, [X[:500], X[500:]]),
                                  hc.bow_histograms(km, [X[:500], X[500:]]))


# --------------------------------------------------------------------------------------------
# a fused checkpoint: saved, read back, applied by Predictor


def _fused_checkpoint(tmp_path, *, scale: float = 200.0):
    """smallcnn (scores spread out) + GCH+BoW fitted on 12 warm/cold images."""
    rng = np.random.default_rng(3)
    labels = np.array([1, 0] * 6)
    paths = [save_image(sentiment_image(int(y), rng, (48, 40)), tmp_path / f"img/{i}.png")
             for i, y in enumerate(labels)]
    config = BaselineConfig(k=16)
    feats = hc.extract_features(paths, sift=config.sift, cache_dir=tmp_path / "cache",
                                progress=False)
    fusion = LateFusion(fit_hand_crafted_model(feats, labels, np.arange(12), "gch+bow",
                                               config=config))
    torch.manual_seed(0)
    net = create_model("smallcnn")
    with torch.no_grad():
        net.fc.weight.mul_(scale)
    path = save_checkpoint(tmp_path / "fused.pt", net, fusion=fusion.to_state())
    return path, fusion, paths, labels


def test_fused_checkpoint_loads_safely_and_predicts_the_fused_score(tmp_path):
    path, fusion, paths, labels = _fused_checkpoint(tmp_path)
    ckpt = torch.load(path, weights_only=True)  # plain types and tensors only
    assert ckpt["fusion"]["blocks"] == ["gch", "bow"]
    pred = Predictor.from_checkpoint(path, device="cpu")
    assert pred.fusion is not None and pred.fusion.features == "gch+bow"
    np.testing.assert_array_equal(pred.fusion.hand.vocabulary, fusion.hand.vocabulary)
    np.testing.assert_array_equal(pred.fusion.hand.coef, fusion.hand.coef)
    # a REPL shows it in a line or two, not its arrays (trial40 F9: 350 lines)
    shown = repr(pred.fusion)
    assert "blocks=('gch', 'bow')" in shown and "n_train=" in shown and len(shown) < 600

    cnn = Predictor(pred.model, device="cpu").predict_proba(paths)[:, 1]
    hand = fusion.hand.predict_proba([np.asarray(load_rgb(p)) for p in paths])
    assert np.mean((hand > 0.5) == labels) == 1.0  # warm vs cold: colour separates them
    want = 0.5 * cnn + 0.5 * hand
    got = pred.predict_proba(paths)
    np.testing.assert_allclose(got[:, 1], want, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)
    rows = list(pred.score([*paths[:2], tmp_path / "missing.jpg"]))
    np.testing.assert_allclose([r["prob_positive"] for r in rows[:2]], want[:2], atol=1e-5)
    assert rows[2]["error"] and rows[2]["prob_positive"] is None
    assert rows[2]["path"] == str(tmp_path / "missing.jpg") and rows[2]["label"] is None
    assert [r["error"] for r in rows[:2]] == ["", ""]
    assert [r["label"] for r in rows[:2]] == [("positive" if p > 0.5 else "negative")
                                              for p in want[:2]]
    assert fuse_probabilities(cnn, hand)[0] == pytest.approx(want[0])


def test_hand_features_of_another_shape_or_not_finite_are_named(tmp_path):
    """api37 #9: five columns too few were numpy's "cannot reshape array of size 10 into shape
    (564)"; NaN features were "probabilities must be finite", of probabilities never given."""
    path, _, paths, _ = _fused_checkpoint(tmp_path)
    pred = Predictor.from_checkpoint(path, device="cpu")
    arrays = np.stack([pred.decode(p) for p in paths[:2]])
    feats = np.stack([pred.hand_features(p) for p in paths[:2]])
    d = feats.shape[1]
    with pytest.raises(ValueError, match=rf"^hand_features must be of shape \(N, {d}\) \(the "
                                         r"gch\+bow features of each image; one image.s: "
                                         r"features\[None\]\), got \(2, 5\)$"):
        pred.predict_arrays(arrays, feats[:, :5])
    with pytest.raises(ValueError, match=r"^hand_features hold NaN/inf$"):
        pred.predict_arrays(arrays, np.full_like(feats, np.nan))
    assert pred.predict_arrays(arrays, feats).shape == (2, 2)


def test_a_damaged_fusion_entry_is_named(tmp_path):
    path, fusion, _, _ = _fused_checkpoint(tmp_path)
    state = fusion.to_state()
    with pytest.raises(VsentError, match=r"^x\.pt: its fusion entry is not a "
                                         r"vsent-late-fusion/1 state$"):
        LateFusion.from_state({**state, "format": "other"}, where="x.pt")
    with pytest.raises(VsentError, match=r"^x\.pt: incomplete fusion entry \(.*coef.*\)$"):
        LateFusion.from_state({k: v for k, v in state.items() if k != "coef"}, where="x.pt")
    with pytest.raises(VsentError, match=r"^x\.pt: fusion entry with inconsistent column "
                                         r"counts$"):
        LateFusion.from_state({**state, "mean": state["mean"][:3]}, where="x.pt")
    for bad in ({"rule": "median"}, {"weight": 1.5}, {"weight": "heavy"}):
        with pytest.raises(VsentError, match=r"^x\.pt: fusion entry with a bad rule or weight"):
            LateFusion.from_state({**state, **bad}, where="x.pt")
    save_checkpoint(tmp_path / "bad.pt", create_model("smallcnn"),
                    fusion={**state, "blocks": ["gch", "fv"]})
    with pytest.raises(VsentError, match="a saved model can carry the blocks gch, lch, bow"):
        Predictor.from_checkpoint(tmp_path / "bad.pt")


def test_fused_checkpoint_refuses_what_scores_the_network_alone(tmp_path, capsys):
    path, _, paths, _ = _fused_checkpoint(tmp_path)
    from vsent.export import ExportError, export_model

    with pytest.raises(ExportError, match="late-fused model .*network alone"):
        export_model(path, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    assert main(["predict", "--model", str(path), "--regions", str(paths[0])]) == 2
    assert "--regions scores with the network alone" in capsys.readouterr().err
    pytest.importorskip("ray")
    assert main(["predict", "--model", str(path), "--engine", "ray", str(paths[0])]) == 2
    assert "--engine ray scores networks alone" in capsys.readouterr().err


def test_service_gives_the_fused_score(tmp_path):
    pytest.importorskip("uvicorn")
    import base64
    import io

    from PIL import Image

    from test_serve import post, running_server
    from vsent.analyses.explain import explain_image, overlay_heatmap

    path, _, paths, _ = _fused_checkpoint(tmp_path)
    want = Predictor.from_checkpoint(path, device="cpu").predict_proba(paths[:3])[:, 1]
    with running_server(path) as server:
        r = post(server.url, [(p.name, p.read_bytes()) for p in paths[:3]])
        assert r.status_code == 200
        np.testing.assert_allclose([x["prob_positive"] for x in r.json()["results"]], want,
                                   atol=1e-5)
        assert post(server.url, [("a.png", paths[0].read_bytes())],
                    regions="true").status_code == 422
        card = json.loads(json.dumps(server.app.state.service.card))  # JSON-able
        # the heat map explains the label the service answers (the fused one), not the
        # network's own: an image on which the two disagree
        net = Predictor(Predictor.from_checkpoint(path).model, device="cpu")
        own = net.predict_proba(paths).argmax(1)
        fused = Predictor.from_checkpoint(path, device="cpu").predict_proba(paths).argmax(1)
        (i, *_) = np.flatnonzero(own != fused)
        r = post(server.url, [("x.png", paths[i].read_bytes())], explain="true")
        (row,) = r.json()["results"]
        assert row["label"] == ("positive" if fused[i] == 1 else "negative")
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(row["heatmap"]))))
        maps = {}
        for cls in (0, 1):
            e = explain_image(net.model, paths[i], target=cls, max_side=512)
            maps[cls] = overlay_heatmap(e["image"], e["heatmap"])
        assert not np.array_equal(maps[0], maps[1])
        np.testing.assert_array_equal(shown, maps[int(fused[i])])
    assert card["fusion"]["features"] == "gch+bow" and card["fusion"]["weight"] == 0.5
    assert card["request_options"] == {"oversample": True, "explain": True, "regions": False}


# --------------------------------------------------------------------------------------------
# finetune --preset strong writes it


def test_finetune_strong_saves_the_fusion_crossval_measures(twitter_like, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", "--preset", "strong", "--data", str(twitter_like), "--fold", "1",
            "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "fused" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    pred = Predictor.from_checkpoint(out / "model.pt", device="cpu")
    assert pred.fusion is not None and pred.fusion.features == "gch+bow"
    assert (pred.fusion.rule, pred.fusion.weight) == ("mean", 0.5)
    ds, train, test = _fold(twitter_like)
    assert pred.fusion.hand.n_train == len(train) == metrics["n_train"]
    # the fold's fused accuracy = the saved model's predictions on the fold's test images
    p = pred.predict_proba([ds.paths[i] for i in test])
    acc = np.mean(p.argmax(1) == ds.labels[test])
    assert metrics["fused_center"]["accuracy"] == pytest.approx(acc)
    assert set(metrics) >= {"center", "ten_crop", "fused_center", "fused_ten_crop"}
    capsys.readouterr()
    assert main(["card", str(out / "model.pt")]) == 0
    text = capsys.readouterr().out
    assert "## Late fusion" in text and "logistic regression on gch+bow" in text


def test_finetune_fuses_each_crop_with_its_own_probabilities(twitter_like, tmp_path,
                                                             monkeypatch):
    """fused_center fuses the centre crop's probabilities and fused_ten_crop the 10 crops'
    (mut45d c910: swapped, the tiny fold gave both the same accuracy). Here the centre says
    every test image's label for certain and the 10 crops the other one: fused with the
    hand-crafted model's probabilities (never certain), the centre's are all right, the 10
    crops' all wrong."""
    import vsent.crossval as cv

    def crops(model, cfg, images, labels, paths, test):
        right = np.eye(2)[labels[test]]
        return ({"accuracy": 1.0}, right), ({"accuracy": 0.0}, right[:, ::-1])

    monkeypatch.setattr(cv, "_evaluate_crops", crops)
    out = tmp_path / "ft"
    assert main(["finetune", "--preset", "strong", "--data", str(twitter_like), "--fold", "1",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fused_center"]["accuracy"] == 1.0
    assert metrics["fused_ten_crop"]["accuracy"] == 0.0


def test_finetune_fusion_refuses_a_block_a_model_cannot_carry_before_training(
        twitter_like, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "--preset", "quick", "--fusion", "gch+fv", "--data",
                 str(twitter_like), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--fusion 'gch+fv': a saved model can carry the blocks gch, lch, bow" in err
    assert "Traceback" not in err and not (out / "model.pt").exists()


@pytest.mark.slow
def test_on_twitter1_the_saved_classifier_reproduces_the_strong_runs_fold_1(twitter1):
    """The committed `crossval --preset strong` run (results/accuracy/strong) measured fold 1's
    hand-crafted probabilities; the saved classifier, fitted on that fold's training images and
    fed each test image's file, gives the same ones (about 1.5 min: features of 882 images)."""
    import csv
    from pathlib import Path

    run = Path(__file__).resolve().parents[1] / "results/accuracy/strong"
    with (run / "fusion/predictions.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["fold"] == "1"]
    ds, train, test = _fold(twitter1)
    assert sorted(r["name"] for r in rows) == sorted(ds.names[i] for i in test)
    feats = hc.extract_features(ds.paths, progress=False)
    model = fit_hand_crafted_model(feats, ds.labels, train, "gch+bow", seed=0)
    path = dict(zip(ds.names, ds.paths, strict=True))
    got = model.predict_proba([np.asarray(load_rgb(path[r["name"]])) for r in rows])
    np.testing.assert_allclose(got, [float(r["prob_hand"]) for r in rows], atol=1e-9)


def test_explain_of_a_fused_checkpoint_reports_and_maps_the_fused_label(tmp_path):
    """vsent explain on a late-fused checkpoint: the probabilities and the label are predict's
    (fused); --target predicted maps the network's evidence for the fused label (serve's rule),
    also where the network alone would answer the other class."""
    from vsent.analyses import explain as X

    path, fusion, paths, labels = _fused_checkpoint(tmp_path)
    pred = Predictor.from_checkpoint(path, device="cpu")
    fused = pred.predict_proba(paths)
    cnn = Predictor(pred.model, device="cpu").predict_proba(paths)
    disagree = [i for i in range(len(paths)) if fused[i].argmax() != cnn[i].argmax()]
    assert disagree  # the test can tell the fused label from the network's
    rows = X.explain(path, paths, tmp_path / "ex", device="cpu")
    for i, row in enumerate(rows):
        assert row["prob_positive"] == pytest.approx(fused[i, 1], abs=1e-5)
        assert row["predicted"] == row["target"] == pred.class_names[int(fused[i].argmax())]
    i = disagree[0]
    want = X.explain_image(pred.model, paths[i], target=int(fused[i].argmax()), device="cpu")
    np.testing.assert_allclose(np.load(tmp_path / "ex" / rows[i]["heatmap"]), want["heatmap"],
                               atol=1e-6)


# --------------------------------------------------------------------------------------------
# mutation round 46 (mut46e): vsent.analyses.fused_model mutants the suite missed


def _gch_bow_model(**kw: Any) -> HandCraftedModel:
    """A hand-made model on gch (64) + bow (5 words): every field differs from its default."""
    rng = np.random.default_rng(0)
    d = 64 + 5
    fields = dict(blocks=("gch", "bow"), sift=hc.SiftParams(step=8, size=12.0), bow_norm="l2",
                  histogram_map="sqrt", vocabulary=rng.uniform(0, 255, (5, 128)).astype(
                      np.float32), mean=rng.uniform(0, 0.1, d), std=rng.uniform(0.01, 0.02, d),
                  block_weight=np.r_[np.full(64, 1 / 8), np.full(5, 1 / np.sqrt(5))],
                  coef=rng.normal(0, 1, d), intercept=0.2, C=0.37, n_train=40)
    return HandCraftedModel(**{**fields, **kw})


def test_hand_features_must_be_rows_of_the_models_width() -> None:
    """mut46e F07, F08: one image's features (d,) without [None], or rows wider than d, are
    the named ValueError (not numpy's IndexError or a broadcast error); F14, F15: no images
    give no probabilities."""
    model = _gch_bow_model()
    X = np.random.default_rng(1).uniform(0, 0.1, (3, model.dim))
    assert model.proba_from_features(X).shape == (3,)
    for bad in (X[0], np.hstack([X, X[:, :5]])):
        with pytest.raises(ValueError, match=rf"^hand_features must be of shape \(N, 69\) .*"
                                             rf"got {re.escape(str(bad.shape))}$"):
            model.proba_from_features(bad)
    # mut56k F3: one inf or one NaN among finite values is refused too, not only all-NaN rows
    for value in (np.inf, np.nan):
        with pytest.raises(ValueError, match=r"^hand_features hold NaN/inf$"):
            model.proba_from_features(np.where(np.arange(model.dim) == 3, value, X))
    empty = model.predict_proba([])
    assert empty.shape == (0,)


def test_late_fusion_takes_two_class_scores_and_gives_float32_rows() -> None:
    """mut46e F26, F27: scores that are not (N, 2), a vector or three classes, are refused
    naming the shape; F31: the fused rows are float32 [1 - p, p] as documented; F28: no
    images give no rows, whatever empty features come with them."""
    fusion = LateFusion(_gch_bow_model(), rule="mean", weight=0.5)
    X = np.random.default_rng(1).uniform(0, 0.1, (2, 69))
    fused = fusion.fuse(np.array([[0.8, 0.2], [0.1, 0.9]]), X)
    assert fused.dtype == np.float32 and fused.shape == (2, 2)
    for scores in (np.array([0.2, 0.9]), np.full((2, 3), 1 / 3)):
        with pytest.raises(VsentError, match=rf"late fusion needs a two-class model, got scores "
                                             rf"of shape {re.escape(str(scores.shape))}"):
            fusion.fuse(scores, X)
    for features in (np.zeros((0, 69)), np.zeros(0)):
        out = fusion.fuse(np.zeros((0, 2)), features)
        assert out.shape == (0, 2) and out.dtype == np.float32


def test_describe_says_what_the_model_card_shows() -> None:
    """mut46e F32-F36: the card's late-fusion entry: blocks, rule, the CNN's weight, C,
    training images, histogram map and the vocabulary size."""
    fusion = LateFusion(_gch_bow_model(), rule="logit", weight=0.3)
    assert fusion.describe() == {
        "features": "gch+bow", "rule": "logit", "weight": 0.3,
        "classifier": "logistic regression", "C": 0.37, "n_train": 40,
        "histogram_map": "sqrt", "bow_words": 5}
    assert "bow_words" not in LateFusion(_gch_bow_model(blocks=("gch",), vocabulary=None,
                                                        mean=np.zeros(64), std=np.ones(64),
                                                        block_weight=np.ones(64),
                                                        coef=np.ones(64))).describe()


def test_a_fusion_state_gives_back_every_field() -> None:
    """mut46e F37-F39, F48-F52: to_state / from_state keep how the features are computed
    (SIFT parameters, BoW norm, histogram map, vocabulary) and the classifier (intercept,
    training images): a loaded model that computed its columns another way would score
    other probabilities."""
    model = _gch_bow_model()
    again = LateFusion.from_state(LateFusion(model).to_state(), "test").hand
    for name in ("blocks", "sift", "bow_norm", "histogram_map", "intercept", "C", "n_train"):
        assert getattr(again, name) == getattr(model, name), name
    for name in ("vocabulary", "mean", "std", "block_weight", "coef"):
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name))


def test_a_fusion_entry_that_is_not_a_state_or_has_bad_fields_is_named() -> None:
    """mut46e F40: an entry that is no mapping; F41: fields of the wrong type; F43, F44: a
    std or block weight of another width; F47: no rule. Each is a VsentError naming the
    file, not a traceback."""
    state = LateFusion(_gch_bow_model()).to_state()
    for bad in (None, "vsent-late-fusion/1"):
        with pytest.raises(VsentError, match=r"^x\.pt: its fusion entry is not a "):
            LateFusion.from_state(bad, where="x.pt")
    for bad in ({"mean": [0.0] * 69}, {"sift": "dense"}):
        with pytest.raises(VsentError, match=r"^x\.pt: incomplete fusion entry"):
            LateFusion.from_state({**state, **bad}, where="x.pt")
    for key in ("std", "block_weight", "coef"):  # mut56k F10: the coefficients' width too
        with pytest.raises(VsentError, match=r"^x\.pt: fusion entry with inconsistent column"):
            LateFusion.from_state({**state, key: state[key][:3]}, where="x.pt")
    with pytest.raises(VsentError, match=r"^x\.pt: fusion entry with a bad rule or weight"):
        LateFusion.from_state({k: v for k, v in state.items() if k != "rule"}, where="x.pt")
    # mut58i F23: a block no saved model carries is named alone (gch is fine)
    with pytest.raises(VsentError, match=r"carry the blocks gch, lch, bow; fv are measured by"):
        LateFusion.from_state({**state, "blocks": ["gch", "fv"]}, where="x.pt")


def test_the_fitted_model_computes_the_columns_it_was_fitted_on_with_the_configs_bow_norm(
        ) -> None:
    """mut46e F24: the BoW norm of ``config`` (here l2, not the default l1) is saved with the
    model, so its columns are the matrix the classifier was fitted on (baseline_fold_features
    of the fold). (The blocks are read as --fusion spells them: blanks and case ignored.)"""
    rng = np.random.default_rng(0)
    n = 40
    y = np.arange(n) % 2
    feats = hc.ImageFeatures(
        gch=rng.dirichlet(np.ones(64), n).astype(np.float32),
        lch=np.zeros((n, 1024), np.float32),
        descriptors=[rng.integers(0, 256, (int(rng.integers(5, 30)), 128)).astype(np.uint8)
                     for _ in range(n)])
    config = BaselineConfig(k=4, bow_norm="l2", Cs=(1.0,), inner_splits=2)
    train = np.arange(30)
    model = fit_hand_crafted_model(feats, y, train, " GCH + bow", config=config)
    assert model.blocks == ("gch", "bow") and model.bow_norm == "l2"
    # the k-means centres kept as float32 (k, 128), as a saved model gives them back
    assert model.vocabulary.dtype == np.float32 and model.vocabulary.shape == (4, 128)
    X, _ = baseline_fold_features(feats, train, "gch+bow", config)
    got = model.dataset_features(feats, np.arange(n))
    np.testing.assert_allclose(got, X, rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float64  # mut58i F24: float64 columns, as documented (not float32)


# --------------------------------------------------------------------------------------------
# mutation round 50 (mut50c)


def test_a_bow_block_without_gch_still_reads_the_images_sift_words() -> None:
    """mut50c F02: SIFT is computed whenever the blocks hold ``bow``, whatever block comes
    with it (here lch), so an lch+bow model's words are the gch+bow model's words."""
    image = sentiment_image(1, np.random.default_rng(3), size=(64, 48))
    gch_bow = _gch_bow_model()
    d = 1024 + 5
    lch_bow = _gch_bow_model(blocks=("lch", "bow"), mean=np.zeros(d), std=np.ones(d),
                             block_weight=np.ones(d), coef=np.zeros(d))
    words = gch_bow.features(image)[64:]
    assert words.shape == (5,) and words.sum() > 0
    got = lch_bow.features(image)
    assert got.shape == (d,)
    np.testing.assert_allclose(got[1024:], words)


def test_a_fusion_state_keeps_its_rule_weight_histogram_map_and_float32_vocabulary() -> None:
    """mut50c F33, F34: the rule and the CNN's weight come back as saved (not the defaults);
    F35: so does a histogram map other than sqrt; F27: the vocabulary is float32 again, as
    fitted (not float64, whose distances give other BoW words at ties)."""
    model = _gch_bow_model(histogram_map="none")
    again = LateFusion.from_state(LateFusion(model, rule="logit", weight=0.3).to_state())
    assert (again.rule, again.weight) == ("logit", 0.3)
    assert again.hand.histogram_map == "none"
    assert again.hand.vocabulary.dtype == np.float32


def test_fuse_weighs_the_cnn_by_the_fusions_weight() -> None:
    """mut50c F23: ``weight`` is the CNN's share (``w p_cnn + (1 - w) p_hand``), not the
    hand-crafted model's: with w = 0.8 the fused score is closest to the CNN's."""
    model = _gch_bow_model()
    X = np.random.default_rng(2).uniform(0, 0.1, (3, model.dim))
    p_hand = model.proba_from_features(X)
    cnn = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    fused = LateFusion(model, rule="mean", weight=0.8).fuse(cnn, X)
    np.testing.assert_allclose(fused[:, 1], 0.8 * cnn[:, 1] + 0.2 * p_hand, rtol=1e-6)
    np.testing.assert_allclose(fused[:, 0], 1 - fused[:, 1], rtol=1e-6)


def test_the_hand_crafted_model_is_fitted_with_the_callers_seed_and_inner_splits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """mut50c F14: ``seed`` (and the config's grid and inner folds) reach the classifier's
    search, as fuse_run passes them per fold."""
    import vsent.analyses.fused_model as fm

    seen = {}
    real = fm.fit_hand_crafted

    def spy(*args, **kwargs):
        seen.update(kwargs)
        seen["search"] = real(*args, **kwargs)
        seen["X"] = args[0]
        return seen["search"]

    monkeypatch.setattr(fm, "fit_hand_crafted", spy)
    rng = np.random.default_rng(0)
    n = 30
    feats = hc.ImageFeatures(gch=rng.dirichlet(np.ones(64), n).astype(np.float32),
                             lch=np.zeros((n, 1024), np.float32), descriptors=[None] * n)
    config = BaselineConfig(Cs=(0.5, 2.0), inner_splits=2)
    model = fit_hand_crafted_model(feats, np.arange(n) % 2, np.arange(20), "gch",
                                   config=config, seed=7)
    assert (seen["seed"], seen["Cs"], seen["inner_splits"]) == (7, (0.5, 2.0), 2)
    assert model.C in (0.5, 2.0) and model.n_train == 20
    # mut58i F25, F28: the saved half is the search's refitted pipeline: its C, and its
    # P(positive) of the training rows (intercept and coefficients included)
    search = seen["search"]
    assert search.best_params_["clf__C"] == model.C
    np.testing.assert_allclose(model.proba_from_features(seen["X"]),
                               search.predict_proba(seen["X"])[:, 1], rtol=1e-9)
