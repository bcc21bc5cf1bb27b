"""The one run-directory policy (vsent.runs.open_run_dir) and the run-directory contract."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
from pathlib import Path

import pytest

from vsent.errors import VsentError
from vsent.runs import (
    RECORDS,
    _RunLog,
    _short,
    config_diff,
    fold_done,
    open_run_dir,
    read_config,
    started_as,
)

CFG = {"command": "demo", "data": ".", "train": {"lr": 0.002, "epochs": 3, "device": "cpu"},
       "folds": [1, 2]}


def _open(out, config=CFG, **kw):
    rd = open_run_dir(out, config, **kw)
    rd.close()
    return rd


def test_a_new_directory_gets_the_config(tmp_path):
    rd = _open(tmp_path / "r", {**CFG, "data": Path("."), "folds": (1, 2)})
    assert rd.status == "new" and rd.config == CFG  # as JSON holds it
    assert (tmp_path / "r" / "config.json").read_text() == json.dumps(CFG, indent=2) + "\n"
    versions = json.loads((tmp_path / "r" / "versions.json").read_text())
    # what a rerun needs to know to expect the same floats: code, packages, CPU kind
    assert versions["torch"] and versions["torch_threads"] >= 1
    assert isinstance(versions["cpu_capability"], str) and versions["cpu_capability"]
    assert "cpu" in versions
    # this process's own values, not placeholders
    from importlib import metadata

    import torch

    assert versions["torch"] == metadata.version("torch")
    assert versions["vsent"] == metadata.version("vsent")
    assert versions["torch_threads"] == torch.get_num_threads()
    assert versions["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_same_config_unfinished_needs_resume_and_finished_is_never_redone(tmp_path):
    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()  # a first result: the run is no longer replaceable
    (out / "fold1" / "history.json").write_text("[]")  # (an empty folder is no result)
    with pytest.raises(VsentError, match="unfinished run: pass --resume"):
        _open(out)
    assert _open(out, resume=True).status == "resumed"
    (out / "summary.json").write_text("{}")
    assert _open(out).status == "finished"
    assert _open(out, resume=True).status == "finished"
    assert _open(out, done=None, resume=True).status == "resumed"  # no finished marker
    assert _open(out, done="fold1/metrics.json", resume=True).status == "resumed"  # its own
    # a run without one (regions, reproduce) may be complete: the message says --resume shows
    # it again, not only that it continues it (walk24 #3)
    with pytest.raises(VsentError, match=re.escape(
            f"{out} already holds a run: pass --resume to continue it (or, if it is complete, "
            "to show it again), --overwrite to start again, or choose another --out")):
        _open(out, done=None)


def test_a_run_that_wrote_no_results_is_replaced_by_the_next(tmp_path):
    """A run refused before its first result (a bad image, say) holds only its records: the
    next run, with the fixed or another config, starts afresh instead of being refused."""
    out = tmp_path / "r"
    _open(out)
    (out / "skipped.json").write_text("[]")
    (out / "folds.json").write_text("{}")  # a crossval stopped by a bad --fold wrote its split
    (out / "run.log").write_text("the refused run's line\n")
    (out / "versions.json").write_text('{"vsent": "0.0"}')  # the refused run's versions
    assert {p.name for p in out.iterdir()} <= RECORDS
    other = {**CFG, "skip_bad": True}
    rd = _open(out, other)
    assert rd.status == "new" and json.loads((out / "config.json").read_text()) == other
    assert "refused" not in (out / "run.log").read_text()  # its records start again
    assert json.loads((out / "versions.json").read_text())["vsent"] != "0.0"
    assert not (out / "skipped.json").exists() and not (out / "folds.json").exists()
    rd = _open(out, other)  # the same config again: still nothing written, still replaced
    assert rd.status == "new"
    (out / "notes.txt").write_text("mine")  # anything else makes it a run with results
    with pytest.raises(VsentError, match="made with other skip_bad"):
        _open(out)
    with pytest.raises(VsentError, match="unfinished run: pass --resume"):
        _open(out, other)


def test_another_config_is_refused_naming_the_dotted_keys(tmp_path):
    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")  # (an empty folder is no result)
    other = {**CFG, "train": {**CFG["train"], "lr": 0.5}, "folds": [1, 2, 3], "extra": True}
    for resume in (False, True):
        with pytest.raises(VsentError) as e:
            _open(out, other, resume=resume)
        msg = str(e.value)
        assert "train.lr: stored 0.002, now 0.5" in msg
        assert "folds: stored [1, 2], now [1, 2, 3]" in msg
        assert "extra: not in the stored config, now True" in msg
        assert "epochs" not in msg and "data" not in msg and "\n" not in msg
        assert msg == (
            f"{'--resume: ' if resume else ''}{out} already holds a run made with other extra, "
            "folds, train.lr (extra: not in the stored config, now True; folds: stored [1, 2], "
            f"now [1, 2, 3]; train.lr: stored 0.002, now 0.5; see {out / 'config.json'}): "
            + ("give the options it was started with" if resume else
               "pass --overwrite to start again, or choose another --out"))
    with pytest.raises(VsentError, match=re.escape(  # a key that is no option: said in words
            "other model_sha256 (the checkpoint's bytes) (model_sha256: not in the stored")):
        _open(out, {**CFG, "model_sha256": "0" * 64})
    assert json.loads((out / "config.json").read_text()) == CFG  # the record is unchanged


def test_the_device_and_ignored_keys_may_change_and_compare_restricts(tmp_path):
    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()  # a first result: resumable, not replaceable
    (out / "fold1" / "history.json").write_text("[]")  # (an empty folder is no result)
    on_gpu = {**CFG, "train": {**CFG["train"], "device": "cuda"}}
    assert _open(out, on_gpu, resume=True).status == "resumed"
    assert _open(out, {**CFG, "n_jobs": 4}, resume=True, ignore=("n_jobs",)).status == "resumed"
    more_folds = {**CFG, "folds": [1, 2, 3]}
    assert _open(out, more_folds, resume=True, compare=("data", "train")).status == "resumed"
    with pytest.raises(VsentError, match="other data"):
        _open(out, {**more_folds, "data": "e"}, resume=True, compare=("data", "train"))


def test_overwrite_starts_again_but_never_deletes_a_foreign_directory(tmp_path):
    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "metrics.json").write_text("{}")
    other = {**CFG, "data": str(tmp_path)}
    assert _open(out, other, overwrite=True).status == "new"
    assert not (out / "fold1").exists()
    assert json.loads((out / "config.json").read_text())["data"] == str(tmp_path)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(VsentError) as e:
        _open(foreign, overwrite=True)
    assert str(e.value) == (f"--overwrite: {foreign} is not empty and holds no config.json; "
                            "not deleting it (choose another --out)")
    assert (foreign / "holiday.jpg").exists()


def test_a_run_never_starts_among_a_users_files(tmp_path, capsys, checkpoint):
    # a config.json written among them would let a later --overwrite delete them all
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("important")
    with pytest.raises(VsentError, match=re.escape(
            f"{foreign} holds files and no config.json: it is not a vsent run; choose another "
            "--out (a run starts in a new or empty folder)")):
        _open(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.txt"]
    with pytest.raises(VsentError, match="not deleting"):
        _open(foreign, overwrite=True)
    assert (foreign / "thesis.txt").read_text() == "important"
    # an empty folder is fine
    (tmp_path / "empty").mkdir()
    assert _open(tmp_path / "empty").status == "new"
    # the same through a command: exit 2, one line, nothing written
    from PIL import Image

    from vsent.cli import main

    Image.new("RGB", (40, 30), (200, 90, 40)).save(tmp_path / "img.jpg")
    assert main(["explain", "--model", str(checkpoint), str(tmp_path / "img.jpg"), "--out",
                 str(foreign), "--no-progress"]) == 2
    assert "it is not a vsent run" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.txt"]


def test_a_users_own_config_json_is_no_run_to_replace_or_delete(tmp_path, capsys, checkpoint):
    """audit_errors28 #2: any config.json made a folder a vsent run: one alone was "replaced"
    (the user's file overwritten), one beside other files was "a run made with other ..."
    whose advice, --overwrite, deleted them all. A run's config.json sits beside its
    versions.json or names its command; any other is refused, --overwrite included."""
    from vsent.cli import main

    app = tmp_path / "app"
    app.mkdir()
    mine = {"name": "my app", "port": 80}
    (app / "config.json").write_text(json.dumps(mine))
    for kw in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(VsentError) as e:
            _open(app, **kw)
        assert str(e.value) == (
            f"{app} holds a config.json that is not a vsent run's (no versions.json beside it, "
            'no "command" in it): not touching it; choose another --out (a run starts in a '
            "new or empty folder)")
    (app / "server.py").write_text("print('hi')")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_bytes(b"\xff not json")
    for folder in (app, tmp_path / "broken"):
        with pytest.raises(VsentError, match="not a vsent run's"):
            _open(folder, overwrite=True)
    assert json.loads((app / "config.json").read_text()) == mine
    assert sorted(p.name for p in app.iterdir()) == ["config.json", "server.py"]
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 90, 40)).save(tmp_path / "img.jpg")
    assert main(["explain", "--model", str(checkpoint), str(tmp_path / "img.jpg"), "--out",
                 str(app), "--overwrite", "--no-progress"]) == 2
    assert "not a vsent run's" in capsys.readouterr().err
    assert sorted(p.name for p in app.iterdir()) == ["config.json", "server.py"]
    # a run killed between its config.json and versions.json is still a run (replaced)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(CFG))
    assert _open(run).status == "new"


def test_resume_with_no_run_there_says_it_starts_a_new_one(tmp_path, caplog):
    with caplog.at_level("INFO", logger="vsent"):
        rd = _open(tmp_path / "typo", resume=True)
    assert rd.status == "new"
    assert f"{tmp_path / 'typo'}: --resume, but no run there yet; starting a new one" in \
        caplog.text
    # a command that always resumes (fuse, ensemble, layers, explain) has no --resume to name
    caplog.clear()
    with caplog.at_level("INFO", logger="vsent"):
        assert _open(tmp_path / "fused", resume=True, resume_asked=False).status == "new"
    assert "no run there yet" not in caplog.text
    # a run stopped before its first result, resumed: one line, not two that disagree
    # (trial32 #13: "replacing a run that wrote no results", then "no run there yet")
    run = tmp_path / "stopped"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(CFG))
    caplog.clear()
    with caplog.at_level("INFO", logger="vsent"):
        assert _open(run, resume=True).status == "new"
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"{run}: --resume: the run there wrote no results; starting it again"]
    # nor is a command without --resume told of one it was not given
    caplog.clear()
    with caplog.at_level("INFO", logger="vsent"):
        assert _open(run, resume=True, resume_asked=False).status == "new"
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"{run}: replacing a run that wrote no results"]


def test_overwrite_never_deletes_what_the_run_reads(tmp_path, monkeypatch):
    """``reproduce --run R --out R --overwrite`` deleted the run R it was to analyse."""
    inp = tmp_path / "r"
    _open(inp)
    (inp / "fold1").mkdir()
    reads = {"command": "demo", "plan": {"runs": [str(inp / "fold1")]}}
    with pytest.raises(VsentError, match=r"--overwrite would delete .*fold1, which this run "
                                         r"reads: choose another --out"):
        _open(inp, reads, overwrite=True)
    assert (inp / "fold1").is_dir() and (inp / "config.json").exists()
    monkeypatch.chdir(tmp_path)  # --out given relative: the same folder
    with pytest.raises(VsentError, match="--overwrite would delete"):
        _open("r", reads, overwrite=True)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # a string that is no path: passed over
    assert _open(inp, {**CFG, "data": str(tmp_path), "note": str(tmp_path / "loop")},
                 overwrite=True).status == "new"


def test_a_run_of_another_command_is_named_as_such(tmp_path):
    _open(tmp_path / "r")
    (tmp_path / "r" / "fold1").mkdir()  # a result (a run without any is replaced)
    (tmp_path / "r" / "fold1" / "history.json").write_text("[]")  # (an empty folder is no result)
    with pytest.raises(VsentError, match=r"r holds a demo run, not an other run: choose another "
                                         r"--out$"):
        _open(tmp_path / "r", {**CFG, "command": "other"}, resume=True)
    with pytest.raises(VsentError, match=r"r holds a demo run, not an explain run"):
        _open(tmp_path / "r", {**CFG, "command": "explain"}, resume=True)  # (trial33 #14)
    # nor does --overwrite delete it (audit60: `vsent explain --out <a crossval run>
    # --overwrite` deleted the run, its fold models with it); its own command starts it again
    with pytest.raises(VsentError, match=r"^--overwrite: .*r holds a demo run, not an explain "
                                         r"run; not deleting another command's run: choose "
                                         r"another --out \(or delete it yourself\)$"):
        _open(tmp_path / "r", {**CFG, "command": "explain"}, overwrite=True)
    assert (tmp_path / "r" / "fold1" / "history.json").exists()
    assert _open(tmp_path / "r", {**CFG, "data": ".."}, overwrite=True).status == "new"
    # one that wrote no results is replaced by another command's, with --overwrite or without
    assert not (tmp_path / "r" / "fold1").exists()
    assert _open(tmp_path / "r", {**CFG, "command": "explain"}, overwrite=True).status == "new"
    assert read_config(tmp_path / "r")["command"] == "explain"


def test_config_diff_takes_keys_added_later_at_their_default_as_equal():
    from vsent.config import omitted_defaults

    d = omitted_defaults()
    older = {"x": 1, "extra_schedule": d["extra_schedule"], "zero_shot": d["zero_shot"]}
    assert config_diff(older, {"x": 1}) == [] == config_diff({"x": 1}, older)
    assert config_diff({**older, "zero_shot": True}, {"x": 1}) == [
        "zero_shot: stored True, not in the new config"]


def test_config_diff_cuts_a_long_value():
    """audit_errors28: explain's refusal of a re-run listed every stored image name."""
    stored = {"images": [f"/photos/img{i:05d}.jpg" for i in range(2000)], "k": 1}
    new = {"images": ["/photos/other.jpg"], "k": 1}
    (line,) = config_diff(stored, new)
    assert line.startswith("images: stored ['/photos/img00000.jpg', ")
    assert "... (2000 entries), now ['/photos/other.jpg']" in line and len(line) < 300


def test_config_diff_lists_each_leaf_once():
    a = {"x": 1, "t": {"lr": 1e-3, "m": (0.9, 1)}, "gone": 2}
    b = {"x": 1, "t": {"lr": 1e-4, "m": [0.9, 1]}, "new": None}
    assert config_diff(a, b) == [
        "gone: stored 2, not in the new config",
        "new: not in the stored config, now None",
        "t.lr: stored 0.001, now 0.0001",
    ]
    assert config_diff(a, a) == []
    assert config_diff(1, 2) == ["config: stored 1, now 2"]  # no key to name: the whole


def test_to_jsonable_writes_numpy_values_and_keys_as_config_json_holds_them():
    """A numpy score or array is written as JSON's number or list, a non-string key as
    config.json holds it (a stored {"1": ...} is the same config as {1: ...})."""
    import numpy as np

    from vsent.config import RunConfig
    from vsent.runs import to_jsonable

    assert json.dumps(to_jsonable({1: np.float32(0.5), "v": np.arange(2), "p": Path("a/b")})
                      ) == '{"1": 0.5, "v": [0, 1], "p": "a/b"}'
    assert config_diff({"w": {"1": 0.5}}, {"w": {1: 0.5}}) == []
    cfg = RunConfig(data="d")  # as config.json holds it: keys at their default left out
    assert to_jsonable(cfg) == to_jsonable(cfg.to_dict()) and "zero_shot" not in to_jsonable(cfg)


def test_config_diff_compares_the_data_folder_not_its_spelling(tmp_path, monkeypatch):
    (tmp_path / "twitter1").mkdir()
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    stored = {"plan": {"template": {"data": str(tmp_path / "twitter1")}}, "data": "../twitter1"}
    assert config_diff(stored, {"plan": {"template": {"data": "../twitter1"}},
                                "data": str(tmp_path / "twitter1")}) == []
    assert config_diff(stored, {"plan": {"template": {"data": "../other"}},
                                "data": "../twitter1"}) == [
        f"plan.template.data: stored {str(tmp_path / 'twitter1')!r}, now '../other'"]


def test_fold_done_is_the_metrics_file(tmp_path):
    assert not fold_done(tmp_path, 2)
    (tmp_path / "fold2").mkdir()
    (tmp_path / "fold2" / "model.pt").write_bytes(b"")
    assert not fold_done(tmp_path, 2)  # a model alone: the fold may not have been evaluated
    (tmp_path / "fold2" / "metrics.json").write_text("{}")
    assert fold_done(tmp_path, 2)


def test_a_run_for_a_missing_data_path_leaves_no_directory(tmp_path, capsys):
    """Every command: a first try with a wrong --data must not leave a run directory that
    refuses the next try with the right one."""
    from vsent.cli import main

    missing = str(tmp_path / "missing")
    with pytest.raises(VsentError, match="missing: no such file or directory"):
        open_run_dir(tmp_path / "run", {"command": "x", "data": missing})
    assert not (tmp_path / "run").exists()
    for command in ("baselines", "pcnn", "crossval"):
        out = tmp_path / command
        assert main([command, "--data", missing, "--out", str(out), "--no-progress"]) == 2
        assert not out.exists(), command
    assert "Traceback" not in capsys.readouterr().err


def test_a_data_path_of_an_unknown_user_is_a_usage_error(tmp_path, capsys):
    """``--data ~nosuchuser/x``: argparse's one line (exit 2), not pathlib's RuntimeError."""
    from vsent.cli import main

    for command in ("crossval", "baselines"):
        with pytest.raises(SystemExit) as stop:
            main([command, "--data", "~vsent-no-such-user/x", "--out", str(tmp_path / "r")])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1].endswith(
            "argument --data: ~vsent-no-such-user/x: cannot expand ~ (no such user, or no home "
            "directory)") and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_an_out_path_with_a_tilde_is_expanded(tmp_path, monkeypatch, capsys):
    """``--out=~/runs`` (or a quoted ``'~/runs'``: no shell expands it) made a folder named
    ``~`` in the current directory; a ``~user`` of no user is argparse's one line."""
    from vsent.cli import build_parser, main

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for argv in (["crossval"], ["pcnn", "--data", "d"], ["baselines"], ["regions", "--run", "r"],
                 ["explain", "--model", "m", "x.jpg"], ["predict", "--model", "m", "x.jpg"],
                 ["fuse", "r"], ["ensemble", "r1", "r2"], ["export", "--model", "m"],
                 ["card", "m"]):
        args = build_parser().parse_args([*argv, "--out", "~/runs/x"])
        assert args.out == str(tmp_path / "home" / "runs" / "x"), argv
    with pytest.raises(SystemExit) as stop:
        main(["crossval", "--out", "~vsent-no-such-user/x"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "argument --out: ~vsent-no-such-user/x: cannot expand ~ (no such user, or no home "
        "directory)")
    assert build_parser().parse_args(["predict", "--model", "m", "x.jpg", "--out", "-"]).out == "-"


@pytest.mark.parametrize("content, why", [("{broken", "unreadable (Expecting"),
                                          ("[]", "unreadable (a JSON list, expected an object)"),
                                          ('{"command": "crossval", "x": 1}',
                                           "not a crossval config (")])
def test_a_bad_config_json_of_an_input_run_is_a_user_error_naming_it(tmp_path, capsys,
                                                                      content, why):
    """compare, ensemble, fuse, layers and regions read another run's config.json: a broken
    one is a one-line error naming the file, not a traceback."""
    from vsent.cli import main

    run = tmp_path / "run"
    run.mkdir()
    for name in ("folds.json", "summary.json"):
        (run / name).write_text("{}")
    (run / "predictions.csv").write_text("name,fold,label,prob_positive\n")
    (run / "config.json").write_text(content)
    commands = {"layers": ["layers", "--run", str(run), "--out", str(tmp_path / "l")],
                "regions": ["regions", "--run", str(run), "--out", str(tmp_path / "r")],
                "fuse": ["fuse", str(run), "--out", str(tmp_path / "f")],
                "compare": ["compare", str(run), str(run)],
                # the broken run first (a run named twice is refused before any is read)
                "ensemble": ["ensemble", str(run), str(tmp_path), "--out", str(tmp_path / "e")]}
    if content.startswith("{\""):  # a JSON object: compare and ensemble only need "command"
        del commands["compare"], commands["ensemble"]
    for name, argv in commands.items():
        assert main([*argv, "--no-progress"] if name in ("layers", "regions", "fuse")
                    else argv) == 2, name
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert f"vsent: error: {run / 'config.json'}: {why}" in err, (name, err)


def test_an_out_that_is_a_file_is_named_as_one(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(VsentError) as e:
            _open(tmp_path / "notes.txt", overwrite=overwrite)
        assert str(e.value) == (f"cannot create run directory {tmp_path / 'notes.txt'}: a file "
                                "of that name exists (choose another --out)")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(VsentError) as e:  # a folder under it: the file named, no "[Errno 20]"
        _open(tmp_path / "notes.txt" / "r")
    assert str(e.value) == (f"cannot create run directory {tmp_path / 'notes.txt' / 'r'}: "
                            f"{tmp_path / 'notes.txt'} is a file, not a folder")


def test_a_run_whose_data_is_not_found_from_here_names_its_config(tmp_path, monkeypatch):
    from vsent.crossval_run import check_run_data

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    check_run_data("r", {"data": "data"})  # found from here: nothing said
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(VsentError, match=r"^r/config.json: its data data is not found \(a "
                                         r"relative path: run this from the directory"):
        check_run_data("r", {"data": "data"})
    with pytest.raises(VsentError, match=r"its data /no/such/twitter1 is not found$"):
        check_run_data("r", {"data": "/no/such/twitter1"})


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    from vsent.files import atomic_open

    path = tmp_path / "removal.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half a ne")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]
    with atomic_open(path) as f:
        f.write("new\n")
    assert path.read_text() == "new\n" and list(tmp_path.iterdir()) == [path]


