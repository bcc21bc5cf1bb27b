"""Options shared by several sub-commands, declared once so every command spells them the same.

This module and the sub-command modules import only argparse and the standard library at
import time (``vsent --help`` must not load torch, OpenCV, matplotlib or scikit-learn); each
command's ``run`` function imports the heavy modules it needs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsent.config import DIST_BACKENDS, OPTIMIZERS, SCHEDULES, SUBSETS
from vsent.errors import EXIT_USER_ERROR, DataError, VsentError
from vsent.files import absolute_path, expand_user

#: Where the Twitter I dataset is looked for when --data is not given.
DEFAULT_DATA_ENV = "VSENT_DATA"
#: Devices --device accepts.
DEVICES = ("auto", "cpu", "cuda")


#: How --help names the default of --data.
DEFAULT_DATA_HELP = "default $VSENT_DATA, else ../shared/datasets/twitter1 from the current folder"


def default_data() -> str:
    """``$VSENT_DATA``, else ``../shared/datasets/twitter1`` relative to the current directory."""
    return os.environ.get(DEFAULT_DATA_ENV, str(Path("..") / "shared" / "datasets" / "twitter1"))


def data_path(text: str) -> str:
    """``--data`` as an absolute path, so the run's config.json names the data from any
    directory: `vsent regions RUN` or a ``--resume`` started elsewhere finds it. ``~`` is
    expanded; ``..`` is taken as the file system takes it (:func:`vsent.files.absolute_path`:
    collapsing it as text would change the folder meant when a symlink precedes it)."""
    if not text:  # (Path("") is the current folder)
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    try:
        return str(absolute_path(text))
    except DataError as e:  # ~user of no such user: argparse's one-line usage error
        raise argparse.ArgumentTypeError(str(e)) from None


def folds_arg(text: str) -> str:
    """``--folds``: ``campos`` and ``stratified`` as typed, a folds file that is there as an
    absolute path (as :func:`data_path`: a resume started in another directory reads the same
    file, not another of that name); one that is not there as typed (its error names it)."""
    if text in ("campos", "stratified"):
        return text
    return _existing_file(text) or text


def _existing_file(name: str) -> str | None:
    """``name`` as an absolute path when it names a file here, else None (no such file, ~user
    of no such user, a name too long)."""
    try:
        path = expand_user(name)
        return str(absolute_path(path)) if path.is_file() else None
    except (DataError, OSError):
        return None


def typed(args: argparse.Namespace, option: str) -> bool:
    """Whether ``option`` (``"--data"``) was on the command line (``args.argv``, set by
    :func:`vsent.cli.main`), not only its default."""
    return option in typed_options(args)


def given(args: argparse.Namespace, option: str) -> bool:
    """Whether ``option`` (``"--data"``) was given: typed (:func:`typed`), or, for options
    built without :func:`vsent.cli.main` (nothing says what was typed), set to a value other
    than unset or ``--data``'s default."""
    if getattr(args, "argv", None) is not None:
        return typed(args, option)
    return getattr(args, _dest(option)) not in (None, data_path(default_data()))


def _dest(option: str) -> str:
    """``"--skip-bad"`` -> ``"skip_bad"``: the option's name in ``args`` and in a config."""
    return option.lstrip("-").replace("-", "_")


def typed_options(args: argparse.Namespace) -> set[str]:
    """The long options on the command line (``{"--resume", "--out"}``), as typed."""
    return {a.split("=")[0] for a in getattr(args, "argv", None) or [] if a.startswith("--")}


#: Options that say where and how a run goes, not what it computes: ``--resume`` with these
#: alone continues the run in ``--out`` as it was started (:func:`as_started`).
WHERE_AND_HOW = frozenset({"--resume", "--out", "--data", "--device", "--no-progress", "--jobs"})
#: What ``--resume`` lays over a stored config: the fix a stopped run's error asks for.
LAID_OVER = frozenset({"--skip-bad"})


def laid_over(args: argparse.Namespace) -> dict[str, Any]:
    """The :data:`LAID_OVER` options typed, by their names in a config
    (``{"skip_bad": True}``): what a run continued from its stored config takes from them."""
    return {_dest(o): getattr(args, _dest(o)) for o in sorted(LAID_OVER) if typed(args, o)}


