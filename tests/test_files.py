"""vsent.files: the run-directory and output lock, single-file outputs, CSV and cache reads.
Each test pins a behaviour a mutation of the module changed unseen (mut40); the lock's
end-to-end tests are in test_runs.py and test_batch.py."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from vsent.errors import VsentError
from vsent.files import check_replaceable, exclusive_lock, make_folder
from vsent.runs import open_run_dir

CFG = {"command": "demo", "data": ".", "train": {"lr": 0.002, "epochs": 3, "device": "cpu"},
       "folds": [1, 2]}


def _lock_open_fails(monkeypatch, code):
    real = os.open

    def fails(path, flags, *args, **kwargs):
        if str(path).endswith(".vsent.lock"):
            raise OSError(code, os.strerror(code))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fails)


def test_a_finished_run_on_a_read_only_file_system_is_shown(tmp_path, monkeypatch):
    out = tmp_path / "r"
    open_run_dir(out, CFG).close()
    (out / "summary.json").write_text("{}")
    _lock_open_fails(monkeypatch, errno.EROFS)
    rd = open_run_dir(out, CFG)
    rd.close()
    assert rd.status == "finished"


def test_a_lock_file_that_cannot_be_made_for_another_reason_is_one_line(tmp_path, monkeypatch):
    _lock_open_fails(monkeypatch, errno.ENOSPC)
    with pytest.raises(VsentError, match=r"^--out .*r: cannot create r\.vsent\.lock beside it: "
                                         r"No space left on device$"):
        open_run_dir(tmp_path / "r", CFG)


def test_the_lock_file_is_group_writable_under_a_group_umask(tmp_path):
    old = os.umask(0o002)
    try:
        with exclusive_lock(tmp_path / "o.csv", "vsent predict"):
            mode = (tmp_path / "o.csv.vsent.lock").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o664


def test_a_held_lock_without_a_pid_yet_names_this_command(tmp_path):
    out = tmp_path / "o.csv"
    with open(f"{out}.vsent.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the holder has not written yet
        with pytest.raises(VsentError, match=r"^another vsent predict \(pid \?\) is writing "), \
                exclusive_lock(out, "vsent predict"):
            pass


@pytest.mark.parametrize("third_run", [False, True])
def test_a_lock_file_removed_by_its_ending_holder_is_not_the_one_locked(tmp_path, monkeypatch,
                                                                        third_run):
    """The holder ends (and removes its lock file) between our open and our flock: the file we
    locked is gone, a third run would make and lock a new one; so we lock a new one too. With
    ``third_run`` that third run has made its file already: ours is not it (mut52c F44)."""
    out = tmp_path / "o.csv"
    lock = Path(f"{out}.vsent.lock")
    lock.write_text("4242@elsewhere vsent predict\n")  # the holder's file, about to go
    real = fcntl.flock
    calls = []

    def holder_ends_first(fd, op):
        calls.append(fd)
        if len(calls) == 1:
            lock.unlink()
            if third_run:
                lock.write_text("")
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", holder_ends_first)
    with exclusive_lock(out, "vsent predict"):
        assert len(calls) == 2
        assert lock.read_text().startswith(f"{os.getpid()}@")


def test_an_out_name_whose_lock_name_is_256_bytes_is_cut(tmp_path):
    out = tmp_path / ("x" * (256 - len(".vsent.lock")))
    open_run_dir(out, CFG).close()
    assert (out / "config.json").exists()


def _held_lock_names(out: Path) -> list[str]:
    """The lock files in ``out``'s folder while :func:`exclusive_lock` holds ``out``."""
    with exclusive_lock(out, "vsent layers"):
        return [p.name for p in out.parent.iterdir() if p.name.endswith(".vsent.lock")]


