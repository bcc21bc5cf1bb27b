"""Safe image decoding: anything a user may hand us becomes an RGB ``PIL.Image`` or an ImageError.

Every failure (missing, empty, corrupt, truncated, non-image, too many pixels, unsupported array,
any exception of PIL's decoders) raises :class:`vsent.errors.ImageError` with the message
``"<where>: <reason>"``, where ``<where>`` is the file path as given, ``<bytes>``,
``<PIL image>`` or ``<array>``. Files and bytes are opened only as one of :data:`FORMATS`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vsent.data._common import positive_int
from vsent.errors import ImageError, NotAnImageError, os_reason

__all__ = ["BYTES_NAME", "FORMATS", "MAX_PIXELS", "ImageSource", "load_resized", "load_rgb",
           "resize_rgb", "stat_file"]

logger = logging.getLogger("vsent")

#: Largest image (width x height) we agree to decode. Larger ones are rejected *before* the
#: pixel data is allocated, so a small "decompression bomb" file cannot exhaust memory. It may
#: be set above PIL's own limit (``PIL.Image.MAX_IMAGE_PIXELS``): PIL's is raised to it while
#: vsent opens a file.
MAX_PIXELS = 64_000_000
#: How messages name an image given as bytes (the service names the upload itself).
BYTES_NAME = "<bytes>"

#: The PIL formats files and bytes are opened as: those of the suffixes vsent looks for
#: (:data:`vsent.data.datasets.IMAGE_EXTENSIONS`; a test keeps the two in step). The other
#: formats PIL knows (EPS through Ghostscript, DDS, SPIDER, FITS, ...) are refused unread: a
#: service must not run them on uploads, and their plugins are where damaged files raise the
#: unexpected.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "AVIF", "TIFF", "PPM")

#: Anything :func:`load_rgb` accepts.
ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray

# Modes that carry an alpha channel: composited over white (transparent logos look as on a page).
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# Integer modes wider than 8 bits: PIL's own convert("RGB") clips them instead of scaling.
_WIDE_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# warnings.catch_warnings() swaps a process-global filter list, and _open sets PIL's global
# MAX_IMAGE_PIXELS; serialise our (cheap, header-only) Image.open calls so concurrent loader
# threads cannot leave each other's filters or limits behind.
_OPEN_LOCK = threading.Lock()
# JPEG formats libjpeg can decode at a reduced scale (draft): MPO is a JPEG with more pictures
# after the first (cameras), which Pillow's JPEG opener returns as an MpoImageFile.
_DRAFT_FORMATS = ("JPEG", "MPO")


def load_rgb(src: ImageSource, *, min_side: int | None = None) -> Image.Image:
    """Decode an image into a fully loaded RGB ``PIL.Image``.

    Parameters
    ----------
    src : str, os.PathLike, bytes, PIL.Image.Image or numpy.ndarray
        A path to an image file, the encoded bytes of one, a PIL image (any mode), or an
        array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with dtype uint8 (0..255),
        uint16 (0..65535) or float (0..1). Four channels are RGBA.
    min_side : int, optional
        Lets a JPEG (or MPO) file decode at a reduced scale (libjpeg's 1/2, 1/4, 1/8 DCT
        scaling) as long as both sides stay >= ``min_side`` pixels. Much cheaper than a full
        decode for images much larger than needed; ignored for other formats and in-memory
        images.

    Returns
    -------
    PIL.Image.Image
        Mode "RGB", EXIF orientation applied, transparency composited over white,
        16-bit data scaled to 8 bits.

    Raises
    ------
    vsent.errors.ImageError
        ``"<where>: <reason>"`` for a missing, empty, corrupt, truncated, non-image or
        oversized input (more than :data:`MAX_PIXELS` pixels to decode: a file, bytes, an
        ``Image.open`` image; not an image already in memory), or an unsupported array.
    ValueError
        ``min_side`` that is not a positive integer (the caller's error, not the image's).
    """
    # (0 reached libjpeg's draft: a ZeroDivisionError, reported as a good file's "cannot
    # decode image"; a bad side is the caller's error)
    if min_side is not None:
        min_side = positive_int(min_side, "min_side")
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, Image.Image):
        where = getattr(src, "filename", "") or "<PIL image>"
        # the pixel limit guards decoding: an image made in memory is decoded already (as an
        # array is), one from Image.open still to decode
        return _decode(src, where, limit=isinstance(src, ImageFile.ImageFile))
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise ImageError(f"{BYTES_NAME}: empty file")
        return _open_and_decode(io.BytesIO(bytes(src)), BYTES_NAME, min_side=min_side)
    if isinstance(src, (str, os.PathLike)):
        # messages name the path as given ("./x.jpg", not Path's "x.jpg"), as rows do
        return _load_path(Path(src), os.fsdecode(src), min_side=min_side)
    raise NotAnImageError(f"<{type(src).__name__}>: not an image (an image is a path, bytes, "
                          "a PIL image or a numpy array)")


def resize_rgb(img: Image.Image | ImageSource, size: int) -> np.ndarray:
    """Warp an image to ``size`` x ``size`` (aspect ratio not kept), as Caffe warps to 256x256,
    with Pillow's antialiased bilinear filter (Caffe's OpenCV resize is not antialiased: the
    two differ by about 2.6/255 a pixel on Twitter I).

    Parameters
    ----------
    img : PIL.Image.Image or anything :func:`load_rgb` accepts
        The image. Anything but an RGB image made in memory (by :func:`load_rgb`,
        ``convert``, ``fromarray``) goes through :func:`load_rgb` first; so does an image
        opened from a file (``Image.open(path)``, loaded or not, any mode), which gets the
        pixel limit and its EXIF orientation as the path would.
    size : int
        Output side in pixels (>= 1).

    Returns
    -------
    numpy.ndarray
        (size, size, 3) uint8, RGB. Bilinear interpolation with antialiasing (PIL's bilinear
        filter widens its support when shrinking, so downscaling does not alias).
    """
    size = positive_int(size, "size")
    if not _decoded_rgb(img):
        img = load_rgb(img)
    try:
        # reducing_gap=None: exact filter over the whole image (no JPEG draft shortcut).
        out = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - only in-memory images get here (no file name)
        raise _undecodable("<PIL image>", e) from None
    return np.asarray(out, dtype=np.uint8).copy()


def _decoded_rgb(img: object) -> bool:
    """``img`` is an RGB image made in memory, taken as decoded. An ImageFile (from
    ``Image.open``) is not: its EXIF orientation is still to apply and, until loaded, its
    size to check against :data:`MAX_PIXELS`."""
    return (isinstance(img, Image.Image) and not isinstance(img, ImageFile.ImageFile)
            and img.mode == "RGB")


def load_resized(src: ImageSource, size: int) -> np.ndarray:
    """Decode and warp an image to (size, size, 3) uint8 RGB: the one path to a model input.

    The training cache, prediction and explanations all go through here, so the pixels a model
    is trained on and the pixels it scores are made the same way. JPEGs decode at the smallest
    DCT scale that keeps both sides >= 2 x ``size`` (then :func:`resize_rgb` filters the rest):
    a 4000x3000 photo warped to 256 px decodes at 1/4 scale, several times faster, with no
    visible change since the bilinear filter still shrinks by >= 2.
    """
    size = positive_int(size, "size")  # (before the decode: a bad size is the caller's error)
    return resize_rgb(load_rgb(src, min_side=2 * size), size)


# --------------------------------------------------------------------------------------------
# files and encoded bytes


def _load_path(path: Path, where: str, *, min_side: int | None = None) -> Image.Image:
    """Load an image file, named ``where`` in messages; ``min_side``: see :func:`load_rgb`
    (1 = the fastest, validation)."""
    _check_file(path, where)
    return _open_and_decode(path, where, min_side=min_side)


def stat_file(path: Path, where: str | None = None) -> os.stat_result:
    """``path.stat()``, with a missing, unreadable or impossible (NUL byte) path as an
    ImageError naming it ``where`` (default: ``path``)."""
    where = str(path) if where is None else where
    try:
        return path.stat()
    except FileNotFoundError:
        if _is_link(path):  # the link is there: what is missing is its target
            raise ImageError(f"{where}: broken symbolic link (its target is missing)") from None
        raise ImageError(f"{where}: no such file or directory") from None
    except OSError as e:
        raise ImageError(f"{where}: {os_reason(e)}") from None
    except ValueError as e:  # "embedded null byte": no file can have that name
        raise ImageError(f"{where}: not a valid path ({e})") from None


def _is_link(path: Path) -> bool:
    try:
        return path.is_symlink()
    except (OSError, ValueError):
        return False


def _check_file(path: Path, where: str) -> None:
    """Turn the usual file-system problems into ImageErrors before PIL sees the path."""
    st = stat_file(path, where)
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{where}: is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read, a device never end it
        raise ImageError(f"{where}: not a regular file (a FIFO, socket or device)")
    if st.st_size == 0:
        raise ImageError(f"{where}: empty file")


def bomb_pixels(e: Exception) -> int | str:
    """The pixel count in PIL's decompression-bomb message (PIL refuses before the size is
    ours to read; :func:`_open` keeps PIL's limit >= :data:`MAX_PIXELS`, so that count is
    above vsent's limit too), else "too many"."""
    count = re.search(r"\((\d+) pixels\)", str(e))
    return int(count[1]) if count else "too many"


