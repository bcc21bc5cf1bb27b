"""``vsent reproduce``: the step runner (plan, resume, weights fallback) and the paper registry.

A paper is one module of :mod:`vsent.reports` named ``<author><year>`` (``campos2015.py``,
``you2015.py``, ``sun2016.py``) that defines a :class:`Paper` subclass decorated with
:func:`register_paper`. The modules are found by name (:func:`load_papers`), so adding a paper
touches one new file. A paper says what it runs (:meth:`Paper.make_plan`, :meth:`Paper.steps`)
and builds its tables from the sub-runs (:meth:`Paper.run`); this module runs the sub-runs and
writes the report (:mod:`vsent.reports.render`).

Every sub-step is a sub-run directory under ``out`` (``table1/``, ``layers/``, ``baselines/``,
``regions-five/`` ...), so ``resume=True`` continues an interrupted reproduction without
redoing finished sub-runs (and cross-validation resumes per fold and epoch), and ``only=`` runs
some of them now and reports the rest as not run. ``out`` itself holds::

    config.json versions.json run.log   the plan and the environment
    weights.json                        per sub-run: the weights asked for, used, and why
    steps.json                          per sub-run: status and seconds spent
    report.md report.json <paper>*.png  the report

Every measured number of the report names the run directory and the file and key it was read
from (``report.json``: ``run_dir``, ``file``, ``key``), so it can be checked. Published numbers
come only from :mod:`vsent.papers`; a published cell whose value is not known there reads
``not available``.

Weights. ``init="imagenet"`` is tried before each sub-run starts; when it raises
:class:`~vsent.errors.WeightsError` (offline) the sub-run trains from random weights instead,
the report says so at the top with the one-line reason, and every row from such a model is
labelled "random init, not comparable to the paper". A weights file (``init=PATH``) is never
replaced so: one that does not load into each network the plan builds from it is refused
before anything runs (:meth:`Paper.check`, :func:`check_init_file`).

A sub-run left out by ``only=`` that is not done is reported as not run, also when its
directory holds results made before (e.g. layer probes of fold models trained again since):
``steps.json`` says it is out of date, and the notes say how to bring it up to date.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from vsent.crossval import crossval, prepare
from vsent.data.datasets import dataset_layout
from vsent.errors import VsentError, WeightsError
from vsent.models import create_model
from vsent.provenance import versions
from vsent.reports import paper_modules, render
from vsent.runs import (
    CONFIG,
    RUN_OPTIONS,
    RunDir,
    Timer,
    as_stored_train_seed,
    config_diff,
    open_run_dir,
    read_config,
    to_jsonable,
)

log = logging.getLogger("vsent")

#: Paper name -> its :class:`Paper` (filled by :func:`register_paper`; see :func:`get_paper`).
PAPERS: dict[str, Paper] = {}
#: Status of a sub-run left out by ``only``, not done; with :data:`OUT_OF_DATE` when it was done
#: before and its directory is still there (its results no longer count).
SKIPPED = "skipped (not in --only)"
OUT_OF_DATE = "skipped (not in --only; out of date)"


class Paper:
    """One reproduced paper. Subclasses set :attr:`name`, :attr:`title` and implement the methods.

    A plan is a dataclass with a ``paper`` class attribute (the name), a ``template`` (the
    :class:`~vsent.crossval.RunConfig` of its networks, or None) and ``reductions`` (what the
    quick mode reduces, listed in the report).
    """

    #: Registry name (``vsent reproduce NAME``).
    name: ClassVar[str] = ""
    #: Full reference, the report's title.
    title: ClassVar[str] = ""
    #: True when the paper analyses an existing run (``--run``).
    accepts_run: ClassVar[bool] = False

    def make_plan(self, data: str, *, quick: bool, init: str | None, device: str, seed: int,
                  run: str | None) -> Any:
        """The paper's recipe, or with ``quick`` a CPU-sized version (see :func:`make_plan`)."""
        raise NotImplementedError

    def steps(self, plan: Any) -> list[str]:
        """The sub-runs of ``plan`` in the order they run (directories under ``out``)."""
        raise NotImplementedError

    def check(self, plan: Any) -> None:
        """Raise :class:`VsentError` for a plan that cannot run (before ``out`` is opened); by
        default, when the template's weights file does not load (:func:`check_init_file`)."""
        if getattr(plan, "template", None) is not None:
            check_init_file([plan.template])

    def run(self, plan: Any, session: Session) -> dict[str, Any]:
        """Run the sub-runs (through ``session``) and return ``{"tables", "figures", ...}``."""
        raise NotImplementedError

    def notes(self, plan: Any, session: Session, report: Mapping[str, Any]) -> list[str]:
        """Paper-specific notes of the report (deviations from the paper)."""
        return []

    def subsets(self, plan: Any) -> str | None:
        """The subset(s) of the report header (None: the analysed run's)."""
        return plan.template.subset if plan.template is not None else None

    def data(self, plan: Any) -> str | None:
        """The dataset of the report header."""
        return plan.template.data if plan.template is not None else None

    def folds(self, plan: Any) -> str | None:
        """The folds of the report header."""
        return plan.template.folds if plan.template is not None else None

    def analysed_run(self, plan: Any) -> dict[str, Any] | None:
        """What the header says of an existing run the plan analyses (None: it trains its
        own networks)."""
        return None