def test_a_lock_name_of_255_bytes_is_kept_and_a_longer_one_is_cut_the_same_way(tmp_path):
    """mut60b F77, F78: a lock name the file system takes (255 bytes) is not cut; a longer one
    is its first 200 bytes, '~' and 12 hex digits of the name's SHA-256: the name another vsent
    (an older or newer version) locks for the same output, so two runs of them still exclude
    each other."""
    import hashlib

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fits = "f" * (255 - len(".vsent.lock"))
    assert _held_lock_names(tmp_path / "a" / fits) == [f"{fits}.vsent.lock"]
    long = "y" * 250
    digest = hashlib.sha256(long.encode()).hexdigest()[:12]
    assert _held_lock_names(tmp_path / "b" / long) == [f"{'y' * 200}~{digest}.vsent.lock"]


def test_write_protected_means_not_writable_even_if_readable(tmp_path, monkeypatch):
    out = tmp_path / "card.md"
    out.write_text("# card")
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: mode != os.W_OK
                        if os.fspath(path) == str(out) else real(path, mode, **kw))
    with pytest.raises(VsentError, match="is write-protected"):
        check_replaceable(out, "--out", "model card", lambda p: True, overwrite=True)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: mode != os.R_OK
                        if os.fspath(path) == str(out) else real(path, mode, **kw))
    check_replaceable(out, "--out", "model card", lambda p: True)  # writable: replaced


def test_a_csv_the_csv_module_cannot_read_is_one_line(tmp_path):
    from vsent.files import csv_rows

    text = "path,label\n" + "x" * 200_000 + ",1\n"  # over the csv module's field limit
    with pytest.raises(VsentError, match=r"p\.csv: not a readable CSV file \(field larger "):
        csv_rows(tmp_path / "p.csv", text, lambda header: [])


def test_a_cache_miss_is_no_warning(tmp_path, caplog):
    from vsent.files import load_cache_entry

    with caplog.at_level("WARNING", logger="vsent"):
        assert load_cache_entry(tmp_path / "none.npz", "SIFT cache entry") is None
    assert not caplog.records


def test_an_output_file_is_locked_itself_under_a_second_name_or_with_no_lock_file(
        tmp_path, monkeypatch):
    """trial40 F7: two `predict --resume` runs appended to one file whose folder was read-only
    (no lock file can be made there), or given under a second name (a hard link: its own lock
    file): 300 rows for 200 inputs, both runs "200 of 200"."""
    out = tmp_path / "scores.csv"
    out.write_text("path,prob_positive\n")
    os.link(out, tmp_path / "hard.csv")

    def refused(name, said):
        with pytest.raises(VsentError, match=said), exclusive_lock(name, "vsent predict"):
            pass

    with exclusive_lock(out, "vsent predict"):
        refused(out, r"^another vsent predict \(pid \d+@\S+\) is writing ")
        refused(tmp_path / "hard.csv",
                r"^another vsent predict is writing .*hard\.csv; wait for it or stop it$")
    _lock_open_fails(monkeypatch, errno.EROFS)  # (a read-only folder: no lock file)
    with exclusive_lock(out, "vsent predict"):
        assert not Path(f"{out}.vsent.lock").exists()
        refused(out, "^another vsent predict is writing ")
    with exclusive_lock(out, "vsent predict"):  # released at the end
        pass


