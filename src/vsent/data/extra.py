"""Extra, weakly labelled training images from the same dataset (issue 10, lever 1).

Twitter I's agreement subsets are nested: five-agree (882) in four-agree (1,116) in three-agree
(1,269). The 387 images of three-agree that are not five-agree carry majority labels (3 vs 2 or
4 vs 1 workers): weak labels, as the Flickr/SentiBank labels PCNN learns from (You et al.
2015). They are in no five-agree fold, so they can be added to every five-agree *training*
fold without touching a test fold.

Two traps make "not in the five-agree label file" not enough:

* **Copies.** Twitter I holds the same picture under several names (retweets): 13 groups of
  byte-identical files and about a dozen more re-encoded or rescaled copies. 11 such pairs
  have one image in five-agree and the other in the extra set, so a naive extra set would
  train on a copy of a test image. :func:`extra_train_set` drops every extra image that is a
  byte copy (sha1) or a near copy (:func:`near_duplicates`) of *any* base image (any base image
  is a test image in some fold).
* **Bad base lines.** The base names are read from the raw label file (first field of every
  non-blank line), not from a validated dataset, so a base image that ``skip_bad`` drops can
  still not come back as an extra image.

:class:`JointSet` lays the base images first and the extra images after them, so the base
dataset's fold indices stay valid in one joint image cache::

    base = load_dataset(root, "five")
    extra = extra_train_set(root, "five", "three")
    joint = with_extra(base, extra)
    images = image_cache(joint.dataset, size)            # (n_base + n_extra, S, S, 3)
    train = joint.fold_train(fold)                        # fold.train + every extra row
    fit(model, images[train], joint.dataset.labels[train], ...)
    evaluate(model, images[fold.test], ...)               # base rows: unchanged indices

:func:`progressive_filter` is You et al.'s selection step (their Algorithm 1) restricted to
chosen rows, built on :func:`select_kept` (the rule itself, used by ``vsent pcnn`` too).
:func:`write_removal` records a draw in ``removal.csv`` and :func:`read_removal` reads it back,
so that a resumed run keeps the same training images.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsent.data._common import default_workers
from vsent.data.datasets import (
    SUBSETS,
    Dataset,
    dataset_layout,
    describe,
    label_file_names,
    load_dataset,
    read_text,
    twitter_label_file,
)
from vsent.data.folds import Fold
from vsent.data.images import load_rgb, resize_rgb
from vsent.errors import DataError, ImageError, VsentError
from vsent.files import (
    Parse,
    atomic_open,
    byte_groups,
    csv_rows,
    expand_user,
    first_of_groups,
    same_bytes,
)

__all__ = [
    "KEEP_THRESHOLD", "NEAR_DUPLICATE_THRESHOLD", "REMOVAL_COLUMNS", "JointSet",
    "extra_train_set", "near_duplicates", "progressive_filter", "read_removal",
    "removal_probability", "removal_rows", "select_kept", "thumbnails",
    "train_copies_of_test_images", "with_extra", "write_removal",
]

log = logging.getLogger("vsent")

#: Similarity of 16x16 thumbnails (:func:`near_duplicates`) from which two images are copies.
#: On Twitter I (all 1,269 images against each other), the 25 pairs of copies (same bytes,
#: re-encoded, rescaled) score >= 0.992 and the closest distinct pictures <= 0.949: the
#: threshold sits in that gap.
NEAR_DUPLICATE_THRESHOLD = 0.97
#: Side of the thumbnails compared by :func:`near_duplicates`.
THUMB_SIDE = 16


# --------------------------------------------------------------------------------------------
# the extra set


def check_extra_train(data: str | os.PathLike | Dataset, base_subset: str, extra: str) -> None:
    """VsentError (DataError for the data) unless ``extra`` is a larger agreement subset than
    ``base_subset`` and ``data`` is in the Twitter I layout, as far as its path's names say
    (:func:`vsent.data.datasets.dataset_layout`): what :func:`extra_train_set` refuses,
    refused before a run directory is opened (an ``--overwrite`` would have emptied it)."""
    if base_subset not in SUBSETS or extra not in SUBSETS:
        raise VsentError(f"--extra-train: subsets are {', '.join(SUBSETS)}; got base "
                         f"{base_subset!r} and extra {extra!r}")
    if SUBSETS.index(extra) <= SUBSETS.index(base_subset):
        raise VsentError(f"--extra-train {extra}: must be a larger agreement subset than the "
                         f"cross-validated {base_subset}-agree (choose from "
                         f"{', '.join(SUBSETS[SUBSETS.index(base_subset) + 1:]) or 'none'})")
    if isinstance(data, Dataset):
        if data.source != "twitter":
            raise _not_twitter(data.root, data.source)
        return
    root = expand_user(data).resolve()
    layout = dataset_layout(root)
    if layout in ("folder", "csv"):
        raise _not_twitter(root, layout)


def _not_twitter(root: Path, source: str) -> DataError:
    return DataError(f"{root}: --extra-train needs the Twitter I layout (agreement subsets); "
                     f"this is a {source} dataset")


def extra_train_set(
    data: str | os.PathLike | Dataset,
    base_subset: str = "five",
    extra: str = "three",
    *,
    skip_bad: bool = False,
    validate: bool = True,
    drop_copies: bool = True,
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
    workers: int | None = None,
) -> Dataset:
    """Images of the ``extra`` agreement subset that are not in ``base_subset``.

    Parameters
    ----------
    data : path-like or Dataset
        A Twitter I folder (or a Dataset loaded from one; only its ``root`` is used).
    base_subset : {"five", "four"}
        The subset whose folds are cross-validated.
    extra : {"four", "three"}
        A larger subset; its labels (majority votes) are kept as they are.
    skip_bad, validate : as in :func:`vsent.data.datasets.load_dataset`, for the extra images.
    drop_copies : bool
        Drop extra images whose file bytes equal a base image's, or whose thumbnail is a near
        copy of one (``threshold``, see :func:`near_duplicates`). Turning it off lets test
        images in through their copies: only for measuring that effect.
    workers : threads for hashing and thumbnails (default :func:`default_workers`).

    Returns
    -------
    Dataset
        ``source="twitter"``, ``subset="<extra>-not-<base>"`` (e.g. ``three-not-five``; no
        fold files exist for it), labels from the ``extra`` label file. Dropped copies are
        listed in ``skipped`` as ``(name, "copy of <base name> (...)")``.

    Raises
    ------
    VsentError
        Unknown subsets, or ``extra`` not larger than ``base_subset``.
    DataError
        Not a Twitter I folder; problems of the label files or images (as load_dataset).
    """
    check_extra_train(data, base_subset, extra)
    root = data.root if isinstance(data, Dataset) else expand_user(data).resolve()
    big = load_dataset(root, extra, skip_bad=skip_bad, validate=validate)
    if big.source != "twitter":
        raise _not_twitter(root, big.source)
    base_names = label_file_names(twitter_label_file(root, base_subset))
    keep = [i for i, n in enumerate(big.names) if n not in base_names]
    skipped = list(big.skipped)  # base images included: with_extra lists each once

    if drop_copies and keep:
        base_paths = [root / "images" / n for n in sorted(base_names)
                      if (root / "images" / n).is_file()]
        cand_paths = [big.paths[i] for i in keep]
        copies = _copies(cand_paths, base_paths, threshold, workers)
        if copies:
            for j, (b, why) in sorted(copies.items()):
                skipped.append((big.names[keep[j]], f"copy of {base_subset}-agree image "
                                                    f"{base_paths[b].name} ({why})"))
            log.info("extra set: %d images dropped as copies of %s-agree images",
                     len(copies), base_subset)
            keep = [i for j, i in enumerate(keep) if j not in copies]
    if not keep:
        raise DataError(f"{root}: no {extra}-agree images outside {base_subset}-agree")
    labels = big.labels[keep].copy()
    labels.flags.writeable = False
    ds = Dataset(root=big.root, names=[big.names[i] for i in keep],
                 paths=[big.paths[i] for i in keep], labels=labels, source="twitter",
                 subset=f"{extra}-not-{base_subset}", skipped=skipped)
    log.info("extra training set: %s", describe(ds))
    return ds


def _copies(cand: Sequence[Path], base: Sequence[Path], threshold: float,
            workers: int | None) -> dict[int, tuple[int, str]]:
    """``{candidate index: (base index, reason)}`` for candidates that copy a base image."""
    workers = default_workers(workers)
    out = {j: (i, "same bytes") for j, i in same_bytes(cand, base, workers=workers).items()}
    if threshold <= 1.0 and len(cand) and len(base):  # (no base image: nothing to copy)
        sims = near_duplicates(thumbnails(cand, workers), thumbnails(base, workers))
        best = sims.argmax(axis=1)
        for j in np.flatnonzero(sims[np.arange(len(cand)), best] >= threshold):
            out.setdefault(int(j), (int(best[j]), f"thumbnail similarity "
                                                  f"{sims[j, best[j]]:.3f}"))
    return out


def train_copies_of_test_images(
    dataset: Dataset, folds: Sequence[Fold], *, threshold: float = NEAR_DUPLICATE_THRESHOLD,
    workers: int | None = None,
) -> dict[str, tuple[str, str]]:
    """Test images with a copy among their own fold's training images (the benchmark's leak).

    A copy has the same file bytes, or 16x16 thumbnails at least ``threshold`` alike
    (:func:`near_duplicates`), the test :func:`extra_train_set` applies to extra images.
    Twitter I's subsets hold pairs of copies under two names, and a fold may test one and
    train on the other; accuracy without these images measures how much that leak helps.

    Returns ``{test image name: (training image name, reason)}``.
    """
    workers = default_workers(workers)
    paths = list(dataset.paths)
    sims = None
    if threshold <= 1.0:
        thumbs = thumbnails(paths, workers)
        sims = near_duplicates(thumbs, thumbs)
    groups = byte_groups(paths, workers=workers)  # (read once, not once a fold)
    names = dataset.names
    out: dict[str, tuple[str, str]] = {}
    for fold in folds:
        train = np.asarray(fold.train)
        first_train = first_of_groups(groups, train.tolist())  # byte group: a training image
        for i in fold.test.tolist():
            if groups[i] is not None and groups[i] in first_train:
                out[names[i]] = (names[first_train[groups[i]]], "same bytes")
            elif sims is not None and len(train):
                j = int(train[np.argmax(sims[i, train])])
                if sims[i, j] >= threshold:
                    out[names[i]] = (names[j], f"thumbnail similarity {sims[i, j]:.3f}")
    return out


def thumbnails(paths: Sequence[Path], workers: int | None = None) -> np.ndarray:
    """Two normalised views of a 16x16 RGB thumbnail per image: float32 (N, 2, 768).

    Each image is decoded at reduced scale (JPEG draft) and warped to 16 x 16 like the image
    cache (aspect not kept, so a rescaled copy gives the same thumbnail). View 0 has the mean
    of all its values subtracted (colour and layout); view 1 has each channel's mean
    subtracted (layout alone). Each view is scaled to unit L2 norm (a flat view gives zeros,
    similar to nothing), and so does an image that cannot be decoded.
    """
    def one(p: Path) -> np.ndarray:
        try:
            return resize_rgb(load_rgb(p, min_side=4 * THUMB_SIDE), THUMB_SIDE)
        except ImageError:  # e.g. a bad base image that skip_bad drops: like a flat image
            return np.zeros((THUMB_SIDE, THUMB_SIDE, 3), np.uint8)

    if not paths:
        return np.zeros((0, 2, 3 * THUMB_SIDE**2), np.float32)
    workers = default_workers(workers)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        x = np.stack(list(ex.map(one, paths))).astype(np.float64)  # (N, 16, 16, 3)
    views = np.stack([(x - x.mean(axis=(1, 2, 3), keepdims=True)).reshape(len(x), -1),
                      (x - x.mean(axis=(1, 2), keepdims=True)).reshape(len(x), -1)], axis=1)
    norm = np.linalg.norm(views, axis=2, keepdims=True)
    views = np.divide(views, norm, out=np.zeros_like(views), where=norm > 1e-6)
    return views.astype(np.float32)


def near_duplicates(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity (Na, Nb) of :func:`thumbnails`: the smaller of the two views' cosines.

    A copy is close in both views; two pictures of the same colours but another layout
    (synthetic gradients, sunsets) differ in view 1; the same layout in other colours (a
    recoloured meme) differs in view 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.minimum(a[:, 0] @ b[:, 0].T, a[:, 1] @ b[:, 1].T)


# --------------------------------------------------------------------------------------------
# base + extra in one array


@dataclass(frozen=True, eq=False)
class JointSet:
    """A base dataset followed by extra training images, as one Dataset.

    Attributes
    ----------
    dataset : Dataset
        Rows ``0 .. n_base - 1`` are the base dataset's, in its order (so its folds index
        them unchanged); rows ``n_base ..`` are the extra images.
    n_base : int
    """

    dataset: Dataset
    n_base: int

    @property
    def extra_index(self) -> np.ndarray:
        """int64 indices of the extra rows."""
        return np.arange(self.n_base, len(self.dataset), dtype=np.int64)

    def is_extra(self, index: np.ndarray) -> np.ndarray:
        """bool array: which of ``index`` are extra rows."""
        return np.asarray(index) >= self.n_base

    def fold_train(self, fold: Fold) -> np.ndarray:
        """Sorted int64 training indices of ``fold``: its base training rows + all extra rows.

        Raises DataError if the fold does not index the base rows, or if an extra image has
        the name or file of one of the fold's test images (never the case for sets made by
        :func:`extra_train_set`; checked because a leak would go unnoticed otherwise).
        """
        train, test = np.asarray(fold.train, np.int64), np.asarray(fold.test, np.int64)
        top = max(train.max(initial=-1), test.max(initial=-1))
        if top >= self.n_base:
            raise DataError(f"fold {fold.index} indexes image {top} but the base dataset has "
                            f"{self.n_base}: folds of another dataset")
        ds = self.dataset
        test_names = {ds.names[i] for i in test}
        test_files = {Path(ds.paths[i]).resolve() for i in test}
        leaks = [ds.names[i] for i in self.extra_index
                 if ds.names[i] in test_names or Path(ds.paths[i]).resolve() in test_files]
        if leaks:
            raise DataError(f"fold {fold.index}: {len(leaks)} extra training images are test "
                            f"images of the fold (e.g. {', '.join(leaks[:3])})")
        return np.union1d(train, self.extra_index)


def with_extra(base: Dataset, extra: Dataset) -> JointSet:
    """Join ``base`` and ``extra`` (base rows first); see :class:`JointSet`.

    Raises DataError when an extra item has a base item's name or file.
    """
    base_names = set(base.names)
    base_files = {Path(p).resolve() for p in base.paths}
    clash = [n for n, p in zip(extra.names, extra.paths, strict=True)
             if n in base_names or Path(p).resolve() in base_files]
    if clash:
        raise DataError(f"{base.root}: {len(clash)} extra images are also base images "
                        f"(e.g. {', '.join(clash[:3])})")
    labels = np.concatenate([base.labels, extra.labels]).astype(np.int64)
    labels.flags.writeable = False
    # the extra set was read from a larger subset, so its skipped list repeats the bad base
    # images the base dataset lists: each counts once
    in_base = {where for where, _ in base.skipped}
    skipped = [*base.skipped, *((w, why) for w, why in extra.skipped if w not in in_base)]
    joint = Dataset(root=base.root, names=[*base.names, *extra.names],
                    paths=[*base.paths, *extra.paths], labels=labels, source=base.source,
                    subset=base.subset, skipped=skipped, label_file=base.label_file)
    return JointSet(dataset=joint, n_base=len(base))


# --------------------------------------------------------------------------------------------
# You et al.'s selection step: the rule (pure), and on chosen rows

#: |s1 - s2| from which an image is always kept: 2 - exp(d) <= 0  <=>  d >= ln 2.
KEEP_THRESHOLD = math.log(2.0)


def removal_probability(scores: np.ndarray) -> np.ndarray:
    """Probability of dropping each image: ``max(0, 2 - exp(|s_i1 - s_i2|))``.

    Parameters
    ----------
    scores : array-like (N, 2)
        Softmax scores of the two classes (any order: only their difference counts).

    Returns
    -------
    float64 array (N,), values in [0, 1]: 1 for equal scores, 0 once ``|s1 - s2| >= ln 2``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"scores must have shape (N, 2), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    diff = np.abs(s[:, 0] - s[:, 1])
    # the paper's max(0, .) (exp(ln 2) rounds to 2 + 4e-16); p <= 1 as exp(|d|) >= 1
    return np.maximum(2.0 - np.exp(diff), 0.0)


