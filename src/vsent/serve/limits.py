"""Limits of the HTTP service, each a ``vsent serve`` option, and the checks that enforce them.

Everything a client sends is bounded before it costs memory or CPU: the request body is counted
while it streams in (413 as soon as it passes ``max_request_bytes``), each upload is capped
(``max_upload_bytes``), the number of images per request is capped (``max_images``), an
image's pixel count is read from its header before any pixel is decoded (``max_pixels``: a
small "decompression bomb" file cannot allocate gigabytes), requests in flight are capped
(``max_inflight``, 503 beyond) and each request has a deadline (``timeout_s``, its upload
included: 408 when the upload is not in by then, else 503).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

from PIL import Image

from vsent.data import images as _images
from vsent.errors import ImageError, VsentError

__all__ = ["Limits", "TooLarge", "check_pixels"]

MB = 1 << 20


class TooLarge(ImageError):
    """An upload, a request or an image above a limit (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one service (defaults in brackets).

    max_upload_bytes : bytes of one uploaded image [20 MiB].
    max_request_bytes : bytes of one whole request body [64 MiB].
    max_pixels : width x height of one image [40 M]; at most
        :data:`vsent.data.images.MAX_PIXELS` (the library's own bound, which stays in force).
    max_images : images in one request [32].
    timeout_s : seconds one request may take, upload and queueing included [30].
    max_inflight : requests handled at once; more are refused with 503 [64].
    """

    max_upload_bytes: int = 20 * MB
    max_request_bytes: int = 64 * MB
    max_pixels: int = 40_000_000
    max_images: int = 32
    timeout_s: float = 30.0
    max_inflight: int = 64

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> Limits:
        """Raise :class:`VsentError` naming the option of the first bad value (run when built,
        as every vsent config); ``self``."""
        options = {"max_upload_bytes": "--max-upload-mb", "max_request_bytes": "--max-request-mb",
                   "max_pixels": "--max-pixels", "max_images": "--max-images",
                   "max_inflight": "--max-inflight"}
        for name, option in options.items():
            if getattr(self, name) < 1:
                raise VsentError(f"{option} ({name}) must be >= 1, got {getattr(self, name)}")
        if not self.timeout_s > 0:
            raise VsentError(f"--timeout must be > 0 seconds, got {self.timeout_s}")
        if not math.isfinite(self.timeout_s):  # inf: no deadline at all (and null in the card)
            raise VsentError(f"--timeout must be a finite number of seconds, got "
                             f"{self.timeout_s}")
        if self.max_pixels > _images.MAX_PIXELS:
            raise VsentError(f"--max-pixels {self.max_pixels} is above the decoder's own limit "
                             f"of {_images.MAX_PIXELS} (vsent.data.images.MAX_PIXELS)")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def check_pixels(data: bytes, max_pixels: int, where: str) -> None:
    """Raise :class:`TooLarge` if the image in ``data`` has more than ``max_pixels`` pixels.

    Reads only the header (``Image.open`` is lazy), as one of the decoder's formats
    (:data:`vsent.data.images.FORMATS`: no other plugin sees an upload). Files it cannot
    identify pass: the decoder then reports why (422), so there is one wording of each
    decoding failure.
    """
    # no warnings.catch_warnings() here: it swaps a process-global list that the decoder's
    # threads set under their own lock; a bomb warning turned error there is a refusal here too
    try:
        with Image.open(io.BytesIO(data), formats=_images.FORMATS) as im:
            w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooLarge(f"{where}: image has {_images.bomb_pixels(e)} pixels, above the limit of "
                       f"{max_pixels} (--max-pixels)") from None
    except Exception:  # noqa: BLE001 - not an image: the decoder says why
        return
    if w * h > max_pixels:
        raise TooLarge(f"{where}: image has {w}x{h} pixels, above the limit of {max_pixels} "
                       f"(--max-pixels)")