def test_a_held_lock_names_the_holders_command_and_pid(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with exclusive_lock(out, "vsent layers"):
        said = rf"^another vsent layers \(pid {os.getpid()}@\S+\) is writing {out}; wait for it"
        with pytest.raises(VsentError, match=said), exclusive_lock(out, "vsent predict"):
            pass
    with exclusive_lock(out, "vsent predict"):  # released at the end
        pass


def test_a_lock_beside_an_out_in_a_folder_not_made_yet_is_no_error(tmp_path):
    out = tmp_path / "not" / "yet" / "rows.csv"
    with exclusive_lock(out, "vsent predict"):
        pass
    assert not (tmp_path / "not").exists()


def test_absolute_path_takes_dotdot_through_links_and_keeps_the_last_names(tmp_path,
                                                                          monkeypatch):
    """trial41 F4: ``--data ../X`` was recorded as <cwd>/../X, and renaming the folder the
    run was made in broke every analysis of it though X never moved. A '..' is resolved as
    the file system resolves it (through a link: the link's target's parent); the names after
    the last one stay as typed (a dataset folder that is a link stays that link)."""
    from vsent.files import absolute_path

    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "lnk").symlink_to(tmp_path / "real" / "inner", target_is_directory=True)
    (tmp_path / "tw").symlink_to(tmp_path / "data", target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert absolute_path("../tw") == tmp_path / "tw"  # the link itself, not data/
    assert absolute_path("x/./y") == work / "x" / "y"  # no '..': as pathlib makes it
    assert absolute_path(tmp_path / "lnk" / ".." / "z") == tmp_path / "real" / "z"
    # two '..': resolved up to the last one (up to the first kept "lnk/.." as typed)
    assert absolute_path(tmp_path / "data" / ".." / "lnk" / ".." / "z") == tmp_path / "real" / "z"
    assert absolute_path("~") == Path.home()
    # '..' after no folder: as typed, so that the error names it (review41 F3: it ran on X)
    assert absolute_path("missing/../tw") == work / "missing" / ".." / "tw"
    assert not absolute_path("missing/../tw").exists()
    # nor after a file: realpath would drop "notes/.." (the file system says "not a folder")
    (work / "notes").write_text("x")
    assert absolute_path("notes/../tw") == work / "notes" / ".." / "tw"
    from vsent.cli.common import data_path

    recorded = data_path("../tw")  # as a run's config.json records --data
    work.rename(tmp_path / "renamed")
    assert Path(recorded).is_dir()  # (<cwd>/../tw named a folder that is gone)


def test_make_folder_names_the_file_that_stands_where_a_folder_must_be(tmp_path):
    """mkdir says "File exists" (the folder's own name) or "Not a directory" (a parent's),
    which reads as if all were fine: every command that makes its --out folder says which
    file is in the way."""
    make_folder(tmp_path / "a" / "b")
    make_folder(tmp_path / "a" / "b")  # there already: nothing to do
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("x")
    for folder in (tmp_path / "f", tmp_path / "f" / "sub" / "deeper"):
        with pytest.raises(OSError) as info:
            make_folder(folder)
        assert info.value.strerror == f"{tmp_path / 'f'} is a file, not a folder"
        assert info.value.errno in (errno.EEXIST, errno.ENOTDIR)


def test_make_folder_names_a_broken_link_that_stands_where_a_folder_must_be(tmp_path):
    """review44d: a link whose target is gone was passed over (Path.exists follows links),
    so mkdir's bare "File exists" came back, the message make_folder is there to replace."""
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    for folder in (tmp_path / "out", tmp_path / "out" / "sub"):
        with pytest.raises(OSError) as info:
            make_folder(folder)
        assert info.value.strerror == f"{tmp_path / 'out'} is a broken symbolic link, not a folder"


# mutation round 45 (mut45b): vsent.files mutants the suite missed

def test_a_temporary_name_tells_a_dead_writer_from_a_live_one(tmp_path):
    """temp_path's names are the ones abandoned() reads (pid, host, 8 hex digits): a file of a
    writer of this machine that is gone is abandoned at once, a live one's is not (F13)."""
    import subprocess
    import sys
    import time

    from vsent.files import _host, abandoned, temp_path

    live = temp_path(tmp_path / "cache.npy")
    live.write_bytes(b"partial")
    assert not abandoned(live)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = live.with_name(live.name.replace(f".{os.getpid()}@", f".{gone.pid}@"))
    live.rename(dead)
    assert abandoned(dead)
    # a writer on another machine (or PID namespace) may be alive: its file is left a day
    # (mut52c F13, F17)
    theirs = dead.with_name(dead.name.replace(f"@{_host()}.", "@elsewhere~0123456789a."))
    dead.rename(theirs)
    assert not abandoned(theirs)
    for hours, gone_by_now in ((23, False), (25, True)):
        then = time.time() - hours * 3600
        os.utime(theirs, (then, then))
        assert abandoned(theirs) is gone_by_now, hours


def test_a_temporary_file_that_is_gone_is_not_abandoned(tmp_path):
    """Nothing to remove: False, whoever wrote it (F17)."""
    from vsent.files import abandoned

    assert not abandoned(tmp_path / ".x.npy.1@elsewhere.example.0badc0de.tmp")
    assert not abandoned(tmp_path / "gone.tmp")


def test_a_process_of_another_user_counts_as_running(monkeypatch):
    """kill(pid, 0) says EPERM for a live process of someone else: its file is not removed
    (F18)."""
    from vsent import files

    def eperm(pid, sig):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "kill", eperm)
    assert files._running(12345)


