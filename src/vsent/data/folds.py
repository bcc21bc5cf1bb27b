"""Cross-validation folds: the paper's split files (campos), seeded stratified folds, or a JSON.

Folds are stored by item *name* (never by index), so a saved split survives a reordering of
the dataset. What happens to names the dataset lacks (e.g. images ``skip_bad`` dropped) depends
on the source: the campos reader leaves them out with a warning, while a folds JSON file
(:func:`save_folds`) is refused (a split saved before an image was skipped cannot be reused
with the dataset that skips it). A folds JSON file records the dataset's title; applying it to
a dataset of another title (another agreement subset, another CSV) logs a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from sklearn.model_selection import StratifiedKFold

from vsent.config import check_seed
from vsent.data._common import is_int_at_least
from vsent.data.datasets import (
    Dataset,
    check_dataset,
    dataset_layout,
    label_file_names,
    read_label_lines,
    twitter_label_file,
)
from vsent.errors import DataError, VsentError
from vsent.files import atomic_write_text, expand_user, not_a_file_reason

__all__ = ["Fold", "make_folds", "save_folds"]

logger = logging.getLogger("vsent")


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split.

    Attributes
    ----------
    index : int
        1-based fold number.
    train, test : numpy.ndarray
        int64 indices into the Dataset, sorted, disjoint.
    """

    index: int
    train: np.ndarray
    test: np.ndarray


def make_folds(
    dataset: Dataset,
    spec: str | os.PathLike = "campos",
    n_splits: int = 5,
    seed: int = 0,
    *,
    say_untested: bool = True,
) -> list[Fold]:
    """Build the cross-validation folds of a dataset.

    Parameters
    ----------
    dataset : Dataset
    spec : str or path-like
        * ``"campos"``: the split files of Campos et al. shipped with Twitter I,
          ``<root>/folds/campos/<subset>_agrees/test<k>/{train,test}.txt`` (lines
          ``<file name> <label>``). Names missing from the dataset (e.g. skipped as bad) are
          dropped with a warning; dataset items in no fold are unused (the paper's five-agree
          folds cover 880 of 882 images).
        * ``"stratified"``: ``sklearn.model_selection.StratifiedKFold(n_splits, shuffle=True,
          random_state=seed)``.
        * a path to a JSON file written by :func:`save_folds`.
    n_splits : int
        Number of folds for ``"stratified"``; the other specs bring their own.
    seed : int
        Shuffling seed for ``"stratified"``.
    say_untested : bool
        Log the images no fold tests (False where the caller's next step says it again).

    Returns
    -------
    list of Fold
        The split's folds, numbered 1..K (a folds JSON: its own numbers, in its order);
        train and test disjoint in each, test sets disjoint.
    """
    check_dataset(dataset, "make_folds")
    if str(spec) == "campos":
        folds = _campos_folds(dataset)
    elif str(spec) == "stratified":
        check_seed(seed)  # (names --seed; numpy says "Seed must be between 0 and 2**32 - 1")
        folds = _stratified_folds(dataset, n_splits, seed)
    else:
        check_folds_spec(spec)
        folds = _json_folds(dataset, expand_user(spec))
    if say_untested:
        _say_untested(folds, dataset, f"{spec} folds" if str(spec) in SPLITS else str(spec))
    return folds


def _say_untested(folds: list[Fold], dataset: Dataset, source: str) -> None:
    """Log the images no fold tests (never evaluated): Campos et al.'s folds leave 2 of
    five-agree's 882 out, and a folds file leaves out images added after it was made. Said
    in every session (said only when a resumed run read its folds.json, it read as if the
    data had changed)."""
    tested = {i for f in folds for i in f.test}
    untested = [n for i, n in enumerate(dataset.names) if i not in tested]
    if untested:
        logger.info("%s: %d of %d images are in no test fold (e.g. %s): they are trained on "
                    "or left out, never evaluated, as the split says", source, len(untested),
                    len(dataset.names), ", ".join(untested[:3]))


#: ``--folds`` values that name no file (any other is a folds JSON file).
SPLITS = ("campos", "stratified")


def check_folds_spec(spec: str | os.PathLike[str]) -> None:
    """DataError unless ``spec`` is one of :data:`SPLITS` or an existing file (a folder or a
    missing path named). :func:`make_folds` checks it; the CLI does before any work, also
    where the folds are not read (``vsent finetune`` without ``--fold``: a typo would be
    recorded in the run's config.json as its split)."""
    if str(spec) in SPLITS:
        return
    if not isinstance(spec, str | os.PathLike):  # (api60: make_folds(ds, 5) for 5 folds)
        raise TypeError(f"spec must be 'campos', 'stratified' or a folds JSON path, got "
                        f"{spec!r} (n_splits sets the number of stratified folds)")
    path = expand_user(spec)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a folds JSON file (--folds expects campos, "
                        "stratified or a folds JSON file)")
    if not path.is_file():
        raise DataError(f"{path}: {not_a_file_reason(path)} (--folds expects campos, stratified "
                        "or a folds JSON file)")


