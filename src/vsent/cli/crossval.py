"""``vsent crossval`` and ``vsent finetune``: fine-tune sentiment CNNs (Campos et al. 2015).

Thin layer over :func:`vsent.crossval.crossval` / :func:`vsent.crossval.finetune`: it builds a
:class:`vsent.config.RunConfig` and calls them; torch is imported when a command runs.
"""

from __future__ import annotations

import argparse

from vsent.cli.common import (
    add_data_args,
    add_run_args,
    add_train_args,
    progress_enabled,
    train_overrides,
)
from vsent.presets import CROSSVAL as PRESETS


def _add_common(p: argparse.ArgumentParser, default_out: str) -> None:
    add_data_args(p)
    add_run_args(p, default_out)
    g = p.add_argument_group("model and recipe (defaults come from --preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="campos2015",
                   help="campos2015: the paper's recipe (CaffeNet from ImageNet, 65 epochs SGD); "
                        "quick: small CNN from scratch at 64 px, ~5 min on 2 CPU cores "
                        "(default campos2015)")
    g.add_argument("--model", help="registered model name (see `vsent models`)")
    g.add_argument("--arch", help="CaffeNet surgery variant: fc8-2, fc7-4096, fc6-4096, fc7-2, "
                                  "fc6-2, fc8-1000, fc9-2")
    g.add_argument("--init", help="random, imagenet, or a weights file (.pt/.pth state dict "
                                  "or .caffemodel)")
    add_train_args(g)
    g.add_argument("--oversample", action="store_true",
                   help="lead the summary with 10-crop scores (both are always computed)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossval", help="k-fold fine-tuning and evaluation (Table 1)",
                       description="Fine-tune a fresh model on each fold's training images and "
                                   "evaluate it on the fold's test images.")
    _add_common(p, "runs/crossval")
    p.set_defaults(func=run_crossval)

    p = sub.add_parser("finetune", help="fine-tune one model on a dataset (or one fold)")
    _add_common(p, "runs/finetune")
    p.add_argument("--fold", type=int, help="train on this fold's training images and report "
                                            "its test metrics (default: train on everything)")
    p.set_defaults(func=run_finetune)

    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=run_models)


def config_from_args(args: argparse.Namespace):
    """The :class:`vsent.config.RunConfig` the options describe (validated when built)."""
    from vsent.config import RunConfig
    from vsent.errors import VsentError
    from vsent.presets import preset_for_config

    preset = PRESETS[args.preset]
    train = preset["train"].replace(seed=args.seed, device=args.device,
                                    **train_overrides(args))
    model = args.model or preset["model"]
    model_kwargs = {"arch": args.arch} if args.arch else {}
    if args.arch and model != "caffenet":
        raise VsentError(f"--arch applies to caffenet, not {model}")
    return RunConfig(
        data=args.data, subset=args.subset, folds=args.folds, model=model,
        model_kwargs=model_kwargs, init=args.init or preset["init"], train=train,
        oversample=args.oversample, skip_bad=args.skip_bad, seed=args.seed,
        preset=preset_for_config(args.preset, args.lr),
    )


def run_crossval(args: argparse.Namespace) -> int:
    from vsent.crossval import crossval

    crossval(config_from_args(args), args.out, resume=args.resume, overwrite=args.overwrite,
             progress=progress_enabled(args.no_progress))
    print(f"results in {args.out}/summary.md (summary.json, predictions.csv, fold<k>/model.pt)")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from vsent.crossval import finetune

    result = finetune(config_from_args(args), args.out, fold=args.fold, resume=args.resume,
                      overwrite=args.overwrite, progress=progress_enabled(args.no_progress))
    line = f"model written to {result['model']}"
    if "center" in result:
        line += (f"; fold {args.fold} accuracy {result['center']['accuracy']:.3f} (centre), "
                 f"{result['ten_crop']['accuracy']:.3f} (10-crop)")
    print(line)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from vsent.models import list_models

    print("\n".join(list_models(args.pattern)))
    return 0
