import errno
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import save_image, sentiment_image
from vsent import files
from vsent.data import cache as cache_mod
from vsent.data.cache import cache_dir_default, cache_images, cache_key, image_cache
from vsent.data.datasets import load_dataset
from vsent.data.images import load_resized
from vsent.errors import ImageError, VsentError
from vsent.files import ABANDONED_AFTER_S

SIZE = 16


@pytest.fixture
def cdir(tmp_path):
    """Cache folder (tmp_path itself also holds the dataset)."""
    d = tmp_path / "cache"
    d.mkdir()
    return d


@pytest.fixture
def ds(twitter_like):
    return load_dataset(twitter_like, validate=False)


def _count_decodes(monkeypatch) -> list[int]:
    calls = []
    real = cache_mod.load_resized

    def counting(src, size):
        calls.append(1)
        return real(src, size)

    monkeypatch.setattr(cache_mod, "load_resized", counting)
    return calls


def test_cache_content_and_properties(ds, cdir):
    arr = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert isinstance(arr, np.memmap)
    assert arr.shape == (len(ds), SIZE, SIZE, 3) and arr.dtype == np.uint8
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0, 0, 0, 0] = 1
    for i in (0, 7, len(ds) - 1):
        np.testing.assert_array_equal(arr[i], load_resized(ds.paths[i], SIZE))
    files = list(cdir.iterdir())
    assert len(files) == 1 and files[0].name.endswith(f"-{len(ds)}x{SIZE}x{SIZE}x3.npy")


def test_a_file_where_the_cache_folder_must_be_is_named(ds, tmp_path):
    """$VSENT_CACHE (or --cache-dir) naming a file: one line that says it is a file, not
    mkdir's "File exists" (which reads as if all were fine)."""
    blocking = tmp_path / "notafolder"
    blocking.write_text("x")
    with pytest.raises(VsentError) as info:
        image_cache(ds, size=16, cache_dir=blocking / "cache", progress=False)
    assert str(info.value) == (f"{blocking / 'cache'}: cannot create the image cache folder "
                               f"({blocking} is a file, not a folder); set $VSENT_CACHE to a "
                               "writable folder")


def test_each_image_is_decoded_once(ds, cdir, monkeypatch):
    calls = _count_decodes(monkeypatch)
    first = np.array(image_cache(ds, SIZE, cache_dir=cdir, progress=False))
    assert len(calls) == len(ds)
    second = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert len(calls) == len(ds)  # reused, nothing decoded
    np.testing.assert_array_equal(first, second)
    # reused as built: memory-mapped and read-only, not read whole into memory (mut54b)
    assert isinstance(second, np.memmap) and not second.flags.writeable
    image_cache(ds, SIZE + 1, cache_dir=cdir, progress=False)  # another size: another file
    assert len(calls) == 2 * len(ds) and len(list(cdir.iterdir())) == 2


def test_changed_image_gives_a_new_cache(ds, cdir):
    before = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    old_row = np.array(before[3])
    save_image(np.zeros((20, 20, 3), np.uint8), ds.paths[3])
    st = ds.paths[3].stat()
    os.utime(ds.paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert np.all(after[3] == 0) and not np.array_equal(old_row, after[3])
    np.testing.assert_array_equal(before[4], after[4])
    assert len(list(cdir.iterdir())) == 2


def test_cache_key_depends_on_paths_sizes_mtimes_and_size(ds):
    key = cache_key(ds.paths, 256)
    assert key == cache_key([str(p) for p in ds.paths], 256)
    assert key != cache_key(ds.paths, 255)
    assert key != cache_key(ds.paths[::-1], 256)
    p = ds.paths[0]
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert key != cache_key(ds.paths, 256)
    with pytest.raises(ImageError, match=re.escape(f"{p.parent / 'gone.jpg'}: no such file")):
        cache_key([p.parent / "gone.jpg"], 256)


def test_cache_dir_from_environment(ds, tmp_path, monkeypatch):
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "env-cache"))
    assert cache_dir_default() == tmp_path / "env-cache"
    image_cache(ds, SIZE, progress=False)
    assert len(list((tmp_path / "env-cache").glob("images-*.npy"))) == 1
    monkeypatch.delenv("VSENT_CACHE")
    assert cache_dir_default() == Path.home() / ".cache" / "vsent"
    monkeypatch.setenv("HOME", str(tmp_path))  # ~ in the variable is the home (mut51b)
    monkeypatch.setenv("VSENT_CACHE", "~/c")
    assert cache_dir_default() == tmp_path / "c"
    monkeypatch.setenv("VSENT_CACHE", "")  # set but empty: the default, not "." (mut54b)
    assert cache_dir_default() == tmp_path / ".cache" / "vsent"


