"""Datasets: the Twitter I layout, a folder with positive/ and negative/, or a CSV of path,label.

:func:`load_dataset` reads labels, checks them (values, duplicates, unknown files, malformed
lines) and, by default, that every image decodes. Duplicates are found by file, not by
spelling: ``sub/../a.jpg``, or a link to a listed image, is that image a second time.
Problems are reported together, each with its file and line: every label problem in one
error, then (labels clean) every image that does not decode in one error, so a file with both
needs two runs to list all. ``skip_bad=True`` drops the bad items instead and records them in
:attr:`Dataset.skipped`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsent.config import SUBSETS
from vsent.data._common import default_workers
from vsent.data.images import load_rgb
from vsent.errors import BadItemsError, DataError, ImageError, VsentError
from vsent.files import check_path_arg, expand_user, not_a_file_reason

__all__ = [
    "CLASS_NAMES", "IMAGE_EXTENSIONS", "SUBSETS", "Dataset", "describe", "load_dataset",
]

logger = logging.getLogger("vsent")

#: Class names indexed by label: 0 = negative, 1 = positive.
CLASS_NAMES = ("negative", "positive")
#: File extensions taken as images in the positive/ + negative/ folder layout.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm",
     ".pbm"}
)
#: How many problems an error message lists before "and N more".
MAX_LISTED = 20

_CSV_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image set.

    Attributes
    ----------
    root : Path
        Dataset folder (for a CSV: the folder holding the CSV). Absolute.
    names : list of str
        Item ids as written in the label source (Twitter: the file name; folder: the path
        relative to ``root``, e.g. ``positive/a.jpg``; CSV: the path column). Fold files refer
        to items by these names.
    paths : list of Path
        Absolute image paths, aligned with ``names``.
    labels : numpy.ndarray
        (N,) int64, read-only; 1 = positive, 0 = negative.
    source : str
        "twitter", "folder" or "csv".
    subset : str or None
        Twitter agreement subset ("five", "four", "three"); None for other sources.
    skipped : list of (str, str)
        ``(where, reason)`` for every label line or image dropped by ``skip_bad=True``;
        ``where`` is ``"<label file>:<line>"`` or the image path.
    label_file : Path or None
        The CSV file for a CSV dataset (absolute); None for the other sources.
    """

    root: Path
    names: list[str]
    paths: list[Path]
    labels: np.ndarray
    source: str
    subset: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    label_file: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def title(self) -> str:
        """What the data is, for titles: "Twitter five-agree", the CSV file with its folder
        ("photos/labels.csv"), else the folder's name."""
        if self.source == "twitter":
            return f"Twitter {self.subset}-agree"
        if self.label_file is not None:
            return f"{self.root.name}/{self.label_file.name}"
        return self.root.name

    @property
    def location(self) -> Path:
        """Where the labels come from, for messages: the CSV file of a CSV dataset, else
        ``root`` (a user who gave ``--data labels.csv`` reads that name back)."""
        return self.label_file if self.label_file is not None else self.root

    def item_lines(self) -> list[bytes]:
        """Per item, in order, what :meth:`fingerprint` hashes of it: ``name<TAB>label<TAB>file
        size in bytes`` (-1 for a file that is gone), UTF-8; one ``stat`` each."""
        out = []
        for name, path, label in zip(self.names, self.paths, self.labels, strict=True):
            try:
                size = path.stat().st_size
            except OSError:
                size = -1
            out.append(f"{name}\t{int(label)}\t{size}".encode("utf-8", "surrogateescape"))
        return out

    def fingerprint(self, lines: Sequence[bytes] | None = None) -> dict[str, Any]:
        """Counts and a SHA-256 of every item's name, label and file size (``lines``: its
        :meth:`item_lines`, when the caller has them already): a resumed run
        compares it with the one it started with, so that folds are not trained on two versions
        of the data.

        It detects an item added, removed, renamed or relabelled, and an image whose file size
        changed (or that went missing). It does not detect an image replaced or edited in place
        by one of the same size: neither file contents nor modification times are hashed
        (reading every image on each resume costs too much, and a copy with ``cp`` or a
        checkout gives new mtimes to unchanged data). The formula stays as it is: stored runs
        compare the value it gave when they started.
        """
        h = hashlib.sha256()
        for line in self.item_lines() if lines is None else lines:
            h.update(line + b"\n")
        return {"n_images": len(self), "n_positive": int(np.sum(self.labels == 1)),
                "sha256": h.hexdigest()}


