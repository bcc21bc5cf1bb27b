"""``vsent reproduce``: a paper's experiments and a report with its numbers beside ours.

Only argparse and :mod:`vsent.cli.common` are imported here; the runner (torch, the analyses)
is imported when the command runs, so ``vsent --help`` stays fast.
"""

from __future__ import annotations

import argparse

from vsent.cli.common import (
    DEFAULT_DATA_HELP,
    add_run_args,
    comma_list,
    data_path,
    default_data,
    init_arg,
    progress_enabled,
    typed,
)


def register(sub: argparse._SubParsersAction) -> None:
    from vsent.reports import paper_modules  # light: lists module names, imports none

    p = sub.add_parser(
        "reproduce", help="run a paper's experiments; report published numbers beside ours",
        description="Run the experiments of campos2015 (Tables 1-4), you2015 (its Twitter "
                    "table) or sun2016 (Table 1 on the five/four/three-agree subsets, K "
                    "sweep) and write OUT/report.md, report.json and figures: the published "
                    "numbers (each with "
                    "its table) beside the measured ones, with the run directory of every "
                    "number. Each step is a sub-run under OUT, so --resume continues an "
                    "interrupted reproduction. Sub-runs: campos2015 table1, layers, fc7-4096, "
                    "fc6-4096, fc7-2, fc6-2, fc8-1000, fc9-2; you2015 baselines, "
                    "pcnn-five/-four/-three (or transfer with --init CHECKPOINT), "
                    "pcnn-weak-five/-four; sun2016 "
                    "crossval-SUBSET and regions-SUBSET for five, four, three (or regions with "
                    "--run). --quick lists in the report what it reduces.",
    )
    p.add_argument("paper", choices=paper_modules())
    p.add_argument("--quick", action="store_true",
                   help="CPU-sized version (e.g. 1 epoch per CaffeNet instead of 65); the "
                        "report lists every reduction")
    p.add_argument("--data", default=default_data(), type=data_path,
                   help=f"Twitter I folder ({DEFAULT_DATA_HELP})")
    p.add_argument("--init", type=init_arg,
                   help="weights: imagenet (default for CaffeNet/VGG), random, or a file; "
                        "you2015: a vsent checkpoint pre-trained on weak labels (fine-tuned "
                        "per fold by domain transfer). ImageNet weights that cannot be "
                        "downloaded fall back to random init, and the report says so; a file "
                        "must load")
    p.add_argument("--run", metavar="CROSSVAL_RUN_DIR",
                   help="sun2016: analyse this finished crossval run (its subset only) instead "
                        "of training one per subset")
    p.add_argument("--only", metavar="SUBRUNS", type=comma_list(),
                   help="comma-separated sub-runs to run now (e.g. table1,layers); the others "
                        "are reused if finished and up to date (e.g. layers probed with "
                        "table1's current models), and reported as not run otherwise")
    add_run_args(p, None, out_help="reproduction directory (default runs/reproduce/PAPER, or "
                                   "runs/reproduce/PAPER-quick with --quick); --resume keeps "
                                   "finished sub-runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from vsent.reports.runner import command_line, make_plan, reproduce

    # the default folder named here: a stop before it is written says nothing is kept there
    out = args.out = args.out or f"runs/reproduce/{args.paper}{'-quick' if args.quick else ''}"
    plan = make_plan(args.paper, args.data, quick=args.quick, init=args.init,
                     device=args.device, seed=args.seed, run=args.run)
    if args.run is not None and typed(args, "--data"):  # (ignored: even a folder not there)
        from vsent.errors import VsentError

        raise VsentError("--data does not apply with --run: the run's own data is analysed "
                         "(its config.json names it); leave --data out")
    command = command_line(args.paper, quick=args.quick, out=out, data=args.data,
                           init=args.init, device=args.device, resume=args.resume,
                           run=args.run, seed=args.seed,
                           only=",".join(args.only) if args.only else None,
                           overwrite=args.overwrite)
    report = reproduce(plan, out, resume=args.resume, overwrite=args.overwrite,
                       progress=progress_enabled(args.no_progress), command=command,
                       only=args.only or None)
    for reason in report["weights_failures"]:
        print(f"vsent: warning: random weights used instead: {reason}", file=sys.stderr)
    print(f"report written to {out}/report.md")
    return 0
