"""Hand-crafted baselines of You et al. (2015), their Twitter table: colour histograms and
SIFT bag of words.

The features (:mod:`vsent.analyses.handcrafted`) follow Siersdorfer et al. (2010), which You
et al. use as their baselines: GCH (64-bin global colour histogram), LCH (4 x 4 grid of them),
BoW (dense SIFT quantised against a k = 500 vocabulary learnt on each fold's training images
only), their concatenations GCH+BoW and LCH+BoW (:class:`BlockScaler` gives each block the
same weight), and, ours (issue 10), FV: Fisher vectors of the same descriptors (``gch+fv``).
:func:`fold_blocks` builds one fold's blocks.

Each feature set is classified by a linear SVM whose C is chosen by an inner cross-validation
on the training fold (:func:`make_classifier`). :func:`run_baselines` runs the 5-fold
protocol of the CNN runs (same folds) and writes one summary per subset and feature set plus
a Table-6-like comparison with the published numbers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from vsent import papers
from vsent.analyses.handcrafted import (
    ImageFeatures,
    SiftParams,
    bow_histograms,
    extract_features,
    fisher_vectors,
    learn_fisher,
    learn_vocabulary,
)
from vsent.config import (
    BASELINE_OMITTED_AT_DEFAULT,
    HISTOGRAM_MAPS,
    SUBSETS,
    check_seed,
    positive_floats,
    split_blocks,
)
from vsent.data import Dataset, load_dataset, make_folds, save_folds
from vsent.data._common import default_workers
from vsent.data.cache import cache_dir_default
from vsent.data.folds import check_inner_splits
from vsent.errors import VsentError
from vsent.metrics import binary_metrics, mean_std_text, summarize_folds, write_summary
from vsent.progress import on_terminal
from vsent.provenance import DATA_RECORD, check_data_record, data_record
from vsent.runs import Timer, open_run_dir

log = logging.getLogger("vsent.baselines")

#: Feature sets in the order of the paper's table (BoW alone is ours; the paper has no such row).
FEATURE_SETS = ("gch", "lch", "bow", "gch+bow", "lch+bow")
#: Blocks a feature set may be built from, and those that need SIFT descriptors.
BLOCKS = ("gch", "lch", "bow", "fv")
SIFT_BLOCKS = ("bow", "fv")
#: Blocks that are histograms (what ``histogram_map`` applies to).
HISTOGRAM_BLOCKS = ("gch", "lch", "bow")
#: Columns of the table, in the paper's order.
TABLE_METRICS = ("precision", "recall", "f1", "accuracy")
#: Default grid of the SVM's C (each block of features is scaled to unit total variance, see
#: :class:`BlockScaler`: a set of B blocks has expected squared norm B, 1 or 2 here, so one
#: grid suits every feature set).
DEFAULT_CS = tuple(float(c) for c in np.logspace(-3, 2, 6))

LABELS = {
    "gch": "GCH", "lch": "LCH", "bow": "BoW", "gch+bow": "GCH+BoW", "lch+bow": "LCH+BoW",
    "fv": "SIFT FV", "gch+fv": "GCH+FV", "lch+fv": "LCH+FV",
    "cnn": papers.YOU2015_QUOTED_LABELS["cnn"], "pcnn": papers.YOU2015_QUOTED_LABELS["pcnn"],
    "always-positive": "always positive",
}

#: Where the published cells of the table come from (:data:`vsent.papers.YOU2015_TABLE6`).
#: ``published_status`` of a row of the paper whose values are not available, and of a row the
#: paper does not have; the tables print these words in brackets.
NOT_AVAILABLE = papers.NOT_AVAILABLE_TEXT
NOT_IN_PAPER = papers.NOT_IN_PAPER_TEXT
PUBLISHED_SOURCE = (
    f"{papers.YOU2015_QUOTES_SOURCE}. "
    f"{NOT_AVAILABLE} = in the paper, but the value is not available here (left empty rather "
    f"than typed from memory); {NOT_IN_PAPER} = not a row of the paper."
)


def published_values(row: str, subset: str) -> tuple[dict[str, float | None] | None, str]:
    """Published values of a table row and their status.

    Returns ``(values, status)``: ``values`` maps each metric to the available published value
    or None; status is ``"available"`` (some metric has a value), :data:`NOT_AVAILABLE` (a row
    of the paper, no value available here) or :data:`NOT_IN_PAPER` (no such row in the paper,
    e.g. BoW alone or always-positive, or not Twitter I).
    """
    cells = papers.YOU2015_TABLE6.get(row, {}).get(subset)
    if cells is None:
        return None, NOT_IN_PAPER
    values = {metric: p.mean for metric, p in cells.items()}
    if any(v is not None for v in values.values()):
        return values, "available"
    return None, NOT_AVAILABLE


# ---------------------------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------------------------

class BlockScaler(TransformerMixin, BaseEstimator):
    """Standardise every column, then weight each block of columns by 1 / sqrt(block width).

    After standardisation each column has unit variance, so a block of ``d`` columns would
    carry ``d`` times the weight of a one-column block in a linear SVM (a 500-word BoW would
    drown a 64-bin GCH). The weight gives every block the same total variance (1), so in a
    concatenation each feature type counts equally, and a feature set of B blocks has expected
    squared norm B (at most; constant columns add nothing), so one grid of C suits all of
    them (GCH+BoW's C is at most a factor 2 from GCH's in a grid of factors 10).

    Parameters
    ----------
    blocks : widths of consecutive column blocks (sum = number of columns); ``None`` = one
        block of all columns.
    """

    def __init__(self, blocks: Sequence[int] | None = None) -> None:
        self.blocks = blocks

    def fit(self, X: np.ndarray, y: Any = None) -> BlockScaler:
        """Learn the columns' mean and std (``scaler_``, a fitted StandardScaler) and the
        block weights ``weights_`` (float64 (d,), ``1 / sqrt(width)``) from ``X``, a real
        (n, d) array with n >= 1 (NaN allowed, as StandardScaler does: disregarded). ``y`` is
        ignored. Sets ``n_features_in_`` = d. Returns ``self``."""
        # sklearn's checks: a 1-D or empty X is a ValueError saying so (was an IndexError or
        # NaNs with RuntimeWarnings); NaN stays StandardScaler's missing value
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        blocks = list(self.blocks) if self.blocks is not None else [X.shape[1]]
        if sum(blocks) != X.shape[1]:
            raise ValueError(f"blocks {blocks} do not add up to the {X.shape[1]} columns")
        self.scaler_ = StandardScaler().fit(X)
        self.weights_ = np.concatenate([np.full(b, 1 / np.sqrt(b)) for b in blocks])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised columns times their block's weight: float64 (m, d) for a real (m, d)
        array ``X`` with the d columns it was fitted on (NotFittedError before :meth:`fit`;
        ValueError naming both counts for another d)."""
        check_is_fitted(self, ("scaler_", "weights_"))
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return self.scaler_.transform(X) * self.weights_