def test_check_replaceable_refuses_a_folder_even_with_overwrite_and_takes_overwrite(tmp_path):
    """F21, F23: a folder is never replaced; --overwrite replaces a file of another kind."""
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(VsentError, match="is a folder; give the name of a file"):
        check_replaceable(folder, "--out", "model card", lambda p: True, overwrite=True)
    other = tmp_path / "notes.md"
    other.write_text("mine")
    with pytest.raises(VsentError, match="exists and is no model card"):
        check_replaceable(other, "--out", "model card", lambda p: False)
    check_replaceable(other, "--out", "model card", lambda p: False, overwrite=True)
    # a new file is no earlier output of any kind, and nothing is in its way
    check_replaceable(tmp_path / "new.md", "--out", "model card", lambda p: False)


def test_a_file_without_write_bits_is_write_protected_for_root_too(tmp_path, monkeypatch):
    """root may write any file (os.access says yes): a chmod a-w is read from the mode (F22)."""
    out = tmp_path / "card.md"
    out.write_text("# card")
    out.chmod(0o444)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: True)  # as for root
    with pytest.raises(VsentError, match="is write-protected"):
        check_replaceable(out, "--out", "model card", lambda p: True, overwrite=True)
    # any write bit left is no chmod a-w: a file its group may write is replaced (mut58b F40)
    out.chmod(0o464)
    check_replaceable(out, "--out", "model card", lambda p: True, overwrite=True)


def test_a_file_that_cannot_be_read_is_in_no_byte_group(tmp_path):
    """F26: a folder (unreadable as a file) of the same size as a file matches nothing: None,
    not its own index; the file is its own group."""
    from vsent.files import byte_groups

    folder = tmp_path / "d"
    folder.mkdir()
    same = tmp_path / "f.bin"
    same.write_bytes(b"x" * os.path.getsize(folder))
    assert byte_groups([folder, same]) == [None, 1]
    # alone, its size is no other file's: it is not read and stays its own group
    assert byte_groups([folder]) == [0]


def test_an_out_or_an_input_that_does_not_exist_is_no_clash(tmp_path):
    """F31, F32: nothing to compare, an out not made yet or an input given that is missing
    (its reader names it): not an error (os.path.samefile would raise)."""
    from vsent.files import check_not_an_input

    (tmp_path / "in.pt").write_bytes(b"w")
    check_not_an_input(tmp_path / "new.md", [tmp_path / "in.pt", None])
    check_not_an_input(tmp_path / "in.pt", [tmp_path / "missing.pt"])
    with pytest.raises(VsentError, match=r"--out .*in\.pt is .*in\.pt, which this command "
                                         r"reads"):
        check_not_an_input(tmp_path / "in.pt", [tmp_path / "in.pt"])
    # the same file by another name (a hard link) is that input too
    os.link(tmp_path / "in.pt", tmp_path / "also.pt")
    with pytest.raises(VsentError, match=r"also\.pt is .*in\.pt, which this command reads"):
        check_not_an_input(tmp_path / "also.pt", [tmp_path / "in.pt"])


def _label_rows(path: Path, text: str) -> list:
    from vsent.files import csv_rows

    return csv_rows(path, text, lambda header: [("label", int)])


