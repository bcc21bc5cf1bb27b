"""The inputs a command reads (vsent.inputs): behaviours of the walking and globbing that
mutation testing (session 41) found no test pinned, and two bugs of the loop-safe ``**`` glob."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from vsent.errors import VsentError
from vsent.inputs import Unmatched, iter_inputs, iter_list, split_inputs


def _run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("config.json", "versions.json"):
        (folder / name).write_text("{}")
    (folder / "0001_gradcam.png").write_bytes(b"png")
    return folder


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)
    return path


def test_a_run_a_glob_meets_is_named_as_the_pattern_spells_it(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    _img(tmp_path / "photos" / "a.png")
    _run(tmp_path / "photos" / "cam")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        got = [i for i in iter_inputs(["photos/*"]) if not isinstance(i, Unmatched)]
    assert got == ["photos/a.png"]
    assert "photos/cam holds a vsent run: its files are not read as images" in caplog.text
    assert str(tmp_path / "photos" / "cam") not in caplog.text
    # (mut58e I35) the folder given itself: the run met below it is skipped as well
    assert list(iter_inputs(["photos"])) == [Path("photos/a.png")]
    # (mut58e I39) a folder the glob matches that holds no run is walked
    _img(tmp_path / "photos" / "day" / "b.png")
    got = [i for i in iter_inputs(["photos/*"]) if not isinstance(i, Unmatched)]
    assert sorted(map(str, got)) == ["photos/a.png", os.path.join("photos", "day", "b.png")]


def _tree(root: Path) -> Path:
    for rel in ("a.png", "sub/b.png", "sub/deep/c.jpg", "sub/deep/e.png", ".hid/d.png",
                ".e.png", "sub/.f.png", "x/sub/g.jpg"):
        _img(root / rel)
    (root / "sub" / "broken.png").symlink_to(root / "nothing.png")  # a dangling link
    return root


def test_glob_deep_finds_the_files_pythons_glob_finds(tmp_path, monkeypatch):
    """_glob_deep is glob.glob(recursive=True) without its loops: on a tree without links to
    folders, the same files in the same order (review41 F1: explain fingerprints its inputs
    in their order, and a folder's files came after its sub-folders'), for relative,
    absolute, doubled-slash and hidden patterns."""
    import glob

    from vsent.inputs import _glob_deep

    root = _tree(tmp_path / "root")
    monkeypatch.chdir(root)
    patterns = ["**/*.png", "**", "sub/**/*.jpg", "**/deep/*.jpg", "**/sub/*.jpg",
                "s*/**/*.png", "./**/*.png", "sub//**/*.jpg", "**/broken.png", "**/.*.png",
                ".*/**", "**/deep/e.png", "**/*/", "**/sub/**/*.jpg", "sub/**/deep/**",
                str(root / "**" / "*.jpg"),
                str(root) + "//**//c.jpg"]
    for pattern in patterns:
        want = [p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p)]
        got = [p for p in _glob_deep(pattern, {}) if not os.path.isdir(p)]
        assert got == want, pattern
    # folders only, as glob gives them: each with its trailing separator
    assert sorted(_glob_deep("**/*/", {})) == sorted(glob.glob("**/*/", recursive=True))
    # (mut60e I72, I79, I80) a file where the pattern names a folder (x/deep), and a link
    # that loops on itself (lp/loop: its stat fails): glob matches nothing there, and goes on
    (root / "x" / "deep").write_text("a file, no folder")
    (root / "lp").mkdir()
    (root / "lp" / "loop").symlink_to("loop")
    assert sorted(_glob_deep("**/deep/", {})) == glob.glob("**/deep/", recursive=True)
    for pattern in ("**/deep/*.jpg", "lp/**"):
        want = [p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p)]
        assert [p for p in _glob_deep(pattern, {}) if not os.path.isdir(p)] == want, pattern


def test_an_absolute_pattern_with_magic_next_to_the_root(tmp_path):
    """'/t?p/.../**/*.png' starts its walk at the root folder."""
    from vsent.inputs import _glob_deep

    root = _tree(tmp_path / "root")
    first, *rest = root.parts[1:]
    pattern = os.path.join(os.sep, first[0] + "?" * (len(first) - 1), *rest, "**", "c.jpg")
    got = [g for g in _glob_deep(pattern, {}) if g.endswith("c.jpg")]
    assert got == [os.path.join(os.sep, first, *rest, "sub", "deep", "c.jpg")]


def test_a_folder_reached_twice_below_a_deep_glob_is_scored_once(tmp_path, caplog):
    """'**/*/*.png' reaches b/ itself and through the link a/l -> ../b at the pattern's
    middle part (no ** there to remember it): its image is scored once, and said."""
    root = tmp_path / "root"
    _img(root / "b" / "x.png")
    (root / "a").mkdir()
    (root / "a" / "l").symlink_to("../b", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="vsent"):
        got = [i for i in iter_inputs([str(root / "**" / "*" / "*.png")])
               if not isinstance(i, Unmatched)]
    assert len(got) == 1 and os.path.realpath(got[0]) == str(root / "b" / "x.png"), got
    assert "met again through links" in caplog.text


def test_a_linked_folder_met_by_a_glob_without_deep_part_is_read_as_glob_reads_it(
        tmp_path, caplog):
    """(mut60e I71) only ``**`` remembers the folders it met: '*/*.png' with c -> b gives
    b/x.png and c/x.png, as glob does (no loop to guard against), and no warning."""
    import glob

    root = tmp_path / "root"
    _img(root / "b" / "x.png")
    (root / "c").symlink_to("b", target_is_directory=True)
    pattern = str(root / "*" / "*.png")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        got = list(iter_inputs([pattern]))
    assert sorted(got) == sorted(glob.glob(pattern)) and len(got) == 2
    assert "met again" not in caplog.text


def test_a_link_below_a_first_deep_part_is_walked_for_the_second(tmp_path):
    """mut41 bug 1 (failed at 2559d3c): _glob_deep yields a/latest/x.jpg, but _walk_one
    dropped it: the first ** recorded a/latest as "met again" (it is b/), and b/x.jpg is no
    match here. '**/latest/**/*.jpg' with latest -> ../b: b/ was met by the first **, and is
    walked again for the second (each real folder once for each place of the pattern), as
    glob."""
    import glob

    root = tmp_path / "root"
    _img(root / "b" / "x.jpg")
    (root / "a").mkdir()
    (root / "a" / "latest").symlink_to("../b", target_is_directory=True)
    pattern = str(root / "**" / "latest" / "**" / "*.jpg")
    got = [i for i in iter_inputs([pattern]) if not isinstance(i, Unmatched)]
    assert got == [str(root / "a" / "latest" / "x.jpg")]
    assert got == glob.glob(pattern, recursive=True)


def test_glob_deep_walks_a_real_folder_again_for_another_place_of_the_pattern(tmp_path):
    """b/ met by the first ** is walked again below latest/ for the second ** (as glob)."""
    import glob

    from vsent.inputs import _glob_deep

    root = tmp_path / "root"
    _img(root / "b" / "x.jpg")
    (root / "a").mkdir()
    (root / "a" / "latest").symlink_to("../b", target_is_directory=True)
    pattern = str(root / "**" / "latest" / "**" / "*.jpg")
    assert list(_glob_deep(pattern, {})) == glob.glob(pattern, recursive=True) == [
        str(root / "a" / "latest" / "x.jpg")]


def test_a_missing_folder_spelt_with_dotdot_does_not_hide_a_real_one(tmp_path, monkeypatch):
    """mut41 bug 2 (failed at 2559d3c, minor): '**/deep/../**/*.jpg' also tries
    sub/deep/deep/.. (not there); its realpath is sub/deep, marked seen before it failed to
    list, so the real sub/deep/../deep was skipped as 'met again'. glob finds
    sub/deep/../deep/c.jpg."""
    import glob

    from vsent.inputs import _glob_deep

    _tree(tmp_path / "root")
    monkeypatch.chdir(tmp_path / "root")
    pattern = "**/deep/../**/*.jpg"
    assert sorted(_glob_deep(pattern, {})) == sorted(glob.glob(pattern, recursive=True))


def test_a_loop_to_the_current_folder_is_named_as_dot(tmp_path, monkeypatch, caplog):
    """review41 F2: a relative pattern's first folder is the current one, spelt '': the
    warning read "e.g. d1/up is )"."""
    _img(tmp_path / "d1" / "x.png")
    (tmp_path / "d1" / "up").symlink_to("..", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vsent"):
        got = [i for i in iter_inputs(["**/*.png"]) if not isinstance(i, Unmatched)]
    assert got == [os.path.join("d1", "x.png")]
    assert "(e.g. d1/up is .): each is walked once for each place of the pattern" in caplog.text
    # (mut60e I82) two folders met again: the first in order is the example
    _img(tmp_path / "d2" / "y.png")
    (tmp_path / "d2" / "up").symlink_to("..", target_is_directory=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsent"):
        list(iter_inputs(["**/*.png"]))
    assert "**/*.png: 2 folder(s) met again through links (e.g. d1/up is .)" in caplog.text


# mutation round 46 (mut46c): vsent.inputs mutants the suite missed
def test_a_folder_yields_its_images_by_suffix_of_any_case(tmp_path):
    _img(tmp_path / "d" / "A.JPG")
    _img(tmp_path / "d" / "b.png")
    (tmp_path / "d" / "notes.txt").write_text("x")
    got = sorted(str(p) for p in iter_inputs([str(tmp_path / "d")]))
    assert got == [str(tmp_path / "d" / "A.JPG"), str(tmp_path / "d" / "b.png")]


def test_an_existing_file_whose_name_looks_like_a_glob_is_that_file(tmp_path):
    """'shot[1].png' exists: it is scored as named, not read as a pattern matching nothing."""
    f = _img(tmp_path / "shot[1].png")
    assert list(iter_inputs([str(f)])) == [str(f)]


def test_an_empty_path_is_an_error_item_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _img(tmp_path / "a.png")
    (item,) = iter_inputs([""])
    assert item == Unmatched("", "'': an empty path (not the current folder)")


def test_a_glob_matching_a_run_folder_skips_its_files(tmp_path, monkeypatch, caplog):
    """'photos/*/*.png' meets photos/cam/0001_gradcam.png: a vsent run's file, not a photo."""
    monkeypatch.chdir(tmp_path)
    _img(tmp_path / "photos" / "day" / "a.png")
    _run(tmp_path / "photos" / "cam")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        got = [i for i in iter_inputs(["photos/*/*.png"]) if not isinstance(i, Unmatched)]
    assert got == ["photos/day/a.png"]
    # (mut58e I40) the run is its files' folder, named as the pattern spells it
    assert "photos/cam holds a vsent run" in caplog.text
    assert str(tmp_path) not in caplog.text
    # (mut52g I29) a fixed part after the wildcard: the run still lies below 'photos'
    _img(tmp_path / "photos" / "cam" / "sub" / "c.png")
    _img(tmp_path / "photos" / "day" / "sub" / "d.png")
    got = [i for i in iter_inputs(["photos/*/sub/*.png"]) if not isinstance(i, Unmatched)]
    assert got == ["photos/day/sub/d.png"]
    # (mut58e I54) two folders below the run: each folder up to the pattern's is asked
    _img(tmp_path / "photos" / "cam" / "sub" / "deep" / "e.png")
    _img(tmp_path / "photos" / "day" / "sub" / "deep" / "f.png")
    got = [i for i in iter_inputs(["photos/*/sub/deep/*.png"]) if not isinstance(i, Unmatched)]
    assert got == ["photos/day/sub/deep/f.png"]


