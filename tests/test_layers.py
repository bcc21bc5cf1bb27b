"""Layer probes (Campos et al. Table 2): kernel trick, inner CV, extraction, resumability, CLI."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import vsent.analyses.baselines as bl
import vsent.analyses.layers as L
import vsent.analyses.probes as P
from vsent.analyses.layers import LayersConfig, layer_probes
from vsent.analyses.probes import (
    ProbeConfig,
    extract_layer_features,
    gram_embedding,
    gram_matrix,
    linear_probe,
    make_classifier,
    pooled_grid,
    probe_features,
)
from vsent.cli import main
from vsent.crossval import RunConfig
from vsent.data.cache import image_cache
from vsent.data.datasets import load_dataset
from vsent.data.folds import make_folds, save_folds
from vsent.data.transforms import center_crop, normalize
from vsent.errors import VsentError
from vsent.models import create_model, save_checkpoint
from vsent.runs import to_jsonable

TINY = {"widths": [4, 8]}  # smallcnn probe layers: features.block1/2 (3136, 1568), pool, fc
PROBE = ProbeConfig(Cs=(0.1, 1.0, 10.0), inner_splits=3)


def separable(n=60, d=300, seed=0, signal=1.0):
    """ReLU-like features whose class means differ along a dense random direction (like CNN
    features of two classes), about 2:1 positive; ``signal`` scales the mean shift."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.66).astype(np.int64)
    shift = rng.choice([-1.0, 1.0], d) * 0.15 * signal
    X = np.maximum(rng.standard_normal((n, d)) + np.outer(2 * y - 1, shift), 0) * 2 + 0.5
    return X, y


# --------------------------------------------------------------------------------------------
# the kernel trick


def test_gram_matrix_blocks_match_direct_product(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((13, 50)).astype(np.float32)
    path = tmp_path / "f.npy"
    np.save(path, X)
    direct = X.astype(np.float64) @ X.T.astype(np.float64)
    # 8 * 13 * 3 bytes: blocks of 3 columns, 17 blocks with a ragged last one
    np.testing.assert_allclose(gram_matrix(path, block_bytes=8 * 13 * 3), direct, rtol=1e-12)
    np.testing.assert_allclose(gram_matrix(X), direct, rtol=1e-12)
    # an array in memory is summed over the same column blocks: none may lose a column
    np.testing.assert_allclose(gram_matrix(X, block_bytes=8 * 13 * 3), direct, rtol=1e-12)
    short = tmp_path / "short.npy"
    short.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(VsentError, match="short.npy: file is shorter"):
        gram_matrix(short, block_bytes=8 * 13 * 3)


@pytest.mark.parametrize("d", [300, 4])  # more features than rows, and rank-deficient
def test_gram_embedding_preserves_inner_products(d):
    X, _ = separable(d=d)
    train, test = np.arange(45), np.arange(45, 60)
    K = X @ X.T
    Z_tr, Z_te = gram_embedding(K, train, test)
    assert Z_tr.shape[1] == min(len(train), d)
    np.testing.assert_allclose(Z_tr @ Z_tr.T, K[np.ix_(train, train)], atol=1e-9 * K.max())
    np.testing.assert_allclose(Z_te @ Z_tr.T, K[np.ix_(test, train)], atol=1e-9 * K.max())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol 1e-10
@pytest.mark.parametrize("classifier", ["svm", "softmax"])
@pytest.mark.parametrize("d", [300, 4])
def test_training_on_kernel_embedding_equals_training_on_features(classifier, d):
    """Same optimum, so the same decision values on test rows, for several C."""
    X, y = separable(d=d, seed=1)
    train, test = np.arange(45), np.arange(45, 60)
    Z_tr, Z_te = gram_embedding(X @ X.T, train, test)
    for C in (0.01, 1.0, 100.0):
        direct = make_classifier(classifier, C, tol=1e-10, max_iter=20_000)
        direct.fit(X[train], y[train])
        kernel = make_classifier(classifier, C, tol=1e-10, max_iter=20_000)
        kernel.fit(Z_tr, y[train])
        a, b = direct.decision_function(X[test]), kernel.decision_function(Z_te)
        np.testing.assert_allclose(b, a, atol=1e-6 * max(1.0, np.abs(a).max()))
        assert (direct.predict(X[test]) == kernel.predict(Z_te)).all()


def test_linear_probe_equals_grid_search_on_raw_features():
    """The whole probe (inner CV over C, refit, test) on K equals sklearn on X itself."""
    X, y = separable(n=80, d=200, seed=2, signal=0.4)
    train, test = np.arange(60), np.arange(60, 80)
    cfg = ProbeConfig(Cs=(0.01, 0.1, 1.0, 10.0), inner_splits=3, seed=3)
    for clf in ("svm", "softmax"):
        got = linear_probe(X @ X.T, y, train, test, clf, cfg)
        search = GridSearchCV(make_classifier(clf, seed=3), {"clf__C": list(cfg.Cs)},
                              cv=StratifiedKFold(3, shuffle=True, random_state=3))
        search.fit(X[train], y[train])
        assert got["C"] == search.best_params_["clf__C"]
        np.testing.assert_allclose(got["inner_scores"], search.cv_results_["mean_test_score"])
        assert got["accuracy"] == pytest.approx(float((search.predict(X[test]) == y[test]).mean()))


def test_c_is_chosen_without_touching_test_rows():
    X, y = separable(seed=4)
    train, test = np.arange(45), np.arange(45, 60)
    first = probe_features(X, y, train, test, PROBE)
    rng = np.random.default_rng(5)
    X2, y2 = X.copy(), y.copy()
    X2[test] = rng.normal(1e3, 1e3, X2[test].shape)  # garbage test features...
    y2[test] = 1 - y2[test]  # ... and flipped test labels
    second = probe_features(X2, y2, train, test, PROBE)
    for clf in ("svm", "softmax"):
        assert first[clf]["C"] == second[clf]["C"]
        assert first[clf]["inner_scores"] == second[clf]["inner_scores"]
        assert first[clf]["inner_accuracy"] == second[clf]["inner_accuracy"]


def test_a_class_with_exactly_as_many_training_images_as_inner_folds_is_probed():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 20))
    y = np.array([0] * 3 + [1] * 17 + [0, 1] * 5)
    train, test = np.arange(20), np.arange(20, 30)  # 3 negatives: one per inner fold
    result = linear_probe(X @ X.T, y, train, test, "svm", PROBE)
    assert result["n"] == 10 and result["C"] in PROBE.Cs
    with pytest.raises(VsentError, match="the training rows have 2 images of one class, fewer "
                                         "than the 3 inner folds"):
        linear_probe(X @ X.T, y, train[1:], test, "svm", PROBE)


def test_probe_accuracy_tracks_the_signal():
    X, y = separable(n=120, seed=6, signal=3.0)
    train, test = np.arange(90), np.arange(90, 120)
    good = probe_features(X, y, train, test, PROBE)
    noise = np.random.default_rng(7).standard_normal(X.shape)
    bad = probe_features(noise, y, train, test, PROBE)
    majority = max(y[test].mean(), 1 - y[test].mean())
    for clf in ("svm", "softmax"):
        assert good[clf]["accuracy"] >= 0.85
        assert bad[clf]["accuracy"] <= majority + 0.15
        assert good[clf]["converged"]


def test_all_zero_layer_predicts_one_class():
    _, y = separable()
    X = np.zeros((60, 10))
    res = probe_features(X, y, np.arange(45), np.arange(45, 60), PROBE)
    for clf in ("svm", "softmax"):
        assert res[clf]["rank"] == 1
        (tn, fp), (fn, tp) = res[clf]["confusion"]
        assert tn + fn == 0 or fp + tp == 0  # only the bias is left: one class for everything


def test_probe_config_validates():
    with pytest.raises(VsentError, match="Cs must be positive"):
        ProbeConfig(Cs=(0.0, 1.0))
    with pytest.raises(VsentError, match=r"inner_splits\) must be an integer >= 2, got 1$"):
        ProbeConfig(inner_splits=1)
    with pytest.raises(VsentError, match=r"--classifiers: unknown classifier\(s\) .*'knn'.*; "
                                         r"choose from svm, softmax"):
        ProbeConfig(classifiers=("svm", "knn"))
    assert ProbeConfig(Cs=(10, 1, 1)).Cs == (1.0, 10.0)
    with pytest.raises(VsentError, match="--inner-splits"):
        ProbeConfig(inner_splits=True)
    with pytest.raises(VsentError, match="--Cs"):
        ProbeConfig(Cs=("a",))
    for flags in ((True,), (1.0, False)):  # float(True) is 1.0, but a bool is no C
        with pytest.raises(VsentError, match="--Cs must be positive numbers"):
            ProbeConfig(Cs=flags)
    with pytest.raises(VsentError, match="max_iter must be a positive integer, got 0$"):
        ProbeConfig(max_iter=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROBE.seed = 1
    # the defaults of a ProbeConfig built in code (not through the CLI) are the documented ones
    default = ProbeConfig()
    assert (default.Cs, default.inner_splits, default.seed, default.classifiers,
            default.max_iter) == ((1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0), 5, 0,
                                  ("svm", "softmax"), 10_000)


def test_layers_config_validates_when_built():
    for bad, option in [({"batch_size": 0}, "--batch-size"), ({"max_features": "lots"},
                        "--max-features"), ({"max_features": 0}, "--max-features"),
                        ({"folds": [0]}, "--fold-ids"), ({"layers": []}, "--layers"),
                        ({"layers": "fc"}, "--layers"), ({"run": ""}, "--run"),
                        ({"keep_features": "no"}, "keep_features"),
                        # mut52d L02, L04: an empty layer name, a device that is no name
                        ({"layers": ["fc", ""]}, "--layers"), ({"device": 0}, "--device")]:
        with pytest.raises(VsentError, match=option):
            LayersConfig(**{"run": "r", **bad})
    cfg = LayersConfig(run="r", layers=["pool", "fc"], folds=[2], max_features="123")
    assert (cfg.layers, cfg.folds, cfg.max_features) == (("pool", "fc"), (2,), 123)
    assert LayersConfig(run="r", max_features="none").max_features == "none"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 4


def test_layers_config_from_dict_refuses_unknown_keys():
    stored = {"command": "layers", "run": "/runs/cv", "layers": ["pool"], "folds": None,
              "max_features": 1000, "batch_size": 8, "device": "cpu", "keep_features": False,
              "probe": {"Cs": [1.0, 0.1], "inner_splits": 3, "seed": 2,
                        "classifiers": ["svm"], "max_iter": 50}}
    cfg = LayersConfig.from_dict(stored)
    assert cfg == LayersConfig(run="/runs/cv", layers=("pool",), max_features=1000,
                               batch_size=8, device="cpu", keep_features=False,
                               probe=ProbeConfig(Cs=(0.1, 1.0), inner_splits=3, seed=2,
                                                 classifiers=("svm",), max_iter=50))
    with pytest.raises(VsentError, match="unknown layers config keys: colour"):
        LayersConfig.from_dict({**stored, "colour": 1})
    with pytest.raises(VsentError, match="probe.C$"):
        LayersConfig.from_dict({**stored, "probe": {"C": 1.0}})
    with pytest.raises(VsentError, match="--inner-splits"):
        LayersConfig.from_dict({**stored, "probe": {"inner_splits": 1}})
    assert LayersConfig.from_dict({"run": "r"}).probe == ProbeConfig()  # a record's default
    with pytest.raises(VsentError, match="^unknown layers probe config keys: colour$"):
        ProbeConfig.from_dict({"Cs": [1.0], "colour": 1})  # the probe entry read on its own


def test_pooled_grid():
    assert pooled_grid((96, 55, 55), None) is None  # caffenet: raw
    assert pooled_grid((4096,), 100) is None  # not spatial
    assert pooled_grid((8, 10, 10), 800) is None  # small enough
    assert pooled_grid((256, 56, 56), 65536) == 16
    assert pooled_grid((2048, 7, 7), 65536) == 5
    assert pooled_grid((100_000, 2, 2), 10) == 1
    # mut58i B50: only a (C, H, W) map is pooled; a map of another rank stays raw
    assert pooled_grid((2, 3, 4, 5), 10) is None


# --------------------------------------------------------------------------------------------
# extraction and the analysis of a crossval run directory


def make_run(root: Path, twitter: Path, *, fold_in_checkpoint=None) -> Path:
    """A crossval run directory as `vsent crossval` writes it (config, folds, fold<k>/model.pt),
    with random smallcnn models (the probes do not need trained ones)."""
    cfg = RunConfig(data=str(twitter), subset="five", folds="campos", model="smallcnn",
                    model_kwargs=TINY, init="random")
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"command": "crossval",
                                                  **to_jsonable(cfg.to_dict())}))
    dataset = load_dataset(twitter, "five")
    folds = make_folds(dataset, "campos")
    save_folds(folds, dataset, root / "folds.json")
    for fold in folds:
        torch.manual_seed(fold.index)
        model = create_model("smallcnn", **TINY)
        save_checkpoint(root / f"fold{fold.index}" / "model.pt", model,
                        fold=fold_in_checkpoint or fold.index)
    return root


