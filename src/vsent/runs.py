"""Run directories: a command writes its config, versions, seed, logs and results in one place.

The one policy for opening an output directory (every command that writes a run directory:
crossval, finetune, layers, regions, baselines, pcnn, pcnn-transfer, explain, reproduce,
fuse, ensemble)::

    open_run_dir(out, config, *, resume=False, overwrite=False, done="summary.json",
                 compare=None, ignore=(), check_paths=True, resume_asked=True) -> RunDir

* ``out`` has no ``config.json`` (new or empty directory): it is created and ``config`` is
  written as ``config.json``; ``rd.status == "new"``. A non-empty directory without
  ``config.json`` is refused: a run never writes among a user's own files.
* ``overwrite=True``: an existing run directory (one holding ``config.json``) is deleted first,
  then as above. A non-empty directory that is not a run directory is never deleted, nor is a
  run reached through a symbolic link (refused: give the folder itself).
* ``config.json`` exists and differs from ``config`` (compared as JSON, keys named in
  :data:`RUN_OPTIONS` apart): :class:`VsentError` naming the differing keys as dotted paths
  (``... made with other train.lr (train.lr: stored 0.002, now 0.5; ...)``), whether or not
  ``resume`` is given.
* same config and ``out/<done>`` exists: the run is finished, ``rd.status == "finished"``;
  the caller returns the stored result and never redoes it (with or without ``resume``).
* same config, unfinished: ``resume=True`` continues it (``rd.status == "resumed"``);
  without ``resume`` it is refused (pass --resume, --overwrite or another --out).
* a run that stopped before writing any result (its directory holds only :data:`RECORDS`
  and empty folders, e.g. one refused for a bad image or label line) is replaced by the
  next run, whatever its config: nothing is lost, and the fixed command (or ``--skip-bad``)
  is not refused.
* a stored config is compared as :func:`as_stored_train_seed` says (runs recorded before
  ``train.seed`` followed ``seed``).

``config`` is a JSON-able mapping (``{"command": NAME, **cfg.to_dict()}``); the returned RunDir
logs to ``run.log`` and must be closed (``with open_run_dir(...) as rd:``).

The run-directory contract (file names; what marks a fold or a run as done) is here too, so
analyses that read a cross-validation run (:mod:`vsent.crossval_run`) need not import
the orchestration layer: see :data:`CONFIG`, :data:`SUMMARY`, :func:`fold_dir`,
:func:`fold_done`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import json
import logging
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vsent.config import STORED_DECIDES, omitted_defaults, record_dict
from vsent.errors import VsentError, one_line
from vsent.files import (
    atomic_open,
    atomic_write_text,
    exclusive_lock,
    make_folder,
    same_file,
)
from vsent.provenance import (
    DATA_RECORD,
    EXTRA_RECORD,
    INIT_RECORD,
    UNCOMPARED_VERSIONS,
    versions,
)


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, paths and numpy values to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(obj.to_dict() if hasattr(obj, "to_dict") else record_dict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    return obj


class _RunLog(logging.FileHandler):
    """run.log's handler: a line the file cannot take (a full disk, a read-only folder) is
    dropped without logging's "--- Logging error ---" traceback on the console, which has
    the line; the failed write of the run itself says why (the CLI's one line), and a
    finished run in a folder it cannot write to is shown all the same. Any other error of a
    log call (a bad format) is reported as logging reports it."""

    def __init__(self, path: Path) -> None:
        # a message naming a file that is not UTF-8 is logged as its bytes, not a logging error
        super().__init__(path, encoding="utf-8", errors="surrogateescape", delay=True)
        self.stream = self._open_or_none()

    def _open_or_none(self) -> Any:
        try:
            return self._open()
        except OSError:  # (read-only: emit tries again, and drops the line)
            return None

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None and not self._closed:
            self.stream = self._open_or_none()
        if self.stream is not None:
            logging.StreamHandler.emit(self, record)

    def handleError(self, record: logging.LogRecord) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)


class RunDir:
    """A directory holding one run's config, versions, log and results.

    Creating a RunDir makes the directory, writes ``config.json`` (when given) and
    ``versions.json`` and starts logging to ``run.log`` (the ``vsent`` logger). Call
    :meth:`close` (or use it as a context manager) to stop logging to the file and release the
    output's lock that :func:`open_run_dir` took.
    """

    def __init__(self, path: str | Path, *, config: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        #: "new", "resumed" or "finished" when opened by :func:`open_run_dir`.
        self.status = "new"
        #: how an interrupted run is finished, as run.log's last line says it
        self.continued_by = "--resume continues it"
        #: the stored or written config.json (set by :func:`open_run_dir`)
        self.config: dict[str, Any] | None = None
        #: the lock :func:`open_run_dir` holds on the folder, released by :meth:`close`
        self._lock = contextlib.ExitStack()
        if self.path.exists() and not self.path.is_dir():
            raise VsentError(f"cannot create run directory {self.path}: a file of that name "
                             "exists (choose another --out)")
        try:
            make_folder(self.path)
        except OSError as e:
            raise VsentError(f"cannot create run directory {self.path}: {e.strerror}") from None
        # config.json first: killed in between, the folder holds a run that wrote no results
        # (replaced by the next one), never a versions.json alone (refused as no run)
        if config is not None:
            self.write_json("config.json", config)
        if not (self.path / "versions.json").exists():  # those the results were made with
            self.write_json("versions.json", {**versions(), "argv": sys.argv})
        self._handler = _RunLog(self.path / "run.log")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("vsent").addHandler(self._handler)
        logging.getLogger("vsent").setLevel(logging.INFO)

    def record_resume(self) -> None:
        """Add this session to ``versions.json``'s ``resumed`` list, with the versions that
        differ from the first session's (a run resumed after an upgrade mixes them)."""
        try:
            stored = json.loads((self.path / "versions.json").read_text())
        except (OSError, ValueError):  # lost or cut: this session's versions start it again
            stored = {**versions(), "argv": None}
        now = versions()
        # a key the first session did not record (a package vsent added to the list since)
        # is no change
        changed = {k: v for k, v in now.items()
                   if k not in UNCOMPARED_VERSIONS and k in stored
                   and stored.get(k) != v}
        if changed:
            logging.getLogger("vsent").warning(
                "%s: resumed with other versions than it started with: %s", self.path,
                ", ".join(f"{k} {stored.get(k)} -> {v}" for k, v in changed.items()))
        entry = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv,
                 "changed": changed}
        self.write_json("versions.json", {**stored, "resumed": [*stored.get("resumed", []),
                                                                 entry]})

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close(exc)

    def close(self, stopped_by: BaseException | None = None) -> None:
        """Stop logging to ``run.log``. ``stopped_by``: the exception that ends the session,
        said on run.log's last line (the console has it from the CLI; run.log went from an
        epoch to the next session's first line with no word of why) and, for a resumed
        session, as ``stopped`` in its ``versions.json`` entry (a resume refused before any
        work read as a session that ran)."""
        try:
            if stopped_by is not None:
                self._say_stopped(stopped_by)
        finally:  # (a second Ctrl-C meanwhile: the handler is removed all the same)
            logging.getLogger("vsent").removeHandler(self._handler)
            self._handler.close()
            self._lock.close()

    def _say_stopped(self, stopped_by: BaseException) -> None:
        if isinstance(stopped_by, KeyboardInterrupt):
            level = logging.WARNING
            text = f"interrupted: the run is kept; {self.continued_by}"
        elif isinstance(stopped_by, VsentError):
            level, text = logging.ERROR, f"stopped: {stopped_by}"
        else:
            level, text = logging.ERROR, (f"stopped by {type(stopped_by).__name__}: "
                                          f"{one_line(stopped_by)}")
        self.log_only(text, level)
        if self.status == "resumed":
            self._mark_session(text)

    def log_only(self, text: str, level: int = logging.INFO) -> None:
        """A line on run.log alone: the console has the command's own words for it."""
        self._handler.emit(logging.makeLogRecord(
            {"name": "vsent", "levelno": level, "levelname": logging.getLevelName(level),
             "msg": text}))

    def _mark_session(self, text: str) -> None:
        """``stopped``: ``text`` in this session's (the last) ``resumed`` entry of
        versions.json. Best effort: the exception that ends the session is the one to report."""
        with contextlib.suppress(Exception):  # (the session's own error is the one to say)
            stored = json.loads((self.path / "versions.json").read_text())
            sessions = stored["resumed"]
            sessions[-1] = {**sessions[-1], "stopped": text}
            self.write_json("versions.json", stored)

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON atomically (a crash never leaves half a file)."""
        return self.write_text(name, json.dumps(to_jsonable(obj), indent=2) + "\n")

    def read_json(self, name: str) -> Any:
        """The JSON file ``name`` of the run; VsentError naming it when it cannot be read (cut
        short or damaged: a traceback told nothing of which file, nor what to do)."""
        file = self.path / name
        try:
            return json.loads(file.read_text())
        except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not text
            # deleting the one file redoes its part (a baselines subset, an ensemble's record);
            # --overwrite throws away the whole run
            raise VsentError(f"{file}: unreadable ({one_line(e)}); delete {file} to redo it, "
                             "or pass --overwrite to start again") from None

    def write_csv(
        self, name: str, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]
    ) -> Path:
        """Write ``rows`` as CSV atomically."""
        path = self.path / name
        rows = list(rows)  # a generator's own OSError is not "cannot be written" (writing())
        # a file name that is not UTF-8 is written as its bytes, as predict's rows write it
        with writing(path), atomic_open(path, "w", newline="", encoding="utf-8",
                                        errors="surrogateescape") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(to_jsonable(dict(row)))
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` atomically."""
        path = self.path / name
        with writing(path):
            atomic_write_text(path, text)
        return path


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Make ``path``'s folder, then run the block that writes ``path``: an OSError there (a
    folder where the file goes, a file where a folder goes, a full disk, no permission) is a
    VsentError naming the file, not a traceback; the run is kept for --resume."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # (the temporary file's name
            raise VsentError(                                    # it failed on is no help)
                f"{path}: cannot be written ({e.strerror}): its folder is not writable here; "
                "make it writable, or copy the run to a folder that is and continue it "
                "there") from None
        raise VsentError(f"{path}: cannot be written ({one_line(e)}): free that name or make "
                         "room, then resume the run") from None