def register_paper(cls: type[Paper]) -> type[Paper]:
    """Class decorator: make ``cls`` available as ``vsent reproduce cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__}: a registered paper needs a name")
    if cls.name in PAPERS and type(PAPERS[cls.name]) is not cls:
        raise TypeError(f"paper {cls.name!r} registered twice")
    PAPERS[cls.name] = cls()
    return cls


def load_papers() -> dict[str, Paper]:
    """Import every paper module of :mod:`vsent.reports`; returns :data:`PAPERS`."""
    for name in paper_modules():
        importlib.import_module(f"vsent.reports.{name}")
    return PAPERS


def paper_names() -> tuple[str, ...]:
    """The registered papers, sorted."""
    return tuple(sorted(load_papers()))


def get_paper(name: str) -> Paper:
    """The registered paper ``name`` (:class:`VsentError` naming the known ones otherwise)."""
    papers_ = load_papers()
    if name not in papers_:
        raise VsentError(f"unknown paper {name!r}; choose one of {', '.join(sorted(papers_))}")
    return papers_[name]


def make_plan(paper: str, data: str, *, quick: bool = False, init: str | None = None,
              device: str = "auto", seed: int = 0, run: str | None = None) -> Any:
    """The plan of ``paper``: the paper's recipe, or with ``quick`` a CPU-sized version.

    Parameters
    ----------
    paper : a registered paper (:func:`paper_names`).
    data : Twitter I folder (:func:`reproduce` refuses another layout).
    quick : fewer epochs etc. (each reduction is listed in ``plan.reductions``).
    init : weights of the networks; default the paper's (``imagenet`` for CaffeNet and VGG,
        ``random`` for 2CONV-4FC, which the paper pre-trains on a weakly labelled set we do
        not have).
    run : an existing cross-validation run to analyse instead of training one (papers with
        ``accepts_run``: sun2016).
    """
    p = get_paper(paper)
    if run is not None and not p.accepts_run:
        takes = sorted(n for n, q in load_papers().items() if q.accepts_run)
        raise VsentError(f"--run applies to {', '.join(takes)} only")
    return p.make_plan(str(data), quick=quick, init=init, device=device, seed=seed, run=run)


def step_names(plan: Any) -> list[str]:
    """The sub-runs of ``plan`` in the order they run (directories under ``out``)."""
    return get_paper(plan.paper).steps(plan)


# --------------------------------------------------------------------------------------------
# running the sub-runs


class Session:
    """Bookkeeping of one reproduction directory: weights per sub-run, step timings."""

    def __init__(self, out: Path, rundir: RunDir, progress: bool,
                 only: Sequence[str] | None = None) -> None:
        self.out = out
        self.rundir = rundir
        self.progress = progress
        self.only = None if only is None else set(only)
        # (the reproduction's own bookkeeping: --resume makes it again from the sub-runs,
        # except why a sub-run's weights fell back to random, which only weights.json keeps)
        self.weights: dict[str, dict[str, Any]] = render.read_json(
            out / "weights.json", {}, "restore it from a copy, or delete it: --resume makes it "
            "again, without the reasons any sub-run's weights fell back to random")
        self.steps: dict[str, dict[str, Any]] = render.read_json(
            out / "steps.json", {}, "delete it, and --resume makes it again")
        self._tried: dict[tuple, str | None] = {}

    def save(self) -> None:
        self.rundir.write_json("weights.json", self.weights)
        self.rundir.write_json("steps.json", self.steps)

    def wants(self, name: str) -> bool:
        """True when sub-run ``name`` may run now (no ``only``, or ``name`` in it)."""
        return self.only is None or name in self.only

    def step(self, name: str, done: Callable[[], bool], work: Callable[[], Any]) -> bool:
        """Run ``work`` unless ``done()``; record the status and the seconds spent. Returns
        whether the step is done now: the rows of one that is not must read "not run", not
        what its directory holds (results of models replaced since, say)."""
        entry = self.steps.setdefault(name, {"status": "pending", "seconds": 0.0})
        if done():
            entry["status"] = "done"
            log.info("reproduce: %s already done, reused", name)
            self.save()
            return True
        if not self.wants(name):
            stale = entry["status"] in ("done", OUT_OF_DATE) and (self.out / name).exists()
            entry["status"] = OUT_OF_DATE if stale else SKIPPED
            log.info("reproduce: %s %s", name, entry["status"])
            self.save()
            return False
        log.info("reproduce: running %s", name)
        timer = Timer()
        entry["status"] = "running"
        self.save()
        stopped = "interrupted"
        try:
            work()
        except Exception:  # an error, not a stop: steps.json says which
            stopped = "failed"
            raise
        finally:
            entry["seconds"] = float(entry.get("seconds", 0.0)) + timer.elapsed
            entry["status"] = "done" if done() else stopped
            self.save()
        return entry["status"] == "done"

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

    def resolve_init(self, name: str, cfg: Any) -> Any:
        """``cfg`` if its weights load, else ``cfg`` with random weights (recorded with why);
        a weights file that does not load is a VsentError, never replaced by random weights
        (:func:`check_init_file` refuses it before anything runs)."""
        reason = None
        if cfg.init != "random":
            reason = self.weights_failure(cfg.model, cfg.init, cfg.model_kwargs)
        if reason and cfg.init != "imagenet":
            raise VsentError(f"--init {reason}")
        used = cfg.init if reason is None else "random"
        if reason:
            log.warning("%s: %s; training from random weights instead (the report says so)",
                        name, reason)
        self.weights[name] = {"model": cfg.model, "model_kwargs": cfg.model_kwargs,
                              "requested": cfg.init, "used": used, "reason": reason}
        self.save()
        return cfg if reason is None else dataclasses.replace(cfg, init="random")

    def record_weights(self, name: str, run_dir: Path) -> None:
        """Weights of a sub-run started by an older session (no weights.json entry)."""
        if name not in self.weights and (run_dir / "config.json").exists():
            stored = render.read_json(run_dir / "config.json", {})
            self.weights[name] = {"model": stored.get("model"), "requested": None,
                                  "used": stored.get("init"), "reason": None}
            self.save()

    def crossval(self, name: str, cfg: Any) -> Path:
        """Sub-run ``out/name``: a cross-validation of ``cfg`` (resumed if it was started).

        A finished sub-run is reused only if its config.json is ``cfg``'s (the weights apart:
        they may have fallen back to random): a run of another subset, dataset or recipe copied
        there must not be reported as this plan's.
        """
        path = self.out / name
        if (path / CONFIG).exists():
            # as crossval records it: with the lr the model asks for (fc6-2 trains at 1e-4)
            recorded, _ = prepare(dataclasses.replace(cfg, init="random"))
            stored = read_config(path)
            # a sub-run recorded before train.seed followed seed (--seed N) is still this one
            now = as_stored_train_seed(stored, {"command": "crossval", **recorded.to_dict()})
            diff = config_diff(stored, now, ignore=RUN_OPTIONS | {"init"})
            if diff:
                keys = ", ".join(d.split(":")[0] for d in diff)
                raise VsentError(f"{path}: not this reproduction's {name} sub-run: made with "
                                 f"other {keys} ({'; '.join(diff)}); move it away, or pass "
                                 "--overwrite to start the reproduction again")

        def work() -> None:
            stored = render.read_json(path / "config.json")
            if stored is not None:  # started earlier: resumed with the weights it started from
                crossval(dataclasses.replace(cfg, init=stored.get("init", cfg.init)), path,
                         resume=True, progress=self.progress)
            else:
                crossval(self.resolve_init(name, cfg), path, progress=self.progress)

        self.step(name, lambda: (path / "summary.json").exists(), work)
        self.record_weights(name, path)
        return path

    def weights_label(self, name: str) -> str:
        w = self.weights.get(name)
        return "n/a" if w is None else render.weights_label(w)

    def row(self, cells: Sequence[str], published: Any, run_dir: Path | None, file: str = "",
            key: Sequence[str | int] = (), weights: str = "",
            planned: bool = True) -> dict[str, Any]:
        """One report row (:func:`vsent.reports.render.make_row`) relative to ``out``."""
        return render.make_row(cells, published, out=self.out, run_dir=run_dir, file=file,
                               key=key, weights=weights, planned=planned)


def check_init_file(configs: Iterable[Any]) -> None:
    """VsentError unless the weights file ``init`` of each config (a
    :class:`~vsent.crossval.RunConfig`) loads into its model: only ImageNet weights that cannot
    be downloaded fall back to random ones, not a damaged or foreign file, which would train
    every network from random weights for hours. ``random`` and ``imagenet`` are not read."""
    tried: set[str] = set()
    for cfg in configs:
        key = json.dumps([cfg.model, cfg.init, to_jsonable(cfg.model_kwargs)], sort_keys=True)
        if cfg.init in ("random", "imagenet") or key in tried:
            continue
        tried.add(key)
        try:
            create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)
        except WeightsError as e:
            raise VsentError(f"--init {' '.join(str(e).split())}") from None


def plan_dict(plan: Any) -> dict[str, Any]:
    """The plan as JSON, without what does not change results (device, reduction notes)."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("device", "reductions")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return {"paper": plan.paper, **strip(to_jsonable(plan))}


