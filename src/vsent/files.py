"""File helpers: writes that a kill never leaves half done, file fingerprints, ``~`` expansion.

:func:`atomic_open` writes beside the file, then renames: ``os.replace`` is atomic on POSIX
file systems, so a reader (or a resumed run) sees either the old file or the whole new one,
never a truncated one.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import hashlib
import io
import logging
import os
import re
import socket
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from vsent.errors import DataError, VsentError

try:
    import fcntl
except ImportError:  # Windows: no flock, nothing keeps a second run off an output
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("vsent")

#: What ``numpy.load`` of a damaged ``.npz`` (cut, empty, garbage) and reading its arrays raise:
#: a cache entry or stored result that is recomputed rather than a traceback.
NPZ_READ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile)


def load_cache_entry(path: Path, what: str, keys: Sequence[str] | None = None) -> Any:
    """A cache entry: an ``.npy`` file's array, or the arrays ``keys`` of an ``.npz`` file (a
    tuple, every one read before it returns). None when ``path`` is no file or is unreadable (a
    killed copy, a full disk): that is said in a line naming ``what`` ("SIFT cache entry"), and
    the caller computes the entry again and rewrites it."""
    import numpy as np  # (this module is imported by `vsent --help`, which loads no numpy)

    if not path.is_file():
        return None
    try:
        if keys is None:
            return np.load(path)
        with np.load(path) as z:
            return tuple(z[k] for k in keys)
    except NPZ_READ_ERRORS:
        log.warning("%s: unreadable %s, recomputing", path, what)
        return None


def expand_user(path: str | os.PathLike[str]) -> Path:
    """``Path(path).expanduser()``; a ``~user`` of an unknown user (or a ``~`` without a home
    directory) is a DataError naming ``path``, not pathlib's RuntimeError (a traceback)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise DataError(f"{os.fspath(path)}: cannot expand ~ (no such user, or no home "
                        f"directory)") from None


def check_path_arg(value: object, where: str) -> None:
    """TypeError naming ``where`` (``"load_checkpoint's path"``) when ``value`` is no path
    (None, a number): Python's own message, "expected str, bytes or os.PathLike object, not
    NoneType", names no argument."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{where} must be a path (str or os.PathLike), got "
                        f"{type(value).__name__}")


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute (``~`` expanded), each ``..`` taken as the file system takes it:
    the part up to the last ``..`` resolved (links in it followed), the rest kept as typed. A
    run's record of ``--data ../X`` then names X whatever the folder it was run from is called
    later (``<cwd>/../X`` broke when that folder was renamed), and a link named
    after the last ``..`` (the dataset's own folder) stays the link the user gave. A path
    whose ``..`` follows no folder (``missing/../X``) is kept as typed: the file system finds
    nothing there, and its error names it."""
    p = expand_user(path).absolute()
    if ".." not in p.parts:
        return p
    last = len(p.parts) - 1 - p.parts[::-1].index("..")
    if not os.path.isdir(Path(*p.parts[:last])):
        return p
    return Path(os.path.realpath(Path(*p.parts[:last + 1]))).joinpath(*p.parts[last + 1:])


