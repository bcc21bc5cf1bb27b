"""``vsent reproduce``: run a paper's experiments and set the published numbers beside ours.

Three papers, one plan each (:func:`make_plan`), run by :func:`reproduce`:

* ``campos2015``: Table 1 (CaffeNet fc8-2 fine-tuned, 5 folds, centre crop and 10-crop),
  Table 2 (linear probes on every layer of Table 1's fold models), Tables 3 and 4 (the
  surgery variants fc7-4096, fc6-4096, fc7-2, fc6-2, fc8-1000, fc9-2).
* ``you2015``: Table 6, the hand-crafted baselines (GCH, LCH, GCH+BoW, LCH+BoW) and the
  2CONV-4FC network on the five/four/three-agree subsets.
* ``sun2016``: a cross-validation run (or ``run=`` an existing one), affective regions, the K
  sweep and Table 1.

Every sub-step is a sub-run directory under ``out`` (``table1/``, ``fc7-2/``, ``layers/``,
``baselines/``, ``regions/`` ...; :func:`step_names`), so ``resume=True`` continues an
interrupted reproduction without redoing finished sub-runs (and cross-validation resumes per
fold and epoch), and ``only=`` runs some of them now and reports the rest as not run. ``out``
itself holds::

    config.json versions.json run.log   the plan and the environment
    weights.json                        per sub-run: the weights asked for, used, and why
    steps.json                          per sub-run: status and seconds spent
    report.md report.json <paper>*.png  the report

Every measured number of the report names the run directory and the file and key it was read
from (``report.json``: ``run_dir``, ``file``, ``key``), so it can be checked. Published numbers
come only from :mod:`vsent.papers`; a published cell that
could not be verified reads ``n/a (not verified)``.

Weights. ``init="imagenet"`` (or a path) is tried before each sub-run starts; when it raises
:class:`~vsent.errors.WeightsError` (offline, missing file) the sub-run trains from random
weights instead, the report says so at the top with the one-line reason, and every row from
such a model is labelled "random init, not comparable to the paper".
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import logging
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsent import papers
from vsent.analyses.layers import LayersConfig, ProbeConfig, layer_probes
from vsent.analyses.regions import METHODS, RegionConfig, evaluate_regions
from vsent.crossval import PRESETS, RunConfig, crossval
from vsent.errors import VsentError, WeightsError
from vsent.models import create_model
from vsent.runs import RunDir, Timer, to_jsonable, versions
from vsent.train import TrainConfig

log = logging.getLogger("vsent")

#: Papers :func:`reproduce` knows.
PAPERS = ("campos2015", "you2015", "sun2016")
#: Label of every row measured with randomly initialised networks.
RANDOM_LABEL = "random init, not comparable to the paper"
#: Shown for a published cell that could not be verified.
NOT_VERIFIED = "n/a (not verified)"
#: Shown for a row the paper does not have.
NOT_IN_PAPER = "n/a (not in the paper)"
#: Shown for a measured cell whose sub-run did not run.
NOT_RUN = "not run"

#: Campos et al. Tables 3 and 4: row -> CaffeNet builder options (each is a crossval sub-run).
CAMPOS_VARIANTS: dict[str, dict[str, Any]] = {
    arch: {"arch": arch}
    for arch in (*papers.CAMPOS2015_TABLE3, *papers.CAMPOS2015_TABLE4)
}
#: Row labels of Campos et al. Tables 3 and 4.
CAMPOS_VARIANT_LABELS = {
    "fc7-4096": "fc7-4096 (fc8 removed, fc7 raw as logits)",
    "fc6-4096": "fc6-4096 (fc7, fc8 removed, fc6 raw as logits)",
    "fc7-2": "fc7-2 (fc7, fc8 replaced by a 2-way fc7)",
    "fc6-2": "fc6-2 (fc6-fc8 replaced by a 2-way fc6)",
    "fc8-1000": "fc8-1000 (the ImageNet network, 1000 outputs)",
    "fc9-2": "fc9-2 (a 2-way fc9 added on fc8)",
}
#: Table 6 feature sets of You et al. (in the paper's order).
YOU_FEATURES = ("gch", "lch", "gch+bow", "lch+bow")
_EVALS = {"center": "centre crop", "ten_crop": "10-crop"}


# --------------------------------------------------------------------------------------------
# plans: what each paper runs (the test suite swaps the template for a tiny configuration)


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


@dataclass
class You2015Plan:
    """You et al. 2015, Table 6.

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
    """

    paper: ClassVar[str] = "you2015"
    template: RunConfig
    subsets: tuple[str, ...] = ("five", "four", "three")
    baselines: dict[str, Any] = field(default_factory=dict)
    transfer_train: TrainConfig | None = None
    reductions: list[str] = field(default_factory=list)


@dataclass
class Sun2016Plan:
    """Sun et al. 2016: a cross-validation run (``template``) or an existing one (``run``),
    then :func:`vsent.analyses.regions.evaluate_regions` with ``regions``."""

    paper: ClassVar[str] = "sun2016"
    template: RunConfig | None
    regions: RegionConfig = field(default_factory=RegionConfig)
    run: str | None = None
    reductions: list[str] = field(default_factory=list)


Plan = Campos2015Plan | You2015Plan | Sun2016Plan


def make_plan(paper: str, data: str, *, quick: bool = False, init: str | None = None,
              device: str = "auto", seed: int = 0, run: str | None = None) -> Plan:
    """The plan of ``paper``: the paper's recipe, or with ``quick`` a CPU-sized version.

    Parameters
    ----------
    paper : one of :data:`PAPERS`.
    data : Twitter I folder (or any dataset :func:`vsent.data.load_dataset` reads).
    quick : fewer epochs etc. (each reduction is listed in ``plan.reductions``).
    init : weights of the networks; default the paper's (``imagenet`` for CaffeNet and VGG,
        ``random`` for 2CONV-4FC, which the paper pre-trains on a weakly labelled set we do
        not have).
    run : sun2016 only: an existing cross-validation run to analyse instead of training one.
    """
    if paper not in PAPERS:
        raise VsentError(f"unknown paper {paper!r}; choose one of {', '.join(PAPERS)}")
    if run is not None and paper != "sun2016":
        raise VsentError("--run applies to sun2016 only")
    data = str(data)
    if paper == "campos2015":
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
    if paper == "you2015":
        from vsent.analyses.pcnn import PRESETS as PCNN_PRESETS
        from vsent.analyses.pcnn import TRANSFER_TRAIN

        train = PCNN_PRESETS["you2015"]["train"].replace(device=device)
        transfer_train = TRANSFER_TRAIN.replace(device=device)
        baselines: dict[str, Any] = {"features": YOU_FEATURES}
        reductions = []
        if quick:
            train = train.replace(epochs=2)
            transfer_train = transfer_train.replace(epochs=2)
            from vsent.analyses.baselines import run_baselines

            defaults = inspect.signature(run_baselines).parameters
            baselines.update(k=100, max_descriptors=20_000)
            full_epochs = PCNN_PRESETS["you2015"]["train"].epochs
            reductions = [
                f"2CONV-4FC trained for 2 epochs instead of {full_epochs} (from random "
                f"weights) or {TRANSFER_TRAIN.epochs} (domain transfer)",
                "BoW vocabulary k = 100 words from at most 20,000 SIFT descriptors per fold "
                f"(vsent default {defaults['k'].default} from "
                f"{defaults['max_descriptors'].default:,})",
            ]
        template = RunConfig(data=data, model="pcnn", init=init or "random", train=train,
                             seed=seed, preset=None)
        return You2015Plan(template=template, baselines=baselines,
                           transfer_train=transfer_train, reductions=reductions)
    # sun2016
    regions = RegionConfig(device=device, seed=seed)
    reductions = []
    if quick:
        regions = dataclasses.replace(regions, early_fusion=False, overlays=4)
        reductions = ["early fusion skipped (it scores every training image's proposals too)"]
    if run is not None:
        return Sun2016Plan(template=None, regions=regions, run=str(run), reductions=reductions)
    if quick:
        quick_train = PRESETS["quick"]["train"]
        template = RunConfig(data=data, model="smallcnn", init=init or "random",
                             train=quick_train.replace(epochs=10, device=device), seed=seed,
                             preset="quick")
        reductions.insert(0, "the whole-image model is vsent's small CNN trained from scratch "
                             "at 64 px for 10 epochs, not VGGNet fine-tuned from ImageNet")
    else:
        template = RunConfig(data=data, model="vgg16", init=init or "imagenet",
                             train=TrainConfig(device=device), seed=seed, preset=None)
    return Sun2016Plan(template=template, regions=regions, reductions=reductions)


def step_names(plan: Plan) -> list[str]:
    """The sub-runs of ``plan`` in the order they run (directories under ``out``)."""
    if isinstance(plan, Campos2015Plan):
        return ["table1", "layers", *plan.variants]
    if isinstance(plan, You2015Plan):
        cnn = ["transfer"] if plan.template.init != "random" else []
        return ["baselines", *cnn, *[f"pcnn-{s}" for s in plan.subsets]]
    return (["crossval"] if plan.run is None else []) + ["regions"]


# --------------------------------------------------------------------------------------------
# running the sub-runs


class _Session:
    """Bookkeeping of one reproduction directory: weights per sub-run, step timings."""

    def __init__(self, out: Path, rundir: RunDir, progress: bool,
                 only: Sequence[str] | None = None) -> None:
        self.out = out
        self.rundir = rundir
        self.progress = progress
        self.only = None if only is None else set(only)
        self.weights: dict[str, dict[str, Any]] = _read_json(out / "weights.json", {})
        self.steps: dict[str, dict[str, Any]] = _read_json(out / "steps.json", {})
        self._tried: dict[tuple, str | None] = {}

    def save(self) -> None:
        self.rundir.write_json("weights.json", self.weights)
        self.rundir.write_json("steps.json", self.steps)

    def step(self, name: str, done: Callable[[], bool], work: Callable[[], Any]) -> None:
        """Run ``work`` unless ``done()``; record the status and the seconds spent."""
        entry = self.steps.setdefault(name, {"status": "pending", "seconds": 0.0})
        if done():
            if entry["status"] != "done":
                entry["status"] = "done"
            log.info("reproduce: %s already done, reused", name)
            self.save()
            return
        if self.only is not None and name not in self.only:
            entry["status"] = "skipped (not in --only)"
            log.info("reproduce: %s skipped (not in --only)", name)
            self.save()
            return
        log.info("reproduce: running %s", name)
        timer = Timer()
        entry["status"] = "running"
        self.save()
        try:
            work()
        finally:
            entry["seconds"] = float(entry.get("seconds", 0.0)) + timer.elapsed
            entry["status"] = "done" if done() else "interrupted"
            self.save()

    def weights_failure(self, model: str, init: str, kwargs: Mapping[str, Any]) -> str | None:
        """None when ``init`` loads into ``model``, else the WeightsError's one-line message."""
        key = (model, init) if init == "imagenet" else (model, init, json.dumps(
            to_jsonable(kwargs), sort_keys=True))
        if key not in self._tried:
            try:
                create_model(model, init=init, **kwargs)
                self._tried[key] = None
            except WeightsError as e:
                self._tried[key] = " ".join(str(e).split())
        return self._tried[key]

    def resolve_init(self, name: str, cfg: RunConfig) -> RunConfig:
        """``cfg`` if its weights load, else ``cfg`` with random weights (recorded with why)."""
        reason = None
        if cfg.init != "random":
            reason = self.weights_failure(cfg.model, cfg.init, cfg.model_kwargs)
        used = cfg.init if reason is None else "random"
        if reason:
            log.warning("%s: %s; training from random weights instead (the report says so)",
                        name, reason)
        self.weights[name] = {"model": cfg.model, "model_kwargs": cfg.model_kwargs,
                              "requested": cfg.init, "used": used, "reason": reason}
        self.save()
        return cfg if reason is None else dataclasses.replace(cfg, init="random")

    def crossval(self, name: str, cfg: RunConfig) -> None:
        """Sub-run ``out/name``: a cross-validation of ``cfg`` (resumed if it was started)."""
        path = self.out / name

        def work() -> None:
            if (path / "config.json").exists():  # started earlier: its stored config wins
                crossval(cfg, path, resume=True, progress=self.progress)
            else:
                crossval(self.resolve_init(name, cfg), path, progress=self.progress)

        self.step(name, lambda: (path / "summary.json").exists(), work)
        if name not in self.weights and (path / "config.json").exists():
            # started by an older session without weights.json
            stored = _read_json(path / "config.json", {})
            self.weights[name] = {"model": stored.get("model"), "requested": None,
                                  "used": stored.get("init"), "reason": None}
            self.save()

    def weights_label(self, name: str) -> str:
        w = self.weights.get(name)
        if w is None:
            return "n/a"
        return weights_label(w)


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


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _plan_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON, without what does not change results (device, reduction notes)."""
    d = to_jsonable(plan)

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("device", "reductions")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return {"paper": plan.paper, **strip(d)}


def _open_out(plan: Plan, out: Path, resume: bool) -> RunDir:
    stored = _read_json(out / "config.json", None)
    new = _plan_dict(plan)
    if stored is None:
        return RunDir(out, config={"command": "reproduce", "plan": new})
    if not resume:
        raise VsentError(f"{out} already holds a reproduction: pass --resume to continue it, "
                         "or choose another --out")
    old = stored.get("plan", {})
    if old.get("paper") != new["paper"]:
        raise VsentError(f"{out / 'config.json'}: this directory reproduces {old.get('paper')}, "
                         f"not {new['paper']}; choose another --out")
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise VsentError(f"{out / 'config.json'}: the stored reproduction used other "
                         f"{', '.join(diff)} (e.g. --quick, --init, --data); resume with the "
                         "same options or choose another --out")
    log.info("resuming the reproduction in %s", out)
    return RunDir(out)


# --------------------------------------------------------------------------------------------
# the entry point


def reproduce(plan: Plan, out: str | Path, *, resume: bool = False, progress: bool = True,
              command: str | None = None, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the sub-runs of ``plan`` that are not done yet and write the report.

    Parameters
    ----------
    plan : from :func:`make_plan` (or a hand-made one, e.g. a tiny template for tests).
    out : reproduction directory (see the module docstring).
    resume : continue a reproduction already in ``out`` (same plan), keeping finished sub-runs.
    command : the command line shown in the report's header.
    only : run only these sub-runs (names of :func:`step_names`); the others are reused when
        finished and reported as not run otherwise.

    Returns
    -------
    dict
        The report as written to ``report.json``.
    """
    out = Path(out)
    timer = Timer()
    rundir = _open_out(plan, out, resume)
    try:
        if only is not None:
            unknown = sorted(set(only) - set(step_names(plan)))
            if unknown:
                raise VsentError(f"--only {','.join(unknown)}: not a sub-run of {plan.paper}; "
                                 f"choose from {', '.join(step_names(plan))}")
        session = _Session(out, rundir, progress, only)
        if isinstance(plan, Campos2015Plan):
            report = _campos2015(plan, session)
        elif isinstance(plan, You2015Plan):
            report = _you2015(plan, session)
        elif isinstance(plan, Sun2016Plan):
            report = _sun2016(plan, session)
        else:
            raise TypeError(f"not a reproduction plan: {type(plan).__name__}")
        report["header"] = _header(plan, session, command, timer.elapsed)
        report["weights"] = session.weights
        report["weights_failures"] = sorted({w["reason"] for w in session.weights.values()
                                             if w.get("reason")})
        report["steps"] = session.steps
        report["notes"] = _notes(plan, session, report)
        rundir.write_json("report.json", report)
        rundir.write_text("report.md", report_markdown(report))
        log.info("reproduction report: %s", out / "report.md")
        return report
    finally:
        rundir.close()