def test_the_summary_json_that_marks_a_run_finished_is_written_last(tmp_path, monkeypatch):
    from vsent.metrics import binary_metrics, summarize_folds, write_summary

    rd = _open(tmp_path / "r")
    summary = summarize_folds([{"fold": 1, **binary_metrics([0, 1, 1], [0, 1, 0])}])

    def disk_full(name, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rd, "write_text", disk_full)
    with pytest.raises(OSError):
        write_summary(rd, summary, "t", extra_md="## fusion")
    assert not (tmp_path / "r" / "summary.json").exists()
    monkeypatch.undo()
    write_summary(rd, summary, "t", extra_md="## fusion")
    assert (tmp_path / "r" / "summary.md").read_text().endswith("\n## fusion")
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == json.loads(
        json.dumps(summary))


def test_versions_are_those_the_run_started_with_and_resumes_are_listed(tmp_path, monkeypatch,
                                                                        caplog):
    import vsent.runs as runs

    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()  # a result: the run is resumed, not replaced
    (out / "fold1" / "history.json").write_text("[]")  # (an empty folder is no result)
    first = json.loads((out / "versions.json").read_text())
    assert first["argv"] and "resumed" not in first
    _open(out, resume=True)
    once = json.loads((out / "versions.json").read_text())
    assert {k: v for k, v in once.items() if k != "resumed"} == first
    assert [e["changed"] for e in once["resumed"]] == [{}]
    monkeypatch.setattr(runs, "versions", lambda: {**first, "torch": "9.9.9"})
    caplog.clear()
    _open(out, resume=True)
    assert f"{out}: resumed with other versions than it started with: torch {first['torch']} " \
           "-> 9.9.9" in caplog.messages
    twice = json.loads((out / "versions.json").read_text())
    assert twice["torch"] == first["torch"]  # the first session's stay
    assert twice["resumed"][1]["changed"] == {"torch": "9.9.9"}
    (out / "summary.json").write_text("{}")
    _open(out)  # finished: nothing recomputed, nothing recorded
    assert json.loads((out / "versions.json").read_text()) == twice


def test_a_resume_with_another_number_of_processes_is_recorded(tmp_path, monkeypatch):
    """--nproc was recorded nowhere (the launcher takes it off the ranks' command line): a
    fold started by 2 processes and resumed by 1 mixed two trainings without a trace."""
    out = tmp_path / "r"
    monkeypatch.setenv("WORLD_SIZE", "2")
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    assert json.loads((out / "versions.json").read_text())["processes"] == 2
    monkeypatch.delenv("WORLD_SIZE")
    _open(out, resume=True)
    resumed = json.loads((out / "versions.json").read_text())["resumed"]
    assert resumed[0]["changed"] == {"processes": 1}


def test_run_log_ends_with_what_stopped_the_session(tmp_path, capsys, caplog):
    """run.log went from an epoch to the next session's first line with no word of why: its
    last line now says it (a user error, an interrupt, a crash), and only run.log does (the
    console has the CLI's own line)."""
    from vsent.runs import RunDir

    for exc, line in ((VsentError("data changed"), "ERROR stopped: data changed"),
                      (KeyboardInterrupt(),
                       "WARNING interrupted: the run is kept; --resume continues it"),
                      (RuntimeError("CUDA out of\n  memory"),  # said on one line
                       "ERROR stopped by RuntimeError: CUDA out of memory")):
        out = tmp_path / type(exc).__name__
        with pytest.raises(type(exc)), RunDir(out):
            raise exc
        assert (out / "run.log").read_text().splitlines()[-1].endswith(line)
    assert "data changed" not in capsys.readouterr().err
    assert not [m for m in caplog.messages if "stopped" in m]  # run.log's alone, no logger's
    with RunDir(tmp_path / "fine"):
        pass
    assert (tmp_path / "fine" / "run.log").read_text() == ""
    # a command without --resume (explain, fuse): the same command continues it (trial33 #5)
    from vsent.runs import open_run_dir

    for _ in range(2):  # a new run, then the unfinished one opened again
        with pytest.raises(KeyboardInterrupt), open_run_dir(
                tmp_path / "cam", {"command": "explain"}, resume=True, done="explain.csv",
                resume_asked=False) as rd:
            (rd / "0000.npy").write_bytes(b"x")
            raise KeyboardInterrupt
        assert (tmp_path / "cam" / "run.log").read_text().splitlines()[-1].endswith(
            "WARNING interrupted: the run is kept; the same command again finishes it")


