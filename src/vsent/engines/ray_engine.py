"""``vsent predict --engine ray``: the default engine's scoring on Ray Data.

The pipeline, streamed end to end (nothing holds the list of paths or of results)::

    driver: lazy walk (vsent.inputs) --numbered chunks--> ray.util.queue.Queue (bounded)
    read tasks (P, half a CPU each): pop a chunk, load_resized -> one row (and block) per chunk
                                     {meta: JSON {start, paths, errors}, image uint8 (B,S,S,3)}
    model actors (map_batches)     : Predictor.predict_arrays -> {meta, probs (B,C)}
    driver: iter_batches -> rows put back in input order by position, written as they come

Why decoding happens in the read tasks, and why a whole chunk is one Ray Data row: Ray Data
concatenates what a read task yields until ``DataContext.target_max_block_size`` (128 MiB by
default) before it passes a block on, so a read that yields small tables of paths hands the
next stage a single block holding every path: one decode task, no overlap, no row before the
end (the engine ran at 4-12 img/s on 2 cores that way). The target is set here to a quarter
of one image's bytes, which any decoded chunk exceeds, so each chunk leaves its read task as
its own block as soon as it is decoded, a part chunk too (the feeder hands one on when the
input pauses, e.g. a ``--from-list`` written as files arrive); and as a chunk is one row, Ray
Data never slices it.
The model stage takes one row (``batch_size=1``): one chunk, one forward pass.

Several read tasks pop chunks from one queue, so blocks arrive out of order; each chunk
carries the input position of its first path (``start``) and the driver emits rows in input
order (the reorder buffer holds the rows in flight). A read task is never retried: the chunks
it took off the queue cannot be taken again, so a worker that dies fails the run in one line,
and the driver counts the rows against the paths it queued (:func:`in_order`): no run ends
with a row missing.
The paths travel from the driver through the bounded queue, so whatever the driver can read
(folders, globs, ``--from-list -`` on standard input) works on a cluster too, and the queue's
bound is the back-pressure. Images are opened by their absolute
path (``file``): every node must see the dataset at the same path (shared storage). The
checkpoint is shipped through the object store (it need not be on shared storage).

The decode is :func:`vsent.data.images.load_resized` (what :meth:`Predictor.decode` calls) and
the forward pass :meth:`Predictor.predict_arrays`, so the rows equal the default engine's
(probabilities to float tolerance). An image that cannot be decoded is an error row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vsent.engines import Engine, EngineOptions
from vsent.errors import VsentError, import_extra

#: Chunks the queue holds before the driver waits (with the chunks being decoded and scored,
#: the bound on paths in flight). A chunk is ``--batch-size`` paths: one model batch.
QUEUE_CHUNKS = 16
#: Chunks of rows the driver may hold after a missing row before it gives up on that row: in
#: flight are the queue's chunks, one per read task and those of the actors; 256 queues' worth
#: (131,072 rows at batch 32, some 60 MB) leaves a read task slow on one chunk half a minute
#: while a fast cluster scores thousands of images a second. A dead worker fails the run at
#: once anyway (its task is not retried); this bound is for a row that never comes.
REORDER_CHUNKS = 256 * QUEUE_CHUNKS


def _import_ray() -> Any:
    # Under `uv run`, Ray would by default rebuild the uv environment for its workers from a
    # copy of the working directory (minutes per start); they already run this interpreter,
    # where vsent is installed. RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 keeps Ray's behaviour.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray = import_extra("ray", "--engine ray", "ray")
    import_extra("ray.data", "--engine ray", "ray")
    if os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0":
        try:  # the flag is read when ray is imported, which may have happened before us
            from ray._private import ray_constants

            ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
        except (ImportError, AttributeError):  # pragma: no cover (another Ray version)
            pass
    return ray


def _cpu_actors(cpus: int) -> int:
    """Model actors on a CPU-only cluster by default: half the CPUs, the rest decode."""
    return max(1, cpus // 2)


def _check_decoding_cpus(actors: int, cpus: int, *, local: bool = True) -> None:
    """VsentError when the model actors (one CPU each) would take every CPU: the decoding
    tasks would never be scheduled and the run would hang without a word. ``local``: a Ray
    vsent starts, whose CPUs --ray-cpus sets (a cluster's are its own)."""
    if actors >= cpus:
        more = "--ray-cpus 2 or more" if local else "a cluster with more CPUs"
        fix = (f"--engine ray needs at least 2 CPUs: {more}" if cpus < 2 else
               f"--ray-actors {cpus - 1}, or {'more --ray-cpus' if local else more}")
        raise VsentError(
            f"{actors} model actor(s) take a CPU each and the Ray cluster has {cpus} CPU(s): at "
            f"least one must be left for decoding ({fix})")


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """VsentError unless a ``HOST:PORT`` address answers a TCP connection within ``timeout``
    seconds: Ray itself retries a silent address without end (a typo in the head node's port
    would hang the job). ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise VsentError(f"--ray-address {address}: cannot join the Ray cluster ({reason} "
                         f"within {timeout:g} s; is `ray start --head` running there?)") from None


# --------------------------------------------------------------------------------------------
# the stages (run in Ray workers)


def decode_chunk(chunk: list[tuple[int, str, str]], size: int) -> dict[str, np.ndarray]:
    """Decode one chunk of B consecutive ``(index, path as given, absolute path)`` into a
    one-row batch: ``meta`` (1,), the JSON of ``{"start": first index, "paths": [as given],
    "errors": ["" when decoded, else the message]}`` (JSON keeps any file name, undecodable
    bytes included), and ``image`` uint8 (1, B, S, S, 3), zeros for a failed image."""
    from vsent.data.images import load_resized

    images = np.zeros((len(chunk), size, size, 3), np.uint8)
    errors = []
    for i, (_, given, file) in enumerate(chunk):
        try:
            images[i] = load_resized(file, size)
            errors.append("")
        except VsentError as e:  # a bad image is a row; anything else is a bug and propagates
            msg = str(e)  # named as given, as the default engine names it
            errors.append(given + msg[len(file):] if msg.startswith(file) else msg)
    meta = {"start": chunk[0][0], "paths": [c[1] for c in chunk], "errors": errors}
    # (ensure_ascii: a name's surrogate escapes become \\udcXX, which json.loads restores)
    return {"meta": np.array([json.dumps(meta, ensure_ascii=True)], dtype=object),
            "image": images[None]}


def _one_per_row(arrays: list[np.ndarray]) -> np.ndarray:
    """``arrays`` as a batch column: stacked when their shapes agree, else an object array
    (a part chunk beside full ones)."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    column = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        column[i] = a
    return column


def _make_source(queue: Any, size: int, tasks: int) -> Any:
    """A Ray Data datasource of ``tasks`` streaming read tasks; each pops chunks from
    ``queue`` and yields one decoded block per chunk until it pops ``None`` (which it puts
    back for the others)."""
    from ray.data.block import BlockAccessor, BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def read() -> Iterator[Any]:
        while True:
            chunk = queue.get(block=True)
            if chunk is None:
                queue.put(None)  # the end, for the other read tasks too
                return
            yield BlockAccessor.batch_to_block(decode_chunk(chunk, size))

    class _QueueSource(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, **_: Any) -> list[ReadTask]:
            meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None,
                                 exec_stats=None)
            return [ReadTask(read, meta) for _ in range(tasks)]

    return _QueueSource()


