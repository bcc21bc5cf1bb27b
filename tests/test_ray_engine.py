"""``vsent predict --engine ray``: a local Ray with 2 CPUs gives the default engine's rows."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsent.cli import main
from vsent.errors import EXIT_ITEMS_FAILED
from vsent.predict import Predictor

pytest.importorskip("ray.data")


def _score_a_folder_as_the_default_engine(tmp_path, capsys, checkpoint, monkeypatch):
    """`vsent predict --engine ray` gives the default engine's rows: order, labels, scores,
    error rows naming the inputs as given. Returns its CLI arguments."""
    monkeypatch.chdir(tmp_path)  # relative inputs: the workers are given absolute paths, the
    rng = np.random.default_rng(1)  # rows and their error messages name them as given
    root = Path("imgs")
    (root / "sub").mkdir(parents=True)
    for i in range(20):
        where = root / "sub" if i % 5 == 0 else root
        Image.fromarray(rng.integers(0, 255, (36 + i, 48, 3), dtype=np.uint8)).save(
            where / f"im{i:02d}.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["predict", "--model", str(checkpoint), str(root), "none*.png",
            "--device", "cpu", "--no-progress", "--batch-size", "8"]
    out_default, out_ray = Path("default.csv"), Path("ray.csv")
    assert main([*args, "--out", str(out_default)]) == EXIT_ITEMS_FAILED
    assert main([*args, "--out", str(out_ray), "--engine", "ray", "--ray-cpus", "2"]) == \
        EXIT_ITEMS_FAILED
    assert "scored 20 of 22 inputs, 2 failed" in capsys.readouterr().err

    rows_default = list(csv.DictReader(out_default.open(newline="")))
    rows_ray = list(csv.DictReader(out_ray.open(newline="")))
    assert [r["path"] for r in rows_ray] == [r["path"] for r in rows_default]  # same order
    assert len(rows_ray) == 22
    # scores computed here image by image, without either engine
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    for r, d in zip(rows_ray, rows_default, strict=True):
        assert (r["label"], r["error"]) == (d["label"], d["error"])
        if r["path"].endswith("broken.jpg") or "none*" in r["path"]:
            assert r["error"] and not r["prob_positive"]
            assert r["error"].startswith(f"{r['path']}: ")  # not the worker's absolute path
            continue
        want = pred.predict_arrays(pred.decode(r["path"])[None])[0, 1]
        assert float(r["prob_positive"]) == pytest.approx(float(want), abs=1e-6)
        assert float(r["prob_positive"]) == pytest.approx(float(d["prob_positive"]), abs=1e-6)
    return args


def test_ray_engine_streams_rows_and_scores_a_folder_as_the_default_engine(
        tmp_path, capsys, checkpoint, monkeypatch):
    """Rows come back while the input is still being read: the path iterator stops after a
    chunk and a half until every row read before has arrived (a pipeline that gathered every
    path into one block before decoding, as Ray Data does with small read outputs, would never
    release them; one that waited for a full chunk, as the engine did, would hold the half:
    an input that pauses, a --from-list written as files arrive, gets its rows).
    Without progress output, Ray Data's INFO lines stay off the console (batch27 #8).
    One local Ray (its start takes ~10 s) serves both checks: the CLI's engine, opened while the
    streaming engine's Ray runs, uses that Ray and leaves it running; the engine that started
    Ray stops it when it closes."""
    import io
    import logging
    import threading

    from vsent.engines import EngineOptions, open_engine
    from vsent.engines.ray_engine import _ConsoleNoise

    console = io.StringIO()  # Ray Data's console handler (bound to the stderr of its import)
    for h in logging.getLogger("ray.data").handlers:
        if type(h).__name__ == "PlainRayHandler":
            monkeypatch.setattr(h, "stream", console)
    rng = np.random.default_rng(2)
    paths = []
    for i in range(24):
        p = tmp_path / f"im{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    rows_before = threading.Event()
    waited = []

    def slow_input():
        yield from paths[:6]  # a chunk and a half of --batch-size 4
        # generous: the first row waits for Ray to start the model actor (about 30 s alone on
        # 2 cores, minutes beside a training job); a pipeline that holds it never releases it
        waited.append(rows_before.wait(timeout=600))
        yield from paths[6:]

    opts = EngineOptions(model=str(checkpoint), batch_size=4, device="cpu", ray_cpus=2)
    rows = []
    with open_engine("ray", opts) as engine:
        context = engine.ray.data.DataContext.get_current()
        block_size = context.target_max_block_size
        for row in engine.score(slow_input()):
            rows.append(row)
            if len(rows) == 6:
                rows_before.set()
        # mut48f R21: the run's one-chunk blocks end with it (Ray Data's setting is restored)
        assert context.target_max_block_size == block_size
        args = _score_a_folder_as_the_default_engine(tmp_path, capsys, checkpoint, monkeypatch)
        assert engine.ray.is_initialized()  # the CLI's engine did not start this Ray: kept
    assert not engine.ray.is_initialized()  # the engine that started it stopped it
    assert waited == [True], "the rows read before the pause did not come back before it ended"
    assert "execution finished" not in console.getvalue(), console.getvalue()
    # mut53h S1: the console filter comes off with the run (a later run may want the lines)
    assert not [f for h in logging.getLogger("ray.data").handlers for f in h.filters
                if isinstance(f, _ConsoleNoise)]
    assert [r["path"] for r in rows] == [str(p) for p in paths]  # input order kept
    assert all(not r["error"] for r in rows)
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    want = pred.predict_arrays(np.stack([pred.decode(p) for p in paths]))[:, 1]
    np.testing.assert_allclose([r["prob_positive"] for r in rows], want, atol=1e-6)
    # model actors on every CPU would leave none for decoding: refused, not a silent hang
    assert main([*args, "--out", "x.csv", "--engine", "ray", "--ray-cpus", "2",
                 "--ray-actors", "2"]) == 2
    assert ("2 model actor(s) take a CPU each and the Ray cluster has 2 CPU(s): at least one "
            "must be left for decoding") in capsys.readouterr().err
    assert not Path("x.csv").exists()


def test_a_ray_address_that_does_not_answer_is_one_line_not_a_hang(checkpoint, tmp_path,
                                                                     capsys, monkeypatch):
    """Ray retries a silent HOST:PORT without end; vsent checks that it answers first. Ray is
    never asked to join it (the message alone would not tell: a failed ray.init is worded the
    same way), checked without a clock: ray.init is a stand-in that records the call."""
    import socket

    import ray

    joins: list[dict] = []

    def init(*args, **kwargs):
        joins.append(kwargs)
        raise ConnectionError("the test's ray.init")  # the real one would retry without end

    monkeypatch.setattr(ray, "init", init)
    with socket.socket() as s:  # a free loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    picture = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(picture)
    t0 = time.monotonic()
    assert main(["predict", "--model", str(checkpoint), str(picture), "--engine", "ray",
                 "--ray-address", f"127.0.0.1:{port}", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vsent: error: --ray-address 127.0.0.1:{port}: cannot join the Ray "
                          "cluster (") and "\n" not in err
    assert joins == []  # refused by vsent's own check, before Ray was asked to join
    # a guard against a hang only, generous for a loaded machine: a refused port answers at
    # once and vsent's check gives up after 10 s
    assert time.monotonic() - t0 < 120


def test_model_actors_must_leave_a_cpu_for_decoding():
    """The rule both checks apply (a local Ray before it starts, a cluster once its CPUs are
    known): actors hold one CPU each and the decoding tasks need at least one more."""
    from vsent.engines.ray_engine import _check_decoding_cpus
    from vsent.errors import VsentError

    _check_decoding_cpus(1, 2)
    _check_decoding_cpus(7, 8)
    # what to change: fewer actors where that leaves one CPU, else more CPUs (not the
    # --ray-actors 1 already given with one CPU)
    for actors, cpus, fix in ((1, 1, "--engine ray needs at least 2 CPUs: --ray-cpus 2 or more"),
                              (2, 2, "--ray-actors 1, or more --ray-cpus"),
                              (4, 2, "--ray-actors 1, or more --ray-cpus")):
        with pytest.raises(VsentError, match=f"{actors} model actor.*has {cpus} CPU") as info:
            _check_decoding_cpus(actors, cpus)
        assert str(info.value).endswith(f"left for decoding ({fix})")
    for actors, cpus, fix in ((1, 1, "--engine ray needs at least 2 CPUs: a cluster with more "
                                     "CPUs"),
                              (2, 2, "--ray-actors 1, or a cluster with more CPUs")):
        with pytest.raises(VsentError) as info:  # --ray-address: --ray-cpus is not an option
            _check_decoding_cpus(actors, cpus, local=False)
        assert str(info.value).endswith(f"left for decoding ({fix})")


def test_ray_decode_names_errors_as_the_default_engine(tmp_path, checkpoint, monkeypatch):
    """The workers open absolute paths; each error row names the path as given, the same
    string as the default engine's (``./x`` and ``a//b`` stay as written), and a file PIL
    chokes on is a row, not a RayTaskError that aborts the dataset."""
    import json
    import os

    from test_images import damaged_tiff
    from vsent.engines.ray_engine import decode_chunk

    monkeypatch.chdir(tmp_path)
    Path("sub").mkdir()
    Path("sub/bad.jpg").write_bytes(b"not a jpeg")
    Path("damaged.tif").write_bytes(damaged_tiff())
    # ... and a name that is not UTF-8 (a surrogate escape) travels in the chunk's JSON
    given = ["./nonexist.jpg", "sub//bad.jpg", "./sub/../sub/bad.jpg", "./damaged.tif",
             os.fsdecode(b"./caf\xe9.jpg")]
    chunk = [(i + 7, g, os.path.join(os.getcwd(), g)) for i, g in enumerate(given)]
    out = decode_chunk(chunk, 8)
    assert out["image"].shape == (1, 5, 8, 8, 3)  # one row: the chunk
    assert not out["image"].any()  # mut59b B3: every image failed: zeros, as documented
    meta = json.loads(out["meta"][0])
    assert meta["start"] == 7 and meta["paths"] == given
    rows = list(Predictor.from_checkpoint(checkpoint, device="cpu").score(given))
    assert meta["errors"] == [r["error"] for r in rows]
    assert [e.split(": ")[0] for e in meta["errors"]] == given
    assert meta["errors"][3].startswith("./damaged.tif: cannot decode image: TypeError: ")


def test_ray_rows_of_non_finite_scores_are_the_default_engines_error_rows(tmp_path, checkpoint,
                                                                          monkeypatch):
    """The driver turns each actor's scores into a row with the default engine's code: NaN or
    inf scores (finite weights that overflow) are its error row, not "nan, negative" (which
    exited 0 and wrote a bare NaN into jsonl); no Ray start is needed."""
    from vsent.engines.ray_engine import result_row
    from vsent.predict import NON_FINITE_SCORES

    picture = str(tmp_path / "a.png")
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(picture)
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    probs = pred.predict_arrays(pred.decode(picture)[None])[0]
    assert result_row(picture, probs, "", pred.class_names) == next(pred.score([picture]))
    for bad in (np.nan, np.inf, -np.inf):
        scores = probs.copy()
        scores[0] = bad
        monkeypatch.setattr(pred, "network_scores", lambda arrays, s=scores: s[None].copy())
        want = next(pred.score([picture]))
        assert want["error"] == NON_FINITE_SCORES
        assert result_row(picture, scores, "", pred.class_names) == want
    error = f"{picture}: cannot decode image"
    assert result_row(picture, np.full(2, np.nan, np.float32), error, pred.class_names) == {
        "path": picture, "prob_positive": None, "label": None, "error": error}


def _ray_rows(batches):
    """Actor outputs for :func:`in_order`: each batch one chunk, a list of consecutive input
    positions."""
    import json

    rows = []
    for b in batches:
        assert b == list(range(b[0], b[0] + len(b)))
        meta = {"start": b[0], "paths": [f"p{i}" for i in b], "errors": [""] * len(b)}
        rows.append({"meta": np.array([json.dumps(meta)], dtype=object),
                     "probs": np.zeros((1, len(b), 2), np.float32)})
    return rows


def test_ray_rows_come_back_in_order_or_the_run_fails():
    """The driver's reorder buffer (batch27 #1): blocks in any order give the rows in input
    order; a row that never comes is an error, never a short run that ends as a success: at
    the end (fewer rows than paths queued), or as soon as too many later rows wait for it."""
    from vsent.engines.ray_engine import in_order
    from vsent.errors import VsentError

    def row(path, probs, error):
        return path

    def run(batches, fed, limit=100):
        out = []
        with pytest.raises(VsentError) as e:
            for r in in_order(_ray_rows(batches), row, [fed], [], limit):
                out.append(r)
        return out, str(e.value)

    assert list(in_order(_ray_rows([[2, 3], [0, 1], [4]]), row, [5], [], 100)) == \
        [f"p{i}" for i in range(5)]
    # the last chunk lost: no later row reveals the gap, the count does
    out, msg = run([[0, 1], [2, 3]], fed=6)
    assert out == ["p0", "p1", "p2", "p3"]
    assert msg.startswith("ray engine: 2 of 6 rows never came back (a Ray worker died?)")
    assert "--resume scores the rest" in msg
    # rows 2-3 lost: what comes after them is not held without end
    out, msg = run([[0, 1], *([i, i + 1] for i in range(4, 100, 2))], fed=1000, limit=10)
    assert out == ["p0", "p1"]
    assert msg.startswith("ray engine: row 3 has not come back while 12 later rows have")
    # an error of the feeder (an unreadable --from-list) is the one reported
    with pytest.raises(OSError, match="the list"):
        list(in_order(_ray_rows([[0]]), row, [1], [OSError("the list")], 100))


def _ray_read_workers() -> list[int]:
    """Pids of this process's descendants that run a Ray Data read task (by process title)."""
    import os

    children: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                stat = Path(f"/proc/{e}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(e))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::Read"):
                found.append(pid)
    return found


