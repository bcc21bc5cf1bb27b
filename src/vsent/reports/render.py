"""Rendering of a reproduction report: rows, tables, cells, Markdown and the figure helper.

A report (``report.json``) is a dict with ``title``, ``header``, ``tables``, ``figures``,
``notes``, ``weights``, ``weights_failures`` and ``steps``. A table is a dict::

    {"id", "title", "columns", "rows", "unit": "fraction"|"percent", "note",
     "wide": None | {"by": i, "values": [...], "labels": [...]}}

and a row (one measured number beside one published number)::

    {"cells": [...], "paper": None | {"mean", "std", "source", "k"},
     "ours": None | {"mean", "std"}, "one_class_folds": None | [k, n] | "unknown",
     "missing": None | "not run" | "not recorded", "weights": str,
     "run_dir": str | None, "file": str, "key": [...]}

``paper`` None: the paper has no such row; ``run_dir`` None: the paper's row is not reproduced
by vsent (no measured number exists); ``ours`` None with a ``run_dir``: ``missing`` says why,
its sub-run did not run (no file) or its file lacks the value (a report without ``missing``,
written by an older vsent, reads "not run").
A ``wide`` table is printed with one pair of paper / ours columns per value of ``cells[by]``
(e.g. the three Twitter I subsets), one line per remaining cells.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vsent import figures, papers
from vsent.errors import VsentError

#: Label of every row measured with randomly initialised networks.
RANDOM_LABEL = "random init, not comparable to the paper"
#: Shown for a published cell whose value is not available.
NOT_AVAILABLE = papers.NOT_AVAILABLE_TEXT
#: Shown for a row the paper does not have.
NOT_IN_PAPER = f"n/a ({papers.NOT_IN_PAPER_TEXT})"
#: Shown for a measured cell whose sub-run did not run.
NOT_RUN = "not run"
#: Shown for a measured cell whose sub-run wrote its file, but without the value.
NOT_RECORDED = "not recorded"
#: Shown for a row of the paper that vsent does not reproduce.
NOT_REPRODUCED = "not reproduced"
#: A row's ``one_class_folds`` when its file cannot say (a K sweep of an older vsent).
ONE_CLASS_UNKNOWN = "unknown"


# --------------------------------------------------------------------------------------------
# rows and tables


def read_json(path: Path, default: Any = None, remedy: str = "") -> Any:
    """A sub-run's JSON file, or ``default`` when it has not been written (yet).

    A file that cannot be read or parsed, or (when ``default`` is a dict or list) holds
    another JSON type, is a :class:`VsentError` naming it, ending with ``remedy`` when given
    (what to do about it).
    """
    path = Path(path)
    if not path.exists():
        return default
    tail = f"; {remedy}" if remedy else ""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VsentError(f"{path}: unreadable ({e}){tail}") from None
    if isinstance(default, dict | list) and not isinstance(value, type(default)):
        raise VsentError(f"{path}: unreadable (a JSON {type(value).__name__}, expected "
                         f"{'an object' if isinstance(default, dict) else 'a list'}){tail}")
    return value


def lookup(run_dir: Path, file: str, key: Sequence[str | int]) -> dict[str, float] | None:
    """``{"mean", "std"}`` at ``key`` in ``run_dir/file`` (JSON), or None if not there.

    A string key walks into a mapping. An integer key ``i`` picks element ``i`` of a node whose
    ``mean`` and ``std`` are lists (e.g. ``k_sweep.json``: ``["ar", 0]`` is K = 1).

    Raises
    ------
    VsentError
        Naming the file: unreadable, not a JSON object, or holding something else than a mean
        and std at ``key`` (a damaged file is not "not recorded").
    """
    return _read_value(Path(run_dir) / file, key)[1]


def _read_value(path: Path, key: Sequence[str | int]) -> tuple[Any, dict[str, float] | None]:
    """(the parsed file, None when it is not written; the value at ``key`` as :func:`lookup`)."""
    # (not written: None, "not run"; another JSON type: read_json's one line)
    node = read_json(path, {}) if Path(path).exists() else None
    value = value_at(node, key)
    if value is None and node is not None:
        _refuse_damage(path, node, key)
    return node, value


def _refuse_damage(path: Path, node: Any, key: Sequence[str | int]) -> None:
    """VsentError naming ``path`` when ``node`` holds something at ``key`` that is no mean and
    std (:func:`value_at` found none): an absent key, or a K beyond a sweep's, is "not
    recorded"; anything else there is a damaged file."""
    held = node
    for i, k in enumerate(key):
        where = ".".join(str(part) for part in key[:i])
        if not isinstance(held, Mapping):  # damaged above the value's own key
            raise VsentError(f"{path}: {where} is not an object (it holds "
                             f"{json.dumps(held)[:60]})")
        if isinstance(k, int):  # element k of a sweep's lists (value_at's reading)
            means = held.get("mean")
            if not isinstance(means, list):
                raise VsentError(f"{path}: {where}.mean is not a list of means (it holds "
                                 f"{json.dumps(means)[:60]})")
            if not -len(means) <= k < len(means):
                return  # K beyond the sweep: not recorded
            held = {"mean": means[k]}
            continue
        held = held.get(k)
        if held is None:  # absent: not recorded
            return
    where = ".".join(str(part) for part in key)
    raise VsentError(f"{path}: {where} is not a mean and std (it holds {json.dumps(held)[:60]})")