def test_run_log_takes_vsents_lines_and_its_handler_goes_on_every_exit_path(tmp_path,
                                                                           monkeypatch):
    """run.log holds the vsent logger's lines, not another library's; closing removes and
    closes its handler, even when saying why the session stopped fails (a second Ctrl-C)."""
    from vsent.runs import RunDir

    loggers = logging.getLogger("vsent"), logging.getLogger()
    before = [list(lg.handlers) for lg in loggers]
    with RunDir(tmp_path / "r") as rd:
        logging.getLogger("other").warning("not the run's")
        logging.getLogger("vsent").info("the run's")
    assert (tmp_path / "r" / "run.log").read_text().splitlines()[0].endswith(" INFO the run's")
    assert "not the run's" not in (tmp_path / "r" / "run.log").read_text()
    assert rd._handler.stream is None and [list(lg.handlers) for lg in loggers] == before

    rd = RunDir(tmp_path / "s")
    monkeypatch.setattr(rd, "log_only", _interrupt)  # a second Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        rd.close(VsentError("first"))
    assert rd._handler.stream is None and [list(lg.handlers) for lg in loggers] == before


def test_a_resume_refused_while_opening_leaves_no_log_handler(tmp_path):
    """open_run_dir failed after making the RunDir (versions.json could not be rewritten):
    the caller got no RunDir to close, and its run.log took every later message."""
    import logging

    from vsent.runs import RunDir, open_run_dir

    out = tmp_path / "run"
    with open_run_dir(out, {"command": "x", "a": 1}, done="done.json") as rd:
        rd.write_json("part.json", {})  # a result: the run resumes
    (out / "versions.json").unlink()
    (out / "versions.json").mkdir()
    with pytest.raises(VsentError, match="versions.json: cannot be written"):
        open_run_dir(out, {"command": "x", "a": 1}, resume=True, done="done.json")
    logging.getLogger("vsent").warning("a later message of this process")
    assert not [h for h in logging.getLogger("vsent").handlers
                if isinstance(h, logging.FileHandler)]
    assert "a later message" not in (out / "run.log").read_text()
    assert "ERROR stopped: " in (out / "run.log").read_text().splitlines()[-1]
    (out / "versions.json").rmdir()
    with pytest.MonkeyPatch.context() as mp:  # a Ctrl-C meanwhile: no handler left either
        mp.setattr(RunDir, "record_resume", _interrupt)
        with pytest.raises(KeyboardInterrupt):
            open_run_dir(out, {"command": "x", "a": 1}, resume=True, done="done.json")
    assert not [h for h in logging.getLogger("vsent").handlers
                if isinstance(h, logging.FileHandler)]
    assert "WARNING interrupted" in (out / "run.log").read_text().splitlines()[-1]


def _interrupt(*args):
    raise KeyboardInterrupt


def test_the_git_commit_is_vsents_own_or_none(tmp_path, monkeypatch):
    import vsent.provenance as provenance

    commit, dirty = provenance._git_state()
    if commit is not None:  # a checkout of vsent (as in CI)
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and isinstance(dirty, bool)
    # vsent installed inside some other git project: that project's commit is not vsent's
    monkeypatch.setattr(provenance, "_git", lambda *a: str(tmp_path) if "--show-toplevel" in a
                        else "0" * 40)
    assert provenance._git_state() == (None, None)


def test_a_process_records_the_commit_it_started_with(monkeypatch):
    """The checkout's HEAD read again at every write stamped one reproduction's sub-runs with
    three commits made beside it while it ran (reports38 #2)."""
    import vsent.provenance as provenance

    heads = iter(["1" * 40, "2" * 40])
    monkeypatch.setattr(provenance, "_git_state", lambda: (next(heads), False))
    provenance._loaded_git_state.cache_clear()
    try:
        assert [provenance.versions()["git_commit"] for _ in range(3)] == ["1" * 40] * 3
    finally:
        provenance._loaded_git_state.cache_clear()


def test_open_run_of_a_skip_bad_run_leaves_its_bad_images_out(make_twitter_like, tmp_path):
    """layers and regions read a finished run's data: the images its --skip-bad dropped must
    stay out (they would be decoded, and stop the analysis)."""
    from vsent.config import RunConfig
    from vsent.crossval_run import open_run
    from vsent.data import load_dataset, make_folds
    from vsent.data.folds import save_folds
    from vsent.provenance import data_record
    from vsent.runs import to_jsonable

    data = make_twitter_like()
    bad = load_dataset(data, "five", validate=False).paths[0]
    bad.write_bytes(b"not an image")
    ds = load_dataset(data, "five", skip_bad=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"command": "crossval", **RunConfig(data=str(data), skip_bad=True).to_dict()}))
    save_folds(make_folds(ds, "campos"), ds, run / "folds.json")
    opened = open_run(run)
    assert bad not in opened.dataset.paths and len(opened.dataset) == len(ds)
    # its data.json: an image replaced since the run trained on it is refused, not read
    (run / "data.json").write_text(json.dumps(to_jsonable(data_record(ds))))
    ds.paths[1].write_bytes(ds.paths[2].read_bytes())
    with pytest.raises(VsentError, match=f"its images or labels changed since {run} was "
                                         "trained on them .*changed .*: " + ds.names[1]):
        open_run(run)


def test_a_damaged_data_record_is_one_line_naming_it(twitter_like, tmp_path):
    from vsent.data.datasets import load_dataset
    from vsent.provenance import check_data_record

    ds = load_dataset(twitter_like, validate=False)
    record = tmp_path / "data.json"
    check_data_record(record, ds, str(twitter_like), "then", "fix it")  # absent: nothing
    for text, message in (("{", "not readable JSON"), ("[1]", "not the record of a dataset")):
        record.write_text(text)
        with pytest.raises(VsentError, match=f"data.json: {message}"):
            check_data_record(record, ds, str(twitter_like), "then", "fix it")
    record.write_text(json.dumps(ds.fingerprint()))
    check_data_record(record, ds, str(twitter_like), "then", "fix it")


def _started(twitter_like, run):
    """A crossval run's data.json as a new run writes it (crossval._check_same_data), then
    the run marked finished; the dataset it was made on."""
    from types import SimpleNamespace

    from vsent.crossval import _check_same_data
    from vsent.data.datasets import load_dataset
    from vsent.runs import RunDir

    ds = load_dataset(twitter_like, "five", validate=False)
    with RunDir(run) as rd:
        _check_same_data(SimpleNamespace(data=str(twitter_like)), rd, ds)
        rd.write_json("summary.json", {})
    return ds


def test_each_image_is_named_by_its_own_digest_in_the_datasets_order():
    """mut58b V32: a dataset's names pair with its item lines by position (a dataset not in
    name order: a CSV's): the changed image is named, not its neighbour."""
    from vsent.provenance import ITEM_DIGESTS, _changed_items, item_digests

    class _Listed:  # the two things _changed_items reads of a Dataset
        names = ["b.jpg", "a.jpg"]

        def item_lines(self) -> list[bytes]:
            return [b"b.jpg\t1\t10", b"a.jpg\t0\t20"]

    then = {ITEM_DIGESTS: item_digests([b"b.jpg\t1\t10", b"a.jpg\t0\t99"])[0] + " 0123abcd"}
    assert _changed_items(then, _Listed()) == ["a.jpg"]


def test_an_image_changed_since_a_new_run_is_named(twitter_like, tmp_path):
    """An image truncated after training, the counts unchanged: "36 images, 24 positive then;
    36 images, 24 positive now" named no file (audit_input25 #7). A new run's data.json
    holds a short digest per image, and up to 3 changed images are named."""
    from vsent.data.datasets import load_dataset
    from vsent.provenance import ITEM_DIGESTS, check_data_record

    run = tmp_path / "run"
    ds = _started(twitter_like, run)
    record = run / "data.json"
    digests = json.loads(record.read_text())[ITEM_DIGESTS].split()
    assert len(digests) == len(ds) == 36 and record.stat().st_size < 500 + 10 * len(ds)
    stored = record.read_bytes()
    check_data_record(record, ds, "DATA", "RUN was trained on them", "fix it")  # unchanged
    assert record.read_bytes() == stored
    image = ds.paths[3]
    image.write_bytes(image.read_bytes()[:100])
    now = load_dataset(twitter_like, "five", validate=False)
    with pytest.raises(VsentError) as e:
        check_data_record(record, now, "DATA", "RUN was trained on them", "fix it")
    assert str(e.value) == (
        "DATA: its images or labels changed since RUN was trained on them (36 images, 24 "
        f"positive then and now; changed (file contents, name or label): {ds.names[3]}; see "
        f"{record}): restore them, or fix it")
    for path in ds.paths[4:8]:
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(VsentError, match=re.escape(
            f": {ds.names[3]}, {ds.names[4]}, {ds.names[5]} and 2 more; see ")):
        check_data_record(record, now, "DATA", "then", "fix it")


def test_a_data_record_made_before_item_digests_says_some_files_changed(twitter_like,
                                                                        tmp_path):
    """A finished run whose data.json holds no digests (an older vsent) is still checked;
    equal counts are said to be so, and its data.json is left as it is."""
    from vsent.data.datasets import load_dataset
    from vsent.provenance import check_data_record

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    ds = load_dataset(twitter_like, "five", validate=False)
    record = run / "data.json"
    record.write_text(json.dumps(ds.fingerprint()))
    stored = record.read_bytes()
    check_data_record(record, ds, "DATA", "then", "fix it")
    assert record.read_bytes() == stored  # a finished run's record is not added to
    ds.paths[3].write_bytes(ds.paths[3].read_bytes()[:100])
    with pytest.raises(VsentError) as e:
        check_data_record(record, ds, "DATA", "RUN was trained on them", "fix it")
    assert str(e.value) == (
        "DATA: its images or labels changed since RUN was trained on them (36 images, 24 "
        "positive then and now: the contents of some image files changed (or their names or "
        f"labels), not their number; see {record}): restore them, or fix it")


def test_a_data_record_with_digests_names_a_reordered_list_as_such(twitter_like, tmp_path):
    import dataclasses

    from vsent.provenance import check_data_record

    run = tmp_path / "run"
    ds = _started(twitter_like, run)
    backwards = dataclasses.replace(ds, names=ds.names[::-1], paths=ds.paths[::-1],
                                    labels=ds.labels[::-1])
    with pytest.raises(VsentError, match=r"\(36 images, 24 positive then and now, the same "
                                         r"images listed in another order; see "):
        check_data_record(run / "data.json", backwards, "DATA", "then", "fix it")


# --------------------------------------------------------------------------------------------
# audit_core23 #8, #10, #18, #6 (check_run_dir)


def test_overwrite_of_a_run_reached_through_a_symlink_is_one_line(tmp_path):
    """shutil.rmtree refuses a link: --overwrite on a linked --out gave an OSError traceback."""
    real, link = tmp_path / "real", tmp_path / "link"
    _open(real)
    (real / "summary.json").write_text("{}")
    link.symlink_to(real)
    other = {**CFG, "folds": [3]}
    with pytest.raises(VsentError) as e:
        _open(link, other, overwrite=True)
    assert str(e.value) == (f"--overwrite: {link} is a symbolic link (to {real}); not deleting "
                            "a run through a link: give the folder itself as --out, or choose "
                            "another --out")
    assert (real / "summary.json").exists() and link.is_symlink()
    assert _open(real, other, overwrite=True).status == "new"  # the folder itself: replaced


def test_versions_record_the_model_libraries_too():
    """timm and open_clip define (and download) the timm/ and clip/ architectures, safetensors
    reads their weights: their versions belong with the run (None when not installed)."""
    from importlib import metadata

    from vsent.provenance import versions

    info = versions()
    for name in ("timm", "open_clip_torch", "safetensors"):
        assert name in info
        try:
            assert info[name] == metadata.version(name)
        except metadata.PackageNotFoundError:
            assert info[name] is None


def test_a_package_added_to_the_record_later_is_no_change_on_resume(tmp_path, monkeypatch,
                                                                    caplog):
    import vsent.runs as runs

    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    first = json.loads((out / "versions.json").read_text())
    del first["timm"]  # as a vsent that did not record it wrote it
    (out / "versions.json").write_text(json.dumps(first))
    monkeypatch.setattr(runs, "versions", lambda: {**first, "timm": "1.0"})
    _open(out, resume=True)
    assert json.loads((out / "versions.json").read_text())["resumed"][0]["changed"] == {}
    assert "resumed with other versions" not in caplog.text


def test_a_run_killed_between_its_first_two_writes_is_replaced(tmp_path, monkeypatch):
    """RunDir writes config.json, then versions.json: killed in between, the folder holds a
    run that wrote no results (replaced), not a versions.json alone (refused for ever, even
    with --overwrite)."""
    from vsent.runs import RunDir

    real, calls = RunDir.write_json, []

    def killed_at_the_second(self, name, obj):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, name, obj)

    out = tmp_path / "r"
    with monkeypatch.context() as mp:
        mp.setattr(RunDir, "write_json", killed_at_the_second)
        with pytest.raises(KeyboardInterrupt):
            _open(out)
    assert [p.name for p in out.iterdir()] == ["config.json"]
    other = {**CFG, "folds": [3]}
    assert _open(out, other).status == "new"
    assert json.loads((out / "config.json").read_text()) == other


