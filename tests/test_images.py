import contextlib
import gc
import io
import os
import re
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from conftest import png_header_only
from vsent.data import images
from vsent.data.images import load_resized, load_rgb, resize_rgb
from vsent.errors import DataError, ImageError

# ------------------------------------------------------------------------------------------
# files that must fail, each with a message "<path>: <reason>"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("truncated", "truncated image file"),
        ("empty", "empty file"),
        ("text", "cannot identify image file"),
        ("missing", "no such file or directory"),
        ("directory", "is a directory"),
    ],
)
def test_bad_files_raise_image_error_naming_the_file(bad_images, case, reason):
    path = bad_images[case]
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value).startswith(f"{path}: {reason}")
    assert "\n" not in str(info.value)


def test_random_bytes_cannot_be_identified(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 700, np.uint8).tobytes())
    with pytest.raises(ImageError, match=r"noise\.jpg: cannot identify image file"):
        load_rgb(path)


def test_corrupt_jpeg_header_is_an_image_error(bad_images):
    # JPEG start-of-image marker followed by garbage: PIL recognises the format, then fails
    # on the header. (A damaged compressed body behind a sound header decodes: libjpeg
    # recovers with grey blocks; the README says so.)
    with pytest.raises(ImageError, match=r"corrupt\.jpg: "):
        load_rgb(bad_images["corrupt"])


def test_image_error_is_a_data_error(bad_images):
    with pytest.raises(DataError):
        load_rgb(bad_images["empty"])


def test_str_path_and_pathlike_are_accepted(bad_images):
    a = np.asarray(load_rgb(str(bad_images["ok"])))
    b = np.asarray(load_rgb(bad_images["ok"]))
    assert a.shape == (12, 16, 3)
    np.testing.assert_array_equal(a, b)


def test_bytes_input(bad_images):
    data = bad_images["ok"].read_bytes()
    expected = np.asarray(load_rgb(bad_images["ok"]))
    np.testing.assert_array_equal(np.asarray(load_rgb(data)), expected)
    with pytest.raises(ImageError, match=r"^<bytes>: empty file$"):
        load_rgb(b"")
    with pytest.raises(ImageError, match=r"^<bytes>: cannot identify image file$"):
        load_rgb(b"hello, not an image")
    with pytest.raises(ImageError, match=r"^<bytes>: truncated image file$"):
        load_rgb(bad_images["truncated"].read_bytes())


def test_unsupported_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"^<int>: not an image"):
        load_rgb(42)


# ------------------------------------------------------------------------------------------
# modes


def test_gray_palette_and_cmyk_become_rgb(bad_images):
    gray = load_rgb(bad_images["gray"])
    assert gray.mode == "RGB" and gray.size == (16, 12)
    assert np.all(np.asarray(gray) == 77)

    pal = load_rgb(bad_images["palette"])
    expected = np.asarray(Image.open(bad_images["palette"]).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(pal), expected)

    cmyk = np.asarray(load_rgb(bad_images["cmyk"])).astype(int)
    assert Image.open(bad_images["cmyk"]).mode == "CMYK"
    assert np.all(np.abs(cmyk - [255, 0, 0]) <= 3)  # CMYK (0, 255, 255, 0) is red


@pytest.mark.parametrize("case", ["rgba", "la", "palette_transparent"])
def test_transparent_pixels_become_white(bad_images, case):
    img = load_rgb(bad_images[case])
    assert img.mode == "RGB"
    assert np.all(np.asarray(img) == 255)


def test_half_transparent_rgba_is_composited_over_white():
    arr = np.zeros((4, 5, 4), np.uint8)
    arr[..., 3] = 128  # black at ~50 % opacity
    img = np.asarray(load_rgb(Image.fromarray(arr)))
    assert np.all(np.abs(img.astype(int) - 127) <= 1)
    arr[..., :3] = (200, 10, 30)
    arr[..., 3] = 255  # opaque: colour unchanged
    np.testing.assert_array_equal(np.asarray(load_rgb(Image.fromarray(arr))), arr[..., :3])
    # mut54d H18: a palette image with alpha (PA), all transparent, is white, not its colour
    pa = Image.new("PA", (3, 2))
    pa.putpalette([200, 10, 30] * 256)
    assert np.all(np.asarray(load_rgb(pa)) == 255)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = (np.arange(12 * 16).reshape(12, 16) * 257).astype(np.uint16)  # 0..191, scaled
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = np.asarray(load_rgb(path))
    np.testing.assert_array_equal(out[..., 0], np.arange(12 * 16).reshape(12, 16))
    assert np.all(out[..., 0] == out[..., 2])


def test_32_bit_int_and_float_pil_images():
    wide = Image.fromarray(np.full((3, 4), 65535, np.int32))
    assert wide.mode == "I"
    assert np.all(np.asarray(load_rgb(wide)) == 255)
    narrow = Image.fromarray(np.full((3, 4), 100, np.int32))
    assert np.all(np.asarray(load_rgb(narrow)) == 100)
    flt = Image.fromarray(np.full((3, 4), 0.5, np.float32))
    assert flt.mode == "F"
    assert np.all(np.asarray(load_rgb(flt)) == 128)


