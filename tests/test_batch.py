"""Streaming batch scoring (vsent.inputs, vsent.batch): lazy input walking, --from-list, rows
written as they come, --resume after a kill, and the CLI options around them."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import default_sigint
from vsent.batch import RowWriter, read_done, score_stream, with_unmatched
from vsent.cli import main
from vsent.errors import EXIT_ITEMS_FAILED, VsentError
from vsent.files import file_sha256
from vsent.inputs import Unmatched, iter_inputs, split_inputs, walk_folder
from vsent.predict import Predictor


@pytest.fixture
def folder(tmp_path):
    """12 images (two in a sub-folder), a text file and one corrupt .jpg."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    for i in range(12):
        where = root / "sub" if i in (3, 7) else root
        Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)).save(
            where / f"im{i:02d}.{'png' if i % 4 == 0 else 'jpg'}")
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    return root


def _expected(checkpoint, folder) -> dict[str, dict]:
    """Rows made without vsent.batch: each image decoded and scored on its own."""
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    rows = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix not in (".jpg", ".png"):
            continue
        try:
            probs = pred.predict_arrays(pred.decode(p)[None])[0]
        except VsentError as e:
            rows[str(p)] = {"prob_positive": None, "error": str(e)}
            continue
        rows[str(p)] = {"prob_positive": float(probs[1]), "error": ""}
    return rows


# --------------------------------------------------------------------------------------------
# lazy walking


