"""Copy Twitter I with every image warped to 256 x 256 (JPEG q90), small enough to travel.

The device machine (GPU) receives the working tree only, at most 64 MiB with it; the dataset is
62 MB. vsent warps every image to a square before cropping (256 for CaffeNet, 64..110 for
smallcnn), so the copy keeps the geometry the pipeline sees; its pixels differ from the
originals by one more resampling and JPEG re-encoding, which the runs made on it record.

    uv run python bench/device_data.py ../shared/datasets/twitter1 .devdata/twitter1
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from _common import one_line_errors
from PIL import Image

from vsent.data.images import load_resized
from vsent.errors import VsentError

SIZE, QUALITY = 256, 90


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args(argv)
    missing = [sub for sub in ("ground_truth", "folds", "images") if not (args.src / sub).is_dir()]
    if missing:  # before anything is written: no half-made copy
        names = ", ".join(missing[:-1]) + " or " * (len(missing) > 1) + missing[-1]
        raise VsentError(f"{args.src}: not a Twitter I folder (no {names} folder)")
    for sub in ("ground_truth", "folds"):
        shutil.copytree(args.src / sub, args.dst / sub, dirs_exist_ok=True)
    if (args.src / "README.md").is_file():
        shutil.copy2(args.src / "README.md", args.dst / "README.md")
    (args.dst / "images").mkdir(parents=True, exist_ok=True)
    images = sorted((args.src / "images").iterdir())
    for path in images:
        Image.fromarray(load_resized(path, SIZE)).save(
            args.dst / "images" / path.name, quality=QUALITY)
    (args.dst / "SHRUNK.txt").write_text(
        f"images warped to {SIZE}x{SIZE} with vsent's load_resized, JPEG quality {QUALITY}, "
        f"from {args.src.resolve()} by bench/device_data.py\n")
    print(f"{len(images)} images -> {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
