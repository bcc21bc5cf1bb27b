"""A cross-validation run, opened for the analyses that read it.

``vsent layers``, ``regions``, ``fuse`` and ``compare`` start from a run ``vsent crossval``
wrote (:mod:`vsent.runs` holds the run-directory contract they share)::

    open_run(path) -> CrossvalRun          # its config, dataset and folds, checked
    CrossvalRun.load_model(k)              # fold k's model; refused if it records another fold

* :func:`open_run` refuses another command's run, a run whose data is not found from here
  (:func:`check_run_data`) or changed since it was trained (:func:`load_run_dataset`).
* An analysis (fuse, ensemble, layers, regions) records the SHA-256 of the predictions it read
  in :data:`vsent.runs.INPUTS` (:func:`record_or_check_inputs`): a finished fuse or ensemble
  whose inputs changed since is refused, and an analysis stored inside a run that was copied or
  moved since is known by them (:func:`run_moved_since`, :func:`record_run_read`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsent.errors import BadItemsError, VsentError, one_line
from vsent.files import file_sha256
from vsent.provenance import DATA_RECORD, check_data_record, read_record, record_remedy
from vsent.runs import (
    CONFIG,
    FOLD_MODEL,
    FOLDS,
    INPUTS,
    SUMMARY,
    RunDir,
    fold_dir,
    read_config,
)

if TYPE_CHECKING:
    from torch import nn

    from vsent.config import RunConfig
    from vsent.data.datasets import Dataset
    from vsent.data.folds import Fold


@dataclasses.dataclass
class CrossvalRun:
    """An existing cross-validation run directory, opened for analyses (layers, regions)."""

    path: Path
    config: RunConfig
    dataset: Dataset
    folds: list[Fold]

    def checkpoint(self, k: int) -> Path:
        """Path of fold ``k``'s fine-tuned model (1-based); error if that fold did not finish."""
        path = fold_dir(self.path, k) / FOLD_MODEL
        if not path.exists():
            if (self.path / SUMMARY).exists():  # (a copy without its models: git keeps none)
                raise VsentError(f"{path}: fold {k} has no model: the run is finished but its "
                                 "model files were not kept with it (copied or checked out "
                                 "without them?); run the crossval again into a new --out")
            raise VsentError(
                f"{path}: fold {k} has no model (unfinished run? use crossval --resume)"
            )
        return path

    def load_model(self, k: int, **kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
        """Fold ``k``'s model and metadata (:func:`vsent.models.load_checkpoint`, ``kwargs``
        passed on); VsentError when the file records another fold (copied or swapped: its
        training images would be among fold ``k``'s test images)."""
        return load_fold_model(self.checkpoint(k), k, **kwargs)


def run_moved_since(out: str | Path, run: str | Path) -> Path | None:
    """Where the crossval run was when the analysis stored in ``out`` (fuse, regions, layers)
    was made from it, if the run was copied or moved since with its analysis.

    Returns that earlier path when all of these hold:

    * ``out`` lies inside the run (or beside it: a reproduction's sub-runs);
    * the run's path stored in ``out`` is not where the run is now;
    * ``out``'s :data:`INPUTS` holds the SHA-256 of the run's predictions as they are now.

    Otherwise None: nothing stored, the same place, an analysis of another run written into
    this one's folder, or one made before :data:`INPUTS` (then refused as another run's by the
    config comparison). Without this, a copied run's own fusion was read as another run's, and
    regions and layers refused to continue in a moved run."""
    here, where = Path(run).resolve(), Path(out).resolve()
    try:
        then = read_config(out).get("run")
    except VsentError:  # none stored (or damaged: open_run_dir says so)
        return None
    if not isinstance(then, str) or Path(then) == here:
        return None
    # inside the run, or beside it as a reproduction's sub-runs are (crossval-five/ and
    # regions-five/ of a reproduction folder copied or moved whole)
    beside = where.parent == here.parent and Path(then).name == here.name
    if not (where.is_relative_to(here) or beside):
        return None
    try:
        made_from = read_record(Path(out) / INPUTS, "inputs (file: SHA-256)")
    except VsentError:  # none (older), or damaged: the run comparison decides
        return None
    now = here / "predictions.csv"
    if not now.is_file():  # an unfinished crossval run: nothing identifies it
        return None
    if made_from != {str(Path(then) / "predictions.csv"): file_sha256(now)}:
        return None
    return Path(then)


def record_run_read(rundir: RunDir, run: CrossvalRun, moved: Path | None) -> None:
    """What an analysis stored inside ``run`` (layers, regions) records of it, at its start:
    the SHA-256 of its predictions (when it has them), by which :func:`run_moved_since`
    knows the run after a move; ``moved`` (that function's answer): the stored config's
    ``run`` is set to where the run is now first, so that a stop before the end leaves the
    two agreeing and the same command continues."""
    if moved:
        rundir.write_json(CONFIG, {**read_config(rundir.path), "run": str(run.path.resolve())})
    predictions = run.path / "predictions.csv"
    record_or_check_inputs(rundir, [predictions] if predictions.is_file() else [])


def record_or_check_inputs(run: RunDir, files: Sequence[str | Path],
                           moved: tuple[Path, Path] | None = None) -> None:
    """Record the SHA-256 of ``files`` in ``run``'s :data:`INPUTS` (a run being written), or,
    for a finished run, raise VsentError naming the first that changed since it was made (a
    run made before the record existed is not checked). ``moved``: (then, now), a folder
    the record's files were under then and are under now (copied or moved with ``run``)."""
    now = {str(Path(f).resolve()): file_sha256(f) for f in files}
    record = run / INPUTS
    if run.status != "finished":
        run.write_json(INPUTS, now)
    elif record.is_file():
        # (read_json's remedy, deleting the file, would only silence the check)
        then = read_record(record, "inputs (file: SHA-256)",
                           remedy=record_remedy(f"pass --overwrite to make {run.path} again"))
        if moved:
            old, new = moved
            then = {str(new / Path(f).relative_to(old)) if Path(f).is_relative_to(old) else f:
                    digest for f, digest in then.items()}
        changed = [f for f in now if then.get(f) != now[f]]
        if changed:
            raise VsentError(f"{changed[0]} changed since {run.path} was made from it: pass "
                             "--overwrite to make it again")


def load_fold_model(path: Path, k: int, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """The model and metadata of the checkpoint ``path`` of fold ``k``
    (:func:`vsent.models.load_checkpoint`, ``kwargs`` passed on); VsentError when it records
    another fold (copied or swapped: its training images would be among fold ``k``'s test
    images)."""
    from vsent.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path, **kwargs)
    if meta.get("fold") not in (None, k):
        raise VsentError(f"{path}: checkpoint of fold {meta['fold']}, expected fold {k} "
                         "(a model trained on another fold has seen this fold's test images)")
    return model, meta


def check_run_data(run: str | Path, config: Mapping[str, Any]) -> None:
    """VsentError naming ``run``'s config.json when the data it was made on is not found from
    here (runs made before --data was stored absolute hold the path as typed)."""
    if not config.get("data"):  # Path("") would be "." and found
        raise VsentError(f"{Path(run) / CONFIG}: not a crossval config (no 'data' entry)")
    data = str(config["data"])
    if not Path(data).exists():
        hint = "" if Path(data).is_absolute() else (
            " (a relative path: run this from the directory the run was made in)")
        raise VsentError(f"{Path(run) / CONFIG}: its data {data} is not found{hint}")


def load_run_dataset(config: Mapping[str, Any], run: str | Path) -> Dataset:
    """The dataset the run ``run`` was made on, from its config.json entries (``data``,
    ``subset``, ``skip_bad``), without decoding its images again, except for a ``--skip-bad``
    run: the images it left out are found again by decoding every image. Data that no longer
    loads (an image deleted since) is said to have changed since the run: the loader's own
    advice, ``--skip-bad``, is no option of the commands that read a finished run."""
    from vsent.data.datasets import load_dataset

    skip_bad = bool(config.get("skip_bad", False))
    try:
        return load_dataset(config["data"], config.get("subset", "five"), skip_bad=skip_bad,
                            validate=skip_bad)
    except BadItemsError as e:  # items it loaded then (a label file unreadable now: its own
        lines = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]  # error)
        shown = "; ".join(lines[:3]) + ("; ..." if len(lines) > 3 else "")
        raise VsentError(f"{config['data']}: its images or labels changed since {run} was "
                         f"trained on them: {shown or one_line(e)}; restore them, or train the "
                         "run again (crossval --overwrite)") from None


