"""Decode and resize every image once: a memory-mapped uint8 (N, S, S, 3) array on disk.

Training reads crops from this array instead of decoding JPEGs every epoch. The cache file
is keyed by the output size, the decoder (a format tag with Pillow's version) and, per image,
its resolved path, size, modification time, inode number and status-change time (ctime); the
same dataset loaded again reuses it.

An image edited in place or replaced (by a rename, ``cp``, ``rsync``) gives a new cache even
when its size and modification time are set back (``cp -p``, ``rsync -t``, ``os.utime``):
those tools cannot set the ctime back, and a replacing file has a new inode. Not detected: a
change that leaves all five the same, i.e. a same-size edit in place within the same timestamp
tick as the change before it (file systems keep coarse times: a few ms on ext4, more on
others) or made with the system clock set back; nor a libjpeg or zlib build changed under the
same Pillow version. A ``chmod``, ``chown`` or new hard link changes the ctime and only costs
a rebuild (minutes).

The caches that cost far more than a decode (backbone features, SIFT, colour histograms, cues,
proposals) use :func:`content_key` instead: each file's bytes, so copies of the data share them
and only an edit makes a new entry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import PIL

from vsent.data._common import default_workers, positive_int
from vsent.data.datasets import Dataset, check_dataset
from vsent.data.images import ImageSource, load_resized, stat_file
from vsent.errors import ImageError, VsentError, os_reason
from vsent.files import (
    NPZ_READ_ERRORS,
    abandoned,
    expand_user,
    file_digest,
    make_folder,
    mark_used,
    reserve_space,
    temp_path,
)
from vsent.progress import progress_bar

__all__ = ["CACHE_ENV", "cache_dir_default", "cache_images", "cache_key", "content_key",
           "image_cache", "key_number"]

logger = logging.getLogger("vsent")

#: Environment variable naming the cache folder (default ``~/.cache/vsent``).
CACHE_ENV = "VSENT_CACHE"
# Bump when the decoding/resizing changes, so stale caches are not reused. Pillow's version is
# part of it: an upgrade may decode or resample differently, and is not pinned.
_FORMAT = ("vsent-image-cache-v3:jpeg-draft-2x:PIL-bilinear-antialias:exif:alpha-over-white:"
           f"Pillow-{PIL.__version__}")


def cache_dir_default() -> Path:
    """``$VSENT_CACHE``, else ``~/.cache/vsent``."""
    env = os.environ.get(CACHE_ENV)
    return expand_user(env) if env else Path.home() / ".cache" / "vsent"


def cache_key(paths: Sequence[str | os.PathLike], size: int) -> str:
    """sha1 hex digest of (format version with Pillow's, size, and per path: the resolved
    path, file size, mtime, inode and ctime; see the module docstring for what it detects).

    Raises ImageError naming the first missing file.
    """
    # inode and ctime: a replaced image whose size and mtime were set back still differs
    return _key(paths, size, lambda p, st: json.dumps([str(p), *_stat_key(st)]))


def key_number(v: float) -> str:
    """A parameter as the text of a cache name: ``:g``'s short form (the names caches have
    always had) when it reads back as the same number, else ``repr`` (exact: 6 significant
    digits made 1.1000001 and 1.1 one name, and the second read the first's values)."""
    short = f"{v:g}"
    return short if float(short) == v else repr(v)


def content_key(paths: Sequence[str | os.PathLike], size: int) -> str:
    """sha1 hex digest of (format version with Pillow's, size, and per path, in order: the
    SHA-1 of the file's bytes): the key of the caches that cost far more than a decode (SIFT,
    colour histograms, cues, proposals, backbone features). A copy of the data, a ``chmod`` or
    an extraction elsewhere reuses them; an edited or replaced image, whatever its times, does
    not. Each file is read once per process while its size, times and inode stay the same.

    Raises ImageError naming the first missing file.
    """
    def digest(p: Path, st: os.stat_result) -> str:
        if not stat.S_ISREG(st.st_mode):  # reading a FIFO or a device would never end
            raise ImageError(f"{p}: not a regular file")
        return _file_sha1(str(p), *_stat_key(st))

    return _key(paths, size, digest)


def _key(paths: Sequence[str | os.PathLike], size: int,
         per_file: Callable[[Path, os.stat_result], str]) -> str:
    """sha1 hex digest of the format, ``size`` and ``per_file(resolved path, its stat)`` of
    each path in order; ImageError naming the first missing file."""
    h = hashlib.sha1()
    h.update(json.dumps([_FORMAT, int(size)]).encode())
    for p in paths:
        st = stat_file(Path(p))  # first: a link loop is an ImageError here, not resolve()'s
        p = Path(p).resolve()    # RuntimeError below (which reached explain as a traceback)
        h.update(per_file(p, st).encode())
    return h.hexdigest()


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one state of a file from another without reading it: size, mtime, inode,
    ctime."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


@functools.lru_cache(maxsize=1 << 18)
def _file_sha1(path: str, *key: int) -> str:
    """SHA-1 of ``path``'s bytes; ``key`` (size, times, inode) is part of the memo's key only."""
    try:
        return file_digest(path, "sha1")
    except OSError as e:
        raise ImageError(f"{path}: {os_reason(e)}") from None


def image_cache(
    dataset: Dataset,
    size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """All images of ``dataset`` decoded and warped to ``size`` x ``size``, memory-mapped.

    Parameters
    ----------
    dataset : Dataset
    size : int
        Output side in pixels (the papers use 256).
    cache_dir : path-like, optional
        Where cache files live; default ``$VSENT_CACHE``, else ``~/.cache/vsent``.
    workers : int, optional
        Decoding threads; default one per CPU this process may use, at most 32.
    progress : bool
        Show a progress bar while building (without it, a log line a minute: vsent.progress).

    Returns
    -------
    numpy.memmap
        Read-only, shape (N, size, size, 3), dtype uint8, RGB, row i = ``dataset.paths[i]``.

    Raises
    ------
    vsent.errors.ImageError
        An image is missing or cannot be decoded (nothing is left in the cache).
    """
    check_dataset(dataset, "image_cache")
    size = _check_size(size)
    n = len(dataset.paths)
    if n == 0:
        return _readonly(np.empty((0, size, size, 3), dtype=np.uint8))
    folder = expand_user(cache_dir) if cache_dir is not None else cache_dir_default()
    key = cache_key(dataset.paths, size)
    final = folder / f"images-{key[:20]}-{n}x{size}x{size}x3.npy"
    if final.is_file():
        arr = _open_existing(final, (n, size, size, 3))
        if arr is not None:
            logger.info("image cache: reusing %s", final)
            mark_used(final)
            return arr
    try:
        make_folder(folder)
    except OSError as e:
        raise VsentError(f"{folder}: cannot create the image cache folder ({e.strerror or e}); "
                         f"set ${CACHE_ENV} to a writable folder") from None
    # A unique temporary name: concurrent builders never write into the same file, and the
    # final name only ever appears complete (os.replace is atomic).
    # (its writer's pid and host in its name: _remove_abandoned)
    tmp = temp_path(final)
    _remove_abandoned(final)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        try:
            reserve_space(tmp)  # a full disk: an OSError now, not a SIGBUS in the middle
            _fill(out, dataset.paths, size, workers, progress, desc=f"caching {n} images @{size}")
            out.flush()
        finally:
            del out
        os.replace(tmp, final)
    except OSError as e:
        raise VsentError(f"{tmp}: cannot write the image cache ({e.strerror or e}; it takes "
                         f"{n * size * size * 3 / 1e6:.1f} MB in {folder}); set ${CACHE_ENV} "
                         "to a writable folder with room") from None
    finally:
        with contextlib.suppress(OSError):  # a read-only file system refuses even this
            tmp.unlink(missing_ok=True)
    logger.info("image cache: built %s", final)
    return np.load(final, mmap_mode="r")


def _remove_abandoned(final: Path) -> None:
    """Delete the temporary files of ``final`` that a killed build left (each is as large as
    the cache): :func:`vsent.files.abandoned`."""
    for old in final.parent.glob(f".{final.name}.*.tmp"):
        try:
            if abandoned(old):
                old.unlink()
                logger.info("image cache: removed %s, left by an interrupted build", old)
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            pass


def cache_images(
    images: Sequence[ImageSource],
    size: int = 256,
    workers: int | None = None,
) -> np.ndarray:
    """Decode and warp images in memory (no disk cache): a small batch, e.g. in a notebook.

    Parameters
    ----------
    images : sequence of anything :func:`vsent.data.images.load_rgb` accepts
    size : int
        Output side in pixels.
    workers : int, optional
        Decoding threads; default one per CPU this process may use, at most 32.

    Returns
    -------
    numpy.ndarray
        (N, size, size, 3) uint8, RGB.
    """
    size = _check_size(size)
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    _fill(out, list(images), size, workers, progress=False, desc="")
    return out


# --------------------------------------------------------------------------------------------


def _check_size(size: int) -> int:
    return positive_int(size, "size")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _open_existing(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when the file is unreadable or of the wrong shape."""
    try:
        arr = np.load(path, mmap_mode="r")
    except NPZ_READ_ERRORS as e:  # EOFError: a zero-byte file (a crash before writeback)
        logger.warning("image cache: %s is unreadable (%s); rebuilding it", path, e)
        return None
    if arr.shape != shape or arr.dtype != np.uint8:  # (the dtype said too)
        logger.warning("image cache: %s holds %s %s, expected uint8 %s; rebuilding it",
                       path, arr.dtype, arr.shape, shape)
        return None
    return arr


def _fill(out: np.ndarray, sources: Sequence[ImageSource], size: int, workers: int | None,
          progress: bool, desc: str) -> None:
    """out[i] = load_resized(sources[i], size), in threads (PIL releases the GIL)."""
    failed = threading.Event()

    def work(i: int) -> None:
        # First failure wins, in the workers too: the images not yet started are skipped at
        # once (cancelling waits for the caller's thread, which a busy machine may not run)
        if failed.is_set():
            return
        try:
            out[i] = load_resized(sources[i], size)
        except BaseException:
            failed.set()
            raise

    n = len(sources)
    if n == 0:
        return
    workers = max(1, min(default_workers(workers), n))
    with progress_bar(total=n, desc=desc, unit="img", enabled=progress) as bar, \
            ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(work, i) for i in range(n)]
        try:
            for f in as_completed(futures):
                f.result()
                bar.update(1)
        except BaseException:
            # First failure (or Ctrl-C) wins: do not decode the rest for nothing.
            failed.set()
            for f in futures:
                f.cancel()
            raise
