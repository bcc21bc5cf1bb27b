"""Data-parallel training across processes with PyTorch DDP (``torchrun`` or ``--nproc N``).

How a run is split (every function here is a no-op, or the identity, in one process, so a
single-process run does exactly the arithmetic and random draws it did before):

* **Launch.** ``torchrun --nproc-per-node N -m vsent.cli finetune ...`` starts N processes
  (ranks) with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` set;
  ``vsent crossval|finetune --nproc N`` runs exactly that command for you (:func:`launch`;
  the CLI first refuses what the ranks would refuse, :func:`vsent.crossval.check_launch`).
  Under single-node torchrun (``--nproc N``, or ``torchrun --standalone``), a user error
  the ranks meet is printed by rank 0 alone (:func:`user_errors_from_rank0`); ``--nproc N``
  also keeps its exit status 2 (:func:`torchrun_main`: plain torchrun exits 1).
  :func:`session` joins the process group: gloo on CPU, nccl on GPUs (one GPU per rank,
  ``cuda:LOCAL_RANK``).
* **Batches.** Every rank draws the same permutation and the same random crops and mirrors,
  for the *global* batch, from the same seeded generator; rank r then takes rows
  ``r::world`` of each global batch (:func:`shard_batch`). The ranks' shards together are
  exactly the one-process batch, with the same crops.
* **Loss.** A rank's loss is its shard's mean loss times ``n_r * world / B``: DDP averages
  gradients over ranks, so the step is the gradient of the mean over the global batch of B
  rows even when the shards are uneven (a last batch of odd size). A last batch with fewer
  rows than ranks is dropped (one process drops a last batch of one row for BatchNorm).
* **BatchNorm.** On GPUs BatchNorm layers become SyncBatchNorm while training, so batch
  statistics are those of the global batch, as in one process. PyTorch's SyncBatchNorm does
  not run on CPU, so on CPU (gloo) each rank normalises with its shard's statistics (plain
  DDP behaviour): training is equivalent, not equal, to one process. After training every
  rank takes rank 0's buffers (running statistics), so all ranks hold rank 0's model.
* **Dropout** masks come from each rank's own RNG, seeded per (seed, epoch, rank) at every
  epoch, so a resumed run draws the same masks as an uninterrupted one.
* **Files.** Rank 0 alone opens and writes the run directory (config, logs, checkpoints,
  ``train_state.pt``, metrics); the other ranks get a :class:`FollowerRunDir` whose writes
  do nothing, and wait for rank 0 where they need its results (:func:`broadcast_object`).
  Evaluation runs on rank 0 alone. A resumed run: every rank loads ``train_state.pt``.
  The image cache is built once per machine (:func:`local_first`). Several machines need
  ``--out`` on a filesystem they all see.
"""

from __future__ import annotations

import gc
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

from vsent.config import DIST_BACKENDS
from vsent.data.transforms import crop_windows, draw_crops
from vsent.errors import EXIT_USER_ERROR, LAUNCHED_BY_VSENT, VsentError
from vsent.provenance import processes
from vsent.runs import RunDir
from vsent.runs import open_run_dir as _open_run_dir

__all__ = [
    "BACKENDS", "FOLLOWER_GRACE", "FollowerRunDir", "all_sum", "barrier", "broadcast_object",
    "end_together", "is_distributed", "is_main", "launch", "launch_command", "launched",
    "local_device", "local_first", "local_rank", "module_of", "on_main", "open_run_dir", "rank",
    "resolve_backend", "seed_epoch", "session", "shard_batch", "torchrun_main",
    "unwrap_model", "user_errors_from_rank0", "wants_launch", "world_size", "wrap_model",
]

log = logging.getLogger("vsent")
T = TypeVar("T")

#: ``--dist-backend`` choices: auto is nccl when the ranks train on CUDA, else gloo.
BACKENDS = DIST_BACKENDS
#: How long a rank waits for the others at a collective (rank 0 alone builds the image cache
#: and evaluates each fold while the others wait): generous, a hung rank still ends the run.
TIMEOUT = timedelta(hours=2)


# --------------------------------------------------------------------------------------------
# who am I


