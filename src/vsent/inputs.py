"""The images a command reads, lazily: files, folders, globs and lists of paths.

``vsent predict`` (through :mod:`vsent.batch`) and ``vsent explain`` take the same inputs:

* :func:`iter_inputs` walks files, folders (recursively, image suffixes only) and globs
  lazily (``os.scandir``; ``glob.iglob``, or :func:`_glob_deep` for ``**``), then the lines
  of ``--from-list FILE`` (``-``: standard input). An input that matches nothing becomes an
  :class:`Unmatched` item (an error row), never an exception.
* :func:`split_inputs` is its eager form, for small jobs.

Folders are walked in directory order (``os.scandir``), not sorted: sorting would hold a whole
directory listing. A resumed run compares paths as written, so give it the same inputs.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vsent.data.datasets import IMAGE_EXTENSIONS
from vsent.errors import VsentError, check_many, os_reason
from vsent.predict import error_row

Row = dict[str, Any]


@dataclass(frozen=True)
class Unmatched:
    """An input that matched no image file: it becomes one error row, in input order.

    Attributes
    ----------
    path : the input as given (file, folder or glob).
    reason : why nothing was found (``"<input>: ..."``).
    """

    path: str
    reason: str

    def row(self) -> Row:
        return error_row(self.path, self.reason)


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def walk_folder(folder: str | Path) -> Iterator[Path | Unmatched]:
    """Image files under ``folder`` (recursively, suffixes :data:`IMAGE_EXTENSIONS`), lazily;
    a folder that cannot be listed (e.g. permission denied) is an :class:`Unmatched` naming it,
    so its images are not lost without a row.

    Each directory is read with ``os.scandir`` as an iterator: files come out while the
    directory is still being read; only the sub-folders still to visit are held. Symbolic
    links to folders are not followed (no loops; as ``find`` does). A sub-folder holding a
    vsent run (an explain's overlays, an earlier ``--out`` put there) is skipped with a
    warning: its figures are no photos (heat maps of heat maps).
    """
    from vsent.runs import no_images_here

    todo = [Path(folder)]
    while todo:
        d = todo.pop()
        if d != Path(folder) and no_images_here(d):
            continue
        subdirs = []
        try:
            with os.scandir(d) as entries:
                for e in entries:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            subdirs.append(d / e.name)
                        elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                            yield d / e.name
                    except OSError:  # an entry that vanished or cannot be stat'ed: skip it
                        continue
        except OSError as e:  # an unreadable folder: a row says so, the rest of the walk goes on
            yield Unmatched(str(d), f"{d}: cannot list this folder ({os_reason(e)})")
            continue
        todo.extend(reversed(subdirs))  # visit sub-folders in listing order


def _walk_one(item: str | Path) -> Iterator[str | Path | Unmatched]:
    """One positional input: a file as given (the string, not normalised: rows name it as the
    user wrote it), a folder walked, a glob expanded (lazily; a folder it matches is walked,
    except with ``**``, whose matches already hold the folders' files)."""
    s = str(item)
    p = Path(item)
    try:
        is_dir, exists = p.is_dir(), p.exists()
    except OSError:  # a parent we may not search, a name too long: decoding gives its error row
        is_dir, exists = False, not _has_magic(s)
    if s == "":  # Path("") is ".": an unset variable must not score the current folder tree
        yield Unmatched(s, "'': an empty path (not the current folder)")
    elif is_dir:
        found = False
        for f in walk_folder(p):
            found = True
            yield f
        if not found:
            yield Unmatched(s, f"{s}: no image file ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                               "in this folder")
    elif exists or not _has_magic(s):
        # a missing plain path is still yielded: decoding gives its "no such file" row
        yield s
    else:
        found = False
        # ``**`` follows links to folders: a folder met again through a link (a link to a
        # parent: a loop) is not walked or scored again
        seen: dict[str, str] = {}  # real folder -> the folder as first met
        first_of: dict[str, str] = {}  # a matched file's folder as spelt -> seen's entry
        # (the walk's own: a folder it left at one place of the pattern may be walked at
        # another, and its files scored there)
        left: dict[str, str] = {}
        in_run = _RunFolders(s)
        matches = _glob_deep(s, left) if "**" in s else glob.iglob(s)
        for f in matches:
            found = True
            if os.path.isdir(f):
                if "**" not in s and not in_run(f):
                    yield from walk_folder(f)
                continue
            if in_run(os.path.dirname(f)):
                continue
            if "**" in s:
                folder = os.path.dirname(f)
                if folder not in first_of:
                    first_of[folder] = seen.setdefault(os.path.realpath(folder), folder)
                if first_of[folder] != folder:
                    continue
            yield f
        # folder met again -> the folder as first met
        again = {**left, **{d: first for d, first in first_of.items() if d != first}}
        twice = sorted(again)
        if twice:
            logging.getLogger("vsent").warning(
                "%s: %d folder(s) met again through links (e.g. %s is %s): each is walked "
                "once for each place of the pattern, and an image scored once",
                s, len(twice), twice[0], again[twice[0]] or ".")
        if not found:
            yield Unmatched(s, f"{s}: the pattern matched no file")


def _glob_deep(pattern: str, again: dict[str, str]) -> Iterator[str]:
    """``glob.iglob(pattern, recursive=True)`` for a pattern holding ``**``, lazily, that
    visits a real folder once for each place of the pattern: Python's glob follows links to
    folders without a memory, so one link to a parent folder was walked to the kernel's limit
    and two made a walk that never ended. A folder met again is recorded in ``again`` (the
    folder as met -> as first met). Otherwise as glob: names starting with "." are matched
    only by a part starting with "."; ``**`` as a whole part matches zero or more folders (and
    the files and folders below when it is the last part); unreadable folders match nothing;
    the matches come in glob's order (a folder's before its sub-folders', depth first, each
    folder in listing order): explain fingerprints its inputs in that order.
    One more difference: a ``.`` or ``..`` part after a wildcard spells a folder twice
    (``*/../**``), and the second spelling is walked as a folder met again.
    """
    parts = pattern.split(os.sep)
    fixed = next(k for k, part in enumerate(parts) if _has_magic(part))
    start = os.sep.join(parts[:fixed])  # as typed ("a//b" stays so in the rows, as in glob's)
    if fixed and not start:
        start = os.sep  # an absolute pattern starts at the root
    parts = [p for p in parts[fixed:-1] if p] + parts[-1:]
    seen: dict[tuple[str, int], str] = {}  # (real folder, part) -> the folder as first met
    # depth first: (folder, the part of the pattern to match in it), or (a match, None)
    todo: list[tuple[str, int | None]] = [(start, 0)]
    while todo:
        folder, i = todo.pop()
        if i is None:  # a match, in its turn
            yield folder
            continue
        part, last = parts[i], i == len(parts) - 1
        if part == "":  # a pattern ending in "/": folders only
            if os.path.isdir(folder):
                yield os.path.join(folder, "")
            continue
        if not _has_magic(part):  # as glob: an intermediate name is listed, not checked
            path = os.path.join(folder, part)
            if last:
                if os.path.lexists(path):
                    yield path
            else:
                todo.append((path, i + 1))
            continue
        if part == "**":
            if not os.path.isdir(folder or "."):  # (a missing a/b/.. resolves to a)
                continue
            first = seen.setdefault((os.path.realpath(folder or "."), i), folder)
            if first != folder:
                again.setdefault(folder, first)
                continue
        below: list[tuple[str, int | None]] = []
        try:
            with os.scandir(folder or ".") as entries:
                for e in entries:
                    if e.name.startswith(".") and not part.startswith("."):
                        continue
                    path = os.path.join(folder, e.name)
                    try:
                        is_dir = e.is_dir()  # links followed, as glob does
                    except OSError:
                        is_dir = False
                    if part == "**":
                        if last:
                            below.append((path, None))  # each entry, then what it holds
                        if is_dir:
                            below.append((path, i))
                    elif fnmatch.fnmatchcase(e.name, part):
                        if last:  # (the folder's matches come first: as they are listed)
                            yield path
                        elif is_dir:
                            below.append((path, i + 1))
        except OSError:
            pass
        todo.extend(reversed(below))
        if part == "**" and not last:
            todo.append((folder, i + 1))  # ``**`` as no folder at all: its matches first


class _RunFolders:
    """Whether a folder a glob matched holds a vsent run, or lies in one below the folder the
    pattern names (``photos/*`` matching ``photos/cam``, an explain's overlays: no photos);
    a pattern naming a run's folder itself (``runs/cam/*.png``) reads it. Paths
    are compared as the file system resolves them (``lnk/..`` is not ``.`` through a link).
    Said once a run, answers kept (one look a folder)."""

    def __init__(self, pattern: str) -> None:
        fixed = []
        for part in Path(pattern).parts[:-1]:
            if _has_magic(part):
                break
            fixed.append(part)
        self.root = os.path.realpath(os.path.join(*fixed) if fixed else ".")
        self.known: dict[str, bool] = {}  # by real path
        # by the glob's spelling: one realpath a folder, not one for each of its images
        self.spelt: dict[str, bool] = {}

    def __call__(self, folder: str) -> bool:
        if folder not in self.spelt:
            self.spelt[folder] = self._holds_run(os.path.realpath(folder or "."), folder)
        return self.spelt[folder]

    def _holds_run(self, real: str, folder: str) -> bool:
        from vsent.runs import no_images_here

        if real not in self.known:
            if real == self.root:
                self.known[real] = False
            elif no_images_here(real, folder):
                self.known[real] = True
            else:
                below = real.startswith(self.root.rstrip(os.sep) + os.sep)
                parent = os.path.dirname(real)
                self.known[real] = below and self._holds_run(parent, parent)
        return self.known[real]


def _nul_error(source: str, line: int) -> VsentError:
    """A list holding a NUL byte: ``find -print0``'s output, or a binary file given by
    mistake; no path holds one."""
    return VsentError(f"{source}: line {line} holds a NUL byte: not a text file of paths, one "
                      "per line (from find, use -print, not -print0)")


#: UTF-16's byte-order marks as a list's first line holds them, read as UTF-8 with the
#: name's bytes kept (surrogateescape).
_UTF16_BOMS = ("\udcff\udcfe", "\udcfe\udcff")


def _utf16_error(source: str) -> VsentError:
    """A list saved as UTF-16 (PowerShell's ``>``, Notepad's "Unicode"): its NUL bytes are
    no ``find -print0`` output."""
    return VsentError(f"{source}: UTF-16 text (its byte-order mark): save it as UTF-8, one "
                      "path per line")


def iter_list(lines: Iterable[str], source: str = "--from-list") -> Iterator[str]:
    """One path per line (``--from-list``), as written; blank lines and comment lines (first
    non-blank character ``#``; a file whose name starts with ``#`` is given as ``./#name``)
    are skipped, nothing else is interpreted (no globs, no folders: a list of millions is
    passed through as it is read).
    :func:`iter_inputs` reads a list file as the file system's names are read (UTF-8, other
    bytes kept as they are); a stream that cannot be decoded, or a line with a NUL byte, stops
    the list with a VsentError naming ``source`` (and the line)."""
    it = iter(lines)
    n = 0
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError:  # the rows scored so far are kept; --resume continues
            raise VsentError(f"{source}: not UTF-8 text after about line {n}") from None
        except OSError as e:  # a stale NFS handle, a terminal gone (EIO): a user's error too
            raise VsentError(f"{source}: cannot read past line {n} ({os_reason(e)}); the rows "
                             "written so far are kept") from None
        n += 1
        if n == 1 and line.startswith(_UTF16_BOMS):  # (a list on standard input: not peeked)
            raise _utf16_error(source)
        if "\0" in line:
            raise _nul_error(source, n)
        line = line.rstrip("\r\n")
        if n == 1:
            line = line.removeprefix("\ufeff")  # the byte-order mark some editors write
        bare = line.strip()
        if bare and not bare.startswith("#"):
            yield line


def iter_inputs(
    inputs: Iterable[str | Path] = (),
    *,
    from_list: str | Path | None = None,
    stdin: IO[str] | None = None,
) -> Iterator[str | Path | Unmatched]:
    """The images to score, lazily: ``inputs`` first (files, folders, globs), then the lines
    of ``from_list`` (a file, or ``"-"`` for ``stdin``, default ``sys.stdin``).

    A missing file is yielded as it is (its decoding fails with "no such file or directory");
    an empty folder or a glob that matches nothing yields an :class:`Unmatched`.
    Raises :class:`VsentError` when ``from_list`` cannot be opened (before anything else is
    yielded, so a typo is a user error, not a run with no rows).
    """
    check_many(inputs, "iter_inputs", "files, folders or globs")
    fh: IO[str] | Callable[[], IO[str]] | None = None
    if from_list is not None:
        if str(from_list) != "-":
            fh = _open_list(from_list)
        elif stdin is not None:
            fh = stdin  # a text stream of the caller's: read as it is, left open
        else:
            fh = _stdin_text  # opened when the list is reached (nothing to check before)
    return _iter_inputs(inputs, fh, f"--from-list {from_list}", caller=stdin)


def _open_list(from_list: str | Path) -> IO[str]:
    """The list file ``from_list`` as text, opened once: a pipe, a FIFO or ``/dev/stdin``
    cannot be read twice, so its head is peeked at in the buffer that the text is then read
    from (no line is lost).

    A path holds no NUL byte: an image or archive given by mistake is refused here (before
    anything is scored), not read as thousands of garbage paths (later lines: iter_list).
    Bytes that are not UTF-8 (a Latin-1 file name) stay the name's bytes, as ``os.listdir``
    gives them.
    """
    try:
        raw = open(from_list, "rb")  # noqa: SIM115 (closed by _iter_inputs, or below)
    except OSError as e:
        raise VsentError(f"--from-list {from_list}: {e.strerror or e}") from None
    try:
        head = raw.peek(4096)[:4096]  # (a pipe may give fewer bytes: what has arrived)
    except OSError as e:
        raw.close()
        raise VsentError(f"--from-list {from_list}: {e.strerror or e}") from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # (its NUL bytes: no -print0 hint)
        raw.close()
        raise _utf16_error(f"--from-list {from_list}")
    if b"\0" in head:
        raw.close()
        raise _nul_error(f"--from-list {from_list}", head[:head.index(b"\0")].count(b"\n") + 1)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def _stdin_text() -> IO[str]:
    """Standard input decoded as a list file is (UTF-8, other bytes kept as the name's
    bytes), whatever the locale: Python's own ``sys.stdin`` is strict outside the C and
    C.UTF-8 locales, and a Latin-1 name would stop the list there.

    It reads a duplicate of descriptor 0, unbuffered, not ``sys.stdin.buffer``: the list is
    read in a daemon thread (:class:`~vsent.inference.InputReader`), and one blocked in a
    buffered read holds that buffer's lock, which the interpreter takes as it shuts down (a
    stop while the list waits for more lines was "Fatal Python error", SIGABRT). A replaced
    ``sys.stdin`` without a descriptor (a test's StringIO) is read as it is.
    """
    if sys.stdin is None:  # (started with descriptor 0 closed)
        raise VsentError("--from-list -: standard input is closed")
    try:
        fd = os.dup(sys.stdin.fileno())
    except (AttributeError, ValueError):  # (io.UnsupportedOperation is a ValueError)
        return sys.stdin
    except OSError as e:
        raise VsentError(f"--from-list -: standard input: {e.strerror or e}") from None
    raw = io.FileIO(fd, "rb")  # closed with the text (a duplicate: standard input stays open)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape",  # type: ignore[arg-type]
                            newline="")


def _iter_inputs(inputs: Iterable[str | Path], fh: IO[str] | Callable[[], IO[str]] | None,
                 source: str, *, caller: IO[str] | None) -> Iterator[str | Path | Unmatched]:
    try:
        for item in inputs:
            yield from _walk_one(item)
        if callable(fh):
            fh = fh()
        if fh is not None:
            yield from iter_list(fh, source)
    finally:
        # what was opened here is closed; the caller's stream and sys.stdin are not
        if fh is not None and not callable(fh) and fh is not caller and fh is not sys.stdin:
            fh.close()


def split_inputs(inputs: Iterable[str | Path]) -> tuple[list[str | Path], list[Row]]:
    """Eager form of :func:`iter_inputs` for small jobs: the paths, and an error row for each
    input that matched nothing."""
    paths: list[str | Path] = []
    missing: list[Row] = []
    for it in iter_inputs(inputs):
        if isinstance(it, Unmatched):
            missing.append(it.row())
        else:
            paths.append(it)
    return paths, missing