@pytest.fixture
def run_dir(tmp_path, twitter_like):
    return make_run(tmp_path / "crossval", twitter_like)


def test_extract_features_writes_each_layer(tmp_path, twitter_like):
    dataset = load_dataset(twitter_like, "five")
    model = create_model("smallcnn", **TINY).eval()
    images = image_cache(dataset, size=model.info.preprocess.resize, progress=False)
    rows = np.array([5, 0, 3, 9, 1, 2, 7])
    info = extract_layer_features(model, images, tmp_path / "f", rows=rows, batch_size=3,
                                  max_features=1000)
    assert list(info) == list(model.info.probe_layers)
    # block1 4x28x28 = 3136 > 1000: pooled to 15x15; block2 8x14x14 = 1568: 11x11; pool, fc raw
    assert [info[n]["dim"] for n in info] == [4 * 15 * 15, 8 * 11 * 11, 8, 2]
    assert [info[n]["pooled"] for n in info] == [15, 11, None, None]
    x = normalize(center_crop(images[rows], model.info.preprocess.crop), model.info.preprocess)
    with torch.no_grad():
        block2 = model.features[:2](x)
        logits = model(x)
    want = torch.nn.functional.adaptive_avg_pool2d(block2, 11).flatten(1).numpy()
    np.testing.assert_allclose(np.load(info["features.block2"]["path"]), want, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(np.load(info["fc"]["path"]), logits.numpy(), rtol=1e-5, atol=1e-6)
    raw = extract_layer_features(model, images, tmp_path / "raw", rows=rows,
                                 layers=["features.block1"])
    assert raw["features.block1"]["dim"] == 4 * 28 * 28
    assert np.load(raw["features.block1"]["path"]).shape == (len(rows), 3136)


def test_extract_features_pools_as_the_model_declares(tmp_path):
    """``info.probe_pool``: "avg" averages a map over its positions, "tokens" a sequence over
    its tokens; both before the max_features bound."""
    model = create_model("smallcnn", **TINY).eval()
    model.info = dataclasses.replace(model.info, probe_pool={"features.block1": "avg"})
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    info = extract_layer_features(model, images, tmp_path / "avg", max_features=1000,
                                  layers=["features.block1", "features.block2"])
    assert info["features.block1"]["dim"] == 4 and info["features.block1"]["pooled"] == 1
    assert info["features.block2"]["pooled"] == 11  # "flatten" (default): the size bound
    x = torch.from_numpy(((images[:, 4:60, 4:60] - 127.5) / 127.5).astype(np.float32))
    with torch.no_grad():
        block1 = model.features[:1](x.permute(0, 3, 1, 2))
    np.testing.assert_allclose(np.load(info["features.block1"]["path"]),
                               block1.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    tokens = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)  # (B, T, C)
    flat, pooled = P._reduce(tokens, "tokens", None)
    assert pooled == "tokens"
    np.testing.assert_allclose(flat.numpy(), tokens.numpy().mean(axis=1))


def test_torchvision_stages_are_pooled_to_a_bounded_size(tmp_path):
    model = create_model("resnet18").eval()
    assert L._resolve_max_features("auto", "resnet18") == L.DEFAULT_MAX_FEATURES
    assert L._resolve_max_features("auto", "caffenet") is None
    images = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    info = extract_layer_features(model, images, tmp_path, max_features=L.DEFAULT_MAX_FEATURES)
    # layer1 64x56x56 -> 32x32 grid, layer2 128x28x28 -> 22x22; later stages fit raw
    assert {n: info[n]["dim"] for n in info} == {
        "layer1": 64 * 32 * 32, "layer2": 128 * 22 * 22, "layer3": 256 * 14 * 14,
        "layer4": 512 * 7 * 7, "avgpool": 512, "fc": 2}
    x = normalize(center_crop(images, 224), model.info.preprocess)
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        layer1 = model.layer1(stem)
    want = torch.nn.functional.adaptive_avg_pool2d(layer1, 32).flatten(1).numpy()
    np.testing.assert_allclose(np.load(info["layer1"]["path"]), want, rtol=1e-4, atol=1e-5)


def test_layer_probes_outputs(tmp_path, run_dir):
    out = tmp_path / "layers"
    (run_dir / "summary.json").write_text(json.dumps(
        {"center": {"accuracy": {"mean": 0.8125, "std": 0.05}}}))
    summary = layer_probes(LayersConfig(run=str(run_dir), probe=PROBE, device="cpu"), out,
                           progress=False)
    layers = ["features.block1", "features.block2", "pool", "fc"]
    assert list(summary) == layers
    for name in layers:
        for clf in ("svm", "softmax"):
            entry = summary[name][clf]
            assert len(entry["folds"]) == 5
            accs = [f["accuracy"] for f in entry["folds"]]
            assert entry["mean"] == pytest.approx(np.mean(accs))
            assert entry["std"] == pytest.approx(np.std(accs))
            assert all(f["C"] in PROBE.Cs for f in entry["folds"])
    assert json.loads((out / "layers.json").read_text()) == json.loads(json.dumps(summary))
    csv_lines = (out / "layers.csv").read_text().splitlines()
    assert csv_lines[0].startswith("layer,depth,dim,classifier,mean,std,n_folds,fold1")
    assert csv_lines[1].startswith("features.block1,1,3136,svm,")  # depth counts from 1
    assert csv_lines[-1].startswith("fc,4,")
    assert len(csv_lines) == 1 + 2 * len(layers)
    md = (out / "layers.md").read_text()
    assert "| features.block1 | 3,136 |" in md and "linear SVM" in md and "softmax" in md
    assert "fine-tuned networks themselves" in md and "0.812 +- 0.050" in md
    # trial32 #2: probes of some folds are set beside the networks of the same folds
    (run_dir / "summary.json").write_text(json.dumps({"center": {
        "accuracy": {"mean": 0.8125, "std": 0.05},
        "folds": [{"fold": k, "accuracy": a} for k, a in enumerate((.7, .8, .9, .6, .5), 1)]}}))
    part = tmp_path / "part"
    layer_probes(LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"],
                              folds=[1, 3]), part, progress=False)
    assert ("(their own softmax output, centre crop, the run's summary.json, folds 1, 3 of "
            "5): 0.800 +- 0.100.") in (part / "layers.md").read_text()
    layer_probes(LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"],
                              folds=[3]), tmp_path / "one", progress=False)
    one = (tmp_path / "one" / "layers.md").read_text()
    assert "| fc | 2 | " in one and "(1 fold) |" in one and "+- 0.000" not in one
    assert "Campos et al." not in md.splitlines()[4]  # smallcnn's layers: no published column
    assert "these layers have no published counterpart" in md
    assert (out / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # features: rows = the fold's training then test images, per the run's folds.json
    folds = json.loads((run_dir / "folds.json").read_text())["folds"]
    meta = json.loads((out / "features/fold2/meta.json").read_text())
    assert meta["n_train"] == len(folds[1]["train"])
    n = len(folds[1]["train"]) + len(folds[1]["test"])
    assert np.load(out / "features/fold2/features.block2.npy").shape == (n, 1568)
    assert np.load(out / "features/fold2/pool.gram.npy").shape == (n, n)
    record = json.loads((out / "results/fold3/fc.json").read_text())
    assert record["n_test"] == len(folds[2]["test"]) and record["svm"]["n"] == record["n_test"]
    assert record["n_train"] == len(folds[2]["train"])  # the probes fit the training rows only
    assert (out / "config.json").exists() and (out / "versions.json").exists()
    stored = LayersConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert stored == LayersConfig(run=str(run_dir.resolve()), probe=PROBE, device="cpu")


def test_probes_fit_the_fold_training_rows_with_their_own_labels(tmp_path, run_dir,
                                                                  twitter_like, monkeypatch):
    """What ``linear_probe`` receives: the kernel rows of the fold's training images (then its
    test images), each with that image's label. Record counts alone cannot show that the
    labels line up with the feature rows, nor that the test rows stay out of training."""
    dataset = load_dataset(twitter_like, "five")  # the run's data
    index = {name: i for i, name in enumerate(dataset.names)}
    folds = json.loads((run_dir / "folds.json").read_text())["folds"]
    real_probe, seen = L.linear_probe, []

    def spy(K, y, train, test, classifier, config, **kw):
        seen.append((K, np.asarray(y).copy(), np.asarray(train), np.asarray(test), classifier))
        return real_probe(K, y, train, test, classifier, config, **kw)

    monkeypatch.setattr(L, "linear_probe", spy)
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"],
                       folds=[2, 4], keep_features=True)
    layer_probes(cfg, out, progress=False)
    assert [call[4] for call in seen] == ["svm", "softmax"] * 2
    for k, calls in ((2, seen[:2]), (4, seen[2:])):
        train = np.sort([index[n] for n in folds[k - 1]["train"]])
        test = np.sort([index[n] for n in folds[k - 1]["test"]])
        rows = np.concatenate([train, test])
        # labels in sorted-row order would differ: the label check below can fail
        assert (dataset.labels[np.sort(rows)] != dataset.labels[rows]).any()
        meta = json.loads((out / f"features/fold{k}/meta.json").read_text())
        assert meta["rows"] == rows.tolist()
        feats = np.load(out / f"features/fold{k}/fc.npy").astype(np.float64)
        for K, y, tr, te, _ in calls:
            np.testing.assert_array_equal(tr, np.arange(len(train)))
            np.testing.assert_array_equal(te, np.arange(len(train), len(rows)))
            np.testing.assert_array_equal(y[tr], dataset.labels[train])
            np.testing.assert_array_equal(y[te], dataset.labels[test])
            np.testing.assert_allclose(K, feats @ feats.T, rtol=1e-6, atol=1e-9)
        record = json.loads((out / f"results/fold{k}/fc.json").read_text())
        assert (record["n_train"], record["n_test"]) == (len(train), len(test))
        for clf in ("svm", "softmax"):  # confusion rows: the test images' true classes
            assert np.sum(record[clf]["confusion"], axis=1).tolist() == \
                np.bincount(dataset.labels[test], minlength=2).tolist()