def open_reproduction(plan: Any, out: Path, *, resume: bool, overwrite: bool = False) -> RunDir:
    """Open the reproduction directory with the run-directory policy of :mod:`vsent.runs`.

    A reproduction is never "finished" (``done=None``): re-opening one needs ``resume`` and
    the same plan (a differing plan is refused with its keys named), or ``overwrite``. A plan
    stored before ``template.train.seed`` followed ``seed`` compares as the same plan
    (:func:`vsent.runs.as_stored_train_seed`, applied by the policy).
    """
    return open_run_dir(out, {"command": "reproduce", "plan": plan_dict(plan)},
                        resume=resume, overwrite=overwrite, done=None)


# --------------------------------------------------------------------------------------------
# the entry point


def reproduce(plan: Any, out: str | Path, *, resume: bool = False, overwrite: bool = False,
              progress: bool = True, command: str | None = None,
              only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the sub-runs of ``plan`` that are not done yet and write the report.

    Parameters
    ----------
    plan : from :func:`make_plan` (or a hand-made one, e.g. a tiny template for tests).
    out : reproduction directory (see the module docstring).
    resume : continue a reproduction already in ``out`` (same plan), keeping finished sub-runs.
    overwrite : delete a reproduction already in ``out`` and start again.
    command : the command line shown in the report's header.
    only : run only these sub-runs (names of :func:`step_names`); the others are reused when
        finished and up to date, and reported as not run otherwise.

    Returns
    -------
    dict
        The report as written to ``report.json``.
    """
    paper = get_paper(plan.paper)
    out = Path(out)
    if only is not None:  # checked before the directory is created
        names = paper.steps(plan)
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise VsentError(f"--only {','.join(unknown)}: not a sub-run of {plan.paper}; "
                             f"choose from {', '.join(names)}")
    # what the user typed is checked before --out is made or any weights are fetched (a
    # weights file is loaded by paper.check); only weights that cannot be downloaded fall back
    # to random ones
    data = paper.data(plan)
    if data is not None and not Path(data).exists():
        raise VsentError(f"{data}: no such file or directory")
    layout = None if data is None else dataset_layout(data)
    if data is not None and layout != "twitter":
        # the papers' tables are Twitter I's, its subsets and the Campos folds
        what = {"folder": "a folder dataset", "csv": "a CSV dataset"}.get(layout, "not a dataset")
        raise VsentError(f"{data}: vsent reproduce runs the papers' experiments on Twitter I "
                         f"(images/ + ground_truth/) and this is {what}; for other data use "
                         "vsent crossval (--folds stratified), baselines or pcnn")
    init = getattr(getattr(plan, "template", None), "init", None)
    if init not in (None, "imagenet", "random") and not Path(init).exists():
        raise VsentError(f"--init {init}: no such file (imagenet, random or a weights file)")
    paper.check(plan)
    timer = Timer()
    rundir = open_reproduction(plan, out, resume=resume, overwrite=overwrite)
    with rundir:
        session = Session(out, rundir, progress, only)
        report = {"paper": paper.name, "title": paper.title, **paper.run(plan, session)}
        _provenance(session)
        report["header"] = _header(paper, plan, session, command, timer.elapsed)
        report["weights"] = session.weights
        report["weights_failures"] = sorted({w["reason"] for w in session.weights.values()
                                             if w.get("reason")})
        report["steps"] = session.steps
        report["notes"] = _notes(paper, plan, session, report)
        rundir.write_json("report.json", report)
        rundir.write_text("report.md", render.report_markdown(report))
        log.info("reproduction report: %s", out / "report.md")
        return report


def _provenance(s: Session) -> None:
    """Record in each step the commit and CPU its sub-run was made with (its versions.json):
    a report re-rendered later states today's commit in its header, not theirs."""
    for name, entry in s.steps.items():
        v = render.read_json(s.out / name / "versions.json", {})
        entry["git_commit"] = v.get("git_commit")
        entry["cpu"] = render.cpu_label(v) or None  # as the header names it: model (ISA)
    s.save()


def _header(paper: Paper, plan: Any, s: Session, command: str | None,
            seconds: float) -> dict[str, Any]:
    v = versions()
    template = plan.template
    return {
        "command": command or f"vsent.reports.runner.reproduce({plan.paper!r} plan)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": v.get("platform"), "cpu": v.get("cpu"),
                    "cpu_capability": v.get("cpu_capability"), "cpus": os.cpu_count(),
                    "torch_threads": v.get("torch_threads"), "cuda": v.get("cuda")},
        "versions": {k: v.get(k) for k in ("python", "vsent", "torch", "torchvision",
                                            "numpy", "scikit-learn",
                                            "opencv-contrib-python-headless", "git_commit")},
        "data": paper.data(plan),
        "subset": paper.subsets(plan),
        "folds": paper.folds(plan),
        "analysed_run": paper.analysed_run(plan),
        "quick": bool(plan.reductions) and template is not None,
        "seconds_this_session": seconds,
        "seconds_all_sessions": float(sum(e.get("seconds", 0.0) for e in s.steps.values())),
    }


