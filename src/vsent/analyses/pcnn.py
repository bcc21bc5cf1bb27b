"""Progressive training and domain transfer of You et al. 2015 (AAAI), Algorithms 1 and 2.

Algorithm 1 (:func:`progressive`): train a CNN on a large, weakly (machine-) labelled image set;
score every training image with it (softmax ``s_i1, s_i2``); drop image ``i`` with probability

    p_i = max(0, 2 - exp(|s_i1 - s_i2|))

(1 when the two scores are equal, 0 once ``|s_i1 - s_i2| >= ln 2``, i.e. once the network
gives one class at least (1 + ln 2) / 2 = 0.847); then fine-tune the same network on the
images that remain.
The rule drops images the network is *unsure* about, not images it disagrees with: it removes
label noise where noise comes with ambiguity (as with a weak labeller such as SentiBank on
Flickr), and keeps a confidently mislabelled image.

Algorithm 2 (:func:`transfer`): fine-tune the pretrained network on the manually labelled
Twitter images, 5-fold cross-validation per agreement subset (:func:`vsent.crossval.crossval`
with ``init=<checkpoint>``), and tabulate precision, recall, F1 and accuracy beside the paper's.

Supplying the weakly labelled set: the paper used about half a million Flickr images labelled
by SentiBank, which is not available offline. Any ``positive/`` + ``negative/`` folder or
``path,label`` CSV works (see :func:`vsent.data.datasets.load_dataset`); the labels may be
noisy (that is the point). A progressive run directory holds::

    config.json  versions.json  run.log
    data.json        the data the run started with (a resume with other data is refused)
    stage1/model.pt  stage1/history.json   the CNN before selection (the paper's "CNN")
    removal.csv      name, label, s1, s2, diff = |s1 - s2|, p, removed (one row per image)
    removal.json     how many images were removed, by class, and the histograms
    removal.png      histograms of |s1 - s2| and of p
    stage2/history.json
    model.pt         the progressively trained network (the paper's "PCNN")
    summary.json  summary.md

When the images kept hold fewer than two classes (a network confident on almost nothing drops
almost everything), stage 2 is skipped with a warning: ``model.pt`` is then the stage-1
network and ``summary.json`` says ``"stage2_skipped": true``.

``--subset`` picks an agreement subset of a Twitter I folder; other data have none, and a new
run on them with another ``--subset`` than the default is refused rather than recorded and
ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsent import figures, papers
from vsent.config import (
    RunConfig,
    TrainConfig,
    check_eval_batch_size,
    check_seed,
    config_from_dict,
    record_dict,
    with_stored_momentum_form,
)
from vsent.crossval import check_device, check_new_run_folds, crossval
from vsent.data.cache import image_cache
from vsent.data.datasets import CLASS_NAMES, SUBSETS, Dataset, load_dataset
from vsent.data.extra import (
    KEEP_THRESHOLD,
    read_removal,
    removal_probability,
    select_kept,
    write_removal,
)
from vsent.data.leakage import check_other_data, quiet_logs
from vsent.errors import VsentError, WeightsError, one_line
from vsent.evaluate import predict_proba
from vsent.files import file_sha256
from vsent.metrics import SCALARS
from vsent.models import create_model
from vsent.models.checkpoint import load_checkpoint, save_checkpoint
from vsent.presets import PCNN as PCNN_PRESETS
from vsent.presets import TRANSFER_REFERENCES, TRANSFER_TRAIN
from vsent.provenance import (
    DATA_RECORD,
    INIT_RECORD,
    check_data_record,
    check_init_record,
    data_record,
)
from vsent.runs import SUMMARY, RunDir, Timer, open_run_dir, warn_missing_models
from vsent.train import fit

log = logging.getLogger("vsent")

#: A run's stage-1 CNN and its PCNN, relative to its folder.
STAGE1_MODEL = "stage1/model.pt"
PCNN_MODEL = "model.pt"

#: Training recipes (stage 1 ``train``, stage 2 ``finetune``) and the Algorithm 2 recipe, kept
#: with the other presets in :mod:`vsent.presets` (their solver settings are explained there).
PRESETS = PCNN_PRESETS

#: Rows of You et al.'s Twitter table a transfer run is set beside (:data:`vsent.papers.
#: YOU2015_TABLE6`; a cell whose value is not available says so).
REFERENCES = TRANSFER_REFERENCES
PUBLISHED_SOURCE = (f"{papers.YOU2015_QUOTES_SOURCE} ({papers.NOT_AVAILABLE_TEXT} = in the "
                    "paper, but the value is not available here)")

_HIST_BINS = 20


# --------------------------------------------------------------------------------------------
# Algorithm 1: progressive training


@dataclass(frozen=True)
class ProgressiveConfig:
    """Everything that defines a progressive training run (saved as config.json).

    Frozen and validated when built (stage-2 errors name ``--finetune-epochs``/``-lr``).
    """

    data: str
    subset: str = "five"  # Twitter I layout only: other data refuse another (_progressive)
    model: str = "pcnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "random"
    train: TrainConfig = field(default_factory=lambda: PRESETS["you2015"]["train"])
    finetune: TrainConfig = field(default_factory=lambda: PRESETS["you2015"]["finetune"])
    oversample: bool = False  # score the training images with 10 crops instead of the centre
    skip_bad: bool = False
    seed: int = 0
    eval_batch_size: int = 64
    preset: str | None = "you2015"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProgressiveConfig:
        return config_from_dict(cls, d, "pcnn", train_fields=("train", "finetune"))

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_seed(self.seed)
        self.train.validate()
        try:
            self.finetune.validate()
        except VsentError as e:
            raise stage2_error(e) from None
        check_eval_batch_size(self.eval_batch_size)

    @property
    def seeds(self) -> dict[str, int]:
        """Seeds of stage 1 training, of the removal draws and of stage 2 training."""
        return {"stage1": self.seed, "removal": self.seed, "stage2": self.seed + 1}


def stage2_error(e: VsentError) -> VsentError:
    """A stage-2 recipe error with the options named as the CLI spells them (``--epochs`` and
    ``--lr`` set stage 1; ``--finetune-epochs``/``--finetune-lr`` stage 2)."""
    msg = str(e).replace("--epochs ", "--finetune-epochs ").replace("--lr ", "--finetune-lr ")
    return VsentError(f"stage 2: {msg}")


class _Rows:
    """Rows ``index`` of a (memory-mapped) array, read batch by batch.

    Stage 2 trains on the kept images without copying them all into memory (a weakly
    labelled set is large); :func:`vsent.train.fit` only needs ``len`` and ``[indices]``.
    """

    def __init__(self, base: np.ndarray, index: np.ndarray) -> None:
        self.base, self.index = base, np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: Any) -> np.ndarray:
        return self.base[self.index[idx]]


def progressive(cfg: ProgressiveConfig, out: str | Path, *, resume: bool = False,
                overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Algorithm 1 of You et al. 2015; returns the summary written to ``summary.json``.

    Stage 1 trains ``cfg.model`` (from ``cfg.init``) on the whole dataset; every image is
    scored with it and dropped with probability :func:`removal_probability` (draws from
    ``numpy.random.default_rng(cfg.seed)``); stage 2 fine-tunes the stage-1 network on the
    images that remain. With ``resume``, finished stages (``stage1/model.pt``, ``removal.csv``,
    ``model.pt``) are kept and an interrupted stage continues from its last finished epoch.
    ``out`` is opened by :func:`vsent.runs.open_run_dir` (a finished run returns its stored
    summary, its ``model`` and ``stage1_model`` paths those under ``out``; another config is
    refused; ``overwrite`` starts again).
    """
    # missing data, weights or GPU stop the run before its directory exists (as crossval's)
    if not Path(cfg.data).expanduser().exists():
        raise VsentError(f"{cfg.data}: no such file or directory")
    check_device(cfg.train.device, out, SUMMARY, overwrite)
    proto = create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)
    if proto.info.num_outputs != 2:
        raise VsentError(f"progressive training needs a 2-way model, {cfg.model} has "
                         f"{proto.info.num_outputs} outputs")
    run = open_run_dir(out, {"command": "pcnn", **cfg.to_dict()}, resume=resume,
                       overwrite=overwrite, done=SUMMARY)
    cfg = with_stored_momentum_form(cfg, run.config)  # a run made before the option
    with run:
        if run.status == "finished":  # its models where they are now (the run may have moved)
            summary = run.read_json(SUMMARY)
            warn_missing_models(run, [STAGE1_MODEL, PCNN_MODEL])
            return {**summary, "stage1_model": str(run / STAGE1_MODEL),
                    "model": str(run / PCNN_MODEL)}
        return _progressive(cfg, run, proto, progress)


