"""Start-up cost of a command, with and without the environment's compiled bytecode.

One image scored by ``vsent predict`` pays for importing torch (not torchvision: the scoring
path does without it) before any work.
Python normally caches the compiled modules (``__pycache__/*.pyc``); where
``PYTHONDONTWRITEBYTECODE`` is set (as on our CI machines) and the installer did not compile
them, every process compiles torch's sources again. The Makefile therefore has uv compile the
environment's bytecode when it installs it (``UV_COMPILE_BYTECODE=1``).

Three commands, each in a fresh subprocess, under two conditions, interleaved, median of
``--repeats``:

* ``import_torch``: ``python -c "import torch"``;
* ``import_torchvision``: ``python -c "import torchvision"`` (it imports torch too);
* ``predict_one``: ``python -m vsent predict --model smallcnn.pt one.jpg`` (a randomly
  initialised smallcnn checkpoint and one 500x375 JPEG, both made here).

Conditions: ``without_bytecode`` (``PYTHONDONTWRITEBYTECODE=1`` and ``PYTHONPYCACHEPREFIX`` an
empty folder: every module is compiled from source, nothing is written) and ``with_bytecode``
(the environment's ``__pycache__`` is used; when it is missing, the first repeat writes it).
Results: ``bench/results/startup.json``.

Usage: ``uv run --all-extras python bench/bench_startup.py [--repeats 3]
[--out bench/results/startup.json]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import GENERATED, RESULTS, data_record, one_line_errors, photo_jpegs, write_report

from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``cmd`` run to completion (it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = ap.parse_args(argv)

    import torch

    torch_init = Path(torch.__file__)
    pyc = torch_init.parent / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    bytecode_present = pyc.exists()  # before this run could write it

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "smallcnn.pt"
        save_checkpoint(ckpt, create_model("smallcnn"))
        (image,) = photo_jpegs(1, tmp)
        empty = tmp / "no-pycache"
        empty.mkdir()
        commands = {
            "import_torch": [sys.executable, "-c", "import torch"],
            "import_torchvision": [sys.executable, "-c", "import torchvision"],
            "predict_one": [sys.executable, "-m", "vsent", "predict", "--model", str(ckpt),
                            "--no-progress", str(image)],
        }
        base = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        envs = {"without_bytecode": {**base, "PYTHONDONTWRITEBYTECODE": "1",
                                     "PYTHONPYCACHEPREFIX": str(empty)},
                "with_bytecode": base}
        seconds: dict[str, dict[str, list[float]]] = {c: {n: [] for n in commands} for c in envs}
        for r in range(args.repeats):
            for name, cmd in commands.items():
                for cond, env in envs.items():
                    seconds[cond][name].append(timed(cmd, env))
                    print(f"repeat {r + 1}: {name} {cond} {seconds[cond][name][-1]:.2f} s",
                          file=sys.stderr)

    median = {c: {n: statistics.median(v) for n, v in per.items()} for c, per in seconds.items()}
    report = {
        **data_record(None, GENERATED),
        "repeats": args.repeats,
        "torch_bytecode_present_before_run": bytecode_present,
        "seconds": seconds,
        "median_seconds": median,
        "ratio_without_over_with": {n: median["without_bytecode"][n] / median["with_bytecode"][n]
                                    for n in commands},
    }
    write_report(args.out, report)
    for n in commands:
        print(f"{n}: {median['without_bytecode'][n]:.2f} s without bytecode, "
              f"{median['with_bytecode'][n]:.2f} s with", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
