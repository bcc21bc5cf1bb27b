"""Score images with a trained model: files, folders, globs, PIL images or arrays.

A batch job never stops on a bad image: each one gets a row with its error and the rest are
scored. Decoding runs ahead of the forward pass in :func:`vsent.inference.iter_batches` (a
bounded thread pool over any iterable of paths), and scoring in :func:`vsent.inference.infer`:
the one decode and the one inference path of vsent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vsent.data.images import ImageSource, load_resized
from vsent.inference import infer, iter_batches, resolve_device
from vsent.models.checkpoint import load_checkpoint

#: Fields of one prediction row, in output order.
ROW_FIELDS = ("path", "prob_positive", "label", "error")


def _error_row(path: str, error: str) -> dict[str, Any]:
    return {"path": path, "prob_positive": None, "label": None, "error": error}


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
    ) -> None:
        self.model = model
        self.class_names = list(class_names)
        self.oversample = oversample
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.workers = workers
        self.model.eval().to(self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Predictor:
        model, meta = load_checkpoint(path)
        return cls(model, class_names=meta.get("class_names", ("negative", "positive")), **kwargs)

    @property
    def size(self) -> int:
        """Side S of the decoded images (``model.info.preprocess.resize``)."""
        return self.model.info.preprocess.resize

    def decode(self, image: ImageSource) -> np.ndarray:
        """One image (path, bytes, PIL image or array) -> uint8 (S, S, 3), as the image cache.

        Raises :class:`vsent.errors.ImageError` on an image that cannot be read.
        """
        return load_resized(image, self.size)

    def predict_arrays(self, arrays: np.ndarray) -> np.ndarray:
        """Scores (N, num_classes) float32 of decoded images: uint8 (N, S, S, 3) from
        :meth:`decode`; centre crop, or the mean over 10 crops when ``self.oversample``."""
        return infer(self.model, arrays, oversample=self.oversample, batch_size=self.batch_size,
                     device=self.device).probs

    def predict_proba(self, images: Iterable[Any]) -> np.ndarray:
        """Scores (N, num_classes) for images given as paths, bytes, PIL images or arrays
        (decoded ahead of the model in :meth:`score`'s thread pool).

        Raises :class:`vsent.errors.ImageError` on the first image that cannot be read; use
        :meth:`score` to carry on past bad images.
        """
        out = [np.zeros((0, self.model.info.num_outputs), np.float32)]
        for batch in iter_batches(images, self.size, batch_size=self.batch_size,
                                  workers=self.workers):
            error = next((e for e in batch.errors if e is not None), None)
            if error is not None:
                raise error
            out.append(self.predict_arrays(batch.images))
        return np.concatenate(out)

    def predict(self, images: Iterable[Any]) -> np.ndarray:
        """Class indices (N,), 1 = positive."""
        return self.predict_proba(images).argmax(axis=1)

    def score(self, paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
        """One row per path (``path, prob_positive, label, error``), in input order.

        Bad images yield a row with ``error`` set and no score; the others are scored.
        ``paths`` may be any iterable (a generator is read lazily, a few batches ahead):
        rows come out while later paths are still being decoded.
        """
        for batch in iter_batches(paths, self.size, batch_size=self.batch_size,
                                  workers=self.workers):
            probs = iter(self.predict_arrays(batch.images)) if len(batch.images) else iter(())
            for path, error in zip(batch.items, batch.errors, strict=True):
                if error is not None:
                    yield _error_row(str(path), str(error))
                    continue
                pr = next(probs)
                yield {"path": str(path), "prob_positive": round(float(pr[1]), 6),
                       "label": self._label(int(pr.argmax())), "error": ""}

    def _label(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else str(index)
