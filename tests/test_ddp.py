"""Data-parallel training (vsent.distributed): 2 processes on CPU with gloo against one process.

Tolerance of the weight comparison (DDP vs one process with the same global batch): in exact
arithmetic both runs take the same steps (same permutation, same crops, gradient of the same
global-batch mean). In float32 the gradient sums are done in another order (each rank sums
its half batch, gloo then adds the two halves), so each step's gradient differs by a few ulp
(float32 eps = 1.2e-7, relative); over the few SGD steps here the weights measured differ by
at most ~2e-6 of each tensor's largest entry (max 1.6e-6, fc4.bias). We allow 2e-5 of the
tensor's largest entry, and check that this is far below the change training made to the
tensor (a run whose gradients were off by even 1%, e.g. an unsynchronised rank or unweighted
uneven shards, would differ by about 1% of that change). The model is PCNN without dropout
(no BatchNorm): PyTorch's SyncBatchNorm does not run on CPU, so a BatchNorm model trained
with gloo is only statistically equivalent to one process (see vsent.distributed).
"""

from __future__ import annotations

import faulthandler
import gc
import json
import logging
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import default_sigint
from vsent import distributed
from vsent.config import RunConfig, TrainConfig
from vsent.data.transforms import random_crop_flip
from vsent.errors import VsentError

# ----------------------------------------------------------------------------------------------
# pieces, in one process


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_the_one_process_batch_with_its_crops(world):
    images = torch.randint(0, 256, (10, 12, 12, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1)).numpy()
    labels = np.arange(10) % 2
    idx = np.array([0, 2, 3, 5, 6, 8, 9])  # 7 rows: uneven shards
    gen = torch.Generator().manual_seed(5)
    expect = random_crop_flip(torch.from_numpy(images[idx]), 8, gen)
    after_one = gen.get_state()
    total_weight = 0.0
    for r in range(world):
        g = torch.Generator().manual_seed(5)
        x, y, weight = distributed.shard_batch(images, labels, idx, 8, g, rank_=r, world=world)
        assert torch.equal(x, expect[r::world])
        assert np.array_equal(y, labels[idx[r::world]])
        assert torch.equal(g.get_state(), after_one)  # the generator stays in step
        assert weight == pytest.approx(len(idx[r::world]) * world / len(idx))
        total_weight += weight
    assert total_weight == pytest.approx(world)


def test_weighted_shard_losses_average_to_the_global_mean_gradient():
    """What DDP computes (mean over ranks of each rank's weighted loss gradient) is the
    gradient of the mean loss over the global batch, also with uneven shards."""
    torch.manual_seed(0)
    net = nn.Linear(6, 2)
    x = torch.randn(7, 6)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    loss_fn = nn.CrossEntropyLoss()
    net.zero_grad()
    loss_fn(net(x), y).backward()
    expect = net.weight.grad.clone()
    world, grads = 2, []
    for r in range(world):
        net.zero_grad()
        weight = len(y[r::world]) * world / len(y)
        (loss_fn(net(x[r::world]), y[r::world]) * weight).backward()
        grads.append(net.weight.grad.clone())
    torch.testing.assert_close(sum(grads) / world, expect, rtol=1e-6, atol=1e-7)
    unweighted = []
    for r in range(world):  # without the weights the mean is wrong: the test can fail
        net.zero_grad()
        loss_fn(net(x[r::world]), y[r::world]).backward()
        unweighted.append(net.weight.grad.clone())
    assert not torch.allclose(sum(unweighted) / world, expect, rtol=1e-3, atol=1e-6)


def test_launch_command_removes_nproc_and_keeps_the_rest():
    cmd = distributed.launch_command(
        ["finetune", "--data", "d", "--nproc", "4", "--dist-backend", "gloo", "--nproc=2"], 4)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in cmd and "--standalone" in cmd
    # one process count, the one asked for (not the --nproc=2 of the command line)
    assert [a for a in cmd if "nproc" in a] == ["--nproc-per-node=4"]
    assert cmd[cmd.index("vsent.cli") - 1] == "-m"
    assert cmd[cmd.index("vsent.cli") + 1:] == ["finetune", "--data", "d", "--dist-backend",
                                                 "gloo"]


def test_one_process_helpers_are_identities(tmp_path, monkeypatch):
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert distributed.all_sum(1.5, 2, 3) == (1.5, 2, 3)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    net = nn.Linear(2, 2)
    assert distributed.wrap_model(net, torch.device("cpu")) is net
    assert distributed.wants_launch(1, "auto", "cpu") is False
    # --nproc 2 from a plain process starts torchrun; inside a torchrun rank it does not again
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.wants_launch(2, "auto", "cpu") is True
    assert distributed.wants_launch(2, "gloo", "cpu") is True
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.wants_launch(2, "auto", "cpu") is False
    monkeypatch.delenv("WORLD_SIZE")
    from vsent.errors import VsentError

    with pytest.raises(VsentError, match=r"^--dist-backend nccl needs GPUs \(--device cuda\); "
                                         r"use gloo on CPU$"):
        distributed.wants_launch(2, "nccl", "cpu")
    with pytest.raises(VsentError, match="^--dist-backend 'mpi': choose one of "):
        distributed.wants_launch(2, "mpi", "cpu")
    with pytest.raises(VsentError, match="^--nproc must be at least 1, got 0$"):
        distributed.wants_launch(0, "auto", "cpu")


# ----------------------------------------------------------------------------------------------
# 2 processes (gloo) against one


def _config(data: Path, epochs: int = 2) -> RunConfig:
    return RunConfig(
        data=str(data), model="pcnn", init="random", preset=None,
        model_kwargs={"dropout": 0.0, "fc_widths": [32, 32, 8]},  # no dropout, no BatchNorm
        train=TrainConfig(epochs=epochs, batch_size=4, lr=1e-3, schedule="constant",
                          device="cpu"),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, root: str) -> None:
    """One rank: run A (whole), run B interrupted after epoch 1, run B resumed; records the
    files this rank opened for writing (or replaced, removed) under ``root``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    faulthandler.enable()  # a rank that aborts shows where (pytest captures its stderr)
    torch.set_num_threads(1)
    import vsent.train
    from vsent.crossval import finetune

    writes: list[str] = []
    root_s = str(Path(root).resolve())

    def audit(event: str, args: tuple) -> None:
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1], args[2]
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
            if writing and str(Path(args[0]).resolve()).startswith(root_s):
                writes.append(str(args[0]))
        elif event in ("os.rename", "os.remove", "shutil.rmtree") and \
                str(args[0]).startswith(root_s):  # os.replace audits as os.rename
            writes.append(f"{event} {' '.join(map(str, args[:2]))}")

    sys.addaudithook(audit)
    real_save = torch.save

    def save(obj, f, *a, **k):  # torch.save opens a path in C++, unseen by the hook (a file
        # object, as vsent.files.atomic_open gives it, was opened in Python: the hook saw it)
        if isinstance(f, str | os.PathLike) and str(Path(f).resolve()).startswith(root_s):
            writes.append(f"torch.save {f}")
        return real_save(obj, f, *a, **k)

    torch.save = save
    report: dict = {}
    # as the CLI: the ranks that end normally leave together (distributed.end_together)
    with distributed.session("gloo", "cpu"), distributed.user_errors_from_rank0():
        cfg = _config(Path(data))
        report["a"] = finetune(cfg, Path(root) / "ddp", progress=False)
        real = vsent.train.train_one_epoch
        calls = []

        def interrupted(*a, **k):
            calls.append(1)
            if len(calls) == 2:  # every rank stops at the start of epoch 2
                raise KeyboardInterrupt
            return real(*a, **k)

        vsent.train.train_one_epoch = interrupted
        try:
            finetune(cfg, Path(root) / "resumed", progress=False)
        except KeyboardInterrupt:
            report["interrupted"] = True
        vsent.train.train_one_epoch = real
        distributed.barrier()
        state = Path(root) / "resumed" / "train_state.pt"
        report["state_epochs"] = len(torch.load(state, weights_only=False)["history"])
        distributed.barrier()  # every rank has read it before it is resumed (and removed)
        report["b"] = finetune(cfg, Path(root) / "resumed", resume=True, progress=False)
        report["world"] = distributed.world_size()
    report["writes"] = writes
    Path(root, f"report{rank}.json").write_text(json.dumps(report))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state_dict"]


def test_two_processes_match_one_process_write_once_and_resume(make_learnable, tmp_path):
    from vsent.crossval import finetune, fresh_model

    data = make_learnable(n_pos=6, n_neg=5)  # 11 images, batches of 4: 4, 4, 3 (uneven)
    cfg = _config(data)
    single = finetune(cfg, tmp_path / "single", progress=False)  # also builds the image cache
    root = tmp_path / "runs"
    root.mkdir()
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(data), str(root)),
                                nprocs=2, join=True)
    reports = [json.loads((root / f"report{r}.json").read_text()) for r in range(2)]

    assert all(r["world"] == 2 for r in reports)
    w1 = _weights(Path(single["model"]))
    w0 = fresh_model(cfg, cfg.seed).state_dict()  # the weights before training
    for name in ("ddp", "resumed"):
        wd = _weights(root / name / "model.pt")
        for key, ref in w1.items():
            scale = ref.abs().max().item()
            diff = (wd[key] - ref).abs().max().item()
            change = (ref - w0[key]).abs().max().item()
            assert diff <= 2e-5 * scale, (name, key, diff, scale)
            assert diff <= 1e-2 * change, (name, key, diff, change)  # far below the change
    # the resumed DDP run is the uninterrupted DDP run
    wa, wb = _weights(root / "ddp" / "model.pt"), _weights(root / "resumed" / "model.pt")
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=1e-7 * wa[key].abs().max())
    hist_1 = json.loads((tmp_path / "single" / "history.json").read_text())
    hist_d = json.loads((root / "ddp" / "history.json").read_text())
    assert [h["loss"] for h in hist_d] == pytest.approx([h["loss"] for h in hist_1], rel=1e-5)
    assert [h["train_accuracy"] for h in hist_d] == [h["train_accuracy"] for h in hist_1]

    # interrupted after epoch 1, resumed by both ranks from rank 0's train_state.pt
    assert all(r["interrupted"] and r["state_epochs"] == 1 for r in reports)
    assert reports[1]["b"] == reports[0]["b"] == {
        "n_train": 11, "model": str(root / "resumed" / "model.pt")}
    assert json.loads((root / "resumed" / "history.json").read_text())[1]["epoch"] == 2
    # rank 0 wrote the run directories (the audit hook sees it), rank 1 wrote nothing
    written = " ".join(reports[0]["writes"])
    for f in ("ddp/config.json", "ddp/model.pt", "ddp/train_state", "ddp/run.log",
              "resumed/metrics.json"):
        assert f in written, f
    assert reports[1]["writes"] == []
    assert sorted(p.name for p in (root / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir())


def _one_rank_fails(rank: int, world: int, port: int, root: str) -> None:
    """Rank 1 meets a user error of its own; rank 0 ends normally and waits at the end."""
    import time

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    faulthandler.enable()
    distributed.FOLLOWER_GRACE = 0.0  # no torchrun here to stop rank 1: it says its error
    start = time.monotonic()
    with distributed.session("gloo", "cpu"), distributed.user_errors_from_rank0() as status:
        distributed.barrier()  # both ranks are in the group
        if rank == 1:
            raise VsentError("rank 1's own error")
    Path(root, f"status{rank}.json").write_text(json.dumps(
        {"status": status, "seconds": time.monotonic() - start}))


def test_a_rank_that_ends_normally_does_not_wait_for_one_that_failed(tmp_path, capfd):
    """review33 #1: the ranks that end normally wait for each other at a barrier
    (end_together); one that met an error never arrives, and the other leaves when it exits
    (a warning), not after the 2-hour collective timeout."""
    torch.multiprocessing.spawn(_one_rank_fails, args=(2, _free_port(), str(tmp_path)),
                                nprocs=2, join=True)
    done = [json.loads((tmp_path / f"status{r}.json").read_text()) for r in range(2)]
    assert [d["status"] for d in done] == [[], [2]]
    assert max(d["seconds"] for d in done) < 60
    err = capfd.readouterr().err
    assert "vsent: error: rank 1's own error" in err
    assert "rank 0: another process stopped before the run ended" in err


@pytest.mark.slow
def test_nproc_relaunches_through_torchrun(make_learnable, tmp_path):
    """``vsent finetune --nproc 2`` (BatchNorm + dropout model, gloo): one summary line,
    one run directory, trained by 2 ranks (rank 1's log lines are warnings only)."""
    import subprocess

    data = make_learnable(n_pos=6, n_neg=6)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vsent.cli", "finetune", "--preset", "quick", "--data", str(data),
         "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", str(out),
         "--no-progress", "--nproc", "2"],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("model written to") == 1, proc.stdout
    assert "launching 2 processes" in proc.stderr
    assert (out / "model.pt").is_file() and (out / "metrics.json").is_file()
    assert not (out / "train_state.pt").exists()
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and history[0]["epoch"] == 1