def value_at(node: Any, key: Sequence[str | int]) -> dict[str, float] | None:
    """``{"mean", "std"}`` at ``key`` in the parsed JSON ``node`` (see :func:`lookup`)."""
    if node is None:
        return None
    for k in key:
        if isinstance(k, int):
            if not (isinstance(node, Mapping) and isinstance(node.get("mean"), list)
                    and -len(node["mean"]) <= k < len(node["mean"])):
                return None
            std = node.get("std")
            node = {"mean": node["mean"][k],
                    "std": std[k] if isinstance(std, list) else 0.0}
            continue
        if not isinstance(node, Mapping) or k not in node:
            return None
        node = node[k]
    if not isinstance(node, Mapping) or not isinstance(node.get("mean"), int | float):
        return None
    return {"mean": float(node["mean"]), "std": float(node.get("std", 0.0))}


def one_class_folds(run_dir: Path, file: str,
                    key: Sequence[str | int]) -> list[int] | str | None:
    """``[k, n]``: k of the n folds behind the value at ``key`` predicted a single class (their
    confusion matrices have an empty column: a model that learnt nothing but the prior), or
    None when that value has no per-fold confusion matrices. A K-sweep value (an integer last
    key) reads the sweep's per-fold ``one_class`` flags; a sweep written without them (by an
    older vsent) gives :data:`ONE_CLASS_UNKNOWN`."""
    return one_class_at(read_json(Path(run_dir) / file), key)


def one_class_at(node: Any, key: Sequence[str | int]) -> list[int] | str | None:
    """:func:`one_class_folds` of the parsed JSON ``node``."""
    for k in list(key)[:-1]:
        if not isinstance(node, Mapping) or not isinstance(k, str):
            return None
        node = node.get(k)
    if key and isinstance(key[-1], int):  # K sweep: per fold, one flag per K
        if not (isinstance(node, Mapping) and isinstance(node.get("mean"), list)):
            return None  # no sweep there
        i, flags = key[-1], node.get("one_class")
        if not isinstance(flags, list) or not flags or \
                not all(isinstance(f, list) and -len(f) <= i < len(f) for f in flags):
            return ONE_CLASS_UNKNOWN
        return [sum(1 for f in flags if f[i]), len(flags)]
    folds = node.get("folds") if isinstance(node, Mapping) else None
    if not isinstance(folds, list) or not folds or \
            not all(isinstance(f, Mapping) and "confusion" in f for f in folds):
        return None
    one = sum(1 for f in folds
              if 0 in (f["confusion"][0][0] + f["confusion"][1][0],
                       f["confusion"][0][1] + f["confusion"][1][1]))
    return [one, len(folds)]


