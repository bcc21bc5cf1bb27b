"""The OpenCV pieces vsent needs, with one clear error when the installed build lacks them.

vsent depends on ``opencv-contrib-python-headless`` (4.x): EdgeBoxes (``cv2.ximgproc``) is a
contrib module, and OpenCV 5 moved the Haar cascades out of the main build. Another OpenCV
package installed beside it (``opencv-python``, a 5.x build) shares the ``cv2`` module and can
hide these; the error says so instead of an AttributeError deep in a run.

:func:`check_rgb` is the one check of an image handed to the hand-crafted features and cues
(an empty one reached OpenCV's resize as ``cv2.error``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vsent.errors import VsentError

__all__ = ["INSTALL_HINT", "check_rgb", "cv2_feature", "resize_longer_side"]

INSTALL_HINT = ("pip install 'opencv-contrib-python-headless>=4.9,<5' (and uninstall any other "
                "opencv-python* package: they share the cv2 module)")


def cv2_feature(name: str, purpose: str) -> Any:
    """``cv2.<name>`` (a function, class or module such as ``ximgproc``).

    Raises VsentError naming ``purpose``, the installed OpenCV and how to install the one vsent
    needs when this build of OpenCV has no ``name``.
    """
    feature = getattr(cv2, name, None)
    if feature is None:
        raise VsentError(f"{purpose} needs cv2.{name}, which this OpenCV ({cv2.__version__}) "
                         f"lacks: {INSTALL_HINT}")
    return feature


def check_rgb(image: np.ndarray, *, allow_empty: bool = False) -> np.ndarray:
    """``image`` as a C-contiguous uint8 (H, W, 3) RGB array, or ValueError saying what it is.

    ``allow_empty``: an image with no pixels passes (a colour histogram of an empty block is
    all zeros); elsewhere it is refused here, before OpenCV fails on it."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or (image.size == 0 and not allow_empty):
        kind = "an" if allow_empty else "a non-empty"
        raise ValueError(f"image must be {kind} RGB uint8 array (H, W, 3), got "
                         f"{image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def resize_longer_side(image: np.ndarray, max_side: int, *, enlarge: bool = True) -> np.ndarray:
    """``image`` (H, W[, C]) resized, aspect kept, so that its longer side is ``max_side`` px:
    the area filter when shrinking, bilinear when enlarging; ``enlarge=False`` returns a
    smaller image as it is (the hand-crafted features' SIFT grid wants one size, the cues and
    EdgeBoxes only a bound on their work)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale == 1 or (scale > 1 and not enlarge):
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)
