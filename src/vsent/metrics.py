"""Classification metrics and fold summaries shared by every evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from vsent.config import SCALAR_METRICS
from vsent.runs import RunDir

#: Scalar metrics summarised over folds (mean and std); defined in vsent.config, where the
#: model card (which does not import scikit-learn) takes them too.
SCALARS = SCALAR_METRICS


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, and precision/recall/F1 of the positive class (label 1).

    Parameters
    ----------
    y_true, y_pred : array of shape (n,), values in {0, 1} (``y_pred`` may hold other class
        indices, e.g. from a 4096-way raw ablation; those count as wrong and as not positive).

    Returns
    -------
    dict with ``accuracy``, ``precision``, ``recall``, ``f1``, ``n`` and ``confusion``
    ``[[tn, fp], [fn, tp]]`` (rows: true label 0/1, columns: predicted 0/1). Predictions of
    another class are not in ``confusion``: ``other`` ``[n_true0, n_true1]`` counts them, a key
    present only when there are some, so that ``tn + tp = accuracy * n`` always holds.
    """
    y_true = _class_indices(y_true, "y_true")
    y_pred = _class_indices(y_pred, "y_pred")
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError(f"y_true and y_pred must be of one length n >= 1, got {len(y_true)} "
                         f"and {len(y_pred)}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"y_true must hold labels 0 and 1, got {sorted(set(y_true.tolist()))}")
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred == 1, labels=[1], average=None, zero_division=0
    )
    binary = np.isin(y_pred, (0, 1))
    # scikit-learn refuses empty input: a fold predicted all "other" has an empty matrix
    cm = confusion_matrix(y_true[binary], y_pred[binary], labels=[0, 1]) if binary.any() \
        else np.zeros((2, 2), np.int64)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(p[0]),
        "recall": float(r[0]),
        "f1": float(f[0]),
        "n": int(len(y_true)),
        "confusion": cm.tolist(),
    }
    if not binary.all():
        out["other"] = [int(np.sum(~binary & (y_true == c))) for c in (0, 1)]
    return out


def _class_indices(values: Any, name: str) -> np.ndarray:
    """``values`` as int class indices (n,), or ValueError naming ``name``: probabilities, NaN
    or negative values were cast to whatever int they truncate to, and scored."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be of shape (n,), got {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold class indices (integers >= 0), got {a.dtype} "
                         f"values such as {a[:3].tolist()}")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(a) & (a == np.round(a)) & (a >= 0)
    if not ok.all():  # the wrong values named, not the smallest ones
        raise ValueError(f"{name} must hold class indices (integers >= 0), got values such "
                         f"as {a[~ok][:3].tolist()}")
    return a.astype(int)


def summarize_folds(folds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and (population) std over folds of each scalar metric, plus every fold's record.

    ``folds`` are dicts with a ``fold`` key and the keys of :func:`binary_metrics`.
    Returns ``{"accuracy": {"mean": m, "std": s}, ..., "folds": [...]}``.
    """
    summary: dict[str, Any] = {}
    for key in SCALARS:
        values = [f[key] for f in folds if key in f]
        if values:
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    summary["folds"] = [dict(f) for f in folds]
    return summary


def mean_std_text(s: Mapping[str, float], n_folds: int, digits: int = 3,
                  scale: float = 1.0) -> str:
    """``"m +- s"`` of a ``{"mean", "std"}`` over ``n_folds`` folds (values times ``scale``);
    one fold has no spread to show: ``"m (1 fold)"``, not a std of 0 that reads as stable."""
    m = f"{scale * s['mean']:.{digits}f}"
    return f"{m} (1 fold)" if n_folds == 1 else f"{m} +- {scale * s['std']:.{digits}f}"


def summary_markdown(summary: Mapping[str, Any], title: str) -> str:
    """A Markdown table: one row per fold, then mean +- std (:func:`mean_std_text`); a metric
    that a fold record (or every record) lacks is shown as "-" in its own column."""
    lines = [f"# {title}", "", "| fold | " + " | ".join(SCALARS) + " | n |",
             "|---|" + "---|" * (len(SCALARS) + 1)]
    for f in summary["folds"]:
        cells = " | ".join(f"{f[k]:.3f}" if k in f else "-" for k in SCALARS)
        lines.append(f"| {f['fold']} | {cells} | {f.get('n', '')} |")
    # one fold: "m (1 fold)", as layers and baselines say it, not a std of 0
    cells = " | ".join(mean_std_text(summary[k], len(summary["folds"])) if k in summary
                       else "-" for k in SCALARS)
    lines.append(f"| **mean** | {cells} | |")
    return "\n".join(lines) + "\n"


def write_summary(
    run: RunDir, summary: Mapping[str, Any], title: str, stem: str = "summary",
    extra_md: str = "",
) -> None:
    """Write ``<stem>.md`` (with ``extra_md`` after the table) and then ``<stem>.json``: the
    JSON marks a run finished, so it comes last."""
    md = summary_markdown(summary, title)
    run.write_text(f"{stem}.md", md + ("\n" + extra_md if extra_md else ""))
    run.write_json(f"{stem}.json", summary)
