"""Benchmark of the hand-crafted baselines (the Twitter table of You et al. 2015): time of
the whole table.

Runs :func:`vsent.analyses.baselines.run_baselines` on Twitter I and writes one JSON with the
wall time and its parts: feature extraction per subset (decode + colour histograms + dense
SIFT, with a cold feature cache by default), and per fold the vocabulary k-means, the BoW
encoding, the Fisher vectors' PCA + mixture and encoding (feature sets with ``fv``) and each
feature set's SVM grid search; also the machine's core count and load
(these machines are shared, so the load says how far the times are inflated) and the
accuracies, as a sanity check.

Usage: ``uv run python bench/bench_baselines.py [--data ../shared/datasets/twitter1]
[--subset all] [--features gch,lch,bow,gch+bow,lch+bow] [--warm] [--run-dir DIR]
[--out bench/results/baselines.json]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import (
    RESULTS,
    add_data_arg,
    data_folder,
    data_record,
    load_average,
    machine,
    one_line_errors,
    write_json,
)

from vsent.analyses.baselines import FEATURE_SETS, run_baselines
from vsent.provenance import versions


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(p)
    p.add_argument("--subset", default="all", choices=("five", "four", "three", "all"))
    p.add_argument("--folds", default="campos")
    p.add_argument("--features", default=",".join(FEATURE_SETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warm", action="store_true",
                   help="use the normal feature cache ($VSENT_CACHE) instead of an empty one, "
                        "i.e. measure a rerun")
    p.add_argument("--run-dir", help="keep the run directory here (default: a temporary one)")
    p.add_argument("--out", default=RESULTS / "baselines.json",
                   help="result JSON (default bench/results/baselines.json, as `make bench`)")
    args = p.parse_args(argv)
    data = data_folder(args.data)

    with tempfile.TemporaryDirectory(prefix="vsent-bench-baselines-") as tmp:
        cache = None if args.warm else Path(tmp) / "cache"
        run_dir = Path(args.run_dir) if args.run_dir else Path(tmp) / "run"
        load_before = load_average()
        start = time.perf_counter()
        table = run_baselines(data, args.subset, args.folds, args.features, run_dir,
                              args.seed, cache_dir=cache, progress=False)
        wall = time.perf_counter() - start
        load_after = load_average()

    timings = table["timings"]
    subsets = [s for s in timings if s != "total_s"]
    parts = {
        s: {
            "extract_s": timings[s]["extract_s"],
            **{key: sum(f.get(key, 0) for f in timings[s]["folds"])
               for key in ("vocabulary_s", "encode_s", "fisher_s", "fisher_encode_s")},
            "svm_s": sum(v for f in timings[s]["folds"] for k, v in f.items()
                         if k.startswith("svm_")),
        }
        for s in subsets
    }
    accuracy = {
        s: {r["row"]: r["subsets"][s]["ours"]["accuracy"]["mean"]
            for r in table["rows"] if r["subsets"][s]["ours"] is not None}
        for s in subsets
    }
    recorded = versions()  # (once: machine() reads the CPU from it)
    result = {
        "benchmark": "baselines",
        **data_record(data),
        "options": {"data": data, "subset": args.subset, "folds": args.folds,
                    "features": args.features, "seed": args.seed,
                    "cache": "warm" if args.warm else "cold"},
        "machine": machine(recorded, loadavg_before=load_before, loadavg_after=load_after),
        "wall_s": wall,
        "parts_s": parts,
        "timings": timings,
        "accuracy": accuracy,
        "versions": recorded,
    }
    out = write_json(args.out, result)
    load = "" if None in (load_before, load_after) else \
        f" (load {load_before[0]:.1f} -> {load_after[0]:.1f})"
    print(f"wall {wall:.0f} s on {os.cpu_count()} cores{load}")
    for s, part in parts.items():
        print(f"  {s}: " + ", ".join(f"{k} {v:.0f}" for k, v in part.items()))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