@pytest.mark.slow
def test_a_read_worker_that_dies_fails_the_run_instead_of_losing_rows(tmp_path, checkpoint):
    """batch27 #1: a read task's worker killed (the OOM killer, Ray's memory monitor) after it
    took chunks off the queue. Ray used to re-run the task, which popped other chunks whose
    rows never came either: with a short tail the run ended as a success with rows missing,
    with a long one every later row was held to the end and thrown away. Now the run fails at
    once, before the rest of the input is read."""
    import os
    import signal
    import threading

    import ray

    from vsent.engines import EngineOptions, open_engine
    from vsent.errors import VsentError

    paths = []
    for i in range(16 + 100):
        p = tmp_path / f"im{i:03d}.png"
        Image.fromarray(np.full((24, 24, 3), i, np.uint8)).save(p)
        paths.append(str(p))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        for tail in (8, 100):
            go = threading.Event()
            handed = []

            def held_input(tail=tail, go=go, handed=handed):
                yield from (handed.append(p) or p for p in paths[:16])
                go.wait(timeout=300)  # until the read workers are killed
                yield from (handed.append(p) or p for p in paths[16:16 + tail])

            rows: list[dict] = []
            opts = EngineOptions(model=str(checkpoint), batch_size=4, device="cpu")
            with open_engine("ray", opts) as engine, \
                    pytest.raises(VsentError, match="ray engine: .*--resume scores the rest"):
                for row in engine.score(held_input()):
                    rows.append(row)
                    if not go.is_set():  # a first chunk came back: the read tasks wait
                        time.sleep(1)
                        killed = _ray_read_workers()
                        assert killed, "no Ray read worker found"
                        for pid in killed:
                            os.kill(pid, signal.SIGKILL)
                        time.sleep(2)
                        go.set()
            assert len(rows) < 16 + tail
            # the queue holds 16 chunks of 4 and no read task takes them: the rest is not read
            assert len(handed) < 16 + tail or tail == 8
    finally:
        ray.shutdown()