def open_run(path: str | Path) -> CrossvalRun:
    """Open a run directory written by ``vsent crossval`` (config, dataset and its folds)."""
    from vsent.config import RunConfig
    from vsent.data.folds import make_folds

    path = Path(path)
    if not path.exists():  # (a typo: "not a crossval run" would send one looking in it)
        raise VsentError(f"{path}: no such file or directory")
    stored = read_config(path) if (path / CONFIG).exists() else None
    made_by = (stored or {}).get("command")
    if made_by not in (None, "crossval"):  # another command's run: as fuse and ensemble say
        raise VsentError(f"{path}: made by vsent {made_by}, not by crossval (needs a "
                         "crossval run directory)")
    if stored is None or not (path / FOLDS).exists():
        raise VsentError(f"{path}: not a crossval run directory (no {CONFIG}/{FOLDS})")
    try:
        config = RunConfig.from_dict(stored)
    except (TypeError, ValueError, VsentError) as e:  # a dict that is no RunConfig
        raise VsentError(f"{path / CONFIG}: not a crossval config ({e})") from None
    check_run_data(path, stored)
    dataset = load_run_dataset(config.to_dict(), path)
    check_data_record(path / DATA_RECORD, dataset, config.data, f"{path} was trained on them",
                      "train the run again (crossval --overwrite)")
    folds = make_folds(dataset, str(path / FOLDS))
    return CrossvalRun(path, config, dataset, folds)
