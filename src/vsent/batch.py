"""Batch scoring that streams: rows written as they come, ``--resume``, one run an output.

``vsent predict`` over millions of images never holds the list of paths or of results:

* :func:`vsent.inputs.iter_inputs` walks files, folders and globs lazily, then the lines of
  ``--from-list FILE``; an input that matches nothing is an :class:`~vsent.inputs.Unmatched`
  item (an error row), never an exception.
* :class:`RowWriter` writes csv or jsonl rows and flushes each one, so a ``kill -9`` loses at
  most the rows still in flight; it fsyncs every few seconds against power loss.
* :func:`read_done` reads an existing output for ``--resume``: the paths already scored (kept
  as sorted 64-bit hashes, 8 bytes a row, not as strings) and the byte length of its complete
  rows (a line cut by a kill is dropped and written again).
* :func:`record_for` and :func:`write_record` keep the model file's SHA-256, the scoring
  options and the versions beside the output (``<out>.vsent.json``); ``--resume`` refuses rows
  of another model or options, and warns about other versions.
* :func:`output_lock` keeps a second run off an output that a run is reading and writing.
* :func:`score_stream` ties them together with an engine from :mod:`vsent.engines` (the
  default engine is :meth:`vsent.predict.Predictor.score`; ``ray`` runs the same code on Ray
  Data) and returns a :class:`Summary`.

"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import stat
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from vsent.errors import VsentError
from vsent.files import atomic_write_text, exclusive_lock, file_sha256, make_folder, temp_path
from vsent.inputs import Unmatched
from vsent.predict import ROW_FIELDS
from vsent.progress import on_terminal

#: Output formats.
FORMATS = ("csv", "jsonl")
#: Where a CSV record (``ROW_FIELDS``) holds the image's path and its error.
PATH_COLUMN, ERROR_COLUMN = ROW_FIELDS.index("path"), ROW_FIELDS.index("error")

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# output rows


def output_format(out: str | Path | None, fmt: str | None) -> str:
    """``fmt`` if given, else from ``out``'s suffix (``.jsonl`` -> jsonl), else csv."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise VsentError(f"--format {fmt!r}: use csv or jsonl")
        return fmt
    return "jsonl" if out is not None and str(out).lower().endswith(".jsonl") else "csv"


class _Utf8Stdout:
    """Standard output written as its binary buffer's UTF-8, a name that is not UTF-8 as its
    bytes (surrogateescape), whatever the locale: Python's own ``sys.stdout`` is strict
    outside the C and C.UTF-8 locales, and such a name would crash the run. Writing to the
    buffer leaves ``sys.stdout`` as it is (nothing to detach or close)."""

    def __init__(self, stream: IO[str]) -> None:
        stream.flush()  # what was printed before comes first
        self._buffer = stream.buffer

    def write(self, s: str) -> int:
        self._buffer.write(s.encode("utf-8", "surrogateescape"))
        return len(s)

    def flush(self) -> None:
        self._buffer.flush()


def _stdout_text() -> IO[str] | _Utf8Stdout:
    """Where rows for standard output go: :class:`_Utf8Stdout`, or a replaced ``sys.stdout``
    without a binary buffer (a test's) as it is."""
    if sys.stdout is None:  # started with descriptor 1 closed (``>&-``, a daemon)
        raise VsentError("standard output is closed: give --out FILE for the rows")
    if getattr(sys.stdout, "buffer", None) is None:
        return sys.stdout
    return _Utf8Stdout(sys.stdout)