class Timer:
    """Wall-clock seconds since creation: ``Timer().elapsed``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------------------------
# the run-directory contract

#: The run's config (written when the run starts; compared when it is opened again).
CONFIG = "config.json"
#: Written last by a finished cross-validation (and most other) run: marks the run done.
SUMMARY = "summary.json"
#: The folds of a cross-validation run, by image name (a resumed run reuses them).
FOLDS = "folds.json"
#: Written last in a fold's directory: marks the fold done.
FOLD_METRICS = "metrics.json"
#: A fold's fine-tuned model.
FOLD_MODEL = "model.pt"
#: The resumable training state of an unfinished fit (removed once its model is saved).
TRAIN_STATE = "train_state.pt"
#: SHA-256 of the files a run was computed from (``fuse``, ``ensemble``; ``layers`` and
#: ``regions``: their crossval run's predictions, which identify a run that moved, see
#: :func:`vsent.crossval_run.run_moved_since`): a finished run whose inputs changed since is
#: refused rather than reported with stale numbers.
INPUTS = "inputs.json"
#: What a run directory holds before its first result: one holding nothing else is replaced
#: by the next run (see :func:`open_run_dir`). ``steps.json`` and ``weights.json`` are a
#: reproduction's bookkeeping (its results are sub-run directories); ``folds.json``,
#: ``extra.json``, ``data.json`` and ``init.json`` what a crossval writes before its first
#: fold (a fold's folder is made with its first file); ``inputs.json`` what an analysis read.
RECORDS = frozenset({CONFIG, "versions.json", "run.log", "skipped.json", "steps.json",
                     "weights.json", FOLDS, EXTRA_RECORD, DATA_RECORD, INIT_RECORD, INPUTS})
#: Config keys (last component of the dotted path) that are run options, not the recipe:
#: they may change between a run and its resumption (a run started on CPU may end on a GPU).
RUN_OPTIONS = frozenset({"device"})
#: Config keys holding a folder: equal when they name the same folder from here
#: (``../shared/datasets/twitter1`` and its absolute path are one dataset).
PATH_KEYS = frozenset({"data"})


def other_commands_run(out: str | Path, held: str, wanted: str) -> str:
    """``"runs/x holds a pcnn run, not a crossval run"``: ``out`` is another command's run."""
    def a(word: str) -> str:
        return "an" if word[:1].lower() in "aeiou" else "a"

    return f"{out} holds {a(held)} {held} run, not {a(wanted)} {wanted} run"


