"""``vsent pcnn`` and ``vsent pcnn-transfer``: You et al. 2015, Algorithms 1 and 2."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from vsent.cli.common import (
    DEFAULT_DATA_HELP,
    SUBSETS,
    add_data_args,
    add_model_arg,
    add_run_args,
    add_train_args,
    as_started,
    check_required,
    check_resumed_momentum_form,
    comma_list,
    continue_help,
    data_path,
    default_data,
    folds_arg,
    init_arg,
    laid_over,
    preset_model_kwargs,
    progress_enabled,
    refuse_no_run,
    resumed_config,
    train_overrides,
)
from vsent.presets import PCNN as PRESETS
from vsent.presets import TRANSFER_REFERENCES as REFERENCES
from vsent.presets import TRANSFER_TRAIN


def _stages(preset: str) -> str:
    """A preset's epochs of stage 1 + stage 2, as the help gives them ("15 + 5 epochs")."""
    return f"{PRESETS[preset]['train'].epochs} + {PRESETS[preset]['finetune'].epochs} epochs"


def _each(field: str) -> str:
    """A stage-2 setting of every preset, as the help gives it ("10 for you2015, 5 for quick")."""
    return ", ".join(f"{getattr(PRESETS[name]['finetune'], field):g} for {name}".replace(
        "e-0", "e-") for name in ("you2015", "quick"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pcnn", help="progressive training on weakly labelled images (You et al. 2015, Alg. 1)",
        description="Train a CNN on a large weakly labelled set, drop each image with "
                    "probability max(0, 2 - exp(|s1 - s2|)) of its scores, and fine-tune the "
                    "network on the rest. Writes stage1/model.pt (CNN), model.pt (PCNN), "
                    "removal.csv/.json/.png and summary.md into --out.",
    )
    add_data_args(p, folds=False, data_required=True,
                  data_help="the weakly labelled images (required, unless --resume continues "
                            "a run): a folder with positive/ and negative/, a CSV with a "
                            "path,label header, or a Twitter I folder (with --subset; other "
                            "data have no subsets and refuse a --subset other than five)")
    add_run_args(p, "runs/pcnn", resume_help=continue_help())
    g = p.add_argument_group("model and recipe (defaults come from --preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="you2015",
                   help=f"you2015: the paper's PCNN (2 conv + 4 fc) from scratch with SGD, "
                        f"{_stages('you2015')} (solver settings ours, not taken from the "
                        f"paper); quick: small CNN at 64 px with AdamW, {_stages('quick')}, "
                        "minutes on a CPU (default you2015)")
    g.add_argument("--model", help="registered model name (default: the preset's)")
    add_model_arg(g)
    g.add_argument("--init", default="random", type=init_arg,
                   help="random (default), imagenet, or a weights file / vsent checkpoint")
    add_train_args(g)
    g.add_argument("--finetune-epochs", type=int, default=None,
                   help=f"stage 2 epochs (default: the preset's, {_each('epochs')}; the "
                        "options above apply to both stages, except --epochs and --lr)")
    g.add_argument("--finetune-lr", type=float, default=None,
                   help=f"stage 2 learning rate (default: the preset's, {_each('lr')}; --lr "
                        "sets stage 1 only)")
    g.add_argument("--oversample", action="store_true",
                   help="score the training images with 10 crops instead of the centre crop")
    p.set_defaults(func=run_pcnn)

    p = sub.add_parser(
        "pcnn-transfer", help="fine-tune a pretrained model on Twitter I, k-fold per subset "
                              "(You et al. 2015, Alg. 2)",
        description="Fine-tune every fold from the checkpoint's weights (all layers) on each "
                    "agreement subset and tabulate precision, recall, F1 and accuracy beside "
                    "the published values (transfer.md/.csv/.json in --out).",
    )
    p.add_argument("--model",
                   help="vsent checkpoint to start from (model.pt or stage1/model.pt of "
                        "`vsent pcnn`, or any 2-way vsent model; required, unless --resume "
                        "continues a run)")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default_data(), type=data_path,
                   help=f"Twitter I folder ({DEFAULT_DATA_HELP})")
    g.add_argument("--subsets", type=comma_list(str), default=list(SUBSETS),
                   help="comma-separated agreement subsets (default five,four,three)")
    g.add_argument("--folds", default="campos", type=folds_arg,
                   help="campos (the split files), stratified, or a folds.json (default campos)")
    g.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and bad label lines (reported)")
    add_run_args(p, "runs/pcnn-transfer", resume_help=continue_help())
    g = p.add_argument_group("recipe (default: SGD, lr 1e-4, 30 epochs, /10 every 10)")
    add_train_args(g, TRANSFER_TRAIN)
    g.add_argument("--oversample", action="store_true",
                   help="lead the table with 10-crop scores (both are always computed)")
    g.add_argument("--reference", choices=REFERENCES, default="pcnn",
                   help="published row set beside ours: pcnn (default; PCNN + CaffeNet as "
                        "Sun et al. quote it, a CaffeNet-based network), or cnn (You et al.'s "
                        "2CONV-4FC CNN, five-agree only) for a model trained without "
                        "progressive selection (stage1/model.pt)")
    p.set_defaults(func=run_transfer)