def describe(ds: Dataset) -> str:
    """One line: size, class counts, source (and skipped items, if any)."""
    n_pos = int(np.sum(ds.labels == 1))
    n_neg = int(np.sum(ds.labels == 0))
    src = f"twitter {ds.subset}-agree" if ds.source == "twitter" else ds.source
    line = f"{len(ds)} images ({n_pos} positive, {n_neg} negative), {src} dataset at {ds.location}"
    # an extra training set (vsent.data.extra) also leaves out copies of base images
    copies = sum(1 for _, why in ds.skipped if why.startswith("copy of"))
    if len(ds.skipped) > copies:
        bad = len(ds.skipped) - copies
        line += f", {bad} bad {'item' if bad == 1 else 'items'} skipped"
    if copies:
        what = "copy of a base image" if copies == 1 else "copies of base images"
        line += f", {copies} {what} left out"
    return line


def dataset_layout(path: str | os.PathLike) -> str | None:
    """The layout :func:`load_dataset` reads at ``path`` ("twitter", "folder" or "csv"; the
    ``source`` of its Dataset), from the names alone; None when it is none of them."""
    path = Path(path)
    if path.is_file():
        return "csv"
    if (path / "images").is_dir() and (path / "ground_truth").is_dir():
        return "twitter"
    if (path / "positive").is_dir() and (path / "negative").is_dir():
        return "folder"
    return None


def check_dataset(value: object, where: str) -> None:
    """TypeError when ``value``, a :class:`Dataset` for ``where``, is its path: an
    AttributeError on ``.labels`` said nothing of what to pass."""
    if isinstance(value, str | bytes | os.PathLike):
        raise TypeError(f"{where} takes a Dataset, got the path {value!r}: pass "
                        f"vsent.data.load_dataset({value!r})")
    if not isinstance(value, Dataset):  # (api60: labels or a list of names, say)
        raise TypeError(f"{where} takes a Dataset (vsent.data.load_dataset), got "
                        f"{type(value).__name__}")


def load_dataset(
    data: str | os.PathLike | Dataset,
    subset: str = "five",
    skip_bad: bool = False,
    validate: bool = True,
) -> Dataset:
    """Read a labelled dataset, detecting its layout.

    Parameters
    ----------
    data : str or path-like
        One of

        * a Twitter I folder: ``images/`` + ``ground_truth/twitter_{five,four,three}_agrees.txt``
          (lines ``<file name> <label>``, 1 = positive, 0 = negative);
        * a folder with ``positive/`` and ``negative/`` subfolders (image files found
          recursively; names are paths relative to the folder);
        * a CSV file with a header ``path,label``: paths relative to the CSV's folder (or
          absolute), labels 0/1 or negative/positive.

        A :class:`Dataset` is returned unchanged.
    subset : {"five", "four", "three"}
        Agreement subset of Twitter I; ignored for the other layouts.
    skip_bad : bool
        Drop bad label lines and undecodable images (recorded in ``Dataset.skipped`` and
        logged) instead of raising.
    validate : bool
        Decode every image once (in threads) to catch corrupt, truncated or non-image files now
        rather than in the middle of training.

    Returns
    -------
    Dataset

    Raises
    ------
    vsent.errors.DataError
        Missing paths, unknown layout, and (unless ``skip_bad``) every problem found in the
        labels, listed with file and line, or, when the labels are clean, every image that
        does not decode.
    """
    if isinstance(data, Dataset):
        return data
    if subset not in SUBSETS:
        raise VsentError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    for name, flag in (("skip_bad", skip_bad), ("validate", validate)):
        if not isinstance(flag, bool | np.bool_):  # (api60: "no" is true: bad images skipped)
            raise TypeError(f"load_dataset's {name} must be True or False, got {flag!r}")
    check_path_arg(data, "load_dataset's data")
    path = expand_user(data)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    path = path.resolve()

    source = dataset_layout(path)
    if source == "csv":
        ds_subset, root = None, path.parent
        items, problems = _read_csv(path)
    elif source == "twitter":
        ds_subset, root = subset, path
        items, problems = _read_twitter(path, subset)
    elif source == "folder":
        ds_subset, root = None, path
        items, problems = _read_folder(path)
    else:
        raise DataError(
            f"{path}: not a dataset: expected images/ + ground_truth/ (Twitter I layout), "
            f"positive/ + negative/ subfolders, or a CSV file with a path,label header"
        )

    _settle(problems, skip_bad, f"{len(problems)} bad label "
                                f"{'entry' if len(problems) == 1 else 'entries'}")
    skipped = list(problems)
    if validate and items:
        bad = _check_images([p for _, p, _ in items])
        _settle(bad, skip_bad, f"{len(bad)} of {len(items)} images cannot be decoded")
        bad_paths = {where for where, _ in bad}
        items = [it for it in items if str(it[1]) not in bad_paths]
        skipped += bad
    if not items:
        raise DataError(f"{path}: no usable images" + (" (all skipped)" if skipped else ""))

    names = [n for n, _, _ in items]
    labels = np.array([lab for _, _, lab in items], dtype=np.int64)
    labels.flags.writeable = False
    ds = Dataset(root=root, names=names, paths=[p for _, p, _ in items], labels=labels,
                 source=source, subset=ds_subset, skipped=skipped,
                 label_file=path if source == "csv" else None)
    logger.info("dataset: %s", describe(ds))
    return ds