def continue_help(run_option: str = "--device") -> str:
    """--resume's help for the commands that continue :func:`as_started` (crossval's has its
    own); ``run_option``: the command's option of where it runs (baselines' is --jobs: it
    has no --device)."""
    return ("continue the unfinished run in --out (finished work is kept): alone (or with "
            f"{run_option}, --skip-bad, or --data naming the same data from another directory), "
            "with the config stored there; with other options, they must be the stored ones")


def as_started(args: argparse.Namespace, *where: str) -> bool:
    """Whether ``--resume`` came with no option that changes results: only
    :data:`WHERE_AND_HOW`, :data:`LAID_OVER` and the command's own ``where`` options
    (pcnn-transfer's ``--model``, compared when the run opens). The run in ``--out`` then
    continues from its :func:`resumed_config`, as ``vsent crossval --resume --out DIR`` does;
    otherwise the options make the config, and a stored run with another one is refused when
    it opens (naming how it was started). Options built without ``argv`` (not by
    :func:`vsent.cli.main`) make the config: nothing says which were typed."""
    return args.resume and _typed_only(args, WHERE_AND_HOW | LAID_OVER | set(where))


def _typed_only(args: argparse.Namespace, allowed: set[str] | frozenset[str]) -> bool:
    """Whether the options typed are all ``allowed`` (False when nothing says which were)."""
    return getattr(args, "argv", None) is not None and typed_options(args) <= allowed


def refuse_no_run(args: argparse.Namespace, example: str, *where: str) -> None:
    """``--resume`` with no recipe option (:func:`as_started`; ``--seed`` neither) on a
    ``--out`` that holds no run: refused, as crossval does (a misspelt --out would start the
    default recipe: hours of work). ``example`` is a recipe option of the command."""
    from vsent.runs import CONFIG

    if args.resume and not (Path(args.out) / CONFIG).is_file() and _typed_only(
            args, WHERE_AND_HOW | LAID_OVER | {"--seed", *where}):
        raise no_run_error(args.out, example)


def no_run_error(out: str, example: str) -> VsentError:
    """The error of ``--resume`` on an ``out`` that holds no run, given no recipe option
    (``example``: one of the command's)."""
    from vsent.runs import CONFIG

    return VsentError(f"--resume: {out} holds no run to continue (no {CONFIG}); check --out, "
                      f"or give the recipe options (e.g. {example}) to start one")


def stored_run(args: argparse.Namespace) -> dict[str, Any]:
    """The config.json of the vsent run in ``--out``, or {} (none there, or one that cannot
    be read: the run's opening refuses it, naming why). For what a message may add about the
    run; :func:`resumed_config` lets a damaged one stop the command."""
    from vsent.runs import is_run_dir, stored_config

    out = getattr(args, "out", None)
    try:
        return stored_config(out) if isinstance(out, str) and is_run_dir(out) else {}
    except VsentError:
        return {}


def resumed_config(args: argparse.Namespace, *take: str) -> dict[str, Any] | None:
    """The ``config.json`` of ``args.command``'s run in ``--out`` with ``--resume``, else None
    (no --resume, no run there, or another command's: refused when opened, naming it).

    The options in ``take`` (``"--data"``) that were not typed take the stored run's values
    (a path it stored), as crossval's do: the run's other options are compared when it opens.
    """
    from vsent.runs import is_run_dir, stored_config

    # (is_run_dir first: a user's own config.json, JSON or not, is refused when the run opens)
    if not (args.resume and is_run_dir(args.out)):
        return None
    stored = stored_config(args.out)
    if stored.get("command", args.command) != args.command:  # (none recorded: this command's)
        return None
    for option in take:
        if not given(args, option) and isinstance(stored.get(_dest(option)), str):
            setattr(args, _dest(option), stored[_dest(option)])
    return stored


