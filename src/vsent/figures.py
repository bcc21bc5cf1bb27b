"""Figures: matplotlib set up once, written atomically; the figures of crossval and finetune.

The figures of runs and reports go through :func:`save_figure` (written beside, then renamed:
an interrupted run never leaves half a PNG) on the Agg backend (:func:`pyplot`: no display
needed, and matplotlib is imported only when a figure is drawn).

:func:`crossval_figure` draws what a user looks at first after training: the training loss
and training accuracy per epoch of each fold (from ``fold<k>/history.json``) and each fold's
ROC curve on its test images (from the run's per-image probabilities), with its AUC;
:func:`training_figure` the two training curves of one training (``vsent finetune``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsent.files import atomic_open
from vsent.runs import writing


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported here: plotting is the slow import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110,
                rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay out ``fig`` (``tight_layout``, within ``rect`` when given: room kept for a figure
    text), write it to ``path`` (format from the suffix, PNG when none) atomically, close it;
    returns ``path``."""
    path = Path(path)
    fig.tight_layout(rect=rect)
    try:  # an OSError (full disk, a folder by that name) is one line naming the file
        with writing(path), atomic_open(path, "wb") as f:
            fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        pyplot().close(fig)
    return path


def crossval_figure(histories: Mapping[int, Sequence[Mapping[str, Any]]],
                    rows: Sequence[Mapping[str, Any]], path: str | Path, *,
                    ten_crop: bool = False, title: str = "") -> Path:
    """Training curves and test ROC curves of a k-fold run, one line per fold (PNG).

    Parameters
    ----------
    histories : fold index -> that fold's training history, one dict per epoch with ``loss``
        and ``train_accuracy`` (``train.fit``'s records; the epochs of staged training,
        ``--extra-train``, one after the other, a dotted line where a stage starts). A fold
        without training (zero-shot) has an empty history.
    rows : one dict per test image with ``fold``, ``label`` (0/1) and ``prob_positive``
        (``prob_positive_10crop`` when ``ten_crop``): strings, as read from
        ``predictions.csv``, or numbers.
    path : the PNG to write.
    ten_crop : the ROC curves of the 10-crop probabilities instead of the centre crop's.
    title : the figure's title (the run's model and data).

    Returns ``path``.
    """
    plt = pyplot()
    fig, (ax_loss, ax_acc, ax_roc) = plt.subplots(1, 3, figsize=(13, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def colour(fold: int) -> str:  # one colour per fold in every panel
        return colours[(fold - 1) % len(colours)]

    _plot_training(ax_loss, ax_acc, histories, colour)
    _plot_roc(ax_roc, rows, "prob_positive_10crop" if ten_crop else "prob_positive", colour)
    ax_roc.set_title(f"test images, {'10-crop' if ten_crop else 'centre crop'}")
    return _finish(fig, (ax_loss, ax_acc, ax_roc), path, title)


def training_figure(history: Sequence[Mapping[str, Any]], path: str | Path, *,
                    title: str = "") -> Path:
    """The training loss and training accuracy per epoch of one training (``vsent finetune``;
    ``history`` as in :func:`crossval_figure`), as a PNG; returns ``path``."""
    fig, (ax_loss, ax_acc) = pyplot().subplots(1, 2, figsize=(9, 4))
    _plot_training(ax_loss, ax_acc, {1: history}, lambda fold: "tab:blue", label=None)
    return _finish(fig, (ax_loss, ax_acc), path, title)


def _plot_training(ax_loss: Any, ax_acc: Any,
                   histories: Mapping[int, Sequence[Mapping[str, Any]]],
                   colour: Callable[[int], str], label: str | None = "fold {}") -> None:
    """Loss and training accuracy per epoch, a line per history (``label`` with its fold;
    None: no legend entry), a dotted line where a stage of staged training starts."""
    for fold, history in sorted(histories.items()):
        epochs = np.arange(1, len(history) + 1)
        for ax, key in ((ax_loss, "loss"), (ax_acc, "train_accuracy")):
            ax.plot(epochs, [h.get(key, np.nan) for h in history], color=colour(fold),
                    label=None if label is None else label.format(fold))
        for e in _stage_starts(history):
            for ax in (ax_loss, ax_acc):
                ax.axvline(e - 0.5, color=colour(fold), linestyle=":", linewidth=0.8)
    if histories and not any(histories.values()):  # (none read: nothing to say)
        for ax in (ax_loss, ax_acc):
            ax.text(0.5, 0.5, "no training", ha="center", va="center", transform=ax.transAxes)
    from matplotlib.ticker import MaxNLocator

    for ax, name in ((ax_loss, "training loss"), (ax_acc, "training accuracy")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # no 1.5
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)


def _plot_roc(ax: Any, rows: Sequence[Mapping[str, Any]], column: str,
              colour: Callable[[int], str]) -> None:
    """Each fold's ROC curve of ``column`` against ``label``, its AUC in the legend; a fold
    whose test images are of one class has none (no false or no true positive rate), and
    rows whose probability is not a finite number are left out."""
    from sklearn.metrics import roc_auc_score, roc_curve

    by_fold: dict[int, list[tuple[int, float]]] = {}
    for r in rows:
        p = float(r[column])
        if math.isfinite(p):  # (a diverged fold's NaN scores: no curve, not a failed run)
            by_fold.setdefault(int(r["fold"]), []).append((int(r["label"]), p))
    for fold in sorted(by_fold):
        y, p = map(np.asarray, zip(*by_fold[fold], strict=True))
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color=colour(fold), label=f"fold {fold} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)


def _finish(fig: Any, axes: Sequence[Any], path: str | Path, title: str) -> Path:
    """Legends where there are labelled lines, the title, then :func:`save_figure`."""
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _stage_starts(history: Sequence[Mapping[str, Any]]) -> list[int]:
    """The epochs (1-based) at which a new ``stage`` of a staged history begins."""
    return [i + 1 for i in range(1, len(history))
            if history[i].get("stage") != history[i - 1].get("stage")]