class RowWriter:
    """Writes rows to ``out`` (a path, or None for standard output) as csv or jsonl.

    Every row is flushed to the OS when written (a killed process loses no written row), and
    the file is fsync'ed every ``fsync_every`` seconds and on close (a lost machine loses at
    most those seconds). ``append=True`` continues an existing file (``--resume``): the csv
    header is written only when the file is empty.
    """

    def __init__(self, out: str | Path | None, fmt: str | None = "csv", *, append: bool = False,
                 fsync_every: float = 5.0) -> None:
        self.fmt = output_format(out, fmt)
        self.path = Path(out) if out is not None else None
        self._name = str(out)  # as given, for messages
        if self.path is None:
            self._fh: IO[str] | _Utf8Stdout = _stdout_text()
        else:
            try:
                # a file name that is not UTF-8 is written as its bytes (as on stdout)
                self._fh = self.path.open("a" if append else "w", newline="", encoding="utf-8",
                                          errors="surrogateescape")
            except OSError as e:
                raise VsentError(f"--out {out}: {e.strerror or e}") from None
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self._broken = False  # a write failed: close() only releases the file
        # a pipe (--out >(gzip > x.gz)) or a device (/dev/null) can neither seek nor fsync
        self._regular = self.path is not None and stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode)
        self._csv: csv.DictWriter | None = None
        if self.fmt == "csv":
            self._csv = csv.DictWriter(self._fh, fieldnames=ROW_FIELDS)
            if not self._regular or self._fh.tell() == 0:
                try:
                    self._csv.writeheader()
                except OSError as e:
                    error = self._failed(e)
                    self.close()  # (releases the file only)
                    raise error from None

    @property
    def regular(self) -> bool:
        """Whether the rows go to a regular file (not standard output, a pipe or a device):
        the only output that ``--resume`` can continue and a record can describe."""
        return self._regular

    def write(self, row: Row) -> None:
        """Write one row (keys :data:`ROW_FIELDS`) and flush it; a VsentError when the output
        cannot take it (disk full, a closed pipe)."""
        try:
            if self._csv is not None:
                self._csv.writerow(row)
            else:
                self._fh.write(json.dumps(row) + "\n")
            self._fh.flush()
            if self._regular and time.monotonic() - self._last_sync > self._fsync_every:
                os.fsync(self._fh.fileno())
                self._last_sync = time.monotonic()
        except OSError as e:
            raise self._failed(e) from None

    def close(self) -> None:
        if self.path is not None and self._fh.closed:
            return
        try:
            if not self._broken:  # (what a failed write left in the buffer cannot go out)
                self._fh.flush()
                if self._regular:
                    os.fsync(self._fh.fileno())
        except OSError as e:
            raise self._failed(e) from None
        finally:
            if self.path is not None:
                # (a failed buffer fails its flush again here: _failed has said so already)
                with contextlib.suppress(OSError):
                    self._fh.close()

    def _failed(self, e: OSError) -> OSError | VsentError:
        """The error of a write or flush that failed: one line for the user (the rows written
        so far stay), or, for standard output closed by its reader (``| head``), the
        BrokenPipeError the command line ends on quietly."""
        self._broken = True
        if self.path is None:
            if isinstance(e, BrokenPipeError):
                return e
            return VsentError(f"standard output: cannot write ({e.strerror or e})")
        keep = "; the rows written so far are kept: --resume continues" if self._regular else ""
        return VsentError(f"--out {self._name}: cannot write ({e.strerror or e}){keep}")

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# resume


def path_key(path: str) -> int:
    """64-bit hash of a path string: 8 bytes a row instead of the string (the chance of any
    collision among 10^7 paths is about 3e-6)."""
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "little")


@dataclass
class Done:
    """What an existing output already holds (:func:`read_done`).

    Attributes
    ----------
    keys : uint64 (n,) sorted :func:`path_key` of the rows' paths (a path with two rows: twice).
    rows, failed : rows read, and how many of them have an error.
    complete_bytes : length of the file up to the end of its last complete line.
    """

    keys: np.ndarray
    rows: int = 0
    failed: int = 0
    complete_bytes: int = 0

    def __contains__(self, path: str) -> bool:
        k = np.uint64(path_key(path))
        i = int(np.searchsorted(self.keys, k))
        return i < len(self.keys) and self.keys[i] == k


