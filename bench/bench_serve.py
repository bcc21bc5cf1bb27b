"""Benchmark of ``vsent serve`` on loopback: throughput and latency under concurrent load.

Measures, in one run (ratios are taken within it, these machines are noisy):

* offline: images/s of ``vsent predict``'s path (:meth:`vsent.predict.Predictor.score`) on the
  same image files, in this process;
* sequential: one client, one image per request, one request at a time (requests/s, p50/p99);
* concurrent: ``--clients`` clients, each sending ``--requests`` one-image requests back to
  back (bounded by ``--max-seconds``): throughput, p50/p99 latency, errors, and the mean batch
  size the service reports in ``/metrics`` (dynamic micro-batching at work).

Target: 0 errors, and concurrent throughput >= 0.7 x the offline rate.

The service runs as ``vsent serve`` in a subprocess on 127.0.0.1 (a free port), always stopped
at the end; the checkpoint is a freshly initialised ``--arch`` model (weights do not change the
cost). Usage: ``uv run --all-extras python bench/bench_serve.py [--arch caffenet] [--clients 16]
[--requests 25] [--max-seconds 60] [--images 64] [--data ../shared/datasets/twitter1]
[--out bench/results/serve.json]``; the images are the first ``--images`` JPEGs of ``--data``
(default ``$VSENT_DATA``, else ``../shared/datasets/twitter1``; generated ones where that
default folder is absent; recorded as ``data``, ``images_source``).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    import httpx
except ImportError:  # in the dev group, not in an extra: `uv run` has it, `pip install vsent` not
    raise SystemExit("bench_serve.py: error: needs httpx (the dev dependency group: `uv run` "
                     "installs it; or pip install httpx)") from None
import numpy as np
from _common import (
    RESULTS,
    add_data_arg,
    dataset_jpegs,
    machine,
    one_line_errors,
    photo_jpegs,
    shown,
    write_json,
)

from vsent.models import create_model
from vsent.models.checkpoint import save_checkpoint
from vsent.predict import Predictor
from vsent.provenance import versions


def _images(data: str | None, n: int, tmp: Path) -> tuple[list[Path], dict]:
    """``n`` JPEGs of the Twitter data (default: generated 500x375 photo-sized JPEGs where the
    default folder is absent; a ``--data`` without images stops), and their record."""
    paths, source = dataset_jpegs(data, n)
    return paths or photo_jpegs(n, tmp), source


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _metric(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(re.escape(name) + r"(\{[^}]*\})? (\S+)$", line)
        if m:
            total += float(m.group(2))
    return total


def _percentiles(lat: list[float]) -> dict:
    if not lat:
        return {"p50_ms": None, "p99_ms": None}
    a = np.asarray(lat) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2)}


def offline_rate(ckpt: Path, paths: list[Path], device: str, repeats: int) -> dict:
    """Images/s of Predictor.score (what ``vsent predict`` runs), best of ``repeats``."""
    predictor = Predictor.from_checkpoint(ckpt, device=device)
    list(predictor.score(paths[:8]))  # warm-up
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = list(predictor.score(paths))
        best = max(best, len(rows) / (time.perf_counter() - t0))
    return {"images": len(paths), "images_per_s": round(best, 2), "repeats": repeats}


def _post(client: httpx.Client, url: str, name: str, data: bytes) -> tuple[bool, float]:
    t0 = time.perf_counter()
    try:
        r = client.post(url, files=[("files", (name, data, "image/jpeg"))])
        ok = r.status_code == 200 and not r.json()["results"][0]["error"]
    except httpx.HTTPError:
        ok = False
    return ok, time.perf_counter() - t0


def sequential(url: str, blobs: list[tuple[str, bytes]], n: int) -> dict:
    lat, errors = [], 0
    with httpx.Client(timeout=120) as c:
        t0 = time.perf_counter()
        for i in range(n):
            ok, dt = _post(c, url, *blobs[i % len(blobs)])
            lat.append(dt)
            errors += not ok
        wall = time.perf_counter() - t0
    return {"requests": n, "errors": errors, "requests_per_s": round(n / wall, 2),
            **_percentiles(lat)}


def concurrent(url: str, blobs: list[tuple[str, bytes]], clients: int, per_client: int,
               max_seconds: float) -> dict:
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(k: int) -> None:
        with httpx.Client(timeout=120) as c:
            barrier.wait()
            for i in range(per_client):
                if time.perf_counter() > stop_at[0]:
                    break
                ok, dt = _post(c, url, *blobs[(k * per_client + i) % len(blobs)])
                with lock:
                    lat.append(dt)
                    errors[0] += not ok

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + max_seconds
    t0 = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lat), "errors": errors[0],
            "seconds": round(wall, 2), "requests_per_s": round(len(lat) / wall, 2),
            **_percentiles(lat)}


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="caffenet")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=25, help="per client")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="cap of the concurrent phase")
    ap.add_argument("--sequential", type=int, default=40, help="one-at-a-time requests")
    ap.add_argument("--images", type=int, default=64, help="distinct image files")
    ap.add_argument("--repeats", type=int, default=2, help="offline measurements (best kept)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    add_data_arg(ap)
    ap.add_argument("--out", default=RESULTS / "serve.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = save_checkpoint(tmp / "model.pt", create_model(args.arch))
        paths, source = _images(args.data, args.images, tmp)
        blobs = [(p.name, p.read_bytes()) for p in paths]
        offline = offline_rate(ckpt, paths, args.device, args.repeats)
        print(f"offline predict: {offline['images_per_s']} img/s", file=sys.stderr)

        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-c", "import sys; from vsent.cli import main; sys.exit(main())",
               "serve", "--model", str(ckpt), "--host", "127.0.0.1", "--port", str(port),
               "--device", args.device, "--max-batch", str(args.max_batch),
               "--max-wait-ms", str(args.max_wait_ms), "--max-inflight",
               str(max(64, 2 * args.clients))]
        log = (tmp / "serve.log").open("w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"vsent serve exited: {(tmp / 'serve.log').read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("vsent serve did not start within 180 s")
                time.sleep(0.2)
            url = f"{base}/v1/predict"
            sequential(url, blobs, 4)  # warm-up
            seq = sequential(url, blobs, args.sequential)
            print(f"sequential: {seq['requests_per_s']} req/s", file=sys.stderr)
            before = httpx.get(f"{base}/metrics").text
            conc = concurrent(url, blobs, args.clients, args.requests, args.max_seconds)
            after = httpx.get(f"{base}/metrics").text
            batches = _metric(after, "vsent_batch_size_count") - _metric(before,
                                                                         "vsent_batch_size_count")
            images = _metric(after, "vsent_batch_size_sum") - _metric(before,
                                                                     "vsent_batch_size_sum")
            conc["mean_batch"] = round(images / batches, 2) if batches else None
            conc["server_5xx"] = int(sum(
                _metric(after, f'vsent_requests_total{{status="{s}"}}') for s in (500, 503)))
            print(f"concurrent: {conc['requests_per_s']} req/s, mean batch {conc['mean_batch']}",
                  file=sys.stderr)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    ratio = conc["requests_per_s"] / offline["images_per_s"] if offline["images_per_s"] else None
    recorded = versions()  # (once: machine() reads the CPU from it)
    result = {
        "benchmark": "serve",
        **source,
        # (out: a Path by default, which JSON has no type for)
        "config": {**vars(args), "out": shown(args.out), **source},
        "machine": machine(recorded),
        "versions": recorded,
        "offline_predict": offline,
        "sequential": seq,
        "concurrent": conc,
        "ratio_concurrent_to_offline": round(ratio, 3) if ratio is not None else None,
        "target": {"errors": 0, "ratio_concurrent_to_offline": 0.7},
        "target_met": bool(conc["errors"] == 0 and ratio is not None and ratio >= 0.7),
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("offline_predict", "sequential", "concurrent",
                                             "ratio_concurrent_to_offline", "target_met")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
