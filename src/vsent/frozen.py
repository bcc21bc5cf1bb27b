"""How a crossval/finetune fold is trained and scored, whatever the way to train
(:func:`train_model`, :func:`evaluate_model`), and the ways besides full fine-tuning: a frozen
backbone (``--train head``) or its last N blocks (``--train last-N``).

``--train head``: the backbone never changes, so its pooled features (``model.forward_features``,
through :func:`vsent.inference.infer` with ``features=True``, the one inference path) are
extracted once per dataset, model and preprocessing and kept on disk (:func:`cached_features`);
the head is then trained on them in seconds per fold on a CPU:

* ``--head linear``: the model's own head (``info.head``) with the run's solver (optimizer, lr
  with ``head_lr_mult``, weight decay, schedule, epochs, batch size) on the cached features;
* ``--head logistic``: scikit-learn's L2 logistic regression on standardised features, ``C``
  chosen by an inner stratified cross-validation on the training fold
  (:data:`LOGISTIC_CS`), then written into the head (weights folded back to raw features), so
  the checkpoint is an ordinary vsent model.

The feature cache (``$VSENT_CACHE``, like :mod:`vsent.data.cache`) is keyed by the images'
contents (:func:`vsent.data.cache.content_key`), the model's spec and ``--init``,
a digest of the backbone's weights, the preprocessing and the crop mode (centre crop, or each
of the 10 crops: (N, 10, D)), so a changed image, model, weight file or preprocessing gives a
new file.

Features are taken from the centre crop for training (no random crops: the features are fixed);
10-crop evaluation applies the head to each crop's features and averages the 10 softmaxes, as
``vsent predict --oversample`` scores the model.

``--train last-N``: :func:`freeze_all_but_last` leaves the last N blocks (:func:`train_blocks`:
a block ends at a probe layer of ``info.probe_layers`` and holds the modules since the previous
block; blocks own parameters; the head is not one) and the head trainable and freezes every other
parameter. The frozen part below the first trainable block stays in eval mode while training
(its BatchNorm statistics do not move, its dropout is off); dropout above it stays on, as in
Caffe. Parameters outside the blocks (a final norm or projection) stay frozen.

Every crossval/finetune fold is trained and evaluated through this module, whatever its mode:
:func:`train_model` dispatches ``--train all`` (:func:`vsent.train.fit`), ``head``, ``last-N``
and ``--zero-shot`` (nothing to train), :func:`evaluate_model` scores a fold (the head on
cached features, or the model on images), and :func:`run_meta` / :func:`training_label` say
in the checkpoint and summary how the model was trained. The one exception: a fold with
``--extra-train`` (``--train all`` only) runs its stages through
:func:`vsent.crossval.train_fold_with_extra`, which calls :func:`vsent.train.fit` itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from vsent.config import HEADS, TrainConfig, parse_train_mode
from vsent.data.cache import cache_dir_default, content_key
from vsent.errors import VsentError
from vsent.files import mark_used, write_cache_file
from vsent.inference import check_images, infer, prepare, resolve_device

if TYPE_CHECKING:
    from vsent.config import RunConfig

__all__ = [
    "HEADS", "LOGISTIC_CS", "cached_features", "check_train_mode", "evaluate_model",
    "feature_key", "fit_head", "fit_logistic_head", "fit_linear_head", "freeze_all_but_last",
    "parse_train_mode", "run_meta", "train_blocks", "train_model", "training_label",
    "weights_digest",
]

log = logging.getLogger("vsent")

#: Inverse regularisation strengths tried by the inner cross-validation of ``--head logistic``.
LOGISTIC_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))
#: Inner folds of the logistic head's C search (fewer when a class has fewer images).
INNER_FOLDS = 5
# Bump when what is stored changes, so stale feature files are not reused (v2: the 10-crop
# file holds each crop's features, (N, 10, D), not their mean).
_FORMAT = "vsent-feature-cache-v2"


# --------------------------------------------------------------------------------------------
# feature cache


def weights_digest(model: nn.Module) -> str:
    """sha1 of the backbone's tensors (names, shapes, dtypes, bytes), the head excluded: two
    models with the same digest give the same features."""
    head = model.info.head
    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        if head and (name == head or name.startswith(head + ".")):
            continue  # the head does not change forward_features
        if name.endswith("num_batches_tracked"):
            continue  # a counter: eval-mode outputs do not depend on it
        t = t.detach().cpu().contiguous()
        h.update(json.dumps([name, list(t.shape), str(t.dtype)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def feature_key(paths: Sequence[str | os.PathLike], model: nn.Module, *, init: Any = None,
                oversample: bool = False) -> str:
    """sha1 hex key of a feature file: format, images (their bytes, in order, via
    :func:`vsent.data.cache.content_key`), ``model.spec``, ``init``, backbone weights digest,
    preprocessing and crop mode."""
    pre = model.info.preprocess
    h = hashlib.sha1()
    h.update(json.dumps([
        _FORMAT, content_key(paths, pre.resize), model.spec,
        None if init is None else str(init), weights_digest(model), pre.to_dict(),
        bool(oversample),
    ], sort_keys=True, default=str).encode())
    return h.hexdigest()


def cached_features(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    images: np.ndarray,
    *,
    init: Any = None,
    oversample: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Pooled features of every image (of each of its 10 crops with ``oversample``), from the
    disk cache or extracted (and stored) once.

    Parameters
    ----------
    model : a vsent model (``forward_features``); only its backbone matters.
    paths : the image files (``dataset.paths``), for the cache key; row i is ``paths[i]``.
    images : uint8 (N, S, S, 3) resized images in the same order (the image cache).
    init : ``--init`` of the model (recorded in the key; the weights digest decides anyway).
    oversample : each of the 10 crops' features instead of the centre crop's: the head is
        applied to each and their softmaxes averaged, as `vsent predict --oversample` scores
        the model (:func:`evaluate_model`).
    cache_dir : default ``$VSENT_CACHE``, else ``~/.cache/vsent``.

    Returns
    -------
    float32 (N, D) array, or (N, 10, D) with ``oversample`` (memory-mapped, read-only),
    D = ``model.info.feature_dim``.
    """
    if len(images) != len(paths):
        raise ValueError(f"{len(images)} images but {len(paths)} paths")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else cache_dir_default()
    key = feature_key(paths, model, init=init, oversample=oversample)
    n = len(paths)
    final = folder / f"features-{key[:20]}-{n}.npy"
    if final.is_file():
        try:
            arr = np.load(final, mmap_mode="r")
            if arr.ndim == (3 if oversample else 2) and arr.shape[0] == n \
                    and arr.dtype == np.float32:
                log.info("feature cache: reusing %s", final)
                mark_used(final)
                return arr
        except (OSError, ValueError) as e:
            log.warning("feature cache: %s is unreadable (%s); extracting again", final, e)
    if oversample:
        feats = _crop_features(model, images, batch_size, device)
    else:
        feats = infer(model, images, batch_size=batch_size, device=device,
                      features=True).features
        assert feats is not None
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    # the final name only ever appears complete
    write_cache_file(final, lambda f: np.save(f, feats), "feature cache")
    log.info("feature cache: extracted %s features into %s", " x ".join(map(str, feats.shape)),
             final)
    return np.load(final, mmap_mode="r")