def test_resume_after_interrupt_computes_only_missing(tmp_path, run_dir, monkeypatch):
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu")
    real_probe, real_extract = L.linear_probe, L.extract_layer_features
    calls = {"probe": 0, "extract": 0}

    def interrupting_probe(*a, **kw):
        calls["probe"] += 1
        if calls["probe"] == 3:  # fold 1: first layer done (2 classifiers), then Ctrl-C
            raise KeyboardInterrupt
        return real_probe(*a, **kw)

    def counting_extract(*a, **kw):
        calls["extract"] += 1
        return real_extract(*a, **kw)

    monkeypatch.setattr(L, "linear_probe", interrupting_probe)
    monkeypatch.setattr(L, "extract_layer_features", counting_extract)
    with pytest.raises(KeyboardInterrupt):
        layer_probes(cfg, out, progress=False)
    done = sorted(p.relative_to(out).as_posix() for p in out.glob("results/*/*.json"))
    assert done == ["results/fold1/features.block1.json"]
    first = (out / done[0]).read_bytes()

    calls.update(probe=0, extract=0)
    monkeypatch.setattr(L, "linear_probe", lambda *a, **kw: (
        calls.__setitem__("probe", calls["probe"] + 1), real_probe(*a, **kw))[1])
    summary = layer_probes(cfg, out, progress=False)
    assert calls["probe"] == 2 * (4 * 5) - 2  # every (fold, layer, classifier) but the first
    assert calls["extract"] == 4  # fold 1's features were complete: not extracted again
    assert (out / done[0]).read_bytes() == first
    assert len(list(out.glob("results/*/*.json"))) == 20
    assert all(len(summary[n]["svm"]["folds"]) == 5 for n in summary)

    calls.update(probe=0, extract=0)
    with monkeypatch.context() as mp:  # mut52d L14: nor is a fold's model loaded to see that
        mp.setattr(L, "_extract_fold", lambda *a, **kw: pytest.fail("a done fold reopened"))
        layer_probes(cfg, out, progress=False)  # everything done: nothing recomputed
    assert calls == {"probe": 0, "extract": 0}

    # fold 3 trained again (crossval --overwrite): its probes are redone, the others reused
    from vsent.files import file_sha256
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(run_dir / "fold3" / "model.pt")
    with torch.no_grad():
        model.fc.bias.add_(3.0)
    save_checkpoint(run_dir / "fold3" / "model.pt", model, fold=3)
    layer_probes(cfg, out, progress=False)
    assert calls == {"probe": 2 * 4, "extract": 1}
    stamp = (out / "results" / "fold3" / "model.sha256").read_text().split()
    assert stamp == [file_sha256(run_dir / "fold3" / "model.pt"),
                     str((run_dir / "fold3" / "model.pt").resolve())]


def test_features_of_another_split_are_extracted_again_with_a_fresh_kernel(tmp_path, run_dir):
    """A fold's stored features whose rows are not the fold's current training + test rows
    (meta.json's ``rows``) are not probed: the fold is extracted again, and the kernel of the
    older features goes with them (it would otherwise be read back as this split's)."""
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[2])
    layer_probes(cfg, out, progress=False)
    meta_path, gram = out / "features/fold2/meta.json", out / "features/fold2/fc.gram.npy"
    meta = json.loads(meta_path.read_text())
    rows = meta["rows"]
    meta_path.write_text(json.dumps({**meta, "rows": rows[::-1]}))  # another split's rows
    n = len(rows)
    np.save(gram, np.zeros((n, n)))  # and their kernel
    (out / "results/fold2/fc.json").unlink()
    layer_probes(cfg, out, progress=False)
    assert json.loads(meta_path.read_text())["rows"] == rows
    feats = np.load(out / "features/fold2/fc.npy").astype(np.float64)
    np.testing.assert_allclose(np.load(gram), feats @ feats.T, rtol=1e-6, atol=1e-9)


def test_subset_of_layers_and_folds_then_the_rest(tmp_path, run_dir, monkeypatch):
    out = tmp_path / "layers"
    part = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["pool"], folds=[2])
    summary = layer_probes(part, out, progress=False)
    assert list(summary) == ["pool"] and len(summary["pool"]["svm"]["folds"]) == 1
    with pytest.raises(VsentError, match=r"unknown layer\(s\) conv9 for smallcnn; probe layers: "
                                         r"features\.block1, features\.block2, pool, fc$"):
        layer_probes(LayersConfig(run=str(run_dir), probe=PROBE, layers=["conv9"], folds=[1]),
                     out, progress=False)
    with pytest.raises(VsentError, match=r"no fold\(s\) \[7\] \(folds 1\.\.5\)$"):
        layer_probes(LayersConfig(run=str(run_dir), probe=PROBE, folds=[7]), out, progress=False)
    # then the rest: every layer of every fold (fold 2's other layers too), pool of fold 2
    # extracted once
    extracted: list[tuple[int, list[str]]] = []
    real_extract = L.extract_layer_features

    def recording_extract(model, images, feat_dir, *, layers, **kw):
        extracted.append((int(Path(feat_dir).name.removeprefix("fold")), list(layers)))
        return real_extract(model, images, feat_dir, layers=layers, **kw)

    monkeypatch.setattr(L, "extract_layer_features", recording_extract)
    summary = layer_probes(LayersConfig(run=str(run_dir), probe=PROBE, device="cpu"), out,
                           progress=False)
    layers = ["features.block1", "features.block2", "pool", "fc"]
    assert list(summary) == layers  # depth order
    assert all(len(summary[n][c]["folds"]) == 5 for n in layers for c in ("svm", "softmax"))
    assert (2, ["features.block1", "features.block2", "fc"]) in extracted
    assert all(layers_ == layers for k, layers_ in extracted if k != 2)


def test_two_layer_subsets_then_their_union(tmp_path, run_dir):
    """--layers pool, then --layers fc, then --layers pool,fc: both tables (the second
    extraction kept the first's layers in the fold's record), then all layers."""
    out = tmp_path / "layers"

    def probes(layers):
        cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=layers,
                           folds=[1])
        return layer_probes(cfg, out, progress=False)

    assert list(probes(["pool"])) == ["pool"]
    assert list(probes(["fc"])) == ["fc"]
    assert list(probes(["fc", "pool"])) == ["pool", "fc"]  # depth order
    assert list(probes(None)) == ["features.block1", "features.block2", "pool", "fc"]
    meta = json.loads((out / "features/fold1/meta.json").read_text())
    assert meta["layers"] == meta["probe_layers"] == list(probes(None))


def test_other_settings_in_the_same_directory_are_refused(tmp_path, run_dir):
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    layer_probes(cfg, out, progress=False)
    other = LayersConfig(run=str(run_dir), probe=ProbeConfig(Cs=(5.0,), inner_splits=3),
                         layers=["fc"], folds=[1])
    with pytest.raises(VsentError, match="other probe"):
        layer_probes(other, out, progress=False)


def test_checkpoint_of_another_fold_is_refused(tmp_path, twitter_like):
    run = make_run(tmp_path / "crossval", twitter_like, fold_in_checkpoint=3)
    cfg = LayersConfig(run=str(run), probe=PROBE, device="cpu", folds=[1])
    with pytest.raises(VsentError, match="checkpoint of fold 3, expected fold 1"):
        layer_probes(cfg, tmp_path / "layers", progress=False)


def test_cli(tmp_path, run_dir, capsys):
    out = tmp_path / "layers"
    argv = ["layers", "--run", str(run_dir), "--out", str(out), "--inner-splits", "3",
            "--Cs", "0.1,1,10", "--device", "cpu", "--no-progress", "--delete-features"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "features.block1" in printed and f"results in {out}/layers.md" in printed
    assert not list(out.glob("features/fold*/features.block1.npy"))  # deleted
    assert len(list(out.glob("features/fold*/*.gram.npy"))) == 20  # kernels kept
    assert main(argv) == 0  # resumes: nothing left to do
    # a stored kernel cut (its features deleted): removed, one line; the next run extracts again
    gram = out / "features/fold2/pool.gram.npy"
    gram.write_bytes(gram.read_bytes()[:100])
    (out / "results/fold2/pool.json").unlink()
    assert main(argv) == 2
    assert f"{gram}: unreadable" in capsys.readouterr().err and not gram.exists()
    assert main(argv) == 0 and (out / "results/fold2/pool.json").exists()
    assert np.load(gram).shape[0] == np.load(gram).shape[1]
    assert main([*argv[:-1], "--Cs", "1"]) == 2
    assert "other probe" in capsys.readouterr().err
    assert main(["layers", "--run", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"vsent: error: {tmp_path / 'nope'}: no such file or "
                                       "directory\n")  # (robust36 #13: "not a crossval run")


def test_a_damaged_result_or_feature_record_is_computed_again(tmp_path, run_dir, caplog):
    """results/fold<k>/<layer>.json or features/fold<k>/meta.json cut or edited: a
    JSONDecodeError traceback (robust39 #1); now removed with a warning and computed again,
    as a cut feature or kernel file is, to the same table."""
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", folds=(1, 2))
    first = layer_probes(cfg, out, progress=False)
    result = out / "results/fold1/features.block1.json"
    result.write_text('{"broken')
    (out / "results/fold2/fc.json").write_text("[]")  # valid JSON, not a result
    (out / "results/fold2/pool.json").unlink()  # needs fold 2's features: their record is
    (out / "features/fold2/meta.json").write_text("garbage")  # damaged too
    # mut52d L13: fold 1's record edited to lack n_train and info is damaged as well (it was
    # read as complete, then a KeyError), its pool result gone
    meta1 = out / "features/fold1/meta.json"
    meta1.write_text(json.dumps({k: v for k, v in json.loads(meta1.read_text()).items()
                                 if k not in ("n_train", "info")}))
    (out / "results/fold1/pool.json").unlink()
    (out / "layers.json").unlink()  # (a finished run is shown, not probed)
    with caplog.at_level(logging.WARNING, logger="vsent"):
        again = layer_probes(cfg, out, progress=False)
    assert again == first
    assert f"{result}: unreadable (" in caplog.text and "removed; probed again" in caplog.text
    assert f"{out / 'features/fold2/meta.json'}: unreadable (" in caplog.text
    assert f"{meta1}: unreadable (no rows, layers, n_train, info), removed" in caplog.text
    assert json.loads(result.read_text())["layer"] == "features.block1"


def test_a_stored_kernel_that_cannot_be_read_is_computed_again_from_its_features(tmp_path):
    X = np.random.default_rng(0).normal(size=(6, 4))
    np.save(tmp_path / "fc.npy", X)
    (tmp_path / "fc.gram.npy").write_bytes(b"\x93NUMPY cut")
    np.testing.assert_allclose(L._fold_gram(tmp_path, "fc", 1), X @ X.T, rtol=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "fc.gram.npy"), X @ X.T, rtol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.gram.npy", "fc.npy"]


def test_layers_markdown_sets_campos_table_2_beside_caffenet_layers(tmp_path):
    from vsent import papers

    entry = {"dim": 9216, "svm": {"mean": 0.7, "std": 0.01, "folds": []},
             "softmax": {"mean": 0.71, "std": 0.02, "folds": []}}
    md = L.layers_markdown({"pool5": entry, "fc8": {**entry, "dim": 2}})
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == ("| layer | dim | linear SVM | softmax | linear SVM, Campos et al. | "
                        "softmax, Campos et al. | folds |")
    fc8 = papers.CAMPOS2015_TABLE2["fc8"]
    assert table[2] == (f"| fc8 | 2 | 0.700 +- 0.010 | 0.710 +- 0.020 | {fc8['svm'].printed()} "
                        f"| {fc8['softmax'].printed()} | 0 |")
    # as the paper printed them (0.82, not 0.820: audit_analyses24 #6)
    assert fc8["svm"].printed() == f"{fc8['svm'].mean:.2f} +- {fc8['svm'].std:.3f}"
    assert "Published (Campos et al. 2015, Table 2)" in md
    assert "this run started from" not in md  # no run directory given
    # mut55d L67: one layer the paper does not have (another network's) drops the column
    mixed = L.layers_markdown({"pool5": entry, "features.block1": entry})
    assert "Campos et al." not in mixed.splitlines()[2] and "Published (" not in mixed
    # with the probes' directory, the note names the probed run's initial weights
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"init": "random"}))
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "config.json").write_text(json.dumps({"run": str(tmp_path / "run")}))
    md = L.layers_markdown({"fc8": entry}, rundir=tmp_path / "probes")
    assert f"Fine-tuned models: `{tmp_path / 'run'}`" in md
    assert "comparable only to a CaffeNet run that started from them (this run started from " \
        "`random` weights)." in md


