"""``vsent regions``: affective regions (Sun et al. 2016) on a cross-validation run directory."""

from __future__ import annotations

import argparse
import sys

from vsent.analyses.proposals import ProposalConfig
from vsent.analyses.regions import RegionConfig, evaluate_regions


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--out", default="runs/regions", help="output directory (default runs/regions)")
    d = RegionConfig()
    g = p.add_argument_group("method")
    g.add_argument("--n-proposals", type=int, default=ProposalConfig.n_proposals,
                   help=f"EdgeBoxes proposals per image, N (default {ProposalConfig.n_proposals})")
    g.add_argument("--k", type=int, default=d.k, help=f"regions fused, K (default {d.k})")
    g.add_argument("--k-max", type=int, default=d.k_max,
                   help=f"the K sweep goes 1..k-max (default {d.k_max})")
    g.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"AR = sqrt(obj^2 + alpha senti^2) (default {d.alpha})")
    g.add_argument("--beta", type=float, default=d.beta,
                   help=f"Y = Y_global + beta/K sum Y_regions (default {d.beta})")
    g.add_argument("--no-early-fusion", action="store_true",
                   help="skip early fusion (it scores the training images' regions too, ~5x "
                        "the cost)")
    g = p.add_argument_group("proposals")
    g.add_argument("--edge-model", metavar="MODEL_YML_GZ",
                   help="OpenCV structured-edge model file (research-only licence, not shipped); "
                        "default: vsent's gradient edge detector")
    g.add_argument("--proposal-side", type=int, default=ProposalConfig.max_side,
                   help="edges and EdgeBoxes run on the image downscaled to this longer side "
                        f"(default {ProposalConfig.max_side}); boxes map back to full resolution")
    g.add_argument("--min-box-area", type=int, default=ProposalConfig.min_box_area,
                   help="smallest proposal, pixels at --proposal-side "
                        f"(default {ProposalConfig.min_box_area})")
    g = p.add_argument_group("run")
    g.add_argument("--overlays", type=int, default=d.overlays,
                   help="draw the chosen regions on the first N test images "
                        f"(default {d.overlays})")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--seed", type=int, default=0, help="random-region baseline and classifier")
    g.add_argument("--folds", type=_fold_list, metavar="K[,K...]",
                   help="evaluate only these folds (a quick look; default all)")
    g.add_argument("--resume", action="store_true",
                   help="continue in --out: folds already scored are reused")
    g.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _fold_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fold numbers like 1,2, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    proposals = ProposalConfig(n_proposals=args.n_proposals, max_side=args.proposal_side,
                               min_box_area=args.min_box_area)
    cfg = RegionConfig(k=args.k, k_max=args.k_max, alpha=args.alpha, beta=args.beta,
                       proposals=proposals, edge_model=args.edge_model,
                       early_fusion=not args.no_early_fusion, overlays=args.overlays,
                       batch_size=args.batch_size, device=args.device, seed=args.seed,
                       folds=args.folds)
    table = evaluate_regions(args.run, args.out, cfg, resume=args.resume,
                             progress=not args.no_progress)
    for method, summary in table.items():
        acc = summary["accuracy"]
        print(f"{method:>14}: accuracy {acc['mean']:.4f} +- {acc['std']:.4f}", file=sys.stderr)
    print(f"results in {args.out}/table1.md, k_sweep.png", file=sys.stderr)
    return 0