def test_exif_orientation_6_is_applied(bad_images):
    path = bad_images["exif6"]
    raw = Image.open(path)
    assert raw.size == (16, 12) and raw.getexif()[0x0112] == 6
    img = load_rgb(path)
    assert img.size == (12, 16)  # width and height swapped
    # Orientation 6: the stored picture must be turned 90 degrees clockwise for display.
    np.testing.assert_array_equal(np.asarray(img), np.rot90(np.asarray(raw.convert("RGB")), k=-1))
    # mut54d H21: the orientation also turns an image whose alpha is composited over white
    # (the composite is a new image without the EXIF block: orientation comes first)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGBA", (16, 12), (200, 10, 30, 255)).save(buf, "PNG", exif=exif)
    assert load_rgb(buf.getvalue()).size == (12, 16)


def test_lazy_pil_image_of_a_truncated_file(bad_images):
    lazy = Image.open(bad_images["truncated"])
    with pytest.raises(ImageError, match=r"truncated\.jpg: truncated image file"):
        load_rgb(lazy)


def test_pil_image_input_is_not_modified():
    src = Image.new("L", (5, 3), 9)
    out = load_rgb(src)
    assert out.mode == "RGB" and src.mode == "L"


# ------------------------------------------------------------------------------------------
# decompression bombs


def test_max_pixels_is_enforced_before_decoding(bad_images, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = bad_images["ok"]  # 16 x 12 = 192 pixels
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value) == (f"{path}: image has 16x12 pixels, above the limit of 100 "
                               f"(vsent.data.images.MAX_PIXELS)")


def test_the_pixel_limit_guards_decoding_not_images_already_in_memory(bad_images,
                                                                      monkeypatch):
    """trial33 #12: a PIL image made in memory was refused above the limit, the same pixels as
    an array were not; both are decoded already. Image.open's image is still to decode."""
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    assert load_rgb(Image.new("RGB", (16, 12))).size == (16, 12)
    assert load_rgb(np.zeros((12, 16, 3), np.uint8)).size == (16, 12)
    with pytest.raises(ImageError, match=r"image has 16x12 pixels, above the limit of 100"):
        load_rgb(Image.open(bad_images["ok"]))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("width", "height", "reason"),
    [
        (9000, 8000, "image has 9000x8000 pixels, above the limit of 64000000"),  # 72 M: ours
        # PIL refuses these first (a warning made an error, then its error): our limit is named
        (10000, 10000, "image has 100000000 pixels, above the limit of 64000000"),
        (100000, 100000, "image has 10000000000 pixels, above the limit of 64000000"),
    ],
)
def test_png_header_claiming_a_huge_size(tmp_path, width, height, reason):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(width, height))
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value).startswith(f"{path}: {reason}")
    assert "89478485" not in str(info.value)  # PIL's own limit, which is not the one in force


def test_warning_filters_are_restored_after_bombs_in_threads(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10000, 10000))
    before = list(warnings.filters)

    def attempt(_):
        with pytest.raises(ImageError):
            load_rgb(path)

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(attempt, range(16)))
    assert warnings.filters == before


# ------------------------------------------------------------------------------------------
# arrays


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 1)])
def test_gray_arrays(shape):
    arr = np.arange(30, dtype=np.uint8).reshape(shape)
    out = np.asarray(load_rgb(arr))
    assert out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out[..., 1], arr.reshape(6, 5))


def test_rgb_uint16_and_float_arrays_agree():
    rgb8 = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(load_rgb(rgb8)), rgb8)
    np.testing.assert_array_equal(np.asarray(load_rgb(rgb8.astype(np.uint16) * 257)), rgb8)
    np.testing.assert_array_equal(np.asarray(load_rgb(rgb8 / 255.0)), rgb8)
    np.testing.assert_array_equal(np.asarray(load_rgb((rgb8 / 255.0).astype(np.float32))), rgb8)


def test_rgba_array_is_composited():
    arr = np.zeros((2, 3, 4), np.uint8)  # transparent black
    assert np.all(np.asarray(load_rgb(arr)) == 255)


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (np.zeros((2, 3, 5, 7), np.uint8), r"shape \(2, 3, 5, 7\) is not an image"),
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\) is not an image"),
        (np.zeros(10, np.uint8), r"shape \(10,\) is not an image"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\) has no pixels"),
        (np.zeros((4, 4, 3), np.int64), r"dtype int64 is not supported"),
        (np.full((4, 4, 3), 3.0), r"values must lie in \[0, 1\], got min 3 and max 3"),
        (np.full((4, 4), -0.5, np.float32), r"got min -0.5 and max -0.5"),
        (np.array([[0.25, 2.0]]), r"got min 0.25 and max 2 "),  # mut54d H12
        (np.full((4, 4, 3), np.nan), r"NaN or infinite"),
    ],
)
def test_bad_arrays(arr, message):
    with pytest.raises(ImageError, match=r"^<array>: .*" + message):
        load_rgb(arr)


# ------------------------------------------------------------------------------------------
# resize


