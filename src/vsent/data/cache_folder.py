"""What the cache folder holds, and removing the entries not used for a while (``vsent cache``).

vsent never deletes a cache entry on its own (another run may still want it), so a folder
grows with every copy of the data, ``chmod`` or Pillow upgrade (each gives a new image cache).
The entries, under ``$VSENT_CACHE`` (default ``~/.cache/vsent``):

=================  ================================================  ==========================
kind               entry                                             made by
=================  ================================================  ==========================
images             ``images-<key>-<N>x<S>x<S>x3.npy``                every training command
features           ``features-<key>-<N>.npy`` (backbone features)    ``--train head``, fuse
cues               ``cues/cues-<...>.npz``                           fuse ``--features cues``
colour             ``baselines/colour-<...>.npz`` (GCH, LCH)         baselines, fuse, strong
sift               ``baselines/sift-<...>/`` (a folder, per image)   baselines, fuse, strong
proposals          ``proposals/<key>/`` (a folder, per image)        regions
unfinished         ``.<entry>.<pid>@<host>.<hex>.tmp``               a build running or killed
=================  ================================================  ==========================

An entry's last use is its modification time: vsent sets it whenever it reads the entry
(:func:`vsent.files.mark_used`; entries made before vsent did so count from when they were
made). Only names of exactly these forms are ever removed, and a folder entry only when every
file in it is one vsent writes there (a ``<key>.npy`` or ``<key>.npz`` of its hex digest), so a
``--dir`` given by mistake loses nothing else. Removing an entry while a command uses it is
safe: a memory-mapped file stays readable to the process that has it open, and a missing entry
is rebuilt when next needed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from vsent.data.cache import cache_dir_default
from vsent.errors import VsentError
from vsent.files import abandoned, expand_user

__all__ = ["CacheEntry", "cache_entries", "clean_cache"]

#: (kind, folder under the cache root, pattern of the entry's name); folders end with "/".
#: The names vsent writes, exactly (vsent.data.cache, vsent.frozen, analyses.cues,
#: analyses.handcrafted, analyses.proposals).
KINDS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("images", "", re.compile(r"images-[0-9a-f]{20}-\d+x\d+x\d+x3\.npy")),
    ("features", "", re.compile(r"features-[0-9a-f]{20}-\d+\.npy")),
    ("cues", "cues", re.compile(r"cues-v\d+-[0-9A-Za-z.+-]+-[0-9a-f]{24}\.npz")),
    ("colour", "baselines", re.compile(r"colour-v\d+-[0-9a-f]{24}\.npz")),
    ("sift", "baselines", re.compile(r"sift-v\d+-(dense|kp)-[0-9A-Za-z.+-]+/")),
    ("proposals", "proposals", re.compile(r"[0-9a-f]{16}/")),
)
#: The files of a folder entry: one per image, named by its key (SIFT descriptors: 24 hex
#: digits, .npy; proposals: 40, .npz), and their writers' temporary files.
_FOLDER_FILES = {"sift": re.compile(r"[0-9a-f]{24}\.npy"),
                 "proposals": re.compile(r"[0-9a-f]{40}\.npz")}
#: A temporary file beside an entry: ``.<entry's name>.<writer>.tmp`` (vsent.files.temp_path).
_TEMP = re.compile(r"\.(?P<entry>.+?)\.\d+(@[^/]+)?\.[0-9a-f]{8}\.tmp")
DAY_S = 24 * 3600


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the cache folder.

    path : the file or folder; kind : one of :data:`KINDS`' or "unfinished"; size : bytes
    (of every file in a folder); last_used : modification time, seconds since the epoch;
    abandoned : for "unfinished", whether its writer is gone (else False).
    """

    path: Path
    kind: str
    size: int
    last_used: float
    abandoned: bool = False