def _notes(paper: Paper, plan: Any, s: Session, report: Mapping[str, Any]) -> list[str]:
    """Every deviation from the paper, for the report's notes section."""
    notes = [f"Reduced for a CPU (--quick): {r}." for r in plan.reductions]
    if not plan.reductions and paper.analysed_run(plan) is None:
        notes.append("Full mode: the paper's recipe as vsent implements it (see README, "
                     "'The recipe, and where vsent departs from the paper').")
    for reason in report.get("weights_failures", []):
        notes.append(f"Weights unavailable, random weights used instead: {reason}")
    rows = [r for t in report["tables"] for r in t["rows"]]
    unavailable = sum(1 for r in rows if r["paper"] is not None and r["paper"]["mean"] is None)
    if unavailable:
        notes.append(f"{unavailable} published cells read '{render.NOT_AVAILABLE}': the paper "
                     "has them but their values are not in the transcription of the papers' "
                     "tables (vsent/papers.py); no value is quoted from memory.")
    missing = [render.ours_cell(r) for r in rows if r["ours"] is None and r["run_dir"] is not None]
    for name, entry in s.steps.items():
        if entry.get("status") == OUT_OF_DATE:
            notes.append(f"`{name}`: done before, out of date now (made from a sub-run that "
                         "changed since, e.g. a fold model trained again, or its own files "
                         f"changed), so its cells read '{render.NOT_RUN}'; run it again with "
                         f"--resume --only {name}.")
    if missing.count(render.NOT_RUN):
        notes.append(f"{missing.count(render.NOT_RUN)} cells read '{render.NOT_RUN}': their "
                     "sub-run is not part of this plan, was left out by --only, or did not "
                     "finish (re-run with --resume).")
    if missing.count(render.NOT_RECORDED):
        notes.append(f"{missing.count(render.NOT_RECORDED)} cells read "
                     f"'{render.NOT_RECORDED}': their sub-run wrote its file without the value "
                     "(e.g. made by a vsent version that did not record it); the report names "
                     "the file and key (report.json: file, key).")
    return notes + paper.notes(plan, s, report)


def command_line(paper: str, *, quick: bool, out: str, data: str, init: str | None,
                 device: str, resume: bool, run: str | None = None, seed: int = 0,
                 only: str | None = None, overwrite: bool = False) -> str:
    """The canonical ``vsent reproduce`` command of these options (for the report header)."""
    parts = ["vsent", "reproduce", paper]
    if quick:
        parts.append("--quick")
    parts += ["--out", out] + ([] if run else ["--data", data])
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
    if overwrite:
        parts.append("--overwrite")
    return shlex.join(parts)
