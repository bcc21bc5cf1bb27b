"""``vsent explain``: Grad-CAM heat maps of a trained model's predictions.

Thin layer over :func:`vsent.analyses.explain.explain` (checkpoint, inputs, run directory,
rows, ``explain.csv``); torch is imported when the command runs. The output directory follows
:func:`vsent.runs.open_run_dir`: ``explain.csv`` marks it finished (the same command again
prints the stored result), other images or settings need ``--overwrite`` or another ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from vsent.cli.common import add_run_args

#: Classes a map can explain (as vsent.analyses.explain.TARGETS).
TARGETS = ("predicted", "positive", "negative")
#: --max-side's default (as vsent.analyses.explain.DEFAULT_MAX_SIDE).
DEFAULT_MAX_SIDE = 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="Grad-CAM heat maps of a model's predictions",
        description="Write a heat-map overlay (PNG) and the raw map (.npy, values 0..1) per "
                    "image, at the image's size up to --max-side, and explain.csv with the "
                    "probabilities. Exit status 3 when any image failed (its row says why).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    p.add_argument("--model", required=True,
                   help="checkpoint (model.pt) from finetune/crossval; not an ONNX/TorchScript "
                        "export (Grad-CAM needs the network's gradients)")
    p.add_argument("--layer", type=_layer_name,
                   help="convolutional layer (module name); default: the model's Grad-CAM layer")
    p.add_argument("--target", choices=TARGETS, default="predicted",
                   help="class the map explains (default: each image's predicted class)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, metavar="PIXELS",
                   help="longest side of the maps and overlays written, the image shrunk to it "
                        f"(default {DEFAULT_MAX_SIDE}; 0: the image's own size). The network's "
                        "input is the same either way")
    add_run_args(p, "runs/explain", resume=False, seed=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsent.analyses.explain import explain
    from vsent.errors import EXIT_ITEMS_FAILED

    rows = explain(args.model, args.images, args.out, layer=args.layer, target=args.target,
                   device=args.device, overwrite=args.overwrite, max_side=args.max_side)
    failed = sum(bool(r["error"]) for r in rows)
    print(f"explained {len(rows) - failed} of {len(rows)} images, {failed} failed; "
          f"{args.out}/explain.csv", file=sys.stderr)
    return EXIT_ITEMS_FAILED if failed else 0


def _layer_name(text: str) -> str:
    """``--layer``: a module name; an empty one (an unset shell variable) is refused rather
    than taken for the default layer."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty layer name: give a module name, or leave "
                                         "--layer out for the model's Grad-CAM layer")
    return text