def _complete_length(path: Path, fmt: str) -> int:
    """Bytes of ``path`` up to the end of its last complete row (0 if it has none): its last
    newline for jsonl; for csv, its last newline outside quotes (a name with a newline is
    quoted, and the quotes of complete rows come in pairs)."""
    if fmt == "csv":
        end = pos = quotes = 0
        with path.open("rb") as f:
            for line in f:
                pos += len(line)
                quotes += line.count(b'"')
                if line.endswith(b"\n") and quotes % 2 == 0:
                    end = pos
        return end
    size = path.stat().st_size
    with path.open("rb") as f:
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return start + i + 1
            end = start
    return 0


def read_done(path: str | Path, fmt: str) -> Done:
    """Read the rows of an earlier (possibly killed) run's output ``path`` for ``--resume``.

    Only complete lines count; a last line without its newline (cut by a kill) is ignored and
    :attr:`Done.complete_bytes` says where to cut the file. Raises :class:`VsentError` naming
    the file and line for a file that is not vsent's csv/jsonl output.
    """
    path = Path(path)
    keys = array("Q")
    done = Done(keys=np.zeros(0, np.uint64))
    if not path.exists():
        return done
    if fmt == "csv":
        _check_csv_head(path)
    n = done.complete_bytes = _complete_length(path, fmt)
    with path.open("rb") as raw:
        text = io.TextIOWrapper(io.BufferedReader(_Limited(raw, n)), encoding="utf-8",
                                errors="surrogateescape", newline="")
        if fmt == "csv":
            reader = csv.reader(text)
            try:
                next(reader, None)  # the header (_check_csv_head)
                for rec in reader:
                    if len(rec) != len(ROW_FIELDS):
                        raise VsentError(f"--resume: {path}:{reader.line_num}: expected "
                                         f"{len(ROW_FIELDS)} fields, found {len(rec)}")
                    keys.append(path_key(rec[PATH_COLUMN]))
                    done.rows += 1
                    done.failed += bool(rec[ERROR_COLUMN])
            except csv.Error as e:
                raise VsentError(f"--resume: {path}:{reader.line_num}: {e}") from None
        else:
            for lineno, line in enumerate(text, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    p, err = rec["path"], rec.get("error")
                    if not isinstance(p, str) or not (err is None or isinstance(err, str)):
                        raise TypeError  # (a null path: no row of vsent's)
                except (ValueError, KeyError, TypeError):
                    if lineno == 1 and line.rstrip("\r\n") == ",".join(ROW_FIELDS):
                        raise VsentError(f"--resume: {path}:1: holds csv rows, not jsonl: add "
                                         "--format csv") from None
                    raise VsentError(f"--resume: {path}:{lineno}: not a vsent predict jsonl "
                                     "row") from None
                keys.append(path_key(p))
                done.rows += 1
                done.failed += bool(err)
    done.keys = np.sort(np.frombuffer(keys, np.uint64)) if len(keys) else done.keys
    return done


def _check_csv_head(path: Path) -> None:
    """VsentError unless the first line of ``path`` is vsent's csv header (or a part of it
    with no newline yet: a header cut by a kill). Checked before the rows are counted: jsonl
    rows read as csv can hold no complete csv row (a name with one double quote), and the
    whole file would be cut."""
    header = ",".join(ROW_FIELDS).encode()
    with path.open("rb") as f:
        line = f.readline(4096)
    first = line.rstrip(b"\r\n")
    if first == header or (not line.endswith(b"\n") and header.startswith(first)):
        return
    if first.lstrip().startswith(b"{"):  # (written with --format jsonl)
        raise VsentError(f"--resume: {path}:1: holds jsonl rows, not csv: add --format jsonl")
    raise VsentError(f"--resume: {path}:1: not a vsent predict csv (header "
                     f"{first.decode('utf-8', 'replace')!r}, expected {header.decode()!r})")


class _Limited(io.RawIOBase):
    """The first ``limit`` bytes of a binary file, as a readable raw stream."""

    def __init__(self, f: IO[bytes], limit: int) -> None:
        self._f, self._left = f, limit

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._left)
        data = self._f.read(n)
        b[: len(data)] = data
        self._left -= len(data)
        return len(data)