def test_csv_rows_name_the_line_a_row_ends_on_and_a_row_cut_short(tmp_path):
    """F33, F34: blank lines and a quoted newline count (the line a user opens the file at);
    a row with fewer fields than the header is "cut short", not parsed as None."""
    p = tmp_path / "l.csv"
    assert _label_rows(p, "path,label\n\n\na.jpg,1\n") == [(4, {"path": "a.jpg", "label": 1})]
    with pytest.raises(VsentError, match=r"l\.csv, line 4: unreadable row \(label: invalid "):
        _label_rows(p, 'path,label\n"a\nb.jpg",1\nc.jpg,x\n')
    with pytest.raises(VsentError, match=r"line 3: unreadable row \(cut short: 1 of 2 fields\)"):
        _label_rows(p, "path,label\na.jpg,1\nb.jpg\n")


def test_an_empty_csv_file_shows_its_columns_an_empty_header(tmp_path):
    """mut58b F46: a file without even a header line gives ``columns`` no names, not None
    (a caller's ``"label" not in header`` would be a TypeError: a traceback)."""
    from vsent.files import csv_rows

    seen: list[tuple[str, ...]] = []
    assert csv_rows(tmp_path / "l.csv", "", lambda header: seen.append(tuple(header)) or []) == []
    assert seen == [()]


def test_csv_rows_name_a_row_with_more_fields_than_the_header(tmp_path):
    """F35, F36: a lost newline ran two rows together: the row's field count is said."""
    with pytest.raises(VsentError, match=r"line 2: unreadable row \(3 fields, the header has "
                                         r"2\)$"):
        _label_rows(tmp_path / "l.csv", "path,label\na.jpg,1b.jpg,0\n")


def test_two_readers_of_a_folder_with_no_lock_file_both_go_on(tmp_path, monkeypatch):
    """F39: a run folder on a read-only file system has no lock file and is not locked itself
    (only a file output is): two commands showing the finished run there both go on."""
    out = tmp_path / "r"
    out.mkdir()
    _lock_open_fails(monkeypatch, errno.EROFS)
    with exclusive_lock(out, "vsent layers"), exclusive_lock(out, "vsent layers"):
        pass


def test_a_run_folder_given_through_a_link_shares_the_folders_lock(tmp_path):
    """F48: the lock file is named after the real folder: a second run given a link to it is
    refused while the first holds it."""
    real = tmp_path / "run"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    said = r"another vsent layers \(pid \d+@\S+\) is writing .*link"
    with exclusive_lock(real, "vsent layers"), pytest.raises(VsentError, match=said), \
            exclusive_lock(link, "vsent layers"):
        pass
    assert not list(tmp_path.glob("*.vsent.lock"))


# mutation round 49 (mut49a): vsent.files mutants the suite missed

def test_a_cache_entry_path_that_is_a_folder_is_a_miss_without_a_warning(tmp_path, caplog):
    """F01: only a file is read; a folder there is no entry (not "unreadable")."""
    from vsent.files import load_cache_entry

    (tmp_path / "e.npz").mkdir()
    with caplog.at_level("WARNING", logger="vsent"):
        assert load_cache_entry(tmp_path / "e.npz", "SIFT cache entry", ("a",)) is None
    assert not caplog.records


def test_a_cache_entry_of_keys_is_a_tuple_read_before_it_returns(tmp_path):
    """F02: the arrays are read while the .npz is open (a lazy generator read them after)."""
    import numpy as np

    from vsent.files import load_cache_entry

    np.savez(tmp_path / "e.npz", a=np.arange(3), b=np.ones(2))
    got = load_cache_entry(tmp_path / "e.npz", "SIFT cache entry", ("b", "a"))
    assert isinstance(got, tuple) and len(got) == 2
    assert got[0].tolist() == [1.0, 1.0] and got[1].tolist() == [0, 1, 2]


