"""``vsent compare``: finished runs, image by image, on the same test images.

Thin layer over :func:`vsent.analyses.compare.compare_runs` and ``compare_many`` (accuracies,
the images only one run gets right, exact McNemar test, per-fold differences, Holm).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vsent.cli.common import out_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="paired comparison of runs on the same test images",
        description="Compare run B with run A (crossval, ensemble or fuse run directories "
                    "evaluated on the same images and folds): both accuracies, the images "
                    "only one of them gets right, the exact McNemar test of those counts and "
                    "the per-fold differences (printed for one run B; with several, in "
                    "--json). One run B: its p-value is for one pair chosen in advance; "
                    "several: also corrected over them as one family (Holm).")
    p.add_argument("run_a", help="the reference run directory (A)")
    p.add_argument("run_b", nargs="+",
                   help="the run compared with it (B); several: one table, each compared with "
                        "A, p-values also corrected by Holm's method over them")
    p.add_argument("--ten-crop", action="store_true",
                   help="compare the 10-crop probabilities instead of the centre crop's")
    p.add_argument("--without-train-copies", action="store_true",
                   help="leave out the test images that have a copy (same bytes or a near-"
                        "identical thumbnail) among their fold's training images; run A must "
                        "be a crossval run (its data and folds are read)")
    p.add_argument("--json", metavar="FILE", type=out_path,
                   help="also write the comparison as JSON, with its provenance (versions, "
                        "command line, SHA-256 of each predictions file compared); an "
                        "existing file is replaced only when it holds an earlier comparison, "
                        "or with --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="let --json replace an existing file that is no comparison")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    import json

    from vsent.analyses.compare import (
        check_each_run_once,
        compare_many,
        compare_runs,
        comparison_text,
        comparisons_table,
        provenance,
        train_copies,
    )
    from vsent.errors import VsentError
    from vsent.files import atomic_write_text

    if args.overwrite and not args.json:  # (nothing else is written)
        raise VsentError("--overwrite goes with --json FILE")
    check_each_run_once(args.run_b)  # before any work (--without-train-copies reads images)
    if args.json:  # before any work; never over a file the comparison reads
        _check_json_out(Path(args.json), [args.run_a, *args.run_b], args.overwrite)
    copies = train_copies(args.run_a) if args.without_train_copies else {}
    if args.without_train_copies:
        print(f"left out: {len(copies)} test images with a copy in their fold's training set")
    if len(args.run_b) == 1:
        res = compare_runs(args.run_a, args.run_b[0], ten_crop=args.ten_crop, exclude=copies)
        print(comparison_text(res))
    else:
        many = compare_many(args.run_a, args.run_b, ten_crop=args.ten_crop, exclude=copies)
        print(comparisons_table(many))
        res = {"reference": args.run_a, "comparisons": many}
    if args.without_train_copies:
        res = {**res, "left_out": {name: {"copy_in_training": other, "reason": reason}
                                   for name, (other, reason) in sorted(copies.items())}}
    if args.json:  # with what it compared (SHA-256 of each file scored), by which vsent
        res = {**res, "provenance": provenance(
            [args.run_a, *args.run_b], ten_crop=args.ten_crop,
            argv=["vsent", *getattr(args, "argv", [])])}
        try:
            atomic_write_text(args.json, json.dumps(res, indent=2) + "\n")
        except OSError as e:
            raise VsentError(f"{args.json}: cannot write ({e.strerror})") from None
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _check_json_out(out: Path, runs: list[str], overwrite: bool) -> None:
    """VsentError when ``--json`` would write over a file of a compared run (its summary,
    predictions or config: the run would be damaged), or, unless ``overwrite``, over a file
    that is no earlier comparison."""
    from vsent.errors import VsentError
    from vsent.files import check_not_an_input, check_replaceable

    check_not_an_input(out, [Path(run, *name) for run in runs for name in (
        ("config.json",), ("summary.json",), ("predictions.csv",),
        ("fusion", "predictions.csv"))], "--json")
    check_replaceable(out, "--json", "comparison of vsent compare", _is_comparison,
                      overwrite=overwrite)
    # (found after the comparison was printed: its file is what a script asked for)
    if not out.parent.is_dir():
        raise VsentError(f"--json {out}: no folder {out.parent}; make it, or choose another "
                         "file")
    if not os.access(out.parent, os.W_OK):
        raise VsentError(f"--json {out}: its folder is not writable; choose another file")


def _is_comparison(path: Path) -> bool:
    """Whether ``path`` holds what ``--json`` writes (one comparison, or several)."""
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and ("scores_a" in old or "comparisons" in old)
