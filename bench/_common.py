"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py``: this folder is on
``sys.path``)."""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vsent.cli.common import DEFAULT_DATA_ENV, default_data
from vsent.errors import EXIT_USER_ERROR, VsentError

# Where the benchmarks write their JSON by default: this folder's results/, wherever they are run
# from (`make bench` runs them from the repository root; `plot_accuracy_cost.py` reads them here).
RESULTS = Path(__file__).resolve().parent / "results"
# The repository's committed run results (results/ at its root), read by the accuracy plot.
REPO = Path(__file__).resolve().parent.parent
RUN_RESULTS = REPO / "results"


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as a report records it: relative to the repository root when inside it (the
    committed JSON names no one's home folder), else as given."""
    p = Path(path)
    try:
        return p.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


#: ``images_source`` of a report: the data set's own images, or images the script made.
DATASET, GENERATED = "dataset", "generated"


def add_data_arg(ap: Any) -> None:
    """``--data``: the Twitter I folder, default ``$VSENT_DATA`` or ``../shared/datasets/twitter1``
    (:func:`vsent.cli.common.default_data`, as the ``vsent`` commands; ``make bench DATA=...``
    sets ``$VSENT_DATA``)."""
    ap.add_argument("--data", default=None,
                    help=f"Twitter I folder (default ${DEFAULT_DATA_ENV} or "
                         "../shared/datasets/twitter1)")


def data_folder(data: str | os.PathLike[str] | None) -> str:
    """``--data`` as given, or the default (:func:`vsent.cli.common.default_data`)."""
    return str(default_data() if data is None else data)


def data_record(data: str | os.PathLike[str] | None, source: str = DATASET) -> dict[str, Any]:
    """What a report records of its input: ``data`` (the folder, or None) and ``images_source``
    (:data:`DATASET` or :data:`GENERATED`)."""
    return {"data": None if data is None else shown(data), "images_source": source}


def dataset_jpegs(data: str | os.PathLike[str] | None, n: int | None, *,
                  required: bool = False) -> tuple[list[Path], dict[str, Any]]:
    """The first ``n`` (None: all) JPEGs of ``<data>/images`` and their :func:`data_record`.

    ``data`` None means the default (:func:`vsent.cli.common.default_data`). A folder the user
    named (``--data``, or ``$VSENT_DATA``) without images is a VsentError: the benchmark must
    not measure other images than those asked for. Only the built-in default may be missing
    (another machine): then ``[]`` and ``images_source`` "generated", unless ``required``.
    """
    named = data is not None or DEFAULT_DATA_ENV in os.environ
    folder = Path(data_folder(data))
    paths = sorted((folder / "images").glob("*.jpg"))[:n]
    if paths:
        return paths, data_record(folder)
    if named or required:
        how = "--data" if data is not None else (f"${DEFAULT_DATA_ENV}" if named else
                                                 "the default data")
        raise VsentError(f"{how} {folder}: no JPEG images in {folder / 'images'}"
                         + ("" if named else f" (give --data or set ${DEFAULT_DATA_ENV})"))
    print(f"warning: no data set at {folder}: benchmarking generated images (recorded as "
          f"images_source \"{GENERATED}\"; give --data or set ${DEFAULT_DATA_ENV} for the real "
          "ones)", file=sys.stderr)
    return [], data_record(None, GENERATED)


def one_line_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """A benchmark's ``main``: a user error (VsentError: bad --data, a missing file) is one
    line ``<script>: error: ...`` and exit status 2, not a traceback."""
    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs) or 0
        except VsentError as e:
            print(f"{Path(main.__code__.co_filename).name}: error: {e}", file=sys.stderr)
            return EXIT_USER_ERROR
    return wrapped


def failure(e: BaseException) -> str:
    """How a report records a part that failed (the script goes on with the next part)."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class Parts:
    """The parts of one benchmark (a model, a stage): one that fails is recorded in the report as
    ``{"error": ...}`` and named in :attr:`failed`, and the script goes on with the next part
    (a model whose weights cannot be downloaded leaves the others' results); its exit status,
    :meth:`exit_status`, says that some failed."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def run(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, or ``{"error": ...}`` if it raised (``label`` noted)."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # recorded in the report and in the exit status
            self.failed.append(label)
            print(f"{label}: failed: {failure(e)}", file=sys.stderr)
            return {"error": failure(e)}

    def exit_status(self, script: str, out: str | os.PathLike[str]) -> int:
        """0, or 1 after one line naming the failed parts (``script``: the file's name)."""
        if not self.failed:
            return 0
        print(f"{script}: failed: {', '.join(self.failed)} (their errors are in {out})",
              file=sys.stderr)
        return 1


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


def write_json(out: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``out`` (its folder made), atomically: an interrupted
    benchmark leaves the committed file whole (``plot_accuracy_cost.py`` reads them). A result
    (a dict) that does not say them itself gets the command that made it and the machine: its
    options are not to be guessed from its numbers, nor its rows compared across machines."""
    from vsent.files import atomic_write_text

    if isinstance(obj, dict):
        obj = {"command": shlex.join(["python", *sys.argv]), **obj} if "command" not in obj \
            else obj
        obj.setdefault("machine", machine())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(obj, indent=2) + "\n")
    return out


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``out`` with the machine and the versions (git commit)."""
    from vsent.provenance import versions

    recorded = versions()
    report = {**report, "machine": machine(recorded), "versions": recorded}
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


def machine(recorded: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """Where a benchmark ran: cores, platform, Python, CPU model and the load now
    (``recorded``: :func:`vsent.provenance.versions` when the caller has it already), with
    ``more`` (a script's own: torch threads, the load before and after its runs)."""
    from vsent.provenance import versions

    v = recorded if recorded is not None else versions()
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": v.get("cpu"),
            "cpu_capability": v.get("cpu_capability"), "loadavg": load_average(), **more}


def load_average() -> list[float] | None:
    """``os.getloadavg()`` (1, 5, 15 min), None where the system has none: these machines are
    shared, and the load says how far a run's rates are inflated."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def paired_ratios(numerator: list[float], denominator: list[float], *, what: str,
                  at_most_one: bool = False) -> dict[str, Any]:
    """Ratios of two rates measured side by side, repeat by repeat (both under the same
    load, unlike the ratio of two best values, which may come from different repeats), and
    their median. ``at_most_one``: the numerator cannot be faster (end to end vs its pure
    forward); a ratio above 1 means the load changed within a repeat: ``impossible`` is set
    and a warning printed."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    impossible = at_most_one and any(r > 1 for r in ratios)
    if impossible:
        print(f"warning: {what} above 1 in a repeat ({', '.join(f'{r:.2f}' for r in ratios)}): "
              "end to end cannot beat its pure forward, so the machine's load changed within "
              "the run; rerun on a quieter machine or with more images", file=sys.stderr)
    return {"per_repeat": ratios, "median": float(np.median(ratios)), "impossible": impossible}
