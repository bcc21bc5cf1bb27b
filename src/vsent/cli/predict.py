"""``vsent predict``: score images with a trained model; one row per image, errors included."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from tqdm.auto import tqdm

from vsent.errors import EXIT_ITEMS_FAILED, VsentError
from vsent.predict import ROW_FIELDS, Predictor, expand_inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="score images with a trained model",
        description="Write one row per image (path, prob_positive, label, error). Exit status 3 "
                    "when any image failed (its row says why); the others are still scored.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    p.add_argument("--model", required=True, help="checkpoint (model.pt) from finetune/crossval")
    p.add_argument("--out", help="output file (default: standard output)")
    p.add_argument("--format", choices=("csv", "jsonl"),
                   help="default: from --out's suffix (.jsonl -> jsonl), else csv")
    p.add_argument("--oversample", action="store_true", help="average over 10 crops")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: CPUs)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-progress", action="store_true")
    _add_region_args(p)
    p.set_defaults(func=run)


# --- affective regions (Sun et al. 2016), see vsent.analyses.regions -------------------------
def _add_region_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("affective regions (Sun et al. 2016)")
    g.add_argument("--regions", action="store_true",
                   help="late fusion of the whole image with its top-K affective regions "
                        "(EdgeBoxes proposals); one image at a time, slower")
    g.add_argument("--n-proposals", type=int, default=100, help="proposals per image (100)")
    g.add_argument("--k", type=int, default=11, help="regions fused (11)")
    g.add_argument("--alpha", type=float, default=1.0, help="AR = sqrt(obj^2 + alpha senti^2)")
    g.add_argument("--beta", type=float, default=0.5, help="Y = Y_global + beta/K sum Y_regions")


def _region_rows(args: argparse.Namespace, predictor: Predictor, paths):
    from vsent.analyses.regions import predict_rows

    if args.oversample:
        raise VsentError("--regions scores centre crops: it cannot be combined with --oversample")
    return predict_rows(predictor.model, paths, class_names=predictor.class_names, k=args.k,
                        alpha=args.alpha, beta=args.beta, n_proposals=args.n_proposals,
                        device=predictor.device)
# --- end affective regions ------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise VsentError(f"--batch-size must be >= 1, got {args.batch_size}")
    fmt = args.format or ("jsonl" if args.out and args.out.endswith(".jsonl") else "csv")
    paths, rows_missing = expand_inputs(args.paths)
    predictor = Predictor.from_checkpoint(
        args.model, oversample=args.oversample, batch_size=args.batch_size,
        device=args.device, workers=args.workers,
    )
    failed = len(rows_missing)
    # the with statement below closes the file
    out_ctx = Path(args.out).open("w", newline="") if args.out else nullcontext(sys.stdout)  # noqa: SIM115
    with out_ctx as out:
        write = _writer(out, fmt)
        for row in rows_missing:
            write(row)
        rows = _region_rows(args, predictor, paths) if args.regions else predictor.score(paths)
        for row in tqdm(rows, total=len(paths), unit="img", disable=args.no_progress or not paths):
            failed += bool(row["error"])
            write(row)
    total = len(paths) + len(rows_missing)
    print(f"scored {total - failed} of {total} inputs, {failed} failed"
          + (f"; rows in {args.out}" if args.out else ""), file=sys.stderr)
    return EXIT_ITEMS_FAILED if failed else 0


def _writer(out, fmt: str):
    if fmt == "jsonl":
        return lambda row: out.write(json.dumps(row) + "\n")
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS)
    writer.writeheader()
    return writer.writerow
