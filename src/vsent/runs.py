"""Run directories: a command writes its config, versions, seed, logs and results in one place."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from vsent.errors import VsentError

_PACKAGES = (
    "vsent", "torch", "torchvision", "numpy", "pillow", "scikit-learn",
    "opencv-contrib-python-headless", "matplotlib",
)


def versions() -> dict[str, Any]:
    """Versions of Python, the packages vsent uses, the git commit and the machine."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=False,
        )
        info["git_commit"] = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, paths and numpy values to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    return obj


class RunDir:
    """A directory holding one run's config, versions, log and results.

    Creating a RunDir makes the directory, writes ``versions.json`` and starts logging to
    ``run.log`` (the ``vsent`` logger). Call :meth:`close` (or use it as a context manager)
    to stop logging to the file.
    """

    def __init__(self, path: str | Path, *, config: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VsentError(f"cannot create run directory {self.path}: {e.strerror}") from None
        self.write_json("versions.json", versions())
        if config is not None:
            self.write_json("config.json", config)
        self._handler = logging.FileHandler(self.path / "run.log")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("vsent").addHandler(self._handler)
        logging.getLogger("vsent").setLevel(logging.INFO)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        logging.getLogger("vsent").removeHandler(self._handler)
        self._handler.close()

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON atomically (a crash never leaves half a file)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(to_jsonable(obj), indent=2) + "\n")
        tmp.replace(path)
        return path

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def write_csv(
        self, name: str, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]
    ) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(to_jsonable(dict(row)))
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


class Timer:
    """Wall-clock seconds since creation: ``Timer().elapsed``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def stored_config(out: Path, resume: bool, from_dict: Any) -> Any:
    """The config of the run already in ``out`` (to resume it), or None for a new run.

    ``from_dict`` rebuilds it from ``out/config.json``; a run there without ``resume`` is a user
    error, so an earlier run is never overwritten by accident.
    """
    if not (out / "config.json").exists():
        return None
    if not resume:
        raise VsentError(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    logging.getLogger("vsent").info("resuming %s with its stored config", out)
    return from_dict(json.loads((out / "config.json").read_text()))