@pytest.mark.parametrize("model,published", [
    ({"model": "caffenet"}, True),
    ({"model": "caffenet", "model_kwargs": {"arch": "fc8-2"}}, True),
    ({"model": "caffenet", "model_kwargs": {"arch": "fc7-2"}}, False),
    ({"model": "caffenet", "model_kwargs": {"arch": "fc8-1000"}}, False),
    ({"model": "vgg16"}, False),
])
def test_campos_table_2_is_set_only_beside_caffenet_fc8_2(tmp_path, model, published):
    """The paper probes CaffeNet fc8-2; a surgery variant's fc7 (2-way in fc7-2) or another
    network's layers of the same names are other layers (audit_analyses24 #4)."""
    entry = {"dim": 2, "svm": {"mean": 0.7, "std": 0.01, "folds": []},
             "softmax": {"mean": 0.71, "std": 0.02, "folds": []}}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"init": "random", **model}))
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "config.json").write_text(json.dumps({"run": str(tmp_path / "run")}))
    md = L.layers_markdown({"fc6": entry, "fc7": entry}, rundir=tmp_path / "probes")
    header = next(line for line in md.splitlines() if line.startswith("| layer"))
    assert ("Campos et al." in header) == published
    assert ("Published (Campos et al. 2015, Table 2)" in md) == published
    if not published:
        arch = model.get("model_kwargs", {}).get("arch")
        network = f"{model['model']} {arch}" if arch else model["model"]
        assert f"these layers, of {network}, have no published counterpart" in md


def test_an_unfinished_crossval_run_is_refused_before_any_work(tmp_path, run_dir):
    import shutil

    part = tmp_path / "part"
    shutil.copytree(run_dir, part)
    (part / "fold3" / "model.pt").unlink()
    out = tmp_path / "layers"
    with pytest.raises(VsentError, match=r"fold3/model.pt: fold 3 has no model \(unfinished "
                                         r"run\? use crossval --resume\)"):
        layer_probes(LayersConfig(run=str(part), probe=PROBE, device="cpu"), out,
                     progress=False)
    assert not out.exists()  # not after folds 1 and 2's work
    # a finished run whose models were not kept (a git checkout of results/): not "resume"
    (part / "summary.json").write_text("{}")
    with pytest.raises(VsentError, match=r"fold 3 has no model: the run is finished but its "
                                         r"model files were not kept with it"):
        layer_probes(LayersConfig(run=str(part), probe=PROBE, device="cpu"), out,
                     progress=False)


def test_a_misspelt_layer_is_refused_first_naming_the_probe_layers(tmp_path, run_dir):
    """audit_errors28: --inner-splits was refused before an unknown --layers name."""
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=("features.blok1",))
    with pytest.raises(VsentError, match=r"^unknown layer\(s\) features\.blok1 for smallcnn; "
                                         r"probe layers: features\.block1, "):
        layer_probes(dataclasses.replace(cfg, probe=dataclasses.replace(PROBE, inner_splits=50)),
                     out, progress=False)
    assert not out.exists()
    # mut55d L46, L47: fold numbers the run lacks are refused, with the run's own range
    with pytest.raises(VsentError,
                       match=r": the run has no fold\(s\) \[6, 9\] \(folds 1\.\.5\)$"):
        layer_probes(dataclasses.replace(cfg, folds=(9, 1, 6)), out, progress=False)
    assert not out.exists()


def test_too_many_inner_splits_are_refused_before_any_extraction(tmp_path, run_dir, monkeypatch):
    """Each fold's smaller class must fill --inner-splits folds: checked before fold 1's
    features are extracted (hours for CaffeNet), and --out is not created."""
    monkeypatch.setattr(L, "extract_layer_features", lambda *a, **kw: pytest.fail("extracted"))
    cfg = LayersConfig(run=str(run_dir), probe=ProbeConfig(inner_splits=50), device="cpu")
    with pytest.raises(VsentError, match=r"^fold 1: the training images have \d+ of one class, "
                                         r"fewer than --inner-splits 50"):
        layer_probes(cfg, tmp_path / "layers", progress=False)
    assert not (tmp_path / "layers").exists()
    # the folds asked for are checked, not the run's first (mut52d L42)
    with pytest.raises(VsentError, match=r"^fold 2: the training images have \d+ of one class"):
        layer_probes(dataclasses.replace(cfg, folds=(2,)), tmp_path / "layers", progress=False)
    # mut55d: every fold asked for, not only the first (fold 4's training images hold 8
    # of one class, fold 1's 10)
    with pytest.raises(VsentError, match=r"^fold 4: the training images have 8 of one class"):
        layer_probes(dataclasses.replace(cfg, probe=ProbeConfig(inner_splits=9), folds=(1, 4)),
                     tmp_path / "layers", progress=False)


def test_fits_that_hit_the_iteration_cap_are_said_in_the_table(caplog):
    """trial32 #10: a probe stopped by max_iter was recorded only in layers.json."""
    def fold(k, converged):
        return {"fold": k, "accuracy": 0.7, "precision": 0.7, "recall": 0.7, "f1": 0.7,
                "C": 1.0, "inner_accuracy": 0.7, "converged": converged}

    entry = {"mean": 0.7, "std": 0.0}
    summary = {"conv1": {"dim": 10, "pooled": None,
                         "svm": {**entry, "folds": [fold(1, True), fold(2, False)]},
                         "softmax": {**entry, "folds": [fold(1, True), fold(2, True)]}},
               "fc": {"dim": 2, "pooled": None,
                      "svm": {**entry, "folds": [fold(1, False), fold(2, True)]}}}
    assert L.unconverged(summary) == ["conv1 linear SVM fold 2", "fc linear SVM fold 1"]
    del summary["conv1"]["softmax"]["folds"][0]["converged"]  # mut49b L41: an older record,
    assert L.unconverged(summary) == ["conv1 linear SVM fold 2", "fc linear SVM fold 1"]  # unsaid
    md = L.layers_markdown(summary, ProbeConfig(max_iter=50))
    assert ("The solver's iteration cap (max_iter = 50) was reached in 2 fits: conv1 linear "
            "SVM fold 2, fc linear SVM fold 1 (`converged: false` in layers.json).") in md
    summary["fc"]["svm"]["folds"][0]["converged"] = True
    summary["conv1"]["svm"]["folds"][1]["converged"] = True
    assert "iteration cap" not in L.layers_markdown(summary, ProbeConfig())


def test_a_layers_run_inside_its_crossval_run_continues_after_both_moved(tmp_path, run_dir):
    """session 36: layers refused to continue after the crossval run it lies in was moved
    ("made with other run"); as fuse, the run is known by its predictions' SHA-256."""
    (run_dir / "predictions.csv").write_text("name,fold,label,prob_positive\na,1,1,0.7\n")
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    layer_probes(cfg, run_dir / "layers", progress=False)
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    summary = layer_probes(dataclasses.replace(cfg, run=str(moved), folds=[1, 2]),
                           moved / "layers", progress=False)
    assert summary["fc"]["svm"]["folds"] and json.loads(
        (moved / "layers" / "config.json").read_text())["run"] == str(moved.resolve())
    (moved / "predictions.csv").write_text("name,fold,label,prob_positive\na,1,1,0.2\n")
    again = tmp_path / "again"
    moved.rename(again)  # other predictions: another run, refused as before
    with pytest.raises(VsentError, match="made with other run"):
        layer_probes(dataclasses.replace(cfg, run=str(again)), again / "layers", progress=False)


def test_a_run_whose_data_lost_an_image_is_said_to_have_changed(tmp_path, run_dir, twitter_like):
    """An image of the run's data deleted since: the loader's "skip them with --skip-bad",
    an option layers, regions and fuse do not have (robust39 #12); now the data-changed
    refusal an edited image already got."""
    load_dataset(twitter_like, "five").paths[3].unlink()
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    with pytest.raises(VsentError) as e:
        layer_probes(cfg, tmp_path / "layers", progress=False)
    said = str(e.value)
    assert said.startswith(f"{twitter_like}: its images or labels changed since {run_dir} was "
                           "trained on them: ") and "no such image" in said
    assert said.endswith("; restore them, or train the run again (crossval --overwrite)")
    assert "--skip-bad" not in said and "\n" not in said
    assert not (tmp_path / "layers").exists()
    # a label file that cannot be read now is said as such (its data did not change): no
    # advice to train the run again (review39 #2)
    labels = twitter_like / "ground_truth" / "twitter_five_agrees.txt"
    labels.unlink()
    labels.mkdir()
    with pytest.raises(VsentError) as e:
        layer_probes(cfg, tmp_path / "layers", progress=False)
    assert "changed since" not in str(e.value) and "crossval --overwrite" not in str(e.value)