def check_inner_splits(labels: np.ndarray, folds: list[Fold], inner_splits: int) -> None:
    """Raise VsentError unless every fold's training images hold at least ``inner_splits``
    of each class (the stratified inner cross-validation that picks C needs one per split);
    run before any feature is extracted, so the message comes first, not after hours."""
    labels = np.asarray(labels)
    for fold in folds:
        fewest = int(np.bincount(labels[np.asarray(fold.train)], minlength=2).min())
        if fewest < inner_splits:
            # the inner cross-validation needs two splits at least: below that, other folds
            remedy = ("use fewer inner splits" if fewest >= 2 else
                      "its folds need images of both classes in every training set")
            raise VsentError(f"fold {fold.index}: the training images have {fewest} of one "
                             f"class, fewer than --inner-splits {inner_splits}; {remedy}")


def save_folds(folds: list[Fold], dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write folds as JSON with item names: ``{"dataset": title, "n_splits": K, "folds":
    [{"fold": 1, "train": [names], "test": [names]}, ...]}``, where ``title`` is
    :attr:`Dataset.title` (e.g. "Twitter five-agree"; :func:`make_folds` warns when the file
    is applied to a dataset of another title). The write is atomic."""
    path = Path(path)
    names = dataset.names
    doc = {
        "dataset": dataset.title,
        "n_splits": len(folds),
        "folds": [
            {"fold": int(f.index), "train": [names[i] for i in f.train],
             "test": [names[i] for i in f.test]}
            for f in folds
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


# --------------------------------------------------------------------------------------------


def _check_tests_disjoint(folds: list[Fold], where: str, names: list[str]) -> list[Fold]:
    """``folds`` unchanged, or DataError if an image is in two test sets: results are keyed
    by image name, one prediction per test image."""
    tested_in: dict[int, int] = {}
    for fold in folds:
        for i in fold.test.tolist():
            if i in tested_in:
                raise DataError(f"{where}: {names[i]} is a test image of fold {tested_in[i]} "
                                f"and of fold {fold.index} (test sets must be disjoint)")
            tested_in[i] = fold.index
    return folds


def disjoint_rows(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int64 row indices of ``train`` and ``test``, each given as indices or an (n,)
    boolean mask (a mask cast to int64 would be rows 0 and 1); ValueError when they share a
    row: the test rows' accuracy would be a training accuracy. (A fold read from files is
    checked by :func:`_make_fold`, naming its images.)"""
    train, test = (np.flatnonzero(r) if np.asarray(r).dtype == bool else np.asarray(r, np.int64)
                   for r in (train, test))
    shared = np.intersect1d(train, test)
    if shared.size:
        raise ValueError(f"train and test rows overlap ({shared.size} rows, e.g. "
                         f"{shared[:3].tolist()})")
    return train, test


def _make_fold(index: int, train, test, where: str, names: list[str]) -> Fold:
    train = np.unique(np.asarray(train, dtype=np.int64))
    test = np.unique(np.asarray(test, dtype=np.int64))
    both = np.intersect1d(train, test)
    if both.size:
        items = "item is" if both.size == 1 else "items are"
        raise DataError(f"{where}: fold {index}: {both.size} {items} in both train and test "
                        f"(e.g. {', '.join(names[i] for i in both[:3])})")
    if test.size == 0 or train.size == 0:
        raise DataError(f"{where}: fold {index}: empty {'test' if test.size == 0 else 'train'} "
                        f"split")
    return Fold(index=index, train=train, test=test)


def _stratified_folds(dataset: Dataset, n_splits: int, seed: int) -> list[Fold]:
    if not is_int_at_least(n_splits, 2):
        raise VsentError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    counts = np.bincount(dataset.labels, minlength=2)
    if counts.min() < n_splits:
        raise DataError(
            f"{dataset.location}: cannot make {n_splits} stratified folds: the dataset has only "
            f"{counts[1]} positive and {counts[0]} negative images (need >= {n_splits} of each)"
        )
    skf = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=seed)
    x = np.zeros((len(dataset), 1))
    return [
        _make_fold(k, tr, te, f"stratified(seed={seed})", dataset.names)
        for k, (tr, te) in enumerate(skf.split(x, dataset.labels), 1)
    ]


