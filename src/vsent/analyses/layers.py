"""Layer-by-layer linear probes of fine-tuned networks (Campos et al. 2015, Table 2).

For each fold ``k`` of a cross-validation run, the model fine-tuned *without* fold ``k``'s test
images (``RUN/fold<k>/model.pt``) is run on the fold's training and test images (centre crop,
``model.info.preprocess``), the activations of every layer in ``model.info.probe_layers`` are
reduced as the model declares (``model.info.pool_of``), flattened and stored, and two linear
classifiers per layer are trained on the training images and scored on the test images: a
linear SVM (:class:`~sklearn.svm.LinearSVC`) and a softmax classifier
(:class:`~sklearn.linear_model.LogisticRegression`), both solved by liblinear. Each picks its
regularisation ``C`` by an inner stratified k-fold cross-validation on the fold's training
images only.

Layout of the output directory::

    config.json versions.json run.log
    inputs.json                        the crossval run's predictions.csv SHA-256 (a run moved
                                       with this folder is known by it: run_moved_since)
    features/fold<k>/<layer>.npy       float32 (n_train + n_test, dim), rows: train then test
    features/fold<k>/<layer>.gram.npy  float64 (n, n) linear kernel of those rows
    features/fold<k>/meta.json         rows (dataset indices), n_train, shapes; written last
    results/fold<k>/<layer>.json       both classifiers' metrics, C, inner-CV scores
    results/fold<k>/model.sha256       the fold model's SHA-256 and path (``sha256sum -c``)
    layers.json layers.csv layers.md layers.png

Everything is resumable: a finished ``results/fold<k>/<layer>.json`` is never recomputed, a
fold with ``meta.json`` is not re-extracted and a stored Gram matrix is reused, as long as the
crossval run's fold model is the one they came from (``model.sha256``; else the fold is
redone).

How the probes are fitted (the kernel trick that makes conv1's 290,400 features cheap, the scaling,
the two-class softmax) and what the features cost in disk and memory: :mod:`vsent.analyses.probes`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from torch import nn

from vsent import figures

# (the names this module had before probes.py was split out of it stay importable from here)
from vsent.analyses.probes import (
    CLASSIFIERS,
    DEFAULT_CS,
    CenterScale,
    ProbeConfig,
    extract_layer_features,
    gram_embedding,
    gram_matrix,
    linear_probe,
    make_classifier,
    pooled_grid,
    probe_features,
)
from vsent.config import config_from_dict
from vsent.data._common import is_int_at_least
from vsent.errors import VsentError, one_line
from vsent.files import NPZ_READ_ERRORS, atomic_open, file_sha256
from vsent.metrics import mean_std_text
from vsent.papers import (
    CAMPOS2015_TABLE2,
    NOT_AVAILABLE_TEXT,
    Published,
    is_campos2015_network,
)
from vsent.runs import RunDir, Timer, to_jsonable

log = logging.getLogger("vsent")

#: Default bound on the values per image of a pooled (non-CaffeNet) stage.
DEFAULT_MAX_FEATURES = 65_536
#: Model families (``model.info.family``) whose probe layers are kept raw whatever their size
#: (as in the paper) when ``max_features="auto"``.
RAW_MODELS = ("caffenet",)


# --------------------------------------------------------------------------------------------
# the analysis over a crossval run


@dataclass(frozen=True)
class LayersConfig:
    """Everything that defines a layer analysis (saved as ``config.json``), validated when built.

    Attributes
    ----------
    run : crossval run directory (``vsent crossval --out``).
    probe : how the linear probes are trained (:class:`ProbeConfig`).
    layers : probe layers to analyse (module names; default all of ``model.info.probe_layers``).
    folds : 1-based fold numbers (default all).
    max_features : ``"auto"`` (CaffeNet raw, other families pooled to at most
        :data:`DEFAULT_MAX_FEATURES` values per image), ``"none"`` / None (all raw) or a
        positive integer (a numeric string is read as one).
    batch_size : images per forward pass; device : "auto", "cpu", "cuda", ...
    keep_features : keep each fold's memory-mapped feature files once its results exist.
    """

    run: str
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    layers: tuple[str, ...] | None = None
    folds: tuple[int, ...] | None = None
    max_features: int | str | None = "auto"
    batch_size: int = 32
    device: str = "auto"
    keep_features: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.run, (str, Path)) or not str(self.run):
            raise VsentError(f"--run must name a crossval run directory, got {self.run!r}")
        object.__setattr__(self, "run", str(self.run))
        if not isinstance(self.probe, ProbeConfig):
            raise TypeError(f"probe must be a ProbeConfig, got {type(self.probe).__name__}")
        if self.layers is not None:
            if isinstance(self.layers, str) or not self.layers or \
                    not all(isinstance(n, str) and n for n in self.layers):
                raise VsentError(f"--layers must be a non-empty list of layer names, "
                                 f"got {self.layers!r}")
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.folds is not None:
            if isinstance(self.folds, str) or not self.folds or \
                    not all(is_int_at_least(k, 1) for k in self.folds):
                raise VsentError(f"--fold-ids must be fold numbers >= 1, got {self.folds!r}")
            object.__setattr__(self, "folds", tuple(int(k) for k in self.folds))
        object.__setattr__(self, "max_features", _check_max_features(self.max_features))
        if not is_int_at_least(self.batch_size, 1):
            raise VsentError(f"--batch-size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.device, str):
            raise VsentError(f"--device must be a device name, got {self.device!r}")
        if not isinstance(self.keep_features, bool):
            raise VsentError(f"keep_features must be true or false, got {self.keep_features!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayersConfig:
        """Rebuild from a ``config.json`` dict; unknown keys (also in ``probe``) are refused."""
        return config_from_dict(cls, d, "layers", train_fields=(),
                                records={"probe": ProbeConfig})

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def _check_max_features(value: Any) -> int | str | None:
    """``max_features`` as stored: "auto", "none", None or a positive int (from "123" too)."""
    if value is None or value in ("auto", "none"):
        return value
    v = value
    if isinstance(value, str):
        try:
            v = int(value)
        except ValueError:
            v = None
    if not is_int_at_least(v, 1):
        raise VsentError(f"--max-features must be auto, none or a positive integer, "
                         f"got {value!r}")
    return int(v)


#: Config keys that change the results; a run directory refuses to mix settings.
_RESULT_KEYS = ("run", "probe", "max_features")


def _resolve_max_features(value: int | str | None, family: str) -> int | None:
    """The bound for a model family (``value`` already checked by :class:`LayersConfig`)."""
    if value == "auto":
        return None if family in RAW_MODELS else DEFAULT_MAX_FEATURES
    if value is None or value == "none":
        return None
    return int(value)


def layer_probes(cfg: LayersConfig, out: str | Path, *, progress: bool = True,
                 overwrite: bool = False) -> dict[str, Any]:
    """Probe every layer of every fold's fine-tuned model of the crossval run ``cfg.run``.

    Parameters
    ----------
    cfg : LayersConfig
        ``run``: a directory written by :func:`vsent.crossval.crossval`; ``layers``/``folds``
        restrict the work (default all probe layers, all folds).
    out : output directory (see the module docstring), opened by
        :func:`vsent.runs.open_run_dir`: an existing one with the same ``run``, ``probe`` and
        ``max_features`` is continued in place (its per-(fold, layer) results are reused, so
        more folds or layers can be added), other settings are refused; ``overwrite`` starts
        again. The summary covers ``cfg``'s folds and layers only: a call with all of them
        after partial ones gives the whole table from the stored results.

    Returns
    -------
    dict
        The ``layers.json`` summary: ``{layer: {classifier: {"mean", "std", "folds"}, "dim"}}``
        in depth order.
    """
    from vsent.crossval import check_device
    from vsent.crossval_run import open_run, record_run_read, run_moved_since
    from vsent.data.folds import check_inner_splits
    from vsent.runs import open_run_dir

    out = Path(out)
    check_device(cfg.device, out, "layers.json", overwrite)
    run = open_run(cfg.run)
    cfg = replace(cfg, run=str(run.path.resolve()))  # resumes compare absolute paths
    missing = sorted(set(cfg.folds or ()) - {f.index for f in run.folds})
    if missing:
        raise VsentError(f"{run.path}: the run has no fold(s) {missing} "
                         f"(folds 1..{len(run.folds)})")
    folds = run.folds if cfg.folds is None else [f for f in run.folds if f.index in cfg.folds]
    for fold in folds:  # every fold's model now, not after hours of the first folds' work
        run.checkpoint(fold.index)
    if cfg.layers:  # a misspelt name first: it is what the user has to fix
        _check_layers(run.load_model(folds[0].index)[0], cfg.layers)
    check_inner_splits(run.dataset.labels, folds, cfg.probe.inner_splits)
    # a layers run inside its crossval run continues where the two were moved together
    moved = None if overwrite else run_moved_since(out, run.path)
    rundir = open_run_dir(out, {"command": "layers", **cfg.to_dict()}, resume=True,
                          overwrite=overwrite, done=None,
                          compare=[k for k in _RESULT_KEYS if not (moved and k == "run")],
                          resume_asked=False)
    timer = Timer()
    order: list[str] = []
    with rundir:
        record_run_read(rundir, run, moved)
        for fold in folds:
            names = _probe_fold(cfg, run, fold, rundir, progress)
            order += [n for n in names if n not in order]
        summary = summarize(rundir, order, [f.index for f in folds], cfg.probe,
                            reference=_network_accuracy(run.path, [f.index for f in folds],
                                                        len(run.folds)))
        # the summary covers this session's folds and layers: so does the config beside it
        rundir.write_json("config.json", {"command": "layers", **cfg.to_dict()})
        log.info("layer analysis done in %.0f s [%s]", timer.elapsed, out)
        return summary


def _check_layers(model: nn.Module, names: Sequence[str]) -> None:
    """VsentError naming the ``names`` that are not probe layers of ``model``."""
    unknown = [n for n in names if n not in model.info.probe_layers]
    if unknown:
        raise VsentError(f"unknown layer(s) {', '.join(unknown)} for {model.info.name}; "
                         f"probe layers: {', '.join(model.info.probe_layers)}")


def _network_accuracy(run_path: Path, folds: Sequence[int], n_folds: int
                      ) -> dict[str, Any] | None:
    """The fine-tuned networks' own centre-crop accuracy from the run's summary.json, over the
    probed ``folds`` (of the run's ``n_folds``): a probe of folds 1-2 is set beside the
    networks of folds 1-2, not of all five. None when the summary lacks it."""
    try:
        center = json.loads((run_path / "summary.json").read_text())["center"]
        if len(folds) == n_folds:
            acc = center["accuracy"]
            return {"mean": float(acc["mean"]), "std": float(acc["std"]), "n": n_folds}
        accs = [float(f["accuracy"]) for f in center["folds"] if f["fold"] in folds]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if len(accs) != len(folds):
        return None
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "n": len(accs),
            "folds": sorted(folds), "of": n_folds}


def _probe_fold(cfg: LayersConfig, run: Any, fold: Any, rundir: RunDir,
                progress: bool) -> list[str]:
    """Extract (if needed) and probe the layers of one fold; returns its layers in depth order."""
    k = fold.index
    feat_dir = rundir / f"features/fold{k}"
    res_dir = rundir / f"results/fold{k}"
    meta_path = feat_dir / "meta.json"
    _check_fold_model(run, k, feat_dir, res_dir, rundir)
    train, test = np.sort(fold.train), np.sort(fold.test)
    rows = np.concatenate([train, test])
    for res_path in sorted(res_dir.glob("*.json")):  # (a damaged one is probed again)
        _stored_json(res_path, ("layer", "dim"), "probed again")
    meta = _stored_json(meta_path, ("rows", "layers", "n_train", "info"), "extracted again")
    if meta is not None and meta["rows"] != rows.tolist():
        meta = None  # features of another split: redo
    # all probe layers of the model (recorded at extraction; older records lack them)
    probe_layers = meta.get("probe_layers") if meta else None
    names = list(cfg.layers) if cfg.layers else probe_layers

    def ready(n: str) -> bool:
        """A result, or the features (or their kernel) to compute it from."""
        return (res_dir / f"{n}.json").exists() or (
            meta is not None and n in meta["layers"]
            and ((feat_dir / f"{n}.gram.npy").exists() or (feat_dir / f"{n}.npy").exists()))

    if names is None or not all(ready(n) for n in names):
        meta = _extract_fold(cfg, run, fold, rows, len(train), feat_dir, rundir, progress,
                             stored=meta, skip=ready)
        probe_layers = meta["probe_layers"]
        names = list(cfg.layers) if cfg.layers else probe_layers
    if meta is None:  # every result exists but the feature metadata was removed
        return names
    names = [n for n in probe_layers or meta["layers"] if n in names]  # depth order
    y = run.dataset.labels[rows]
    tr, te = np.arange(meta["n_train"]), np.arange(meta["n_train"], len(rows))
    for name in names:
        res_path = res_dir / f"{name}.json"
        if res_path.exists():
            continue
        record = _probe_layer(cfg.probe, feat_dir, name, k, meta["info"][name], y, tr, te)
        rundir.write_json(f"results/fold{k}/{name}.json", record)
    if not cfg.keep_features and all((res_dir / f"{n}.json").exists() for n in meta["layers"]):
        for n in meta["layers"]:
            (feat_dir / f"{n}.npy").unlink(missing_ok=True)
    return names


def _stored_json(path: Path, keys: Sequence[str], redo: str) -> dict[str, Any] | None:
    """The derived record ``path`` (a fold's probe result, its features' ``meta.json``), or
    None when it is absent or damaged (cut by a full disk, edited: it was a JSONDecodeError
    traceback): a damaged one is removed, with a warning, and ``redo`` (computed again), as
    a cut feature or kernel file is."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        why = one_line(e)
    else:
        if isinstance(record, dict) and all(k in record for k in keys):
            return record
        why = f"no {', '.join(keys)}"
    try:
        path.unlink()
    except OSError as e:  # (a folder of that name)
        raise VsentError(f"{path}: unreadable ({why}) and cannot be removed "
                         f"({one_line(e)}): remove it, then run the command again") from None
    log.warning("%s: unreadable (%s), removed; %s", path, why, redo)
    return None


def _probe_layer(probe: ProbeConfig, feat_dir: Path, name: str, k: int, info: dict[str, Any],
                 y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> dict[str, Any]:
    """Fold ``k``'s result for layer ``name`` (its ``results/fold<k>/<name>.json``): each
    classifier of ``probe`` fitted on the training rows ``tr`` of the layer's Gram matrix and
    scored on the test rows ``te`` (``y``: the labels of the fold's rows; ``info``: the
    layer's extraction record)."""
    timer = Timer()
    K = _fold_gram(feat_dir, name, k)
    t_gram = timer.elapsed
    record: dict[str, Any] = {"fold": k, "layer": name, "dim": info["dim"],
                              "shape": info["shape"], "pooled": info["pooled"],
                              "n_train": len(tr), "n_test": len(te)}
    with threadpool_limits(1, user_api="blas"):
        emb = gram_embedding(K, tr, te)
    for clf in probe.classifiers:
        record[clf] = linear_probe(K, y, tr, te, clf, probe, embedding=emb)
    record["seconds"] = {"gram": t_gram, "total": timer.elapsed}
    log.info("fold %d %-12s dim %7d  %s  (%.1f s)", k, name, info["dim"],
             "  ".join(f"{c} {record[c]['accuracy']:.3f} (C={record[c]['C']:g})"
                       for c in probe.classifiers), timer.elapsed)
    return record


def _fold_gram(feat_dir: Path, name: str, k: int) -> np.ndarray:
    """Layer ``name``'s Gram matrix of fold ``k``: the stored one, else computed from the
    features and stored (atomically: a kill leaves no cut file for the next run to read). A
    stored one that cannot be read is computed again, or, when its features are gone,
    removed with a VsentError saying to run again (the features are then extracted again)."""
    gram_path, features = feat_dir / f"{name}.gram.npy", feat_dir / f"{name}.npy"
    if gram_path.exists():
        try:
            return np.load(gram_path)
        except NPZ_READ_ERRORS as e:
            if not features.exists():
                gram_path.unlink(missing_ok=True)
                raise VsentError(f"{gram_path}: unreadable ({one_line(e)}), removed; run the "
                                 f"command again to extract fold {k}'s features again") from None
            log.warning("%s: unreadable (%s); computed again", gram_path, one_line(e))
    K = gram_matrix(features)
    with atomic_open(gram_path, "wb") as f:
        np.save(f, K)
    return K


def probed_with_current_models(run_dir: str | Path, out: str | Path) -> bool:
    """True when ``out`` holds a finished layers run (``layers.json``) whose every probed fold
    was probed with the model that fold's directory in ``run_dir`` holds now (a reproduction
    reuses such a sub-run; one of a run trained again is probed again). A fold without a
    stamp (results of a vsent that kept none) is taken as it is, as :func:`layer_probes` does;
    so is a fold whose model is gone (``results/`` keeps no models): no newer model to probe
    again with, nor any to probe with, as :func:`vsent.analyses.regions_run.
    scored_with_current_models` decides for regions."""
    from vsent.runs import FOLD_MODEL, fold_dir

    out = Path(out)
    if not (out / "layers.json").exists():
        return False
    for stamp in out.glob("results/fold*/model.sha256"):
        ckpt = fold_dir(run_dir, int(stamp.parent.name.removeprefix("fold"))) / FOLD_MODEL
        try:
            kept = stamp.read_text().split(maxsplit=1)[:1]
        except (OSError, ValueError):
            return False
        if ckpt.is_file() and kept != [file_sha256(ckpt)]:
            return False
    return True


def _check_fold_model(run: Any, k: int, feat_dir: Path, res_dir: Path, rundir: RunDir) -> None:
    """Forget fold ``k``'s features and results when they come from another ``model.pt`` than
    the run's fold ``k`` holds now (a crossval run retrained with --overwrite): one table must
    not mix two sets of models. The checkpoint's SHA-256 is kept in ``results/fold<k>/
    model.sha256``."""
    ckpt = run.checkpoint(k)
    sha = file_sha256(ckpt)
    stamp_file = res_dir / "model.sha256"
    if stamp_file.exists():
        if stamp_file.read_text().split(maxsplit=1)[:1] == [sha]:
            return
        log.warning("fold %d: %s is not the model its features and probes came from (the run "
                    "was trained again?): probing fold %d again", k, ckpt, k)
        for p in [*res_dir.glob("*.json"), *feat_dir.glob("*.npy"), feat_dir / "meta.json"]:
            p.unlink(missing_ok=True)
    elif res_dir.exists() or feat_dir.exists():
        return  # results of a vsent that kept no stamp: nothing to check them against
    rundir.write_text(f"results/fold{k}/model.sha256", f"{sha}  {ckpt.resolve()}\n")


def _extract_fold(cfg: LayersConfig, run: Any, fold: Any, rows: np.ndarray, n_train: int,
                  feat_dir: Path, rundir: RunDir, progress: bool, *,
                  stored: dict[str, Any] | None = None,
                  skip: Callable[[str], bool] = lambda name: False) -> dict[str, Any]:
    """Features of the requested layers of fold ``fold`` with its own fine-tuned model, but
    those ``skip`` says are done (probed, or extracted before). ``stored``: the fold's
    meta.json of the same rows, merged into the new one (layers extracted before stay
    listed)."""
    from vsent.data.cache import image_cache

    k = fold.index
    model, _ = run.load_model(k)  # refuses another fold's model
    probe_layers = list(model.info.probe_layers)
    names = list(cfg.layers) if cfg.layers else probe_layers
    _check_layers(model, names)
    names = [n for n in probe_layers if n in names and not skip(n)]  # depth order
    max_features = _resolve_max_features(cfg.max_features, model.info.family)
    info: dict[str, dict[str, Any]] = {}
    if names:
        images = image_cache(run.dataset, size=model.info.preprocess.resize, progress=progress)
        log.info("fold %d: extracting %d layers of %s for %d images", k, len(names),
                 model.info.name, len(rows))
        for n in names:
            (feat_dir / f"{n}.gram.npy").unlink(missing_ok=True)  # kernel of older features
        info = extract_layer_features(model, images, feat_dir, layers=names, rows=rows,
                                      batch_size=cfg.batch_size, device=cfg.device,
                                      max_features=max_features, progress=progress)
    old = stored or {"layers": [], "info": {}}
    done = set(old["layers"]) | set(names)
    meta = {"fold": k, "rows": rows.tolist(), "n_train": n_train,
            "layers": [n for n in probe_layers if n in done], "probe_layers": probe_layers,
            "model": model.spec, "checkpoint": str(run.checkpoint(k)), "max_features": max_features,
            "info": {**old["info"],
                     **{n: {kk: v for kk, v in i.items() if kk != "path"}
                        for n, i in info.items()}}}
    rundir.write_json(f"features/fold{k}/meta.json", meta)  # written last: fold complete
    return meta


# --------------------------------------------------------------------------------------------
# summary: layers.json, layers.csv, layers.md, layers.png


def unconverged(summary: Mapping[str, Any]) -> list[str]:
    """The fits of a layers summary that hit the solver's iteration cap, as
    ``"<layer> <classifier> fold <k>"``."""
    return [f"{name} {_NAMES[clf]} fold {f['fold']}" for name, entry in summary.items()
            for clf in CLASSIFIERS if clf in entry
            for f in entry[clf]["folds"] if f.get("converged") is False]


def summarize(rundir: RunDir, layers: Sequence[str], folds: Sequence[int],
              probe: ProbeConfig = ProbeConfig(), *,
              reference: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Collect ``results/fold<k>/<layer>.json`` into layers.json/.csv/.md/.png.

    Layers or folds without results are left out (a partial table says how many folds it has).
    ``reference``: the fine-tuned networks' own accuracy ``{"mean", "std", "n"}`` over ``n``
    folds (and "folds", "of" when they are some of the run's), quoted in the
    Markdown table and drawn in the plot.
    """
    summary: dict[str, Any] = {}
    for name in layers:
        records = []
        for k in folds:
            record = _stored_json(rundir / f"results/fold{k}/{name}.json", ("layer", "dim"),
                                  "probed again by the next run")
            if record is not None:
                records.append(record)
        if not records:
            continue
        entry: dict[str, Any] = {"dim": records[0]["dim"], "pooled": records[0].get("pooled")}
        for clf in probe.classifiers:
            accs = [r[clf]["accuracy"] for r in records if clf in r]
            if not accs:
                continue
            entry[clf] = {
                "mean": float(np.mean(accs)), "std": float(np.std(accs)),
                "folds": [{"fold": r["fold"], **{kk: r[clf][kk] for kk in (
                    "accuracy", "precision", "recall", "f1", "C", "inner_accuracy",
                    "converged")}} for r in records if clf in r],
            }
        summary[name] = entry
    rundir.write_json("layers.json", summary)
    capped = unconverged(summary)
    if capped:
        log.warning("the iteration cap (max_iter = %d) was reached in %d fit(s): %s",
                    probe.max_iter, len(capped), ", ".join(capped))
    _write_csv(rundir, summary, probe)
    rundir.write_text("layers.md", layers_markdown(summary, probe, rundir, reference=reference))
    if summary:
        plot_layers(summary, rundir / "layers.png", probe, reference=reference)
    return summary


def _write_csv(rundir: RunDir, summary: Mapping[str, Any], probe: ProbeConfig) -> None:
    rows = []
    for depth, (name, entry) in enumerate(summary.items(), 1):
        for clf in probe.classifiers:
            if clf not in entry:
                continue
            row = {"layer": name, "depth": depth, "dim": entry["dim"], "classifier": clf,
                   "mean": entry[clf]["mean"], "std": entry[clf]["std"],
                   "n_folds": len(entry[clf]["folds"])}
            for f in entry[clf]["folds"]:
                row[f"fold{f['fold']}"] = f["accuracy"]
            rows.append(row)
    fold_cols = sorted({k for r in rows for k in r if k.startswith("fold")},
                       key=lambda s: int(s[4:]))
    rundir.write_csv("layers.csv", rows, ["layer", "depth", "dim", "classifier", "mean", "std",
                                          "n_folds", *fold_cols])


_NAMES = {"svm": "linear SVM", "softmax": "softmax"}


def layers_markdown(summary: Mapping[str, Any], probe: ProbeConfig = ProbeConfig(),
                    rundir: RunDir | None = None, *,
                    reference: Mapping[str, Any] | None = None) -> str:
    """Table 2 of Campos et al.: one row per layer, accuracy mean +- std per classifier."""
    clfs = [c for c in probe.classifiers]
    lines = ["# Layer-by-layer linear probes (Campos et al. 2015, Table 2)", ""]
    init = None  # the probed run's initial weights, when its config is at hand
    network = None  # the probed run's (model, arch), when its config records it
    if rundir is not None:
        cfg_path = rundir / "config.json"
        if cfg_path.exists():
            run = json.loads(cfg_path.read_text()).get("run")
            lines += [f"Fine-tuned models: `{run}` (fold k's model never saw fold k's test "
                      "images).", ""]
            run_cfg = Path(str(run)) / "config.json"
            if run_cfg.is_file():
                stored = json.loads(run_cfg.read_text())
                init = stored.get("init")
                if "model" in stored:
                    network = (stored["model"], (stored.get("model_kwargs") or {}).get("arch"))
    # CaffeNet fc8-2's layers (conv1 .. fc8) have Campos et al.'s published values beside
    # them; a surgery variant's fc7 or fc8 is another layer of another network
    named_as_paper = bool(summary) and all(name in CAMPOS2015_TABLE2 for name in summary)
    other_network = (named_as_paper and network is not None
                     and not is_campos2015_network(*network))
    published = named_as_paper and not other_network
    heads = [_NAMES[c] for c in clfs]
    if published:
        heads += [f"{_NAMES[c]}, Campos et al." for c in clfs]
    lines += ["| layer | dim | " + " | ".join(heads) + " | folds |",
              "|---|---:|" + "---:|" * len(heads) + "---:|"]
    for name, entry in summary.items():
        cells = []
        for c in clfs:
            cells.append(mean_std_text(entry[c], len(entry[c]["folds"])) if c in entry else "")
        if published:
            cells += [_published_cell(CAMPOS2015_TABLE2[name].get(c)) for c in clfs]
        n = max((len(entry[c]["folds"]) for c in clfs if c in entry), default=0)
        dim = f"{entry['dim']:,}" + (" (pooled)" if entry.get("pooled") else "")
        lines.append(f"| {name} | {dim} | " + " | ".join(cells) + f" | {n} |")
    capped = unconverged(summary)
    if capped:  # a fit stopped by max_iter: its accuracy may be below the probe's own
        lines += ["", f"The solver's iteration cap (max_iter = {probe.max_iter}) was reached in "
                      f"{len(capped)} fit{'s' if len(capped) > 1 else ''}: "
                      f"{', '.join(capped)} (`converged: false` in layers.json)."]
    if reference is not None:
        which = ""
        if "folds" in reference:  # a subset of the run's folds: the same ones as the probes
            which = (f", fold{'s' if len(reference['folds']) > 1 else ''} "
                     f"{', '.join(map(str, reference['folds']))} of {reference['of']}")
        lines += ["", f"The fine-tuned networks themselves (their own softmax output, centre "
                      f"crop, the run's summary.json{which}): "
                      f"{mean_std_text(reference, reference.get('n', 0))}."]  # (0: unknown)
    lines += [
        "",
        "Accuracy on each fold's test images (mean +- population std over folds), centre crop. "
        f"C chosen from {list(probe.Cs)} by {probe.inner_splits}-fold stratified CV on the "
        "fold's training images; features centred and scaled by one global factor fitted on "
        "training rows (see `vsent.analyses.layers`).",
        "",
        "Published (Campos et al. 2015, Table 2): probes of CaffeNet fine-tuned from ImageNet "
        "weights; comparable only to a CaffeNet run that started from them"
        + (f" (this run started from `{init}` weights)." if init else ".")
        if published else
        "Campos et al. (2015, Table 2) probe CaffeNet's layers (conv1 .. fc8, fine-tuned from "
        "ImageNet weights with the fc8-2 top); these layers"
        + (f", of {' '.join(filter(None, network))}," if other_network else "")
        + " have no published counterpart "
        "(`vsent reproduce campos2015` sets Table 2 beside a CaffeNet fc8-2 run).",
    ]
    return "\n".join(lines) + "\n"


def _published_cell(value: Published | None) -> str:
    if value is None or not value.available:
        return NOT_AVAILABLE_TEXT
    return value.printed()  # the paper's digits: 0.82, not 0.820


def plot_layers(summary: Mapping[str, Any], path: str | Path,
                probe: ProbeConfig = ProbeConfig(), *,
                reference: Mapping[str, Any] | None = None) -> Path:
    """Accuracy vs depth for each classifier, with std-over-folds error bars (PNG)."""
    plt = figures.pyplot()

    names = list(summary)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(names) + 2) + 1.8, 3.6))
    for i, clf in enumerate(probe.classifiers):
        pts = [(j, summary[n][clf]["mean"], summary[n][clf]["std"])
               for j, n in enumerate(names) if clf in summary[n]]
        if pts:
            xs, ms, ss = map(np.asarray, zip(*pts, strict=True))
            ax.errorbar(xs + (i - 0.5) * 0.08, ms, yerr=ss, marker="o", capsize=3,
                        label=_NAMES[clf])
    if reference is not None:
        which = f" (folds {', '.join(map(str, reference['folds']))})" if "folds" in reference \
            else ""  # (some of the run's folds: those probed)
        ax.axhline(reference["mean"], color="gray", linestyle="--", linewidth=1,
                   label=f"fine-tuned network{which}")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("test accuracy (+- std, folds)")
    ax.set_title("Linear probes per layer (centre crop)", fontsize=10)
    ax.grid(alpha=0.3)
    # right of the axes: inside, it covered the lower error bars of the middle layers
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figures.save_figure(fig, path, dpi=120)


__all__ = [
    "CLASSIFIERS", "CenterScale", "DEFAULT_CS", "DEFAULT_MAX_FEATURES", "LayersConfig",
    "ProbeConfig", "extract_layer_features", "gram_embedding", "gram_matrix", "layer_probes",
    "layers_markdown", "linear_probe", "make_classifier", "plot_layers", "pooled_grid",
    "probe_features", "probed_with_current_models", "summarize", "unconverged",
]