def test_a_moved_unfinished_run_is_refused_in_one_line_and_a_stop_after_a_move_continues(
        tmp_path, run_dir, monkeypatch):
    """review37 #1: a run without predictions.csv (unfinished) moved made run_moved_since
    hash a missing file (a traceback); #2: a layers run stopped after its run moved kept the
    old path in config.json and the new one in inputs.json, and was then "made with other
    run"."""
    import vsent.analyses.layers as layers_module

    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    layer_probes(cfg, run_dir / "layers", progress=False)
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    with pytest.raises(VsentError, match="made with other run"):  # nothing identifies it
        layer_probes(dataclasses.replace(cfg, run=str(moved)), moved / "layers",
                     progress=False)
    run_dir = moved
    (run_dir / "predictions.csv").write_text("name,fold,label,prob_positive\na,1,1,0.7\n")
    cfg = dataclasses.replace(cfg, run=str(run_dir))
    layer_probes(cfg, run_dir / "layers", overwrite=True, progress=False)
    moved = tmp_path / "moved2"
    run_dir.rename(moved)
    both = dataclasses.replace(cfg, run=str(moved), folds=[1, 2])

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(layers_module, "_probe_fold", stop)
        with pytest.raises(KeyboardInterrupt):
            layer_probes(both, moved / "layers", progress=False)
    summary = layer_probes(both, moved / "layers", progress=False)  # the same call again
    assert [f["fold"] for f in summary["fc"]["svm"]["folds"]] == [1, 2]


def test_the_names_layers_had_before_probes_was_split_out_import_from_it():
    """review42 F1: `from vsent.analyses.layers import make_classifier` (and the rest of its
    old __all__) failed once the probes' parts moved to vsent.analyses.probes."""
    old = ["CLASSIFIERS", "CenterScale", "DEFAULT_CS", "DEFAULT_MAX_FEATURES", "LayersConfig",
           "ProbeConfig", "extract_layer_features", "gram_embedding", "gram_matrix",
           "layer_probes", "layers_markdown", "linear_probe", "make_classifier", "plot_layers",
           "pooled_grid", "probe_features", "summarize"]
    assert set(old) <= set(L.__all__)
    assert all(getattr(L, n) is getattr(P, n) for n in old if hasattr(P, n))


# mutation round 43 (mut43): tests that kill mutants the suite missed


def test_center_scale_centres_on_the_fitted_rows_and_divides_by_their_rms_centred_norm():
    """mut43 PR02, PR04: the documented scaling, by hand: rows centred on the mean of the rows
    fitted on, all divided by one factor, the root mean squared norm of those centred rows;
    new rows get the fitted mean and factor."""
    X = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    s = P.CenterScale().fit(X)
    np.testing.assert_allclose(s.mean_, [3.0, 6.0])
    # centred rows (-2, -4), (0, 0), (2, 4): squared norms 20, 0, 20
    assert s.scale_ == pytest.approx((40 / 3) ** 0.5)
    np.testing.assert_allclose(s.transform(X), (X - [3.0, 6.0]) / (40 / 3) ** 0.5)
    np.testing.assert_allclose(s.transform([[3.0, 6.0], [4.0, 8.0]]),
                               [[0.0, 0.0], [1.0, 2.0] / np.sqrt(40 / 3)])


@pytest.mark.parametrize("name", ["svm", "softmax"])
def test_make_classifier_is_liblinear_with_the_given_c_on_centred_scaled_rows(name):
    """mut43 PR31, PR32: ``C`` reaches the classifier (the grid search compared the probe with
    make_classifier itself, so a C that never arrived passed). The reference here is
    scikit-learn's own liblinear classifier on rows centred and scaled by hand."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    X, y = separable(n=60, d=40, seed=8, signal=0.5)
    Xs = (X - X.mean(axis=0)) / np.sqrt(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1)))
    decisions = []
    for C in (0.01, 100.0):
        ref = (LinearSVC(C=C, dual=True, max_iter=10_000, tol=1e-4, random_state=0)
               if name == "svm" else
               LogisticRegression(C=C, solver="liblinear", dual=True, max_iter=10_000,
                                  tol=1e-4, random_state=0))
        want = ref.fit(Xs, y).decision_function(Xs)
        got = make_classifier(name, C).fit(X, y).decision_function(X)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
        decisions.append(got)
    assert np.abs(decisions[0] - decisions[1]).max() > 0.1  # C makes a difference here


def test_the_probe_does_not_depend_on_the_activations_scale_or_offset():
    """mut43 PR06: the features are centred and divided by one global factor
    before the classifier, so that one C grid serves layers whose activations differ by
    orders of magnitude: features times 1000 plus 50 give the same C, inner scores and test
    predictions."""
    X, y = separable(n=80, d=120, seed=4, signal=1.0)
    train, test = np.arange(60), np.arange(60, 80)
    Y = X * 1000.0 + 50.0
    cfg = ProbeConfig(Cs=(1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0), inner_splits=3)
    for clf in ("svm", "softmax"):
        plain = linear_probe(X @ X.T, y, train, test, clf, cfg)
        scaled = linear_probe(Y @ Y.T, y, train, test, clf, cfg)
        assert scaled["C"] == plain["C"]
        assert scaled["inner_scores"] == pytest.approx(plain["inner_scores"])
        assert scaled["confusion"] == plain["confusion"]
        assert plain["C"] == 10.0  # (the inner scores rise with C on these features)


def test_gram_matrix_of_an_array_keeps_its_last_column_in_any_block_size():
    """mut43 PR23: the in-memory blocks must reach the last column for every block size, one
    column a block and blocks of 7 over 50 columns (the last block holds column 49 alone)."""
    X = np.random.default_rng(0).standard_normal((13, 50))
    direct = X @ X.T
    for columns in (1, 7):
        np.testing.assert_allclose(gram_matrix(X, block_bytes=8 * 13 * columns), direct,
                                   rtol=1e-12)
    # an activation array (n, c, h, w) is the kernel of its flattened rows
    np.testing.assert_allclose(gram_matrix(X.reshape(13, 2, 5, 5), block_bytes=8 * 13 * 7),
                               direct, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# mutation round 45 (mut45a): vsent.analyses.layers mutants the suite missed


def test_probed_with_current_models_compares_each_folds_stamp_with_its_model(
        tmp_path: Path) -> None:
    """A reproduction reuses a finished layers run only when every stamped fold's
    ``model.sha256`` is the SHA-256 of the model that fold holds now; a fold whose model is
    gone is taken as it is, and a run without layers.json is not finished."""
    from vsent.files import file_sha256

    run, out = tmp_path / "cv", tmp_path / "layers"
    for k, content in ((1, b"model one"), (2, b"model two")):
        (run / f"fold{k}").mkdir(parents=True)
        (run / f"fold{k}" / "model.pt").write_bytes(content)
        (out / f"results/fold{k}").mkdir(parents=True)
        sha = file_sha256(run / f"fold{k}" / "model.pt")
        (out / f"results/fold{k}/model.sha256").write_text(f"{sha}  {run}/fold{k}/model.pt\n")
    assert not L.probed_with_current_models(run, out)  # no layers.json: unfinished
    (out / "layers.json").write_text("{}")
    assert L.probed_with_current_models(run, out)
    (run / "fold2" / "model.pt").write_bytes(b"model two, trained again")
    assert not L.probed_with_current_models(run, out)
    (run / "fold2" / "model.pt").unlink()  # results/ keeps no models: nothing to compare
    assert L.probed_with_current_models(run, out)
    (out / "results/fold1/model.sha256").write_bytes(b"\xff\xfe")  # unreadable: probe again
    assert not L.probed_with_current_models(run, out)  # (left52 L29)


def test_network_accuracy_is_of_the_probed_folds_or_none(tmp_path: Path) -> None:
    """The networks' own accuracy set beside the probes: the summary's mean for all folds,
    the probed folds' mean and population std for some, and None when the summary lacks one
    of them (a mean over fewer folds than the probes would read as theirs) or is unusable."""
    run = tmp_path / "cv"
    run.mkdir()
    assert L._network_accuracy(run, [1, 2], 5) is None  # no summary.json
    folds = [{"fold": k, "accuracy": a} for k, a in ((1, 0.6), (2, 0.7), (4, 0.9))]
    (run / "summary.json").write_text(json.dumps(
        {"center": {"accuracy": {"mean": 0.75, "std": 0.1}, "folds": folds}}))
    assert L._network_accuracy(run, [1, 2, 3, 4, 5], 5) == {"mean": 0.75, "std": 0.1, "n": 5}
    got = L._network_accuracy(run, [4, 1], 5)
    assert got == {"mean": pytest.approx(0.75), "std": pytest.approx(0.15), "n": 2,
                   "folds": [1, 4], "of": 5}
    assert L._network_accuracy(run, [1, 3], 5) is None  # fold 3 is not in the summary
    (run / "summary.json").write_text(json.dumps({"center": {"folds": "none"}}))
    assert L._network_accuracy(run, [1], 5) is None


def test_another_feature_bound_in_the_same_directory_is_refused(tmp_path: Path,
                                                                run_dir: Path) -> None:
    """``max_features`` changes the features (pooled or raw), so the probes: a directory
    made with one bound refuses another, as it refuses other probe settings; the batch
    size only changes the speed and continues the run."""
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    first = layer_probes(cfg, out, progress=False)
    with pytest.raises(VsentError, match="other max_features"):
        layer_probes(dataclasses.replace(cfg, max_features=1000), out, progress=False)
    again = layer_probes(dataclasses.replace(cfg, batch_size=4), out, progress=False)
    assert again == first


def test_summary_csv_has_a_column_for_every_probed_fold(tmp_path: Path) -> None:
    """Layers probed on other folds (a on 1 and 3, b on 2): layers.csv has a column for
    each fold any layer has, each row filled where it has a result; a layer without any
    result is left out, and a layer's mean and std are over its own folds."""
    import csv

    from vsent.runs import RunDir

    def record(k: int, layer: str, acc: float, clfs=PROBE.classifiers) -> dict:
        metrics = {"accuracy": acc, "precision": acc, "recall": 1.0, "f1": acc - 0.5,
                   "C": 1.0, "inner_accuracy": acc, "converged": True}
        return {"fold": k, "layer": layer, "dim": 8, "pooled": None,
                **{clf: metrics for clf in clfs}}

    with RunDir(tmp_path / "probes") as rd:  # (mut52d L38: a's fold 3 has no softmax probe)
        for k, layer, acc, clfs in ((1, "a", 0.6, PROBE.classifiers), (3, "a", 0.8, ("svm",)),
                                    (2, "b", 0.7, PROBE.classifiers)):
            rd.write_json(f"results/fold{k}/{layer}.json", record(k, layer, acc, clfs))
        summary = L.summarize(rd, ["a", "b", "c"], [1, 2, 3], PROBE)
    assert list(summary) == ["a", "b"]
    assert summary["a"]["svm"]["mean"] == pytest.approx(0.7)
    assert summary["a"]["svm"]["std"] == pytest.approx(0.1)
    with open(tmp_path / "probes" / "layers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["layer", "depth", "dim", "classifier", "mean", "std", "n_folds",
                             "fold1", "fold2", "fold3"]
    a_svm = next(r for r in rows if (r["layer"], r["classifier"]) == ("a", "svm"))
    assert (a_svm["depth"], a_svm["n_folds"]) == ("1", "2")
    assert (float(a_svm["fold1"]), a_svm["fold2"], float(a_svm["fold3"])) == (0.6, "", 0.8)
    # mut52d L45, L38: the fold columns are accuracies (not F1); the Markdown's folds column is
    # the most any classifier of the layer has
    md = (tmp_path / "probes" / "layers.md").read_text().splitlines()
    assert next(line for line in md if line.startswith("| a |")).endswith(" | 2 |")
    b_svm = next(r for r in rows if (r["layer"], r["classifier"]) == ("b", "svm"))
    assert (b_svm["depth"], b_svm["fold1"], float(b_svm["fold2"])) == ("2", "", 0.7)


