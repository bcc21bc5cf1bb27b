"""Paired comparison of two finished runs on the same test images (issue 10's levers).

Two configurations evaluated on the same Campos folds are scored on the same 880 images, so
their difference is better judged image by image than by the folds' mean +- std: the folds'
spread (+-0.03) is mostly the folds' own difficulty, which both runs share. :func:`compare_runs`
counts the images only one of the two gets right and gives the exact McNemar test of those
counts (a two-sided binomial test with p = 0.5), plus the per-fold differences.

A run is any directory with ``config.json`` and ``predictions.csv`` as ``vsent crossval``,
``vsent ensemble`` (``prob_positive``) and ``vsent fuse`` (``prob_fused``) write them; a
crossval run made with ``--fusion`` stands for its fused probability (:func:`scores_source`).
:func:`compare_runs`'s p-value is for one pair chosen in advance; :func:`compare_many` compares
several runs with one reference and also corrects their p-values as one family (Holm's method).
Both can leave images out, e.g. :func:`train_copies`: the test images whose copy is among their
fold's training images (the benchmark's own leak).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsent.errors import VsentError, check_many
from vsent.files import Parse, csv_rows
from vsent.runs import CONFIG, SUMMARY, check_same_test_images, read_config

#: Probability column of each run kind, centre crop and 10-crop.
COLUMNS = {"fuse": ("prob_fused", "prob_fused_10crop")}
DEFAULT_COLUMNS = ("prob_positive", "prob_positive_10crop")
#: The predicted class beside each probability column, where a run writes it: the argmax
#: over all its outputs, which its own accuracy counts (a 1000-way fc8-1000 run's negative
#: image whose argmax is another unit is wrong, though its P(positive) is below 0.5).
PREDICTED = {"prob_positive": "pred", "prob_positive_10crop": "pred_10crop"}
#: Columns of every predictions.csv row besides its probabilities (:func:`read_predictions`).
PREDICTION_KEYS = ("name", "fold", "label")
#: What a finished run holds: ``predictions.csv`` comes before the late fusion of a crossval
#: ``--fusion``, ``summary.json`` last (:func:`check_finished_run`).
FINISHED_RUN_FILES = (CONFIG, "predictions.csv", SUMMARY)


def check_finished_run(run: str | os.PathLike, kind: str = "run",
                       files: Sequence[str] = FINISHED_RUN_FILES) -> Path:
    """``run`` as a Path; VsentError ``{run}: not a finished {kind} (needs ...)`` unless it
    holds every file of ``files``. The one check of compare, ensemble and fuse (fuse_run,
    which crossval --fusion calls before its summary.json exists, asks for fewer files)."""
    run = Path(run)
    if not run.exists():  # (a typo: "not a finished run" would send the user looking in it)
        raise VsentError(f"{run}: no such file or directory")
    if not all((run / name).is_file() for name in files):
        needs = ", ".join(files[:-1]) + f" and {files[-1]}" if len(files) > 1 else files[0]
        raise VsentError(f"{run}: {_made_by(run)}not a finished {kind} (needs {needs})")
    return run


def _made_by(run: Path) -> str:
    """``"a `vsent regions` run, "`` when ``run`` is another command's run (a layers or
    regions run was only said to be "not a finished run"), else ""."""
    try:
        command = read_config(run).get("command")
    except VsentError:  # (none, or damaged: not another command's run that can be named)
        return ""
    if not isinstance(command, str) or command in ("crossval", "ensemble", "fuse"):
        return ""
    return f"a `vsent {command}` run, "


def scores_source(run: str | os.PathLike, ten_crop: bool = False) -> tuple[Path, str]:
    """(predictions file, probability column) that stand for a run's accuracy: a fuse run's
    fused probability, a crossval run's fused one when it was run with ``--fusion`` (its
    ``fusion/predictions.csv``: the recipe's result, e.g. ``--preset strong``'s; summary.json's
    top-level accuracy is the network's, the fused one is under ``fusion``), else the
    network's; a ``--fusion`` run without that file is no finished run (the network's
    probability would stand in for the run's result)."""
    run = check_finished_run(run)
    pred_file = run / "predictions.csv"
    cfg = read_config(run)
    command = cfg.get("command")
    fused = "fusion/predictions.csv"
    # the config says it: `vsent fuse RUN --out RUN/fusion` writes that file into any run
    if command == "crossval" and cfg.get("fusion"):
        # (crossval writes it before summary.json: deleted since)
        check_finished_run(run, "crossval --fusion run", (*FINISHED_RUN_FILES, fused))
        command, pred_file = "fuse", run / fused
    return pred_file, COLUMNS.get(command, DEFAULT_COLUMNS)[1 if ten_crop else 0]