def test_check_run_dir_refuses_as_open_run_dir_and_writes_nothing(tmp_path):
    from vsent.runs import check_run_dir

    out = tmp_path / "r"
    assert check_run_dir(out, CFG) == "new" and not out.exists()
    # a missing --data is refused by default as open_run_dir refuses it (crossval --nproc
    # asks without check_paths: its processes must not start for a wrong path)
    with pytest.raises(VsentError, match="missing: no such file or directory"):
        check_run_dir(out, {**CFG, "data": str(tmp_path / "missing")})
    assert not out.exists()
    _open(out)
    assert check_run_dir(out, {**CFG, "folds": [3]}) == "replace"  # no result yet
    assert check_run_dir(out, CFG, overwrite=True) == "overwrite"  # asked: deleted whole
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(VsentError, match="unfinished run: pass --resume"):
        check_run_dir(out, CFG)
    with pytest.raises(VsentError, match="made with other folds"):
        check_run_dir(out, {**CFG, "folds": [3]}, resume=True)
    assert check_run_dir(out, {**CFG, "folds": [3]}, resume=True, ignore={"folds"}) == "resumed"
    assert check_run_dir(out, CFG, resume=True) == "resumed"
    assert check_run_dir(out, {**CFG, "folds": [3]}, overwrite=True) == "overwrite"
    (out / "summary.json").write_text("{}")
    assert check_run_dir(out, CFG) == "finished"
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "summary.json"])
    assert json.loads((out / "config.json").read_text()) == CFG


# --------------------------------------------------------------------------------------------
# review23 #1, #5, #8, #10


def test_a_run_left_with_records_and_empty_fold_folders_is_replaced(tmp_path):
    """A run of the previous vsent that failed in fold 1 made ``fold1/`` before its first file:
    records plus an empty folder are no result, so the corrected command replaces it."""
    from vsent.runs import check_run_dir

    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold2" / "stages").mkdir(parents=True)  # (empty within: still a folder of files)
    other = {**CFG, "train": {**CFG["train"], "lr": 1e-3}}
    with pytest.raises(VsentError, match="made with other train.lr"):
        check_run_dir(out, other)  # fold2/ holds a folder: not empty
    (out / "fold2" / "stages").rmdir()
    (out / "fold2").rmdir()
    assert check_run_dir(out, other) == "replace"
    rd = _open(out, other)
    assert rd.status == "new" and not (out / "fold1").exists()
    assert json.loads((out / "config.json").read_text()) == other
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")  # a result: no longer replaced
    with pytest.raises(VsentError, match="made with other train.lr"):
        check_run_dir(out, CFG)


def test_a_resume_with_other_options_names_the_command_the_run_started_with(tmp_path,
                                                                           monkeypatch):
    """`vsent pcnn --resume --out DIR` given other options than the run's (a preset's
    defaults, say): 18 keys in a 1,200-character line that advised --overwrite, what one
    continuing hours of work does not want. Now the first keys, and the command from
    versions.json that started it."""
    out = tmp_path / "r"
    monkeypatch.setattr("sys.argv", ["/venv/bin/vsent", "pcnn", "--data", "my data", "--out",
                                     str(out)])
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    other = {**CFG, "train": {k: 1 for k in "abcdefgh"}}
    with pytest.raises(VsentError) as e:
        _open(out, other, resume=True)
    said = str(e.value)
    assert said.startswith(f"--resume: {out} already holds a run made with other train.a, "
                           "train.b, train.c, train.d, train.e, train.epochs and 4 more (")
    assert said.endswith(f"; ...; see {out / 'config.json'}): give the options it was started "
                         f"with (it was started as `vsent pcnn --data 'my data' --out {out}`)")
    assert "--overwrite" not in said
    with pytest.raises(VsentError, match=r"\); if the data moved, a link at the stored path to "
                                         "its new folder, and no --data, continues it$"):
        _open(out, {**CFG, "data": str(tmp_path)}, resume=True)  # (only the data differs)
    with pytest.raises(VsentError, match=r"\): pass --overwrite to start again, or choose "
                                         "another --out$"):
        _open(out, other)  # (no --resume: a new run wanted)
    (out / "versions.json").write_text('{"argv": ["pytest", "-q"]}')  # not the command
    with pytest.raises(VsentError, match=r"config.json\): give the options it was started "
                                         "with$"):
        _open(out, other, resume=True)


def test_a_folder_named_like_a_record_is_no_traceback(tmp_path):
    """An empty folder where a record file belongs is removed with the records; one that holds
    something is not taken for a record (the run is then refused, not half deleted)."""
    out = tmp_path / "r"
    _open(out)
    (out / "data.json").mkdir()
    other = {**CFG, "train": {**CFG["train"], "lr": 1e-3}}
    rd = _open(out, other)
    assert rd.status == "new" and not (out / "data.json").exists()
    (out / "data.json").mkdir()
    (out / "data.json" / "x").write_text("kept")
    with pytest.raises(VsentError, match="made with other train.lr"):
        _open(out, CFG)
    assert (out / "data.json" / "x").read_text() == "kept" and (out / "config.json").exists()


def test_a_config_recorded_before_train_seed_followed_seed_still_resumes(tmp_path):
    """The previous vsent stored train.seed 0 (TrainConfig's default) beside seed N; RunConfig
    now records train.seed = seed. Compared, the stored one is the same run; a new run
    (--overwrite too) records the normalised seed; any other seed change is still refused."""
    from vsent.runs import as_stored_train_seed, check_run_dir

    now = {**CFG, "seed": 1, "train": {**CFG["train"], "seed": 1}}
    then = {**now, "train": {**now["train"], "seed": 0}}
    assert as_stored_train_seed(then, now) == then
    nested = as_stored_train_seed({"plan": {"template": then}}, {"plan": {"template": now}})
    assert nested == {"plan": {"template": then}}
    assert as_stored_train_seed(now, then) == then  # a new config not normalised: untouched
    out = tmp_path / "r"
    _open(out, then)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    assert check_run_dir(out, now, resume=True) == "resumed"
    assert _open(out, now, resume=True).status == "resumed"
    assert json.loads((out / "config.json").read_text()) == then  # the stored file is kept
    two = {**now, "seed": 2, "train": {**now["train"], "seed": 2}}
    with pytest.raises(VsentError, match=r"other seed, train\.seed \(seed: stored 1, now 2; "
                                         r"train\.seed: stored 0, now 2"):
        check_run_dir(out, two, resume=True)
    assert check_run_dir(out, now, overwrite=True) == "overwrite"
    assert _open(out, now, overwrite=True).status == "new"
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    with pytest.raises(VsentError, match=r"train\.seed: stored 1, now 0"):
        check_run_dir(out, then, resume=True)  # one way only: a normalised record stays so


@pytest.mark.parametrize("make, message", [
    (lambda f: f.mkdir(), r"not readable \(\[Errno 21\] Is a directory"),
    (lambda f: f.write_text("{"), r"not readable JSON \(Expecting"),
    (lambda f: f.write_bytes(b"\xff{}"), r"not readable JSON \(.*codec can't decode"),  # no text
    (lambda f: f.write_text("[]"), r"not the record of the thing \(keys a, b\);"),
    (lambda f: f.write_text('{"a": 1}'), r"not the record of the thing \(keys a, b\);"),
])
def test_read_record_says_in_one_line_what_is_wrong(tmp_path, make, message):
    from vsent.provenance import read_record

    file = tmp_path / "x.json"
    make(file)
    with pytest.raises(VsentError, match=re.escape(str(file)) + ": " + message) as e:
        read_record(file, "the thing", ("a", "b"))
    # not "delete it": a run without its record would record today's data as its own
    assert str(e.value).endswith("; restore it from a copy of the run, or pass --overwrite to "
                                 "start again") and "\n" not in str(e.value)
    file2 = tmp_path / "y.json"
    file2.write_text('{"a": 1, "b": 2, "c": 3}')
    assert read_record(file2, "the thing", ("a", "b")) == {"a": 1, "b": 2, "c": 3}


def test_read_json_names_the_file_to_delete_and_overwrite(tmp_path):
    from vsent.runs import RunDir

    with RunDir(tmp_path / "r") as rd:
        (rd / "part.json").write_text("{")
        with pytest.raises(VsentError) as e:
            rd.read_json("part.json")
    file = tmp_path / "r" / "part.json"
    assert str(e.value).startswith(f"{file}: unreadable (Expecting")
    assert str(e.value).endswith(f"; delete {file} to redo it, or pass --overwrite to start "
                                 "again")


def test_a_row_generators_own_error_is_not_reported_as_the_file_not_written(tmp_path):
    """writing() turns an OSError of the write into "cannot be written"; one raised by the
    rows themselves (a file they read) is theirs, and leaves no file."""
    def rows():
        yield {"a": 1}
        raise FileNotFoundError(2, "No such file or directory", "input.csv")

    from vsent.runs import RunDir

    rd = RunDir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="input.csv"):
        rd.write_csv("rows.csv", rows(), ["a"])
    assert not (tmp_path / "run" / "rows.csv").exists()
    rd.close()


def test_a_run_folder_that_cannot_be_written_says_so(tmp_path, monkeypatch):
    """A read-only run folder (robust39 #2) was told to "free that name or make room", with
    the temporary file's name; that advice stays for a name taken or a full disk."""
    import errno

    import vsent.runs

    out = tmp_path / "r"
    rd = open_run_dir(out, CFG)
    rd.close()
    for code, said in (
            (errno.EACCES, f"{out / 'x.json'}: cannot be written (Permission denied): its folder "
                           "is not writable here; make it writable, or copy the run to a folder "
                           "that is and continue it there"),
            (errno.EROFS, f"{out / 'x.json'}: cannot be written (Read-only file system): its "
                          "folder is not writable here; make it writable, or copy the run to a "
                          "folder that is and continue it there"),
            (errno.EISDIR, f"{out / 'x.json'}: cannot be written ([Errno 21] Is a directory: "
                           "'.x.json.tmp'): free that name or make room, then resume the run")):
        def refused(path, text, code=code):
            raise OSError(code, os.strerror(code), ".x.json.tmp")

        monkeypatch.setattr(vsent.runs, "atomic_write_text", refused)
        with pytest.raises(VsentError) as e:
            rd.write_json("x.json", {})
        assert str(e.value) == said


def test_one_command_at_a_time_writes_a_run_directory(tmp_path):
    """Two `vsent layers` on one --out (two terminals, a job submitted twice) rewrote each
    other's feature files: a bus error, a traceback, or probes fitted on mixed rows that later
    runs kept (robust39 #16). The second is refused in one line naming the first's pid, as
    `vsent predict` refuses a second writer of its output."""
    out = tmp_path / "r"
    first = open_run_dir(out, CFG)
    lock = tmp_path / "r.vsent.lock"
    assert lock.read_text().startswith(f"{os.getpid()}@")
    for resume in (False, True):
        with pytest.raises(VsentError, match=re.escape(
                f"another vsent demo (pid {os.getpid()}@") + r".*\) is writing " +
                re.escape(f"{out}; wait for it or stop it")):
            open_run_dir(out, CFG, resume=resume)
    with pytest.raises(VsentError, match="is writing"):  # --overwrite would delete its files
        open_run_dir(out, CFG, overwrite=True)
    assert (out / "config.json").exists()
    first.close()
    assert not lock.exists()
    _open(out, resume=True)  # free again
    assert not lock.exists()
    nested = tmp_path / "runs" / "r"  # its folder not made yet: locked all the same
    with open_run_dir(nested, CFG), pytest.raises(VsentError, match="is writing"):
        open_run_dir(nested, CFG, resume=True)


def test_the_lock_is_no_obstacle_where_nothing_can_be_written_or_a_name_is_long(tmp_path,
                                                                                monkeypatch):
    """review39 #1: in a read-only folder the lock file beside --out cannot be made: a
    finished run there is shown (robust38 #3) and nothing else writes; #5: an --out name near
    the 255-byte limit took no `.vsent.lock` suffix ("File name too long")."""
    out = tmp_path / "r"
    _open(out)
    (out / "summary.json").write_text("{}")
    real = os.open

    def read_only_folder(path, flags, *args, **kwargs):
        if str(path).endswith(".vsent.lock"):
            raise (PermissionError(13, "Permission denied") if flags & os.O_CREAT
                   else FileNotFoundError(2, "No such file or directory"))
        return real(path, flags, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(os, "open", read_only_folder)
        assert _open(out).status == "finished"
    long = tmp_path / ("x" * 250)
    rd = open_run_dir(long, CFG)
    (lock,) = tmp_path.glob("x*.vsent.lock")
    assert len(lock.name.encode()) <= 255 and lock.read_text().startswith(f"{os.getpid()}@")
    with pytest.raises(VsentError, match="is writing"):
        open_run_dir(long, CFG, resume=True)
    rd.close()
    assert not lock.exists()


# mut40: behaviours a mutation of runs.py changed unseen


def test_run_log_writes_a_non_utf8_file_name_as_its_bytes(tmp_path, capsys):
    out = tmp_path / "r"
    rd = open_run_dir(out, CFG)
    try:
        logging.getLogger("vsent").info("skipped %s", "caf\udce9.jpg")  # os.fsdecode(b"caf\xe9")
    finally:
        rd.close()
    assert b"skipped caf\xe9.jpg" in (out / "run.log").read_bytes()
    assert "Logging error" not in capsys.readouterr().err


def test_a_closed_run_log_does_not_open_its_file_again(tmp_path):
    handler = _RunLog(tmp_path / "run.log")
    handler.close()
    handler.emit(logging.LogRecord("vsent", logging.INFO, __file__, 1, "late", (), None))
    assert handler.stream is None


def test_run_log_reports_any_non_os_error_of_a_log_call(tmp_path, capsys):
    handler = _RunLog(tmp_path / "run.log")
    record = logging.LogRecord("vsent", logging.ERROR, __file__, 1, "%(x)s", ({"y": 1},), None)
    try:
        raise KeyError("x")
    except KeyError:
        handler.handleError(record)
    handler.close()
    assert "--- Logging error ---" in capsys.readouterr().err


def _with_a_result(out, config=CFG):
    open_run_dir(out, config).close()
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")  # a result: not replaced


def test_a_folder_that_refuses_with_eperm_is_said_to_be_not_writable(tmp_path, monkeypatch):
    import errno
    import os

    import vsent.runs

    rd = open_run_dir(tmp_path / "r", CFG)
    rd.close()

    def refused(path, text):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), ".x.json.tmp")

    monkeypatch.setattr(vsent.runs, "atomic_write_text", refused)
    with pytest.raises(VsentError, match=r"cannot be written \(Operation not permitted\): its "
                                         "folder is not writable here"):
        rd.write_json("x.json", {})


