"""Benchmark of the layer analysis (Campos et al. Table 2): the full table from cached features.

Measures, each in a fresh child process so its peak memory (``ru_maxrss``) is its own:

* ``table``: 13 CaffeNet layers x 2 classifiers x 5 folds from cached float32 feature files:
  per (fold, layer) the Gram matrix (column blocks of the memory-mapped file), the kernel
  embedding and both classifiers with C chosen by 5-fold inner CV over 7 values -- the work
  ``vsent layers`` does after extraction. The features are synthetic (ReLU-like activations
  whose class means differ, 66 % positive) with CaffeNet's real per-layer sizes (conv1 290,400
  ... fc8 2: 893,986 float32 values, 3,575,944 bytes = 3.6 MB per image, the JSON's
  ``bytes_per_image``) for ``--n`` images (default 880 = five-agree Twitter I); every fold
  recomputes its Gram matrices, as every fold has its own fine-tuned model in a real run.
* ``extract``: forward pass + hooks + memory-mapped writes of all 13 layers for ``--extract``
  images with a randomly initialised CaffeNet (images/s; time for 5 x 880 images follows).

Usage: ``uv run python bench/bench_layers.py [--n 880] [--folds 5] [--scale 1.0]
[--extract 64] [--work DIR] [--out bench/results/layers.json]``. ``--scale 0.1`` shrinks every
layer for a quick check. The feature files (3 GB at full size) are written under ``--work``
(default: a temporary folder, removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import GENERATED, RESULTS, data_record, one_line_errors, write_json

#: CaffeNet's probe layers and values per image (227x227 input).
CAFFENET_DIMS = {
    "conv1": 96 * 55 * 55, "pool1": 96 * 27 * 27, "norm1": 96 * 27 * 27,
    "conv2": 256 * 27 * 27, "pool2": 256 * 13 * 13, "norm2": 256 * 13 * 13,
    "conv3": 384 * 13 * 13, "conv4": 384 * 13 * 13, "conv5": 256 * 13 * 13,
    "pool5": 256 * 6 * 6, "fc6": 4096, "fc7": 4096, "fc8": 2,
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def write_features(work: Path, n: int, scale: float, seed: int = 0) -> dict:
    """Synthetic features for every layer, written block by block (bounded memory)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.66).astype(np.int64)
    np.save(work / "labels.npy", y)
    dims = {k: max(2, int(d * scale)) for k, d in CAFFENET_DIMS.items()}
    t0 = time.perf_counter()
    for name, d in dims.items():
        # class means differ by +-0.1 per feature: separable once a layer is wide (the probes'
        # accuracy here says nothing; their time is what is measured)
        shift = rng.choice([-0.1, 0.1], d).astype(np.float32)
        out = np.lib.format.open_memmap(work / f"{name}.npy", "w+", np.float32, (n, d))
        step = max(1, (64 << 20) // (4 * d))
        for s in range(0, n, step):
            e = min(n, s + step)
            block = rng.standard_normal((e - s, d), dtype=np.float32)
            block += np.outer(2 * y[s:e] - 1, shift).astype(np.float32)
            out[s:e] = np.maximum(block, 0)
        out.flush()
        del out
    return {"dims": dims, "seconds": time.perf_counter() - t0,
            "gigabytes": n * sum(dims.values()) * 4 / 1e9}


def time_table(work: Path, n_folds: int, inner_splits: int) -> dict:
    """The probe stage of `vsent layers` on cached features (child process)."""
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from vsent.analyses.probes import ProbeConfig, gram_embedding, gram_matrix, linear_probe

    y = np.load(work / "labels.npy")
    probe = ProbeConfig(inner_splits=inner_splits)
    splits = list(StratifiedKFold(n_folds, shuffle=True, random_state=0).split(y, y))
    per_layer: dict[str, dict[str, float]] = {}
    accs: dict[str, list[float]] = {}
    t_all = time.perf_counter()
    for fold, (train, test) in enumerate(splits, 1):
        for name in CAFFENET_DIMS:
            t0 = time.perf_counter()
            K = gram_matrix(work / f"{name}.npy")
            t1 = time.perf_counter()
            with threadpool_limits(1, user_api="blas"):
                emb = gram_embedding(K, train, test)
            for clf in probe.classifiers:
                r = linear_probe(K, y, train, test, clf, probe, embedding=emb)
                accs.setdefault(f"{name}/{clf}", []).append(r["accuracy"])
            t2 = time.perf_counter()
            rec = per_layer.setdefault(name, {"gram": 0.0, "classifiers": 0.0})
            rec["gram"] += t1 - t0
            rec["classifiers"] += t2 - t1
        print(f"fold {fold} done at {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    total = time.perf_counter() - t_all
    return {
        "seconds": total,
        "gram_seconds": sum(r["gram"] for r in per_layer.values()),
        "classifier_seconds": sum(r["classifiers"] for r in per_layer.values()),
        "per_layer_seconds": per_layer,
        "fits": len(splits) * len(CAFFENET_DIMS) * len(probe.classifiers),
        "mean_accuracy": {k: float(np.mean(v)) for k, v in accs.items()},
        "peak_rss_mb": _peak_rss_mb(),
        "load_average_at_end": os.getloadavg(),  # the machine is shared: context for the times
    }


def time_extract(n_images: int, work: Path) -> dict:
    """extract_layer_features with a random CaffeNet on random 256x256 images (child process)."""
    import torch

    from vsent.analyses.probes import extract_layer_features
    from vsent.models import create_model

    model = create_model("caffenet").eval()
    images = np.random.default_rng(0).integers(0, 256, (n_images, 256, 256, 3), dtype=np.uint8)
    extract_layer_features(model, images[:4], work / "warmup", batch_size=4)
    t0 = time.perf_counter()
    info = extract_layer_features(model, images, work / "extract", batch_size=32)
    seconds = time.perf_counter() - t0
    return {"images": n_images, "seconds": seconds, "images_per_s": n_images / seconds,
            "bytes_per_image": 4 * sum(i["dim"] for i in info.values()),
            "torch_threads": torch.get_num_threads(), "peak_rss_mb": _peak_rss_mb(),
            "load_average_at_end": os.getloadavg()}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE,
                         text=True)
    return json.loads(out.stdout)


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=880, help="images per fold (default 880)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--inner-splits", type=int, default=5)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of each layer's size")
    p.add_argument("--extract", type=int, default=64, help="images for the extraction timing "
                                                           "(0: skip)")
    p.add_argument("--work", type=Path, help="folder for the feature files (default: temp)")
    p.add_argument("--out", type=Path, default=RESULTS / "layers.json")
    p.add_argument("--child", choices=("table", "extract"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child == "table":
        print(json.dumps(time_table(args.work, args.folds, args.inner_splits)))
        return 0
    if args.child == "extract":
        print(json.dumps(time_extract(args.extract, args.work)))
        return 0

    from vsent.provenance import versions

    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        features = write_features(work, args.n, args.scale)
        print(f"features: {features['gigabytes']:.2f} GB in {features['seconds']:.0f} s",
              file=sys.stderr)
        table = _child(["--child", "table", "--work", str(work), "--folds", str(args.folds),
                        "--inner-splits", str(args.inner_splits)])
        for f in work.glob("*.npy"):
            f.unlink()
        extract = (_child(["--child", "extract", "--work", str(work), "--extract",
                           str(args.extract)]) if args.extract else None)
    result = {
        "benchmark": "layers",
        **data_record(None, GENERATED),  # synthetic features, random images for the extraction
        "setting": {"n_images": args.n, "folds": args.folds, "layers": len(CAFFENET_DIMS),
                    "classifiers": 2, "inner_splits": args.inner_splits, "Cs": 7,
                    "scale": args.scale},
        "features": features,
        "table": table,
        "extract": extract,
        "extract_5x880_seconds_estimate": (5 * 880 / extract["images_per_s"]) if extract
        else None,
        "versions": versions(),
    }
    write_json(args.out, result)
    print(f"table: {table['seconds']:.0f} s (gram {table['gram_seconds']:.0f} s, classifiers "
          f"{table['classifier_seconds']:.0f} s), peak {table['peak_rss_mb']:.0f} MB; "
          f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
