"""``vsent reproduce campos2015``: Campos et al. 2015, Tables 1-4.

Table 1 (CaffeNet fc8-2 fine-tuned, 5 folds, centre crop and 10-crop), Table 2 (linear probes
on every layer of Table 1's fold models), Tables 3 and 4 (the surgery variants fc7-4096,
fc6-4096, fc7-2, fc6-2, fc8-1000, fc9-2). Sub-runs: ``table1``, ``layers``, one per variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsent import figures, papers
from vsent.analyses.compare import read_predictions
from vsent.analyses.layers import LayersConfig, layer_probes, probed_with_current_models
from vsent.analyses.probes import ProbeConfig
from vsent.crossval import RunConfig
from vsent.errors import VsentError
from vsent.models.caffenet import SURGERIES
from vsent.reports import render
from vsent.reports.runner import Paper, Session, check_init_file, register_paper
from vsent.train import TrainConfig

#: Campos et al. Tables 3 and 4: row -> CaffeNet builder options (each is a crossval sub-run).
CAMPOS_VARIANTS: dict[str, dict[str, Any]] = {
    arch: {"arch": arch}
    for arch in (*papers.CAMPOS2015_TABLE3, *papers.CAMPOS2015_TABLE4)
}
#: Row labels of Campos et al. Tables 3 and 4 (the surgery in words, from vsent's CaffeNet).
CAMPOS_VARIANT_LABELS = {arch: f"{arch} ({SURGERIES[arch].describe()})"
                         for arch in CAMPOS_VARIANTS}
EVALS = {"center": "centre crop", "ten_crop": "10-crop"}
#: The builder option of Campos et al.'s Table 1 network (CaffeNet fc8-2), for titles.
PAPER_ARCH = papers.CAMPOS2015_NETWORK[1]


def table1_network(template: RunConfig) -> str:
    """Table 1's network as the plan ran it, for its title: the paper's when the plan runs
    CaffeNet fc8-2, else the model it ran with the published network named beside it (a
    hand-made plan may swap the model)."""
    arch = template.model_kwargs.get("arch")
    if is_paper_network(template):
        return f"fine-tuned CaffeNet ({PAPER_ARCH})"
    ran = f"{template.model} {arch}" if arch else template.model
    return f"{ran} (published: fine-tuned CaffeNet {PAPER_ARCH})"


def is_paper_network(template: RunConfig) -> bool:
    """Whether the plan's Table 1 network is the one Campos et al. fine-tuned and probed: only
    then are its layers those of Table 2 (another model's ``fc7`` is not CaffeNet fc8-2's)."""
    return papers.is_campos2015_network(template.model, template.model_kwargs.get("arch"))


@dataclass
class Campos2015Plan:
    """Campos et al. 2015.

    Attributes
    ----------
    template : RunConfig
        Table 1's cross-validation (CaffeNet ``fc8-2``); the variants copy it and change
        ``model_kwargs``.
    variants : dict
        Tables 3 and 4 rows -> ``model_kwargs`` updates (default :data:`CAMPOS_VARIANTS`).
    probe : ProbeConfig
        Table 2's linear probes (C grid, inner folds).
    keep_features : bool
        Keep the layer activations on disk (~3.2 GB per fold for CaffeNet).
    reductions : list of str
        What this plan reduces with respect to the paper (listed in the report).
    """

    paper: ClassVar[str] = "campos2015"
    template: RunConfig
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(CAMPOS_VARIANTS))
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    keep_features: bool = False
    reductions: list[str] = field(default_factory=list)


def _test_coverage(run: Path) -> str | None:
    """``"880 of the 882"``: the images in a test fold of the crossval ``run`` (its
    folds.json) and the images of its data (its data.json; ``"880"`` for a run made before
    it was written); None before the run wrote its folds."""
    from vsent.provenance import DATA_RECORD
    from vsent.runs import FOLDS

    folds = render.read_json(run / FOLDS, {}).get("folds")
    n = render.read_json(run / DATA_RECORD, {}).get("n_images")
    if not isinstance(folds, list):
        return None
    tested = {name for f in folds if isinstance(f, dict) for name in f.get("test", [])}
    return f"{len(tested)} of the {n}" if isinstance(n, int) else str(len(tested))


@register_paper
class Campos2015(Paper):
    name = "campos2015"
    title = papers.CAMPOS2015

    def make_plan(self, data: str, *, quick: bool, init: str | None, device: str, seed: int,
                  run: str | None) -> Campos2015Plan:
        train = TrainConfig(device=device)
        probe = ProbeConfig(seed=seed)
        reductions = []
        if quick:
            train = train.replace(epochs=1)
            probe = ProbeConfig(Cs=(1e-2, 1.0, 100.0), inner_splits=3, seed=seed)
            full = ProbeConfig()
            reductions = [
                f"every CaffeNet (Table 1 and each variant of Tables 3-4) is fine-tuned for 1 "
                f"epoch instead of {TrainConfig().epochs}, on all 5 folds (same solver and "
                f"batch {train.batch_size}; the lr, {train.lr:g}, never reaches its first drop "
                f"after {train.lr_step} epochs)",
                f"Table 2 probes choose C from {list(probe.Cs)} by {probe.inner_splits}-fold "
                f"inner CV instead of {list(full.Cs)} by {full.inner_splits}-fold",
            ]
        template = RunConfig(data=data, model="caffenet", model_kwargs={"arch": "fc8-2"},
                             init=init or "imagenet", train=train, seed=seed,
                             preset="campos2015")
        return Campos2015Plan(template=template, probe=probe, reductions=reductions)

    def steps(self, plan: Campos2015Plan) -> list[str]:
        return ["table1", "layers", *plan.variants]

    def check(self, plan: Campos2015Plan) -> None:
        # every network built from a weights file: a variant it does not load into would
        # otherwise stop the reproduction hours in
        check_init_file([plan.template, *(_variant(plan, kw) for kw in plan.variants.values())])

    def run(self, plan: Campos2015Plan, s: Session) -> dict[str, Any]:
        table1 = s.crossval("table1", plan.template)
        layers_dir = s.out / "layers"
        if not (table1 / "summary.json").exists() and s.wants("layers"):
            raise VsentError("the layer probes need Table 1's models: add table1 to --only")
        cfg = LayersConfig(run=str(table1.resolve()), probe=plan.probe,
                           device=plan.template.train.device, keep_features=plan.keep_features)
        # a fold of table1 trained again since is probed again (one table, one set of models);
        # not done (left out by --only): its rows read "not run", not the old models' probes
        layers_done = s.step("layers", lambda: probed_with_current_models(table1, layers_dir),
                             lambda: layer_probes(cfg, layers_dir, progress=s.progress))
        for name, kwargs in plan.variants.items():
            s.crossval(name, _variant(plan, kwargs))

        w1 = s.weights_label("table1")
        model = plan.template.model
        t1_rows = [
            s.row([f"{model} {plan.template.model_kwargs.get('arch', '')}".strip(), EVALS[e]],
                  papers.CAMPOS2015_TABLE1[e], table1, "summary.json", [e, "accuracy"], w1)
            for e in EVALS
        ]
        summary = render.read_json(layers_dir / "layers.json", {})
        layer_names = list(summary) or list(papers.CAMPOS2015_TABLE2_LAYERS)
        published = papers.CAMPOS2015_TABLE2 if is_paper_network(plan.template) else {}
        t2_rows = []
        for layer in layer_names:
            for clf in plan.probe.classifiers:
                t2_rows.append(s.row([layer, {"svm": "linear SVM"}.get(clf, clf)],
                                     published.get(layer, {}).get(clf), layers_dir,
                                     "layers.json", [layer, clf], w1, planned=layers_done))
        if not layers_done:
            summary = {}  # nor in the figure
        you = papers.CAMPOS2015_TABLE1_YOU_CNN
        tables = [
            render.make_table(
                "table1", f"Table 1: {table1_network(plan.template)}, five-agree, "
                          "5-fold CV, accuracy",
                ["model", "evaluation"], t1_rows,
                note=f"Table 1 also lists You et al.'s fine-tuned CNN: "
                     f"{render.fmt(render.published_dict(you), exact=True)} ({you.source}); "
                     "the you2015 report sets it beside ours."),
            render.make_table(
                "table2", "Table 2: linear probes on each layer of Table 1's fold models "
                          "(centre crop), accuracy", ["layer", "classifier"], t2_rows,
                note="Fold k's probe is trained on fold k's training images with the model "
                     "fine-tuned on them, and tested on fold k's test images. A layer the "
                     "paper does not list reads 'n/a (not in the paper)'" + (
                         "." if published else
                         f"; so does every layer here: the plan ran "
                         f"{table1_network(plan.template)}, whose layers are not the paper's "
                         "even where their names match.")),
        ]
        for tid, title, variants in (
            ("table3", "Table 3: removing layers, accuracy", papers.CAMPOS2015_TABLE3),
            ("table4", "Table 4: adding layers, accuracy", papers.CAMPOS2015_TABLE4),
        ):
            rows = [s.row([CAMPOS_VARIANT_LABELS.get(arch, arch), EVALS[e]], by_eval[e],
                          s.out / arch, "summary.json", [e, "accuracy"], s.weights_label(arch),
                          planned=arch in plan.variants)
                    for arch, by_eval in variants.items() for e in EVALS]
            tables.append(render.make_table(tid, title, ["architecture", "evaluation"], rows))
        extra = [arch for arch in plan.variants if arch not in CAMPOS_VARIANTS]
        if extra:  # variants of a custom plan that are not rows of the paper
            rows = [s.row([arch, EVALS[e]], None, s.out / arch, "summary.json",
                          [e, "accuracy"], s.weights_label(arch))
                    for arch in extra for e in EVALS]
            tables.append(render.make_table("variants",
                                            "Other variants (not in the paper), accuracy",
                                            ["architecture", "evaluation"], rows))
        majority = _majority(table1 / "predictions.csv")
        figure = _figure(s.out, tables, summary, plan, majority, published)
        return {"tables": tables, "figures": [figure], "majority": majority}

    def notes(self, plan: Campos2015Plan, s: Session, report: Mapping[str, Any]) -> list[str]:
        t = plan.template
        tr, caffenet = t.train, t.model == "caffenet"
        # the paper's facts only where they hold: its splits of five-agree, its network; the
        # images they cover counted on the data the run read (880 of 882 was
        # said of a tiny dataset too)
        folds = f"Folds: {t.folds}."
        if (t.folds, t.subset) == ("campos", "five"):
            cover = None if s is None else _test_coverage(s.out / "table1")
            folds += (" The authors' 5 splits (folds/campos) are not stratified" +
                      (f" and cover {cover} five-agree images." if cover else "."))
        notes = [
            folds,
            f"Solver: {tr.optimizer}, lr {tr.lr:g} ({tr.schedule} schedule), batch size "
            f"{tr.batch_size} (not stated in the paper), weight decay {tr.weight_decay:g}; "
            f"new layers at {tr.head_lr_mult:g}x lr, biases at {tr.bias_lr_mult:g}x lr without "
            "weight decay" + ("" if not caffenet else
                              " (Caffe reference convention); CaffeNet fc6-2 at base lr 1e-4 "
                              "(the paper lowered it to converge)") + ".",
            "Table 2: C of each probe chosen by an inner CV on the fold's training images; "
            "features centred and scaled by one global factor (see vsent.analyses.probes).",
            "fc7-4096, fc6-4096 and fc8-1000 predict the arg-max over all their outputs; an "
            "index other than 0/1 counts as wrong (as Caffe's accuracy layer does). The paper "
            "notes that its fc6-4096 models always predict the majority class.",
        ]
        if report.get("majority"):
            m = report["majority"]
            notes.append(f"Always answering 'positive' on the same test folds scores "
                         f"{m['mean']:.3f} +- {m['std']:.3f} (computed from {m['source']}).")
        return notes


def _variant(plan: Campos2015Plan, kwargs: Mapping[str, Any]) -> RunConfig:
    """The cross-validation of a Tables 3-4 variant: Table 1's with ``kwargs`` updated."""
    return dataclasses.replace(plan.template,
                               model_kwargs={**plan.template.model_kwargs, **kwargs})