def test_a_deep_glob_matches_hidden_names_only_with_a_dot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _img(tmp_path / "a.png")
    _img(tmp_path / ".b.png")
    _img(tmp_path / "sub" / "c.png")
    assert sorted(iter_inputs(["**/*.png"])) == ["a.png", os.path.join("sub", "c.png")]
    assert list(iter_inputs(["**/.*.png"])) == [".b.png"]


def test_a_list_is_read_as_written_less_its_blank_and_comment_lines(tmp_path):
    """CRLF line ends, an editor's BOM, indented comments: none is part of a path."""
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbfa.jpg\r\n  # a comment\r\n\r\n b c.jpg \r\n#x.jpg\n")
    assert list(iter_inputs(from_list=listing)) == ["a.jpg", " b c.jpg "]
    # (mut58e I57) only the first line's BOM is an editor's: a later one is part of a name
    assert list(iter_list(["a.jpg\n", "\ufeffb.jpg\n"])) == ["a.jpg", "\ufeffb.jpg"]


def test_a_list_on_a_callers_stream_is_read_and_left_open(tmp_path):
    """stdin=: the caller's text stream, given as '-' (a str or a Path), is not closed."""
    for dash in ("-", Path("-")):
        stream = io.StringIO("a.jpg\n\nb.jpg\n")
        assert list(iter_inputs(from_list=dash, stdin=stream)) == ["a.jpg", "b.jpg"]
        assert not stream.closed