# ----------------------------------------------------------------------------------------------
# audit_core23 #6: --nproc N refusals said once, before any process starts; exit 2 kept


@pytest.mark.parametrize("option, message", [
    (["--augment", "trivial"], "vsent: error: --augment trivial runs in one process "
                               "(data-parallel training shards Caffe's crop + mirror only)"),
    (["--mix", "mixup"], "vsent: error: --mix mixup runs in one process (data-parallel "
                         "training mixes no batches)"),
    # audit_cli25 #3: refused by every rank, after they had made the run directory
    (["--batch-size", "1"], "vsent: error: batches of 1 cannot be split over 2 processes "
                            "(--batch-size at least --nproc)"),
    (["--train", "head"], "vsent: error: --train head runs in one process (heads on cached "
                          "features are not split: every process would do the whole "
                          "computation)"),
])
def test_nproc_refusals_come_before_any_process_starts(twitter_like, tmp_path, monkeypatch,
                                                       capsys, option, message):
    """Refused inside the ranks, each printed it once, torchrun added its traceback (exit 1),
    and the run directory they had opened refused the corrected command."""
    from vsent.cli import main

    def no_launch(*a, **kw):
        raise AssertionError("launched")

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(distributed, "launch", no_launch)
    out = tmp_path / "run"
    argv = ["crossval", "--preset", "quick", "--data", str(twitter_like), "--out", str(out),
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--nproc", "2", *option]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not out.exists()
    launched = []
    monkeypatch.setattr(distributed, "launch", lambda n, command, argv: launched.append(n) or 0)
    assert main([*argv, "--nproc", "2"]) == 0 and launched == [2]  # the corrected command
    assert not out.exists()  # (the ranks, not run here, would make it)


def test_nproc_checks_the_run_directory_before_any_process_starts(twitter_like, tmp_path,
                                                                  monkeypatch, capsys):
    """An unfinished run without --resume: one line, exit 2, no process started."""
    from vsent.cli import main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    launched = []
    monkeypatch.setattr(distributed, "launch", lambda n, command, argv: launched.append(n) or 0)
    out = tmp_path / "run"
    argv = ["crossval", "--preset", "quick", "--data", str(twitter_like), "--out", str(out),
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    (out / "summary.json").unlink()
    assert main([*argv, "--nproc", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"vsent: error: {out} already holds an unfinished run: pass --resume "
                        "to continue it, --overwrite to start again, or choose another --out")
    assert err.count("vsent: error") == 1 and launched == []
    assert main([*argv, "--nproc", "2", "--resume"]) == 0 and launched == [2]


def test_only_rank_0_prints_a_user_error(monkeypatch, tmp_path, capsys):
    """Every rank printed the refusal they all met. Rank 0 prints it; another rank waits,
    silently, for torchrun to stop it (SIGTERM: its default action, no 'terminated' line),
    and says its error itself only when it is still running after the grace period."""
    import signal
    import time

    import vsent.crossval as cv
    from vsent.cli import main
    from vsent.errors import VsentError

    def refused(*a, **kw):
        raise VsentError("the same refusal on every rank")

    monkeypatch.setattr(cv, "crossval", refused)
    monkeypatch.setattr(cv, "finetune", refused)
    argv = ["--preset", "quick", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    waited = []

    def wait(seconds):  # where torchrun stops the rank (SIGTERM)
        waited.append((seconds, signal.getsignal(signal.SIGTERM), capsys.readouterr().err))

    for command in ("crossval", "finetune"):
        assert main([command, *argv]) == 2  # rank 0 (one process): says it
        assert capsys.readouterr().err == "vsent: error: the same refusal on every rank\n"
        waited.clear()
        with monkeypatch.context() as mp:
            mp.setattr(distributed, "is_main", lambda: False)
            mp.setattr(time, "sleep", wait)
            assert main([command, *argv]) == 2  # another rank: the same status
        assert waited == [(distributed.FOLLOWER_GRACE, signal.SIG_DFL, "")]
        # not stopped: an error of its own, which it says
        assert capsys.readouterr().err == "vsent: error: the same refusal on every rank\n"


class _Agent:
    """A stand-in for the torchrun agent :func:`distributed.launch` starts (subprocess.Popen):
    ``wait`` answers each entry of ``waits`` in turn (an exit status, or an exception to
    raise: KeyboardInterrupt where the launcher is interrupted while it waits)."""

    def __init__(self, cmd, waits=(0,), **kw):
        self.cmd, self.kw, self.waits = cmd, kw, list(waits)
        self.signals, self.killed, self.timeouts = [], False, []

    def wait(self, timeout=None):
        self.timeouts.append(timeout)
        answer = self.waits.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def send_signal(self, sig):
        self.signals.append(sig)

    def kill(self):
        self.killed = True


def _fake_popen(monkeypatch, waits=(0,)):
    import subprocess

    agents = []

    def popen(cmd, **kw):
        agents.append(_Agent(cmd, waits, **kw))
        return agents[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    return agents


def test_launch_runs_torchrun_through_its_exit_status_wrapper(monkeypatch):
    agents = _fake_popen(monkeypatch, waits=[2])
    assert distributed.launch(2, "crossval", ["crossval", "--nproc", "2", "--out", "x"]) == 2
    seen = [a.cmd for a in agents]
    expected = distributed.launch_command(["crossval", "--out", "x"], 2)
    assert seen == [[sys.executable, "-m", "vsent.distributed", *expected[3:]]]


def test_launch_logs_the_command_it_runs(monkeypatch, caplog):
    """The log named ``python -m torch.distributed.run ...`` while ``python -m vsent.distributed
    ...`` ran: it names the command run, then the plain torchrun one it stands for."""
    import logging
    import shlex

    _fake_popen(monkeypatch)
    with caplog.at_level(logging.INFO, logger="vsent"):
        assert distributed.launch(2, "crossval", ["crossval", "--nproc", "2", "--out", "x"]) == 0
    plain = distributed.launch_command(["crossval", "--out", "x"], 2)
    run = [sys.executable, "-m", "vsent.distributed", *plain[3:]]
    assert [r.getMessage() for r in caplog.records if "launching" in r.getMessage()] == [
        f"launching 2 processes: {shlex.join(run)} (torchrun: {shlex.join(plain)})"]


# audit_cli25: the launcher and its ranks stop together; a crash says the run is kept


def test_launch_passes_an_interrupt_on_to_torchrun_and_waits_for_it(monkeypatch):
    """SIGTERM to the launcher alone killed the torchrun agent after 0.25 s (subprocess.run),
    and the ranks, in a session of their own, trained on as orphans. The agent now runs in its
    own session and gets the launcher's signal, once; the launcher waits for it to stop."""
    import signal

    from vsent.cli import Terminated

    argv = ["crossval", "--nproc", "2", "--out", "x"]
    for stop, sig in ((KeyboardInterrupt(), signal.SIGINT), (Terminated(), signal.SIGTERM)):
        agents = _fake_popen(monkeypatch, waits=[stop, KeyboardInterrupt(), 130])
        with pytest.raises(type(stop)):
            distributed.launch(2, "crossval", argv)
        (agent,) = agents
        assert agent.kw["start_new_session"] is True
        assert agent.kw["env"]["VSENT_LAUNCHED"] == str(os.getpid())
        # one signal, passed on; a second Ctrl-C while it stops does not kill it
        assert agent.signals == [sig] and not agent.killed
        assert agent.timeouts[0] is None and 0 < agent.timeouts[-1] <= distributed.AGENT_STOP_WAIT
    # an agent that does not stop in time is killed, with a warning
    import subprocess

    agents = _fake_popen(monkeypatch, waits=[KeyboardInterrupt(),
                                             subprocess.TimeoutExpired("torchrun", 1), 0])
    with pytest.raises(KeyboardInterrupt):
        distributed.launch(2, "crossval", argv)
    assert agents[0].signals == [signal.SIGINT] and agents[0].killed


def test_ranks_leave_the_interrupt_line_to_their_launcher(monkeypatch, tmp_path, capsys):
    """Ctrl-C on ``--nproc N`` printed "vsent: interrupted ..." N + 1 times."""
    import vsent.crossval as cv
    from vsent.cli import main

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(cv, "finetune", interrupted)
    argv = ["finetune", "--preset", "quick", "--data", str(tmp_path), "--out",
            str(tmp_path / "o")]
    (tmp_path / "o").mkdir()  # what the run had written before the interrupt
    assert main(argv) == 130
    assert capsys.readouterr().err == ("vsent: interrupted; what was written is kept: the same "
                                       "command with --resume continues it\n")
    monkeypatch.setenv("VSENT_LAUNCHED", "1")  # a rank the launcher started
    assert main(argv) == 130
    assert capsys.readouterr().err == ""


def test_a_crashed_launch_says_the_run_is_kept(twitter_like, tmp_path, monkeypatch, capsys):
    """A rank that crashed (killed, out of memory) ended --nproc with torchrun's traceback
    alone: nothing said that the run was kept and --resume continues it. The launch also takes
    main()'s own argv (it read sys.argv: main([...]) from Python was refused)."""
    from vsent.cli import main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    agents = _fake_popen(monkeypatch, waits=[1])
    out = tmp_path / "run"
    argv = ["crossval", "--preset", "quick", "--data", str(twitter_like), "--out", str(out),
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress",
            "--nproc", "2"]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "vsent: a training process failed (exit status 1, see above); what was written is "
        "kept: the same command with --resume continues it")
    assert agents[0].cmd[-len(argv) + 2:] == argv[:-2]  # this argv, without --nproc 2
    for status in (0, 2):  # done, or a user error the ranks said: nothing more to say
        _fake_popen(monkeypatch, waits=[status])
        assert main([*argv, "--resume"]) == status
        assert "training process failed" not in capsys.readouterr().err


def test_nproc_on_gpus_needs_one_gpu_per_process_with_gloo_too(monkeypatch):
    """Only nccl was checked: gloo ranks on CUDA each take cuda:LOCAL_RANK, and rank 1 of 2 on a
    one-GPU machine died of 'invalid device ordinal' (a traceback)."""
    from vsent.errors import VsentError

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for backend, device in (("gloo", "cuda"), ("gloo", "auto"), ("nccl", "cuda")):
        name = "nccl" if backend == "nccl" else "gloo"
        with pytest.raises(VsentError, match=rf"^--nproc 2: {name} on GPUs needs one GPU per "
                                             r"process, this machine has 1$"):
            distributed.wants_launch(2, backend, device)
    assert distributed.wants_launch(2, "gloo", "cpu") is True  # CPU ranks: no GPU needed
    assert distributed.wants_launch(1, "gloo", "cuda") is False


def test_resolve_lr_takes_a_name_that_is_no_crossval_preset_for_the_users_lr():
    """A PCNN preset name in a Python-made RunConfig was a KeyError in crossval.prepare."""
    from vsent.presets import CROSSVAL, resolve_lr

    assert resolve_lr("no-such-preset", 0.01, 1e-4) == 0.01
    lr = CROSSVAL["quick"]["train"].lr
    assert resolve_lr("quick", lr, 1e-4) == 1e-4 and resolve_lr("quick", lr * 2, 1e-4) == lr * 2


def test_dist_backend_choices_are_the_launchers():
    """One tuple (vsent.config's, torch-free for --help) serves the CLI and the launcher."""
    from vsent.cli.common import DIST_BACKENDS

    assert DIST_BACKENDS is distributed.BACKENDS


def _signal_a_launcher(data: Path, out: Path, sig: int,
                       settle_s: float) -> tuple[int, str, list[int]]:
    """Start `vsent finetune --nproc 2` into ``out``, send ``sig`` to the launcher alone (a
    scheduler signalling the main process) once the ranks train, and return its exit status,
    its stderr and the processes still training into ``out`` once it has exited and up to
    ``settle_s`` seconds have passed."""
    import contextlib
    import signal
    import subprocess
    import time

    def running() -> list[int]:  # the processes training into `out`, whoever started them
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(out) in cmdline.read_bytes().decode(errors="replace"):
                    found.append(int(cmdline.parent.name))
            except OSError:  # gone meanwhile
                pass
        return found

    log = out.parent / f"stderr-{out.name}.txt"
    with log.open("w") as err_file:  # a file: orphans holding a pipe open would block reading
        proc = subprocess.Popen(
            [sys.executable, "-m", "vsent.cli", "finetune", "--preset", "quick", "--data",
             str(data), "--epochs", "1000", "--batch-size", "4", "--device", "cpu", "--out",
             str(out), "--no-progress", "--nproc", "2"],
            stderr=err_file, start_new_session=True,  # a group of its own
            preexec_fn=default_sigint)  # (it may be sent SIGINT)
    try:
        deadline = time.monotonic() + 300
        while "epoch 2/" not in ((out / "run.log").read_text() if (out / "run.log").exists()
                                 else ""):
            assert proc.poll() is None and time.monotonic() < deadline, "no training seen"
            time.sleep(0.5)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        deadline = time.monotonic() + settle_s
        while (left := running()) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for pid in running():  # a failure leaves no orphans behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return proc.returncode, log.read_text(), left


@pytest.mark.slow
def test_sigterm_to_the_launcher_alone_stops_every_rank(make_learnable, tmp_path):
    """`kill PID` of `vsent finetune --nproc 2`: the ranks stop with it, the run is kept for
    --resume, and one line says so."""
    import signal

    out = tmp_path / "run"
    # the launcher waits for torchrun to stop them: gone as it exits
    status, err, left = _signal_a_launcher(make_learnable(n_pos=6, n_neg=6), out,
                                           signal.SIGTERM, settle_s=1)
    assert status == 128 + signal.SIGTERM, err[-3000:]
    assert err.count("vsent: terminated") == 1 and "Traceback" not in err, err[-3000:]
    assert left == [], "ranks left running"
    assert (out / "train_state.pt").is_file()  # the epochs done are kept for --resume


@pytest.mark.slow
def test_sigkill_of_the_launcher_stops_every_rank(make_learnable, tmp_path):
    """`kill -9 PID` (the OOM killer): nothing can pass SIGKILL on, but torchrun is told of
    its launcher's death and stops the ranks; they no longer train on as orphans."""
    import signal

    out = tmp_path / "run"
    # (torchrun gives the ranks 30 s to stop)
    status, err, left = _signal_a_launcher(make_learnable(n_pos=6, n_neg=6), out,
                                           signal.SIGKILL, settle_s=90)
    assert status == -signal.SIGKILL, err[-3000:]
    assert left == [], "ranks left running"
    assert (out / "train_state.pt").is_file()


def test_the_rank_0_error_helper_lives_with_the_ddp_plumbing():
    """Any DDP-capable command can use it (it was private to the crossval CLI)."""
    import vsent.cli.crossval as cli_crossval

    assert "user_errors_from_rank0" in distributed.__all__
    assert not hasattr(cli_crossval, "_rank0_says_errors")
    for doc in (distributed.launch.__doc__, distributed.torchrun_main.__doc__,
                distributed.user_errors_from_rank0.__doc__):
        assert "single-node" in " ".join(doc.lower().split())


def test_a_rank_that_exits_2_ends_the_launch_with_2_and_no_traceback(tmp_path):
    """torchrun turns a child's exit 2 into exit 1 and a 40-line ChildFailedError report; the
    wrapper keeps 2 and the child's own line alone. Other failures are reported as before."""
    import subprocess

    script = tmp_path / "child.py"
    script.write_text("import os, sys, time\n"
                      "if os.environ['RANK'] != '0':\n"
                      "    time.sleep(120)  # still running: torchrun stops it\n"
                      "print('vsent: error: refused', file=sys.stderr)\n"
                      "sys.exit(int(os.environ['CODE']))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for code, rc in (("2", 2), ("3", 1)):
        proc = subprocess.run([sys.executable, "-m", "vsent.distributed", "--standalone",
                               "--nproc-per-node=2", str(script)], capture_output=True,
                              text=True, timeout=300, check=False, env={**env, "CODE": code})
        assert proc.returncode == rc, proc.stderr[-2000:]
        assert "vsent: error: refused" in proc.stderr
        if code == "2":
            assert proc.stderr.strip() == "vsent: error: refused", proc.stderr
        else:  # torchrun's own lines, the stop of the other rank's included
            assert "ChildFailedError" in proc.stderr and "exitcode  : 3" in proc.stderr
            assert "closing signal SIGTERM" in proc.stderr


def test_an_interrupted_agent_exits_as_signalled_without_a_traceback(monkeypatch, caplog):
    """torchrun's agent, stopped by the launcher's Ctrl-C / SIGTERM, raised SignalException: a
    page of traceback under the launcher's one interrupt line."""
    import signal

    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException

    for sig in (signal.SIGINT, signal.SIGTERM):
        def stopped(args, sig=sig):  # torchrun's own warnings of such a stop, then its raise
            logging.getLogger("torch.distributed.elastic.agent.server.api").warning(
                "Received %s death signal, shutting down workers", sig)
            logging.getLogger("torch.distributed.elastic.multiprocessing.api").warning(
                "Sending process %s closing signal %s", 12675, "SIGTERM")
            raise SignalException(f"Process 1 got signal: {sig}", sigval=sig)

        monkeypatch.setattr(torchrun, "run", stopped)
        caplog.clear()
        assert distributed.torchrun_main(["--standalone", "--nproc-per-node=2", "x.py"]) == (
            128 + sig)
        assert caplog.records == []  # (the launcher's one line says it)


def test_check_launch_checks_a_file_init_exists_without_loading_weights(make_twitter_like,
                                                                      tmp_path, monkeypatch):
    """The launcher built the model with --init (a load, or a first download, of the weights
    before each rank loads them again): the lr hint and --train check need the architecture
    alone; a file --init only has to exist."""
    import vsent.crossval as cv
    from vsent.errors import VsentError
    from vsent.models import create_model

    weights = tmp_path / "init.pt"
    torch.save(create_model("smallcnn").state_dict(), weights)
    built = []
    real = cv.create_model
    monkeypatch.setattr(cv, "create_model",
                        lambda name, *, init="random", **kw: built.append(init) or
                        real(name, init=init, **kw))
    twitter_like = make_twitter_like(n_folds=2)  # (a finished run of any size: tests38 #7)
    cfg = RunConfig(data=str(twitter_like), model="smallcnn", init=str(weights), preset="quick",
                    train=TrainConfig(epochs=1, batch_size=8, device="cpu"))
    out = tmp_path / "run"
    cv.check_launch(cfg, out, command="crossval", nproc=2)
    assert built == ["random"] and not out.exists()
    for missing, what in ((tmp_path / "gone.pt", "no such file"), (tmp_path, "a folder")):
        with pytest.raises(VsentError, match=f"^--init {missing}: {what} \\(random, imagenet "
                                             "or a weights file\\)$"):
            cv.check_launch(cfg.replace(init=str(missing)), out, command="crossval", nproc=2)
    # the run directory is compared with the --init the ranks record, not "random"
    cv.crossval(cfg.replace(train=cfg.train.replace(epochs=1)), out, progress=False)
    built.clear()
    cv.check_launch(cfg, out, command="crossval", nproc=2)  # finished: nothing refused
    assert built == ["random"]


# ----------------------------------------------------------------------------------------------
# a rank waiting for rank 0 when it stops; --ema buffers; --device cuda:N


def test_a_follower_whose_collective_fails_waits_for_torchrun_to_stop_it(monkeypatch, tmp_path):
    """Rank 0 evaluates and writes alone while the others wait for it in a collective; when it
    stopped with a user error (its one line, exit 2), a waiting rank died of gloo's
    "Connection closed by peer" with a 20-line traceback before torchrun stopped it. It now
    waits for torchrun, as after a user error, and raises only when still running."""
    import signal
    import time

    import vsent.crossval as cv
    from vsent.cli import main

    def rank_0_left(*a, **kw):
        raise RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer")

    monkeypatch.setattr(cv, "finetune", rank_0_left)
    waited = []
    monkeypatch.setattr(time, "sleep",
                        lambda s: waited.append((s, signal.getsignal(signal.SIGTERM))))
    argv = ["finetune", "--preset", "quick", "--data", str(tmp_path), "--out",
            str(tmp_path / "o")]
    with pytest.raises(RuntimeError, match="Connection closed by peer"):
        main(argv)  # rank 0 (one process): its own error, at once
    assert waited == []
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    with pytest.raises(RuntimeError, match="Connection closed by peer"):
        main(argv)  # another rank: stopped by torchrun meanwhile, else raised
    assert waited == [(distributed.FOLLOWER_GRACE, signal.SIG_DFL)]


_RANK_0_FAILS = '''\
import sys, time
import vsent.crossval as cv
from vsent import distributed
from vsent.cli import main
from vsent.errors import VsentError

def finetune(*a, **kw):
    if distributed.is_main():
        time.sleep(1.0)  # rank 0 evaluates and writes alone ...
        raise VsentError("cannot write metrics.json: no space left on device")
    return distributed.broadcast_object(None)  # ... while the others wait for its result

cv.finetune = finetune
sys.exit(main(["finetune", "--preset", "quick", "--data", sys.argv[1], "--out", sys.argv[2],
               "--device", "cpu", "--dist-backend", "gloo"]))
'''


def test_a_user_error_of_rank_0_while_the_others_wait_is_one_line(tmp_path):
    """The same through torchrun (the --nproc wrapper): exit 2 and rank 0's line alone, no
    traceback of the rank that waited (it had one, [rank1]: RuntimeError ... Connection closed
    by peer, in 3 runs of 3)."""
    import subprocess

    script = tmp_path / "rank0_fails.py"
    script.write_text(_RANK_0_FAILS)
    proc = subprocess.run(
        [sys.executable, "-m", "vsent.distributed", "--standalone", "--nproc-per-node=2",
         str(script), str(tmp_path), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == ("vsent: error: cannot write metrics.json: no space left on "
                                   "device"), proc.stderr[-3000:]


def _ema_worker(rank: int, world: int, port: int, root: str) -> None:
    """fit() of a BatchNorm model with --ema on 2 ranks; saves this rank's buffers."""
    from vsent.models import create_model
    from vsent.train import fit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    faulthandler.enable()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 20, 20, 3), dtype=np.uint8)
    labels = np.arange(12) % 2
    with distributed.session("gloo", "cpu"):
        torch.manual_seed(0)
        model = create_model("smallcnn", init="random", widths=[4, 8], image_size=16)
        fit(model, images, labels, TrainConfig(epochs=1, batch_size=6, device="cpu", ema=0.9),
            progress=False)
        torch.save(dict(model.named_buffers()), Path(root, f"buffers{rank}.pt"))


def test_every_rank_holds_rank_0s_batchnorm_buffers_after_training_with_ema(tmp_path):
    """unwrap_model gave every rank rank 0's BatchNorm statistics, then fit loaded each rank's
    own moving average over them (on CPU each rank's statistics are its shards')."""
    torch.multiprocessing.spawn(_ema_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                                join=True)
    b0, b1 = (torch.load(tmp_path / f"buffers{r}.pt") for r in range(2))
    assert b0.keys() == b1.keys() and any("running_mean" in k for k in b0)
    for key in b0:
        assert torch.equal(b0[key], b1[key]), key


def test_ddp_refuses_a_gpu_named_by_its_index(monkeypatch):
    """--device cuda:0 put every rank on GPU 0 (local_device kept an explicit index): nccl
    fails with a traceback (two ranks on one GPU), gloo shares the one GPU."""
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for rank_device in ("cuda:0", "cuda:1"):  # the same answer on every rank
        with pytest.raises(VsentError, match=rf"^--device {rank_device}: data-parallel "
                                             r"processes each train on their own GPU"):
            distributed.local_device(torch.device(rank_device))
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.undo()
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(VsentError, match=r"^--device cuda:0 with --nproc 2: each process "
                                         r"trains on its own GPU"):
        distributed.wants_launch(2, "auto", "cuda:0")
    assert distributed.wants_launch(2, "auto", "cuda") is True


def test_a_follower_run_dir_writes_and_logs_nothing(tmp_path):
    """Ranks other than 0 hold a FollowerRunDir: every write and log line of RunDir is a no-op
    there (log_only raised AttributeError: the follower skips RunDir.__init__)."""
    out = tmp_path / "run"
    rd = distributed.FollowerRunDir(out, "new", {"seed": 0})
    assert rd.write_json("a.json", {"x": 1}) == out / "a.json"
    assert rd.write_text("a.md", "x") == out / "a.md"
    assert rd.write_csv("a.csv", [{"x": 1}], ["x"]) == out / "a.csv"
    rd.log_only("a line for run.log")
    rd.close()
    assert not out.exists()


# ----------------------------------------------------------------------------------------------
# mutation round 46 (mut46a): vsent.distributed mutants the suite missed


@pytest.fixture
def one_rank_group(tmp_path, monkeypatch):
    """A real gloo process group of one rank, in this process, taken for a DDP rank
    (is_distributed patched): the collectives run for real, in milliseconds."""
    import torch.distributed as tdist

    tdist.init_process_group("gloo", store=tdist.FileStore(str(tmp_path / "store"), 1), rank=0,
                             world_size=1)
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    try:
        yield
    finally:
        tdist.destroy_process_group()


def test_a_group_of_one_rank_is_one_process(tmp_path):
    """is_distributed means more than one rank: a group of one (a caller's own
    init_process_group) keeps the one-process arithmetic, the model unwrapped."""
    import torch.distributed as tdist

    tdist.init_process_group("gloo", store=tdist.FileStore(str(tmp_path / "store"), 1), rank=0,
                             world_size=1)
    try:
        assert distributed.is_distributed() is False and distributed.world_size() == 1
        net = nn.Linear(2, 2)
        assert distributed.wrap_model(net, torch.device("cpu")) is net
    finally:
        tdist.destroy_process_group()


def test_local_rank_is_torchruns_in_ddp_and_0_in_one_process(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.local_rank() == 0  # one process: whatever the environment says
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    assert distributed.local_rank() == 3
    monkeypatch.delenv("LOCAL_RANK")
    assert distributed.local_rank() == 0  # (torchrun always sets it; 0 without)
    # rank 0 of the whole group writes the files, not local rank 0 of every machine
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    assert distributed.is_main() is False
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    assert distributed.is_main() is True


@pytest.mark.parametrize("backend, device, cuda, expect", [
    ("auto", "cpu", False, "gloo"), ("auto", "cpu", True, "gloo"),
    ("auto", "cuda", False, "nccl"), ("auto", "cuda:1", False, "nccl"),
    ("auto", "auto", True, "nccl"), ("auto", "auto", False, "gloo"),
    ("auto", "mps", True, "gloo"),  # no CUDA device: not on GPUs, CUDA or not
    ("gloo", "cuda", True, "gloo"), ("gloo", "auto", True, "gloo"),
    ("nccl", "cuda", False, "nccl"), ("nccl", "auto", True, "nccl"),
])
def test_resolve_backend_picks_nccl_on_gpus_and_gloo_elsewhere(monkeypatch, backend, device,
                                                               cuda, expect):
    """The documented --dist-backend choice: auto is nccl when the ranks train on CUDA (a cuda
    device, or auto where CUDA is available), else gloo; an explicit choice is kept."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert distributed.resolve_backend(backend, device) == expect


def test_resolve_backend_refuses_nccl_without_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cpu", "auto", "mps"):
        with pytest.raises(VsentError, match=r"^--dist-backend nccl needs GPUs"):
            distributed.resolve_backend("nccl", device)
    with pytest.raises(VsentError, match=r"^--dist-backend 'NCCL': choose one of auto, "):
        distributed.resolve_backend("NCCL", "cuda")


def _torchrun_env_of_one(monkeypatch) -> None:
    """torchrun's env:// variables for a group of one rank, this process taken for a launched
    rank (session() joins only under torchrun)."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setattr(distributed, "launched", lambda: True)


class _Cycle:
    """An object in a reference cycle: only the cycle collector frees it. It records whether
    the process group was still joined then."""

    def __init__(self, seen: list[bool]) -> None:
        self.me = self
        self.seen = seen

    def __del__(self) -> None:
        import torch.distributed as tdist

        self.seen.append(tdist.is_initialized())


@pytest.mark.parametrize("main", [True, False])
def test_session_joins_gloo_for_the_command_and_leaves_the_log_as_it_was(monkeypatch, main):
    """Under torchrun the command runs in a gloo group (CPU) that is gone afterwards; ranks
    other than 0 log warnings only meanwhile (one copy of the log), and the level is restored."""
    import torch.distributed as tdist

    _torchrun_env_of_one(monkeypatch)
    monkeypatch.setattr(distributed, "is_main", lambda: main)
    vlog = logging.getLogger("vsent")
    monkeypatch.setattr(vlog, "level", logging.DEBUG)
    # an object left in a reference cycle (as a DDP wrapper may be) is collected while the
    # group is still whole, not later, by chance, once it is gone
    collected: list[bool] = []
    gc.disable()  # (no automatic collection meanwhile)
    try:
        with distributed.session("auto", "cpu"):
            assert tdist.is_initialized() and tdist.get_backend() == "gloo"
            assert vlog.level == (logging.DEBUG if main else logging.WARNING)
            _Cycle(collected)
    finally:
        gc.enable()
    assert not tdist.is_initialized() and vlog.level == logging.DEBUG
    assert collected == [True]


def test_session_uses_a_group_the_caller_joined_and_leaves_it_open(tmp_path, monkeypatch):
    import torch.distributed as tdist

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.session("gloo", "cpu"):  # one process: no group at all
        assert not tdist.is_initialized()
    tdist.init_process_group("gloo", store=tdist.FileStore(str(tmp_path / "store"), 1), rank=0,
                             world_size=1)
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun rank whose caller joined the group
        with distributed.session("gloo", "cpu"):
            assert tdist.is_initialized()
        assert tdist.is_initialized()  # left open: it is the caller's
    finally:
        tdist.destroy_process_group()


@pytest.mark.parametrize("backend, device, cuda, joined, gpu", [
    ("gloo", "cuda", True, "gloo", 1),  # gloo ranks on GPUs each take cuda:LOCAL_RANK too
    ("auto", "auto", True, "nccl", 1),
    ("nccl", "cuda", True, "nccl", 1),
    ("gloo", "cpu", True, "gloo", None),  # CPU ranks leave the GPUs alone
    ("auto", "cpu", False, "gloo", None),
])
def test_session_puts_each_rank_on_its_own_gpu_and_waits_long(monkeypatch, backend, device,
                                                              cuda, joined, gpu):
    """With CUDA rank r trains on cuda:LOCAL_RANK; the group waits TIMEOUT (2 h: rank 0 builds
    the cache and evaluates alone) at a collective, not the backend's default 30 minutes."""
    import torch.distributed as tdist

    _torchrun_env_of_one(monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    calls: list[object] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(tdist, "init_process_group", lambda name, **kw: calls.append((name, kw)))
    monkeypatch.setattr(tdist, "destroy_process_group", lambda: calls.append("destroyed"))
    with distributed.session(backend, device):
        pass
    # the rank's GPU is set before it joins the group (nccl binds to the current device)
    assert calls == [*([] if gpu is None else [("set_device", gpu)]),
                     (joined, {"timeout": distributed.TIMEOUT}), "destroyed"]
    assert distributed.TIMEOUT.total_seconds() == 2 * 3600


def test_collectives_of_a_rank_run_through_the_group(one_rank_group, monkeypatch):
    """broadcast_object gives rank 0's object (a copy sent through the group); all_sum adds in
    float64: a float32 sum would round 0.1 (summed losses and counts stay exact)."""
    obj = {"status": "new", "rows": [1, 2]}
    got = distributed.broadcast_object(obj)
    assert got == obj
    assert distributed.all_sum(0.1, 3, 1e-300) == (0.1, 3.0, 1e-300)
    import torch.distributed as tdist

    waits: list[int] = []
    real_barrier = tdist.barrier
    monkeypatch.setattr(tdist, "barrier", lambda: waits.append(1) or real_barrier())
    distributed.barrier()
    distributed.end_together()  # every rank arrived: no warning, no error
    assert waits == [1, 1]


def test_barrier_and_end_together_are_no_ops_in_one_process():
    distributed.barrier()  # (no process group: a collective would raise)
    distributed.end_together()


def test_local_first_runs_on_local_rank_0_before_the_others(monkeypatch):
    """Per-machine caches: local rank 0 builds, then the barrier; the others wait at the barrier,
    then find it built. In one process: just the call, no barrier."""
    calls: list[str] = []
    monkeypatch.setattr(distributed, "barrier", lambda: calls.append("barrier"))

    def build(x: int, *, y: int) -> int:
        calls.append("build")
        return x + y

    assert distributed.local_first(build, 1, y=2) == 3 and calls == ["build"]
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    for local, order in (("0", ["build", "barrier"]), ("1", ["barrier", "build"])):
        calls.clear()
        monkeypatch.setenv("LOCAL_RANK", local)
        assert distributed.local_first(build, 1, y=2) == 3
        assert calls == order


def test_on_main_runs_on_rank_0_alone_and_every_rank_gets_its_result(monkeypatch):
    sent: list[object] = []
    monkeypatch.setattr(distributed, "broadcast_object",
                        lambda obj: sent.append(obj) or "rank 0's result")
    ran: list[int] = []
    assert distributed.on_main(lambda a: ran.append(a) or "mine", 7) == "rank 0's result"
    assert ran == [7] and sent == ["mine"]  # rank 0 (one process here): runs, then sends
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    sent.clear()
    ran.clear()
    assert distributed.on_main(lambda a: ran.append(a) or "mine", 7) == "rank 0's result"
    assert ran == [] and sent == [None]  # another rank: never runs it (it may write files)


def test_open_run_dir_opens_on_rank_0_and_gives_the_others_its_outcome(tmp_path, monkeypatch):
    """Rank 0 opens the run directory and sends ("ok", status, config) or ("error", message);
    another rank opens nothing: a FollowerRunDir with rank 0's status and stored config, or
    the same VsentError."""
    from types import SimpleNamespace

    out = tmp_path / "run"
    sent: list[object] = []
    answer: list[object] = []
    monkeypatch.setattr(distributed, "broadcast_object",
                        lambda obj: sent.append(obj) or (answer[0] if answer else obj))
    opened = SimpleNamespace(status="resumed", config={"seed": 3})
    monkeypatch.setattr(distributed, "_open_run_dir", lambda o, c, **kw: opened)
    assert distributed.open_run_dir(out, {"seed": 3}) is opened and sent == []  # one process
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "is_main", lambda: True)  # rank 0 (no group here)
    assert distributed.open_run_dir(out, {"seed": 3}, resume=True) is opened
    assert sent == [("ok", "resumed", {"seed": 3})]

    def refused(o, c, **kw):
        raise VsentError(f"{o} already holds an unfinished run")

    monkeypatch.setattr(distributed, "_open_run_dir", refused)
    sent.clear()
    with pytest.raises(VsentError, match="already holds an unfinished run$"):
        distributed.open_run_dir(out, {"seed": 3})
    assert sent == [("error", f"{out} already holds an unfinished run", None)]

    monkeypatch.setattr(distributed, "is_main", lambda: False)  # another rank opens nothing
    sent.clear()
    answer.append(("ok", "resumed", {"seed": 3, "stored": True}))
    rd = distributed.open_run_dir(out, {"seed": 3})
    assert isinstance(rd, distributed.FollowerRunDir) and sent == [None]
    assert (rd.path, rd.status, rd.config) == (out, "resumed", {"seed": 3, "stored": True})
    answer[0] = ("error", "the refusal rank 0 met", None)
    with pytest.raises(VsentError, match="^the refusal rank 0 met$"):
        distributed.open_run_dir(out, {"seed": 3})
    assert not out.exists()


def _dropout_draws(seed: int, epoch: int) -> torch.Tensor:
    distributed.seed_epoch(seed, epoch)
    return torch.rand(8)


def test_seed_epoch_seeds_each_rank_from_seed_epoch_and_rank(one_rank_group, monkeypatch):
    """Dropout masks: the same (seed, epoch, rank) draws the same (a resumed run), another
    epoch, rank or seed draws others; a negative seed is a seed of its own (not |seed|)."""
    first = _dropout_draws(5, 2)
    assert torch.equal(_dropout_draws(5, 2), first)
    assert not torch.equal(_dropout_draws(5, 3), first)
    assert not torch.equal(_dropout_draws(6, 2), first)
    assert not torch.equal(_dropout_draws(-5, 2), first)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert not torch.equal(_dropout_draws(5, 2), first)


def test_seed_epoch_leaves_one_process_alone():
    """In one process the global RNG goes on as it did before DDP existed."""
    torch.manual_seed(0)
    expect = torch.rand(4)
    torch.manual_seed(0)
    distributed.seed_epoch(5, 2)
    assert torch.equal(torch.rand(4), expect)


def test_shard_batch_crops_non_square_images_as_one_process_would():
    """Rows and columns drawn in random_crop_flip's order and range (h != w here)."""
    images = torch.randint(0, 256, (6, 10, 16, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2)).numpy()
    labels = np.arange(6) % 2
    idx = np.array([0, 1, 3, 4, 5])
    expect = random_crop_flip(torch.from_numpy(images[idx]), 8, torch.Generator().manual_seed(9))
    for r in range(2):
        x, _, _ = distributed.shard_batch(images, labels, idx, 8,
                                          torch.Generator().manual_seed(9), rank_=r, world=2)
        assert torch.equal(x, expect[r::2])


def test_shard_batch_takes_this_ranks_rows_by_default(monkeypatch):
    images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    labels = np.array([0, 1, 0, 1, 1])
    idx = np.array([0, 1, 2, 4])

    def shard(**kw: int) -> tuple[torch.Tensor, np.ndarray, float]:
        return distributed.shard_batch(images, labels, idx, 4, torch.Generator().manual_seed(1),
                                       **kw)

    x, y, weight = shard()  # one process: the whole batch, weight 1
    assert torch.equal(x, random_crop_flip(torch.from_numpy(images[idx]), 4,
                                           torch.Generator().manual_seed(1)))
    assert np.array_equal(y, labels[idx]) and weight == 1.0
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    x, y, weight = shard()
    x1, y1, weight1 = shard(rank_=1, world=3)
    assert torch.equal(x, x1) and np.array_equal(y, y1) and weight == weight1 == 0.75
    assert np.array_equal(y, labels[[1]])


def test_shard_batch_refuses_a_crop_larger_than_either_side():
    labels = np.zeros(3, dtype=int)
    idx = np.arange(3)
    gen = torch.Generator().manual_seed(0)
    for h, w in ((6, 9), (9, 6)):  # too tall, then too wide
        images = np.zeros((3, h, w, 3), dtype=np.uint8)
        with pytest.raises(ValueError, match=rf"^crop 7 is larger than the images \({h}x{w}\)$"):
            distributed.shard_batch(images, labels, idx, 7, gen, rank_=0, world=1)
        x, _, _ = distributed.shard_batch(images, labels, idx, 6, gen, rank_=0, world=1)
        assert x.shape == (3, 6, 6, 3)  # a crop as large as the short side fits


class _FakeDDP(nn.Module):
    """Stands in for DistributedDataParallel on GPUs (none here): keeps what it was given."""

    def __init__(self, module: nn.Module, device_ids: list[int] | None = None) -> None:
        super().__init__()
        self.module, self.device_ids = module, device_ids


def _bn_model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))


def test_wrap_model_syncs_batchnorm_on_gpus_and_unwrap_gives_the_model_back(one_rank_group,
                                                                           monkeypatch):
    """On GPUs BatchNorm becomes SyncBatchNorm (global batch statistics) on this rank's GPU;
    unwrap_model puts the very BatchNorm layers back (they hold the trained statistics) and
    every rank takes rank 0's buffers."""
    import torch.distributed as tdist

    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", _FakeDDP)
    model = _bn_model()
    bn = model[1][0]
    net = distributed.wrap_model(model, torch.device("cuda", 1))
    assert isinstance(net, _FakeDDP) and net.module is model and net.device_ids == [1]
    assert isinstance(model[1][0], nn.SyncBatchNorm) and distributed.module_of(net) is model
    sent = []
    real_broadcast = tdist.broadcast
    monkeypatch.setattr(tdist, "broadcast",
                        lambda t, src: sent.append(src) or real_broadcast(t, src=src))
    monkeypatch.setattr(distributed, "rank", lambda: 1)  # rank 1 takes rank 0's buffers
    assert distributed.unwrap_model(net) is model and model[1][0] is bn
    assert sent == [0] * len(list(model.buffers()))  # running mean, var, batches tracked


def test_wrap_model_keeps_batchnorm_on_cpu(one_rank_group):
    """SyncBatchNorm does not run on CPU: gloo ranks keep BatchNorm (their shards' statistics)."""
    model = _bn_model()
    net = distributed.wrap_model(model, torch.device("cpu"))
    assert isinstance(net, nn.parallel.DistributedDataParallel) and net.module is model
    assert type(model[1][0]) is nn.BatchNorm2d and distributed.module_of(net) is model
    net(torch.randn(2, 3, 6, 6))  # it trains
    assert distributed.unwrap_model(net) is model
    assert distributed.unwrap_model(model) is model and distributed.module_of(model) is model


def _agent_logger(name: str) -> tuple[logging.Logger, list[str]]:
    """A logger standing in for torchrun's agent log, and the lines it emits."""
    emitted: list[str] = []
    logger = logging.getLogger(f"vsent.tests.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers = [logging.Handler()]
    logger.handlers[0].emit = lambda record: emitted.append(record.getMessage())
    return logger, emitted


def test_quiet_user_error_holds_stop_lines_until_it_knows_the_failure(request):
    """torchrun says "Sending process N closing signal" before "failed (exitcode: X)": those
    lines are held; a user error (2) drops both, any other failure logs them, in order."""
    logger, emitted = _agent_logger(request.node.name)
    quiet = distributed._QuietUserError(logger)
    logger.addFilter(quiet)
    stop = ("Sending process %s closing signal %s", 12675, "SIGTERM")
    failed = "failed (exitcode: %s) local_rank: %s (pid: %s) of binary: %s"
    logger.warning(*stop)
    assert emitted == [] and len(quiet.held) == 1
    logger.error(failed, 2, 0, 12674, "vsent")  # a user error: its line was printed already
    logger.info("another line")
    assert emitted == ["another line"] and quiet.held == []
    emitted.clear()
    logger.warning(*stop)
    logger.error(failed, 3, 0, 12674, "vsent")  # no user error: torchrun's report, whole
    assert emitted == ["Sending process 12675 closing signal SIGTERM",
                       "failed (exitcode: 3) local_rank: 0 (pid: 12674) of binary: vsent"]
    emitted.clear()
    logger.warning(*stop)  # a stop with no failure line (an interrupt): logged at release
    quiet.release()
    assert emitted == ["Sending process 12675 closing signal SIGTERM"] and quiet.held == []
    logger.warning(*stop)  # held again after a release
    assert emitted == ["Sending process 12675 closing signal SIGTERM"] and len(quiet.held) == 1


def test_torchrun_main_keeps_a_user_errors_status_and_reraises_other_failures(monkeypatch):
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    agent_log = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    server_log = logging.getLogger("torch.distributed.elastic.agent.server.api")
    before = (list(agent_log.filters), list(server_log.filters))
    outcome: list[BaseException] = []

    def run(args):
        if outcome:
            raise outcome[0]

    monkeypatch.setattr(torchrun, "run", run)
    args = ["--standalone", "--nproc-per-node=2", "x.py"]
    assert distributed.torchrun_main(args) == 0
    for code in (2, 3):
        outcome[:] = [ChildFailedError("x.py", {0: ProcessFailure(0, 1, code, "<N/A>")})]
        if code == 2:
            assert distributed.torchrun_main(args) == 2
        else:
            with pytest.raises(ChildFailedError):
                distributed.torchrun_main(args)
    assert (agent_log.filters, server_log.filters) == before  # its filters are gone after
    # (before may hold a filter that an earlier torchrun_main left: none may be left at all)
    assert distributed._no_death_signal not in server_log.filters


def test_torchrun_main_drops_only_the_death_signal_line():
    record = logging.LogRecord("x", logging.WARNING, "f", 1,
                               "Received %s death signal, shutting down workers", (2,), None)
    assert not distributed._no_death_signal(record)
    record.msg = "Starting elastic_operator with launch configs:"
    assert distributed._no_death_signal(record)


def test_launch_command_keeps_the_option_after_an_nproc_equals():
    """--nproc=N is one argument: the next one (--data d here) is the user's, kept."""
    cmd = distributed.launch_command(["crossval", "--nproc=2", "--data", "d", "--nproc", "2",
                                      "--out", "o"], 2)
    assert cmd[cmd.index("vsent.cli") + 1:] == ["crossval", "--data", "d", "--out", "o"]


def test_launch_shares_the_cores_between_the_processes_and_needs_its_command(monkeypatch):
    """torchrun would give each process one thread: the launcher sets OMP_NUM_THREADS to the
    cores / N (at least 1) unless the user set it; a command line without the sub-command
    cannot be relaunched."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    argv = ["crossval", "--nproc", "2", "--out", "x"]
    for cores, nproc, threads in ((8, 2, "4"), (8, 3, "2"), (2, 4, "1"), (None, 2, "1")):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        agents = _fake_popen(monkeypatch)
        assert distributed.launch(nproc, "crossval", argv) == 0
        assert agents[0].kw["env"]["OMP_NUM_THREADS"] == threads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice is kept
    agents = _fake_popen(monkeypatch)
    distributed.launch(2, "crossval", argv)
    assert agents[0].kw["env"]["OMP_NUM_THREADS"] == "3"
    agents = _fake_popen(monkeypatch)
    with pytest.raises(VsentError, match=r"^--nproc: relaunching needs the `vsent finetune` "):
        distributed.launch(2, "finetune", argv)
    assert agents == []


def test_follow_launcher_asks_for_sigterm_when_its_launcher_dies(monkeypatch):
    """The agent asks Linux for SIGTERM at its parent's death (PR_SET_PDEATHSIG = 1), and stops
    at once when the launcher is already gone (its parent is no longer that pid)."""
    import ctypes
    import signal

    calls: list[tuple] = []

    class Libc:
        def prctl(self, option: int, sig: int) -> int:
            calls.append(("prctl", option, sig))
            return 0

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **kw: Libc())
    monkeypatch.setattr(os, "kill", lambda pid, sig: calls.append(("kill", pid, sig)))
    monkeypatch.setattr(sys, "platform", "linux")
    for launcher, expect in (
            (None, []), ("not-a-pid", []),
            (str(os.getppid()), [("prctl", 1, signal.SIGTERM)]),
            (str(os.getppid() + 1), [("prctl", 1, signal.SIGTERM),  # died before prctl
                                     ("kill", os.getpid(), signal.SIGTERM)])):
        calls.clear()
        if launcher is None:
            monkeypatch.delenv("VSENT_LAUNCHED", raising=False)
        else:
            monkeypatch.setenv("VSENT_LAUNCHED", launcher)
        distributed._follow_launcher()
        assert calls == expect, launcher


def test_torchrun_main_logs_the_held_stop_lines_of_any_other_ending(monkeypatch, caplog):
    """Lines held while torchrun stopped the ranks are logged when the run ends some other way
    than a user error (here the agent fails with no process failure)."""
    import torch.distributed.run as torchrun

    def run(args):
        logging.getLogger("torch.distributed.elastic.multiprocessing.api").warning(
            "Sending process %s closing signal %s", 12675, "SIGTERM")
        raise RuntimeError("rendezvous failed")

    monkeypatch.setattr(torchrun, "run", run)
    with pytest.raises(RuntimeError, match="^rendezvous failed$"):
        distributed.torchrun_main(["--standalone", "--nproc-per-node=2", "x.py"])
    assert [r.getMessage() for r in caplog.records] == [
        "Sending process 12675 closing signal SIGTERM"]


def test_a_killed_agent_is_waited_for(monkeypatch):
    """An agent that did not stop in time is killed, then reaped (no zombie left behind, its
    exit seen before the launcher goes on)."""
    import subprocess

    agents = _fake_popen(monkeypatch, waits=[KeyboardInterrupt(),
                                             subprocess.TimeoutExpired("torchrun", 1), -9])
    with pytest.raises(KeyboardInterrupt):
        distributed.launch(2, "crossval", ["crossval", "--nproc", "2", "--out", "x"])
    assert agents[0].killed and agents[0].waits == [] and agents[0].timeouts[-1] is None


def test_rank_0_raises_its_user_error_as_it_is():
    """Rank 0 (and one process) says the error itself: user_errors_from_rank0 re-raises it, the
    status list stays empty (the CLI's own handler prints it and exits 2)."""
    with pytest.raises(VsentError, match="^refused$"), \
            distributed.user_errors_from_rank0() as status:
        raise VsentError("refused")
    assert status == []


# ----------------------------------------------------------------------------------------------
# mutation round 50 (mut50a): vsent.distributed mutants the suite missed


def test_session_puts_gloo_ranks_of_device_auto_on_their_gpus_where_cuda_is(monkeypatch):
    """--device auto trains on CUDA where it is available: a gloo rank takes cuda:LOCAL_RANK
    then, as with --device cuda; without CUDA it leaves the GPUs alone."""
    import torch.distributed as tdist

    _torchrun_env_of_one(monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "1")
    devices: list[int] = []
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(tdist, "init_process_group", lambda name, **kw: None)
    monkeypatch.setattr(tdist, "destroy_process_group", lambda: None)
    for cuda, expect in ((True, [1]), (False, [])):
        devices.clear()
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        with distributed.session("gloo", "auto"):
            pass
        assert devices == expect, cuda


def test_session_leaves_the_group_and_the_log_level_when_the_command_fails(monkeypatch):
    """A command that fails (a user error, a crash) still leaves the group and gives the log its
    level back: an unset level (NOTSET, the root's level inherited) stays unset."""
    import torch.distributed as tdist

    _torchrun_env_of_one(monkeypatch)
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    vlog = logging.getLogger("vsent")
    monkeypatch.setattr(vlog, "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    with pytest.raises(VsentError, match="^refused$"), distributed.session("gloo", "cpu"):
        assert tdist.is_initialized() and vlog.level == logging.WARNING
        raise VsentError("refused")
    assert not tdist.is_initialized() and vlog.level == logging.NOTSET


def test_local_device_keeps_any_device_in_one_process_and_non_cuda_ones_in_ddp(monkeypatch):
    """One process trains where --device says, an indexed GPU included; in DDP only a CUDA
    device becomes cuda:LOCAL_RANK."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    for name in ("cuda", "cuda:1", "cuda:0", "cpu"):
        assert distributed.local_device(torch.device(name)) == torch.device(name)
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    for name in ("cpu", "mps", "meta"):
        assert distributed.local_device(torch.device(name)) == torch.device(name)


def test_broadcast_object_returns_what_the_group_sent_not_its_own(one_rank_group, monkeypatch):
    """Another rank gets rank 0's object (the collective fills the list in place), sent through
    this rank's communication device (the CPU with gloo)."""
    import torch.distributed as tdist

    calls: list[tuple] = []

    def broadcast(box, src, device):
        calls.append((list(box), src, device))
        box[0] = "rank 0's object"

    monkeypatch.setattr(tdist, "broadcast_object_list", broadcast)
    monkeypatch.setattr(distributed, "rank", lambda: 1)  # rank 1 receives from rank 0
    assert distributed.broadcast_object(None) == "rank 0's object"
    assert calls == [([None], 0, torch.device("cpu"))]
    # with nccl, through this rank's GPU (session() made cuda:LOCAL_RANK the current device)
    monkeypatch.setattr(tdist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    calls.clear()
    assert distributed.broadcast_object(None) == "rank 0's object"
    assert calls == [([None], 0, torch.device("cuda", 1))]


def test_all_sum_adds_the_other_ranks_values(one_rank_group, monkeypatch):
    """all_sum is a sum over the ranks (here a stand-in all_reduce adds another rank's values
    for a SUM and spoils the result for any other reduction)."""
    import torch.distributed as tdist

    others = torch.tensor([0.25, 4.0, -1.0], dtype=torch.float64)

    def all_reduce(t, op=tdist.ReduceOp.SUM):
        t.copy_(t + others if op == tdist.ReduceOp.SUM else torch.full_like(t, float("nan")))

    monkeypatch.setattr(tdist, "all_reduce", all_reduce)
    assert distributed.all_sum(0.5, 1, 7) == (0.75, 5.0, 6.0)


def test_a_follower_run_dir_takes_a_str_path(tmp_path):
    out = tmp_path / "run"
    rd = distributed.FollowerRunDir(str(out), "new", None)
    assert rd.path == out and rd / "a.json" == out / "a.json"
    assert rd.write_json("a.json", {"x": 1}) == out / "a.json" and not out.exists()


def test_open_run_dir_sends_the_stored_config_not_the_asked_one(tmp_path, monkeypatch):
    """A resumed run's config.json is the one the other ranks get (rank 0's RunDir.config)."""
    from types import SimpleNamespace

    sent: list[object] = []
    monkeypatch.setattr(distributed, "broadcast_object", lambda obj: sent.append(obj) or obj)
    opened = SimpleNamespace(status="resumed", config={"seed": 3, "epochs": 4})
    asked: list[dict] = []
    monkeypatch.setattr(distributed, "_open_run_dir",
                        lambda o, c, **kw: asked.append(kw) or opened)
    assert distributed.open_run_dir(tmp_path / "run", {"seed": 3}, resume=True,
                                    overwrite=False) is opened  # one process
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "is_main", lambda: True)
    assert distributed.open_run_dir(tmp_path / "run", {"seed": 3}, resume=True) is opened
    assert sent == [("ok", "resumed", {"seed": 3, "epochs": 4})]
    # --resume / --overwrite reach vsent.runs.open_run_dir, in one process and on rank 0
    assert asked == [{"resume": True, "overwrite": False}, {"resume": True}]


def test_seed_epoch_tells_seeds_apart_above_32_bits(one_rank_group):
    first = _dropout_draws(5, 2)
    assert not torch.equal(_dropout_draws(5 + 2**32, 2), first)
    assert torch.equal(_dropout_draws(5, 2), first)
    # the whole 64-bit seed torch takes: with 32 bits two (seed, epoch, rank) triples would
    # share dropout masks after ~2**16 triples, not ~2**32 (a 64-bit draw < 2**32: odds 2**-32)
    distributed.seed_epoch(5, 2)
    assert torch.initial_seed() >= 2**32


def test_shard_batch_takes_the_rank_and_world_given_over_this_processs(monkeypatch):
    """rank_=0 and world=2 are taken as given, in a process that is rank 1 of 3."""
    images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    labels = np.array([0, 1, 2, 3, 4])
    idx = np.array([0, 1, 2, 4])
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    _, y, weight = distributed.shard_batch(images, labels, idx, 4,
                                           torch.Generator().manual_seed(1), rank_=0, world=2)
    assert np.array_equal(y, [0, 2]) and weight == 1.0
    _, y, weight = distributed.shard_batch(images, labels, idx, 4,
                                           torch.Generator().manual_seed(1), rank_=0)
    assert np.array_equal(y, [0, 4]) and weight == 1.5


def test_shard_batch_of_a_rank_beyond_the_batch_is_empty_and_weighs_nothing():
    """More ranks than rows: the last rank's shard is empty (weight 0), and its generator still
    draws the whole batch's crops (the ranks stay in step)."""
    images = np.zeros((4, 6, 6, 3), dtype=np.uint8)
    labels = np.arange(4)
    idx = np.array([1, 3])
    after = torch.Generator().manual_seed(3)
    random_crop_flip(torch.from_numpy(images[idx]), 4, after)
    gen = torch.Generator().manual_seed(3)
    x, y, weight = distributed.shard_batch(images, labels, idx, 4, gen, rank_=2, world=3)
    assert x.shape == (0, 4, 4, 3) and len(y) == 0 and weight == 0.0
    assert torch.equal(gen.get_state(), after.get_state())


def test_wrap_model_syncs_every_kind_of_batchnorm_on_gpus(one_rank_group, monkeypatch):
    """BatchNorm1d (a head's) becomes SyncBatchNorm too, and comes back after training."""
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", _FakeDDP)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Conv3d(1, 2, 1),
                          nn.BatchNorm3d(2))
    bn1, bn3 = model[1], model[3]
    net = distributed.wrap_model(model, torch.device("cuda", 0))
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[3], nn.SyncBatchNorm)
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", type(net))
    assert distributed.unwrap_model(net) is model and model[1] is bn1 and model[3] is bn3


def test_module_of_unwraps_ddp_alone():
    """A model whose own submodule is called ``module`` is no DDP wrapper."""

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Linear(2, 2)

    holder = Holder()
    assert distributed.module_of(holder) is holder


def test_nproc_inside_a_torchrun_process_is_ignored_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        assert distributed.wants_launch(2, "auto", "cpu") is False
    assert [r.getMessage() for r in caplog.records] == [
        "--nproc 2 ignored: this is already one of 3 torchrun processes"]


def test_wants_launch_names_the_backend_auto_chose_and_checks_even_one_process(monkeypatch):
    """--dist-backend auto on GPUs is nccl in the refusal; --nproc 1 still refuses a bad
    backend (the options are checked first)."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(VsentError, match=r"^--nproc 2: nccl on GPUs needs one GPU per process, "
                                         r"this machine has 1$"):
        distributed.wants_launch(2, "auto", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VsentError, match=r"^--dist-backend nccl needs GPUs"):
        distributed.wants_launch(1, "nccl", "cpu")


def test_launch_reads_this_processs_command_line_and_leaves_its_environment(monkeypatch,
                                                                           caplog):
    """Without argv: sys.argv[1:] (the program name is no argument); the agent's environment
    is a copy (the launcher's own is unchanged); the log quotes arguments as a shell would."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("VSENT_LAUNCHED", raising=False)
    monkeypatch.setattr(sys, "argv", ["vsent", "crossval", "--nproc", "3", "--out", "my runs"])
    agents = _fake_popen(monkeypatch)
    with caplog.at_level(logging.INFO, logger="vsent"):
        assert distributed.launch(3, "crossval") == 0
    assert agents[0].cmd == [sys.executable, "-m", "vsent.distributed", "--standalone",
                             "--nproc-per-node=3", "-m", "vsent.cli", "crossval", "--out",
                             "my runs"]
    assert "OMP_NUM_THREADS" not in os.environ and "VSENT_LAUNCHED" not in os.environ
    assert f"--out 'my runs' (torchrun: {sys.executable} -m torch.distributed.run" in \
        caplog.records[-1].getMessage()


def test_launch_without_its_command_says_how_to_run_torchrun():
    with pytest.raises(VsentError, match=r"^--nproc: relaunching needs the `vsent finetune` "
                                         r"command line; from Python, run `torchrun "
                                         r"--nproc-per-node N -m vsent.cli finetune \.\.\.` "
                                         r"instead$"):
        distributed.launch(2, "finetune", ["crossval", "--nproc", "2"])


def test_a_second_interrupt_waits_out_the_rest_of_the_agents_time(monkeypatch, caplog):
    """The launcher waits AGENT_STOP_WAIT in all for the agent (longer than the 30 s torchrun
    gives its ranks), a second Ctrl-C included; then it kills the agent, with a warning."""
    import subprocess
    import time

    assert distributed.AGENT_STOP_WAIT > 30
    clock = [100.0, 110.0, 150.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock.pop(0) if len(clock) > 1 else clock[0])
    agents = _fake_popen(monkeypatch, waits=[KeyboardInterrupt(), KeyboardInterrupt(),
                                             subprocess.TimeoutExpired("torchrun", 1), -9])
    with pytest.raises(KeyboardInterrupt):
        distributed.launch(2, "crossval", ["crossval", "--nproc", "2"])
    wait = distributed.AGENT_STOP_WAIT
    assert agents[0].timeouts == [None, wait - 10, wait - 50, None] and agents[0].killed
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"torchrun did not stop within {wait:.0f} s: killing it (its processes may be left "
        "running)"]


def test_a_follower_raises_other_errors_at_once_and_waits_for_no_one(one_rank_group,
                                                                     monkeypatch):
    """Only user errors and the backends' RuntimeError wait for torchrun; a rank that failed
    does not wait for the others at the end (end_together is for ranks that ended normally)."""
    import time

    import torch.distributed as tdist

    monkeypatch.setattr(distributed, "is_main", lambda: False)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    barriers: list[int] = []
    monkeypatch.setattr(tdist, "barrier", lambda: barriers.append(1))
    with pytest.raises(ValueError, match="^a bug$"), distributed.user_errors_from_rank0():
        raise ValueError("a bug")
    assert slept == [] and barriers == []
    with distributed.user_errors_from_rank0() as status:
        raise VsentError("refused")
    assert status == [2] and slept == [distributed.FOLLOWER_GRACE] and barriers == []
    with distributed.user_errors_from_rank0() as status:
        pass
    assert status == [] and barriers == [1]


def test_end_together_says_which_rank_and_the_first_line_of_the_error(one_rank_group,
                                                                     monkeypatch, caplog):
    import torch.distributed as tdist

    errors = [RuntimeError("[gloo] Connection closed by peer\n  at pair.cc:561"),
              RuntimeError(), ValueError("no backend error")]

    def barrier():
        raise errors.pop(0)

    monkeypatch.setattr(tdist, "barrier", barrier)
    monkeypatch.setattr(distributed, "rank", lambda: 3)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with caplog.at_level(logging.WARNING, logger="vsent"):
        distributed.end_together()
        distributed.end_together()
        with pytest.raises(ValueError, match="^no backend error$"):
            distributed.end_together()  # not a backend's error: raised
    assert [r.getMessage() for r in caplog.records] == [
        "rank 3: another process stopped before the run ended ([gloo] Connection closed by "
        "peer)",
        "rank 3: another process stopped before the run ended (RuntimeError)"]


def test_quiet_user_error_reads_the_exit_status_alone_and_releases_in_order(request):
    """A failure whose local rank or pid is 2 is no user error; held lines come out in the
    order torchrun logged them; a failure line logged with a mapping is passed through."""
    logger, emitted = _agent_logger(request.node.name)
    quiet = distributed._QuietUserError(logger)
    logger.addFilter(quiet)
    logger.warning("Sending process %s closing signal %s", 1, "SIGTERM")
    logger.warning("Sending process %s closing signal %s", 2, "SIGTERM")
    logger.error("failed (exitcode: %s) local_rank: %s (pid: %s) of binary: %s", 1, 2, 2, "x")
    assert emitted == ["Sending process 1 closing signal SIGTERM",
                       "Sending process 2 closing signal SIGTERM",
                       "failed (exitcode: 1) local_rank: 2 (pid: 2) of binary: x"]
    emitted.clear()
    logger.error("failed (exitcode: %(code)s)", {"code": 2})
    assert emitted == ["failed (exitcode: 2)"]


def test_torchrun_main_passes_its_arguments_and_judges_the_first_failure(monkeypatch):
    """torchrun gets every argument; the status is that of the process that failed first (the
    others were stopped by torchrun after it)."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    seen: list = []
    outcome: list[BaseException] = []

    def run(args):
        seen.append(args)
        if outcome:
            raise outcome[0]

    monkeypatch.setattr(torchrun, "run", run)
    assert distributed.torchrun_main(["--standalone", "--nproc-per-node=2", "x.py", "a"]) == 0
    assert (seen[0].standalone, seen[0].nproc_per_node, seen[0].training_script,
            seen[0].training_script_args) == (True, "2", "x.py", ["a"])
    for order in ((0, 1), (1, 0)):
        failures = {0: ProcessFailure(0, 11, 2, "<N/A>"), 1: ProcessFailure(1, 12, -15, "<N/A>")}
        failures[0].timestamp, failures[1].timestamp = 100, 101  # rank 0's user error first
        outcome[:] = [ChildFailedError("x.py", {r: failures[r] for r in order})]
        assert distributed.torchrun_main(["--standalone", "--nproc-per-node=2", "x.py"]) == 2


def test_follow_launcher_is_linux_only(monkeypatch):
    import ctypes

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **kw: pytest.fail("prctl called"))
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv("VSENT_LAUNCHED", str(os.getppid()))
    distributed._follow_launcher()


def test_a_gpu_named_by_its_index_is_refused_whole_with_either_backend(monkeypatch):
    """The refusal says what to give instead; gloo ranks on GPUs share cuda:0 as nccl's would."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for backend in ("gloo", "nccl", "auto"):
        with pytest.raises(VsentError, match=r"^--device cuda:1 with --nproc 2: each process "
                                             r"trains on its own GPU \(cuda:LOCAL_RANK\); give "
                                             r"--device cuda$"):
            distributed.wants_launch(2, backend, "cuda:1")
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    with pytest.raises(VsentError, match=r"^--device cuda:0: data-parallel processes each train "
                                         r"on their own GPU \(cuda:LOCAL_RANK\); give --device "
                                         r"cuda$"):
        distributed.local_device(torch.device("cuda:0"))


def test_torchrun_main_keeps_the_agents_other_signal_lines():
    """Only "Received N death signal" is dropped (the launcher says the stop); another line
    that names a signal is kept."""
    record = logging.LogRecord("x", logging.WARNING, "f", 1,
                               "Sending process %s closing signal %s", (12675, "SIGTERM"), None)
    assert distributed._no_death_signal(record)
