"""``vsent fuse``: late fusion of a finished cross-validation run with hand-crafted features.

Thin layer over :func:`vsent.analyses.fusion_run.fuse`
(:func:`~vsent.analyses.fusion_run.fuse_run` written as a run directory): no CNN is
retrained; for each fold a classifier on hand-crafted features (GCH/LCH/SIFT-BoW of the
baselines, affect cues) is fitted on the fold's training
images and its probability is fused with the CNN's test probability (``predictions.csv`` of
the run). scikit-learn and OpenCV are imported when the command runs.
``--rule early`` fits one classifier on the fold models' features of their own training images
(in-sample, so biased towards the CNN; see :mod:`vsent.analyses.fusion_run`).
"""

from __future__ import annotations

import argparse

from vsent.cli.common import out_path, progress_enabled
from vsent.config import EXTRA_TRAIN, FUSION_BLOCKS, HISTOGRAM_MAPS

#: vsent.analyses.fusion's DEFAULT_WEIGHT (the CNN's weight of the rule fixed in advance,
#: P = 0.5 p_cnn + 0.5 p_hand) and METHODS (--classifier), fusion_run's INNER and
#: INNER_SPLITS (--weight inner) and RUN_RULES (--rule), repeated here so that the parser
#: does not import scikit-learn (tests/test_cli.py keeps them equal).
DEFAULT_WEIGHT = 0.5
INNER = "inner"
INNER_SPLITS = 5
RUN_RULES = ("mean", "logit", "early")
METHODS = ("logistic", "svm")


def weight_arg(text: str) -> float | str:
    """--weight: a number (its range is checked with the other options), or ``inner``."""
    if text.strip() == INNER:  # spaces around it, as float() allows around a number
        return INNER
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number from 0 to 1, or {INNER}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse", help="late fusion of a crossval run with hand-crafted features",
        description="Fuse the test probabilities of a finished `vsent crossval` run with a "
                    "classifier on hand-crafted features fitted on each training fold. The "
                    "defaults are the rule fixed in advance (mean, w = 0.5, logistic "
                    "regression); report other settings beside it, never instead of it.")
    p.add_argument("run", help="a finished crossval run directory (config.json, folds.json, "
                               "predictions.csv)")
    p.add_argument("--features", default="gch+bow",
                   help=f"hand-crafted blocks {', '.join(FUSION_BLOCKS)} (fv: Fisher vectors) "
                        "joined with '+' (default gch+bow)")
    p.add_argument("--rule", choices=RUN_RULES, default="mean",
                   help="mean: w p_cnn + (1 - w) p_hand; logit: weighted mean of logits "
                        "(product of experts; at --weight 0.5 the same labels as mean, only "
                        "the probabilities differ); early: one classifier on the fold models' "
                        "penultimate features and the hand-crafted blocks (needs the run's "
                        "fold<k>/model.pt; --weight unused). The early classifier learns from "
                        "each fold model's features of its own training images, which the "
                        "network has fitted: an in-sample fit that favours the CNN block; no "
                        "test image is seen, but the fit is optimistic (report it beside the "
                        "late rules, not instead of them); default mean")
    p.add_argument("--weight", type=weight_arg, default=DEFAULT_WEIGHT,
                   help=f"weight w of the CNN, 0..1 (default {DEFAULT_WEIGHT}); or {INNER}: "
                        f"chosen in each fold on its training images, from out-of-fold "
                        f"predictions of {INNER_SPLITS} inner runs of the run's recipe "
                        f"(trains {INNER_SPLITS} more CNNs a fold, kept in OUT/{INNER}: about "
                        f"{INNER_SPLITS - 1} times the run's training; late rules, no "
                        f"--extra-train)")
    p.add_argument("--classifier", choices=METHODS, default="logistic",
                   help="logistic regression (C by inner log-loss) or the baselines' linear "
                        "SVM with Platt scaling; default logistic")
    p.add_argument("--histogram-map", choices=HISTOGRAM_MAPS, default="none",
                   help="sqrt: square root of the gch, lch and bow histograms (Hellinger "
                        "kernel) before the classifier; default none")
    p.add_argument("--extra-train", choices=EXTRA_TRAIN, default=None,
                   help="also train the hand-crafted classifier on the weakly labelled images "
                        "of this larger Twitter I subset that are not in the run's subset "
                        "(as crossval's --extra-train does for the CNN; late rules only)")
    p.add_argument("--out", default=None, type=out_path,
                   help="output directory (default RUN/fuse/FEATURES-RULE-wWEIGHT-CLASSIFIER, "
                        "plus -MAP with --histogram-map and -extraSUBSET with --extra-train)")
    p.add_argument("--inner-dir", default=None, metavar="DIR", type=out_path,
                   help=f"with --weight {INNER}: where its inner runs train (default "
                        f"OUT/{INNER}); fusions of one run with other --features or "
                        "--classifier can share them, trained once, and --overwrite keeps "
                        "them when they lie outside OUT")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the output directory and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_fuse)


def run_fuse(args: argparse.Namespace) -> int:
    from vsent.analyses.fusion_run import fuse, fusion_out
    from vsent.errors import VsentError
    from vsent.runs import SUMMARY

    # fuse's folder named here: a stop before it is written says nothing is kept there
    args.out = str(fusion_out(args.run, args.out, args.features, args.rule, args.weight,
                              args.classifier, args.histogram_map, args.extra_train))
    res, out = fuse(args.run, args.out, features=args.features, rule=args.rule,
                    weight=args.weight, classifier=args.classifier,
                    histogram_map=args.histogram_map, extra_train=args.extra_train,
                    overwrite=args.overwrite, inner_dir=args.inner_dir,
                    progress=progress_enabled(args.no_progress))
    try:
        acc = res["fused"]["accuracy"]
        cnn = res["cnn"]["accuracy"]
        chosen = (f"; w per fold {', '.join(f'{w:g}' for w in res['weights'])}"
                  if "weights" in res else "")
        line = (f"fused accuracy {acc['mean']:.3f} +- {acc['std']:.3f} (CNN alone "
                f"{cnn['mean']:.3f}{chosen}); results in {out}/summary.md")
    except (KeyError, TypeError, ValueError) as e:  # a stored summary.json, edited or damaged
        raise VsentError(f"{out / SUMMARY}: not a fusion summary ({e!r}); pass "
                         "--overwrite to make it again") from None
    print(line)
    return 0

