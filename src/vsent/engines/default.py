"""The default engine: :meth:`vsent.predict.Predictor.score` in this process."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vsent.engines import Engine, EngineOptions
from vsent.predict import Predictor


class DefaultEngine(Engine):
    """Decoding threads ahead of the model (:func:`vsent.inference.iter_batches`), forward
    passes of ``batch_size`` images on ``device``; :attr:`predictor` is the loaded model."""

    name = "default"

    def __init__(self, options: EngineOptions) -> None:
        self.predictor = Predictor.from_checkpoint(
            options.model, oversample=options.oversample, batch_size=options.batch_size,
            device=options.device, workers=options.workers,
        )

    def score(self, paths: Iterator[Path]) -> Iterable[dict[str, Any]]:
        return self.predictor.score(paths)
