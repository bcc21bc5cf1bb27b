"""Score images with a trained model: files, folders, globs, PIL images or arrays.

A batch job never stops on a bad image: each one gets a row with its error and the rest are
scored. Decoding runs in a thread pool one batch ahead of the forward pass.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vsent.data.images import load_resized
from vsent.errors import VsentError
from vsent.evaluate import predict_proba, resolve_device
from vsent.models.checkpoint import load_checkpoint

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Fields of one prediction row, in output order.
ROW_FIELDS = ("path", "prob_positive", "label", "error")


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files as given, folders recursively (image suffixes only), globs expanded.

    Returns the paths to score and one error row for each input that matched nothing.
    """
    paths: list[Path] = []
    missing: list[dict[str, Any]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            found = [p]
        else:
            found = [Path(f) for f in sorted(glob.glob(str(item), recursive=True))]
        if not found:
            missing.append(_error_row(str(item), "no such file, or no image in that folder/glob"))
        paths.extend(found)
    return paths, missing


def _error_row(path: str, error: str) -> dict[str, Any]:
    return {"path": path, "prob_positive": None, "label": None, "error": error}


class Predictor:
    """Sentiment scores from a trained vsent model.

    Parameters
    ----------
    model : a vsent model (``preprocess`` attribute), e.g. from :meth:`from_checkpoint`.
    class_names : names of the output classes (index 1 = positive).
    oversample : average over 10 crops instead of the centre crop.
    batch_size : images per forward pass.
    device : "auto", "cpu" or "cuda".
    workers : decoding threads (default: number of CPUs).
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

    def _prepare(self, image: Any) -> np.ndarray:
        return load_resized(image, self.model.preprocess.resize)

    def predict_proba(self, images: Sequence[Any]) -> np.ndarray:
        """Scores (N, num_classes) for images given as paths, bytes, PIL images or arrays.

        Raises :class:`vsent.errors.ImageError` on the first image that cannot be read; use
        :meth:`score` to carry on past bad images.
        """
        arrays = np.stack([self._prepare(im) for im in images]) if len(images) else None
        if arrays is None:
            return np.zeros((0, len(self.class_names)), np.float32)
        return predict_proba(self.model, arrays, oversample=self.oversample,
                             batch_size=self.batch_size, device=self.device)

    def predict(self, images: Sequence[Any]) -> np.ndarray:
        """Class indices (N,), 1 = positive."""
        return self.predict_proba(images).argmax(axis=1)

    def score(self, paths: Sequence[str | Path]) -> Iterator[dict[str, Any]]:
        """One row per path (``path, prob_positive, label, error``), in input order.

        Bad images yield a row with ``error`` set and no score; the others are scored.
        """
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending = [pool.submit(self._prepare, p) for p in chunks[0]] if chunks else []
            for i, chunk in enumerate(chunks):
                current = pending
                # decode the next batch while this one runs through the model
                pending = [pool.submit(self._prepare, p) for p in chunks[i + 1]] \
                    if i + 1 < len(chunks) else []
                yield from self._score_chunk(chunk, current)

    def _score_chunk(self, chunk: Sequence[str | Path], futures: list[Future]) -> Iterator[dict]:
        arrays, errors = {}, {}
        for j, fut in enumerate(futures):
            try:
                arrays[j] = fut.result()
            except VsentError as e:
                errors[j] = str(e)
        probs = {}
        if arrays:
            keys = sorted(arrays)
            p = predict_proba(self.model, np.stack([arrays[k] for k in keys]),
                              oversample=self.oversample, batch_size=self.batch_size,
                              device=self.device)
            probs = dict(zip(keys, p, strict=True))
        for j, path in enumerate(chunk):
            if j in errors:
                yield _error_row(str(path), errors[j])
            else:
                pr = probs[j]
                yield {"path": str(path), "prob_positive": round(float(pr[1]), 6),
                       "label": self._label(int(pr.argmax())), "error": ""}

    def _label(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else str(index)