def test_six_keys_are_all_named_and_four_differences_end_with_dots(tmp_path):
    out = tmp_path / "r"
    _with_a_result(out)
    six = {**CFG, "train": {k: 1 for k in "abc"}, "folds": [3]}  # a-c new; lr, epochs gone
    with pytest.raises(VsentError) as e:
        open_run_dir(out, six)
    said = str(e.value)
    assert "more" not in said.split(" (")[0], said
    assert "; ...; see " in said, said
    four = {**CFG, "train": {**CFG["train"], "lr": 1, "epochs": 1, "a": 1}, "folds": [3]}
    with pytest.raises(VsentError) as e:
        open_run_dir(out, four)
    assert "; ...; see " in str(e.value) and "train.lr:" not in str(e.value)  # 3 shown
    three = {**CFG, "train": {**CFG["train"], "lr": 1, "epochs": 1}, "folds": [3]}
    with pytest.raises(VsentError) as e:
        open_run_dir(out, three)
    assert "; ...;" not in str(e.value)


def test_the_moved_data_hint_is_only_for_a_change_of_data_alone(tmp_path):
    out = tmp_path / "r"
    _with_a_result(out)
    both = {**CFG, "data": str(tmp_path), "train": {**CFG["train"], "lr": 1}}
    with pytest.raises(VsentError) as e:
        open_run_dir(out, both, resume=True)
    assert "if the data moved" not in str(e.value)


def test_a_command_without_resume_is_told_to_overwrite(tmp_path):
    """explain, fuse ...: no --resume option (resume_asked=False), so no "--resume:" refusal
    telling the user to give the options it was started with."""
    out = tmp_path / "r"
    _with_a_result(out)
    other = {**CFG, "train": {**CFG["train"], "lr": 1}}
    with pytest.raises(VsentError, match=r"^\S+ already holds a run made with other train\.lr .*"
                                         r": pass --overwrite to start again, or choose "
                                         "another --out$"):
        open_run_dir(out, other, resume=True, resume_asked=False)


def test_a_versions_json_that_is_no_object_is_no_traceback_in_a_refusal(tmp_path):
    out = tmp_path / "r"
    _with_a_result(out)
    (out / "versions.json").write_text("[]")
    other = {**CFG, "train": {**CFG["train"], "lr": 1}}
    with pytest.raises(VsentError, match=r"give the options it was started with$"):
        open_run_dir(out, other, resume=True)


def test_a_skip_bad_runs_dataset_leaves_out_its_undecodable_images_again(twitter_like):
    from vsent.crossval_run import load_run_dataset
    from vsent.data.datasets import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    ds.paths[2].write_bytes(b"\xff\xd8 not a jpeg")
    again = load_run_dataset({"data": str(twitter_like), "subset": "five", "skip_bad": True},
                             "RUN")
    assert ds.names[2] not in again.names and len(again.names) == len(ds.names) - 1
    # a config without 'subset' is RunConfig's default, five-agree (mut56l V17)
    assert load_run_dataset({"data": str(twitter_like)}, "RUN").names == ds.names


def test_a_lost_image_refusal_names_three_items_then_dots(twitter_like):
    from vsent.crossval_run import load_run_dataset
    from vsent.data.datasets import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    for p in ds.paths[:3]:
        p.unlink()
    with pytest.raises(VsentError) as e:  # three lost: all named, no dots (mut56l V18)
        load_run_dataset({"data": str(twitter_like), "subset": "five"}, "RUN")
    said = str(e.value)
    assert said.count("no such image") == 3 and "; ..." not in said, said
    ds.paths[3].unlink()
    with pytest.raises(VsentError) as e:
        load_run_dataset({"data": str(twitter_like), "subset": "five"}, "RUN")
    said = str(e.value)
    assert said.count("no such image") == 3 and "; ...; restore them" in said, said


def test_overwrite_of_the_folder_the_command_runs_in_is_refused(tmp_path, monkeypatch):
    """trial40 F5: `--out . --overwrite` (or `--out ""`, an unset variable) from inside a run
    folder emptied it, the user's own files too, then failed to remove the folder it ran in:
    a traceback, and no run. Refused before anything is deleted; so is a folder above it."""
    out = tmp_path / "r"
    _with_a_result(out)
    (out / "sub").mkdir()
    (out / "my notes.txt").write_text("mine")
    for here, given in ((out, "."), (out, ""), (out / "sub", ".."), (out / "sub", str(out))):
        monkeypatch.chdir(here)
        shown = re.escape(str(Path(given)))  # ("" is ".")
        with pytest.raises(VsentError, match=rf"^--overwrite would delete {shown}, "
                                             rf"which holds the current folder \({here}\): run "
                                             "the command from another folder, or choose "
                                             "another --out$"):
            open_run_dir(given, {**CFG, "data": str(tmp_path)}, overwrite=True)
        assert (out / "my notes.txt").read_text() == "mine"
    # an empty folder (or a new one) is no run to delete: it starts there (review40 #4)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    rd = open_run_dir(".", {**CFG, "data": str(tmp_path)}, overwrite=True)
    rd.close()
    assert rd.status == "new" and (tmp_path / "empty" / "config.json").is_file()


def test_an_empty_out_is_refused_by_every_command(tmp_path, capsys):
    """trial40 F5: `--out ""` was the current folder."""
    from vsent.cli import main

    for argv in (["crossval"], ["explain", "--model", "m.pt", "x.jpg"], ["card", "m.pt"],
                 ["predict", "--model", "m.pt", "x.jpg"]):
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--out", ""])
        assert stop.value.code == 2
        assert "argument --out: an empty path (an unset shell variable?)" in \
            capsys.readouterr().err
    with pytest.raises(SystemExit):  # nor --data "" (review40c #10)
        main(["pcnn", "--data", "", "--out", str(tmp_path / "x")])
    assert "argument --data: an empty path (an unset shell variable?)" in capsys.readouterr().err


# mut41: behaviours of the run-directory rules a mutation changed unseen

def test_short_keeps_a_value_of_exactly_the_limit_and_cuts_one_over():
    at = "x" * 118  # repr: 120 characters with its quotes
    assert _short(at) == repr(at)
    over = "x" * 119
    assert _short(over) == f"{repr(over)[:120]}... (121 chars)"
    assert _short(list(range(60))).endswith("... (60 entries)")
    assert _short("0123456789ab" + "0" * 52) == "'0123456789ab...'"  # a SHA-256 digest
    assert _short("0123456789AB" + "0" * 52).startswith("'0123456789AB0000")  # not one
    assert _short("0123456789ab" + "0" * 28) == repr("0123456789ab" + "0" * 28)  # a git commit


def test_a_command_without_resume_replaces_a_run_with_no_result_made_otherwise(tmp_path):
    """explain, fuse ... (resume_asked=False) over their own run that wrote no result yet,
    with other options: replaced, as a new run (only --resume asked refuses it)."""
    out = tmp_path / "r"
    open_run_dir(out, CFG).close()  # config.json, no result
    other = {**CFG, "train": {**CFG["train"], "lr": 1}}
    rd = open_run_dir(out, other, resume=True, resume_asked=False)
    rd.close()
    assert rd.status == "new"
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 1
    # asked by --resume: refused, naming how to continue it
    open_run_dir(out, CFG, overwrite=True).close()
    with pytest.raises(VsentError, match=r"^--resume: .* give the options it was started with"):
        open_run_dir(out, other, resume=True)


def test_a_refusal_names_six_keys_and_counts_the_rest_from_seven(tmp_path):
    base = {"command": "demo", **{k: 0 for k in "abcdefgh"}}
    out = tmp_path / "r"
    _with_a_result(out, base)
    seven = {**base, **{k: 1 for k in "abcdefg"}}
    with pytest.raises(VsentError, match=r"made with other a, b, c, d, e, f and 1 more \("):
        open_run_dir(out, seven)
    six = {**base, **{k: 1 for k in "abcdef"}}
    with pytest.raises(VsentError, match=r"made with other a, b, c, d, e, f \("):
        open_run_dir(out, six)


def test_the_moved_hints_are_said_only_when_the_one_difference_is_that_path(tmp_path):
    """'if the data moved, a link ...' only when --data alone differs; 'if the checkpoint
    moved' only for an absolute stored checkpoint that is gone (crossval's model is a name)."""
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "r"
    cfg = {"command": "demo", "data": str(data), "model": "caffenet", "lr": 1}
    _with_a_result(out, cfg)
    (tmp_path / "new").mkdir()
    moved = {**cfg, "data": str(tmp_path / "new")}
    with pytest.raises(VsentError, match="if the data moved, a link"):
        open_run_dir(out, moved, resume=True)
    with pytest.raises(VsentError) as e:
        open_run_dir(out, {**moved, "lr": 2}, resume=True)
    assert "a link at the stored path" not in str(e.value)
    with pytest.raises(VsentError) as e:  # an architecture's name: nothing moved
        open_run_dir(out, {**cfg, "model": "resnet18"}, resume=True)
    assert "a link at the stored path" not in str(e.value)
    # an absolute checkpoint that is still there: no hint; one gone: the hint
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    out2 = tmp_path / "r2"
    _with_a_result(out2, {**cfg, "model": str(ckpt)})
    other = tmp_path / "other.pt"
    other.write_bytes(b"y")
    with pytest.raises(VsentError) as e:
        open_run_dir(out2, {**cfg, "model": str(other)}, resume=True)
    assert "a link at the stored path" not in str(e.value)
    ckpt.unlink()
    with pytest.raises(VsentError, match="if the checkpoint moved, a link at the stored path"):
        open_run_dir(out2, {**cfg, "model": str(other)}, resume=True)


def test_started_as_reads_only_a_vsent_command_line(tmp_path):
    for argv, said in (
            (["/usr/bin/vsent", "pcnn", "--data", "my data"],
             " (it was started as `vsent pcnn --data 'my data'`)"),
            (["pytest", "tests"], ""), (["python", "-m", "vsent"], ""), ([], ""),
            (["/usr/bin/vsent", "crossval", 5], "")):  # (no command line: not one to join)
        (tmp_path / "versions.json").write_text(json.dumps({"argv": argv}))
        assert started_as(tmp_path) == said, argv


def test_a_stored_config_without_a_command_is_no_other_commands_run(tmp_path):
    """A config.json that records no command (written before commands were recorded, or by
    the Python API) is compared as a config, not refused as 'a vsent run, not a demo run'."""
    out = tmp_path / "r"
    _with_a_result(out)
    cfg = json.loads((out / "config.json").read_text())
    del cfg["command"]
    (out / "config.json").write_text(json.dumps(cfg))
    rd = open_run_dir(out, CFG, resume=True, compare=["data", "train"])
    rd.close()
    assert rd.status == "resumed"
    (out / "config.json").write_text(json.dumps({**cfg, "command": None}))
    with pytest.raises(VsentError, match=r"holds a vsent run, not a demo run: choose another"):
        open_run_dir(out, CFG, resume=True, compare=["data", "train"])


# --------------------------------------------------------------------------------------------
# mutation round 44 (mut44b): vsent.provenance mutants the suite missed


def test_the_number_of_processes_is_at_least_one_whatever_world_size_says(monkeypatch):
    """mut44b PV01, PV02: WORLD_SIZE 0 or not a number is one process, not 0."""
    from vsent.provenance import processes

    for value, want in (("3", 3), ("0", 1), ("two", 1), ("", 1)):
        monkeypatch.setenv("WORLD_SIZE", value)
        assert processes() == want, value
    monkeypatch.delenv("WORLD_SIZE")
    assert processes() == 1


def test_a_resume_on_another_kernel_build_records_no_change(tmp_path):
    """mut44b PV03: ``platform`` (the kernel's build) is one of the keys a resume does not
    compare (as torch_threads): no warning, no change recorded."""
    out = tmp_path / "r"
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")
    stored = json.loads((out / "versions.json").read_text())
    stored["platform"] = "Linux-0.0.1-other-kernel"
    stored["torch_threads"] = stored["torch_threads"] + 1
    (out / "versions.json").write_text(json.dumps(stored))
    _open(out, resume=True)
    assert json.loads((out / "versions.json").read_text())["resumed"][0]["changed"] == {}


def test_the_cpu_recorded_is_the_model_name_line_of_proc_cpuinfo():
    """mut44b PV04: the "model name" line, not the "model" number line before it (x86)."""
    from vsent.provenance import _cpu_model

    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    if not names:
        pytest.skip("/proc/cpuinfo names no model (not x86)")
    assert _cpu_model() == names[0]