def test_a_damaged_cache_entry_is_recomputed_with_a_line_naming_it(tmp_path, caplog):
    """F03: a cut .npz is None and a warning names the file and what it is."""
    from vsent.files import load_cache_entry

    (tmp_path / "e.npz").write_bytes(b"PK\x03\x04 cut")
    with caplog.at_level("WARNING", logger="vsent"):
        assert load_cache_entry(tmp_path / "e.npz", "SIFT cache entry", ("a",)) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'e.npz'}: unreadable SIFT cache entry, recomputing"]
    (tmp_path / "e.npy").write_bytes(b"")  # numpy: EOFError (mut52c F02)
    assert load_cache_entry(tmp_path / "e.npy", "feature cache entry") is None


def test_a_tilde_of_an_unknown_user_is_a_data_error_naming_the_path():
    """F04: the path the user typed leads the message."""
    from vsent.errors import DataError
    from vsent.files import expand_user

    with pytest.raises(DataError, match=r"^~no_such_user_mut49/x\.csv: cannot expand ~ "):
        expand_user("~no_such_user_mut49/x.csv")


def test_not_a_file_reason_tells_a_fifo_from_a_missing_path(tmp_path):
    """F07: something there that is no regular file vs nothing there."""
    from vsent.files import not_a_file_reason

    os.mkfifo(tmp_path / "fifo")
    assert not_a_file_reason(tmp_path / "fifo") == "not a regular file"
    assert not_a_file_reason(tmp_path / "gone") == "no such file or directory"


def test_same_file_takes_dotdot_and_links(tmp_path):
    """F08: two spellings of one file are resolved, not only made absolute."""
    from vsent.files import same_file

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert same_file(tmp_path / "d" / ".." / "f", tmp_path / "f")
    assert same_file(tmp_path / "l", tmp_path / "f")
    assert not same_file(tmp_path / "d", tmp_path / "f")


def test_make_folder_keeps_mkdirs_error_when_no_file_is_in_the_way(tmp_path, monkeypatch):
    """F09: a FileExistsError with only folders on the path (a race) is mkdir's own, not
    "<folder> is a file"."""
    def exists(self, *args, **kwargs):
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(Path, "mkdir", exists)
    with pytest.raises(FileExistsError) as info:
        make_folder(tmp_path)
    assert info.value.strerror == "File exists"


def test_an_atomic_write_that_fails_leaves_no_temporary_file(tmp_path):
    """F12: the temporary file is removed and the old file kept when the block raises."""
    from vsent.files import atomic_open

    (tmp_path / "o.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "o.json") as f:
        f.write("half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]
    assert (tmp_path / "o.json").read_text() == "old"


def test_a_temporary_name_is_hidden_beside_the_file_and_names_its_writer(tmp_path, monkeypatch):
    """F15, F16, F17: ``.<name>.<pid>@<host>.<8 hex>.tmp``; the host part is at most 32
    characters: the hostname's first 20, '~' and 11 hex digits."""
    import re
    import socket

    from vsent import files

    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 40)
    files._host.cache_clear()
    try:
        host = files._host()
        name = files.temp_path(tmp_path / "c.npy")
    finally:
        files._host.cache_clear()
    assert re.fullmatch(r"h{20}~[0-9a-f]{11}", host)
    assert name.parent == tmp_path
    assert re.fullmatch(rf"\.c\.npy\.{os.getpid()}@{host}\.[0-9a-f]{{8}}\.tmp", name.name)
    # a name near the limit is cut to exactly 255 bytes, which the file system takes (mut52c F10)
    long = files.temp_path(tmp_path / ("x" * 300))
    assert len(os.fsencode(long.name)) == 255
    long.write_bytes(b"")


def test_reserve_space_passes_over_a_file_system_that_cannot_allocate_ahead(tmp_path,
                                                                              monkeypatch):
    """F23: EOPNOTSUPP (and EINVAL, ENOSYS) leave the file as it was; a full disk raises."""
    from vsent.files import reserve_space

    (tmp_path / "f.npy").write_bytes(b"x" * 10)
    calls = []
    monkeypatch.setattr(os, "posix_fallocate", lambda fd, offset, length: calls.append(
        (offset, length)))
    reserve_space(tmp_path / "f.npy")
    assert calls == [(0, 10)]  # the file's whole length (mut52c F20)
    for code in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENOSPC):
        def fails(fd, offset, length, code=code):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "posix_fallocate", fails)
        if code == errno.ENOSPC:
            with pytest.raises(OSError) as info:
                reserve_space(tmp_path / "f.npy")
            assert info.value.errno == errno.ENOSPC
        else:
            reserve_space(tmp_path / "f.npy")
    assert (tmp_path / "f.npy").read_bytes() == b"x" * 10