def check_required(args: argparse.Namespace, option: str, what: str) -> None:
    """VsentError when ``option`` (a required one, e.g. pcnn's ``--data``) has no value: not
    typed, and no resumed run gave it (:func:`resumed_config`)."""
    if getattr(args, _dest(option)) is not None:
        return
    where = ""
    if args.resume:
        from vsent.runs import CONFIG, is_run_dir, other_commands_run, read_config

        try:  # (another command's run: said as the run's opening says it)
            other = read_config(args.out).get("command") if is_run_dir(args.out) else None
        except VsentError:
            other = None
        if other == args.command:  # (damaged, or edited by hand)
            where = f": {Path(args.out) / CONFIG} records none"
        elif isinstance(other, str):
            where = f": {other_commands_run(args.out, other, args.command)}"
        else:
            where = f": {args.out} holds no run to continue"
    raise VsentError(f"{option} is required ({what}){where}")


def out_path(text: str) -> str:
    """``--out`` with ``~`` expanded (``--out=~/runs`` or a quoted ``'~/runs'`` made a folder
    named ``~``), otherwise as typed (a run's messages say the path the user gave)."""
    if not text:  # (Path("") is the current folder, which --overwrite would empty)
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    try:
        return str(expand_user(text)) if text != "-" else text
    except DataError as e:  # ~user of no such user: argparse's one-line usage error
        raise argparse.ArgumentTypeError(str(e)) from None


def init_arg(text: str) -> str:
    """``--init`` with a weights file as an absolute path (as :func:`data_path`: a resume or a
    report started in another directory finds it); ``TAG=FILE`` (a CLIP tag's weights) with
    its FILE so. random, imagenet, a tag, and a name that is no file (its error comes later)
    are kept as typed."""
    if text in ("random", "imagenet"):  # the words, even with a file of that name here
        return text
    tag, sep, rest = text.partition("=")
    # a file of that whole name first, as the model registry reads it (split_tagged_init)
    for prefix, name in (("", text), (tag + sep, rest)) if sep else (("", text),):
        found = _existing_file(name)
        if found:
            return prefix + found
    return text  # (no file: as typed)


def add_data_args(p: argparse.ArgumentParser, *, folds: bool = True,
                  data_help: str | None = None, data_required: bool = False) -> None:
    """--data, --subset, --folds (unless ``folds=False``), --skip-bad.

    ``data_required``: --data has no default; the command checks it is given
    (:func:`check_required`; a resumed run knows its data).
    """
    g = p.add_argument_group("data")
    g.add_argument("--data", type=data_path,
                   default=None if data_required else default_data(),
                   help=data_help or "Twitter I folder, a folder with positive/ and negative/, "
                                     f"or a CSV (path,label); {DEFAULT_DATA_HELP}")
    g.add_argument("--subset", choices=SUBSETS, default="five",
                   help="agreement subset of Twitter I (default five)")
    if folds:
        g.add_argument("--folds", default="campos", type=folds_arg,
                       help="campos (the paper's split files), stratified (seeded 5-fold), or a "
                            "folds.json written by an earlier run (default campos)")
    g.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and bad label lines (reported) instead of stopping")


def seed_value(text: str) -> int:
    """--seed: :func:`vsent.config.check_seed`'s range (scikit-learn's and numpy's), refused
    by argparse before any work."""
    from vsent.config import check_seed
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    try:
        check_seed(seed)
    except VsentError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--seed ")) from None
    return seed


def add_run_args(p: argparse.ArgumentParser, default_out: str | None, *,
                 seed_help: str | None = None, out_help: str | None = None,
                 resume: bool = True, device: bool = True, seed: bool = True,
                 resume_help: str | None = None) -> None:
    """The run options: --out, --seed, --device, --resume, --overwrite, --no-progress.

    ``--resume`` and ``--overwrite`` follow :func:`vsent.runs.open_run_dir`; commands that
    never resume (``resume=False``) still take ``--overwrite``.
    """
    g = p.add_argument_group("run")
    g.add_argument("--out", default=default_out, type=out_path,
                   help=out_help or f"run directory (default {default_out})")
    if seed:
        g.add_argument("--seed", type=seed_value, default=0,
                       help=seed_help or "random seed (default 0)")
    if device:
        g.add_argument("--device", default="auto", choices=DEVICES,
                       help="auto picks cuda when available (default auto)")
    either = g.add_mutually_exclusive_group()  # --overwrite would delete what --resume keeps
    if resume:
        either.add_argument("--resume", action="store_true",
                            help=resume_help or "continue the unfinished run in --out "
                                 "(finished work is kept); give the options it was started "
                                 "with" + (" (--device may change)" if device else ""))
    either.add_argument("--overwrite", action="store_true",
                        help="delete the run in --out (this command's) and start again")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bars (there are none when stderr is not a terminal)")