def test_a_list_in_utf16_is_refused_naming_its_encoding(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.jpg\n", encoding="utf-16")
    with pytest.raises(VsentError, match=r"list\.txt: UTF-16 text \(its byte-order mark\)"):
        list(iter_inputs(from_list=listing))
    with pytest.raises(VsentError, match=r"^-: UTF-16 text"):  # (standard input: not peeked)
        list(iter_list(io.StringIO("\udcff\udcfea\n"), "-"))
    # (mut56g I22) only the first line holds a byte-order mark: a later name whose bytes
    # start as one (Latin-1 "\xff\xfe...") is a path
    assert list(iter_list(io.StringIO("a\n\udcff\udcfeb\n"), "-")) == ["a", "\udcff\udcfeb"]


def test_a_nul_byte_is_refused_at_its_line(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.jpg\nb.jpg\nc\0.jpg\n")
    with pytest.raises(VsentError, match=r"list\.txt: line 3 holds a NUL byte"):
        list(iter_inputs(from_list=listing))
    # (mut52g L23) one further down the file's head is refused at the call too
    listing.write_bytes(b"".join(b"photo%02d.jpg\n" % i for i in range(40)) + b"c\0.jpg\n")
    with pytest.raises(VsentError, match=r"list\.txt: line 41 holds a NUL byte"):
        iter_inputs(from_list=listing)


def test_a_list_file_refused_at_its_head_is_closed(tmp_path, monkeypatch):
    """(mut60e I73, I74) a UTF-16 list or one holding a NUL byte is refused at the call: the
    file opened to peek at its head is closed, not left to the garbage collector."""
    import vsent.inputs as inputs

    opened: list[io.BufferedReader] = []

    def tracked(path: Path, mode: str) -> io.BufferedReader:
        opened.append(open(path, mode))  # noqa: SIM115 (the test checks it is closed)
        return opened[-1]

    monkeypatch.setattr(inputs, "open", tracked, raising=False)
    listing = tmp_path / "list.txt"
    for data in ("a.jpg\n".encode("utf-16"), b"a.jpg\nb\0.jpg\n"):
        listing.write_bytes(data)
        with pytest.raises(VsentError, match=r"UTF-16 text|NUL byte"):
            iter_inputs(from_list=listing)
    assert len(opened) == 2 and all(f.closed for f in opened)


def test_a_list_file_that_cannot_be_opened_is_named_with_its_reason(tmp_path):
    """(mut58e I68) a typo in --from-list: the error names the file and why."""
    missing = tmp_path / "missing.txt"
    with pytest.raises(VsentError) as refused:
        iter_inputs(from_list=missing)
    assert str(refused.value) == f"--from-list {missing}: No such file or directory"


def test_a_latin1_name_in_a_list_keeps_its_bytes(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"caf\xe9.jpg\n")
    assert [os.fsencode(p) for p in iter_inputs(from_list=listing)] == [b"caf\xe9.jpg"]


def test_split_inputs_gives_the_error_rows_of_what_matched_nothing(tmp_path):
    f = _img(tmp_path / "a.png")
    (tmp_path / "empty").mkdir()
    gone = str(tmp_path / "gone.png")
    paths, rows = split_inputs([str(f), str(tmp_path / "empty"), str(tmp_path / "*.gif"), gone])
    # (mut56g I8) a missing plain path is a path: its decoding says "no such file"
    assert paths == [str(f), gone]
    assert [r["path"] for r in rows] == [str(tmp_path / "empty"), str(tmp_path / "*.gif")]
    assert all(r["prob_positive"] is None and r["error"] for r in rows)


def test_one_path_where_many_are_expected_is_a_type_error():
    with pytest.raises(TypeError, match="iter_inputs"):
        iter_inputs("photos")


def test_a_run_folder_given_itself_is_read(tmp_path):
    """Only the runs met below a folder are skipped: one named on the command line is read."""
    run = _run(tmp_path / "cam")
    assert list(iter_inputs([str(run)])) == [run / "0001_gradcam.png"]
    # (mut56g I20) so is a run's folder a pattern names: 'cam/*.png' reads cam
    assert list(iter_inputs([str(run / "*.png")])) == [str(run / "0001_gradcam.png")]


def test_a_folder_is_walked_depth_first_in_listing_order(tmp_path):
    """A folder's images, then each sub-folder's walk in the order the folder lists them."""
    for rel in ("a.png", "s1/b.png", "s1/t/c.png", "s2/d.png", "s3/e.png"):
        _img(tmp_path / "d" / rel)

    def listed(d: Path) -> list[Path]:
        entries = list(os.scandir(d))
        out = [d / e.name for e in entries if e.is_file()]
        for e in entries:
            if e.is_dir():
                out += listed(d / e.name)
        return out

    assert list(iter_inputs([str(tmp_path / "d")])) == listed(tmp_path / "d")


def test_a_deep_glob_yields_each_image_once(tmp_path, monkeypatch):
    """'d/**' matches folders too: their images are matches already, not walked again."""
    monkeypatch.chdir(tmp_path)
    _img(tmp_path / "d" / "a.png")
    _img(tmp_path / "d" / "s" / "b.png")
    got = [i for i in iter_inputs(["d/**"]) if not os.path.isdir(i)]
    assert sorted(got) == [os.path.join("d", "a.png"), os.path.join("d", "s", "b.png")]


# inputs mutants of round 46 (mut46c) left unrun by the helper, run here and killed
def test_a_bracket_class_is_a_glob(tmp_path):
    """I1: '[ab].png' is a pattern (as the shell's): its matches, not a missing file."""
    for name in ("a.png", "b.png", "c.png"):
        _img(tmp_path / name)
    got = sorted(iter_inputs([str(tmp_path / "[ab].png")]))
    assert got == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_a_walk_does_not_follow_a_link_to_a_folder(tmp_path):
    """I3: walk_folder leaves links to folders alone (as find: no loops, no tree twice)."""
    _img(tmp_path / "d" / "a.png")
    _img(tmp_path / "elsewhere" / "b.png")
    (tmp_path / "d" / "l").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "d" / "up").symlink_to(tmp_path / "d")  # a loop, were links followed
    assert list(iter_inputs([str(tmp_path / "d")])) == [tmp_path / "d" / "a.png"]


def test_a_missing_spelling_of_a_folder_does_not_hide_a_real_one(tmp_path, monkeypatch):
    """I20: 'd/*/x/../../**' spells d twice; through s1 (no x there) the kernel finds no
    folder, though os.path.realpath says d: that spelling is no folder, neither the first
    one met (the real spelling through s2 would be skipped as met again: no image at all)
    nor a later one (a folder "met again" that was never met)."""
    import glob

    from vsent.inputs import _glob_deep

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d" / "s1").mkdir(parents=True)
    (tmp_path / "d" / "s2" / "x").mkdir(parents=True)
    _img(tmp_path / "d" / "a.jpg")
    pattern = os.path.join("d", "*", "x", "..", "..", "**", "*.jpg")
    again: dict[str, str] = {}
    assert list(_glob_deep(pattern, again)) == glob.glob(pattern, recursive=True) == [
        os.path.join("d", "s2", "x", "..", "..", "a.jpg")]
    assert again == {}  # (s1 and s2 come in the folder's listing order: either may be first)


def test_a_link_out_of_the_patterns_folder_is_not_judged_by_what_holds_its_target(
        tmp_path, monkeypatch):
    """I27: a glob skips the folders below the folder it names that hold (or lie in) a run;
    a link that leads out of that folder is judged by its target alone, not by the target's
    parents (here a run): 'photos/*/*.png' scores photos/cam/b.png."""
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path / "runs" / "r")
    _img(run / "sub" / "b.png")
    # (mut52g I27) nor is a sibling whose name starts as the pattern's folder's below it
    old = _run(tmp_path / "photos-old" / "r")
    _img(old / "sub" / "c.png")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cam").symlink_to(run / "sub")
    (tmp_path / "photos" / "old").symlink_to(old / "sub")
    got = sorted(i for i in iter_inputs(["photos/*/*.png"]) if not isinstance(i, Unmatched))
    assert got == [os.path.join("photos", "cam", "b.png"), os.path.join("photos", "old", "c.png")]