# --------------------------------------------------------------------------------------------
# reading measured numbers back from the run directories


def _rel(session: _Session, path: Path) -> str:
    """A run directory as the report names it: relative to ``out`` when inside it."""
    try:
        return str(path.resolve().relative_to(session.out.resolve()))
    except ValueError:
        return str(path.resolve())


def lookup(run_dir: Path, file: str, key: Sequence[str]) -> dict[str, float] | None:
    """``{"mean", "std"}`` at ``key`` in ``run_dir/file`` (JSON), or None if not there."""
    path = Path(run_dir) / file
    if not path.exists():
        return None
    node: Any = json.loads(path.read_text())
    for k in key:
        if not isinstance(node, Mapping) or k not in node:
            return None
        node = node[k]
    if not isinstance(node, Mapping) or "mean" not in node:
        return None
    return {"mean": float(node["mean"]), "std": float(node.get("std", 0.0))}


def _row(session: _Session, cells: Sequence[str], published: papers.Published | None,
         run_dir: Path, file: str, key: Sequence[str], weights: str) -> dict[str, Any]:
    """One table row: the published value (None: the paper has no such row) and ours."""
    return {
        "cells": list(cells),
        "paper": None if published is None else {
            "mean": published.mean, "std": published.std, "source": published.source},
        "ours": lookup(run_dir, file, key),
        "weights": weights,
        "run_dir": _rel(session, run_dir),
        "file": file,
        "key": list(key),
    }


