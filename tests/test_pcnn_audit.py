"""vsent pcnn (audit_ens23): a resume checks its data, removal.csv is read as checked data,
--subset on data without agreement subsets."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import warning_lines
from test_pcnn import _train_opts
from vsent.cli import main
from vsent.data.extra import read_removal, write_removal
from vsent.errors import VsentError


def _csv_dataset(folder: Path) -> Path:
    """A path,label CSV of a positive/ + negative/ folder (a label flips without renaming)."""
    rows = [f"{p.relative_to(folder).as_posix()},{int(p.parent.name == 'positive')}"
            for p in sorted(folder.rglob("*.jpg"))]
    csv_file = folder / "labels.csv"
    csv_file.write_text("path,label\n" + "\n".join(rows) + "\n")
    return csv_file


def _flip(csv_file: Path, line: int = 1) -> None:
    lines = csv_file.read_text().splitlines()
    path, label = lines[line].split(",")
    lines[line] = f"{path},{1 - int(label)}"
    csv_file.write_text("\n".join(lines) + "\n")


def test_a_resume_with_changed_data_is_refused(make_learnable, tmp_path, capsys):
    """Stage 1 and the draw were made on the old labels, stage 2 would train on the new ones
    and model.pt record them: a resume of changed data is refused (#4), by the run's
    data.json, or for a run that kept none by stage 1's record of its data; a damaged
    removal.csv is one line naming it (#5)."""
    csv_file = _csv_dataset(make_learnable(n_pos=10, n_neg=10))
    out = tmp_path / "run"
    args = ["pcnn", "--data", str(csv_file), "--out", str(out), *_train_opts(1, 1)]
    assert main(args) == 0
    # with one digest per image: a later change names its images (provenance.data_record)
    assert len(json.loads((out / "data.json").read_text())["item_digests"].split()) == 20

    def interrupt_after_selection() -> None:
        (out / "summary.json").unlink()
        (out / "model.pt").unlink()
        shutil.rmtree(out / "stage2", ignore_errors=True)  # skipped when one class is kept

    interrupt_after_selection()
    capsys.readouterr()
    _flip(csv_file)
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"vsent: error: {csv_file}: its images or labels changed since {out} started")
    (out / "data.json").unlink()  # a run of a vsent that kept no record
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"vsent: error: {csv_file}: its images or labels changed since "
        f"{out / 'stage1' / 'model.pt'} was trained on them")
    # refused before recording the changed data as the run's: restoring the data is enough
    assert not (out / "model.pt").exists() and not (out / "data.json").exists()

    _flip(csv_file)  # the data restored: the resume goes on, after refusing a damaged draw
    removal = out / "removal.csv"
    good = removal.read_text()
    lines = good.splitlines()
    lines[2] = ",".join([*lines[2].split(",")[:2], "0.4x", *lines[2].split(",")[3:]])
    removal.write_text("\n".join(lines) + "\n")
    assert main([*args, "--resume"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"vsent: error: {removal}, line 3: unreadable row (s1: could not convert string to "
        "float: '0.4x')"]
    removal.write_text(good)
    assert main([*args, "--resume"]) == 0
    assert (out / "model.pt").is_file() and (out / "data.json").is_file()


NAMES = ["a.jpg", "b.jpg", "c.jpg"]
LABELS = np.array([1, 0, 1])
SCORES = np.array([[0.3, 0.7], [0.55, 0.45], [0.1, 0.9]])


def _edit_second_row(column: str, value: str):
    def edit(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        cells = lines[2].split(",")
        cells[header.index(column)] = value
        return [*lines[:2], ",".join(cells), *lines[3:]]
    return edit


@pytest.mark.parametrize("edit,message", [
    (_edit_second_row("s1", "0.4x"),
     r"line 3: unreadable row \(s1: could not convert string to float: '0.4x'\)"),
    (_edit_second_row("s2", "nan"), r"line 3: unreadable row \(s2: 'nan' is not a finite number\)"),
    (_edit_second_row("removed", "2"), r"line 3: unreadable row \(removed: '2' is not 0 or 1\)"),
    (_edit_second_row("removed", ""), r"line 3: unreadable row \(removed: '' is not 0 or 1\)"),
    (lambda lines: [",".join(c for i, c in enumerate(line.split(",")) if i != 3)
                    for line in lines], r"line 1: no column 's2'"),
    (lambda lines: [*lines[:2], lines[2][:8]],
     r"line 3: unreadable row \(cut short: 3 of 7 fields\)"),
    (lambda lines: [lines[0], lines[1] + lines[2], *lines[3:]],
     r"line 2: unreadable row \(13 fields, the header has 7\)"),
    (lambda lines: [*lines[:2], lines[2].replace("b.jpg,0", "b.jpg,1"), *lines[3:]],
     r"line 3: b.jpg has label 1, the data now 0 \(was the data changed since the run "
     r"started\?\)"),
    # blank lines before the bad row: the file's line, not the row's number (review38 #4)
    (lambda lines: [*lines[:2], "", "", *_edit_second_row("removed", "2")(lines)[2:]],
     r"line 5: unreadable row \(removed: '2' is not 0 or 1\)"),
])
def test_a_damaged_removal_file_is_one_line_naming_it_and_the_line(tmp_path, edit, message):
    """A ValueError or KeyError traceback before, and a `removed` other than 0 counted as
    removed, silently (#5); the label column was not compared with the data's (#4)."""
    path = tmp_path / "removal.csv"
    write_removal(path, NAMES, LABELS, SCORES, np.array([True, False, True]))
    kept, scores = read_removal(path, NAMES, LABELS)  # as written
    assert kept.tolist() == [True, False, True] and np.array_equal(scores, SCORES)
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(VsentError, match="^" + re.escape(str(path)) + ", " + message):
        read_removal(path, NAMES, LABELS)


def test_subset_on_data_without_agreement_subsets_is_refused(make_learnable, tmp_path,
                                                             capsys):
    """--subset was recorded and ignored for a folder or CSV (and a resume with another one
    refused although the data are the same): a new run with one is refused (#12); one that
    an older vsent started with it keeps its record and resumes (mut52b P21)."""
    data = make_learnable(n_pos=10, n_neg=10)
    out = tmp_path / "run"
    args = ["pcnn", "--data", str(data), "--out", str(out), *_train_opts(1, 1)]
    assert main([*args, "--subset", "four"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"vsent: error: --subset four: {data} is a folder dataset, which has no agreement "
        "subsets (--subset selects one of a Twitter I folder); leave --subset out"]
    assert not (out / "stage1").exists()
    assert main(args) == 0  # the refused run wrote no results: the next one replaces it

    # one that a vsent before the check started (its --subset recorded) resumes: only a new
    # run is refused
    from vsent.analyses.pcnn import ProgressiveConfig, _read_run_data
    from vsent.runs import RunDir

    with RunDir(tmp_path / "older") as run:
        run.status = "resumed"
        dataset, _ = _read_run_data(ProgressiveConfig(data=str(data), subset="four"), run)
    assert dataset.subset is None and len(dataset) == 20


def test_a_finished_run_names_its_own_models_when_moved(make_learnable, tmp_path, capsys,
                                                        caplog):
    """audit59: a finished run read back named the model.pt paths stored when it ran (relative
    to the folder it ran from), not those of --out: after a move, or from another folder,
    the message named a file that is not there. (progressive's returned summary: the CLI
    prints its paths.)"""
    data = make_learnable(n_pos=8, n_neg=8)
    first, moved = tmp_path / "first", tmp_path / "moved"
    assert main(["pcnn", "--data", str(data), "--out", str(first), *_train_opts(1, 1)]) == 0
    shutil.move(first, moved)
    capsys.readouterr()
    assert main(["pcnn", "--resume", "--out", str(moved), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"PCNN written to {moved / 'model.pt'}," in out
    assert f"stage-1 CNN to {moved / 'stage1' / 'model.pt'};" in out
    assert str(first) not in out
    # audit59: a finished run whose models were deleted says which, and is read back all
    # the same
    (moved / "model.pt").unlink()
    (moved / "stage1" / "model.pt").unlink()
    caplog.clear()  # (the run's own warnings)
    with caplog.at_level("WARNING", logger="vsent"):
        assert main(["pcnn", "--resume", "--out", str(moved), "--no-progress"]) == 0
    assert warning_lines(caplog) == [
        f"{moved}: finished run without stage1/model.pt, model.pt (deleted, or copied without "
        "them?): its results are read back, but commands that load them need the run made "
        "again (--overwrite)"]


def test_a_damaged_stage1_model_of_a_resumed_run_says_how_to_go_on(make_learnable, tmp_path,
                                                                   capsys):
    """audit59: a stage1/model.pt cut short (a copy stopped part way) was named, with no way
    on; it says to delete it (stage 1 trains again) or to start again, and nothing is lost."""
    data = make_learnable(n_pos=8, n_neg=8)
    out = tmp_path / "p"
    assert main(["pcnn", "--data", str(data), "--out", str(out), *_train_opts(1, 1)]) == 0
    for done in ("summary.json", "model.pt"):  # as if stopped before stage 2 ended
        (out / done).unlink()
    stage1 = out / "stage1" / "model.pt"
    stage1.write_bytes(stage1.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["pcnn", "--resume", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vsent: error: {stage1}: ") and err.count("\n") == 1
    assert err.endswith("; delete it to train stage 1 again, or pass --overwrite to start the "
                        "run again\n")
    assert len(stage1.read_bytes()) == 1000 and (out / "removal.csv").exists()