def drop_failed_rows(path: str | Path, fmt: str) -> int:
    """Rewrite ``path`` (an earlier run's complete rows, as :func:`read_done` checked them)
    without its error rows, so that ``--resume`` scores those images again
    (``--retry-failed``: a file that had not arrived yet, a network file system's hiccup).
    The good rows keep their bytes and order; the file is replaced atomically (a temporary
    file beside it, then ``os.replace``). Returns the number of rows dropped."""
    # the file itself, not a link to it: os.replace would put the copy in the link's place
    # and leave the file the link names with the error rows
    path = Path(os.path.realpath(path))
    n = _complete_length(path, fmt)
    tmp = temp_path(path)
    try:
        with path.open("rb") as raw, tmp.open("w", encoding="utf-8", errors="surrogateescape",
                                              newline="") as out:
            # the output keeps its permissions (a group-writable file stays so)
            with contextlib.suppress(OSError):  # (a file system without modes: as it gives)
                os.fchmod(out.fileno(), stat.S_IMODE(os.fstat(raw.fileno()).st_mode))
            dropped = _copy_good_rows(raw, n, out, fmt)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # left only if the copy failed: the output is untouched
    return dropped


def _copy_good_rows(raw: IO[bytes], n: int, out: IO[str], fmt: str) -> int:
    """Copy the rows without an error from the first ``n`` bytes of ``raw`` to ``out``; the
    number of rows left out."""
    dropped = 0
    text = io.TextIOWrapper(io.BufferedReader(_Limited(raw, n)), encoding="utf-8",
                            errors="surrogateescape", newline="")
    if fmt == "csv":  # rows may span lines (a quoted newline in a name): csv both ways
        writer = csv.writer(out)  # RowWriter's dialect (DictWriter's default)
        for i, rec in enumerate(csv.reader(text)):
            if i and rec[ERROR_COLUMN]:
                dropped += 1
            else:
                writer.writerow(rec)
    else:
        for line in text:
            if line.strip() and json.loads(line).get("error"):
                dropped += 1
            else:
                out.write(line)
    return dropped


def check_resume(out: str | Path | None, resume: bool, retry_failed: bool) -> None:
    """``--resume`` continues a file, and ``--retry-failed`` rewrites the output that
    ``--resume`` continues: each needs the other (checked before the model loads)."""
    if resume and out is None:
        raise VsentError("--resume needs --out (the file to continue)")
    if retry_failed and not resume:
        raise VsentError("--retry-failed goes with --resume (it scores an output's failed "
                         "images again)")
    if resume:
        _check_resumable(out)


def _check_resumable(out: str | Path) -> None:
    """``--resume`` reads the rows of ``out`` back and appends to it: a folder cannot be
    read so, and a pipe or a FIFO would be read (and waited on) without end, its rows gone
    down the pipe anyway. Refused in one line; an ``out`` that does not exist yet is fine."""
    if _process_path(out):
        raise VsentError(f"--out {out}: names a file of this process (/dev, /proc), not a "
                         "file: --resume continues the rows of a file (drop --resume, or "
                         "write to a file)")
    try:
        mode = os.stat(out).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise VsentError(f"--out {out}: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise VsentError(f"--out {out}: is {kind}, not a file: --resume continues the rows "
                         "of a file (drop --resume, or write to a file)")


#: Names of standard output: written as standard output (opened again, the file behind it
#: would get a position of its own, and ``> log 2>&1`` would write over the rows).
STDOUT_NAMES = ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def names_stdout(out: str | Path) -> bool:
    """Whether ``--out`` is one of :data:`STDOUT_NAMES` (written as standard output)."""
    return os.path.abspath(out) in STDOUT_NAMES


def _process_path(out: str | Path) -> bool:
    """Whether ``out`` names something of this process under /dev or /proc (``/dev/fd/3``, a
    device such as ``/dev/null``), not a regular file (``/dev/shm/x.csv`` is one): no record or
    lock is kept beside it (none could be written in /dev, and no later run would find it by
    that name)."""
    path = os.path.abspath(out)
    if path.startswith(("/proc/", "/dev/fd/")):
        return True
    if not path.startswith("/dev/"):
        return False
    # /dev/stdout & co. are links to this process's files; a device is no regular file
    return os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path))