def test_bad_image_during_build_names_it_and_leaves_nothing(ds, cdir, bad_images):
    ds.paths[5].write_bytes(bad_images["truncated"].read_bytes())
    with pytest.raises(ImageError, match=re.escape(f"{ds.paths[5]}: truncated image file")):
        image_cache(ds, SIZE, cache_dir=cdir, workers=2, progress=False)
    assert list(cdir.iterdir()) == []


def test_interrupted_build_leaves_no_cache(ds, cdir, monkeypatch):
    calls = []
    real = cache_mod.load_resized

    def flaky(img, size):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(img, size)

    monkeypatch.setattr(cache_mod, "load_resized", flaky)
    with pytest.raises(KeyboardInterrupt):
        image_cache(ds, SIZE, cache_dir=cdir, workers=1, progress=False)
    assert list(cdir.iterdir()) == []
    monkeypatch.setattr(cache_mod, "load_resized", real)
    arr = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    np.testing.assert_array_equal(arr[-1], load_resized(ds.paths[-1], SIZE))


def test_a_read_only_cache_is_one_line_naming_the_variable(ds, cdir, monkeypatch):
    # a read-only file system refuses the write and then the clean-up's unlink as well (EROFS,
    # even for a file that does not exist): the second error must not hide the first
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self.name.endswith(".tmp"):
            read_only()
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(np.lib.format, "open_memmap", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(VsentError, match=r"cannot write the image cache \(Read-only file "
                                         r"system; it takes [0-9.]+ MB in .*\); set "
                                         r"\$VSENT_CACHE to a writable folder"):
        image_cache(ds, 16, cache_dir=cdir, progress=False)


def test_a_full_disk_is_found_before_the_build_and_said(ds, cdir, monkeypatch):
    """The cache is a memory-mapped sparse file: on a full disk, writing its rows killed the
    process with SIGBUS (no message, a temporary file as large as the cache left behind). Its
    blocks are now reserved first, and a full disk is one line naming the space needed."""
    calls = []

    def full(fd, offset, length):
        calls.append((offset, length))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    size = 64
    with pytest.raises(VsentError, match=r"cannot write the image cache \(No space left on "
                                         r"device; it takes [0-9.]+ MB in ") as e:
        image_cache(ds, size, cache_dir=cdir, progress=False)
    header = calls[0][1] - len(ds) * size * size * 3
    assert calls[0][0] == 0 and 0 < header <= 4096  # the whole file: header + every row
    assert f"{len(ds) * size * size * 3 / 1e6:.1f} MB in {cdir}" in str(e.value)
    # the file it could not write is named: the build's temporary file (mut54b)
    assert re.match(re.escape(f"{cdir}/.images-") + r"[0-9a-f]{20}-.*\.tmp: cannot write",
                    str(e.value))
    assert not list(cdir.glob("*.tmp")) and not list(cdir.glob(".*.tmp"))


def test_a_killed_builds_old_temporary_file_is_removed_by_the_next_build(ds, cdir,
                                                                          monkeypatch):
    """SIGKILL skips the clean-up: the next build of the same cache removes a temporary file
    a day old, and leaves a fresh one (another process may be writing it) and other caches'."""
    import time

    final = cdir / f"images-{cache_key(ds.paths, SIZE)[:20]}-{len(ds)}x{SIZE}x{SIZE}x3.npy"
    abandoned = cdir / f".{final.name}.4242.0badc0de.tmp"
    fresh = cdir / f".{final.name}.4343.c0ffee00.tmp"
    other = cdir / ".images-0123456789abcdef0123-5x8x8x3.npy.4242.0badc0de.tmp"
    for f in (abandoned, fresh, other):
        f.write_bytes(b"partial")
    day_ago = time.time() - ABANDONED_AFTER_S - 60
    for f in (abandoned, other):
        os.utime(f, (day_ago, day_ago))
    image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert final.is_file() and not abandoned.exists() and fresh.exists() and other.exists()
    # one not ours to remove (another user's, in a shared folder) stays; the build goes on
    theirs = cdir / f".{final.name}.4444.0badc0de.tmp"  # (mut54b)
    theirs.write_bytes(b"partial")
    os.utime(theirs, (day_ago, day_ago))
    final.unlink()
    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if self == theirs:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert final.is_file() and theirs.exists()


def test_a_temporary_file_of_a_dead_writer_on_this_machine_is_removed_at_once(ds, cdir):
    """A build killed (SIGKILL, the OOM killer) leaves a file as large as the cache: it waited
    a day for the next build of that cache. One whose writer ran on this machine and is gone
    is removed at once; a live writer's, or another machine's, is left to finish."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid: no process now
    host = files._host()  # (as temporary names hold it)
    final = cdir / f"images-{cache_key(ds.paths, SIZE)[:20]}-{len(ds)}x{SIZE}x{SIZE}x3.npy"
    dead = cdir / f".{final.name}.{gone.pid}@{host}.0badc0de.tmp"
    alive = cdir / f".{final.name}.{os.getpid()}@{host}.c0ffee00.tmp"
    remote = cdir / f".{final.name}.{gone.pid}@elsewhere.example.0badc0de.tmp"
    for f in (dead, alive, remote):
        f.write_bytes(b"partial")
    image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert final.is_file() and not dead.exists() and alive.exists() and remote.exists()


# b"": a crash between os.replace and writeback can leave the file empty: np.load raises
# EOFError, which must mean "rebuild", not a traceback on every later run (audit_data23 #4)
# None: reading the file fails with an I/O error (an OSError from np.load) (mut54b)
@pytest.mark.parametrize("content", [b"garbage", b"", None], ids=["garbage", "empty", "EIO"])
def test_unreadable_cache_file_is_rebuilt(ds, cdir, caplog, content, monkeypatch):
    arr = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    path = Path(arr.filename)
    expected = np.array(arr)
    del arr
    if content is None:
        real_load = np.load

        def io_error(*args, **kwargs):  # once: the rebuilt file is read as usual
            monkeypatch.setattr(np, "load", real_load)
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(np, "load", io_error)
    else:
        path.write_bytes(content)
    again = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    np.testing.assert_array_equal(again, expected)
    assert "unreadable" in caplog.text and "rebuilding" in caplog.text


def test_a_cache_file_of_another_dtype_is_rebuilt_and_said_so(ds, cdir, caplog):
    """code37 #14: a float file of the right shape was said to have "shape (n, s, s, 3),
    expected (n, s, s, 3)"."""
    arr = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    path, shape, expected = Path(arr.filename), arr.shape, np.array(arr)
    del arr
    np.save(path, expected.astype(np.float32))
    again = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    np.testing.assert_array_equal(again, expected)
    assert f"{path} holds float32 {shape}, expected uint8 {shape}; rebuilding it" in caplog.text


def test_workers_do_not_change_the_result(ds, tmp_path):
    a = np.array(image_cache(ds, SIZE, cache_dir=tmp_path / "a", workers=1, progress=False))
    b = np.array(image_cache(ds, SIZE, cache_dir=tmp_path / "b", workers=4, progress=False))
    np.testing.assert_array_equal(a, b)


def test_empty_dataset(ds, cdir):
    empty = replace(ds, names=[], paths=[], labels=np.zeros(0, np.int64))
    arr = image_cache(empty, SIZE, cache_dir=cdir, progress=False)
    assert arr.shape == (0, SIZE, SIZE, 3)


def test_progress_bar_does_not_break(ds, cdir, capsys):
    arr = image_cache(ds, SIZE, cache_dir=cdir, progress=True)
    assert arr.shape[0] == len(ds)
    # the bar changes nothing in the result: every row is its image, decoded as usual
    for i in (0, len(ds) // 2, len(ds) - 1):
        np.testing.assert_array_equal(arr[i], load_resized(ds.paths[i], SIZE))


# ------------------------------------------------------------------------------------------
# in memory


def test_cache_images_mixed_sources(bad_images):
    rng = np.random.default_rng(0)
    arr = sentiment_image(1, rng, (20, 10))
    sources = [bad_images["ok"], bad_images["gray"].read_bytes(), arr, Image.fromarray(arr),
               str(bad_images["exif6"])]
    out = cache_images(sources, 8)
    assert out.shape == (5, 8, 8, 3) and out.dtype == np.uint8 and out.flags.writeable
    for i, src in enumerate(sources):
        np.testing.assert_array_equal(out[i], load_resized(src, 8))
    assert cache_images([], 8).shape == (0, 8, 8, 3)


def test_cache_images_errors(bad_images):
    with pytest.raises(ImageError, match=re.escape(f"{bad_images['empty']}: empty file")):
        cache_images([bad_images["ok"], bad_images["empty"]], 8)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        cache_images([bad_images["ok"]], 0)


def test_replaced_image_with_the_same_mtime_gives_a_new_cache(ds, cdir):
    # cp -p, rsync -t or a file system with coarse times: another image, same mtime; its size
    # differs, and the cache must show the new pixels, not the stale ones
    before = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    key = cache_key(ds.paths, SIZE)
    p = ds.paths[2]
    st = p.stat()
    save_image(np.full((40, 40, 3), 255, np.uint8), p)  # white, another file size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_mtime_ns == st.st_mtime_ns and p.stat().st_size != st.st_size
    assert cache_key(ds.paths, SIZE) != key
    after = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert np.all(after[2] == 255) and not np.all(before[2] == 255)
    np.testing.assert_array_equal(after[3], before[3])


def test_cache_key_names_files_by_their_resolved_path(tmp_path, monkeypatch):
    # two folders hold x.jpg with equal size and mtime: the relative name "x.jpg" read from
    # each folder is another file and must not share a cache; a link is its target
    for folder, byte in (("a", b"1"), ("b", b"2")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes(byte * 10)
        os.utime(tmp_path / folder / "x.jpg", ns=(10**18, 10**18))
    monkeypatch.chdir(tmp_path / "a")
    key_a = cache_key(["x.jpg"], 8)
    monkeypatch.chdir(tmp_path / "b")
    key_b = cache_key(["x.jpg"], 8)
    assert key_a != key_b
    assert key_b == cache_key([tmp_path / "b" / "x.jpg"], 8)
    (tmp_path / "link.jpg").symlink_to(tmp_path / "a" / "x.jpg")
    assert cache_key([tmp_path / "link.jpg"], 8) == key_a


# ------------------------------------------------------------------------------------------
# a replacement with size and mtime set back (audit_data23 #5)


def _solid_png(path: Path, rgb: tuple[int, int, int]) -> int:
    Image.new("RGB", (8, 8), rgb).save(path, "PNG", compress_level=0)  # size: pixels alone
    return path.stat().st_size


def _until_ctime_moves(path: Path, before: os.stat_result, write) -> None:
    """write(), again until ``path``'s ctime differs from ``before``'s (file systems keep
    coarse times: a write within the same tick would keep the ctime, as with any key)."""
    for _ in range(60):
        write()
        if path.stat().st_ctime_ns != before.st_ctime_ns:
            return
        time.sleep(0.05)
    pytest.skip("this file system's ctime did not move in 3 s")


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_same_size_replacement_with_mtime_set_back_gives_a_new_cache(tmp_path, cdir, how):
    # cp -p, rsync -t or os.utime set size and mtime back; the inode (a rename) or the ctime
    # (a write in place) cannot be set back
    for cls, rgb in (("positive", (255, 0, 0)), ("negative", (0, 0, 255))):
        (tmp_path / "d" / cls).mkdir(parents=True)
        _solid_png(tmp_path / "d" / cls / "a.png", rgb)
    ds = load_dataset(tmp_path / "d")
    before = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert before[0, 0, 0].tolist() == [255, 0, 0]
    p = ds.paths[0]
    st = p.stat()
    green = tmp_path / "green.png"
    assert _solid_png(green, (0, 255, 0)) == st.st_size  # the same size, other pixels

    def replace_it() -> None:
        if how == "in place":
            p.write_bytes(green.read_bytes())
        else:
            (tmp_path / "new.png").write_bytes(green.read_bytes())
            os.replace(tmp_path / "new.png", p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))

    _until_ctime_moves(p, st, replace_it)
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    assert after[0, 0, 0].tolist() == [0, 255, 0]
    np.testing.assert_array_equal(after[1], before[1])
    # the dataset fingerprint (names, labels, sizes) does not see it, as documented; its
    # formula stays: stored runs compare it on resume
    assert load_dataset(tmp_path / "d").fingerprint() == ds.fingerprint()


def test_pillow_version_is_part_of_the_cache_key(ds, monkeypatch):
    import PIL

    assert cache_mod._FORMAT.endswith(f":Pillow-{PIL.__version__}")
    key = cache_key(ds.paths, SIZE)
    monkeypatch.setattr(cache_mod, "_FORMAT", cache_mod._FORMAT + "-other")
    assert cache_key(ds.paths, SIZE) != key


def test_fingerprint_formula_is_unchanged(ds):
    # runs started earlier stored this value and compare it on resume: it must not change
    import hashlib

    h = hashlib.sha256()
    for name, path, label in zip(ds.names, ds.paths, ds.labels, strict=True):
        h.update(f"{name}\t{int(label)}\t{path.stat().st_size}\n".encode())
    assert ds.fingerprint() == {"n_images": len(ds), "n_positive": int(ds.labels.sum()),
                                "sha256": h.hexdigest()}


def test_content_key_follows_the_bytes_not_the_file(tmp_path):
    """The costly caches' key: a copy elsewhere or a chmod reuses it; an edit (even with the
    size and times set back) or another order does not."""
    import shutil

    from vsent.data.cache import content_key

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(a)
    Image.new("RGB", (4, 4), (0, 0, 255)).save(b)
    key = content_key([a, b], 8)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(a, copy / "a.png")
    shutil.copy(b, copy / "b.png")
    os.chmod(a, 0o600)
    assert content_key([a, b], 8) == key == content_key([copy / "a.png", copy / "b.png"], 8)
    assert content_key([b, a], 8) != key and content_key([a, b], 9) != key
    st = a.stat()
    data = bytearray(a.read_bytes())
    data[-20] ^= 0xFF  # same size
    a.write_bytes(bytes(data))
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert content_key([a, b], 8) != key
    with pytest.raises(ImageError, match="gone.png: no such file"):
        content_key([tmp_path / "gone.png"], 8)


def test_content_key_refuses_what_is_no_regular_file(tmp_path):
    """A FIFO in a list of images would be read for ever: refused before it is opened."""
    from vsent.data.cache import content_key

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="pipe.jpg: not a regular file"):
        content_key([fifo], 8)


# mutation round 43b (mut43b): tests that kill mutants the suite missed


# --------------------------------------------------------------------------------------------
# mutation testing (mut43b): each part of the image cache key


def test_cache_key_follows_each_of_size_mtime_inode_and_ctime(ds, monkeypatch):
    """mut43b CA03, CA04, CA10: the key holds each image's size, mtime (to the nanosecond),
    inode and ctime (the module docstring): each alone changes it. On disk one change moves
    several at once (an edit moves the ctime too), so the stat is stood in for here: a
    same-size edit within one second, a file replaced under another inode, or a size change
    within one coarse timestamp tick is a new cache."""
    from types import SimpleNamespace

    real = cache_mod.stat_file
    st0 = ds.paths[0].stat()
    second = st0.st_mtime_ns // 10**9 * 10**9

    def key_with(**changes) -> str:
        def stat(path, where=None):
            st = real(path, where)
            fields = {k: getattr(st, k) for k in ("st_mode", "st_size", "st_mtime",
                                                  "st_mtime_ns", "st_ino", "st_ctime_ns")}
            if path == ds.paths[0]:
                fields.update({"st_mtime": second / 1e9, "st_mtime_ns": second + 1000,
                               **changes})
            return SimpleNamespace(**fields)

        monkeypatch.setattr(cache_mod, "stat_file", stat)
        return cache_key(ds.paths, 256)

    keys = {"as is": key_with(), "size": key_with(st_size=st0.st_size + 1),
            "mtime in the same second": key_with(st_mtime_ns=second + 2000),
            "inode": key_with(st_ino=st0.st_ino + 1),
            "ctime": key_with(st_ctime_ns=st0.st_ctime_ns + 1)}
    assert keys["as is"] == key_with()
    assert len(set(keys.values())) == len(keys), keys


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47d): vsent.data.cache mutants the suite missed