def test_check_replaceable_names_the_option_and_the_file(tmp_path):
    """F28: each refusal names the option and the path given."""
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(VsentError) as info:
        check_replaceable(folder, "--card", "model card", lambda p: True)
    assert str(info.value) == f"--card {folder}: is a folder; give the name of a file"
    other = tmp_path / "notes.md"
    other.write_text("mine")
    with pytest.raises(VsentError) as info:
        check_replaceable(other, "--card", "model card", lambda p: False)
    assert str(info.value) == (f"--card {other}: exists and is no model card: choose another "
                               "file, or pass --overwrite to replace it")


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path):
    """F31: the digest recorded for --init weights and checkpoints is SHA-256 (FIPS 180-2's
    "abc" vector)."""
    from vsent.files import file_digest, file_sha256

    (tmp_path / "w.pt").write_bytes(b"abc")
    assert file_sha256(tmp_path / "w.pt") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert file_digest(tmp_path / "w.pt", "md5") == "900150983cd24fb0d6963f7d28e17f72"


def test_same_bytes_gives_the_index_in_b_past_files_of_no_shared_size(tmp_path):
    """F35: b's files not read (no size in common) still count in the index returned."""
    from vsent.files import same_bytes

    for name, data in (("a0", b"abc"), ("b0", b"zz"), ("b1", b"q"), ("b2", b"abc")):
        (tmp_path / name).write_bytes(data)
    assert same_bytes([tmp_path / "a0"], [tmp_path / n for n in ("b0", "b1", "b2")]) == {0: 2}
    # workers 0 (a caller's "no extra threads") still hashes, in one thread (mut58b F42)
    assert same_bytes([tmp_path / "a0"], [tmp_path / "b2"], workers=0) == {0: 0}


def test_first_of_groups_leaves_out_files_of_no_group():
    """F34: an unreadable file (group None) is in no group."""
    from vsent.files import first_of_groups

    assert first_of_groups([None, 0, 0, None, 4], [3, 0, 2, 1, 4]) == {0: 2, 4: 4}


def test_a_clash_with_an_input_names_the_option_to_change(tmp_path):
    """F38: the option given (not always --out) is named twice."""
    from vsent.files import check_not_an_input

    (tmp_path / "in.csv").write_text("x")
    with pytest.raises(VsentError) as info:
        check_not_an_input(tmp_path / "in.csv", [tmp_path / "in.csv"], "--report")
    assert str(info.value) == (f"--report {tmp_path / 'in.csv'} is {tmp_path / 'in.csv'}, "
                               "which this command reads: choose another --report")


def test_a_row_with_two_fields_too_many_counts_them_all(tmp_path):
    """F42: the count is the header's plus every extra field (two here), not one more."""
    with pytest.raises(VsentError, match=r"line 2: unreadable row \(4 fields, the header has "
                                         r"2\)$"):
        _label_rows(tmp_path / "l.csv", "path,label\na.jpg,1,b.jpg,0\n")


def test_a_file_system_without_locks_is_warned_of_and_leaves_no_lock_file(tmp_path, monkeypatch,
                                                                           caplog):
    """F50: flock failing (NFS without lockd) is a warning; the lock file made is removed."""
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "run"
    out.mkdir()
    with caplog.at_level("WARNING", logger="vsent"), exclusive_lock(out, "vsent layers"):
        assert not (tmp_path / "run.vsent.lock").exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"--out {out}: cannot lock run.vsent.lock ({os.strerror(errno.ENOLCK)}): nothing keeps "
        "a second run off this output"]
    (tmp_path / "o.csv").write_text("x")  # an out that is a file: not locked itself either
    with exclusive_lock(tmp_path / "o.csv", "vsent predict"):  # (mut52c F39)
        assert (tmp_path / "o.csv").read_text() == "x"