def _table(table_id: str, title: str, columns: Sequence[str], rows: list[dict],
           unit: str = "fraction", note: str = "") -> dict[str, Any]:
    return {"id": table_id, "title": title, "columns": list(columns), "rows": rows,
            "unit": unit, "note": note}


# --------------------------------------------------------------------------------------------
# Campos et al. 2015


def _campos2015(plan: Campos2015Plan, s: _Session) -> dict[str, Any]:
    s.crossval("table1", plan.template)
    table1 = s.out / "table1"
    layers_dir = s.out / "layers"
    if not (table1 / "summary.json").exists() and (s.only is None or "layers" in s.only):
        raise VsentError("the layer probes need Table 1's models: add table1 to --only")
    cfg = LayersConfig(run=str(table1.resolve()), probe=plan.probe,
                       device=plan.template.train.device, keep_features=plan.keep_features)
    s.step("layers", lambda: (layers_dir / "layers.json").exists(),
           lambda: layer_probes(cfg, layers_dir, progress=s.progress))
    for name, kwargs in plan.variants.items():
        variant = dataclasses.replace(
            plan.template, model_kwargs={**plan.template.model_kwargs, **kwargs})
        s.crossval(name, variant)

    w1 = s.weights_label("table1")
    model = plan.template.model
    t1_rows = [
        _row(s, [f"{model} {plan.template.model_kwargs.get('arch', '')}".strip(), _EVALS[e]],
             papers.CAMPOS2015_TABLE1[e], table1, "summary.json", [e, "accuracy"], w1)
        for e in _EVALS
    ]
    summary = _read_json(layers_dir / "layers.json", {})
    layer_names = list(summary) or list(papers.CAMPOS2015_TABLE2_LAYERS)
    t2_rows = []
    for layer in layer_names:
        for clf in plan.probe.classifiers:
            pub = papers.CAMPOS2015_TABLE2.get(layer, {}).get(clf)
            t2_rows.append(_row(s, [layer, {"svm": "linear SVM"}.get(clf, clf)], pub,
                                layers_dir, "layers.json", [layer, clf], w1))
    tables = [
        _table("table1", "Table 1: fine-tuned CaffeNet (fc8-2), five-agree, 5-fold CV, accuracy",
               ["model", "evaluation"], t1_rows),
        _table("table2", "Table 2: linear probes on each layer of Table 1's fold models "
                         "(centre crop), accuracy", ["layer", "classifier"], t2_rows,
               note="Fold k's probe is trained on fold k's training images with the model "
                    "fine-tuned on them, and tested on fold k's test images."),
    ]
    for tid, title, published in (
        ("table3", "Table 3: removing layers, accuracy", papers.CAMPOS2015_TABLE3),
        ("table4", "Table 4: adding layers, accuracy", papers.CAMPOS2015_TABLE4),
    ):
        rows = []
        for arch, by_eval in published.items():
            for e in _EVALS:
                rows.append(_row(s, [CAMPOS_VARIANT_LABELS.get(arch, arch), _EVALS[e]],
                                 by_eval[e], s.out / arch, "summary.json", [e, "accuracy"],
                                 s.weights_label(arch)))
        tables.append(_table(tid, title, ["architecture", "evaluation"], rows))
    extra = [arch for arch in plan.variants if arch not in CAMPOS_VARIANTS]
    if extra:  # variants of a custom plan that are not rows of the paper
        rows = [_row(s, [arch, _EVALS[e]], None, s.out / arch, "summary.json",
                     [e, "accuracy"], s.weights_label(arch)) for arch in extra for e in _EVALS]
        tables.append(_table("variants", "Other variants (not in the paper), accuracy",
                             ["architecture", "evaluation"], rows))
    majority = _majority(table1 / "predictions.csv")
    figures = [_campos_figure(s.out, tables, summary, plan, majority)]
    return {"paper": "campos2015", "title": papers.CAMPOS2015, "tables": tables,
            "figures": [f for f in figures if f], "majority": majority}


