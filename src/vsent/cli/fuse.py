"""``vsent fuse``: late fusion of a finished cross-validation run with hand-crafted features.

Thin layer over :func:`vsent.analyses.fusion.fuse_run`: no CNN is retrained; for each fold a
classifier on hand-crafted features (GCH/LCH/SIFT-BoW of the baselines, affect cues) is fitted
on the fold's training images and its probability is fused with the CNN's test probability
(``predictions.csv`` of the run). scikit-learn and OpenCV are imported when the command runs.
``--rule early`` fits one classifier on the fold models' features of their own training images
(in-sample, so biased towards the CNN; see :mod:`vsent.analyses.fusion`).
"""

from __future__ import annotations

import argparse

from vsent.cli.common import progress_enabled
from vsent.config import EXTRA_TRAIN, HISTOGRAM_MAPS

#: vsent.analyses.fusion's DEFAULT_WEIGHT (the CNN's weight of the rule fixed in advance,
#: P = 0.5 p_cnn + 0.5 p_hand), RUN_RULES (--rule) and METHODS (--classifier), repeated here
#: so that the parser does not import scikit-learn (tests/test_cli.py keeps them equal).
DEFAULT_WEIGHT = 0.5
RUN_RULES = ("mean", "logit", "early")
METHODS = ("logistic", "svm")
#: config.json keys recorded since fusions were first made (the hand-crafted settings and the
#: classifier's seed): compared only with a stored config that has them, so a fusion made
#: before stays finished.
RECORDED_SINCE = ("hand_crafted", "seed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse", help="late fusion of a crossval run with hand-crafted features (issue 10)",
        description="Fuse the test probabilities of a finished `vsent crossval` run with a "
                    "classifier on hand-crafted features fitted on each training fold. The "
                    "defaults are the rule fixed in advance (mean, w = 0.5, logistic "
                    "regression); report other settings beside it, never instead of it.")
    p.add_argument("run", help="a finished crossval run directory (config.json, folds.json, "
                               "predictions.csv)")
    p.add_argument("--features", default="gch+bow",
                   help="hand-crafted blocks gch, lch, bow, fv (Fisher vectors), cues joined "
                        "with '+' (default gch+bow)")
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
    p.add_argument("--weight", type=float, default=DEFAULT_WEIGHT,
                   help=f"weight w of the CNN, 0..1 (default {DEFAULT_WEIGHT})")
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
    p.add_argument("--out", default=None,
                   help="output directory (default RUN/fuse/FEATURES-RULE-wWEIGHT-CLASSIFIER, "
                        "plus -MAP with --histogram-map and -extraSUBSET with --extra-train)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the output directory and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_fuse)


def default_out(run: str, features: str, rule: str, weight: float, classifier: str,
                histogram_map: str = "none", extra_train: str | None = None) -> str:
    """``RUN/fuse/<features>-<rule>-w<weight>-<classifier>[-<map>][-extra<subset>]`` (one
    directory per setting)."""
    suffix = "" if histogram_map == "none" else f"-{histogram_map}"
    suffix += f"-extra{extra_train}" if extra_train else ""
    return f"{run.rstrip('/')}/fuse/{features}-{rule}-w{weight:g}-{classifier}{suffix}"


def run_fuse(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from vsent.analyses.baselines import BaselineConfig
    from vsent.analyses.compare import check_finished_run
    from vsent.analyses.fusion import fuse_run, fusion_markdown
    from vsent.config import parse_fusion_blocks
    from vsent.errors import VsentError
    from vsent.runs import FOLDS, SUMMARY, check_inputs, check_run_data, open_run_dir, read_config

    features = "+".join(parse_fusion_blocks(args.features, "--features"))
    if not 0.0 <= args.weight <= 1.0:
        raise VsentError(f"--weight {args.weight!r} is out of range (0 .. 1)")
    if args.rule == "early" and args.weight != DEFAULT_WEIGHT:
        raise VsentError("--weight: the early rule has no weight (one classifier on both "
                         "feature sets)")
    check_finished_run(args.run, "crossval run")
    run_cfg = read_config(args.run)
    check_run_data(args.run, run_cfg)  # before --out is made
    out = args.out or default_out(args.run, features, args.rule, args.weight, args.classifier,
                                  args.histogram_map, args.extra_train)
    baseline_config = BaselineConfig(histogram_map=args.histogram_map)
    config = {"command": "fuse", "run": str(Path(args.run).resolve()), "features": features,
              "rule": args.rule, "weight": args.weight, "classifier": args.classifier}
    if args.rule == "early":  # one classifier on both feature sets: no weight to record
        del config["weight"]
    # options left at their defaults stay out, so earlier fusions stay resumable
    if args.histogram_map != "none":
        config["histogram_map"] = args.histogram_map
    if args.extra_train:
        config["extra_train"] = args.extra_train
    # what the hand-crafted classifier was made with: its settings (hand_crafted.seed seeds
    # the BoW/Fisher encoders; cue parameters are the defaults) and the classifier's seed
    # (the run's, as fuse_run takes it: its inner CV and fit)
    config["hand_crafted"] = asdict(baseline_config)
    config["seed"] = run_cfg.get("seed", 0)
    # no --resume: an unfinished fusion (interrupted) is simply done again
    with open_run_dir(out, config, resume=True, overwrite=args.overwrite,
                      done=SUMMARY, resume_asked=False,
                      compare=_compared_keys(out, config, args.overwrite)) as run:
        check_inputs(run, [Path(args.run) / "predictions.csv"])
        if run.status == "finished":
            res = run.read_json(SUMMARY)
        else:
            res = fuse_run(args.run, features, rule=args.rule, weight=args.weight,
                           method=args.classifier, baseline_config=baseline_config,
                           extra_train=args.extra_train, folds_file=run / FOLDS,
                           progress=progress_enabled(args.no_progress))
            rows = res.pop("rows")
            run.write_csv("predictions.csv", rows, list(rows[0]) if rows else ["name"])
            run.write_text("summary.md", f"# {args.run}\n\n" + fusion_markdown(res))
            run.write_json(SUMMARY, res)  # written last: marks the fusion done
    try:
        acc = res["fused"]["accuracy"]
        cnn = res["cnn"]["accuracy"]
        line = (f"fused accuracy {acc['mean']:.3f} +- {acc['std']:.3f} (CNN alone "
                f"{cnn['mean']:.3f}); results in {out}/summary.md")
    except (KeyError, TypeError, ValueError) as e:  # a stored summary.json, edited or damaged
        raise VsentError(f"{Path(out) / SUMMARY}: not a fusion summary ({e!r}); pass "
                         "--overwrite to make it again") from None
    print(line)
    return 0


def _compared_keys(out: str, config: dict[str, object], overwrite: bool) -> list[str] | None:
    """The config keys open_run_dir compares with a stored fusion's: those of either, except
    :data:`RECORDED_SINCE` when the stored config lacks them and the weight of an early rule
    (older fusions recorded its unused 0.5). None: nothing stored to compare."""
    from pathlib import Path

    from vsent.errors import VsentError
    from vsent.runs import CONFIG, read_config

    if overwrite or not (Path(out) / CONFIG).is_file():
        return None
    try:
        stored = read_config(out)
    except VsentError:  # open_run_dir names the damaged file
        return None
    keys = [*config, *(k for k in stored if k not in config)]
    return [k for k in keys if (k in stored or k not in RECORDED_SINCE)
            and not (k == "weight" and config.get("rule") == "early")]