def load_scores(run: str | os.PathLike, ten_crop: bool = False
                ) -> tuple[str, dict[str, tuple[int, int, float, int]]]:
    """(``"file:column"`` read, ``{image name: (fold, label, P(positive), predicted class)}``)
    of a finished run's test images, from :func:`scores_source`.

    The predicted class is the run's own (its :data:`PREDICTED` column, as its accuracy
    counts it) where the file has one, else P(positive) > 0.5 (a fusion, two-way by
    construction). ``ten_crop`` reads the 10-crop probability; a run without one is an error
    naming it.
    """
    pred_file, column = scores_source(run, ten_crop)
    predicted = PREDICTED.get(column, "")
    rows = read_predictions(pred_file, column, classes=(predicted,),
                            what="10-crop probabilities" if ten_crop else "probabilities")
    out = {name: (r["fold"], r["label"], r[column],
                  r[predicted] if predicted in r else int(r[column] > 0.5))
           for name, r in rows.items()}
    return f"{pred_file}:{column}", out


def provenance(runs: Sequence[str | os.PathLike], *, ten_crop: bool = False,
               argv: Sequence[str] | None = None) -> dict[str, Any]:
    """How a comparison was made, for its JSON record (as a run's ``versions.json`` and
    ``inputs.json`` say it of a run): ``versions`` (packages, git commit, machine), ``date``
    (UTC), ``argv`` (the command line, None from the API) and ``inputs``, ``{predictions file
    (absolute): SHA-256}`` of each file :func:`load_scores` reads for ``runs``: a run made
    again since no longer matches its record."""
    from datetime import UTC, datetime

    from vsent.files import file_sha256
    from vsent.provenance import versions

    files = dict.fromkeys(scores_source(run, ten_crop)[0].resolve() for run in runs)
    return {"versions": versions(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": None if argv is None else list(argv),
            "inputs": {str(f): file_sha256(f) for f in files}}


def read_predictions(pred_file: str | os.PathLike, column: str, *,
                     optional: Sequence[str] = (), classes: Sequence[str] = (),
                     what: str = "probabilities") -> dict[str, dict[str, Any]]:
    """The rows of a run's ``predictions.csv`` by image name, in the file's order, checked.

    The one reader of the files crossval, ensemble and fuse write (``vsent compare``, ``vsent
    fuse`` and ``vsent ensemble`` read them): each row's ``fold`` and ``label`` as int, the
    probability ``column`` and those of ``optional`` the file has (e.g. the 10-crop one) as
    float in [0, 1], the class columns of ``classes`` it has (``pred``) as int, the other
    fields (``name``, ``path``, ...) as read.

    Raises
    ------
    VsentError
        Naming the file (and line): an empty file, a missing column (``no {what} (column
        ...)`` for ``column``), a row cut short, with more fields than the header (two rows
        run together) or holding a non-number, a file with no rows or that is not text (a
        byte that is not UTF-8 outside a name: its line). A UTF-8 BOM is dropped.
    """
    from vsent.data.datasets import read_text

    pred_file = Path(pred_file)
    # whole, as the dataset CSVs: a BOM (a file resaved by a spreadsheet) is no part of the
    # first column's name; a name that is not UTF-8 is read as the writer wrote it (the bytes
    # of the file's name), and such a byte elsewhere fails its field
    text = read_text(pred_file, "CSV file", errors="surrogateescape")

    def columns(header: Sequence[str]) -> list[tuple[str, Parse]]:
        if not header:  # (not "no probabilities": nothing at all is there)
            raise VsentError(f"{pred_file}: empty file (no header line)")
        if column not in header:
            raise VsentError(f"{pred_file}: no {what} (column {column!r})")
        missing = [c for c in PREDICTION_KEYS if c not in header]
        if missing:
            raise VsentError(f"{pred_file}, line 1: no column {missing[0]!r} (a predictions "
                             f"file has {', '.join(PREDICTION_KEYS)} and probabilities)")
        return [(c, int) for c in PREDICTION_KEYS[1:]] + [
            (c, _probability) for c in (column, *optional) if c in header] + [
            (c, int) for c in classes if c in header]

    out: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for line, row in csv_rows(pred_file, text, columns):
        name = row["name"]
        if name in first_line:  # test sets are disjoint: a row twice is damage
            raise VsentError(f"{pred_file}, line {line}: {name} again (first on line "
                             f"{first_line[name]})")
        first_line[name] = line
        out[name] = row
    if not out:
        raise VsentError(f"{pred_file}: no rows")
    return out


def _probability(text: str) -> float:
    p = float(text)
    if not 0 <= p <= 1:  # NaN too: it would count as a negative prediction, silently
        raise ValueError(f"{text!r} is not a probability")
    return p


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value of the discordant counts (binomial, p = 0.5)."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the order given."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def check_each_run_once(runs: Sequence[str | os.PathLike]) -> None:
    """VsentError naming a run B given twice (by two spellings or a link): it would count
    twice in Holm's family, making its correction too strong."""
    seen: dict[Path, str | os.PathLike] = {}
    for run in runs:
        key = Path(run).resolve()
        if key in seen:
            raise VsentError(f"{run}: named twice (as {seen[key]} too); each run B is "
                             "compared once")
        seen[key] = run


def compare_many(reference: str | os.PathLike, runs: Sequence[str | os.PathLike], *,
                 ten_crop: bool = False, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
    """:func:`compare_runs` of each run against ``reference``, with ``p_holm``: the p-value
    corrected by Holm's method over these comparisons (one family)."""
    check_many(runs, "compare_many", "crossval run folders")
    check_each_run_once(runs)
    ref = load_scores(reference, ten_crop)  # read once for the whole family
    results = [_paired(reference, ref, run, load_scores(run, ten_crop), ten_crop, exclude)
               for run in runs]
    for res, p in zip(results, holm([r["p_value"] for r in results]), strict=True):
        res["p_holm"] = p
    return results


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, *,
                 ten_crop: bool = False, exclude: Collection[str] = ()) -> dict[str, Any]:
    """Run B against run A, image by image, on the same test images.

    Both runs must hold the same test images with the same folds and labels (else VsentError
    names the first difference). An image's prediction is the run's own (its ``pred``
    column: the argmax over all its outputs), or P(positive) > 0.5 for a fusion.
    Images named in ``exclude`` are left out of every count (e.g. the test images with a copy
    in their fold's training set, :func:`train_copies`); ``n_excluded`` says how many.

    Returns
    -------
    dict with ``a``, ``b`` (the paths), ``view`` (``centre`` or ``10-crop``), ``scores_a``,
    ``scores_b`` (``file:column`` read, :func:`load_scores`), ``n`` (images),
    ``accuracy_a``, ``accuracy_b``, ``difference`` (B - A, over all images), ``a_only`` and
    ``b_only`` (images only A, only B gets right), ``p_value`` (exact McNemar),
    ``identical`` (B gives every image A's probability: a run with itself, or a copy), ``folds``
    (per fold: ``fold``, ``n``, ``accuracy_a``, ``accuracy_b``, ``difference``) and
    ``fold_difference`` (mean and population std over the folds, as the run summaries).
    """
    return _paired(run_a, load_scores(run_a, ten_crop), run_b, load_scores(run_b, ten_crop),
                   ten_crop, exclude)


def train_copies(run: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """The test images of a crossval run with a copy among their fold's training images,
    ``{test name: (training name, reason)}``
    (:func:`vsent.data.extra.train_copies_of_test_images` on the run's data and folds)."""
    from vsent.crossval_run import open_run
    from vsent.data.extra import train_copies_of_test_images

    opened = open_run(run)
    return train_copies_of_test_images(opened.dataset, opened.folds)


def _paired(run_a: str | os.PathLike, scores_a: tuple[str, dict], run_b: str | os.PathLike,
            scores_b: tuple[str, dict], ten_crop: bool,
            exclude: Collection[str] = ()) -> dict[str, Any]:
    """:func:`compare_runs` on scores already read by :func:`load_scores`."""
    (source_a, a), (source_b, b) = scores_a, scores_b
    check_same_test_images(run_a, {n: v[:2] for n, v in a.items()},
                           run_b, {n: v[:2] for n, v in b.items()})
    names = sorted(n for n in a if n not in exclude)
    if not names:
        raise VsentError(f"{run_a}: no test image left once {len(a)} are excluded")
    fold = np.array([a[n][0] for n in names])
    label = np.array([a[n][1] for n in names])
    right_a = np.array([a[n][3] for n in names]) == label  # (as each run's accuracy counts)
    right_b = np.array([b[n][3] for n in names]) == label
    a_only, b_only = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    folds = []
    for k in sorted(set(fold.tolist())):
        m = fold == k
        acc_a, acc_b = float(right_a[m].mean()), float(right_b[m].mean())
        folds.append({"fold": k, "n": int(m.sum()), "accuracy_a": acc_a, "accuracy_b": acc_b,
                      "difference": acc_b - acc_a})
    diffs = [f["difference"] for f in folds]
    return {
        "a": str(run_a), "b": str(run_b), "view": "10-crop" if ten_crop else "centre",
        "scores_a": source_a, "scores_b": source_b,
        "n": len(names), "n_excluded": len(a) - len(names), "accuracy_a": float(right_a.mean()),
        "accuracy_b": float(right_b.mean()),
        "difference": float(right_b.mean() - right_a.mean()),
        "a_only": a_only, "b_only": b_only, "p_value": mcnemar_exact(a_only, b_only),
        "identical": all(a[n][2] == b[n][2] for n in names),
        "folds": folds,
        "fold_difference": {"mean": float(np.mean(diffs)), "std": float(np.std(diffs))},
    }


def comparisons_table(results: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`compare_many`'s results, one row per compared run."""
    first = results[0]
    # the scores read, as the one-B form says them: a --fusion run is scored by its fused
    # probability, said for A and for every B; a B read from its own predictions.csv's usual
    # column needs no word
    lines = [f"reference A: {first['a']}: accuracy {first['accuracy_a']:.3f} ({first['view']}, "
             f"{first['n']} images{_left_out(first)}; {first['scores_a']})", "",
             "| run B | accuracy | B - A | right only in A | only in B | p (McNemar) | "
             "p (Holm) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['b']}{_read_from(r)} | {r['accuracy_b']:.3f} | {r['difference']:+.3f} | "
              f"{r['a_only']} | {r['b_only']} | {r['p_value']:.3g} | {r['p_holm']:.3g} |"
              for r in results]
    same = [r["b"] for r in results if r.get("identical")]
    if same:
        lines += ["", "note: these give every image A's probability (a run with itself, or a "
                  f"copy): {', '.join(same)}"]
    return "\n".join(lines)


def comparison_text(res: dict[str, Any]) -> str:
    """The lines ``vsent compare`` prints."""
    folds = " ".join(f"{f['difference']:+.3f}" for f in res["folds"])
    fd = res["fold_difference"]
    return "\n".join([
        f"A: {res['a']}: accuracy {res['accuracy_a']:.3f} ({res['view']}, {res['n']} "
        f"images{_left_out(res)}; {res['scores_a']})",
        f"B: {res['b']}: accuracy {res['accuracy_b']:.3f} ({res['scores_b']})",
        f"B - A: {res['difference']:+.3f}; right only in A: {res['a_only']} images, only in B: "
        f"{res['b_only']}; exact McNemar p = {res['p_value']:.3g}",
        f"per fold (B - A): {folds}; mean {fd['mean']:+.3f} +- {fd['std']:.3f}",
        *(["note: B gives every image A's probability (a run with itself, or a copy): the "
           "comparison says nothing"] if res.get("identical") else []),
    ])


def _read_from(res: dict[str, Any]) -> str:
    """`` (read: FILE:COLUMN)`` for a run B not scored by its predictions.csv's usual
    column (a fused probability), else ""."""
    usual = DEFAULT_COLUMNS[res["view"] == "10-crop"]
    if res["scores_b"] == f"{Path(res['b']) / 'predictions.csv'}:{usual}":
        return ""
    return f" (read: {res['scores_b']})"


def _left_out(res: dict[str, Any]) -> str:
    n = res.get("n_excluded", 0)
    return f", {n} left out" if n else ""