def add_dist_args(p: argparse.ArgumentParser) -> None:
    """--nproc, --dist-backend: data-parallel training with PyTorch DDP (vsent.distributed)."""
    g = p.add_argument_group("data-parallel training (PyTorch DDP)")
    g.add_argument("--nproc", type=int, default=1,
                   help="train with N processes on this machine, each on its share of every "
                        "batch (one per GPU): runs this command again through torchrun "
                        "(under torchrun, leave it out; default 1)")
    g.add_argument("--dist-backend", choices=DIST_BACKENDS, default="auto",
                   help="process group backend: auto = nccl on GPUs, gloo on CPU "
                        "(default auto)")


def progress_enabled(no_progress: bool) -> bool:
    """Whether to draw progress bars: not with --no-progress, and only on a terminal.

    A log file or pipe then keeps one line per epoch instead of thousands of bar updates.
    """
    from vsent.progress import on_terminal

    return on_terminal(not no_progress)


def comma_list(kind: Callable[[str], Any] = str, *,
               choices: tuple[str, ...] | None = None) -> Callable[[str], list]:
    """argparse ``type=`` for ``a,b,c`` lists: items converted by ``kind``, empty items dropped,
    each checked against ``choices`` when given."""
    name = getattr(kind, "__name__", "value")

    def parse(text: str) -> list:
        try:
            items = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {name}s, got {text!r}") from None
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated {name}s, got {text!r}")
        if choices is not None:
            bad = [v for v in items if v not in choices]
            if bad:
                raise argparse.ArgumentTypeError(
                    f"{', '.join(map(str, bad))}: choose from {', '.join(choices)}")
        return items
    return parse


def key_value(text: str) -> tuple[str, Any]:
    """argparse ``type=`` for ``KEY=VALUE`` (VALUE parsed as JSON, else kept as a string)."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


class _ModelArgs(argparse.Action):
    """Appends each ``--model-arg`` pair; a ``num_classes`` other than 2 stops the command with
    one line (``vsent: error: ...``, exit 2): the task sets it (two classes), and a 3-way model
    would train with a third, empty class. CaffeNet's 4096/1000-wide raw tops come with
    ``--arch``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        import json  # (the value as typed: true, not Python's True)

        key, value = values
        if key == "num_classes" and value != 2:
            parser.exit(EXIT_USER_ERROR, f"vsent: error: --model-arg num_classes="
                                         f"{json.dumps(value)}: "
                                         "the task sets num_classes (2: negative, positive); "
                                         "CaffeNet's raw tops (fc7-4096, fc8-1000) come with "
                                         "--arch\n")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])


def add_model_arg(g: argparse._ArgumentGroup) -> None:
    """``--model-arg KEY=VALUE`` (repeatable): builder options of the model, as a list of pairs."""
    g.add_argument("--model-arg", action=_ModelArgs, default=[], metavar="KEY=VALUE",
                   type=key_value,
                   help="builder option of the model, VALUE in JSON (e.g. image_size=96 or "
                        "widths=[16,32] for smallcnn, input_size=256 for pcnn); repeatable")


def preset_model_kwargs(preset: dict[str, Any], model: str,
                        model_arg: list[tuple[str, Any]]) -> dict[str, Any]:
    """The model's builder options: the preset's ``model_kwargs`` when ``model`` is the
    preset's (another ``--model`` starts from none), with ``--model-arg``'s over them."""
    return {**(preset.get("model_kwargs", {}) if model == preset["model"] else {}),
            **dict(model_arg)}