def test_a_list_file_with_a_nul_byte_is_refused_before_anything_is_scored(tmp_path):
    """I38: the head of a list file is read when iter_inputs is called: an image given as
    the list is a user error at once, not after the PATHs before it were scored."""
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.png\n\x89PNG\0\0\n")
    with pytest.raises(VsentError, match=r"list.txt: line 2 holds a NUL byte"):
        iter_inputs([str(_img(tmp_path / "a.png"))], from_list=listing)


def test_a_list_file_opened_here_is_closed_when_the_inputs_end(tmp_path, monkeypatch):
    """I43: the list file iter_inputs opened is closed once read (a caller's stream is not)."""
    import vsent.inputs as inputs

    opened = []
    real = inputs._open_list
    monkeypatch.setattr(inputs, "_open_list", lambda p: opened.append(real(p)) or opened[-1])
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\nb.png\n")
    assert list(iter_inputs(from_list=listing)) == ["a.png", "b.png"]
    assert opened and opened[0].closed
    caller = io.StringIO("c.png\n")
    assert list(iter_inputs(from_list="-", stdin=caller)) == ["c.png"]
    assert not caller.closed
    # (mut56g I33) '-' without stdin=: standard input, opened when the list is reached
    # (a replaced sys.stdin with no descriptor is read as it is, and left open)
    monkeypatch.setattr(sys, "stdin", io.StringIO("d.png\n"))
    assert list(iter_inputs(from_list="-")) == ["d.png"] and not sys.stdin.closed
    # (mut58e I65) a process started with standard input closed: said, not a TypeError
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(VsentError, match=r"^--from-list -: standard input is closed$"):
        list(iter_inputs(from_list="-"))

    # (mut60e I83) a descriptor 0 that cannot be duplicated: said, its lines not read anyway
    class _StaleStdin(io.StringIO):
        def fileno(self) -> int:
            return 1_000_000  # (no such descriptor: os.dup fails with EBADF)

    monkeypatch.setattr(sys, "stdin", _StaleStdin("e.png\n"))
    with pytest.raises(VsentError, match=r"^--from-list -: standard input: "):
        list(iter_inputs(from_list="-"))