def test_finished_results_need_no_features_and_the_config_names_the_last_session(
        tmp_path: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished ``results/fold<k>/<layer>.json`` is never recomputed, even with its
    features folder gone (nothing is extracted again); config.json beside the summary
    names the folds of the session that wrote the summary, not the first session's."""
    import shutil

    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    first = layer_probes(cfg, out, progress=False)
    shutil.rmtree(out / "features")
    with monkeypatch.context() as mp:
        mp.setattr(L, "extract_layer_features",
                   lambda *a, **kw: pytest.fail("a finished fold extracted again"))
        assert layer_probes(cfg, out, progress=False) == first
    both = layer_probes(dataclasses.replace(cfg, folds=(1, 2)), out, progress=False)
    assert [f["fold"] for f in both["fc"]["svm"]["folds"]] == [1, 2]
    assert json.loads((out / "config.json").read_text())["folds"] == [1, 2]
    # mut52d L08: the summary is of this session's folds, not of every fold with a result
    two = layer_probes(dataclasses.replace(cfg, folds=(2,)), out, progress=False)
    assert [f["fold"] for f in two["fc"]["svm"]["folds"]] == [2]


def test_a_stored_record_without_its_keys_is_removed_as_damaged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A result or meta.json that parses but lacks the keys it must hold (an edited file,
    another tool's JSON) is treated as a damaged one: removed with a warning and computed
    again, not a KeyError later in the summary."""
    path = tmp_path / "fc.json"
    path.write_text(json.dumps({"layer": "fc", "svm": {}}))  # no "dim"
    with caplog.at_level(logging.WARNING, logger="vsent"):
        assert L._stored_json(path, ("layer", "dim"), "probed again") is None
    assert not path.exists() and "no layer, dim" in caplog.text
    path.write_text(json.dumps(["layer", "dim"]))  # not a record at all
    assert L._stored_json(path, ("layer", "dim"), "probed again") is None
    path.write_text(json.dumps({"layer": "fc", "dim": 2}))
    assert L._stored_json(path, ("layer", "dim"), "probed again") == {"layer": "fc", "dim": 2}


def test_a_published_cell_without_a_value_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Table 2 cell whose value is not available here is printed "not available" (as the
    other tables print it), not left empty as if the paper had no such cell."""
    from vsent import papers

    entry = {"dim": 2, "svm": {"mean": 0.7, "std": 0.01, "folds": [{"fold": 1}]},
             "softmax": {"mean": 0.71, "std": 0.02, "folds": [{"fold": 1}]}}
    table = {**L.CAMPOS2015_TABLE2, "fc8": {**L.CAMPOS2015_TABLE2["fc8"],
                                            "svm": papers.NOT_AVAILABLE}}
    monkeypatch.setattr(L, "CAMPOS2015_TABLE2", table)
    row = next(line for line in L.layers_markdown({"fc8": entry}).splitlines()
               if line.startswith("| fc8 |"))
    softmax = table["fc8"]["softmax"].printed()
    assert row.endswith(f" | {papers.NOT_AVAILABLE_TEXT} | {softmax} | 1 |")


def test_layers_extracted_in_two_sessions_keep_their_records_and_an_unstamped_fold_stays_so(
        tmp_path: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fc, then pool, of one fold: meta.json keeps both layers' extraction records, so a
    removed fc result is probed again from the stored features; a fold probed by a vsent
    that kept no model stamp is taken as it is, and no stamp is made up for it."""
    out = tmp_path / "layers"
    monkeypatch.chdir(run_dir.parent)  # the run named relative to here (left52 L06)
    cfg = LayersConfig(run=run_dir.name, probe=PROBE, device="cpu", layers=["fc"], folds=[1])
    first = layer_probes(cfg, out, progress=False)
    assert json.loads((out / "config.json").read_text())["run"] == str(run_dir.resolve())
    layer_probes(dataclasses.replace(cfg, layers=("pool",)), out, progress=False)
    meta = json.loads((out / "features/fold1/meta.json").read_text())
    assert meta["layers"] == ["pool", "fc"] and set(meta["info"]) == {"pool", "fc"}
    assert not any("path" in i for i in meta["info"].values())  # (left52 L41: no cache path)
    # mut52d L22: --delete-features waits for every extracted layer's result (pool's is gone)
    (out / "results/fold1/pool.json").unlink()
    layer_probes(dataclasses.replace(cfg, keep_features=False), out, progress=False)
    assert (out / "features/fold1/pool.npy").exists()
    (out / "results/fold1/fc.json").unlink()
    assert layer_probes(cfg, out, progress=False) == first  # same features, same probe
    stamp = out / "results/fold1/model.sha256"
    stamp.unlink()
    assert layer_probes(cfg, out, progress=False) == first
    assert not stamp.exists()
    # mut55d L58: nor a fold of such features whose results are gone (they are probed again)
    shutil.rmtree(out / "results/fold1")
    assert layer_probes(cfg, out, progress=False) == first
    assert not stamp.exists()
    # mut49b L36: with its features deleted (as --delete-features leaves a fold), its results
    # alone are no more checked against today's model
    shutil.rmtree(out / "features/fold1")
    assert layer_probes(cfg, out, progress=False) == first
    assert not stamp.exists()


# --------------------------------------------------------------------------------------------
# mutation round 46 (mut46e): vsent.analyses.probes mutants the suite missed


def test_probe_config_takes_one_classifier_by_name_and_refuses_none() -> None:
    """mut46e P06, P07: ``classifiers="svm"`` is the one classifier (not the letters s, v, m),
    and an empty choice probes nothing, so it is refused."""
    assert ProbeConfig(classifiers="softmax").classifiers == ("softmax",)
    with pytest.raises(VsentError, match=r"--classifiers: unknown classifier\(s\) \(\)"):
        ProbeConfig(classifiers=())
    with pytest.raises(VsentError, match=r"unknown classifier 'knn'; choose from svm, softmax"):
        make_classifier("knn")  # mut46e P74: returned the error instead of raising it


def test_center_scale_of_identical_rows_only_centres() -> None:
    """mut46e P11: rows without spread have no norm to divide by; the factor is 1, so new
    rows are only centred (not blown up by a near-zero factor)."""
    s = P.CenterScale().fit(np.full((4, 3), 2.0))
    assert s.scale_ == 1.0
    np.testing.assert_array_equal(s.transform([[3.0, 2.0, 0.0]]), [[1.0, 0.0, -2.0]])


def test_gram_embedding_honours_rtol_and_gives_zero_test_rows_for_a_zero_kernel() -> None:
    """mut46e P26: eigenvalues at or below ``rtol * max`` are dropped, whatever rtol is
    given; P23: an all-zero kernel has zero test rows (the test rows are zero vectors)."""
    rng = np.random.default_rng(0)
    # columns of very different size: eigenvalues about 100^2 n, n, 0.01^2 n
    X = rng.standard_normal((30, 3)) * [100.0, 1.0, 0.01]
    K = X @ X.T
    train, test = np.arange(20), np.arange(20, 30)
    assert gram_embedding(K, train, test)[0].shape[1] == 3
    assert gram_embedding(K, train, test, rtol=1e-6)[0].shape[1] == 2
    assert gram_embedding(K, train, test, rtol=1e-2)[0].shape[1] == 1
    Z_tr, Z_te = gram_embedding(np.zeros((30, 30)), train, test)
    assert Z_tr.shape == (20, 1) and Z_te.shape == (10, 1)
    assert not Z_tr.any() and not Z_te.any()


def test_a_training_set_of_one_class_is_refused() -> None:
    """mut46e P28: no training image of a class is 0 images of that class (bincount of
    all-negative labels has one bin only), fewer than the inner folds."""
    X = np.random.default_rng(0).normal(size=(20, 5))
    y = np.array([0] * 15 + [1] * 5)
    with pytest.raises(VsentError, match="the training rows have 0 images of one class"):
        linear_probe(X @ X.T, y, np.arange(15), np.arange(15, 20), "svm", PROBE)


def test_the_probe_reports_the_chosen_cs_inner_accuracy_and_hitting_the_cap() -> None:
    """mut46e P37: ``inner_accuracy`` is the chosen C's mean inner-CV accuracy (not the mean
    over the grid); P32, P34: ``max_iter`` reaches the solver and every fit that hits it is
    reported, also on a second probe of the same data and where the caller ignores
    ConvergenceWarning (the probe sets its own filter)."""
    X, y = separable(n=60, d=40, seed=8, signal=0.5)
    train, test = np.arange(45), np.arange(45, 60)
    K = X @ X.T
    res = linear_probe(K, y, train, test, "svm", PROBE)
    assert res["inner_accuracy"] == res["inner_scores"][list(PROBE.Cs).index(res["C"])]
    assert res["inner_accuracy"] == max(res["inner_scores"])
    assert len(set(res["inner_scores"])) > 1  # the mean over the grid would differ
    assert res["converged"]
    capped = dataclasses.replace(PROBE, max_iter=1)
    for _ in range(2):
        assert linear_probe(K, y, train, test, "svm", capped)["converged"] is False
    # a caller that silences the warning (``-W ignore``) still gets the fit recorded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert linear_probe(K, y, train, test, "svm", capped)["converged"] is False


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["svm", "softmax"])
def test_the_seed_sets_liblinears_coordinate_order(name: str) -> None:
    """mut46e P14, P16, P31: ``seed`` is liblinear's coordinate order (documented in
    ProbeConfig). Stopped after 2 passes, fits of different seeds differ; each equals
    scikit-learn's with that random_state, and the probe passes its config's seed on."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    X, y = separable(n=60, d=40, seed=8, signal=0.5)
    Xs = P.CenterScale().fit_transform(X)
    got = {}
    for seed in (0, 5):
        ref = (LinearSVC(C=10.0, dual=True, max_iter=2, tol=1e-4, random_state=seed)
               if name == "svm" else
               LogisticRegression(C=10.0, solver="liblinear", dual=True, max_iter=2, tol=1e-4,
                                  random_state=seed))
        got[seed] = make_classifier(name, 10.0, seed=seed, max_iter=2).fit(X, y)
        np.testing.assert_allclose(got[seed].decision_function(X),
                                   ref.fit(Xs, y).decision_function(Xs), rtol=1e-9, atol=1e-12)
    assert np.abs(got[0].decision_function(X) - got[5].decision_function(X)).max() > 1e-3
    # the probe refits with its config's seed: its test predictions are that classifier's
    train, test = np.arange(45), np.arange(45, 60)
    cfg = ProbeConfig(Cs=(10.0,), inner_splits=3, seed=5, classifiers=(name,), max_iter=2)
    res = linear_probe(X @ X.T, y, train, test, name, cfg)
    want = make_classifier(name, 10.0, seed=5, max_iter=2).fit(X[train], y[train])
    pred = want.predict(X[test])
    assert res["confusion"] == [[int(np.sum((y[test] == a) & (pred == b))) for b in (0, 1)]
                                for a in (0, 1)]


def test_gram_matrix_takes_any_block_size_and_featureless_rows(tmp_path: Path) -> None:
    """mut46e P42, P51: a block smaller than one column of float64 still holds one column;
    P41, P47: rows without features have a zero kernel (not None), from memory and from a
    file."""
    X = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    direct = X.astype(np.float64) @ X.T.astype(np.float64)
    for features in (X, path):
        np.testing.assert_allclose(gram_matrix(features, block_bytes=1), direct, rtol=1e-12)
    empty = np.zeros((4, 0), np.float32)
    np.save(tmp_path / "empty.npy", empty)
    for features in (empty, tmp_path / "empty.npy"):
        K = gram_matrix(features)
        assert K.shape == (4, 4) and not K.any()


@pytest.mark.parametrize("array, said", [
    (np.asfortranarray(np.arange(12.0).reshape(3, 4)), r"\(Fortran order\)"),
    (np.arange(12, dtype=np.int32).reshape(3, 4), "int32"),
    (np.zeros((3, 2, 2), np.float32), r"\(3, 2, 2\)")])
def test_a_feature_file_that_is_not_c_order_2d_float_is_refused(
        tmp_path: Path, array: np.ndarray, said: str) -> None:
    """mut46e P44, P45, P46: the rows are read straight from the file as C-order float rows;
    a Fortran-order file would give a wrong kernel, a 3-D one a numpy unpacking error."""
    path = tmp_path / "f.npy"
    np.save(path, array)
    with pytest.raises(VsentError, match=rf"f\.npy: expected a C-order 2-D float array, "
                                         rf"got .*{said}"):
        gram_matrix(path)


def test_pooled_grid_never_exceeds_the_shorter_side() -> None:
    """mut46e P56: a map 30 x 3 pooled to fit 100 values keeps its 3 columns (a 5 x 5 grid
    would repeat them)."""
    assert pooled_grid((4, 30, 3), 100) == 3
    assert pooled_grid((4, 3, 30), 100) == 3


def test_declared_pooling_applies_only_to_activations_of_its_shape() -> None:
    """mut46e P58, P60: "avg" averages a (B, C, h, w) map and "tokens" a (B, T, C) sequence;
    a layer of another shape (e.g. the fc output (B, 2)) is stored flat as it is."""
    fc = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    for pool in ("avg", "tokens"):
        flat, pooled = P._reduce(fc, pool, None)
        assert pooled is None
        np.testing.assert_array_equal(flat.numpy(), fc.numpy())
    fmap = torch.arange(24, dtype=torch.float32).reshape(1, 2, 3, 4)
    flat, pooled = P._reduce(fmap, "tokens", None)
    assert pooled is None and flat.shape == (1, 24)


def test_extraction_records_the_asked_layers_with_their_shape_and_names_a_full_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mut46e P72: ``layers`` chooses the layers written; P69: ``shape`` is one image's
    activation shape; P66, P67: a disk too full for a feature file is a VsentError naming the
    file and its size (reserve_space says so before any row is written)."""
    import errno

    model = create_model("smallcnn", **TINY).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    info = extract_layer_features(model, images, tmp_path / "a", layers=["features.block2"],
                                  max_features=1000)
    assert list(info) == ["features.block2"]
    assert info["features.block2"]["shape"] == [8, 14, 14]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["features.block2.npy"]

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(P, "reserve_space", full)
    with pytest.raises(VsentError, match=r"fc\.npy: cannot write the fc features \(No space "
                                         r"left on device; 0\.0 MB\): make room"):
        extract_layer_features(model, images, tmp_path / "b", layers=["fc"])


# mutation round 47 (mut47c): vsent.cli.layers mutants the suite missed


def test_cli_layers_options_reach_the_configs_and_default_as_documented(monkeypatch, capsys):
    """Each option of `vsent layers` reaches LayersConfig / ProbeConfig; left out, they are
    the defaults its help states (both classifiers, the C grid, 5 inner splits, auto, 32)."""
    import vsent.analyses.layers as L
    from vsent.analyses.probes import CLASSIFIERS, DEFAULT_CS, ProbeConfig
    from vsent.cli import main

    calls: list[tuple] = []

    def spy(cfg, out, **kwargs):
        calls.append((cfg, out, kwargs))
        # svm and softmax rows; the second layer has only softmax
        cell = {"mean": 0.7, "std": 0.1, "folds": [0.6, 0.8]}
        return {"conv1": {"svm": cell, "softmax": cell}, "fc7": {"softmax": cell}}

    monkeypatch.setattr(L, "layer_probes", spy)
    monkeypatch.setattr("vsent.progress.on_terminal", lambda progress: progress)  # a terminal
    assert main(["layers", "--run", "r"]) == 0
    cfg, out, kwargs = calls.pop()
    assert cfg == L.LayersConfig(run="r", probe=ProbeConfig(
        Cs=DEFAULT_CS, inner_splits=5, seed=0, classifiers=CLASSIFIERS), layers=None,
        folds=None, max_features="auto", batch_size=32, device="auto", keep_features=True)
    assert (out, kwargs["overwrite"], kwargs["progress"]) == ("runs/layers", False, True)
    lines = capsys.readouterr().out.splitlines()
    # a classifier the entry lacks is left out of its line
    assert lines[:2] == ["conv1        svm 0.700 +- 0.100  softmax 0.700 +- 0.100",
                         "fc7          softmax 0.700 +- 0.100"]
    assert main(["layers", "--run", "r", "--layers", "conv1,fc7", "--fold-ids", "2,3",
                 "--classifiers", "softmax", "--Cs", "0.5,2", "--inner-splits", "3",
                 "--max-features", "none", "--batch-size", "8", "--device", "cpu", "--seed",
                 "4", "--delete-features", "--overwrite", "--out", "o", "--no-progress"]) == 0
    cfg, out, kwargs = calls.pop()
    assert cfg == L.LayersConfig(run="r", probe=ProbeConfig(
        Cs=(0.5, 2.0), inner_splits=3, seed=4, classifiers=("softmax",)),
        layers=("conv1", "fc7"), folds=(2, 3), max_features="none", batch_size=8,
        device="cpu", keep_features=False)
    assert (out, kwargs["overwrite"], kwargs["progress"]) == ("o", True, False)


# mutation round 49 (mut49b): vsent.analyses.layers mutants the suite missed


def test_max_features_none_keeps_every_familys_layers_raw_and_a_number_is_the_bound() -> None:
    """``max_features="none"`` (as LayersConfig stores --max-features none) is no bound for
    any family, like None; "auto" bounds all but CaffeNet; a number bounds every family."""
    for family in ("resnet18", "caffenet", "smallcnn"):
        assert L._resolve_max_features("none", family) is None
        assert L._resolve_max_features(None, family) is None
        assert L._resolve_max_features(1000, family) == 1000
    cfg = LayersConfig(run="r", max_features="none")
    assert L._resolve_max_features(cfg.max_features, "resnet18") is None


def test_the_summary_csv_orders_fold_columns_by_number_and_a_one_fold_reference_is_singular(
        tmp_path: Path) -> None:
    """fold2 comes before fold10 in layers.csv (numbers, not text); the networks' accuracy of
    one probed fold names that fold in the singular."""
    import csv

    from vsent.runs import RunDir

    metrics = {"accuracy": 0.6, "precision": 0.6, "recall": 1.0, "f1": 0.6, "C": 1.0,
               "inner_accuracy": 0.6, "converged": True}
    with RunDir(tmp_path / "probes") as rd:
        for k in (10, 2):
            rd.write_json(f"results/fold{k}/a.json", {"fold": k, "layer": "a", "dim": 8,
                                                      "pooled": None, "svm": metrics})
        L.summarize(rd, ["a"], [2, 10], ProbeConfig(classifiers=("svm",)))
    with open(tmp_path / "probes" / "layers.csv", newline="") as f:
        assert next(csv.reader(f))[-2:] == ["fold2", "fold10"]
    md = L.layers_markdown({}, PROBE, reference={"mean": 0.7, "std": 0.0, "n": 1,
                                                 "folds": [3], "of": 5})
    assert "(their own softmax output, centre crop, the run's summary.json, fold 3 of 5): " \
        in md
    # mut59j J62: an empty table has no layer of the paper's, so no published columns
    assert "Campos et al. |" not in md and "Published (Campos" not in md
    # mut59j J60: no layer has a result yet: an empty table and no plot of nothing
    with RunDir(tmp_path / "none") as rd:
        assert L.summarize(rd, ["a"], [1], ProbeConfig(classifiers=("svm",))) == {}
    assert not (tmp_path / "none" / "layers.png").exists()


def test_a_pooled_layer_is_said_so_and_one_capped_fit_is_singular(tmp_path: Path) -> None:
    """summarize keeps the fold records' ``pooled`` (the table marks the layer's dim as
    pooled); a single fit stopped by max_iter is "1 fit", not "1 fits"."""
    from vsent.runs import RunDir

    metrics = {"accuracy": 0.6, "precision": 0.6, "recall": 1.0, "f1": 0.6, "C": 1.0,
               "inner_accuracy": 0.6, "converged": False}
    with RunDir(tmp_path / "probes") as rd:
        rd.write_json("results/fold1/a.json", {"fold": 1, "layer": "a", "dim": 1800,
                                               "pooled": 15, "svm": metrics})
        summary = L.summarize(rd, ["a"], [1], ProbeConfig(classifiers=("svm",), max_iter=40))
    assert summary["a"]["pooled"] == 15
    md = (tmp_path / "probes" / "layers.md").read_text()
    assert "| a | 1,800 (pooled) | " in md
    assert ("The solver's iteration cap (max_iter = 40) was reached in 1 fit: a linear SVM "
            "fold 1 (`converged: false` in layers.json).") in md


def test_a_feature_file_its_folds_record_does_not_list_is_extracted_again(
        tmp_path: Path, run_dir: Path) -> None:
    """A layer's .npy that meta.json does not list (an extraction killed before it wrote the
    record) is not taken as the layer's features: it is extracted again and probed."""
    out = tmp_path / "layers"
    cfg = LayersConfig(run=str(run_dir), probe=PROBE, device="cpu", layers=["pool"], folds=[1])
    layer_probes(cfg, out, progress=False)
    np.save(out / "features/fold1/fc.npy", np.zeros((3, 2), np.float32))  # cut short
    summary = layer_probes(dataclasses.replace(cfg, layers=("fc",)), out, progress=False)
    assert list(summary) == ["fc"] and len(summary["fc"]["svm"]["folds"]) == 1
    meta = json.loads((out / "features/fold1/meta.json").read_text())
    assert meta["layers"] == ["pool", "fc"] and meta["info"]["fc"]["dim"] == 2