def _majority(predictions: Path) -> dict[str, Any] | None:
    """Accuracy of always answering "positive" on the same test folds (mean, std over folds);
    a damaged file is a VsentError naming it (and the line)."""
    if not predictions.exists():
        return None
    by_fold: dict[int, list[int]] = {}
    for r in read_predictions(predictions, "prob_positive").values():
        by_fold.setdefault(r["fold"], []).append(r["label"])
    accs = [float(np.mean(np.asarray(v) == 1)) for v in by_fold.values()]
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)),
            "source": str(predictions.parent.name + "/predictions.csv")}


def _figure(out: Path, tables: list[dict], layers: Mapping[str, Any], plan: Campos2015Plan,
            majority: dict | None,
            published: Mapping[str, Mapping[str, papers.Published]]) -> str:
    """campos2015.png: Tables 1, 3, 4 as bars (published as diamonds); Table 2 per layer
    (``published``: the paper's probes, empty when the plan ran another network)."""
    plt = figures.pyplot()
    rows = [r for t in tables if t["id"] in ("table1", "table3", "table4", "variants")
            for r in t["rows"]]
    archs: list[str] = list(dict.fromkeys(r["run_dir"] for r in rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
    x = np.arange(len(archs))
    for i, (e, label) in enumerate(EVALS.items()):
        means, stds, paper_pts = [], [], []
        for j, a in enumerate(archs):
            r = next((r for r in rows if r["run_dir"] == a and r["key"][0] == e), None)
            ours = r and r["ours"]
            means.append(ours["mean"] if ours else np.nan)
            stds.append(ours["std"] if ours else 0.0)
            if r and r["paper"] and r["paper"]["mean"] is not None:
                paper_pts.append((j, r["paper"]["mean"], r["paper"]["std"] or 0.0))
        off = (i - 0.5) * 0.38
        ax1.bar(x + off, means, 0.38, yerr=stds, capsize=3, label=f"ours, {label}")
        if paper_pts:
            px, py, pe = zip(*paper_pts, strict=True)
            ax1.errorbar(np.asarray(px) + off, py, yerr=pe, fmt="kD", ms=6, capsize=3,
                         label="published" if i == 0 else None)
    for j, a in enumerate(archs):
        if not any(r["run_dir"] == a and r["ours"] for r in rows):
            why = render.ours_cell(next(r for r in rows if r["run_dir"] == a))
            ax1.text(j, 0.02, why, ha="center", va="bottom", rotation=90, fontsize=7,
                     color="grey")
    if majority:
        ax1.axhline(majority["mean"], color="grey", ls="--", lw=1,
                    label="always positive (same folds)")
    # Table 1's bar is named by its row's model (caffenet fc8-2, or the model the plan ran)
    t1 = next((r["cells"][0] for r in rows if r["run_dir"] == "table1"), "")
    labels = [f"{t1} (Table 1)" if a == "table1" else a for a in archs]
    ax1.set_xticks(x, labels, rotation=30, ha="right")
    ax1.set_ylabel("accuracy, mean +- std over folds")
    ax1.set_ylim(0, 1.3)
    ax1.set_yticks(np.linspace(0, 1, 6))
    ax1.set_title("Tables 1, 3, 4: architectures")
    ax1.legend(fontsize=7, loc="upper center", ncol=2)
    if layers:
        names = list(layers)
        for i, clf in enumerate(plan.probe.classifiers):
            pts = [(j, layers[n][clf]["mean"], layers[n][clf]["std"])
                   for j, n in enumerate(names) if clf in layers[n]]
            if pts:
                xs, ms, ss = map(np.asarray, zip(*pts, strict=True))
                ax2.errorbar(xs + (i - 0.5) * 0.1, ms, yerr=ss, marker="o", capsize=3,
                             color=f"C{i}", label=f"ours, {clf}")
            pub = [(j, published.get(n, {}).get(clf)) for j, n in enumerate(names)]
            pub = [(j, p.mean) for j, p in pub if p is not None and p.mean is not None]
            if pub:
                px, py = zip(*pub, strict=True)
                # one colour per classifier, ours and published told apart by the marker
                ax2.plot(px, py, "D", ms=5, color=f"C{i}", mfc="none",
                         label=f"published, {clf}")
        ax2.set_xticks(np.arange(len(names)), names, rotation=45, ha="right")
        if majority:
            ax2.axhline(majority["mean"], color="grey", ls="--", lw=1)
        ax2.legend(fontsize=7)
    else:
        ax2.text(0.5, 0.5, "layer probes not run", ha="center", transform=ax2.transAxes)
    ax2.set_ylabel("probe accuracy")
    ax2.set_title("Table 2: layer probes (published where the layer names match)")
    return render.save_report_figure(fig, out, "campos2015.png")
