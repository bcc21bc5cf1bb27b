"""Errors a user can act on. The CLI prints their message on one line, without a traceback."""

from __future__ import annotations

import importlib
import os
import reprlib
from types import ModuleType

#: Exit status of the CLI when a command finished but some items (images) failed.
EXIT_ITEMS_FAILED = 3
#: Exit status for user errors: bad options, bad data, missing files, missing weights.
EXIT_USER_ERROR = 2
#: Environment variable the ``--nproc`` launcher sets for torchrun and its ranks (to the
#: launcher's process id): an interrupt is reported by the launcher alone (one line, not one per
#: process), and torchrun stops the ranks when the launcher dies.
LAUNCHED_BY_VSENT = "VSENT_LAUNCHED"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``exc``'s text on one line (its type name when it has none), at most ``limit``
    characters: the reason a VsentError quotes from a library's exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def os_reason(exc: OSError) -> str:
    """The reason of a file-system error as an image's row gives it: the C library's text in
    lower case ("permission denied", "not a directory", "file name too long"), so that rows
    of one cause read the same whatever path gave them (grouped by their error)."""
    text = exc.strerror or one_line(exc)
    return text[:1].lower() + text[1:]


def check_many(value: object, where: str, what: str) -> None:
    """TypeError when ``value``, a list of ``what`` for ``where``, is one string, path or
    bytes: Python would take it a character at a time (``explain(ckpt, "a.jpg",
    out)`` took "." and "/" as inputs and walked the whole disk)."""
    if isinstance(value, bytes):  # (its repr may be megabytes of an image)
        raise TypeError(f"{where} takes a list of {what}, got one bytes object of "
                        f"{len(value)} bytes: pass [data]")
    if isinstance(value, str | os.PathLike):
        kind, shown = ("path" if isinstance(value, os.PathLike) else "string",
                       reprlib.repr(os.fsdecode(value)))
        raise TypeError(f"{where} takes a list of {what}, got one {kind} {shown}: pass "
                        f"[{shown}]")


class VsentError(Exception):
    """A problem the user can fix (bad input, missing file, missing weights).

    The message must say what is wrong and where (file, line) in one line.
    ``missing_extra``: the optional extra to install, when that is the problem
    (:func:`import_extra`).
    """

    missing_extra: str | None = None


class DataError(VsentError):
    """Invalid dataset, label file, fold file or image."""


class BadItemsError(DataError):
    """A dataset's bad label entries or images, listed (``--skip-bad`` skips them)."""


class ImageError(DataError):
    """An image that cannot be decoded or is unsafe to decode (corrupt, empty, too large)."""


class NotAnImageError(ImageError, TypeError):
    """An item of a kind no image comes in (None, a number, a tensor): a TypeError for the
    caller of one decode, and an item's error row (an ImageError) in a batch, which carries on
    (Predictor.score stopped the whole stream at a None)."""


class WeightsError(VsentError):
    """Weights that cannot be found, downloaded or loaded."""


def import_extra(module: str, what: str, extra: str,
                 error: type[VsentError] = VsentError) -> ModuleType:
    """``import module``, or ``error`` in one line naming the extra that brings it: an optional
    library (timm, open_clip, onnx, Ray, uvicorn) missing is the user's setup to fix, not a
    traceback. ``what`` says what needs it, in the singular ("a timm model", "--engine ray");
    the message reads "a timm model needs the 'backbones' extra (timm is missing): pip install
    'vsent[backbones]'", and the error's ``missing_extra`` is ``extra``. A dependency of the
    library missing is named the same way; a library that is there but cannot be imported
    (another version's names) is said so, with its reason. An import of vsent's own that
    fails is a bug: re-raised as it is.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        name = e.name or module
        if name.split(".")[0] == "vsent":  # vsent's own import failing is a bug, not a setup
            raise
        why = (f"{name} is missing" if isinstance(e, ModuleNotFoundError) else
               f"{module} cannot be imported: {one_line(e)}")
        exc = error(f"{what} needs the {extra!r} extra ({why}): pip install 'vsent[{extra}]'")
        exc.missing_extra = extra
        raise exc from None