def fold_dir(run: str | Path, k: int) -> Path:
    """Directory of fold ``k`` (1-based) of the run in ``run``."""
    return Path(run) / f"fold{k}"


def checkpoint_run(path: str | Path, meta: Mapping[str, Any]
                   ) -> tuple[Path | None, int | None]:
    """(run directory, fold index) of a checkpoint written by crossval/finetune (links
    followed), else (None, None): ``runs/X/fold<k>/model.pt`` -> (runs/X, k);
    ``runs/X/model.pt`` -> (runs/X, ``meta``'s fold). Where it lies only: whether it is that
    run's model is the reader's to check (the card, the --init leakage check)."""
    folder = Path(path).resolve().parent
    fold = meta.get("fold")
    name = folder.name
    if name.startswith("fold") and name[4:].isdigit() and (folder.parent / CONFIG).is_file():
        return folder.parent, int(name[4:])
    if (folder / CONFIG).is_file():
        return folder, int(fold) if isinstance(fold, int) else None
    return None, None


def fold_done(run: str | Path, k: int) -> bool:
    """True once fold ``k`` finished (its ``metrics.json`` is written last)."""
    return (fold_dir(run, k) / FOLD_METRICS).exists()


def warn_missing_models(run: RunDir, names: Iterable[str]) -> list[str]:
    """One warning line naming the model files (``names``, relative to ``run``) that a
    finished run made and that are gone (deleted, or a copy made without them: git keeps no
    model): its results are read back all the same, but what loads those models cannot.
    Returns the missing names."""
    missing = [name for name in names if not (run / name).exists()]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        logging.getLogger("vsent").warning(
            "%s: finished run without %s (deleted, or copied without %s?): its results are "
            "read back, but commands that load %s need the run made again (--overwrite)",
            run.path, ", ".join(missing), them, them)
    return missing