class ScoreActor:
    """Model stage (Ray actors): the :class:`~vsent.predict.Predictor` of the checkpoint
    ``ckpt["ref"]`` (an object-store reference to the file's bytes); per chunk (row) ``meta``
    as it came and ``probs`` float32 (B, C) (NaN on failed images)."""

    def __init__(self, ckpt: dict[str, Any], *, oversample: bool, batch_size: int, device: str,
                 threads: int | None) -> None:
        import ray
        import torch

        from vsent.predict import Predictor

        if threads:
            torch.set_num_threads(threads)  # the CPUs Ray gave this actor, no more
        # the reference is wrapped in a dict so that Ray does not resolve it into a
        # constructor argument (those cannot be restored when an actor restarts)
        data = ray.get(ckpt["ref"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            path.write_bytes(data)
            self.predictor = Predictor.from_checkpoint(
                path, oversample=oversample, batch_size=batch_size, device=device, workers=1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n_out = self.predictor.model.info.num_outputs
        probs = []
        for meta, images in zip(batch["meta"], batch["image"], strict=True):
            ok = np.array([not e for e in json.loads(meta)["errors"]], bool)
            p = np.full((len(ok), n_out), np.nan, np.float32)
            if ok.any():
                p[ok] = self.predictor.predict_arrays(np.asarray(images)[ok])
            probs.append(p)
        return {"meta": batch["meta"], "probs": _one_per_row(probs)}


# --------------------------------------------------------------------------------------------
# the engine (driver side)


class RayEngine(Engine):
    """Scores on Ray Data: a local Ray (``ray_cpus`` CPUs) or the cluster at ``ray_address``.

    Model actors: ``ray_actors``, default one per GPU of the cluster (``num_gpus=1`` each), or
    half the CPUs (at least 1) without GPUs or with ``device="cpu"``.
    """

    name = "ray"

    def __init__(self, options: EngineOptions) -> None:
        from vsent.predict import Predictor

        self.options = options
        # load once here: a bad checkpoint is a user error before Ray starts or --out opens
        probe = Predictor.from_checkpoint(options.model, device="cpu")
        if probe.fusion is not None:
            raise VsentError(f"{options.model}: a late-fused model (network + "
                             f"{probe.fusion.features}); --engine ray scores networks alone: "
                             "use the default engine")
        self.size = probe.size
        self.class_names = probe.class_names
        del probe
        if options.batch_size < 1:
            raise VsentError(f"--batch-size must be >= 1, got {options.batch_size}")
        if options.ray_cpus is not None and options.ray_cpus < 1:
            raise VsentError(f"--ray-cpus must be >= 1, got {options.ray_cpus}")
        if options.ray_actors is not None and options.ray_actors < 1:
            raise VsentError(f"--ray-actors must be >= 1, got {options.ray_actors}")
        ray = self.ray = _import_ray()
        self._started = False
        if not ray.is_initialized() and not options.ray_address:
            # the local Ray started below would have these CPUs: refused before it starts
            cpus = options.ray_cpus or os.cpu_count() or 1
            _check_decoding_cpus(options.ray_actors or _cpu_actors(cpus), cpus)
        if not ray.is_initialized():
            # Ray's core worker installs its own SIGTERM handler (a stack dump, exit 15):
            # vsent's is put back, so a terminated run says so and exits 143 as the others
            on_term = signal.getsignal(signal.SIGTERM)
            if options.ray_address:
                if options.ray_cpus is not None:
                    raise VsentError("--ray-cpus sizes a local Ray; a cluster (--ray-address) "
                                     "has the CPUs its nodes were started with")
                _check_reachable(options.ray_address)
            main = threading.current_thread() is threading.main_thread()
            before = set(_descendants(os.getpid()))  # (not Ray's: see _stop_half_started)
            try:
                # (a TERM while Ray starts exited 15, unsaid) only where vsent's
                # handler (or a caller's) is in place to answer it; without one, Ray's stays
                with _sigterm_kept() if callable(on_term) and main else contextlib.nullcontext():
                    if options.ray_address:
                        ray.init(address=options.ray_address, logging_level=logging.WARNING)
                    else:
                        ray.init(num_cpus=options.ray_cpus, include_dashboard=False,
                                 logging_level=logging.WARNING)
            except BaseException as e:
                if not options.ray_address:
                    _stop_half_started(ray, before, interrupted=isinstance(e, KeyboardInterrupt))
                elif isinstance(e, ConnectionError | RuntimeError | ValueError):
                    raise VsentError(f"--ray-address {options.ray_address}: cannot join the "
                                     f"Ray cluster ({' '.join(str(e).split())[:200]})") from None
                raise
            self._started = True
            if callable(on_term) and main:
                signal.signal(signal.SIGTERM, on_term)
        try:
            self._setup(options)
        except BaseException:
            self.close()  # a Ray started here does not outlive a refused option
            raise

    def _setup(self, options: EngineOptions) -> None:
        ray = self.ray
        ctx = ray.data.DataContext.get_current()
        # blocks as they come: the driver restores input order (Ray Data's ordering would hold
        # every later read task's blocks until the first read task ends, i.e. until the input does)
        ctx.execution_options.preserve_order = False
        ctx.enable_progress_bars = options.progress
        ctx.print_on_execution_start = options.progress  # no plan dump in a log file
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        if options.device.startswith("cuda") and not gpus:
            raise VsentError("--device cuda: the Ray cluster has no GPU (use --device cpu)")
        self.use_gpu = gpus > 0 and options.device != "cpu"
        if self.use_gpu and options.ray_actors and options.ray_actors > gpus:
            raise VsentError(f"--ray-actors {options.ray_actors}: each actor takes a GPU and the "
                             f"cluster has {gpus}")
        self.actors = options.ray_actors or (gpus if self.use_gpu else _cpu_actors(cpus))
        _check_decoding_cpus(self.actors, cpus, local=not options.ray_address)
        # read (decode) tasks take half a CPU each: two per core left by the model actors (one
        # CPU each, with or without a GPU), so that one's file read overlaps the other's decode
        self.decoders = max(2, 2 * (cpus - self.actors))
        self.ckpt = ray.put(Path(options.model).read_bytes())

    def score(self, paths: Iterator[Path]) -> Iterable[dict[str, Any]]:
        """Rows of ``paths`` in input order (see the module docstring for the pipeline)."""
        self._rows = self._score(paths)  # closed by close(), before Ray stops
        return self._rows

    def _score(self, paths: Iterator[Path]) -> Iterator[dict[str, Any]]:
        ray = self.ray
        from ray.util.queue import Queue

        opts = self.options
        ctx = ray.data.DataContext.get_current()
        saved_block_size = ctx.target_max_block_size
        # a quarter of one image's bytes, well below any decoded chunk's: each chunk (a part
        # one too) leaves its read task as its own block (a one-row block is never sliced)
        ctx.target_max_block_size = max(1, self.size ** 2 * 3 // 4)
        queue = Queue(maxsize=QUEUE_CHUNKS)
        stop = threading.Event()
        failure: list[BaseException] = []
        quiet = None if opts.progress else _quiet_ray_data()
        fed = [0]  # paths the feeder has queued: every one must come back as a row
        feeder = threading.Thread(target=_feed, args=(paths, queue, stop, failure,
                                                      opts.batch_size, fed),
                                  name="vsent-ray-feeder", daemon=True)
        try:
            # no retry of a read task: the chunks it took off the queue are gone, and a re-run
            # would pop others while those rows never come (a worker's death fails the run)
            with warnings.catch_warnings():  # (max_retries has no named parameter yet)
                warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
                ds = ray.data.read_datasource(_make_source(queue, self.size, self.decoders),
                                              override_num_blocks=self.decoders, num_cpus=0.5,
                                              ray_remote_args={"max_retries": 0})
            device = "cuda" if self.use_gpu else "cpu"
            ds = ds.map_batches(
                ScoreActor,
                fn_constructor_args=({"ref": self.ckpt},),
                fn_constructor_kwargs={"oversample": opts.oversample,
                                       "batch_size": opts.batch_size, "device": device,
                                       "threads": None if self.use_gpu else 1},
                batch_size=1, batch_format="numpy",  # one row: one chunk
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_gpus=1 if self.use_gpu else 0, num_cpus=1,
            )
            feeder.start()
            # no prefetch: with one, the block that came last waits for the next to come
            # (a paused input's rows would wait for the input to go on)
            batches = ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0)
            yield from in_order(_worker_errors(ray, batches), self._row, fed, failure,
                                REORDER_CHUNKS * opts.batch_size)
        finally:
            ctx.target_max_block_size = saved_block_size
            stop.set()
            if feeder.is_alive():
                feeder.join(timeout=5)
            queue.shutdown(force=True)
            if quiet is not None:
                quiet()

    def _row(self, path: str, probs: np.ndarray, error: str) -> dict[str, Any]:
        return result_row(path, probs, error, self.class_names)

    def close(self) -> None:
        # the rows stop first: Ray Data's executor, still reading, started a Ray of its own
        # once this one was shut down (`| head` left two agents running)
        rows, self._rows = getattr(self, "_rows", None), None
        try:
            if rows is not None:
                with contextlib.suppress(ValueError):  # being read in another thread right now
                    rows.close()
        finally:  # Ray stops whatever the rows' clean-up raised
            if self._started and self.ray.is_initialized():
                self.ray.shutdown()


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """While Ray starts (``ray.init``), Ray's installing its SIGTERM handler (``sys.exit(15)``)
    is skipped: the handler in place (vsent's: "vsent: terminated", exit 143, what was written
    kept) answers a TERM that comes meanwhile. Only Ray's own helper is replaced for that time
    (not ``signal.signal``, which other threads use); a Ray without that helper
    is left as it is."""
    try:
        from ray._private import utils
    except ImportError:  # pragma: no cover - another Ray layout: nothing to skip
        yield
        return
    real = getattr(utils, "set_sigterm_handler", None)
    if real is None:  # pragma: no cover
        yield
        return
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = real


def _stop_half_started(ray: Any, before: set[int], *, interrupted: bool) -> None:
    """Stop a local Ray whose start failed: ``ray.shutdown()``, and after an interrupt also
    SIGKILL the Ray processes started meanwhile that it does not know (started before
    ``ray.init`` had recorded its node; two agents were left running). Only
    processes that were not under this one before (``before``) and that are Ray's (their
    command line names ray) are killed, through pidfds taken before the
    shutdown, so that a pid freed meanwhile cannot be someone else's."""
    handles = []
    if interrupted and hasattr(os, "pidfd_open"):  # (Linux: elsewhere ray.shutdown alone)
        for pid in set(_descendants(os.getpid())) - before:
            if _is_ray_process(pid):
                with contextlib.suppress(OSError):
                    handles.append((pid, os.pidfd_open(pid)))
    try:
        ray.shutdown()
    finally:  # (a second Ctrl-C in the shutdown: still killed)
        for pid, fd in handles:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)
            with contextlib.suppress(OSError):  # a child of this process: reaped
                os.waitpid(pid, 0)


def _is_ray_process(pid: int) -> bool:
    """Whether process ``pid``'s command line holds "ray" (``ray::...``, Ray's raylet, GCS
    server or agents, Python under ray's package): a loose match, enough for the only
    processes asked, this one's descendants started while ``ray.init`` ran."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ray" in cmdline


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (children, theirs, ...), read from /proc; none elsewhere."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (name) state ppid ...": the name may hold spaces and parentheses
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def result_row(path: str, probs: np.ndarray, error: str, class_names: list[str]
               ) -> dict[str, Any]:
    """The row :meth:`vsent.predict.Predictor.score` writes for an actor's result: its error
    row for a failed decode, else :func:`vsent.predict.scores_row` (the same code, so that
    NaN/inf scores are the same error row, not "nan, negative")."""
    from vsent.predict import error_row, scores_row

    if error:
        return error_row(path, error)
    return scores_row(path, probs, class_names)


def in_order(batches: Iterable[dict[str, np.ndarray]],
             row: Callable[[str, np.ndarray, str], dict[str, Any]], fed: list[int],
             failure: list[BaseException], limit: int) -> Iterator[dict[str, Any]]:
    """The rows of the actors' ``batches`` (one row per chunk: ``meta``, ``probs``; see
    :func:`decode_chunk`; chunks in any order) in input order, each made by
    ``row(path, probs, error)``.

    A row that never comes (its read task's worker died after taking its chunk off the
    queue) must not end the run as a success: a VsentError when more than ``limit`` later
    rows wait for it, or, at the end, when fewer rows came than the ``fed[0]`` paths queued.
    ``failure`` holds the feeder's exception (re-raised first: e.g. an unreadable list).
    """
    pending: dict[int, dict[str, Any]] = {}  # rows that came before their turn
    want = 0
    for batch in batches:
        for meta_json, probs in zip(batch["meta"], batch["probs"], strict=True):
            meta = json.loads(meta_json)
            for i, (path, error) in enumerate(zip(meta["paths"], meta["errors"], strict=True)):
                pending[meta["start"] + i] = row(path, np.asarray(probs)[i], error)
        while want in pending:
            yield pending.pop(want)
            want += 1
        if len(pending) > limit:
            raise VsentError(f"ray engine: row {want + 1} has not come back while "
                             f"{len(pending)} later rows have (a Ray worker died?); {_KEPT}")
    if failure:
        raise failure[0]
    if want != fed[0]:
        raise VsentError(f"ray engine: {fed[0] - want} of {fed[0]} rows never came back (a "
                         f"Ray worker died?); {_KEPT}")


_KEPT = "the rows written so far are kept: --resume scores the rest"


class _ConsoleNoise(logging.Filter):
    """Ray Data's console lines that a run without progress output does not want: its INFO
    lines ("Dataset ... execution finished") and the warning that progress bars are off."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.WARNING
                and not record.name.startswith("ray.data._internal.progress"))