def test_resize_rgb_shape_dtype_and_constant_images():
    img = Image.new("RGB", (37, 23), (10, 200, 90))
    out = resize_rgb(img, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.all(out == [10, 200, 90])
    assert out.flags.writeable


def test_resize_rgb_is_antialiased():
    checker = ((np.indices((256, 256)).sum(0) % 2) * 255).astype(np.uint8)
    out = resize_rgb(Image.fromarray(checker).convert("RGB"), 8)
    # Without antialiasing, bilinear sampling of a 1-pixel checkerboard gives 0 or 255.
    assert np.all(np.abs(out.astype(int) - 128) <= 2)


def test_resize_rgb_warps_without_keeping_aspect_and_matches_pil(bad_images):
    img = load_rgb(bad_images["ok"])  # 16 x 12
    out = resize_rgb(img, 8)
    expected = np.asarray(img.resize((8, 8), Image.Resampling.BILINEAR, reducing_gap=None))
    np.testing.assert_array_equal(out, expected)


def test_resize_rgb_accepts_anything_load_rgb_accepts(bad_images):
    np.testing.assert_array_equal(resize_rgb(bad_images["gray"], 4), np.full((4, 4, 3), 77))
    with pytest.raises(ImageError, match="empty file"):
        resize_rgb(bad_images["empty"], 4)


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "8"])
def test_resize_rgb_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="size must be a positive integer"):
        resize_rgb(Image.new("RGB", (4, 4)), size)


def test_load_rgb_is_thread_safe(bad_images):
    paths = [bad_images[k] for k in ("ok", "gray", "cmyk", "rgba", "exif6")] * 8
    expected = [np.asarray(load_rgb(p)) for p in paths]
    results = {}

    def work(i):
        results[i] = np.asarray(load_rgb(paths[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(results[i], e)


def test_loaded_image_is_detached_from_the_file(bad_images, tmp_path):
    img = load_rgb(bad_images["ok"])
    # Still usable after the file was closed (and would be after it is deleted).
    assert np.asarray(img).shape == (12, 16, 3)
    assert isinstance(img.copy(), Image.Image)
    # the pixels are in memory: the same values once the file is gone, and no handle kept
    path = tmp_path / "gone.jpg"
    path.write_bytes(bad_images["ok"].read_bytes())
    expected = np.asarray(Image.open(path).convert("RGB"))
    img = load_rgb(path)
    assert getattr(img, "fp", None) is None
    if Path("/proc/self/fd").is_dir():  # Linux: no descriptor of this process points at it
        fds = [Path("/proc/self/fd", fd) for fd in os.listdir("/proc/self/fd")]
        assert str(path) not in {os.path.realpath(fd) for fd in fds}
    path.unlink()
    np.testing.assert_array_equal(np.asarray(img), expected)


# ------------------------------------------------------------------------------------------
# load_resized: the one decode path of training, prediction and explanations


def _smooth_photo(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1).astype(np.uint8)


def test_load_rgb_min_side_decodes_big_jpegs_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth_photo(1600, 1200)).save(path, quality=95)
    assert load_rgb(path).size == (1600, 1200)
    assert load_rgb(path, min_side=256).size == (400, 300)  # 1/4: both sides still >= 256
    assert load_rgb(path, min_side=1).size == (200, 150)  # 1/8, libjpeg's smallest scale
    # mut59f F104: a side below 1 is the caller's error, not the image's (0 was libjpeg's
    # ZeroDivisionError, reported as "cannot decode image" of a good file)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="min_side must be a positive integer"):
            load_rgb(path, min_side=bad)
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        load_resized(path, 0)
    assert load_rgb(path, min_side=1500).size == (1600, 1200)  # 1/2 would be too small
    assert load_rgb(path, min_side=350).size == (800, 600)  # mut54d H31: the short side decides
    png = tmp_path / "big.png"
    Image.fromarray(_smooth_photo(1600, 1200)).save(png)
    assert load_rgb(png, min_side=256).size == (1600, 1200)  # only JPEG has DCT scaling


def test_load_resized_matches_a_full_decode_closely(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth_photo(1600, 1200)).save(path, quality=95)
    fast = load_resized(path, 64)
    full = resize_rgb(load_rgb(path), 64)
    assert fast.shape == (64, 64, 3) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - full).max() <= 3
    # small images and non-file inputs take the exact path
    arr = _smooth_photo(40, 30)
    np.testing.assert_array_equal(load_resized(arr, 16), resize_rgb(arr, 16))


def test_load_resized_keeps_exif_orientation(bad_images, tmp_path):
    out = load_resized(bad_images["exif6"], 8)
    np.testing.assert_array_equal(out, resize_rgb(load_rgb(bad_images["exif6"]), 8))
    # a JPEG big enough for the reduced-scale (draft) decode: EXIF 6 is still applied there
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "big_exif6.jpg"
    Image.fromarray(_smooth_photo(640, 480)).save(path, quality=95, exif=exif)
    assert load_rgb(path, min_side=32).size == (60, 80)  # decoded at 1/8, then turned
    fast = load_resized(path, 16)
    turned = np.rot90(np.asarray(Image.open(path).convert("RGB")), k=-1)  # clockwise
    want = resize_rgb(np.ascontiguousarray(turned), 16)
    assert np.abs(fast.astype(int) - want).max() <= 3
    unturned = resize_rgb(Image.open(path).convert("RGB"), 16)
    assert np.abs(fast.astype(int) - unturned).max() > 50  # the check can tell


# ------------------------------------------------------------------------------------------
# damaged files that make PIL raise what it does not document, and formats vsent does not read
# (found by a mutation fuzz of load_resized; the bytes are made here)


def damaged_tiff(tag_type: int = 5) -> bytes:
    """A 16x12 RGB TIFF whose StripOffsets entry (tag 273) claims the type ``tag_type``:
    RATIONAL (5) or FLOAT (11) make PIL's decoder raise TypeError on load."""
    arr = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 273:
            struct.pack_into("<H", data, entry + 2, tag_type)
    return bytes(data)


def dds_bytes(size: tuple[int, int] = (16, 12)) -> bytes:
    """An RGB DDS file (a format PIL reads and vsent does not)."""
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, "DDS")
    return buf.getvalue()


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"


