"""``vsent regions``: affective regions (Sun et al. 2016) on a cross-validation run directory.

Thin layer over :func:`vsent.analyses.regions_run.evaluate_regions`. The defaults shown in the
help are those of :class:`~vsent.analyses.regions.RegionConfig` and
:class:`~vsent.analyses.proposals.ProposalConfig` (options left out keep them; tests/test_cli.py
checks the numbers agree), so building the parser imports neither torch nor OpenCV.
"""

from __future__ import annotations

import argparse
import sys

from vsent.cli.common import add_run_args, comma_list, progress_enabled
from vsent.config import SENTI_LOGS

#: Defaults quoted in the help (RegionConfig / ProposalConfig's).
HELP_DEFAULTS = {"n_proposals": 100, "k": 11, "k_max": 20, "alpha": 1.0, "beta": 0.5,
                 "max_side": 320, "min_box_area": 1000, "overlays": 8, "batch_size": 128}


def register(sub: argparse._SubParsersAction) -> None:
    d = HELP_DEFAULTS
    p = sub.add_parser(
        "regions", help="affective regions: proposals, AR ranking, fusion (Sun et al. 2016)",
        description="Score N EdgeBoxes proposals per test image with each fold's fine-tuned "
                    "model, keep the top K by affective score, and compare late/early fusion "
                    "with objectness-only, sentiment-only and random regions (Table 1) and "
                    "over K = 1..k-max (Figure 4). The subset is the run's: to evaluate the "
                    "four- and three-agree subsets, run `vsent crossval --subset four|three` "
                    "and point --run at those runs.",
    )
    p.add_argument("--run", required=True, metavar="CROSSVAL_RUN_DIR",
                   help="run directory written by `vsent crossval` (fold<k>/model.pt, folds.json)")
    add_run_args(p, "runs/regions", seed_help="random-region baseline and classifier (default 0)")
    g = p.add_argument_group("method")
    g.add_argument("--n-proposals", type=int,
                   help=f"EdgeBoxes proposals per image, N (default {d['n_proposals']})")
    g.add_argument("--k", type=int, help=f"regions fused, K (default {d['k']})")
    g.add_argument("--k-max", type=int,
                   help=f"the K sweep goes 1..k-max (default {d['k_max']})")
    g.add_argument("--alpha", type=float,
                   help=f"AR = sqrt(obj^2 + alpha senti^2) (default {d['alpha']})")
    g.add_argument("--senti-log", choices=SENTI_LOGS,
                   help="log of the sentiment score 1 + sum s log s: base M, the number of "
                        "classes (scores in [0, 1]; default) or natural (the formula as "
                        "printed; [0.31, 1] for two classes)")
    g.add_argument("--beta", type=float,
                   help=f"Y = Y_global + beta/K sum Y_regions (default {d['beta']})")
    g.add_argument("--no-early-fusion", action="store_true",
                   help="skip early fusion (it scores the training images' regions too, ~5x "
                        "the cost)")
    g = p.add_argument_group("proposals")
    g.add_argument("--edge-model", metavar="MODEL_YML_GZ",
                   help="OpenCV structured-edge model file (research-only licence, not shipped); "
                        "default: vsent's gradient edge detector")
    g.add_argument("--proposal-side", type=int,
                   help="edges and EdgeBoxes run on the image downscaled to this longer side "
                        f"(default {d['max_side']}); boxes map back to full resolution")
    g.add_argument("--min-box-area", type=int,
                   help=f"smallest proposal, pixels at --proposal-side (default "
                        f"{d['min_box_area']})")
    g = p.add_argument_group("outputs and work")
    g.add_argument("--overlays", type=int,
                   help=f"draw the chosen regions on the first N test images "
                        f"(default {d['overlays']})")
    g.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    g.add_argument("--folds", type=comma_list(int), metavar="K[,K...]",
                   help="evaluate only these folds (a quick look; default all)")
    p.set_defaults(func=run)


def _given(args: argparse.Namespace, names: dict[str, str]) -> dict:
    """Config field -> value for the options the user gave (``names``: field -> dest)."""
    return {f: getattr(args, a) for f, a in names.items() if getattr(args, a) is not None}


def run(args: argparse.Namespace) -> int:
    from vsent.analyses.proposals import ProposalConfig
    from vsent.analyses.regions import RegionConfig
    from vsent.analyses.regions_run import evaluate_regions
    from vsent.metrics import mean_std_text

    proposals = ProposalConfig(**_given(args, {"n_proposals": "n_proposals",
                                               "max_side": "proposal_side",
                                               "min_box_area": "min_box_area"}))
    cfg = RegionConfig(
        proposals=proposals, edge_model=args.edge_model, early_fusion=not args.no_early_fusion,
        device=args.device, seed=args.seed,
        folds=tuple(args.folds) if args.folds is not None else None,
        **_given(args, {n: n for n in ("k", "k_max", "alpha", "senti_log", "beta", "overlays",
                                       "batch_size")}),
    )
    table = evaluate_regions(args.run, args.out, cfg, resume=args.resume,
                             overwrite=args.overwrite,
                             progress=progress_enabled(args.no_progress))
    for method, summary in table.items():
        acc = summary["accuracy"]
        print(f"{method:>14}: accuracy "
              f"{mean_std_text(acc, len(summary['folds']), digits=4)}", file=sys.stderr)
    print(f"results in {args.out}/table1.md, k_sweep.png", file=sys.stderr)
    return 0