# --------------------------------------------------------------------------------------------
# problem reporting

Item = tuple[str, Path, int]  # (name, absolute path, label)
Problem = tuple[str, str]  # (where, reason)


def format_problems(problems: Sequence[Problem], headline: str) -> str:
    """``headline`` then one ``where: reason`` per line, at most :data:`MAX_LISTED` of them."""
    lines = [f"{headline}:"]
    lines += [f"  {where}: {reason}" for where, reason in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"  and {len(problems) - MAX_LISTED} more")
    return "\n".join(lines)


def _settle(problems: list[Problem], skip_bad: bool, headline: str) -> None:
    """Raise all problems at once, or (skip_bad) log them and carry on."""
    if not problems:
        return
    if not skip_bad:
        raise BadItemsError(format_problems(problems, headline + " (fix them or skip them "
                                                      "with --skip-bad, or skip_bad=True in "
                                                      "Python)"))
    for where, reason in problems:
        logger.warning("skipping %s: %s", where, reason)


# --------------------------------------------------------------------------------------------
# layouts


def _shown(text: str) -> str:
    """``text`` as is, or its repr when it holds control characters (a NUL, an escape
    sequence): a name from a label file must not write raw bytes to the terminal."""
    return text if text.isprintable() else repr(text)


def twitter_label_file(root: Path, subset: str) -> Path:
    """The label file of a Twitter I folder's agreement ``subset`` ("five", ...)."""
    return root / "ground_truth" / f"twitter_{subset}_agrees.txt"


def _read_twitter(root: Path, subset: str) -> tuple[list[Item], list[Problem]]:
    label_file = twitter_label_file(root, subset)
    images_dir = root / "images"
    rows = read_label_lines(label_file)
    if not rows:
        raise DataError(f"{label_file}: empty label file")
    items: list[Item] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    first_file: dict[tuple[int, int] | Path, tuple[int, str]] = {}
    for lineno, line in rows:
        where = f"{label_file}:{lineno}"
        fields = line.split()
        if len(fields) != 2:
            problems.append((where, f"expected '<file name> <label>' (2 fields), got "
                                    f"{len(fields)}: {line.strip()[:80]!r}"))
            continue
        name, raw = fields
        shown = _shown(name)
        if raw not in ("0", "1"):
            problems.append((where, f"label {raw!r} of {shown} is not 0 (negative) or 1 "
                                    f"(positive)"))
            continue
        if name in (".", "..") or Path(name).name != name:  # ./0.jpg would be 0.jpg twice
            problems.append((where, f"{shown} is not a file name in {images_dir} (no folders)"))
            continue
        if name in first_line:
            problems.append((where, f"{shown} is a duplicate of line {first_line[name]}"))
            continue
        first_line[name] = lineno
        img = images_dir / name
        if not img.is_file():
            problems.append((where, f"{shown}: no such image in {images_dir}"))
            continue
        # a link in images/ to another listed image: one picture under two names could be
        # trained on and tested in the same fold
        real = _file_id(img)
        if real in first_file:
            first_no, first_name = first_file[real]
            problems.append((where, f"{shown} is the file of line {first_no} "
                                    f"({_shown(first_name)})"))
            continue
        first_file[real] = lineno, name
        items.append((name, img, int(raw)))
    return items, problems


