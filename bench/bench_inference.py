"""Inference speed side by side: pure forward, vsent's one path, a plain torchvision pipeline.

All of them run in one process on the same model and images, interleaved, best of ``--repeats``
(these machines are shared and noisy, so only ratios within one run mean something; the JSON
also holds each repeat's ratios, taken within the repeat, their median, and the load average
before and after; a vsent/forward ratio above 1, impossible, is flagged and warned about):

* ``forward``: the network alone on prepared tensors (centre crops, normalised beforehand), in
  batches of ``--batch-size``: the ceiling.
* ``vsent``: :meth:`vsent.predict.Predictor.score` on the JPEG paths: decode ahead
  (:func:`vsent.inference.iter_batches`, thread pool, JPEG draft mode) + warp to 256x256 +
  centre crop + normalise + forward + softmax (:func:`vsent.inference.infer`) + output rows.
* ``vsent_inline``: the same, the paths iterated in the caller's thread as before 95aa965
  (``vsent.inference.QUIET_AFTER_S = None``); ``vsent`` reads them in a thread of its own, so
  that a pausing ``--from-list`` holds nothing back: ``vsent / vsent_inline`` is that thread's
  cost.
* ``torchvision``: the usual plain pipeline: a ``Dataset`` with PIL decode, ``Resize(256)`` +
  ``CenterCrop(crop)`` + ``ToTensor`` + ``Normalize``, a ``DataLoader`` with ``--loader-workers``
  (2) worker processes, then forward + softmax.

Target (issue 8): ``vsent`` at least as fast as ``torchvision`` and as close to ``forward`` as
decoding allows. The model is CaffeNet with random weights (the speed does not depend on them).

Usage: ``uv run --all-extras python bench/bench_inference.py [--limit N] [--repeats 3]
[--batch-size 32] [--data ../shared/datasets/twitter1] [--out bench/results/inference.json]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    RESULTS,
    add_data_arg,
    dataset_jpegs,
    load_average,
    machine,
    one_line_errors,
    paired_ratios,
    write_json,
)
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vsent import inference
from vsent.data.transforms import Preprocess
from vsent.inference import prepare
from vsent.models import create_model
from vsent.predict import Predictor
from vsent.provenance import versions


class _PlainImages(Dataset):
    """The plain torchvision way: PIL decode, Resize(shorter side) + CenterCrop, Normalize."""

    def __init__(self, paths: list[Path], pre: Preprocess) -> None:
        from torchvision import transforms as T

        self.paths = paths
        self.bgr = pre.channel_order == "BGR"
        self.transform = T.Compose([
            T.Resize(pre.resize), T.CenterCrop(pre.crop), T.ToTensor(),
            T.Normalize([m / 255 for m in pre.mean], [s / 255 for s in pre.std]),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as im:
            x = self.transform(im.convert("RGB"))
        return x.flip(0) if self.bgr else x  # Caffe models take BGR


def _rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def run_forward(model, x: torch.Tensor, n: int, bs: int) -> None:
    with torch.inference_mode():
        for start in range(0, n, bs):
            torch.softmax(model(x[: min(bs, n - start)]), dim=1)


def run_vsent(predictor: Predictor, paths: list[Path]) -> None:
    for row in predictor.score(paths):
        assert not row["error"], row


def run_vsent_inline(predictor: Predictor, paths: list[Path]) -> None:
    saved = inference.QUIET_AFTER_S
    inference.QUIET_AFTER_S = None  # (read by iter_batches at each call)
    try:
        run_vsent(predictor, paths)
    finally:
        inference.QUIET_AFTER_S = saved


def run_torchvision(model, paths: list[Path], pre: Preprocess, bs: int, workers: int) -> None:
    loader = DataLoader(_PlainImages(paths, pre), batch_size=bs, num_workers=workers)
    with torch.inference_mode():
        for x in loader:
            torch.softmax(model(x), dim=1).numpy()


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_arg(ap)
    ap.add_argument("--limit", type=int, default=None, help="first N images (default all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (best kept)")
    ap.add_argument("--loader-workers", type=int, default=2,
                    help="DataLoader worker processes of the torchvision pipeline")
    ap.add_argument("--model", default="caffenet")
    ap.add_argument("--out", type=Path, default=RESULTS / "inference.json")
    args = ap.parse_args(argv)

    paths, source = dataset_jpegs(args.data, args.limit, required=True)
    n, bs = len(paths), args.batch_size
    if n <= bs:  # one batch: start-up and the decode-ahead fill dominate the rates
        print(f"warning: {n} images for batches of {bs}: each measurement is one batch; "
              "give --limit several times --batch-size", file=sys.stderr)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    pre = model.info.preprocess
    rng = np.random.default_rng(0)
    x = prepare(rng.integers(0, 256, (bs, pre.resize, pre.resize, 3), dtype=np.uint8), pre)
    predictor = Predictor(model, batch_size=bs, device="cpu")
    # warm-ups (first allocations, thread pools, the loader's worker start-up)
    run_forward(model, x, bs, bs)
    run_vsent(predictor, paths[:bs])
    run_vsent_inline(predictor, paths[:bs])
    run_torchvision(model, paths[:bs], pre, bs, args.loader_workers)
    rates: dict[str, list[float]] = {"forward": [], "vsent": [], "vsent_inline": [],
                                     "torchvision": []}
    load_before = load_average()
    for r in range(args.repeats):
        rates["forward"].append(_rate(lambda: run_forward(model, x, n, bs), n))
        rates["vsent"].append(_rate(lambda: run_vsent(predictor, paths), n))
        rates["vsent_inline"].append(_rate(lambda: run_vsent_inline(predictor, paths), n))
        rates["torchvision"].append(
            _rate(lambda: run_torchvision(model, paths, pre, bs, args.loader_workers), n))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items())
              + " img/s", file=sys.stderr)
    load_after = load_average()
    best = {k: max(v) for k, v in rates.items()}
    # within each repeat, side by side: the same load behind numerator and denominator
    over_forward = paired_ratios(rates["vsent"], rates["forward"], what="vsent/forward",
                                 at_most_one=True)
    over_torchvision = paired_ratios(rates["vsent"], rates["torchvision"],
                                     what="vsent/torchvision")
    over_inline = paired_ratios(rates["vsent"], rates["vsent_inline"], what="vsent/vsent_inline")
    recorded = versions()  # (once: machine() reads the CPU from it)
    result = {
        "what": "images/s, best of interleaved repeats: pure forward on prepared tensors; "
                "vsent Predictor.score (decode ahead + warp + centre crop + forward + "
                "softmax); the same with the paths read in the caller's thread "
                "(vsent_inline); plain torchvision (PIL, Resize + CenterCrop, DataLoader "
                f"{args.loader_workers} workers)",
        "model": args.model, "init": "random", "images": n, "batch_size": bs,
        **source, "repeats": args.repeats,
        "img_s": best, "img_s_all": rates,
        # ratios of the best values (which may come from different repeats)
        "vsent_over_torchvision": best["vsent"] / best["torchvision"],
        "vsent_over_forward": best["vsent"] / best["forward"],
        # per repeat and their median: read these on a shared machine
        "vsent_over_torchvision_per_repeat": over_torchvision["per_repeat"],
        "vsent_over_torchvision_median": over_torchvision["median"],
        "vsent_over_forward_per_repeat": over_forward["per_repeat"],
        "vsent_over_forward_median": over_forward["median"],
        "vsent_over_forward_impossible": over_forward["impossible"],
        "vsent_over_vsent_inline_per_repeat": over_inline["per_repeat"],
        "vsent_over_vsent_inline_median": over_inline["median"],
        "machine": machine(recorded, torch_threads=torch.get_num_threads(),
                           loadavg_before=load_before, loadavg_after=load_after),
        "versions": recorded,
    }
    write_json(args.out, result)
    print(f"forward {best['forward']:.1f}, vsent {best['vsent']:.1f}, vsent_inline "
          f"{best['vsent_inline']:.1f}, torchvision {best['torchvision']:.1f} img/s; median per "
          f"repeat: vsent/torchvision {over_torchvision['median']:.2f}, vsent/forward "
          f"{over_forward['median']:.2f}, vsent/vsent_inline {over_inline['median']:.3f}; "
          f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