# mutation round 50 (mut50c): vsent.analyses.probes mutants the suite missed


def test_a_token_sequence_flattened_under_a_feature_bound_is_not_pooled_as_a_map() -> None:
    """mut50c P43: only an activation whose per-image shape is (C, H, W) is pooled to a grid;
    a (B, T, C) sequence kept flat (pool "flatten") under ``max_features`` is stored whole,
    not pooled as if the batch were channels."""
    tokens = torch.arange(2 * 50 * 8, dtype=torch.float32).reshape(2, 50, 8)
    flat, pooled = P._reduce(tokens, "flatten", 16)
    assert pooled is None
    np.testing.assert_array_equal(flat.numpy(), tokens.reshape(2, -1).numpy())


def test_a_warning_other_than_convergence_does_not_mark_the_fit_unconverged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """mut50c P25: ``converged`` is about ConvergenceWarning only; another warning raised while
    the probe fits (here by the kernel embedding) does not make a converged fit look capped,
    and reaches the user (it was recorded with the convergence warnings and swallowed, where
    baselines pass it on: mut50c's note)."""
    X, y = separable(n=60, d=40, seed=8, signal=0.5)
    real = P.gram_embedding

    def noisy(*args, **kwargs):
        warnings.warn("an unrelated warning", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "gram_embedding", noisy)
    with pytest.warns(UserWarning, match="an unrelated warning"):
        res = linear_probe(X @ X.T, y, np.arange(45), np.arange(45, 60), "svm", PROBE)
    assert res["converged"] is True


