"""Ways to train (vsent.frozen): frozen backbone + head on cached features, last-N blocks,
the logistic head's inner-CV C, the feature cache, and crossval / zero-shot runs with them."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vsent import frozen
from vsent.config import RunConfig
from vsent.data.transforms import center_crop, normalize
from vsent.errors import VsentError
from vsent.models import create_model
from vsent.presets import CROSSVAL


def _images(n: int = 12, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 images and labels: label 1 bright, 0 dark (learnable)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None, None, None] == 1, 180, 60)
    img = base + rng.normal(0, 25, (n, size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), labels.astype(np.int64)


def _paths(tmp_path, n: int) -> list:
    """Files standing for the images (the feature cache key reads their bytes)."""
    out = []
    for i in range(n):
        p = tmp_path / "img" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x" * (i + 1))
        out.append(p)
    return out


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("smallcnn", widths=(4, 8, 8, 8)).eval()


def _tensors(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def count_infer(monkeypatch):
    """Counts the feature extractions (calls of vsent.inference.infer from vsent.frozen, True
    for an oversampled one)."""
    calls = []
    real = frozen.infer

    def counting(*a, **kw):
        calls.append(kw.get("oversample", False))
        return real(*a, **kw)

    monkeypatch.setattr(frozen, "infer", counting)
    crops = frozen._crop_features  # the 10-crop features (each crop's)

    def counting_crops(*a, **kw):
        calls.append(True)
        return crops(*a, **kw)

    monkeypatch.setattr(frozen, "_crop_features", counting_crops)
    return calls


# --- feature cache ------------------------------------------------------------------------------


def test_features_are_the_backbones_pooled_output(tmp_path):
    images, _ = _images()
    model = _model()
    feats = frozen.cached_features(model, _paths(tmp_path, len(images)), images, device="cpu",
                                   cache_dir=tmp_path / "c")
    pre = model.info.preprocess
    x = normalize(center_crop(torch.from_numpy(images), pre.crop), pre)  # independent crop
    with torch.no_grad():
        ref = model.forward_features(x).numpy()
    assert feats.shape == (len(images), model.info.feature_dim) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-5)


def test_feature_cache_is_reused_and_invalidated_by_model_preprocess_and_images(
        tmp_path, count_infer):
    images, _ = _images()
    paths = _paths(tmp_path, len(images))
    model = _model()
    kw = {"device": "cpu", "cache_dir": tmp_path / "c"}
    first = np.array(frozen.cached_features(model, paths, images, **kw))
    again = frozen.cached_features(_model(), paths, images, **kw)  # same weights, rebuilt
    assert len(count_infer) == 1  # the second call read the file
    np.testing.assert_array_equal(first, again)

    with torch.no_grad():  # a new head does not change the features: still reused
        model.fc.weight.add_(1.0)
    frozen.cached_features(model, paths, images, **kw)
    assert len(count_infer) == 1

    frozen.cached_features(_model(seed=1), paths, images, **kw)  # other backbone weights
    assert len(count_infer) == 2
    other_pre = _model()
    pre = other_pre.info.preprocess
    other_pre.info = dataclasses.replace(other_pre.info, preprocess=dataclasses.replace(
        pre, mean=tuple(m + 1 for m in pre.mean)))
    changed = frozen.cached_features(other_pre, paths, images, **kw)
    assert len(count_infer) == 3 and not np.allclose(changed, first)
    frozen.cached_features(_model(), paths, images, oversample=True, **kw)  # the 10 crops'
    assert count_infer[-1] is True and len(count_infer) == 4
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes
    frozen.cached_features(_model(), paths, images, **kw)
    assert len(count_infer) == 4  # keyed by the contents: reused
    Path(paths[0]).write_bytes(Path(paths[0]).read_bytes() + b"edited")  # an edited image
    frozen.cached_features(_model(), paths, images, **kw)
    assert len(count_infer) == 5
    frozen.cached_features(_model(), paths, images, **kw)
    assert len(count_infer) == 5


def test_a_cached_file_of_another_shape_is_extracted_again(tmp_path, count_infer):
    """A feature file under the centre crop's name that holds (N, 10, D) (each crop's, as the
    10-crop file does) is not handed to a head as centre-crop features: extracted again."""
    images, _ = _images()
    paths = _paths(tmp_path, len(images))
    kw = {"device": "cpu", "cache_dir": tmp_path / "c"}
    first = np.array(frozen.cached_features(_model(), paths, images, **kw))
    (file,) = (tmp_path / "c").glob("features-*.npy")
    np.save(file, np.zeros((len(images), 10, first.shape[1]), np.float32))
    again = frozen.cached_features(_model(), paths, images, **kw)
    assert len(count_infer) == 2 and again.shape == first.shape
    np.testing.assert_array_equal(again, first)
    # mut59g G39: an extraction is handed back as a reuse is: memory-mapped, read-only (the
    # folds share it; none may write into it)
    assert not again.flags.writeable
    # mut59g G36: a file of the right width but with another number of rows is not theirs
    np.save(file, np.zeros((len(images) - 1, first.shape[1]), np.float32))
    third = frozen.cached_features(_model(), paths, images, **kw)
    assert len(count_infer) == 3 and third.shape == first.shape


def test_weights_digest_leaves_out_the_head_and_only_the_head():
    """A module whose name merely starts with the head's (``fc2`` beside the head ``fc``) is
    backbone: its weights change the features, so they change the digest."""
    from types import SimpleNamespace

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc2 = torch.nn.Linear(3, 3)
            self.fc = torch.nn.Linear(3, 2)

    toy = Toy()
    toy.info = SimpleNamespace(head="fc")
    digest = frozen.weights_digest(toy)
    with torch.no_grad():
        toy.fc.weight.add_(1.0)
    assert frozen.weights_digest(toy) == digest
    with torch.no_grad():
        toy.fc2.weight.add_(1.0)
    assert frozen.weights_digest(toy) != digest


def test_a_head_runs_10_crop_scores_are_what_predict_gives_its_model(tmp_path, count_infer):
    """The head path applied the head to the mean of the 10 crops' features (the softmax of the
    mean logits), while `vsent predict --oversample` of the fold's model.pt averages the 10
    softmaxes: the run reported one estimator and its model scored another (audit_models27
    #6). Each crop's features are cached now, (N, 10, D), and the head runs on each."""
    from vsent.inference import infer

    images, labels = _images()
    model = _model()
    with torch.no_grad():
        model.fc.weight.mul_(40.0)  # confident logits: the two estimators part
    cfg = RunConfig(data=str(tmp_path), model="smallcnn", train_mode="head")
    test_idx = np.arange(3, 11)
    kw = {"oversample": True, "device": "cpu"}
    metrics, probs = frozen.evaluate_model(model, cfg, images, labels, _paths(tmp_path, 12),
                                           test_idx, **kw)
    want = infer(model, images[test_idx], **kw).probs
    np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)
    assert count_infer == [True]  # mut59g G64: from the cached features of each crop
    feats = frozen.cached_features(model, _paths(tmp_path, 12), images, **kw)
    assert feats.shape == (12, 10, model.info.feature_dim)
    _, centre = frozen.evaluate_model(model, cfg, images, labels, _paths(tmp_path, 12),
                                      test_idx, device="cpu")
    np.testing.assert_allclose(centre, infer(model, images[test_idx], device="cpu").probs,
                               rtol=1e-5, atol=1e-6)


