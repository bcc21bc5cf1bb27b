"""Training cost of the recipes of issue 10: images/s, minutes per fold, share of time on data.

For each recipe (``--recipes``; the quick preset and the options added to it), trains the
recipe's model from random weights on fold 1's training images of Twitter I (five-agree,
Campos folds; with ``--extra-train three`` the 376 weakly labelled images too) for
``--epochs`` epochs, one recipe after the other in this process (ratios side by side, as these
machines are noisy), and records from :func:`vsent.train.fit`'s history:

* ``images_per_s``: training images per second (mean over the epochs after the first);
* ``data_wait_share``: share of step time spent preparing batches (cache read, augmentation,
  normalisation);
* ``minutes_per_fold``: seconds per epoch x the recipe's full epochs / 60 (training only; the
  evaluation of a fold takes seconds);
* ``minutes_5_folds``: five of those.

Usage: ``uv run --all-extras python bench/bench_train.py [--recipes quick trivial ema r3 r5]
[--epochs 3] [--threads N] [--data ../shared/datasets/twitter1] [--out bench/results/train.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import write_report

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
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--epochs", type=int, default=3, help="epochs measured per recipe")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--data", default=os.environ.get("VSENT_DATA", "../shared/datasets/twitter1"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/train.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = CROSSVAL["quick"]
    base = load_dataset(args.data, "five")
    fold = make_folds(base, "campos")[0]
    results = []
    for name in args.recipes:
        changes, extra, arch, command = RECIPES[name]
        model_name, kwargs = arch or (preset["model"], {})
        torch.manual_seed(0)
        model = create_model(model_name, **kwargs)
        size = model.info.preprocess.resize
        full = preset["train"].replace(device="cpu", **changes)
        if extra:
            joint = with_extra(base, extra_train_set(args.data, "five", extra))
            images = image_cache(joint.dataset, size, progress=False)
            labels = joint.dataset.labels
            train = joint.fold_train(fold)
        else:
            images, labels = image_cache(base, size, progress=False), base.labels
            train = np.sort(fold.train)
        x, y = np.ascontiguousarray(images[train]), np.asarray(labels)[train]
        t0 = time.perf_counter()
        history = fit(model, x, y, full.replace(epochs=args.epochs), progress=False)
        seconds = time.perf_counter() - t0
        steady = history[1:] or history
        epoch_s = float(np.mean([h["seconds"] for h in steady]))
        r = {
            "recipe": name, "command": command, "model": model_name, "image_cache_px": size,
            "train_images": len(train),
            "epochs_full": full.epochs, "epochs_measured": args.epochs,
            "images_per_s": round(float(np.mean([h["images_per_s"] for h in steady])), 1),
            "data_wait_share": round(float(np.mean([h["data_wait_share"] for h in steady])), 4),
            "seconds_per_epoch": round(epoch_s, 2),
            "minutes_per_fold": round(epoch_s * full.epochs / 60, 2),
            "minutes_5_folds": round(5 * epoch_s * full.epochs / 60, 1),
            "seconds_measured": round(seconds, 1),
        }
        print(json.dumps(r), file=sys.stderr)
        results.append(r)

    report = {
        "benchmark": "train",
        "what": "vsent.train.fit on fold 1 of Twitter I five-agree (Campos folds), each "
                "recipe's model from random weights",
        "torch_threads": torch.get_num_threads(),
        "results": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