@pytest.mark.parametrize("tag_type", [5, 11])
def test_a_damaged_tiff_is_an_image_error_not_a_type_error(tmp_path, tag_type):
    data = damaged_tiff(tag_type)
    path = tmp_path / "damaged.tif"
    path.write_bytes(data)
    for src, where in ((path, str(path)), (data, "<bytes>")):
        with pytest.raises(ImageError, match=rf"^{re.escape(where)}: cannot decode image: "
                                             r"TypeError: .+ cannot be interpreted as an integer"):
            load_resized(src, 8)
    with pytest.raises(ImageError, match=r"^<PIL image>: cannot decode image: TypeError"):
        resize_rgb(Image.open(io.BytesIO(data)), 8)  # a lazy RGB image decodes in the resize


@pytest.mark.parametrize("error", [NotImplementedError("Unimplemented pixel format 0"),
                                   AttributeError("no attribute 'stkoffset'"),
                                   struct.error("unpack requires a buffer of 4 bytes")])
def test_any_exception_of_a_plugin_is_an_image_error(tmp_path, monkeypatch, error):
    """What DDS, SPIDER and IM raised on damaged headers: the image's failure, a row."""
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG whatever")
    raised = [error]

    def broken(*args, **kwargs):
        raise raised[0]

    monkeypatch.setattr(Image, "open", broken)
    with pytest.raises(ImageError, match=rf"^{re.escape(str(path))}: cannot decode image: "
                                         rf"{type(error).__name__}: "):
        load_rgb(path)
    # Ctrl-C and a real memory shortage are not the image's fault: they still propagate
    for stop in (KeyboardInterrupt(), MemoryError()):
        raised[0] = stop
        with pytest.raises(type(stop)):
            load_rgb(path)


def test_only_the_formats_of_the_image_suffixes_are_read(tmp_path):
    from vsent.data.datasets import IMAGE_EXTENSIONS

    Image.init()
    assert set(images.FORMATS) == {Image.registered_extensions()[e] for e in IMAGE_EXTENSIONS}
    # mut51d G54: FITS is told by its first 6 bytes ("SIMPLE"), more than DDS's and EPS's 4
    fits = b"SIMPLE  =                    T" + b" " * 50
    for data, fmt in ((dds_bytes(), "DDS"), (EPS, "EPS"), (fits, "FITS")):
        with pytest.raises(ImageError, match=rf"^<bytes>: not a supported image format \({fmt}; "
                                             "vsent reads JPEG, PNG"):
            load_rgb(data)
        path = tmp_path / "named.jpg"  # whatever its name says
        path.write_bytes(data)
        with pytest.raises(ImageError, match=rf"named\.jpg: not a supported image format \({fmt}"):
            load_resized(path, 8)
    for fmt in images.FORMATS:  # each of those is read, whatever its name
        buf = io.BytesIO()
        Image.new("RGB", (9, 7), (200, 30, 30)).save(buf, fmt)
        assert load_rgb(buf.getvalue()).size == (9, 7), fmt
    # an AVIF under a .jpg name, as web scrapes hold them, is read (a mainstream format)
    Image.new("RGB", (9, 7), (200, 30, 30)).save(tmp_path / "web.jpg", "AVIF")
    assert load_resized(tmp_path / "web.jpg", 8).shape == (8, 8, 3)


def test_a_fifo_a_device_and_a_nul_byte_are_named(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # reading it would block: refused from its stat, never opened
    with pytest.raises(ImageError, match=r"pipe\.jpg: not a regular file"):
        load_rgb(fifo)
    with pytest.raises(ImageError, match=r"^/dev/zero: not a regular file"):
        load_rgb("/dev/zero")  # not "empty file" (its size is 0), and never read to its end
    with pytest.raises(ImageError, match=r"not a valid path \(embedded null byte\)"):
        images.stat_file(Path("a\0b.jpg"))


def test_messages_name_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "sub" / "empty.jpg").write_bytes(b"")
    (tmp_path / "sub" / "dir.jpg").mkdir()
    for given, reason in (("./missing.jpg", "no such file or directory"),
                          ("./sub/empty.jpg", "empty file"),  # mut54d H01
                          ("./sub/dir.jpg", "is a directory, not an image file"),  # H19
                          ("sub//bad.jpg", "cannot identify image file"),
                          ("./sub/../sub/bad.jpg", "cannot identify image file")):
        with pytest.raises(ImageError) as info:
            load_rgb(given)
        assert str(info.value) == f"{given}: {reason}"  # as the row's path, not Path()'s form