def launched() -> bool:
    """True in a process started by torchrun with more than one rank (``WORLD_SIZE`` > 1)."""
    return processes() > 1


def is_distributed() -> bool:
    """True once this process has joined a process group of more than one rank."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 in one process)."""
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks (1 in one process)."""
    return tdist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the one rank that writes files (always True in one process)."""
    return rank() == 0


def local_rank() -> int:
    """Rank on this machine (torchrun's ``LOCAL_RANK``; 0 in one process)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


# --------------------------------------------------------------------------------------------
# process group


def resolve_backend(backend: str, device: str) -> str:
    """``--dist-backend`` and ``--device`` -> "gloo" or "nccl" (a bad pair is a VsentError)."""
    if backend not in BACKENDS:
        raise VsentError(f"--dist-backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    cuda = _on_gpus(device)
    if backend == "auto":
        return "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise VsentError("--dist-backend nccl needs GPUs (--device cuda); use gloo on CPU")
    return backend


def _on_gpus(device: str) -> bool:
    """Whether ``--device`` puts the ranks on GPUs (``auto``: where CUDA is available)."""
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


@contextmanager
def session(backend: str = "auto", device: str = "auto") -> Iterator[None]:
    """Join the torchrun process group for the duration of a command; no-op in one process.

    Uses the ``env://`` variables torchrun sets. With CUDA, rank r trains on
    ``cuda:LOCAL_RANK``. Ranks other than 0 log warnings only. A group already joined (by
    the caller) is used as it is and left open.

    DDP wrappers left in reference cycles are collected before the group is destroyed, while
    the group and the interpreter are whole (:func:`user_errors_from_rank0` has the ranks that
    ended normally leave together).
    """
    if not launched() or (tdist.is_available() and tdist.is_initialized()):
        yield
        return
    name = resolve_backend(backend, device)
    if name == "nccl" or (device != "cpu" and torch.cuda.is_available()):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group(name, timeout=TIMEOUT)
    vlog = logging.getLogger("vsent")
    level = vlog.level
    if not is_main():
        vlog.setLevel(logging.WARNING)  # one copy of the log: rank 0's
    try:
        yield
    finally:
        vlog.setLevel(level)
        gc.collect()
        tdist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:LOCAL_RANK`` in DDP (one GPU per rank); ``device`` otherwise.

    In DDP a GPU named by its index (``--device cuda:0``) is a VsentError, on every rank
    alike: every rank would train on it (nccl refuses two ranks on one GPU, with a traceback;
    gloo shares it)."""
    if is_distributed() and device.type == "cuda":
        if device.index is not None:
            raise VsentError(f"--device {device}: data-parallel processes each train on their "
                             "own GPU (cuda:LOCAL_RANK); give --device cuda")
        return torch.device("cuda", local_rank())
    return device


def _comm_device() -> torch.device:
    """Where collective tensors live: nccl needs them on this rank's GPU."""
    if tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (no-op in one process)."""
    if is_distributed():
        tdist.barrier()


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (``obj`` itself in one process). A collective: every
    rank calls it; the others wait here until rank 0 arrives."""
    if not is_distributed():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def all_sum(*values: float) -> tuple[float, ...]:
    """Sums of ``values`` over the ranks (float64); the values themselves in one process."""
    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    tdist.all_reduce(t)
    return tuple(t.tolist())