def test_a_cpu_nothing_names_is_recorded_as_none(monkeypatch):
    """mut58b V22: without /proc/cpuinfo and with platform.processor() empty (many Linux
    builds), versions.json's cpu is null, not "" (a CPU named nothing)."""
    import platform

    import vsent.provenance as provenance

    def no_proc(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc/cpuinfo")

    monkeypatch.setattr(provenance, "open", no_proc, raising=False)  # (its module's open only)
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert provenance._cpu_model() is None
    monkeypatch.setattr(platform, "processor", lambda: "x86_64")
    assert provenance._cpu_model() == "x86_64"


def test_a_checkout_without_a_commit_and_with_untracked_files_only(monkeypatch):
    """mut44b PV05, PV06: a git repository with no commit yet (rev-parse HEAD fails: "") has
    commit None, not ""; files git does not track do not make the checkout dirty."""
    import vsent.provenance as provenance

    top = str(Path(provenance.__file__).resolve().parents[2])  # <top>/src/vsent/provenance.py

    def git(*args):  # as git answers in such a checkout
        if "--show-toplevel" in args:
            return top
        if args[0] == "status":
            return "" if "--untracked-files=no" in args else "?? notes.txt"
        return ""  # rev-parse HEAD: no commit

    monkeypatch.setattr(provenance, "_git", git)
    assert provenance._git_state() == (None, False)


def test_git_answers_only_when_it_succeeds(monkeypatch):
    """mut52c P08: a git that fails (rev-parse HEAD in a checkout without a commit prints
    "HEAD" and exits 128) answers "", not what it printed."""
    import subprocess

    import vsent.provenance as provenance

    def git(args, check=False, **kwargs):
        code = 128 if args[1:] == ["rev-parse", "HEAD"] else 0
        if check and code:  # as subprocess.run does (mut60b V49: check=True raised here)
            raise subprocess.CalledProcessError(code, args)
        return subprocess.CompletedProcess(args, code, stdout="HEAD\n", stderr="fatal: ...")

    monkeypatch.setattr(provenance.subprocess, "run", git)
    assert provenance._git("rev-parse", "HEAD") == ""
    assert provenance._git("rev-parse", "--abbrev-ref", "HEAD") == "HEAD"

    # mut60b V41: a git that hangs past its 5 s (a stale lock, a network file system) records
    # no commit, not a TimeoutExpired traceback at the end of a run
    def hung(args, **kwargs):
        raise subprocess.TimeoutExpired(args, kwargs["timeout"])

    monkeypatch.setattr(provenance.subprocess, "run", hung)
    assert provenance._git_state() == (None, None)


def test_versions_name_a_package_that_is_not_installed_as_none(monkeypatch):
    """mut44b PV14: every package of the list is a key; one not installed has None."""
    from importlib import metadata

    import vsent.provenance as provenance

    monkeypatch.setattr(provenance, "_PACKAGES", (*provenance._PACKAGES, "no-such-vsent-pkg"))
    info = provenance.versions()
    assert "no-such-vsent-pkg" in info and info["no-such-vsent-pkg"] is None
    assert info["numpy"] == metadata.version("numpy")


def test_item_digests_are_eight_hex_digits_of_the_sha256_of_each_line():
    """mut44b PV10: the stored format (runs recorded since compare against it)."""
    import hashlib

    from vsent.provenance import item_digests

    lines = [b"a.jpg\t1\t100", b"b.jpg\t0\t200"]
    assert item_digests(lines) == [hashlib.sha256(x).hexdigest()[:8] for x in lines]
    assert all(re.fullmatch(r"[0-9a-f]{8}", d) for d in item_digests(lines))


def test_the_change_error_names_three_images_exactly_and_a_removed_image_plainly(tmp_path):
    """mut44b PV11, PV13: three changed images are named with no "and 0 more"; counts that
    differ with no image changed or added (one removed) are not "another order"."""
    from vsent.provenance import make_data_change_error

    same = {"n_images": 5, "n_positive": 2}
    e = make_data_change_error("D", "then", same, same, tmp_path / "data.json", "fix it",
                               changed=["a", "b", "c"])
    assert "changed (file contents, name or label): a, b, c; see " in str(e)
    assert "more" not in str(e)
    e = make_data_change_error("D", "then", same, same, tmp_path / "data.json", "fix it",
                               changed=["a", "b", "c", "d"])  # the fourth: counted, not named
    assert "changed (file contents, name or label): a, b, c and 1 more; see " in str(e)
    fewer = {"n_images": 4, "n_positive": 2}
    e = make_data_change_error("D", "then", same, fewer, tmp_path / "data.json", "fix it",
                               changed=[])
    assert str(e) == (f"D: its images or labels changed since then (5 images, 2 positive then; "
                      f"4 images, 2 positive now; see {tmp_path / 'data.json'}): restore them, "
                      "or fix it")
    relabelled = {"n_images": 5, "n_positive": 3}  # as many images, a label flipped (mut52c P31)
    e = make_data_change_error("D", "then", same, relabelled, tmp_path / "data.json", "fix it",
                               changed=["b"])
    assert str(e) == (f"D: its images or labels changed since then (5 images, 2 positive then; "
                      f"5 images, 3 positive now; changed or added: b; see "
                      f"{tmp_path / 'data.json'}): restore them, or fix it")


def test_a_data_record_whose_digests_are_damaged_is_still_compared(twitter_like, tmp_path):
    """mut44b PV17: item_digests that is not a string (a hand-edited record) is as a record
    without digests, not an AttributeError."""
    from vsent.data.datasets import load_dataset
    from vsent.provenance import ITEM_DIGESTS, check_data_record

    ds = load_dataset(twitter_like, "five", validate=False)
    record = tmp_path / "data.json"
    record.write_text(json.dumps({**ds.fingerprint(), "sha256": "0" * 64, ITEM_DIGESTS: ["x"]}))
    with pytest.raises(VsentError, match=r"positive then and now: the contents of some image "):
        check_data_record(record, ds, "DATA", "then", "fix it")


def test_an_unreadable_record_says_the_remedy_of_the_command_that_reads_it(twitter_like,
                                                                          tmp_path):
    """mut44b PV19, PV20: the remedy given (a run another command reads) is said for a record
    that cannot be read at all too, and check_data_record passes its own."""
    from vsent.data.datasets import load_dataset
    from vsent.provenance import check_data_record, read_record

    folder = tmp_path / "init.json"
    folder.mkdir()
    with pytest.raises(VsentError, match=r"not readable \(.*\); run it again$"):
        read_record(folder, "the thing", remedy="run it again")
    ds = load_dataset(twitter_like, "five", validate=False)
    record = tmp_path / "data.json"
    record.write_text("{")
    with pytest.raises(VsentError, match=r"not readable JSON .*; restore it from a copy of the "
                                         r"run, or run crossval again$"):
        check_data_record(record, ds, "DATA", "then", "run crossval again")
    # a folder where the record should be is no record to skip (only an absent one is)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "data.json").mkdir()
    with pytest.raises(VsentError, match=r"data\.json: not readable \("):
        check_data_record(tmp_path / "run" / "data.json", ds, "DATA", "then", "run it again")


# mutation round 45 (mut45b): vsent.runs mutants the suite missed

def _unfinished(out: Path) -> None:
    """A run at ``out`` with a first result: opened again, it resumes rather than restarts."""
    _open(out)
    (out / "fold1").mkdir()
    (out / "fold1" / "history.json").write_text("[]")


def test_a_stopped_resumed_session_is_marked_in_its_own_versions_entry(tmp_path):
    """The ``stopped`` line goes to the session that stopped (the last ``resumed`` entry), and
    only a resumed session has one (R11, R12)."""
    out = tmp_path / "r"
    _unfinished(out)
    _open(out, resume=True)  # a first resumed session that ended well
    with pytest.raises(VsentError), open_run_dir(out, CFG, resume=True):
        raise VsentError("data changed")
    sessions = json.loads((out / "versions.json").read_text())["resumed"]
    assert len(sessions) == 2 and "stopped" not in sessions[0]
    assert sessions[1]["stopped"] == "stopped: data changed"
    # a finished run shown, then stopped, is no session: the last resumed one keeps its line
    (out / "summary.json").write_text("{}")
    with pytest.raises(VsentError), open_run_dir(out, CFG) as rd:
        assert rd.status == "finished"
        raise VsentError("shown, then stopped")
    assert json.loads((out / "versions.json").read_text())["resumed"] == sessions
    (out / "summary.json").unlink()
    with pytest.raises(VsentError, match="data changed"), open_run_dir(out, CFG, resume=True):
        (out / "versions.json").write_text("[]")  # damaged meanwhile: no entry to mark
        raise VsentError("data changed")  # still the one said, not the marking's TypeError


def test_write_csv_writes_the_named_columns_and_leaves_out_the_others(tmp_path):
    """A row may carry keys that are no column (predictions with extra scores): not an error
    (R14)."""
    rd = _open(tmp_path / "r")
    path = rd.write_csv("p.csv", [{"image": "a.jpg", "label": 1, "note": "x"}],
                        ["image", "label"])
    assert path.read_text().splitlines() == ["image,label", "a.jpg,1"]
    # a file name that is not UTF-8 (os.fsdecode(b"caf\xe9.jpg")) is written as its bytes
    # in a sub-folder made for it; a tensor's value written as a number, not "tensor(0)"
    import torch

    path = rd.write_csv("sub/q.csv", [{"image": "caf\udce9.jpg", "label": torch.tensor(0)}],
                        ["image", "label"])
    assert path.read_bytes() == b"image,label\r\ncaf\xe9.jpg,0\r\n"


def test_short_counts_the_entries_of_a_long_dict():
    """A long mapping (explain's images by name) is said in entries, as a list is (R26)."""
    shown = _short({f"image{i:03d}.jpg": i for i in range(40)})
    assert shown.endswith("... (40 entries)") and len(shown) < 150


def test_two_runs_tested_on_other_images_name_the_run_holding_the_first_one():
    """The same number of images, other names: the first name (sorted) and the run holding
    it are said, not a KeyError (R28, R29)."""
    from vsent.runs import check_same_test_images

    ref = {"a.jpg": (1, 0), "b.jpg": (2, 1)}
    run = {"a.jpg": (1, 0), "c.jpg": (2, 1)}
    with pytest.raises(VsentError, match=r"^runs/x and runs/ref were not tested on the same "
                                         r"images: b\.jpg is only in runs/ref \(2 vs 2 images\)$"):
        check_same_test_images("runs/ref", ref, "runs/x", run)
    with pytest.raises(VsentError, match=r"b\.jpg is only in runs/x \(2 vs 2 images\)$"):
        check_same_test_images("runs/ref", run, "runs/x", ref)
    # the counts: the run's, then the reference's
    with pytest.raises(VsentError, match=r"b\.jpg is only in runs/ref \(2 vs 3 images\)$"):
        check_same_test_images("runs/ref", {**ref, "d.jpg": (3, 0)}, "runs/x", run)


def test_a_new_train_seed_of_its_own_is_compared_with_a_legacy_stored_one(tmp_path):
    """as_stored_train_seed adopts the stored train.seed only where the new config's follows
    its seed: a config whose train.seed is another number is another recipe (R33)."""
    out = tmp_path / "r"
    legacy = {"command": "demo", "data": ".", "seed": 5, "train": {"seed": 0}}
    _open(out, legacy)
    (out / "part.json").write_text("{}")
    assert _open(out, {**legacy, "train": {"seed": 5}}, resume=True).status == "resumed"
    with pytest.raises(VsentError, match=r"train\.seed: stored 0, now 7"):
        _open(out, {**legacy, "train": {"seed": 7}}, resume=True)
    with pytest.raises(VsentError, match=r"train: stored \{'seed': 0\}, now None"):
        _open(out, {**legacy, "train": None}, resume=True)  # no mapping: no seed to adopt
    from vsent.runs import as_stored_train_seed

    new = {"seed": 5, "train": {"seed": 5}}  # a stored train without a seed: nothing adopted
    assert as_stored_train_seed({"seed": 5, "train": {}}, new) == new


def test_a_key_omitted_at_its_default_is_compared_when_both_configs_hold_it():
    """Only a key one side lacks is taken at its default: a stored ``none`` against a new
    ``sqrt`` (or fusion None against gch+bow) is a difference (R34)."""
    assert config_diff({"histogram_map": "none"}, {"histogram_map": "sqrt"}) == [
        "histogram_map: stored 'none', now 'sqrt'"]
    assert config_diff({"fusion": None}, {"fusion": "gch+bow"}) == [
        "fusion: stored None, now 'gch+bow'"]


def test_overwrite_never_deletes_the_run_folder_that_is_itself_an_input(tmp_path):
    """--data naming --out itself: --overwrite would delete what the run reads (R36)."""
    out = tmp_path / "r"
    out.mkdir()
    cfg = {**CFG, "data": str(out)}
    _open(out, cfg)
    with pytest.raises(VsentError, match=r"--overwrite would delete .*/r, which this run reads"):
        _open(out, cfg, overwrite=True)
    assert (out / "config.json").is_file()


def test_a_link_in_a_run_folder_is_a_result_kept_not_an_empty_folder(tmp_path):
    """An empty folder is no result (the next run replaces the run); a link to one is not an
    empty folder of the run's (R39)."""
    out = tmp_path / "r"
    _open(out)
    (tmp_path / "elsewhere").mkdir()
    (out / "fold1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(VsentError, match="already holds an unfinished run"):
        _open(out)
    assert (out / "fold1").is_symlink()


def test_a_dangling_config_json_link_is_named_as_no_vsent_runs(tmp_path):
    """A config.json that is a broken link is still a config.json not a run's (R42)."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").symlink_to(tmp_path / "gone.json")
    for overwrite in (False, True):
        with pytest.raises(VsentError, match=r"holds a config\.json that is not a vsent run's"):
            _open(out, overwrite=overwrite)
    assert (out / "config.json").is_symlink()
    from vsent.runs import is_run_dir

    (out / "config.json").unlink()
    (out / "config.json").mkdir()  # a folder of that name, even beside a versions.json
    (out / "versions.json").write_text("{}")
    assert not is_run_dir(out)


def test_check_paths_false_opens_a_run_whose_data_path_is_missing_or_null(tmp_path):
    """A command that never reads its data key (ensemble) passes check_paths=False; a null
    data entry is no path to check either (R48, R49)."""
    rd = _open(tmp_path / "a", {**CFG, "data": str(tmp_path / "missing")}, check_paths=False)
    assert rd.status == "new"
    assert _open(tmp_path / "b", {**CFG, "data": None}).status == "new"
    with pytest.raises(VsentError, match="missing: no such file or directory"):
        _open(tmp_path / "c", {**CFG, "data": str(tmp_path / "missing")})


def test_a_fold_model_missing_from_a_finished_run_says_the_models_were_not_kept(
        tmp_path, monkeypatch):
    """R74: a finished run (summary.json) without its models was copied without them; an
    unfinished one is told to resume. Both name fold k's model file; load_model passes its
    keyword arguments on to load_checkpoint (mut53i R02-R04)."""
    import vsent.models.checkpoint as checkpoint
    from vsent.crossval_run import CrossvalRun

    run = CrossvalRun(tmp_path, None, None, [])  # type: ignore[arg-type]
    model = tmp_path / "fold2" / "model.pt"
    with pytest.raises(VsentError, match="^" + re.escape(
            f"{model}: fold 2 has no model (unfinished run? use crossval --resume)") + "$"):
        run.checkpoint(2)
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(VsentError, match="^" + re.escape(f"{model}: fold 2 has no model: the "
                                                         "run is finished but its model files "
                                                         "were not kept")):
        run.checkpoint(2)
    model.parent.mkdir()
    model.write_bytes(b"")
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, **kw: (path, {"fold": 2, **kw}))
    assert run.load_model(2, device="cpu") == (model, {"fold": 2, "device": "cpu"})


def test_a_checkpoint_records_its_run_and_fold_only_beside_a_config(tmp_path):
    """checkpoint_run: ``fold<k>/model.pt`` of a run (config.json above it) is fold k; a
    ``fold<k>`` folder with no run above is nothing; a run's own model.pt takes the fold its
    metadata records (R16, R17)."""
    from vsent.runs import checkpoint_run

    run = tmp_path / "run"
    (run / "fold3").mkdir(parents=True)
    assert checkpoint_run(run / "fold3" / "model.pt", {}) == (None, None)
    (run / "config.json").write_text("{}")
    assert checkpoint_run(run / "fold3" / "model.pt", {"fold": 1}) == (run.resolve(), 3)
    assert checkpoint_run(run / "model.pt", {"fold": 2}) == (run.resolve(), 2)
    assert checkpoint_run(run / "model.pt", {"fold": "2"}) == (run.resolve(), None)
    (run / "best1").mkdir()  # a folder not named fold<k> is no fold of the run
    assert checkpoint_run(run / "best1" / "model.pt", {}) == (None, None)
    (run / "folds").mkdir()  # "fold" and no number: no fold either (not int("s"))
    assert checkpoint_run(run / "folds" / "model.pt", {}) == (None, None)
    (tmp_path / "model.pt").symlink_to(run / "fold3" / "model.pt")  # a link: where it points
    assert checkpoint_run(tmp_path / "model.pt", {}) == (run.resolve(), 3)


def test_a_models_name_or_the_folds_scheme_is_no_file_of_the_current_folder(tmp_path,
                                                                           monkeypatch):
    """``model`` and ``folds`` are compared as paths only where they are ones (an absolute
    checkpoint, a folds file): crossval's ``resnet18`` is an architecture even beside a file of
    that name (R23, R92)."""
    monkeypatch.chdir(tmp_path)
    for key, name in (("model", "resnet18"), ("folds", "campos")):
        (tmp_path / name).write_text("x")
        assert config_diff({key: name}, {key: str(tmp_path / name)}) == [
            f"{key}: stored {name!r}, now {str(tmp_path / name)!r}"]


def test_an_init_of_another_tag_is_other_weights_though_the_file_is_the_same(tmp_path,
                                                                            monkeypatch):
    """``TAG=FILE`` recorded relative matches its absolute spelling, not another tag's (R24,
    R27)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pt").write_bytes(b"w")
    absolute = str(tmp_path / "w.pt")
    assert config_diff({"init": "places=w.pt"}, {"init": f"places={absolute}"}) == []
    assert config_diff({"init": "w.pt"}, {"init": absolute}) == []  # a file, no tag
    assert config_diff({"init": "places=w.pt"}, {"init": f"imagenet={absolute}"}) != []
    # a tag with no file after its "=" is no file: not the same init as the bare tag
    assert config_diff({"init": "places="}, {"init": "places"}) != []


def test_check_run_data_refuses_an_empty_data_entry(tmp_path):
    """An empty ``data`` would be the current folder, found (R84)."""
    from vsent.crossval_run import check_run_data

    with pytest.raises(VsentError, match=r"not a crossval config \(no 'data' entry\)"):
        check_run_data(tmp_path, {"data": ""})


def test_open_run_names_a_missing_folder_and_a_run_without_folds(tmp_path):
    """R88, R89, R90: a typo is "no such file", a crossval config (or one of a vsent too old to
    name its command) without folds.json is no crossval run, another command's run is named."""
    from vsent.crossval_run import open_run

    with pytest.raises(VsentError, match=r"/nope: no such file or directory$"):
        open_run(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"data": str(tmp_path)}))
    with pytest.raises(VsentError, match=r"not a crossval run directory \(no config\.json/"
                                         r"folds\.json\)"):
        open_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"command": "crossval",
                                                      "data": str(tmp_path)}))
    with pytest.raises(VsentError, match=r"not a crossval run directory"):
        open_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"command": "pcnn"}))
    with pytest.raises(VsentError, match=r"made by vsent pcnn, not by crossval"):
        open_run(tmp_path)
    # a finetune run's config is a crossval one plus its fold: named too (mut56l V19)
    (tmp_path / "config.json").write_text(json.dumps({"command": "finetune", "fold": 1,
                                                      "data": str(tmp_path)}))
    with pytest.raises(VsentError, match=r"made by vsent finetune, not by crossval"):
        open_run(tmp_path)
    # with its folds.json: a config that is no RunConfig, then data not found, name the file
    (tmp_path / "folds.json").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"command": "crossval",
                                                      "data": str(tmp_path), "train": 5}))
    with pytest.raises(VsentError, match=r"config\.json: not a crossval config \("):
        open_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"command": "crossval",
                                                      "data": "/no/such/twitter1"}))
    with pytest.raises(VsentError, match=r"config\.json: its data /no/such/twitter1 is not "
                                         r"found$"):
        open_run(tmp_path)