def _campos_folder(root: Path, subset: str) -> Path:
    """Where Twitter I keeps Campos et al.'s split of an agreement subset."""
    return root / "folds" / "campos" / f"{subset}_agrees"


def _campos_test_numbers(folder: Path) -> list[int]:
    """The K of the ``testK`` folders in ``folder``, sorted."""
    return sorted(int(d.name[4:]) for d in folder.iterdir()
                  if d.is_dir() and d.name.startswith("test") and d.name[4:].isdigit())


def fold_numbers(data: str | os.PathLike, subset: str, spec: str | os.PathLike,
                 n_splits: int = 5) -> list[int] | None:
    """The fold numbers of the split ``spec`` (as :func:`make_folds` takes it) where they are
    known without reading the dataset: stratified's 1..``n_splits``, a folds JSON file's, the
    ``testK`` folders of Campos et al.'s split in a Twitter I folder ``data``. None when they
    are not, or are no valid split (no such folder, a damaged file, a fold 0, a number twice,
    test1, test2, test4: :func:`make_folds` says what is wrong)."""
    if str(spec) == "stratified":
        return list(range(1, n_splits + 1))
    numbers: list[object] = []
    with contextlib.suppress(DataError, OSError, ValueError, LookupError, AttributeError,
                             TypeError):
        if str(spec) == "campos":
            numbers = _campos_test_numbers(_campos_folder(expand_user(data), subset))
            if numbers != list(range(1, len(numbers) + 1)):
                return None
        else:
            entries = json.loads(expand_user(spec).read_text(encoding="utf-8"))["folds"]
            numbers = [e.get("fold", pos) for pos, e in enumerate(entries, 1)]
    # the types first: a "fold" that is a list or an object cannot go into a set
    if not numbers or not all(type(k) is int and k >= 1 for k in numbers) or \
            len(set(numbers)) < len(numbers):
        return None
    return sorted(cast(list[int], numbers))  # (all int, checked above)


def fold_numbers_text(numbers: list[int]) -> str:
    """``1..5`` for consecutive fold numbers from 1, else the numbers listed."""
    return (f"1..{len(numbers)}" if numbers == list(range(1, len(numbers) + 1))
            else ", ".join(map(str, numbers)))


def check_split_data(spec: str | os.PathLike[str], data: str | os.PathLike[str]) -> None:
    """DataError when ``spec`` is Campos et al.'s split and ``data`` (a dataset's path) is a
    folder or CSV dataset, whose images their fold files do not list. Known from the path's
    layout alone (:func:`vsent.data.datasets.dataset_layout`): said before a run directory is
    written, where :func:`make_folds` would say it after the run's records."""
    if str(spec) != "campos":
        return
    path = expand_user(data)
    layout = dataset_layout(path)
    if layout in ("folder", "csv"):
        raise _not_twitter(path, layout)


def _not_twitter(where: Path, source: str) -> DataError:
    return DataError(f"{where}: campos folds need the Twitter I layout (this is a {source} "
                     "dataset); pass --folds stratified, or --folds with a folds JSON file")


def _campos_folds(dataset: Dataset) -> list[Fold]:
    if dataset.source != "twitter" or dataset.subset is None:
        where = dataset.label_file if dataset.label_file is not None else dataset.root
        raise _not_twitter(where, dataset.source)
    folder = _campos_folder(dataset.root, dataset.subset)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such file or directory (campos fold files ship with "
                        f"Twitter I; use --folds stratified otherwise)")
    ks = _campos_test_numbers(folder)
    if not ks or ks != list(range(1, len(ks) + 1)):
        raise DataError(f"{folder}: expected fold folders test1 .. testK, found "
                        f"{', '.join(f'test{k}' for k in ks) or 'none'}")
    index = {name: i for i, name in enumerate(dataset.names)}
    folds = []
    for k in ks:
        split = {part: _read_fold_file(folder / f"test{k}" / f"{part}.txt", dataset, index)
                 for part in ("train", "test")}
        where = f"{folder / f'test{k}'}/{{train,test}}.txt"
        folds.append(_make_fold(k, split["train"], split["test"], where, dataset.names))
    return _check_tests_disjoint(folds, str(folder), dataset.names)


def _listed(dataset: Dataset) -> set[str]:
    """The names a campos fold file may give beyond the dataset's images, left out of the
    split with a warning: those the subset's label file lists (--skip-bad left them out) and
    the files in ``images/`` (a line taken out of the label file). Any other is a typo, or a
    fold file of other data."""
    names = label_file_names(twitter_label_file(dataset.root, dataset.subset))
    with contextlib.suppress(OSError):
        names.update(os.listdir(dataset.root / "images"))
    return names


