"""Accuracy against training cost for every configuration of issue 10 (the README's plot).

Each point is a committed five-agree run (``results/quick``, ``results/accuracy/<id>``): its
centre-crop accuracy (mean +- std over the 5 Campos folds; for a fusion run, the fused one)
against an estimate of what it costs on 2 CPU cores, built from ``bench/results/train.json``
(measured side by side in one process) rather than from the runs' own wall times (many shared
the cores with other jobs; two trained on a GPU):

* a crossval run: the images it trained on, summed over its folds, stages and epochs (its
  ``fold<k>/history.json``: images/s x seconds per epoch), divided by the images/s of the
  bench recipe with the same network and recipe (:func:`bench_recipe`);
* an ensemble: the sum of its members;
* a late fusion (``vsent fuse``): the run it fuses plus the bench's ``fusion_minutes`` for its
  features (cold feature cache; the Hellinger map, the weak labels of X1 and the early rule of
  L4 are costed as the plain fusion of the same features), plus, with ``--weight inner`` (L5),
  its inner crossval runs (``inner/fold<k>``, costed as crossval runs).

Evaluation (seconds per fold) is left out. Writes ``bench/results/accuracy_cost.json`` (one row
per point, with the estimate's parts) and ``bench/results/accuracy_cost.png``.

Usage: ``uv run --all-extras python bench/plot_accuracy_cost.py [--bench
bench/results/train.json] [--results results] [--out bench/results/accuracy_cost]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS, RUN_RESULTS, one_line_errors, shown, write_report

from vsent.errors import VsentError, os_reason
from vsent.figures import pyplot, save_figure

#: run directory (under results/accuracy, or "quick" for results/quick) -> label in the plot,
#: the ids of issue 10's table (docs/accuracy.md). Left out: single seeds (s1-seed*, f-seed*: their
#: ensembles are here), other subsets (q0-four, l1-three, ...), L1 with the logit rule (reported
#: beside L1, not chosen), strong (= L1, same numbers), the hand-crafted-only K1 and V1, and R7
#: (resnet18 at 224 px, trained on the lent GPU only: bench_train.py has no CPU cost for it).
LABELS = {
    "quick": "Q0", "e1": "E1", "e1-four": "E1f", "e2": "E2", "e3": "E3", "r3": "R3",
    "s1": "S1", "w1": "W1", "m1": "M1", "r4": "R4", "r5": "R5", "r6": "R6", "ens": "ENS",
    "f-cnn": "F's CNN", "l1": "L1 = strong", "l2": "L2", "l3": "L3", "l4": "L4",
    "e1-l1": "E1+L1", "r3-l1": "R3+L1", "r3-l3": "R3+L3", "s1-l1": "S1+L1", "s1-l3": "S1+L3",
    "w1-l1": "W1+L1", "m1-l1": "M1+L1", "r4-l1": "R4+L1", "r5-l1": "R5+L1", "r6-l1": "R6+L1",
    "k1-l1": "K1+L1", "v1-l1": "V1+L1", "x1": "X1", "ens-l1": "ENS+L1", "f": "F", "l5": "L5",
}
GOAL = 0.78  # issue 10's target


def bench_recipe(config: dict[str, Any]) -> str:
    """The ``bench_train.py`` recipe that trains the same network with the same recipe."""
    model, kwargs = config["model"], config.get("model_kwargs") or {}
    train = config["train"]
    size = kwargs.get("image_size")
    if model == "resnet18":
        return "r6" if size == 96 else "r5"
    if "widths" in kwargs:
        return "w1"
    if size == 96:
        return "r4"
    if train.get("mix", "none") != "none":
        return "m1"
    return "r3" if train.get("augment", "none") != "none" else "quick"


def run_dir(results: Path, name: str) -> Path:
    """``results/quick`` or ``results/accuracy/<name>`` for a run named in a config."""
    name = Path(name).name
    return results / "quick" if name == "quick" else results / "accuracy" / name


def read(path: Path) -> Any:
    """A JSON file's content; VsentError naming the file when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise VsentError(f"{path}: {os_reason(e)}") from None
    except ValueError as e:
        raise VsentError(f"{path}: not JSON ({e})") from None


class CostModel:
    """CPU minutes (2 cores) of a committed run, from the bench's images/s and fusion costs."""

    def __init__(self, bench: dict[str, Any], results: Path):
        self.ips = {r["recipe"]: r["images_per_s"] for r in bench["results"]}
        self.fusion = {f["features"]: f["fusion_minutes"] for f in bench.get("fusions", [])}
        self.results = results

    def minutes(self, run: Path) -> tuple[float, list[str]]:
        """(minutes, parts): the estimate and how it was made, one string per part."""
        config = read(run / "config.json")
        command = config.get("command")
        if command == "crossval":
            recipe = bench_recipe(config)
            if recipe not in self.ips:
                raise VsentError(f"{run}: bench recipe {recipe!r} not measured; run "
                                 f"bench/bench_train.py --recipes {recipe}")
            seen = sum(h["images_per_s"] * h["seconds"]
                       for f in sorted(run.glob("fold*/history.json")) for h in read(f))
            minutes = seen / self.ips[recipe] / 60
            return minutes, [f"{run.name}: {seen:,.0f} image-epochs at {self.ips[recipe]} img/s "
                             f"({recipe}) = {minutes:.1f} min"]
        if command == "ensemble":
            parts: list[str] = []
            total = 0.0
            for member in config["runs"]:
                m, p = self.minutes(run_dir(self.results, member))
                total, parts = total + m, parts + p
            return total, parts
        if command == "fuse":
            base, parts = self.minutes(run_dir(self.results, config["run"]))
            features = config["features"]
            if features not in self.fusion:
                raise VsentError(f"{run}: fusion {features!r} not measured; run "
                                 f"bench/bench_train.py --fusions {features}")
            base, parts = base + self.fusion[features], parts + [
                f"fusion {features}: {self.fusion[features]} min"]
            for inner in sorted(run.glob("inner/fold*/")) if config.get("weight") == "inner" \
                    else ():
                m, p = self.minutes(inner)
                base, parts = base + m, parts + [f"inner/{x}" for x in p]
            return base, parts
        raise VsentError(f"{run}/config.json: command {command!r} has no cost model")