def not_a_file_reason(path: str | os.PathLike[str]) -> str:
    """Why ``path``, which is no folder and no regular file, cannot be read as a file: absent,
    or something else is there (a FIFO or a device: reading it could hang)."""
    return "not a regular file" if Path(path).exists() else "no such file or directory"


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two spellings name one file or folder from here (relative, absolute, ``..``)."""
    return Path(a).resolve() == Path(b).resolve()


def make_folder(folder: str | os.PathLike[str]) -> None:
    """``folder`` and its missing parents made. OSError as ``mkdir`` raises it, but with a
    file where a folder must be its ``strerror`` names that file ("x is a file, not a
    folder": mkdir says "File exists" or "Not a directory", which reads as if all were
    fine)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        # lexists: a link whose target is gone stands in the way too (exists() passes over it)
        blocking = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), None)
        if blocking is None or blocking.is_dir():
            raise
        what = "a file" if blocking.exists() else "a broken symbolic link"
        raise type(e)(e.errno, f"{blocking} is {what}, not a folder") from None


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` when the block
    ends without an exception, and is removed otherwise (``path`` is then untouched)."""
    path = Path(path)
    # one name per writer: two threads of a process may write one file (a cache entry of two
    # images with the same bytes); each then replaces it whole
    tmp = temp_path(path)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_path(path: str | os.PathLike[str]) -> Path:
    """A new temporary name beside ``path`` for one writer: ``.<name>.<pid>@<host>.<8 hex>.tmp``
    (its writer's pid and host in it: :func:`abandoned` tells a killed writer's file)."""
    path = Path(path)
    tail = f".{os.getpid()}@{_host()}.{uuid.uuid4().hex[:8]}.tmp"
    name = path.name
    # a name near the file system's 255-byte limit would not take the tail: cut the name
    while len(os.fsencode(f".{name}{tail}")) > 255:
        name = name[:-1]
    return path.with_name(f".{name}{tail}")


@functools.cache
def _host() -> str:
    """This machine, as temporary names hold it (at most 32 characters): the hostname's first
    20 characters, ``~`` and 11 hex digits of the SHA-256 of the whole hostname and the PID
    namespace. Containers that share a hostname and a cache volume each have their own PID
    namespace: a writer in another one is not taken for a dead process of ours."""
    name = socket.gethostname()
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:  # not Linux
        pid_ns = ""
    digest = hashlib.sha256(f"{name}\0{pid_ns}".encode()).hexdigest()[:11]
    return f"{name[:20]}~{digest}"


#: A temporary file older than this was left by a killed writer (a cache build takes minutes).
ABANDONED_AFTER_S = 24 * 3600
#: The writer of a temporary file, from its name (:func:`temp_path`).
_WRITER = re.compile(r"\.(?P<pid>\d+)@(?P<host>[^/]+)\.[0-9a-f]{8}\.tmp$")


def abandoned(tmp: str | os.PathLike[str]) -> bool:
    """Whether the temporary file ``tmp`` was left by a writer that is gone (SIGKILL and the
    OOM killer skip the clean-up): one on this machine (and PID namespace, :func:`_host`) that
    no longer runs, or any a day old. Not the others: a live writer, maybe on another machine
    or in another container sharing the folder, is writing it.
    False when ``tmp`` is gone."""
    tmp = Path(tmp)
    writer = _WRITER.search(tmp.name)
    if writer is not None and writer["host"] == _host() \
            and not _running(int(writer["pid"])):
        return True
    try:
        return time.time() - tmp.stat().st_mtime > ABANDONED_AFTER_S
    except OSError:
        return False


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as someone else
        return True
    return True


def mark_used(path: str | os.PathLike[str]) -> None:
    """Set a cache entry's modification time to now: its last use, which ``vsent cache --clean``
    reads (access times are not kept on many file systems). Best effort: a read-only cache
    stays as it is."""
    with contextlib.suppress(OSError):
        os.utime(path)


#: The errno values of a write that found its disk (or the user's quota) full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def reserve_space(path: str | os.PathLike[str]) -> None:
    """Allocate the disk blocks of ``path``'s whole length now. A ``.npy`` made by
    ``np.lib.format.open_memmap`` is sparse: its blocks are taken as the rows are written
    through the mapping, and on a full disk that page fault kills the process with SIGBUS
    (no message, no clean-up, the partial file left behind). Reserved here, a full disk is an
    OSError (ENOSPC) before any work. A file system that cannot allocate ahead (no
    ``posix_fallocate``) is left as it was."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def check_replaceable(out: Path, option: str, kind: str, is_kind: Callable[[Path], bool],
                      *, overwrite: bool = False) -> None:
    """VsentError when the single-file output ``out`` exists and is not an earlier ``kind``
    (``is_kind(out)``, e.g. a vsent export): a checkpoint, a run's summary or any other file
    given by mistake is kept, unless ``overwrite`` (the caller's ``--overwrite``). A folder,
    and a file its user cannot write to, are refused either way."""
    if out.is_dir():
        raise VsentError(f"{option} {out}: is a folder; give the name of a file")
    # (the file is replaced by a rename, which its own mode does not stop: a user's chmod
    # a-w would be undone; root may write any file, so its mode is read too)
    if out.exists() and (not os.access(out, os.W_OK) or not out.stat().st_mode & 0o222):
        raise VsentError(f"{option} {out}: is write-protected; make it writable, or choose "
                         "another file")
    if not overwrite and out.exists() and not is_kind(out):
        raise VsentError(f"{option} {out}: exists and is no {kind}: choose another file, or "
                         "pass --overwrite to replace it")


def write_cache_file(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any],
                     what: str) -> None:
    """``write(binary file)`` into the cache entry ``path`` (its folder made), atomically
    (:func:`atomic_open`); a cache that cannot be written (read-only, full) is a VsentError
    naming its folder and what to do, not a traceback. ``what``: "feature cache", ..."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            write(f)
    except OSError as e:
        raise VsentError(f"{path.parent}: cannot write the {what} ({e.strerror or e}); set "
                         "$VSENT_CACHE to a writable folder") from None


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest (``hashlib`` ``algorithm``) of a file's bytes, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (a 240 MB checkpoint takes about half a second)."""
    return file_digest(path, "sha256")


def _size(f: str | os.PathLike[str]) -> int | None:
    """The size of a file in bytes; None when it cannot be read (missing, no permission)."""
    try:
        return os.path.getsize(f)
    except OSError:
        return None


def byte_groups(paths: Sequence[str | os.PathLike[str]], *, workers: int = 1
                ) -> list[int | None]:
    """For each file of ``paths``, the index of the first file in ``paths`` with the same
    bytes (its own index when no earlier one has them), whatever their names. Files are
    compared by size first: only those whose size occurs more than once are read (hashed by
    ``workers`` threads). A file that cannot be read matches nothing: None (or its own index,
    when no other file has its size)."""
    def digest(f: str | os.PathLike[str]) -> str | None:
        try:
            return file_sha256(f)
        except OSError:
            return None

    sizes = [_size(f) for f in paths]
    counts = Counter(sizes)
    read = [i for i, n in enumerate(sizes) if n is not None and counts[n] > 1]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        digests = dict(zip(read, ex.map(digest, [paths[i] for i in read]), strict=True))
    first: dict[str, int] = {}
    groups: list[int | None] = []
    for i, n in enumerate(sizes):
        d = digests.get(i)
        if n is None or (i in digests and d is None):
            groups.append(None)
        else:
            groups.append(i if d is None else first.setdefault(d, i))
    return groups


def first_of_groups(groups: Sequence[int | None], indices: Iterable[int]) -> dict[int, int]:
    """``{group: the first of indices in it}`` for the :func:`byte_groups` ``groups`` of the
    files at ``indices`` (a file of no group, None, is in none)."""
    first: dict[int, int] = {}
    for i in indices:
        if groups[i] is not None:
            first.setdefault(groups[i], i)
    return first


def same_bytes(a: Sequence[str | os.PathLike[str]], b: Sequence[str | os.PathLike[str]], *,
               workers: int = 1) -> dict[int, int]:
    """``{i: j}`` for each file ``a[i]`` with the same bytes as ``b[j]`` (the first such j),
    whatever their names. Only the files whose size occurs in both lists are read
    (:func:`byte_groups` of those): of a weak-label set of 100,000 images checked against
    Twitter I, only those that share a size with a Twitter image. A file that cannot be read
    matches nothing."""
    size_a, size_b = [_size(f) for f in a], [_size(f) for f in b]
    common = (set(size_a) & set(size_b)) - {None}
    read_a = [i for i, n in enumerate(size_a) if n in common]
    read_b = [j for j, n in enumerate(size_b) if n in common]
    groups = byte_groups([*(a[i] for i in read_a), *(b[j] for j in read_b)], workers=workers)
    first_b = first_of_groups(groups, range(len(read_a), len(groups)))
    return {i: read_b[first_b[g] - len(read_a)]
            for i, g in zip(read_a, groups[:len(read_a)], strict=True)
            if g is not None and g in first_b}


def check_not_an_input(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
                       option: str = "--out") -> None:
    """VsentError when ``out`` is one of ``inputs`` (also by another name or a link): writing
    it would destroy a file the command reads."""
    if not os.path.exists(out):
        return
    for path in inputs:
        if path is not None and os.path.exists(path) and os.path.samefile(out, path):
            raise VsentError(f"{option} {out} is {path}, which this command reads: choose "
                             f"another {option}")


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """``Path(path).write_text(text)``, atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


#: A CSV column's parser: its text to a value, ValueError saying why not.
Parse = Callable[[str], Any]


def csv_rows(path: Path, text: str, columns: Callable[[Sequence[str]], Sequence[tuple[str, Parse]]]
             ) -> list[tuple[int, dict[str, Any]]]:
    """``(line, row)`` for each row of the CSV file ``path``, whose text is ``text``.

    ``columns(header)`` sees the header first: it raises the VsentError of a missing column and
    returns the columns to convert, each with its parser; the other fields stay text.

    Raises
    ------
    VsentError
        Naming the file and line (where the row ends): a row cut short, one with more fields
        than the header (a lost newline ran two rows together), a value a parser refuses; a
        file the csv module cannot read.
    """
    rows = []
    try:
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or ()
            parsed = columns(header)
            for r in reader:
                line = reader.line_num  # (blank lines are skipped: not a count of rows)
                try:
                    rows.append((line, parse_csv_row(r, parsed, len(header))))
                except ValueError as e:
                    raise VsentError(f"{path}, line {line}: unreadable row ({e})") from None
    except csv.Error as e:  # e.g. a field over the csv module's limit (128 KiB)
        raise VsentError(f"{path}: not a readable CSV file ({e})") from None
    return rows


def parse_csv_row(r: dict[str | None, Any], parsed: Sequence[tuple[str, Parse]], n_fields: int
                  ) -> dict[str, Any]:
    """A csv.DictReader row with the ``parsed`` columns converted; ValueError saying why not
    (a row cut short or with more fields than the header's ``n_fields``, a value ``parse``
    refuses)."""
    if None in r.values():  # DictReader's filler for the fields a cut row lacks
        raise ValueError(f"cut short: {sum(v is not None for v in r.values())} of {n_fields} "
                         "fields")
    if None in r:  # DictReader's key for extra fields: a lost newline ran two rows together
        raise ValueError(f"{n_fields + len(r[None])} fields, the header has {n_fields}")
    row = dict(r)
    for column, parse in parsed:
        try:
            row[column] = parse(r[column])
        except ValueError as e:
            raise ValueError(f"{column}: {e}") from None
    return row


@contextmanager
def exclusive_lock(out: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<out>.vsent.lock``, beside ``out`` (a file, or a run
    folder), while ``command`` reads and writes ``out``: a second run of it (cron starting the
    job again, a requeued job, two terminals) would read what the first is still writing and
    write it twice (two ``vsent layers`` rewrote one feature file under each other: a bus
    error, or probes fitted on mixed rows). It is refused in one line naming the first run's
    pid. The lock file is removed at the end; a file system without locks is warned of.

    An ``out`` that is a file is locked itself too: a second name of it (a hard link) has
    another lock file, and a folder nobody may write to has none, while the file in it may
    be writable (two resumed predict runs appended to one file)."""
    if fcntl is None:
        yield
        return
    with _lock_beside(out, command), _lock_file_itself(out, command):  # (its pid first)
        yield


@contextmanager
def _lock_file_itself(out: str | os.PathLike[str], command: str) -> Iterator[None]:
    """:func:`exclusive_lock` on the file ``out`` itself, when it is one (else nothing)."""
    try:
        fd = os.open(out, os.O_RDONLY | os.O_NONBLOCK) if os.path.isfile(out) else None
    except OSError:  # unreadable: its writing says why, named
        fd = None
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise VsentError(f"another {command} is writing {out}; wait for it or stop "
                             "it") from None
        except OSError:  # a file system without locks: _lock_beside warns of it
            pass
        yield
    finally:
        os.close(fd)


@contextmanager
def _lock_beside(out: str | os.PathLike[str], command: str) -> Iterator[None]:
    """:func:`exclusive_lock`'s ``<out>.vsent.lock``."""
    path = _lock_path(out)
    while True:
        fd: int | None = None
        try:  # 0o666 under the umask: a group sharing the folder can resume after a kill
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's file left by a kill: reading is enough
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # none, and none can be made: see below
                pass
            except OSError as e:
                raise VsentError(f"--out {out}: cannot open {path.name} beside it: "
                                 f"{e.strerror or e}") from None
        except OSError as e:
            if e.errno not in (errno.EROFS, errno.ENOENT):  # (a folder not made yet: below)
                raise VsentError(f"--out {out}: cannot create {path.name} beside it: "
                                 f"{e.strerror or e}") from None
        if fd is None:  # a folder nobody can write to: nobody writes in it (a finished run
            yield       # there is shown; anything else is refused when it writes, named)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held: "pid@host command" as the holder wrote it
            held = os.pread(fd, 256, 0).decode("utf-8", "replace").strip() or "?"
            os.close(fd)
            pid, _, theirs = held.partition(" ")
            raise VsentError(f"another {theirs or command} (pid {pid}) is writing {out}; "
                             "wait for it or stop it") from None
        except OSError as e:  # a file system without locks (NFS without lockd, Lustre)
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            log.warning("--out %s: cannot lock %s (%s): nothing keeps a second run off this "
                        "output", out, path.name, e.strerror or e)
            yield
            return
        try:  # the holder may have removed the file (its run ended) before we locked it
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        mine = os.fstat(fd)
        if st is not None and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)
    try:
        with contextlib.suppress(OSError):  # (opened read-only: the pid is not written)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}@{socket.gethostname()} {command}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):  # removed while held: the next run locks a new file
            path.unlink()
        os.close(fd)


def _lock_path(out: str | os.PathLike[str]) -> Path:
    """``<out>.vsent.lock`` of the real ``out`` (two runs given it through a link share one
    lock); a name near the 255-byte limit is cut and told apart by a digest of it."""
    real = Path(os.path.realpath(out))
    name = f"{real.name}.vsent.lock"
    if len(os.fsencode(name)) > 255:
        digest = hashlib.sha256(os.fsencode(real.name)).hexdigest()[:12]
        name = f"{os.fsencode(real.name)[:200].decode('utf-8', 'ignore')}~{digest}.vsent.lock"
    return real.with_name(name)