def test_an_empty_folder_is_named_as_given(tmp_path):
    """I52: the row of an empty folder names it as the user typed it (a trailing slash
    kept), as every row names its input."""
    (tmp_path / "empty").mkdir()
    typed = str(tmp_path / "empty") + os.sep
    (row,) = iter_inputs([typed])
    assert isinstance(row, Unmatched) and row.path == typed
    assert row.reason.startswith(f"{typed}: no image file")


def test_a_list_that_stops_decoding_names_the_last_line_read():
    """I54: a stream that cannot be decoded after two lines: 'after about line 2'."""
    def lines():
        yield "a.png\n"
        yield "b.png\n"
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    got = []
    with pytest.raises(VsentError, match=r"^--from-list -: not UTF-8 text after about line 2$"):
        for path in iter_list(lines(), "--from-list -"):
            got.append(path)
    assert got == ["a.png", "b.png"]


# mutation round 49 (mut49e): vsent.inputs mutants the suite missed
def test_a_folder_that_cannot_be_listed_is_a_row_naming_it_and_the_walk_goes_on(tmp_path,
                                                                                monkeypatch):
    a = _img(tmp_path / "d" / "a.png")
    locked = tmp_path / "d" / "locked"
    _img(locked / "b.png")
    c = _img(tmp_path / "d" / "z" / "c.png")
    real = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    got = list(iter_inputs([str(tmp_path / "d")]))
    assert got[0] == a
    assert Unmatched(str(locked), f"{locked}: cannot list this folder (permission denied)") in got
    assert c in got and len(got) == 3
    # (mut58e I37) that folder given alone: its one row, not also "no image file"
    assert list(iter_inputs([str(locked)])) == [
        Unmatched(str(locked), f"{locked}: cannot list this folder (permission denied)")]