def local_first(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on each machine's local rank 0 first, then on the other ranks.

    For per-machine caches (the image cache): one rank builds it, the others find it built.
    In one process: just the call.
    """
    if not is_distributed():
        return fn(*args, **kwargs)
    if local_rank() == 0:
        out = fn(*args, **kwargs)
        barrier()
        return out
    barrier()
    return fn(*args, **kwargs)


def on_main(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on rank 0 alone (it may write files); every rank gets its result."""
    return broadcast_object(fn(*args, **kwargs) if is_main() else None)


# --------------------------------------------------------------------------------------------
# run directory


class FollowerRunDir(RunDir):
    """What ranks other than 0 hold instead of the run directory: same path, status and
    config, reads work, writes do nothing (rank 0 writes everything)."""

    def __init__(self, path: str | Path, status: str, config: dict[str, Any] | None) -> None:
        # no RunDir.__init__: it would write versions.json and log to run.log
        self.path = Path(path)
        self.status = status
        self.config = config

    def close(self, stopped_by: BaseException | None = None) -> None:
        pass

    def log_only(self, text: str, level: int = logging.INFO) -> None:
        pass  # (rank 0 writes run.log)

    def write_json(self, name: str, obj: Any) -> Path:
        return self.path / name

    def write_csv(self, name: str, rows: Any, fieldnames: list[str]) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        return self.path / name


def open_run_dir(out: str | Path, config: Mapping[str, Any], **kwargs: Any) -> RunDir:
    """:func:`vsent.runs.open_run_dir` on rank 0; the other ranks wait for its outcome.

    They get a :class:`FollowerRunDir` with rank 0's status, or the same VsentError (a run
    refused). In one process: :func:`vsent.runs.open_run_dir` itself.
    """
    if not is_distributed():
        return _open_run_dir(out, config, **kwargs)
    if is_main():
        try:
            rd = _open_run_dir(out, config, **kwargs)
        except VsentError as e:
            broadcast_object(("error", str(e), None))
            raise
        broadcast_object(("ok", rd.status, rd.config))
        return rd
    kind, status, stored = broadcast_object(None)
    if kind == "error":
        raise VsentError(status)
    return FollowerRunDir(out, status, stored)


# --------------------------------------------------------------------------------------------
# training


def seed_epoch(seed: int, epoch: int) -> None:
    """In DDP, seed this rank's global torch RNG (dropout) from (seed, epoch, rank).

    Ranks then draw different dropout masks, and a resumed run draws the same ones as an
    uninterrupted run (the state file holds rank 0's RNG only). No-op in one process.
    """
    if is_distributed():
        entropy = [seed & 0xFFFF_FFFF_FFFF_FFFF, epoch, rank()]  # SeedSequence wants >= 0
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]))


def shard_batch(
    images: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    crop: int,
    gen: torch.Generator,
    *,
    rank_: int | None = None,
    world: int | None = None,
) -> tuple[torch.Tensor, np.ndarray, float]:
    """This rank's rows of the global batch ``idx``, cropped as one process would crop them.

    Draws the random crops and mirrors of the *whole* global batch from ``gen`` as
    :func:`vsent.data.transforms.random_crop_flip` does (:func:`~vsent.data.transforms.
    draw_crops`), so ``gen`` ends in the same state on every rank and in one process; then
    reads and crops rows ``rank::world`` only.

    Parameters
    ----------
    images : uint8 (N, S, S, 3), the image cache. labels : (N,) class indices.
    idx : int (B,), the global batch (sorted). crop : output side in pixels.
    rank_, world : default this process's rank and the world size.

    Returns
    -------
    x : uint8 tensor (b, crop, crop, 3), b = len(idx[rank::world]).
    y : (b,) labels of those rows.
    weight : ``b * world / B``: the rank's mean loss times it, averaged over ranks (DDP), is
        the mean loss over the global batch.
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    b = len(idx)
    mine = idx[r::w]
    shard = torch.from_numpy(images[mine])  # (indexing by an array copies: writable)
    h, wd = shard.shape[1], shard.shape[2]
    if crop > h or crop > wd:
        raise ValueError(f"crop {crop} is larger than the images ({h}x{wd})")
    rows0, cols0, mirror = draw_crops(b, h, wd, crop, gen)  # the whole global batch's
    x = crop_windows(shard, rows0[r::w], cols0[r::w], mirror[r::w], crop)
    return x, labels[mine], len(mine) * w / b


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to train: DDP around ``model`` across ranks (with SyncBatchNorm on GPUs),
    ``model`` itself in one process. Undo with :func:`unwrap_model` after training.

    SyncBatchNorm layers share the parameters and buffers of the BatchNorm layers they
    replace, so the optimiser (built on ``model``) and ``model.state_dict()`` are unchanged.
    """
    if not is_distributed():
        return model
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    if device.type == "cuda":
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm):
                    sync = nn.SyncBatchNorm.convert_sync_batchnorm(child)
                    setattr(parent, name, sync)
                    swapped.append((parent, name, child))
    net = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    net._vsent_swapped = swapped  # type: ignore[attr-defined]
    return net


