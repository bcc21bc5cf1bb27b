"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py``: this folder is on
``sys.path``)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

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


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``out`` with the machine and the versions (git commit)."""
    from vsent.runs import versions

    report = {**report, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                    "python": platform.python_version()},
              "versions": versions()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