def _majority(predictions: Path) -> dict[str, Any] | None:
    """Accuracy of always answering "positive" on the same test folds (mean, std over folds)."""
    if not predictions.exists():
        return None
    with predictions.open(newline="") as f:
        rows = list(csv.DictReader(f))
    by_fold: dict[str, list[int]] = {}
    for r in rows:
        by_fold.setdefault(r["fold"], []).append(int(r["label"]))
    accs = [float(np.mean(np.asarray(v) == 1)) for v in by_fold.values()]
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)),
            "source": str(predictions.parent.name + "/predictions.csv")}


def _campos_figure(out: Path, tables: list[dict], layers: Mapping[str, Any],
                   plan: Campos2015Plan, majority: dict | None) -> str | None:
    plt = _pyplot()
    rows = [r for t in tables if t["id"] in ("table1", "table3", "table4", "variants")
            for r in t["rows"]]
    archs: list[str] = []
    for r in rows:
        name = r["run_dir"]
        if name not in archs:
            archs.append(name)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
    x = np.arange(len(archs))
    for i, (e, label) in enumerate(_EVALS.items()):
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
            ax1.text(j, 0.02, "not run", ha="center", va="bottom", rotation=90, fontsize=7,
                     color="grey")
    if majority:
        ax1.axhline(majority["mean"], color="grey", ls="--", lw=1,
                    label="always positive (same folds)")
    labels = ["fc8-2 (Table 1)" if a == "table1" else a for a in archs]
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
                             label=f"ours, {clf}")
            pub = [(j, papers.CAMPOS2015_TABLE2.get(n, {}).get(clf)) for j, n in enumerate(names)]
            pub = [(j, p.mean) for j, p in pub if p is not None and p.mean is not None]
            if pub:
                px, py = zip(*pub, strict=True)
                ax2.plot(px, py, "D", ms=5, label=f"published, {clf}")
        ax2.set_xticks(np.arange(len(names)), names, rotation=45, ha="right")
        if majority:
            ax2.axhline(majority["mean"], color="grey", ls="--", lw=1)
        ax2.legend(fontsize=7)
    else:
        ax2.text(0.5, 0.5, "layer probes not run", ha="center", transform=ax2.transAxes)
    ax2.set_ylabel("probe accuracy")
    ax2.set_title("Table 2: layer probes (published values not verified)")
    fig.tight_layout()
    name = "campos2015.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


