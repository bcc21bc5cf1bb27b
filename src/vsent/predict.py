"""Score images with a trained model: files, folders, globs, PIL images or arrays.

A batch job never stops on a bad image: each one gets a row with its error and the rest are
scored. Decoding runs ahead of the forward pass in :func:`vsent.inference.iter_batches` (a
bounded thread pool over any iterable of paths), and scoring in :func:`vsent.inference.infer`:
the one decode and the one inference path of vsent.

A checkpoint with a ``fusion`` entry (``vsent finetune --preset strong``) is a late-fused
model: its hand-crafted half (:class:`vsent.analyses.fused_model.LateFusion`) is computed in the
decoding threads from the full-resolution image, and the scores are the fused ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from torch import nn

from vsent.data._common import is_int_at_least
from vsent.data.images import ImageSource, load_resized, load_rgb
from vsent.errors import VsentError, WeightsError
from vsent.inference import infer, iter_batches, resolve_device
from vsent.models.base import non_finite_tensors
from vsent.models.checkpoint import build_model, read_checkpoint

if TYPE_CHECKING:
    from vsent.analyses.fused_model import LateFusion

#: Fields of one prediction row, in output order.
ROW_FIELDS = ("path", "prob_positive", "label", "error")
#: The error of a row whose scores are NaN/inf (their argmax would be class 0, "negative").
NON_FINITE_SCORES = "non-finite scores (the model's weights hold NaN/inf?)"


def item_label(item: Any, index: int) -> str:
    """What a row's ``path`` says of input ``index``: a path as given; an image in memory by
    its kind and position (``<array 3>``, ``<PIL image 0>``, ``<bytes 2>``), not its printed
    form (a multi-line array dump, a memory address)."""
    if isinstance(item, str | os.PathLike):
        return os.fsdecode(item)  # the path itself, as errors name it (not a PathLike's repr)
    if isinstance(item, Image.Image) and getattr(item, "filename", ""):
        return str(item.filename)  # Image.open's: its file, as its errors name it
    return f"<{_kind(item)} {index}>"


def _kind(item: Any) -> str:
    """How :mod:`vsent.data.images` names an image in memory in its messages."""
    if isinstance(item, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(item, Image.Image):
        return "PIL image"
    return "array" if isinstance(item, np.ndarray) else type(item).__name__


def _error_of(item: Any, index: int, error: Exception) -> str:
    """``error``'s message, its ``<array>``/``<PIL image>``/``<bytes>`` given the position."""
    text, generic = str(error), f"<{_kind(item)}>"
    return item_label(item, index) + text[len(generic):] if text.startswith(generic) else text


def _check_many(images: Any, method: str) -> None:
    """TypeError for one image given where an iterable of images is expected: a str was read
    as one path per character, an (H, W, 3) array as H images. An (N, S, S, 3)
    or (N, H, W) array of pixels is N images, and an array of paths (object or str dtype)
    one path per entry."""
    one = isinstance(images, str | os.PathLike | bytes | bytearray | memoryview | Image.Image) or (
        isinstance(images, np.ndarray) and images.dtype.kind in "biuf" and (images.ndim <= 2 or (
            images.ndim == 3 and images.shape[-1] in (1, 2, 3, 4))))
    if one:
        kind = "path" if isinstance(images, str | os.PathLike) else _kind(images)
        raise TypeError(f"Predictor.{method} takes an iterable of images (paths, bytes, PIL "
                        f"images or arrays), got one {kind}: pass [image]")
    if isinstance(images, np.ndarray) and images.dtype.kind in "biuf" and images.ndim == 3 \
            and images.shape[0] in (3, 4):
        # one channel-first image, as torch holds it, was scored as 3 grayscale images
        raise TypeError(f"Predictor.{method}: an array of shape {images.shape} is one "
                        "channel-first image or a stack of grayscale images: pass "
                        "[array.transpose(1, 2, 0)] for the one, list(array) for the stack")


def error_row(path: str, error: str) -> dict[str, Any]:
    """The row of an item that could not be scored (every engine writes it)."""
    return {"path": path, "prob_positive": None, "label": None, "error": error}