def test_load_fold_model_refuses_another_folds_checkpoint_only(tmp_path, monkeypatch):
    """A checkpoint that records no fold (made outside a crossval) is accepted (R83)."""
    import vsent.models.checkpoint as checkpoint
    from vsent.crossval_run import load_fold_model

    meta: dict = {}
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, **kw: ("model", meta))
    assert load_fold_model(tmp_path / "m.pt", 2) == ("model", {})
    meta["fold"] = 2
    assert load_fold_model(tmp_path / "m.pt", 2)[1] == {"fold": 2}
    meta["fold"] = 1
    with pytest.raises(VsentError, match="checkpoint of fold 1, expected fold 2"):
        load_fold_model(tmp_path / "m.pt", 2)


def test_a_momentum_form_stored_is_compared_and_one_not_stored_is_not():
    """STORED_DECIDES: only a config.json made before ``momentum_form`` (no such key) takes
    any; a stored form is compared with the new one (R20)."""
    assert config_diff({"train": {"lr": 1}}, {"train": {"lr": 1, "momentum_form": "caffe"}}) == []
    assert config_diff({"train": {"momentum_form": "caffe"}}, {"train": {}}) == [
        "train.momentum_form: stored 'caffe', not in the new config"]
    assert config_diff({"train": {"momentum_form": "caffe"}},
                       {"train": {"momentum_form": "torch"}}) == [
        "train.momentum_form: stored 'caffe', now 'torch'"]


def test_holds_results_is_any_file_beyond_the_records(tmp_path, monkeypatch):
    """R37: one result file among the records (or alone) is a run --resume continues."""
    from vsent.runs import holds_results

    out = tmp_path / "r"
    assert not holds_results(out)
    _open(out)
    (out / "fold1").mkdir()
    assert not holds_results(out)  # records and an empty folder
    (out / "fold1" / "history.json").write_text("[]")
    assert holds_results(out)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "part.json").write_text("{}")
    assert holds_results(alone)
    # a folder that cannot be listed is not known to be empty: kept as a result
    locked = tmp_path / "locked"
    _open(locked)
    (locked / "fold1").mkdir()
    iterdir = Path.iterdir

    def refused(p):
        if p == locked / "fold1":
            raise PermissionError(13, "Permission denied", str(p))
        return iterdir(p)

    monkeypatch.setattr(Path, "iterdir", refused)
    assert holds_results(locked)


def test_resume_of_a_run_with_no_results_takes_skip_bad_but_no_other_change(tmp_path):
    """A run stopped by a bad image before its first result: --resume --skip-bad is the fix
    it asked for and starts it again; another option is refused (R52)."""
    out = tmp_path / "r"
    cfg = {**CFG, "skip_bad": False}
    _open(out, cfg)
    assert _open(out, {**cfg, "skip_bad": True}, resume=True).status == "new"
    assert json.loads((out / "config.json").read_text())["skip_bad"] is True
    with pytest.raises(VsentError, match=r"^--resume: .* made with other folds"):
        _open(out, {**cfg, "skip_bad": True, "folds": [1]}, resume=True)


def _analysis_of(run: Path, out: Path, stored_run: Path) -> None:
    """``out``: an analysis (layers, regions) made from the crossval run then at
    ``stored_run``, whose predictions had the bytes ``run``'s have now."""
    from vsent.files import file_sha256

    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"command": "layers", "run": str(stored_run)}))
    (out / "inputs.json").write_text(json.dumps(
        {str(stored_run / "predictions.csv"): file_sha256(run / "predictions.csv")}))


def test_run_moved_since_knows_a_moved_run_by_its_predictions_only(tmp_path, monkeypatch):
    """R75-R78: the earlier path is returned for an analysis inside (or a sub-run beside) a run
    that moved with the same predictions; None for one in place, another run's, other bytes."""
    from vsent.crossval_run import run_moved_since

    run = tmp_path / "new" / "crossval-five"
    run.mkdir(parents=True)
    (run / "predictions.csv").write_text("image,label\na.jpg,1\n")
    old = tmp_path / "old" / "crossval-five"
    _analysis_of(run, run / "layers", old)
    assert run_moved_since(run / "layers", run) == old
    _analysis_of(run, run / "here", run.resolve())
    assert run_moved_since(run / "here", run) is None  # never moved
    _analysis_of(run, run.parent / "regions-five", old)
    assert run_moved_since(run.parent / "regions-five", run) == old  # a reproduction's sub-run
    _analysis_of(run, run.parent / "regions-other", tmp_path / "old" / "crossval-four")
    assert run_moved_since(run.parent / "regions-other", run) is None  # beside, another run
    # a run of that name, but neither inside nor beside this one: not it (mut58j V25)
    _analysis_of(run, tmp_path / "elsewhere" / "regions-five", old)
    assert run_moved_since(tmp_path / "elsewhere" / "regions-five", run) is None
    # an analysis named by a relative path is compared where it is (mut58j V24)
    monkeypatch.chdir(run)
    assert run_moved_since(Path("layers"), run) == old
    (run / "predictions.csv").write_text("image,label\na.jpg,0\n")
    assert run_moved_since(run / "layers", run) is None  # other predictions: another run


def test_an_analysis_of_a_moved_run_records_where_the_run_is_now(tmp_path, monkeypatch):
    """R79: record_run_read sets the stored ``run`` to the run's place when it moved (absolute:
    a run opened by a relative path is compared resolved by run_moved_since)."""
    from vsent.crossval_run import CrossvalRun, record_run_read

    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.csv").write_text("p\n")
    monkeypatch.chdir(tmp_path)
    with open_run_dir(run / "layers", {"command": "layers", "run": "/old/run"},
                      check_paths=False) as rd:
        record_run_read(rd, CrossvalRun(Path("run"), None, None, []),  # type: ignore[arg-type]
                        Path("/old/run"))
    # the rest of the analysis's config is kept (mut58j V28)
    assert json.loads((run / "layers" / "config.json").read_text()) == {
        "command": "layers", "run": str(run.resolve())}
    assert list(json.loads((run / "layers" / "inputs.json").read_text())) == [
        str((run / "predictions.csv").resolve())]
    (run / "predictions.csv").unlink()  # an unfinished run: nothing read, no traceback (mut53i)
    with open_run_dir(run / "regions", {"command": "regions", "run": str(run.resolve())},
                      check_paths=False) as rd:
        record_run_read(rd, CrossvalRun(run, None, None, []), None)  # type: ignore[arg-type]
    assert json.loads((run / "regions" / "inputs.json").read_text()) == {}