def select_kept(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw which images survive: image ``i`` is removed when ``u_i < p_i``, ``u_i ~ U[0, 1)``.

    Parameters
    ----------
    scores : array-like (N, 2)
        Softmax scores (see :func:`removal_probability`).
    rng : numpy.random.Generator
        Source of the N uniform draws (one per image, in order).

    Returns
    -------
    bool array (N,): True for the images kept.
    """
    p = removal_probability(scores)
    return rng.random(len(p)) >= p


def progressive_filter(scores: np.ndarray, rng: np.random.Generator,
                       candidates: np.ndarray | None = None) -> np.ndarray:
    """Which training images survive You et al.'s selection step.

    Image ``i`` is dropped with probability ``p_i = max(0, 2 - exp(|s_i1 - s_i2|))``
    (:func:`removal_probability`), drawn as in :func:`select_kept` (one uniform per row, in
    order, for every row, so a row's draw does not depend on which rows are candidates).

    Parameters
    ----------
    scores : (N, 2) softmax scores of the training images from the stage-1 network.
    rng : numpy.random.Generator
    candidates : bool (N,), optional
        Rows that may be dropped (e.g. ``joint.is_extra(train)`` to filter only the weakly
        labelled images); the others are always kept. Default: every row (the paper's rule).

    Returns
    -------
    bool array (N,): True for the images kept.
    """
    kept = select_kept(scores, rng)
    if candidates is None:
        return kept
    candidates = np.asarray(candidates, bool)
    if candidates.shape != kept.shape:
        raise ValueError(f"candidates has shape {candidates.shape}, scores {kept.shape[0]} rows")
    return kept | ~candidates


# --------------------------------------------------------------------------------------------
# removal.csv: the selection's record, one row per training image (read back on resume)

#: Columns of ``removal.csv`` (:func:`write_removal`).
REMOVAL_COLUMNS = ("name", "label", "s1", "s2", "diff", "p", "removed")


def write_removal(path: Path, names: Sequence[str], labels: np.ndarray, scores: np.ndarray,
                  kept: np.ndarray) -> None:
    """One row per image: name, label, s1, s2, diff = |s1 - s2|, p, removed (0/1).

    Floats are written with ``repr`` so the file reproduces the draw exactly (see
    :func:`read_removal`).
    """
    s = np.asarray(scores, dtype=np.float64)
    p = removal_probability(s)
    # a resumed run reads it back; a file name that is not UTF-8 is written as its bytes
    with atomic_open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        w = csv.writer(f)
        w.writerow(REMOVAL_COLUMNS)
        for i, name in enumerate(names):
            w.writerow([name, int(labels[i]), repr(float(s[i, 0])), repr(float(s[i, 1])),
                        repr(float(abs(s[i, 0] - s[i, 1]))), repr(float(p[i])),
                        int(not kept[i])])


def read_removal(path: Path, names: Sequence[str], labels: Sequence[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The kept mask (N,) and scores (N, 2) of a ``removal.csv``, in the order of ``names``.

    With ``labels`` (those of the data now), the file's label column must hold them: a draw
    made on other labels is not reused.

    Raises
    ------
    VsentError
        Naming the file (and line): as :func:`removal_rows`, and other images than ``names``
        or another label than ``labels``.
    """
    rows = removal_rows(path)
    if [r["name"] for _, r in rows] != list(names):
        raise VsentError(f"{path}: its images are not those of the dataset (was the data "
                         "changed since the run started?)")
    if labels is not None:
        for (line, r), label in zip(rows, labels, strict=True):
            if r["label"] != int(label):
                raise VsentError(f"{path}, line {line}: {r['name']} has label {r['label']}, "
                                 f"the data now {int(label)} (was the data changed since the "
                                 "run started?)")
    scores = np.array([[r["s1"], r["s2"]] for _, r in rows], dtype=np.float64)
    kept = np.array([not r["removed"] for _, r in rows], dtype=bool)
    return kept, scores.reshape(len(rows), 2)


def removal_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line, row)`` for each row of a ``removal.csv``: ``label`` an int, ``s1`` and ``s2``
    floats, ``removed`` a bool, the other fields as written.

    Raises
    ------
    VsentError
        Naming the file (and line): a missing column, a row cut short or with extra fields, a
        score that is not a finite number, ``removed`` other than 0 or 1; a file that is not
        text.
    """
    parsed = [("label", int), ("s1", _finite), ("s2", _finite), ("removed", _zero_or_one)]

    def columns(header: Sequence[str]) -> list[tuple[str, Parse]]:
        missing = [c for c in ("name", *(c for c, _ in parsed)) if c not in header]
        if missing:
            raise VsentError(f"{path}, line 1: no column {missing[0]!r} (a removal file "
                             f"has {', '.join(REMOVAL_COLUMNS)})")
        return parsed

    # as written by write_removal: a file name that is not UTF-8 is read back as its bytes
    return csv_rows(path, read_text(path, "CSV file", errors="surrogateescape"), columns)


def _finite(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):  # removal_probability would refuse it, as a traceback
        raise ValueError(f"{text!r} is not a finite number")
    return x


def _zero_or_one(text: str) -> bool:
    if text not in ("0", "1"):  # anything else counted as removed, silently
        raise ValueError(f"{text!r} is not 0 or 1")
    return text == "1"