def _undecodable(where: str, e: Exception) -> ImageError:
    """The ImageError of an exception PIL was not expected to raise: its plugins raise
    TypeError, NotImplementedError, AttributeError, struct.error, ... on damaged files, and
    a damaged file is the image's failure (a row), never the run's."""
    return ImageError(f"{where}: cannot decode image: {type(e).__name__}: {_reason(e)}")


def _other_format(fp: Path | io.BytesIO) -> str | None:
    """The format outside :data:`FORMATS` whose signature ``fp`` starts with, to name it in
    the refusal; only the plugins' checks of the first 16 bytes run, none parses the file."""
    try:
        if isinstance(fp, Path):
            with fp.open("rb") as f:
                head = f.read(16)
        else:
            head = fp.getvalue()[:16]
        Image.init()  # every plugin registered (a no-op once done)
        for fmt, (_, accept) in Image.OPEN.items():
            # (a plugin without a check, or one that answers a warning string, says nothing)
            if fmt not in FORMATS and accept is not None:
                found = accept(head)
                if found and not isinstance(found, str):
                    return fmt
    except Exception:  # noqa: BLE001 - only a better message was at stake
        pass
    return None


def _open(fp: Path | io.BytesIO, where: str) -> Image.Image:
    """``Image.open`` (header only, :data:`FORMATS`) with every failure mapped to an
    ImageError."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # PIL warns (and only errors at twice its own limit); we want no giant allocation.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # PIL must not refuse what vsent allows: with MAX_PIXELS above PIL's limit, raise
            # PIL's for this open. Below it, _check_pixels refuses (naming WxH) before load.
            pil_limit = Image.MAX_IMAGE_PIXELS
            if pil_limit is not None:  # None: the user turned PIL's check off
                Image.MAX_IMAGE_PIXELS = max(pil_limit, MAX_PIXELS)
            try:
                return Image.open(fp, formats=FORMATS)
            finally:
                Image.MAX_IMAGE_PIXELS = pil_limit
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{where}: image has {bomb_pixels(e)} pixels, above the limit of "
                         f"{MAX_PIXELS} (vsent.data.images.MAX_PIXELS; a decompression "
                         f"bomb?)") from None
    except UnidentifiedImageError:
        other = _other_format(fp)
        if other is not None:
            raise ImageError(f"{where}: not a supported image format ({other}; vsent reads "
                             f"{', '.join(FORMATS)})") from None
        raise ImageError(f"{where}: cannot identify image file") from None
    except PermissionError:
        raise ImageError(f"{where}: permission denied") from None
    except FileNotFoundError:
        raise ImageError(f"{where}: no such file or directory") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as e:
        # Malformed headers surface as any of these from PIL's plugins.
        raise ImageError(f"{where}: cannot decode image header: {_reason(e)}") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - see _undecodable
        raise _undecodable(where, e) from None


def _open_and_decode(fp: Path | io.BytesIO, where: str, *,
                     min_side: int | None = None) -> Image.Image:
    im = _open(fp, where)
    try:
        out = _decode(im, where, min_side=min_side)
        # close() below releases the file *and* the pixels of ``im``: never hand ``im`` itself out.
        return out.copy() if out is im else out
    finally:
        im.close()


def _check_pixels(im: Image.Image, where: str, limit: bool = True) -> None:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{where}: image has zero size {w}x{h}")
    if limit and w * h > MAX_PIXELS:
        raise ImageError(
            f"{where}: image has {w}x{h} pixels, above the limit of {MAX_PIXELS} "
            f"(vsent.data.images.MAX_PIXELS)"
        )


def _decode(im: Image.Image, where: str, *, min_side: int | None = None,
            limit: bool = True) -> Image.Image:
    """Load pixel data, apply EXIF orientation and convert to RGB; ``limit``: refuse more than
    :data:`MAX_PIXELS` (not for an image decoded in memory already)."""
    _check_pixels(im, where, limit)
    try:
        if min_side is not None and im.format in _DRAFT_FORMATS:
            # libjpeg decodes at the smallest 1/2^k scale keeping both sides >= min_side; it
            # still reads the whole stream, so truncation and corrupt markers are detected all
            # the same. A square request: EXIF rotation (applied after) cannot break it.
            im.draft(im.mode, (min_side, min_side))
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as e:
        msg = str(e)
        if "truncated" in msg or isinstance(e, EOFError):
            raise ImageError(f"{where}: truncated image file") from None
        raise ImageError(f"{where}: cannot decode image: {_reason(e)}") from None
    except Exception as e:  # noqa: BLE001 - see _undecodable
        raise _undecodable(where, e) from None
    im = _exif_transpose(im, where)
    return _to_rgb(im, where)


def _exif_transpose(im: Image.Image, where: str) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(im)
    except Exception as e:  # noqa: BLE001 - a broken EXIF block must not lose the picture
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", where, _reason(e))
        return im
    return out if out is not None else im


def _to_rgb(im: Image.Image, where: str) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in _WIDE_MODES:
        # vsent's own numpy code: outside the catch-all below (a bug in it must not pass for
        # a damaged image)
        try:
            return _wide_to_rgb(im, where)
        except (ValueError, OSError) as e:
            raise _unconvertible(where, mode, e) from None
    try:
        if mode in _ALPHA_MODES or "transparency" in im.info:
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        # L, 1, P, CMYK, YCbCr, LAB, HSV, ...
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise _unconvertible(where, mode, e) from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - see _undecodable
        raise _undecodable(where, e) from None


def _unconvertible(where: str, mode: str, e: Exception) -> ImageError:
    return ImageError(f"{where}: cannot convert mode {mode} to RGB: {_reason(e)}")


def _wide_to_rgb(im: Image.Image, where: str) -> Image.Image:
    """16-bit (I;16*), 32-bit integer (I) and float (F) grey images -> 8-bit RGB; a tRNS
    key value (PNG) is transparent, so its pixels come out white (composited over white)."""
    a = np.asarray(im)
    key = im.info.get("transparency")
    transparent = (a == key) if isinstance(key, int) and im.mode != "F" else None
    if im.mode == "F":
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError(f"{where}: float image contains NaN or infinite values")
        # Float images conventionally hold 0..1; otherwise assume 8-bit range.
        scale = 255.0 if a.size and a.max() <= 1.0 else 1.0
        a8 = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    else:
        a = a.astype(np.int64)
        # Mode "I" does not record its bit depth: 16-bit PNGs open as "I" in some Pillow versions.
        if im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a8 = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        else:
            a8 = np.clip(a, 0, 255).astype(np.uint8)
    if transparent is not None:
        a8[transparent] = 255
    return Image.fromarray(np.ascontiguousarray(np.repeat(a8[:, :, None], 3, axis=2)))


def _reason(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# --------------------------------------------------------------------------------------------
# arrays


def _from_array(a: np.ndarray) -> Image.Image:
    where = "<array>"
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ImageError(
            f"{where}: array of shape {a.shape} is not an image: expected (H, W), (H, W, 1), "
            f"(H, W, 3) or (H, W, 4)"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"{where}: array of shape {a.shape} has no pixels")
    if a.dtype == np.uint8:
        a8 = a
    elif a.dtype == np.uint16:
        a8 = np.rint(a / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError(f"{where}: float array contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"{where}: float array values must lie in [0, 1], got min {lo:g} and max {hi:g} "
                f"(use a uint8 array for 0..255 data)"
            )
        a8 = np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise ImageError(
            f"{where}: array dtype {a.dtype} is not supported: expected uint8 (0..255), "
            f"uint16 (0..65535) or float (0..1)"
        )
    a8 = np.ascontiguousarray(a8)
    if a8.ndim == 2:
        return Image.fromarray(a8).convert("RGB")
    if a8.shape[2] == 4:
        return _to_rgb(Image.fromarray(a8), where)
    return Image.fromarray(a8)