def test_the_lock_file_holds_only_this_runs_pid_and_command(tmp_path):
    """F55: a longer line left by a killed run is replaced whole, not overwritten in part."""
    import socket

    lock = tmp_path / "run.vsent.lock"
    lock.write_text("123456789@a-much-longer-host-name vsent crossval --with options\n")
    with exclusive_lock(tmp_path / "run", "vsent layers"):
        assert lock.read_text() == f"{os.getpid()}@{socket.gethostname()} vsent layers\n"


def test_a_lock_file_of_another_user_is_locked_read_only(tmp_path, monkeypatch):
    """F56: a lock file this user may not write (left by another user's killed run) is opened
    read-only and locked: a second run is still refused while the first holds it."""
    lock = tmp_path / "run.vsent.lock"
    lock.write_text("")
    real = os.open

    def no_write(path, flags, *args, **kwargs):
        if str(path) == str(lock) and flags & (os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_write)
    out = tmp_path / "run"
    out.mkdir()
    with exclusive_lock(out, "vsent layers"), pytest.raises(
            VsentError, match=r"^another vsent predict \(pid \?\) is writing"), \
            exclusive_lock(out, "vsent predict"):
        pass


def test_mark_used_sets_the_time_to_now_and_passes_over_a_file_it_cannot_touch(tmp_path):
    """mut52c F18: the last use is now; an entry removed meanwhile (or a read-only cache) is
    no error."""
    from vsent.files import mark_used

    entry = tmp_path / "e.npy"
    entry.write_bytes(b"x")
    os.utime(entry, (0, 0))
    mark_used(entry)
    assert entry.stat().st_mtime > 1e9  # not 1970 any more
    mark_used(tmp_path / "gone.npy")


def test_atomic_write_text_writes_utf8_and_leaves_only_the_file(tmp_path):
    """mut52c F31, F51: the text as UTF-8 whatever the locale, an empty text too, and no
    temporary file beside it."""
    from vsent.files import atomic_write_text

    atomic_write_text(tmp_path / "card.md", "Søren's café: 0.82 ± 0.05\n")
    assert (tmp_path / "card.md").read_bytes() == "Søren's café: 0.82 ± 0.05\n".encode()
    atomic_write_text(tmp_path / "card.md", "")
    assert (tmp_path / "card.md").read_bytes() == b""
    assert [p.name for p in tmp_path.iterdir()] == ["card.md"]


def test_a_cache_entry_is_written_in_a_new_folder_and_an_unwritable_one_is_named(tmp_path):
    """mut52c F23, F24: write_cache_file makes the entry's folders; a folder that cannot be
    made (a file stands there) is a VsentError naming it and the way out."""
    from vsent.files import write_cache_file

    entry = tmp_path / "cache" / "ab" / "e.bin"
    write_cache_file(entry, lambda f: f.write(b"data"), "feature cache")
    assert entry.read_bytes() == b"data"
    (tmp_path / "file").write_text("x")
    with pytest.raises(VsentError) as info:
        write_cache_file(tmp_path / "file" / "e.bin", lambda f: f.write(b"data"), "feature cache")
    assert str(info.value) == (f"{tmp_path / 'file'}: cannot write the feature cache (File "
                               "exists); set $VSENT_CACHE to a writable folder")


def test_a_folder_nobody_may_write_to_without_a_lock_file_is_shown(tmp_path, monkeypatch):
    """mut52c F50: no lock file can be made there (EACCES) and none is there: nobody can write
    in the folder, nothing to lock, no error."""
    real = os.open

    def no_create(path, flags, *args, **kwargs):
        if str(path).endswith(".vsent.lock") and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_create)
    out = tmp_path / "run"
    out.mkdir()
    with exclusive_lock(out, "vsent report"):
        assert not (tmp_path / "run.vsent.lock").exists()
