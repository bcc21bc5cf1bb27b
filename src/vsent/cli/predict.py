"""``vsent predict``: score images with a trained model; one row per image, errors included.

A thin layer over :func:`vsent.batch.score_stream` (lazy inputs, rows written as they come,
``--resume``) with an engine of :mod:`vsent.engines` (:class:`vsent.predict.Predictor`, or Ray
Data with ``--engine ray``; with ``--regions``, :func:`vsent.analyses.regions.predict_rows`);
torch is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vsent.cli.common import DEVICES, out_path, progress_enabled
from vsent.cli.regions import HELP_DEFAULTS
from vsent.config import SENTI_LOGS
from vsent.engines import BATCH_SIZE  # --batch-size when not given: the engines' default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="score images with a trained model",
        description="Write one row per image (path, prob_positive, label, error). Exit status 3 "
                    "when any image failed (its row says why); the others are still scored.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="image files, folders (recursive) or globs; see also --from-list")
    p.add_argument("--model", required=True, help="checkpoint (model.pt) from finetune/crossval")
    p.add_argument("--out", type=out_path, help="output file (default, or '-': standard output)")
    p.add_argument("--format", choices=("csv", "jsonl"),
                   help="default: from --out's suffix (.jsonl -> jsonl), else csv")
    p.add_argument("--oversample", action="store_true", help="average over 10 crops")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"images per forward pass (default {BATCH_SIZE})")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding threads (default: the CPUs this process may use, at most 32)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")
    _add_scale_args(p)
    _add_region_args(p)
    p.set_defaults(func=run)


# --- at scale: streaming, resume, engines; see vsent.batch and vsent.engines ----------------
def _add_scale_args(p: argparse.ArgumentParser) -> None:
    from vsent.engines import ENGINES  # standard library only

    g = p.add_argument_group("at scale")
    g.add_argument("--from-list", metavar="FILE",
                   help="also score the paths in FILE, one per line ('-': standard input); "
                        "blank lines and lines starting with # are skipped")
    either = g.add_mutually_exclusive_group()
    either.add_argument("--resume", action="store_true",
                        help="continue --out: keep its rows and skip the images already in it")
    g.add_argument("--retry-failed", action="store_true",
                   help="with --resume: drop --out's error rows first and score those images "
                        "again")
    either.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out (without it, or --resume, an existing "
                             "non-empty --out is refused)")
    g.add_argument("--engine", choices=tuple(ENGINES), default="default",
                   help="default: this process; ray: Ray Data (decoding tasks, model actors); "
                        "onnx or torchscript (the same engine): an export of `vsent export`, "
                        "--model m.onnx on onnxruntime or m.ts on torch")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="join this Ray cluster (e.g. auto) instead of starting a local Ray")
    g.add_argument("--ray-cpus", type=int, metavar="N", help="CPUs of the local Ray (all)")
    g.add_argument("--ray-actors", type=int, metavar="N",
                   help="model actors (default: one per GPU, else half the CPUs)")
# --- end at scale ---------------------------------------------------------------------------


# --- affective regions (Sun et al. 2016), see vsent.analyses.regions -------------------------
#: Defaults of the --regions options (Sun et al.'s K, alpha and beta): those of `vsent regions`,
#: which a test checks against vsent.analyses.regions (a resume trusts them: an output's record
#: leaves senti_log out at its default).
REGION_DEFAULTS = {**{n: HELP_DEFAULTS[n] for n in ("n_proposals", "k", "alpha", "beta")},
                   "senti_log": "classes"}


def _add_region_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("affective regions (Sun et al. 2016)")
    g.add_argument("--regions", action="store_true",
                   help="late fusion of the whole image with its top-K affective regions "
                        "(EdgeBoxes proposals); one image at a time, slower")
    add_region_settings(g)


def region_settings_given(args: argparse.Namespace) -> list[str]:
    """The region settings (:func:`add_region_settings`) given away from their defaults, as
    options (``--k``, ...): refused where no regions are scored, which would ignore them."""
    return [f"--{n.replace('_', '-')}" for n, default in REGION_DEFAULTS.items()
            if getattr(args, n) != default]


def add_region_settings(g: argparse._ArgumentGroup) -> None:
    """The settings of the regions' late fusion (``predict --regions``, ``serve``'s requests
    with ``regions``): N, K, alpha, beta and the log of the sentiment score."""
    d = REGION_DEFAULTS
    g.add_argument("--n-proposals", type=int, default=d["n_proposals"],
                   help=f"proposals per image ({d['n_proposals']})")
    g.add_argument("--k", type=int, default=d["k"], help=f"regions fused ({d['k']})")
    g.add_argument("--alpha", type=float, default=d["alpha"],
                   help=f"AR = sqrt(obj^2 + alpha senti^2) ({d['alpha']})")
    g.add_argument("--beta", type=float, default=d["beta"],
                   help=f"Y = Y_global + beta/K sum Y_regions ({d['beta']})")
    g.add_argument("--senti-log", choices=SENTI_LOGS, default=d["senti_log"],
                   help="log of the sentiment score in AR: classes (base M, scores in [0, 1]) "
                        f"or natural, as `vsent regions --senti-log` ({d['senti_log']})")


def _check_regions_model(args: argparse.Namespace, predictor) -> None:
    """Known once the model is loaded; checked before --out is opened."""
    from vsent.errors import VsentError

    if predictor.fusion is not None:
        raise VsentError(f"--regions scores with the network alone; {args.model} is fused late "
                         f"with {predictor.fusion.features}")


def _region_rows(args: argparse.Namespace, predictor, paths):
    from vsent.analyses.regions import predict_rows

    return predict_rows(predictor.model, paths, class_names=predictor.class_names, k=args.k,
                        alpha=args.alpha, beta=args.beta, n_proposals=args.n_proposals,
                        senti_log=args.senti_log, device=predictor.device)
# --- end affective regions ------------------------------------------------------------------


def _check_not_empty(paths: list[str], from_list: str | None) -> None:
    """An empty PATH or ``--from-list ''`` is a usage error: ``Path('')`` is the current
    folder, and ``vsent predict "$DIR"`` with DIR unset would score all the images under it."""
    from vsent.errors import VsentError

    if "" in paths:
        raise VsentError("PATH '' is empty (an unset shell variable?): give image files, "
                         "folders or globs")
    if from_list == "":
        raise VsentError("--from-list '' is empty: give a file of paths, or '-' for standard "
                         "input")
    if not paths and from_list is None:
        raise VsentError("nothing to score: give image files, folders, globs or --from-list")


def _check_options(args: argparse.Namespace) -> None:
    """VsentError for options that cannot go together or are out of range, all checked before
    --out is opened (opening it empties it unless --resume). Sets ``args.out`` to None for
    ``-`` (standard output) and ``args.batch_size`` to its default when not given."""
    from vsent.batch import check_resume, names_stdout
    from vsent.errors import VsentError

    if args.out == "-":  # as --from-list -: the standard stream, not a file named "-"
        if args.resume:
            raise VsentError("--out -: standard output has no rows to continue (--resume "
                             "continues a file)")
        args.out = None
    if args.batch_size is not None and args.batch_size < 1:
        raise VsentError(f"--batch-size must be >= 1, got {args.batch_size}")
    _check_not_empty(args.paths, args.from_list)
    if args.regions and args.engine != "default":
        raise VsentError(f"--regions runs on the default engine, not --engine {args.engine}")
    # every option is checked before --out is opened (opening it empties it unless --resume)
    if args.out:
        from vsent.data.datasets import IMAGE_EXTENSIONS
        from vsent.files import check_not_an_input

        if Path(args.out).suffix.lower() in IMAGE_EXTENSIONS:  # an image of the inputs, say
            raise VsentError(f"--out {args.out}: scores are written as CSV or JSONL, not to "
                             "an image file name")
        check_not_an_input(args.out, [args.model, args.from_list, *args.paths])
        suffix = Path(args.out).suffix.lower()
        if args.format is None and suffix not in ("", ".csv", ".jsonl", ".txt"):
            # e.g. scores.json: a reader expecting JSON should learn it is CSV before it fails
            print(f"vsent predict: {args.out} is written as CSV (--format jsonl, or a .jsonl "
                  "name, writes JSON lines)", file=sys.stderr)
        elif args.format and suffix in (".csv", ".jsonl") and suffix != f".{args.format}":
            # (walk59) the name says one format, --format another: the next reader trips
            written = "JSON lines" if args.format == "jsonl" else "CSV"
            print(f"vsent predict: {args.out} is written as {written} (--format "
                  f"{args.format}), not as its {Path(args.out).suffix} name says",
                  file=sys.stderr)
    check_resume(args.out, args.resume, args.retry_failed)  # (audit60: before "exists")
    # (standard output, which is written as such, is the shell's to set up: `>> log` appends
    # to log; /dev/fd/3 & co. are opened again, emptying the file behind them: refused)
    if args.out and not (args.resume or args.overwrite) \
            and not names_stdout(args.out) \
            and Path(args.out).is_file() and Path(args.out).stat().st_size:
        raise VsentError(f"{args.out} exists: --resume continues it, --overwrite replaces it")
    # options of a mode that is off would be silently ignored
    set_region = region_settings_given(args)
    if set_region and not args.regions:
        raise VsentError(f"{', '.join(set_region)}: options of --regions, which is not given")
    set_ray = [f"--{n.replace('_', '-')}" for n in ("ray_address", "ray_cpus", "ray_actors")
               if getattr(args, n) is not None]
    if set_ray and args.engine != "ray":
        raise VsentError(f"{', '.join(set_ray)}: options of --engine ray, not of "
                         f"--engine {args.engine}")
    # --regions scores one image at a time, in this thread
    set_batched = [o for o, v in (("--workers", args.workers), ("--batch-size", args.batch_size))
                   if v is not None]
    if set_batched and args.regions:
        raise VsentError(f"{', '.join(set_batched)}: options of the batched scoring; --regions "
                         "scores one image at a time")
    if args.batch_size is None:
        args.batch_size = BATCH_SIZE
    if args.workers is not None and args.workers < 1:
        raise VsentError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.engine == "ray":
        raise VsentError("--workers: decoding threads of the default engine; --engine ray "
                         "decodes in Ray tasks (sized by --ray-cpus and --ray-actors)")
    if args.regions:
        from vsent.analyses.regions import check_predict_options

        check_predict_options(k=args.k, alpha=args.alpha, beta=args.beta,
                              n_proposals=args.n_proposals, senti_log=args.senti_log)
        if args.oversample:
            raise VsentError("--regions scores centre crops: it cannot be combined with "
                             "--oversample")


def run(args: argparse.Namespace) -> int:
    from vsent.batch import score_stream, scoring_record
    from vsent.engines import EngineOptions, open_engine
    from vsent.errors import EXIT_ITEMS_FAILED
    from vsent.inputs import iter_inputs

    _check_options(args)
    progress = progress_enabled(args.no_progress)
    items = iter_inputs(args.paths, from_list=args.from_list)
    options = EngineOptions(
        model=args.model, oversample=args.oversample, batch_size=args.batch_size,
        device=args.device, workers=args.workers, ray_address=args.ray_address,
        ray_cpus=args.ray_cpus, ray_actors=args.ray_actors, progress=progress)
    with open_engine(args.engine, options) as engine:  # loads the model before --out is opened
        if args.regions:
            _check_regions_model(args, engine.predictor)
        scorer = (lambda paths: _region_rows(args, engine.predictor, paths)) if args.regions \
            else engine.score
        # the model's bytes and the options, kept beside --out: --resume refuses to mix rows
        # (checked, and written, by score_stream once --out has been checked and opened)
        # senti_log only when not its default: outputs of vsent before the option still resume
        regions = {n: getattr(args, n) for n in REGION_DEFAULTS
                   if n != "senti_log" or args.senti_log != REGION_DEFAULTS[n]
                   } if args.regions else None
        record = scoring_record(args.model, {"oversample": args.oversample, "regions": regions})
        summary = score_stream(items, scorer, args.out, fmt=args.format, resume=args.resume,
                               retry_failed=args.retry_failed, record=record,
                               progress=progress and args.engine == "default")
    print(summary.line(args.out), file=sys.stderr)
    return EXIT_ITEMS_FAILED if summary.failed else 0