def make_classifier(
    blocks: Sequence[int] | None = None, *, Cs: Sequence[float] = DEFAULT_CS,
    inner_splits: int = 3, seed: int = 0,
) -> GridSearchCV:
    """Linear SVM on block-standardised features, C chosen by inner stratified CV (accuracy).

    The grid search only ever sees the data passed to ``fit`` (the outer training fold) and
    refits the best C on all of it. (The BoW vocabulary or Fisher model that made those
    features was fitted on the whole training fold, without labels: the inner folds that
    choose C are encoded by a vocabulary that saw their descriptors, as in the usual
    pipeline; no test image reaches either.)
    """
    pipe = Pipeline([
        ("scale", BlockScaler(blocks)),
        ("svm", LinearSVC(max_iter=20_000, random_state=seed)),
    ])
    return GridSearchCV(
        pipe, {"svm__C": list(Cs)}, scoring="accuracy", refit=True,
        cv=StratifiedKFold(inner_splits, shuffle=True, random_state=seed),
    )


def parse_features(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"gch,lch+bow"`` or an iterable of names -> validated tuple of feature-set names.

    A feature set is one block name (gch, lch, bow, fv) or several joined with ``+``
    (e.g. ``gch+bow``; blanks and case ignored, read as ``--fusion`` reads its blocks:
    :func:`vsent.config.split_blocks`); raises :class:`VsentError` naming the bad entry.
    """
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items:
        raise VsentError(f"no feature sets given; choose from {', '.join(FEATURE_SETS)}")
    out: list[str] = []
    choices = (f"choose from {', '.join(FEATURE_SETS)} (or blocks {', '.join(BLOCKS)} "
               f"joined with '+')")
    for item in items:
        parts = split_blocks(item)  # "gch + bow" was refused, naming the block 'gch '
        bad = [p for p in parts if p not in BLOCKS]
        if bad:
            which = f" (unknown block {bad[0]!r})" if len(parts) > 1 else ""
            raise VsentError(f"unknown feature set {item!r}{which}; {choices}")
        if len(set(parts)) != len(parts):
            raise VsentError(f"feature set {item!r} repeats a block; {choices}")
        name = "+".join(parts)
        if name not in out:
            out.append(name)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BaselineConfig:
    """Parameters of the baselines (saved in ``config.json``), validated when built."""

    k: int = 500
    bow_norm: str = "l1"
    sift: SiftParams = field(default_factory=SiftParams)
    max_descriptors: int = 50_000
    Cs: tuple[float, ...] = DEFAULT_CS
    inner_splits: int = 3
    seed: int = 0
    histogram_map: str = "none"
    fisher_components: int = 64
    fisher_pca: int = 64

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if self.bow_norm not in ("l1", "l2"):
            raise VsentError(f"BoW norm must be 'l1' or 'l2', got {self.bow_norm!r}")
        if self.histogram_map not in HISTOGRAM_MAPS:
            raise VsentError(f"histogram map must be one of {', '.join(HISTOGRAM_MAPS)}, "
                             f"got {self.histogram_map!r}")
        if self.k < 2:
            raise VsentError(f"--k (vocabulary size k) must be at least 2, got {self.k}")
        if self.fisher_components < 1 or not 1 <= self.fisher_pca <= 128:
            raise VsentError(f"Fisher vectors need at least 1 component and 1..128 PCA "
                             f"dimensions (--fisher-components, --fisher-pca), got "
                             f"{self.fisher_components} and {self.fisher_pca}")
        if self.max_descriptors < self.k:
            raise VsentError(f"--max-descriptors ({self.max_descriptors}) must be at least "
                             f"--k ({self.k})")
        if self.inner_splits < 2:
            raise VsentError(f"--inner-splits (inner_splits) must be at least 2, got "
                             f"{self.inner_splits}")
        cs = positive_floats(self.Cs)
        if cs is None:
            raise VsentError(f"SVM C values must be positive numbers, got {self.Cs!r}")
        object.__setattr__(self, "Cs", cs)


def fold_blocks(feats: ImageFeatures, train: np.ndarray, names: Iterable[str],
                config: BaselineConfig | None = None,
                timing: dict[str, Any] | None = None,
                encoders: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The feature blocks ``names`` (gch, lch, bow, fv) of every image for one fold.

    The BoW vocabulary and the Fisher vectors' PCA and mixture are learnt from the descriptors
    of rows ``train`` only; every image is then encoded with them. ``config.histogram_map`` is
    applied to each histogram block (gch, lch, bow). ``timing``, when given, receives
    ``vocabulary_s`` and ``encode_s`` (BoW), ``fisher_s`` and ``fisher_encode_s`` (FV);
    ``encoders``, when given, receives what was learnt: ``bow`` (the k-means vocabulary) and
    ``fv`` (the :class:`~vsent.analyses.handcrafted.FisherEncoder`).

    Returns
    -------
    ``{name: float (N, d_name)}`` with rows in dataset order.
    """
    config = config or BaselineConfig()
    names = list(names)
    blocks = {name: getattr(feats, name) for name in names if name in ("gch", "lch")}
    if "bow" in names:
        t = Timer()
        vocab = learn_vocabulary([feats.descriptors[i] for i in np.asarray(train)], k=config.k,
                                 max_descriptors=config.max_descriptors, seed=config.seed)
        t_vocab, t = t.elapsed, Timer()
        blocks["bow"] = bow_histograms(vocab, feats.descriptors, norm=config.bow_norm)
        if encoders is not None:
            encoders["bow"] = vocab
        if timing is not None:
            timing.update(vocabulary_s=t_vocab, encode_s=t.elapsed)
    if "fv" in names:
        t = Timer()
        encoder = learn_fisher([feats.descriptors[i] for i in np.asarray(train)],
                               n_components=config.fisher_components,
                               pca_dims=config.fisher_pca,
                               max_descriptors=config.max_descriptors, seed=config.seed)
        t_fit, t = t.elapsed, Timer()
        blocks["fv"] = fisher_vectors(encoder, feats.descriptors)
        if encoders is not None:
            encoders["fv"] = encoder
        if timing is not None:
            timing.update(fisher_s=t_fit, fisher_encode_s=t.elapsed)
    unknown = set(names) - set(blocks)
    if unknown:
        raise VsentError(f"unknown feature block(s) {sorted(unknown)}: choose from "
                         f"{', '.join(BLOCKS)}")
    if config.histogram_map == "sqrt":
        blocks = {name: np.sqrt(block) if name in HISTOGRAM_BLOCKS else block
                  for name, block in blocks.items()}
    return blocks


def cross_validate(
    feats: ImageFeatures, labels: np.ndarray, folds: Sequence[Any],
    feature_sets: Sequence[str], config: BaselineConfig | None = None, *,
    progress: bool = True,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Fit and test every feature set on every fold.

    For each fold the BoW vocabulary is learnt from the descriptors of ``fold.train`` only
    and shared by all BoW feature sets of that fold; test images are only encoded with it.

    Returns
    -------
    (records, timings): ``records[name]`` is one dict per fold (``fold`` + the keys of
    :func:`vsent.metrics.binary_metrics` + ``C``, ``inner_accuracy``, ``seconds``);
    ``timings`` one dict per fold (vocabulary, encoding and SVM seconds).
    """
    config = config or BaselineConfig()
    labels = np.asarray(labels)
    needed = sorted({part for name in feature_sets for part in name.split("+")})
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in feature_sets}
    timings: list[dict[str, Any]] = []
    for fold in tqdm(folds, desc="folds", disable=not on_terminal(progress), leave=False):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        timing: dict[str, Any] = {"fold": fold.index}
        blocks = fold_blocks(feats, train, needed, config, timing)
        for name in feature_sets:
            parts = name.split("+")
            X = np.hstack([blocks[p] for p in parts])
            clf = make_classifier([blocks[p].shape[1] for p in parts], Cs=config.Cs,
                                  inner_splits=config.inner_splits, seed=config.seed)
            t = Timer()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                clf.fit(X[train], labels[train])
            n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            for w in caught:  # pass on anything that is not the (counted) convergence warning
                if not issubclass(w.category, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            pred = clf.predict(X[test])
            seconds = t.elapsed
            rec = {"fold": fold.index, **binary_metrics(labels[test], pred),
                   "C": float(clf.best_params_["svm__C"]),
                   "inner_accuracy": float(clf.best_score_), "seconds": seconds}
            if n_conv:
                rec["convergence_warnings"] = n_conv
                log.warning("fold %d %s: LinearSVC did not converge in %d fits",
                            fold.index, name, n_conv)
            records[name].append(rec)
            timing[f"svm_{name}_s"] = seconds
            log.info("fold %d %-8s acc %.3f (C=%g)", fold.index, name, rec["accuracy"], rec["C"])
        timings.append(timing)
    return records, timings


def always_positive(labels: np.ndarray, folds: Sequence[Any]) -> list[dict[str, Any]]:
    """Fold records of the majority baseline that predicts positive for every test image."""
    labels = np.asarray(labels)
    return [{"fold": f.index, **binary_metrics(labels[f.test], np.ones(len(f.test), int))}
            for f in folds]


# ---------------------------------------------------------------------------------------------
# You et al.'s Twitter table
# ---------------------------------------------------------------------------------------------

def changed_settings(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a baselines run (its ``config.json``) that are not the defaults: the
    folds, --skip-bad and :class:`BaselineConfig`'s fields, SIFT's as ``sift.<name>``. A table
    says them,
    so a k = 100 table does not read as the default one."""
    defaults = {"folds": "campos", "skip_bad": False, **asdict(BaselineConfig())}
    changed: dict[str, Any] = {}
    for name, default in defaults.items():
        value = run_config.get(name, default)
        if name == "Cs":
            value, default = [float(c) for c in value], [float(c) for c in default]
        if isinstance(default, dict):
            changed.update({f"{name}.{k}": value[k] for k in default
                            if k in value and value[k] != default[k]})
        elif value != default:
            changed[name] = value
    return changed


def build_table(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]],
                feature_sets: Sequence[str],
                settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """You et al.'s Twitter table: rows = feature sets (+ the published CNN rows), per subset
    our mean +- std (over ``n_folds`` folds) and the published value of precision, recall,
    F1 and accuracy.

    ``summaries[subset][row]`` are :func:`vsent.metrics.summarize_folds` results;
    ``settings``: the run's settings other than the defaults (:func:`changed_settings`). A
    dataset that is not Twitter I (subset ``custom``) has no published row or value: the
    table holds our rows only.
    """
    subsets = list(summaries)
    rows = [*feature_sets, "always-positive"]
    if _is_twitter(subsets):
        rows += ["cnn", "pcnn"]  # the paper's CNN rows: published values beside ours
    table_rows = []
    for row in rows:
        entry: dict[str, Any] = {"row": row, "label": LABELS.get(row, row), "subsets": {}}
        for subset in subsets:
            ours = summaries[subset].get(row)
            pub, status = published_values(row, subset)
            entry["subsets"][subset] = {
                "ours": None if ours is None else {
                    **{k: {"mean": ours[k]["mean"], "std": ours[k]["std"]}
                       for k in TABLE_METRICS},
                    "n_folds": len(ours["folds"])},
                "published": pub, "published_status": status,
            }
        table_rows.append(entry)
    return {"metrics": list(TABLE_METRICS), "subsets": subsets, "rows": table_rows,
            "settings": dict(settings or {}), "source": PUBLISHED_SOURCE}


def _is_twitter(subsets: Sequence[str]) -> bool:
    """Whether a table's subsets are Twitter I's (else a folder or CSV dataset: ``custom``)."""
    return any(s in SUBSETS for s in subsets)


def _cell(ours: Mapping[str, Any] | None, pub: Mapping[str, Any] | None, status: str,
          metric: str, printed: str) -> str:
    """``ours (published)``; ``printed``: the published value as the paper printed it (its
    decimals: Sun et al.'s 70.09 % is 0.7009, not 0.701), "" when not known."""
    mine = _ours(ours, metric)
    value = None if pub is None else pub.get(metric)
    if value is not None:
        return f"{mine} ({printed or f'{value:.3f}'})"
    return f"{mine} ({NOT_IN_PAPER if status == NOT_IN_PAPER else NOT_AVAILABLE})"


def _ours(ours: Mapping[str, Any] | None, metric: str) -> str:
    """Our ``mean +- std`` of a cell ("-": no such row of ours)."""
    # (a table.json written before n_folds was recorded: no count, as then)
    return "-" if ours is None else mean_std_text(ours[metric], ours.get("n_folds", 0))


def _printed(row: str, subset: str, metric: str) -> str:
    """The paper's value of a cell of You et al.'s table as printed ("" if it has none)."""
    return papers.YOU2015_TABLE6.get(row, {}).get(subset, {}).get(
        metric, papers.NOT_AVAILABLE).printed()


def table_markdown(table: Mapping[str, Any]) -> str:
    short = {"precision": "P", "recall": "R", "f1": "F1", "accuracy": "Acc"}
    head = ["features"] + [f"{s} {short[m]}" for s in table["subsets"] for m in table["metrics"]]
    twitter = _is_twitter(table["subsets"])
    counts = {e["ours"].get("n_folds") for row in table["rows"]
              for e in row["subsets"].values() if e["ours"] is not None}
    n = counts.pop() if len(counts) == 1 else None
    over = ("the value of the one fold" if n == 1 else
            f"mean +- std over the {n} folds" if n else "mean +- std over the folds")
    if twitter:
        lines = ["# Hand-crafted baselines (You et al. 2015, the Twitter table)", "",
                 f"Each cell: ours, {over} (published value)."]
    else:  # the paper's features on the user's data: nothing published to put beside
        lines = ["# Hand-crafted baselines (You et al. 2015's features) on a custom dataset",
                 "", f"Each cell: {over}."]
    if table.get("settings"):
        lines.append("Settings other than the defaults: " + ", ".join(
            f"{k} = {v}" for k, v in table["settings"].items()) + ".")
    lines += ["", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in table["rows"]:
        cells = [row["label"]]
        for s in table["subsets"]:
            e = row["subsets"][s]
            cells += [_cell(e["ours"], e["published"], e["published_status"], m,
                            _printed(row["row"], s, m)) if twitter else _ours(e["ours"], m)
                      for m in table["metrics"]]
        lines.append("| " + " | ".join(cells) + " |")
    if twitter:  # (the source names SentiBank, a row of the reproduction's report only)
        lines += ["", f"Source: {table['source'].rstrip('.')}. SentiBank's row is in the "
                      "report of `vsent reproduce you2015`."]
    return "\n".join([*lines, ""])


def table_csv_rows(table: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    fields = ["row", "subset"]
    for m in table["metrics"]:
        fields += [m, f"{m}_std", f"{m}_published"]
    fields.append("published_status")
    out = []
    for row in table["rows"]:
        for s in table["subsets"]:
            e = row["subsets"][s]
            rec: dict[str, Any] = {"row": row["row"], "subset": s,
                                   "published_status": e["published_status"]}
            for m in table["metrics"]:
                rec[m] = "" if e["ours"] is None else f"{e['ours'][m]['mean']:.4f}"
                rec[f"{m}_std"] = "" if e["ours"] is None else f"{e['ours'][m]['std']:.4f}"
                pub = (e["published"] or {}).get(m)
                rec[f"{m}_published"] = "" if pub is None else pub
            out.append(rec)
    return out, fields


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def run_baselines(
    data: Any,
    subset: str = "five",
    folds_spec: str = "campos",
    features: str | Sequence[str] = FEATURE_SETS,
    out: str | Path = "runs/baselines",
    seed: int = 0,
    *,
    k: int = 500,
    bow_norm: str = "l1",
    histogram_map: str = "none",
    fisher_components: int = 64,
    fisher_pca: int = 64,
    sift: SiftParams | None = None,
    max_descriptors: int = 50_000,
    Cs: Sequence[float] = DEFAULT_CS,
    inner_splits: int = 3,
    skip_bad: bool = False,
    cache_dir: str | Path | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Cross-validate the hand-crafted baselines and write You et al.'s Twitter table.

    Parameters
    ----------
    data : dataset location for :func:`vsent.data.load_dataset` (Twitter I folder, folder
        with positive/ and negative/, CSV), or a loaded :class:`vsent.data.Dataset`.
    subset : ``five``, ``four``, ``three`` or ``all`` (the three subsets in turn).
    folds_spec : ``campos`` (default, the CNN runs' folds), ``stratified`` or a folds file.
    features : feature sets, e.g. ``"gch,lch+bow"`` (see :func:`parse_features`).
    out : run directory. Writes ``config.json``, ``versions.json``, ``run.log``,
        ``<subset>/folds.json``, ``<subset>/<features>/summary.{json,md}``,
        ``table.{json,md,csv}`` and ``timings.json``.
    k, bow_norm, sift, max_descriptors : BoW parameters (:func:`learn_vocabulary`,
        :func:`bow_histograms`, :class:`SiftParams`).
    histogram_map : ``none`` or ``sqrt`` (Hellinger), applied to every histogram block
        (:data:`vsent.config.HISTOGRAM_MAPS`).
    fisher_components, fisher_pca : the Fisher vectors' mixture size and PCA dimensions
        (:func:`learn_fisher`).
    Cs, inner_splits : SVM grid of C and folds of the inner CV.
    cache_dir : feature cache (default ``$VSENT_CACHE`` or ``~/.cache/vsent``).
    n_jobs : threads for feature extraction (default :func:`vsent.data._common.default_workers`:
        one per CPU this process may use, at most 32).
    resume, overwrite : how ``out`` is opened (:func:`vsent.runs.open_run_dir`; ``table.json``
        marks the run finished, and a finished run returns its stored table). The thread count
        and the cache folder are run options, not compared.

    Returns
    -------
    The table (as written to ``table.json``) with ``timings`` added.
    """
    feature_sets = parse_features(features)
    sift = sift or SiftParams()
    config = BaselineConfig(k=k, bow_norm=bow_norm, histogram_map=histogram_map, sift=sift,
                            fisher_components=fisher_components, fisher_pca=fisher_pca,
                            max_descriptors=max_descriptors,
                            Cs=tuple(Cs), inner_splits=inner_splits, seed=seed)

    if isinstance(data, Dataset):
        subsets = [data.subset or "custom"]
    elif subset == "all":
        subsets = list(SUBSETS)
    elif subset in SUBSETS:
        subsets = [subset]
    else:
        raise VsentError(f"subset must be one of {', '.join(SUBSETS)} or all, got {subset!r}")
    if len(subsets) > 1 and folds_spec not in ("campos", "stratified"):
        raise VsentError(f"a folds file ({folds_spec}) holds the folds of one subset; "
                         f"use --subset five, four or three with it")
    if n_jobs is not None and (isinstance(n_jobs, bool) or n_jobs < 1):
        raise VsentError(f"--jobs must be >= 1 (or left out: one per CPU), got {n_jobs}")

    run_config = {  # (a Path's .root is "/": it recorded data "/")
        "command": "baselines", "data": str(data.root if isinstance(data, Dataset) else data),
        "subsets": subsets,
        "folds": folds_spec, "features": list(feature_sets), "seed": seed,
        "skip_bad": skip_bad, "cache_dir": str(cache_dir or cache_dir_default()),
        "n_jobs": default_workers(n_jobs),
        **{k: v for k, v in asdict(config).items()
           if BASELINE_OMITTED_AT_DEFAULT.get(k, object()) != v},
    }
    total = Timer()
    summaries: dict[str, dict[str, Any]] = {}
    timings: dict[str, Any] = {}
    with open_run_dir(out, run_config, resume=resume, overwrite=overwrite, done="table.json",
                      ignore=("n_jobs", "cache_dir")) as run:
        if run.status == "finished":
            return {**_table_again(run, feature_sets), "timings": run.read_json("timings.json")}
        for requested in subsets:
            dataset = load_dataset(data, subset=requested, skip_bad=skip_bad)
            if dataset.source != "twitter" and len(subsets) > 1:
                raise VsentError(f"--subset all needs a Twitter I folder; {dataset.root} is a "
                                 f"{dataset.source} dataset")
            # a folder or CSV dataset has no agreement subset: its results go under custom/
            name = dataset.subset or "custom"
            rows = [*feature_sets, "always-positive"]
            record = run / name / DATA_RECORD
            if (run / name / "timings.json").exists() and all(
                    (run / name / row / "summary.json").exists() for row in rows):
                # one table must not mix two states of the data (a label corrected since)
                check_data_record(record, dataset, run_config["data"],
                                  f"{run.path / name} was made", "pass --overwrite to start again")
                log.info("%s: finished in an earlier session, reused", name)  # --resume
                summaries[name] = {row: run.read_json(f"{name}/{row}/summary.json")
                                   for row in rows}
                timings[name] = run.read_json(f"{name}/timings.json")
                continue
            folds = make_folds(dataset, folds_spec, seed=seed)
            check_inner_splits(dataset.labels, folds, config.inner_splits)
            save_folds(folds, dataset, run / name / "folds.json")
            run.write_json(f"{name}/skipped.json", list(dataset.skipped))  # as crossval's
            run.write_json(f"{name}/{DATA_RECORD}", data_record(dataset))
            log.info("%s: %d images, %d folds, features %s", name, len(dataset.paths),
                     len(folds), ", ".join(feature_sets))
            needs_sift = any(set(f.split("+")) & set(SIFT_BLOCKS) for f in feature_sets)
            feats = extract_features(
                dataset.paths, sift=sift, need_sift=needs_sift, cache_dir=cache_dir,
                n_jobs=n_jobs, progress=progress,
            )
            records, fold_times = cross_validate(feats, dataset.labels, folds, feature_sets,
                                                 config, progress=progress)
            records["always-positive"] = always_positive(dataset.labels, folds)
            summaries[name] = {}
            for row, recs in records.items():
                summary = summarize_folds(recs)
                summaries[name][row] = summary
                write_summary(run, summary, f"{LABELS.get(row, row)} on {name}",
                              stem=f"{name}/{row}/summary")
            timings[name] = {"images": len(dataset.paths), "extract_s": feats.seconds,
                             "decoded": feats.decoded, "folds": fold_times}
            run.write_json(f"{name}/timings.json", timings[name])  # last: the subset is done
        table = build_table(summaries, feature_sets, changed_settings(run_config))
        timings["total_s"] = total.elapsed
        run.write_json("timings.json", timings)
        _write_table(run, table)
        log.info("baselines done in %.1f s: %s", total.elapsed, run.path)
    return {**table, "timings": timings}


def _write_table(run: Any, table: Mapping[str, Any]) -> None:
    run.write_text("table.md", table_markdown(table))
    rows, fields = table_csv_rows(table)
    run.write_csv("table.csv", rows, fields)
    run.write_json("table.json", table)  # last: it marks the run finished


def _table_again(run: Any, feature_sets: Sequence[str]) -> dict[str, Any]:
    """A finished run's table, built again from its stored summaries: its numbers are the
    run's, its published values and labels today's (:mod:`vsent.papers`); the table files are
    written again when that changed them. The stored table when a summary is gone."""
    stored = run.read_json("table.json")
    rows = [*feature_sets, "always-positive"]
    files = {s: {row: f"{s}/{row}/summary.json" for row in rows} for s in stored["subsets"]}
    if not all((run / f).is_file() for by_row in files.values() for f in by_row.values()):
        return stored
    table = build_table({s: {row: run.read_json(f) for row, f in by_row.items()}
                         for s, by_row in files.items()}, feature_sets,
                        changed_settings(run.read_json("config.json")))
    if table != stored:
        _write_table(run, table)
        log.info("%s: table written again with today's published values, labels and layout",
                 run.path)
    return table