def test_an_empty_dataset_writes_no_cache_and_is_read_only_like_any(ds, cdir):
    """Nothing to decode: no file in the cache folder, and the array is read-only as the
    memory-mapped ones are (a caller cannot tell them apart by writing into it)."""
    empty = replace(ds, names=[], paths=[], labels=np.zeros(0, np.int64))
    arr = image_cache(empty, SIZE, cache_dir=cdir, progress=False)
    assert not arr.flags.writeable
    assert list(cdir.iterdir()) == []


def test_an_image_unreadable_when_hashed_is_an_image_error_naming_it(tmp_path, monkeypatch):
    """content_key reads each file: an OSError there (a permission, an I/O error) is one
    ImageError naming the file, as a missing file is."""
    from vsent.data.cache import content_key

    path = save_image(sentiment_image(1, np.random.default_rng(5)), tmp_path / "a.jpg")

    def refuse(p, algorithm):
        raise PermissionError(errno.EACCES, "Permission denied", p)

    monkeypatch.setattr(cache_mod, "file_digest", refuse)
    cache_mod._file_sha1.cache_clear()  # (a memo of an earlier read would hide the refusal)
    with pytest.raises(ImageError, match=re.escape(f"{path}: ")):
        content_key([path], 16)


@pytest.mark.parametrize(("v", "name"), [(0.5, "0.5"), (1e-05, "1e-05"), (3.0, "3"),
                                         (1.1000001, "1.1000001"), (1 / 3, repr(1 / 3)),
                                         (1234.0, "1234")])  # (:g's 6 digits, mut54b)