def _quiet_ray_data() -> Callable[[], None]:
    """Put :class:`_ConsoleNoise` on the ``ray.data`` logger's console handlers (its log file
    in the Ray session keeps everything; ``ray.init(logging_level=...)`` does not reach this
    logger); returns the function that takes it off."""
    noise = _ConsoleNoise()
    handlers = [h for h in logging.getLogger("ray.data").handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    for h in handlers:
        h.addFilter(noise)

    def restore() -> None:
        for h in handlers:
            h.removeFilter(noise)

    return restore


def _worker_errors(ray: Any, batches: Iterable[dict[str, np.ndarray]]
                   ) -> Iterator[dict[str, np.ndarray]]:
    """``batches``, a Ray worker or node lost on the way (OOM killer, Ray's memory monitor,
    a node gone) being one line: the read tasks are not retried (see :meth:`RayEngine.score`).
    An exception raised by vsent's code in a worker propagates as it is (a bug)."""
    lost = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError, ray.exceptions.OutOfMemoryError,
            ray.exceptions.ActorDiedError)
    try:
        yield from batches
    except lost as e:
        reason = " ".join(str(e).split())[:200]
        raise VsentError(f"ray engine: a Ray worker died ({reason}); {_KEPT}") from None


def _feed(paths: Iterator[Path], queue: Any, stop: threading.Event,
          failure: list[BaseException], chunk_size: int, fed: list[int]) -> None:
    """Driver thread: chunks of ``(index, path as given, absolute path)`` onto ``queue``,
    then None; ``fed[0]``: the paths read so far (all of them queued once None is).

    Paths are made absolute here because Ray workers need not share the driver's working
    directory; the row keeps the path as given. ``index`` is the input position. ``paths`` is
    read in a thread of its own (:class:`~vsent.inference.InputReader`): when it has been
    quiet for :data:`~vsent.inference.QUIET_AFTER_S`, the part chunk read so far is queued
    instead of waiting for more input; an input that fails queues the paths read before it.
    """
    from ray.util.queue import Full

    from vsent.inference import QUIET_AFTER_S, InputReader

    cwd = os.getcwd()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.5)
                return True
            except Full:  # the pipeline is behind: wait (this is the back-pressure)
                continue
        return False

    chunk: list[tuple[int, str, str]] = []
    reader = None
    try:
        reader = InputReader(paths)
        while not stop.is_set():
            got = reader.get(QUIET_AFTER_S)
            if got is None:  # the input is quiet: what was read goes on
                if chunk and not put(chunk):
                    return
                chunk = []
                continue
            kind, p = got
            if kind == "item":
                s = str(p)
                chunk.append((fed[0], s, os.path.join(cwd, s)))
                fed[0] += 1
                if len(chunk) < chunk_size:
                    continue
            elif kind == "error":  # re-raised by the consumer (e.g. --from-list unreadable)
                failure.append(p)
            if chunk and not put(chunk):
                return
            chunk = []
            if kind != "item":
                return
    except BaseException as e:  # the feeder's own (the queue failed): reported, not a hang
        failure.append(e)
    finally:
        if reader is not None:
            reader.stop()
        try:
            put(None)
        except BaseException as e:  # the read tasks' queue is gone: they fail on it too
            if not failure:
                failure.append(e)