def published_dict(published: papers.Published | None) -> dict[str, Any] | None:
    """A published value as the report stores it (None: the paper has no such row)."""
    if published is None:
        return None
    return {"mean": published.mean, "std": published.std, "source": published.source,
            "k": published.k, "digits": published.digits, "std_digits": published.std_digits}


def make_row(cells: Sequence[str], published: papers.Published | None, *, out: Path,
             run_dir: Path | None, file: str = "", key: Sequence[str | int] = (),
             weights: str = "", planned: bool = True) -> dict[str, Any]:
    """One row: the published value and ours, read from ``run_dir/file`` at ``key``.

    ``run_dir`` None: the paper's row is not reproduced here (ours is :data:`NOT_REPRODUCED`).
    ``planned`` False: the plan does not run ``run_dir`` (ours is :data:`NOT_RUN`, whatever
    a folder of that name holds); no ``file`` there: :data:`NOT_RUN`; a ``file`` without the
    value: :data:`NOT_RECORDED`; a damaged one: a :class:`VsentError` naming it (as
    :func:`lookup`). The run directory is named relative to ``out`` when inside it.
    """
    # read once: the value and its one-class flag come from the same file
    node, ours = (None, None) if run_dir is None or not planned else \
        _read_value(Path(run_dir) / file, key)
    missing = None
    if run_dir is not None and ours is None:
        missing = NOT_RUN if node is None else NOT_RECORDED
    return {
        "cells": list(cells),
        "paper": published_dict(published),
        "ours": ours,
        "one_class_folds": None if ours is None else one_class_at(node, key),
        "missing": missing,
        "weights": weights,
        "run_dir": None if run_dir is None else relative(out, run_dir),
        "file": file,
        "key": list(key),
    }


def relative(out: Path, path: Path) -> str:
    """``path`` relative to ``out`` when inside it, else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path(out).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def make_table(table_id: str, title: str, columns: Sequence[str], rows: list[dict], *,
               unit: str = "fraction", note: str = "",
               wide: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A report table (see the module docstring); ``unit`` "percent" prints values x 100."""
    return {"id": table_id, "title": title, "columns": list(columns), "rows": rows,
            "unit": unit, "note": note, "wide": None if wide is None else dict(wide)}


# --------------------------------------------------------------------------------------------
# cells


def fmt(value: Mapping[str, Any] | None, unit: str = "fraction", *,
        exact: bool = False) -> str:
    """``0.612 +- 0.046`` (fraction) or ``61.23 +- 4.56 %`` (percent); "" for None.

    ``exact``: a published value as printed: with the decimals the paper printed
    (``digits`` / ``std_digits`` of :class:`vsent.papers.Published`, counted on the fraction:
    Campos's 0.82 stays 0.82, Sun et al.'s 77.30 % is 0.7730 as a fraction); a value without
    them (a report of an older vsent) gets more digits where the number has them.
    """
    if value is None or value.get("mean") is None:
        return ""
    scale, suffix, digits = (100.0, " %", 2) if unit == "percent" else (1.0, "", 3)

    def num(x: float, printed: int | None) -> str:
        x *= scale
        if exact and printed is not None:  # the fraction's decimals, less those of x 100
            return f"{x:.{max(printed - (2 if unit == 'percent' else 0), 0)}f}"
        if exact:
            return next(f"{x:.{d}f}" for d in range(digits, 7)
                        if abs(round(x, d) - x) < 1e-9 or d == 6)
        return f"{x:.{digits}f}"

    text = num(value["mean"], value.get("digits"))
    if value.get("std") is not None:
        text += f" +- {num(value['std'], value.get('std_digits'))}"
    return text + suffix


