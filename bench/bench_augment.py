"""``--augment trivial`` with and without worker processes, while the training step waits.

On a GPU, a training step leaves the CPU free: the GPU computes while the process waits for it.
There, TrivialAugment (image by image on the CPU) made resnet18 at 224 px wait for its batches
over half of the time (the lent H200, session 34: 280-400 img/s). This benchmark measures one
epoch's batches with a stand-in for such a step (``time.sleep(--step-ms)``: the CPU is free,
as while a GPU computes), augmented in the training loop (``loop``) or by
:class:`vsent.data.augment_pool.AugmentPool` with 1, 2, ... workers (``pool<k>``), side by
side in interleaved rounds (median images/s, and each pool's speed-up on the loop per round).
``--step-ms 0`` measures the augmentation alone. The images are random uint8 arrays, warped
size (256 for 224-px crops, 110 for 96).

Usage: ``uv run python bench/bench_augment.py [--crop 224] [--step-ms 20] [--batches 24]
[--rounds 3] [--out bench/results/augment.json]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    GENERATED,
    RESULTS,
    data_record,
    load_average,
    one_line_errors,
    paired_ratios,
    write_report,
)

from vsent.data._common import usable_cpus
from vsent.data.augment_pool import AugmentPool
from vsent.data.transforms import draw_seed, trivial_augment_seeded

BATCH = 32  # the quick recipe's batch size


def epoch_rate(batches: list[np.ndarray], crop: int, step_s: float,
               pool: AugmentPool | None) -> float:
    """Images/s of one pass: each batch augmented (in the loop, or by ``pool`` ahead), then
    ``step_s`` of a training step that leaves the CPU free."""
    gen = torch.Generator().manual_seed(0)
    seeds = [draw_seed(gen) for _ in batches]
    start = time.perf_counter()
    if pool is None:
        augmented = (trivial_augment_seeded(b, crop, s) for b, s in zip(batches, seeds,
                                                                        strict=True))
    else:
        augmented = pool.augment(zip(batches, seeds, strict=True), crop)
    for _ in augmented:
        time.sleep(step_s)
    return len(batches) * BATCH / (time.perf_counter() - start)


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=224, help="crop side (warped to crop * 8/7)")
    ap.add_argument("--step-ms", type=float, default=20.0,
                    help="ms of a training step that leaves the CPU free (0: augmentation alone)")
    ap.add_argument("--batches", type=int, default=24, help=f"batches of {BATCH} per pass")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=None,
                    help="pool sizes (default 1 .. the usable CPUs)")
    ap.add_argument("--out", type=Path, default=RESULTS / "augment.json")
    args = ap.parse_args(argv)
    size = round(args.crop * 8 / 7)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)
               for _ in range(args.batches)]
    sizes = args.workers or list(range(1, usable_cpus() + 1))
    pools = {f"pool{k}": AugmentPool(k) for k in sizes}
    rates: dict[str, list[float]] = {"loop": [], **{name: [] for name in pools}}
    try:
        # warm-up: torchvision's import in this process, the workers' start, before timing
        epoch_rate(batches[:1], args.crop, 0.0, None)
        for pool in pools.values():
            epoch_rate(batches[:pool.workers], args.crop, 0.0, pool)
        for _ in range(args.rounds):
            rates["loop"].append(epoch_rate(batches, args.crop, args.step_ms / 1e3, None))
            for name, pool in pools.items():
                rates[name].append(epoch_rate(batches, args.crop, args.step_ms / 1e3, pool))
    finally:
        for pool in pools.values():
            pool.close()
    report = {
        "crop": args.crop, "warped": size, "batch": BATCH, "batches": args.batches,
        "step_ms": args.step_ms, "rounds": args.rounds, "torch_threads": torch.get_num_threads(),
        "usable_cpus": usable_cpus(), "load_average": load_average(),
        **data_record(None, GENERATED),
        "images_per_s": {name: statistics.median(r) for name, r in rates.items()},
        "per_round": rates,
        "speedup_on_loop": {name: paired_ratios(rates[name], rates["loop"],
                                                what=f"{name} / loop")
                            for name in pools},
    }
    write_report(args.out, report)
    for name, rate in report["images_per_s"].items():
        gain = report["speedup_on_loop"].get(name, {}).get("median")
        print(f"{name}: {rate:.0f} img/s" + (f" ({gain:.2f}x the loop)" if gain else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
