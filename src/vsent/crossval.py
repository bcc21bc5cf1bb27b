"""Fine-tuning and k-fold cross-validation runs (Campos et al. 2015, Table 1), resumable.

A cross-validation run directory holds (see docs/ARCHITECTURE.md)::

    config.json  versions.json  run.log  folds.json  skipped.json
    fold<k>/model.pt  fold<k>/metrics.json  fold<k>/predictions.csv  fold<k>/history.json
    predictions.csv  summary.json  summary.md
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsent.data.cache import image_cache
from vsent.data.datasets import Dataset, load_dataset
from vsent.data.folds import Fold, make_folds, save_folds
from vsent.errors import VsentError
from vsent.evaluate import evaluate
from vsent.metrics import summarize_folds, write_summary
from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint
from vsent.runs import RunDir, Timer, stored_config
from vsent.train import TrainConfig, config_from_dict, fit

log = logging.getLogger("vsent")

#: Named configurations. ``campos2015`` is the paper's recipe (CaffeNet from ImageNet weights);
#: ``quick`` trains a small BatchNorm CNN from scratch at 64 px, about 5 minutes on 2 CPU cores.
PRESETS: dict[str, dict[str, Any]] = {
    "campos2015": {"model": "caffenet", "init": "imagenet", "train": TrainConfig()},
    "quick": {
        "model": "smallcnn",
        "init": "random",
        "train": TrainConfig(
            epochs=30, batch_size=32, lr=2e-3, weight_decay=0.05, optimizer="adamw",
            schedule="cosine", head_lr_mult=1.0, bias_lr_mult=1.0,
        ),
    },
}


@dataclass
class RunConfig:
    """Everything that defines a fine-tuning or cross-validation run (saved as config.json)."""

    data: str
    subset: str = "five"
    folds: str = "campos"
    model: str = "caffenet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "imagenet"
    train: TrainConfig = field(default_factory=TrainConfig)
    oversample: bool = False  # which of the two evaluations summary.json leads with
    skip_bad: bool = False
    seed: int = 0
    eval_batch_size: int = 64
    preset: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        return config_from_dict(cls, d, "run")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CrossvalRun:
    """An existing cross-validation run directory, opened for analyses (layers, regions)."""

    path: Path
    config: RunConfig
    dataset: Dataset
    folds: list[Fold]

    def checkpoint(self, k: int) -> Path:
        """Path of fold ``k``'s fine-tuned model (1-based); error if that fold did not finish."""
        path = self.path / f"fold{k}" / "model.pt"
        if not path.exists():
            raise VsentError(
                f"{path}: fold {k} has no model (unfinished run? use crossval --resume)"
            )
        return path


def open_run(path: str | Path) -> CrossvalRun:
    """Open a run directory written by :func:`crossval` (config, dataset and its folds)."""
    path = Path(path)
    if not (path / "config.json").exists() or not (path / "folds.json").exists():
        raise VsentError(f"{path}: not a crossval run directory (no config.json/folds.json)")
    config = RunConfig.from_dict(json.loads((path / "config.json").read_text()))
    dataset = load_dataset(config.data, config.subset, skip_bad=config.skip_bad, validate=False)
    folds = make_folds(dataset, str(path / "folds.json"))
    return CrossvalRun(path, config, dataset, folds)


def _prepare(cfg: RunConfig) -> nn.Module:
    """Build a prototype model (for its preprocessing and default lr) and resolve the lr.

    It loads ``cfg.init`` so that missing weights stop the run before its directory exists.
    """
    model = create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)
    default_lr = getattr(model, "default_lr", None)
    if cfg.preset and default_lr and cfg.train.lr == PRESETS[cfg.preset]["train"].lr:
        cfg.train = cfg.train.replace(lr=default_lr)  # e.g. fc6-2 trains at 1e-4 in the paper
    cfg.train.validate()
    return model


def crossval(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True
) -> dict:
    """K-fold fine-tuning and evaluation; returns the summary written to ``summary.json``.

    Each fold fine-tunes a fresh model (``cfg.model`` from ``cfg.init``) on the fold's training
    images and evaluates it on its test images with the centre crop and with 10-crop
    oversampling. Finished folds (``fold<k>/metrics.json``) are not redone on ``resume``, and
    an interrupted fold continues from its last finished epoch.
    """
    out = Path(out)
    stored = stored_config(out, resume, RunConfig.from_dict)
    cfg = stored or cfg
    proto = _prepare(cfg)
    run = RunDir(out, config=None if stored else {"command": "crossval", **cfg.to_dict()})
    try:
        return _crossval(cfg, run, proto, progress)
    finally:
        run.close()


