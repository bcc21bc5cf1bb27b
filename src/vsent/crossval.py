"""Fine-tuning and k-fold cross-validation runs (Campos et al. 2015, Table 1), resumable.

A cross-validation run directory holds (see docs/ARCHITECTURE.md)::

    config.json  versions.json  run.log  data.json  folds.json  skipped.json
    init.json                                            (--init FILE: its SHA-256)
    fold<k>/model.pt  fold<k>/metrics.json  fold<k>/predictions.csv  fold<k>/history.json
    fold<k>/train_state.pt                               (while fold k trains)
    predictions.csv  summary.json  summary.md  curves.png (training and ROC curves)
    extra.json  fold<k>/stages/  fold<k>/removal.csv     (--extra-train, see train_fold_with_extra)
    fusion/predictions.csv  (+ summary.json["fusion"])   (--fusion, see _fuse)

A fine-tuning run directory (:func:`finetune`) holds config.json, versions.json, run.log,
data.json, skipped.json, init.json (--init FILE), folds.json (--fold), train_state.pt (while
it trains), history.json, curves.png (its training curves), model.pt and metrics.json (written
last).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from vsent import distributed
from vsent.config import (
    NOT_COMPARED,
    RunConfig,
    TrainConfig,
    fold_seed,
    with_stored_momentum_form,
)
from vsent.crossval_run import CrossvalRun, open_run
from vsent.data.cache import image_cache
from vsent.data.datasets import Dataset, load_dataset
from vsent.data.extra import (
    JointSet,
    check_extra_train,
    extra_train_set,
    progressive_filter,
    read_removal,
    with_extra,
    write_removal,
)
from vsent.data.folds import (
    Fold,
    check_folds_spec,
    check_split_data,
    fold_numbers,
    fold_numbers_text,
    make_folds,
    save_folds,
)
from vsent.errors import LAUNCHED_BY_VSENT, VsentError, one_line
from vsent.evaluate import predict_proba
from vsent.figures import crossval_figure, training_figure
from vsent.files import (
    atomic_open,
    atomic_write_text,
    check_path_arg,
    csv_rows,
    file_sha256,
)
from vsent.frozen import (
    check_head_parallel,
    check_train_mode,
    evaluate_model,
    run_meta,
    train_model,
    training_label,
)
from vsent.inference import resolve_device
from vsent.metrics import SCALARS, mean_std_text, summarize_folds, write_summary
from vsent.models import create_model
from vsent.models.base import check_two_way
from vsent.models.checkpoint import save_checkpoint
from vsent.models.weights import quiet_loading
from vsent.presets import CROSSVAL as PRESETS
from vsent.presets import resolve_lr
from vsent.provenance import (
    DATA_RECORD,
    EXTRA_RECORD,
    FINGERPRINT_KEYS,
    INIT_RECORD,
    RECORD_REMEDY,
    check_data_record,
    check_init_record,
    data_change_error,
    data_record,
    make_data_change_error,
    read_record,
)
from vsent.runs import (
    CONFIG,
    FOLD_METRICS,
    FOLD_MODEL,
    FOLDS,
    SUMMARY,
    TRAIN_STATE,
    RunDir,
    Timer,
    check_run_dir,
    fold_dir,
    fold_done,
    warn_missing_models,
)
from vsent.train import check_parallel, fit, state_seconds

if TYPE_CHECKING:  # (the analyses import this module: imported where used)
    from vsent.analyses.fused_model import LateFusion
    from vsent.analyses.handcrafted import ImageFeatures

__all__ = ["PRESETS", "CrossvalRun", "RunConfig", "check_launch", "crossval", "finetune",
           "fresh_model", "open_run", "prepare"]

log = logging.getLogger("vsent")


def prepare(cfg: RunConfig) -> tuple[RunConfig, nn.Module]:
    """Build a prototype model (for its preprocessing and default lr) and resolve the lr.

    Returns the config with ``train.lr`` the lr the run trains at (a new record: ``cfg`` is
    frozen) and the prototype. It checks ``cfg.data``, loads ``cfg.init`` and checks
    ``--train``/``--head`` against the prototype so that missing data or weights, or a way to
    train the model does not have, stop the run before its directory exists (a directory
    opened for a wrong ``--data`` would refuse the next try with the right one).
    """
    cfg.check_zero_shot_recipe()
    if not Path(cfg.data).exists():
        raise VsentError(f"{cfg.data}: no such file or directory")
    with quiet_loading():  # the model that trains says what it loaded
        model = fresh_model(cfg, cfg.seed) if cfg.zero_shot else \
            create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)
    check_train_mode(model, cfg.train_mode, cfg.head)  # e.g. last-9 of a 4-block model
    if cfg.fusion is not None:
        check_two_way(model.info.num_outputs, cfg.model, cfg.model_kwargs,
                      f"--fusion {cfg.fusion}")
    lr = resolve_lr(cfg.preset, cfg.train.lr, model.info.default_lr)  # e.g. fc6-2 trains at 1e-4
    changes: dict[str, Any] = {"train": cfg.train.replace(lr=lr)}
    if lr != cfg.train.lr and cfg.finetune is not None and cfg.finetune_lr_default:
        # the fine-tuning stages' default lr is a tenth of the training lr: of the one used
        # (a --finetune-lr given is kept, even one equal to that tenth)
        changes["finetune"] = cfg.finetune.replace(lr=lr / 10)
    return cfg.replace(**changes), model


def shows_finished_run(out: str | Path, done: str, overwrite: bool) -> bool:
    """Whether a command writing ``out`` will only show the finished run there (its ``done``
    file written, no ``--overwrite`` to replace it): no device, data check or training."""
    return not overwrite and (Path(out) / done).is_file()


def check_device(device: str | torch.device, out: str | Path, done: str,
                 overwrite: bool) -> None:
    """``--device cuda`` without a GPU, said before any data is read or ``out`` is written
    (a run directory was left behind; with ``--overwrite``, a finished run emptied);
    not for a finished run that is only shown (a GPU run's results read on a laptop)."""
    if not shows_finished_run(out, done, overwrite):
        resolve_device(device)


def check_new_run_folds(folds: str, out: str | Path, overwrite: bool,
                        data: str | None = None) -> None:
    """``folds`` (``--folds``) names a split or an existing file, checked before the run
    directory ``out`` is written (a typo, "stratifed", is no split to record in config.json),
    and, given the ``data`` they split (None: the folds are not read, as by finetune without
    ``--fold``), Campos et al.'s split is refused for a folder or CSV dataset.
    Not when it is the split ``out``'s config.json already records: that run reads its own
    folds.json (:func:`_run_folds`), and the file it was made from may have moved since."""
    if not overwrite:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads((Path(out) / CONFIG).read_text()).get("folds") == folds:
                return
    check_folds_spec(folds)
    if data is not None:
        check_split_data(folds, data)


def check_fold_number(cfg: RunConfig, out: str | Path, fold: int | None,
                      overwrite: bool) -> None:
    """``finetune --fold`` refused before ``out`` is written when the split's fold numbers
    are known without loading the data (:func:`vsent.data.folds.fold_numbers`; the split of
    a run already in ``out`` is its folds.json); otherwise checked once the folds are made."""
    if fold is None:
        return
    if type(fold) is not int:  # from Python: True would be fold 1, "2" no fold
        raise VsentError(f"--fold must be a fold number (an integer from 1), got {fold!r}")
    stored = Path(out) / FOLDS
    spec = str(stored) if stored.is_file() and not overwrite else cfg.folds
    numbers = fold_numbers(cfg.data, cfg.subset, spec)
    if numbers is not None and fold not in numbers:
        raise VsentError(f"--fold {fold}: the split has folds {fold_numbers_text(numbers)}")


def _run_record(command: str, cfg: RunConfig, fold: int | None = None) -> dict[str, Any]:
    """What ``config.json`` holds for a ``command`` run (``finetune`` also records ``fold``)."""
    if command == "finetune":
        return {"command": command, "fold": fold, **cfg.to_dict()}
    return {"command": command, **cfg.to_dict()}


def check_launch(cfg: RunConfig, out: str | Path, *, command: str, nproc: int,
                 fold: int | None = None, resume: bool = False, overwrite: bool = False) -> None:
    """What the ``nproc`` processes of ``--nproc N`` would refuse, refused here before they
    start: said once instead of once per process, and before the run directory, its records
    and the image cache exist (which would then refuse the corrected command). Checks the
    options data-parallel training lacks, :func:`prepare`'s checks (data, ``--train``) on the
    architecture alone, that a file ``--init`` exists (the ranks load the weights), and
    :func:`vsent.runs.open_run_dir`'s policy (read only: nothing is written)."""
    for recipe in (cfg.train, cfg.finetune):
        if recipe is not None:
            check_parallel(recipe, nproc)
    check_head_parallel(cfg.train_mode, nproc)
    _check_init_exists(cfg)
    check_new_run_folds(cfg.folds, out, overwrite,
                        cfg.data if command == "crossval" or fold is not None else None)
    check_fold_number(cfg, out, fold, overwrite)
    # the lr hint and --train check need the architecture, not its weights: loading (or
    # downloading) them here would be one more load before each rank loads them
    checked, _ = prepare(cfg if cfg.zero_shot else cfg.replace(init="random"))
    cfg = checked.replace(init=cfg.init)
    _check_prepared(cfg, out, command=command, fold=fold, overwrite=overwrite)
    check_run_dir(out, _run_record(command, cfg, fold), resume=resume, overwrite=overwrite,
                  done=_done_file(command), ignore=NOT_COMPARED)


def _done_file(command: str) -> str:
    """The file that marks a crossval or finetune run finished."""
    return SUMMARY if command == "crossval" else FOLD_METRICS


def _preflight(cfg: RunConfig, out: str | Path, *, command: str, fold: int | None = None,
               overwrite: bool = False, init_checked: bool = False
               ) -> tuple[RunConfig, nn.Module]:
    """The checks :func:`crossval` and :func:`finetune` make before ``out`` is opened (nothing
    written yet; ``--overwrite`` would empty it), then :func:`prepare`: ``(cfg, prototype)``.

    A run with test images (crossval, ``finetune --fold``) also refuses an ``--init``
    checkpoint trained on its data, unless ``init_checked`` (the caller did it), the run is
    a rank ``--nproc`` started (its launcher did it: :func:`check_launch`) or a finished run
    is only shown.
    """
    if not isinstance(cfg, RunConfig):  # (api60: a dict was an AttributeError on .folds)
        raise TypeError(f"{command} takes a RunConfig (vsent.config.RunConfig.from_dict turns "
                        f"a dict into one), got {type(cfg).__name__}")
    check_path_arg(out, f"{command}'s out")
    if command == "finetune" and cfg.extra_train is not None:  # (it was ignored)
        raise VsentError(f"extra_train {cfg.extra_train!r}: the weakly labelled extra images "
                         "train crossval's folds; finetune trains on the dataset's images")
    tested = command == "crossval" or fold is not None
    check_new_run_folds(cfg.folds, out, overwrite, cfg.data if tested else None)
    check_fold_number(cfg, out, fold, overwrite)
    check_device(cfg.train.device, out, _done_file(command), overwrite)
    cfg, proto = prepare(cfg)
    _check_prepared(cfg, out, command=command, fold=fold, overwrite=overwrite,
                    init_checked=init_checked or bool(os.environ.get(LAUNCHED_BY_VSENT)))
    return cfg, proto


def _check_prepared(cfg: RunConfig, out: str | Path, *, command: str, fold: int | None,
                    overwrite: bool, init_checked: bool = False) -> None:
    """What :func:`_preflight` and :func:`check_launch` check once the config is prepared:
    an ``--init`` checkpoint trained on the data of a run with test images (crossval,
    ``finetune --fold``; not when ``init_checked`` or to show a finished run), the
    ``--extra-train`` images, the blocks a finetune's saved model can carry."""
    if (command == "crossval" or fold is not None) and not (
            init_checked or shows_finished_run(out, _done_file(command), overwrite)):
        _check_init_data(cfg)
    if command == "crossval" and cfg.extra_train is not None:
        check_extra_train(cfg.data, cfg.subset, cfg.extra_train)
    if command == "finetune" and cfg.fusion is not None:  # a block a model cannot carry
        from vsent.analyses.fused_model import check_saved_blocks

        check_saved_blocks(cfg.fusion)


def _check_init_data(cfg: RunConfig) -> None:
    """A vsent checkpoint as ``--init`` of a run with test images (crossval, ``finetune
    --fold``) must have been trained on other data than ``cfg.data``: fold models, or a
    finetune of the whole dataset, have seen the images the folds test on."""
    from vsent.data.leakage import check_other_data
    from vsent.models.registry import get_model_entry, split_tagged_init
    from vsent.models.weights import saved_meta

    if cfg.zero_shot or cfg.init in ("random", "imagenet"):
        return
    path = split_tagged_init(cfg.init, get_model_entry(cfg.model).tags)[1]
    meta = saved_meta(path) if Path(path).is_file() else None
    if meta is not None:
        check_other_data(path, meta, cfg.data, (cfg.subset,),
                         needs="--init needs weights trained on other data")


def _check_init_exists(cfg: RunConfig) -> None:
    """The launcher's cheap check of ``--init`` (the ranks load it): a file must exist, and
    ``imagenet`` needs an architecture that has such weights."""
    from vsent.models.registry import get_model_entry, split_tagged_init

    init = cfg.init
    if cfg.zero_shot or init == "random":  # (zero-shot: prepare builds the scorer itself)
        return
    entry = get_model_entry(cfg.model)
    if init == "imagenet":
        if entry.weights is None:  # create_model says so before it builds anything heavy
            create_model(cfg.model, init=init, **cfg.model_kwargs)
        return
    tag, path = split_tagged_init(init, entry.tags)  # TAG=PATH: the file PATH
    if tag is None and entry.tagged is not None and entry.tagged(init) is not None:
        return  # a named set of weights (a CLIP tag)
    if not Path(path).is_file():
        what = "a folder" if Path(path).is_dir() else "no such file"
        raise VsentError(f"--init {path}: {what} (random, imagenet or a weights file"
                         f"{', or a tag of ' + cfg.model if entry.tagged else ''})")


def crossval(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
    progress: bool = True, init_checked: bool = False,
) -> dict:
    """K-fold fine-tuning and evaluation; returns the summary written to ``summary.json``.

    Each fold fine-tunes a fresh model (``cfg.model`` from ``cfg.init``) on the fold's training
    images and evaluates it on its test images with the centre crop and with 10-crop
    oversampling. ``out`` is opened by :func:`vsent.runs.open_run_dir`: a finished run returns
    its stored summary, a different config is refused; with ``resume`` finished folds
    (``fold<k>/metrics.json``) are not redone and an interrupted fold continues from its last
    finished epoch; ``overwrite`` starts again. A vsent checkpoint as ``cfg.init`` must have
    been trained on other data (``init_checked``: the caller checked it, as pcnn-transfer
    does for all its subsets before the first).
    """
    cfg, proto = _preflight(cfg, out, command="crossval", overwrite=overwrite,
                            init_checked=init_checked)
    # DDP: rank 0 opens and writes the run directory, the other ranks get a read-only view
    run = distributed.open_run_dir(out, _run_record("crossval", cfg), resume=resume,
                                   overwrite=overwrite, done=SUMMARY, ignore=NOT_COMPARED)
    cfg = with_stored_momentum_form(cfg, run.config)  # a run made before the option
    with run:
        if run.status == "finished":
            summary = run.read_json(SUMMARY)
            with contextlib.suppress(KeyError, TypeError, ValueError):  # (an edited file)
                _log_accuracy(summary, cfg.fusion)  # what the run found, as when it ended
            with contextlib.suppress(KeyError, TypeError):
                warn_missing_models(run, [str(fold_dir("", f["fold"]) / FOLD_MODEL)
                                          for f in summary["folds"]])
            return summary
        return _crossval(cfg, run, proto, progress)


def _check_same_data(cfg: RunConfig, run: RunDir, dataset: Dataset) -> None:
    """A resumed run must see the data it started with: a label flipped or an image replaced
    in between would leave folds trained and tested on two versions of it."""
    file = run / DATA_RECORD
    if not file.exists():  # a new run (or one of a vsent that kept no record)
        run.write_json(DATA_RECORD, data_record(dataset))
    check_data_record(file, dataset, cfg.data, f"{run.path} started",
                      "pass --overwrite to start again")


def _check_same_init(cfg: RunConfig, run: RunDir) -> str | None:
    """The SHA-256 of the ``--init`` weights file (None for ``random``, ``imagenet``, a tag):
    a resumed run must start its remaining folds from the weights its first folds started
    from, and a file retrained or replaced at the same path would not be seen by its name.
    ``TAG=PATH`` (a CLIP tag's weights in a file) is the file PATH."""
    from vsent.models.registry import get_model_entry, split_tagged_init

    path = split_tagged_init(cfg.init, get_model_entry(cfg.model).tags)[1]
    if not Path(path).is_file():
        return None
    now = file_sha256(path)
    file = run / INIT_RECORD
    if not file.exists():  # a new run (or one of a vsent that kept no record)
        run.write_json(INIT_RECORD, {"init": cfg.init, "sha256": now})
        return now
    check_init_record(file, cfg.init, now, "--init weights", run.path)
    return now


def _finished_fold(fdir: Path, fold: Fold) -> dict[str, Any]:
    """A finished fold's ``metrics.json``; VsentError naming it when it is damaged (cut by a
    full disk, copied in part, edited) and saying how to redo the fold."""
    file = fdir / FOLD_METRICS
    redo = f"delete {file} to redo fold {fold.index} (crossval --resume)"
    try:
        done = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise VsentError(f"{file}: unreadable ({one_line(e)}); {redo}") from None
    if not (isinstance(done, dict) and all(
            isinstance(done.get(key), dict)
            and all(isinstance(done[key].get(s), int | float) for s in SCALARS)
            for key in ("center", "ten_crop"))):
        raise VsentError(f"{file}: not a fold's metrics (center and ten_crop, each with "
                         f"{', '.join(SCALARS)}); {redo}")
    return done


def _fold_seconds(done: dict[str, Any]) -> float:
    """A finished fold's ``seconds``; 0 when it has none (a fold of a vsent that kept none)
    or one that is no number (null, a string: an edited file), which costs a bookkeeping
    figure of summary.json, not the run."""
    seconds = done.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return 0.0
    return float(seconds)


#: The figure of a finished run: each fold's training curves and test ROC curve.
CURVES_FIGURE = "curves.png"

#: The columns of a fold's ``predictions.csv`` (written by :func:`_run_fold`), which a resumed
#: run stitches into the run's own.
FOLD_COLUMNS = ("name", "path", "fold", "label", "prob_positive", "pred",
                "prob_positive_10crop", "pred_10crop")


def _fold_rows(fdir: Path, fold: Fold, names: Sequence[str]) -> list[dict]:
    """Fold ``fold``'s ``predictions.csv`` rows, one per test image (``names``: the dataset's
    image names, which ``fold.test`` indexes); VsentError naming a missing or damaged file
    (other columns, other images) and how to redo the fold."""
    file = fdir / "predictions.csv"
    redo = f"delete {fdir / FOLD_METRICS} to redo fold {fold.index} (crossval --resume)"

    def columns(header: Sequence[str]) -> list:
        missing = [c for c in FOLD_COLUMNS if c not in header]
        if missing:
            raise VsentError(f"{file}: no column {', '.join(missing)}")
        return []  # stitched into the run's file as written: nothing converted

    try:
        # a file name that is not UTF-8 is in the file as its bytes (RunDir.write_csv)
        text = file.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise VsentError(f"{file}: unreadable ({one_line(e)}); {redo}") from None
    try:  # (a row cut short was stitched in with empty cells)
        rows = [r for _, r in csv_rows(file, text, columns)]
    except VsentError as e:
        raise VsentError(f"{e}; {redo}") from None
    if len(rows) != len(fold.test):
        raise VsentError(f"{file}: {len(rows)} rows for the {len(fold.test)} test images of "
                         f"fold {fold.index}; {redo}")
    others = {r["name"] for r in rows} ^ {names[i] for i in fold.test}
    if others:
        raise VsentError(f"{file}: not the test images of fold {fold.index} (e.g. "
                         f"{sorted(others)[0]!r}); {redo}")
    return rows


def _earlier_seconds(fdir: Path) -> float:
    """Seconds an unfinished fold trained in earlier sessions: the epochs of its training
    states and of its finished ``--extra-train`` stages."""
    total = sum(state_seconds(p) for p in (fdir / TRAIN_STATE,
                                           *sorted((fdir / "stages").glob("*_state.pt"))))
    for file in sorted((fdir / "stages").glob("*.json")):
        # a damaged one counts nothing (train_fold_with_extra says so: _finished_stage)
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            total += sum(float(h.get("seconds", 0.0)) for h in json.loads(file.read_text()))
    return total


def _run_folds(cfg: RunConfig, run: RunDir, dataset: Dataset) -> list[Fold]:
    """The run's folds: those its ``folds.json`` holds once written (a resumed run keeps the
    split it started with, whatever the fold lists, a --folds file or scikit-learn give now),
    else ``cfg.folds``'s; rank 0 writes them."""
    folds_file = run / FOLDS
    spec = str(folds_file) if folds_file.exists() else cfg.folds
    folds = make_folds(dataset, spec, seed=cfg.seed)
    if distributed.is_main():  # DDP: the other ranks made the same folds
        save_folds(folds, dataset, folds_file)
    return folds


def _crossval(cfg: RunConfig, run: RunDir, proto: nn.Module, progress: bool) -> dict:
    """The body of :func:`crossval` in its opened run directory: the data (checked against the
    run's records), the folds, the image cache, each fold not yet done (:func:`_run_fold`),
    then the predictions, curves, ``--fusion`` and the summary; returns the summary."""
    timer = Timer()
    dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
    _check_same_data(cfg, run, dataset)
    run.write_json("skipped.json", list(dataset.skipped))
    init_sha256 = _check_same_init(cfg, run)
    folds = _run_folds(cfg, run, dataset)
    joint = _joint_set(cfg, run, dataset)  # --extra-train: base rows first, then extra rows
    pool = joint.dataset if joint is not None else dataset
    images = distributed.local_first(image_cache, pool, size=proto.info.preprocess.resize,
                                     progress=progress)  # DDP: built once per machine
    labels = pool.labels
    log.info("crossval %s: %d images, %d folds, model %s (init %s)",
             dataset.title, len(dataset), len(folds), cfg.model, cfg.init)

    results: dict[str, list[dict]] = {"center": [], "ten_crop": []}
    all_rows: list[dict] = []
    carried = 0.0  # seconds of earlier sessions: summary.json's "seconds" covers every one
    for fold in folds:
        # (no mkdir: fold<k>/ is made with its first file, so a run stopped before any
        # result holds records only and is replaced by the corrected command)
        fdir = fold_dir(run.path, fold.index)
        if fold_done(run.path, fold.index):
            log.info("fold %d: already done, skipped", fold.index)
            if not distributed.is_main():  # DDP: the results are rank 0's to read
                continue
            done = _finished_fold(fdir, fold)
            carried += _fold_seconds(done)
        else:
            earlier = _earlier_seconds(fdir) if distributed.is_main() else 0.0  # (rank 0's)
            carried += earlier
            done = _run_fold(cfg, run, fold, images, labels, dataset, progress, joint=joint,
                             earlier_seconds=earlier, init_sha256=init_sha256)
            if not distributed.is_main():  # (None: rank 0 evaluated and wrote the fold)
                continue
        for key in results:
            results[key].append({"fold": fold.index, **done[key]})
        all_rows.extend(_fold_rows(fdir, fold, dataset.names))
    if not distributed.is_main():  # DDP: the summary is rank 0's to compute and write
        return distributed.broadcast_object(None)

    lead = "ten_crop" if cfg.oversample else "center"
    summary = summarize_folds(results[lead])
    summary["evaluation"] = lead
    summary["center"] = summarize_folds(results["center"])
    summary["ten_crop"] = summarize_folds(results["ten_crop"])
    summary["n_images"] = int(sum(len(f.test) for f in folds))
    # every session's: the folds' own time (fold<k>/metrics.json "seconds", earlier sessions
    # included) and this session's setup; "session_seconds": this session's alone
    summary["seconds"] = carried + timer.elapsed
    summary["session_seconds"] = timer.elapsed
    if training_label(cfg) != "fine-tuning":  # --zero-shot, --train head / last-N
        summary["training"] = training_label(cfg)
    if joint is not None:  # the weak labels every training fold took
        summary["extra_train"] = {"subset": cfg.extra_train, "schedule": cfg.extra_schedule,
                                  "n_images": len(joint.extra_index)}
    run.write_csv("predictions.csv", all_rows, list(all_rows[0]) if all_rows else ["name"])
    title = (f"{cfg.model} on {dataset.title}, {len(folds)} folds ({cfg.folds}), "
             f"{'10-crop' if cfg.oversample else 'centre crop'}")
    if "training" in summary:
        title += f", {summary['training']}"
    if joint is not None:
        title += (f", + {len(joint.extra_index)} weakly labelled {cfg.extra_train}-agree "
                  f"images ({cfg.extra_schedule})")
    figure = _write_figure(run, folds, all_rows, ten_crop=cfg.oversample, title=title)
    extra_md = f"![training curves and ROC curves of each fold]({figure})\n"
    if cfg.fusion:  # late fusion with a hand-crafted classifier (the rule fixed in advance)
        summary["fusion"], fusion_md = _fuse(cfg, run, progress)
        extra_md += "\n" + fusion_md
        # the table opens the page: say it is not the run's (fused) result
        title += f"; the CNN alone (fused late with {cfg.fusion} below)"
    write_summary(run, summary, title, extra_md=extra_md)
    _log_accuracy(summary, cfg.fusion)
    return distributed.broadcast_object(summary)  # DDP: the other ranks wait for it


def _log_accuracy(summary: dict[str, Any], fusion: str | None) -> None:
    """The run's result lines from its ``summary.json``: the CNN's accuracy (centre crop and
    10 crops), then the fused one last when ``fusion`` is given (it is the run's result)."""
    # formatted here, not by logging: a value of an edited file fails in the caller's hands
    n = len(summary["center"]["folds"])
    c, t = summary["center"]["accuracy"], summary["ten_crop"]["accuracy"]
    lines = [f"accuracy over {n} folds{', the CNN alone' if fusion else ''}: centre crop "
             f"{mean_std_text(c, n)}, 10-crop {mean_std_text(t, n)}"]
    if fusion and "fusion" in summary:
        f = summary["fusion"]["fused"]["accuracy"]
        f10 = summary["fusion"].get("fused_10crop", {}).get("accuracy")
        lines.append(f"accuracy over {n} folds, the CNN fused late with {fusion}: centre crop "
                     f"{mean_std_text(f, n)}"
                     + (f", 10-crop {mean_std_text(f10, n)}" if f10 else ""))
    for line in lines:
        log.info(line)


def _write_figure(run: RunDir, folds: Sequence[Fold], rows: Sequence[dict], *,
                  ten_crop: bool, title: str) -> str:
    """``curves.png`` (:func:`vsent.figures.crossval_figure`): each fold's training curves
    (its ``history.json``; a fold without one is left out) and test ROC curve; its name."""
    histories = {}
    for fold in folds:
        file = fold_dir(run.path, fold.index) / "history.json"
        with contextlib.suppress(OSError, ValueError):  # (gone, damaged: no curve)
            history = json.loads(file.read_text())
            if isinstance(history, list) and all(isinstance(h, dict) for h in history):
                histories[fold.index] = history
    crossval_figure(histories, rows, run.path / CURVES_FIGURE, ten_crop=ten_crop, title=title)
    return CURVES_FIGURE


def fresh_model(cfg: RunConfig, seed: int) -> nn.Module:
    """The model to train, its random layers drawn from ``seed`` (not from whatever state the
    process's RNG is in), so a fold gives the same result alone, first, or after others."""
    torch.manual_seed(seed)
    if cfg.zero_shot:  # CLIP scored by its prompts: nothing random, nothing trained
        from vsent.zeroshot import zero_shot_model

        return zero_shot_model(cfg.model, cfg.init, **(cfg.prompts or {}))
    return create_model(cfg.model, init=cfg.init, **cfg.model_kwargs)


def _evaluate_crops(model: nn.Module, cfg: RunConfig, images: np.ndarray, labels: np.ndarray,
                   paths: Sequence, test: np.ndarray) -> tuple[tuple[dict, np.ndarray], ...]:
    """The images ``test`` (indices) scored as every run reports them:
    ``((centre_metrics, centre_probs), (ten_crop_metrics, ten_crop_probs))``, probs float
    (N, 2). --train head scores the head on the cached features; otherwise evaluate() on the
    images."""
    kw = {"batch_size": cfg.eval_batch_size, "device": cfg.train.device}
    return (evaluate_model(model, cfg, images, labels, paths, test, **kw),
            evaluate_model(model, cfg, images, labels, paths, test, oversample=True, **kw))


def _run_fold(cfg: RunConfig, run: RunDir, fold: Fold, images: np.ndarray, labels: np.ndarray,
              dataset: Dataset, progress: bool, joint: JointSet | None = None,
              earlier_seconds: float = 0.0, init_sha256: str | None = None) -> dict:
    """Train fold ``fold``, save its model and score its test images; the fold's metrics.

    ``images`` (N, s, s, 3) uint8 and ``labels`` (N,) are the image cache and labels of the
    dataset's images, followed by the extra images with --extra-train (``joint``'s rows:
    base rows first); the fold's indices are base rows."""
    timer = Timer()
    fdir = fold_dir(run.path, fold.index)
    train_cfg = cfg.train.replace(seed=fold_seed(cfg.seed, fold.index))
    model = fresh_model(cfg, train_cfg.seed)
    state = fdir / TRAIN_STATE
    if joint is None:
        # --train all (fit, as always) / head (cached features) / last-N; --zero-shot: none
        history = train_model(model, cfg, train_cfg, images, labels, dataset.paths,
                              np.sort(fold.train), state_path=state, progress=progress,
                              desc=f"fold {fold.index}")
    else:  # --extra-train: the schedule's stages (the last one resumes from ``state``)
        history = train_fold_with_extra(cfg, model, images, labels, joint, fold, train_cfg,
                                        fdir, progress=progress)
    if not distributed.is_main():  # DDP: rank 0 alone saves, evaluates and writes the fold
        return distributed.broadcast_object(None)
    run.write_json(f"fold{fold.index}/history.json", history)
    save_checkpoint(fdir / FOLD_MODEL, model, fold=fold.index, run=str(run.path),
                    train=train_cfg.to_dict(), subset=dataset.subset,
                    data_sha256=dataset.fingerprint()["sha256"], command="crossval",
                    n_test=len(fold.test), **run_meta(
                        cfg, len(fold.train), init_sha256,
                        n_extra=None if joint is None else len(joint.extra_index)))
    test = np.sort(fold.test)
    (center, p_center), (ten, p_ten) = _evaluate_crops(model, cfg, images, labels,
                                                      dataset.paths, test)
    rows = [
        {"name": dataset.names[i], "path": str(dataset.paths[i]), "fold": fold.index,
         "label": int(labels[i]), "prob_positive": float(pc[1]), "pred": int(pc.argmax()),
         "prob_positive_10crop": float(pt[1]), "pred_10crop": int(pt.argmax())}
        for i, pc, pt in zip(test, p_center, p_ten, strict=True)
    ]
    run.write_csv(f"fold{fold.index}/predictions.csv", rows, list(rows[0]))
    done = {"center": center, "ten_crop": ten}
    # written last: marks the fold done; "seconds": the fold's time, its earlier sessions' too
    run.write_json(f"fold{fold.index}/{FOLD_METRICS}",
                   {**done, "seconds": earlier_seconds + timer.elapsed})
    state.unlink(missing_ok=True)
    log.info("fold %d: accuracy %.3f (centre) %.3f (10-crop)", fold.index,
             center["accuracy"], ten["accuracy"])
    return distributed.broadcast_object(done)  # DDP: the other ranks wait for it


# --------------------------------------------------------------------------------------------
# issue 10: weakly labelled extra training images (--extra-train) and late fusion (--fusion)


def _joint_set(cfg: RunConfig, run: RunDir, dataset: Dataset) -> JointSet | None:
    """The base dataset joined with the ``--extra-train`` images (None without the option).

    The extra set (:func:`vsent.data.extra.extra_train_set`) holds no base image and no copy
    of one, so no test image of any fold; it is listed in ``extra.json``.
    """
    if cfg.extra_train is None:
        return None
    extra = extra_train_set(dataset, cfg.subset, cfg.extra_train, skip_bad=cfg.skip_bad)
    _check_same_extra(cfg, run, extra)
    return with_extra(dataset, extra)


def _check_same_extra(cfg: RunConfig, run: RunDir, extra) -> None:
    """A resumed run must train on the extra images it started with (as
    :func:`_check_same_data` for the base images): ``extra.json`` keeps their names, labels
    and fingerprint (names, labels and file sizes), written once when the run starts."""
    file = run / EXTRA_RECORD
    # its per-image digests name an image that changes
    record = {"subset": extra.subset, "n": len(extra), "n_positive": int(extra.labels.sum()),
              "names": extra.names, "labels": extra.labels, "skipped": extra.skipped,
              "fingerprint": data_record(extra)}
    if not file.exists():  # a new run (a folder there: read_record says so)
        run.write_json(EXTRA_RECORD, record)
        return
    then = read_record(file, "an extra training set")
    data = f"{cfg.data} (its --extra-train {extra.subset} images)"  # not the base images
    remedy = "pass --overwrite to start again"
    if "fingerprint" in then:
        fingerprint = then["fingerprint"]
        # one without the fingerprint's keys would end in a KeyError when reported as changed
        if not (isinstance(fingerprint, dict)
                and fingerprint.keys() >= set(FINGERPRINT_KEYS)):
            raise VsentError(f"{file}: not the record of an extra training set; "
                             f"{RECORD_REMEDY}")
        error = data_change_error(fingerprint, extra, data, f"{run.path} started", file, remedy)
        if error is not None:
            raise error
    # a vsent that kept no fingerprint: its names and labels are compared, then kept
    elif (then.get("names"), then.get("labels")) == (extra.names, extra.labels.tolist()):
        run.write_json(EXTRA_RECORD, record)
    else:
        then_counts = {"n_images": then.get("n"), "n_positive": then.get("n_positive")}
        raise make_data_change_error(data, f"{run.path} started", then_counts,
                                     extra.fingerprint(), file, remedy)


def train_fold_with_extra(cfg: RunConfig, model: nn.Module, images: np.ndarray,
                          labels: np.ndarray, joint: JointSet, fold: Fold,
                          train_cfg: TrainConfig, fdir: Path, *,
                          progress: bool = True) -> list[dict[str, Any]]:
    """Train ``model`` on fold ``fold`` with the extra images, by ``cfg.extra_schedule``.

    ``images`` / ``labels`` (N_base + N_extra, ...) hold the base rows first (the fold's
    indices) and the extra rows after them (:class:`vsent.data.extra.JointSet`). Stages:

    * ``joint``: train on the fold's training rows + every extra row (``train_cfg``).
    * ``joint+finetune``: then fine-tune on the fold's (clean) training rows alone with
      ``cfg.finetune`` (You et al. 2015, Algorithm 2).
    * ``progressive``: after ``joint``, score those rows (centre crop), drop row ``i`` with
      probability ``p_i = max(0, 2 - exp(|s_i1 - s_i2|))``
      (:func:`vsent.data.extra.progressive_filter`; with ``progressive_scope="extra"`` only
      extra rows may go), fine-tune on the rest (``cfg.finetune``; Algorithm 1), then on the
      fold's training rows as ``joint+finetune``. The draw is written to
      ``fold<k>/removal.csv`` (as ``vsent pcnn``'s). When the rest holds fewer than two
      classes (an unconfident network drops nearly everything), that fine-tuning is skipped
      with a warning.

    Seeds: ``joint`` trains with ``train_cfg.seed``, ``progressive`` with ``+ 1`` and
    ``finetune`` with ``+ 2`` (with ``joint+finetune`` too); the removal draws come
    from ``numpy.random.default_rng(train_cfg.seed)``. Every stage but the last saves its
    weights and history in ``fold<k>/stages/`` (a resumed fold skips it); the last resumes
    from ``fold<k>/train_state.pt``, which the caller removes once ``model.pt`` is saved.
    Test rows are never trained on (checked by :meth:`JointSet.fold_train`).

    Returns the history of every stage, one dict per epoch with a ``stage`` key.
    """
    base = np.sort(fold.train)
    train = joint.fold_train(fold)
    k = fold.index
    ft = cfg.finetune.replace(device=cfg.train.device) if cfg.finetune is not None else None
    stages: list[tuple[str, np.ndarray | None, TrainConfig]] = [("joint", train, train_cfg)]
    if cfg.extra_schedule == "progressive":
        stages.append(("progressive", None, ft.replace(seed=train_cfg.seed + 1)))
    if cfg.extra_schedule != "joint":
        stages.append(("finetune", base, ft.replace(seed=train_cfg.seed + 2)))
    sdir = fdir / "stages"
    history: list[dict[str, Any]] = []
    for j, (name, rows, stage_cfg) in enumerate(stages):
        if name == "progressive":
            # DDP: rank 0 scores, draws and writes removal.csv; every rank gets its draw
            rows = train[distributed.on_main(_progressive_keep, cfg, model, images, labels,
                                             joint, train, train_cfg.seed, fdir, k)]
            if len(np.unique(labels[rows])) < 2:
                # a network confident on (almost) nothing drops (almost) every image: a set
                # of one class can only teach "always that class", so the stage is skipped
                log.warning("fold %d: the progressive selection left %d images of fewer than "
                            "two classes (%s); stage progressive skipped, the joint model "
                            "goes on to stage finetune", k, len(rows), fdir / "removal.csv")
                continue
        last = j == len(stages) - 1
        weights, hist_file = sdir / f"{name}.pt", sdir / f"{name}.json"
        if not last and weights.exists() and hist_file.exists():
            log.info("fold %d, stage %s: already done, loading %s", k, name, weights)
            hist = _finished_stage(model, weights, hist_file, k, name)
        else:
            log.info("fold %d, stage %s: %d training images (%d extra)", k, name, len(rows),
                     int(joint.is_extra(rows).sum()))
            # (fit makes the state's folder when it first saves: nothing made before that)
            state = fdir / (TRAIN_STATE if last else f"stages/{name}_state.pt")
            hist = [{**h, "stage": name} for h in fit(
                model, images[rows], labels[rows], stage_cfg, state_path=state,
                progress=progress, desc=f"fold {k} {name}")]
            if not last and distributed.is_main():  # DDP: rank 0 alone writes
                sdir.mkdir(parents=True, exist_ok=True)
                with atomic_open(weights, "wb") as f:
                    torch.save(model.state_dict(), f)
                atomic_write_text(hist_file, json.dumps(hist))  # last: marks the stage done
                state.unlink(missing_ok=True)
        history.extend(hist)
    return history


def _finished_stage(model: nn.Module, weights: Path, hist_file: Path, k: int,
                    name: str) -> list[dict[str, Any]]:
    """Load a finished ``--extra-train`` stage's weights into ``model``; its history. A damaged
    file (cut by a full disk, copied in part, edited) is a VsentError naming it and saying how
    to redo the stage."""
    redo = f"delete {weights} and {hist_file} to redo stage {name} of fold {k} (--resume)"
    try:
        hist = json.loads(hist_file.read_text())
    except (OSError, ValueError) as e:
        raise VsentError(f"{hist_file}: unreadable ({one_line(e)}); {redo}") from None
    if not (isinstance(hist, list) and all(isinstance(h, dict) for h in hist)):
        raise VsentError(f"{hist_file}: not a stage's history (a list of epochs); {redo}")
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as e:  # torch.load of a damaged file: RuntimeError, EOFError, pickle's
        raise VsentError(f"{weights}: unreadable ({one_line(e)}); {redo}") from None
    return hist


def _progressive_keep(cfg: RunConfig, model: nn.Module, images: np.ndarray,
                      labels: np.ndarray, joint: JointSet, train: np.ndarray, seed: int,
                      fdir: Path, k: int) -> np.ndarray:
    """Bool mask over ``train``: the rows that survive the selection step (``removal.csv``)."""
    names = [joint.dataset.names[i] for i in train]
    file = fdir / "removal.csv"
    if file.exists():
        keep, _ = read_removal(file, names)
    else:
        scores = predict_proba(model, images[train], batch_size=cfg.eval_batch_size,
                               device=cfg.train.device)
        candidates = joint.is_extra(train) if cfg.progressive_scope == "extra" else None
        keep = progressive_filter(scores, np.random.default_rng(seed), candidates)
        write_removal(file, names, labels[train], scores, keep)
    log.info("fold %d, selection: removed %d of %d training images (%d of them extra)",
             k, int((~keep).sum()), len(keep), int((~keep & joint.is_extra(train)).sum()))
    return keep


def _fuse(cfg: RunConfig, run: RunDir, progress: bool) -> tuple[dict[str, Any], str]:
    """Late fusion of the finished folds with ``cfg.fusion`` (:func:`vsent.analyses.fusion_run.
    fuse_run`, the rule fixed in advance: mean of the two probabilities, w = 0.5, logistic
    regression fitted on each training fold). Writes ``fusion/predictions.csv``; returns the
    summary (without the per-image rows) and its Markdown section."""
    from vsent.analyses.fusion_run import fuse_run, fusion_markdown

    res = fuse_run(run.path, cfg.fusion, progress=progress, data_said=True)
    rows = res.pop("rows")
    run.write_csv("fusion/predictions.csv", rows, list(rows[0]) if rows else ["name"])
    return res, fusion_markdown(res)


def _fit_late_fusion(cfg: RunConfig, dataset: Dataset, train_idx: np.ndarray,
                     progress: bool) -> tuple[LateFusion, ImageFeatures]:
    """The hand-crafted half of ``cfg.fusion`` (:class:`vsent.analyses.fused_model.LateFusion`,
    the rule fixed in advance) fitted on rows ``train_idx``, and the dataset's features."""
    from vsent.analyses.baselines import BaselineConfig
    from vsent.analyses.fused_model import LateFusion, check_saved_blocks, fit_hand_crafted_model
    from vsent.analyses.handcrafted import extract_features

    config = BaselineConfig()
    feats = extract_features(dataset.paths, sift=config.sift,
                             need_sift="bow" in check_saved_blocks(cfg.fusion),
                             progress=progress)
    hand = fit_hand_crafted_model(feats, dataset.labels, train_idx, cfg.fusion, config=config,
                                  seed=cfg.seed)
    log.info("late fusion: %s logistic regression on %d images (C %g)", cfg.fusion,
             hand.n_train, hand.C)
    return LateFusion(hand), feats


def finetune(cfg: RunConfig, out: str | Path, *, fold: int | None = None, resume: bool = False,
             overwrite: bool = False, progress: bool = True) -> dict:
    """Fine-tune one model on the whole dataset (or on fold ``fold``'s training images).

    Writes ``model.pt`` (and, with ``fold``, that fold's test metrics) into ``out``, then
    ``metrics.json`` last (it marks the run finished). ``out`` is opened by
    :func:`vsent.runs.open_run_dir`: a finished run returns its stored result, a different
    config (e.g. another ``--lr``) is refused, ``resume`` continues from ``train_state.pt``.
    """
    cfg, proto = _preflight(cfg, out, command="finetune", fold=fold, overwrite=overwrite)
    out = Path(out)
    run = distributed.open_run_dir(out, _run_record("finetune", cfg, fold), resume=resume,
                                   overwrite=overwrite, done=FOLD_METRICS,
                                   ignore=NOT_COMPARED)
    cfg = with_stored_momentum_form(cfg, run.config)  # a run made before the option
    with run:
        if run.status == "finished":  # (the model where it is now: the run may have moved)
            metrics = run.read_json(FOLD_METRICS)
            warn_missing_models(run, [FOLD_MODEL])
            return {**metrics, "model": str(out / FOLD_MODEL)}
        dataset = load_dataset(cfg.data, cfg.subset, skip_bad=cfg.skip_bad)
        _check_same_data(cfg, run, dataset)  # as crossval: a resume sees the data it started on
        run.write_json("skipped.json", list(dataset.skipped))
        init_sha256 = _check_same_init(cfg, run)
        train_idx = np.arange(len(dataset))
        test_idx = None
        if fold is not None:  # checked before the image cache is built (minutes)
            folds = _run_folds(cfg, run, dataset)
            match = [f for f in folds if f.index == fold]
            if not match:
                raise VsentError(f"--fold {fold}: the split has folds "
                                 f"{fold_numbers_text([f.index for f in folds])}")
            train_idx, test_idx = np.sort(match[0].train), np.sort(match[0].test)
        images = None  # zero-shot without --fold: nothing trains or is tested
        if not cfg.zero_shot or test_idx is not None:
            images = distributed.local_first(image_cache, dataset,
                                             size=proto.info.preprocess.resize,
                                             progress=progress)  # DDP: built once per machine
        train_cfg = cfg.train.replace(seed=cfg.seed)
        model = fresh_model(cfg, train_cfg.seed)
        history = train_model(model, cfg, train_cfg, images, dataset.labels, dataset.paths,
                              train_idx, state_path=out / TRAIN_STATE, progress=progress,
                              desc="finetune")
        if not distributed.is_main():  # DDP: rank 0 alone saves, evaluates and writes
            return distributed.broadcast_object(None)
        run.write_json("history.json", history)
        title = f"{cfg.model} on {dataset.title}" + (f", fold {fold}" if fold is not None else "")
        training_figure(history, out / CURVES_FIGURE, title=title)
        fusion = feats = None
        if cfg.fusion is not None:  # the hand-crafted half, fitted on the same images
            fusion, feats = _fit_late_fusion(cfg, dataset, train_idx, progress)
        save_checkpoint(out / FOLD_MODEL, model, fold=fold, train=train_cfg.to_dict(),
                        subset=dataset.subset, data_sha256=dataset.fingerprint()["sha256"],
                        fusion=None if fusion is None else fusion.to_state(),
                        command="finetune", n_test=0 if test_idx is None else len(test_idx),
                        **run_meta(cfg, len(train_idx), init_sha256))
        result: dict[str, Any] = {"n_train": len(train_idx), "model": str(out / FOLD_MODEL)}
        if test_idx is not None:
            (result["center"], p_center), (result["ten_crop"], p_ten) = _evaluate_crops(
                model, cfg, images, dataset.labels, dataset.paths, test_idx)
            if fusion is not None:
                from vsent.metrics import binary_metrics

                X = fusion.hand.dataset_features(feats, test_idx)
                y = dataset.labels[test_idx]
                for key, p in (("center", p_center), ("ten_crop", p_ten)):
                    fused = fusion.fuse(p, X).argmax(axis=1)
                    result[f"fused_{key}"] = binary_metrics(y, fused)
        run.write_json(FOLD_METRICS, result)  # written last: marks the run finished
        # only now: interrupted during the evaluation, a resume finds its epochs trained
        (out / TRAIN_STATE).unlink(missing_ok=True)
        return distributed.broadcast_object(result)  # DDP: the other ranks wait for it
