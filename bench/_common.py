"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py``: this folder is on
``sys.path``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def photo_jpegs(n: int, folder: Path) -> list[Path]:
    """``n`` seeded random 500x375 JPEGs (quality 90, the size of a Twitter photo) written to
    ``folder`` as ``0.jpg, 1.jpg, ...``: decoding cost without the dataset."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths
