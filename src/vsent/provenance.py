"""What a run was made from, recorded beside its results, and the refusal when it changed.

* :func:`versions` -- the code and the machine (``versions.json`` of every run, the scoring
  record of ``vsent predict``, checkpoints, cards, benchmarks): Python, the packages, vsent's
  git commit, the CPU kind, the number of training processes.
* the records a crossval or finetune run compares when it resumes, and analyses when they read
  it: the data (:data:`DATA_RECORD`: its fingerprint and a digest an image, which name the
  images changed since), the ``--init`` weights (:data:`INIT_RECORD`: their SHA-256) and the
  ``--extra-train`` images (:data:`EXTRA_RECORD`); :func:`read_record` reads one,
  :func:`check_data_record` and :func:`check_init_record` refuse a change in one line.

The run directory that holds them is :mod:`vsent.runs`'s.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsent.errors import VsentError, one_line

if TYPE_CHECKING:
    from vsent.data.datasets import Dataset

_PACKAGES = (
    "vsent", "torch", "torchvision", "numpy", "pillow", "scikit-learn",
    "opencv-contrib-python-headless", "matplotlib",
    # the libraries of --model timm/... and clip/... (architectures, pretrained weights) and
    # of the weights files they read: None when not installed
    "timm", "open_clip_torch", "safetensors",
)

#: Keys of :func:`versions` whose change is no change of what a run computes (the thread count,
#: the kernel's build): a resumed run or output does not warn about them.
UNCOMPARED_VERSIONS = ("torch_threads", "platform")

#: The data a crossval or finetune run started with
#: (:meth:`vsent.data.datasets.Dataset.fingerprint`).
DATA_RECORD = "data.json"
#: :data:`DATA_RECORD`'s key for one short digest per image (:func:`item_digests`): names the
#: images that changed. Runs made before it lack it.
ITEM_DIGESTS = "item_digests"
#: The keys of a fingerprint (:meth:`vsent.data.datasets.Dataset.fingerprint`), which every
#: record of the data holds (:data:`DATA_RECORD`, ``extra.json``'s fingerprint).
FINGERPRINT_KEYS = ("n_images", "n_positive", "sha256")
#: The ``--extra-train`` images a crossval run started with (names, labels and fingerprint).
EXTRA_RECORD = "extra.json"
#: The SHA-256 of the ``--init`` weights file a crossval or finetune run started from.
INIT_RECORD = "init.json"


def versions() -> dict[str, Any]:
    """Versions of Python, the packages vsent uses, the git commit and the machine, and the
    number of training processes (``processes``: torchrun's ``WORLD_SIZE``, ``--nproc``).

    The CPU is recorded because a seeded CPU training is bit-identical only on the same kind of
    CPU: torch picks its kernels by the instruction set (``cpu_capability``: AVX2, AVX512, ...),
    and their float sums differ in the last bits from the first epochs on. So are the
    processes: each normalises BatchNorm over its share of the batch on CPU and draws its own
    dropout masks, so a run resumed with another ``--nproc`` trains another way (recorded
    as a change in ``versions.json``'s ``resumed`` list).
    """
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "cpu": _cpu_model()}
    for name in _PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    info["git_commit"], info["git_dirty"] = _loaded_git_state()
    info["processes"] = processes()
    return info


def processes() -> int:
    """The number of processes training together: torchrun's ``WORLD_SIZE`` (1 without it)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                         text=True, timeout=5, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.cache
def _loaded_git_state() -> tuple[str | None, bool | None]:
    """:func:`_git_state` when this process first asked: the code that runs is the code it
    loaded, not what the checkout holds later (a run of hours, commits made beside it,
    stamped its sub-runs with three commits)."""
    return _git_state()


def _git_state() -> tuple[str | None, bool | None]:
    """(commit, uncommitted changes to tracked files) of vsent's own checkout; (None, None)
    for an installed vsent, even one inside a user's git project (not vsent's commit)."""
    try:
        top = _git("rev-parse", "--show-toplevel")
        if not top or (Path(top) / "src" / "vsent").resolve() != Path(__file__).parent.resolve():
            return None, None
        return _git("rev-parse", "HEAD") or None, bool(_git("status", "--porcelain",
                                                            "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None


def _cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def record_remedy(then: str) -> str:
    """What mends a run record that cannot be read: a copy of it, or ``then``."""
    return f"restore it from a copy of the run, or {then}"


#: What to do with a run record that cannot be read (not to delete it: a run without its record
#: cannot check what the record guards, and would record today's state as its own).
RECORD_REMEDY = record_remedy("pass --overwrite to start again")


def read_record(file: Path, what: str, keys: Collection[str] = (),
                remedy: str = RECORD_REMEDY) -> dict[str, Any]:
    """The JSON object a run recorded in ``file`` to compare on resume (:data:`DATA_RECORD`,
    :data:`INIT_RECORD`, :data:`EXTRA_RECORD`); VsentError, one line naming ``file``, when it
    cannot be read (an OSError too: a folder of that name, no permission), is no JSON object
    or lacks one of ``keys`` ("not the record of <what>"), with ``remedy`` (the record of a
    run another command reads is not mended by that command's --overwrite)."""
    try:
        then = json.loads(file.read_text())
    except OSError as e:
        raise VsentError(f"{file}: not readable ({one_line(e)}); {remedy}") from None
    except ValueError as e:  # bad JSON, or bytes that are not text
        raise VsentError(f"{file}: not readable JSON ({one_line(e)}); {remedy}") from None
    if not isinstance(then, dict) or not then.keys() >= set(keys):
        detail = f" (keys {', '.join(keys)})" if keys else ""
        raise VsentError(f"{file}: not the record of {what}{detail}; {remedy}")
    return then


def check_init_record(file: Path, weights: str | Path, now: str, what: str, since: Path) -> None:
    """VsentError unless the :data:`INIT_RECORD` ``file`` of the run ``since`` holds the
    SHA-256 ``now`` of the ``weights`` file it started from (``what``: ``"--init weights"``): a
    file retrained or replaced at the same path is not seen by its name."""
    then = str(read_record(file, f"the {what}", ("sha256",))["sha256"])
    if then != now:
        raise VsentError(f"{weights}: the {what} changed since {since} started (SHA-256 "
                         f"{then[:12]} then, {now[:12]} now; see {file}): restore that file, or "
                         "pass --overwrite to start again")


def check_data_record(file: Path, dataset: Dataset, data: str, since: str, remedy: str) -> None:
    """VsentError when ``dataset`` is not the data :data:`DATA_RECORD` ``file`` records (a
    label flipped, an image replaced, added or removed: stored folds, models and scores would
    be of other data). Nothing to compare when ``file`` is absent (older runs)."""
    if not file.exists():  # (a folder there: read_record says so)
        return
    then = read_record(file, "a dataset", FINGERPRINT_KEYS, record_remedy(remedy))
    error = data_change_error(then, dataset, data, since, file, remedy)
    if error is not None:
        raise error


def data_change_error(then: Mapping[str, Any], dataset: Dataset, data: str, since: str,
                      file: Path, remedy: str) -> VsentError | None:
    """The error (:func:`make_data_change_error`) for ``dataset`` when it is not the data that
    the record ``then`` (:func:`data_record`, or a fingerprint alone) describes, naming the
    images that changed when ``then`` has their digests; None when it is the same data."""
    now = dataset.fingerprint()
    if all(then.get(key) == now[key] for key in now):  # not then != now: ITEM_DIGESTS is no data
        return None
    return make_data_change_error(data, since, then, now, file, remedy,
                                  changed=_changed_items(then, dataset))


def data_record(dataset: Dataset) -> dict[str, Any]:
    """What :data:`DATA_RECORD` holds for a new run: ``dataset``'s fingerprint and its
    :data:`ITEM_DIGESTS` (which name the images a later change touched)."""
    lines = dataset.item_lines()  # one stat an image for both
    return {**dataset.fingerprint(lines), ITEM_DIGESTS: " ".join(item_digests(lines))}


def item_digests(lines: Sequence[bytes]) -> list[str]:
    """Per image, 8 hex digits of the SHA-256 of what its fingerprint hashes of it (``lines``:
    :meth:`Dataset.item_lines <vsent.data.datasets.Dataset.item_lines>`: name, label, file
    size): 9 bytes an image in :data:`DATA_RECORD` (11 kB for Twitter I's 1,269), and an image
    edited, replaced, renamed or relabelled since has another (a 1 in 4 billion chance of the
    same)."""
    return [hashlib.sha256(line).hexdigest()[:8] for line in lines]


def _changed_items(then: Mapping[str, Any], dataset: Dataset) -> list[str] | None:
    """The names of ``dataset``'s images whose :func:`item_digests` entry the record ``then``
    lacks (changed or added since), in the dataset's order; None for a record without them
    (made before they were kept)."""
    stored = then.get(ITEM_DIGESTS)
    if not isinstance(stored, str):
        return None
    known = set(stored.split())
    return [name for name, digest in zip(dataset.names, item_digests(dataset.item_lines()),
                                         strict=True)
            if digest not in known]


def make_data_change_error(data: str, since: str, then: Mapping[str, Any],
                           now: Mapping[str, Any], file: Path, remedy: str, *,
                           changed: Sequence[str] | None = None) -> VsentError:
    """The error of :func:`check_data_record` (and of an ``--extra-train`` set that changed):
    ``then`` and ``now`` hold ``n_images`` and ``n_positive``; ``changed`` the names of the
    images that differ (:func:`_changed_items`; up to 3 are named), None when not known."""
    same = (then["n_images"], then["n_positive"]) == (now["n_images"], now["n_positive"])
    if same:  # the counts alone would read as "nothing changed"
        detail = f"{now['n_images']} images, {now['n_positive']} positive then and now"
    else:
        detail = (f"{then['n_images']} images, {then['n_positive']} positive then; "
                  f"{now['n_images']} images, {now['n_positive']} positive now")
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" * (len(changed) > 3))
        what = "changed (file contents, name or label)" if same else "changed or added"
        detail += f"; {what}: {shown}"
    elif same and changed is not None:  # every image as recorded: only their order differs
        detail += ", the same images listed in another order"
    elif same:
        detail += ": the contents of some image files changed (or their names or labels), " \
                  "not their number"
    return VsentError(f"{data}: its images or labels changed since {since} ({detail}; see "
                      f"{file}): restore them, or {remedy}")