def test_the_feeder_queues_a_part_chunk_when_the_input_pauses():
    """A --from-list written as files arrive: after QUIET_AFTER_S of quiet input the paths
    read so far go on as a part chunk (they waited for a full one); a failing input queues the
    paths read before it, then the end, and its exception is kept for the driver."""
    import threading
    import time

    from vsent import inference
    from vsent.engines.ray_engine import _feed

    class ListQueue:
        def __init__(self):
            self.items, self.event = [], threading.Event()

        def put(self, item, timeout=None):
            self.items.append(item)
            self.event.set()

    go_on = threading.Event()

    def arriving():
        yield from ("a0", "a1", "a2")
        go_on.wait(30)  # the writer pauses
        yield from (f"b{i}" for i in range(5))
        raise OSError("--from-list: line 9 unreadable")

    q, failure, fed = ListQueue(), [], [0]
    feeder = threading.Thread(target=_feed, args=(arriving(), q, threading.Event(), failure,
                                                  4, fed))
    start = time.monotonic()
    feeder.start()
    assert q.event.wait(inference.QUIET_AFTER_S * 2 + 10)
    assert not go_on.is_set() and time.monotonic() - start < inference.QUIET_AFTER_S * 2 + 10
    assert [[c[0] for c in chunk] for chunk in q.items] == [[0, 1, 2]]
    assert [c[1] for c in q.items[0]] == ["a0", "a1", "a2"]
    go_on.set()
    feeder.join(30)
    assert not feeder.is_alive()
    assert [None if c is None else [i for i, _, _ in c] for c in q.items] == \
        [[0, 1, 2], [3, 4, 5, 6], [7], None]
    assert fed == [8] and [str(e) for e in failure] == ["--from-list: line 9 unreadable"]


def test_a_model_actor_scores_each_chunk_of_its_batch(tmp_path, checkpoint):
    """The model stage takes one row (chunk) a call, but any number of rows gives one probs
    row each, a part chunk beside a full one included; the driver puts the images back in
    input order. No Ray start is needed."""
    from vsent.engines.ray_engine import ScoreActor, decode_chunk, in_order

    paths = []
    for i in range(6):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(p)
        paths.append(str(p))
    paths[4] = str(tmp_path / "missing.png")
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    actor = ScoreActor.__new__(ScoreActor)  # its __init__ reads the checkpoint from Ray
    actor.predictor = pred
    # mut59b B8: the model is given the decoded images alone, not a failed one's zeros
    sizes: list[int] = []
    forward = pred.predict_arrays
    pred.predict_arrays = lambda a: (sizes.append(len(a)), forward(a))[1]
    full = decode_chunk([(i, p, p) for i, p in enumerate(paths[:4])], pred.size)
    part = decode_chunk([(4 + i, p, p) for i, p in enumerate(paths[4:])], pred.size)
    images = np.empty(2, dtype=object)
    images[0], images[1] = full["image"][0], part["image"][0]
    batch = {"meta": np.concatenate([part["meta"], full["meta"]]),
             "image": images[::-1].copy()}
    out = actor(batch)
    assert [np.asarray(p).shape for p in out["probs"]] == [(2, 2), (4, 2)]
    assert sizes == [1, 4]  # the part chunk's missing file is not scored
    rows = list(in_order([out], lambda path, probs, error: (path, probs, error), [6], [], 10))
    assert [r[0] for r in rows] == paths
    assert rows[4][2].startswith(f"{paths[4]}: ") and np.isnan(rows[4][1]).all()
    ok = [0, 1, 2, 3, 5]
    want = pred.predict_arrays(np.stack([pred.decode(paths[i]) for i in ok]))
    np.testing.assert_allclose(np.stack([rows[i][1] for i in ok]), want, atol=1e-6)


class _ListQueue:
    """The feeder's Ray queue, standing in: it keeps what is put; ``fail_once`` is raised by
    the first put (a full queue, a queue actor that failed)."""

    def __init__(self, fail_once: Exception | None = None) -> None:
        self.items: list = []
        self.fail_once = fail_once

    def put(self, item: object, timeout: float | None = None) -> None:
        # mut59b B41: a put waits a while at a time, so that a stopped run ends the feeder
        assert timeout is not None, "the feeder would wait on a full queue without end"
        if self.fail_once is not None:
            error, self.fail_once = self.fail_once, None
            raise error
        self.items.append(item)


def test_a_feeder_whose_queue_fails_reports_it_instead_of_dying(capsys):
    """review28 #2: the feeder's own exception (the Ray queue failed) went to the thread's
    traceback while the driver said "rows never came back (a Ray worker died?)"; it is kept
    for the driver (which raises it), and the thread ends."""
    import threading

    from vsent.engines.ray_engine import _feed

    class BrokenQueue:
        def put(self, item, timeout=None):
            raise RuntimeError("the queue actor died")

    failure, fed = [], [0]
    feeder = threading.Thread(target=_feed, args=(iter(["a", "b", "c"]), BrokenQueue(),
                                                  threading.Event(), failure, 2, fed))
    feeder.start()
    feeder.join(30)
    assert not feeder.is_alive()
    assert [str(e) for e in failure] == ["the queue actor died"]
    assert "Traceback" not in capsys.readouterr().err

    # mut57b R72: kept too when the queue takes the end afterwards (the end alone would make
    # the driver say rows never came, not why)
    failure, queue = [], _ListQueue(fail_once=RuntimeError("the queue failed once"))
    _feed(iter(["a", "b", "c"]), queue, threading.Event(), failure, 2, [0])
    assert [str(e) for e in failure] == ["the queue failed once"] and queue.items == [None]


@pytest.mark.slow
def test_a_terminated_ray_run_exits_143_and_keeps_its_rows(tmp_path, checkpoint):
    """trial31 #3: Ray's core worker installs its own SIGTERM handler (a C++ stack dump, exit
    15, no vsent line); vsent's is put back after ray.init, as the README's exit status says."""
    import os
    import signal
    import subprocess
    import sys

    paths = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(p)
        paths.append(p)
    fifo = tmp_path / "list"
    os.mkfifo(fifo)
    out = tmp_path / "rows.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsent", "predict", "--model", str(checkpoint), "--engine", "ray",
         "--ray-cpus", "2", "--from-list", str(fifo), "--out", str(out), "--no-progress"],
        stderr=subprocess.PIPE, text=True)
    # the list stays open: the run waits for more paths (O_RDWR: opening never blocks,
    # should the run die before it opens the list)
    with os.fdopen(os.open(fifo, os.O_RDWR), "w") as feed:
        feed.write("".join(f"{p}\n" for p in paths))
        feed.flush()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and (
                not out.exists() or len(out.read_text().splitlines()) < 3):
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "vsent: terminated; what was written is kept" in err
    assert "SIGTERM received" not in err
    assert len(out.read_text().splitlines()) == 3