def accuracy(run: Path) -> tuple[float, float, bool]:
    """(mean, std, fused) of the centre-crop accuracy of a crossval, ensemble or fuse run."""
    s = read(run / "summary.json")
    fused = "fused" in s
    acc = (s["fused"] if fused else s)["accuracy"]
    return acc["mean"], acc["std"], fused


def on_gpu(run: Path, results: Path) -> bool:
    """Whether the run (or a run it is made of) trained on the lent GPU's copy of the data."""
    config = read(run / "config.json")
    if ".devdata" in str(config.get("data", "")):
        return True
    sources = config.get("runs") or ([config["run"]] if "run" in config else [])
    return any(on_gpu(run_dir(results, s), results) for s in sources)


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for fused, colour, name in ((False, "tab:blue", "CNN alone"),
                                (True, "tab:orange", "CNN fused with hand-crafted features")):
        for gpu in (False, True):
            pts = [r for r in rows if r["fused"] == fused and r["gpu"] == gpu]
            if not pts:
                continue
            ax.errorbar([r["minutes"] for r in pts], [r["accuracy"] for r in pts],
                        yerr=[r["std"] for r in pts], fmt="o", color=colour,
                        mfc="white" if gpu else colour, ecolor=colour, elinewidth=0.6,
                        alpha=0.8, capsize=2,
                        label=name + (" (trained on the GPU; CPU cost estimated)" if gpu else ""))
    ax.axhline(GOAL, color="black", ls="--", lw=0.8)
    ax.text(min(r["minutes"] for r in rows), GOAL + 0.002, "issue 10's goal", fontsize=8)
    ax.set_xscale("log")
    # room above the highest whisker for the legend: inside the data it covered whiskers
    top = max(r["accuracy"] + r["std"] for r in rows)
    ax.set_ylim(top=top + 0.035)
    _label(fig, ax, rows)
    ax.set_xlabel("training cost, minutes on 2 CPU cores (5 folds; bench/bench_train.py)")
    ax.set_ylabel("five-agree accuracy, centre crop (mean +- std, 5 folds)")
    ax.set_title("Twitter I without ImageNet weights: accuracy against cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    save_figure(fig, out, dpi=120)  # atomic: an interrupted run keeps the committed figure whole


def _label(fig: Any, ax: Any, rows: list[dict[str, Any]]) -> None:
    """Name each point, moving a label up or down (points) until it overlaps no earlier one;
    a moved label gets a thin line to its point."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    # the markers count as placed: a label must not cover another point either
    centres = ax.transData.transform([(r["minutes"], r["accuracy"]) for r in rows])
    # (a marker is ~6 points wide: 5 pixels each way at the figure's 120 dpi)
    placed: list[Any] = [Bbox.from_extents(x - 5, y - 5, x + 5, y + 5) for x, y in centres]
    # right of the point first, then left, each nearer rows first
    shifts = [(dx, dy) for dy in (3, -9, 12, -18, 21, -27, 30, -36) for dx in (4, -4)]
    for r in sorted(rows, key=lambda r: (r["minutes"], -r["accuracy"])):
        xy = (r["minutes"], r["accuracy"])
        for dx, dy in shifts:
            where = {"xytext": (dx, dy), "textcoords": "offset points",
                     "ha": "left" if dx > 0 else "right"}
            text = ax.annotate(r["label"], xy, fontsize=7, **where)
            box = text.get_window_extent(renderer)
            text.remove()
            if not any(box.overlaps(p) for p in placed) or (dx, dy) == shifts[-1]:
                placed.append(box)
                leader = None if (dx, dy) == shifts[0] else {
                    "arrowstyle": "-", "lw": 0.4, "color": "grey", "shrinkA": 0}
                ax.annotate(r["label"], xy, fontsize=7, arrowprops=leader, **where)
                break


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, default=RESULTS / "train.json")
    ap.add_argument("--results", type=Path, default=RUN_RESULTS)
    ap.add_argument("--out", type=Path, default=RESULTS / "accuracy_cost")
    args = ap.parse_args(argv)
    bench = read(args.bench)
    costs = CostModel(bench, args.results)
    rows = []
    for name, label in LABELS.items():
        run = run_dir(args.results, name)
        minutes, parts = costs.minutes(run)
        mean, std, fused = accuracy(run)
        rows.append({"label": label, "run": shown(run), "accuracy": round(mean, 4),
                     "std": round(std, 4), "fused": fused,
                     "gpu": on_gpu(run, args.results), "minutes": round(minutes, 1),
                     "cost_parts": parts})
    png = args.out.with_suffix(".png")
    plot(rows, png)
    write_report(args.out.with_suffix(".json"), {
        "benchmark": "accuracy_cost", "bench": shown(args.bench), "plot": shown(png),
        # the costs are the bench's, measured there (this file's machine drew the plot)
        "costs_measured_on": {"machine": bench.get("machine"),
                              "git_commit": (bench.get("versions") or {}).get("git_commit"),
                              "cpu": (bench.get("versions") or {}).get("cpu")},
        "rows": sorted(rows, key=lambda r: r["minutes"])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