def config_diff(stored: Any, new: Any, prefix: str = "",
                ignore: frozenset[str] = RUN_OPTIONS) -> list[str]:
    """Dotted paths where two JSON-like configs differ, each with both values.

    ``["train.lr: stored 0.002, now 0.5", "folds: stored 'campos', now 'stratified'"]``;
    keys whose last component is in ``ignore`` are not compared. Tuples and lists compare
    equal element-wise (JSON has no tuples). A key of :data:`vsent.config.OMITTED_AT_DEFAULT`
    or :data:`vsent.config.BASELINE_OMITTED_AT_DEFAULT` that one side lacks and the other
    holds at its default is no difference (a config.json of a version that wrote those keys at
    their default, or one made before they existed), nor one of
    :data:`vsent.config.STORED_DECIDES` that ``stored`` lacks (written before it existed).
    """
    stored, new = to_jsonable(stored), to_jsonable(new)
    if isinstance(stored, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(new), key=str):
            if key in ignore or _at_default_on_one_side(key, stored, new) or (
                    key in STORED_DECIDES and key not in stored):
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                out.append(f"{path}: not in the stored config, now {_short(new[key])}")
            elif key not in new:
                out.append(f"{path}: stored {_short(stored[key])}, not in the new config")
            else:
                out.extend(config_diff(stored[key], new[key], path, ignore))
        return out
    if stored == new:
        return []
    key = prefix.rsplit(".", 1)[-1]
    if isinstance(stored, str) and isinstance(new, str) and (
            (key in PATH_KEYS and same_file(stored, new))
            # (a checkpoint (pcnn-transfer's, explain's) moved, with a link at its stored
            # path; crossval's model is an architecture's name)
            or (key == "model" and os.path.isabs(stored) and same_file(stored, new))
            or (key == "init" and _same_init(stored, new))
            # (a folds file recorded as typed, relative, before --folds was made absolute)
            or (key == "folds" and stored not in ("campos", "stratified")
                and same_file(stored, new))):
        return []
    return [f"{prefix or 'config'}: stored {_short(stored)}, now {_short(new)}"]


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, a long one (explain's list of images) cut to ``limit`` characters with
    its length said, a SHA-256 digest to its first 12 digits: a refusal stays a line a person
    reads."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return f"'{value[:12]}...'"
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} entries" if isinstance(value, (list, dict)) else f"{len(text)} chars"
    return f"{text[:limit]}... ({size})"


def _same_init(a: str, b: str) -> bool:
    """Whether two ``--init`` values name the same weights: a file, or ``TAG=FILE``'s FILE,
    recorded as typed (relative) before the CLI recorded it absolute."""
    if same_file(a, b):
        return True
    (tag_a, _, file_a), (tag_b, _, file_b) = a.partition("="), b.partition("=")
    return bool(file_a) and tag_a == tag_b and same_file(file_a, file_b)