#: The keys of a :data:`vsent.presets.PCNN` preset that :func:`progressive_config_from_args`
#: reads (a test checks that every preset has no other).
PRESET_KEYS = ("model", "model_kwargs", "train", "finetune")


def progressive_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`vsent.analyses.pcnn.ProgressiveConfig` the options describe."""
    from vsent.analyses.pcnn import ProgressiveConfig, stage2_error
    from vsent.errors import VsentError

    preset = PRESETS[args.preset]
    model = args.model or preset["model"]
    changes = train_overrides(args)
    run_opts = {"seed": args.seed, "device": args.device}
    train = preset["train"].replace(**changes, **run_opts)
    stage2 = {k: v for k, v in changes.items() if k not in ("epochs", "lr")}
    if args.finetune_epochs is not None:
        stage2["epochs"] = args.finetune_epochs
    if args.finetune_lr is not None:
        stage2["lr"] = args.finetune_lr
    try:
        finetune = preset["finetune"].replace(**stage2, **run_opts)
    except VsentError as e:  # name the stage-2 options as the CLI spells them
        raise stage2_error(e) from None
    return ProgressiveConfig(
        data=args.data, subset=args.subset, model=model,
        model_kwargs=preset_model_kwargs(preset, model, args.model_arg), init=args.init,
        train=train, finetune=finetune, oversample=args.oversample, skip_bad=args.skip_bad,
        seed=args.seed,
        preset=args.preset,
    )


def transfer_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`vsent.analyses.pcnn.TransferConfig` the options describe."""
    from vsent.analyses.pcnn import TransferConfig

    train = TRANSFER_TRAIN.replace(**train_overrides(args), seed=args.seed, device=args.device)
    return TransferConfig(
        model=args.model, data=args.data, subsets=list(args.subsets), folds=args.folds, train=train,
        oversample=args.oversample, skip_bad=args.skip_bad, seed=args.seed,
        reference=args.reference,
    )


def run_pcnn(args: argparse.Namespace) -> int:
    from vsent.analyses.pcnn import ProgressiveConfig, progressive

    stored = resumed_config(args, "--data")
    refuse_no_run(args, "--preset quick")
    check_required(args, "--data", "the weakly labelled images")
    cfg = progressive_config_from_args(args)
    check_resumed_momentum_form(args, cfg)
    if stored is not None and as_started(args):  # as it was started
        old = ProgressiveConfig.from_dict(stored)
        cfg = replace(old, data=args.data, train=old.train.replace(device=args.device),
                      finetune=old.finetune.replace(device=args.device), **laid_over(args))
    summary = progressive(cfg, args.out, resume=args.resume, overwrite=args.overwrite,
                          progress=progress_enabled(args.no_progress))
    print(f"removed {summary['n_removed']} of {summary['n_images']} images "
          f"({100 * summary['removed_share']:.1f}%); PCNN written to {summary['model']}, "
          f"stage-1 CNN to {summary['stage1_model']}; see {args.out}/summary.md")
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    from vsent.analyses.pcnn import TransferConfig, transfer

    stored = resumed_config(args, "--data", "--model")
    refuse_no_run(args, "--epochs 5", "--model")
    check_required(args, "--model", "the checkpoint to fine-tune")
    cfg = transfer_config_from_args(args)
    check_resumed_momentum_form(args, cfg)
    # as it was started (a --model given is compared when the run opens)
    if stored is not None and as_started(args, "--model"):
        old = TransferConfig.from_dict(stored)
        cfg = replace(old, data=args.data, model=args.model,
                      train=old.train.replace(device=args.device), **laid_over(args))
    table = transfer(cfg, args.out, resume=args.resume, overwrite=args.overwrite,
                     progress=progress_enabled(args.no_progress))
    for row in table["rows"]:
        pub = row["accuracy_published"]
        print(f"{row['subset']}-agree: accuracy {row['accuracy_mean']:.3f} +- "
              f"{row['accuracy_std']:.3f} (published {'-' if pub is None else f'{pub:.3f}'})")
    print(f"table in {args.out}/transfer.md")
    return 0

