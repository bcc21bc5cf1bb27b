"""Benchmark of the core pipeline: inference end to end vs pure forward, and training data wait.

Measures, side by side in one run (these machines are noisy, so ratios are taken within it):

* inference: JPEG decode + resize + crop(s) + normalise + forward through ``vsent.predict``
  (``Predictor.score``), against the pure forward pass on already-prepared tensors of the same
  batch size, for the centre crop and for 10-crop oversampling. Target: >= 0.8 on CPU.
* training: images/s of ``vsent.train.fit`` and the share of step time spent preparing batches
  (reading the cache, cropping, normalising). Target: < 5 %.

The comparison with a plain torchvision pipeline (PIL, Resize + CenterCrop, DataLoader) is
``bench/bench_inference.py``.

Usage: ``uv run python bench/bench_core.py [--models smallcnn caffenet] [--n 256]
[--repeats 3] [--data ../shared/datasets/twitter1] [--out bench/results/core.json]``

The images are the first ``--n`` JPEGs of ``--data`` (default ``$VSENT_DATA``, else
``../shared/datasets/twitter1``); where that default folder is absent, generated 500x375 JPEGs,
and the JSON says which (``data``, ``images_source``). A ``--data`` without images stops; a
model that fails (weights not downloadable) is recorded with its error in ``failed`` and the
others still run (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    RESULTS,
    Parts,
    add_data_arg,
    dataset_jpegs,
    load_average,
    machine,
    one_line_errors,
    paired_ratios,
    photo_jpegs,
    write_json,
)

from vsent.data.images import load_resized
from vsent.data.transforms import center_crop, normalize, ten_crop
from vsent.models import create_model
from vsent.predict import Predictor
from vsent.provenance import versions
from vsent.train import TrainConfig, fit


def _forward_rate(model, pre, batch: torch.Tensor, oversample: bool, bs: int, n: int) -> float:
    """Images/s of the forward pass alone on prepared tensors (crops made beforehand)."""
    crops = ten_crop(batch, pre.crop).flatten(0, 1) if oversample else center_crop(batch, pre.crop)
    x = normalize(crops, pre)
    per_image = 10 if oversample else 1
    with torch.no_grad():
        model(x[: bs * per_image])  # warm-up
        t0 = time.perf_counter()
        done = 0
        while done < n:
            model(x[: bs * per_image])
            done += bs
    return done / (time.perf_counter() - t0)


def bench_inference(name: str, paths: list[Path], bs: int, repeats: int) -> dict:
    """Best of ``repeats`` interleaved measurements of pure forward and end to end."""
    model = create_model(name).eval()
    pre = model.info.preprocess
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 255, (bs, pre.resize, pre.resize, 3), dtype=np.uint8))
    # decode + resize alone, one thread: with 2 cores shared by decoding and the forward pass,
    # end to end cannot beat 1 / (1 / forward + decode_core_s / cores), whatever the overlap
    t0 = time.perf_counter()
    for p in paths[:64]:
        load_resized(p, pre.resize)
    decode_core_s = (time.perf_counter() - t0) / min(64, len(paths))
    cores = torch.get_num_threads()
    out = {"decode_resize_ms_per_image_one_core": 1e3 * decode_core_s}
    for oversample in (False, True):
        n = len(paths) if not oversample else max(bs, len(paths) // 4)
        predictor = Predictor(model, oversample=oversample, batch_size=bs, device="cpu")
        list(predictor.score(paths[:bs]))  # warm-up
        forward, end_to_end = [], []
        for _ in range(repeats):
            forward.append(_forward_rate(model, pre, batch, oversample, bs, n))
            t0 = time.perf_counter()
            rows = list(predictor.score(paths[:n]))
            end_to_end.append(len(rows) / (time.perf_counter() - t0))
        key = "ten_crop" if oversample else "center"
        f, e = max(forward), max(end_to_end)
        bound = 1 / (1 + f * decode_core_s / cores)
        paired = paired_ratios(end_to_end, forward, what=f"{name} {key} end to end/forward",
                               at_most_one=True)
        out[key] = {"images": n, "batch_size": bs, "repeats": repeats, "forward_img_s": f,
                    "end_to_end_img_s": e, "ratio": e / f, "target_ratio": 0.8,
                    "ratio_per_repeat": paired["per_repeat"], "ratio_median": paired["median"],
                    "ratio_impossible": paired["impossible"],
                    "ratio_bound_from_decode_cost": bound,
                    "forward_img_s_all": forward, "end_to_end_img_s_all": end_to_end}
        print(f"{name} {key}: forward {f:.1f} img/s, end to end {e:.1f} img/s, "
              f"ratio {e / f:.2f}, median per repeat {paired['median']:.2f} (bound "
              f"{bound:.2f} from decoding cost)", file=sys.stderr)
    return out


def bench_training(name: str, n: int, bs: int) -> dict:
    model = create_model(name)
    size = model.info.preprocess.resize
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        # a memory-mapped cache, as in real runs
        mm = np.lib.format.open_memmap(Path(tmp) / "c.npy", "w+", np.uint8, images.shape)
        mm[:] = images
        labels = rng.integers(0, 2, n)
        hist = fit(model, mm, labels, TrainConfig(epochs=1, batch_size=bs, device="cpu"),
                   progress=False)
    h = hist[0]
    print(f"{name} training: {h['images_per_s']:.1f} img/s, data wait "
          f"{100 * h['data_wait_share']:.2f}%", file=sys.stderr)
    return {"images": n, "batch_size": bs, "images_per_s": h["images_per_s"],
            "data_wait_share": h["data_wait_share"], "target_data_wait_share": 0.05}


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["smallcnn", "caffenet"])
    ap.add_argument("--n", type=int, default=256, help="images for inference")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (best kept)")
    ap.add_argument("--batch-size", type=int, default=32)
    add_data_arg(ap)
    ap.add_argument("--out", type=Path, default=RESULTS / "core.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths, source = dataset_jpegs(args.data, args.n)
        paths = paths or photo_jpegs(args.n, Path(tmp))
        recorded = versions()
        result = {**source,
                  "machine": machine(recorded, torch_threads=torch.get_num_threads(),
                                     loadavg_before=load_average()),
                  "versions": recorded, "models": {}}
        parts = Parts()
        for name in args.models:
            result["models"][name] = {
                "inference": parts.run(f"{name} inference", bench_inference, name, paths,
                                       args.batch_size, args.repeats),
                "training": parts.run(f"{name} training", bench_training, name,
                                      4 * args.batch_size, args.batch_size),
            }
        result["machine"]["loadavg_after"] = load_average()
        result["failed"] = parts.failed
    write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)
    return parts.exit_status("bench_core.py", args.out)


if __name__ == "__main__":
    sys.exit(main())