def paper_cell(row: Mapping[str, Any], unit: str = "fraction") -> str:
    """The ``paper`` cell of a row: the published value (with its best K), or why none."""
    if row["paper"] is None:
        return NOT_IN_PAPER
    if row["paper"]["mean"] is None:
        return NOT_AVAILABLE
    text = fmt(row["paper"], unit, exact=True)
    if row["paper"].get("k") is not None:
        text += f" (K = {row['paper']['k']})"
    return text


def ours_cell(row: Mapping[str, Any], unit: str = "fraction") -> str:
    """The ``ours (mean +- std)`` cell: the measured value, ``not run``, ``not recorded`` or
    ``not reproduced``."""
    if row.get("run_dir", "") is None:
        return NOT_REPRODUCED
    if row["ours"] is None:
        return row.get("missing") or NOT_RUN
    one = row.get("one_class_folds")
    if one == ONE_CLASS_UNKNOWN:
        return fmt(row["ours"], unit) + " (one-class check not available)"
    return fmt(row["ours"], unit) + (f" (one class in {one[0]} of {one[1]} folds)"
                                     if one and one[0] else "")


def weights_label(w: Mapping[str, Any]) -> str:
    """How a row's networks were initialised, for the report's ``weights`` column."""
    used = w.get("used")
    if used == "random":
        return RANDOM_LABEL
    if used == "imagenet":
        return f"ImageNet ({w.get('model')})"
    if used is None:
        return "n/a"
    return f"`{used}`"


# --------------------------------------------------------------------------------------------
# Markdown


def cpu_label(record: Mapping[str, Any]) -> str:
    """``"AMD EPYC (AVX2)"`` from a record with ``cpu`` and ``cpu_capability`` (a report's
    machine, a sub-run's versions.json); empty when it has neither."""
    cpu, capability = record.get("cpu"), record.get("cpu_capability")
    if not cpu and not capability:
        return ""
    return f"{cpu or 'CPU'}{f' ({capability})' if capability else ''}"


def _cpu_text(machine: Mapping[str, Any]) -> str:
    """``"AMD EPYC (AVX2), "`` from a report's machine record; empty for older reports."""
    label = cpu_label(machine)
    return f"{label}, " if label else ""


def _mode_text(h: Mapping[str, Any]) -> str:
    run = h.get("analysed_run")
    if run:
        return (f"analysis of the existing run `{run['path']}`, whatever its recipe: "
                f"{run['recipe']}")
    return "quick (CPU-sized)" if h["quick"] else "full (the paper recipe)"


def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_markdown(t: Mapping[str, Any]) -> list[str]:
    """Lines of one table: a heading, its note, then the Markdown table."""
    unit = t["unit"]
    lines = [f"## {t['title']}", ""]
    if t.get("note"):
        lines += [t["note"], ""]
    wide = t.get("wide")
    if not wide:
        cols = [*t["columns"], "paper", "ours (mean +- std)", "weights", "run dir"]
        lines += [_md_line(cols), "|" + "---|" * len(cols)]
        for r in t["rows"]:
            run = "" if r["run_dir"] is None else f"`{r['run_dir']}`"
            lines.append(_md_line([*r["cells"], paper_cell(r, unit), ours_cell(r, unit),
                                   r["weights"], run]))
        lines.append("")
        return lines
    by, values = wide["by"], list(wide["values"])
    labels = list(wide.get("labels") or values)
    cols = [c for i, c in enumerate(t["columns"]) if i != by]
    for label in labels:
        cols += [f"{label}: paper", f"{label}: ours"]
    cols += ["weights", "run dirs"]
    lines += [_md_line(cols), "|" + "---|" * len(cols)]
    groups: dict[tuple[str, ...], dict[str, dict]] = {}
    for r in t["rows"]:
        head = tuple(c for i, c in enumerate(r["cells"]) if i != by)
        groups.setdefault(head, {})[r["cells"][by]] = r
    for head, by_value in groups.items():
        cells = list(head)
        for v in values:
            r = by_value.get(v)
            cells += ["", ""] if r is None else [paper_cell(r, unit), ours_cell(r, unit)]
        measured = [r for r in by_value.values() if r["run_dir"] is not None]
        weights = "; ".join(dict.fromkeys(r["weights"] for r in measured if r["weights"]))
        runs = ", ".join(dict.fromkeys(f"`{r['run_dir']}`" for r in measured))
        cells += [weights, runs]
        lines.append(_md_line(cells))
    lines.append("")
    return lines


