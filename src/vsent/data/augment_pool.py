"""``--augment trivial`` in worker processes, so that a GPU does not wait for the CPU.

TrivialAugment runs image by image on the CPU (torchvision's transforms). On a GPU that is the
bottleneck: on the lent H200, resnet18 at 224 px trained at about 330 img/s and waited for its
batches about half of the time (session 34, ``results/gpu/logs/r7-seed0.log``). A pool of
processes augments the next batches while the model trains on the current one.

Each batch is augmented from the seed that the training loop draws for it without the pool
(:func:`vsent.data.transforms.draw_seed`, one draw per batch in batch order), so the images
are the same as without it, bit for bit where the augmentation's own arithmetic does not
depend on the number of torch threads (the workers run one each; the tests compare both ways).
Only a single-process run without ``--mix`` uses the pool: there the loop draws nothing else
from its generator between two batches, so drawing every batch's seed first changes nothing.

The workers are plain ``python -c`` processes fed through pipes (:func:`_serve`), not
``multiprocessing``'s: those import the caller's main script again, which re-ran a user's
script without an ``if __name__ == "__main__"`` guard in every worker. They ignore Ctrl-C (the
training process stops the run and says so) and end with the training process, even when it
is killed (their input ends). A worker that dies leaves a warning, and the loop augments the
rest itself (the same images). ``$VSENT_AUGMENT_WORKERS`` sets how many (0: none).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import numpy as np
import torch

from vsent.data._common import usable_cpus
from vsent.errors import VsentError

__all__ = ["AUGMENT_WORKERS_ENV", "AugmentPool", "default_augment_workers", "pool_serves"]

log = logging.getLogger("vsent")

#: Environment variable: the number of augmentation processes (0: augment in the loop).
AUGMENT_WORKERS_ENV = "VSENT_AUGMENT_WORKERS"
#: Batches augmented ahead of the one being trained on, per worker.
AHEAD_PER_WORKER = 2
_REQUEST = struct.Struct("<4iq")  # images, height, width, crop; seed
_REPLY = struct.Struct("<i")  # images (then images x crop x crop x 3 bytes)


def pool_serves(augment: str, mix: str, world: int) -> bool:
    """Whether a pool can augment a run's batches: ``--augment trivial`` without ``--mix`` in
    one process (there the loop draws one seed a batch from its generator and nothing else,
    so the seeds can be drawn ahead)."""
    return augment == "trivial" and mix == "none" and world == 1


def default_augment_workers(device: torch.device, augment: str, mix: str, world: int) -> int:
    """How many augmentation processes :func:`vsent.train.fit` starts by default: on a GPU,
    for ``--augment trivial`` without ``--mix`` in one process, one per usable CPU but the
    training process's own, at most 4 (``bench/bench_augment.py``); on a CPU none (the
    workers would compete with the training threads for the same cores).
    ``$VSENT_AUGMENT_WORKERS`` overrides it where a pool can serve (0: never)."""
    if not pool_serves(augment, mix, world):
        return 0
    asked = os.environ.get(AUGMENT_WORKERS_ENV, "").strip()
    if asked:
        if not asked.isdigit():
            raise VsentError(f"${AUGMENT_WORKERS_ENV}={asked!r}: not a whole number >= 0")
        return int(asked)
    if device.type != "cuda":
        return 0
    return max(0, min(4, usable_cpus() - 1))


#: A worker's start: Ctrl-C ignored before anything is imported (the training process stops
#: the run and says so; each worker would print a KeyboardInterrupt traceback), then serve.
#: A worker needs no signal to end with the training process: its input then ends (even after
#: a kill -9), and :func:`_serve` returns.
_WORKER = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
           "from vsent.data.augment_pool import _serve; _serve()")


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    """``n`` bytes of ``stream``, None at its end (the other side closed it or died)."""
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def _read_array(stream: BinaryIO, shape: tuple[int, ...]) -> np.ndarray | None:
    """A uint8 array of ``shape`` read from ``stream`` (a writable one, as torch wants), None
    at its end."""
    out = np.empty(shape, np.uint8)
    view, got = memoryview(out).cast("B"), 0
    while got < out.nbytes:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return None
        got += n
    return out


class AugmentPool:
    """``workers`` processes that run :func:`~vsent.data.transforms.trivial_augment_seeded`.

    Use as a context manager; :meth:`augment` yields the batches in order.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._idle: queue.Queue[subprocess.Popen[bytes]] = queue.Queue()
        self._procs = [subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE) for _ in range(workers)]
        for p in self._procs:
            self._idle.put(p)
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="vsent-augment")
        self.failed: str | None = None  # why the workers were given up (then: in the loop)
        self._warned = False

    def _run(self, images: np.ndarray, crop: int, seed: int) -> np.ndarray | None:
        """One batch through an idle worker; None when it died (the pool is then given up)."""
        if self.failed:
            return None
        proc = self._idle.get()
        try:
            n, h, w, _ = images.shape
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(_REQUEST.pack(n, h, w, crop, seed))
            proc.stdin.write(memoryview(np.ascontiguousarray(images)).cast("B"))
            proc.stdin.flush()
            head = _read_exactly(proc.stdout, _REPLY.size)
            out = head and _read_array(proc.stdout, (n, crop, crop, 3))
            if out is None:
                raise OSError("it closed its output")
            return out
        except OSError as e:  # (BrokenPipeError: it had died before the batch was sent)
            code = proc.poll()
            self.failed = (f"an augmentation worker (pid {proc.pid}) "
                           f"{'exited with status ' + str(code) if code is not None else e}")
            return None
        finally:
            self._idle.put(proc)

    def augment(self, batches: Iterable[tuple[np.ndarray, int]],
                crop: int) -> Iterator[torch.Tensor]:
        """Each ``(images, seed)`` of ``batches`` augmented: (B, H, W, 3) uint8 ->
        (B, crop, crop, 3) uint8 tensors, in the order given; at most
        ``AHEAD_PER_WORKER`` x ``workers`` batches are read and augmented ahead. Batches that
        a dead worker leaves are augmented here, from the same seeds."""
        from vsent.data.transforms import trivial_augment_seeded

        pending: deque[tuple[Future[np.ndarray | None], np.ndarray, int]] = deque()

        def take() -> torch.Tensor:
            future, images, seed = pending.popleft()
            out = future.result()
            if out is not None:
                return torch.from_numpy(out)
            if not self._warned:  # once a pool, not once an epoch
                log.warning("%s: the training process augments the rest itself (the same "
                            "images, more slowly)", self.failed)
                self._warned = True
            return trivial_augment_seeded(images, crop, seed)

        ahead = AHEAD_PER_WORKER * self.workers
        try:
            for images, seed in batches:
                pending.append((self._threads.submit(self._run, images, crop, seed), images,
                                seed))
                if len(pending) >= ahead:
                    yield take()
            while pending:
                yield take()
        finally:  # an epoch stopped early (an error, Ctrl-C): drop what was ahead
            for f, _, _ in pending:
                f.cancel()

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        for p in self._procs:
            if p.stdin is not None:
                # its end of input: it exits (one that died cannot take what was buffered)
                with contextlib.suppress(OSError):
                    p.stdin.close()
        for p in self._procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()

    def __enter__(self) -> AugmentPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> None:
    """A worker's loop: requests from standard input, augmented batches to standard output,
    until the training process closes its end (or dies)."""
    from vsent.data.transforms import trivial_augment_seeded

    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to standard error, not into the replies
    torch.set_num_threads(1)  # one thread a worker: the workers are the parallelism
    while (head := _read_exactly(stdin, _REQUEST.size)) is not None:
        n, h, w, crop, seed = _REQUEST.unpack(head)
        images = _read_array(stdin, (n, h, w, 3))
        if images is None:
            return
        out = trivial_augment_seeded(torch.from_numpy(images), crop, seed).numpy()
        stdout.write(_REPLY.pack(n))
        stdout.write(memoryview(np.ascontiguousarray(out)).cast("B"))
        stdout.flush()
