"""Fusion of a finished crossval run with a hand-crafted classifier, fold by fold.

The fold loop of ``vsent fuse`` and ``crossval --fusion``: it reads a finished run's folds and
predictions, fits the hand-crafted classifier on each training fold
(:func:`vsent.analyses.fusion.hand_crafted_probabilities`) and fuses it with the CNN's
predictions of that fold's test images by a rule of :mod:`vsent.analyses.fusion`. No CNN is
retrained.

* :func:`fuse_run` - late fusion of a finished crossval run (its ``predictions.csv``) with a
  hand-crafted classifier fitted fold by fold: no CNN is retrained. Its ``"early"`` rule
  fits that classifier on the fold model's penultimate features joined to the hand-crafted
  blocks instead (each block the same total weight, :class:`vsent.analyses.baselines.
  BlockScaler`, as :func:`vsent.analyses.fusion.early_fusion` weighs them).
* :func:`inner_cnn_probabilities` - ``vsent fuse --weight inner``: in each fold, ``w``
  chosen (:func:`vsent.analyses.fusion.choose_weight`) on out-of-fold predictions of the
  fold's *training* images
  (the CNN's from an inner cross-validation of the run's recipe, the hand-crafted
  classifier's from ``hand_crafted_probabilities(..., oof=True)``), at about four times the
  run's own training cost.
* :func:`fuse` - :func:`fuse_run` written as a run directory (``vsent fuse``).

**The early rule is biased towards the CNN** (no test leakage, but an optimistic design): its
classifier is fitted on the fold model's features *of that model's own training images*,
which the network has fitted (a quick run reaches a training accuracy near 1), so the inner
cross-validation picks C, and the classifier weighs the blocks, on CNN features far more
separable than the test images' will be. An unbiased early rule needs out-of-fold CNN
features of the training images (the inner CNN cross-validation above); report its numbers
beside the late rules', as the in-sample fit they are.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from vsent.analyses.baselines import BLOCKS, SIFT_BLOCKS, BaselineConfig
from vsent.analyses.fusion import (
    DEFAULT_RULE,
    DEFAULT_WEIGHT,
    METHODS,
    RULES,
    baseline_fold_features,
    choose_weight,
    fuse_probabilities,
    hand_crafted_probabilities,
    predict,
)
from vsent.config import EXTRA_TRAIN, RunConfig, parse_fusion_blocks
from vsent.data.leakage import quiet_logs
from vsent.errors import VsentError
from vsent.models.base import check_two_way

if TYPE_CHECKING:
    from vsent.analyses.cues import CueParams

log = logging.getLogger("vsent")

__all__ = [
    "INNER", "INNER_SPLITS", "RECORDED_SINCE", "RUN_RULES", "default_fusion_dir",
    "fold_cnn_features", "fuse", "fuse_run", "fusion_markdown", "inner_cnn_probabilities",
]

#: Rules of :func:`fuse_run`: the late ones, and ``early`` (one classifier on the CNN's
#: features and the hand-crafted blocks together).
RUN_RULES = (*RULES, "early")
#: ``--weight inner``: the CNN's weight chosen in each fold by
#: :func:`vsent.analyses.fusion.choose_weight` on out-of-fold predictions of its training
#: images (:func:`inner_cnn_probabilities`).
INNER = "inner"
#: Inner folds of ``--weight inner`` (each outer training fold split into this many, a CNN
#: trained on each; the hand-crafted classifier's own inner CV is BaselineConfig.inner_splits).
INNER_SPLITS = 5


def check_run_two_way(cfg: dict[str, Any], what: str) -> None:
    """:func:`vsent.models.base.check_two_way` for a finished run from its ``config.json``
    (``cfg``): the architecture is built with random weights on the meta device (no memory,
    nothing loaded) to read its output width. An ensemble's members were checked when it was
    made; a zero-shot model is 2-way. A model this machine cannot build (e.g. a timm run read
    where the backbones extra is not installed) is logged and not checked: only its stored
    predictions are read."""
    if cfg.get("command") == "ensemble" or cfg.get("zero_shot"):
        return
    import torch

    from vsent.models import create_model

    name, kwargs = cfg.get("model", RunConfig.model), cfg.get("model_kwargs") or {}
    try:
        try:
            with torch.device("meta"):
                width = create_model(name, init="random", **kwargs).info.num_outputs
        except NotImplementedError:  # a builder that copies data (open_clip): a real build
            width = create_model(name, init="random", **kwargs).info.num_outputs
    except (VsentError, ImportError) as exc:
        log.info("%s: %s cannot be built here to check its output width (%s)", what, name, exc)
        return
    check_two_way(width, name, kwargs, what)


def fold_cnn_features(run: Path, dataset: Any, folds: Sequence[Any], *,
                      cache_dir: str | os.PathLike | None = None, progress: bool = False
                      ) -> dict[int, np.ndarray]:
    """Penultimate features (``forward_features``, centre crop) of every image of ``dataset``
    under each fold's model (``run/fold<k>/model.pt``): ``{fold index: float32 (N, D)}``.

    Rows are those of ``dataset``; a fold's training rows are images its model was trained on.
    Features are cached on disk (:func:`vsent.frozen.cached_features`). A model file that
    records another fold (copied or swapped) is refused, as
    :meth:`vsent.crossval_run.CrossvalRun.load_model` refuses it: it was trained on this fold's test
    images.
    """
    from vsent.crossval_run import load_fold_model
    from vsent.data.cache import image_cache
    from vsent.frozen import cached_features
    from vsent.runs import FOLD_MODEL, fold_dir

    out: dict[int, np.ndarray] = {}
    images: dict[int, np.ndarray] = {}
    for fold in folds:
        path = fold_dir(run, fold.index) / FOLD_MODEL
        if not path.is_file():
            raise VsentError(f"{path}: the early rule needs each fold's model (a crossval run "
                             "made here with its model.pt files, not an ensemble or a copy "
                             "without models)")
        model, meta = load_fold_model(path, fold.index)
        size = model.info.preprocess.resize
        if size not in images:
            images[size] = image_cache(dataset, size=size, cache_dir=cache_dir,
                                       progress=progress)
        out[fold.index] = np.asarray(cached_features(
            model, dataset.paths, images[size], init=str(path), device="cpu",
            cache_dir=cache_dir))
    return out


def inner_cnn_probabilities(run_cfg: dict[str, Any], dataset: Any, folds: Sequence[Any],
                            out: str | os.PathLike, *, progress: bool = False
                            ) -> dict[int, np.ndarray]:
    """Out-of-fold P(positive) of each fold's training images (``--weight inner``):
    ``{fold index: float64 (len(fold.train),)}``, in the order of ``fold.train``.

    Fold k's training images are split into :data:`INNER_SPLITS` stratified folds (shuffled
    with the run's seed, written to ``out/fold<k>-folds.json``), and a crossval run of the
    run's own recipe (``run_cfg``, its config.json, without ``--fusion``) is trained on them in
    ``out/fold<k>``: every training image is scored by a network that saw neither it nor any
    test image of fold k. An interrupted inner run resumes, a finished one is read back.
    Cost: about ``INNER_SPLITS - 1`` times the run's own training.
    """
    from vsent.analyses.compare import read_predictions
    from vsent.crossval import crossval
    from vsent.data.folds import Fold, save_folds

    check_inner_recipe(run_cfg)
    for fold in folds:  # (StratifiedKFold needs one image of each class per inner fold)
        fewest = int(np.bincount(dataset.labels[np.asarray(fold.train)], minlength=2).min())
        if fewest < INNER_SPLITS:
            raise VsentError(f"--weight {INNER}: fold {fold.index}'s training images have "
                             f"{fewest} of one class, fewer than its {INNER_SPLITS} inner folds")
    # the run's recipe; where it trains is this machine's choice (a run trained on a GPU is
    # fused on a CPU), as for a resumed run (device is not compared)
    recipe = {k: v for k, v in run_cfg.items() if k != "command"}
    recipe["train"] = {**recipe.get("train", {}), "device": "auto"}
    seed = int(run_cfg.get("seed", 0))
    out = Path(out).resolve()  # (the inner runs record their folds file by this path)
    probs: dict[int, np.ndarray] = {}
    for fold in folds:
        train = np.asarray(fold.train)
        split = StratifiedKFold(INNER_SPLITS, shuffle=True, random_state=seed)
        inner = [Fold(j, np.sort(train[a]), np.sort(train[b]))
                 for j, (a, b) in enumerate(split.split(train, dataset.labels[train]), 1)]
        fdir = out / f"fold{fold.index}"
        spec = _inner_folds_spec(fdir, inner, dataset) or str(
            save_folds(inner, dataset, out / f"fold{fold.index}-folds.json"))
        log.info("--weight %s: fold %d, %d inner runs of the recipe on its %d training "
                 "images (its %d test images are in none)", INNER, fold.index, INNER_SPLITS,
                 len(train), len(fold.test))
        cfg = RunConfig.from_dict({**recipe, "folds": spec, "fusion": None})
        # (no "--resume" said; the recipe's --init was checked when the run was trained)
        crossval(cfg, fdir, resume=fdir.exists(), progress=progress, init_checked=True)
        preds = read_predictions(fdir / "predictions.csv", "prob_positive")
        names = [dataset.names[i] for i in train]
        missing = [n for n in names if n not in preds]
        if missing:  # (_inner_folds_spec checked the split: a predictions.csv edited since)
            raise VsentError(f"{fdir / 'predictions.csv'}: no prediction of {len(missing)} "
                             f"training images of fold {fold.index} (e.g. {missing[0]}); delete "
                             f"{fdir} to train its inner runs again")
        probs[fold.index] = np.array([preds[n]["prob_positive"] for n in names], np.float64)
    return probs


def check_inner_recipe(run_cfg: dict[str, Any]) -> None:
    """VsentError unless ``run_cfg`` (a run's config.json) is a crossval run's, whose recipe
    ``--weight inner`` repeats (checked by :func:`fuse` before its output folder is made)."""
    made_by = run_cfg.get("command")
    if made_by != "crossval":
        raise VsentError(f"--weight {INNER}: needs a crossval run, whose recipe the inner "
                         f"runs repeat (this run was made by vsent {made_by or '?'})")


def _inner_folds_spec(fdir: Path, inner: Sequence[Any], dataset: Any) -> str | None:
    """The ``folds`` an inner run already in ``fdir`` records, when its stored split
    (``folds.json``) is ``inner``: the run then resumes or is read back wherever it was
    made (its folds file was written beside it, by another path if it moved). None when
    ``fdir`` holds no run yet; VsentError when it holds one of another split (the run's folds
    or seed changed since): its networks saw other images."""
    from vsent.data import make_folds
    from vsent.runs import CONFIG, FOLDS, read_config

    if not (fdir / CONFIG).is_file() or not (fdir / FOLDS).is_file():
        return None  # (a run stopped before its folds were written starts again)
    stored = read_config(fdir).get("folds")
    try:  # (the reader crossval resumes the run with: the same checks and messages; the
        # images in no test fold are said by that crossval, not twice)
        found = make_folds(dataset, fdir / FOLDS, say_untested=False)
    except VsentError as e:
        raise VsentError(f"{e}; delete {fdir} to train its inner runs again") from None
    same = [f.index for f in found] == [f.index for f in inner] and all(
        np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
        for a, b in zip(found, inner, strict=True))
    if not same or not isinstance(stored, str):
        raise VsentError(f"{fdir} holds inner runs of another split (the run's folds, data or "
                         f"seed changed since they were trained): delete it to train them "
                         "again")
    return stored


def _data_record(run: Path, cfg: dict[str, Any]) -> tuple[Path | None, Path]:
    """The data record of the data ``run`` was trained on (:data:`vsent.provenance.DATA_RECORD`) and
    the run that wrote it: its own; for an ensemble made before it kept its first member's
    record, that member's (``runs[0]`` as recorded, when found there); None when no record
    exists (a run made before data.json)."""
    from vsent.provenance import DATA_RECORD

    own = run / DATA_RECORD
    if own.is_file() or cfg.get("command") != "ensemble":
        return (own if own.is_file() else None), run
    runs = cfg.get("runs")
    if isinstance(runs, list) and runs and isinstance(runs[0], str):
        first = Path(runs[0])
        if (first / DATA_RECORD).is_file():  # its images are the ensemble's test images
            return first / DATA_RECORD, first
    return None, run


#: config.json keys of a fusion recorded since fusions were first made (the hand-crafted
#: settings and the classifier's seed): compared only with a stored config that has them, so
#: a fusion made before stays finished.
RECORDED_SINCE = ("hand_crafted", "seed", "inner_splits")


def default_fusion_dir(run: str | os.PathLike, features: str, rule: str, weight: float | str,
                       classifier: str, histogram_map: str = "none",
                       extra_train: str | None = None) -> str:
    """``RUN/fuse/<features>-<rule>-w<weight>-<classifier>[-<map>][-extra<subset>]`` (one
    directory per setting: ``vsent fuse`` without --out; ``w-inner`` for ``--weight inner``)."""
    suffix = "" if histogram_map == "none" else f"-{histogram_map}"
    suffix += f"-extra{extra_train}" if extra_train else ""
    w = f"-{INNER}" if weight == INNER else f"{weight:g}"
    return f"{str(run).rstrip('/')}/fuse/{features}-{rule}-w{w}-{classifier}{suffix}"


def fusion_out(run: str | os.PathLike, out: str | os.PathLike | None, features: str, rule: str,
               weight: float | str, classifier: str, histogram_map: str = "none",
               extra_train: str | None = None) -> Path:
    """Where :func:`fuse` writes: ``out``, or (None or "") the settings' own folder
    (:func:`default_fusion_dir`, ``features`` read as ``--features`` reads them)."""
    if out not in (None, ""):
        return Path(out)
    blocks = "+".join(parse_fusion_blocks(features, "--features"))
    return Path(default_fusion_dir(run, blocks, rule, weight, classifier, histogram_map,
                                   extra_train))


def fuse(run: str | os.PathLike, out: str | os.PathLike | None = None, *,
         features: str = "gch+bow", rule: str = DEFAULT_RULE,
         weight: float | str = DEFAULT_WEIGHT,
         classifier: str = "logistic", histogram_map: str = "none",
         extra_train: str | None = None, overwrite: bool = False,
         inner_dir: str | os.PathLike | None = None,
         progress: bool = True) -> tuple[dict[str, Any], Path]:
    """:func:`fuse_run` of the finished crossval run ``run``, written to the run directory
    ``out`` (default :func:`default_fusion_dir`): ``config.json``, ``folds.json``,
    ``predictions.csv``, ``summary.md``, ``summary.json``. Returns the summary and ``out``.

    There is no resume: an unfinished fusion (interrupted) is simply done again (but for the
    inner runs of ``weight="inner"``, kept in ``inner_dir``, default ``out/inner``, and
    resumed or read back: fusions of one run with other features or classifiers can share
    them); a finished one is read back (the run's predictions unchanged since:
    ``inputs.json``); ``overwrite`` starts again. Options left at their defaults stay out of
    config.json, so earlier fusions stay finished. VsentError for a bad option, before
    ``out`` is made.
    """
    from dataclasses import asdict

    from vsent.analyses.compare import check_finished_run
    from vsent.crossval_run import check_run_data, record_or_check_inputs, run_moved_since
    from vsent.runs import FOLDS, SUMMARY, open_run_dir, read_config

    features = "+".join(parse_fusion_blocks(features, "--features"))
    _check_options(rule, weight, classifier, extra_train)
    check_finished_run(run, "crossval run")
    run_cfg = read_config(run)
    check_run_data(run, run_cfg)  # before out is made
    if extra_train is not None:  # (and before --overwrite empties it)
        from vsent.data.extra import check_extra_train

        check_extra_train(run_cfg["data"], run_cfg.get("subset", "five"), extra_train)
    if weight == INNER:
        check_inner_recipe(run_cfg)
    elif inner_dir is not None:
        raise VsentError("--inner-dir applies to --weight inner")
    out = fusion_out(run, out, features, rule, weight, classifier, histogram_map, extra_train)
    baseline_config = BaselineConfig(histogram_map=histogram_map)
    config = {"command": "fuse", "run": str(Path(run).resolve()), "features": features,
              "rule": rule, "weight": weight, "classifier": classifier}
    if rule == "early":  # one classifier on both feature sets: no weight to record
        del config["weight"]
    if weight == INNER:
        config["inner_splits"] = INNER_SPLITS
    if histogram_map != "none":
        config["histogram_map"] = histogram_map
    if extra_train:
        config["extra_train"] = extra_train
    # what the hand-crafted classifier was made with: its settings (hand_crafted.seed seeds
    # the BoW/Fisher encoders; cue parameters are the defaults) and the classifier's seed
    # (the run's, as fuse_run takes it: its inner CV and fit)
    config["hand_crafted"] = asdict(baseline_config)
    config["seed"] = run_seed(run, run_cfg)
    compare = _compared_keys(out, config, overwrite)
    moved = run_moved_since(out, run) if compare is not None else None
    if moved:  # the fusion went with its run: identified by its inputs' hashes, not the path
        compare = [k for k in compare or () if k != "run"]
    with open_run_dir(out, config, resume=True, overwrite=overwrite, done=SUMMARY,
                      resume_asked=False, compare=compare) as rd:
        record_or_check_inputs(rd, [Path(run) / "predictions.csv"],
                     moved=(moved, Path(run).resolve()) if moved else None)
        if rd.status == "finished":
            res = rd.read_json(SUMMARY)
        else:
            res = fuse_run(run, features, rule=rule, weight=weight, method=classifier,
                           baseline_config=baseline_config, extra_train=extra_train,
                           folds_file=rd / FOLDS, progress=progress,
                           inner_dir=(inner_dir or rd / INNER) if weight == INNER else None)
            rows = res.pop("rows")
            rd.write_csv("predictions.csv", rows, list(rows[0]) if rows else ["name"])
            rd.write_text("summary.md", f"# {run}\n\n" + fusion_markdown(res))
            rd.write_json(SUMMARY, res)  # written last: marks the fusion done
    return res, out


def run_seed(run: str | os.PathLike, cfg: dict[str, Any]) -> int:
    """The seed a run's config.json records (0 when it records none), which its fusion's
    classifier and folds take; VsentError naming the file when it is no integer (a
    hand-edited "abc" was numpy's traceback)."""
    from vsent.config import check_seed

    seed = cfg.get("seed", 0)
    try:
        check_seed(seed)
    except VsentError as e:
        raise VsentError(f"{Path(run) / 'config.json'}: {str(e).removeprefix('--')}") from None
    return int(seed)


def _check_options(rule: str, weight: float | str, method: str,
                   extra_train: str | None) -> None:
    """VsentError naming the option for a rule, weight, classifier or extra set that
    :func:`fuse_run` cannot take (checked before any work, and by :func:`fuse` before its
    output folder is made)."""
    if rule not in RUN_RULES:
        raise VsentError(f"--rule {rule!r}: choose one of {', '.join(RUN_RULES)}")
    if weight == INNER:
        if rule == "early" or extra_train is not None:
            raise VsentError(f"--weight {INNER}: not with "
                             f"{'--rule early' if rule == 'early' else '--extra-train'}")
    elif isinstance(weight, str) or not 0.0 <= weight <= 1.0:
        raise VsentError(f"--weight {weight!r} is out of range (0 .. 1, or {INNER})")
    elif rule == "early" and weight != DEFAULT_WEIGHT:
        raise VsentError("--weight: the early rule has no weight (one classifier on both "
                         "feature sets)")
    if method not in METHODS:
        raise VsentError(f"--classifier {method!r}: choose one of {', '.join(METHODS)}")
    if extra_train is not None and extra_train not in EXTRA_TRAIN:
        raise VsentError(f"--extra-train {extra_train!r}: choose one of "
                         f"{', '.join(EXTRA_TRAIN)}")
    if extra_train is not None and rule == "early":
        raise VsentError("--extra-train needs a late rule (mean or logit): the early rule "
                         "would need the CNN's features of the extra images")


def _compared_keys(out: Path, config: dict[str, object], overwrite: bool) -> list[str] | None:
    """The config keys open_run_dir compares with a stored fusion's: those of either, except
    :data:`RECORDED_SINCE` when the stored config lacks them and the weight of an early rule
    (older fusions recorded its unused 0.5). None: nothing stored to compare."""
    from vsent.runs import CONFIG, read_config

    if overwrite or not (out / CONFIG).is_file():
        return None
    try:
        stored = read_config(out)
    except VsentError:  # open_run_dir names the damaged file
        return None
    keys = [*config, *(k for k in stored if k not in config)]
    return [k for k in keys if (k in stored or k not in RECORDED_SINCE)
            and not (k == "weight" and config.get("rule") == "early")]


def fuse_run(
    run: str | os.PathLike, features: str = "gch+bow", *, rule: str = DEFAULT_RULE,
    weight: float | str = DEFAULT_WEIGHT, method: str = "logistic",
    baseline_config: BaselineConfig | None = None, cue_params: CueParams | None = None,
    extra_train: str | None = None, folds_file: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None, progress: bool = False,
    inner_dir: str | os.PathLike | None = None, data_said: bool = False,
) -> dict[str, Any]:
    """Late fusion of a finished cross-validation run with a hand-crafted classifier.

    Reads the run's ``config.json`` (``data``, ``subset``, ``folds``, ``seed``, ``skip_bad``),
    its folds (``folds.json`` when present, else rebuilt from the config) and
    ``predictions.csv`` (``name``, ``fold``, ``prob_positive`` and, when present,
    ``prob_positive_10crop``: the CNN's test probabilities). For each fold, the hand-crafted
    classifier (:func:`hand_crafted_probabilities`) is fitted on the fold's training images
    and its test probabilities are fused with the CNN's by :func:`fuse_probabilities`. Nothing
    is chosen on a test fold.

    ``extra_train`` (``four`` or ``three``, late rules only) adds the weakly labelled images of
    that larger Twitter I subset (:func:`vsent.data.extra.extra_train_set`: no image of the
    run's subset and no copy of one) to every fold's training rows of the hand-crafted
    classifier; the test rows and the CNN's probabilities are unchanged.

    ``baseline_config``: the hand-crafted side's settings (:class:`BaselineConfig`: SIFT and
    vocabulary, ``histogram_map``, and the C grid ``Cs`` searched by ``inner_splits``-fold
    inner cross-validation on each training fold; the default config when None).
    ``cue_params``: the settings of the ``cues`` block (:class:`vsent.analyses.cues.CueParams`;
    the defaults when None).

    ``folds_file``: where to write the folds used (:func:`vsent.data.folds.save_folds`), so the
    fusion's output folder records them like a crossval run.

    ``weight="inner"`` (late rules, no ``extra_train``): in each fold the CNN's weight is the
    one of :data:`DEFAULT_WEIGHTS` with the best accuracy (:func:`choose_weight`) on the
    fold's training images, from out-of-fold probabilities of both: the CNN's from inner runs
    trained in ``inner_dir`` (:func:`inner_cnn_probabilities`), the hand-crafted
    classifier's from its own inner cross-validation. The weights chosen are ``weights``.
    The two are not made alike: the CNN's networks each learn from 4/5 of the training
    images, the classifier's fits from ``inner_splits - 1`` of ``inner_splits`` parts (2/3 by
    default), and its BoW vocabulary comes from all of them: a small tilt of the choice
    towards the CNN, no test image in it.

    ``data_said``: the caller has logged the run's data and its folds' warnings (crossval
    ``--fusion``, which fuses the run it has just made): reading them again says nothing.

    Returns
    -------
    dict with ``features``, ``rule``, ``weight``, ``method`` (and ``histogram_map`` unless
    ``none``, ``extra_train`` and ``n_extra`` with ``extra_train``); summaries
    (:func:`vsent.metrics.summarize_folds`) ``cnn``, ``hand``, ``fused`` (centre crop) and,
    with 10-crop columns, ``cnn_10crop`` and (late rules) ``fused_10crop``; ``rows``: one dict
    per test image (name, fold, label, prob_cnn, prob_hand, prob_fused, and with 10-crop
    columns prob_cnn_10crop and, late rules, prob_fused_10crop); ``C``: the C chosen in each
    fold; ``weights``: the weight of each fold (``weight="inner"`` only).

    The early rule's classifier is fitted on in-sample CNN features (its fold model's own
    training images): see the module docstring for the bias this gives.

    Raises
    ------
    VsentError
        Not a finished run directory, data that changed since the run was trained on them
        (its ``data.json``; an older ensemble's first member's), a fold model of another fold
        (early rule), or predictions that do not match its folds.
    """
    from vsent.analyses.compare import read_predictions
    from vsent.data.folds import check_inner_splits, save_folds
    from vsent.metrics import binary_metrics, summarize_folds

    blocks_wanted = parse_fusion_blocks(features, "--features")
    _check_options(rule, weight, method, extra_train)  # before any work, not at the first fold
    # data_said: the caller (crossval --fusion) has logged the run's data and folds
    with quiet_logs(logging.WARNING) if data_said else contextlib.nullcontext():
        run, cfg, dataset, folds, seed = _open_fused_run(run)
    pred_file = run / "predictions.csv"
    config = baseline_config or BaselineConfig()
    check_inner_splits(dataset.labels, folds, config.inner_splits)
    # compare's reader (a damaged file is one line naming it and the line, not a traceback),
    # before anything is written or computed
    preds = read_predictions(pred_file, "prob_positive", optional=("prob_positive_10crop",))
    ten = "prob_positive_10crop" in next(iter(preds.values()))
    if folds_file is not None:
        save_folds(folds, dataset, folds_file)
    early = rule == "early"
    train_cnn = None  # out-of-fold CNN probabilities of the training images (weight "inner")
    if weight == INNER:
        if inner_dir is None:
            raise ValueError(f"weight {INNER!r} needs inner_dir, where its inner runs train")
        train_cnn = inner_cnn_probabilities(cfg, dataset, folds, inner_dir, progress=progress)
    extra_joint, feats, mats = _hand_inputs(cfg, dataset, blocks_wanted, extra_train, config,
                                            cue_params, cache_dir, progress)
    hand_set = extra_joint.dataset if extra_joint is not None else dataset
    if early:
        cnn_features = fold_cnn_features(run, dataset, folds, cache_dir=cache_dir,
                                         progress=progress)
    y = hand_set.labels
    records: dict[str, list[dict[str, Any]]] = {k: [] for k in ("cnn", "hand", "fused")}
    if ten:
        records["cnn_10crop"] = []
        if not early:  # the early classifier sees the centre crop's features only
            records["fused_10crop"] = []
    rows: list[dict[str, Any]] = []
    chosen: list[float] = []
    weights: list[float] = []  # the CNN's weight of each fold
    for fold in folds:
        test = np.sort(fold.test)
        _check_fold_predictions(pred_file, preds, dataset, fold, test, cfg["data"])
        hand_train = extra_joint.fold_train(fold) if extra_joint is not None else fold.train
        fold_mats, widths = _hand_blocks(blocks_wanted, feats, mats, hand_train, config)
        grid = {"Cs": config.Cs, "inner_splits": config.inner_splits}
        hand = hand_crafted_probabilities(np.hstack(fold_mats), y, hand_train, test,
                                          blocks=widths, method=method, seed=seed,
                                          oof=train_cnn is not None, **grid)
        p_cnn = np.array([preds[dataset.names[i]]["prob_positive"] for i in test])
        if early:
            cnn = cnn_features[fold.index]
            joint = hand_crafted_probabilities(np.hstack([cnn, *fold_mats]), y, fold.train,
                                               test, blocks=[cnn.shape[1], *widths],
                                               method=method, seed=seed, **grid)
            chosen.append(joint.C)
            fused = joint.test
        else:
            chosen.append(hand.C)
            w = weight
            if train_cnn is not None:  # (hand_train is fold.train: no extra rows)
                w, _ = choose_weight(train_cnn[fold.index], hand.train_oof, y[fold.train],
                                     rule=rule)
            weights.append(float(w))
            fused = fuse_probabilities(p_cnn, hand.test, w, rule)
        cols = {"cnn": p_cnn, "hand": hand.test, "fused": fused}
        if ten:
            p10 = np.array([preds[dataset.names[i]]["prob_positive_10crop"] for i in test])
            cols["cnn_10crop"] = p10
            if not early:
                cols["fused_10crop"] = fuse_probabilities(p10, hand.test, w, rule)
        for key, p in cols.items():
            records[key].append({"fold": fold.index, **binary_metrics(y[test], predict(p))})
        for j, i in enumerate(test):
            rows.append({"name": dataset.names[i], "fold": fold.index, "label": int(y[i]),
                         **{f"prob_{k}": float(v[j]) for k, v in cols.items()}})
    histogram_map = config.histogram_map
    return {"features": "+".join(blocks_wanted), "rule": rule, "weight": weight,
            "method": method, **({} if histogram_map == "none" else
                                 {"histogram_map": histogram_map}),
            **({} if extra_joint is None else {"extra_train": extra_train,
                                               "n_extra": len(extra_joint.extra_index)}),
            "C": chosen, **({"weights": weights} if train_cnn is not None else {}),
            **{k: summarize_folds(v) for k, v in records.items()}, "rows": rows}


def _open_fused_run(run: str | os.PathLike) -> tuple[Path, dict[str, Any], Any, list, int]:
    """A finished crossval run to fuse, checked: ``(run, config, dataset, folds, seed)``; its
    data must be what its networks were trained on (``data.json``)."""
    from vsent.analyses.compare import check_finished_run
    from vsent.crossval_run import check_run_data, load_run_dataset
    from vsent.data import make_folds
    from vsent.provenance import check_data_record
    from vsent.runs import CONFIG, read_config

    # crossval --fusion calls this before its summary.json is written
    run = check_finished_run(run, "crossval run", (CONFIG, "predictions.csv"))
    cfg = read_config(run)
    check_run_data(run, cfg)  # (also: a config without 'data' is no crossval config)
    check_run_two_way(cfg, str(run))
    dataset = load_run_dataset(cfg, run)
    # an image replaced since: the CNN's probability is of the old one, the features of the
    # new one
    record, trained = _data_record(run, cfg)
    if record is None:
        log.info("data not checked: %s was made before data.json", run)
    else:
        check_data_record(record, dataset, cfg["data"], f"{trained} was trained on them",
                          "train the run again (crossval --overwrite)")
    spec = str(run / "folds.json") if (run / "folds.json").is_file() else cfg.get("folds",
                                                                                   "campos")
    seed = run_seed(run, cfg)
    return run, cfg, dataset, make_folds(dataset, spec, seed=seed), seed


def _hand_inputs(cfg: Mapping[str, Any], dataset: Any, blocks_wanted: Sequence[str],
                 extra_train: str | None, config: BaselineConfig,
                 cue_params: CueParams | None,
                 cache_dir: str | os.PathLike | None, progress: bool
                 ) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """What the hand-crafted classifier learns from: ``(extra_joint, feats, mats)``. Its
    images are the run's, then any ``extra_train`` ones (``extra_joint``, a
    :class:`~vsent.data.extra.JointSet`; base rows first, so the folds' indices hold);
    ``feats`` the baselines' features (None when no block of theirs is wanted), ``mats`` the
    matrix of each :data:`FUSION_ONLY_BLOCKS` block wanted (the cues': (N, 10) float64)."""
    extra_joint = None
    if extra_train is not None:
        from vsent.data.extra import extra_train_set, with_extra

        extra = extra_train_set(dataset, cfg.get("subset", "five"), extra_train,
                                skip_bad=cfg.get("skip_bad", False))
        extra_joint = with_extra(dataset, extra)
    hand_set = extra_joint.dataset if extra_joint is not None else dataset
    mats: dict[str, np.ndarray] = {}
    feats = None
    if set(BLOCKS) & set(blocks_wanted):
        from vsent.analyses.handcrafted import extract_features

        feats = extract_features(hand_set.paths, sift=config.sift,
                                 need_sift=bool(set(SIFT_BLOCKS) & set(blocks_wanted)),
                                 cache_dir=cache_dir,
                                 progress=progress)
    for name in blocks_wanted:
        if name in _FUSION_ONLY:
            mats[name] = _FUSION_ONLY[name](hand_set, cue_params, cache_dir, progress)
    return extra_joint, feats, mats


def _cue_matrix(dataset: Any, cue_params: CueParams | None,
                cache_dir: str | os.PathLike | None, progress: bool) -> np.ndarray:
    """The ``cues`` block: :func:`vsent.analyses.cues.dataset_cues`, (N, 10) float64."""
    from vsent.analyses.cues import dataset_cues

    return dataset_cues(dataset, cue_params, cache_dir=cache_dir,
                        progress=progress).values.astype(np.float64)


#: Block name -> the function of (dataset, cue_params, cache_dir, progress) that makes its
#: (N, d) float64 matrix (:func:`_hand_inputs`).
_FUSION_ONLY = {"cues": _cue_matrix}
#: Hand-crafted blocks of fusion that are not the baselines' (computed per image, nothing
#: learnt per fold): those :data:`_FUSION_ONLY` makes.
FUSION_ONLY_BLOCKS = tuple(_FUSION_ONLY)


def _check_fold_predictions(pred_file: Path, preds: dict[str, dict[str, Any]], dataset: Any,
                            fold: Any, test: np.ndarray, data: str) -> None:
    """VsentError unless the run's ``predictions.csv`` (read as ``preds``) scores every test
    image of ``fold`` in that fold, with the label the data gives it now."""
    missing = [dataset.names[i] for i in test if dataset.names[i] not in preds
               or preds[dataset.names[i]]["fold"] != fold.index]
    if missing:
        raise VsentError(f"{pred_file}: {len(missing)} test images of fold {fold.index} "
                         f"have no prediction of that fold (e.g. {missing[0]})")
    relabelled = [dataset.names[i] for i in test
                  if preds[dataset.names[i]]["label"] != dataset.labels[i]]
    if relabelled:  # the label file changed since the run: its scores are of other labels
        raise VsentError(f"{pred_file}: {len(relabelled)} test images of fold {fold.index} "
                         f"have another label in {data} now (e.g. {relabelled[0]})")


def _hand_blocks(blocks: Sequence[str], feats: Any, mats: dict[str, np.ndarray],
                 train: np.ndarray, config: BaselineConfig) -> tuple[list[np.ndarray], list[int]]:
    """One fold's hand-crafted matrices, in the order of ``blocks``, and their block widths:
    the cues as computed (``mats["cues"]``), the baselines' blocks encoded with what the
    fold's training rows ``train`` give (:func:`baseline_fold_features`: vocabulary, maps)."""
    fold_mats: list[np.ndarray] = []
    widths: list[int] = []
    for name in blocks:
        if name in mats:  # a block with nothing learnt per fold (FUSION_ONLY_BLOCKS)
            fold_mats.append(mats[name])
            widths.append(mats[name].shape[1])
        else:
            X, w = baseline_fold_features(feats, train, name, config)
            fold_mats.append(X)
            widths += w
    return fold_mats, widths


#: Rows of :func:`fusion_markdown`: summary key of :func:`fuse_run` and its label.
_MD_ROWS = (("cnn", "CNN alone (centre crop)"), ("hand", "hand-crafted alone"),
            ("fused", "fused (centre crop)"), ("cnn_10crop", "CNN alone (10-crop)"),
            ("fused_10crop", "fused (10-crop)"))


def fusion_markdown(res: dict[str, Any]) -> str:
    """A Markdown section for a :func:`fuse_run` result: accuracy mean +- std and per fold."""
    from vsent.metrics import mean_std_text

    rows = [(key, label) for key, label in _MD_ROWS if key in res]
    # the split's own fold numbers (a folds JSON may number them 5, 2, ...), as in the header
    # of metrics.summary_markdown
    numbers = [f.get("fold", i) for i, f in enumerate(res["fused"]["folds"], 1)]
    method = {"logistic": "logistic regression", "svm": "linear SVM + Platt scaling"}
    clf = method.get(res["method"], res["method"])
    fitted = f"fitted on each training fold, C by inner CV: {', '.join(f'{c:g}' for c in res['C'])}"
    if res["rule"] == "early":
        head = [f"## Early fusion of the CNN's features with {res['features']}", "",
                f"P(positive) of one {clf} on the fold model's penultimate features (centre "
                f"crop) and {res['features']}, each block the same weight, {fitted}"]
    else:
        w = res["weight"]
        a, b = ("w", "(1 - w)") if w == INNER else (f"{w:g}", f"{1 - w:g}")
        formula = (f"P(positive) = {a} x CNN + {b} x hand-crafted" if res["rule"] == "mean"
                   else f"logit P(positive) = {a} x logit CNN + {b} x logit hand-crafted")
        if w == INNER:
            formula += (f", w chosen in each fold on out-of-fold predictions of its training "
                        f"images ({INNER_SPLITS} inner runs of the CNN's recipe): "
                        f"{', '.join(f'{v:g}' for v in res['weights'])}")
        head = [f"## Late fusion with {res['features']}", "",
                f"{formula} ({res['rule']} rule; {clf} on {res['features']}, {fitted})"]
    if res.get("histogram_map", "none") != "none":
        head[-1] += f"; histogram map {res['histogram_map']}"
    if res.get("extra_train"):
        head[-1] += (f"; the hand-crafted classifier also trained on the {res['n_extra']} "
                     f"{res['extra_train']}-agree images outside the subset")
    lines = [
        *head, "",
        "| | accuracy | " + " | ".join(f"fold {k}" for k in numbers) + " |",
        "|---|---|" + "---|" * len(numbers),
    ]
    for key, label in rows:
        # one fold: "m (1 fold)", as the summary.md table above it
        acc = mean_std_text(res[key]["accuracy"], len(res[key]["folds"]))
        folds = " | ".join(f"{f['accuracy']:.3f}" for f in res[key]["folds"])
        lines.append(f"| {label} | {acc} | {folds} |")
    return "\n".join(lines) + "\n"