# ------------------------------------------------------------------------------------------
# audit_data23: MAX_PIXELS above PIL's limit (#7), resize_rgb of an opened file (#8), MPO (#10),
# a 16-bit PNG with a transparent key (#11)


@pytest.mark.filterwarnings("error")
def test_max_pixels_can_be_raised_above_pils_limit(monkeypatch):
    pil_limit = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(images, "MAX_PIXELS", 200_000_000)
    # 100 M pixels: above PIL's default limit, below vsent's; opened header only (no pixels)
    im = images._open(io.BytesIO(png_header_only(10000, 10000)), "<bytes>")
    try:
        assert im.size == (10000, 10000)
        images._check_pixels(im, "<bytes>")
    finally:
        im.close()
    assert pil_limit == Image.MAX_IMAGE_PIXELS  # PIL's own limit is back
    # above vsent's limit: refused, and the limit named is the one in force
    with pytest.raises(ImageError) as info:
        load_rgb(png_header_only(20000, 15000))
    assert str(info.value).startswith("<bytes>: image has 300000000 pixels, above the limit "
                                      "of 200000000 (vsent.data.images.MAX_PIXELS")
    assert pil_limit == Image.MAX_IMAGE_PIXELS


def test_resize_rgb_of_an_opened_file_applies_exif_orientation_and_the_limit(bad_images,
                                                                            monkeypatch):
    path = bad_images["exif6"]  # 16x12 RGB JPEG, EXIF orientation 6
    want = resize_rgb(load_rgb(path), 8)
    with Image.open(path) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(resize_rgb(im, 8), want)
    with Image.open(path) as im:
        im.load()  # loaded, still a file's image with its orientation to apply
        np.testing.assert_array_equal(resize_rgb(im, 8), want)
    np.testing.assert_array_equal(load_resized(path, 8), want)
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with Image.open(bad_images["ok"]) as im, pytest.raises(ImageError, match="above the limit "
                                                                             "of 100"):
        resize_rgb(im, 8)


def test_mpo_jpeg_decodes_at_reduced_scale(tmp_path):
    # cameras write MPO (a JPEG followed by more pictures); Pillow opens it as MpoImageFile
    pic = Image.fromarray(_smooth_photo(640, 480))
    path = tmp_path / "camera.jpg"
    pic.save(path, "MPO", save_all=True, append_images=[pic], quality=95)
    with Image.open(path) as im:
        assert im.format == "MPO"
    assert load_rgb(path, min_side=1).size == (80, 60)  # 1/8 scale, as a plain JPEG
    assert load_rgb(path, min_side=200).size == (320, 240)
    assert load_rgb(path).size == (640, 480)


def test_16_bit_png_with_a_transparent_key_is_composited_over_white(tmp_path):
    a = np.full((4, 6), 5140, np.uint16)  # 5140 / 257 = 20
    a[1, 2] = a[3, 5] = 1000  # the transparent key value
    path = tmp_path / "key16.png"
    Image.fromarray(a).save(path, transparency=1000)
    with Image.open(path) as im:
        assert im.mode == "I;16" and im.info["transparency"] == 1000
    out = np.asarray(load_rgb(path))
    assert out[1, 2].tolist() == out[3, 5].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [20, 20, 20]
    assert int((out == 255).all(axis=2).sum()) == 2


# mutation round 43 (mut43): tests that kill mutants the suite missed


def test_resize_rgb_filters_the_whole_image_on_a_large_shrink():
    """mut43 IM03: ``reducing_gap=None``: the bilinear filter runs over the whole image, with
    no box-filter ``reduce()`` first (the existing comparison shrank 16 x 12 to 8, where a gap
    of 2 never applies). Noise shrunk 256 -> 16 is PIL's exact bilinear resize."""
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    want = np.asarray(img.resize((16, 16), Image.Resampling.BILINEAR, reducing_gap=None))
    assert not np.array_equal(
        want, np.asarray(img.resize((16, 16), Image.Resampling.BILINEAR, reducing_gap=2.0)))
    np.testing.assert_array_equal(resize_rgb(img, 16), want)


def test_load_resized_decodes_a_jpeg_at_twice_the_side_it_warps_to(tmp_path):
    """mut43 IM05: a JPEG decodes at the smallest DCT scale keeping both sides >= 2 x size:
    1600 x 1200 warped to 150 decodes at 1/4 (400 x 300), not at 1/8 (200 x 150), which
    keeps them >= 150 only. (Warped to 64, as before, both give 1/8.)"""
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth_photo(1600, 1200)).save(path, quality=95)
    want = resize_rgb(load_rgb(path, min_side=300), 150)
    assert load_rgb(path, min_side=300).size == (400, 300)
    assert not np.array_equal(want, resize_rgb(load_rgb(path, min_side=150), 150))
    np.testing.assert_array_equal(load_resized(path, 150), want)


def test_an_8_bit_range_int_image_keeps_its_values_up_to_255():
    """mut43 IM07: a mode "I" image whose values stay within 0..255 is 8-bit data (kept); only
    values above 255 mean 16-bit data (divided by 257)."""
    values = np.array([[0, 1, 128], [200, 254, 255]], np.int32)
    img = Image.fromarray(values)
    assert img.mode == "I"
    out = np.asarray(load_rgb(img))
    np.testing.assert_array_equal(out[..., 0], values)
    np.testing.assert_array_equal(out[..., 2], values)
    # mut54d H11: negative values are clipped to 0, not wrapped around (-5 -> 251)
    negative = load_rgb(Image.fromarray(np.array([[-5, 100]], np.int32)))
    assert np.asarray(negative)[0, :, 0].tolist() == [0, 100]