# --------------------------------------------------------------------------------------------
# You et al. 2015


def _you2015(plan: You2015Plan, s: _Session) -> dict[str, Any]:
    from vsent.analyses import baselines as B
    from vsent.analyses import pcnn as P

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
           lambda: B.run_baselines(t.data, subset=subset_arg, folds_spec=t.folds, out=base_dir,
                                   seed=t.seed, skip_bad=t.skip_bad, progress=s.progress,
                                   **kwargs))

    # The CNN row: domain transfer of a pre-trained checkpoint, or 2CONV-4FC from random weights.
    use_transfer = t.init != "random"
    if use_transfer and "transfer" not in s.weights:
        try:
            P.checkpoint_spec(t.init)
            reason = None
        except WeightsError as e:
            reason = " ".join(str(e).split())
        s.weights["transfer"] = {"model": t.model, "requested": t.init,
                                 "used": "random" if reason else t.init, "reason": reason}
        s.save()
    if use_transfer and s.weights["transfer"]["used"] != "random":
        tdir = s.out / "transfer"
        tcfg = P.TransferConfig(model=t.init, data=t.data, subsets=list(subsets), folds=t.folds,
                                train=plan.transfer_train or P.TRANSFER_TRAIN,
                                oversample=t.oversample, skip_bad=t.skip_bad, seed=t.seed,
                                eval_batch_size=t.eval_batch_size)
        s.step("transfer", lambda: (tdir / "transfer.json").exists(),
               lambda: P.transfer(tcfg, tdir, resume=(tdir / "config.json").exists(),
                                  progress=s.progress))
        cnn_dirs = {sub: tdir / sub for sub in subsets}
        cnn_weights = s.weights_label("transfer")
        cnn_label = "2CONV-4FC, pre-trained checkpoint + domain transfer"
    else:
        random_cfg = dataclasses.replace(t, init="random")
        cnn_dirs = {}
        for sub in subsets:
            name = f"pcnn-{sub}"
            cfg = dataclasses.replace(random_cfg, subset=sub)
            s.crossval(name, cfg)
            cnn_dirs[sub] = s.out / name
        cnn_weights = RANDOM_LABEL + " (no weakly labelled pre-training)"
        cnn_label = "2CONV-4FC from random weights, Twitter only"

    def published(row: str, sub: str, metric: str) -> papers.Published | None:
        """A baseline cell of Table 6 (None: not a row of the paper)."""
        if row not in YOU_FEATURES:
            return None
        return papers.YOU2015_TABLE6[row][sub][metric]

    extra = [f for f in kwargs["features"] if f not in YOU_FEATURES]

    def rows_for(metric: str) -> list[dict]:
        rows = []
        for sub in subsets:
            for feat in (*YOU_FEATURES, *extra, "always-positive"):
                rows.append(_row(
                    s, [B.LABELS.get(feat, feat), sub, metric], published(feat, sub, metric),
                    base_dir / sub / feat, "summary.json", [metric],
                    "n/a (no network)"))
            rows.append(_row(
                s, [cnn_label, sub, metric],
                papers.YOU2015_CNN.get(sub, {}).get(metric),
                cnn_dirs[sub], "summary.json", [metric], cnn_weights))
        return rows

    tables = [
        _table("table6", "Table 6: 5-fold accuracy on Twitter I (five / four / three agree)",
               ["method", "subset", "metric"], rows_for("accuracy"),
               note="Published CNN value beside ours: You et al.'s fine-tuned 2CONV-4FC. "
                    "Their CNN and PCNN rows (networks pre-trained on ~0.5 M weakly labelled "
                    "Flickr images) are not reproduced without that data."),
        _table("table6-prf", "Table 6: precision, recall and F1 of the positive class",
               ["method", "subset", "metric"],
               rows_for("precision") + rows_for("recall") + rows_for("f1")),
    ]
    figures = [_you_figure(s.out, tables[0], subsets)]
    return {"paper": "you2015", "title": papers.YOU2015, "tables": tables, "figures": figures}