def test_inputs_are_recorded_by_a_resumed_run_and_checked_by_a_finished_one(tmp_path):
    """R80-R82: a run being written (new or resumed) records its inputs' SHA-256; a finished
    one refuses an input that changed or that it did not read then, and follows a folder the
    inputs moved with (``moved``)."""
    from vsent.crossval_run import record_or_check_inputs
    from vsent.runs import RunDir

    a, b = tmp_path / "in" / "a.csv", tmp_path / "in" / "b.csv"
    c = tmp_path / "c.csv"  # not in the folder that moves (mut53i R18)
    a.parent.mkdir()
    a.write_text("1\n")
    b.write_text("2\n")
    c.write_text("3\n")
    with RunDir(tmp_path / "r") as rd:
        rd.status = "new"
        record_or_check_inputs(rd, [a, c])
        a.write_text("changed\n")
        rd.status = "resumed"
        record_or_check_inputs(rd, [a, c])  # the resumed run reads it as it is now
        rd.status = "finished"
        record_or_check_inputs(rd, [a])
        with pytest.raises(VsentError, match=r"b\.csv changed since .* was made from it"):
            record_or_check_inputs(rd, [a, b])
        moved = tmp_path / "moved"
        (tmp_path / "in").rename(moved)
        record_or_check_inputs(rd, [moved / "a.csv", c], moved=(tmp_path / "in", moved))
        with pytest.raises(VsentError, match=r"a\.csv changed since"):
            record_or_check_inputs(rd, [moved / "a.csv"])
        with pytest.raises(VsentError, match="^" + re.escape(f"{moved / 'a.csv'} changed")):
            record_or_check_inputs(rd, [moved / "a.csv", moved / "b.csv"])  # the first named


def test_an_ignored_key_is_ignored_at_any_depth(tmp_path):
    """``ignore`` names keys at any level, as RUN_OPTIONS does: a nested one (train.workers)
    may change on resume; a sibling key still may not (mut48c R30)."""
    out = tmp_path / "r"
    cfg = {**CFG, "train": {**CFG["train"], "workers": 2}}
    _open(out, cfg)
    (out / "part.json").write_text("{}")
    more = {**cfg, "train": {**cfg["train"], "workers": 8}}
    assert _open(out, more, resume=True, ignore=("workers",)).status == "resumed"
    assert config_diff(cfg, more, ignore=frozenset({"workers"})) == []
    with pytest.raises(VsentError, match=r"train\.epochs: stored 3, now 4"):
        _open(out, {**more, "train": {**more["train"], "epochs": 4}}, resume=True,
              ignore=("workers",))


def test_two_runs_that_gave_an_image_another_label_name_it():
    """Same images, same folds, one label differs: the image and both labels are said
    (mut48c R40)."""
    from vsent.runs import check_same_test_images

    ref = {"a.jpg": (1, 0), "b.jpg": (2, 1)}
    run = {"a.jpg": (1, 1), "b.jpg": (2, 1)}
    with pytest.raises(VsentError, match=r"^runs/x: image a\.jpg is fold 1 label 1, in runs/ref "
                                         r"it is fold 1 label 0$"):
        check_same_test_images("runs/ref", ref, "runs/x", run)
    check_same_test_images("runs/ref", ref, "runs/x", dict(ref))


def test_a_damaged_config_json_of_the_out_says_overwrite_starts_again(tmp_path):
    """The run's own config.json cut short: one line naming it, with the remedy for the folder
    being written (--overwrite), whether or not --resume is given (mut48c R42)."""
    out = tmp_path / "r"
    _open(out)
    (out / "part.json").write_text("{}")  # a result: the run is not replaced
    (out / "config.json").write_text('{"command": "demo", ')
    for resume in (False, True):
        with pytest.raises(VsentError, match=re.escape(str(out / "config.json")) + r": unreadable "
                           r"\(.*\); pass --overwrite to start again$"):
            _open(out, resume=resume)
    assert _open(out, overwrite=True).status == "new"
    # a run with no result yet, its config.json cut: replaced, by --resume too
    (out / "config.json").write_text('{"command": "demo", ')
    assert _open(out, resume=True).status == "new"
    assert json.loads((out / "config.json").read_text()) == CFG


def test_a_record_name_linked_to_a_folder_is_unlinked_not_followed_when_replaced(tmp_path):
    """A run with no results whose steps.json is a link to a folder: the next run removes the
    link with the records and leaves the folder it points to as it was (mut48c R72)."""
    out = tmp_path / "r"
    _open(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.txt").write_text("kept")
    (out / "steps.json").symlink_to(elsewhere)
    other = {**CFG, "train": {**CFG["train"], "lr": 1e-3}}
    assert _open(out, other).status == "new"
    assert not (out / "steps.json").is_symlink() and not (out / "steps.json").exists()
    assert (elsewhere / "mine.txt").read_text() == "kept"


def test_a_runs_dataset_is_not_decoded_again_without_skip_bad(twitter_like):
    """load_run_dataset decodes the images only for a --skip-bad run: a run made without it
    reads its list as it is (an image that no longer decodes is left to the data record's
    check), instead of decoding every image again (mut48c R83)."""
    from vsent.crossval_run import load_run_dataset
    from vsent.data.datasets import load_dataset

    ds = load_dataset(twitter_like, "five", validate=False)
    ds.paths[2].write_bytes(b"\xff\xd8 not a jpeg")
    again = load_run_dataset({"data": str(twitter_like), "subset": "five"}, "RUN")
    assert again.names == ds.names
    three = load_run_dataset({"data": str(twitter_like), "subset": "three"}, "RUN")
    assert len(three.names) == 50 and len(ds.names) == 36  # the run's subset (mut53i R27)


def test_a_damaged_versions_json_is_started_again_by_a_resume(tmp_path):
    """versions.json cut short (a full disk): a resume records this session's versions with no
    argv of the first session, and its own entry, rather than a traceback (mut48c R87)."""
    out = tmp_path / "r"
    _open(out)
    (out / "part.json").write_text("{}")
    (out / "versions.json").write_text('{"torch": ')
    assert _open(out, resume=True).status == "resumed"
    versions = json.loads((out / "versions.json").read_text())
    assert versions["argv"] is None and versions["torch"]
    assert len(versions["resumed"]) == 1 and versions["resumed"][0]["changed"] == {}


def test_a_finished_run_says_its_results_are_read_back(tmp_path, caplog):
    """Opening a finished run says so on the console's INFO lines (mut48c R91)."""
    out = tmp_path / "r"
    _open(out)
    (out / "part.json").write_text("{}")
    with caplog.at_level("INFO", logger="vsent"):
        assert _open(out, resume=True).status == "resumed"
    assert [r.getMessage() for r in caplog.records] == [f"{out}: resumed run, stored config"]
    caplog.clear()
    (out / "summary.json").write_text("{}")
    with caplog.at_level("INFO", logger="vsent"):
        assert _open(out).status == "finished"
    assert [r.getMessage() for r in caplog.records] == [
        f"{out}: finished run with the same config: its results are read back"]


def test_a_resumed_session_records_its_command_line_and_gets_the_stored_config(
        tmp_path, monkeypatch):
    """rd.config is the config written by a new run and the stored one when resumed (a run
    option such as the device may differ from the one given); the resumed session's entry in
    versions.json has its own command line (mut48c R97, R100, R101)."""
    out = tmp_path / "r"
    assert _open(out).config == CFG
    (out / "part.json").write_text("{}")
    monkeypatch.setattr("sys.argv", ["vsent", "crossval", "--resume", "--device", "cuda"])
    on_gpu = {**CFG, "train": {**CFG["train"], "device": "cuda"}}
    rd = _open(out, on_gpu, resume=True)
    assert rd.status == "resumed" and rd.config == CFG
    resumed = json.loads((out / "versions.json").read_text())["resumed"]
    assert [s["argv"] for s in resumed] == [["vsent", "crossval", "--resume", "--device", "cuda"]]


def test_a_finished_run_made_before_the_inputs_record_is_not_checked(tmp_path):
    """record_or_check_inputs: a finished run without inputs.json (made before the record
    existed) is shown as it is, and nothing is written into it (mut48c R105)."""
    from vsent.crossval_run import record_or_check_inputs
    from vsent.runs import RunDir

    a = tmp_path / "a.csv"
    a.write_text("1\n")
    with RunDir(tmp_path / "r") as rd:
        rd.status = "finished"
        record_or_check_inputs(rd, [a])
        assert not (rd / "inputs.json").exists()
        # one cut short is not taken for none: it names the run to make again (mut53i R38)
        (rd / "inputs.json").write_text('{"a')
        with pytest.raises(VsentError, match=r"inputs\.json: not readable JSON .*; restore it "
                           "from a copy of the run, or pass --overwrite to make "
                           + re.escape(str(tmp_path / "r")) + " again$"):
            record_or_check_inputs(rd, [a])


def test_an_unfinished_run_with_no_predictions_is_not_known_as_moved(tmp_path):
    """run_moved_since: a crossval run that has no predictions.csv yet (unfinished, or its
    predictions deleted) is not recognised, rather than a traceback (mut48c R107)."""
    from vsent.crossval_run import run_moved_since

    run = tmp_path / "new" / "crossval-five"
    run.mkdir(parents=True)
    (run / "predictions.csv").write_text("image,label\na.jpg,1\n")
    old = tmp_path / "old" / "crossval-five"
    _analysis_of(run, run / "layers", old)
    (run / "predictions.csv").unlink()
    assert run_moved_since(run / "layers", run) is None


def test_run_log_drops_a_line_it_cannot_write_without_a_logging_error(tmp_path, capsys):
    """_RunLog whose file cannot be opened (its folder is gone): the line is dropped, with no
    "--- Logging error ---" on the console (mut48c R109)."""
    handler = _RunLog(tmp_path / "gone" / "run.log")
    try:
        assert handler.stream is None
        handler.emit(logging.makeLogRecord({"msg": "a line", "levelno": logging.INFO}))
    finally:
        handler.close()
    (tmp_path / "file").write_text("")  # a file where its folder goes: NotADirectoryError
    handler = _RunLog(tmp_path / "file" / "run.log")
    try:
        assert handler.stream is None
        handler.emit(logging.makeLogRecord({"msg": "a line", "levelno": logging.INFO}))
    finally:
        handler.close()
    handler = _RunLog(tmp_path / "run.log")  # opened, then the disk fills: write fails
    handler.stream.close()
    handler.stream = _FullDisk()
    try:
        handler.emit(logging.makeLogRecord({"msg": "a line", "levelno": logging.INFO}))
    finally:
        handler.close()
    assert capsys.readouterr().err == ""


class _FullDisk(io.StringIO):
    """A log stream on a full disk (mut57 S38: only an OSError of a write is dropped)."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_file_of_the_run_in_a_sub_folder_gets_its_folder_and_paths_are_written_whole(
        tmp_path):
    """RunDir.write_json makes the folder of ``fold<k>/...`` (a fold's folder is made with its
    first file); a Path is written as its whole path, not its name (mut48c R110, R111)."""
    rd = _open(tmp_path / "r")
    path = rd.write_json("fold1/history.json", {"model": Path("/runs/x/model.pt")})
    assert path == tmp_path / "r" / "fold1" / "history.json"
    assert json.loads(path.read_text()) == {"model": "/runs/x/model.pt"}


# mutation round 49 (mut49a): vsent.provenance mutants the suite missed

def test_versions_record_the_python_version_alone():
    """mut49a P01: "3.12.1", not sys.version's whole line (build date, compiler)."""
    import platform

    from vsent.provenance import versions

    assert versions()["python"] == platform.python_version()


def test_init_weights_changed_since_a_run_started_are_named_with_short_digests(tmp_path):
    """mut49a P16: the same SHA-256 passes; another is one line with 12 hex digits of each."""
    from vsent.provenance import check_init_record

    record = tmp_path / "init.json"
    record.write_text(json.dumps({"sha256": "a" * 64}))
    check_init_record(record, "w.pt", "a" * 64, "--init weights", Path("runs/r"))
    with pytest.raises(VsentError, match="changed since"):  # alike in the 12 shown (mut52c P17)
        check_init_record(record, "w.pt", "a" * 12 + "b" * 52, "--init weights", Path("runs/r"))
    with pytest.raises(VsentError) as info:
        check_init_record(record, "w.pt", "b" * 64, "--init weights", Path("runs/r"))
    assert str(info.value) == ("w.pt: the --init weights changed since runs/r started (SHA-256 "
                               f"{'a' * 12} then, {'b' * 12} now; see {record}): restore that "
                               "file, or pass --overwrite to start again")
    record.write_text(json.dumps({"sha": "a" * 64}))  # no "sha256" key (mut52c P32)
    with pytest.raises(VsentError, match=r"init\.json: not the record of the --init weights "
                                         r"\(keys sha256\); restore it from a copy"):
        check_init_record(record, "w.pt", "a" * 64, "--init weights", Path("runs/r"))
