"""Training cost of the recipes of issue 10: images/s, minutes per fold, share of time on data.

For each recipe (``--recipes``; the quick preset and the options added to it), trains the
recipe's model from random weights on fold 1's training images of Twitter I (five-agree,
Campos folds; with ``--extra-train three`` the 376 weakly labelled images too) for
``--epochs`` epochs, in ``--rounds`` rounds that go through every recipe in turn in this
process (these machines have slow spells: interleaving spreads one over all recipes), and
records from :func:`vsent.train.fit`'s history of the epochs after each run's first:

* ``images_per_s``: training images per second (median; ``images_per_s_range``: min, max);
* ``data_wait_share``: share of step time spent preparing batches (cache read, augmentation,
  normalisation);
* ``minutes_per_fold``: median seconds per epoch x the recipe's full epochs / 60 (training
  only; the evaluation of a fold takes seconds);
* ``minutes_5_folds``: five of those.

Then (``--fusions``) the cost of each late fusion that issue 10 measured, as
:func:`vsent.analyses.fusion_run.fuse_run` on a finished run (``--fusion-run``, the committed
quick run; checked before any training): hand-crafted features of that run's images (the data
its config names, recorded as ``fusion_data``: not ``--data``) from a cold feature cache (a
new temporary folder for each), then the 5 folds' classifiers; ``fusion_minutes`` is its wall
time.
``bench/plot_accuracy_cost.py`` turns these into the accuracy-against-cost plot of the README.

Usage: ``uv run --all-extras python bench/bench_train.py [--recipes NAME ...] [--epochs 2]
[--rounds 3] [--fusions gch+bow gch+fv cues gch+bow+cues] [--fusion-run results/quick]
[--threads N] [--data ../shared/datasets/twitter1] [--out bench/results/train.json]``
(``--recipes``: every recipe of ``RECIPES`` by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import (
    RESULTS,
    RUN_RESULTS,
    add_data_arg,
    data_folder,
    data_record,
    one_line_errors,
    shown,
    write_report,
)

from vsent.analyses.fusion_run import fuse_run
from vsent.data import image_cache, load_dataset, make_folds
from vsent.data.extra import extra_train_set, with_extra
from vsent.models import create_model
from vsent.presets import CROSSVAL
from vsent.train import fit

_R3 = {"epochs": 60, "augment": "trivial", "label_smoothing": 0.1, "ema": 0.999}
_R3_OPTIONS = "--epochs 60 --augment trivial --label-smoothing 0.1 --ema 0.999"
#: name -> (TrainConfig changes to the quick preset, --extra-train, (model, model kwargs) or
#: None for the preset's); the command it stands for (``--preset strong`` trains as quick).
RECIPES = {
    "quick": ({}, None, None, "vsent crossval --preset quick (and --preset strong)"),
    "trivial": ({"augment": "trivial"}, None, None, "... --augment trivial"),
    "ema": ({"ema": 0.999}, None, None, "... --ema 0.999"),
    "r3": (_R3, None, None, f"... {_R3_OPTIONS}"),
    "extra-three": ({}, "three", None, "... --extra-train three"),
    "r5": (_R3, None, ("resnet18", {"image_size": 64}),
           f"... --model resnet18 --init random --model-arg image_size=64 {_R3_OPTIONS}"),
    "w1": ({}, None, ("smallcnn", {"widths": [64, 128, 256, 512]}),
           "... --model-arg 'widths=[64,128,256,512]'"),
    "m1": ({**_R3, "mix": "mixup|cutmix"}, None, None, f"... {_R3_OPTIONS} --mix 'mixup|cutmix'"),
    "r4": (_R3, None, ("smallcnn", {"image_size": 96}),
           f"... --model-arg image_size=96 {_R3_OPTIONS}"),
    "r6": (_R3, None, ("resnet18", {"image_size": 96}),
           f"... --model resnet18 --init random --model-arg image_size=96 {_R3_OPTIONS}"),
}
#: The late fusions of issue 10 (``vsent fuse RUN --features ...``).
FUSIONS = ("gch+bow", "gch+fv", "cues", "gch+bow+cues")


def _setup(name: str, preset: dict[str, Any], base: Any, fold: Any, data: str) -> tuple:
    """(model name, model kwargs, full TrainConfig, training images, labels) of a recipe: its
    images warped to the model's size, fold 1's training rows (and the extra ones)."""
    changes, extra, arch, _ = RECIPES[name]
    model_name, kwargs = arch or (preset["model"], {})
    size = create_model(model_name, **kwargs).info.preprocess.resize
    full = preset["train"].replace(device="cpu", **changes)
    if extra:
        joint = with_extra(base, extra_train_set(data, "five", extra))
        images = image_cache(joint.dataset, size, progress=False)
        labels, train = joint.dataset.labels, joint.fold_train(fold)
    else:
        images, labels = image_cache(base, size, progress=False), base.labels
        train = np.sort(fold.train)
    return model_name, kwargs, full, np.ascontiguousarray(images[train]), \
        np.asarray(labels)[train]


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--epochs", type=int, default=2, help="epochs per recipe and round, at "
                    "least 2 (the first warms up and is not measured)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the recipes; each "
                    "recipe's images/s is the median of its measured epochs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    add_data_arg(ap)
    ap.add_argument("--fusions", nargs="*", default=list(FUSIONS), choices=list(FUSIONS))
    ap.add_argument("--fusion-run", type=Path, default=RUN_RESULTS / "quick",
                    help="finished crossval run the fusions are timed on")
    ap.add_argument("--out", type=Path, default=RESULTS / "train.json")
    args = ap.parse_args(argv)
    if args.epochs < 2:  # the rates would be those of the warm-up epoch alone
        ap.error(f"--epochs {args.epochs}: give at least 2 (the first epoch warms up and is "
                 "not measured)")
    if args.threads:
        torch.set_num_threads(args.threads)

    fusion_data = None
    if args.fusions:  # a wrong run stops here, not after the training's minutes
        from vsent.analyses.compare import check_finished_run
        from vsent.crossval_run import check_run_data
        from vsent.runs import CONFIG, read_config

        fusion_run = check_finished_run(args.fusion_run, "crossval run (--fusion-run)",
                                        (CONFIG, "predictions.csv"))
        fusion_config = read_config(fusion_run)
        check_run_data(fusion_run, fusion_config)  # (its data on another machine: review42 F3)
        fusion_data = fusion_config["data"]
    preset = CROSSVAL["quick"]
    data = data_folder(args.data)
    base = load_dataset(data, "five")
    fold = make_folds(base, "campos")[0]
    setups = {name: _setup(name, preset, base, fold, data) for name in args.recipes}
    # rounds interleave the recipes, so that a slow spell of the machine hits them all
    measured: dict[str, list[dict]] = {name: [] for name in args.recipes}
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for name, (model_name, kwargs, full, x, y) in setups.items():
            torch.manual_seed(0)
            model = create_model(model_name, **kwargs)
            history = fit(model, x, y, full.replace(epochs=args.epochs), progress=False)
            measured[name] += history[1:]  # the first epoch warms up
    results = []
    for name, (model_name, _, full, x, _) in setups.items():
        steady = measured[name]
        ips = [h["images_per_s"] for h in steady]
        epoch_s = float(np.median([h["seconds"] for h in steady]))
        r = {
            "recipe": name, "command": RECIPES[name][3], "model": model_name,
            "image_cache_px": x.shape[1],
            "train_images": len(x), "epochs_full": full.epochs,
            "epochs_measured": f"{args.rounds} rounds x {args.epochs}",
            "images_per_s": round(float(np.median(ips)), 1),
            "images_per_s_range": [round(min(ips), 1), round(max(ips), 1)],
            "data_wait_share": round(float(np.median([h["data_wait_share"] for h in steady])), 4),
            "seconds_per_epoch": round(epoch_s, 2),
            "minutes_per_fold": round(epoch_s * full.epochs / 60, 2),
            "minutes_5_folds": round(5 * epoch_s * full.epochs / 60, 1),
        }
        print(json.dumps(r), file=sys.stderr)
        results.append(r)
    train_seconds = time.perf_counter() - t0

    fusions = []
    for features in args.fusions:
        with tempfile.TemporaryDirectory() as cache:  # cold: features computed, not read
            t0 = time.perf_counter()
            res = fuse_run(args.fusion_run, features, cache_dir=cache)
            seconds = time.perf_counter() - t0
        r = {"features": features, "command": f"vsent fuse RUN --features {features}",
             "images": len(res["rows"]), "fusion_minutes": round(seconds / 60, 2),
             "seconds_measured": round(seconds, 1)}
        print(json.dumps(r), file=sys.stderr)
        fusions.append(r)

    report = {
        "benchmark": "train",
        "what": "vsent.train.fit on fold 1 of Twitter I five-agree (Campos folds), each "
                "recipe's model from random weights; then the late fusions' cost on a "
                "finished 5-fold run",
        **data_record(data),
        "torch_threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 1),
        "results": results,
        "fusions": fusions,
        "fusion_run": shown(args.fusion_run),
        "fusion_data": None if fusion_data is None else shown(fusion_data),
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
