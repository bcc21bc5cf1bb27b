"""``vsent reproduce you2015``: You et al. 2015, the Twitter table (report id ``table6``; the
paper's table numbers are not in published.md).

The hand-crafted baselines (GCH, LCH, GCH+BoW, LCH+BoW: ``baselines``) and the 2CONV-4FC
network on the five/four/three-agree subsets: from random weights (``pcnn-<subset>``) or, with
``init`` a pre-trained checkpoint, by domain transfer (``transfer``, Algorithm 2). You et al.'s
PCNN and the SentiBank row, known from the accuracies other papers quote, are listed beside
ours as rows vsent does not reproduce (no weakly labelled Flickr set, no ANP detectors).

The PCNN idea is measured on the weak labels Twitter I itself holds (``pcnn-weak-<subset>``,
five- and four-agree): the images of the three-agree set outside the subset, labelled by a 3:2
or 4:1 majority, join every training fold; the 2CONV-4FC network trains on both, the
progressive step drops image i with probability max(0, 2 - exp(|s_i1 - s_i2|)), it is
fine-tuned on the rest (Algorithm 1), then on the fold's clean images (Algorithm 2): ``vsent
crossval --model pcnn --extra-train three --extra-schedule progressive``. In-domain weak labels,
not Flickr: the row says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsent import figures, papers
from vsent.crossval import RunConfig
from vsent.data.extra import removal_rows
from vsent.errors import VsentError
from vsent.reports import render
from vsent.reports.runner import Paper, Session, register_paper
from vsent.train import TrainConfig

#: The feature sets of You et al.'s Twitter table (in the paper's order).
YOU_FEATURES = ("gch", "lch", "gch+bow", "lch+bow")
#: Rows of the table known only from other papers' quotes: row -> label (not reproduced).
QUOTED_ROWS = {r: papers.YOU2015_QUOTED_LABELS[r] for r in ("pcnn", "sentibank")}
#: The subsets with weakly labelled images outside them (three-agree holds every image).
WEAK_SUBSETS = ("five", "four")
WEAK_LABEL = "PCNN on Twitter I's own weak labels (not Flickr)"
#: You et al.'s network, and vsent's model of it.
PAPER_NETWORK, PAPER_MODEL = "2CONV-4FC", "pcnn"


def network_label(model: str | None) -> str:
    """The CNN row's network: the paper's name when vsent's model of it ran, else the model
    that did (a hand-made plan or a checkpoint may hold another one)."""
    return PAPER_NETWORK if model in (None, PAPER_MODEL) else f"{model} (not {PAPER_NETWORK})"


@dataclass
class You2015Plan:
    """You et al. 2015, the Twitter table.

    Attributes
    ----------
    template : RunConfig
        The 2CONV-4FC cross-validation (``subset`` is replaced per subset). ``init`` is
        ``"random"`` or a vsent checkpoint pre-trained on a weakly labelled set, which is then
        fine-tuned per fold by :func:`vsent.analyses.pcnn.transfer` (Algorithm 2).
    subsets : tuple of str
        All three subsets, or one.
    baselines : dict
        Keyword arguments of :func:`vsent.analyses.baselines.run_baselines`.
    transfer_train : TrainConfig
        Fine-tuning recipe of the domain transfer (used with a checkpoint ``init``).
    weak_finetune : TrainConfig or None
        Recipe of the two fine-tuning stages of the weak-label PCNN rows (``pcnn-weak-<subset>``
        of :data:`WEAK_SUBSETS`; their first stage is ``template.train``); None: no such rows.
    """

    paper: ClassVar[str] = "you2015"
    template: RunConfig
    subsets: tuple[str, ...] = ("five", "four", "three")
    baselines: dict[str, Any] = field(default_factory=dict)
    transfer_train: TrainConfig | None = None
    weak_finetune: TrainConfig | None = None
    reductions: list[str] = field(default_factory=list)


@register_paper
class You2015(Paper):
    name = "you2015"
    title = papers.YOU2015

    def make_plan(self, data: str, *, quick: bool, init: str | None, device: str, seed: int,
                  run: str | None) -> You2015Plan:
        from vsent.analyses.pcnn import PRESETS as PCNN_PRESETS
        from vsent.analyses.pcnn import TRANSFER_TRAIN

        train = PCNN_PRESETS["you2015"]["train"].replace(device=device)
        weak_finetune = PCNN_PRESETS["you2015"]["finetune"].replace(device=device)
        transfer_train = TRANSFER_TRAIN.replace(device=device)
        baselines: dict[str, Any] = {"features": YOU_FEATURES}
        reductions = []
        if quick:
            from vsent.analyses.baselines import BaselineConfig

            train = train.replace(epochs=2)
            weak_finetune = weak_finetune.replace(epochs=2)
            transfer_train = transfer_train.replace(epochs=2)
            defaults = BaselineConfig()  # (run_baselines' defaults)
            baselines.update(k=100, max_descriptors=20_000)
            full_epochs = PCNN_PRESETS["you2015"]["train"].epochs
            reductions = [
                f"2CONV-4FC trained for 2 epochs instead of {full_epochs} (from random "
                f"weights) or {TRANSFER_TRAIN.epochs} (domain transfer); the weak-label "
                f"rows' two fine-tuning stages 2 epochs each instead of "
                f"{PCNN_PRESETS['you2015']['finetune'].epochs}",
                f"BoW vocabulary k = {baselines['k']} words from at most "
                f"{baselines['max_descriptors']:,} SIFT descriptors per fold "
                f"(vsent default {defaults.k} from {defaults.max_descriptors:,})",
            ]
        template = RunConfig(data=data, model="pcnn", init=init or "random", train=train,
                             seed=seed, preset=None)
        return You2015Plan(template=template, baselines=baselines,
                           transfer_train=transfer_train, weak_finetune=weak_finetune,
                           reductions=reductions)

    def check(self, plan: You2015Plan) -> None:
        init = plan.template.init
        if init == "imagenet":
            raise VsentError("you2015 --init: random, or a vsent checkpoint pre-trained on "
                             "weakly labelled images (2CONV-4FC has no ImageNet weights)")
        if init != "random":  # the checkpoint to transfer: unreadable, or trained on the data
            # it would be tested on, is refused now, not after the baselines' sub-run
            from vsent.analyses.pcnn import checkpoint_spec
            from vsent.data.leakage import check_other_data

            check_other_data(init, checkpoint_spec(init)[2], plan.template.data, plan.subsets)

    def subsets(self, plan: You2015Plan) -> str | None:
        return ", ".join(plan.subsets)

    def steps(self, plan: You2015Plan) -> list[str]:
        cnn = ["transfer"] if plan.template.init != "random" else []
        return ["baselines", *cnn, *[f"pcnn-{s}" for s in plan.subsets],
                *[f"pcnn-weak-{s}" for s in _weak_subsets(plan)]]

    def run(self, plan: You2015Plan, s: Session) -> dict[str, Any]:
        from vsent.analyses import baselines as B

        subsets = tuple(plan.subsets)
        if set(subsets) == set(B.SUBSETS) and len(subsets) == 3:
            subset_arg = "all"
        elif len(subsets) == 1 and subsets[0] in B.SUBSETS:
            subset_arg = subsets[0]
        else:
            raise VsentError(f"you2015 subsets must be all three or one of "
                             f"{', '.join(B.SUBSETS)}, got {list(subsets)}")
        t = plan.template
        base_dir = s.out / "baselines"
        kwargs = {"features": YOU_FEATURES, **plan.baselines}
        s.step("baselines", lambda: (base_dir / "table.json").exists(),
               lambda: B.run_baselines(t.data, subset=subset_arg, folds_spec=t.folds,
                                       out=base_dir, seed=t.seed, skip_bad=t.skip_bad,
                                       progress=s.progress,
                                       resume=(base_dir / "config.json").exists(), **kwargs))
        cnn_dirs, cnn_weights, cnn_label = _cnn(plan, s, subsets)
        weak_dirs = _weak(plan, s)

        extra = [f for f in kwargs["features"] if f not in YOU_FEATURES]

        def published(row: str, sub: str, metric: str) -> papers.Published | None:
            """A baseline cell of the Twitter table (None: not a row of the paper)."""
            return papers.YOU2015_TABLE6[row][sub][metric] if row in YOU_FEATURES else None

        def rows_for(metric: str, quoted: bool = False) -> list[dict]:
            rows = []
            for sub in subsets:
                for feat in (*YOU_FEATURES, *extra, "always-positive"):
                    rows.append(s.row([B.LABELS.get(feat, feat), sub, metric],
                                      published(feat, sub, metric), base_dir / sub / feat,
                                      "summary.json", [metric], "n/a (no network)"))
                rows.append(s.row([cnn_label, sub, metric],
                                  papers.YOU2015_CNN.get(sub, {}).get(metric),
                                  cnn_dirs[sub], "summary.json", [metric], cnn_weights))
                if sub in weak_dirs:
                    rows.append(s.row([WEAK_LABEL, sub, metric], None, weak_dirs[sub],
                                      "summary.json", [metric], s.weights_label(
                                          f"pcnn-weak-{sub}")))
                if quoted:
                    rows += [s.row([label, sub, metric], papers.YOU2015_TABLE6[r][sub][metric],
                                   None) for r, label in QUOTED_ROWS.items()]
            return rows

        tables = [
            render.make_table(
                "table6", "Twitter table: 5-fold accuracy on Twitter I (five / four / three agree)",
                ["method", "subset", "metric"], rows_for("accuracy", quoted=True),
                note="Published CNN value beside ours: You et al.'s fine-tuned 2CONV-4FC "
                     f"({papers.YOU2015_CNN['five']['accuracy'].source}). Their PCNN and "
                     "SentiBank rows are known only from Sun et al. 2016, Table 1; networks "
                     "pre-trained on ~0.5 M weakly labelled Flickr images are not reproduced "
                     "without that data. The hand-crafted rows' published values are not "
                     "available."),
            render.make_table(
                "table6-prf", "Twitter table: precision, recall and F1 of the positive class",
                ["method", "subset", "metric"],
                rows_for("precision") + rows_for("recall") + rows_for("f1")),
        ]
        return {"tables": tables, "figures": [_figure(s.out, tables[0], subsets)]}

    def notes(self, plan: You2015Plan, s: Session, report: Mapping[str, Any]) -> list[str]:
        return [
            "Folds: the 5 campos splits of each subset (the same folds as the CNN runs); "
            "You et al.'s own folds are not published.",
            "Baselines: GCH/LCH/SIFT BoW as vsent.analyses.baselines implements them after "
            "Siersdorfer et al. 2010; a linear SVM with C chosen by inner CV.",
            "Input of the 2CONV-4FC network: 227-px crops of images warped to 256 px (random "
            "crop + mirror in training, the centre or 10 crops in testing, as CaffeNet); You "
            "et al. state a 256x256 input (`vsent pcnn` or `vsent crossval --model pcnn` with "
            "`--model-arg input_size=256` train that network).",
            "PCNN on in-domain weak labels: the three-agree images outside the subset (on "
            "Twitter I 376 for five-agree and 149 for four-agree, copies of the subset's "
            "images left out) "
            "join every training fold with their majority labels; the "
            f"{network_label(plan.template.model)} network trains on both, drops image i "
            "with probability max(0, 2 - exp(|s_i1 - s_i2|)), is fine-tuned on the rest, "
            "then on the fold's clean images (`vsent crossval --model "
            f"{plan.template.model} --extra-train three --extra-schedule progressive`). It "
            "is not You et al.'s PCNN (0.5 M Flickr images): no published value sits beside "
            "it. "
            "Three-agree holds every image, so it has no such row.",
            *_selection_notes(s.out, _weak_subsets(plan)),
            "Of You et al.'s Twitter table only accuracies quoted by other papers are known: the "
            "CNN on five-agree (Campos et al. 2015, Table 1), PCNN and SentiBank on the three "
            "subsets (Sun et al. 2016, Table 1); precision / recall / F1 and the hand-crafted "
            "rows are not available.",
        ]


def _cnn(plan: You2015Plan, s: Session, subsets: Sequence[str],
         ) -> tuple[dict[str, Path], str, str]:
    """The CNN row's sub-runs: domain transfer of a checkpoint, or 2CONV-4FC from random."""
    from vsent.analyses import pcnn as P

    t = plan.template
    if t.init != "random":  # a checkpoint You2015.check has read
        if "transfer" not in s.weights:
            s.weights["transfer"] = {"model": P.checkpoint_spec(t.init)[0],  # its network
                                     "requested": t.init, "used": t.init, "reason": None}
            s.save()
        tdir = s.out / "transfer"
        tcfg = P.TransferConfig(model=t.init, data=t.data, subsets=list(subsets), folds=t.folds,
                                train=plan.transfer_train or P.TRANSFER_TRAIN,
                                oversample=t.oversample, skip_bad=t.skip_bad, seed=t.seed,
                                eval_batch_size=t.eval_batch_size)
        s.step("transfer", lambda: (tdir / "transfer.json").exists(),
               lambda: P.transfer(tcfg, tdir, resume=(tdir / "config.json").exists(),
                                  progress=s.progress, init_checked=True))  # (self.check)
        return ({sub: tdir / sub for sub in subsets}, s.weights_label("transfer"),
                f"{network_label(s.weights['transfer'].get('model'))}, pre-trained checkpoint "
                "+ domain transfer")
    random_cfg = dataclasses.replace(t, init="random")
    dirs = {sub: s.crossval(f"pcnn-{sub}", dataclasses.replace(random_cfg, subset=sub))
            for sub in subsets}
    return (dirs, render.RANDOM_LABEL + " (no weakly labelled pre-training)",
            f"{network_label(t.model)} from random weights, Twitter only")


