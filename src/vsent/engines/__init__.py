"""Scoring engines of ``vsent predict``: one table, name -> class, imported when chosen.

An engine turns paths (an iterator read lazily) into rows ``path, prob_positive, label,
error`` in input order (:data:`vsent.batch.Scorer`); :func:`vsent.batch.score_stream` reads
the inputs, skips what a resumed run already has and writes the rows.

* ``default``: :meth:`vsent.predict.Predictor.score` in this process (decoding threads ahead of
  the model).
* ``ray``: the same decode and forward on Ray Data (:mod:`vsent.engines.ray_engine`): decoding
  in tasks, the model in a pool of actors, local or on a cluster.
* ``onnx`` (or ``torchscript``, the same engine): :class:`vsent.export.ExportedPredictor` on an
  exported model (``--model m.onnx`` or ``m.ts``, from ``vsent export``): the same rows, the
  forward pass in onnxruntime or in TorchScript.

This module imports only the standard library (``vsent predict --help`` lists the engines
without loading torch or Ray). To add an engine, add a line to :data:`ENGINES`: a class
taking :class:`EngineOptions`, with ``score(paths) -> rows`` and ``close()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsent.errors import VsentError

#: Images per forward pass when not given (``vsent predict --batch-size``'s default too).
BATCH_SIZE = 32

#: Engine name -> "module:Class".
ENGINES: dict[str, str] = {
    "default": "vsent.engines.default:DefaultEngine",
    "ray": "vsent.engines.ray_engine:RayEngine",
    "onnx": "vsent.export:ExportedEngine",  # an export of `vsent export` (onnxruntime/TorchScript)
    "torchscript": "vsent.export:ExportedEngine",  # the same engine: it reads either kind of export
}


@dataclass(frozen=True)
class EngineOptions:
    """What every engine is given (the ``vsent predict`` options).

    Attributes
    ----------
    model : checkpoint path (``model.pt``); for ``--engine onnx`` or ``torchscript``, the
        export's path (``vsent export``: ``.onnx`` or a TorchScript file).
    oversample : mean over 10 crops instead of the centre crop.
    batch_size : images per forward pass.
    device : auto, cpu or cuda.
    workers : decoding threads of the default engine (None: the CPUs).
    ray_address : Ray cluster to join (``auto``, ``ray://host:10001``, ``host:6379``);
        None starts a local Ray.
    ray_cpus : CPUs of the local Ray (None: all of this machine's).
    ray_actors : model actors (None: one per GPU, or half the CPUs without GPUs).
    progress : whether progress output (Ray Data's bars) may be shown.
    """

    model: str
    oversample: bool = False
    batch_size: int = BATCH_SIZE
    device: str = "auto"
    workers: int | None = None
    ray_address: str | None = None
    ray_cpus: int | None = None
    ray_actors: int | None = None
    progress: bool = False


class Engine:
    """Base of the engines: loads its model when built (a bad checkpoint is a user error
    before any output is opened), scores with :meth:`score`, frees resources in
    :meth:`close` (also as a context manager)."""

    name = "engine"

    def score(self, paths: Iterator[Path]) -> Iterable[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine started (nothing by default)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(name: str, options: EngineOptions) -> Engine:
    """Build the engine ``name`` (a key of :data:`ENGINES`)."""
    if name not in ENGINES:
        raise VsentError(f"--engine {name!r}: use one of {', '.join(ENGINES)}")
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)(options)