def check_same_test_images(ref: str | Path, ref_images: Mapping[str, tuple[int, int]],
                           run: str | Path, run_images: Mapping[str, tuple[int, int]]) -> None:
    """Raise VsentError unless two runs tested the same images with the same fold and label.

    ``ref_images`` and ``run_images`` map each test image's name to its ``(fold, label)``, as
    read from the runs' ``predictions.csv``; ``ref`` and ``run`` name the runs in the message,
    which gives the first image that differs (image names sorted).
    """
    if ref_images.keys() != run_images.keys():
        only = sorted(ref_images.keys() ^ run_images.keys())[0]
        where = ref if only in ref_images else run
        raise VsentError(f"{run} and {ref} were not tested on the same images: {only} is only "
                         f"in {where} ({len(run_images)} vs {len(ref_images)} images)")
    for name in sorted(ref_images):
        (ref_fold, ref_label), (fold, label) = ref_images[name], run_images[name]
        if (fold, label) != (ref_fold, ref_label):
            raise VsentError(f"{run}: image {name} is fold {fold} label {label}, "
                             f"in {ref} it is fold {ref_fold} label {ref_label}")


def read_config(run: str | Path) -> dict[str, Any]:
    """The ``config.json`` dict of the run directory ``run``; VsentError naming the file when
    it cannot be read or is not a JSON object."""
    file = Path(run) / CONFIG
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise VsentError(f"{file}: unreadable ({e})") from None
    if not isinstance(config, dict):
        raise VsentError(f"{file}: unreadable (a JSON {type(config).__name__}, "
                         "expected an object)")
    return config


def stored_config(out: str | Path) -> dict[str, Any]:
    """:func:`read_config` of ``out``, the folder a command writes: its error adds the remedy
    there (``--overwrite``), which an input run (``read_config``'s callers) has not."""
    try:
        return read_config(out)
    except VsentError as e:
        raise VsentError(f"{e}; pass --overwrite to start again") from None


def as_stored_train_seed(stored: Any, new: Any) -> Any:
    """``new`` (a config as JSON) as a stored config is compared with: wherever ``stored``
    (at any depth: a reproduction's ``plan.template`` too) holds a ``train.seed`` other than
    its ``seed``, and ``new`` the same ``seed`` with ``train.seed`` equal to it, ``new`` takes
    the stored ``train.seed``.

    Such configs were recorded before :class:`vsent.config.RunConfig` set ``train.seed`` to
    ``seed`` (TrainConfig's default 0 with ``--seed N``): it never trained (the runs derive
    their seeds from ``seed``), so they still resume. Only a comparison uses this: a new run
    (``--overwrite`` too) records the normalised seed.
    """
    if not isinstance(stored, Mapping) or not isinstance(new, Mapping):
        return new
    out = {k: as_stored_train_seed(stored[k], v) if k in stored else v for k, v in new.items()}
    then, now = stored.get("train"), out.get("train")
    if (isinstance(then, Mapping) and isinstance(now, Mapping) and "seed" in then
            and "seed" in stored and stored["seed"] == new.get("seed")
            and then["seed"] != stored["seed"] and now.get("seed") == new.get("seed")):
        out["train"] = {**now, "seed": then["seed"]}
    return out