def _weak_subsets(plan: You2015Plan) -> list[str]:
    if plan.weak_finetune is None:
        return []
    return [sub for sub in plan.subsets if sub in WEAK_SUBSETS]


def _weak(plan: You2015Plan, s: Session) -> dict[str, Path]:
    """The weak-label PCNN sub-runs: Algorithms 1 and 2 on Twitter I's own weak labels."""
    cfg = dataclasses.replace(plan.template, init="random", extra_train="three",
                              extra_schedule="progressive", finetune=plan.weak_finetune)
    return {sub: s.crossval(f"pcnn-weak-{sub}", dataclasses.replace(cfg, subset=sub))
            for sub in _weak_subsets(plan)}


def _selection_notes(out: Path, subsets: Sequence[str]) -> list[str]:
    """What the progressive rule did in each weak-label sub-run, read from its folds'
    ``removal.csv`` (share of training images removed; folds left with one class)."""
    notes = []
    for sub in subsets:
        files = sorted((out / f"pcnn-weak-{sub}").glob("fold*/removal.csv"))
        if not files:
            continue
        shares, one_class = [], 0
        for file in files:
            rows = [r for _, r in removal_rows(file)]
            kept_labels = {r["label"] for r in rows if not r["removed"]}
            shares.append(sum(r["removed"] for r in rows) / max(len(rows), 1))
            one_class += len(kept_labels) < 2
        skipped = (f"; in {one_class} of them the rest held fewer than two classes and the "
                   "progressive fine-tuning was skipped" if one_class else "")
        notes.append(f"`pcnn-weak-{sub}`: the selection removed {100 * min(shares):.1f}-"
                     f"{100 * max(shares):.1f} % of the training images of each of "
                     f"{len(files)} folds (`fold*/removal.csv`){skipped}.")
    return notes