def test_key_number_is_short_where_exact_and_exact_otherwise(v, name):
    """Cache names keep the short ``:g`` text where it reads back as the same number; two
    numbers that print alike at 6 digits must not share a cache name."""
    from vsent.data.cache import key_number

    assert key_number(v) == name


def test_a_cache_file_of_another_shape_is_rebuilt_and_said_so(ds, cdir, caplog):
    """A uint8 file under the cache's name holding fewer rows (e.g. written by hand) is not
    served as the dataset's images."""
    arr = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    path, shape, expected = Path(arr.filename), arr.shape, np.array(arr)
    del arr
    np.save(path, expected[:3])
    again = image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    np.testing.assert_array_equal(again, expected)
    assert f"{path} holds uint8 {expected[:3].shape}, expected uint8 {shape}" in caplog.text


def test_the_first_failure_stops_the_decoding_of_the_rest(ds, cdir, monkeypatch, bad_images):
    """"First failure wins": after a bad image the images not yet started are not decoded
    (36 of them would be, for nothing, before the error reaches the user). The worker itself
    stops: with one worker not one more image is decoded (it went on until the caller's
    thread ran to cancel the rest, seen at 3 or more on a busy machine, mut54b)."""
    ds.paths[0].write_bytes(bad_images["truncated"].read_bytes())
    calls = _count_decodes(monkeypatch)
    with pytest.raises(ImageError, match=re.escape(str(ds.paths[0]))):
        image_cache(ds, SIZE, cache_dir=cdir, workers=1, progress=False)
    assert len(calls) == 1 < len(ds)