def _at_default_on_one_side(key: Any, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    defaults = omitted_defaults()
    if key not in defaults or (key in a) == (key in b):
        return False
    return to_jsonable((a if key in a else b)[key]) == to_jsonable(defaults[key])


def _inputs_inside(out: Path, config: Any) -> list[str]:
    """Strings of ``config`` (at any depth) naming an existing file or folder that is ``out``
    or inside it: what an ``--overwrite`` of ``out`` would delete before the run reads it."""
    found: list[str] = []
    root = out.resolve()
    if isinstance(config, Mapping):
        for v in config.values():
            found += _inputs_inside(out, v)
    elif isinstance(config, list | tuple):
        for v in config:
            found += _inputs_inside(out, v)
    elif isinstance(config, str) and config and "\n" not in config and len(config) < 4096:
        try:
            p = Path(config).resolve()
            if p.exists() and (p == root or root in p.parents):
                found.append(config)
        except (OSError, RuntimeError):  # not a path (too long, a symlink loop)
            pass
    return found


def holds_results(out: str | Path) -> bool:
    """Whether the run directory ``out`` holds anything beyond its records (:data:`RECORDS`,
    empty folders): a run that ``--resume`` continues. A run stopped before its first result
    is replaced by a new one instead (:func:`open_run_dir`)."""
    out = Path(out)
    return out.is_dir() and not all(_no_result(p) for p in out.iterdir())


def _no_result(p: Path) -> bool:
    """``p`` (in a run directory) is one of :data:`RECORDS` or an empty folder: an earlier
    vsent made ``fold<k>/`` before the fold's first file, so a run stopped in fold 1 left
    an empty ``fold1/``."""
    if p.name in RECORDS and (p.is_symlink() or not p.is_dir()):
        return True
    try:
        return p.is_dir() and not p.is_symlink() and not any(p.iterdir())
    except OSError:  # unreadable: not known to be empty, so kept
        return False


def is_run_dir(out: str | Path) -> bool:
    """Whether ``out`` holds a vsent run: a ``config.json`` beside the ``versions.json`` every
    run writes, or (a run killed between the two) one that names its ``command``. A folder of
    the user's whose own ``config.json`` is no vsent run's is not one: nothing in it may be
    replaced or deleted (``--overwrite`` included)."""
    out = Path(out)
    file = out / CONFIG
    if not file.is_file():
        return False
    if (out / "versions.json").is_file():
        return True
    try:
        record = json.loads(file.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "command" in record


def no_images_here(folder: str | Path, shown: str | Path | None = None) -> bool:
    """Whether ``folder``, met while looking for images (a dataset's class folder, a folder
    or glob given to predict or explain), holds a vsent run: its figures and overlays are no
    images (said in a warning naming ``shown``, by default ``folder``)."""
    if not is_run_dir(folder):
        return False
    logging.getLogger("vsent").warning("%s holds a vsent run: its files are not read as images",
                                       folder if shown is None else shown)
    return True


def _plan(out: Path, config: dict[str, Any], *, resume: bool, overwrite: bool,
          done: str | None, compare: Collection[str] | None, ignore: Collection[str],
          check_paths: bool, resume_asked: bool = True) -> tuple[str, dict[str, Any] | None]:
    """What opening ``out`` does, every refusal raised, nothing written: ``(action, stored
    config)``, action "overwrite" (delete the run, then a new one), "replace" (a run that
    wrote no results, then a new one), "new", "finished" or "resumed"."""
    file = out / CONFIG
    if (file.exists() or file.is_symlink()) and not is_run_dir(out):
        raise VsentError(f"{out} holds a {CONFIG} that is not a vsent run's (no versions.json "
                         "beside it, no \"command\" in it): not touching it; choose another "
                         "--out (a run starts in a new or empty folder)")
    fresh: str | None = None
    if overwrite and out.exists():
        reads = _inputs_inside(out, config)
        if reads:
            raise VsentError(f"--overwrite would delete {reads[0]}, which this run reads: "
                             "choose another --out")
        if file.exists():
            if out.is_symlink():  # shutil.rmtree refuses a link (and must not follow one)
                raise VsentError(f"--overwrite: {out} is a symbolic link (to "
                                 f"{os.readlink(out)}); not deleting a run through a link: "
                                 "give the folder itself as --out, or choose another --out")
            try:
                held = read_config(out).get("command")
            except VsentError:  # (a torn config.json: deleted, as before)
                held = None
            if isinstance(held, str) and held != config.get("command", held) \
                    and holds_results(out):
                # (audit60: `explain --out <a crossval run> --overwrite` deleted the run, its
                # fold models with it; without --overwrite it is refused too)
                raise VsentError(f"--overwrite: {other_commands_run(out, held, config['command'])}"
                                 "; not deleting another command's run: choose another --out "
                                 "(or delete it yourself)")
            here = Path.cwd().resolve()
            if here == out.resolve() or out.resolve() in here.parents:
                # (rmtree emptied it, then failed to remove the folder it ran in)
                raise VsentError(f"--overwrite would delete {out}, which holds the current "
                                 f"folder ({here}): run the command from another folder, or "
                                 "choose another --out")
            fresh = "overwrite"
        elif out.is_dir() and any(out.iterdir()):
            raise VsentError(f"--overwrite: {out} is not empty and holds no {CONFIG}; "
                             "not deleting it (choose another --out)")
    if fresh is None and file.exists() and all(_no_result(p) for p in out.iterdir()):
        fresh = "replace"
    if fresh is not None or not file.exists():
        # before the directory exists: one opened for a wrong path would refuse the right one
        for key in sorted(PATH_KEYS & config.keys()) if check_paths else ():
            if config[key] and not Path(config[key]).exists():
                raise VsentError(f"{config[key]}: no such file or directory")
        # a run starts in a new or empty folder: once a config.json sits among a user's own
        # files, a later --overwrite would delete them all
        if fresh is None and out.is_dir() and any(out.iterdir()):
            raise VsentError(f"{out} holds files and no {CONFIG}: it is not a vsent run; "
                             "choose another --out (a run starts in a new or empty folder)")
        if fresh == "replace" and resume and resume_asked:
            # --resume on a run stopped before its first result (a bad image): continued only
            # by its own command and options (--skip-bad aside, the fix it asks for); another
            # command's default recipe, or the defaults of options not given, started silently
            try:
                held = stored_config(out)
            except VsentError:  # (a torn config.json: replaced)
                held = None
            if held is not None:
                _refuse_other(out, held, config, compare=compare,
                              ignore={*ignore, "skip_bad"}, resume=True)
        return fresh or "new", None
    stored = stored_config(out)
    _refuse_other(out, stored, config, compare=compare, ignore=ignore,
                  resume=resume and resume_asked)
    finished = done is not None and (out / done).exists()
    if not finished and not resume:
        # (a run with no "finished" mark, regions' or reproduce's, may be complete: --resume
        # then redoes nothing and writes its tables again)
        what, go_on = (("an unfinished run", "continue it") if done is not None else
                       ("a run", "continue it (or, if it is complete, to show it again)"))
        raise VsentError(f"{out} already holds {what}: pass --resume to {go_on}, "
                         "--overwrite to start again, or choose another --out")
    return "finished" if finished else "resumed", stored


def _refuse_other(out: Path, stored: dict[str, Any], config: dict[str, Any], *,
                  compare: Collection[str] | None, ignore: Collection[str],
                  resume: bool) -> None:
    """VsentError when the run in ``out`` (its config.json ``stored``) is another command's,
    or was made with another ``config`` (``compare``/``ignore`` as :func:`open_run_dir`'s),
    naming the keys; ``resume``: said to one continuing it (--resume was asked)."""
    if "command" in config and stored.get("command", config["command"]) != config["command"]:
        held, wanted = stored.get("command") or "vsent", config["command"]
        raise VsentError(f"{other_commands_run(out, held, wanted)}: choose another --out")
    ignored = RUN_OPTIONS | frozenset(ignore)
    config = as_stored_train_seed(stored, config)  # compared only: a new run writes its own
    if compare is not None:
        diff = config_diff({k: stored.get(k) for k in compare},
                           {k: config.get(k) for k in compare}, ignore=ignored)
    else:
        diff = config_diff(stored, config, ignore=ignored)
    if not diff:
        return
    # (a preset changed: 18 keys and 1,200 characters; the first few tell what differs)
    names = [d.split(":")[0] for d in diff]
    keys = ", ".join(f"{n} ({KEY_WORDS[n]})" if n in KEY_WORDS else n for n in names[:6])
    keys += f" and {len(names) - 6} more" if len(names) > 6 else ""
    shown = "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")
    file = out / CONFIG
    if resume:  # (--overwrite is not what one continuing a run wants)
        moved = ""
        if names == ["data"]:
            moved = ("; if the data moved, a link at the stored path to its new folder, and "
                     "no --data, continues it")
        elif names == ["model"] and os.path.isabs(stored["model"] or "") and not os.path.exists(
                stored["model"]):  # (pcnn-transfer's checkpoint; crossval's is a name)
            moved = ("; if the checkpoint moved, a link at the stored path to it, and no "
                     "--model, continues it")
        raise VsentError(
            f"--resume: {out} already holds a run made with other {keys} ({shown}; see "
            f"{file}): give the options it was started with{started_as(out)}{moved}")
    raise VsentError(f"{out} already holds a run made with other {keys} ({shown}; see "
                     f"{file}): pass --overwrite to start again, or choose another --out")


#: What a config key that is no option's name stands for, in a refusal's words.
KEY_WORDS = {"model_sha256": "the checkpoint's bytes",
             "images_found": "the files the inputs find: images added, removed or edited"}


def started_as(out: Path) -> str:
    """`` (it was started as `vsent ...`)`` from the run's versions.json, or "" (not
    recorded, or not started by the ``vsent`` command: a test, a script)."""
    try:
        argv = json.loads((out / "versions.json").read_text())["argv"]
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
            and Path(argv[0]).name == "vsent"):
        return ""
    return f" (it was started as `{shlex.join(['vsent', *argv[1:]])}`)"


