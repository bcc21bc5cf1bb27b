"""``vsent predict`` at scale: images/s and peak memory for growing image counts, per engine.

For each count N (``--counts``, default 10,000 and 50,000) and engine (``--engines``, default
``default`` and ``ray``), runs the real command line in a subprocess::

    vsent predict --model smallcnn.pt --from-list list_N.txt --out out.csv --no-progress ...

on N generated JPEGs (64..128 px a side, smooth random colours; made once under
``--workdir``, reused by later runs) with a randomly initialised smallcnn checkpoint, and
measures:

* ``seconds``, ``images_per_s``: wall time of the command, start-up included;
* ``steady_images_per_s``: rows written after the first one, over the time after it
  (start-up excluded: Ray's takes seconds);
* ``driver_peak_rss_mb``: peak RSS of the ``vsent`` process (``wait4``'s ``ru_maxrss``);
* ``tree_peak_rss_mb``: peak over time of the summed RSS of the process and all its
  descendants (Ray's raylet, workers and actors), polled from ``/proc`` every 0.2 s (pages
  shared between processes, e.g. Ray's object store, are counted once per process). Polling
  misses short peaks, so this is a lower bound: at least ``driver_peak_rss_mb``, which the
  tree holds at that moment (the committed results were written before that floor: there the
  default engine's tree peak is below the process's own).

Memory must not grow with N (the inputs and rows are streamed); the JSON gives the ratio of the
peaks at the largest and the smallest count. A run that fails (exit status, missing rows,
``--timeout``; e.g. the Ray engine without its extra) is recorded with its error and the tail of
its stderr, the others still run, and the exit status is then 1. Results:
``bench/results/predict_scale.json``.

Usage: ``uv run --all-extras python bench/bench_predict_scale.py [--counts 10000 50000]
[--engines default ray] [--device cpu] [--batch-size 64] [--ray-cpus N]
[--workdir /tmp/vsent-bench-scale] [--out bench/results/predict_scale.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import GENERATED, RESULTS, data_record, one_line_errors, write_report
from PIL import Image

from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint

PAGE = os.sysconf("SC_PAGE_SIZE")


class RunFailed(Exception):
    """One ``vsent predict`` run failed (exit status, missing rows, timeout): recorded in the
    JSON, and the other counts and engines still run."""

    def __init__(self, message: str, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail


def make_images(root: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` JPEGs ``root/shard_KKK/img_IIIIIII.jpg`` (1000 a folder), made only if missing.

    Image ``i`` depends on ``i`` only (its own seed), so a pool grown later is the same.
    """
    paths = []
    made = 0
    for i in range(n):
        p = root / f"shard_{i // 1000:03d}" / f"img_{i:07d}.jpg"
        paths.append(p)
        if p.exists():
            continue
        rng = np.random.default_rng([seed, i])
        w, h = (int(x) for x in rng.integers(64, 129, 2))
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)  # upsampled: smooth colours
        img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p, "JPEG", quality=90)
        made += 1
        if made % 5000 == 0:
            print(f"  made {made} images", file=sys.stderr)
    return paths


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _tree_rss(pid: int) -> int:
    """Summed RSS in bytes of ``pid`` and its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(p))
    return total


def _rows(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return max(0, sum(1 for _ in f) - 1)  # minus the csv header
    except OSError:
        return 0


def run_one(cmd: list[str], out: Path, n: int, timeout: float) -> dict:
    """Run ``cmd`` (a ``vsent predict`` writing csv to ``out``) and measure it."""
    out.unlink(missing_ok=True)
    # stderr to a file, not a pipe: a pipe read only at the end fills up (Ray logs) and blocks
    err_file = out.with_suffix(".stderr.log")
    t0 = time.perf_counter()
    with err_file.open("w") as err_out:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_out, text=True)
    peak_tree, t_first, rows_first = 0, None, 0
    status = None
    while status is None:
        peak_tree = max(peak_tree, _tree_rss(proc.pid))
        if t_first is None and out.exists() and out.stat().st_size > 0:
            r = _rows(out)
            if r > 0:
                t_first, rows_first = time.perf_counter(), r
        pid, st, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status = (st, usage)
            break
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.wait()
            raise RunFailed(f"timed out after {timeout} s",
                            err_file.read_text(errors="replace")[-2000:])
        time.sleep(0.2)
    seconds = time.perf_counter() - t0
    err = err_file.read_text(errors="replace")
    code = os.waitstatus_to_exitcode(status[0])
    rows = _rows(out)
    if code not in (0, 3) or rows != n:
        raise RunFailed(f"exit {code}, {rows} rows of {n}", err[-2000:])
    steady = None
    if t_first is not None and seconds > t_first - t0 and rows > rows_first:
        steady = (rows - rows_first) / (seconds - (t_first - t0))
    return {
        "n": n, "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1),
        "steady_images_per_s": round(steady, 1) if steady else None,
        "driver_peak_rss_mb": round(status[1].ru_maxrss / 1024, 1),  # ru_maxrss is in KiB
        # the tree held the driver's own peak at its moment; polling may have missed it
        "tree_peak_rss_mb": round(max(peak_tree / 2**20, status[1].ru_maxrss / 1024), 1),
        "summary": err.strip().splitlines()[-1] if err.strip() else "",
    }


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--engines", nargs="+", default=["default", "ray"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ray-cpus", type=int, default=None, help="local Ray CPUs (all)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vsent-bench-scale"))
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--out", type=Path, default=RESULTS / "predict_scale.json")
    args = ap.parse_args(argv)

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    pool = make_images(work / "images", max(args.counts))
    print(f"{len(pool)} images ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    ckpt = work / "smallcnn.pt"
    if not ckpt.exists():
        save_checkpoint(ckpt, create_model("smallcnn"))

    results: list[dict] = []
    failed: list[str] = []
    for n in args.counts:
        lst = work / f"list_{n}.txt"
        if not lst.exists():
            lst.write_text("".join(f"{p}\n" for p in pool[:n]))
        for engine in args.engines:
            cmd = [sys.executable, "-m", "vsent.cli", "predict", "--model", str(ckpt),
                   "--from-list", str(lst), "--out", str(work / f"out_{engine}.csv"),
                   "--no-progress", "--device", args.device, "--batch-size",
                   str(args.batch_size), "--engine", engine]
            if engine == "ray" and args.ray_cpus:
                cmd += ["--ray-cpus", str(args.ray_cpus)]
            try:
                r = {"engine": engine,
                     **run_one(cmd, work / f"out_{engine}.csv", n, args.timeout)}
            except RunFailed as e:  # recorded; the other counts and engines still run
                r = {"engine": engine, "n": n, "error": str(e), "command": " ".join(cmd),
                     "stderr_tail": e.stderr_tail}
                failed.append(f"{engine} on {n}: {e}")
            print(json.dumps(r), file=sys.stderr)
            results.append(r)

    growth = {}
    lo, hi = min(args.counts), max(args.counts)
    for engine in args.engines:
        by_n = {r["n"]: r for r in results if r["engine"] == engine and "error" not in r}
        if lo != hi and lo in by_n and hi in by_n:
            growth[engine] = {
                k: round(by_n[hi][k] / by_n[lo][k], 2)
                for k in ("driver_peak_rss_mb", "tree_peak_rss_mb")
            }
    report = {
        "what": "vsent predict (CLI subprocess) on generated 64-128 px JPEGs, smallcnn random "
                "init, --from-list, csv output",
        **data_record(None, GENERATED),
        "device": args.device, "batch_size": args.batch_size, "ray_cpus": args.ray_cpus,
        "results": results,
        "peak_rss_ratio_largest_over_smallest_count": growth,
        "failed": failed,
    }
    write_report(args.out, report)
    if failed:
        print(f"bench_predict_scale.py: failed: {'; '.join(failed)} (recorded in {args.out})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