def _file_id(path: Path) -> tuple[int, int] | Path:
    """(device, inode) of an existing file, so that symbolic and hard links to one picture are
    one image; ``path`` itself when it cannot be stat'ed (a missing file, reported elsewhere)."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        return path
    if st.st_ino == 0:  # a file system without inode numbers (FAT, some SMB/FUSE): by name
        return path.resolve()
    return st.st_dev, st.st_ino


def read_label_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a ``<name> <label>`` text file (a Twitter I label file, a campos
    fold file) with their 1-based numbers: UTF-8, with or without a BOM, any line ending.

    The one reader of that format (:mod:`vsent.data.folds` and :mod:`vsent.data.extra` read
    through it), so every caller reports a missing, unreadable or non-UTF-8 file the same way:
    a one-line DataError naming the file (and, for a byte that is not UTF-8, its line).
    """
    text = read_text(path, "text file")
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def label_file_names(path: Path) -> set[str]:
    """First field of every non-blank line of a label file (whatever the rest of the line)."""
    return {line.split()[0] for _, line in read_label_lines(path)}


def read_text(path: Path, kind: str, errors: str = "strict") -> str:
    """The text of the UTF-8 file ``path`` (a BOM dropped), whole: a missing, unreadable or
    non-UTF-8 file is a one-line DataError naming it, and for a byte that is not UTF-8 its
    line and offset in the file (a decoder reading in chunks counts from the chunk's start).
    ``kind`` names what the file should be ("CSV file"); ``errors="surrogateescape"`` reads
    the files vsent writes, whose file names are the bytes the file system holds."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a {kind}")
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror or e}") from None
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8", errors)
    except UnicodeDecodeError as e:
        # the bytes before the first bad one decode; the line count is that of splitlines()
        before = data[start:start + e.start].decode("utf-8")
        lineno = len((before + "x").splitlines())
        raise DataError(f"{path}:{lineno}: not a UTF-8 {kind} ({e.reason} at byte "
                        f"{start + e.start})") from None


def _read_folder(root: Path) -> tuple[list[Item], list[Problem]]:
    items: list[Item] = []
    problems: list[Problem] = []
    first: dict[tuple[int, int] | Path, str] = {}
    for label, cls in ((1, "positive"), (0, "negative")):
        for p in _files_under(root / cls):
            rel = p.relative_to(root)
            if p.suffix.lower() not in IMAGE_EXTENSIONS or any(
                    part.startswith(".") for part in rel.parts):
                continue
            if not p.exists():  # (a link to nothing: the image it stood for is not trained on)
                problems.append((str(p), "is a broken link (what it points to is gone)"))
                continue
            if not p.is_file():  # a FIFO or device named like an image: said, not dropped
                problems.append((str(p), "is not a regular file"))
                continue
            name = rel.as_posix()
            # a link to another listed image (maybe of the other class): one picture listed
            # twice could be trained on and tested in the same fold
            real = _file_id(p)
            if real in first:
                problems.append((str(p), f"is the file of {_shown(first[real])} (a link or "
                                         f"another path to the same image)"))
                continue
            first[real] = name
            items.append((name, p, label))
    if not items and not problems:  # (broken links and the like are named by the caller)
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"{root}: no image files ({exts}) under positive/ or negative/")
    return items, problems


def _files_under(folder: Path) -> list[Path]:
    """Every file under ``folder`` (links included, broken ones too), sorted, following linked
    folders (a class folder assembled from links to others: ``Path.rglob`` skipped them,
    silently) and visiting each real folder once (a link loop ends). A folder holding a vsent
    run is no data: a run given ``--out`` inside ``positive/`` added its figures to the
    images it trains on (and changed the data it would resume on)."""
    from vsent.runs import no_images_here

    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        info = os.stat(top)
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        if no_images_here(top):
            dirs[:] = []
            continue
        files += [Path(top) / n for n in names]
    return sorted(files)


def _read_csv(path: Path) -> tuple[list[Item], list[Problem]]:
    text = read_text(path, "CSV file")
    try:
        rows = list(_csv_rows(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV: {e}") from None
    if not rows:
        raise DataError(f"{path}: empty file (expected a header line 'path,label')")
    header_line, header = rows[0]
    cols = [h.strip().lower() for h in header]
    if "path" not in cols or "label" not in cols:
        raise DataError(f"{path}:{header_line}: expected a header with columns path,label, "
                        f"got {','.join(header)!r}")
    if len(rows) == 1:
        raise DataError(f"{path}: no rows after the header")
    i_path, i_label = cols.index("path"), cols.index("label")
    items: list[Item] = []
    problems: list[Problem] = []
    # keyed by the resolved file: sub/../a.jpg or a link to a.jpg is a.jpg a second time
    first_line: dict[tuple[int, int] | Path, tuple[int, Path, str]] = {}
    for lineno, row in rows[1:]:
        where = f"{path}:{lineno}"
        if len(row) != len(cols):
            problems.append((where, f"expected {len(cols)} fields ({','.join(cols)}), "
                                    f"got {len(row)}"))
            continue
        name, raw = row[i_path].strip(), row[i_label].strip()
        shown = _shown(name)
        label = _CSV_LABELS.get(raw.lower())
        if label is None:
            problems.append((where, f"label {raw!r} of {shown} is not 0/1 or negative/positive"))
            continue
        if not name:
            problems.append((where, "empty path"))
            continue
        try:
            img = expand_user(name)
        except DataError:
            problems.append((where, f"cannot expand ~ in {shown} (no such user, or no home "
                                    f"directory)"))
            continue
        img = img if img.is_absolute() else path.parent / img
        try:
            real = _file_id(img.resolve())
        except ValueError:  # "embedded null byte": no file has that name
            problems.append((where, f"{_shown(str(img))}: not a valid path (a NUL byte)"))
            continue
        except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before 3.13)
            problems.append((where, f"{_shown(str(img))}: {e}"))
            continue
        if real in first_line:
            first_no, first_img, first_name = first_line[real]
            if first_img == img:  # the same spelling (up to ./ and //)
                problems.append((where, f"{shown} is a duplicate of line {first_no}"))
            else:
                problems.append((where, f"{shown} is the file of line {first_no} "
                                        f"({_shown(first_name)})"))
            continue
        first_line[real] = lineno, img, name
        if img.is_dir():
            problems.append((where, f"{_shown(str(img))}: is a directory, not an image file"))
            continue
        if not img.is_file():
            problems.append((where, f"{_shown(str(img))}: {not_a_file_reason(img)}"))
            continue
        items.append((name, img, label))
    return items, problems


def _csv_rows(f: Iterable[str]) -> Iterable[tuple[int, list[str]]]:
    """Non-empty CSV records with the line number they start on."""
    reader = csv.reader(f)
    start = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


# --------------------------------------------------------------------------------------------
# images


def _check_one(path: Path) -> Problem | None:
    try:
        load_rgb(path, min_side=1)  # 1/8 scale: fast
    except ImageError as e:
        return str(path), _reason_of(e, str(path))
    return None


def _reason_of(e: ImageError, where: str) -> str:
    msg = str(e)
    return msg[len(where) + 2:] if msg.startswith(where + ": ") else msg


def _check_images(paths: Sequence[Path], workers: int | None = None) -> list[Problem]:
    """Decode every image (JPEGs at 1/8 scale: enough to see the whole stream) in threads."""
    workers = default_workers(workers)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = list(ex.map(_check_one, paths))
    return [r for r in results if r is not None]