def check_run_dir(out: str | Path, config: Mapping[str, Any], *, resume: bool = False,
                  overwrite: bool = False, done: str | None = SUMMARY,
                  compare: Collection[str] | None = None, ignore: Collection[str] = (),
                  check_paths: bool = True) -> str:
    """:func:`open_run_dir`'s refusals (the same VsentError), without writing anything; else
    what it would do: "overwrite", "replace" (a run that wrote no results), "new",
    "finished" or "resumed". ``--nproc N`` asks before its processes start, so that a refusal
    is said once and leaves no run directory (:func:`vsent.crossval.check_launch`)."""
    return _plan(Path(out), to_jsonable(dict(config)), resume=resume, overwrite=overwrite,
                 done=done, compare=compare, ignore=ignore, check_paths=check_paths)[0]


def open_run_dir(out: str | Path, config: Mapping[str, Any], *, resume: bool = False,
                 overwrite: bool = False, done: str | None = SUMMARY,
                 compare: Collection[str] | None = None, ignore: Collection[str] = (),
                 check_paths: bool = True, resume_asked: bool = True) -> RunDir:
    """Open ``out`` for a run defined by ``config``: the one policy (see the module docstring).

    Returns a RunDir with ``status`` "new", "resumed" or "finished" and ``config`` (the dict
    in ``config.json``). ``done`` names the file that marks the run finished (None: never
    "finished", for analyses whose work set may grow in place: their per-fold results are
    reused instead). ``compare`` restricts the comparison to these top-level keys (the ones
    that change results, when the others only select work, e.g. which folds); ``ignore`` adds
    key names (any level) to :data:`RUN_OPTIONS`, e.g. a thread count. A new run whose
    :data:`PATH_KEYS` name no file or folder is refused before ``out`` is created, unless
    ``check_paths`` is False (a command that never reads them). ``resume_asked=False``: the
    command always resumes (no ``--resume`` option), so a new run is not announced as one.
    :func:`check_run_dir` answers the same without writing.
    """
    out = Path(out)
    config = to_jsonable(dict(config))
    # one command at a time in a run directory (a second layers rewrote the first's feature
    # files under it); held until the RunDir is closed
    lock = contextlib.ExitStack()
    with contextlib.suppress(OSError):  # (one that cannot be made: RunDir says why)
        out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent.is_dir():
        lock.enter_context(exclusive_lock(out, f"vsent {config.get('command') or 'run'}"))
    try:
        rd = _open_locked(out, config, resume=resume, overwrite=overwrite, done=done,
                          compare=compare, ignore=ignore, check_paths=check_paths,
                          resume_asked=resume_asked)
    except BaseException:
        lock.close()
        raise
    rd._lock = lock
    return rd