@contextlib.contextmanager
def output_lock(out: str | Path | None) -> Iterator[None]:
    """:func:`vsent.files.exclusive_lock` on ``out`` while a run reads and writes it: a
    second run on the same output would read rows that the first is still writing, score
    them again and write them twice. Standard output, pipes and devices are not locked (no
    run can resume them)."""
    if out is None or _process_path(out) or (os.path.exists(out) and not os.path.isfile(out)):
        yield
        return
    with exclusive_lock(out, "vsent predict"):
        yield


# --------------------------------------------------------------------------------------------
# what made the rows: <out>.vsent.json, checked by --resume


def record_path(out: str | Path) -> Path:
    """Where :func:`write_record` keeps the model and options of the output ``out``."""
    return Path(f"{out}.vsent.json")


def scoring_record(model: str | Path, options: dict[str, Any]) -> dict[str, Any]:
    """What decides the scores of an output: the model file's bytes and the scoring options
    (``oversample``, ``regions``: None or its K, alpha, beta, proposals and, when not the
    default, the log of the sentiment score), plus, for the
    reader, the model as named, vsent's version and the libraries' and the machine's
    (``versions``, as a run directory's ``versions.json``: a Pillow or torch upgrade, or
    another CPU kind, can change the last digits)."""
    from vsent import __version__
    from vsent.provenance import versions

    try:
        digest = file_sha256(model)
    except OSError as e:
        raise VsentError(f"--model {model}: {e.strerror or e}") from None
    return {"model": str(model), "model_sha256": digest, "options": options,
            "vsent": __version__, "versions": versions()}


def _describe(record: dict[str, Any]) -> str:
    opts = record.get("options") or {}
    regions = opts.get("regions")
    how = ("--regions " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in regions.items())
           if regions else "--oversample" if opts.get("oversample") else "centre crops")
    return f"{record.get('model')} (sha256 {str(record.get('model_sha256'))[:12]}) with {how}"


def record_for(out: str | Path, record: dict[str, Any], *, has_rows: bool
               ) -> tuple[dict[str, Any] | None, str | None]:
    """What to keep beside ``out`` for a run of ``record``, and a warning for the user.

    ``has_rows``: the run continues rows already in ``out`` (``--resume``). Those must come
    from the same model and options: refused (:class:`VsentError`) when the kept record says
    otherwise, and nothing is to be written (the kept record stands; a warning when the
    versions differ). An output with rows but no record (written before vsent kept records, or
    moved without it) cannot be checked: warned about, and this run's record, marked
    ``earlier_rows_unchecked``, is to be kept from now on, so that the next resume is checked.
    Otherwise ``record`` is to be kept as it is.
    """
    path = record_path(out)
    if not has_rows:
        return record, None
    if path.exists():
        return None, _check_record(out, path, record)
    warning = (f"--resume: {out} has no {path.name} beside it; the model and options of "
               "its rows cannot be checked (those of this run are kept in it from now on)")
    return {**record, "earlier_rows_unchecked": True}, warning