def report_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: header, weights warning, one table per paper table, figures, notes."""
    h = report["header"]
    lines = [f"# Reproduction: {report['title']}", ""]
    failures = report.get("weights_failures") or []
    if failures:
        lines += ["> **Pretrained weights were not available: the networks below were trained "
                  f"from random weights, and their rows are labelled \"{RANDOM_LABEL}\".**",
                  ">"]
        lines += [f"> Reason: `{r}`" for r in failures]
        lines.append("")
    if h["quick"]:
        lines += ["> **Quick mode**: a CPU-sized version of the paper's experiments (see "
                  "Notes for exactly what was reduced); the numbers are not the paper's "
                  "recipe.", ""]
    m, v = h["machine"], h["versions"]
    groups: dict[str, list[str]] = {}  # weights label -> sub-runs
    for name, w in report["weights"].items():
        label = weights_label(w)
        if w.get("requested") and w.get("requested") != w.get("used"):
            label += f" (asked for {w['requested']})"
        groups.setdefault(label, []).append(f"`{name}`")
    weights = [f"{label}: {', '.join(names)}" for label, names in groups.items()]
    lines += [
        f"- command: `{h['command']}`",
        f"- date: {h['date']}; time spent: {h['seconds_this_session'] / 60:.1f} min this "
        f"session, {h['seconds_all_sessions'] / 60:.1f} min in all sub-runs",
        f"- machine: {m['platform']}, {_cpu_text(m)}{m['cpus']} CPUs, "
        f"{m['torch_threads']} torch threads, "
        f"CUDA: {m['cuda'] or 'none'}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- mode: {_mode_text(h)}",
        f"- data: `{h['data']}` (subset {h['subset'] or 'see tables'}, folds "
        f"{h['folds'] or 'of the run'})",
        "- weights: " + ("; ".join(weights) if weights else "n/a"),
        "",
        "Each measured cell is the mean +- std over folds read from the `run dir` (relative "
        "to this report's folder) and its file and key listed in `report.json`; each "
        "published cell names its paper and table in `report.json` (`paper.source`). The std "
        "is the population std over the folds (ddof = 0; the papers do not say which they "
        "used). "
        "'(one class in k of n folds)': k fold models answered one class for every test image "
        "(they learnt the prior only). "
        f"`{NOT_AVAILABLE}`: the paper has the cell but its value is not available here; "
        f"`{NOT_IN_PAPER}`: the paper has no such row; `{NOT_REPRODUCED}`: a row of the paper "
        "that vsent does not reproduce.",
        "",
    ]
    for t in report["tables"]:
        lines += table_markdown(t)
    if report.get("figures"):
        lines += ["## Figures", ""]
        lines += [f"![{f}]({f})" for f in report["figures"]]
        lines.append("")
    lines += ["## Notes and deviations from the paper", ""]
    lines += [f"- {n}" for n in report["notes"]]
    lines += ["", "## Sub-runs", "",
              "Each sub-run's own commit and CPU (from its `versions.json`); the header's are "
              "those of the session that wrote this report.", "",
              "| sub-run | status | seconds | commit | CPU |", "|---|---|---:|---|---|"]
    for name, e in report["steps"].items():
        commit = (e.get("git_commit") or "")[:7]
        lines.append(f"| `{name}` | {e['status']} | {e['seconds']:.0f} | {commit} | "
                     f"{e.get('cpu') or ''} |")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# figures


def save_report_figure(fig: Any, out: Path, name: str) -> str:
    """Save ``fig`` as ``out/name`` (:func:`vsent.figures.save_figure`: atomically, as
    report.json and report.md), close it, return ``name`` for the report."""
    figures.save_figure(fig, Path(out) / name)
    return name