# --- heads on frozen features ------------------------------------------------------------------


def test_head_training_leaves_every_backbone_tensor_unchanged(tmp_path):
    images, labels = _images(16)
    model = _model()
    before = _tensors(model)
    cfg = RunConfig(data="x", model="smallcnn", init="random", train_mode="head",
                    train=CROSSVAL["quick"]["train"].replace(epochs=5, batch_size=4,
                                                             device="cpu"))
    history = frozen.train_model(model, cfg, cfg.train, images, labels,
                                 _paths(tmp_path, len(images)), np.arange(12))
    assert len(history) == 5
    after = model.state_dict()
    for name, t in before.items():  # BatchNorm running statistics included
        if name.startswith("fc."):
            assert not torch.equal(t, after[name]), name  # the head did learn
        else:
            assert torch.equal(t, after[name]), name
    assert all(p.requires_grad == n.startswith("fc.") for n, p in model.named_parameters())


def test_head_training_is_refused_in_data_parallel_processes(tmp_path, monkeypatch):
    """--train head fits a head on cached features in one process; under a torchrun started by
    hand (which the --nproc check never sees) every rank did the whole computation."""
    from vsent import distributed

    images, labels = _images(16)
    cfg = RunConfig(data="x", model="smallcnn", init="random", train_mode="head",
                    train=CROSSVAL["quick"]["train"].replace(epochs=1, batch_size=4,
                                                             device="cpu"))
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(VsentError, match=r"^--train head runs in one process"):
        frozen.train_model(_model(), cfg, cfg.train, images, labels,
                           _paths(tmp_path, len(images)), np.arange(12))


def test_linear_head_learns_separable_features():
    model = _model()
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    feats = rng.normal(0, 1, (40, model.info.feature_dim)).astype(np.float32)
    feats[:, 0] += np.where(labels == 1, 3.0, -3.0)
    cfg = CROSSVAL["quick"]["train"].replace(epochs=30, batch_size=8, device="cpu")
    history = frozen.fit_linear_head(model, feats, labels, cfg)
    assert history[-1]["loss"] < history[0]["loss"]
    with torch.no_grad():
        pred = model.forward_head(torch.from_numpy(feats)).argmax(1).numpy()
    assert (pred == labels).mean() == 1.0


def test_logistic_head_picks_c_by_inner_cv_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(1)
    labels = np.arange(60) % 2
    model = _model()
    feats = rng.normal(0, 1, (60, model.info.feature_dim)) * rng.uniform(0.1, 5, 8)
    feats[:, 1] += np.where(labels == 1, 0.8, -0.8)
    feats = feats.astype(np.float32)
    out = frozen.fit_logistic_head(model, feats, labels, seed=3)
    # independent: the same inner folds, scored by hand
    z = (feats - feats.mean(0)) / feats.std(0)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=3).split(z, labels))
    acc = {}
    for c in frozen.LOGISTIC_CS:
        accs = [(LogisticRegression(C=c, max_iter=2000).fit(z[tr], labels[tr])
                 .predict(z[te]) == labels[te]).mean() for tr, te in folds]
        acc[c] = np.mean(accs)
    best = min(c for c in acc if acc[c] == max(acc.values()))
    assert out["C"] == best and out["inner_folds"] == 5
    # mut57g E32: the grid searched is the decades 1e-4 .. 1e4 (the C the results record)
    np.testing.assert_allclose(frozen.LOGISTIC_CS, [10.0 ** e for e in range(-4, 5)])
    assert len(set(acc.values())) > 1  # C mattered in this set-up
    ref = LogisticRegression(C=best, max_iter=2000).fit(z, labels).predict_proba(z)
    with torch.no_grad():
        got = torch.softmax(model.forward_head(torch.from_numpy(feats)), 1).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_linear_head_batches_follow_the_run_seed():
    """The mini-batch order comes from the run's seed: the same seed gives the same head,
    another seed another one (a fold's seed is the run's * 1000 + k)."""
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 2
    feats = rng.normal(0, 1, (24, _model().info.feature_dim)).astype(np.float32)
    cfg = CROSSVAL["quick"]["train"].replace(epochs=2, batch_size=4, device="cpu")

    def head(seed: int) -> torch.Tensor:
        model = _model()
        frozen.fit_linear_head(model, feats, labels, cfg.replace(seed=seed))
        return model.fc.weight.detach().clone()

    assert torch.equal(head(0), head(0))
    assert not torch.allclose(head(0), head(1))