def write_record(out: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` beside ``out`` (atomically). If that fails, a record kept there before
    no longer describes ``out`` (opened for this run): it is removed where it can be, so that
    no later ``--resume`` trusts it."""
    path = record_path(out)
    try:
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    except OSError as e:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise VsentError(f"--out {out}: cannot write {path.name} beside it: "
                         f"{e.strerror or e}") from None


def _check_record(out: str | Path, path: Path, record: dict[str, Any]) -> str | None:
    """:func:`record_for` on resume: refuse another model or options; warn (a line) about
    other versions (an output kept before vsent recorded them has none to compare)."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        same = all(kept[k] == record[k] for k in ("model_sha256", "options"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VsentError(f"--resume: {path}: not a vsent predict record ({e}); delete it "
                         "to resume without the check") from None
    if not same:
        raise VsentError(f"--resume: the rows of {out} come from {_describe(kept)}; this "
                         f"run is {_describe(record)}: resume with that model and those "
                         "options, or write another --out")
    before = kept.get("versions")
    before = before if isinstance(before, dict) else {}
    # as RunDir.record_resume: the thread count and the kernel's build change no score
    from vsent.provenance import UNCOMPARED_VERSIONS

    changed = [f"{k} {before.get(k)} -> {v}" for k, v in record["versions"].items()
               if before and k not in UNCOMPARED_VERSIONS and before.get(k) != v]
    if changed:
        return (f"--resume: the rows of {out} were scored with other versions ("
                f"{', '.join(changed)}); the new rows may differ in the last digits")
    return None


# --------------------------------------------------------------------------------------------
# scoring


#: An engine's scoring function: paths (read lazily) -> one row per path, in input order.
Scorer = Callable[[Iterator[str | Path]], Iterable[Row]]


def with_unmatched(items: Iterable[str | Path | Unmatched], scorer: Scorer) -> Iterator[Row]:
    """Rows of ``items`` in input order: paths go through ``scorer``, :class:`Unmatched`
    items become error rows at their place (held only while the paths before them are in
    flight)."""
    pending: deque[tuple[int, Row]] = deque()  # (number of paths before it, row)
    count = 0

    def paths() -> Iterator[str | Path]:
        nonlocal count
        for it in items:
            if isinstance(it, Unmatched):
                pending.append((count, it.row()))
            else:
                count += 1
                yield it

    for emitted, row in enumerate(scorer(paths())):
        while pending and pending[0][0] <= emitted:
            yield pending.popleft()[1]
        yield row
    while pending:
        yield pending.popleft()[1]


def skip_done(items: Iterable[str | Path | Unmatched], done: Done
              ) -> Iterator[str | Path | Unmatched]:
    """``items`` without as many occurrences of each path as ``done`` holds rows of it: a
    path listed twice, of which the output has one row, is scored once more, so that a
    resumed run ends with the rows of a run never stopped."""
    if not len(done.keys):
        yield from items
        return
    unique, left = np.unique(done.keys, return_counts=True)  # rows not yet met in the inputs
    for it in items:
        k = np.uint64(path_key(str(it.path if isinstance(it, Unmatched) else it)))
        i = int(np.searchsorted(unique, k))
        if i < len(unique) and unique[i] == k and left[i] > 0:
            left[i] -= 1
        else:
            yield it


@dataclass
class Summary:
    """Counts of one ``vsent predict`` run (rows of an earlier run included when resuming)."""

    total: int = 0
    failed: int = 0
    resumed: int = 0

    def line(self, out: str | Path | None = None) -> str:
        """The summary line printed on stderr."""
        # resumed, the counts are the output's rows, not this run's inputs
        counted = "rows" if self.resumed else "inputs"
        s = f"scored {self.total - self.failed} of {self.total} {counted}"
        if self.resumed:
            s += (f" ({self.resumed} kept from the earlier run, "
                  f"{self.total - self.resumed} added now)")
        s += f", {self.failed} failed"
        return s + (f"; rows in {out}" if out else "")


def score_stream(
    items: Iterable[str | Path | Unmatched],
    scorer: Scorer,
    out: str | Path | None,
    *,
    fmt: str | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    progress: bool = False,
    fsync_every: float = 5.0,
    record: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Summary:
    """Score ``items`` (from :func:`iter_inputs`) with ``scorer`` and write each row to
    ``out`` (path, or None for standard output) as it comes.

    Parameters
    ----------
    scorer : an engine's scoring function (:func:`vsent.engines.open_engine`), e.g.
        :meth:`vsent.predict.Predictor.score`.
    fmt : csv or jsonl (default from ``out``'s suffix).
    resume : keep the rows already in ``out`` and skip their paths; a line cut by a kill is
        removed first. Without it an existing ``out`` is overwritten.
    retry_failed : with ``resume``, drop the error rows of ``out`` first
        (:func:`drop_failed_rows`): those images are scored again.
    progress : show a tqdm counter (no total: the inputs are not counted beforehand).
    record : :func:`scoring_record` of this run, kept beside a regular ``out``
        (:func:`record_for`): checked against the kept one before a resumed ``out`` is
        changed, and written only once ``out`` is open (a run that fails before leaves the
        record of the rows it did not replace).
    warn : where :func:`record_for`'s warning goes (default: standard error).

    Another run writing ``out`` (its :func:`output_lock` held) is refused (VsentError).
    Returns the :class:`Summary`; rows with an error count as failed.
    """
    fmt = output_format(out, fmt)
    check_resume(out, resume, retry_failed)
    if out is not None and names_stdout(out):
        out = None  # standard output itself, sharing its position with what else writes there
    if out is not None and not _process_path(out):  # (a file in /dev/shm is a file)
        _make_parent(out)  # as export, card and compare do: --out results/today/scores.csv
    with output_lock(out):  # from before its rows are read until the last is written
        return _score_stream(items, scorer, out, fmt=fmt, resume=resume,
                             retry_failed=retry_failed, progress=progress,
                             fsync_every=fsync_every, record=record, warn=warn)


def _make_parent(out: str | Path) -> None:
    """The folder ``out`` goes in, made if missing; one line naming it when it cannot be."""
    parent = Path(out).parent
    try:
        make_folder(parent)
    except OSError as e:
        raise VsentError(f"--out {out}: cannot make its folder {parent}: {e.strerror or e}") \
            from None


def _score_stream(items: Iterable[str | Path | Unmatched], scorer: Scorer,
                  out: str | Path | None, *, fmt: str, resume: bool, retry_failed: bool,
                  progress: bool, fsync_every: float, record: dict[str, Any] | None,
                  warn: Callable[[str], None] | None) -> Summary:
    summary = Summary()
    done = Done(keys=np.zeros(0, np.uint64))
    if resume:
        done = _out_error(out, read_done, out, fmt)  # checks the file before anything changes
    keep = None
    if record is not None and out is not None and not _process_path(out):
        keep, warning = record_for(out, record, has_rows=done.rows > 0)
        if warning:
            (warn or _warn_stderr)(warning)
    if resume:
        dropped = done.failed if retry_failed else 0
        done = _out_error(out, _cut_for_resume, out, fmt, done, retry_failed)
        summary.total = summary.resumed = done.rows
        summary.failed = done.failed
        if dropped:  # said: an image the inputs no longer name keeps no row
            (warn or _warn_stderr)(
                f"--retry-failed: {dropped} error row{'s' if dropped > 1 else ''} dropped from "
                f"{out}; their images are scored again as the inputs name them")
    rows = with_unmatched(skip_done(items, done), scorer)
    if on_terminal(progress):
        from tqdm.auto import tqdm

        rows = tqdm(rows, unit="img")
    with RowWriter(out, fmt, append=resume, fsync_every=fsync_every) as writer:
        if keep is not None and writer.regular:  # out is open (emptied unless resumed)
            write_record(out, keep)
        for row in rows:
            writer.write(row)
            summary.total += 1
            summary.failed += bool(row["error"])
    return summary


def _cut_for_resume(out: str | Path, fmt: str, done: Done, retry_failed: bool) -> Done:
    """Make ``out`` end at its last complete row (a line cut by a kill is scored again), after
    dropping its error rows for ``retry_failed``; what it then holds."""
    if retry_failed and done.failed:
        drop_failed_rows(out, fmt)  # also drops the line cut by a kill
        done = read_done(out, fmt)
    if Path(out).exists() and Path(out).stat().st_size != done.complete_bytes:
        os.truncate(out, done.complete_bytes)
    return done


def _out_error(out: str | Path, fn: Callable[..., Done], *args: Any) -> Done:
    """``fn(*args)``, an OSError of which (a disk full while ``--retry-failed`` copies the
    good rows, a read-only file system) is one line naming ``--out``, as when rows are
    written: the output is then left with its complete rows (``drop_failed_rows`` replaces
    it only once its copy is whole)."""
    try:
        return fn(*args)
    except OSError as e:
        raise VsentError(f"--out {out}: cannot prepare --resume ({e.strerror or e}); its "
                         "rows are kept as they were") from None


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)