def _figure(out: Path, table: dict, subsets: Sequence[str]) -> str:
    """you2015.png: accuracy per method and subset (ours as bars, published as diamonds)."""
    plt = figures.pyplot()
    methods = list(dict.fromkeys(r["cells"][0] for r in table["rows"]))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(methods)), 4.2))
    x = np.arange(len(methods))
    width = 0.8 / max(len(subsets), 1)
    for i, sub in enumerate(subsets):
        means, stds, pts = [], [], []
        for j, m in enumerate(methods):
            # None: a method without a row on this subset (the weak labels on three-agree)
            r = next((r for r in table["rows"] if r["cells"][0] == m and r["cells"][1] == sub),
                     None)
            means.append(r["ours"]["mean"] if r and r["ours"] else np.nan)
            stds.append(r["ours"]["std"] if r and r["ours"] else 0.0)
            if r and r["paper"] and r["paper"]["mean"] is not None:
                pts.append((j, r["paper"]["mean"]))
        off = (i - (len(subsets) - 1) / 2) * width
        colour = f"C{i}"  # a subset's bars and published points share it
        ax.bar(x + off, means, width, yerr=stds, capsize=2, color=colour,
               label=f"ours, {sub}-agree" if np.isfinite(means).any() else None)
        if pts:
            px, py = zip(*pts, strict=True)
            ax.plot(np.asarray(px) + off, py, "D", color=colour, mec="k", ms=6,
                    label=f"published, {sub}-agree")
    for j, m in enumerate(methods):  # a group without a bar says why, as campos2015.png
        rows = [r for r in table["rows"] if r["cells"][0] == m]
        if not any(r["ours"] for r in rows):
            ax.text(j, 0.02, render.ours_cell(rows[0]), ha="center", va="bottom", rotation=90,
                    fontsize=7, color="grey")
    ax.set_xticks(x, methods, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(methods) - 0.4)  # every group whole, with or without bars
    ax.set_ylabel("accuracy, mean +- std over folds")
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_title("You et al. 2015, Twitter table (ours: bars, published: diamonds)")
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    return render.save_report_figure(fig, out, "you2015.png")