def _progressive(cfg: ProgressiveConfig, run: RunDir, proto: nn.Module,
                 progress: bool) -> dict[str, Any]:
    timer = Timer()
    seeds = cfg.seeds
    dataset, sha256 = _read_run_data(cfg, run)
    images = image_cache(dataset, size=proto.info.preprocess.resize, progress=progress)
    labels = dataset.labels
    del proto
    # what every checkpoint records of its data (pcnn-transfer refuses to test on it)
    trained_on = {"data": cfg.data, "subset": dataset.subset, "data_sha256": sha256}
    # and so that its card shows what this run knows instead of "not recorded" (each stage's
    # recipe with the seed it trained with)
    made = {"command": "pcnn", "init": cfg.init, "n_train": len(labels), "n_test": 0,
            "train": cfg.train.replace(seed=seeds["stage1"]).to_dict()}

    # stage 1: the plain CNN on every (weakly labelled) image
    stage1_file = run / STAGE1_MODEL
    if stage1_file.exists():
        log.info("stage 1: already done, loading %s", stage1_file)
        model, _ = _load_stage1(stage1_file)
    else:
        torch.manual_seed(seeds["stage1"])  # the initial weights, as well as the batches
        model = create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)
        log.info("stage 1: training %s (init %s) on %d images", cfg.model, cfg.init, len(labels))
        state = run / "stage1" / "train_state.pt"
        state.parent.mkdir(exist_ok=True)
        history = fit(model, images, labels, cfg.train.replace(seed=seeds["stage1"]),
                      state_path=state, progress=progress, desc="stage 1")
        run.write_json("stage1/history.json", history)
        save_checkpoint(stage1_file, model, stage="pcnn-stage1", **trained_on, **made,
                        training="PCNN stage 1 (the CNN before the selection)")
        state.unlink(missing_ok=True)

    # selection: score the training images, drop the ambiguous ones
    removal_file = run / "removal.csv"
    if removal_file.exists():
        log.info("selection: already done, reading %s", removal_file)
        kept, scores = read_removal(removal_file, dataset.names, labels)
    else:
        scores = predict_proba(model, images, oversample=cfg.oversample,
                               batch_size=cfg.eval_batch_size, device=cfg.train.device)
        kept = select_kept(scores, np.random.default_rng(seeds["removal"]))
        write_removal(removal_file, dataset.names, labels, scores, kept)
    report = removal_report(scores, kept, labels)
    run.write_json("removal.json", report)
    plot_removal(scores, kept, run / "removal.png")
    log.info("selection: removed %d of %d images (%.1f%%), kept %d",
             report["n_removed"], report["n_images"], 100 * report["removed_share"],
             report["n_kept"])
    kept_idx = np.flatnonzero(kept)
    # a network confident on (almost) nothing drops (almost) every image, and a set of fewer
    # than two classes can only teach "always that class": stage 2 is skipped and the PCNN is
    # the stage-1 network (as crossval's progressive schedule skips that stage)
    skip_stage2 = len(np.unique(labels[kept_idx])) < 2
    if skip_stage2:
        log.warning("selection kept %d of %d images, of fewer than two classes (see %s); "
                    "stage 2 skipped, model.pt is the stage-1 network", len(kept_idx),
                    len(kept), removal_file)

    # stage 2: fine-tune the same network on the images that remain
    final = run / PCNN_MODEL
    if final.exists():
        log.info("stage 2: already done (%s)", final)
    elif skip_stage2:
        save_checkpoint(final, model, stage="pcnn", **trained_on, **made, stage2_skipped=True,
                        n_removed=report["n_removed"], n_kept=report["n_kept"],
                        training=f"progressive (You et al.): stage 1 on {len(labels)} images; "
                                 f"stage 2 skipped (the selection kept {report['n_kept']}, of "
                                 "fewer than two classes)")
    else:
        state = run / "stage2" / "train_state.pt"
        state.parent.mkdir(exist_ok=True)
        history = fit(model, _Rows(images, kept_idx), labels[kept_idx],
                      cfg.finetune.replace(seed=seeds["stage2"]), state_path=state,
                      progress=progress, desc="stage 2")
        run.write_json("stage2/history.json", history)
        save_checkpoint(final, model, stage="pcnn", **trained_on, **made,
                        finetune=cfg.finetune.replace(seed=seeds["stage2"]).to_dict(),
                        n_removed=report["n_removed"],
                        n_kept=report["n_kept"],
                        training=f"progressive (You et al.): stage 1 on {len(labels)} images, "
                                 f"stage 2 on the {report['n_kept']} the selection kept")
        state.unlink(missing_ok=True)

    summary = {
        "data": cfg.data, "dataset": dataset.title, "subset": dataset.subset,
        "architecture": cfg.model, "n_images": report["n_images"],
        "n_removed": report["n_removed"], "n_kept": report["n_kept"],
        "removed_share": report["removed_share"], "removed_by_label": report["by_label"],
        "seeds": seeds, "stage1_model": str(stage1_file), "model": str(final),
        "stage2_skipped": skip_stage2,
        "seconds": timer.elapsed,
    }
    summary.update(_last_epochs(run))
    run.write_text("summary.md", _progressive_markdown(summary, report))
    run.write_json("summary.json", summary)  # last: it marks the run finished
    return summary


