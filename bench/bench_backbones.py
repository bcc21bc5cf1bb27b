"""Benchmark: prediction throughput of one checkpoint with torch and with onnxruntime.

For each model: build it (random weights: throughput does not depend on their values), save a
checkpoint, export it to ONNX, then score the same JPEG files with ``Predictor`` (torch) and
``OnnxPredictor`` (onnxruntime): end to end (decode + crop + normalise + forward) images/s,
best of ``--repeats``, interleaved so both engines see the same machine load. It also checks
that both engines give the same rows (probabilities to 1e-4).

Usage: ``uv run --all-extras python bench/bench_backbones.py [--models timm/resnet18
clip/ViT-B-32] [--n 64] [--batch-size 32] [--repeats 3] [--device cpu]
[--out bench/results/backbones.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vsent.export import OnnxPredictor, export_model
from vsent.models import clip_models, create_model, timm_models  # noqa: F401  (families)
from vsent.models.checkpoint import save_checkpoint
from vsent.predict import Predictor
from vsent.runs import versions

DEFAULT_MODELS = ("smallcnn", "timm/resnet18", "timm/convnext_tiny", "timm/vit_small_patch16_224",
                  "clip/ViT-B-32")


def _images(n: int, tmp: Path) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths


def _rate(predictor, paths) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    rows = list(predictor.score(paths))
    return len(paths) / (time.perf_counter() - start), rows


def bench_model(name: str, paths: list[Path], tmp: Path, *, batch_size: int, repeats: int,
                device: str) -> dict:
    torch.manual_seed(0)
    model = create_model(name)
    ckpt = save_checkpoint(tmp / f"{name.replace('/', '_')}.pt", model)
    t0 = time.perf_counter()
    onnx_path = export_model(ckpt, tmp / f"{name.replace('/', '_')}.onnx")["out"]
    export_s = time.perf_counter() - t0
    engines = {
        "torch": Predictor.from_checkpoint(ckpt, batch_size=batch_size, device=device),
        "onnxruntime": OnnxPredictor.from_file(onnx_path, batch_size=batch_size, device=device),
    }
    best = dict.fromkeys(engines, 0.0)
    rows = {}
    for _ in range(repeats):
        for key, pred in engines.items():
            rate, rows[key] = _rate(pred, paths)
            best[key] = max(best[key], rate)
    diff = max(abs(a["prob_positive"] - b["prob_positive"])
               for a, b in zip(rows["torch"], rows["onnxruntime"], strict=True))
    pre = model.info.preprocess
    return {"model": name, "input": f"{pre.resize}->{pre.crop}", "export_s": round(export_s, 2),
            "torch_img_s": round(best["torch"], 1),
            "onnxruntime_img_s": round(best["onnxruntime"], 1),
            "ratio_onnx_torch": round(best["onnxruntime"] / best["torch"], 2),
            "max_prob_diff": diff}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", default="bench/results/backbones.json")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = _images(args.n, Path(tmp))
        for name in args.models:
            res = bench_model(name, paths, Path(tmp), batch_size=args.batch_size,
                              repeats=args.repeats, device=args.device)
            print(json.dumps(res), file=sys.stderr)
            results.append(res)
    doc = {"benchmark": "backbones", "n_images": args.n, "batch_size": args.batch_size,
           "device": args.device, "cpu": platform.processor() or platform.machine(),
           "versions": versions(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
