"""``vsent ensemble``: the mean prediction of several finished cross-validation runs.

Thin layer over :func:`vsent.analyses.ensemble.ensemble`; the output directory is laid out as a
crossval run, so ``vsent fuse`` works on it.
"""

from __future__ import annotations

import argparse

from vsent.cli.common import out_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble", help="mean prediction of several crossval runs",
        description="Average P(positive) image by image over finished `vsent crossval` runs "
                    "made on the same images and folds (other seeds, recipes or models), "
                    "centre crop and 10-crop, and score it fold by fold. Each run named has "
                    "the same weight (an ensemble named as a run is one, its runs share its "
                    "weight), nothing is chosen on a test fold; a run held twice, or two runs "
                    "with the same probabilities (one network), are refused. A member's "
                    "probability is its network's (prob_positive), also for a crossval "
                    "--fusion run, which `vsent compare` scores by its fused probability "
                    "(config.json's members name the column read). The output is laid out as "
                    "a crossval run (`vsent fuse OUT` fuses it with hand-crafted features).")
    p.add_argument("runs", nargs="+",
                   help="finished crossval (or ensemble) run directories (two or more)")
    p.add_argument("--out", required=True, type=out_path, help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the output directory and start again")
    p.set_defaults(func=run_ensemble)


def run_ensemble(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vsent.analyses.ensemble import ensemble
    from vsent.errors import VsentError
    from vsent.runs import SUMMARY

    summary = ensemble(args.runs, args.out, overwrite=args.overwrite)
    try:
        acc = summary["accuracy"]
        line = f"ensemble accuracy {acc['mean']:.3f} +- {acc['std']:.3f} (centre crop"
        if "ten_crop" in summary:
            t = summary["ten_crop"]["accuracy"]
            line += f"; 10-crop {t['mean']:.3f} +- {t['std']:.3f}"
    except (KeyError, TypeError, ValueError) as e:  # a stored summary.json, edited or damaged
        why = f"no {e.args[0]!r} entry" if isinstance(e, KeyError) else str(e)
        raise VsentError(f"{Path(args.out) / SUMMARY}: not an ensemble summary ({why}); pass "
                         "--overwrite to make it again") from None
    print(f"{line}); results in {args.out}/summary.md")
    return 0
