"""Benchmark: prediction throughput of one checkpoint with torch and with onnxruntime, and the
cost of frozen-feature training (``--train head``).

For each model: build it (random weights: throughput does not depend on their values), save a
checkpoint, export it to ONNX, then score the same JPEG files with ``Predictor`` (torch) and
``ExportedPredictor`` (onnxruntime): end to end (decode + crop + normalise + forward) images/s,
best of ``--repeats``, interleaved so both engines see the same machine load. It also checks
that both engines give the same rows (probabilities to 1e-4).

Frozen training (:mod:`vsent.frozen`): images/s of the feature extraction (centre crop and
each of the 10 crops, through :func:`vsent.frozen.cached_features`, cache emptied first), and the
seconds to fit a head on one training fold of Twitter I five-agree (``--fold-n`` = 706 random
features of the model's width): ``linear`` with the campos2015 solver (65 epochs), ``logistic``
with its inner-CV C search. ``frozen_crossval_s`` estimates a 5-fold ``--train head`` run on
``--dataset-n`` images: extraction of both crops once + 5 head fits.

Usage: ``uv run --all-extras python bench/bench_backbones.py [--models NAME ...] [--n 64]
[--batch-size 32] [--repeats 3] [--device cpu] [--out bench/results/backbones.json]``

``--models`` defaults to ``DEFAULT_MODELS`` (smallcnn, timm resnet18, convnext_tiny,
vit_small_patch16_224 and CLIP ViT-B-32). A model that fails (its weights missing, an export
error) is recorded with its ``error`` and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import (
    GENERATED,
    RESULTS,
    Parts,
    data_record,
    load_average,
    one_line_errors,
    paired_ratios,
    photo_jpegs,
    write_json,
)

from vsent.export import ExportedPredictor, export_model
from vsent.models import clip_models, create_model, timm_models  # noqa: F401  (families)
from vsent.models.checkpoint import save_checkpoint
from vsent.predict import Predictor
from vsent.provenance import versions

DEFAULT_MODELS = ("smallcnn", "timm/resnet18", "timm/convnext_tiny", "timm/vit_small_patch16_224",
                  "clip/ViT-B-32")


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
        "onnxruntime": ExportedPredictor.from_file(onnx_path, batch_size=batch_size, device=device),
    }
    for pred in engines.values():  # warm-up: first calls (allocations, threads) go unmeasured
        list(pred.score(paths[:batch_size]))
    rates: dict[str, list[float]] = {key: [] for key in engines}
    rows = {}
    for _ in range(repeats):
        for key, pred in engines.items():
            rate, rows[key] = _rate(pred, paths)
            rates[key].append(rate)
    best = {key: max(v) for key, v in rates.items()}
    paired = paired_ratios(rates["onnxruntime"], rates["torch"], what=f"{name} onnx/torch")
    diff = max(abs(a["prob_positive"] - b["prob_positive"])
               for a, b in zip(rows["torch"], rows["onnxruntime"], strict=True))
    pre = model.info.preprocess
    return {"model": name, "input": f"{pre.resize}->{pre.crop}", "export_s": round(export_s, 2),
            "torch_img_s": round(best["torch"], 1),
            "onnxruntime_img_s": round(best["onnxruntime"], 1),
            "ratio_onnx_torch": round(best["onnxruntime"] / best["torch"], 2),
            # within each repeat, side by side (the ratio above is of two best values)
            "ratio_onnx_torch_per_repeat": [round(r, 2) for r in paired["per_repeat"]],
            "ratio_onnx_torch_median": round(paired["median"], 2),
            "max_prob_diff": diff}


def bench_frozen(model, paths: list[Path], tmp: Path, *, batch_size: int, device: str,
                 fold_n: int, dataset_n: int) -> dict:
    """Feature-extraction images/s and head-fit seconds of ``model`` (see the docstring)."""
    import numpy as np

    from vsent import frozen
    from vsent.config import TrainConfig
    from vsent.data.cache import cache_images

    images = cache_images(paths, model.info.preprocess.resize)
    rates = {}
    for key, oversample in (("features_img_s", False), ("features_10crop_img_s", True)):
        t0 = time.perf_counter()
        frozen.cached_features(model, paths, images, oversample=oversample,
                               batch_size=batch_size, device=device,
                               cache_dir=tmp / f"features-{time.monotonic_ns()}")
        rates[key] = round(len(paths) / (time.perf_counter() - t0), 1)
    rng = np.random.default_rng(0)
    labels = np.arange(fold_n) % 2
    feats = rng.normal(0, 1, (fold_n, model.info.feature_dim)).astype(np.float32)
    feats[:, 0] += labels  # something to learn
    t0 = time.perf_counter()
    frozen.fit_linear_head(model, feats, labels, TrainConfig(device=device))
    linear_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frozen.fit_logistic_head(model, feats, labels)
    logistic_s = time.perf_counter() - t0
    extract_s = dataset_n / rates["features_img_s"] + dataset_n / rates["features_10crop_img_s"]
    return {**rates, "head_fit_s": {"linear": round(linear_s, 2),
                                    "logistic": round(logistic_s, 2)},
            "frozen_crossval_s": {"linear": round(extract_s + 5 * linear_s, 1),
                                  "logistic": round(extract_s + 5 * logistic_s, 1)}}


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", default=RESULTS / "backbones.json")
    ap.add_argument("--fold-n", type=int, default=706,
                    help="training images of one fold for the head-fit timing (706: Twitter I "
                         "five-agree, 4/5 of 882; a Campos fold has 704)")
    ap.add_argument("--dataset-n", type=int, default=882,
                    help="images of the data set for the frozen crossval estimate (882)")
    ap.add_argument("--no-frozen", action="store_true", help="skip the frozen-training part")
    args = ap.parse_args(argv)
    results = []
    parts = Parts()
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        paths = photo_jpegs(args.n, Path(tmp))
        for name in args.models:
            res = parts.run(name, bench_model, name, paths, Path(tmp), batch_size=args.batch_size,
                            repeats=args.repeats, device=args.device)
            if "error" in res:
                res = {"model": name, **res}
            elif not args.no_frozen:
                torch.manual_seed(0)
                res["frozen"] = parts.run(
                    f"{name} (frozen)", lambda name=name: bench_frozen(
                        create_model(name), paths, Path(tmp), batch_size=args.batch_size,
                        device=args.device, fold_n=args.fold_n, dataset_n=args.dataset_n))
            print(json.dumps(res), file=sys.stderr)
            results.append(res)
    doc = {"benchmark": "backbones", **data_record(None, GENERATED), "n_images": args.n,
           "batch_size": args.batch_size,
           "device": args.device, "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "loadavg_before": load_before, "loadavg_after": load_average(),
           "versions": versions(), "results": results, "failed": parts.failed}
    write_json(args.out, doc)
    print(f"wrote {args.out}", file=sys.stderr)
    return parts.exit_status("bench_backbones.py", args.out)


if __name__ == "__main__":
    sys.exit(main())