def _read_fold_file(path: Path, dataset: Dataset, index: dict[str, int]) -> np.ndarray:
    out: list[int] = []
    unknown: list[str] = []
    listed: set[str] | None = None  # read at the first name not in the dataset
    for lineno, line in read_label_lines(path):  # blank lines skipped; errors name the file
        fields = line.split()
        if len(fields) > 2:
            raise DataError(f"{path}:{lineno}: expected '<file name> [<label>]', got "
                            f"{len(fields)} fields")
        name = fields[0]
        i = index.get(name)
        if i is None and listed is None:
            listed = _listed(dataset)
        if i is None and name not in listed:  # a typo, or fold files of other data
            raise DataError(f"{path}:{lineno}: {name} is not an image of the dataset "
                            f"({dataset.root})")
        if i is None:  # an image the dataset leaves out: so is its place in the split
            unknown.append(name)
            continue
        if len(fields) == 2 and fields[1] != str(dataset.labels[i]):
            # The label column is redundant; a mismatch means fold files of another subset.
            raise DataError(f"{path}:{lineno}: label {fields[1]} of {name} disagrees with the "
                            f"dataset label {dataset.labels[i]}")
        out.append(i)
    if unknown:
        logger.warning("%s: %d %s not in the dataset %s left out (%s%s)", path, len(unknown),
                       *(("name", "is") if len(unknown) == 1 else ("names", "are")),
                       ", ".join(unknown[:3]), ", ..." if len(unknown) > 3 else "")
    return np.array(out, dtype=np.int64)


def _json_folds(dataset: Dataset, path: Path) -> list[Fold]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a folds JSON file ({e})") from None
    except OSError as e:  # unreadable (permissions, I/O error): one line, not a traceback
        raise DataError(f"{path}: {e.strerror or e}") from None
    entries = doc.get("folds") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: expected a JSON object with a non-empty 'folds' list")
    n_splits = doc.get("n_splits", len(entries))
    if not is_int_at_least(n_splits, 1):  # "1" or 1.0 must not pass for a count, nor read as one
        raise DataError(f"{path}: n_splits must be a positive integer, got {n_splits!r}")
    if n_splits != len(entries):
        raise DataError(f"{path}: n_splits is {n_splits!r} but {len(entries)} folds are "
                        f"listed")
    made_for = doc.get("dataset")  # absent from files written before it was recorded
    if isinstance(made_for, str) and made_for != dataset.title:
        logger.warning("%s: these folds were made for %s, and are applied to %s", path,
                       made_for, dataset.title)
    index = {name: i for i, name in enumerate(dataset.names)}
    folds = []
    for pos, entry in enumerate(entries, 1):
        if not (isinstance(entry, dict) and isinstance(entry.get("train"), list)
                and isinstance(entry.get("test"), list)
                and all(isinstance(n, str) for n in entry["train"] + entry["test"])):
            raise DataError(f"{path}: fold entry {pos} needs 'train' and 'test' lists of "
                            f"image names")
        k = entry.get("fold", pos)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise DataError(f"{path}: fold entry {pos}: 'fold' must be a number from 1, got "
                            f"{k!r}")
        if k in {f.index for f in folds}:  # runs keep fold k's results under fold<k>/
            raise DataError(f"{path}: fold entry {pos}: fold number {k} is used twice")
        unknown = [n for n in entry["train"] + entry["test"] if n not in index]
        if unknown:
            raise DataError(
                f"{path}: fold {k}: {len(unknown)} "
                f"{'name is' if len(unknown) == 1 else 'names are'} not in the dataset "
                f"{dataset.location} (e.g. {', '.join(map(str, unknown[:3]))}); these folds were "
                f"made for another dataset or subset"
            )
        for split in ("train", "test"):  # counted once (a set): said, as a file edit's slip
            twice = [n for n, c in Counter(entry[split]).items() if c > 1]
            if twice:
                logger.warning("%s: fold %d: %d %s listed more than once in its %s list, "
                               "counted once (e.g. %s)", path, k, len(twice),
                               "name is" if len(twice) == 1 else "names are", split,
                               ", ".join(twice[:3]))
        folds.append(_make_fold(k, [index[n] for n in entry["train"]],
                                [index[n] for n in entry["test"]], str(path), dataset.names))
    return _check_tests_disjoint(folds, str(path), dataset.names)