def _read_run_data(cfg: ProgressiveConfig, run: RunDir) -> tuple[Dataset, str]:
    """The run's dataset, checked (both classes; a subset only of Twitter I; on a resume, the
    data the run started with) and recorded: ``(dataset, its sha256)``."""
    dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
    counts = np.bincount(dataset.labels, minlength=2)
    if counts.min() == 0:  # stage 1 would learn one answer and stage 2 would drop everything
        raise VsentError(f"{cfg.data}: all {len(dataset)} images are "
                         f"{'positive' if counts[1] else 'negative'}; progressive training "
                         f"needs both classes")
    # load_dataset ignores the subset of other layouts: recorded, it would name data the run
    # did not select (and refuse a resume that names another); a run started before this
    # check keeps its record
    if dataset.source != "twitter" and cfg.subset != ProgressiveConfig.subset \
            and run.status == "new":
        raise VsentError(f"--subset {cfg.subset}: {cfg.data} is a {dataset.source} dataset, "
                         "which has no agreement subsets (--subset selects one of a Twitter I "
                         "folder); leave --subset out")
    # a resume must see the data the run started with: stage 1 and the draw were made on it
    fingerprint = dataset.fingerprint()
    record = run / DATA_RECORD
    if not record.exists():  # a new run, or one of a vsent that kept no record
        _check_stage1_data(run / STAGE1_MODEL, cfg.data, fingerprint["sha256"])
        # after that check: never of changed data
        run.write_json(DATA_RECORD, data_record(dataset))
    check_data_record(record, dataset, cfg.data, f"{run.path} started",
                      "pass --overwrite to start again")
    run.write_json("skipped.json", list(dataset.skipped))
    return dataset, fingerprint["sha256"]


