"""``vsent crossval`` and ``vsent finetune``: fine-tune sentiment CNNs (Campos et al. 2015).

Thin layer over :func:`vsent.crossval.crossval` / :func:`vsent.crossval.finetune`: it builds a
:class:`vsent.config.RunConfig` and calls them; torch is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vsent.cli.common import (
    LAID_OVER,
    TRAIN_OPTIONS,
    add_data_args,
    add_dist_args,
    add_model_arg,
    add_run_args,
    add_train_args,
    check_resumed_momentum_form,
    given,
    init_arg,
    laid_over,
    no_run_error,
    preset_model_kwargs,
    progress_enabled,
    stored_run,
    train_overrides,
    typed,
    typed_options,
)
from vsent.config import (
    EXTRA_SCHEDULES,
    EXTRA_TRAIN,
    FUSION_BLOCKS,
    HEADS,
    PROGRESSIVE_SCOPES,
    SAVED_FUSION_BLOCKS,
)
from vsent.presets import CROSSVAL as PRESETS


def _add_common(p: argparse.ArgumentParser, default_out: str) -> None:
    add_data_args(p)
    add_run_args(p, default_out, resume_help="continue the unfinished run in --out (finished "
                 "folds/epochs are kept): alone (or with --device, --skip-bad, or --data naming "
                 "the same folder from another directory), with the config stored there; with "
                 "recipe options, they must be the stored ones")
    g = p.add_argument_group("model and recipe (defaults come from --preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="campos2015",
                   help="campos2015: the paper's recipe (CaffeNet from ImageNet, 65 epochs SGD); "
                        "quick: small CNN from scratch at 64 px, ~5 min on 2 CPU cores; "
                        "strong: quick fused late with GCH+BoW (--fusion gch+bow: crossval "
                        "measures it, finetune saves it in model.pt; the best without external "
                        "weights; the fusion adds about a minute) "
                        "(default campos2015)")
    g.add_argument("--model", help="registered model name (see `vsent models`)")
    g.add_argument("--arch", help="CaffeNet surgery variant: fc8-2, fc7-4096, fc6-4096, fc7-2, "
                                  "fc6-2, fc8-1000, fc9-2")
    add_model_arg(g)
    g.add_argument("--init", type=init_arg,
                   help="random, imagenet, an open_clip tag of a clip/ model (openai, "
                        "...), or a weights file (.pt/.pth/.safetensors state dict, vsent "
                        "checkpoint, .caffemodel; TAG=PATH: a tag's weights in a file) (default: "
                        "the preset's: " + ", ".join(f"{v['init']} for {k}"
                                                     for k, v in PRESETS.items()) + ")")
    add_train_args(g)
    g.add_argument("--oversample", action="store_true",
                   help="lead the summary with 10-crop scores (both are always computed)")
    _add_train_mode_args(p)
    add_dist_args(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossval", help="k-fold fine-tuning and evaluation (Table 1)",
                       description="Fine-tune a fresh model on each fold's training images and "
                                   "evaluate it on the fold's test images.")
    _add_common(p, "runs/crossval")
    _add_weak_label_and_fusion_args(p)
    p.set_defaults(func=run_crossval)

    p = sub.add_parser("finetune", help="fine-tune one model on a dataset (or one fold)")
    _add_common(p, "runs/finetune")
    p.add_argument("--fold", type=int, help="train on this fold's training images and report "
                                            "its test metrics (default: train on everything)")
    p.add_argument("--fusion", default=None,
                   help="also fit a logistic regression on these hand-crafted features of the "
                        "training images and save it in model.pt: predict and serve then give "
                        "the late-fused score (mean, w = 0.5, as crossval measures it): none, or "
                        f"blocks {', '.join(SAVED_FUSION_BLOCKS)} joined with '+' "
                        f"{_FUSION_DEFAULT}")
    p.set_defaults(func=run_finetune)

    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("pattern", nargs="?", default=None,
                   help="shell-style pattern, e.g. 'convnext*' (timm/ and clip/ names too)")
    p.add_argument("--pattern", dest="pattern_option", metavar="PATTERN",
                   help="the same as the positional pattern")
    p.set_defaults(func=run_models)


#: Epochs of the fine-tuning stages of --extra-schedule joint+finetune / progressive when
#: --finetune-epochs is not given (their lr: a tenth of the training lr, as ``vsent pcnn``).
FINETUNE_EPOCHS = 10
#: --fusion's default, as both commands say it.
_FUSION_DEFAULT = "(default: the preset's, gch+bow for strong, else none)"


def _add_weak_label_and_fusion_args(p: argparse.ArgumentParser) -> None:
    """``vsent crossval``'s weakly labelled extra images, their schedule and late fusion
    (issue 10; their defaults reproduce a run without them)."""
    g = p.add_argument_group("accuracy without external weights (Twitter I)")
    g.add_argument("--extra-train", choices=("none", *EXTRA_TRAIN), default="none",
                   help="also train every fold on the images of this larger agreement subset "
                        "that are not in --subset (majority-vote labels; copies of --subset "
                        "images are dropped, so no test image); default none")
    g.add_argument("--extra-schedule", choices=EXTRA_SCHEDULES,
                   default="joint",
                   help="joint: train on training fold + extra; joint+finetune: then fine-tune "
                        "on the training fold alone (You et al. Algorithm 2); progressive: "
                        "after joint, drop training image i with p_i = max(0, 2 - "
                        "exp(|s_i1 - s_i2|)), fine-tune on the rest, then on the training fold "
                        "(Algorithm 1 + 2); default joint")
    g.add_argument("--progressive-scope", choices=PROGRESSIVE_SCOPES, default="all",
                   help="rows the progressive step may drop (default all, the paper's rule)")
    g.add_argument("--finetune-epochs", type=int, default=None,
                   help=f"epochs of each fine-tuning stage (default {FINETUNE_EPOCHS})")
    g.add_argument("--finetune-lr", type=float, default=None,
                   help="lr of the fine-tuning stages (default a tenth of the training lr; "
                        "the other solver settings are the training recipe's)")
    g.add_argument("--fusion", default=None,
                   help="after the folds, fuse the CNN's probability with a logistic "
                        "regression on these hand-crafted features, fitted on each training "
                        "fold (mean, w = 0.5; see `vsent fuse` for other rules): none, gch+bow, "
                        f"lch+bow, cues, or blocks {', '.join(FUSION_BLOCKS)} joined with '+' "
                        f"{_FUSION_DEFAULT}")


def _weak_label_and_fusion_fields(args: argparse.Namespace, train, preset: dict) -> dict:
    """The RunConfig fields of :func:`_add_weak_label_and_fusion_args` (``vsent finetune`` has
    --fusion alone of them: the others take their defaults)."""
    from vsent.errors import VsentError

    extra = getattr(args, "extra_train", "none")
    schedule = getattr(args, "extra_schedule", "joint")
    ft_epochs = getattr(args, "finetune_epochs", None)
    ft_lr = getattr(args, "finetune_lr", None)
    fusion = getattr(args, "fusion", "none")
    if fusion is None:  # crossval without --fusion: the preset's
        fusion = preset.get("fusion", "none")
    finetune = None
    if schedule != "joint":
        try:
            finetune = train.replace(
                epochs=FINETUNE_EPOCHS if ft_epochs is None else ft_epochs,
                lr=train.lr / 10 if ft_lr is None else ft_lr)
        except VsentError as e:  # name the fine-tuning options as the CLI spells them
            msg = str(e).replace("--epochs ", "--finetune-epochs ")
            raise VsentError(msg.replace("--lr ", "--finetune-lr ")) from None
    elif ft_epochs is not None or ft_lr is not None:
        finetune = train  # a recipe the joint schedule has no use for: RunConfig refuses it
    return {"extra_train": None if extra == "none" else extra, "extra_schedule": schedule,
            "progressive_scope": getattr(args, "progressive_scope", "all"),
            "finetune": finetune, "fusion": None if fusion.strip().lower() == "none" else fusion,
            # the default lr follows the lr the model trains at (vsent.crossval.prepare)
            "finetune_lr_default": finetune is not None and ft_lr is None}


#: The keys of a :data:`vsent.presets.CROSSVAL` preset that :func:`config_from_args` reads (a
#: test checks that every preset has no other).
PRESET_KEYS = ("model", "model_kwargs", "init", "train", "fusion")


def config_from_args(args: argparse.Namespace):
    """The :class:`vsent.config.RunConfig` the options describe (validated when built)."""
    from vsent.config import RunConfig
    from vsent.errors import VsentError
    from vsent.presets import preset_for_config

    preset = PRESETS[args.preset]
    train = preset["train"].replace(seed=args.seed, device=args.device,
                                    **train_overrides(args))
    model = args.model or preset["model"]
    model_kwargs = preset_model_kwargs(preset, model, args.model_arg)
    if args.arch:
        model_kwargs["arch"] = args.arch
    if args.arch and model != "caffenet":
        raise VsentError(f"--arch applies to caffenet, not {model}")
    return RunConfig(
        data=args.data, subset=args.subset, folds=args.folds, model=model,
        model_kwargs=model_kwargs, init=args.init or preset["init"], train=train,
        oversample=args.oversample, skip_bad=args.skip_bad, seed=args.seed,
        preset=preset_for_config(args.preset, args.lr),
        **_weak_label_and_fusion_fields(args, train, preset), **_train_mode_fields(args),
    )


def _add_train_mode_args(p: argparse.ArgumentParser) -> None:
    """How the network trains (vsent.frozen: all, head, last-N) or CLIP zero-shot scoring
    (issue 11)."""
    g = p.add_argument_group("ways to train (default: fine-tune everything)")
    g.add_argument("--train", dest="train_mode", default="all", metavar="all|head|last-N",
                   help="all: fine-tune the whole network (default); head: freeze the backbone, "
                        "extract its pooled features once (cached on disk) and train the head "
                        "on them; last-N: train the last N blocks and the head")
    g.add_argument("--head", choices=HEADS, default="linear",
                   help="with --train head: linear (the head with the run's solver, default) "
                        "or logistic (scikit-learn, C chosen by inner CV on each training fold)")
    g.add_argument("--zero-shot", action="store_true",
                   help="CLIP models: score each image by its similarity to positive and "
                        "negative prompts, no training (--init is an open_clip tag or file)")
    g.add_argument("--positive", action="append", metavar="PROMPT",
                   help="with --zero-shot: a positive prompt (repeat; replaces the defaults)")
    g.add_argument("--negative", action="append", metavar="PROMPT",
                   help="with --zero-shot: a negative prompt (repeat; replaces the defaults)")
    g.add_argument("--prompts", metavar="FILE",
                   help="with --zero-shot: prompts file ('positive: ...' / 'negative: ...' "
                        "lines, or JSON)")


def _train_mode_fields(args: argparse.Namespace) -> dict:
    """The RunConfig fields of :func:`_add_train_mode_args`; the prompts are read here and
    stored in the config."""
    from vsent.errors import VsentError

    zero_shot = getattr(args, "zero_shot", False)
    prompts = None
    prompt_options = [getattr(args, k, None) for k in ("positive", "negative", "prompts")]
    if any(prompt_options) and not zero_shot:
        raise VsentError("--positive/--negative/--prompts apply to --zero-shot")
    overrides = train_overrides(args) if zero_shot else {}
    if overrides:  # nothing trains: the recipe would mislead
        from vsent.config import zero_shot_train_error

        raise zero_shot_train_error(list(overrides))
    if any(prompt_options):
        from vsent.zeroshot import DEFAULT_PROMPTS, check_prompts, read_prompts

        prompts = {k: list(v) for k, v in DEFAULT_PROMPTS.items()}
        if args.prompts:
            prompts.update(read_prompts(args.prompts))
        prompts.update({k: v for k, v in (("positive", args.positive),
                                          ("negative", args.negative)) if v})
        prompts = check_prompts(prompts, where="--positive/--negative/--prompts")
    return {"train_mode": getattr(args, "train_mode", "all"),
            "head": getattr(args, "head", "linear"), "zero_shot": zero_shot,
            "prompts": prompts}


#: Options that say where and how a run goes, not what it trains: ``--resume`` with these
#: alone on a folder without a run is refused (nothing to continue, and no recipe given).
NOT_RECIPE = {"--resume", "--out", "--data", "--device", "--no-progress", "--nproc", "--seed",
              "--fold"}
#: The config keys each recipe option sets: with ``--resume``, a typed option is compared with
#: the stored run at these keys even when its value is the default's (diffing the config
#: against the defaults' alone could not see it, and the stored run went on silently).
RECIPE_KEYS: dict[str, tuple[str, ...]] = {
    "--subset": ("subset",), "--folds": ("folds",),
    "--preset": ("preset", *PRESET_KEYS),  # fusion too: the strong preset sets it
    "--model": ("model",), "--arch": ("model_kwargs",), "--model-arg": ("model_kwargs",),
    "--init": ("init",), "--oversample": ("oversample",), "--train": ("train_mode",),
    "--head": ("head",), "--zero-shot": ("zero_shot",), "--positive": ("prompts",),
    "--negative": ("prompts",), "--prompts": ("prompts",), "--extra-train": ("extra_train",),
    "--extra-schedule": ("extra_schedule",), "--progressive-scope": ("progressive_scope",),
    "--finetune-epochs": ("finetune.epochs",), "--finetune-lr": ("finetune.lr",),
    "--fusion": ("fusion",),
    **{f"--{name.replace('_', '-')}": (f"train.{name}",) for name in TRAIN_OPTIONS},
}


def run_config(args: argparse.Namespace) -> tuple[Any, dict | None]:
    """The run's config: the options', or with ``--resume`` and no recipe option the stored one.

    Returns ``(RunConfig, the stored config.json dict or None)``: the dict when the run
    continues from it (``finetune`` reads its ``fold`` there).

    ``vsent crossval --resume --out DIR`` continues DIR's run as it was started (only
    ``--device`` and ``--data`` may be given beside it: a run option, and the dataset's path
    from here). Recipe options given with it must be those of the stored run: one that differs
    is refused here, naming it (before the defaults of the options not given, e.g. CaffeNet's
    ImageNet weights, are loaded).
    """
    from vsent.cli import build_parser
    from vsent.config import NOT_COMPARED, RunConfig
    from vsent.errors import VsentError
    from vsent.runs import (
        CONFIG,
        RUN_OPTIONS,
        SUMMARY,
        as_stored_train_seed,
        check_run_dir,
        config_diff,
        is_run_dir,
        started_as,
        stored_config,
    )

    try:
        cfg = config_from_args(args)  # a bad option stops here, before any process starts
    except VsentError as e:
        # an option that needs another (--head on --train head), given to continue a run
        # started with that other one: it is not read from the run; said
        # only when the run's would make it valid
        stored = stored_run(args) if args.resume else {}
        if stored.get("command") == args.command and _valid_with(args, stored):
            then = ("shows it again" if (Path(args.out) / SUMMARY).exists()
                    else "continues it as it was started")
            raise VsentError(
                f"{e}; with --resume, the options given are read on their own, not with the "
                f"run's: `--resume --out {args.out}` alone {then}"
                f"{started_as(Path(args.out))}") from None
        raise
    if not args.resume:
        return cfg, None
    bare = config_from_args(build_parser().parse_args([args.command, f"--out={args.out}"]))
    # (--skip-bad is laid over the stored config: what a run stopped by a bad image asks for)
    laid = laid_over(args)
    changed = [key for key in (d.split(":")[0] for d in config_diff(
        bare.to_dict(), cfg.to_dict(), ignore=RUN_OPTIONS | {"data"})) if key not in laid]
    for option in sorted(typed_options(args)):  # typed at the default's value too
        changed += [key for key in RECIPE_KEYS.get(option, ()) if not any(
            key == c or c.startswith(key + ".") or key.startswith(c + ".") for c in changed)]
    if not (Path(args.out) / CONFIG).is_file():
        # a misspelt --out with --resume alone would start the default recipe (hours of
        # CaffeNet); one typed as the default (--preset campos2015) is a recipe given
        if not set(changed) - {"seed", "train.seed"} and not typed_options(args) - NOT_RECIPE \
                - LAID_OVER:
            raise no_run_error(args.out, "--preset quick")
        return cfg, None
    run_there = is_run_dir(args.out)  # (asked first: a user's own config.json may be no JSON)
    stored = stored_config(args.out) if run_there else {}
    if not run_there or stored.get("command", args.command) != args.command:
        # another command's run, or no run: refused as the run's opening says it, before the
        # options' recipe (CaffeNet's ImageNet weights, say) is fetched
        check_run_dir(args.out, {"command": args.command}, resume=True)
        return cfg, None
    # compared as the run directory compares it (runs.open_run_dir): a train.seed recorded
    # before it followed --seed, and run options (a recipe's device) are no difference
    now = as_stored_train_seed(stored, cfg.to_dict())
    # (config_diff: an --init file typed relative, stored absolute, is one file); a preset
    # name is compared with a preset name only: --lr makes it None, and the lr is compared
    diffs = {key: _key_diff(stored, now, key) for key in changed}
    other = [key for key, d in diffs.items()
             if d and not (key in NOT_COMPARED and None in (_at(stored, key), _at(now, key)))]
    if other:
        diff = "; ".join(d for k in other for d in diffs[k])
        raise VsentError(f"--resume: {args.out} was started with other {', '.join(other)} "
                         f"({diff}): give no recipe option to continue it as it was started, "
                         "or --overwrite to start again")
    old = RunConfig.from_dict({k: v for k, v in stored.items() if k != "fold"})
    check_resumed_momentum_form(args, cfg)
    if typed(args, "--momentum-form"):
        # another form than a run made before the option trains in was refused on a run
        # with results; one with none starts anew (runs.open_run_dir), in the form typed
        old = old.replace(**{f: getattr(old, f).replace(momentum_form=args.momentum_form)
                             for f in ("train", "finetune") if getattr(old, f) is not None})
    # a --data given is used (and compared), even one naming the default's folder
    data = args.data if given(args, "--data") else old.data
    return old.replace(data=data, train=old.train.replace(device=args.device), **laid), stored


#: The options other options depend on (--head on --train, --finetune-* on
#: --extra-schedule, --prompts on --zero-shot, --arch on --model): dest -> option.
MODE_OPTIONS = {"train_mode": "--train", "zero_shot": "--zero-shot", "model": "--model",
                "extra_train": "--extra-train", "extra_schedule": "--extra-schedule"}


def _valid_with(args: argparse.Namespace, stored: dict) -> bool:
    """Whether the options make a valid config once the :data:`MODE_OPTIONS` not typed take
    the stored run's values."""
    from vsent.errors import VsentError

    laid = argparse.Namespace(**vars(args))
    for dest, option in MODE_OPTIONS.items():
        if dest in stored and hasattr(laid, dest) and not typed(args, option):
            value = stored[dest]
            setattr(laid, dest, "none" if dest == "extra_train" and value is None else value)
    try:
        config_from_args(laid)
    except VsentError:
        return False
    return True


