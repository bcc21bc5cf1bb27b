"""Ensembles of finished cross-validation runs (issue 10, lever 4).

:func:`ensemble_runs` averages the test probabilities of several ``vsent crossval`` runs made
on the same images and folds (other seeds, recipes or models): P(positive) of an image is the
mean of the members' P(positive), centre crop and, when every member has it, 10-crop. Nothing
is weighted or chosen, so nothing is fitted on a test fold. The result is laid out as a
crossval run (``config.json``, ``folds.json``, ``predictions.csv``, ``summary.json``), so
``vsent fuse`` and the reports read it as they read a run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsent.analyses.compare import read_predictions
from vsent.analyses.fusion import check_run_two_way
from vsent.errors import VsentError
from vsent.metrics import binary_metrics, summarize_folds
from vsent.runs import SUMMARY, check_same_test_images, config_diff, read_config

#: Config keys that must agree between members; the images, labels and folds are compared
#: name by name (:func:`vsent.runs.check_same_test_images`), not the data's path: one dataset
#: reached by two paths (``../shared/x``, ``/work/shared/x``, another machine's copy) is one.
SAME_DATA = ("subset", "skip_bad")

log = logging.getLogger("vsent")


def _read_member(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    for name in ("config.json", "predictions.csv", SUMMARY):
        if not (run / name).is_file():
            raise VsentError(f"{run}: not a finished crossval run (no {name})")
    cfg = read_config(run)
    if cfg.get("command") not in ("crossval", "ensemble"):
        raise VsentError(f"{run}: made by `vsent {cfg.get('command')}`, not by crossval")
    check_run_two_way(cfg, f"{run}: an ensemble member")  # the mean of P(positive)s needs it
    # compare's reader: a damaged file is one line naming it and the line, not a traceback
    rows = read_predictions(run / "predictions.csv", "prob_positive",
                            optional=("prob_positive_10crop",))
    return cfg, list(rows.values())


def _test_images(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """``{name: (fold, label)}`` of a run's predictions.csv rows (:func:`read_predictions`)."""
    return {r["name"]: (r["fold"], r["label"]) for r in rows}


def _centre_accuracy(run: Path) -> dict[str, float]:
    """A member's own centre-crop accuracy (mean, std) from its summary.json."""
    summary = json.loads((run / SUMMARY).read_text())
    return summary.get("center", summary)["accuracy"]


def ensemble_runs(runs: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Mean P(positive) of the crossval runs ``runs`` (at least two), image by image.

    Returns
    -------
    dict with ``config`` (what ``config.json`` of the ensemble holds: the first member's data,
    subset, folds, seed and skip_bad, and the member runs), ``rows`` (one per test image, in the
    first member's order: name, path, fold, label, prob_positive, pred[, prob_positive_10crop,
    pred_10crop]), ``summary`` (as a crossval ``summary.json``: centre crop first, ``center``,
    ``ten_crop`` when every member has 10-crop columns, ``n_images`` and ``members``: each
    run's own accuracy).

    Raises
    ------
    VsentError
        Fewer than two runs, a run that is not a finished crossval run, or members evaluated on
        other images, labels or folds (the first difference is named).
    """
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise VsentError("an ensemble needs at least two runs")
    seen: dict[Path, Path] = {}
    for p in paths:  # a run twice would count its vote twice, silently
        if p.resolve() in seen:
            raise VsentError(f"{p}: named twice (as {seen[p.resolve()]}); an ensemble takes "
                             "each run once")
        seen[p.resolve()] = p
    members = [_read_member(p) for p in paths]
    first_cfg, first_rows = members[0]
    for path, (cfg, rows) in zip(paths[1:], members[1:], strict=True):
        diff = config_diff({k: first_cfg.get(k) for k in SAME_DATA},
                           {k: cfg.get(k) for k in SAME_DATA})
        if diff:
            raise VsentError(f"{path}: evaluated on other data than {paths[0]} "
                             f"({'; '.join(diff)})")
        check_same_test_images(paths[0], _test_images(first_rows), path, _test_images(rows))
        if cfg.get("data") != first_cfg.get("data"):  # e.g. a resized copy on another machine
            log.info("%s read its images from %s, %s from %s: the same test images, labels and "
                     "folds", path, cfg.get("data"), paths[0], first_cfg.get("data"))
    views = ["prob_positive"]
    if all("prob_positive_10crop" in rows[0] for _, rows in members):
        views.append("prob_positive_10crop")
    lookups = [{r["name"]: r for r in rows} for _, rows in members]

    out_rows = []
    for r in first_rows:
        row: dict[str, Any] = {k: r[k] for k in ("name", "path", "fold", "label") if k in r}
        for view in views:
            p = float(np.mean([m[r["name"]][view] for m in lookups]))
            row[view] = p
            row[view.replace("prob_positive", "pred")] = int(p > 0.5)  # a tie is negative
        out_rows.append(row)

    results: dict[str, list[dict[str, Any]]] = {}
    for view, key in zip(views, ("center", "ten_crop"), strict=False):
        pred = view.replace("prob_positive", "pred")
        folds = []
        for k in sorted({int(r["fold"]) for r in out_rows}):
            rows_k = [r for r in out_rows if int(r["fold"]) == k]
            y = np.array([int(r["label"]) for r in rows_k])
            folds.append({"fold": k, **binary_metrics(y, np.array([r[pred] for r in rows_k]))})
        results[key] = folds
    summary = summarize_folds(results["center"])
    summary["evaluation"] = "center"
    for key, folds in results.items():
        summary[key] = summarize_folds(folds)
    summary["n_images"] = len(out_rows)
    summary["members"] = [{"run": str(p), "accuracy": _centre_accuracy(p)} for p in paths]
    config = {"command": "ensemble", "runs": [str(p.resolve()) for p in paths],
              **{k: first_cfg[k] for k in ("data", *SAME_DATA, "folds", "seed")
                 if k in first_cfg}}
    return {"config": config, "rows": out_rows, "summary": summary}


def copy_folds(first_run: str | os.PathLike, out: str | os.PathLike) -> None:
    """Copy the first member's ``folds.json`` (the folds ``vsent fuse`` rebuilds) into ``out``."""
    src = Path(first_run) / "folds.json"
    if src.is_file():
        shutil.copyfile(src, Path(out) / "folds.json")
