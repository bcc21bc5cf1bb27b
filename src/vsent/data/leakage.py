"""Was a model trained on the images it is about to be tested on?

A vsent checkpoint records the data it was trained on (``meta["data"]`` and the dataset's
``data_sha256``). A run with test folds that starts from such weights (``pcnn-transfer``,
``crossval --init``, ``finetune --fold K --init``) is checked here before anything trains:
weights trained on the same data, on a copy of it, or on other data holding some of its
images would score test images they have already seen (an optimistic accuracy, silently).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vsent.data._common import default_workers
from vsent.data.datasets import load_dataset
from vsent.errors import VsentError
from vsent.files import expand_user, same_bytes, same_file

__all__ = ["check_other_data", "quiet_logs"]

log = logging.getLogger("vsent")


@contextlib.contextmanager
def quiet_logs(level: int) -> Iterator[None]:
    """Log records up to ``level`` dropped (``logging.disable``), restored as it was: a check
    loads the data before the run that says it (pcnn-transfer printed its "dataset: ..." line
    three times before a refusal)."""
    disabled = logging.root.manager.disable
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(disabled)


def _run_extra_train(path: str | Path, meta: Mapping[str, Any]) -> str | None:
    """The ``--extra-train`` subset of the crossval run whose fold model ``path``
    (``RUN/fold<k>/model.pt``, links followed) is, for a checkpoint saved before it recorded
    its own; None when it lies in no such run (a model of another command or
    fold, or of other data, copied there: not that run's), or the run took none."""
    from vsent.runs import checkpoint_run, read_config

    run, fold = checkpoint_run(path, meta)
    if run is None or fold is None:
        return None
    try:
        config = read_config(run)
    except VsentError:
        return None
    if not (config.get("command") == "crossval"
            and meta.get("command", "crossval") == "crossval"
            and meta.get("fold", fold) == fold
            and isinstance(config.get("data"), str) and isinstance(meta.get("data"), str)
            and same_file(expand_user(config["data"]), expand_user(meta["data"]))):
        return None
    extra = config.get("extra_train")
    return extra if isinstance(extra, str) else None


def check_other_data(path: str | Path, meta: Mapping[str, Any], data: str,
                     subsets: Sequence[str] = ("five",), *,
                     needs: str = "Domain transfer needs a model trained on other data") -> None:
    """Refuse the checkpoint ``path`` whose metadata ``meta`` says it was trained on ``data``
    itself, or on data that holds some of the images of ``data``'s ``subsets``: their test
    folds would hold images it was trained on. ``needs`` ends the refusal (what the command
    needs instead).

    The same data is the same path, or a copy elsewhere: the same subset with the same
    :meth:`~vsent.data.datasets.Dataset.fingerprint` (names, labels and file sizes). Other
    data shares an image when a file of it has the same bytes as one of ``data``'s
    (:func:`vsent.files.same_bytes`); training data that cannot be read here is not checked (a
    warning says so).
    """
    trained_on = meta.get("data")
    if not isinstance(trained_on, str):
        return  # a checkpoint from elsewhere: nothing recorded to compare
    same = same_file(expand_user(trained_on), expand_user(data))
    if not same and isinstance(meta.get("data_sha256"), str):
        try:
            with quiet_logs(logging.INFO):  # (a check: the run's own load says the data)
                here = load_dataset(data, meta.get("subset") or "five", skip_bad=True,
                                    validate=False)
        except VsentError:  # not readable with that subset: not the same data
            here = None
        if here is not None and here.fingerprint()["sha256"] == meta["data_sha256"]:
            same, trained_on = True, f"{trained_on} (a copy of {data}: same images and labels)"
    if same:
        raise VsentError(f"{path} was trained on {trained_on}, the data it would be fine-tuned "
                         f"and tested on: its test folds hold its training images. {needs}")
    # a model given --extra-train trained on images of a larger subset too (three-agree's
    # weak labels), which holds the subset's: those are its training images
    subset = (meta.get("extra_train") or _run_extra_train(path, meta) or meta.get("subset")
              or "five")
    # other data that holds some of these images (Twitter I images listed in a weak-label
    # CSV, copied into a folder of Flickr images): those are in the test folds too
    try:
        with quiet_logs(logging.WARNING):  # (skip_bad: not a warning per missing weak-label row)
            trained = load_dataset(trained_on, subset, skip_bad=True, validate=False)
    except VsentError:
        trained = None
    if trained is None:
        log.warning("%s was trained on %s, which cannot be read here: its images are not "
                    "checked against %s's test images", path, trained_on, data)
        return
    try:
        # skip_bad: a bad entry's image is in no test fold (without it, the data of a run
        # given --skip-bad was not checked at all)
        with quiet_logs(logging.WARNING):
            targets = [load_dataset(data, s, skip_bad=True, validate=False).paths
                       for s in subsets]
    except VsentError:
        return  # (its own error comes when it is loaded to be fine-tuned)
    log.info("checking the %d training images of %s against %s's", len(trained.paths),
             trained_on, data)
    ours = sorted({str(p) for t in targets for p in t})
    shared = [(str(trained.paths[i]), ours[j])
              for i, j in same_bytes(trained.paths, ours, workers=default_workers()).items()]
    if shared:
        n = len({y for _, y in shared})  # (a training set may hold an image twice)
        # the same file once (a weak-label CSV listing the images); a copy as "copy is ours"
        pairs = ", ".join(mine if same_file(theirs, mine) else f"{theirs} is {mine}"
                          for theirs, mine in shared[:3])
        raise VsentError(f"{path} was trained on {trained_on}, which holds {n} of the images of "
                         f"{data} ({'/'.join(subsets)}-agree; e.g. {pairs}"
                         f"{', ...' if len(shared) > 3 else ''}): the test folds would hold "
                         f"training images. Leave them out of its training data")