def _key_diff(stored: dict, now: dict, dotted: str) -> list[str]:
    """:func:`vsent.runs.config_diff` of one dotted key: a key the stored run never had reads
    "not in the stored config" (it read "stored None"), and is no difference at its default."""
    from vsent.runs import RUN_OPTIONS, config_diff

    head, _, leaf = dotted.rpartition(".")
    stored, now = (_at(d, head) if head else d for d in (stored, now))
    return config_diff(*({leaf: d[leaf]} if isinstance(d, dict) and leaf in d else {}
                         for d in (stored, now)), head, ignore=RUN_OPTIONS)


def _at(d: dict, dotted: str) -> Any:
    """The value at ``"train.lr"`` of a nested dict (None where a key is missing)."""
    for key in dotted.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d


def _launch(args: argparse.Namespace, cfg: Any, fold: int | None = None) -> int | None:
    """With ``--nproc N`` (outside torchrun): refuse what the N processes would refuse, once
    and before any of them starts (vsent.crossval.check_launch), then start them; their exit
    status. None: this process runs the command itself."""
    from vsent import distributed
    from vsent.cli import how_to_continue
    from vsent.crossval import check_launch
    from vsent.errors import EXIT_USER_ERROR

    if not distributed.wants_launch(args.nproc, args.dist_backend, args.device):
        return None
    check_launch(cfg, args.out, command=args.command, nproc=args.nproc, fold=fold,
                 resume=args.resume, overwrite=args.overwrite)
    status = distributed.launch(args.nproc, args.command, args.argv)
    if status not in (0, EXIT_USER_ERROR):  # a process crashed: its traceback is above
        print(f"vsent: a training process failed (exit status {status}, see above); what was "
              f"written is kept{how_to_continue(args)}", file=sys.stderr)
    return status


