"""Data layer: safe image decoding, datasets, folds, the image cache and batched transforms.

The names below are loaded on first use (PEP 562), so ``import vsent.data.images`` does not
pay for importing torch and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MAX_PIXELS": "images", "load_resized": "images", "load_rgb": "images",
    "resize_rgb": "images",
    "CLASS_NAMES": "datasets", "Dataset": "datasets", "describe": "datasets",
    "load_dataset": "datasets",
    "Fold": "folds", "make_folds": "folds", "save_folds": "folds",
    "cache_images": "cache", "image_cache": "cache",
    "CAFFE_PREPROCESS": "transforms", "IMAGENET_PREPROCESS": "transforms",
    "Preprocess": "transforms", "center_crop": "transforms", "normalize": "transforms",
    "random_crop_flip": "transforms", "ten_crop": "transforms",
}

__all__ = [
    "CAFFE_PREPROCESS", "CLASS_NAMES", "IMAGENET_PREPROCESS", "MAX_PIXELS", "Dataset", "Fold",
    "Preprocess", "cache_images", "center_crop", "describe", "image_cache", "load_dataset",
    "load_resized", "load_rgb", "make_folds", "normalize", "random_crop_flip", "resize_rgb",
    "save_folds", "ten_crop",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"vsent.data.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vsent.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the real imports
    from vsent.data.cache import cache_images, image_cache
    from vsent.data.datasets import CLASS_NAMES, Dataset, describe, load_dataset
    from vsent.data.folds import Fold, make_folds, save_folds
    from vsent.data.images import MAX_PIXELS, load_resized, load_rgb, resize_rgb
    from vsent.data.transforms import (
        CAFFE_PREPROCESS,
        IMAGENET_PREPROCESS,
        Preprocess,
        center_crop,
        normalize,
        random_crop_flip,
        ten_crop,
    )