def test_a_float_image_of_0_to_1_reaches_255():
    """mut43 IM08: a mode "F" image whose values lie in 0..1, 1.0 included, is scaled by 255
    (1.0 -> 255, 0.5 -> 128), not read as 0..255 data."""
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert img.mode == "F"
    np.testing.assert_array_equal(np.asarray(load_rgb(img))[0, :, 1], [0, 128, 255])
    # mut59f F94: values outside 0..255 are clipped, not wrapped (-5 -> 251, 300 -> 44)
    img = Image.fromarray(np.array([[-5.0, 100.0, 300.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(load_rgb(img))[0, :, 1], [0, 100, 255])


def test_uint16_and_float_arrays_are_scaled_with_rounding():
    """mut43 IM09, IM10, IM20: uint16 -> round(v / 257) (200 -> 1, 383 -> 1, 385 -> 1, 386 -> 2,
    65535 -> 255; a shift by 8 bits gives 0 for 200), float -> round(v * 255) (0.5 -> 128,
    0.999 -> 255; truncation gives 127 and 254), 1.0 included in [0, 1]."""
    u16 = np.array([[0, 200, 383, 385, 386, 65535]], np.uint16)
    np.testing.assert_array_equal(np.asarray(load_rgb(u16))[0, :, 0], [0, 1, 1, 1, 2, 255])
    flt = np.array([[0.0, 0.5, 0.999, 1.0]])
    np.testing.assert_array_equal(np.asarray(load_rgb(flt))[0, :, 0], [0, 128, 255, 255])


def test_an_rgb_png_with_a_transparent_colour_key_becomes_white_there(tmp_path):
    """mut43 IM11: an RGB PNG may mark one colour transparent (tRNS): those pixels are
    composited over white like any transparency, the others kept."""
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[:, 2:] = (10, 120, 200)
    path = tmp_path / "keyed.png"
    Image.fromarray(arr).save(path, transparency=(0, 0, 0))
    assert Image.open(path).mode == "RGB" and "transparency" in Image.open(path).info
    out = np.asarray(load_rgb(path))
    assert np.all(out[:, :2] == 255)
    assert np.all(out[:, 2:] == (10, 120, 200))


def test_an_image_of_exactly_max_pixels_is_accepted(bad_images, monkeypatch):
    """mut43 IM13: the limit is the largest size accepted: 16 x 12 = 192 pixels pass a limit
    of 192 and are refused by 191."""
    path = bad_images["ok"]  # 16 x 12
    monkeypatch.setattr(images, "MAX_PIXELS", 192)
    assert load_rgb(path).size == (16, 12)
    monkeypatch.setattr(images, "MAX_PIXELS", 191)
    with pytest.raises(ImageError, match="image has 16x12 pixels, above the limit of 191"):
        load_rgb(path)


def test_an_array_of_no_columns_is_refused_by_name():
    """mut43 IM23: an array of zero width has no pixels, as one of zero height."""
    with pytest.raises(ImageError, match=r"^<array>: array of shape \(4, 0, 3\) has no pixels"):
        load_rgb(np.zeros((4, 0, 3), np.uint8))


# mutation round 48 (mut48a): tests that kill mutants the suite missed


def test_bytes_of_a_big_jpeg_decode_at_the_reduced_scale_of_its_file(tmp_path):
    """mut48a I05: ``min_side`` reaches the decode of bytes too: load_resized of a big JPEG's
    bytes gives the pixels of its path (1/4-scale decode), not those of a full decode."""
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth_photo(1600, 1200)).save(path, quality=95)
    data = path.read_bytes()
    assert load_rgb(data, min_side=300).size == (400, 300)
    want = load_resized(path, 150)
    assert not np.array_equal(want, resize_rgb(load_rgb(path), 150))  # the check can tell
    np.testing.assert_array_equal(load_resized(data, 150), want)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I"])
def test_resize_rgb_of_an_in_memory_image_of_another_mode_gives_rgb(mode):
    """mut48a I07: only an RGB image made in memory skips load_rgb; an L, RGBA, P or I one is
    converted first (an L image resized as it is would give (size, size), not 3 channels)."""
    img = Image.new("RGB", (6, 4), (30, 30, 30)).convert(mode)
    out = resize_rgb(img, 3)
    assert out.shape == (3, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, resize_rgb(load_rgb(img), 3))


def test_a_broken_symbolic_link_is_named_as_such(tmp_path):
    """mut48a I13: a link whose target is missing says so (the link itself is there)."""
    link = tmp_path / "link.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ImageError) as info:
        load_rgb(link)
    assert str(info.value) == f"{link}: broken symbolic link (its target is missing)"


def test_a_missing_file_whose_link_check_fails_is_missing(tmp_path, monkeypatch):
    """mut59f F87: a path whose link check itself fails (a folder on the way not readable)
    is no link: the file is named missing, not a broken symbolic link."""
    def refused(self: Path) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_symlink", refused)
    missing = tmp_path / "gone.jpg"
    with pytest.raises(ImageError) as info:
        load_rgb(missing)
    assert str(info.value) == f"{missing}: no such file or directory"


def test_a_damaged_file_of_a_read_format_is_not_called_unsupported(tmp_path):
    """mut48a I20: bytes with a PNG signature and no valid chunk are a PNG PIL cannot identify,
    not "a format vsent does not read": only formats outside FORMATS are named."""
    data = b"\x89PNG\r\n\x1a\n" + bytes(30)
    with pytest.raises(ImageError) as info:
        load_rgb(data)
    assert str(info.value) == "<bytes>: cannot identify image file"
    path = tmp_path / "broken.png"
    path.write_bytes(data)
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value) == f"{path}: cannot identify image file"


@pytest.mark.filterwarnings("error")
def test_pils_limit_turned_off_leaves_vsents_limit(monkeypatch, bad_images):
    """mut48a I24: a user may turn PIL's check off (MAX_IMAGE_PIXELS = None): images still
    open, vsent's own limit still refuses (naming W x H), and PIL's None is left as it was."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert load_rgb(bad_images["ok"]).size == (16, 12)
    with pytest.raises(ImageError) as info:
        load_rgb(png_header_only(10000, 10000))
    assert str(info.value) == ("<bytes>: image has 10000x10000 pixels, above the limit of "
                               "64000000 (vsent.data.images.MAX_PIXELS)")
    assert Image.MAX_IMAGE_PIXELS is None


@pytest.mark.parametrize(("error", "message"), [
    (PermissionError(13, "Permission denied"), "permission denied"),
    (KeyError("tile"), "cannot decode image header: 'tile'"),
    (FileNotFoundError(2, "No such file or directory"), "no such file or directory"),
])
def test_errors_of_the_open_are_image_errors_naming_the_file(tmp_path, monkeypatch, error,
                                                              message):
    """mut48a I29, I30, I79: a PermissionError of the open (root reads any file, so it is
    raised here) is "permission denied", a plugin's KeyError on a malformed header is a header
    failure, a file deleted between its stat and its open is missing; all name the file and
    none stops the run."""
    path = tmp_path / "locked.jpg"
    path.write_bytes(b"\xff\xd8\xff whatever")

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(Image, "open", failing)
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value) == f"{path}: {message}"


def test_an_unreadable_exif_block_is_logged_and_the_picture_kept(bad_images, monkeypatch,
                                                                  caplog):
    """mut48a I32, I42, I43: when ImageOps.exif_transpose fails, the image is kept as stored
    (a full copy, usable after the file is closed) and the failure is a logged warning."""
    from PIL import ImageOps

    def broken(*args, **kwargs):
        # (a message that starts with a line break: its first line of text is what is shown,
        # not an empty reason; mut59f F111)
        raise SyntaxError("\n  bad EXIF\nsecond line")

    want = np.asarray(Image.open(bad_images["ok"]).convert("RGB"))
    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    with caplog.at_level("WARNING", logger="vsent"):
        img = load_rgb(bad_images["ok"])
    np.testing.assert_array_equal(np.asarray(img), want)
    assert [r.getMessage() for r in caplog.records] == [
        f"{bad_images['ok']}: ignoring unreadable EXIF orientation (bad EXIF)"]


def _open_fds_to(path: Path) -> int:
    fds = Path("/proc/self/fd")
    n = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # (the listing's own fd is gone)
            n += os.readlink(fd) == str(path)
    return n


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_multi_frame_file_is_closed_after_loading(tmp_path):
    """mut48a I33: PIL keeps a multi-frame file (GIF) open after load() for its next frames;
    load_rgb closes it itself, not the garbage collector (with a ResourceWarning) later."""
    path = tmp_path / "two.gif"
    frames = [Image.new("RGB", (6, 4), c) for c in ((200, 0, 0), (0, 0, 200))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        img = load_rgb(path)
        gc.collect()
    assert img.size == (6, 4)
    assert _open_fds_to(path) == 0
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.parametrize("size", [(0, 5), (5, 0)])
def test_an_image_of_zero_size_is_refused(size):
    """mut48a I34: a PIL image with no pixels is refused by name and size."""
    w, h = size
    with pytest.raises(ImageError) as info:
        load_rgb(Image.new("RGB", size))
    assert str(info.value) == f"<PIL image>: image has zero size {w}x{h}"


@pytest.mark.parametrize(("error", "reason"), [
    (EOFError(), "truncated image file"),
    (MemoryError("cannot allocate 9 GB"), "cannot decode image: cannot allocate 9 GB"),
    (OSError(), "cannot decode image: OSError"),
])
def test_an_error_of_the_pixel_decode_is_the_images_failure(bad_images, monkeypatch, error,
                                                            reason):
    """mut48a I39, I41, I62: errors of the pixel decode are the image's failure, naming it.
    PIL's decoders signal a stream that ends early by EOFError (no message) as well as by
    "truncated" OSErrors: both are "truncated image file". A MemoryError there (a damaged
    header's giant allocation) is "cannot decode image: <reason>" (the open's still
    propagates). An exception with an empty message gives its type as the reason, never an
    empty one ("...: cannot decode image: ")."""
    lazy = Image.open(bad_images["ok"])

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(lazy, "load", fail)
    with pytest.raises(ImageError) as info:
        load_rgb(lazy)
    assert str(info.value) == f"{bad_images['ok']}: {reason}"


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "<i4"])
def test_wide_integer_images_are_scaled_by_257_in_every_byte_order(dtype):
    """mut48a I46, I48, I59: 16-bit images of either byte order (I;16, I;16B) and 32-bit "I"
    images with values above 255 are divided by 257 (25700 -> 100), not clipped to 255; a
    16-bit image is scaled even when all its values are <= 255 (200 -> 1)."""
    values = np.array([[25700, 0, 65535]], dtype)
    img = Image.fromarray(values)
    assert img.mode == {"<u2": "I;16", ">u2": "I;16B", "<i4": "I"}[dtype]
    np.testing.assert_array_equal(np.asarray(load_rgb(img))[0, :, 1], [100, 0, 255])
    if dtype != "<i4":
        low = Image.fromarray(np.array([[200, 0, 129]], dtype))
        np.testing.assert_array_equal(np.asarray(load_rgb(low))[0, :, 0], [1, 0, 1])


def test_an_unconvertible_mode_is_named_with_the_image():
    """mut48a I53: PIL converts no "La" (premultiplied) image to RGB: the refusal names the
    image, the mode and PIL's reason."""
    with pytest.raises(ImageError) as info:
        load_rgb(Image.new("La", (2, 2)))
    assert str(info.value) == ("<PIL image>: cannot convert mode La to RGB: conversion from "
                               "La to L not supported")


def test_a_failing_resize_is_an_image_error_but_a_memory_shortage_propagates(monkeypatch):
    """mut48a I74: whatever the resize of a decoded image raises is the image's failure,
    except MemoryError (a real shortage stops the run, as in the open)."""
    img = Image.new("RGB", (6, 4))
    raised = [ValueError("boom")]

    def fail(*args, **kwargs):
        raise raised[0]

    monkeypatch.setattr(img, "resize", fail)
    with pytest.raises(ImageError) as info:
        resize_rgb(img, 3)
    assert str(info.value) == "<PIL image>: cannot decode image: ValueError: boom"
    raised[0] = MemoryError()
    with pytest.raises(MemoryError):
        resize_rgb(img, 3)


def test_a_memory_shortage_in_the_mode_conversion_propagates(monkeypatch):
    """mut51d G59: as in the resize, a MemoryError of the conversion to RGB (a huge CMYK or
    palette image) stops the run instead of passing for a damaged image."""
    def fail(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Image.Image, "convert", fail)
    with pytest.raises(MemoryError):
        load_rgb(Image.new("P", (3, 2)))


def test_a_memoryview_of_encoded_bytes_is_read_as_bytes(bad_images):
    """mut48a I75: a memoryview (a slice of a larger buffer, no copy) is encoded bytes too."""
    data = bad_images["ok"].read_bytes()
    np.testing.assert_array_equal(np.asarray(load_rgb(memoryview(data))),
                                  np.asarray(load_rgb(data)))
    with pytest.raises(ImageError, match=r"^<bytes>: empty file$"):
        load_rgb(memoryview(b""))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_pil_image_with_nan_or_inf_is_refused(bad):
    """mut48a I76: a mode "F" image holding NaN or infinity is refused, not cast to garbage."""
    img = Image.fromarray(np.array([[bad, 0.5]], np.float32))
    assert img.mode == "F"
    with pytest.raises(ImageError) as info:
        load_rgb(img)
    assert str(info.value) == "<PIL image>: float image contains NaN or infinite values"


def test_a_path_through_a_file_is_named_with_the_systems_reason(tmp_path):
    """mut48a I78: stat's other OSErrors (here ENOTDIR: a file used as a folder) are an
    ImageError naming the path with the C library's reason in lower case."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    path = tmp_path / "a.jpg" / "b.jpg"
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value) == f"{path}: not a directory"


# mutation round 57 (mut57f): tests that kill mutants the suite missed


def test_a_bomb_is_refused_by_pils_count_even_where_warnings_are_not_errors(tmp_path):
    """mut57f I72: PIL only warns between its limit and twice it; _open makes that warning an
    error itself. Outside pytest's filterwarnings("error") (a user's process) the bomb is
    still named by PIL's pixel count, and no DecompressionBombWarning leaks out."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10000, 10000))  # 100 M: above PIL's 89 M, below 2x
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageError) as info:
            load_rgb(path)
    assert str(info.value).startswith(f"{path}: image has 100000000 pixels, above the limit")
    assert "decompression bomb?" in str(info.value)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_plugin_that_answers_a_warning_string_does_not_name_the_format(monkeypatch):
    """mut57f I71: a plugin whose codec is missing answers its check with a warning string
    (Pillow's WEBP and AVIF do), which is not a match: unknown bytes stay "cannot identify",
    not "not a supported image format (FAKE)"."""
    Image.init()
    monkeypatch.setitem(Image.OPEN, "FAKE", (ImageFile.ImageFile,
                                             lambda head: "FAKE support not installed"))
    with pytest.raises(ImageError) as info:
        load_rgb(b"no known signature at all")
    assert str(info.value) == "<bytes>: cannot identify image file"