def _crop_features(model: nn.Module, images: np.ndarray, batch_size: int,
                   device: str | torch.device) -> np.ndarray:
    """float32 (N, 10, D): ``forward_features`` of each image's 10 crops (the crops and
    normalisation of the inference path, :func:`vsent.inference.prepare`)."""
    check_images(images, model.info.preprocess.resize)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model.eval().to(dev)
    out = np.empty((len(images), 10, model.info.feature_dim), np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = prepare(images[start:start + batch_size], model.info.preprocess,
                        oversample=True, device=dev)  # image-major: rows 10 i .. 10 i + 9
            f = model.forward_features(x).float().cpu().numpy()
            out[start:start + len(f) // 10] = f.reshape(-1, 10, f.shape[1])
    return out


# --------------------------------------------------------------------------------------------
# heads on features


def head_module(model: nn.Module, what: str = "--train head") -> nn.Module:
    """The module ``model.info.head``; a user error when the model has none (CaffeNet's raw
    ablations use their top layer as logits)."""
    head = model.info.head
    if not head:
        raise VsentError(f"{what}: {model.info.name} has no separate head to train "
                         "(its top layer is used as logits)")
    return model.get_submodule(head)


def _logistic_head(model: nn.Module) -> nn.Linear:
    """The head ``--head logistic`` writes into: a 2-way linear layer, else a user error."""
    head = head_module(model, "--head logistic")
    if not isinstance(head, nn.Linear) or head.out_features != 2:
        raise VsentError(f"--head logistic: {model.info.name}'s head is not a 2-way linear layer")
    return head


def freeze_backbone(model: nn.Module) -> list[str]:
    """``requires_grad`` off for every parameter outside the head; returns the trainable names."""
    return freeze_all_but_last(model, 0)


def fit_linear_head(model: nn.Module, features: np.ndarray, labels: np.ndarray,
                    cfg: TrainConfig) -> list[dict[str, float]]:
    """Train the model's head on fixed features ``(N, D)`` with the solver of ``cfg``.

    Every parameter outside ``info.head`` is frozen (and untouched). Mini-batches of
    ``cfg.batch_size`` in a seeded random order, ``cfg.epochs`` passes, cross-entropy with
    ``cfg.label_smoothing``; the head learns at ``head_lr_mult`` x lr, as a new layer does in
    fine-tuning, whether or not the family lists it in ``info.new_layers`` (smallcnn and pcnn
    do not; :func:`vsent.train.head_layers`). Returns one stats dict per epoch.
    """
    from vsent.train import base_lr, make_optimizer, make_scheduler  # the fine-tuning solver

    head = head_module(model)
    freeze_backbone(model)
    device = resolve_device(cfg.device)
    model.eval().to(device)
    head.train()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    x_all = torch.from_numpy(np.asarray(features, dtype=np.float32)).to(device)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x_all), generator=gen).to(device)
        total = correct = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            logits = model.forward_head(x_all[idx])
            loss = loss_fn(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += float((logits.argmax(1) == y_all[idx]).sum())
        history.append({"epoch": epoch + 1, "loss": total / max(len(order), 1),
                        "train_accuracy": correct / max(len(order), 1),
                        "lr": base_lr(opt)})
        sched.step()
    model.eval()
    log.info("head trained on %d features: loss %.4f, train accuracy %.3f", len(x_all),
             history[-1]["loss"], history[-1]["train_accuracy"])
    return history


def fit_logistic_head(model: nn.Module, features: np.ndarray, labels: np.ndarray, *,
                      seed: int = 0, cs: Sequence[float] = LOGISTIC_CS) -> dict[str, Any]:
    """scikit-learn logistic regression on standardised features, C by inner CV, written into
    the model's linear 2-way head.

    The inner cross-validation is stratified (:data:`INNER_FOLDS` folds, fewer when a class has
    fewer images, shuffled with ``seed``) on ``features`` only (the training fold), scored by
    accuracy; the largest-accuracy C wins (the smallest C among ties). With ``w, b`` fitted on
    ``(f - mu) / sigma``, the head gets ``logit_pos - logit_neg = w . (f - mu) / sigma + b``
    (halved into the two rows), so ``softmax(head(f))`` is the logistic model's probability.

    Returns ``{"C", "cv_accuracy": {C: mean accuracy}, "inner_folds"}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    head = _logistic_head(model)
    freeze_backbone(model)
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=2)
    k = int(min(INNER_FOLDS, counts.min()))
    if k < 2:
        raise VsentError(f"--head logistic: the training fold needs at least 2 images of each "
                         f"class for the inner cross-validation (has {counts.tolist()})")
    mu, sigma = x.mean(axis=0), x.std(axis=0)
    sigma[sigma == 0] = 1.0  # a constant feature carries nothing; avoid dividing by zero
    z = (x - mu) / sigma
    inner = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = {}
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000)
        scores[float(c)] = float(cross_val_score(clf, z, y, cv=inner, scoring="accuracy").mean())
    best = max(scores.values())
    c_best = min(c for c, s in scores.items() if s == best)
    clf = LogisticRegression(C=c_best, max_iter=2000).fit(z, y)
    w = clf.coef_[0] / sigma  # back to raw features
    b = float(clf.intercept_[0] - (clf.coef_[0] * mu / sigma).sum())
    with torch.no_grad():
        weight = torch.from_numpy(np.stack([-w / 2, w / 2])).to(head.weight)
        head.weight.copy_(weight)
        if head.bias is not None:
            head.bias.copy_(torch.tensor([-b / 2, b / 2]).to(head.bias))
        elif b != 0:
            raise VsentError("--head logistic: the head has no bias")
    model.eval()
    log.info("logistic head: C=%g by %d-fold inner CV (accuracy %.3f)", c_best, k, best)
    return {"C": c_best, "cv_accuracy": scores, "inner_folds": k}


def fit_head(model: nn.Module, features: np.ndarray, labels: np.ndarray, cfg: TrainConfig,
             head: str = "linear") -> list[dict[str, Any]]:
    """Train the head of ``model`` on fixed features with ``head`` (:data:`HEADS`); returns the
    history written to ``history.json`` (per epoch for linear, one record for logistic)."""
    if cfg.augment != "crop-flip" or cfg.ema or cfg.mix != "none":
        raise VsentError("--augment, --ema and --mix apply to training through the images "
                         "(--train all or last-N); --train head fits on cached features")
    if head == "linear":
        return fit_linear_head(model, features, labels, cfg)
    if head == "logistic":
        # scikit-learn takes seeds below 2**32; a fold's seed is the run's * 1000 + k
        return [{"head": "logistic", **fit_logistic_head(model, features, labels,
                                                         seed=cfg.seed % 2**32)}]
    raise VsentError(f"--head {head!r}: use one of {', '.join(HEADS)}")


# --------------------------------------------------------------------------------------------
# last-N


def train_blocks(model: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """The blocks ``--train last-N`` counts, in depth order: ``(name, module names)``.

    The modules are walked in registration order, depth first, descending only into modules that
    hold a probe layer or the head below them (not into a probe layer or head itself). Each probe
    layer (``info.probe_layers``) closes a block made of itself and the modules since the previous
    block, provided they own parameters; a span without parameters (a ReLU or pool probe layer, a
    pooling stage) joins the next block. So AlexNet's probe layer ``features.2`` (the first max
    pool) stands for conv1, its ReLU and that pool, a ResNet's ``layer1`` includes the stem and its
    ``avgpool`` is no block. The head and the new layers are never blocks, nor what lies between the
    last block and the head (CaffeNet's ``drop7``) or after the last probe layer (a final norm).
    A block is named by its probe layer. The walk is the forward order for vsent's families
    (sequential networks, timm/open_clip modules registered in forward order).
    """
    info = model.info
    probes = set(info.probe_layers)
    heads = {n for n in (*info.new_layers, info.head) if n}
    marks = probes | heads
    units: list[str] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = prefix + name
            if full not in marks and any(m.startswith(full + ".") for m in marks):
                walk(full + ".", child)
            else:
                units.append(full)

    walk("", model)
    blocks: list[tuple[str, tuple[str, ...]]] = []
    span: list[str] = []
    for unit in units:
        if unit in heads:
            span = []  # between the last block and the head: part of neither
            continue
        span.append(unit)
        if unit in probes and any(True for u in span
                                  for _ in model.get_submodule(u).parameters()):
            blocks.append((unit, tuple(span)))
            span = []
    return blocks


def freeze_all_but_last(model: nn.Module, n: int) -> list[str]:
    """Freeze every parameter except those of the last ``n`` blocks (:func:`train_blocks`) and
    of the head (``info.head``, ``info.new_layers``); returns the trainable parameter names.

    When the model is put in training mode, frozen modules before the first trainable block
    stay in eval mode (their BatchNorm statistics and dropout as in inference), and so do the
    frozen modules after it that hold parameters or buffers (a norm's running statistics).
    Dropout and drop-path inside or after the first trainable block follow the model's mode,
    as in Caffe, where ``lr_mult: 0`` freezes a layer's weights but its dropout stays on.
    ``n = 0`` trains the head only. :class:`VsentError` when ``n`` exceeds the blocks (or
    there is nothing to train), naming them.
    """
    trainable = _trainable_modules(model, n)

    def inside(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in trainable)

    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(inside(name))
        if p.requires_grad:
            names.append(name)
    modules = list(model.named_modules())
    start = min(i for i, (name, _) in enumerate(modules) if name in trainable)
    # modules with nothing trainable in or under them, before the first trainable block or
    # holding state of their own: eval mode whenever the model trains
    held = [m for i, (name, m) in enumerate(modules)
            if name and not inside(name) and not any(t.startswith(name + ".") for t in trainable)
            and (i < start or _holds_state(m))]
    _keep_eval(model, held)
    return names


def _trainable_modules(model: nn.Module, n: int) -> tuple[str, ...]:
    """Names of the modules ``--train last-n`` (``n = 0``: head) trains, without changing the
    model; :class:`VsentError` when ``n`` exceeds the blocks or nothing would train."""
    info = model.info
    blocks = train_blocks(model)
    if n > len(blocks):
        names = ", ".join(b for b, _ in blocks) or "none"
        raise VsentError(f"--train last-{n}: {info.name} has {len(blocks)} blocks besides the "
                         f"head ({names})")
    spans = [u for _, span in blocks[len(blocks) - n:] for u in span] if n else []
    trainable = tuple(p for p in [*spans, *info.new_layers, info.head] if p)
    if not trainable:
        raise VsentError(f"--train head: {info.name} has no separate head to train")
    return trainable


def check_train_mode(model: nn.Module, mode: str, head: str = "linear") -> None:
    """:class:`VsentError` when ``--train mode`` (and ``--head head``) cannot train ``model``
    (a prototype: nothing is changed), so a run stops before its directory exists."""
    n = parse_train_mode(mode)
    if n is None:
        return
    _trainable_modules(model, n)
    if n == 0:
        head_module(model)
        if head == "logistic":
            _logistic_head(model)


def _holds_state(module: nn.Module) -> bool:
    """Whether ``module`` itself (not its children) has parameters or buffers."""
    return any(True for _ in module.parameters(recurse=False)) or \
        any(True for _ in module.buffers(recurse=False))


def _keep_eval(model: nn.Module, held: list[nn.Module]) -> None:
    """``model.train(mode)``, then ``held`` modules back to eval mode, each one alone (not its
    children: a dropout under a held norm follows its own rule). Set on the instance,
    idempotent."""
    cls_train = type(model).train

    def train(mode: bool = True) -> nn.Module:
        cls_train(model, mode)
        for m in held:
            m.training = False
        return model

    model.train = train  # type: ignore[method-assign]
    model.train(model.training)


# --------------------------------------------------------------------------------------------
# one fold of vsent.crossval, for every way to train


def check_head_parallel(train_mode: str, world: int) -> None:
    """VsentError for ``--train head`` on ``world`` > 1 data-parallel processes: checked by
    :func:`train_model` in each rank (a torchrun started by hand) and before ``--nproc N``
    starts them (:func:`vsent.crossval.check_launch`)."""
    if parse_train_mode(train_mode) == 0 and world > 1:
        raise VsentError("--train head runs in one process (heads on cached features are not "
                         "split: every process would do the whole computation)")


def train_model(
    model: nn.Module,
    cfg: RunConfig,
    train_cfg: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    paths: Sequence[str | os.PathLike],
    train_idx: np.ndarray,
    *,
    state_path: str | os.PathLike | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, Any]]:
    """Train ``model`` in place on the rows ``train_idx`` as ``cfg`` says; returns the history
    for ``history.json``.

    * ``zero_shot``: nothing is trained (``[]``);
    * ``train_mode == "all"``: :func:`vsent.train.fit` on ``images[train_idx]`` (fine-tuning);
    * ``"head"``: :func:`fit_head` on the cached features (:func:`cached_features` of all
      ``images``, extracted once and shared by the folds);
    * ``"last-N"``: :func:`freeze_all_but_last` then :func:`vsent.train.fit` (resumable too).
    """
    from vsent import distributed
    from vsent.train import fit

    if cfg.zero_shot:
        return []
    check_head_parallel(cfg.train_mode, distributed.world_size())
    n = parse_train_mode(cfg.train_mode)
    if n == 0:
        feats = cached_features(model, paths, images, init=cfg.init,
                                batch_size=cfg.eval_batch_size, device=train_cfg.device)
        return fit_head(model, feats[train_idx], labels[train_idx], train_cfg, cfg.head)
    if n is not None:
        trainable = freeze_all_but_last(model, n)
        blocks = ", ".join(b for b, _ in train_blocks(model)[-n:])
        head = model.info.head
        log.info("%s: training %d parameter tensors (last %d blocks: %s; %s)", desc,
                 len(trainable), n, blocks,
                 f"and the head {head}" if head else "no separate head")
    return fit(model, images[train_idx], labels[train_idx], train_cfg, state_path=state_path,
               progress=progress, desc=desc)


def evaluate_model(
    model: nn.Module,
    cfg: RunConfig,
    images: np.ndarray,
    labels: np.ndarray,
    paths: Sequence[str | os.PathLike],
    test_idx: np.ndarray,
    *,
    oversample: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
) -> tuple[dict, np.ndarray]:
    """:func:`vsent.evaluate.evaluate` of the rows ``test_idx``: (metrics, probabilities (n, C)).

    With ``train_mode == "head"`` the frozen backbone's cached features are used and only the
    head runs: on the centre crop's, or with ``oversample`` on each of the 10 crops' with their
    softmaxes averaged (what ``vsent predict --oversample`` gives for the fold's model.pt).
    """
    from vsent.evaluate import evaluate
    from vsent.metrics import binary_metrics

    if cfg.train_mode != "head":
        return evaluate(model, images[test_idx], labels[test_idx], oversample=oversample,
                        batch_size=batch_size, device=device)
    feats = cached_features(model, paths, images, init=cfg.init, oversample=oversample,
                            batch_size=batch_size, device=device)
    dev = resolve_device(device)
    x = np.asarray(feats[test_idx], dtype=np.float32)
    with torch.inference_mode():
        logits = model.eval().to(dev).forward_head(
            torch.from_numpy(x.reshape(-1, x.shape[-1])).to(dev))
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    if oversample:  # (n, 10, C) -> the mean over each image's crops
        probs = probs.reshape(len(x), 10, -1).mean(axis=1)
    return binary_metrics(labels[test_idx], probs.argmax(axis=1)), probs


def training_label(cfg: RunConfig) -> str:
    """How a run trained, for its summary: ``zero-shot``, ``fine-tuning``, ``frozen features +
    linear head``, ``last 2 blocks + head``."""
    if cfg.zero_shot:
        return "zero-shot"
    n = parse_train_mode(cfg.train_mode)
    if n is None:
        return "fine-tuning"
    if n == 0:
        return f"frozen features + {cfg.head} head"
    return f"last {n} blocks + head"


def run_meta(cfg: RunConfig, n_train: int, init_sha256: str | None = None, *,
             n_extra: int | None = None) -> dict[str, Any]:
    """What a run's checkpoint records about its training besides the solver (read by
    :func:`vsent.models.card.model_card` when the file is outside its run directory);
    ``init_sha256``: the SHA-256 of an ``--init`` weights file (recorded when given);
    ``n_extra``: the ``--extra-train`` images beside the ``n_train`` of the subset (the
    subset ``extra_train`` holds them all: a model's training images are checked against
    another run's test images by it, data.leakage)."""
    meta: dict[str, Any] = {"init": cfg.init, "data": cfg.data, "folds": cfg.folds,
                            "n_train": int(n_train), "training": training_label(cfg)}
    if init_sha256 is not None:  # the path alone does not say which weights were there
        meta["init_sha256"] = init_sha256
    if cfg.extra_train is not None and n_extra is not None:
        meta.update(extra_train=cfg.extra_train, extra_schedule=cfg.extra_schedule,
                    n_extra=int(n_extra))
    if cfg.train_mode == "head":
        meta["head"] = cfg.head
    if cfg.zero_shot:
        meta["prompts"] = cfg.prompts
    return meta