def scores_row(path: str, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """The row of one decoded image's scores ``probs`` (num_classes,): every engine writes
    it, so that their rows agree. Scores that are NaN/inf (e.g. an export of NaN weights, or
    weights that overflow) are the error row :data:`NON_FINITE_SCORES`: their argmax would
    be class 0, "negative"."""
    if not np.isfinite(probs).all():
        return error_row(path, NON_FINITE_SCORES)
    k = int(probs.argmax())
    label = class_names[k] if k < len(class_names) else str(k)
    return {"path": path, "prob_positive": round(float(probs[1]), 6), "label": label,
            "error": ""}


def _check_arguments(model: Any, class_names: Any, oversample: Any, batch_size: Any,
                     workers: Any) -> list[str]:
    """The class names as a list, or TypeError or ValueError naming the first of
    :class:`Predictor`'s arguments that is wrong, when it is built (they failed at
    the first image, some as raw Python errors; a str of class names was split into
    letters)."""
    if not isinstance(model, nn.Module) or not hasattr(model, "info"):
        raise TypeError(f"Predictor takes a vsent model (vsent.models.create_model or "
                        f"load_checkpoint), got {type(model).__name__}; for a checkpoint file "
                        "use Predictor.from_checkpoint(path)")
    n = model.info.num_outputs
    if n < 2:
        raise ValueError(f"Predictor scores a model of 2 or more outputs, not {n}")
    names = None if isinstance(class_names, str) or not isinstance(class_names, Iterable) \
        else list(class_names)  # (a generator is read once)
    if names is None or not all(isinstance(c, str) for c in names):
        raise TypeError(f"Predictor(class_names=...) takes a list of {n} names, got "
                        f"{class_names!r}")
    if len(names) != n:
        raise ValueError(f"Predictor(class_names=...): {len(names)} names for a model of "
                         f"{n} outputs")
    if not isinstance(oversample, bool):
        raise TypeError(f"Predictor(oversample=...) takes True or False, got {oversample!r}")
    for name, value in (("batch_size", batch_size), ("workers", workers)):
        if value is None and name == "workers":
            continue
        if not is_int_at_least(value, 1):
            raise ValueError(f"Predictor({name}=...) must be an integer >= 1, got {value!r}")
    return names


class Predictor:
    """Sentiment scores from a trained vsent model.

    Parameters
    ----------
    model : a vsent model (``model.info``), e.g. from :meth:`from_checkpoint`.
    class_names : names of the output classes (index 1 = positive).
    oversample : average over 10 crops instead of the centre crop.
    batch_size : images per forward pass.
    device : "auto", "cpu" or "cuda".
    workers : decoding threads (default: the CPUs this process may use).
    fusion : the hand-crafted half of a late-fused model (a checkpoint's ``fusion`` entry),
        or None for the CNN alone.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        class_names: Sequence[str] = ("negative", "positive"),
        oversample: bool = False,
        batch_size: int = 32,
        device: str = "auto",
        workers: int | None = None,
        fusion: LateFusion | None = None,
    ) -> None:
        names = _check_arguments(model, class_names, oversample, batch_size, workers)
        self.model = model
        self.fusion = fusion
        self.class_names = names
        self.oversample = oversample
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.workers = workers
        self.model.eval().to(self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Predictor:
        """Predictor of the checkpoint at ``path``: its model, its class names and, for a
        late-fused model, its hand-crafted half (``fusion``, from the file only).

        ``kwargs`` are the other arguments of :class:`Predictor` (``oversample``,
        ``batch_size``, ``device``, ``workers``) and ``class_names``, which replaces the
        checkpoint's names (as :meth:`vsent.export.ExportedPredictor.from_file` takes them).
        """
        if "fusion" in kwargs:  # the checkpoint's own half: another would score another model
            raise TypeError("Predictor.from_checkpoint takes no fusion=...: a late-fused "
                            "model's hand-crafted half comes from its checkpoint")
        ckpt = read_checkpoint(path)
        model, meta = build_model(ckpt, path)
        # NaN weights (a diverged training run) score every image NaN: refused once, here
        bad = non_finite_tensors(model)
        if bad:
            raise WeightsError(f"{path}: the model's weights hold NaN/inf ({len(bad)} "
                               f"tensors, e.g. {bad[0]}); its training diverged: retrain it "
                               "with a lower learning rate")
        fusion = None
        if ckpt.get("fusion") is not None:
            from vsent.analyses.fused_model import LateFusion

            fusion = LateFusion.from_state(ckpt["fusion"], where=str(path))
        kwargs.setdefault("class_names", meta.get("class_names", ("negative", "positive")))
        return cls(model, fusion=fusion, **kwargs)

    @property
    def size(self) -> int:
        """Side S of the decoded images (``model.info.preprocess.resize``)."""
        return self.model.info.preprocess.resize

    def decode(self, image: ImageSource) -> np.ndarray:
        """One image (path, bytes, PIL image or array) -> uint8 (S, S, 3), as the image cache.

        Raises :class:`vsent.errors.ImageError` on an image that cannot be read.
        """
        return load_resized(image, self.size)

    def predict_arrays(self, arrays: np.ndarray, hand_features: np.ndarray | None = None
                       ) -> np.ndarray:
        """Scores (N, num_classes) float32 of decoded images: uint8 (N, S, S, 3) from
        :meth:`decode`; centre crop, or the mean over 10 crops when ``self.oversample``.

        A fused predictor needs ``hand_features`` (N, d) of the same images
        (:meth:`hand_features`) and returns the fused scores.
        """
        return self.fuse(self.network_scores(arrays), hand_features)

    def network_scores(self, arrays: np.ndarray) -> np.ndarray:
        """The network's scores (N, num_classes) float32 of decoded images (N, S, S, 3), before
        any fusion (:meth:`fuse`)."""
        return infer(self.model, arrays, oversample=self.oversample,
                     batch_size=self.batch_size, device=self.device).probs

    def fuse(self, probs: np.ndarray, hand_features: np.ndarray | None) -> np.ndarray:
        """:meth:`network_scores` as the predictor gives them: unchanged without fusion, else
        late-fused with the hand-crafted features (N, d) of the same images."""
        if self.fusion is None:
            return probs
        if hand_features is None:
            raise ValueError("a late-fused model scores decoded images with their "
                             "hand_features (Predictor.hand_features)")
        return self.fusion.fuse(probs, hand_features)

    def hand_features(self, image: ImageSource) -> np.ndarray:
        """The hand-crafted features (d,) of one image for a fused predictor, from its full
        resolution decode (as the features it was trained on); ImageError on a bad image."""
        if self.fusion is None:
            raise ValueError("this predictor has no hand-crafted half (no fusion)")
        return self.fusion.hand.features(np.asarray(load_rgb(image), np.uint8))

    def _batches(self, images: Iterable[Any]):
        features = self.hand_features if self.fusion is not None else None
        return iter_batches(images, self.size, batch_size=self.batch_size, workers=self.workers,
                            features=features)

    def predict_proba(self, images: Iterable[Any]) -> np.ndarray:
        """Softmax probabilities, float32 of shape (N, num_classes) (column 1: positive), for
        images given as paths, bytes, PIL images or arrays (decoded ahead of the model by a
        thread pool, as :meth:`score` decodes them).

        Raises :class:`vsent.errors.ImageError` on the first image that cannot be read; use
        :meth:`score` to carry on past bad images.
        """
        _check_many(images, "predict_proba")
        out = [np.zeros((0, self.model.info.num_outputs), np.float32)]
        start = 0
        for batch in self._batches(images):
            for i, (item, error) in enumerate(zip(batch.items, batch.errors, strict=True)):
                if error is not None:
                    text = _error_of(item, start + i, error)
                    if text == str(error) or not isinstance(error, VsentError):
                        raise error
                    raise type(error)(text) from None
            start += len(batch.items)
            out.append(self.predict_arrays(batch.images, batch.features))
        return np.concatenate(out)

    def predict(self, images: Iterable[Any]) -> np.ndarray:
        """Class indices (N,), 1 = positive."""
        return self.predict_proba(images).argmax(axis=1)

    def score(self, paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
        """One row per image (``path, prob_positive, label, error``), in input order: rows
        to write out (a CSV, a report), not an accuracy as scikit-learn's ``score`` returns.

        ``paths`` are image files, or anything :meth:`predict_proba` takes (bytes, PIL images,
        arrays: their row's ``path`` is ``<array 3>``, ``<bytes 0>``, ...). Bad images yield a
        row with ``error`` set and no score; the others are scored.
        ``paths`` may be any iterable (a generator is read lazily, a few batches ahead):
        rows come out while later paths are still being decoded. One image given alone is a
        TypeError at once, not at the first row.
        """
        _check_many(paths, "score")
        return self._rows(paths)

    def _rows(self, paths: Iterable[Any]) -> Iterator[dict[str, Any]]:
        """:meth:`score`'s rows."""
        start = 0
        for batch in self._batches(paths):
            probs = (iter(self.predict_arrays(batch.images, batch.features))
                     if len(batch.images) else iter(()))
            for i, (item, error) in enumerate(zip(batch.items, batch.errors, strict=True)):
                if error is not None:
                    yield error_row(item_label(item, start + i),
                                    _error_of(item, start + i, error))
                    continue
                yield scores_row(item_label(item, start + i), next(probs), self.class_names)
            start += len(batch.items)
