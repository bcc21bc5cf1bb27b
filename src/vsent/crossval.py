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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsent.config import RunConfig
from vsent.data.cache import image_cache
from vsent.data.datasets import load_dataset
from vsent.data.folds import make_folds, save_folds
from vsent.errors import VsentError
from vsent.evaluate import evaluate
from vsent.metrics import summarize_folds, write_summary
from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint
from vsent.presets import CROSSVAL as PRESETS
from vsent.presets import resolve_lr
from vsent.runs import (
    FOLD_METRICS,
    FOLDS,
    SUMMARY,
    TRAIN_STATE,
    CrossvalRun,
    RunDir,
    Timer,
    fold_dir,
    open_run,
    open_run_dir,
)
from vsent.train import fit

__all__ = ["PRESETS", "CrossvalRun", "RunConfig", "crossval", "finetune", "fresh_model",
           "open_run", "prepare"]

log = logging.getLogger("vsent")


def prepare(cfg: RunConfig) -> tuple[RunConfig, nn.Module]:
    """Build a prototype model (for its preprocessing and default lr) and resolve the lr.

    Returns the config with ``train.lr`` the lr the run trains at (a new record: ``cfg`` is
    frozen) and the prototype. It loads ``cfg.init`` so that missing weights stop the run
    before its directory exists.
    """
    model = create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)
    info = getattr(model, "info", None)
    default_lr = info.default_lr if info is not None else getattr(model, "default_lr", None)
    lr = resolve_lr(cfg.preset, cfg.train.lr, default_lr)  # e.g. fc6-2 trains at 1e-4
    return cfg.replace(train=cfg.train.replace(lr=lr)), model


def crossval(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """K-fold fine-tuning and evaluation; returns the summary written to ``summary.json``.

    Each fold fine-tunes a fresh model (``cfg.model`` from ``cfg.init``) on the fold's training
    images and evaluates it on its test images with the centre crop and with 10-crop
    oversampling. ``out`` is opened by :func:`vsent.runs.open_run_dir`: a finished run returns
    its stored summary, a different config is refused; with ``resume`` finished folds
    (``fold<k>/metrics.json``) are not redone and an interrupted fold continues from its last
    finished epoch; ``overwrite`` starts again.
    """
    cfg, proto = prepare(cfg)
    run = open_run_dir(out, {"command": "crossval", **cfg.to_dict()}, resume=resume,
                       overwrite=overwrite, done=SUMMARY)
    try:
        if run.status == "finished":
            log.info("%s: finished run, summary not recomputed", run.path)
            return run.read_json(SUMMARY)
        return _crossval(cfg, run, proto, progress)
    finally:
        run.close()


def _crossval(cfg: RunConfig, run: RunDir, proto: nn.Module, progress: bool) -> dict:
    timer = Timer()
    dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
    run.write_json("skipped.json", list(dataset.skipped))
    folds_file = run / FOLDS
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
        fdir = fold_dir(run.path, fold.index)
        fdir.mkdir(exist_ok=True)
        metrics_file = fdir / FOLD_METRICS
        if metrics_file.exists():
            log.info("fold %d: already done, skipped", fold.index)
            done = json.loads(metrics_file.read_text())
        else:
            done = _run_fold(cfg, run, fold, images, labels, dataset, progress)
        for key in results:
            results[key].append({"fold": fold.index, **done[key]})
        all_rows.extend(_read_rows(fdir / "predictions.csv"))

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
    fdir = fold_dir(run.path, fold.index)
    train_cfg = cfg.train.replace(seed=cfg.seed * 1000 + fold.index)
    model = fresh_model(cfg, train_cfg.seed)
    state = fdir / TRAIN_STATE
    history = fit(model, images[np.sort(fold.train)], labels[np.sort(fold.train)], train_cfg,
                  state_path=state, progress=progress, desc=f"fold {fold.index}")
    run.write_json(f"fold{fold.index}/history.json", history)
    save_checkpoint(fdir / "model.pt", model, fold=fold.index, run=str(run.path),
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
    run.write_json(f"fold{fold.index}/{FOLD_METRICS}", done)  # written last: marks the fold done
    state.unlink(missing_ok=True)
    log.info("fold %d: accuracy %.3f (centre) %.3f (10-crop)", fold.index,
             center["accuracy"], ten["accuracy"])
    return done


def _read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def finetune(cfg: RunConfig, out: str | Path, *, fold: int | None = None, resume: bool = False,
             overwrite: bool = False, progress: bool = True) -> dict:
    """Fine-tune one model on the whole dataset (or on fold ``fold``'s training images).

    Writes ``model.pt`` (and, with ``fold``, that fold's test metrics) into ``out``, then
    ``metrics.json`` last (it marks the run finished). ``out`` is opened by
    :func:`vsent.runs.open_run_dir`: a finished run returns its stored result, a different
    config (e.g. another ``--lr``) is refused, ``resume`` continues from ``train_state.pt``.
    """
    cfg, proto = prepare(cfg)
    out = Path(out)
    run = open_run_dir(out, {"command": "finetune", "fold": fold, **cfg.to_dict()},
                       resume=resume, overwrite=overwrite, done="metrics.json")
    try:
        if run.status == "finished":
            return run.read_json("metrics.json")
        dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
        images = image_cache(dataset, size=proto.preprocess.resize, progress=progress)
        train_idx = np.arange(len(dataset))
        test_idx = None
        if fold is not None:
            folds = make_folds(dataset, cfg.folds, seed=cfg.seed)
            save_folds(folds, dataset, run / FOLDS)
            match = [f for f in folds if f.index == fold]
            if not match:
                raise VsentError(f"--fold {fold}: the split has folds 1..{len(folds)}")
            train_idx, test_idx = np.sort(match[0].train), np.sort(match[0].test)
        train_cfg = cfg.train.replace(seed=cfg.seed)
        model = fresh_model(cfg, train_cfg.seed)
        history = fit(model, images[train_idx], dataset.labels[train_idx], train_cfg,
                      state_path=out / TRAIN_STATE, progress=progress, desc="finetune")
        run.write_json("history.json", history)
        save_checkpoint(out / "model.pt", model, fold=fold, train=dataclasses.asdict(train_cfg),
                        subset=cfg.subset)
        (out / TRAIN_STATE).unlink(missing_ok=True)
        result: dict[str, Any] = {"n_train": len(train_idx), "model": str(out / "model.pt")}
        if test_idx is not None:
            kw = {"batch_size": cfg.eval_batch_size, "device": cfg.train.device}
            result["center"], _ = evaluate(model, images[test_idx], dataset.labels[test_idx], **kw)
            result["ten_crop"], _ = evaluate(model, images[test_idx], dataset.labels[test_idx],
                                             oversample=True, **kw)
        run.write_json("metrics.json", result)  # written last: marks the run finished
        return result
    finally:
        run.close()