def _you_figure(out: Path, table: dict, subsets: Sequence[str]) -> str:
    plt = _pyplot()
    methods: list[str] = []
    for r in table["rows"]:
        if r["cells"][0] not in methods:
            methods.append(r["cells"][0])
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(methods)), 4.2))
    x = np.arange(len(methods))
    width = 0.8 / max(len(subsets), 1)
    for i, sub in enumerate(subsets):
        means, stds, pts = [], [], []
        for j, m in enumerate(methods):
            r = next(r for r in table["rows"] if r["cells"][0] == m and r["cells"][1] == sub)
            means.append(r["ours"]["mean"] if r["ours"] else np.nan)
            stds.append(r["ours"]["std"] if r["ours"] else 0.0)
            if r["paper"] and r["paper"]["mean"] is not None:
                pts.append((j, r["paper"]["mean"]))
        off = (i - (len(subsets) - 1) / 2) * width
        ax.bar(x + off, means, width, yerr=stds, capsize=2, label=f"ours, {sub}-agree")
        if pts:
            px, py = zip(*pts, strict=True)
            ax.plot(np.asarray(px) + off, py, "kD", ms=6, label=f"published, {sub}-agree")
    ax.set_xticks(x, methods, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy, mean +- std over folds")
    ax.set_ylim(0, 1)
    ax.set_title("You et al. 2015, Table 6")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = "you2015.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


# --------------------------------------------------------------------------------------------
# Sun et al. 2016


def _sun2016(plan: Sun2016Plan, s: _Session) -> dict[str, Any]:
    if plan.run is not None:
        run_dir = Path(plan.run)
        if not (run_dir / "summary.json").exists():
            raise VsentError(f"{run_dir}: not a finished crossval run (no summary.json)")
        stored = _read_json(run_dir / "config.json", {})
        s.weights.setdefault("run", {"model": stored.get("model"), "requested": None,
                                     "used": stored.get("init"), "reason": None})
        s.save()
        wname = "run"
    else:
        if plan.template is None:
            raise VsentError("sun2016 needs a template or an existing run")
        s.crossval("crossval", plan.template)
        run_dir = s.out / "crossval"
        wname = "crossval"
        if not (run_dir / "summary.json").exists() and (s.only is None or "regions" in s.only):
            raise VsentError("the regions need the crossval run's models: add crossval to "
                             "--only (or pass --run)")
    reg_dir = s.out / "regions"
    s.step("regions", lambda: (reg_dir / "cost.json").exists(),
           lambda: evaluate_regions(run_dir, reg_dir, plan.regions,
                                    resume=(reg_dir / "config.json").exists(),
                                    progress=s.progress))
    w = s.weights_label(wname)
    table1 = _read_json(reg_dir / "table1.json", {})
    methods = [m for m in METHODS if m in table1.get("results", {})] or list(METHODS)
    k = table1.get("k", plan.regions.k)
    rows = []
    for m in methods:
        pub = papers.SUN2016_TABLE1.get(m)
        if pub is None:
            pub = papers.NOT_VERIFIED
        if m == "ar" and k != papers.SUN2016_K:
            pub = papers.Published(None, None, f"published for K = {papers.SUN2016_K} only")
        rows.append(_row(s, [m, METHODS[m]], pub, reg_dir, "table1.json",
                         ["results", m, "accuracy"], w))
    tables = [
        _table("table1", f"Table 1: Twitter I five-agree, 5-fold, accuracy (K = {k})",
               ["method", "description"], rows, unit="percent",
               note="Published: VGGNet + affective regions with K = 11 (their full method); "
                    "placed beside our late fusion of the top-K regions by affective score. "
                    "Their other rows are not verified here."),
    ]
    figures = [_sun_figure(s.out, reg_dir)]
    return {"paper": "sun2016", "title": papers.SUN2016, "tables": tables,
            "figures": [f for f in figures if f], "run": _rel(s, run_dir)}


def _sun_figure(out: Path, reg_dir: Path) -> str | None:
    sweep = _read_json(reg_dir / "k_sweep.json", None)
    if sweep is None:
        return None
    plt = _pyplot()
    ks = sweep["k"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for by, style in (("ar", "o-"), ("objectness", "s--"), ("sentiment", "^--"),
                      ("random", "x:")):
        if by in sweep:
            ax.plot(ks, 100 * np.asarray(sweep[by]["mean"]), style, ms=4, label=f"ours, {by}")
    ax.axhline(100 * sweep["global"]["mean"], color="k", lw=1, label="ours, whole image")
    pub = papers.SUN2016_TABLE1["ar"]
    ax.plot([papers.SUN2016_K], [100 * pub.mean], "rD", ms=7,
            label=f"published, VGGNet + AR, K={papers.SUN2016_K}")
    for kk, p in papers.SUN2016_K_SWEEP.items():
        if p.mean is not None:
            ax.plot([kk], [100 * p.mean], "rd", ms=5)
    ax.set_xlabel("K (regions fused)")
    ax.set_ylabel("accuracy (%), mean over folds")
    ax.set_title("Sun et al. 2016, accuracy vs K (Figure 4)")
    ax.set_xticks(ks)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = "sun2016_k_sweep.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


# --------------------------------------------------------------------------------------------
# the report


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _header(plan: Plan, s: _Session, command: str | None, seconds: float) -> dict[str, Any]:
    v = versions()
    template = plan.template
    data = template.data if template is not None else None
    if data is None and isinstance(plan, Sun2016Plan) and plan.run:
        data = _read_json(Path(plan.run) / "config.json", {}).get("data")
    return {
        "command": command or f"vsent.reports.reproduce.reproduce({plan.paper!r} plan)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": v.get("platform"), "cpus": os.cpu_count(),
                    "torch_threads": v.get("torch_threads"), "cuda": v.get("cuda")},
        "versions": {k: v.get(k) for k in ("python", "vsent", "torch", "torchvision",
                                            "numpy", "scikit-learn",
                                            "opencv-contrib-python-headless", "git_commit")},
        "data": data,
        "subset": template.subset if template is not None else None,
        "folds": template.folds if template is not None else None,
        "quick": bool(plan.reductions),
        "seconds_this_session": seconds,
        "seconds_all_sessions": float(sum(e.get("seconds", 0.0) for e in s.steps.values())),
    }


def _notes(plan: Plan, s: _Session, report: Mapping[str, Any]) -> list[str]:
    """Every deviation from the paper, for the report's notes section."""
    notes = [f"Reduced for a CPU (--quick): {r}." for r in plan.reductions]
    if not plan.reductions:
        notes.append("Full mode: the paper's recipe as vsent implements it (see README, "
                     "'The recipe, and where vsent departs from the paper').")
    for reason in report.get("weights_failures", []):
        notes.append(f"Weights unavailable, random weights used instead: {reason}")
    unverified = sum(1 for t in report["tables"] for r in t["rows"]
                     if r["paper"] is not None and r["paper"]["mean"] is None
                     and r["paper"]["source"] == papers.NOT_VERIFIED.source)
    if unverified:
        notes.append(f"{unverified} published cells are shown as '{NOT_VERIFIED}': they could "
                     "not be read from a citable copy of the paper here, and no value is "
                     "quoted from memory (see vsent/papers.py for what was searched).")
    missing = sum(1 for t in report["tables"] for r in t["rows"] if r["ours"] is None)
    if missing:
        notes.append(f"{missing} cells read '{NOT_RUN}': their sub-run is not part of this "
                     "plan, was left out by --only, or did not finish (re-run with --resume).")
    if isinstance(plan, Campos2015Plan):
        tr = plan.template.train
        notes += [
            f"Folds: {plan.template.folds}. The authors' 5 splits (folds/campos) cover 880 of "
            "the 882 five-agree images and are not stratified.",
            f"Solver: {tr.optimizer}, lr {tr.lr:g} ({tr.schedule} schedule), batch size "
            f"{tr.batch_size} (not stated in the paper), weight decay {tr.weight_decay:g}; "
            f"new layers at {tr.head_lr_mult:g}x lr, biases at {tr.bias_lr_mult:g}x lr without "
            "weight decay (Caffe reference convention); CaffeNet fc6-2 at base lr 1e-4 (the "
            "paper lowered it to converge).",
            "Table 2: C of each probe chosen by an inner CV on the fold's training images; "
            "features centred and scaled by one global factor (see vsent.analyses.layers).",
            "fc7-4096, fc6-4096 and fc8-1000 predict the arg-max over all their outputs; an "
            "index other than 0/1 counts as wrong (as Caffe's accuracy layer does).",
        ]
        if report.get("majority"):
            m = report["majority"]
            notes.append(f"Always answering 'positive' on the same test folds scores "
                         f"{m['mean']:.3f} +- {m['std']:.3f} (computed from {m['source']}).")
    elif isinstance(plan, You2015Plan):
        notes += [
            "Folds: the 5 campos splits of each subset (the same folds as the CNN runs); "
            "You et al.'s own folds are not published.",
            "Baselines: GCH/LCH/SIFT BoW as vsent.analyses.baselines implements them after "
            "Siersdorfer et al. 2010; a linear SVM with C chosen by inner CV.",
            "Of the published precision/recall/F1/accuracy of You et al.'s Table 6 only the "
            "CNN's five-agree accuracy could be verified here (vsent/papers.py says where).",
        ]
    else:
        notes += [
            "Proposals: OpenCV EdgeBoxes on vsent's gradient edge map unless an SED model is "
            "given (Sun et al. used EdgeBoxes with structured edges).",
            "Late fusion Y = Y_global + beta/K * sum of the top-K region scores (beta = "
            f"{plan.regions.beta}); AR = sqrt(obj^2 + alpha senti^2), alpha = "
            f"{plan.regions.alpha}.",
            "Sun et al.'s fine-tuning recipe for VGGNet is not verified here; full mode uses "
            "vsent's Campos et al. recipe (SGD, lr 0.001 /10 every 6 epochs, 65 epochs).",
        ]
    return notes


def _fmt(value: Mapping[str, Any] | None, unit: str) -> str:
    if value is None or value.get("mean") is None:
        return ""
    scale, suffix, digits = (100.0, " %", 2) if unit == "percent" else (1.0, "", 3)
    text = f"{scale * value['mean']:.{digits}f}"
    if value.get("std") is not None:
        text += f" +- {scale * value['std']:.{digits}f}"
    return text + suffix


def paper_cell(row: Mapping[str, Any], unit: str = "fraction") -> str:
    """The ``paper`` cell of a row: the published value, or why there is none."""
    if row["paper"] is None:
        return NOT_IN_PAPER
    if row["paper"]["mean"] is None:  # its source says why (e.g. "not verified")
        return f"n/a ({row['paper']['source'] or 'not verified'})"
    return _fmt(row["paper"], unit)


def ours_cell(row: Mapping[str, Any], unit: str = "fraction") -> str:
    """The ``ours (mean +- std)`` cell: the measured value, or ``not run``."""
    return NOT_RUN if row["ours"] is None else _fmt(row["ours"], unit)


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
        f"- machine: {m['platform']}, {m['cpus']} CPUs, {m['torch_threads']} torch threads, "
        f"CUDA: {m['cuda'] or 'none'}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- mode: {'quick (CPU-sized)' if h['quick'] else 'full (the paper recipe)'}",
        f"- data: `{h['data']}` (subset {h['subset'] or 'see tables'}, folds "
        f"{h['folds'] or 'of the run'})",
        "- weights: " + ("; ".join(weights) if weights else "n/a"),
        "",
        "Each measured cell is the mean +- std over folds read from the `run dir` (relative "
        "to this report's folder) and its file and key listed in `report.json`. "
        f"`{NOT_VERIFIED}`: the paper reports it but the value could not be verified here; "
        f"`{NOT_IN_PAPER}`: the paper has no such row.",
        "",
    ]
    for t in report["tables"]:
        unit = t["unit"]
        lines += [f"## {t['title']}", ""]
        if t.get("note"):
            lines += [t["note"], ""]
        cols = [*t["columns"], "paper", "ours (mean +- std)", "weights", "run dir"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in t["rows"]:
            cells = [*r["cells"], paper_cell(r, unit), ours_cell(r, unit), r["weights"],
                     f"`{r['run_dir']}`"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report.get("figures"):
        lines += ["## Figures", ""]
        lines += [f"![{f}]({f})" for f in report["figures"]]
        lines.append("")
    lines += ["## Notes and deviations from the paper", ""]
    lines += [f"- {n}" for n in report["notes"]]
    lines += ["", "## Sub-runs", "", "| sub-run | status | seconds |", "|---|---|---:|"]
    for name, e in report["steps"].items():
        lines.append(f"| `{name}` | {e['status']} | {e['seconds']:.0f} |")
    lines.append("")
    return "\n".join(lines)


def command_line(paper: str, *, quick: bool, out: str, data: str, init: str | None,
                 device: str, resume: bool, run: str | None = None, seed: int = 0,
                 only: str | None = None) -> str:
    """The canonical ``vsent reproduce`` command of these options (for the report header)."""
    parts = ["vsent", "reproduce", paper]
    if quick:
        parts.append("--quick")
    parts += ["--out", out, "--data", data]
    if init:
        parts += ["--init", init]
    if run:
        parts += ["--run", run]
    if device != "auto":
        parts += ["--device", device]
    if seed:
        parts += ["--seed", str(seed)]
    if only:
        parts += ["--only", only]
    if resume:
        parts.append("--resume")
    return shlex.join(parts)


__all__ = [
    "CAMPOS_VARIANTS", "Campos2015Plan", "NOT_IN_PAPER", "NOT_RUN", "NOT_VERIFIED", "PAPERS",
    "Plan", "RANDOM_LABEL", "Sun2016Plan", "You2015Plan", "command_line",
    "lookup", "make_plan", "step_names", "ours_cell", "paper_cell", "report_markdown", "reproduce",
    "weights_label",
]
