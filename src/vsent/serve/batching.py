"""Dynamic micro-batching: concurrent requests share one forward pass.

Requests put their (already decoded) images on a queue. One collector task per batcher takes the
first waiting request, then keeps taking more until ``max_batch`` images are gathered or
``max_wait_s`` has passed since the first one, and runs the model on all of them in a worker
thread, off the event loop. While a batch runs, the next one fills up: under load the batches
grow by themselves, with no added wait; when idle a lone request waits at most ``max_wait_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BatchStats", "BatcherStopped", "MicroBatcher"]

#: Upper bounds of the batch-size histogram buckets (images per forward pass).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class BatcherStopped(RuntimeError):
    """What a request still waiting for its forward pass gets when the batcher stops."""


@dataclass
class BatchStats:
    """Counters of one batcher (what ``/metrics`` shows).

    ``sizes[b]`` counts the batches of exactly ``b`` images; ``requests_per_batch[r]`` the batches
    that served ``r`` requests together; ``seconds`` the total forward-pass wall time.
    """

    batches: int = 0
    images: int = 0
    seconds: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)
    requests_per_batch: dict[int, int] = field(default_factory=dict)

    def add(self, n_images: int, n_requests: int, seconds: float) -> None:
        self.batches += 1
        self.images += n_images
        self.seconds += seconds
        self.sizes[n_images] = self.sizes.get(n_images, 0) + 1
        self.requests_per_batch[n_requests] = self.requests_per_batch.get(n_requests, 0) + 1

    @property
    def max_requests(self) -> int:
        """Most requests one forward pass served (0 before the first batch)."""
        return max(self.requests_per_batch, default=0)


@dataclass
class _Item:
    arrays: np.ndarray  # uint8 (n, S, S, 3)
    future: asyncio.Future


class MicroBatcher:
    """Gather concurrent ``submit`` calls into batches of at most ``max_batch`` images.

    Parameters
    ----------
    fn : ``fn(uint8 (N, S, S, 3)) -> float (N, C)``: the model; it runs in ``executor``.
    executor : where ``fn`` runs (one thread: the forward passes of a model are serialised).
    max_batch : images per forward pass; a request with more images is split across batches.
    max_wait_s : how long the first request of a batch waits for company (seconds).
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], executor: Executor, *,
                 max_batch: int = 32, max_wait_s: float = 0.005) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.fn = fn
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._held: _Item | None = None  # taken from the queue but did not fit in the last batch
        self._waiting: set[asyncio.Future] = set()  # every submitted part not answered yet
        self.queued_images = 0

    def start(self) -> None:
        """Start the collector task on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the collector; a request still waiting (queued, held, or in the batch being
        gathered or run) gets :class:`BatcherStopped` at once, not an answer that never
        comes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for fut in self._waiting:
            if not fut.done():
                fut.set_exception(BatcherStopped("the batcher was stopped (the service is "
                                                 "shutting down)"))
        self._waiting.clear()
        self._held, self.queued_images = None, 0

    async def submit(self, arrays: np.ndarray) -> np.ndarray:
        """Scores (n, C) of ``arrays`` uint8 (n, S, S, 3), n >= 1, computed in a shared
        batch (the batcher does not know C: no images would have no shape to answer)."""
        if not len(arrays):
            raise ValueError("submit needs at least one image")
        self.start()
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        # requests larger than a batch are split, so no forward pass exceeds max_batch
        parts = [arrays[i : i + self.max_batch] for i in range(0, len(arrays), self.max_batch)]
        futures = []
        for part in parts:
            fut = loop.create_future()
            self._waiting.add(fut)
            self.queued_images += len(part)
            self._queue.put_nowait(_Item(part, fut))
            futures.append(fut)
        try:
            results = await asyncio.gather(*futures)
        finally:
            for fut in futures:  # a request that gave up (timeout) leaves its images unscored
                fut.cancel()
                self._waiting.discard(fut)
        return np.concatenate(results)

    async def _next_batch(self) -> list[_Item]:
        assert self._queue is not None
        first, self._held = self._held, None
        items = [first if first is not None else await self._queue.get()]
        n = len(items[0].arrays)
        deadline = time.monotonic() + self.max_wait_s
        while n < self.max_batch:
            if self._queue.empty():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if n + len(item.arrays) > self.max_batch:
                self._held = item  # does not fit: first of the next batch
                break
            items.append(item)
            n += len(item.arrays)
        return items

    def _timed(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        """``fn(batch)`` and its seconds, timed in the worker thread: a batch waiting there for
        another batcher's forward pass (they share one model thread) does not count that wait."""
        t0 = time.perf_counter()
        probs = self.fn(batch)
        return probs, time.perf_counter() - t0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._next_batch()
            self.queued_images -= sum(len(it.arrays) for it in items)
            live = [it for it in items if not it.future.done()]  # skip requests that timed out
            if not live:
                continue
            try:  # (concatenate too: requests of two image sizes fail, the collector lives)
                batch = np.concatenate([it.arrays for it in live])
                probs, seconds = await loop.run_in_executor(self.executor, self._timed, batch)
            except Exception as e:  # noqa: BLE001 - handed to every waiting request
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            self.stats.add(len(batch), len(live), seconds)
            start = 0
            for it in live:
                n = len(it.arrays)
                if not it.future.done():
                    it.future.set_result(probs[start : start + n])
                start += n