class _Vanished:
    """A directory entry whose file went away between the listing and its stat."""

    name = "gone.png"

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        raise FileNotFoundError(2, "No such file or directory", self.name)


def test_an_entry_that_vanishes_during_a_walk_is_skipped(tmp_path, monkeypatch):
    """(mut58e I69) a file deleted while its folder is listed: skipped, the walk goes on."""
    a = _img(tmp_path / "d" / "a.png")
    real = os.scandir

    class Entries:
        def __init__(self, path: str | Path) -> None:
            self.it = real(path)

        def __enter__(self) -> list:
            return [_Vanished(), *self.it.__enter__()]

        def __exit__(self, *exc: object) -> None:
            self.it.__exit__(*exc)

    monkeypatch.setattr(os, "scandir", Entries)
    assert list(iter_inputs([str(tmp_path / "d")])) == [a]


def test_a_glob_that_matches_nothing_is_a_row_naming_the_pattern(tmp_path):
    pattern = str(tmp_path / "*.gif")
    assert list(iter_inputs([pattern])) == [
        Unmatched(pattern, f"{pattern}: the pattern matched no file")]
    # (mut56g I9) a name too long to stat (ENAMETOOLONG): a pattern is still a pattern, a plain
    # path still a path (its decoding gives its error row)
    long = str(tmp_path / ("x" * 300))
    assert list(iter_inputs([long + "*.gif", long])) == [
        Unmatched(long + "*.gif", f"{long}*.gif: the pattern matched no file"), long]


def test_a_list_that_cannot_be_read_names_the_last_line_read():
    def lines():
        yield "a.png\n"
        yield "b.png\n"
        raise OSError(5, "Input/output error")

    got = []
    with pytest.raises(VsentError, match=r"^--from-list l\.txt: cannot read past line 2 "
                                         r"\(input/output error\); the rows written so far "
                                         r"are kept$"):
        for path in iter_list(lines(), "--from-list l.txt"):
            got.append(path)
    assert got == ["a.png", "b.png"]


def test_a_list_in_big_endian_utf16_is_refused_too(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes("\ufeffa.jpg\n".encode("utf-16-be"))
    with pytest.raises(VsentError, match=r"list\.txt: UTF-16 text \(its byte-order mark\)"):
        iter_inputs(from_list=listing)


def test_a_nul_byte_on_a_stream_is_refused_at_its_line():
    """Standard input is not peeked: the line holding the NUL byte stops the list."""
    got = []
    with pytest.raises(VsentError, match=r"^-: line 2 holds a NUL byte"):
        for path in iter_list(io.StringIO("a.jpg\nb\0c.jpg\nd.jpg\n"), "-"):
            got.append(path)
    assert got == ["a.jpg"]