def test_ray_starting_keeps_vsents_sigterm_handler_and_stops_a_half_started_ray(
        checkpoint, monkeypatch):
    """prac37 #1: a TERM while ray.init ran met Ray's handler (sys.exit(15), no vsent line);
    #2: an interrupt while Ray started left its local agents running (no ray.shutdown).
    review37b #1: only the Ray processes started meanwhile are killed, not the others under
    this process; #3: signal.signal itself is left alone (other threads use it)."""
    import os
    import signal
    import subprocess
    import sys

    import ray
    from ray._private import utils

    from vsent.engines import EngineOptions, ray_engine
    from vsent.engines.ray_engine import RayEngine, _sigterm_kept

    mine, real, helper = signal.getsignal(signal.SIGTERM), signal.signal, utils.set_sigterm_handler
    with _sigterm_kept():
        assert signal.signal is real
        utils.set_sigterm_handler(lambda *a: None)  # as ray.init does
        assert signal.getsignal(signal.SIGTERM) is mine
    assert signal.getsignal(signal.SIGTERM) is mine
    with pytest.raises(KeyboardInterrupt), _sigterm_kept():  # mut53h R45: Ray's helper is
        raise KeyboardInterrupt  # put back however ray.init ends
    assert utils.set_sigterm_handler is helper

    calls, started = [], []
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    bystander = subprocess.Popen(sleep)  # a child of this process that is not Ray's

    def interrupted_init(**kwargs):
        calls.append("init")
        # a process Ray started before it recorded its node: ray.shutdown does not know it
        started.append(subprocess.Popen([*sleep, "ray::RuntimeEnvAgent"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", interrupted_init)
    sent, send = [], signal.pidfd_send_signal  # mut59b B36: a kill an agent cannot catch

    def send_and_note(fd: int, sig: int) -> None:
        sent.append(sig)
        send(fd, sig)

    monkeypatch.setattr(signal, "pidfd_send_signal", send_and_note)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    try:
        fds = len(os.listdir("/proc/self/fd"))
        with pytest.raises(KeyboardInterrupt):
            RayEngine(EngineOptions(model=str(checkpoint), ray_cpus=2))
        assert calls == ["init", "shutdown"]
        assert len(os.listdir("/proc/self/fd")) == fds  # mut53h R62: its pidfd closed
        # killed and reaped (by vsent: its exit status is gone with it) within its 60 s
        assert not Path(f"/proc/{started[0].pid}").exists()
        assert sent == [signal.SIGKILL]
        assert bystander.poll() is None  # still running
        # a start that failed for another reason: ray.shutdown alone, nothing killed
        monkeypatch.setattr(ray, "init", lambda **kw: (started.append(
            subprocess.Popen([*sleep, "ray::gcs_server"])), 1 / 0))
        with pytest.raises(ZeroDivisionError):
            RayEngine(EngineOptions(model=str(checkpoint), ray_cpus=2))
        assert started[1].poll() is None and calls[-1] == "shutdown"
        # mut53h R46, R47: interrupted again, with the bystander (not Ray's) started meanwhile
        # as far as vsent knows: the Ray process that ran before (started[1]) is not killed,
        # nor a process started meanwhile that is not Ray's
        descendants, looks = ray_engine._descendants, []

        def bystander_unseen_before(pid):
            looks.append(pid)
            found = descendants(pid)
            return [p for p in found if p != bystander.pid] if len(looks) == 1 else found

        def interrupted_again(**kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(ray_engine, "_descendants", bystander_unseen_before)
        monkeypatch.setattr(ray, "init", interrupted_again)
        with pytest.raises(KeyboardInterrupt):
            RayEngine(EngineOptions(model=str(checkpoint), ray_cpus=2))
        assert len(looks) == 2 and calls[-1] == "shutdown"
        assert started[1].poll() is None and bystander.poll() is None
    finally:
        for proc in (bystander, *started):
            proc.kill()
            proc.wait()


def _engine_on_a_running_ray(record: list, *, started: bool):
    """A RayEngine (not initialised: no model, no Ray) on a stand-in Ray that is running and
    notes its shutdown in ``record``; ``started``: the engine started that Ray."""
    from vsent.engines.ray_engine import RayEngine

    class Ray:
        @staticmethod
        def is_initialized():
            return True

        @staticmethod
        def shutdown():
            record.append("ray shut down")

    engine = object.__new__(RayEngine)
    engine.ray, engine._started = Ray(), started
    return engine


def test_closing_the_ray_engine_stops_its_rows_before_ray(monkeypatch):
    """prac37 #3: `vsent predict --engine ray | head` shut Ray down while Ray Data's executor
    still read rows; it started a second Ray of its own, left running after vsent exited."""
    from vsent.engines.ray_engine import RayEngine

    order = []

    def rows():
        try:
            yield {"path": "a"}
            yield {"path": "b"}
        finally:
            order.append("rows closed")

    engine = _engine_on_a_running_ray(order, started=True)
    monkeypatch.setattr(RayEngine, "_score", lambda self, paths: rows())
    first = next(iter(engine.score(iter([]))))
    assert first == {"path": "a"}
    engine.close()
    assert order == ["rows closed", "ray shut down"]

    def failing_rows():  # review37b #4: a clean-up that raises still lets Ray stop
        try:
            yield {"path": "a"}
        finally:
            raise RuntimeError("queue actor gone")

    order.clear()
    monkeypatch.setattr(RayEngine, "_score", lambda self, paths: failing_rows())
    next(iter(engine.score(iter([]))))
    with pytest.raises(RuntimeError, match="queue actor gone"):
        engine.close()
    assert order == ["ray shut down"]

    class Busy:  # mut59b B35: rows being read in another thread right now (`| head`)
        def close(self) -> None:
            raise ValueError("generator already executing")

    order.clear()
    monkeypatch.setattr(RayEngine, "_score", lambda self, paths: Busy())
    engine.score(iter([]))
    engine.close()  # not an error: Ray stops (which ends that thread's rows)
    assert order == ["ray shut down"]


# mutation round 45 (mut45c): vsent.engines.ray_engine mutants the suite missed


def test_a_cpu_only_cluster_gives_half_its_cpus_to_model_actors():
    """mut45c R01, R02: without GPUs, half the CPUs (rounded down) run the model and the rest
    decode; one CPU still gets one actor (which _check_decoding_cpus then refuses with its
    advice, rather than a run of no actor)."""
    from vsent.engines.ray_engine import _cpu_actors

    assert [_cpu_actors(c) for c in (1, 2, 3, 8, 9)] == [1, 1, 1, 4, 4]


def test_a_decoded_chunk_travels_as_ascii_json_and_names_stay_as_given(tmp_path,
                                                                       monkeypatch):
    """mut45c R07, R14: the chunk's meta is ASCII JSON (a name that is not UTF-8 would be a
    lone surrogate, which Arrow's UTF-8 strings cannot hold); the worker opens the absolute
    path it was given, not the name as given, which is relative to the driver's folder, not
    to the worker's."""
    import json
    import os

    from vsent.data.images import load_resized
    from vsent.engines.ray_engine import decode_chunk

    driver = tmp_path / "driver"
    driver.mkdir()
    Image.fromarray(np.full((12, 16, 3), 77, np.uint8)).save(driver / "a.png")
    given = os.fsdecode(b"caf\xe9.png")  # not UTF-8 (and not there: an error row)
    monkeypatch.chdir(tmp_path)  # the worker's folder: "a.png" is not here
    chunk = [(3, "a.png", str(driver / "a.png")), (4, given, str(driver / given))]
    out = decode_chunk(chunk, 8)
    text = out["meta"][0]
    assert text.isascii()
    meta = json.loads(text)
    assert meta["paths"] == ["a.png", given] and meta["errors"][0] == ""
    assert meta["errors"][1].startswith(f"{given}: ")
    np.testing.assert_array_equal(out["image"][0, 0], load_resized(driver / "a.png", 8))


def test_a_decoding_bug_is_raised_not_written_as_an_image_row(tmp_path, monkeypatch):
    """mut45c R13: a bad image is a row (a VsentError of the decoder); any other exception is
    a bug in vsent and stops the run instead of becoming a row per image."""
    import json

    import vsent.data.images
    from vsent.engines.ray_engine import decode_chunk
    from vsent.errors import VsentError

    def broken(path, size):
        raise RuntimeError("a bug")

    monkeypatch.setattr(vsent.data.images, "load_resized", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        decode_chunk([(0, "a.png", str(tmp_path / "a.png"))], 8)

    # mut57b R13: only a message that begins with the absolute path is renamed as given; one
    # that does not name the file is the row's error as it is (not cut by the path's length)
    def refused(path, size):
        raise VsentError("decoder refused")

    monkeypatch.setattr(vsent.data.images, "load_resized", refused)
    out = decode_chunk([(0, "a.png", str(tmp_path / "a.png"))], 8)
    assert json.loads(out["meta"][0])["errors"] == ["decoder refused"]


def test_actor_results_are_one_array_when_chunks_agree_else_one_per_row():
    """mut45c R08: chunks of one shape make one (rows, B, C) array (Ray Data's tensor column);
    a part chunk beside a full one makes an object column of one array a row."""
    from vsent.engines.ray_engine import _one_per_row

    full = [np.full((4, 2), i, np.float32) for i in range(3)]
    stacked = _one_per_row(full)
    assert stacked.shape == (3, 4, 2) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[2], full[2])
    mixed = _one_per_row([full[0], np.ones((1, 2), np.float32)])
    assert mixed.shape == (2,) and mixed.dtype == object
    assert [a.shape for a in mixed] == [(4, 2), (1, 2)]


# mutation round 48 (mut48f): vsent.engines.ray_engine mutants the suite missed


def test_a_lost_ray_worker_is_one_line_whatever_ray_calls_it():
    """mut48f R09, R10: each of Ray's ways of losing a worker (an actor's death included) ends
    the run with one line, its reason on one line and cut at 200 characters, after the
    batches that came before it; any other exception (a bug) propagates as it is."""
    from types import SimpleNamespace

    from vsent.engines.ray_engine import _worker_errors
    from vsent.errors import VsentError

    names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OutOfMemoryError",
             "ActorDiedError")
    classes = {n: type(n, (Exception,), {}) for n in names}
    ray = SimpleNamespace(exceptions=SimpleNamespace(**classes))

    def batches(exc):
        yield {"meta": 1}
        raise exc

    reason = "the actor\n  died: " + "x" * 300
    shown = ("the actor died: " + "x" * 300)[:200]  # on one line, cut at 200 characters
    for name, cls in classes.items():
        got = []
        with pytest.raises(VsentError) as info:
            for b in _worker_errors(ray, batches(cls(reason))):
                got.append(b)
        assert got == [{"meta": 1}], name
        assert str(info.value) == (f"ray engine: a Ray worker died ({shown}); the rows "
                                   "written so far are kept: --resume scores the rest"), name
    with pytest.raises(ValueError, match="^a bug$"):
        list(_worker_errors(ray, batches(ValueError("a bug"))))


def test_ray_client_and_auto_addresses_are_left_to_ray(monkeypatch):
    """mut48f R11: only a HOST:PORT address is probed; ``auto``, a ``ray://`` (Ray Client)
    address and a name without a port go to Ray as they are (probing ``ray://h:10001`` as a
    host named "ray://h" refused every Ray Client address); mut57b R7: so does a bare number
    (no colon: no HOST:PORT to probe)."""
    import socket

    from vsent.engines.ray_engine import _check_reachable

    def connect(*args, **kwargs):
        raise AssertionError(f"probed {args}")

    monkeypatch.setattr(socket, "create_connection", connect)
    for address in ("auto", "ray://127.0.0.1:10001", "head-node", "head-node:port", "6379"):
        _check_reachable(address)


def test_ray_datas_console_keeps_its_warnings_without_progress_output(tmp_path):
    """mut48f R13: without progress output, Ray Data's console keeps its warnings and errors
    and drops its INFO lines and the progress-bar warning."""
    import logging

    from vsent.engines.ray_engine import _ConsoleNoise, _quiet_ray_data

    def record(name, level):
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    noise = _ConsoleNoise()
    assert noise.filter(record("ray.data", logging.WARNING))
    assert noise.filter(record("ray.data._internal.execution", logging.ERROR))
    assert not noise.filter(record("ray.data", logging.INFO))
    assert not noise.filter(record("ray.data._internal.progress.bar", logging.WARNING))
    # mut53h R53, R54: on the console handlers only (Ray Data's log file keeps everything),
    # and taken off again
    logger = logging.getLogger("ray.data")
    console, file = logging.StreamHandler(), logging.FileHandler(tmp_path / "log", delay=True)
    for h in (console, file):
        logger.addHandler(h)
    try:
        restore = _quiet_ray_data()
        assert [len(h.filters) for h in (console, file)] == [1, 0]
        assert isinstance(console.filters[0], _ConsoleNoise)
        restore()
        assert console.filters == []
    finally:
        for h in (console, file):
            logger.removeHandler(h)


def test_closing_a_ray_engine_leaves_a_ray_it_did_not_start_running():
    """mut48f R14: an engine that joined a Ray already running in this process (started by the
    caller) does not shut it down when it closes."""
    calls = []
    engine = _engine_on_a_running_ray(calls, started=False)
    engine.close()
    assert calls == []
    engine._started = True
    engine.close()
    assert calls == ["ray shut down"]


@pytest.mark.parametrize(("option", "message"), [
    ({"batch_size": 0}, "--batch-size must be >= 1, got 0"),
    ({"ray_cpus": 0}, "--ray-cpus must be >= 1, got 0"),
    ({"ray_actors": 0}, "--ray-actors must be >= 1, got 0"),
])
def test_a_count_below_one_is_refused_before_ray_starts(checkpoint, monkeypatch, option,
                                                        message):
    """mut48f R17: --batch-size, --ray-cpus and --ray-actors of 0 are refused before Ray is
    imported or started (a batch size of 0 made chunks of no path: a run that never ends)."""
    from vsent.engines import EngineOptions, ray_engine
    from vsent.errors import VsentError

    def no_ray():
        raise AssertionError("Ray was imported")

    monkeypatch.setattr(ray_engine, "_import_ray", no_ray)
    with pytest.raises(VsentError, match=f"^{message}$"):
        ray_engine.RayEngine(EngineOptions(model=str(checkpoint), **option))
    one = dict.fromkeys(option, 1)  # mut53h R21-R23: 1 is a count (Ray is imported next)
    with pytest.raises(AssertionError, match="^Ray was imported$"):
        ray_engine.RayEngine(EngineOptions(model=str(checkpoint), **one))


def test_a_gpu_cluster_gets_an_actor_per_gpu_and_the_cpus_left_decode(checkpoint):
    """mut48f R12, R18, R26, R27: on a cluster of 8 CPUs and 2 GPUs the model actors are one
    per GPU (at most that many may be asked for), and two read tasks run per CPU left;
    --device cpu uses no GPU, and --device cuda without a GPU is refused. A fake Ray: no
    cluster is started."""
    from types import SimpleNamespace

    from vsent.engines import EngineOptions
    from vsent.engines.ray_engine import RayEngine
    from vsent.errors import VsentError

    def setup(resources, **options):
        ctx = SimpleNamespace(execution_options=SimpleNamespace())
        engine = object.__new__(RayEngine)
        engine.ray = SimpleNamespace(
            data=SimpleNamespace(DataContext=SimpleNamespace(get_current=lambda: ctx)),
            cluster_resources=lambda: resources, put=lambda data: data)
        engine._setup(EngineOptions(model=str(checkpoint), **options))
        # mut59b B23: the actors get the checkpoint's bytes (the file need not be on shared
        # storage), not its path
        assert engine.ckpt == checkpoint.read_bytes()
        # mut53h R36-R38: rows as blocks come (the driver orders them), Ray Data's bars and
        # plan only with progress output
        progress = options.get("progress", False)
        assert (ctx.execution_options.preserve_order, ctx.enable_progress_bars,
                ctx.print_on_execution_start) == (False, progress, progress)
        return engine.use_gpu, engine.actors, engine.decoders

    gpus = {"CPU": 8.0, "GPU": 2.0}
    assert setup(gpus) == (True, 2, 12)
    assert setup(gpus, ray_actors=2) == (True, 2, 12)
    assert setup(gpus, device="cpu") == (False, 4, 8)
    assert setup({"CPU": 8.0}, ray_actors=1) == (False, 1, 14)
    with pytest.raises(VsentError, match=r"^--ray-actors 3: each actor takes a GPU and the "
                                         r"cluster has 2$"):
        setup(gpus, ray_actors=3)
    with pytest.raises(VsentError, match=r"^--device cuda: the Ray cluster has no GPU"):
        setup({"CPU": 8.0}, device="cuda")
    # mut53h R39-R42: a numbered cuda device too; one GPU is used; a cluster's own advice
    with pytest.raises(VsentError, match=r"^--device cuda: the Ray cluster has no GPU"):
        setup({"CPU": 8.0}, device="cuda:1")
    assert setup({"CPU": 4.0, "GPU": 1.0}, progress=True) == (True, 1, 6)
    with pytest.raises(VsentError, match=r"has 2 CPU\(s\): .*\(--ray-actors 1, or a cluster "
                                         r"with more CPUs\)$"):
        setup({"CPU": 2.0}, ray_actors=2, ray_address="head:6379")


def test_only_processes_whose_command_line_names_ray_count_as_rays():
    """mut48f R15: after an interrupted start, only the processes started meanwhile whose
    command line names Ray are killed; another child started meanwhile (the test above starts
    its bystander before Ray, so the command line was never looked at) is left alone."""
    import subprocess
    import sys

    from vsent.engines.ray_engine import _is_ray_process

    sleep = ["python3", "-c", "import time; time.sleep(60)"]  # (argv[0]: not the venv's path)
    procs = [subprocess.Popen(sleep, executable=sys.executable),
             subprocess.Popen([*sleep, "site-packages/ray/core/src/ray/gcs/gcs_server"],
                              executable=sys.executable)]  # (mut53h R48: not ray::...)
    try:
        for p in procs:  # (until exec is done, a child's command line reads empty)
            cmdline = Path(f"/proc/{p.pid}/cmdline")
            for _ in range(1000):
                if cmdline.read_bytes():
                    break
                time.sleep(0.01)
        assert [_is_ray_process(p.pid) for p in procs] == [False, True]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert not _is_ray_process(procs[0].pid)  # gone: not Ray's


def test_the_feeder_sends_absolute_paths_and_keeps_them_as_given(tmp_path, monkeypatch):
    """mut48f R20: a Ray worker need not share the driver's folder: each path goes out
    absolute (from the driver's folder) beside the path as given, which names the row; an
    absolute path stays as it is."""
    import os
    import threading

    from vsent.engines.ray_engine import _feed

    monkeypatch.chdir(tmp_path)
    q, failure, fed = _ListQueue(), [], [0]
    _feed(iter(["a.jpg", "sub/../b.jpg", "/data/c.jpg"]), q, threading.Event(), failure, 2, fed)
    assert q.items == [[(0, "a.jpg", os.path.join(str(tmp_path), "a.jpg")),
                        (1, "sub/../b.jpg", os.path.join(str(tmp_path), "sub/../b.jpg"))],
                       [(2, "/data/c.jpg", "/data/c.jpg")], None]
    assert fed == [3] and failure == []


def test_a_feeder_whose_input_stays_quiet_queues_no_empty_chunk(monkeypatch):
    """mut48f R31: an input quiet for several QUIET_AFTER_S periods in a row (a --from-list
    whose writer pauses) queues what it read once; a quiet period with nothing read queues
    nothing (an empty chunk failed its read task: decode_chunk reads the chunk's first
    index). The reader's quiet periods are counted, not slept through."""
    import threading

    from vsent import inference
    from vsent.engines.ray_engine import _feed

    q, quiet_twice, go_on = _ListQueue(), threading.Event(), threading.Event()
    quiet_after_put = []
    real_get = inference.InputReader.get

    def get(self, timeout):
        got = real_get(self, 0.01)
        if got is None and q.items:
            quiet_after_put.append(1)
            if len(quiet_after_put) >= 3:  # (the 2nd quiet period with nothing read is done)
                quiet_twice.set()
        return got

    def arriving():
        yield "a0"
        go_on.wait(30)
        yield "a1"

    monkeypatch.setattr(inference.InputReader, "get", get)
    failure, fed = [], [0]
    feeder = threading.Thread(target=_feed, args=(arriving(), q, threading.Event(), failure,
                                                  4, fed))
    feeder.start()
    try:
        assert quiet_twice.wait(30)
    finally:
        go_on.set()
        feeder.join(30)
    assert not feeder.is_alive()
    assert [None if c is None else [i for i, _, _ in c] for c in q.items] == [[0], [1], None]


# mutation round 53 (mut53h): vsent.engines.ray_engine mutants the suite missed


def test_a_host_port_probe_waits_its_timeout_and_says_what_failed(monkeypatch):
    """mut53h R05-R08, R10: the probe of a HOST:PORT address connects to the host (an IPv6
    one without its brackets) within the timeout, 10 s unless given; its line says "no
    answer" for a timeout, else the system's reason, and the timeout as written (10 s)."""
    import socket

    from vsent.engines.ray_engine import _check_reachable
    from vsent.errors import VsentError

    calls, errors = [], [TimeoutError("timed out"), ConnectionRefusedError(111, "refused")]

    def connect(address, timeout):
        calls.append((address, timeout))
        raise errors.pop(0)

    monkeypatch.setattr(socket, "create_connection", connect)
    with pytest.raises(VsentError) as info:
        _check_reachable("[::1]:6379")
    assert str(info.value) == ("--ray-address [::1]:6379: cannot join the Ray cluster (no "
                               "answer within 10 s; is `ray start --head` running there?)")
    with pytest.raises(VsentError, match=r": cannot join the Ray cluster \(refused within 2.5 s;"):
        _check_reachable("head:6379", timeout=2.5)
    assert calls == [(("::1", 6379), 10.0), (("head", 6379), 2.5)]


def test_a_model_actor_builds_its_predictor_with_every_option(checkpoint, monkeypatch):
    """mut53h R15-R17: the actor's Predictor gets --oversample and --batch-size as given, and
    a CPU actor's torch uses the one CPU Ray gave it (a GPU actor's is left as it is). The
    object store is a stand-in: no Ray start."""
    import ray
    import torch

    from vsent.engines.ray_engine import ScoreActor

    monkeypatch.setattr(ray, "get", lambda ref: ref)
    ckpt = {"ref": Path(checkpoint).read_bytes()}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        actor = ScoreActor(ckpt, oversample=True, batch_size=5, device="cpu", threads=None)
        assert torch.get_num_threads() == 3
        p = actor.predictor
        assert (p.oversample, p.batch_size, p.workers, str(p.device)) == (True, 5, 1, "cpu")
        ScoreActor(ckpt, oversample=False, batch_size=2, device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def _fake_ray(calls: list, init):
    """A stand-in Ray, not started, whose init is ``init`` and whose calls go to ``calls``."""
    from types import SimpleNamespace

    state = {"on": False}

    def start(**kwargs):
        calls.append("init")
        init(**kwargs)
        state["on"] = True

    def shutdown():
        calls.append("shutdown")
        state["on"] = False

    return SimpleNamespace(is_initialized=lambda: state["on"], init=start, shutdown=shutdown)


def test_ray_options_are_checked_before_ray_starts_and_a_failed_join_is_one_line(
        checkpoint, monkeypatch):
    """mut53h R24-R27, R30, R31: --ray-actors that would take all of --ray-cpus, and
    --ray-cpus with --ray-address, are refused before Ray starts; a cluster that refuses to
    be joined (a ray:// address is not probed) is one line, its reason on one line, and the
    Ray vsent did not start is not shut down."""
    import logging
    import os

    from vsent.engines import EngineOptions, ray_engine
    from vsent.errors import VsentError

    calls = []

    def refused(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("the head\n  refused")

    monkeypatch.setattr(ray_engine, "_import_ray", lambda: _fake_ray(calls, refused))
    model = str(checkpoint)
    with pytest.raises(VsentError, match=r"^3 model actor\(s\) take a CPU each and the Ray "
                                         r"cluster has 3 CPU\(s\): .*\(--ray-actors 2, or more"):
        ray_engine.RayEngine(EngineOptions(model=model, ray_cpus=3, ray_actors=3))
    with pytest.raises(VsentError, match=r"^--ray-cpus sizes a local Ray; a cluster"):
        ray_engine.RayEngine(EngineOptions(model=model, ray_cpus=2,
                                           ray_address="ray://head:10001"))
    assert calls == []
    with pytest.raises(VsentError) as info:
        ray_engine.RayEngine(EngineOptions(model=model, ray_address="ray://head:10001"))
    assert str(info.value) == ("--ray-address ray://head:10001: cannot join the Ray cluster "
                               "(the head refused)")
    # mut59b B13: Ray's INFO lines stay off the console
    assert calls == ["init", {"address": "ray://head:10001", "logging_level": logging.WARNING}]
    # mut59b B10: a cluster's CPUs are its own: more actors than this machine has CPUs is
    # not refused here (the cluster's are checked once joined)
    calls.clear()
    with pytest.raises(VsentError, match="cannot join the Ray cluster"):
        ray_engine.RayEngine(EngineOptions(model=model, ray_address="ray://head:10001",
                                           ray_actors=(os.cpu_count() or 1) + 1))
    assert calls[0] == "init"


def test_a_ray_vsent_started_keeps_its_sigterm_handler_and_stops_on_a_refused_option(
        checkpoint, monkeypatch):
    """mut53h R32-R35: while the local Ray starts, Ray's helper that installs its SIGTERM
    handler is skipped, and vsent's handler is put back after (Ray's core worker installs its
    own); an option refused once Ray runs (in _setup) shuts that Ray down; an engine that
    started Ray shuts it down when closed."""
    import logging
    import signal
    import threading

    from ray._private import utils

    from vsent.engines import EngineOptions, ray_engine
    from vsent.errors import VsentError

    calls, helper = [], utils.set_sigterm_handler

    def init(**kwargs):
        calls.append(utils.set_sigterm_handler is helper)
        # mut59b B14, B15: a local Ray of --ray-cpus CPUs, without a dashboard (a server
        # and a port per run), its INFO lines off the console
        assert kwargs == {"num_cpus": 2, "include_dashboard": False,
                          "logging_level": logging.WARNING}
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as Ray's core worker does

    def refuse(self, options):
        raise VsentError("refused once Ray runs")

    def mine(signum, frame):  # pragma: no cover (never called)
        pass

    monkeypatch.setattr(ray_engine, "_import_ray", lambda: _fake_ray(calls, init))
    monkeypatch.setattr(ray_engine.RayEngine, "_setup", refuse)
    before = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(VsentError, match="^refused once Ray runs$"):
            ray_engine.RayEngine(EngineOptions(model=str(checkpoint), ray_cpus=2))
        assert calls == ["init", False, "shutdown"]
        assert signal.getsignal(signal.SIGTERM) is mine and utils.set_sigterm_handler is helper
        calls.clear()
        monkeypatch.setattr(ray_engine.RayEngine, "_setup", lambda self, options: None)
        engine = ray_engine.RayEngine(EngineOptions(model=str(checkpoint), ray_cpus=2))
        engine.close()
        assert calls == ["init", False, "shutdown"]
        # mut57b R31: started from another thread (where no handler can be put back), Ray's
        # helper is left in place: the skip is for the main thread's handler alone
        calls.clear()
        monkeypatch.setattr(ray_engine, "_import_ray", lambda: _fake_ray(
            calls, lambda **kwargs: calls.append(utils.set_sigterm_handler is helper)))
        engines = []
        thread = threading.Thread(target=lambda: engines.append(ray_engine.RayEngine(
            EngineOptions(model=str(checkpoint), ray_cpus=2))))
        thread.start()
        thread.join(timeout=30)
        engines[0].close()
        assert calls == ["init", True, "shutdown"]
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_full_queue_holds_the_feeder_back_and_a_stopped_run_ends_it(monkeypatch):
    """mut53h R55-R57: a full queue (ray's Full after its timeout) is waited on, the chunk
    is queued when there is room (back-pressure, no chunk dropped); once the run stops the
    feeder queues nothing more, not even the end."""
    import threading

    from ray.util.queue import Full

    from vsent import inference
    from vsent.engines.ray_engine import _feed

    stops = []  # R57: the input's reader thread is stopped however the feeder ends
    monkeypatch.setattr(inference.InputReader, "stop", lambda self: stops.append(self))
    q, failure, fed = _ListQueue(fail_once=Full()), [], [0]
    _feed(iter(["/a.jpg"]), q, threading.Event(), failure, 2, fed)
    assert q.items == [[(0, "/a.jpg", "/a.jpg")], None] and failure == []
    stop = threading.Event()
    stop.set()
    q, fed = _ListQueue(), [0]
    _feed(iter(["/a.jpg"]), q, stop, failure, 2, fed)
    assert q.items == [] and failure == [] and len(stops) == 2
    assert fed == [0]  # mut59b B46: nor does it read more input (e.g. standard input)


def test_importing_ray_keeps_it_from_rebuilding_the_uv_environment(monkeypatch):
    """mut53h R58, R59: Ray's workers run this interpreter: Ray is told not to rebuild the
    uv environment for them (the flag also set in Ray, which may have read it already),
    unless RAY_ENABLE_UV_RUN_RUNTIME_ENV says otherwise."""
    import os

    from ray._private import ray_constants

    from vsent.engines.ray_engine import _import_ray

    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)
    monkeypatch.delenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", raising=False)
    _import_ray()
    assert os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0"
    assert ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV is False
    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "1")
    _import_ray()
    assert ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV is True


def test_a_late_fused_checkpoint_is_refused_before_ray_starts(monkeypatch):
    """mut53h R20: the read tasks decode the network's input alone (no full-resolution
    image for the hand-crafted half): a late-fused checkpoint is refused, naming it, before
    Ray is imported. The checkpoint is a stand-in (a fused one is slow to build)."""
    from types import SimpleNamespace

    from vsent.engines import EngineOptions, ray_engine
    from vsent.errors import VsentError

    def fused(path, device):
        return SimpleNamespace(fusion=SimpleNamespace(features="gch"), size=8,
                               class_names=["negative", "positive"])

    def no_ray():
        raise AssertionError("Ray was imported")

    monkeypatch.setattr(Predictor, "from_checkpoint", fused)
    monkeypatch.setattr(ray_engine, "_import_ray", no_ray)
    with pytest.raises(VsentError, match=r"^f\.pt: a late-fused model \(network \+ gch\); "
                                         r"--engine ray scores networks alone: use the "
                                         r"default engine$"):
        ray_engine.RayEngine(EngineOptions(model="f.pt"))


# mutation round 57 (mut57b): vsent.engines.ray_engine mutants the suite missed


def test_a_read_task_puts_the_end_back_for_the_other_read_tasks(tmp_path):
    """mut57b R18: each read task pops chunks until it pops the end (None), which it puts
    back: the other read tasks of the run end too instead of waiting on an empty queue.
    The read tasks are called here, in this process (no Ray started)."""
    import json

    from vsent.engines.ray_engine import _make_source

    Image.fromarray(np.full((12, 16, 3), 9, np.uint8)).save(tmp_path / "a.png")

    class Queue:  # ray.util.queue.Queue's get/put, failing where the real one would wait
        def __init__(self, items: list) -> None:
            self.items = items

        def get(self, block: bool = True) -> object:
            # mut59b B6: a read task waits for its next chunk (the real queue raises Empty
            # at once when asked not to block: the task would fail while the input is slow)
            assert block, "a read task must wait for the next chunk"
            assert self.items, "a read task waits on an empty queue: the end was not put back"
            return self.items.pop(0)

        def put(self, item: object) -> None:
            self.items.append(item)

    queue = Queue([[(5, "a.png", str(tmp_path / "a.png"))], None])
    tasks = _make_source(queue, 8, 3).get_read_tasks(1)
    blocks = [list(task()) for task in tasks]  # one after the other: the first takes the chunk
    assert [len(b) for b in blocks] == [1, 0, 0]
    assert json.loads(blocks[0][0]["meta"][0].as_py())["start"] == 5
    assert queue.items == [None]


def test_a_ray_run_sizes_its_blocks_bounds_its_reorder_buffer_and_restores_ray_data(
        monkeypatch):
    """mut57b R43-R45: while a run is read, Ray Data's block target is a quarter of one
    image (each chunk its own block: rows as chunks are decoded), and the setting the caller
    had is put back when the run ends; the reorder buffer holds REORDER_CHUNKS chunks of
    --batch-size rows. A stand-in Ray and queue: nothing is started."""
    from collections.abc import Iterator
    from types import SimpleNamespace

    import ray.util.queue

    from vsent.engines import EngineOptions, ray_engine

    seen: dict = {}

    class Queue:
        def __init__(self, maxsize: int) -> None:
            self.items: list = []
            seen["queue bound"] = maxsize  # mut59b B24: the back-pressure on the input

        def put(self, item: object, timeout: float | None = None) -> None:
            self.items.append(item)

        def shutdown(self, force: bool = False) -> None:
            seen["shut down"] = force

    class Dataset:
        def map_batches(self, fn: object, **kwargs: object) -> Dataset:
            seen["model stage"] = kwargs
            return self

        def iter_batches(self, **kwargs: object) -> Iterator:
            seen["iter"] = kwargs
            return iter([])

    def read_datasource(source: object, **kwargs: object) -> Dataset:
        seen["block size"] = ctx.target_max_block_size  # as the read tasks run
        seen["read"] = kwargs
        return Dataset()

    def in_order(batches: object, row: object, fed: object, failure: object,
                 limit: int) -> Iterator:
        seen["limit"] = limit
        yield from ()

    ctx = SimpleNamespace(target_max_block_size=128 << 20)
    engine = object.__new__(ray_engine.RayEngine)
    engine.ray = SimpleNamespace(data=SimpleNamespace(
        DataContext=SimpleNamespace(get_current=lambda: ctx), read_datasource=read_datasource,
        ActorPoolStrategy=lambda size: size))
    engine.options = EngineOptions(model="m.pt", batch_size=4, progress=True)
    engine.size, engine.decoders, engine.actors, engine.use_gpu, engine.ckpt = 8, 2, 1, False, "r"
    monkeypatch.setattr(ray.util.queue, "Queue", Queue)
    monkeypatch.setattr(ray_engine, "in_order", in_order)
    assert list(engine.score(iter([]))) == []
    stages = {k: seen.pop(k) for k in ("read", "model stage", "iter")}
    assert seen == {"block size": 8 * 8 * 3 // 4, "limit": ray_engine.REORDER_CHUNKS * 4,
                    "shut down": True, "queue bound": ray_engine.QUEUE_CHUNKS}
    assert ctx.target_max_block_size == 128 << 20  # the caller's setting, back
    # mut59b B26-B33: one read task per decoder and none retried (a retried one would pop
    # other chunks while its own rows never come); the model stage: one chunk (row) a call,
    # the pool of actors, one CPU-bound torch thread each; no prefetch (a paused input's rows
    # would wait for the next block)
    assert stages["read"]["override_num_blocks"] == 2
    assert stages["read"]["ray_remote_args"] == {"max_retries": 0}
    model = stages["model stage"]
    assert (model["batch_size"], model["compute"], model["num_gpus"]) == (1, 1, 0)
    assert model["fn_constructor_kwargs"] == {"oversample": False, "batch_size": 4,
                                              "device": "cpu", "threads": 1}
    assert stages["iter"]["prefetch_batches"] == 0
    # on GPUs: a GPU per actor, the model on cuda, torch's threads left as they are; and
    # without progress output Ray Data's console is quieted for the run, then put back
    quieted: list[str] = []
    monkeypatch.setattr(ray_engine, "_quiet_ray_data",
                        lambda: (quieted.append("on"), lambda: quieted.append("off"))[1])
    engine.options = EngineOptions(model="m.pt", batch_size=4, oversample=True)
    engine.use_gpu, engine.actors = True, 3
    assert list(engine.score(iter([]))) == []
    model = seen["model stage"]
    assert (model["compute"], model["num_gpus"]) == (3, 1)
    assert model["fn_constructor_kwargs"] == {"oversample": True, "batch_size": 4,
                                              "device": "cuda", "threads": None}
    assert quieted == ["on", "off"]


def test_the_processes_under_one_are_its_children_and_theirs(tmp_path, monkeypatch):
    """mut57b R52-R54: the processes killed after an interrupted start are all those under
    this one, children of children too (Ray's raylet starts the agents), read from each
    /proc/PID/stat past the name, which may hold spaces and ")"; a stat gone meanwhile or
    unreadable is skipped. A stand-in /proc: no process is started."""
    from vsent.engines import ray_engine

    proc = tmp_path / "proc"
    for pid, ppid, name in [(10, 1, "python"), (11, 10, "raylet"), (12, 11, "dashboard agent"),
                            (13, 12, "a) b"), (14, 1, "bystander"), (15, 14, "its child")]:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(f"{pid} ({name}) S {ppid} 1 1 0\n")
    (proc / "16").mkdir()
    (proc / "16" / "stat").write_text("16 (truncated")  # gone while read: skipped
    monkeypatch.setattr(ray_engine, "Path", lambda p: proc if p == "/proc" else Path(p))
    assert sorted(ray_engine._descendants(10)) == [11, 12, 13]
    assert ray_engine._descendants(13) == []