def test_walker_finds_images_recursively_and_reports_what_matched_nothing(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    items = list(iter_inputs([folder, str(folder / "*.png"), tmp_path / "empty",
                              str(tmp_path / "nothing*.jpg"), tmp_path / "missing.jpg"]))
    want_all = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png"))
    assert len(want_all) == 13  # 12 images + broken.jpg, not notes.txt
    paths = [i for i in items if not isinstance(i, Unmatched)]
    assert sorted(paths[:13]) == want_all  # folder: recursive, image suffixes only
    assert sorted(paths[13:-1]) == sorted(map(str, folder.glob("*.png")))  # a glob's strings
    assert paths[-1] == str(tmp_path / "missing.jpg")  # a missing file: its decode says why
    unmatched = [i for i in items if isinstance(i, Unmatched)]
    assert [u.path for u in unmatched] == [str(tmp_path / "empty"),
                                            str(tmp_path / "nothing*.jpg")]
    assert "no image" in unmatched[0].reason and "matched no file" in unmatched[1].reason
    # the eager form (vsent explain)
    found, missing = split_inputs([folder, tmp_path / "empty"])
    assert sorted(found) == want_all and [m["path"] for m in missing] == [str(tmp_path / "empty")]
    assert missing[0]["error"] and missing[0]["prob_positive"] is None


def test_walker_skips_a_vsent_run_inside_a_folder(folder, tmp_path, caplog):
    """trial40 F10: `explain photos --out photos/cam2` explained photos/cam's overlays (heat
    maps of heat maps) and predict scored them as photos, silently. A folder given as the
    PATH itself is walked: asked for by name."""
    want = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png"))
    run = folder / "sub" / "cam"
    run.mkdir(parents=True)
    for name in ("config.json", "versions.json"):
        (run / name).write_text("{}")
    (run / "0001_gradcam.png").write_bytes(b"png")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        assert sorted(iter_inputs([folder])) == want
    assert f"{run} holds a vsent run: its files are not read as images" in caplog.text
    assert list(iter_inputs([run])) == [run / "0001_gradcam.png"]
    # nor a folder a glob matches, nor files in one (review40 #5), unless the pattern names it
    (run / "fold1").mkdir()
    (run / "fold1" / "curves.png").write_bytes(b"png")
    for pattern in ("*", "*/*", "*/*/*.png", "**/*.png", "sub/*/*.png"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vsent"):
            got = [str(i) for i in iter_inputs([str(folder / pattern)])
                   if not isinstance(i, Unmatched)]
        assert not [g for g in got if "/sub/cam/" in g], pattern
        assert "holds a vsent run" in caplog.text, pattern
    assert sorted(iter_inputs([str(run / "*.png")])) == [str(run / "0001_gradcam.png")]
    assert sorted(iter_inputs([str(run / "*" / "*.png")])) == [str(run / "fold1" / "curves.png")]
    # `lnk/..` through a link is the link target's parent, not the folder before it (review40b)
    (folder / "lnk").symlink_to(run)  # (lnk/.. is sub/, which holds the run)
    got = [str(i) for i in iter_inputs([str(folder / "lnk" / ".." / "*")])]
    assert not [g for g in got if g.endswith("0001_gradcam.png")], got


def test_walker_names_what_it_cannot_list_and_walks_folders_a_glob_matches(folder, tmp_path,
                                                                          monkeypatch, caplog):
    import vsent.inputs as inputs

    real_scandir = os.scandir

    def scandir(d):  # as for a folder without read permission (root would read it anyway)
        if Path(d).name == "sub":
            raise PermissionError(13, "Permission denied")
        return real_scandir(d)

    with monkeypatch.context() as mp:
        mp.setattr(inputs.os, "scandir", scandir)
        items = list(iter_inputs([folder]))
    (locked,) = [i for i in items if isinstance(i, Unmatched)]  # its images are not dropped
    assert locked.path == str(folder / "sub")  # without a word: the folder has a row
    assert locked.reason == f"{folder / 'sub'}: cannot list this folder (permission denied)"
    assert len(items) == 1 + 11  # the other images are still found
    # a folder that a glob matches is walked like a folder given by name ...
    assert sorted(iter_inputs([str(folder / "s*")])) == sorted(
        map(Path, (folder / "sub").glob("*.*")))
    # ... except with **, whose own matches are the folders' files (each once, no folder rows)
    deep = list(iter_inputs([str(folder / "**" / "*.png")]))
    assert sorted(deep) == sorted(map(str, folder.rglob("*.png"))) and len(deep) == 3
    # a link to a parent folder (a loop): ** followed it to the kernel's limit, one image
    # scored ~40 times under ever longer names (robust39 #14); a folder met again is skipped
    (folder / "sub" / "loop").symlink_to("..", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="vsent"):
        looped = list(iter_inputs([str(folder / "**" / "*.png")]))
    assert sorted(looped) == sorted(deep)
    assert f"folder(s) met again through links (e.g. {folder / 'sub' / 'loop'}" in caplog.text


@pytest.mark.timeout(30)
def test_a_deep_glob_over_two_links_to_a_parent_ends(folder, tmp_path, caplog):
    """Python's glob follows links to folders without a memory: two links to a parent made
    2**40 paths, a walk that never ended (note40's kept item); each real folder is now
    visited once for each place of the pattern. The timeout turns the old hang into a fail."""
    (folder / "sub" / "up1").symlink_to("..", target_is_directory=True)
    (folder / "sub" / "up2").symlink_to("..", target_is_directory=True)
    (folder / ".hidden").mkdir()  # ** skips hidden names, as glob does
    Image.new("RGB", (8, 8)).save(folder / ".hidden" / "h.png")

    with caplog.at_level(logging.WARNING, logger="vsent"):
        deep = list(iter_inputs([str(folder / "**" / "*.png")]))
        every = list(iter_inputs([str(folder / "**")]))
        mid = list(iter_inputs([str(folder / "**" / "sub" / "*.jpg")]))
    pngs = sorted(str(p) for p in folder.rglob("*.png") if ".hidden" not in p.parts)
    assert sorted(deep) == pngs and len(pngs) == 3
    assert sorted(mid) == sorted(str(p) for p in (folder / "sub").glob("*.jpg"))
    assert len(mid) == 2
    assert sorted(every) == sorted(  # every file once, under its first name (rglob: no links)
        str(p) for p in folder.rglob("*") if p.is_file() and ".hidden" not in p.parts)
    assert "met again through links (e.g. " in caplog.text and "up1 is " in caplog.text


def test_a_path_that_cannot_be_checked_gets_its_row_and_the_batch_goes_on(folder, tmp_path,
                                                                          checkpoint):
    """trial31 #1: a positional path whose stat fails other than "missing" (a name longer
    than the file system allows; a parent folder without search permission, EACCES) stopped
    the whole batch with a traceback, and every --resume again at the same place."""
    import vsent.inputs as inputs

    long = str(tmp_path / ("a" * 300 + ".jpg"))
    items = list(iter_inputs([folder / "im01.jpg", long, str(tmp_path / ("b" * 300 + "*.jpg")),
                              folder / "im02.jpg"]))
    assert items[:2] == [str(folder / "im01.jpg"), long] and items[3] == str(folder / "im02.jpg")
    assert isinstance(items[2], Unmatched) and "matched no file" in items[2].reason
    with pytest.MonkeyPatch.context() as mp:  # EACCES as a user gets it (root would not)
        real = inputs.Path.is_dir
        mp.setattr(inputs.Path, "is_dir", lambda p: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied")) if p.name == "im03.jpg" else real(p))
        assert list(iter_inputs([folder / "im03.jpg", folder / "im04.jpg"])) == [
            str(folder / "im03.jpg"), str(folder / "im04.jpg")]
    out = tmp_path / "o.csv"
    assert main(["predict", "--model", str(checkpoint), str(folder / "im01.jpg"), long,
                 str(folder / "im02.jpg"), "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == EXIT_ITEMS_FAILED
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["path"] for r in rows] == [str(folder / "im01.jpg"), long, str(folder / "im02.jpg")]
    assert rows[1]["error"] == f"{long}: file name too long" and rows[2]["prob_positive"]


def test_a_cause_reads_the_same_in_every_row(checkpoint, folder, tmp_path):
    """trial31 #10: rows of one cause were worded after the path's origin ("permission
    denied" from a positional path, "Permission denied" from a list; the C library's
    capitals for others), so that they could not be grouped by their error; a broken
    symbolic link read as a missing file."""
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    under_a_file = str(folder / "im01.jpg" / "x.jpg")
    paths = [str(tmp_path / "dangling.jpg"), str(tmp_path / "loop.jpg"), under_a_file]
    want = [f"{paths[0]}: broken symbolic link (its target is missing)",
            f"{paths[1]}: too many levels of symbolic links",
            f"{under_a_file}: not a directory"]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{p}\n" for p in paths))
    for given in (paths, ["--from-list", str(lst)]):
        out = tmp_path / "o.csv"
        assert main(["predict", "--model", str(checkpoint), *given, "--out", str(out),
                     "--device", "cpu", "--no-progress", "--overwrite"]) == EXIT_ITEMS_FAILED
        assert [r["error"] for r in csv.DictReader(out.open(newline=""))] == want


def test_paths_are_kept_as_written(folder, tmp_path, checkpoint, monkeypatch):
    """A row names the input as the user wrote it: ``./x.jpg`` stays ``./x.jpg`` (a list made
    by ``find .`` joins back onto the scores), and a BOM that an editor put at the start of a
    list is not part of the first path."""
    monkeypatch.chdir(folder)
    lst = tmp_path / "list.txt"
    lst.write_text("\ufeff./im01.jpg\n./sub/../im02.jpg\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    assert main(["predict", "--model", str(checkpoint), "./im05.jpg", "--from-list", str(lst),
                 "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["path"] for r in rows] == ["./im05.jpg", "./im01.jpg", "./sub/../im02.jpg"]
    assert all(r["error"] == "" and r["prob_positive"] for r in rows)


def test_walker_consumes_a_generator_of_inputs_lazily(tmp_path):
    """100k fake paths from a generator: the walker reads one input per path it yields."""
    pulled = 0

    def fake():
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield tmp_path / f"no_{i}.jpg"

    it = iter_inputs(fake())
    first = list(itertools.islice(it, 10))
    assert first == [str(tmp_path / f"no_{i}.jpg") for i in range(10)]
    assert pulled == 10  # nothing read ahead, no list built
    assert sum(1 for _ in it) == 100_000 - 10 and pulled == 100_000


def test_folder_walk_is_lazy(tmp_path):
    """The first file of a large folder comes out before the rest are listed and kept."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(2000):
        (root / f"{i}.jpg").touch()
    it = walk_folder(root)
    first = next(it)
    assert first.parent == root
    assert len({first, *it}) == 2000


def test_from_list_file_and_stdin(folder, tmp_path, checkpoint, capsys, monkeypatch):
    imgs = sorted(folder.glob("im*.jpg"))[:4]
    lst = tmp_path / "list.txt"
    lst.write_text("# scored on Monday\n" + "".join(f"{p}\n" for p in imgs[:2]) + "\n"
                   + f"  # {imgs[3]}\n{imgs[2]}\r\n")
    got = list(iter_inputs([imgs[3]], from_list=lst))
    assert got == [str(imgs[3]), str(imgs[0]), str(imgs[1]), str(imgs[2])]  # inputs, then the
    # list; blanks and comments skipped; a name starting with # is given as ./#name, and kept
    # so (a row's path is the input as written: it can be fed back as a list)
    assert list(iter_inputs(from_list="-", stdin=io.StringIO("./#x.jpg\n"))) == ["./#x.jpg"]
    assert list(iter_inputs(from_list="-", stdin=io.StringIO(f"{imgs[0]}\n{imgs[1]}"))) == \
        list(map(str, imgs[:2]))
    with pytest.raises(VsentError, match="nope.txt"):
        iter_inputs(from_list=tmp_path / "nope.txt")
    # the CLI reads standard input with --from-list -
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{p}\n" for p in imgs)))
    out = tmp_path / "s.jsonl"
    assert main(["predict", "--model", str(checkpoint), "--from-list", "-", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in imgs]
    want = _expected(checkpoint, folder)
    for r in rows:
        assert r["prob_positive"] == pytest.approx(want[r["path"]]["prob_positive"], abs=1e-6)


@pytest.mark.parametrize("n_lines", [3, 200])  # shorter and longer than the 4 KiB head
@pytest.mark.parametrize("kind", ["fifo", "pipe"])
def test_from_list_through_a_pipe_or_a_fifo_loses_no_line(tmp_path, kind, n_lines):
    """``--from-list <(find ...)``, ``/dev/stdin`` or a named FIFO can be read once only: the
    head that is checked for NUL bytes must not be lost (it was: the first 4 KiB of paths,
    all of a short list, and a bogus path cut at byte 4096)."""
    import threading

    lines = [f"imgs/{'./' * 20}im{i:03d}.jpg" for i in range(n_lines)]
    data = "".join(f"{x}\n" for x in lines).encode()
    assert (len(data) > 4096) == (n_lines == 200)
    finished = threading.Event()
    if kind == "fifo":
        source = str(tmp_path / "list.fifo")
        os.mkfifo(source)

        def write() -> None:
            with open(source, "wb") as f:
                f.write(data)
            if not finished.wait(20):  # a reader that opens the list twice waits for a
                with open(source, "wb"):  # second writer: this one ends its wait
                    pass
    else:
        r, w = os.pipe()
        source = f"/dev/fd/{r}"

        def write() -> None:
            with os.fdopen(w, "wb") as f:
                f.write(data)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        got = list(iter_inputs(from_list=source))
    finally:
        finished.set()
        writer.join(timeout=30)
        if kind == "pipe":
            os.close(r)
    assert got == lines


def test_a_name_that_is_not_utf8_goes_through_stdin_and_stdout_in_any_locale(checkpoint, folder,
                                                                             tmp_path):
    """Python reads and writes standard input and output strictly outside the C and C.UTF-8
    locales (``PYTHONIOENCODING=utf-8:strict`` is what ``en_US.UTF-8`` gives): a Latin-1 file
    name, walked in a folder or listed on stdin, is read, scored and written as its bytes (it
    crashed the output, and stopped ``--from-list -`` at its chunk)."""
    latin = os.fsencode(folder / "sub") + b"/caf\xe9.jpg"
    os.link(os.fsencode(folder / "im01.jpg"), latin)  # the same image under a Latin-1 name
    listed = [os.fsencode(folder / "im02.jpg"), latin, os.fsencode(folder / "im05.jpg")]
    proc = subprocess.run(
        [sys.executable, "-m", "vsent.cli", "predict", "--model", str(checkpoint),
         str(folder / "sub"), "--from-list", "-", "--device", "cpu", "--no-progress"],
        input=b"".join(x + b"\n" for x in listed), capture_output=True, timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode("utf-8", "surrogateescape"),
                                           newline="")))
    paths = [os.fsencode(r["path"]) for r in rows]
    walked = sorted(os.fsencode(p) for p in (folder / "sub").glob("im*.jpg"))
    assert sorted(paths[:3]) == sorted([*walked, latin]) and paths[3:] == listed
    assert all(r["error"] == "" for r in rows)
    want = Predictor.from_checkpoint(checkpoint, device="cpu").predict_proba(
        [folder / "im01.jpg"])[0, 1]
    for r in rows:
        if os.fsencode(r["path"]) == latin:
            assert float(r["prob_positive"]) == pytest.approx(float(want), abs=1e-6)


def test_unmatched_rows_keep_their_place_in_the_output():
    items = [Path("a"), Unmatched("g*", "g*: nothing"), Path("b"), Path("c"),
             Unmatched("e", "e: nothing"), Unmatched("f", "f: nothing")]

    def scorer(paths):  # an engine that reads two paths ahead, as the real ones do
        buf = []
        for p in paths:
            buf.append(p)
            if len(buf) > 2:
                yield {"path": str(buf.pop(0)), "error": ""}
        for p in buf:
            yield {"path": str(p), "error": ""}

    assert [r["path"] for r in with_unmatched(items, scorer)] == ["a", "g*", "b", "c", "e", "f"]


def test_resume_writes_no_second_row_for_an_input_that_matched_nothing(tmp_path):
    """An input that matched nothing has its error row under the input as given: a resume
    finds it there and skips it, as any path with a row (it wrote it again on every resume)."""
    def scorer(paths):
        for p in paths:
            yield {"path": str(p), "prob_positive": 0.5, "label": "positive", "error": ""}

    def items():
        return [Path("a.jpg"), Unmatched("g*", "g*: matched no file"), Path("b.jpg")]

    out = tmp_path / "rows.csv"
    first = score_stream(items(), scorer, out)
    assert (first.total, first.failed) == (3, 1)
    again = score_stream(items(), scorer, out, resume=True)
    with out.open(newline="") as f:
        assert [r["path"] for r in csv.DictReader(f)] == ["a.jpg", "g*", "b.jpg"]
    assert (again.total, again.failed, again.resumed) == (3, 1, 3)


# --------------------------------------------------------------------------------------------
# writing and resuming


def test_row_writer_flushes_each_row(tmp_path):
    out = tmp_path / "o.csv"
    w = RowWriter(out, "csv")
    w.write({"path": "x.jpg", "prob_positive": 0.25, "label": "negative", "error": ""})
    # readable by another reader before close: nothing waits in a buffer
    assert out.read_text().splitlines() == ["path,prob_positive,label,error",
                                            "x.jpg,0.25,negative,"]
    w.close()
    w = RowWriter(out, "csv", append=True)  # no second header
    w.write({"path": "y.jpg", "prob_positive": None, "label": None, "error": "bad"})
    w.close()
    assert out.read_text().splitlines()[1:] == ["x.jpg,0.25,negative,", "y.jpg,,,bad"]
    # mut59g G71: without append the file is written anew: this run's header and rows only
    with RowWriter(out, "csv") as w:
        w.write({"path": "z.jpg", "prob_positive": 0.5, "label": "positive", "error": ""})
    assert out.read_text().splitlines() == ["path,prob_positive,label,error",
                                            "z.jpg,0.5,positive,"]
    # mut59g G72: an out that cannot be opened is one line naming it, not a traceback
    with pytest.raises(VsentError, match=r"^--out .*missing/o\.csv: No such file or "
                                         r"directory$"):
        RowWriter(tmp_path / "missing" / "o.csv", "csv")


def test_rows_to_a_standard_output_without_a_buffer_and_to_a_broken_pipe(monkeypatch):
    """mut59g G69, G75: a replaced sys.stdout without a binary buffer (a test's) takes the
    rows as it is; a reader gone (``| head``) is the BrokenPipeError the command line ends
    on quietly, not a one-line error."""
    import errno

    text = io.StringIO()
    monkeypatch.setattr(sys, "stdout", text)
    row = {"path": "x.jpg", "prob_positive": 0.25, "label": "negative", "error": ""}
    with RowWriter(None, "jsonl") as w:
        w.write(row)
    assert [json.loads(line) for line in text.getvalue().splitlines()] == [row]

    class Gone(io.StringIO):  # standard output whose reader has exited
        def write(self, s: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone())
    with pytest.raises(BrokenPipeError):
        RowWriter(None, "csv")  # its header


@pytest.mark.parametrize("name, first", [("o.csv", "path,prob_positive,label,error"),
                                         ("o.jsonl", '{"path": "x.jpg"'),
                                         ("O.JSONL", '{"path": "x.jpg"')])
def test_row_writer_without_a_format_writes_the_one_its_suffix_names(tmp_path, name, first):
    """fmt=None takes the format from the name (output_format): the rows are written in it,
    a .csv with its header, not JSON lines under a .csv name; a suffix in capitals names it
    too (mut57g E66)."""
    out = tmp_path / name
    with RowWriter(out, None) as w:
        assert w.fmt == name.rsplit(".", 1)[1].lower()
        w.write({"path": "x.jpg", "prob_positive": 0.25, "label": "negative", "error": ""})
    assert out.read_text().splitlines()[0].startswith(first)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_go_to_a_pipe_or_a_device(tmp_path, checkpoint, folder, fmt):
    """``--out >(gzip > x.gz)`` or ``/dev/null``: no seek, no fsync (neither exists there),
    the csv header once; the periodic fsync (here after every row) skips them too."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    rows = [{"path": f"{i}.jpg", "prob_positive": 0.5, "label": "positive", "error": ""}
            for i in range(3)]
    with RowWriter(fifo, fmt, fsync_every=0.0) as w:
        for row in rows:
            w.write(row)
    reader.join(timeout=30)
    text = got[0].decode()
    if fmt == "csv":
        assert text.splitlines() == ["path,prob_positive,label,error",
                                     *(f"{i}.jpg,0.5,positive," for i in range(3))]
    else:
        assert [json.loads(x) for x in text.splitlines()] == rows
    assert main(["predict", "--model", str(checkpoint), str(folder), "--out", os.devnull,
                 "--format", fmt, "--device", "cpu", "--no-progress"]) == EXIT_ITEMS_FAILED


def _score_cli(checkpoint, folder, out, *extra):
    return main(["predict", "--model", str(checkpoint), str(folder), "--out", str(out),
                 "--device", "cpu", "--no-progress", "--batch-size", "4", *extra])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_after_a_kill_gives_each_image_once_with_the_same_values(checkpoint, folder,
                                                                        tmp_path, fmt, capsys):
    full = tmp_path / f"full.{fmt}"
    assert _score_cli(checkpoint, folder, full) == EXIT_ITEMS_FAILED  # broken.jpg
    data = full.read_bytes()
    lines = data.splitlines(keepends=True)
    assert len(lines) == 13 + (fmt == "csv")
    # a kill -9 part way: 6 complete rows, the 7th cut in the middle of its line
    cut = tmp_path / f"cut.{fmt}"
    head = b"".join(lines[:6 + (fmt == "csv")])
    cut.write_bytes(head + lines[6 + (fmt == "csv")][:9])
    capsys.readouterr()
    assert _score_cli(checkpoint, folder, cut, "--resume") == EXIT_ITEMS_FAILED
    assert "of 13 rows (6 kept from the earlier run, 7 added now)" in capsys.readouterr().err
    assert cut.read_bytes().startswith(head)  # kept as it was
    rows = _read(cut, fmt)
    assert sorted(r["path"] for r in rows) == sorted(r["path"] for r in _read(full, fmt))
    assert len({r["path"] for r in rows}) == len(rows) == 13  # each image once
    want = _expected(checkpoint, folder)
    for r in rows:
        w = want[r["path"]]
        if w["error"]:
            assert r["error"] == w["error"] and r["prob_positive"] in (None, "")
        else:
            assert float(r["prob_positive"]) == pytest.approx(w["prob_positive"], abs=1e-6)
    # resuming a finished output scores nothing more
    before = cut.read_bytes()
    assert _score_cli(checkpoint, folder, cut, "--resume") == EXIT_ITEMS_FAILED
    assert cut.read_bytes() == before


def test_resume_of_a_killed_process(checkpoint, folder, tmp_path):
    """A real SIGKILL of `vsent predict` part way, then --resume: each image once.

    The paths come from a pipe (``--from-list -``) fed 200 of 400 paths and left open, so the
    kill lands while the process waits for more: part way, whatever the machine's speed.
    """
    many = tmp_path / "many"
    many.mkdir()
    src = sorted(folder.glob("im*.jpg"))[0]
    for i in range(400):
        os.link(src, many / f"c{i:03d}.jpg")
    paths = sorted(many.iterdir())
    out = tmp_path / "k.csv"
    proc = _predict_from_an_open_pipe(checkpoint, out, [str(p) for p in paths[:200]],
                                      batch_size=8, lines=100, stderr=subprocess.DEVNULL)
    proc.kill()
    proc.wait()
    n_before = len(out.read_text().splitlines()) - 1
    assert 100 <= n_before <= 200
    lst = tmp_path / "all.txt"
    lst.write_text("".join(f"{p}\n" for p in paths))
    assert main(["predict", "--model", str(checkpoint), "--from-list", str(lst), "--out",
                 str(out), "--device", "cpu", "--no-progress", "--resume"]) == 0
    rows = _read(out, "csv")
    assert len(rows) == len({r["path"] for r in rows}) == 400
    assert sorted(r["path"] for r in rows) == [str(p) for p in paths]
    want = float(Predictor.from_checkpoint(checkpoint, device="cpu").predict_proba([src])[0, 1])
    assert all(float(r["prob_positive"]) == pytest.approx(want, abs=1e-6) for r in rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_retry_failed_scores_the_failed_images_again(checkpoint, folder, tmp_path, capsys,
                                                     fmt):
    """An image that failed for a passing reason (it had not arrived yet) is scored by
    ``--resume --retry-failed``; the good rows keep their bytes, each image has one row."""
    late = folder / "late.jpg"  # named in the inputs, written only after the first run
    out = tmp_path / f"o.{fmt}"
    args = [str(folder / "im01.jpg"), str(late), str(folder / "broken.jpg"),
            str(folder / "im02.jpg")]
    rc = main(["predict", "--model", str(checkpoint), *args, "--out", str(out), "--device",
               "cpu", "--no-progress"])
    assert rc == EXIT_ITEMS_FAILED
    first = _read(out, fmt)
    assert [bool(r["error"]) for r in first] == [False, True, True, False]
    lines = out.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[:2] + lines[4:]) if fmt == "csv" else lines[0] + lines[3]
    Image.open(folder / "im05.jpg").save(late)  # it arrives
    capsys.readouterr()
    assert main(["predict", "--model", str(checkpoint), *args, "--out", str(out), "--device",
                 "cpu", "--no-progress", "--resume", "--retry-failed"]) == EXIT_ITEMS_FAILED
    err = capsys.readouterr().err
    assert "scored 3 of 4 rows (2 kept from the earlier run, 2 added now), 1 failed" in err
    # trial31 #6: the rows dropped are said (an image no longer in the inputs keeps no row)
    assert err.splitlines()[0] == (f"--retry-failed: 2 error rows dropped from {out}; their "
                                   "images are scored again as the inputs name them")
    rows = _read(out, fmt)
    assert rows[:2] == [first[0], first[3]]  # the good rows, as they were
    assert out.read_bytes().startswith(kept)  # to the byte
    assert sorted(r["path"] for r in rows) == sorted(args)  # each image once
    by_path = {r["path"]: r for r in rows}
    assert not by_path[str(late)]["error"] and by_path[str(late)]["prob_positive"]
    assert by_path[str(folder / "broken.jpg")]["error"]  # still broken: failed again
    with pytest.raises(VsentError, match="--retry-failed goes with --resume"):
        score_stream(iter(()), lambda paths: iter(()), out, retry_failed=True)
    assert main(["predict", "--model", str(checkpoint), *args, "--retry-failed"]) == 2


def test_resume_refuses_rows_of_another_model_or_other_options(checkpoint, folder, tmp_path,
                                                               capsys):
    """The model's bytes and the scoring options are kept beside --out; --resume checks them."""
    import torch

    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    out = tmp_path / "o.csv"
    assert _score_cli(checkpoint, folder, out) == EXIT_ITEMS_FAILED
    record = json.loads((tmp_path / "o.csv.vsent.json").read_text())
    assert record["model"] == str(checkpoint) and record["model_sha256"] == file_sha256(checkpoint)
    assert record["options"] == {"oversample": False, "regions": None}
    before = out.read_bytes()
    capsys.readouterr()
    assert _score_cli(checkpoint, folder, out, "--resume", "--oversample") == 2
    err = capsys.readouterr().err
    assert f"the rows of {out} come from {checkpoint}" in err and "with centre crops" in err
    assert "this run is" in err and "with --oversample" in err
    model = create_model("smallcnn")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    other = save_checkpoint(tmp_path / "other.pt", model)
    assert _score_cli(other, folder, out, "--resume") == 2
    assert f"sha256 {file_sha256(other)[:12]}" in capsys.readouterr().err
    assert _score_cli(tmp_path / "nope.pt", folder, out, "--resume") == 2
    assert out.read_bytes() == before  # refused before anything was written
    # the same bytes under another name are the same model; a finished output stays as it was
    copy = tmp_path / "copy.pt"
    copy.write_bytes(checkpoint.read_bytes())
    assert _score_cli(copy, folder, out, "--resume") == EXIT_ITEMS_FAILED
    assert out.read_bytes() == before
    # an output without a record is resumed with a warning; --overwrite writes a new record
    (tmp_path / "o.csv.vsent.json").unlink()
    assert _score_cli(checkpoint, folder, out, "--resume", "--oversample") == EXIT_ITEMS_FAILED
    assert "o.csv has no o.csv.vsent.json beside it" in capsys.readouterr().err
    # from then on this run's record is kept: a third option set is refused, not warned about
    kept = json.loads((tmp_path / "o.csv.vsent.json").read_text())
    assert kept["options"]["oversample"] and kept["earlier_rows_unchecked"]
    assert _score_cli(checkpoint, folder, out, "--resume") == 2
    assert "with --oversample; this run is" in capsys.readouterr().err
    assert _score_cli(checkpoint, folder, out, "--overwrite", "--oversample") == \
        EXIT_ITEMS_FAILED
    assert json.loads((tmp_path / "o.csv.vsent.json").read_text())["options"]["oversample"]
    (tmp_path / "o.csv.vsent.json").write_text("{oops")
    assert _score_cli(checkpoint, folder, out, "--resume", "--oversample") == 2
    assert "o.csv.vsent.json: not a vsent predict record" in capsys.readouterr().err
    # nothing is kept beside a device
    assert _score_cli(checkpoint, folder, os.devnull) == EXIT_ITEMS_FAILED
    assert not Path(f"{os.devnull}.vsent.json").exists()


def _other_model(tmp_path: Path) -> Path:
    """A checkpoint of other weights (another SHA-256) than the ``checkpoint`` fixture's."""
    import torch

    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    model = create_model("smallcnn")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    return save_checkpoint(tmp_path / "other.pt", model)


def _predict(checkpoint, inputs, out, *extra) -> int:
    return main(["predict", "--model", str(checkpoint), *map(str, inputs), "--out", str(out),
                 "--device", "cpu", "--no-progress", *extra])


def test_a_failed_overwrite_keeps_the_record_of_the_rows_it_did_not_replace(
        checkpoint, folder, tmp_path, capsys, monkeypatch):
    """The record is written once --out is open: an --overwrite that cannot open it (a
    read-only file) leaves the rows and their record, and --resume still matches them (it
    used to record the other model over the old rows)."""
    import vsent.batch

    out, rec = tmp_path / "o.csv", tmp_path / "o.csv.vsent.json"
    assert _predict(checkpoint, [folder / "sub"], out) == 0
    rows, record = out.read_bytes(), rec.read_text()
    other = _other_model(tmp_path)

    class ReadOnly(vsent.batch.RowWriter):
        def __init__(self, out, *args, **kwargs):
            raise VsentError(f"--out {out}: Operation not permitted")  # as RowWriter says it

    with monkeypatch.context() as mp:
        mp.setattr(vsent.batch, "RowWriter", ReadOnly)
        assert _predict(other, [folder / "sub"], out, "--overwrite") == 2
    assert f"--out {out}: Operation not permitted" in capsys.readouterr().err
    assert out.read_bytes() == rows and rec.read_text() == record
    assert _predict(other, [folder / "sub"], out, "--resume") == 2
    assert f"the rows of {out} come from {checkpoint}" in capsys.readouterr().err
    assert _predict(checkpoint, [folder / "sub", folder / "im01.jpg"], out, "--resume") == 0
    assert len(_read(out, "csv")) == 3 and rec.read_text() == record


def test_resume_of_a_file_that_is_not_vsent_output_leaves_nothing_beside_it(
        checkpoint, folder, tmp_path, capsys):
    """The file is checked before any record is kept or warned about: no "has no record"
    warning, no ``labels.csv.vsent.json`` left beside the user's file."""
    labels = tmp_path / "labels.csv"
    labels.write_text("name,label\na.jpg,1\n")
    assert _predict(checkpoint, [folder / "sub"], labels, "--resume") == 2
    assert capsys.readouterr().err == (
        f"vsent: error: --resume: {labels}:1: not a vsent predict csv (header 'name,label', "
        "expected 'path,prob_positive,label,error')\n")
    assert labels.read_text() == "name,label\na.jpg,1\n"
    assert not (tmp_path / "labels.csv.vsent.json").exists()


def test_resume_of_a_csv_cut_inside_a_quoted_name(checkpoint, tmp_path, capsys):
    """A kill that lands just after the newline inside a quoted file name leaves an open
    quote: that row is cut, not complete."""
    imgs = tmp_path / "nl"
    imgs.mkdir()
    for name in ("a.jpg", "two\nlines.jpg", "z.jpg"):
        Image.new("RGB", (20, 20), (200, 30, 30)).save(imgs / name, format="JPEG")
    out = tmp_path / "o.csv"
    assert _score_cli(checkpoint, imgs, out) == 0
    data = out.read_bytes()
    cut_at = data.index(b"two\n") + len(b"two\n")
    out.write_bytes(data[:cut_at])
    done = read_done(out, "csv")
    assert done.rows == sum(b"a.jpg" in x or b"z.jpg" in x for x in data[:cut_at].splitlines())
    assert done.complete_bytes == data.rindex(b"\n", 0, data.index(b'"')) + 1
    assert _score_cli(checkpoint, imgs, out, "--resume") == 0
    rows = _read(out, "csv")
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in imgs.iterdir())


def test_read_done_rejects_a_file_that_is_not_predict_output(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(VsentError, match=r"x.csv:1"):
        read_done(bad, "csv")
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"path": "a"}\nnot json\n{"path": "b"}\n')
    with pytest.raises(VsentError, match=r"x.jsonl:2"):
        read_done(bad, "jsonl")
    # trial31 #8: an output written with --format other than its suffix's, resumed without it
    csv_rows = tmp_path / "csv.jsonl"
    csv_rows.write_text("path,prob_positive,label,error\r\na.jpg,0.5,positive,\r\n")
    with pytest.raises(VsentError, match=r"csv.jsonl:1: holds csv rows, not jsonl: add "
                                         r"--format csv$"):
        read_done(csv_rows, "jsonl")
    mixed = tmp_path / "mixed.jsonl"  # mut51e B19: a header past line 1 is no csv output's
    mixed.write_text('{"path": "a", "error": ""}\npath,prob_positive,label,error\n')
    with pytest.raises(VsentError, match=r"mixed.jsonl:2: not a vsent predict jsonl row$"):
        read_done(mixed, "jsonl")
    jsonl_rows = tmp_path / "jsonl.csv"
    jsonl_rows.write_text('{"path": "a", "prob_positive": 0.5, "label": "positive", '
                          '"error": ""}\n')
    with pytest.raises(VsentError, match=r"jsonl.csv:1: holds jsonl rows, not csv: add "
                                         r"--format jsonl$"):
        read_done(jsonl_rows, "csv")
    # review32 #4: with a double quote in the first name, jsonl read as csv held no complete
    # row: the whole file was cut to nothing by the resume, silently
    jsonl_rows.write_text('{"path": "say \\"cheese.jpg", "prob_positive": 0.5, "label": '
                          '"positive", "error": ""}\n')
    with pytest.raises(VsentError, match=r"jsonl.csv:1: holds jsonl rows, not csv"):
        read_done(jsonl_rows, "csv")
    cut = tmp_path / "cut.csv"  # a header cut by a kill is vsent's: nothing to keep
    cut.write_text("path,prob_pos")
    assert read_done(cut, "csv").complete_bytes == 0
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"path": "a", "error": ""}\n{"path": "b", "error": "x"}\n{"path": "c", "er')
    done = read_done(ok, "jsonl")
    assert (done.rows, done.failed) == (2, 1)
    assert "a" in done and "b" in done and "c" not in done
    assert done.complete_bytes == len(ok.read_bytes()) - len('{"path": "c", "er')


def test_resume_needs_out_and_score_stream_summary(checkpoint, folder, tmp_path, capsys):
    # refused with the other options, before the model loads (a missing one is not reported)
    assert main(["predict", "--model", str(tmp_path / "nope.pt"), str(folder), "--resume",
                 "--device", "cpu"]) == 2
    assert capsys.readouterr().err == ("vsent: error: --resume needs --out (the file to "
                                       "continue)\n")
    assert main(["predict", "--model", str(checkpoint), "--device", "cpu"]) == 2
    assert "nothing to score" in capsys.readouterr().err
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    out = tmp_path / "s.csv"
    s = score_stream(iter_inputs([folder, tmp_path / "nope*"]), pred.score, out)
    assert (s.total, s.failed) == (14, 2)  # broken.jpg and the glob
    assert s.line(out) == f"scored 12 of 14 inputs, 2 failed; rows in {out}"


def test_a_bad_checkpoint_leaves_the_output_untouched(folder, tmp_path, capsys):
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    fake = tmp_path / "fake.pt"
    fake.write_text("nope")
    assert main(["predict", "--model", str(fake), str(folder), "--out", str(out)]) == 2
    assert out.read_text() == "precious\n"


def test_options_that_exclude_each_other_leave_the_output_untouched(folder, tmp_path,
                                                                     checkpoint, capsys):
    """Checked before --out is opened, even with --overwrite (which empties it)."""
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    assert main(["predict", "--model", str(checkpoint), str(folder), "--out", str(out),
                 "--regions", "--oversample", "--overwrite"]) == 2
    assert "--regions scores centre crops: it cannot be combined with --oversample" in \
        capsys.readouterr().err
    assert out.read_text() == "precious\n"


def _read(path: Path, fmt: str) -> list[dict]:
    if fmt == "csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_sigterm_stops_like_ctrl_c_and_keeps_the_rows(checkpoint, folder, tmp_path):
    """`timeout`, `docker stop` and schedulers send SIGTERM: one line, exit 143, the rows
    written so far kept (complete lines), and --resume continues."""
    import signal

    out = tmp_path / "t.csv"
    image = str(folder / "im01.jpg")
    proc = _predict_from_an_open_pipe(checkpoint, out, [image] * 100, batch_size=4, lines=8,
                                      stderr=subprocess.PIPE)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == ("vsent: terminated; what was written is kept: the "
                                            "same command with --resume continues it")
    rows = _read(out, "csv")
    assert 8 <= len(rows) <= 100 and {r["path"] for r in rows} == {image}
    assert all(r["prob_positive"] for r in rows)  # complete rows only
    lst = tmp_path / "all.txt"
    lst.write_text(f"{image}\n")
    assert main(["predict", "--model", str(checkpoint), "--from-list", str(lst), "--out",
                 str(out), "--device", "cpu", "--no-progress", "--resume"]) == 0
    assert _read(out, "csv") == rows  # scored already: kept, nothing added


def _predict_from_an_open_pipe(checkpoint, out, paths, *, batch_size, lines, stderr):
    """`vsent predict --from-list -` fed ``paths`` through a pipe left open, so that the
    process waits for more whatever the machine's speed; returned (running) once ``out``
    holds more than ``lines`` lines."""
    cmd = [sys.executable, "-m", "vsent.cli", "predict", "--model", str(checkpoint),
           "--from-list", "-", "--out", str(out), "--device", "cpu", "--no-progress",
           "--batch-size", str(batch_size), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=stderr, text=True,
                            preexec_fn=default_sigint)  # (a test sends it SIGINT)
    try:
        proc.stdin.write("".join(f"{p}\n" for p in paths))
        proc.stdin.flush()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_bytes().splitlines()) > lines:  # rows written
                break
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        raise
    return proc


def test_out_never_replaces_a_file_the_command_reads(folder, checkpoint, tmp_path, capsys):
    # --overwrite replaces an earlier output, never the model, the list or an input image
    # (predict), nor the checkpoint an export or a card is made of
    model_bytes = checkpoint.read_bytes()
    alias = tmp_path / "alias.pt"
    alias.symlink_to(checkpoint)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'im01.jpg'}\n")
    image = folder / "im01.jpg"
    image_bytes = image.read_bytes()
    cases = [
        (["predict", "--model", str(checkpoint), str(image), "--out", str(alias), "--overwrite"],
         f"--out {alias} is {checkpoint}, which this command reads"),
        (["predict", "--model", str(checkpoint), "--from-list", str(listing), "--out",
          str(listing), "--overwrite"], f"--out {listing} is {listing}, which this command"),
        (["predict", "--model", str(checkpoint), str(folder), "--out", str(image),
          "--overwrite"], f"--out {image}: scores are written as CSV or JSONL, not to an image"),
        (["export", "--model", str(checkpoint), "--format", "torchscript", "--out", str(alias)],
         f"--out {alias} is {checkpoint}, which this command reads"),
        (["card", str(checkpoint), "--out", str(checkpoint)],
         f"--out {checkpoint} is {checkpoint}, which this command reads"),
    ]
    for argv, message in cases:
        assert main([*argv, *(["--no-progress"] if argv[0] == "predict" else [])]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert checkpoint.read_bytes() == model_bytes
    assert listing.read_text() == f"{folder / 'im01.jpg'}\n"
    assert image.read_bytes() == image_bytes
    # a card is written atomically beside the checkpoint otherwise
    assert main(["card", str(checkpoint), "--out", str(tmp_path / "card.md")]) == 0
    assert (tmp_path / "card.md").read_text().startswith("#")


# --------------------------------------------------------------------------------------------
# user errors met midway: one line, exit 2, the rows so far kept


def test_a_nul_byte_in_a_from_list_line_is_one_line_naming_the_list_and_line(folder, tmp_path,
                                                                            checkpoint, capsys,
                                                                            monkeypatch):
    """``find -print0`` output, on standard input or in a file, past the first 4 KiB too."""
    imgs = sorted(folder.glob("im*.jpg"))
    args = ["predict", "--model", str(checkpoint), "--device", "cpu", "--no-progress"]

    class Stdin(io.StringIO):
        name = "<stdin>"  # as sys.stdin's: the message says "-", as the user typed

    monkeypatch.setattr(sys, "stdin", Stdin("".join(f"{p}\0" for p in imgs)))
    assert main([*args, "--from-list", "-"]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --from-list -: line 1 holds a NUL byte: not a text file of paths, one "
        "per line (from find, use -print, not -print0)\n")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"# padding comment line {i}\n" for i in range(200))
                   + f"{imgs[0]}\n{imgs[1]}\0x.jpg\n{imgs[2]}\n")
    assert lst.read_bytes().index(b"\0") > 4096  # past the probe of the file's head
    out = tmp_path / "o.csv"
    assert main([*args, "--from-list", str(lst), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vsent: error: --from-list {lst}: line 202 holds a NUL byte")
    assert "Traceback" not in err and err.count("\n") == 1
    # the image listed before the bad line was read ahead of it: its row is kept
    assert [r["path"] for r in csv.DictReader(out.open())] == [str(imgs[0])]
    with pytest.raises(VsentError, match="line 3 holds a NUL byte"):
        list(iter_inputs(from_list="-", stdin=io.StringIO("a.jpg\n# c\nb\0.jpg\n")))


def test_an_out_in_a_missing_folder_makes_the_folder(folder, tmp_path, checkpoint, capsys):
    """As export, card and compare: the folder of --out is made; one that cannot be (a file
    stands in its way) is one line naming it, exit 2."""
    out = tmp_path / "new" / "deeper" / "scores.csv"
    assert main(["predict", "--model", str(checkpoint), str(folder / "im01.jpg"), "--out",
                 str(out), "--device", "cpu", "--no-progress"]) == 0
    assert [r["path"] for r in csv.DictReader(out.open())] == [str(folder / "im01.jpg")]
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    blocked = tmp_path / "file" / "scores.csv"
    assert main(["predict", "--model", str(checkpoint), str(folder / "im01.jpg"), "--out",
                 str(blocked), "--device", "cpu", "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"vsent: error: --out {blocked}: cannot make its folder "
                                       f"{tmp_path / 'file'}: {tmp_path / 'file'} is a file, "
                                       "not a folder\n")


def test_an_out_that_cannot_be_written_is_one_line(folder, tmp_path, checkpoint, capsys,
                                                   monkeypatch):
    """Disk full (or /dev/full): one line naming --out, exit 2; a regular file keeps its
    rows for --resume."""
    import errno

    if Path("/dev/full").exists():
        assert main(["predict", "--model", str(checkpoint), str(folder / "im01.jpg"), "--out",
                     "/dev/full", "--device", "cpu", "--no-progress"]) == 2
        assert capsys.readouterr().err == ("vsent: error: --out /dev/full: cannot write (No "
                                           "space left on device)\n")

    class Full(io.StringIO):  # a file system that fills up after the first row
        def __init__(self, real):
            super().__init__()
            self.real, self.rows = real, 0

        def write(self, s):
            self.rows += 1
            if self.rows > 2:  # the header, one row
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.real.write(s)

        def flush(self):
            self.real.flush()

        def fileno(self):
            return self.real.fileno()

        def close(self):
            self.real.close()

    out = tmp_path / "o.jsonl"
    w = RowWriter(out, "jsonl")
    w._fh = Full(w._fh)
    row = {"path": "a.jpg", "prob_positive": 0.5, "label": "positive", "error": ""}
    w.write(row)
    w._fh.rows = 2
    with pytest.raises(VsentError) as info:
        w.write({**row, "path": "b.jpg"})
    assert str(info.value) == (f"--out {out}: cannot write (No space left on device); the rows "
                               "written so far are kept: --resume continues")
    w.close()  # releases the file, raises nothing more
    assert [json.loads(x)["path"] for x in out.read_text().splitlines()] == ["a.jpg"]
    # standard output: a full device is one line; a reader that stopped (| head) is left
    # to the command line, which ends quietly
    for error, raised in ((OSError(errno.ENOSPC, "No space left on device"), VsentError),
                          (BrokenPipeError(errno.EPIPE, "Broken pipe"), BrokenPipeError)):
        class Stdout(io.StringIO):
            def write(self, s, error=error):
                raise error

        monkeypatch.setattr(sys, "stdout", Stdout())
        with pytest.raises(raised) as info:
            RowWriter(None, "csv")  # the header already
        if raised is VsentError:
            assert str(info.value) == "standard output: cannot write (No space left on device)"


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_resume_refuses_an_out_that_is_not_a_file(kind, checkpoint, folder, tmp_path, capsys):
    """--resume reads --out back: a folder was a traceback, a pipe or FIFO a wait without
    end (``--out >(gzip > x.gz) --resume``); both are one line, before the model loads."""
    import threading

    out = tmp_path / "out"
    if kind == "folder":
        out.mkdir()
    else:
        os.mkfifo(out)
    rc: list[int] = []
    run = threading.Thread(target=lambda: rc.append(
        _predict(checkpoint, [folder / "sub"], out, "--resume")), daemon=True)
    run.start()
    run.join(timeout=60)
    assert rc == [2], "no one-line refusal (a wait without end, or a traceback)"
    what = "a folder" if kind == "folder" else "a pipe"
    assert capsys.readouterr().err == (f"vsent: error: --out {out}: is {what}, not a file: "
                                       "--resume continues the rows of a file (drop --resume, "
                                       "or write to a file)\n")
    with pytest.raises(VsentError, match=f"is {what}, not a file"):
        score_stream(iter(()), lambda paths: iter(()), out, resume=True)


@pytest.mark.parametrize("failure", ["copy", "truncate"])
def test_an_error_while_resume_prepares_out_is_one_line(failure, checkpoint, folder, tmp_path,
                                                        capsys, monkeypatch):
    """A disk that fills while --retry-failed copies the good rows, or a read-only file
    system when the line cut by a kill is dropped: one line naming --out, exit 2, the
    output as it was and no temporary file left (they were tracebacks)."""
    import errno

    import vsent.batch

    out = tmp_path / "o.csv"
    inputs = [folder / "sub", folder / "broken.jpg"]
    assert _predict(checkpoint, inputs, out) == EXIT_ITEMS_FAILED  # one error row
    out.write_bytes(out.read_bytes() + b"/cut/by/a/ki")  # and a line cut by a kill
    before = out.read_bytes()
    code = errno.ENOSPC if failure == "copy" else errno.EROFS

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if failure == "copy":
        monkeypatch.setattr(vsent.batch, "_copy_good_rows", fail)
    else:
        monkeypatch.setattr(vsent.batch.os, "truncate", fail)
    extra = ["--retry-failed"] if failure == "copy" else []
    capsys.readouterr()
    assert _predict(checkpoint, inputs, out, "--resume", *extra) == 2
    assert capsys.readouterr().err == (f"vsent: error: --out {out}: cannot prepare --resume "
                                       f"({os.strerror(code)}); its rows are kept as they "
                                       "were\n")
    assert out.read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_retry_failed_keeps_the_mode_of_the_output(tmp_path):
    """The rewritten output is a new file: it takes the old one's permissions (a
    group-writable output came back 644)."""
    from vsent.batch import drop_failed_rows

    out = tmp_path / "o.jsonl"
    out.write_text('{"path": "a", "error": ""}\n{"path": "b", "error": "x"}\n')
    os.chmod(out, 0o664)
    assert drop_failed_rows(out, "jsonl") == 1
    assert out.read_text() == '{"path": "a", "error": ""}\n'
    assert out.stat().st_mode & 0o777 == 0o664


def test_an_empty_input_is_a_row_not_the_current_folder(tmp_path, monkeypatch):
    """``Path("")`` is ``.``: the library gives an empty input its error row instead of
    walking the current folder (the command line refuses it)."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "here.png")
    assert list(iter_inputs([""])) == [Unmatched("", "'': an empty path (not the current "
                                                     "folder)")]


def test_the_record_keeps_the_versions_and_resume_warns_when_they_differ(folder, tmp_path,
                                                                         checkpoint, capsys):
    from vsent.provenance import versions

    out = tmp_path / "o.csv"
    assert _score_cli(checkpoint, folder, out) == EXIT_ITEMS_FAILED
    rec_path = tmp_path / "o.csv.vsent.json"
    record = json.loads(rec_path.read_text())
    assert set(record["versions"]) == set(versions())
    record["versions"] = {**record["versions"], "pillow": "9.0.0", "torch_threads": 99}
    rec_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert _score_cli(checkpoint, folder, out, "--resume") == EXIT_ITEMS_FAILED
    warning = [x for x in capsys.readouterr().err.splitlines() if "other versions" in x]
    assert warning == [f"--resume: the rows of {out} were scored with other versions (pillow "
                       f"9.0.0 -> {versions()['pillow']}); the new rows may differ in the last "
                       "digits"]  # one line; the thread count changes no score


@pytest.mark.parametrize("extra, hint", [
    ([], ""),  # standard output: nothing to continue
    (["--out", "{tmp}/o.csv"], ": the same command with --resume continues it"),
    (["--out", "{tmp}/o.csv", "--overwrite"],
     ": the same command with --resume instead of --overwrite continues it"),
    (["--out", os.devnull], None),  # a device keeps nothing to continue (review37b #6)
])
def test_the_interrupt_message_suggests_resume_only_where_it_works(extra, hint, folder,
                                                                   tmp_path, checkpoint,
                                                                   capsys, monkeypatch):
    import vsent.batch

    def interrupted(items, scorer, out, **kwargs):
        if out is not None and Path(out).parent == tmp_path:
            Path(out).write_text("path,prob_positive,label,error\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(vsent.batch, "score_stream", interrupted)
    extra = [a.format(tmp=tmp_path) for a in extra]
    assert main(["predict", "--model", str(checkpoint), str(folder), "--device", "cpu",
                 "--no-progress", *extra]) == 130
    said = "vsent: interrupted" if hint is None else \
        f"vsent: interrupted; what was written is kept{hint}"
    assert capsys.readouterr().err == said + "\n"


def test_a_second_run_on_the_same_out_is_refused_while_the_first_writes(checkpoint, folder,
                                                                        tmp_path, capsys):
    """batch27 #2: two runs on one --out (cron starting the job again, a requeued job) read
    rows that the other was still writing and wrote them twice. A run holds an exclusive lock
    beside --out (here the test holds it): a second run, with --resume or --overwrite, is one
    line naming the holder's pid, and leaves the output as it was."""
    import fcntl

    out = tmp_path / "cc.csv"
    assert _score_cli(checkpoint, folder, out) == EXIT_ITEMS_FAILED
    before = out.read_bytes(), Path(f"{out}.vsent.json").read_bytes()
    lock = Path(f"{out}.vsent.lock")
    assert not lock.exists()  # removed when the run ended
    capsys.readouterr()
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        for extra in ("--resume", "--overwrite"):
            assert _score_cli(checkpoint, folder, out, extra) == 2
            assert capsys.readouterr().err == (
                f"vsent: error: another vsent predict (pid 4242) is writing {out}; wait for "
                "it or stop it\n")
            assert (out.read_bytes(), Path(f"{out}.vsent.json").read_bytes()) == before
        assert lock.exists()  # the holder's
    # the holder gone (a kill -9 leaves its file, not its lock): the next run goes on
    assert _score_cli(checkpoint, folder, out, "--resume") == EXIT_ITEMS_FAILED
    assert out.read_bytes() == before[0] and not lock.exists()


def test_out_dev_stdout_writes_the_rows_to_standard_output(checkpoint, folder, tmp_path,
                                                           capsys):
    """batch27 #5: ``--out /dev/fd/1`` (or /dev/stdout) with standard output sent to a file
    wrote the header, then failed on a record beside /dev/fd/1. No record or lock is kept for
    a path under /dev or /proc, and --resume of one is refused in one line."""
    got = tmp_path / "ds.csv"
    with got.open("wb") as stdout:
        proc = subprocess.run(
            [sys.executable, "-m", "vsent.cli", "predict", "--model", str(checkpoint),
             str(folder / "sub"), "--out", "/dev/fd/1", "--device", "cpu", "--no-progress"],
            stdout=stdout, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    rows = _read(got, "csv")
    assert len(rows) == 2 and all(r["prob_positive"] for r in rows)
    assert main(["predict", "--model", str(checkpoint), str(folder / "sub"), "--out",
                 "/dev/stdout", "--resume", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --out /dev/stdout: names a file of this process (/dev, /proc), not a "
        "file: --resume continues the rows of a file (drop --resume, or write to a file)\n")


@pytest.mark.parametrize("line", ['{"path": null, "prob_positive": 0.5, "error": ""}',
                                  '{"path": 7, "error": ""}', '{"path": "a", "error": 1}'])
def test_resume_of_a_jsonl_row_without_a_path_string_is_one_line(line, tmp_path):
    """batch27 #7: a null path was a traceback (AttributeError), not the file's error."""
    bad = tmp_path / "n.jsonl"
    bad.write_text('{"path": "ok.jpg", "error": ""}\n' + line + "\n")
    with pytest.raises(VsentError, match=r"n.jsonl:2: not a vsent predict jsonl row"):
        read_done(bad, "jsonl")


def test_the_output_lock_follows_links_survives_no_flock_and_lets_a_group_resume(
        tmp_path, monkeypatch, caplog):
    """review27b: a link to the output took a lock of its own (two runs wrote the file); a
    file system without flock refused every run ("pid ?"); the lock file was 0644, so another
    member of a group sharing the folder could not resume after a kill."""
    import errno
    import fcntl

    from vsent import batch

    out = tmp_path / "o.csv"
    out.write_text("")
    link = tmp_path / "link.csv"
    link.symlink_to(out)
    with batch.output_lock(out):
        lock = Path(f"{out}.vsent.lock")
        assert lock.read_text().strip().startswith(f"{os.getpid()}@")
        assert lock.stat().st_mode & 0o777 == 0o666 & ~_umask()
        with pytest.raises(VsentError, match=f"is writing {link}"), batch.output_lock(link):
            pass
    assert not lock.exists()

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="vsent"), batch.output_lock(out):
        pass  # runs, unlocked, and says so
    assert "cannot lock o.csv.vsent.lock (No locks available)" in caplog.text
    assert not lock.exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_only_this_processs_files_under_dev_and_proc_are_not_outputs(tmp_path):
    """review27b: anything under /dev counted as this process's (an output in /dev/shm got no
    record, no lock and no --resume); /dev/stdout & co. are standard output itself."""
    from vsent.batch import STDOUT_NAMES, _process_path

    assert all(_process_path(p) for p in (*STDOUT_NAMES, "/dev/null", "/dev/fd/3", "/proc/1/x"))
    # mut57g E98: a descriptor that is not open (no link to follow) is one of the process's too
    assert _process_path("/dev/fd/987654")
    assert not _process_path(tmp_path / "a.csv")
    if Path("/dev/shm").is_dir():
        assert not _process_path("/dev/shm/vsent-scores.csv")


def test_dev_stdout_shares_standard_outputs_position(checkpoint, folder, tmp_path):
    """review27b: `--out /dev/stdout > log 2>&1` opened the file behind standard output again,
    with its own position: the summary on stderr wrote over the header and the first row."""
    log = tmp_path / "log.txt"
    with log.open("wb") as both:
        proc = subprocess.run(
            [sys.executable, "-m", "vsent.cli", "predict", "--model", str(checkpoint),
             str(folder / "sub"), "--out", "/dev/stdout", "--device", "cpu", "--no-progress"],
            stdout=both, stderr=both, timeout=300)
    assert proc.returncode == 0
    text = log.read_text()
    assert "path,prob_positive,label,error" in text and text.count(".jpg,") == 2, text
    # walk36 #6: `>> log` (a file with rows in it) is the shell's choice: appended to, not
    # refused as an output that exists (which --resume, refused for /dev/stdout, would continue)
    with log.open("ab") as both:
        proc = subprocess.run(
            [sys.executable, "-m", "vsent.cli", "predict", "--model", str(checkpoint),
             str(folder / "sub"), "--out", "/dev/stdout", "--device", "cpu", "--no-progress"],
            stdout=both, stderr=both, timeout=300)
    assert proc.returncode == 0, log.read_text()
    again = log.read_text()
    assert again.startswith(text) and again.count(".jpg,") == 4, again
    # but /dev/fd/3 is opened again, which empties the file behind it even after `3>> log`
    # (review36 #1): a file with rows is refused as before, kept as it is
    with log.open("ab") as three:
        proc = subprocess.run(
            [sys.executable, "-m", "vsent.cli", "predict", "--model", str(checkpoint),
             str(folder / "sub"), "--out", f"/dev/fd/{three.fileno()}", "--device", "cpu",
             "--no-progress"], pass_fds=(three.fileno(),), stderr=subprocess.PIPE,
            timeout=300)
    assert proc.returncode == 2 and b"exists: --resume continues it" in proc.stderr
    assert log.read_text() == again


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_while_waiting_on_standard_input_exits_as_documented(checkpoint, folder,
                                                                    tmp_path, sig):
    """trial31 #2: stopped once every line sent is scored, while the list on standard input
    is still open (a watcher that sends new uploads), the process ended in "Fatal Python
    error: _enter_buffered_busy" and SIGABRT (134): the thread blocked reading sys.stdin's
    buffer held its lock while the interpreter shut down. Exit 130 / 143 and vsent's line."""
    import signal

    out = tmp_path / "w.csv"
    image = str(folder / "im01.jpg")
    proc = _predict_from_an_open_pipe(checkpoint, out, [image] * 3, batch_size=1, lines=3,
                                      stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # (all read: the reader waits for a fourth line)
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=60)  # (not communicate(): it would close the list, an end of input)
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
    assert "Fatal Python error" not in err, err[-2000:]
    assert proc.returncode == 128 + getattr(signal, sig), err[-2000:]
    word = "interrupted" if sig == "SIGINT" else "terminated"
    assert err.strip().splitlines()[-1].startswith(f"vsent: {word}; what was written is kept")
    assert len(_read(out, "csv")) == 3


def test_a_resumed_run_ends_as_a_run_never_stopped_with_a_path_listed_twice(
        checkpoint, folder, tmp_path, capsys):
    """trial31 #5: a resume skipped every occurrence of a path the output held, so a list
    naming an image twice gave 4 rows when run whole and 3 when stopped after two (and a
    count of 3 inputs for a list of 4)."""
    im = [str(folder / f"im0{i}.jpg") for i in (1, 2, 5)]
    listed = [im[0], im[1], im[0], im[2]]
    whole, cut = tmp_path / "whole.csv", tmp_path / "cut.csv"
    assert _predict(checkpoint, listed, whole) == 0
    assert _predict(checkpoint, listed[:2], cut) == 0  # stopped after two rows
    capsys.readouterr()
    assert _predict(checkpoint, listed, cut, "--resume") == 0
    assert "scored 4 of 4 rows (2 kept from the earlier run, 2 added now), 0 failed" in \
        capsys.readouterr().err
    assert cut.read_bytes() == whole.read_bytes()
    assert _predict(checkpoint, listed, cut, "--resume") == 0  # finished: nothing added
    assert cut.read_bytes() == whole.read_bytes()


def test_a_closed_standard_input_is_one_line_after_the_rows_before_it(checkpoint, folder,
                                                                       tmp_path):
    """``--from-list -`` with descriptor 0 closed (a job started with ``0<&-``): the rows of
    the paths given before the list are written, then one line (no traceback), exit 2."""
    out = tmp_path / "c.csv"
    cmd = (f"exec {shlex.quote(sys.executable)} -m vsent.cli predict --model "
           f"{shlex.quote(str(checkpoint))} {shlex.quote(str(folder / 'im01.jpg'))} "
           f"--from-list - --out {shlex.quote(str(out))} --device cpu --no-progress 0<&-")
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == ("vsent: error: --from-list -: standard "
                                                    "input is closed")
    assert [r["path"] for r in _read(out, "csv")] == [str(folder / "im01.jpg")]


def test_one_path_where_a_list_is_expected_is_refused_not_taken_a_letter_at_a_time(tmp_path):
    """api37 #1: explain(ckpt, "a.jpg", out) took "a", ".", "j", ... as inputs and walked "."
    and "/" (maps of every image on the disk); ensemble/compare_many read "r" as a run;
    zero_shot_model(positive="a joyful photo") made 14 one-letter prompts."""
    from vsent.analyses.compare import compare_many
    from vsent.analyses.ensemble import ensemble
    from vsent.analyses.explain import explain, explain_images
    from vsent.inputs import iter_inputs
    from vsent.models import create_model
    from vsent.zeroshot import zero_shot_model

    calls = [
        (lambda: explain(tmp_path / "m.pt", "a.jpg", tmp_path / "cam"),
         "explain takes a list of images, got one string 'a.jpg': pass \\['a.jpg'\\]"),
        (lambda: explain_images(create_model("smallcnn"), tmp_path / "a.jpg", tmp_path / "cam"),
         "explain_images takes a list of images, got one path '/.*/a.jpg': pass \\['"),
        (lambda: iter_inputs("ab"), "iter_inputs takes a list of files, folders or globs"),
        (lambda: ensemble("runs/q", tmp_path / "ens"),
         "ensemble takes a list of crossval run folders, got one string 'runs/q'"),
        (lambda: compare_many("runs/q", "runs/r"), "compare_many takes a list of crossval run"),
        (lambda: zero_shot_model("ViT-B-32", "random", positive="a joyful photo"),
         r"zero_shot_model\(positive=...\) takes a list of prompts, got one string "
         r"'a joyful photo'"),
    ]
    for call, message in calls:
        with pytest.raises(TypeError, match=message):
            call()
    assert not (tmp_path / "cam").exists() and not (tmp_path / "ens").exists()
    # image bytes are named by their length, not printed (review37 #6: a 9.6 kB line)
    with pytest.raises(TypeError, match=r"^explain takes a list of images, got one bytes "
                                        r"object of 20000 bytes: pass \[data\]$"):
        explain(tmp_path / "m.pt", b"\xff" * 20000, tmp_path / "cam")


def test_an_output_in_a_new_folder_of_dev_shm_gets_its_folder(tmp_path):
    """code43 #20: the folder of --out is made unless --out is this process's (/dev/fd/N,
    a device): any path under /dev/ was skipped, so /dev/shm/<new>/rows.csv (a file in a
    memory file system) failed."""
    import shutil
    import uuid

    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        pytest.skip("no writable /dev/shm here")

    def scorer(paths):
        for p in paths:
            yield {"path": str(p), "prob_positive": 0.5, "label": "positive", "error": ""}

    folder = Path("/dev/shm") / f"vsent-test-{uuid.uuid4().hex}"
    try:
        out = folder / "sub" / "rows.csv"
        assert score_stream([Path("a.jpg")], scorer, out).total == 1
        assert out.read_text().splitlines()[1].startswith("a.jpg,0.5")
        # mut54e B73: a file there, once it exists, is a file: --resume continues it
        s = score_stream([Path("a.jpg"), Path("b.jpg")], scorer, out, resume=True)
        assert (s.total, s.resumed) == (2, 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# standard streams, list reading, linked outputs


def test_a_list_that_fails_to_read_part_way_is_one_line_after_the_rows_before_it(
        folder, checkpoint, tmp_path, capsys, monkeypatch):
    """review44c #1: an I/O error while reading --from-list (a stale NFS handle, EIO from a
    terminal that went away) ended in a traceback, exit 1; it is one line naming the list and
    the line after which it failed, exit 2, and the rows of the lines before it are kept."""
    import errno

    imgs = sorted(folder.glob("im*.jpg"))[:2]

    class Flaky(io.StringIO):
        name = "<stdin>"

        def __init__(self):
            super().__init__("".join(f"{p}\n" for p in imgs) + "never.jpg\n")
            self.read_lines = 0

        def __next__(self):
            if self.read_lines == len(imgs):
                raise OSError(errno.EIO, "Input/output error")
            self.read_lines += 1
            return super().__next__()

    monkeypatch.setattr(sys, "stdin", Flaky())
    out = tmp_path / "o.csv"
    assert main(["predict", "--model", str(checkpoint), "--from-list", "-", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == ("vsent: error: --from-list -: cannot read past line 2 (input/output "
                   "error); the rows written so far are kept\n"), err
    assert [r["path"] for r in _read(out, "csv")] == [str(p) for p in imgs]


def test_a_closed_standard_output_is_one_line(folder, checkpoint, capsys, monkeypatch):
    """review44c #2: rows for standard output with descriptor 1 closed (``>&-``, a daemon)
    were a TypeError/AttributeError traceback, exit 1 (csv: at the header, jsonl: after the
    first batch had been scored); now one line, exit 2."""
    for fmt in ("csv", "jsonl"):
        monkeypatch.setattr(sys, "stdout", None)
        code = main(["predict", "--model", str(checkpoint), str(folder / "im01.jpg"),
                     "--format", fmt, "--device", "cpu", "--no-progress"])
        monkeypatch.undo()
        err = capsys.readouterr().err
        assert code == 2, err
        assert err == ("vsent: error: standard output is closed: give --out FILE for the "
                       "rows\n"), err


def test_a_closed_standard_error_neither_stops_the_run_nor_goes_into_the_rows(
        folder, checkpoint, capsys, monkeypatch):
    """review44c #3: with descriptor 2 closed (``2>&-``, a daemon) the progress check raised
    AttributeError before anything was scored (exit 1, and no traceback could be shown), and
    with --no-progress ``print(..., file=sys.stderr)`` (None) wrote the summary line into the
    rows on standard output."""
    for extra in ([], ["--no-progress"]):
        monkeypatch.setattr(sys, "stderr", None)
        code = main(["predict", "--model", str(checkpoint), str(folder / "im01.jpg"),
                     str(folder / "broken.jpg"), "--device", "cpu", *extra])
        monkeypatch.undo()
        assert code == EXIT_ITEMS_FAILED
        rows = capsys.readouterr().out.splitlines()
        assert rows[0] == "path,prob_positive,label,error"
        assert len(rows) == 3 and not any(r.startswith("scored") for r in rows), rows


def test_retry_failed_keeps_an_output_reached_through_a_link_a_link(tmp_path):
    """review44c #4: --retry-failed replaced --out by a new file; when --out was a symbolic
    link (to a bigger disk, a shared folder), the link became a plain file beside it and the
    file it named kept the error rows: the next reader of that file saw the old rows."""
    target_dir = tmp_path / "disk"
    target_dir.mkdir()
    real = target_dir / "scores.csv"
    link = tmp_path / "scores.csv"
    link.symlink_to(real)

    def scorer(paths):
        for p in paths:
            bad = str(p).startswith("bad")
            yield {"path": str(p), "prob_positive": None if bad else 0.5,
                   "label": None if bad else "positive", "error": f"{p}: nope" if bad else ""}

    assert score_stream(["a.jpg", "bad.jpg"], scorer, link).failed == 1
    good = lambda paths: ({"path": str(p), "prob_positive": 0.5, "label": "positive",  # noqa: E731
                           "error": ""} for p in paths)
    summary = score_stream(["a.jpg", "bad.jpg"], good, link, resume=True, retry_failed=True)
    assert (summary.total, summary.failed) == (2, 0)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert [r["error"] for r in _read(real, "csv")] == ["", ""]


def test_a_utf16_list_is_told_as_utf16_not_as_find_print0(tmp_path, folder, checkpoint, capsys):
    """review44c #5: a list saved as UTF-16 (Windows PowerShell's ``>``, Notepad's "Unicode")
    was refused with "from find, use -print, not -print0", which does not apply."""
    lst = tmp_path / "list.txt"
    lst.write_bytes(f"{folder / 'im01.jpg'}\r\n".encode("utf-16"))
    assert main(["predict", "--model", str(checkpoint), "--from-list", str(lst), "--device",
                 "cpu", "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"vsent: error: --from-list {lst}: UTF-16 text (its byte-order mark): save it as "
        "UTF-8, one path per line\n")


def test_a_utf16_list_on_standard_input_is_told_as_utf16_too(tmp_path):
    """review44d: the UTF-16 check looked at a list file's head only; the same list piped in
    (``--from-list -``, whose head is not peeked at) still got find's -print0 hint."""
    data = "a.jpg\r\nb.jpg\r\n".encode("utf-16")
    lst = tmp_path / "list.txt"
    lst.write_bytes(data)
    code = ("import sys\nfrom vsent.errors import VsentError\nfrom vsent.inputs import "
            "iter_inputs\ntry:\n    list(iter_inputs(from_list='-'))\nexcept VsentError as e:\n"
            "    print(e)\n")
    with lst.open("rb") as stdin:
        proc = subprocess.run([sys.executable, "-c", code], stdin=stdin, capture_output=True,
                              text=True, timeout=120, check=True)
    assert proc.stdout == ("--from-list -: UTF-16 text (its byte-order mark): save it as UTF-8, "
                           "one path per line\n"), proc.stdout + proc.stderr


# mutation round 45 (mut45c): vsent.batch mutants the suite missed


def _fake_scorer(paths):
    """An engine without a model: every path scores 0.5, ``bad*`` paths fail."""
    for p in paths:
        if str(p).startswith("bad"):
            yield {"path": str(p), "prob_positive": None, "label": None,
                   "error": f"{p}: cannot decode image"}
        else:
            yield {"path": str(p), "prob_positive": 0.5, "label": "positive", "error": ""}


def test_an_unknown_output_format_is_refused_before_out_is_opened(tmp_path):
    """mut45c B02: --format other than csv or jsonl is one line (it wrote jsonl rows under
    any other name), and no file is made."""
    out = tmp_path / "rows.csv"
    with pytest.raises(VsentError, match=r"^--format 'xml': use csv or jsonl$"):
        score_stream([Path("a.jpg")], _fake_scorer, out, fmt="xml")
    with pytest.raises(VsentError, match=r"^--format 'xml'"):
        RowWriter(out, "xml")
    assert not out.exists()


def test_resume_of_an_out_not_written_yet_scores_everything(tmp_path):
    """mut45c B17, B53: --resume on an --out that does not exist yet (the first run of a job
    that is always started with --resume) is a fresh run, not an error; with no rows to
    continue there is nothing unchecked to warn of, and the record is kept as it is."""
    from vsent.batch import record_path

    out = tmp_path / "rows.jsonl"
    warnings: list[str] = []
    record = {"model": "m.pt", "model_sha256": "ab", "options": {}, "versions": {}}
    s = score_stream([Path("a.jpg"), Path("bad.jpg")], _fake_scorer, out, resume=True,
                     record=record, warn=warnings.append)
    assert (s.total, s.failed, s.resumed) == (2, 1, 0)
    assert [json.loads(x)["path"] for x in out.read_text().splitlines()] == ["a.jpg", "bad.jpg"]
    assert warnings == [] and json.loads(record_path(out).read_text()) == record


@pytest.mark.parametrize(("rows", "line", "found"), [
    ("a.jpg,0.5,positive,\r\nb.jpg,0.5\r\n", 3, 2),
    ("a.jpg,0.5,positive,,extra\r\n", 2, 5),
])
def test_a_csv_row_of_another_width_is_refused_naming_its_line(tmp_path, rows, line, found):
    """mut45c B19, mut48e B12: a csv row with fewer fields than vsent writes, or more (a
    column added by hand, a row of another tool's), is no row of vsent's: refused naming its
    line, before --resume appends to the file."""
    bad = tmp_path / "rows.csv"
    bad.write_text("path,prob_positive,label,error\r\n" + rows)
    with pytest.raises(VsentError, match=rf"^--resume: .*rows\.csv:{line}: expected 4 fields, "
                                         rf"found {found}$"):
        read_done(bad, "csv")


def test_blank_lines_of_a_jsonl_output_are_no_rows(tmp_path):
    """mut45c B21: blank lines in a jsonl output (an editor's, a concatenation's) are skipped,
    as --retry-failed's copy skips them, not refused as rows."""
    out = tmp_path / "rows.jsonl"
    out.write_text('{"path": "a", "error": ""}\n\n{"path": "b", "error": "x"}\n  \n')
    done = read_done(out, "jsonl")
    assert (done.rows, done.failed) == (2, 1) and "a" in done and "b" in done
    from vsent.batch import drop_failed_rows  # mut51e B27: nor do they stop the copy

    assert drop_failed_rows(out, "jsonl") == 1
    assert out.read_text() == '{"path": "a", "error": ""}\n\n  \n'


def test_done_knows_each_of_many_paths_and_no_other(tmp_path):
    """mut45c B14, B24: Done answers ``path in done`` for every row's path of a larger output
    (its keys sorted for the binary search), and not for paths it has no row of."""
    out = tmp_path / "rows.jsonl"
    out.write_text("".join(json.dumps({"path": f"p{i}.jpg", "error": ""}) + "\n"
                           for i in range(200)))
    done = read_done(out, "jsonl")
    assert all(f"p{i}.jpg" in done for i in range(200))
    assert not any(f"q{i}.jpg" in done for i in range(200))
    # mut57g E72: an output with no row (or none yet) holds no path, and says so
    assert "p0.jpg" not in read_done(tmp_path / "absent.jsonl", "jsonl")


def test_a_csv_whose_first_line_is_part_of_the_header_is_not_vsents(tmp_path):
    """mut45c B25: only a header cut by a kill (no newline yet) may be a part of vsent's: a
    complete first line "path,prob_positive" is another program's csv, named as such."""
    other = tmp_path / "other.csv"
    other.write_text("path,prob_positive\r\na.jpg,0.5\r\n")
    with pytest.raises(VsentError, match=r"other\.csv:1: not a vsent predict csv \(header "
                                         r"'path,prob_positive', expected"):
        read_done(other, "csv")


def test_any_spelling_of_dev_stdout_is_standard_output():
    """mut45c B35: --out /dev//stdout or /dev/fd/../stdout name standard output too (written
    as standard output, not opened again at a position of its own)."""
    from vsent.batch import names_stdout

    assert names_stdout("/dev//stdout") and names_stdout("/dev/fd/../stdout")
    assert names_stdout("/proc/self/fd/1") and not names_stdout("/dev/stderr")


def test_pipes_and_descriptors_are_neither_locked_nor_recorded(tmp_path):
    """mut45c B36, B38: /dev/fd/N is a file of this process whether N is open or not, and a
    FIFO is written as a pipe: no lock beside them, so two runs may feed one pipe (no run can
    resume a pipe, so none is kept off it)."""
    from vsent.batch import _process_path, output_lock

    assert _process_path("/dev/fd/97") and _process_path("/dev/fd/1")
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    with output_lock(fifo), output_lock(fifo):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.fifo"]


def test_a_record_that_cannot_be_replaced_is_removed(tmp_path, monkeypatch):
    """mut45c B41: when the new record cannot be written, the one kept from before no longer
    describes --out (opened for this run): it is removed, so no later --resume trusts it."""
    import errno

    import vsent.batch
    from vsent.batch import record_path, write_record

    out = tmp_path / "rows.csv"
    write_record(out, {"model_sha256": "old"})
    assert record_path(out).is_file()

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vsent.batch, "atomic_write_text", full)
    with pytest.raises(VsentError, match=r"cannot write rows\.csv\.vsent\.json beside it: No "
                                         r"space left on device$"):
        write_record(out, {"model_sha256": "new"})
    assert not record_path(out).exists()


def test_a_record_kept_without_versions_resumes_without_a_warning(tmp_path):
    """mut45c B43: a record written before vsent kept the versions has none to compare: the
    resume is checked for its model and options, and no "other versions" line is made up
    from missing ones."""
    from vsent.batch import record_for, write_record

    out = tmp_path / "rows.csv"
    write_record(out, {"model": "m.pt", "model_sha256": "ab", "options": {"oversample": False}})
    now = {"model": "m.pt", "model_sha256": "ab", "options": {"oversample": False},
           "vsent": "1", "versions": {"torch": "2.5", "pillow": "11"}}
    assert record_for(out, now, has_rows=True) == (None, None)
    write_record(out, {**now, "versions": {"torch": "2.4", "pillow": "11"}})
    _, warning = record_for(out, now, has_rows=True)
    assert "other versions (torch 2.4 -> 2.5)" in warning
    write_record(out, {**now, "versions": ["torch 2.4"]})  # mut54e B78: none to compare either
    assert record_for(out, now, has_rows=True) == (None, None)


def test_rows_to_a_descriptor_of_a_regular_file_keep_no_record_beside_it(tmp_path):
    """mut45c B52: --out /dev/fd/N with N a regular file (``3> rows.csv``) names a file of
    this process: no record is written beside that name (it cannot be, in /dev/fd), and the
    rows go to the file."""
    target = tmp_path / "rows.csv"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        s = score_stream([Path("a.jpg")], _fake_scorer, f"/dev/fd/{fd}",
                         record={"model": "m.pt", "model_sha256": "ab", "options": {},
                                 "versions": {}})
    finally:
        os.close(fd)
    assert s.total == 1
    assert target.read_text().splitlines() == ["path,prob_positive,label,error",
                                               "a.jpg,0.5,positive,"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_rows_to_a_fifo_keep_no_record_beside_it(tmp_path):
    """mut45c B56: a record describes a file a later --resume continues; rows sent down a
    named pipe cannot be resumed, so no record is left beside the pipe."""
    import threading

    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    try:
        score_stream([Path("a.jpg")], _fake_scorer, fifo,
                     record={"model": "m.pt", "model_sha256": "ab", "options": {},
                             "versions": {}})
    finally:
        reader.join(30)
    assert [g.splitlines() for g in got] == [["path,prob_positive,label,error",
                                              "a.jpg,0.5,positive,"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.fifo"]


def test_rows_are_fsynced_every_fsync_every_seconds(tmp_path, monkeypatch):
    """mut45c B08: besides the flush of each row, a regular --out is fsync'ed once
    ``fsync_every`` seconds have passed (here 0: at every row), and on close."""
    import vsent.batch

    synced: list[int] = []
    monkeypatch.setattr(vsent.batch.os, "fsync", synced.append)
    row = {"path": "a.jpg", "prob_positive": 0.5, "label": "positive", "error": ""}
    w = RowWriter(tmp_path / "now.csv", "csv", fsync_every=0.0)
    w.write(row)
    w.write(row)
    assert len(synced) == 2
    w.close()
    assert len(synced) == 3
    w = RowWriter(tmp_path / "later.csv", "csv", fsync_every=3600.0)
    w.write(row)
    assert len(synced) == 3  # not yet: an hour between syncs
    w.close()
    assert len(synced) == 4


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_closing_a_writer_whose_write_failed_raises_nothing_more():
    """mut45c B09: after a write that failed (disk full), close() releases the file without
    flushing again: the failed row's bytes still in the buffer would fail a second time and
    hide the first error behind a second one."""
    w = RowWriter("/dev/full", "jsonl")
    with pytest.raises(VsentError, match="^--out /dev/full: cannot write"):
        w.write({"path": "a.jpg", "prob_positive": 0.5, "label": "positive", "error": ""})
    w.close()


def test_a_writer_closed_twice_raises_nothing(tmp_path):
    """mut45c B11: close() is idempotent (an explicit close inside a with block, then its
    exit): the second one does nothing."""
    out = tmp_path / "rows.csv"
    with RowWriter(out, "csv") as w:
        w.write({"path": "a.jpg", "prob_positive": 0.5, "label": "positive", "error": ""})
        w.close()
    w.close()
    assert out.read_text().splitlines()[1:] == ["a.jpg,0.5,positive,"]


# mutation round 48 (mut48e): vsent.batch mutants the suite missed


def test_retry_failed_of_one_error_row_says_row_not_rows(tmp_path):
    """mut48e B48: one error row dropped is "1 error row", and the summary counts it once."""
    out = tmp_path / "rows.jsonl"
    score_stream([Path("a.jpg"), Path("bad.jpg")], _fake_scorer, out)
    warnings: list[str] = []
    s = score_stream([Path("a.jpg"), Path("bad.jpg")], _fake_scorer, out, resume=True,
                     retry_failed=True, warn=warnings.append)
    assert warnings == [f"--retry-failed: 1 error row dropped from {out}; their images are "
                        "scored again as the inputs name them"]
    assert (s.total, s.failed, s.resumed) == (2, 1, 1)
    # mut54e B81: one row kept is said as any other number
    assert s.line() == "scored 1 of 2 rows (1 kept from the earlier run, 1 added now), 1 failed"


def test_resume_of_an_out_under_a_file_says_its_folder_cannot_be_made(tmp_path):
    """mut48e B25: --resume of an --out whose "folder" is a file is an --out not written yet
    (nothing to continue): the error is the one of any run, its folder that cannot be made."""
    (tmp_path / "notes.txt").write_text("a file")
    out = tmp_path / "notes.txt" / "rows.csv"
    with pytest.raises(VsentError, match=rf"^--out {out}: cannot make its folder "
                                         rf"{out.parent}: "):
        score_stream([Path("a.jpg")], _fake_scorer, out, resume=True)
    assert (tmp_path / "notes.txt").read_text() == "a file"


def test_a_plain_resume_keeps_the_error_rows_without_a_word(tmp_path):
    """mut48e B46: --resume without --retry-failed keeps the error rows (their images are not
    scored again) and says nothing of rows dropped."""
    out = tmp_path / "rows.jsonl"
    score_stream([Path("a.jpg"), Path("bad.jpg")], _fake_scorer, out)
    before = out.read_bytes()
    warnings: list[str] = []
    s = score_stream([Path("a.jpg"), Path("bad.jpg"), Path("c.jpg")], _fake_scorer, out,
                     resume=True, warn=warnings.append)
    assert warnings == []
    assert (s.total, s.failed, s.resumed) == (3, 1, 2)
    assert out.read_bytes().startswith(before)
    assert [json.loads(x)["path"] for x in out.read_text().splitlines()] == [
        "a.jpg", "bad.jpg", "c.jpg"]


# mutation round 51 (mut51e): vsent.batch mutants the suite missed


def test_a_jsonl_line_cut_after_a_whole_read_chunk_keeps_the_rows_before_it(tmp_path):
    """mut51e B15: the last complete row's newline may be the first byte of the 64 KiB
    block read from the end (a kill in a line of 64 KiB): found there, not skipped for an
    earlier newline (which cut a complete row, scored again on resume)."""
    out = tmp_path / "rows.jsonl"
    rows = '{"path": "a.jpg", "error": ""}\n{"path": "b.jpg", "error": ""}\n'
    out.write_text(rows + "x" * 65535)  # the last 65536 bytes begin with b.jpg's newline
    done = read_done(out, "jsonl")
    assert (done.rows, done.complete_bytes) == (2, len(rows)) and "b.jpg" in done


def test_the_next_fsync_waits_fsync_every_seconds_after_the_last_one(tmp_path, monkeypatch):
    """mut51e B04, B05: the clock restarts at each fsync (not only at the open: every row
    after the first period was fsync'ed), and a sync is due only once more than
    ``fsync_every`` seconds have passed."""
    from types import SimpleNamespace

    import vsent.batch

    now = [100.0]
    synced: list[int] = []
    monkeypatch.setattr(vsent.batch, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(vsent.batch.os, "fsync", synced.append)
    row = {"path": "a.jpg", "prob_positive": 0.5, "label": "positive", "error": ""}
    w = RowWriter(tmp_path / "rows.csv", "csv", fsync_every=5.0)
    counts = []
    for t in (105.0, 106.0, 108.0, 111.5):  # 5 s (not more), 6 s, 2 s after it, 5.5 s
        now[0] = t
        w.write(row)
        counts.append(len(synced))
    assert counts == [0, 1, 1, 2]
    w.close()
    assert len(synced) == 3


def test_done_tells_apart_names_that_differ_only_in_bytes_that_are_not_utf8(tmp_path):
    """mut51e B10: a path's key hashes its own bytes (surrogateescape): two names that differ
    only in bytes that are not UTF-8 (Latin-1 names) are two images, not one already scored
    ("replace" made both "im?.jpg", and --resume skipped the second)."""
    out = tmp_path / "rows.jsonl"
    out.write_text(json.dumps({"path": "im\udcff.jpg", "error": ""}) + "\n")
    done = read_done(out, "jsonl")
    assert "im\udcff.jpg" in done and "im\udcfe.jpg" not in done and "im?.jpg" not in done


# mutation round 54 (mut54e): vsent.batch mutants the suite missed


def test_retry_failed_of_a_csv_cut_inside_a_row_copies_only_its_complete_rows(tmp_path):
    """mut54e B66: --retry-failed copies the complete rows of a csv that a kill cut inside a
    row: the cut part ("c.jpg,0.5", no newline) is not copied as a row of 2 fields (csv's
    writer ends it with a newline: a damaged output that every later --resume refuses)."""
    out = tmp_path / "rows.csv"
    paths = [Path("a.jpg"), Path("bad.jpg"), Path("c.jpg")]
    score_stream(paths, _fake_scorer, out)
    rows = out.read_bytes()
    out.write_bytes(rows[:rows.index(b"c.jpg,0.5") + 9])  # killed inside c.jpg's row
    s = score_stream(paths, _fake_scorer, out, resume=True, retry_failed=True,
                     warn=lambda message: None)
    assert (s.total, s.failed, s.resumed) == (3, 1, 1)
    assert out.read_bytes() == rows  # as a run never stopped: bad.jpg and c.jpg scored again


@pytest.mark.parametrize("kept", [{"model": "m.pt", "model_sha256": "ab"},
                                  {"model": "m.pt", "options": {"oversample": False}}])
def test_a_record_without_the_model_digest_or_the_options_is_one_line(tmp_path, kept):
    """mut54e B77: a record (edited, or another tool's) without "model_sha256" or "options"
    cannot check the rows: refused in one line naming it, not a KeyError traceback."""
    from vsent.batch import record_for, write_record

    out = tmp_path / "rows.csv"
    write_record(out, kept)
    now = {"model": "m.pt", "model_sha256": "ab", "options": {"oversample": False},
           "vsent": "1", "versions": {}}
    with pytest.raises(VsentError, match=rf"^--resume: {out}\.vsent\.json: not a vsent predict "
                                         r"record \('(model_sha256|options)'\); delete it "):
        record_for(out, now, has_rows=True)


def test_resume_of_an_output_of_one_row_checks_its_record(tmp_path):
    """mut54e B84: one row is rows to check: a resume with another model is refused and the
    output left as it was (the kept record is not replaced by this run's)."""
    out = tmp_path / "rows.csv"
    kept = {"model": "m.pt", "model_sha256": "ab", "options": {"oversample": False},
            "vsent": "1", "versions": {}}
    score_stream([Path("a.jpg")], _fake_scorer, out, record=kept)
    before = out.read_bytes()
    with pytest.raises(VsentError, match=r"^--resume: the rows of .*rows\.csv come from m\.pt "
                                         r"\(sha256 ab\) with centre crops; this run is m\.pt "
                                         r"\(sha256 cd\)"):
        score_stream([Path("a.jpg"), Path("b.jpg")], _fake_scorer, out, resume=True,
                     record={**kept, "model_sha256": "cd"})
    assert out.read_bytes() == before
    assert json.loads((tmp_path / "rows.csv.vsent.json").read_text()) == kept


def test_rows_on_standard_output_come_after_what_was_printed_there_before(monkeypatch):
    """mut54e B91: the rows go to standard output's binary buffer: text printed before and
    still in the text layer's buffer (a pipe is block-buffered) is flushed first, not left
    to come out after the rows."""
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8", newline="")  # block-buffered
    monkeypatch.setattr(sys, "stdout", stdout)
    stdout.write("before\n")
    with RowWriter(None, "csv") as w:
        w.write({"path": "a.jpg", "prob_positive": 0.5, "label": "positive", "error": ""})
    assert raw.getvalue() == b"before\npath,prob_positive,label,error\r\na.jpg,0.5,positive,\r\n"