#: TrainConfig fields settable from the command line (default: the preset's value).
TRAIN_OPTIONS = {
    "epochs": int, "batch_size": int, "lr": float, "momentum": float, "weight_decay": float,
    "optimizer": str, "schedule": str, "lr_step": int, "lr_gamma": float, "head_lr_mult": float,
    "bias_lr_mult": float, "label_smoothing": float, "augment": str, "ema": float, "mix": str,
    "momentum_form": str,
}
#: Help of the TRAIN_OPTIONS (each defaults to the --preset's value).
TRAIN_HELP = {
    "epochs": "training epochs",
    "batch_size": "images per training step",
    "lr": "base learning rate (of the pretrained layers; new layers: x --head-lr-mult)",
    "momentum": "SGD momentum (--optimizer adamw keeps its own betas)",
    "momentum_form": "SGD's momentum: caffe (V = m V + lr g; w -= V: after an lr drop the "
                     "velocity keeps the old lr for ~1/(1-m) steps, as in Caffe) or torch "
                     "(torch.optim.SGD: v = m v + g; w -= lr v)",
    "weight_decay": "weight decay (not on biases and other 1-d parameters)",
    "optimizer": f"one of {', '.join(OPTIMIZERS)}",
    "schedule": f"learning-rate schedule per epoch: one of {', '.join(SCHEDULES)} (step: x "
                "--lr-gamma every --lr-step epochs)",
    "lr_step": "epochs between two steps of the step schedule",
    "lr_gamma": "factor of each step of the step schedule (e.g. 0.1)",
    "head_lr_mult": "learning-rate factor of the new layers (Campos et al.: 10)",
    "bias_lr_mult": "learning-rate factor of the biases and other 1-d parameters (Caffe: 2)",
    "label_smoothing": "label smoothing of the cross-entropy, in [0, 1)",
    "augment": "training-time augmentation: crop-flip (Caffe's random crop + mirror) or "
               "trivial (RandomResizedCrop scale 0.35-1 + mirror + "
               "TrivialAugmentWide)",
    "ema": "evaluate and save an exponential moving average of the weights with this decay "
           "per step (e.g. 0.999; warmed up as min(decay, (1+n)/(10+n))); 0: off",
    "mix": "mix each training batch with itself shifted by one image: none, mixup "
           "(torchvision MixUp, alpha 0.2), cutmix (CutMix, alpha 1.0) or mixup|cutmix (one of "
           "the two per batch)",
}


def add_train_args(g: argparse._ArgumentGroup, defaults: Any = None) -> None:
    """--epochs, --batch-size, --lr, ... (every :data:`TRAIN_OPTIONS` field, default None:
    the preset's value; ``defaults``: the TrainConfig of a command without --preset, whose
    values the help gives)."""
    for name, typ in TRAIN_OPTIONS.items():
        default = "the preset's" if defaults is None else getattr(defaults, name)
        g.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None,
                       help=f"{TRAIN_HELP[name]} (default: {default})")


def train_overrides(args: argparse.Namespace) -> dict:
    """The :data:`TRAIN_OPTIONS` the user gave, as TrainConfig field -> value."""
    return {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}


def check_resumed_momentum_form(args: argparse.Namespace, cfg: Any) -> None:
    """VsentError when ``--resume`` and a typed ``--momentum-form`` would continue the run in
    ``args.out`` in another momentum form than it trains in (one started before the option
    trains on in torch's form, :func:`vsent.config.with_stored_momentum_form`): said, not
    done silently. ``cfg`` is the command's config (RunConfig or a pcnn config). A folder
    whose run wrote no results yet (replaced by a new run) or holds another command's run
    (refused when opened) is left to :func:`vsent.runs.open_run_dir`."""
    from vsent.config import stored_momentum_forms
    from vsent.runs import CONFIG, holds_results, stored_config

    if not (args.resume and typed(args, "--momentum-form") and (Path(args.out) / CONFIG).is_file()
            and holds_results(args.out)):  # (one with no results yet starts anew, in the form)
        return
    stored = stored_config(args.out)
    if stored.get("command", args.command) != args.command:  # refused by the run's opening
        return
    changes = stored_momentum_forms(cfg, stored)
    if changes:
        started = ", ".join(sorted({t.momentum_form for t in changes.values()}))
        raise VsentError(f"--resume: {args.out} trains in the momentum form it was started "
                         f"with ({started}), not {args.momentum_form}: give no --momentum-form "
                         "to continue it so, or --overwrite to start again")