def cache_entries(folder: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The entries of the cache ``folder`` (default ``$VSENT_CACHE``, else ``~/.cache/vsent``),
    oldest last use first; [] when the folder does not exist. Files of other names are not
    entries. VsentError when ``folder`` is not a folder or cannot be read."""
    root = _root(folder)
    if not root.exists():
        return []
    entries = []
    for sub in sorted({sub for _, sub, _ in KINDS}):
        base = root / sub if sub else root
        try:
            children = sorted(base.iterdir()) if base.is_dir() else []
        except OSError as e:
            raise VsentError(f"{base}: cannot read the cache folder ({e.strerror or e})") from None
        for child in children:
            entry = _entry(child, sub)
            if entry is not None:
                entries.append(entry)
    return sorted(entries, key=lambda e: (e.last_used, str(e.path)))


def clean_cache(unused_days: float, folder: str | os.PathLike | None = None,
                dry_run: bool = False) -> tuple[list[CacheEntry], list[tuple[CacheEntry, str]]]:
    """Remove the entries of the cache ``folder`` last used more than ``unused_days`` days ago
    (0: all of them), and the temporary files of builds that were killed; never the temporary
    file of a build still running.

    Returns (removed, failed): the entries removed (with ``dry_run``: that would be) and
    (entry, reason) for each one that could not be."""
    if not unused_days >= 0:  # also NaN
        raise VsentError(f"--clean: the number of days must be 0 or more, not {unused_days}")
    cutoff = time.time() - unused_days * DAY_S
    removed: list[CacheEntry] = []
    failed: list[tuple[CacheEntry, str]] = []
    for entry in cache_entries(folder):
        if entry.kind == "unfinished" and not entry.abandoned:
            continue
        if entry.kind != "unfinished" and entry.last_used > cutoff:
            continue
        if not dry_run:
            try:
                if entry.path.is_dir() and not entry.path.is_symlink():
                    shutil.rmtree(entry.path)
                else:
                    entry.path.unlink()
            except FileNotFoundError:
                pass  # another clean, or the build that finished it
            except OSError as e:
                failed.append((entry, e.strerror or str(e)))
                continue
        removed.append(entry)
    return removed, failed


def _root(folder: str | os.PathLike | None) -> Path:
    root = expand_user(folder) if folder is not None else cache_dir_default()
    if root.exists() and not root.is_dir():
        raise VsentError(f"{root}: not a folder (the cache is a folder: $VSENT_CACHE)")
    return root


def _entry(path: Path, sub: str) -> CacheEntry | None:
    """The entry at ``path`` (in the cache's subfolder ``sub``), or None for another file."""
    name = path.name + ("/" if path.is_dir() and not path.is_symlink() else "")
    temp = _TEMP.fullmatch(name)
    kind = _kind(temp["entry"], sub) if temp else _kind(name, sub)
    if kind is None:
        return None
    try:
        last_used = path.lstat().st_mtime
    except OSError:  # gone meanwhile
        return None
    if temp:
        return CacheEntry(path, "unfinished", _size(path), last_used, abandoned(path))
    if kind in _FOLDER_FILES and not _only_cache_files(path, _FOLDER_FILES[kind]):
        return None  # a folder of that name holding other files: not vsent's to list or remove
    return CacheEntry(path, kind, _size(path), last_used)


def _only_cache_files(folder: Path, pattern: re.Pattern[str]) -> bool:
    """Whether ``folder`` holds only files named by ``pattern`` (or their temporary files),
    no subfolder and no link."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return False
    for child in children:
        name = child.name
        temp = _TEMP.fullmatch(name)
        if child.is_symlink() or not child.is_file() \
                or not pattern.fullmatch(temp["entry"] if temp else name):
            return False
    return True


def _kind(name: str, sub: str) -> str | None:
    for kind, folder, pattern in KINDS:
        if folder == sub and pattern.fullmatch(name):
            return kind
    return None


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links not followed)."""
    if not path.is_dir() or path.is_symlink():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # gone meanwhile
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total
