"""Ensembles of finished cross-validation runs (issue 10, lever 4).

:func:`ensemble_runs` averages the test probabilities of several ``vsent crossval`` runs made
on the same images and folds (other seeds, recipes or models): P(positive) of an image is the
mean of the members' P(positive) (:func:`vsent.analyses.fusion.ensemble_mean`), centre crop
and, when every member has it, 10-crop. Each member has the same weight and nothing is chosen,
so nothing is fitted on a test fold. A member may be an ensemble itself: it is one member, so
its runs share its weight (``ensemble(ens(A, B), C)`` weighs A and B 1/4 each, C 1/2; logged).
No run may count twice: the members are expanded into the crossval runs they stand for
(:func:`leaf_runs`, through nested ensembles), each known by its path and by the SHA-256 of its
``predictions.csv`` (an ensemble's ``inputs.json`` records its members', and a member ensemble
is expanded in turn), and a run found twice is refused, also when it was copied or moved since.
An older ensemble, without ``inputs.json``, whose runs are no longer where it recorded them
cannot be checked: a WARNING says so. Two members that give every test image the same
probability (one network reached twice, e.g. a run and a ``crossval --fusion`` run of the same
recipe and seed) are refused too.

A member's probability is its network's, ``prob_positive`` of its ``predictions.csv``, also
for a ``crossval --fusion`` run, whose fused probability (``fusion/predictions.csv``) is not
averaged although ``vsent compare`` scores that run by it
(:func:`vsent.analyses.compare.scores_source`); this is logged, and config.json's ``members``
names the column read for each member, with its model, preset and seed (``seeds`` lists them).

:func:`ensemble` (``vsent ensemble``) writes the result laid out as a crossval run
(``config.json``, ``folds.json``, ``data.json`` when the first member has one,
``predictions.csv``, ``summary.md``, ``summary.json``), so ``vsent fuse`` and the reports read
it as they read a run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsent.analyses.compare import check_finished_run, read_predictions, scores_source
from vsent.analyses.fusion import ensemble_mean
from vsent.analyses.fusion_run import check_run_two_way
from vsent.crossval_run import record_or_check_inputs
from vsent.errors import VsentError, check_many
from vsent.files import file_sha256, same_file
from vsent.metrics import binary_metrics, mean_std_text, summarize_folds, summary_markdown
from vsent.provenance import DATA_RECORD, read_record
from vsent.runs import (
    CONFIG,
    FOLDS,
    INPUTS,
    SUMMARY,
    check_same_test_images,
    config_diff,
    open_run_dir,
    read_config,
)

#: Config keys that must agree between members; the images, labels and folds are compared
#: name by name (:func:`vsent.runs.check_same_test_images`), not the data's path: one dataset
#: reached by two paths (``../shared/x``, ``/work/shared/x``, another machine's copy) is one.
SAME_DATA = ("subset", "skip_bad")
#: The config.json keys that define an ensemble (compared when its output is opened again);
#: ``seeds`` and ``members`` only describe its runs (an ensemble made before they were
#: recorded stays finished).
DEFINING_KEYS = ("command", "runs", "data", *SAME_DATA, "folds", "seed")
#: The probability column averaged, of every member (a crossval --fusion run's too).
COLUMN = "prob_positive"

log = logging.getLogger("vsent")


def _read_member(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    check_finished_run(run, "crossval run")
    cfg = read_config(run)
    if cfg.get("command") not in ("crossval", "ensemble"):
        raise VsentError(f"{run}: made by `vsent {cfg.get('command')}`, not by crossval")
    check_run_two_way(cfg, f"{run}: an ensemble member")  # the mean of P(positive)s needs it
    # compare's reader: a damaged file is one line naming it and the line, not a traceback
    rows = read_predictions(run / "predictions.csv", COLUMN,
                            optional=("prob_positive_10crop",))
    return cfg, list(rows.values())


@dataclass(frozen=True)
class Leaf:
    """A crossval run an ensemble member stands for: where it is (or was recorded), and the
    SHA-256 of its ``predictions.csv`` (None when neither found nor recorded)."""

    path: Path
    sha256: str | None


def _recorded_inputs(ensemble: Path) -> dict[str, str] | None:
    """The ensemble's :data:`vsent.runs.INPUTS` (``{member's predictions.csv: SHA-256}``), None
    for an ensemble made before it was kept; VsentError naming a damaged one."""
    file = ensemble / INPUTS
    if not file.is_file():
        return None
    record = read_record(file, "inputs (file: SHA-256)")
    if not all(isinstance(v, str) for v in record.values()):
        raise VsentError(f"{file}: not a record of inputs (file: SHA-256)")
    return record


def _sha256_or_none(file: Path) -> str | None:
    try:
        return file_sha256(file)
    except OSError:
        return None


def leaf_runs(run: str | os.PathLike, cfg: dict[str, Any] | None = None,
              _inside: tuple[Path, ...] = ()) -> list[Leaf]:
    """The crossval runs the run directory ``run`` stands for: itself, or for an ensemble (its
    ``config.json``, or ``cfg`` when already read) its members' leaves, recursively.

    A run's identity is its content as well as its path (a run copied or moved is still the
    same run): an ensemble's members are taken with the SHA-256 its ``inputs.json`` recorded;
    a member ensemble found where it was recorded is expanded in turn. An ensemble made before
    ``inputs.json`` has only its recorded paths: those found are hashed, those not found are
    taken by path alone, with a WARNING that they cannot be checked.
    """
    path = Path(run).resolve()
    if path in _inside:  # only a hand-edited config.json can make a cycle
        raise VsentError(f"{path / CONFIG}: an ensemble that holds itself")
    if cfg is None:
        cfg = read_config(path) if (path / CONFIG).is_file() else {}
    if cfg.get("command") != "ensemble":
        pred = path / "predictions.csv"
        if not pred.is_file():  # a run no longer where an older ensemble recorded it
            return [Leaf(path, None)]
        try:
            return [Leaf(path, file_sha256(pred))]
        except OSError as e:
            raise VsentError(f"{pred}: unreadable ({e})") from None
    inside = (*_inside, path)
    inputs = _recorded_inputs(path)
    if inputs is None:  # an older ensemble: its recorded paths are all there is
        runs = [Path(r) for r in cfg.get("runs", [])]
        missing = [r for r in runs if not (r / CONFIG).is_file()]
        if missing:
            log.warning("%s records runs that are not found (%s) and no %s: whether they are "
                        "also taken elsewhere (copied or moved) cannot be checked", path,
                        ", ".join(map(str, missing)), INPUTS)
        return [leaf for r in runs for leaf in leaf_runs(r, None, inside)]
    # the members' commands, for a member no longer where it was recorded
    commands = {m.get("run"): m.get("command") for m in cfg.get("members", [])
                if isinstance(m, dict)}
    leaves: list[Leaf] = []
    for file, sha in inputs.items():
        member = Path(file).parent
        if (member / CONFIG).is_file():
            member_cfg = read_config(member)
            if member_cfg.get("command") == "ensemble":
                if _sha256_or_none(Path(file)) != sha:  # made again since: other runs now
                    log.warning("%s holds the ensemble %s, which changed since: whether the "
                                "runs it held then are also taken elsewhere cannot be "
                                "checked (its runs now are)", path, member)
                leaves += leaf_runs(member, member_cfg, inside)
                continue
        elif commands.get(str(member)) == "ensemble":
            log.warning("%s holds the ensemble %s, which is not found: whether its runs are "
                        "also taken elsewhere (copied or moved) cannot be checked", path, member)
        leaves.append(Leaf(member, sha))  # the content averaged, wherever the run is now
    return leaves


def _check_each_run_once(paths: Sequence[Path], cfgs: Sequence[dict[str, Any]]) -> None:
    """VsentError naming a crossval run that two members (or one nested ensemble) hold, by
    path or by the content of its predictions.csv (copied or moved): its vote would count
    twice, silently."""
    first: dict[tuple[str, Any], tuple[Path, Leaf]] = {}
    for path, cfg in zip(paths, cfgs, strict=True):
        leaves = leaf_runs(path, cfg)
        if cfg.get("command") == "ensemble":
            log.info("%s is an ensemble of %d runs: they share its weight, 1/%d of the mean",
                     path, len(leaves), len(paths))
        for leaf in leaves:
            keys = [("path", leaf.path)] + ([("sha256", leaf.sha256)] if leaf.sha256 else [])
            seen = next((first[k] for k in keys if k in first), None)
            if seen is not None:
                def how(member: Path, leaf: Leaf) -> str:
                    return (f"as {member}" if member.resolve() == leaf.path
                            else f"inside the ensemble {member}")
                member, other = seen
                if member.resolve() == other.path and path.resolve() == leaf.path:
                    # two runs named, one content: the data checks and the same-network
                    # check, which follow, say better what is wrong
                    continue
                copy = ("" if other.path == leaf.path else
                        f": its predictions.csv is that of {other.path}, copied or moved")
                raise VsentError(f"{leaf.path}: taken twice ({how(member, other)} and "
                                 f"{how(path, leaf)}{copy}); an ensemble takes each run once")
            for k in keys:
                first[k] = (path, leaf)


def _check_other_networks(paths: Sequence[Path], probs: np.ndarray) -> None:
    """VsentError naming two members whose probabilities (``probs``: members x images, every
    view averaged side by side) are identical: one network counted twice."""
    seen: dict[bytes, int] = {}
    for i, row in enumerate(probs):
        j = seen.setdefault(row.tobytes(), i)
        if j != i:
            raise VsentError(f"{paths[i]} and {paths[j]} give every test image the same "
                             "probability: the same network (e.g. a run and a crossval "
                             "--fusion run of the same recipe and seed); an ensemble takes "
                             "each network once")


def _member_record(run: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """What config.json's ``members`` says of a member: its path, recipe, seed and the
    column read (a crossval --fusion run's fused column is not: logged)."""
    record = {"run": str(run.resolve()), "command": cfg.get("command"),
              "model": cfg.get("model"), "preset": cfg.get("preset"),
              "seed": cfg.get("seeds", cfg.get("seed")), "scores": f"predictions.csv:{COLUMN}"}
    pred_file, column = scores_source(run)
    if column != COLUMN:  # compare scores it by its late fusion; the ensemble does not
        fused = f"{pred_file.relative_to(run)}:{column}"
        record["not_averaged"] = fused
        log.info("%s was run with --fusion: the ensemble averages its network's probability "
                 "(predictions.csv:%s), not its fused one (%s), by which vsent compare scores "
                 "it", run, COLUMN, fused)
    return record


def _test_images(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """``{name: (fold, label)}`` of a run's predictions.csv rows (:func:`read_predictions`)."""
    return {r["name"]: (r["fold"], r["label"]) for r in rows}


def _centre_accuracy(run: Path) -> dict[str, float]:
    """A member's own centre-crop accuracy (mean, std) from its summary.json; VsentError
    naming the file when it is damaged (cut short, or without that accuracy)."""
    file = run / SUMMARY
    try:
        summary = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise VsentError(f"{file}: unreadable ({e})") from None
    centre = summary.get("center", summary) if isinstance(summary, dict) else None
    acc = centre.get("accuracy") if isinstance(centre, dict) else None
    if not (isinstance(acc, dict) and all(
            isinstance(acc.get(k), int | float) and not isinstance(acc.get(k), bool)
            for k in ("mean", "std"))):
        raise VsentError(f"{file}: not a run summary (no accuracy mean and std)")
    return acc


def ensemble_runs(runs: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Mean P(positive) of the crossval runs ``runs`` (at least two), image by image.

    Returns
    -------
    dict with ``config`` (what ``config.json`` of the ensemble holds: the first member's data,
    subset, folds, seed and skip_bad, the member runs, ``seeds``: each member's seed, and
    ``members``: each one's run, command, model, preset, seed and the column read),
    ``rows`` (one per test image, in the
    first member's order: name, path, fold, label, prob_positive, pred[, prob_positive_10crop,
    pred_10crop]), ``summary`` (as a crossval ``summary.json``: centre crop first, ``center``,
    ``ten_crop`` when every member has 10-crop columns, ``n_images`` and ``members``: each
    run's own accuracy).

    Raises
    ------
    VsentError
        Fewer than two runs, a run that is not a finished crossval run or whose summary.json is
        damaged, a crossval run held twice (named twice, or also inside a member ensemble), two
        members with the same probabilities (the same network), or members evaluated on other
        images, labels or folds (the first difference is named).
    """
    check_many(runs, "ensemble", "crossval run folders")
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
    accuracies = [_centre_accuracy(p) for p in paths]  # a damaged summary stops it here
    _check_each_run_once(paths, [cfg for cfg, _ in members])
    first_cfg, first_rows = members[0]
    for path, (cfg, rows) in zip(paths[1:], members[1:], strict=True):
        diff = config_diff({k: first_cfg.get(k) for k in SAME_DATA},
                           {k: cfg.get(k) for k in SAME_DATA})
        if diff:
            raise VsentError(f"{path}: evaluated on other data than {paths[0]} "
                             f"({'; '.join(diff)})")
        check_same_test_images(paths[0], _test_images(first_rows), path, _test_images(rows))
        if not same_file(cfg.get("data", ""), first_cfg.get("data", "")):  # e.g. a copy
            log.info("%s read its images from %s, %s from %s: the same test images, labels and "
                     "folds", path, cfg.get("data"), paths[0], first_cfg.get("data"))
    views = [COLUMN]
    if all("prob_positive_10crop" in rows[0] for _, rows in members):
        views.append("prob_positive_10crop")
    names = [r["name"] for r in first_rows]
    lookups = [{r["name"]: r for r in rows} for _, rows in members]
    # members x images, per view, in the first member's order
    probs = {view: np.array([[m[n][view] for n in names] for m in lookups], np.float64)
             for view in views}
    _check_other_networks(paths, np.hstack([probs[view] for view in views]))
    means = {view: ensemble_mean(list(probs[view])) for view in views}

    out_rows = []
    for i, r in enumerate(first_rows):
        row: dict[str, Any] = {k: r[k] for k in ("name", "path", "fold", "label") if k in r}
        for view in views:
            p = float(means[view][i])
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
    summary["members"] = [{"run": str(p), "accuracy": acc}
                          for p, acc in zip(paths, accuracies, strict=True)]
    records = [_member_record(p, cfg) for p, (cfg, _) in zip(paths, members, strict=True)]
    config = {"command": "ensemble", "runs": [str(p.resolve()) for p in paths],
              **{k: first_cfg[k] for k in ("data", *SAME_DATA, "folds", "seed")
                 if k in first_cfg},
              # "seed" is the first member's (fuse rebuilds the folds with it); each one's:
              "seeds": [m["seed"] for m in records], "members": records}
    return {"config": config, "rows": out_rows, "summary": summary}


def ensemble(runs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
             overwrite: bool = False) -> dict[str, Any]:
    """:func:`ensemble_runs` of ``runs``, written to the run directory ``out``; its summary.

    The members' stored predictions are averaged: their images are not read. There is no
    resume: an unfinished ensemble (interrupted) is simply written again, and a finished one
    is read back (its members' predictions unchanged since: ``inputs.json``); ``overwrite``
    starts again. The members' seeds and descriptions are not compared with a stored
    ensemble's (older ensembles lack them), only :data:`DEFINING_KEYS`.
    """
    check_many(runs, "ensemble", "crossval run folders")  # (before a string is read as runs)
    runs = _stored_order(runs, out)
    res = ensemble_runs(runs)
    summary, rows = res["summary"], res["rows"]
    with open_run_dir(out, res["config"], resume=True, overwrite=overwrite, done=SUMMARY,
                      check_paths=False, resume_asked=False, compare=DEFINING_KEYS) as run:
        record_or_check_inputs(run, [Path(r) / "predictions.csv" for r in runs])
        if run.status != "finished":
            copy_folds(runs[0], run.path)
            run.write_csv("predictions.csv", rows, list(rows[0]))
            members = "\n".join(
                f"| `{m['run']}` | {mean_std_text(m['accuracy'], len(summary['folds']))} "
                f"| {r['scores']} |"
                for m, r in zip(summary["members"], res["config"]["members"], strict=True))
            run.write_text("summary.md", summary_markdown(
                summary, f"Ensemble (mean P(positive)) of {len(runs)} runs, centre crop")
                + "\n| member run | its own accuracy (centre crop) | column averaged |\n"
                "|---|---|---|\n" + members + "\n")
            run.write_json(SUMMARY, summary)  # written last: marks the ensemble done
            # (run.log was left empty: the console's line is the CLI's, said of the summary)
            run.log_only(f"ensemble of {len(runs)} runs ({', '.join(map(str, runs))}): "
                         f"accuracy {mean_std_text(summary['accuracy'], len(summary['folds']))}"
                         " (centre crop)")
        return run.read_json(SUMMARY)


def _stored_order(runs: Sequence[str | os.PathLike], out: str | os.PathLike) -> list:
    """``runs`` in the order ``out``'s ensemble lists them, when they are its runs in another
    order: the mean is the same, and the stored ensemble is that one (it was refused as made
    with other runs and another seed, the first member's, which the user never gave)."""
    try:
        stored = read_config(out).get("runs")
        where = {str(Path(r).resolve()): r for r in runs}
        if len(stored) == len(where) == len(runs) and set(stored) == set(where):
            return [where[r] for r in stored]
    except (VsentError, TypeError):
        pass  # (no ensemble there, or one open_run_dir says is damaged)
    return list(runs)


def copy_folds(first_run: str | os.PathLike, out: str | os.PathLike) -> None:
    """Copy the first member's ``folds.json`` (the folds ``vsent fuse`` rebuilds) and
    ``data.json`` (the data it was trained on, which ``vsent fuse`` checks) into ``out``."""
    for name in (FOLDS, DATA_RECORD):
        src = Path(first_run) / name
        if src.is_file():
            shutil.copyfile(src, Path(out) / name)