def run_crossval(args: argparse.Namespace) -> int:
    from vsent import distributed
    from vsent.crossval import crossval

    cfg, _ = run_config(args)
    launched = _launch(args, cfg)
    if launched is not None:
        return launched
    with distributed.session(args.dist_backend, args.device), \
            distributed.user_errors_from_rank0() as status:  # under torchrun: DDP
        crossval(cfg, args.out, resume=args.resume, overwrite=args.overwrite,
                 progress=progress_enabled(args.no_progress) and distributed.is_main())
        if distributed.is_main():
            print(f"results in {args.out}/summary.md (summary.json, curves.png, "
                  "predictions.csv, fold<k>/model.pt)")
    return status[0] if status else 0


def run_finetune(args: argparse.Namespace) -> int:
    from vsent import distributed
    from vsent.crossval import finetune

    cfg, stored = run_config(args)
    fold = args.fold if args.fold is not None or stored is None else stored.get("fold")
    launched = _launch(args, cfg, fold)
    if launched is not None:
        return launched
    main = False
    with distributed.session(args.dist_backend, args.device), \
            distributed.user_errors_from_rank0() as status:  # under torchrun: DDP
        result = finetune(cfg, args.out, fold=fold, resume=args.resume,
                          overwrite=args.overwrite,
                          progress=progress_enabled(args.no_progress) and distributed.is_main())
        main = distributed.is_main()
    if status:
        return status[0]
    if not main:
        return 0  # one summary line: rank 0's
    line = (f"model written to {result['model']}" if Path(result["model"]).is_file() else
            f"finished earlier, but its model is gone from {result['model']} (--overwrite "
            "trains it again)")  # e.g. a run directory copied without its models
    if "center" in result:
        line += (f"; fold {fold} accuracy {result['center']['accuracy']:.3f} (centre), "
                 f"{result['ten_crop']['accuracy']:.3f} (10-crop)")
    if "fused_center" in result:
        line += (f"; fused {result['fused_center']['accuracy']:.3f} (centre), "
                 f"{result['fused_ten_crop']['accuracy']:.3f} (10-crop)")
    print(line)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from vsent.errors import VsentError
    from vsent.models import list_models
    from vsent.models.registry import family_prefixes

    if args.pattern and args.pattern_option and args.pattern != args.pattern_option:
        raise VsentError(f"two patterns, {args.pattern!r} and --pattern "
                         f"{args.pattern_option!r}: give one")
    pattern = args.pattern_option or args.pattern or "*"
    names = list_models(pattern)
    if "/" not in pattern and pattern.strip("*"):
        # 'convnext*' also lists timm/convnext*: the families' names without their prefix
        # ('*' alone does not: timm and open_clip list thousands of architectures)
        for prefix in family_prefixes():
            names += [n for n in list_models(prefix + pattern) if n not in names]
    if not names:
        raise VsentError(f"no model matches {pattern!r} (vsent models lists vsent's own; "
                         "vsent models 'timm/*' and 'clip/*' the families)")
    print("\n".join(names))
    if pattern == "*":  # timm and open_clip list thousands: named, not listed
        families = ", ".join(f"{p}<arch>" for p in family_prefixes() if p != "zeroshot/")
        print(f"(and the families {families}: vsent models 'timm/*', 'clip/*', or a pattern "
              "such as 'convnext*')", file=sys.stderr)
    return 0