def _open_locked(out: Path, config: dict[str, Any], *, resume: bool, overwrite: bool,
                 done: str | None, compare: Collection[str] | None, ignore: Collection[str],
                 check_paths: bool, resume_asked: bool) -> RunDir:
    """:func:`open_run_dir`'s work, its lock held."""
    action, stored = _plan(out, config, resume=resume, overwrite=overwrite, done=done,
                           compare=compare, ignore=ignore, check_paths=check_paths,
                           resume_asked=resume_asked)
    log = logging.getLogger("vsent")
    if action == "overwrite":
        shutil.rmtree(out)
    elif action == "replace":  # (one line: not also "no run there yet" below)
        log.info("%s: %s", out, "--resume: the run there wrote no results; starting it again"
                 if resume and resume_asked else "replacing a run that wrote no results")
        for name in RECORDS:
            if (out / name).is_symlink() or not (out / name).is_dir():  # (an empty folder of
                (out / name).unlink(missing_ok=True)                   # that name: below)
        for p in out.iterdir():  # the empty folders left (see _no_result)
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
    if action in ("overwrite", "replace", "new"):
        rd = RunDir(out, config=config)
        if not resume_asked:  # a command without --resume (explain, fuse, ...)
            rd.continued_by = "the same command again finishes it"
        if resume and resume_asked and action == "new":  # a typo in --out: hours of work
            log.info("%s: --resume, but no run there yet; starting a new one", out)
        rd.status = "new"
        rd.config = config
        return rd
    rd = RunDir(out)
    if not resume_asked:
        rd.continued_by = "the same command again finishes it"
    rd.status = action
    rd.config = stored
    if action == "resumed":
        try:
            rd.record_resume()
        except BaseException as e:  # (the caller gets no rd to close: its log handler would
            rd.close(e)             # take every later message of this process)
            raise
    if action == "finished":
        log.info("%s: finished run with the same config: its results are read back", out)
    else:
        log.info("%s: resumed run, stored config", out)
    return rd