def test_a_full_disk_message_gives_the_float32_size_of_the_feature_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mut50c P53: the size said when a feature file cannot be written is 4 bytes per value
    (float32) times rows times values per image: 20 x 3136 x 4 bytes = 0.25 MB."""
    import errno

    model = create_model("smallcnn", **TINY).eval()
    images = np.random.default_rng(0).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(P, "reserve_space", full)
    with pytest.raises(VsentError, match=r"features\.block1\.npy: cannot write the "
                                         r"features\.block1 features \(No space left on "
                                         r"device; 0\.3 MB\)"):
        extract_layer_features(model, images, tmp_path, layers=["features.block1"])


def test_the_default_rank_cut_scales_with_the_training_rows_not_the_test_rows() -> None:
    """mut50c P15: without ``rtol`` an eigenvalue is dropped at or below ``len(train) * eps``
    times the largest (numpy.linalg.matrix_rank's cut), whatever the number of test rows: an
    eigenvalue of 50 eps with 100 training rows and 1 test row is numerical noise."""
    w = np.ones(101)
    w[1] = 50 * np.finfo(np.float64).eps
    K = np.diag(w)
    train, test = np.arange(100), np.array([100])
    assert np.linalg.matrix_rank(K[np.ix_(train, train)]) == 99
    Z_tr, Z_te = gram_embedding(K, train, test)
    assert Z_tr.shape == (100, 99) and Z_te.shape == (1, 99)


def test_inner_accuracy_is_the_chosen_cs_when_it_is_not_the_first_of_the_grid() -> None:
    """mut50c P27: ``inner_accuracy`` is the mean inner-CV accuracy of the C chosen (here the
    largest of the grid), not of the grid's first C."""
    X, y = separable(n=80, d=120, seed=4, signal=1.0)
    cfg = ProbeConfig(Cs=(1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0), inner_splits=3)
    res = linear_probe(X @ X.T, y, np.arange(60), np.arange(60, 80), "svm", cfg)
    assert res["C"] == 10.0
    assert res["inner_accuracy"] == res["inner_scores"][-1] > res["inner_scores"][0]


def test_feature_files_are_float32_rows_of_the_asked_images_in_order(tmp_path: Path) -> None:
    """mut50c P49: each feature file is float32 as documented (half the disk of float64; the
    Gram matrix reads either); its rows are the images of ``rows`` in that order (one batch
    after another), equal to the layer's activations."""
    from vsent.inference import infer

    model = create_model("smallcnn", **TINY).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    rows = np.array([4, 0, 3])
    info = extract_layer_features(model, images, tmp_path, layers=["fc"], rows=rows,
                                  batch_size=2)
    # the record, as stored in a fold's JSON: the file's name as text, shape, width, pooling
    assert info == {"fc": {"path": str(tmp_path / "fc.npy"), "shape": [2], "dim": 2,
                           "pooled": None}}
    feats = np.load(info["fc"]["path"])
    assert feats.dtype == np.float32 and feats.shape == (3, 2)
    want = infer(model, images[rows], batch_size=3, capture=["fc"]).activations["fc"]
    np.testing.assert_allclose(feats, want.reshape(3, -1), rtol=1e-5, atol=1e-6)


def test_probe_features_runs_only_the_configs_classifiers() -> None:
    """mut50c P35: a config of one classifier gives that classifier's result only (a softmax
    probe nobody asked for costs a second grid search per layer)."""
    X, y = separable(n=40, d=30, seed=3)
    res = probe_features(X, y, np.arange(30), np.arange(30, 40),
                         dataclasses.replace(PROBE, classifiers=("svm",)))
    assert list(res) == ["svm"]


# mutation round 52 (mut52d): vsent.analyses.layers mutants the suite missed


def test_a_folds_layer_record_keeps_its_extraction_record_and_its_row_counts(
        tmp_path: Path) -> None:
    """mut52d L25, L26, L43: a fold's result names the layer's stored shape and pooling (the
    table's "(pooled)" is read from it) and how many training and test rows it used."""
    X, y = separable(n=30, d=6)
    np.save(tmp_path / "conv.npy", X.astype(np.float32))
    info = {"dim": 6, "shape": [6, 1, 1], "pooled": 1}
    record = L._probe_layer(PROBE, tmp_path, "conv", 3, info, y, np.arange(20),
                            np.arange(20, 30))
    assert (record["fold"], record["layer"], record["dim"], record["shape"],
            record["pooled"]) == (3, "conv", 6, [6, 1, 1], 1)
    assert (record["n_train"], record["n_test"], record["svm"]["n"]) == (20, 10, 10)
    assert (tmp_path / "conv.gram.npy").exists()  # the kernel is kept for the next run


# mutation round 59 (mut59j): vsent.analyses.layers mutants the suite missed


def test_a_retrained_folds_feature_record_goes_with_its_features(tmp_path: Path) -> None:
    """mut59j J55: a fold whose model.pt changed since its probes forgets its results, its
    features and kernels, and their meta.json too (kept, it would list layers whose features
    are gone, extracted by the old model); a new stamp names today's model."""
    from types import SimpleNamespace

    from vsent.files import file_sha256

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"fold 1's model, trained again")
    feat, res = tmp_path / "features/fold1", tmp_path / "results/fold1"
    feat.mkdir(parents=True)
    res.mkdir(parents=True)
    for p in (feat / "meta.json", feat / "fc.npy", feat / "fc.gram.npy", res / "fc.json"):
        p.write_text("{}")
    (res / "model.sha256").write_text(f"{'0' * 64}  /old/model.pt\n")
    written: dict[str, str] = {}
    run = SimpleNamespace(checkpoint=lambda k: ckpt)
    rundir = SimpleNamespace(write_text=lambda rel, text: written.__setitem__(rel, text))
    L._check_fold_model(run, 1, feat, res, rundir)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["model.pt", "results/fold1/model.sha256"]  # (the old stamp: rewritten)
    assert written == {"results/fold1/model.sha256": f"{file_sha256(ckpt)}  {ckpt.resolve()}\n"}


# --------------------------------------------------------------------------------------------
# API boundary (api60b): what a notebook user can pass by mistake


def test_linear_probe_refuses_overlapping_rows_labels_not_0_1_and_features_for_the_kernel():
    """api60 F3, F8: overlapping rows were scored (a leaked accuracy); labels {0, 2} said "0
    images of one class", strings a numpy cast error; X (n, d) for K an IndexError. Each is
    refused before any fit, naming the argument."""
    X, y = separable(n=40, d=5, seed=1)
    K = X @ X.T
    train, test = np.arange(30), np.arange(30, 40)
    with pytest.raises(ValueError, match=r"^train and test rows overlap \(10 rows, e\.g\. "
                                         r"\[20, 21, 22\]\)$"):
        linear_probe(K, y, train, np.arange(20, 40), "svm", PROBE)
    # masks are rows too: 25..29 are in both
    with pytest.raises(ValueError, match=r"overlap \(5 rows, e\.g\. \[25, 26, 27\]\)"):
        linear_probe(K, y, np.arange(40) < 30, np.arange(40) >= 25, "svm", PROBE)
    for labels in (2 * y, np.where(y == 1, "pos", "neg")):
        with pytest.raises(ValueError, match=r"^y must hold labels 0/1, got values such as"):
            linear_probe(K, labels, train, test, "svm", PROBE)
    with pytest.raises(ValueError, match=r"^K must be the \(n, n\) linear kernel .* got shape "
                                         r"\(40, 5\)$"):
        linear_probe(X, y, train, test, "svm", PROBE)
    with pytest.raises(ValueError, match=r"^y must hold one label per row of K, shape \(40,\), "
                                         r"got \(40, 1\)$"):
        linear_probe(K, y[:, None], train, test, "svm", PROBE)
    # one label short (1-D): named, not an IndexError on the last test row
    with pytest.raises(ValueError, match=r"^y must hold one label per row of K, shape \(40,\), "
                                         r"got \(39,\)$"):
        linear_probe(K, y[:39], train, test, "svm", PROBE)
    # a single shared row is an overlap too
    with pytest.raises(ValueError, match=r"^train and test rows overlap \(1 rows, e\.g\. "
                                         r"\[29\]\)$"):
        linear_probe(K, y, train, np.arange(29, 40), "svm", PROBE)
    # a bad label among the training rows only, or the test rows only, is refused as well
    for row in (5, 35):
        labels = y.copy()
        labels[row] = 2
        with pytest.raises(ValueError, match=r"^y must hold labels 0/1, got values such as"):
            linear_probe(K, labels, train, test, "svm", PROBE)
    # labels 0.0/1.0 (a float column) pass the 0/1 check, so they are counted as 0/1 too (not
    # np.bincount's "Cannot cast array data from dtype('float64')")
    assert linear_probe(K, y.astype(np.float64), train, test, "svm", PROBE)["accuracy"] == \
        linear_probe(K, y, train, test, "svm", PROBE)["accuracy"]


@pytest.mark.parametrize("make", [P.CenterScale, lambda: bl.BlockScaler([1, 2])],
                         ids=["CenterScale", "BlockScaler"])
def test_the_scalers_check_their_input_as_sklearn_transformers(make):
    """api60 F6: unfitted -> NotFittedError (was AttributeError mean_ / scaler_), another
    number of features -> both counts (was numpy's broadcast error), 1-D or empty X ->
    ValueError (was an AxisError, or NaNs with RuntimeWarnings); ``n_features_in_`` is set."""
    from sklearn.exceptions import NotFittedError

    X = np.arange(12.0).reshape(4, 3)
    name = type(make()).__name__
    with pytest.raises(NotFittedError):
        make().transform(X)
    s = make().fit(X)
    assert s.n_features_in_ == 3
    with pytest.raises(ValueError, match=f"X has 2 features, but {name} is expecting 3"):
        s.transform(X[:, :2])
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        make().fit(X[0])
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        make().fit(X[:0])