# mutation round 57 (mut57d): vsent.data.cache mutants the suite missed


def test_the_cache_file_is_the_filled_temporary_file_renamed_in(ds, cdir, monkeypatch):
    """The final name only ever appears complete: the temporary file that was filled is
    renamed over it (a copy into the final name would show a half-written cache to a
    concurrent run reading it)."""
    inodes: list[int] = []
    real = cache_mod.reserve_space

    def spy(path: Path) -> None:
        inodes.append(os.stat(path).st_ino)  # the temporary file, before it is filled
        real(path)

    monkeypatch.setattr(cache_mod, "reserve_space", spy)
    image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    (final,) = cdir.glob("images-*.npy")
    assert inodes == [final.stat().st_ino]


def test_reusing_the_cache_marks_it_used(ds, cdir):
    """``vsent cache --clean`` removes entries by their last use (the file's mtime): a cache
    reused every day must not read as unused since it was built."""
    image_cache(ds, SIZE, cache_dir=cdir, progress=False)
    (final,) = cdir.glob("images-*.npy")
    long_ago = time.time() - 30 * 24 * 3600
    os.utime(final, (long_ago, long_ago))
    image_cache(ds, SIZE, cache_dir=cdir, progress=False)  # reused, not rebuilt
    assert final.stat().st_mtime > long_ago + 24 * 3600


def test_no_more_decoding_threads_than_images(monkeypatch):
    """A batch of one image starts one thread, whatever ``workers`` says."""
    started: list[int] = []
    real = cache_mod.ThreadPoolExecutor

    def spy(max_workers: int) -> object:
        started.append(max_workers)
        return real(max_workers=max_workers)

    monkeypatch.setattr(cache_mod, "ThreadPoolExecutor", spy)
    out = cache_images([np.zeros((5, 7, 3), np.uint8)], SIZE, workers=8)
    assert out.shape == (1, SIZE, SIZE, 3) and started == [1]
