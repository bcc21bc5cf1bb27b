"""``vsent baselines``: colour histograms and SIFT bag of words + linear SVM (You et al. 2015)."""

from __future__ import annotations

import argparse

from vsent.cli.common import (
    SUBSETS,
    add_data_args,
    add_run_args,
    as_started,
    continue_help,
    laid_over,
    progress_enabled,
    refuse_no_run,
    resumed_config,
)
from vsent.config import HISTOGRAM_MAPS

#: Default feature sets (as vsent.analyses.baselines.FEATURE_SETS; checked by tests/test_cli.py).
FEATURE_SETS = ("gch", "lch", "bow", "gch+bow", "lch+bow")


def _allow_all_subsets(p: argparse.ArgumentParser) -> None:
    """Let the shared --subset option also take ``all`` (the three subsets in turn)."""
    # argparse has no public way to reach an option added by a helper; the shared helper keeps
    # the name, default and help identical across commands, which is worth this one lookup.
    action = next(a for a in p._actions if a.dest == "subset")
    action.choices = (*SUBSETS, "all")
    action.help = "agreement subset of Twitter I, or all for the three in turn (default five)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baselines",
        help="hand-crafted baselines: GCH, LCH, SIFT BoW + linear SVM (You et al. 2015)",
        description="Cross-validate colour histograms (GCH, LCH), a SIFT bag of visual words "
                    "and their concatenations with a linear SVM on the same folds as the CNN "
                    "runs, and tabulate them beside You et al. 2015.")
    add_data_args(p)
    _allow_all_subsets(p)
    add_run_args(p, "runs/baselines", device=False, resume_help=continue_help("--jobs"),
                 seed_help="seed of the vocabulary k-means, the Fisher vectors' mixture, "
                           "descriptor sample and inner CV (default 0)")
    g = p.add_argument_group("features and classifier")
    g.add_argument("--features", default=",".join(FEATURE_SETS),
                   help="comma-separated feature sets: gch, lch, bow, fv (SIFT Fisher vectors), or "
                        "blocks joined with + "
                        f"(default {','.join(FEATURE_SETS)})")
    g.add_argument("--k", type=int, default=500, help="visual words (default 500)")
    g.add_argument("--sift", choices=("dense", "keypoints"), default="dense",
                   help="dense: descriptors on a grid every --sift-step px; keypoints: "
                        "OpenCV's detector, at most 500 (default dense)")
    g.add_argument("--sift-step", type=int, default=12,
                   help="dense grid step in px on the 256-px image (default 12)")
    g.add_argument("--bow-norm", choices=("l1", "l2"), default="l1",
                   help="normalisation of the BoW histogram (default l1)")
    g.add_argument("--histogram-map", choices=HISTOGRAM_MAPS, default="none",
                   help="sqrt: square root of every histogram (Hellinger kernel) before the "
                        "classifier (default none)")
    g.add_argument("--fisher-components", type=int, default=64,
                   help="Gaussians of the Fisher vectors' mixture (block fv; default 64)")
    g.add_argument("--fisher-pca", type=int, default=64,
                   help="PCA dimensions of RootSIFT before the Fisher vectors (default 64)")
    g.add_argument("--max-descriptors", type=int, default=50_000,
                   help="training descriptors sampled for each fold's k-means (default 50000)")
    g.add_argument("--inner-splits", type=int, default=3,
                   help="folds of the inner CV that picks the SVM's C (default 3)")
    p.add_argument("--jobs", type=int, default=None,
                   help="feature extraction threads (default: one per CPU this process may use, "
                        "at most 32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsent.analyses.baselines import run_baselines, table_markdown
    from vsent.analyses.handcrafted import SiftParams

    stored = resumed_config(args, "--data")
    refuse_no_run(args, "--features gch")
    if stored is not None and as_started(args):  # as it was started
        _as_started(args, stored)
    table = run_baselines(
        args.data, args.subset, args.folds, args.features, args.out, args.seed,
        k=args.k, bow_norm=args.bow_norm, histogram_map=args.histogram_map,
        fisher_components=args.fisher_components, fisher_pca=args.fisher_pca,
        sift=SiftParams(mode=args.sift, step=args.sift_step),
        max_descriptors=args.max_descriptors, inner_splits=args.inner_splits,
        skip_bad=args.skip_bad, n_jobs=args.jobs, progress=progress_enabled(args.no_progress),
        resume=args.resume, overwrite=args.overwrite,
    )
    print(table_markdown(table), end="")
    print(f"results in {args.out} ({table['timings']['total_s']:.0f} s)")
    return 0


#: The options of a baselines run its config.json records by their names.
_RECIPE = ("folds", "seed", "k", "bow_norm", "histogram_map", "fisher_components", "fisher_pca",
           "max_descriptors", "inner_splits")


def _as_started(args: argparse.Namespace, stored: dict) -> None:
    """Set ``args`` to the options the run in ``stored`` (its config.json) was started with
    (``--data``: :func:`vsent.cli.common.resumed_config`). What the options cannot say (a
    config written by the Python API, e.g. another grid of C) stays as given: the run's
    opening refuses it."""
    subsets = stored.get("subsets")
    if isinstance(subsets, list) and subsets:
        args.subset = "all" if subsets == list(SUBSETS) else subsets[0]
    if isinstance(stored.get("features"), list):
        args.features = ",".join(map(str, stored["features"]))
    sift = stored.get("sift")
    if isinstance(sift, dict):
        args.sift, args.sift_step = sift.get("mode", args.sift), sift.get("step", args.sift_step)
    laid = laid_over(args)
    for key in (*_RECIPE, "skip_bad"):
        if key not in laid:
            setattr(args, key, stored.get(key, getattr(args, key)))