def _crossval(cfg: RunConfig, run: RunDir, proto: nn.Module, progress: bool) -> dict:
    timer = Timer()
    dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
    run.write_json("skipped.json", list(dataset.skipped))
    folds_file = run / "folds.json"
    spec = str(folds_file) if folds_file.exists() else cfg.folds  # resume: the same folds
    folds = make_folds(dataset, spec, seed=cfg.seed)
    save_folds(folds, dataset, folds_file)
    images = image_cache(dataset, size=proto.preprocess.resize, progress=progress)
    labels = dataset.labels
    log.info("crossval %s: %d images, %d folds, model %s (init %s)",
             cfg.subset, len(dataset), len(folds), cfg.model, cfg.init)

    results: dict[str, list[dict]] = {"center": [], "ten_crop": []}
    all_rows: list[dict] = []
    for fold in folds:
        fold_dir = run / f"fold{fold.index}"
        fold_dir.mkdir(exist_ok=True)
        metrics_file = fold_dir / "metrics.json"
        if metrics_file.exists():
            log.info("fold %d: already done, skipped", fold.index)
            done = json.loads(metrics_file.read_text())
        else:
            done = _run_fold(cfg, run, fold, images, labels, dataset, progress)
        for key in results:
            results[key].append({"fold": fold.index, **done[key]})
        all_rows.extend(_read_rows(fold_dir / "predictions.csv"))

    lead = "ten_crop" if cfg.oversample else "center"
    summary = summarize_folds(results[lead])
    summary["evaluation"] = lead
    summary["center"] = summarize_folds(results["center"])
    summary["ten_crop"] = summarize_folds(results["ten_crop"])
    summary["n_images"] = int(sum(len(f.test) for f in folds))
    summary["seconds"] = timer.elapsed
    run.write_csv("predictions.csv", all_rows, list(all_rows[0]) if all_rows else ["name"])
    title = (f"{cfg.model} on Twitter {cfg.subset}-agree, {len(folds)} folds ({cfg.folds}), "
             f"{'10-crop' if cfg.oversample else 'centre crop'}")
    write_summary(run, summary, title)
    c, t = summary["center"]["accuracy"], summary["ten_crop"]["accuracy"]
    log.info("accuracy over %d folds: centre crop %.3f +- %.3f, 10-crop %.3f +- %.3f",
             len(folds), c["mean"], c["std"], t["mean"], t["std"])
    return summary


def fresh_model(cfg: RunConfig, seed: int) -> nn.Module:
    """The model to train, its random layers drawn from ``seed`` (not from whatever state the
    process's RNG is in), so a fold gives the same result alone, first, or after others."""
    torch.manual_seed(seed)
    return create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)


def _run_fold(cfg, run, fold, images, labels, dataset, progress) -> dict:
    fold_dir = run / f"fold{fold.index}"
    train_cfg = cfg.train.replace(seed=cfg.seed * 1000 + fold.index)
    model = fresh_model(cfg, train_cfg.seed)
    state = fold_dir / "train_state.pt"
    history = fit(model, images[np.sort(fold.train)], labels[np.sort(fold.train)], train_cfg,
                  state_path=state, progress=progress, desc=f"fold {fold.index}")
    run.write_json(f"fold{fold.index}/history.json", history)
    save_checkpoint(fold_dir / "model.pt", model, fold=fold.index, run=str(run.path),
                    train=dataclasses.asdict(train_cfg), subset=cfg.subset)
    test = np.sort(fold.test)
    kw = {"batch_size": cfg.eval_batch_size, "device": cfg.train.device}
    center, p_center = evaluate(model, images[test], labels[test], **kw)
    ten, p_ten = evaluate(model, images[test], labels[test], oversample=True, **kw)
    rows = [
        {"name": dataset.names[i], "path": str(dataset.paths[i]), "fold": fold.index,
         "label": int(labels[i]), "prob_positive": float(pc[1]), "pred": int(pc.argmax()),
         "prob_positive_10crop": float(pt[1]), "pred_10crop": int(pt.argmax())}
        for i, pc, pt in zip(test, p_center, p_ten, strict=True)
    ]
    run.write_csv(f"fold{fold.index}/predictions.csv", rows, list(rows[0]))
    done = {"center": center, "ten_crop": ten}
    run.write_json(f"fold{fold.index}/metrics.json", done)  # written last: marks the fold done
    state.unlink(missing_ok=True)
    log.info("fold %d: accuracy %.3f (centre) %.3f (10-crop)", fold.index,
             center["accuracy"], ten["accuracy"])
    return done


def _read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def finetune(cfg: RunConfig, out: str | Path, *, fold: int | None = None, resume: bool = False,
             progress: bool = True) -> dict:
    """Fine-tune one model on the whole dataset (or on fold ``fold``'s training images).

    Writes ``model.pt`` (and, with ``fold``, that fold's test metrics) into ``out``.
    """
    proto = _prepare(cfg)
    out = Path(out)
    if (out / "model.pt").exists() and not resume:
        raise VsentError(f"{out} already holds a model: choose another --out")
    run = RunDir(out, config={"command": "finetune", "fold": fold, **cfg.to_dict()})
    try:
        dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
        images = image_cache(dataset, size=proto.preprocess.resize, progress=progress)
        train_idx = np.arange(len(dataset))
        test_idx = None
        if fold is not None:
            folds = make_folds(dataset, cfg.folds, seed=cfg.seed)
            save_folds(folds, dataset, run / "folds.json")
            match = [f for f in folds if f.index == fold]
            if not match:
                raise VsentError(f"--fold {fold}: the split has folds 1..{len(folds)}")
            train_idx, test_idx = np.sort(match[0].train), np.sort(match[0].test)
        train_cfg = cfg.train.replace(seed=cfg.seed)
        model = fresh_model(cfg, train_cfg.seed)
        history = fit(model, images[train_idx], dataset.labels[train_idx], train_cfg,
                      state_path=out / "train_state.pt", progress=progress, desc="finetune")
        run.write_json("history.json", history)
        save_checkpoint(out / "model.pt", model, fold=fold, train=dataclasses.asdict(train_cfg),
                        subset=cfg.subset)
        (out / "train_state.pt").unlink(missing_ok=True)
        result: dict[str, Any] = {"n_train": len(train_idx), "model": str(out / "model.pt")}
        if test_idx is not None:
            kw = {"batch_size": cfg.eval_batch_size, "device": cfg.train.device}
            result["center"], _ = evaluate(model, images[test_idx], dataset.labels[test_idx], **kw)
            result["ten_crop"], _ = evaluate(model, images[test_idx], dataset.labels[test_idx],
                                             oversample=True, **kw)
        run.write_json("metrics.json", result)
        return result
    finally:
        run.close()