def test_linear_head_steps_on_each_batchs_own_gradient():
    """mut59g G47: a gradient left on the head (by its caller, or by the step before) is
    cleared before each step: it changes nothing the training gives."""
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 2
    feats = rng.normal(0, 1, (24, _model().info.feature_dim)).astype(np.float32)
    cfg = CROSSVAL["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    clean, stale = _model(), _model()
    stale.fc.weight.grad = torch.full_like(stale.fc.weight, 100.0)
    for model in (clean, stale):
        frozen.fit_linear_head(model, feats, labels, cfg)
    assert torch.equal(clean.fc.weight, stale.fc.weight)


def test_logistic_head_refuses_a_head_without_bias_for_an_intercept():
    """mut59g G52: a head without a bias cannot hold the logistic model's intercept: refused,
    not written without it (every probability off)."""
    rng = np.random.default_rng(2)
    labels = np.arange(20) % 2
    model = _model()
    model.fc = torch.nn.Linear(model.fc.in_features, 2, bias=False)
    feats = rng.normal(5.0, 1.0, (20, model.info.feature_dim)).astype(np.float32)
    with pytest.raises(VsentError, match="^--head logistic: the head has no bias$"):
        frozen.fit_logistic_head(model, feats, labels, cs=(1.0,))


def test_logistic_head_keeps_the_intercept_of_shifted_unbalanced_features():
    """Features far from 0 and 2:1 classes: the head's bias carries sklearn's intercept minus
    w . mu / sigma, halved into the two rows with opposite signs (a set-up where both terms
    are far from 0; centred, balanced features hide a wrong sign of either)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    labels = (np.arange(60) % 3 != 0).astype(np.int64)  # 40 positive, 20 negative
    model = _model()
    feats = rng.normal(5.0, 2.0, (60, model.info.feature_dim))
    feats[:, 0] += np.where(labels == 1, 1.5, -1.5)
    feats = feats.astype(np.float32)
    out = frozen.fit_logistic_head(model, feats, labels, seed=0)
    x = feats.astype(np.float64)
    mu, sigma = x.mean(0), x.std(0)
    ref = LogisticRegression(C=out["C"], max_iter=2000).fit((x - mu) / sigma, labels)
    assert abs(ref.intercept_[0]) > 0.3 and abs((ref.coef_[0] * mu / sigma).sum()) > 0.3
    with torch.no_grad():
        got = torch.softmax(model.forward_head(torch.from_numpy(feats)), 1).numpy()
    np.testing.assert_allclose(got, ref.predict_proba((x - mu) / sigma), atol=1e-4)


def test_logistic_head_takes_the_smallest_c_among_ties():
    rng = np.random.default_rng(3)
    labels = np.arange(40) % 2
    model = _model()
    feats = rng.normal(0, 1, (40, model.info.feature_dim))
    feats[:, 0] += np.where(labels == 1, 20.0, -20.0)  # every C separates the classes
    out = frozen.fit_logistic_head(model, feats.astype(np.float32), labels)
    assert set(out["cv_accuracy"].values()) == {1.0}
    assert out["C"] == min(frozen.LOGISTIC_CS)


def test_logistic_head_needs_two_images_per_class():
    model = _model()
    with pytest.raises(VsentError, match="at least 2 images of each class"):
        frozen.fit_logistic_head(model, np.zeros((3, 8), np.float32), np.array([0, 0, 1]))


# --- last-N -------------------------------------------------------------------------------------


def test_last_n_trains_only_the_last_blocks_and_keeps_frozen_batchnorm(tmp_path, caplog):
    images, labels = _images(16)
    model = _model()
    blocks = [b for b, _ in frozen.train_blocks(model)]
    assert blocks == [f"features.block{i}" for i in range(1, 5)]  # not pool, not the head fc
    before = _tensors(model)
    cfg = RunConfig(data="x", model="smallcnn", init="random", train_mode="last-2",
                    train=CROSSVAL["quick"]["train"].replace(epochs=2, batch_size=4,
                                                             device="cpu"))
    with caplog.at_level("INFO", logger="vsent"):
        frozen.train_model(model, cfg, cfg.train, images, labels, _paths(tmp_path, 16),
                           np.arange(16), progress=False)
    live = tuple(b + "." for b in (*blocks[-2:], "fc"))
    after = model.state_dict()
    changed = {n for n, t in before.items() if not torch.equal(t, after[n])}
    assert changed and all(n.startswith(live) for n in changed), changed
    assert any(n.startswith(blocks[-2] + ".") for n in changed)  # the second block below fc
    assert "training 8 parameter tensors (last 2 blocks: features.block3, features.block4; " \
           "and the head fc)" in caplog.text
    with pytest.raises(VsentError, match=r"--train last-5: smallcnn has 4 blocks besides the "
                                         r"head \(features\.block1, .*, features\.block4\)"):
        frozen.freeze_all_but_last(_model(), 5)
    # mut59g G57: a container of a trained block is not frozen: it follows the model's mode
    # (only the modules with nothing trainable in or under them are held in eval)
    model = _model()
    frozen.freeze_all_but_last(model, 2)
    model.train()
    assert model.features.training and not model.features.block1.training


@pytest.mark.parametrize("name, kw, n, want", [
    # the last N blocks that own parameters, and the head
    ("smallcnn", {}, 1, {"features.block4", "fc"}),
    ("resnet18", {}, 1, {"layer4", "fc"}),
    ("resnet18", {}, 2, {"layer3", "layer4", "fc"}),
    ("timm/resnet18", {}, 1, {"layer4", "fc"}),
    # AlexNet/VGG16 probe ReLU and pool modules: a block is the span ending at one
    ("alexnet", {}, 1, {"classifier.4", "classifier.6"}),
    ("alexnet", {}, 3, {"features.6", "features.8", "features.10", "classifier.1",
                        "classifier.4", "classifier.6"}),
    ("vgg16", {}, 2, {"classifier.0", "classifier.3", "classifier.6"}),
    ("caffenet", {}, 2, {"fc6", "fc7", "fc8"}),  # the new fc8 is the head, not a block
    ("caffenet", {}, 3, {"conv5", "fc6", "fc7", "fc8"}),
    ("caffenet", {"arch": "fc7-4096"}, 1, {"fc7"}),  # no separate head
    ("pcnn", {}, 1, {"fc3", "fc4"}),
])
def test_last_n_counts_blocks_with_parameters_besides_the_head(name, kw, n, want):
    model = create_model(name, **kw)
    names = frozen.freeze_all_but_last(model, n)
    assert all(k.startswith(tuple(w + "." for w in want)) for k in names), names
    assert all(any(k.startswith(w + ".") for k in names) for w in want), names
    assert {k for k, p in model.named_parameters() if p.requires_grad} == set(names)


@pytest.mark.parametrize("name, blocks", [
    ("alexnet", "features.2, features.5, features.12, classifier.2, classifier.5"),
    ("caffenet", "conv1, conv2, conv3, conv4, conv5, fc6, fc7"),
])
def test_last_n_beyond_the_blocks_is_refused_naming_them(name, blocks):
    n = blocks.count(",") + 2
    with pytest.raises(VsentError, match=rf"^--train last-{n}: {name} has {n - 1} blocks "
                                         rf"besides the head \({blocks}\)$"):
        frozen.freeze_all_but_last(create_model(name), n)
    frozen.freeze_all_but_last(create_model(name), n - 1)  # all blocks: accepted


def test_last_n_keeps_dropout_above_the_first_trained_block_and_frozen_batchnorm_in_eval():
    cn = create_model("caffenet")  # conv1 .. fc7, drop6/drop7, fc8: Caffe keeps dropout on
    frozen.freeze_all_but_last(cn, 1)  # fc7 and the head fc8
    cn.train()
    assert cn.drop6.training and cn.drop7.training and cn.training
    assert not cn.pool5.training  # the frozen part below fc7 is in eval
    small = _model()
    frozen.freeze_all_but_last(small, 1)
    small.train()
    assert small.dropout.training and small.features.block4[1].training
    assert not small.features.block3[1].training  # a frozen BatchNorm: statistics kept
    alex = create_model("alexnet")
    frozen.freeze_all_but_last(alex, 1)  # classifier.3-5 (dropout, fc7, ReLU) and the head
    alex.train()
    assert alex.classifier[3].training and not alex.classifier[0].training
    alex.eval()
    assert not alex.classifier[3].training  # eval mode is eval everywhere


def test_last_n_keeps_a_frozen_norm_after_the_last_block_in_eval():
    """Parameters outside the blocks (a final norm after the last probe layer) stay frozen,
    and so do its running statistics: the norm stays in eval mode when the model trains."""
    from types import SimpleNamespace

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 3)
            self.conv2 = torch.nn.Conv2d(4, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)
            self.stats = torch.nn.BatchNorm2d(4, affine=False)  # buffers, no parameters
            self.head = torch.nn.Linear(4, 2)

    toy = Toy()
    toy.info = SimpleNamespace(name="toy", probe_layers=("conv1", "conv2"), new_layers=(),
                               head="head")
    names = frozen.freeze_all_but_last(toy, 1)
    assert {n.split(".")[0] for n in names} == {"conv2", "head"}
    toy.train()
    assert toy.conv2.training and toy.head.training
    assert not toy.norm.training and not toy.conv1.training
    assert not toy.stats.training  # mut59g G61: its running statistics are state too


def test_train_mode_and_head_options_are_checked():
    for bad in ("last-0", "first-2", "heads", "last-x"):
        with pytest.raises(VsentError, match=rf"^--train '{bad}': use all, head or last-N "
                                             r"\(N >= 1"):
            RunConfig(data="x", train_mode=bad)
    with pytest.raises(VsentError, match="^--head 'svm': choose one of "):
        RunConfig(data="x", train_mode="head", head="svm")
    with pytest.raises(VsentError, match="--head logistic applies to --train head"):
        RunConfig(data="x", head="logistic")
    with pytest.raises(VsentError, match="--zero-shot needs a CLIP model"):
        RunConfig(data="x", zero_shot=True)
    with pytest.raises(VsentError, match="^--model-arg image_size: not with --zero-shot"):
        RunConfig(data="x", model="clip/ViT-B-32", zero_shot=True,
                  model_kwargs={"image_size": 96})
    assert "train_mode" not in RunConfig(data="x").to_dict()  # default runs keep their config
    assert RunConfig(data="x", train_mode="last-2").to_dict()["train_mode"] == "last-2"


# --- crossval runs ------------------------------------------------------------------------------


def test_crossval_with_a_frozen_logistic_head(tmp_path):
    from conftest import build_twitter_like
    from vsent.crossval import crossval
    from vsent.models.card import model_card
    from vsent.models.checkpoint import load_checkpoint

    data = build_twitter_like(tmp_path / "tw", n_folds=2)  # (fold 1 is read: tests38 #7)
    train = CROSSVAL["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    cfg = RunConfig(data=str(data), model="smallcnn", init="random", train=train,
                    train_mode="head", head="logistic")
    out = tmp_path / "run"
    summary = crossval(cfg, out, progress=False)
    assert summary["training"] == "frozen features + logistic head"
    assert "frozen features + logistic head" in (out / "summary.md").read_text()
    history = json.loads((out / "fold1" / "history.json").read_text())
    assert history[0]["head"] == "logistic" and history[0]["C"] in frozen.LOGISTIC_CS
    # the fold's probabilities are the checkpoint's own (full forward, centre crop)
    model, meta = load_checkpoint(out / "fold1" / "model.pt")
    rows = [r for r in _csv(out / "fold1" / "predictions.csv")]
    from vsent.data.cache import image_cache
    from vsent.data.datasets import load_dataset
    from vsent.inference import infer

    ds = load_dataset(str(data), "five")
    idx = [ds.names.index(r["name"]) for r in rows]
    probs = infer(model, image_cache(ds, size=model.info.preprocess.resize, progress=False)[idx],
                  device="cpu").probs[:, 1]
    np.testing.assert_allclose([float(r["prob_positive"]) for r in rows], probs, atol=1e-5)
    # the card outside the run still knows the data and the init
    moved = tmp_path / "elsewhere" / "model.pt"
    moved.parent.mkdir()
    moved.write_bytes((out / "fold1" / "model.pt").read_bytes())
    card = model_card(moved)
    assert card["training"]["dataset"] == str(data) and card["training"]["folds"] == "campos"
    assert card["training"]["how"] == "frozen features + logistic head"
    assert card["training"]["n_train"] == meta["n_train"] > 0
    assert card["weights"]["init"] == "random" and card["versions"]["source"] == "checkpoint"


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- zero-shot runs -----------------------------------------------------------------------------


def _tiny_clip_and_data(tmp_path, seed: int):
    """Weights of the tiny test CLIP (``clip/vsent-test-vit``, seeded) and a Twitter-like set."""
    open_clip = pytest.importorskip("open_clip")
    from conftest import build_twitter_like
    from test_backbones import add_tiny_clip_configs

    add_tiny_clip_configs(tmp_path)
    torch.manual_seed(seed)
    weights = tmp_path / "clip.pt"
    torch.save(open_clip.create_model("vsent-test-vit").state_dict(), weights)
    return weights, build_twitter_like(tmp_path / "tw")


def test_crossval_zero_shot_reports_folds_and_saves_loadable_models(tmp_path):
    pytest.importorskip("open_clip")
    from vsent.crossval import crossval
    from vsent.data.cache import image_cache
    from vsent.data.datasets import load_dataset
    from vsent.inference import infer
    from vsent.models.card import model_card
    from vsent.models.checkpoint import load_checkpoint
    from vsent.zeroshot import zero_shot_model

    weights, data = _tiny_clip_and_data(tmp_path, seed=4)
    prompts = {"positive": ["a warm bright photo"], "negative": ["a cold dark photo"]}
    cfg = RunConfig(data=str(data), model="clip/vsent-test-vit", init=str(weights),
                    zero_shot=True, prompts=prompts, eval_batch_size=16,
                    train=CROSSVAL["quick"]["train"].replace(device="cpu"))
    out = tmp_path / "run"
    summary = crossval(cfg, out, progress=False)
    assert summary["training"] == "zero-shot" and len(summary["folds"]) == 5
    assert json.loads((out / "fold2" / "history.json").read_text()) == []
    ref_model = zero_shot_model("clip/vsent-test-vit", str(weights), **prompts)
    ds = load_dataset(str(data), "five")
    images = image_cache(ds, size=ref_model.info.preprocess.resize, progress=False)
    ref = infer(ref_model, images, device="cpu").probs[:, 1]
    rows = _csv(out / "predictions.csv")
    got = {r["name"]: float(r["prob_positive"]) for r in rows}
    idx = [ds.names.index(n) for n in got]  # the campos folds' test images
    assert len(idx) >= 30
    np.testing.assert_allclose(list(got.values()), ref[idx], atol=1e-5)
    loaded, meta = load_checkpoint(out / "fold3" / "model.pt")  # the zeroshot/ family
    assert loaded.spec["name"] == "zeroshot/clip/vsent-test-vit"
    np.testing.assert_allclose(infer(loaded, images, device="cpu").probs[:, 1], ref, atol=1e-5)
    card = model_card(out / "fold3" / "model.pt")
    assert card["training"]["how"] == "zero-shot" and meta["prompts"] == prompts


def test_cli_finetune_zero_shot_writes_a_checkpoint_predict_can_use(tmp_path, capsys,
                                                                     monkeypatch):
    """... without decoding the data's images: no fold is tested, nothing trains (walk36 #3:
    it built an image cache at the tower's size for nothing)."""
    pytest.importorskip("open_clip")
    import vsent.crossval
    from vsent.cli import main
    from vsent.models.checkpoint import load_checkpoint
    from vsent.predict import Predictor
    from vsent.zeroshot import zero_shot_model

    weights, data = _tiny_clip_and_data(tmp_path, seed=6)
    base = ["finetune", "--data", str(data), "--model", "clip/vsent-test-vit", "--init",
            str(weights), "--device", "cpu", "--no-progress"]
    assert main([*base, "--positive", "a sunny day", "--out", str(tmp_path / "x")]) == 2
    assert "apply to --zero-shot" in capsys.readouterr().err
    out = tmp_path / "zs"

    def no_cache(*a, **kw):
        raise AssertionError("an image cache was built for a run that scores no image")

    monkeypatch.setattr(vsent.crossval, "image_cache", no_cache)
    assert main([*base, "--zero-shot", "--positive", "a sunny day", "--out", str(out)]) == 0
    model, meta = load_checkpoint(out / "model.pt")
    assert model.prompts["positive"] == ["a sunny day"] and meta["training"] == "zero-shot"
    ref = zero_shot_model("clip/vsent-test-vit", str(weights), positive=["a sunny day"])
    image = (np.arange(40 * 40 * 3) % 251).astype(np.uint8).reshape(40, 40, 3)
    got = Predictor.from_checkpoint(out / "model.pt", device="cpu").predict_proba([image])
    want = Predictor(ref, device="cpu").predict_proba([image])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_finetune_zero_shot_on_a_fold_scores_its_test_images(tmp_path):
    """`finetune --zero-shot --fold K` trains nothing but tests fold K: its image cache is
    built (mut45d c879: skipped for every zero-shot run, the test fold had no images) and
    metrics.json holds the fold's centre and 10-crop results on its test images."""
    pytest.importorskip("open_clip")
    from vsent.cli import main
    from vsent.data.datasets import load_dataset
    from vsent.data.folds import make_folds

    weights, data = _tiny_clip_and_data(tmp_path, seed=6)
    out = tmp_path / "zs1"
    assert main(["finetune", "--data", str(data), "--model", "clip/vsent-test-vit", "--init",
                 str(weights), "--device", "cpu", "--no-progress", "--zero-shot", "--fold", "1",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    dataset = load_dataset(str(data), "five")
    (test,) = [f.test for f in make_folds(dataset, "campos") if f.index == 1]
    for crops in ("center", "ten_crop"):
        assert metrics[crops]["n"] == len(test) and 0.0 <= metrics[crops]["accuracy"] <= 1.0


def test_cli_train_options_reach_the_config_or_stop_with_one_line(tmp_path, capsys):
    from vsent.cli import build_parser, main
    from vsent.cli.crossval import config_from_args

    data = str(tmp_path / "none")
    args = build_parser().parse_args(["crossval", "--data", data, "--preset", "quick",
                                      "--train", "head", "--head", "logistic"])
    cfg = config_from_args(args)
    assert (cfg.train_mode, cfg.head, cfg.zero_shot, cfg.prompts) == ("head", "logistic",
                                                                      False, None)
    for bad, msg in ((["--train", "last-0"], "--train 'last-0'"),
                     (["--head", "logistic"], "--head logistic applies to --train head")):
        assert main(["crossval", "--data", data, "--preset", "quick", *bad,
                     "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err


def test_head_training_refuses_image_augmentation_and_ema():
    from vsent.config import TrainConfig
    from vsent.frozen import fit_head
    from vsent.models import create_model

    model = create_model("smallcnn")
    features = np.zeros((4, model.info.feature_dim), np.float32)
    for change in ({"augment": "trivial"}, {"ema": 0.9}):
        with pytest.raises(VsentError, match="--train head fits on cached features"):
            fit_head(model, features, np.array([0, 1, 0, 1]), TrainConfig(**change))
    # mut59g G54: an unknown --head trains nothing and is refused, not an empty history
    with pytest.raises(VsentError, match="^--head 'svm': use one of linear, logistic$"):
        fit_head(model, features, np.array([0, 1, 0, 1]), TrainConfig(), "svm")


@pytest.mark.parametrize("name", ["smallcnn", "pcnn", "resnet18"])
def test_head_on_a_frozen_backbone_learns_at_head_lr_mult(name):
    """smallcnn and pcnn have no new layers: their head trained at 1x under --train head /
    last-N, though the docs say lr x head_lr_mult (as every other family's)."""
    from vsent.train import TrainConfig, make_optimizer

    cfg = TrainConfig()  # the Campos solver: lr 0.001, head_lr_mult 10, bias_lr_mult 2
    model = create_model(name)
    head = model.info.head
    frozen.freeze_backbone(model)
    groups = {g["name"]: g for g in make_optimizer(model, cfg).param_groups}
    assert sorted(groups) == ["new-bias", "new-weight"]
    assert groups["new-weight"]["lr"] == pytest.approx(0.01)
    assert groups["new-bias"]["lr"] == pytest.approx(0.02)
    want = {id(p) for n, p in model.named_parameters() if n.startswith(head + ".")}
    assert {id(p) for g in groups.values() for p in g["params"]} == want


def test_last_n_trains_its_blocks_at_lr_and_the_smallcnn_head_at_head_lr_mult():
    from vsent.train import TrainConfig, make_optimizer

    model = create_model("smallcnn")
    frozen.freeze_all_but_last(model, 1)
    lrs = {g["name"]: g["lr"] for g in make_optimizer(model, TrainConfig()).param_groups}
    assert lrs == pytest.approx({"base-weight": 0.001, "base-bias": 0.002,
                                 "new-weight": 0.01, "new-bias": 0.02})
    # --train all: nothing frozen, smallcnn has no new layer, every group at 1x as before
    lrs = {g["name"]: g["lr"] for g in make_optimizer(create_model("smallcnn"),
                                                      TrainConfig()).param_groups}
    assert lrs == pytest.approx({"base-weight": 0.001, "base-bias": 0.002})


# mutation round 45 (mut45c): vsent.frozen mutants the suite missed


def test_weights_digest_ignores_the_batch_counter_but_not_the_statistics():
    """mut45c F02: num_batches_tracked is a counter eval-mode features do not depend on: a
    model trained on (the counter moved, nothing else) keeps its feature files; its running
    statistics do change the features, so they change the digest."""
    model = _model()
    digest = frozen.weights_digest(model)
    counters = [b for n, b in model.named_buffers() if n.endswith("num_batches_tracked")]
    assert counters
    for b in counters:
        b.add_(7)
    assert frozen.weights_digest(model) == digest
    next(b for n, b in model.named_buffers() if n.endswith("running_mean")).add_(0.5)
    assert frozen.weights_digest(model) != digest


def test_weights_digest_tells_shapes_with_the_same_bytes_apart():
    """mut45c F03: the digest covers each tensor's shape: a (6, 2) and a (2, 6) layer of the
    same bytes are other backbones (their features differ)."""
    from types import SimpleNamespace

    digests = []
    for shape in ((2, 6), (6, 2)):
        toy = torch.nn.Module()
        toy.body = torch.nn.Linear(*shape, bias=False)
        toy.fc = torch.nn.Linear(3, 2)
        torch.nn.init.zeros_(toy.body.weight)
        toy.info = SimpleNamespace(head="fc")
        digests.append(frozen.weights_digest(toy))
    assert digests[0] != digests[1]


def test_feature_key_records_init(tmp_path):
    """mut45c F04: --init is part of a feature file's key (module docstring), so runs that
    name other weight files never share a file by their key alone."""
    paths = _paths(tmp_path, 2)
    model = _model()
    keys = {frozen.feature_key(paths, model, init=init) for init in (None, "a.pt", "b.pt")}
    assert len(keys) == 3
    assert frozen.feature_key(paths, model, init="a.pt") == \
        frozen.feature_key(paths, _model(), init=Path("a.pt"))


def test_cached_features_need_one_path_per_image(tmp_path):
    """mut45c F06: the paths key the file and name its rows: a count that differs from the
    images' is refused before anything is extracted or written."""
    images, _ = _images(4)
    with pytest.raises(ValueError, match="^4 images but 3 paths$"):
        frozen.cached_features(_model(), _paths(tmp_path, 3), images, device="cpu",
                               cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("damage", ["float64", "garbage"])
def test_a_cached_file_of_another_dtype_or_unreadable_is_extracted_again(tmp_path,
                                                                        count_infer, damage):
    """mut45c F08, F10: a feature file of float64 (not what vsent writes) or one np.load
    cannot read (ValueError: no .npy header) is extracted again and replaced, not handed to
    the head nor a crash."""
    images, _ = _images()
    paths = _paths(tmp_path, len(images))
    kw = {"device": "cpu", "cache_dir": tmp_path / "c"}
    first = np.array(frozen.cached_features(_model(), paths, images, **kw))
    (file,) = (tmp_path / "c").glob("features-*.npy")
    if damage == "float64":
        np.save(file, first.astype(np.float64))
    else:
        file.write_bytes(b"not a numpy file")
    again = frozen.cached_features(_model(), paths, images, **kw)
    assert len(count_infer) == 2 and again.dtype == np.float32
    np.testing.assert_array_equal(again, first)
    assert np.load(file).dtype == np.float32  # the file itself replaced


def test_a_reused_feature_file_counts_as_used(tmp_path):
    """mut45c F09: reading a feature file again sets its modification time (vsent cache
    --clean removes what was not used for days)."""
    images, _ = _images(4)
    paths = _paths(tmp_path, 4)
    kw = {"device": "cpu", "cache_dir": tmp_path / "c"}
    frozen.cached_features(_model(), paths, images, **kw)
    (file,) = (tmp_path / "c").glob("features-*.npy")
    old = file.stat().st_mtime - 40 * 86400
    os.utime(file, (old, old))
    frozen.cached_features(_model(), paths, images, **kw)
    assert file.stat().st_mtime > old + 39 * 86400


def test_10_crop_features_are_taken_in_eval_mode(tmp_path):
    """mut45c F12: a model handed over in training mode gives its inference features for the
    10 crops (BatchNorm's running statistics), as for the centre crop: the file is keyed by
    the weights, not the mode, and is shared."""
    images, _ = _images(4)
    paths = _paths(tmp_path, 4)
    want = np.array(frozen.cached_features(_model(), paths, images, oversample=True,
                                           device="cpu", cache_dir=tmp_path / "a"))
    got = frozen.cached_features(_model().train(), paths, images, oversample=True,
                                 device="cpu", cache_dir=tmp_path / "b")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # mut54e F49: in batches (3 + 1 images), each batch fills the rows of its own images
    got = frozen.cached_features(_model(), paths, images, oversample=True, device="cpu",
                                 cache_dir=tmp_path / "c", batch_size=3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # mut59g G40: a batch size of 0 is named, not range()'s "arg 3 must not be zero"
    with pytest.raises(ValueError, match="^batch_size must be >= 1, got 0$"):
        frozen.cached_features(_model(), paths, images, oversample=True, device="cpu",
                               cache_dir=tmp_path / "d", batch_size=0)


def test_logistic_head_needs_a_2_way_head():
    """mut45c F15: --head logistic writes one weight vector into two rows (the two classes'
    logits): a 3-way head is refused before a run starts."""
    model = create_model("smallcnn", num_classes=3)
    frozen.check_train_mode(model, "head")  # a linear head of any width trains
    with pytest.raises(VsentError, match="^--head logistic: smallcnn's head is not a 2-way "
                                         "linear layer$"):
        frozen.check_train_mode(model, "head", "logistic")


def test_linear_head_history_reports_each_epochs_loss_accuracy_and_lr():
    """mut45c F18, F19, F20, F21: one epoch of one batch (all 12 features) reports the
    cross-entropy and accuracy of the head before its step over every feature; the lr logged
    follows the schedule (step: times lr_gamma every lr_step epochs); the model is left in
    eval mode, as it is scored next."""
    from vsent.config import TrainConfig

    rng = np.random.default_rng(0)
    labels = np.arange(12) % 2
    model = _model()
    feats = rng.normal(0, 1, (12, model.info.feature_dim)).astype(np.float32)
    with torch.no_grad():
        logits = model.forward_head(torch.from_numpy(feats))
        want_loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)))
        want_acc = float((logits.argmax(1).numpy() == labels).mean())
    cfg = TrainConfig(epochs=3, batch_size=12, lr_step=1, lr_gamma=0.1, device="cpu")
    history = frozen.fit_linear_head(model, feats, labels, cfg)
    assert history[0]["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert history[0]["train_accuracy"] == pytest.approx(want_acc)
    assert [h["lr"] for h in history] == pytest.approx([1e-3, 1e-4, 1e-5])
    assert not any(m.training for m in model.modules())  # scored next: eval mode
    # mut51e F13: --label-smoothing reaches the head's loss (it was dropped: no test)
    model, big = _model(), feats * 100  # logits far from 0, where smoothing changes the loss
    with torch.no_grad():
        logits = model.forward_head(torch.from_numpy(big))
    plain, smooth = (float(torch.nn.functional.cross_entropy(
        logits, torch.from_numpy(labels), label_smoothing=s)) for s in (0.0, 0.2))
    history = frozen.fit_linear_head(model, big, labels, cfg.replace(label_smoothing=0.2))
    assert history[0]["loss"] == pytest.approx(smooth, rel=1e-5)
    assert smooth != pytest.approx(plain, rel=1e-2)


def test_freezing_keeps_a_layer_whose_name_merely_starts_with_the_heads_frozen():
    """mut45c F37: ``fc2`` beside the head ``fc`` is backbone: --train head leaves it frozen
    (a name prefix is no module path; as weights_digest tells them apart)."""
    from types import SimpleNamespace

    toy = torch.nn.Module()
    toy.fc2 = torch.nn.Linear(3, 3)
    toy.fc = torch.nn.Linear(3, 2)
    toy.info = SimpleNamespace(name="toy", head="fc", new_layers=("fc",),
                               probe_layers=("fc2",))
    assert frozen.freeze_backbone(toy) == ["fc.weight", "fc.bias"]
    assert not any(p.requires_grad for p in toy.fc2.parameters())


def test_a_model_already_training_has_its_frozen_batchnorm_in_eval_at_once():
    """mut45c F46: freezing a model that is in training mode puts the frozen BatchNorm in
    eval mode then, not at the next model.train(): a loop that does not call train() again
    must not move the frozen statistics."""
    small = _model().train()
    frozen.freeze_all_but_last(small, 1)
    assert small.training and small.features.block4[1].training
    assert not small.features.block3[1].training
    still = _model()  # mut51e F35: and a model in eval mode stays in eval mode, all of it
    frozen.freeze_all_but_last(still, 1)
    assert not any(m.training for m in still.modules())


def test_nothing_to_train_is_a_user_error_naming_the_model():
    """mut45c F42: a raw ablation (its top layer used as logits) has no head, so --train head
    leaves nothing to train: a VsentError naming it (a ValueError of min() before)."""
    model = create_model("caffenet", arch="fc7-4096")
    with pytest.raises(VsentError, match="^--train head: caffenet has no separate head to "
                                         "train$"):
        frozen.freeze_all_but_last(model, 0)
    # mut59g G42: fitting a head on it says the same, not "not a 2-way linear layer" (the
    # whole model taken for the head)
    with pytest.raises(VsentError, match=r"^--head logistic: caffenet has no separate head to "
                                         r"train \(its top layer is used as logits\)$"):
        frozen.fit_logistic_head(model, np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]))


def test_logistic_head_takes_a_fold_seed_beyond_32_bits(monkeypatch):
    """mut45c F32: a fold's seed is the run's * 1000 + k, past scikit-learn's 2**32 bound
    for a large run seed: taken modulo 2**32 (the same head as that seed), not a crash."""
    from vsent.config import TrainConfig

    real = frozen.fit_logistic_head  # one C: the seed is what is tested, fast
    monkeypatch.setattr(frozen, "fit_logistic_head", lambda *a, **kw: real(*a, cs=(1.0,), **kw))

    rng = np.random.default_rng(0)
    labels = np.arange(24) % 2
    feats = rng.normal(0, 1, (24, _model().info.feature_dim)).astype(np.float32)
    feats[:, 0] += labels
    heads = []
    for seed in (5, 2**32 + 5):
        model = _model()
        (record,) = frozen.fit_head(model, feats, labels, TrainConfig(seed=seed, device="cpu"),
                                    "logistic")
        heads.append((record["C"], model.fc.weight.detach().clone()))
    assert heads[0][0] == heads[1][0] and torch.equal(heads[0][1], heads[1][1])


def test_a_frozen_fold_trains_its_head_on_the_features_of_its_own_rows(tmp_path):
    """mut45c F50: train_model's --train head fits the head on the cached features of the
    rows train_idx (here the last 8 of 16), the same head as fit_head on those rows."""
    images, labels = _images(16)
    paths = _paths(tmp_path, len(images))
    cfg = RunConfig(data="x", model="smallcnn", init="random", train_mode="head",
                    train=CROSSVAL["quick"]["train"].replace(epochs=2, batch_size=4,
                                                             device="cpu"))
    train_idx = np.arange(8, 16)
    model = _model()
    frozen.train_model(model, cfg, cfg.train, images, labels, paths, train_idx)
    feats = frozen.cached_features(_model(), paths, images, device="cpu")
    want = _model()
    frozen.fit_head(want, feats[train_idx], labels[train_idx], cfg.train)
    assert torch.equal(model.fc.weight, want.fc.weight)


def test_run_meta_records_the_head_init_digest_and_extra_images_when_given():
    """mut45c F54, F55, F57: a checkpoint records the --head of a --train head run, the
    SHA-256 of an --init file when one is given, and the --extra-train images only with
    their count (finetune passes none: no crash, no half record)."""
    head = RunConfig(data="x", train_mode="head", head="logistic")
    meta = frozen.run_meta(head, 10, "ab" * 32)
    assert (meta["head"], meta["init_sha256"], meta["n_train"]) == ("logistic", "ab" * 32, 10)
    assert meta["training"] == "frozen features + logistic head"
    plain = frozen.run_meta(RunConfig(data="x"), 10)
    assert "head" not in plain and "init_sha256" not in plain
    extra = RunConfig(data="x", extra_train="four")
    assert "extra_train" not in frozen.run_meta(extra, 10)
    assert frozen.run_meta(extra, 10, n_extra=4)["n_extra"] == 4
    # mut59g G66: a count without --extra-train records no extra images
    assert "n_extra" not in frozen.run_meta(RunConfig(data="x"), 10, n_extra=4)
    # mut51e F40: a zero-shot model records the prompts that made its head (none trained)
    prompts = {"negative": ["a sad photo"], "positive": ["a happy photo"]}
    shot = RunConfig(data="x", model="clip/ViT-B-32", zero_shot=True, prompts=prompts)
    assert frozen.run_meta(shot, 10)["prompts"] == prompts and "prompts" not in plain


# mutation round 48 (mut48e): vsent.frozen mutants the suite missed


def test_weights_digest_tells_dtypes_with_the_same_bytes_apart():
    """mut48e F03: the digest covers each tensor's dtype: a float16 and a bfloat16 backbone
    of the same bytes (zeros) and shapes are other backbones (their features differ)."""
    from types import SimpleNamespace

    digests = []
    for dtype in (torch.float16, torch.bfloat16):
        toy = torch.nn.Module()
        toy.body = torch.nn.Linear(4, 4, bias=False).to(dtype)
        toy.fc = torch.nn.Linear(3, 2)
        torch.nn.init.zeros_(toy.body.weight)
        toy.info = SimpleNamespace(head="fc")
        digests.append(frozen.weights_digest(toy))
    assert digests[0] != digests[1]


def test_linear_head_history_numbers_its_epochs_from_1():
    """mut48e F14: history.json numbers the head's epochs 1..N, as fine-tuning's history
    does (epoch 0 would read as "before training")."""
    from vsent.config import TrainConfig

    model = _model()
    feats = np.random.default_rng(0).normal(0, 1, (8, model.info.feature_dim)).astype(np.float32)
    cfg = TrainConfig(epochs=3, batch_size=8, device="cpu")
    history = frozen.fit_linear_head(model, feats, np.arange(8) % 2, cfg)
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_training_label_names_each_way_a_run_trains():
    """The summary's and the card's "training" (crossval tells fine-tuning apart by it):
    main session, mut48e F38, F40."""
    def label(**kw):
        return frozen.training_label(RunConfig(data="x", model="smallcnn", **kw))

    assert label() == "fine-tuning"
    assert label(train_mode="head") == "frozen features + linear head"
    assert label(train_mode="head", head="logistic") == "frozen features + logistic head"
    assert label(train_mode="last-2") == "last 2 blocks + head"


def test_a_last_n_runs_evaluation_scores_its_model_and_caches_no_features(tmp_path,
                                                                         monkeypatch):
    """Only --train head evaluates on cached backbone features: a last-N run's fine-tuned
    backbone is scored whole (its features, keyed by its own weights, would never be read
    again), so the feature cache stays empty (main session, mut48e F42)."""
    from vsent.inference import infer

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    images, labels = _images()
    model = _model()
    cfg = RunConfig(data=str(tmp_path), model="smallcnn", train_mode="last-1")
    test_idx = np.arange(3, 11)
    _, probs = frozen.evaluate_model(model, cfg, images, labels, _paths(tmp_path, 12),
                                     test_idx, device="cpu")
    np.testing.assert_allclose(probs, infer(model, images[test_idx], device="cpu").probs,
                               rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


# mutation round 51 (mut51e): vsent.frozen mutants the suite missed


def test_a_10_crop_feature_file_is_reused(tmp_path, count_infer):
    """mut51e F07: the 10-crop feature file ((N, 10, D)) is read back by the next run of the
    same model and images, not extracted again every time (checked for 2 dimensions, it
    never matched)."""
    images, _ = _images(4)
    paths = _paths(tmp_path, 4)
    kw = {"device": "cpu", "cache_dir": tmp_path / "c", "oversample": True}
    first = np.array(frozen.cached_features(_model(), paths, images, **kw))
    again = frozen.cached_features(_model(), paths, images, **kw)
    assert count_infer == [True] and again.shape == first.shape == (4, 10, first.shape[2])
    np.testing.assert_array_equal(again, first)


def test_logistic_head_takes_a_feature_constant_over_the_fold():
    """mut51e F16: a feature with the same value on every image (a unit that never fires) is
    standardised by 1, not divided by its zero std (NaN features, a scikit-learn error)."""
    rng = np.random.default_rng(2)
    labels = np.arange(20) % 2
    model = _model()
    feats = rng.normal(0, 1, (20, model.info.feature_dim))
    feats[:, 0] = 3.0
    feats[:, 1] += np.where(labels == 1, 3.0, -3.0)
    feats = feats.astype(np.float32)
    frozen.fit_logistic_head(model, feats, labels, cs=(1.0,))
    with torch.no_grad():
        probs = torch.softmax(model.forward_head(torch.from_numpy(feats)), 1).numpy()
    assert np.isfinite(probs).all() and (probs.argmax(1) == labels).all()
