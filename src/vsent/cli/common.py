"""Options shared by several sub-commands, so every command spells them the same way."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: Where the Twitter I dataset is looked for when --data is not given.
DEFAULT_DATA_ENV = "VSENT_DATA"


def default_data() -> str:
    """``$VSENT_DATA``, else ``../shared/datasets/twitter1`` relative to the current directory."""
    return os.environ.get(DEFAULT_DATA_ENV, str(Path("..") / "shared" / "datasets" / "twitter1"))


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--data, --subset, --folds, --skip-bad."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default_data(),
                   help="Twitter I folder, a folder with positive/ and negative/, or a CSV "
                        "(path,label); default $VSENT_DATA or ../shared/datasets/twitter1")
    g.add_argument("--subset", choices=("five", "four", "three"), default="five",
                   help="agreement subset of Twitter I (default five)")
    g.add_argument("--folds", default="campos",
                   help="campos (the paper's split files), stratified (seeded 5-fold), or a "
                        "folds.json written by an earlier run (default campos)")
    g.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and bad label lines (reported) instead of stopping")


def add_run_args(p: argparse.ArgumentParser, default_out: str) -> None:
    """--out, --seed, --device."""
    g = p.add_argument_group("run")
    g.add_argument("--out", default=default_out, help=f"run directory (default {default_out})")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto picks cuda when available (default auto)")


#: TrainConfig fields settable from the command line (default: the preset's value).
TRAIN_OPTIONS = {
    "epochs": int, "batch_size": int, "lr": float, "momentum": float, "weight_decay": float,
    "optimizer": str, "schedule": str, "lr_step": int, "lr_gamma": float, "head_lr_mult": float,
    "bias_lr_mult": float, "label_smoothing": float,
}


def add_train_args(g: argparse._ArgumentGroup) -> None:
    """--epochs, --batch-size, --lr, ... (every :data:`TRAIN_OPTIONS` field, default None)."""
    for name, typ in TRAIN_OPTIONS.items():
        g.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None)


def train_overrides(args: argparse.Namespace) -> dict:
    """The :data:`TRAIN_OPTIONS` the user gave, as TrainConfig field -> value."""
    return {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