def unwrap_model(net: nn.Module) -> nn.Module:
    """The model inside :func:`wrap_model`'s DDP, its BatchNorm layers back, every rank with
    rank 0's buffers (BatchNorm running statistics); ``net`` itself in one process."""
    if not isinstance(net, nn.parallel.DistributedDataParallel):
        return net
    for parent, name, child in getattr(net, "_vsent_swapped", []):
        setattr(parent, name, child)  # shares the trained parameters and buffers
    model = net.module
    for buf in model.buffers():
        tdist.broadcast(buf.data, src=0)
    return model


def module_of(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (for its attributes: ``info``, ``preprocess``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# --------------------------------------------------------------------------------------------
# launcher


def wants_launch(nproc: int, backend: str, device: str) -> bool:
    """Whether ``--nproc`` asks this process to start torchrun (checks the options first).

    False for ``--nproc 1`` and inside a torchrun process (whose ``--nproc`` was removed by
    :func:`launch_command`, or which torchrun started itself: it is ignored, with a warning).
    """
    if nproc < 1:
        raise VsentError(f"--nproc must be at least 1, got {nproc}")
    name = resolve_backend(backend, device)
    if nproc == 1:
        return False
    if launched():
        log.warning("--nproc %d ignored: this is already one of %s torchrun processes", nproc,
                    os.environ.get("WORLD_SIZE"))
        return False
    if device.startswith("cuda:"):  # (local_device refuses it in each rank)
        raise VsentError(f"--device {device} with --nproc {nproc}: each process trains on its "
                         "own GPU (cuda:LOCAL_RANK); give --device cuda")
    # each rank trains on cuda:LOCAL_RANK, with nccl or gloo alike
    if (name == "nccl" or _on_gpus(device)) and nproc > torch.cuda.device_count():
        raise VsentError(f"--nproc {nproc}: {name} on GPUs needs one GPU per process, this "
                         f"machine has {torch.cuda.device_count()}")
    return True


def launch_command(argv: Sequence[str], nproc: int) -> list[str]:
    """The torchrun command that runs ``vsent ARGV`` on ``nproc`` local processes.

    ``--nproc N`` / ``--nproc=N`` are removed from ``argv`` (the ranks must not launch
    again); everything else, ``--dist-backend`` included, is passed on unchanged.
    """
    rest: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={int(nproc)}", "-m", "vsent.cli", *rest]


def launch(nproc: int, command: str, argv: Sequence[str] | None = None) -> int:
    """Run ``vsent`` again as ``nproc`` DDP processes on this machine; its exit status.

    ``argv`` (the CLI passes ``main()``'s) defaults to this process's command line
    (``sys.argv[1:]``); it must hold the sub-command ``command``. An interrupt of this process
    (Ctrl-C, SIGTERM) is passed on to torchrun, which stops the ranks (:func:`_stop_agent`),
    and is then raised again here. torchrun runs through
    :func:`torchrun_main` (``python -m vsent.distributed``): a run that a process ended with a
    user error exits with :data:`~vsent.errors.EXIT_USER_ERROR` (2), its one ``vsent: error:``
    line alone on stderr, as in one process (torchrun itself exits 1 after a page of its own
    traceback). That holds for these single-node launches, where torchrun stops the other
    ranks within :data:`FOLLOWER_GRACE` (see :func:`user_errors_from_rank0` for others).
    """
    import subprocess

    argv = list(sys.argv[1:] if argv is None else argv)
    if command not in argv:
        raise VsentError(f"--nproc: relaunching needs the `vsent {command}` command line; "
                         "from Python, run `torchrun --nproc-per-node N -m vsent.cli "
                         f"{command} ...` instead")
    cmd = launch_command(argv, nproc)
    env = dict(os.environ)
    # torchrun would give each process 1 thread: on CPU, share the cores between them instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc))))
    # the same torchrun arguments, through this module's torchrun_main; the log names the
    # command that runs (and the plain torchrun one it stands for, to run by hand)
    wrapped = [cmd[0], "-m", __name__, *cmd[3:]]
    log.info("launching %d processes: %s (torchrun: %s)", nproc, shlex.join(wrapped),
             shlex.join(cmd))
    # its own session: a Ctrl-C or a SIGTERM reaches the agent once, from here (below)
    # the ranks leave the interrupt line to this process; torchrun watches it (_follow_launcher)
    env[LAUNCHED_BY_VSENT] = str(os.getpid())
    agent = subprocess.Popen(wrapped, env=env, start_new_session=True)
    try:
        return agent.wait()
    except KeyboardInterrupt as stop:
        _stop_agent(agent, stop)
        raise


#: Seconds the launcher waits for the torchrun agent it signalled to stop its ranks (torchrun
#: gives them 30 s before it kills them) before it kills the agent.
AGENT_STOP_WAIT = 60.0


def _stop_agent(agent: Any, stop: KeyboardInterrupt) -> None:
    """Pass Ctrl-C (SIGINT) or SIGTERM (``Terminated``) on to the torchrun ``agent`` and wait
    for it to stop its ranks. The ranks run in their own session, out of reach of any signal
    sent to this process or its group: killing the agent at once, as ``subprocess.run`` does,
    left them training (and writing the run directory) after the launcher had exited."""
    import subprocess

    sig = signal.SIGINT if type(stop) is KeyboardInterrupt else signal.SIGTERM
    deadline = time.monotonic() + AGENT_STOP_WAIT
    agent.send_signal(sig)
    while True:
        try:
            agent.wait(timeout=max(0.0, deadline - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            break
        except KeyboardInterrupt:  # pressed again: the agent is stopping them already
            continue
    log.warning("torchrun did not stop within %.0f s: killing it (its processes may be left "
                "running)", AGENT_STOP_WAIT)
    agent.kill()
    agent.wait()


#: Seconds a rank other than 0 waits, after a user error, for torchrun to stop it (rank 0
#: met the same error, printed it and exited) before it prints the error itself.
FOLLOWER_GRACE = 10.0


@contextmanager
def user_errors_from_rank0() -> Iterator[list[int]]:
    """Inside :func:`session`: a user error of a rank other than 0 is said by rank 0 alone
    (one line, not one per process). The ranks meet the same errors (the same data and
    options; open_run_dir's refusal is broadcast): rank 0 prints it and exits, and torchrun
    stops the others while they wait, silently. A rank still running after
    :data:`FOLLOWER_GRACE` met an error of its own: it prints it (so such an error costs that
    wait before the run stops). The list then holds the exit status the rank returns. In one
    process: the error is raised as it is.

    Single-node torchrun (``--nproc N``) only: under multi-node torchrun, srun or a hand-made
    ``env://`` launch nothing stops the followers, so each prints the error, late; and a
    follower waiting in a collective when rank 0 fails may die with the backend's traceback
    before it is stopped.

    A rank that ends normally waits for the others before it leaves (:func:`end_together`).
    """
    status: list[int] = []
    try:
        yield status
    except VsentError as e:
        if is_main():
            raise
        _wait_to_be_stopped()
        print(f"vsent: error: {e}", file=sys.stderr)
        status.append(EXIT_USER_ERROR)
    except RuntimeError:
        # the backends' error when a collective loses a rank (gloo: "Connection closed by
        # peer"): rank 0, which evaluates and writes alone while the others wait, exited,
        # e.g. with a user error it printed; torchrun is stopping this rank too
        if is_main():
            raise
        _wait_to_be_stopped()
        raise
    else:
        end_together()


def _wait_to_be_stopped() -> None:
    """A rank other than 0 after an error: wait :data:`FOLLOWER_GRACE` for torchrun to stop it
    (SIGTERM, at its default action: no message of its own)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    time.sleep(FOLLOWER_GRACE)


def end_together() -> None:
    """Wait at a barrier for the other ranks before leaving (no-op in one process): rank 0
    evaluates and writes alone, and once in CI a rank that had torn its group down meanwhile
    ended in SIGABRT, which would have its launcher stop rank 0 mid-write. A rank that stopped
    with an error of its own never arrives: with gloo the barrier fails when it exits, and this
    rank leaves with a warning (its own work is done; the launcher reports the other's exit);
    with nccl a lost rank is not seen by the barrier, which waits until torchrun stops this
    rank too (single node) or :data:`TIMEOUT` passes."""
    if not is_distributed():
        return
    try:
        tdist.barrier()
    except RuntimeError as e:  # the backends' errors (DistBackendError is one)
        log.warning("rank %d: another process stopped before the run ended (%s)", rank(),
                    str(e).splitlines()[0] if str(e) else type(e).__name__)


class _QuietUserError(logging.Filter):
    """Drops torchrun's log lines about a process that exited with a user error (2) and
    about the other processes it stops then: that process printed the reason already.

    torchrun stops the other processes ("Sending process N closing signal SIGTERM") before
    it logs which one failed ("failed (exitcode: 2) ..."): those lines are held until then,
    and logged after all unless the failure is a user error (:meth:`release`)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.held: list[logging.LogRecord] = []
        self.releasing = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.releasing:
            return True
        msg = str(record.msg)
        if msg.startswith("Sending process"):
            self.held.append(record)
            return False
        if msg.startswith("failed (exitcode"):
            args = record.args if isinstance(record.args, tuple) else ()
            if args and args[0] == EXIT_USER_ERROR:
                self.held.clear()
                return False
            self.release()
        return True

    def release(self) -> None:
        """Log the lines held (in their order): the failure was no user error."""
        self.releasing = True
        try:
            for record in self.held:
                self.logger.handle(record)
        finally:
            self.held.clear()
            self.releasing = False


def torchrun_main(args: Sequence[str]) -> int:
    """``torchrun ARGS`` (``python -m torch.distributed.run``), its exit status, except that a
    run whose first failed process exited with a user error (2: one ``vsent: error:`` line,
    printed by rank 0) exits 2 without torchrun's traceback and failure report. Any other
    failure is reported as torchrun reports it. ``python -m vsent.distributed ARGS`` runs it.

    The one line holds for single-node launches (``--nproc N``: torchrun stops the other
    ranks at once); see :func:`user_errors_from_rank0` for what other launches print.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    agent_log = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    quiet = _QuietUserError(agent_log)
    agent_log.addFilter(quiet)
    # "Received 2 death signal, shutting down workers": the launcher's line says the stop
    server_log = logging.getLogger("torch.distributed.elastic.agent.server.api")
    server_log.addFilter(_no_death_signal)
    try:
        run(parse_args(list(args)))
    except ChildFailedError as e:
        _, first = e.get_first_failure()
        if first.exitcode == EXIT_USER_ERROR:
            return EXIT_USER_ERROR
        raise
    except SignalException as e:  # stopped the ranks on Ctrl-C / SIGTERM: the launcher says
        quiet.held.clear()  # so in one line (this was a page of traceback, then three
        return 128 + int(e.sigval)  # warnings: the signal, a "closing signal" per rank)
    finally:
        quiet.release()  # (held lines of a stop that was not for a user error)
        agent_log.removeFilter(quiet)
        server_log.removeFilter(_no_death_signal)
    return 0


def _no_death_signal(record: logging.LogRecord) -> bool:
    return "death signal" not in str(record.msg)


def _follow_launcher() -> None:
    """In the torchrun agent that :func:`launch` started (Linux): a SIGTERM when the launcher
    dies, so that torchrun stops the ranks. A launcher killed with SIGKILL (the OOM killer, a
    scheduler) cannot pass its signal on (:func:`_stop_agent`), and the agent and its ranks went
    on training, orphans writing the run directory, until they finished."""
    launcher = os.environ.get(LAUNCHED_BY_VSENT, "")
    if not (sys.platform.startswith("linux") and launcher.isdigit()):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(launcher):  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":  # pragma: no cover - run by launch() in its own process
    _follow_launcher()
    sys.exit(torchrun_main(sys.argv[1:]))
