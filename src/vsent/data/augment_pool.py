"""``--augment trivial`` in worker processes, so that a GPU does not wait for the CPU.

TrivialAugment runs image by image on the CPU (torchvision's transforms). On a GPU that is the
bottleneck: on the lent H200, resnet18 at 224 px trained at 280-400 img/s and waited for its
batches over half of the time (session 34, ``results/gpu/logs/r7-seed0.log``). A pool of
processes augments the next batches while the model trains on the current one.

Each batch is augmented from the seed that the training loop draws for it without the pool
(:func:`vsent.data.transforms.draw_seed`, one draw per batch in batch order), so the images
are the same as without it, bit for bit where the augmentation's own arithmetic does not
depend on the number of torch threads (the workers run one each; the tests compare both ways).
Only a single-process run without ``--mix`` uses the pool: there the loop draws nothing else
from its generator between two batches, so drawing every batch's seed first changes nothing.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import torch

from vsent.data._common import usable_cpus

__all__ = ["AugmentPool", "default_augment_workers"]

#: Batches augmented ahead of the one being trained on, per worker.
AHEAD_PER_WORKER = 2


def default_augment_workers(device: torch.device, augment: str, mix: str, world: int) -> int:
    """How many augmentation processes :func:`vsent.train.fit` starts by default: on a GPU,
    for ``--augment trivial`` without ``--mix`` in one process, one per usable CPU but the
    training process's own, at most 4, and none unless that makes two or more (one worker is
    slower than the loop: it augments on one thread and passes the images through a pipe,
    ``bench/bench_augment.py``); on a CPU none (the workers would compete with the training
    threads for the same cores)."""
    if device.type != "cuda" or augment != "trivial" or mix != "none" or world > 1:
        return 0
    workers = min(4, usable_cpus() - 1)
    return workers if workers >= 2 else 0


def _start_worker() -> None:
    torch.set_num_threads(1)  # one thread a worker: the workers are the parallelism
    # Ctrl-C reaches the whole process group: the training process stops the run and says
    # so, its workers would each print a KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _augment(batch: np.ndarray, crop: int, seed: int) -> np.ndarray:
    from vsent.data.transforms import trivial_augment_seeded

    return trivial_augment_seeded(torch.from_numpy(batch), crop, seed).numpy()


class AugmentPool:
    """``workers`` processes that run :func:`~vsent.data.transforms.trivial_augment_seeded`.

    Use as a context manager; :meth:`augment` yields the batches in order.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        # spawn, not fork: a forked copy of a process that has run torch's thread pools or
        # CUDA can hang
        self._ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_start_worker)

    def augment(self, batches: Iterable[tuple[np.ndarray, int]],
                crop: int) -> Iterator[torch.Tensor]:
        """Each ``(images, seed)`` of ``batches`` augmented: (B, H, W, 3) uint8 ->
        (B, crop, crop, 3) uint8 tensors, in the order given; at most
        ``AHEAD_PER_WORKER`` x ``workers`` batches are read and augmented ahead."""
        pending: deque[Future[np.ndarray]] = deque()
        source = iter(batches)
        ahead = AHEAD_PER_WORKER * self.workers
        try:
            for images, seed in source:
                pending.append(self._ex.submit(_augment, np.ascontiguousarray(images), crop,
                                               seed))
                if len(pending) >= ahead:
                    yield torch.from_numpy(pending.popleft().result())
            while pending:
                yield torch.from_numpy(pending.popleft().result())
        finally:  # an epoch stopped early (an error, Ctrl-C): drop what was ahead
            for f in pending:
                f.cancel()

    def close(self) -> None:
        self._ex.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> AugmentPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