def _last_epochs(run: RunDir) -> dict[str, Any]:
    """``{"stage1_final": {epoch, loss, train_accuracy}, "stage2_final": ...}`` of each stage's
    history.json there is; a damaged one is left out with a warning (a record of the stage,
    not its result)."""
    out = {}
    for stage in ("stage1", "stage2"):
        hist_file = run / stage / "history.json"
        if hist_file.exists():
            try:
                last = json.loads(hist_file.read_text())[-1]
                out[f"{stage}_final"] = {k: last[k] for k in ("epoch", "loss", "train_accuracy")}
            except (OSError, ValueError, LookupError, TypeError) as e:
                log.warning("%s: unreadable (%s); the summary leaves out %s's last epoch",
                            hist_file, one_line(e), stage)
    return out


def _load_stage1(stage1_file: Path) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_checkpoint` of a resumed run's stage-1 model; a damaged one (a copy cut
    short) says how to go on, as a damaged training state does."""
    try:
        return load_checkpoint(stage1_file)
    except WeightsError as e:
        raise VsentError(f"{one_line(e)}; delete it to train stage 1 again, or pass "
                         "--overwrite to start the run again") from None


def _check_stage1_data(stage1_file: Path, data: str, sha256: str) -> None:
    """VsentError when a stage-1 model exists and records other data than ``sha256`` (what a
    run that kept no data.json, made by an older vsent, has to compare)."""
    if not stage1_file.exists():
        return
    _, meta = _load_stage1(stage1_file)
    then = meta.get("data_sha256")
    if then not in (None, sha256):
        raise VsentError(f"{data}: its images or labels changed since {stage1_file} was "
                         f"trained on them (data_sha256 {str(then)[:12]} then, {sha256[:12]} "
                         "now): restore them, or pass --overwrite to start again")


def removal_report(scores: np.ndarray, kept: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Counts of removed images (overall and by class), expected count, and histograms."""
    s = np.asarray(scores, dtype=np.float64)
    p = removal_probability(s)
    diff = np.abs(s[:, 0] - s[:, 1])
    edges = np.linspace(0.0, 1.0, _HIST_BINS + 1)
    n, n_kept = len(kept), int(kept.sum())
    by_label = {}
    for value, name in enumerate(CLASS_NAMES):
        sel = labels == value
        by_label[name] = {"n": int(sel.sum()), "removed": int((~kept[sel]).sum())}
    return {
        "n_images": n, "n_kept": n_kept, "n_removed": n - n_kept,
        "removed_share": (n - n_kept) / n if n else 0.0,
        "expected_removed": float(p.sum()),
        "share_always_kept": float(np.mean(diff >= KEEP_THRESHOLD)) if n else 0.0,
        "by_label": by_label,
        "histogram": {
            "edges": edges,
            "diff": np.histogram(diff, edges)[0],
            "p": np.histogram(p, edges)[0],
            "diff_removed": np.histogram(diff[~kept], edges)[0],
        },
    }


def plot_removal(scores: np.ndarray, kept: np.ndarray, path: Path) -> None:
    """Histograms of ``|s1 - s2|`` (kept vs removed, with the rule p(d)) and of ``p``."""
    plt = figures.pyplot()

    s = np.asarray(scores, dtype=np.float64)
    diff = np.abs(s[:, 0] - s[:, 1])
    p = removal_probability(s)
    edges = np.linspace(0.0, 1.0, _HIST_BINS + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.hist([diff[kept], diff[~kept]], bins=edges, stacked=True,
             label=[f"kept ({int(kept.sum())})", f"removed ({int((~kept).sum())})"],
             color=["tab:blue", "tab:red"])
    ax1.set_xlabel("|s1 - s2|")
    ax1.set_ylabel("images")
    ax1.axvline(KEEP_THRESHOLD, color="k", ls=":", lw=1)
    twin = ax1.twinx()
    d = np.linspace(0, 1, 201)
    twin.plot(d, np.clip(2 - np.exp(d), 0, 1), color="k", lw=1.5, label="p = max(0, 2 - e^d)")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("removal probability p")
    ax1.set_ylim(0, ax1.get_ylim()[1] * 1.35)  # room for the legend above the bars
    handles = ax1.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = ax1.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    ax1.legend(handles, labels, loc="upper center", fontsize="small")
    ax1.set_title("confidence of the stage-1 network")
    ax2.hist(p, bins=edges, color="tab:gray")
    ax2.set_xlabel("removal probability p")
    ax2.set_ylabel("images")
    ax2.set_title(f"p per image (expected removals {p.sum():.1f})")
    figures.save_figure(fig, path, dpi=100)


def _progressive_markdown(summary: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    lines = [
        "# Progressive training (You et al. 2015, Algorithm 1)", "",
        f"- data: `{summary['data']}` ({summary['dataset']}, "
        f"{summary['n_images']} images)",
        f"- removed {summary['n_removed']} images ({100 * summary['removed_share']:.1f}%), "
        f"expected {report['expected_removed']:.1f}; kept {summary['n_kept']}",
        f"- always kept (|s1 - s2| >= ln 2): {100 * report['share_always_kept']:.1f}% of images",
    ]
    if summary["stage2_skipped"]:
        lines.append("- stage 2 skipped: the images kept hold fewer than two classes, so the "
                     "PCNN is the stage-1 network")
    lines += ["", "| label | images | removed | share |", "|---|---|---|---|"]
    for name, c in report["by_label"].items():
        share = c["removed"] / c["n"] if c["n"] else 0.0
        lines.append(f"| {name} | {c['n']} | {c['removed']} | {100 * share:.1f}% |")
    lines += ["", f"seeds: {summary['seeds']}; stage-1 CNN `{summary['stage1_model']}`, "
                  f"PCNN `{summary['model']}`", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Algorithm 2: domain transfer


@dataclass(frozen=True)
class TransferConfig:
    """Fine-tune a pretrained checkpoint on Twitter I, k-fold, per subset (config.json).

    Frozen and validated when built.
    """

    model: str  # a vsent checkpoint (model.pt of ``vsent pcnn``, or its stage1/model.pt)
    data: str
    subsets: list[str] = field(default_factory=lambda: list(SUBSETS))
    folds: str = "campos"
    train: TrainConfig = field(default_factory=lambda: TRANSFER_TRAIN)
    oversample: bool = False
    skip_bad: bool = False
    seed: int = 0
    eval_batch_size: int = 64
    reference: str = "pcnn"  # which published row the table sets beside ours: pcnn | cnn

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransferConfig:
        return config_from_dict(cls, d, "pcnn-transfer")

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subsets", list(self.subsets))
        self.validate()

    def validate(self) -> None:
        check_seed(self.seed)
        self.train.validate()
        check_eval_batch_size(self.eval_batch_size)
        bad = [s for s in self.subsets if s not in SUBSETS]
        if bad or not self.subsets:
            raise VsentError(f"--subsets {','.join(self.subsets)!r}: choose among "
                             f"{', '.join(SUBSETS)}")
        if len(set(self.subsets)) != len(self.subsets):
            raise VsentError(f"--subsets {','.join(self.subsets)!r} names a subset twice")
        if len(self.subsets) > 1 and self.folds not in ("campos", "stratified"):
            # make_folds keeps the file's images only: every row would be that subset's
            raise VsentError(f"a folds file ({self.folds}) holds the folds of one subset; "
                             f"use --subsets five, four or three with it")
        if self.reference not in REFERENCES:
            raise VsentError(f"--reference {self.reference!r}: choose pcnn or cnn")


def checkpoint_spec(path: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Model name, builder options (to rebuild it per fold) and the recorded metadata of a
    vsent checkpoint."""
    model, meta = load_checkpoint(path)
    spec = dict(model.spec)
    name, num_classes = spec.pop("name"), spec.pop("num_classes")
    if model.info.num_outputs != 2 or num_classes != 2:
        raise VsentError(f"{path}: a {name} with {model.info.num_outputs} outputs; domain transfer "
                         "needs a 2-way (negative, positive) model")
    return name, spec, meta


def transfer(cfg: TransferConfig, out: str | Path, *, resume: bool = False,
             overwrite: bool = False, progress: bool = True,
             init_checked: bool = False) -> dict[str, Any]:
    """Algorithm 2 of You et al. 2015: k-fold fine-tuning of a pretrained model per subset.

    Every fold of every subset starts from the weights in ``cfg.model`` (all layers loaded,
    the 2-way classifier included) and runs :func:`vsent.crossval.crossval` into
    ``out/<subset>``. Writes ``transfer.json``, ``transfer.csv`` and ``transfer.md``: our
    precision, recall, F1 and accuracy (mean and std over folds) beside the published ones.
    Returns the table as a dict. ``out`` is opened by :func:`vsent.runs.open_run_dir`
    (``transfer.json`` marks the run finished); each subset's run resumes with it.
    ``init_checked``: the caller has refused a checkpoint trained on this data
    (:func:`vsent.data.leakage.check_other_data`: ``reproduce you2015`` checks it before its
    first sub-run), so its images are not hashed again.
    """
    out = Path(out)
    check_new_run_folds(cfg.folds, out, overwrite)
    check_device(cfg.train.device, out, "transfer.json", overwrite)
    ckpt = Path(cfg.model).expanduser().resolve()
    name, kwargs, meta = checkpoint_spec(ckpt)
    with quiet_logs(logging.INFO):  # (a missing path stops here; each subset's run says its data)
        first = load_dataset(cfg.data, cfg.subsets[0], skip_bad=cfg.skip_bad, validate=False)
    if first.source != "twitter":  # its rows are set beside You et al.'s Twitter I numbers
        raise VsentError(f"pcnn-transfer fine-tunes on Twitter I's agreement subsets; "
                         f"{cfg.data} is a {first.source} dataset (use vsent crossval "
                         f"--init {cfg.model} for other data)")
    if not init_checked:
        check_other_data(ckpt, meta, cfg.data, cfg.subsets)
    run = open_run_dir(out, {"command": "pcnn-transfer", **cfg.to_dict(), "model": str(ckpt)},
                       resume=resume, overwrite=overwrite, done="transfer.json")
    cfg = with_stored_momentum_form(cfg, run.config)  # a run made before the option
    with run:
        if run.status == "finished":
            return _transfer_table_again(run, cfg)
        if run.status == "resumed":
            _check_same_start(cfg, run, ckpt)
        timer = Timer()
        rows = []
        summaries = {}
        for subset in cfg.subsets:
            rc = RunConfig(
                data=cfg.data, subset=subset, folds=cfg.folds, model=name, model_kwargs=kwargs,
                init=str(ckpt), train=cfg.train, oversample=cfg.oversample,
                skip_bad=cfg.skip_bad, seed=cfg.seed, eval_batch_size=cfg.eval_batch_size,
                preset=None,
            )
            log.info("domain transfer: %s-agree, %s from %s", subset, name, ckpt)
            # a subset's run is part of this one: it resumes whenever this run does
            summary = crossval(rc, out / subset, resume=run.status == "resumed",
                               progress=progress, init_checked=True)  # (above, all subsets)
            summaries[subset] = summary
            rows.append(transfer_row(subset, summary, cfg.reference))
        table = {
            "model": str(ckpt), "architecture": name, "folds": cfg.folds,
            "evaluation": "ten_crop" if cfg.oversample else "center",
            "reference": cfg.reference, "published_source": PUBLISHED_SOURCE,
            "rows": rows, "seconds": timer.elapsed,
        }
        _write_transfer_table(run, table)
        return table


def _check_same_start(cfg: TransferConfig, run: RunDir, ckpt: Path) -> None:
    """A resumed transfer goes on from the checkpoint and the data its subsets were started
    with: one table must not mix two. A change inside a subset is that subset's crossval's
    to refuse; one between subsets was not seen (a finished subset's run returns its stored
    summary, the next one recorded the new checkpoint as its own start)."""
    now = file_sha256(ckpt)
    for subset in cfg.subsets:
        sub = run.path / subset
        if (sub / INIT_RECORD).exists():
            check_init_record(sub / INIT_RECORD, ckpt, now, "--model checkpoint", sub)
        if (sub / SUMMARY).exists():
            with quiet_logs(logging.INFO):  # (the next subset's run says its data)
                dataset = load_dataset(cfg.data, subset, skip_bad=cfg.skip_bad)
            check_data_record(sub / DATA_RECORD, dataset, cfg.data, f"{sub} was made",
                              "pass --overwrite to start again")


def _write_transfer_table(run: Any, table: Mapping[str, Any]) -> None:
    run.write_csv("transfer.csv", table["rows"], list(table["rows"][0]))
    run.write_text("transfer.md", transfer_markdown(table))
    run.write_json("transfer.json", table)  # last: it marks the run finished


def _transfer_table_again(run: Any, cfg: TransferConfig) -> dict[str, Any]:
    """A finished transfer's table, built again from its subsets' stored summaries: its
    numbers are the run's, its published values and labels today's (:mod:`vsent.papers`); the
    table files are written again when that changed them. The stored table when a summary is
    gone."""
    stored = run.read_json("transfer.json")
    if not all((run / s / "summary.json").is_file() for s in cfg.subsets):
        return stored
    rows = [transfer_row(s, run.read_json(f"{s}/summary.json"), cfg.reference)
            for s in cfg.subsets]
    table = {**stored, "published_source": PUBLISHED_SOURCE, "rows": rows}
    if table != stored:
        _write_transfer_table(run, table)
        log.info("%s: table written again with today's published values, labels and columns",
                 run.path)
    return table


def transfer_row(subset: str, summary: Mapping[str, Any], reference: str = "pcnn") -> dict:
    """One table row: our mean/std per metric over folds and the published value beside it."""
    row: dict[str, Any] = {"subset": subset, "n_images": summary.get("n_images")}
    published = papers.YOU2015_TABLE6[reference].get(subset, {})
    for key in SCALARS:
        row[f"{key}_mean"] = summary[key]["mean"]
        row[f"{key}_std"] = summary[key]["std"]
        row[f"{key}_published"] = published[key].mean if key in published else None
    row["n_folds"] = len(summary.get("folds", ()))  # last: transfer.csv's columns keep their place
    return row


def transfer_markdown(table: Mapping[str, Any]) -> str:
    """Markdown table: ours (mean +- std) and, in brackets, the paper's value per metric."""
    ref = papers.YOU2015_QUOTED_LABELS[table["reference"]]
    # the published row's network, when it is not the one this table fine-tuned
    theirs = {"pcnn": ("caffenet", "a CaffeNet-based network"),
              "cnn": ("pcnn", "the 2CONV-4FC network")}[table["reference"]]
    if table["architecture"] != theirs[0]:
        ours = "the 2CONV-4FC network" if table["architecture"] == "pcnn" \
            else table["architecture"]
        ref += f": {theirs[1]}, not {ours}"
    # a folds file may hold any number of folds; a table written before rows
    # recorded theirs: Campos et al.'s split has 5
    counts = {row.get("n_folds", 5 if table["folds"] == "campos" else None)
              for row in table["rows"]}
    k = f"{counts.pop()}-fold" if len(counts) == 1 and None not in counts else "k-fold"
    lines = [
        f"# Domain transfer (You et al. 2015, Algorithm 2): {table['architecture']} from "
        f"`{table['model']}`", "",
        f"{k} fine-tuning on Twitter I ({table['folds']} folds, "
        f"{'10-crop' if table['evaluation'] == 'ten_crop' else 'centre crop'} evaluation). "
        f"Each cell: ours (mean +- std over folds) / published {ref}.", "",
        "| subset | " + " | ".join(SCALARS) + " |", "|---|" + "---|" * len(SCALARS),
    ]
    published = papers.YOU2015_TABLE6[table["reference"]]
    for row in table["rows"]:
        cells = []
        for key in SCALARS:
            pub = row[f"{key}_published"]
            # as the paper printed it (its decimals: Sun et al.'s 70.09 % is 0.7009, not 0.701)
            printed = published.get(row["subset"], {}).get(key, papers.NOT_AVAILABLE).printed()
            pub_s = (papers.NOT_AVAILABLE_TEXT if pub is None
                     else printed or f"{pub:.3f}")
            cells.append(f"{row[f'{key}_mean']:.3f} +- {row[f'{key}_std']:.3f} / {pub_s}")
        lines.append(f"| {row['subset']} | " + " | ".join(cells) + " |")
    lines += ["", f"Published values: {table['published_source']}.", ""]
    return "\n".join(lines)

