"""``vsent serve``: the HTTP API through a real client against a real uvicorn on loopback.

Each server runs in a background thread on a free loopback port and is always stopped. The
scores the service returns are compared with :class:`vsent.predict.Predictor` run directly on
the same bytes (the library path, not the service's code).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (dev dependency)")
uvicorn = pytest.importorskip("uvicorn", reason="vsent serve needs the serve extra")

from vsent.cli import build_parser, main  # noqa: E402
from vsent.errors import VsentError  # noqa: E402
from vsent.models import create_model  # noqa: E402
from vsent.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vsent.predict import Predictor  # noqa: E402
from vsent.serve import Limits, ServeConfig, create_app  # noqa: E402

# --------------------------------------------------------------------------------------------
# helpers (also used by test_serve_browser.py)


def make_checkpoint(path: Path) -> Path:
    """A smallcnn checkpoint whose scores differ clearly between images (scaled last layer)."""
    torch.manual_seed(0)
    model = create_model("smallcnn")
    with torch.no_grad():
        model.fc.weight.mul_(200.0)  # random init scores ~0.5 everywhere; spread them out
    return save_checkpoint(path, model)


def image_bytes(seed: int, size: tuple[int, int] = (50, 40), fmt: str = "JPEG",
                tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> bytes:
    """Encoded noisy picture, ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    arr = (rng.integers(0, 256, (size[1], size[0], 3)) * np.array(tint)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def expected_probs(checkpoint: Path, images: list[bytes], oversample: bool = False) -> np.ndarray:
    """P(positive) of each image by the library's Predictor (no service involved)."""
    return Predictor.from_checkpoint(checkpoint, device="cpu", oversample=oversample
                                     ).predict_proba(images)[:, 1]


@dataclass
class Server:
    url: str
    app: object


@contextmanager
def running_server(checkpoint: Path, config: ServeConfig | None = None,
                   predictor: Predictor | None = None) -> Iterator[Server]:
    """uvicorn serving ``checkpoint`` (or ``predictor``) on 127.0.0.1, a free port; stopped on
    exit."""
    predictor = predictor or Predictor.from_checkpoint(checkpoint, device="cpu")
    app = create_app(predictor, checkpoint=checkpoint, config=config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def post(url: str, files: list[tuple[str, bytes]], timeout: float = 60, **fields):
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{url}/v1/predict", files=parts, data={k: str(v) for k, v in
                                                                fields.items()}, timeout=timeout)


def metric(text: str, name: str, **labels: str) -> float:
    """Value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    for line in text.splitlines():
        m = re.match(pattern, line)
        if m:
            return float(m.group(1))
    return 0.0


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "model.pt")


@pytest.fixture
def server(checkpoint) -> Iterator[Server]:
    with running_server(checkpoint) as s:
        yield s


# --------------------------------------------------------------------------------------------
# success


def test_one_and_several_images_match_the_library(server, checkpoint):
    imgs = [("warm.jpg", image_bytes(1, tint=(1, 0.6, 0.3))),
            ("plain.png", image_bytes(2, fmt="PNG")),
            ("cold.jpg", image_bytes(3, (33, 61), tint=(0.3, 0.5, 1)))]
    want = expected_probs(checkpoint, [d for _, d in imgs])
    assert np.ptp(want) > 0.01  # the images score differently, so order mistakes would show

    one = post(server.url, imgs[:1])
    assert one.status_code == 200
    (row,) = one.json()["results"]
    assert row["name"] == "warm.jpg" and row["error"] == ""
    assert row["prob_positive"] == pytest.approx(want[0], abs=1e-5)
    assert row["label"] == ("positive" if want[0] > 0.5 else "negative")

    many = post(server.url, imgs)
    assert many.status_code == 200
    rows = many.json()["results"]
    assert [r["name"] for r in rows] == ["warm.jpg", "plain.png", "cold.jpg"]
    np.testing.assert_allclose([r["prob_positive"] for r in rows], want, atol=1e-5)

    ten = post(server.url, imgs, oversample="true")
    want10 = expected_probs(checkpoint, [d for _, d in imgs], oversample=True)
    np.testing.assert_allclose([r["prob_positive"] for r in ten.json()["results"]], want10,
                               atol=1e-5)
    assert not np.allclose(want10, want, atol=1e-4)  # oversampling really was applied


def test_a_bad_image_fails_only_its_own_entry(server, checkpoint):
    good = image_bytes(4)
    full = image_bytes(5, (200, 150))
    truncated = full[: len(full) // 2]
    r = post(server.url, [("a.jpg", good), ("notes.txt", b"just some text"),
                          ("cut.jpg", truncated), ("empty.jpg", b"")])
    assert r.status_code == 200
    rows = r.json()["results"]
    assert rows[0]["error"] == ""
    assert rows[0]["prob_positive"] == pytest.approx(expected_probs(checkpoint, [good])[0],
                                                     abs=1e-5)
    for row, reason in zip(rows[1:], ("cannot identify image file", "truncated", "empty"),
                           strict=True):
        assert row["name"] in row["error"] and reason in row["error"], row
        assert row["prob_positive"] is None and row["label"] is None


def test_damaged_files_and_other_formats_fail_only_their_own_entry(server, checkpoint):
    """PIL raises TypeError on the TIFF (a 500 before, the good image's result lost with it);
    EPS (Ghostscript) and DDS are formats the service does not open at all."""
    from test_images import EPS, damaged_tiff, dds_bytes

    good = image_bytes(4)
    r = post(server.url, [("a.jpg", good), ("damaged.tif", damaged_tiff()), ("x.eps", EPS),
                          ("texture.jpg", dds_bytes())])
    assert r.status_code == 200
    rows = r.json()["results"]
    assert rows[0]["prob_positive"] == pytest.approx(expected_probs(checkpoint, [good])[0],
                                                     abs=1e-5)
    assert rows[1]["error"].startswith("damaged.tif (part 2): cannot decode image: TypeError: ")
    assert rows[2]["error"].startswith("x.eps (part 3): not a supported image format (EPS; ")
    assert rows[3]["error"].startswith("texture.jpg (part 4): not a supported image format (DDS")


def test_check_pixels_reads_only_the_decoders_formats():
    """A DDS header claiming 10^10 pixels: not even its header is read (no 413 from it);
    the decoder then refuses the format."""
    import struct

    from test_images import dds_bytes
    from vsent.data.images import load_rgb
    from vsent.errors import ImageError
    from vsent.serve.limits import check_pixels

    data = bytearray(dds_bytes())
    struct.pack_into("<II", data, 12, 100_000, 100_000)  # height, width
    check_pixels(bytes(data), 40_000_000, "t.dds (part 1)")
    with pytest.raises(ImageError, match=r"^<bytes>: not a supported image format \(DDS"):
        load_rgb(bytes(data))


def test_explain_and_regions(server, checkpoint):
    from vsent.analyses.regions import fused_proba

    data = image_bytes(6, (70, 50))
    r = post(server.url, [("x.jpg", data)], explain="true")
    assert r.status_code == 200
    (row,) = r.json()["results"]
    png = Image.open(io.BytesIO(base64.b64decode(row["heatmap"])))
    assert png.format == "PNG" and png.size == (70, 50)  # the overlay is at the image's size
    # whether the map is all zero, as explain.csv's empty_map (review33b #11)
    model, _ = load_checkpoint(checkpoint)
    from vsent.analyses.explain import explain_image

    want = explain_image(model, data, target=int(row["label"] == "positive"), max_side=512)
    assert row["heatmap_empty"] is (not want["heatmap"].any())
    assert row["prob_positive"] == pytest.approx(expected_probs(checkpoint, [data])[0], abs=1e-5)

    model, _ = load_checkpoint(checkpoint)
    fused = fused_proba(model, data)["proba"][1]
    r = post(server.url, [("x.jpg", data)], regions="1")
    (row,) = r.json()["results"]
    assert row["prob_positive"] == pytest.approx(fused, abs=1e-5)
    assert len(row["regions"]) >= 1 and len(row["regions"][0]["box"]) == 4


@pytest.mark.parametrize("bad, message", [
    ({"senti_log": "bits"}, "--senti-log 'bits': choose one of classes, natural"),
    ({"k": 0}, "--k must be >= 1, got 0"),
    ({"k": 12, "n_proposals": 11}, "--k (12) must be <= --n-proposals (11)"),
])
def test_bad_region_settings_stop_the_service_at_start_up(checkpoint, bad, message):
    """review31 #1: a bad region setting passed start-up, then every regions request was an
    internal error (500)."""
    with pytest.raises(VsentError, match=re.escape(message)):
        create_app(Predictor.from_checkpoint(checkpoint, device="cpu"),
                   checkpoint=checkpoint, config=ServeConfig(**bad))


@pytest.mark.parametrize("build, message", [
    (lambda: Limits(max_images=0), "--max-images (max_images) must be >= 1, got 0"),
    (lambda: Limits(timeout_s=0), "--timeout must be > 0 seconds, got 0"),
    (lambda: ServeConfig(max_batch=0), "--max-batch must be >= 1, got 0"),
    (lambda: ServeConfig(k=0), "--k must be >= 1, got 0"),
], ids=["max-images", "timeout", "max-batch", "k"])
def test_the_service_settings_are_checked_when_built(build, message):
    """code38 #4: Limits and ServeConfig were checked only when create_app (or the CLI) called
    validate(), unlike every other vsent config (checked in __post_init__)."""
    with pytest.raises(VsentError, match=f"^{re.escape(message)}$"):
        build()
    config = ServeConfig(limits=Limits(max_images=2))
    assert config.validate() is config and config.limits.validate() is config.limits


def test_regions_take_the_services_region_settings(checkpoint, monkeypatch):
    """The service ranks regions with its config's K, alpha, beta, proposals and log of the
    sentiment score (fidelity31 L8: the log was left at its default whatever was set)."""
    import vsent.analyses.regions as regions

    seen = {}
    monkeypatch.setattr(regions, "fused_proba", lambda model, data, **kw: seen.update(kw))
    config = ServeConfig(k=4, alpha=2.0, beta=0.25, n_proposals=30, senti_log="natural")
    app = create_app(Predictor.from_checkpoint(checkpoint, device="cpu"),
                     checkpoint=checkpoint, config=config)
    app.state.service._regions_sync(image_bytes(6, (70, 50)))
    settings = {"k": 4, "alpha": 2.0, "beta": 0.25, "n_proposals": 30, "senti_log": "natural"}
    assert {k: seen[k] for k in settings} == settings
    assert app.state.service.card["regions"] == settings  # GET /v1/model says them


def test_explain_of_a_banner_and_a_bug_in_one_explain_fail_no_other_image(server, checkpoint,
                                                                         monkeypatch, caplog):
    def png(w: int, h: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(w).integers(0, 256, (h, w, 3), np.uint8)).save(
            buf, "PNG")
        return buf.getvalue()

    # shrunk to 512 px a side, 1100x1 would be 512x0 (a 500 for the whole request before)
    r = post(server.url, [("wide.png", png(1100, 1)), ("tall.png", png(1, 1100)),
                          ("a.jpg", image_bytes(3))], explain="true")
    assert r.status_code == 200
    sizes = [Image.open(io.BytesIO(base64.b64decode(row["heatmap"]))).size
             for row in r.json()["results"]]
    assert sizes == [(512, 1), (1, 512), (50, 40)]
    # a bug in one image's Grad-CAM: that entry fails, the others are answered
    service = server.app.state.service
    real = service._explain_sync
    bad = image_bytes(11)

    def buggy(data, target):
        if data == bad:
            raise RuntimeError("a bug")
        return real(data, target)

    monkeypatch.setattr(service, "_explain_sync", buggy)
    r = post(server.url, [("bad.jpg", bad), ("a.jpg", image_bytes(3))], explain="true")
    assert r.status_code == 200
    first, second = r.json()["results"]
    assert first["error"] == ("bad.jpg (part 1): explain failed (internal error RuntimeError; "
                              "see the server's log)") and first["prob_positive"] is None
    assert second["error"] == "" and second["heatmap"]
    assert "bad.jpg (part 1): explain failed" in caplog.text and "a bug" in caplog.text
    r = post(server.url, [("bad.jpg", bad)], explain="true")  # its only image: a bug's 500
    assert r.status_code == 500 and "explain failed" in r.json()["detail"]


def test_an_image_error_of_explain_or_regions_names_the_upload_as_decoding_does(server,
                                                                               monkeypatch):
    """The decoder names bytes "<bytes>"; an answer names the upload and its part. Decoding
    dropped the decoder's name, explain and regions left it in ("a.jpg (part 1): <bytes>:
    image file is truncated")."""
    from vsent.data.images import BYTES_NAME
    from vsent.errors import ImageError

    service = server.app.state.service

    def cut(*args):
        raise ImageError(f"{BYTES_NAME}: image file is truncated")

    for option, method in (("explain", "_explain_sync"), ("regions", "_regions_sync")):
        monkeypatch.setattr(service, method, cut)
        r = post(server.url, [("a.jpg", image_bytes(3))], **{option: "true"})
        assert r.status_code == 422, option
        assert r.json()["results"][0]["error"] == "a.jpg (part 1): image file is truncated"


def test_decode_threads_are_the_cpus_this_process_may_use(checkpoint, monkeypatch):
    """A container's share of a large host, as vsent predict counts them."""
    import os

    from vsent.serve.app import Service

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    service = Service(predictor)
    try:
        assert service.decode_pool._max_workers == 2
    finally:
        service.close()
    # mut51g A34: --workers, when given, is the number of decoding threads
    service = Service(predictor, config=ServeConfig(decode_workers=3))
    try:
        assert service.decode_pool._max_workers == 3
    finally:
        service.close()


def test_explain_shrinks_large_images_and_hooks_a_copy_of_the_model(server, checkpoint):
    from vsent.analyses.explain import explain_image, overlay_heatmap

    data = image_bytes(8, (1600, 1200))
    r = post(server.url, [("big.jpg", data), ("small.jpg", image_bytes(9))], explain="true")
    assert r.status_code == 200
    big, small = r.json()["results"]
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(big["heatmap"]))))
    assert png.shape == (384, 512, 3)  # the longer side shrunk to HEATMAP_MAX_SIDE
    model, _ = load_checkpoint(checkpoint)
    answered = 1 if big["prob_positive"] > 0.5 else 0
    want = explain_image(model, data, target=answered, max_side=512)
    np.testing.assert_array_equal(png, overlay_heatmap(want["image"], want["heatmap"]))
    # the score is the full image's, as without explain
    assert big["prob_positive"] == pytest.approx(expected_probs(checkpoint, [data])[0], abs=1e-5)
    service = server.app.state.service
    assert service._cam_model is not None and service._cam_model is not service.model
    # no Grad-CAM hook is ever left on (or put on) the model the batches share
    assert not any(m._forward_hooks for m in service.model.modules())


def test_options_a_model_cannot_serve_are_422_and_announced(checkpoint):
    import dataclasses

    model, _ = load_checkpoint(checkpoint)
    model.info = dataclasses.replace(model.info, cam_layer="")  # e.g. an open_clip ViT
    with running_server(checkpoint, predictor=Predictor(model, device="cpu")) as s:
        card = httpx.get(f"{s.url}/v1/model").json()
        assert card["request_options"] == {"oversample": True, "explain": False, "regions": True}
        r = post(s.url, [("a.jpg", image_bytes(1))], explain="true")
        assert r.status_code == 422
        assert r.json()["detail"] == ("explain is not available: smallcnn declares no Grad-CAM "
                                      "layer")
        assert post(s.url, [("a.jpg", image_bytes(1))]).status_code == 200


# --------------------------------------------------------------------------------------------
# user errors: 413, 415, 422, never a 500


def test_all_images_bad_is_422_naming_the_part_and_reason(server):
    r = post(server.url, [("notes.txt", b"not an image at all")])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "notes.txt (part 1): cannot identify image file" in detail


def test_an_empty_upload_alone_is_422(server):
    """An empty file is unreadable input, not an upload above a limit: alone in its request
    it is a 422 (it was only ever sent next to a good image, a 200 whatever its status)."""
    r = post(server.url, [("empty.jpg", b"")])
    assert r.status_code == 422
    assert "empty.jpg (part 1): empty file" in r.json()["detail"]


def test_bad_requests(server):
    r = httpx.post(f"{server.url}/v1/predict", json={"image": "x"})
    assert r.status_code == 415
    r = httpx.post(f"{server.url}/v1/predict", files={"note": (None, "hello")})
    assert r.status_code == 422 and "no image" in r.json()["detail"]
    r = post(server.url, [("a.jpg", image_bytes(1))], explain="maybe")
    assert r.status_code == 422 and "explain" in r.json()["detail"]
    r = post(server.url, [("a.jpg", image_bytes(1))], regions="true", oversample="true")
    assert r.status_code == 422 and "oversample" in r.json()["detail"]
    r = httpx.post(f"{server.url}/v1/predict", content=b"--x\r\nbroken",
                   headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 422
    # mut54g A105: a multipart body the parser refuses is 422, with the parser's reason
    r = httpx.post(f"{server.url}/v1/predict", content=b"--x\r\n",
                   headers={"content-type": "multipart/form-data"})
    assert r.status_code == 422
    assert r.json() == {"detail": "malformed multipart body: Missing boundary in multipart."}
    # a misspelt option is refused, not ignored (form field or query parameter)
    r = post(server.url, [("a.jpg", image_bytes(1))], oversampel="true")
    assert r.status_code == 422
    assert r.json()["detail"] == ("unknown option 'oversampel' (the options are oversample, "
                                  "explain, regions)")
    r = httpx.post(f"{server.url}/v1/predict?explian=1",
                   files=[("files", ("a.jpg", image_bytes(1), "image/jpeg"))])
    assert r.status_code == 422 and "unknown option 'explian'" in r.json()["detail"]
    # trial31 #7: a file under another field (an option's name too) was scored; an option
    # given twice kept its last value
    for field in ("image", "oversample"):
        r = httpx.post(f"{server.url}/v1/predict",
                       files=[("files", ("a.jpg", image_bytes(1), "image/jpeg")),
                              (field, ("b.jpg", image_bytes(2), "image/jpeg"))])
        assert r.status_code == 422
        assert r.json()["detail"] == (f"b.jpg (part 2) is sent in the field {field!r}: images "
                                      "go in the field 'files', e.g. curl -F files=@photo.jpg")
    # a misspelt option sent twice is still called unknown (review32 #7)
    r = httpx.post(f"{server.url}/v1/predict",
                   files=[("files", ("a.jpg", image_bytes(1), "image/jpeg")),
                          ("explian", (None, "1")), ("explian", (None, "1"))])
    assert r.status_code == 422 and r.json()["detail"].startswith("unknown option 'explian'")
    for query, data in (("", [("explain", "true"), ("explain", "false")]),
                        ("?explain=true", [("explain", "true")]),
                        ("?explain=true&explain=false", [])):
        r = httpx.post(f"{server.url}/v1/predict{query}",
                       files=[("files", ("a.jpg", image_bytes(1), "image/jpeg"))]
                       + [(k, (None, v)) for k, v in data])
        assert r.status_code == 422 and r.json()["detail"] == "option 'explain' given twice"
    # the image sent as text (curl -F "files=<a.jpg") is named as such
    r = httpx.post(f"{server.url}/v1/predict", files={"files": (None, "JFIF...")})
    assert r.status_code == 422 and "'files' holds text, not a file" in r.json()["detail"]
    # a sound body of too many fields is no "malformed multipart body" (robust39 #9)
    r = httpx.post(f"{server.url}/v1/predict",
                   files=[("files", ("a.jpg", image_bytes(1), "image/jpeg"))]
                   + [(f"x{i}", (None, "1")) for i in range(101)])
    assert r.status_code == 422 and r.json()["detail"] == (
        "more than 100 form fields in one request (options are a few fields; images go in "
        "'files')")
    # a file named only in RFC 5987's form (filename*=): the parser reads no name (prac37 #8)
    body = (b"--B\r\nContent-Disposition: form-data; name=\"files\"; "
            b"filename*=UTF-8''caf%C3%A9.jpg\r\nContent-Type: image/jpeg\r\n\r\n"
            + image_bytes(1) + b"\r\n--B--\r\n")
    r = httpx.post(f"{server.url}/v1/predict", content=body,
                   headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 422 and "a name given only as filename*= is not read" in \
        r.json()["detail"]
    # a body that ends before its closing boundary: its unfinished file is not dropped silently
    whole = _part(b"a.jpg", image_bytes(1)) + _part(b"b.jpg", image_bytes(2))
    for cut in (whole, whole[:len(whole) - 300]):  # no closing boundary; cut inside b.jpg
        r = httpx.post(f"{server.url}/v1/predict", content=cut,
                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 422
        assert r.json()["detail"] == ("malformed multipart body: it ends before its closing "
                                      "boundary (part 2, b.jpg, incomplete)")
    r = httpx.post(f"{server.url}/v1/predict", content=_part(b"a.jpg", image_bytes(1)),
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 422 and "(part 1, a.jpg, incomplete)" in r.json()["detail"]
    r = httpx.post(f"{server.url}/v1/predict", content=whole + b"--b--\r\n",
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 200 and [row["error"] for row in r.json()["results"]] == ["", ""]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric(metrics, "vsent_requests_total", status="500") == 0


def _part(name: bytes, data: bytes) -> bytes:
    """One file part of a multipart body with boundary ``b`` (no closing boundary)."""
    return (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name
            + b"\"\r\n\r\n" + data + b"\r\n")


def test_a_cut_bodys_unfinished_file_is_closed_by_the_parser():
    """The unfinished part of a body without its closing boundary is in no form item: its
    temporary file was left to the garbage collector (review24)."""
    import asyncio

    from starlette.datastructures import Headers

    from vsent.serve.app import _WholeBodyParser

    async def parse(body: bytes):
        async def stream():
            yield body
        parser = _WholeBodyParser(Headers({"content-type": "multipart/form-data; boundary=b"}),
                                  stream())
        form = await parser.parse()
        return parser, form

    whole = _part(b"a.jpg", image_bytes(1)) + _part(b"b.jpg", image_bytes(2))
    parser, form = asyncio.run(parse(whole[:len(whole) - 300]))
    assert parser.unfinished() == "part 2, b.jpg, incomplete"
    assert [f.filename for f in form.getlist("files")] == ["a.jpg"]
    assert parser._current_part.file.file.closed  # the unfinished b.jpg
    assert not form.getlist("files")[0].file.closed  # the form's own: closed by its reader
    parser, form = asyncio.run(parse(whole + b"--b--\r\n"))
    assert parser.unfinished() is None and len(form.getlist("files")) == 2
    assert not any(f.file.closed for f in form.getlist("files"))


def test_media_type_is_case_insensitive_and_refusals_are_logged(server, caplog):
    data = image_bytes(1)
    body = (b"--b0\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b0--\r\n")
    r = httpx.post(f"{server.url}/v1/predict", content=body,
                   headers={"content-type": "Multipart/Form-Data; boundary=b0"})
    assert r.status_code == 200 and r.json()["results"][0]["error"] == ""
    with caplog.at_level("WARNING", logger="vsent"):
        assert httpx.post(f"{server.url}/v1/predict", json={}).status_code == 415
        assert post(server.url, [("n.txt", b"text")]).status_code == 422
    # the access log gives only the status; the service's log says why
    assert "POST /v1/predict 415: expected a multipart/form-data body" in caplog.text
    assert "POST /v1/predict 422: n.txt (part 1): cannot identify image file" in caplog.text


def test_a_bug_is_a_counted_json_500_not_a_dropped_connection(server, monkeypatch, caplog):
    def boom(*_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.app.state.service, "_set_scores", boom)
    with caplog.at_level("WARNING", logger="vsent"):
        r = post(server.url, [("a.jpg", image_bytes(1))])
    assert r.status_code == 500
    assert "retry-after" not in r.headers  # mut54g A140: a bug is no "retry in 1 s" (a 503 is)
    assert r.json() == {"detail": "internal error (RuntimeError); see the server's log"}
    assert "RuntimeError: a bug" in caplog.text  # the traceback is in the server's log
    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric(metrics, "vsent_requests_total", status="500") == 1
    assert metric(metrics, "vsent_inflight_requests") == 0


def test_an_answer_json_cannot_hold_is_a_counted_json_500(server, monkeypatch, caplog):
    """A value JSON cannot carry (a bug) is rendered before the status is counted: a JSON 500
    counted as 500, not the framework's plain-text 500 counted as a 200."""
    def nan_scores(e, p):
        e.out = {"prob_positive": float("nan"), "label": "negative"}

    monkeypatch.setattr(server.app.state.service, "_set_scores", nan_scores)
    with caplog.at_level("WARNING", logger="vsent"):
        r = post(server.url, [("a.jpg", image_bytes(1))])
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "internal error (ValueError); see the server's log"}
    assert "Out of range float values are not JSON compliant" in caplog.text
    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric(metrics, "vsent_requests_total", status="500") == 1
    assert metric(metrics, "vsent_requests_total", status="200") == 0


def test_a_client_that_disconnects_mid_upload_is_no_500(server, caplog):
    """A closed browser tab or a client's timeout is no bug of the service: counted as 499,
    logged in one line without a traceback, and no alert on status="500" fires."""
    port = int(server.url.rsplit(":", 1)[1])
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.jpg\"\r\n\r\n"
            + b"x" * 1000)
    with caplog.at_level("INFO", logger="vsent"):
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data;"
                      b" boundary=b\r\nContent-Length: 100000\r\n\r\n" + body)
            _wait_inflight(server.url, 1)
        deadline = time.monotonic() + 20
        while metric(httpx.get(f"{server.url}/metrics").text, "vsent_requests_total",
                     status="499") < 1:
            assert time.monotonic() < deadline, "the disconnect was never counted"
            time.sleep(0.02)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric(metrics, "vsent_requests_total", status="500") == 0
    assert metric(metrics, "vsent_inflight_requests") == 0
    assert "the client disconnected during the upload" in caplog.text
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text
    assert all(rec.levelname == "INFO" for rec in caplog.records if rec.name == "vsent")


def test_non_finite_scores_fail_their_entries_in_json(tmp_path, caplog):
    """A checkpoint whose finite weights overflow float32 (a diverging run) scores NaN: each
    image's entry says so, as vsent predict's row does, and the answer stays JSON (it was a
    plain-text 500 counted as a 200). The model is the server's fault: a 500, not a 422."""
    torch.manual_seed(0)
    model = create_model("smallcnn")
    with torch.no_grad():
        model.fc.weight.copy_(torch.sign(model.fc.weight) * 3e38)
    ckpt = save_checkpoint(tmp_path / "huge.pt", model)
    reason = "non-finite scores (the model's weights hold NaN/inf?)"
    with running_server(ckpt) as s, caplog.at_level("WARNING", logger="vsent"):
        for opts in ({}, {"regions": "true"}):
            r = post(s.url, [("a.jpg", image_bytes(1)), ("b.txt", b"text")], **opts)
            assert r.status_code == 500 and r.headers["content-type"] == "application/json"
            a, b = r.json()["results"]
            assert a == {"name": "a.jpg", "prob_positive": None, "label": None,
                         "error": f"a.jpg (part 1): {reason}"}
            assert b["error"] == "b.txt (part 2): cannot identify image file"
        metrics = httpx.get(f"{s.url}/metrics").text
    assert metric(metrics, "vsent_requests_total", status="500") == 2
    assert metric(metrics, "vsent_requests_total", status="200") == 0
    assert metric(metrics, "vsent_images_total", outcome="scored") == 0
    assert metric(metrics, "vsent_images_total", outcome="failed") == 4
    assert f"a.jpg (part 1): the model gave {reason}" in caplog.text


def test_an_image_with_one_non_finite_score_fails_its_own_entry(checkpoint, monkeypatch):
    """One NaN among an image's class scores fails that image (not only scores that are all
    NaN): its argmax would read "negative"; the request's other image is scored."""
    from vsent.serve import app as serve_app

    real = serve_app.network_scores

    def first_nan(predictor, arrays):
        probs = real(predictor, arrays).copy()
        probs[0, 0] = np.nan
        return probs

    monkeypatch.setattr(serve_app, "network_scores", first_nan)
    with running_server(checkpoint) as s:
        r = post(s.url, [("a.jpg", image_bytes(1)), ("b.jpg", image_bytes(2))])
    assert r.status_code == 200
    a, b = r.json()["results"]
    assert a == {"name": "a.jpg", "prob_positive": None, "label": None,
                 "error": "a.jpg (part 1): non-finite scores (the model's weights hold NaN/inf?)"}
    assert b["error"] == "" and 0 <= b["prob_positive"] <= 1


def test_the_service_answers_with_predicts_score_row(checkpoint, monkeypatch):
    """code38 #7: serve wrote its own copy of vsent.predict.scores_row (the label, the
    rounding, non-finite scores): a change to the row reached `vsent predict` and every
    engine, not the service. Its answer is that row's now."""
    from vsent import predict
    from vsent.serve import app as serve_app

    seen = []

    def marked(path, probs, class_names):
        seen.append(path)
        return {**predict.scores_row(path, probs, class_names), "label": "from scores_row"}

    monkeypatch.setattr(serve_app, "scores_row", marked)
    with running_server(checkpoint) as s:
        r = post(s.url, [("a.jpg", image_bytes(1))])
    (row,) = r.json()["results"]
    assert row["label"] == "from scores_row" and seen == ["a.jpg (part 1)"]


def test_limits_give_413(checkpoint):
    limits = Limits(max_upload_bytes=6000, max_request_bytes=30_000, max_pixels=10_000,
                    max_images=2)
    small = image_bytes(1, (40, 30))  # 1200 pixels, ~2-3 kB
    assert len(small) < 6000
    big_file = image_bytes(2, (60, 60), fmt="PNG")  # 3600 pixels of noise: ~11 kB
    assert 6000 < len(big_file) < 20_000
    # a bomb in miniature: 400x400 = 160 000 pixels in a few hundred bytes
    buf = io.BytesIO()
    Image.new("L", (400, 400), 0).save(buf, "PNG")
    bomb = buf.getvalue()
    assert len(bomb) < 2000
    with running_server(checkpoint, ServeConfig(limits=limits)) as s:
        r = post(s.url, [("big.jpg", big_file)])
        assert r.status_code == 413 and "--max-upload-mb" in r.json()["detail"]
        r = post(s.url, [("bomb.png", bomb)])
        assert r.status_code == 413 and "400x400" in r.json()["detail"]
        assert "--max-pixels" in r.json()["detail"]
        r = post(s.url, [("a.jpg", small)] * 3)
        assert r.status_code == 413 and "--max-images" in r.json()["detail"]
        r = post(s.url, [("noise.bin", np.random.default_rng(0).bytes(40_000))])
        assert r.status_code == 413 and "--max-request-mb" in r.json()["detail"]
        # a request body without Content-Length is counted while it streams in
        body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.jpg\"\r\n\r\n"
                + b"x" * 40_000 + b"\r\n--b--\r\n")
        r = httpx.post(f"{s.url}/v1/predict", content=iter([body[:20_000], body[20_000:]]),
                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413
        # the bomb among good images fails only its own entry
        r = post(s.url, [("a.jpg", small), ("bomb.png", bomb)])
        assert r.status_code == 200
        ok, bad = r.json()["results"]
        assert ok["error"] == "" and ok["prob_positive"] is not None
        assert "bomb.png" in bad["error"] and "--max-pixels" in bad["error"]
        metrics = httpx.get(f"{s.url}/metrics").text
        assert metric(metrics, "vsent_requests_total", status="413") == 5
        assert metric(metrics, "vsent_requests_total", status="500") == 0
        assert httpx.get(f"{s.url}/healthz").json()["status"] == "ok"
        for path in ("/", "/healthz"):  # uptime checkers probe with HEAD
            assert httpx.head(f"{s.url}{path}").status_code == 200, path


def test_every_image_bad_for_different_reasons_is_422_not_413(checkpoint):
    """413 only when every failed image is above a limit (the module docstring's rule): an
    oversized upload beside an unreadable one is 422, naming both. The tests above send
    failures of one kind only, so a 413 when any image was above a limit went unseen."""
    big = image_bytes(2, (60, 60), fmt="PNG")  # 3600 pixels of noise: ~11 kB
    assert len(big) > 6000
    with running_server(checkpoint, ServeConfig(limits=Limits(max_upload_bytes=6000))) as s:
        r = post(s.url, [("big.png", big), ("notes.txt", b"not an image at all")])
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert "big.png (part 1)" in detail and "--max-upload-mb" in detail
        assert "notes.txt (part 2): cannot identify image file" in detail
        r = post(s.url, [("big.png", big), ("big2.png", big)])
        assert r.status_code == 413  # every failed image above a limit
        # mut54g A100, A111: the detail names each part, "; " between them, and the limit
        why = "upload above the limit of 6000 bytes (--max-upload-mb)"
        assert r.json()["detail"] == f"big.png (part 1): {why}; big2.png (part 2): {why}"


def test_a_body_of_exactly_the_request_limit_is_served(checkpoint):
    """--max-request-mb is the most a body may hold: exactly that many bytes are served, one
    more is 413, whether the size is announced (Content-Length) or counted while the body
    streams in (chunked, no Content-Length). Byte counts, no timing: deterministic."""
    def body(name: bytes) -> bytes:
        return _part(name, image_bytes(1)) + b"--b--\r\n"

    exact, over = body(b"a.jpg"), body(b"ab.jpg")  # one byte more: the longer name
    assert len(over) == len(exact) + 1
    headers = {"content-type": "multipart/form-data; boundary=b"}
    config = ServeConfig(limits=Limits(max_request_bytes=len(exact)))
    with running_server(checkpoint, config) as s:
        url = f"{s.url}/v1/predict"
        for content in (exact, iter([exact[:1000], exact[1000:]])):  # announced, streamed
            r = httpx.post(url, content=content, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["error"] == ""
        for content in (over, iter([over[:1000], over[1000:]])):
            r = httpx.post(url, content=content, headers=headers)
            assert r.status_code == 413 and "--max-request-mb" in r.json()["detail"]


def test_an_upload_of_exactly_the_upload_limit_is_served(checkpoint):
    """--max-upload-mb is the most one file may hold: exactly that many bytes are scored, one
    more is 413."""
    data = image_bytes(1)
    with running_server(checkpoint, ServeConfig(limits=Limits(max_upload_bytes=len(data)))) as s:
        r = post(s.url, [("a.jpg", data)])
        assert r.status_code == 200 and r.json()["results"][0]["error"] == ""
        r = post(s.url, [("b.jpg", data + b"\0")])
        assert r.status_code == 413 and "b.jpg (part 1): upload above the limit of " \
            f"{len(data)} bytes (--max-upload-mb)" in r.json()["detail"]


def test_check_pixels_names_the_limit_in_force_when_pil_refuses_first():
    from conftest import png_header_only
    from vsent.serve.limits import TooLarge, check_pixels

    # PIL raises above twice its own limit (89 M pixels) before the size is readable
    with pytest.raises(TooLarge) as info:
        check_pixels(png_header_only(100000, 100000), 40_000_000, "x.png")
    assert str(info.value) == ("x.png: image has 10000000000 pixels, above the limit of "
                               "40000000 (--max-pixels)")


def _wait_inflight(url: str, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while metric(httpx.get(f"{url}/metrics").text, "vsent_inflight_requests") < n:
        assert time.monotonic() < deadline, "the first request never arrived"
        time.sleep(0.02)


def test_overload_and_timeout_give_503(checkpoint):
    # a lone request waits max_wait for company: 1.5 s during which the service is full
    config = ServeConfig(max_wait_ms=1500, limits=Limits(max_inflight=1, timeout_s=20))
    with running_server(checkpoint, config) as s:
        first: dict = {}
        t = threading.Thread(target=lambda: first.update(r=post(s.url, [("a.jpg",
                                                                          image_bytes(1))])))
        t.start()
        _wait_inflight(s.url, 1)
        r = post(s.url, [("b.jpg", image_bytes(2))])
        t.join()
        assert r.status_code == 503 and "--max-inflight" in r.json()["detail"]
        assert r.headers.get("retry-after") == "1"
        assert first["r"].status_code == 200

    # a lone request's batch waits 10 minutes for company: a 503 that comes at all came at
    # the deadline, not after the batch (a wall-clock bound on the answer used to say so; the
    # client's 60 s timeout is only a guard against a hang)
    config = ServeConfig(max_wait_ms=600_000, limits=Limits(timeout_s=0.3))
    with running_server(checkpoint, config) as s:
        r = post(s.url, [("a.jpg", image_bytes(1))], timeout=60)
        assert r.status_code == 503 and "--timeout" in r.json()["detail"]
        text = httpx.get(f"{s.url}/metrics").text
        assert metric(text, "vsent_batch_size_count", crop="center") == 0  # no batch ran yet


def test_an_upload_slower_than_the_deadline_is_408_not_a_retry_later_503(checkpoint):
    """A body that trickles in past --timeout was a 503 "retry later" with Retry-After: 1 (which
    can never help) counted as overload (audit_serve27 #4)."""
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n\r\n"
            + image_bytes(1) + b"\r\n--b--\r\n")
    with running_server(checkpoint, ServeConfig(limits=Limits(timeout_s=1))) as s:
        port = int(s.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data;"
                      b" boundary=b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            step = len(body) // 4 + 1
            with contextlib.suppress(OSError):  # the server may answer and close before the end
                for i in range(0, len(body), step):  # 4 pieces 0.5 s apart: ~2 s for the body
                    c.sendall(body[i:i + step])
                    time.sleep(0.5)
            c.settimeout(30)
            answer = c.recv(65536).decode(errors="replace")
        head, _, text = answer.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 408"), head
        assert "retry-after" not in head.lower()
        assert "upload took longer than 1 s (--timeout)" in json.loads(text)["detail"]
        metrics = httpx.get(f"{s.url}/metrics").text
        assert metric(metrics, "vsent_requests_total", status="408") == 1
        assert metric(metrics, "vsent_requests_total", status="503") == 0


def test_a_timed_out_request_starts_no_more_per_image_work(checkpoint, monkeypatch):
    """Grad-CAM runs image by image in one thread: after the 503 at most the image in progress
    finishes (a thread cannot be stopped); the request's other images are never started.
    Without sleeps: the first explain holds the thread until the test has its 503, and the
    thread's next job is then another request's explain, not the timed-out request's next
    image."""
    from vsent.serve.app import Service

    names = {image_bytes(i): f"{i}.jpg" for i in range(9)}
    *request, later = names
    started: list[str] = []
    release = threading.Event()

    def held_explain(self, data, target):
        started.append(names[data])
        release.wait(timeout=120)  # a guard against a hang only: released once answered
        return "", False

    monkeypatch.setattr(Service, "_explain_sync", held_explain)
    # generous: decoding and scoring 8 tiny images takes ~0.1 s, so the first explain has
    # long started (and holds the thread) when the 3 s deadline passes
    config = ServeConfig(max_wait_ms=1, limits=Limits(timeout_s=3.0))
    with running_server(checkpoint, config) as s:
        try:
            r = post(s.url, [(names[d], d) for d in request], explain="true")
            assert r.status_code == 503 and "--timeout" in r.json()["detail"]
            assert started == ["0.jpg"]  # the image in progress; the others wait their turn
        finally:
            release.set()
        r = post(s.url, [(names[later], later)], explain="true")
        assert r.status_code == 200 and r.json()["results"][0]["error"] == ""
        assert started == ["0.jpg", "8.jpg"]  # none of 1.jpg..7.jpg, before or after it


# --------------------------------------------------------------------------------------------
# batching


def test_concurrent_requests_are_batched(checkpoint):
    n = 8
    imgs = [image_bytes(10 + i, tint=(1, 1 - 0.1 * i, 0.2 + 0.1 * i)) for i in range(n)]
    want = expected_probs(checkpoint, imgs)
    with running_server(checkpoint, ServeConfig(max_wait_ms=400, max_batch=32)) as s:
        barrier = threading.Barrier(n)
        got: dict[int, httpx.Response] = {}

        def client(i: int) -> None:
            with httpx.Client(timeout=60) as c:
                barrier.wait()
                got[i] = c.post(f"{s.url}/v1/predict",
                                files=[("files", (f"{i}.jpg", imgs[i], "image/jpeg"))])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(got[i].status_code == 200 for i in range(n))
        # each request got its own image's score back from the shared batch
        np.testing.assert_allclose([got[i].json()["results"][0]["prob_positive"]
                                    for i in range(n)], want, atol=1e-5)
        text = httpx.get(f"{s.url}/metrics").text
    batches = metric(text, "vsent_batch_size_count", crop="center")
    singles = metric(text, "vsent_batch_size_bucket", crop="center", le="1")
    assert metric(text, "vsent_batch_size_sum", crop="center") == n  # every image scored once
    assert batches - singles >= 1  # at least one forward pass served more than one image
    assert batches < n
    assert metric(text, "vsent_batch_requests_max", crop="center") > 1


def test_batcher_splits_requests_larger_than_a_batch():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    seen: list[int] = []

    def fn(a: np.ndarray) -> np.ndarray:
        seen.append(len(a))
        return a.reshape(len(a), -1)[:, :2].astype(np.float32)

    async def go() -> np.ndarray:
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(fn, pool, max_batch=3, max_wait_s=0.01)
            x = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
            out = await b.submit(x)
            await b.stop()
            return x, out, b.stats

    x, out, stats = asyncio.run(go())
    assert max(seen) <= 3 and sum(seen) == 7
    np.testing.assert_array_equal(out, x.reshape(7, -1)[:, :2])
    # what /metrics reports: every forward pass counted, each served the one request
    assert (stats.batches, stats.images) == (len(seen), 7)
    assert stats.sizes == {n: seen.count(n) for n in set(seen)}
    assert stats.requests_per_batch == {1: len(seen)} and stats.max_requests == 1


def test_forward_seconds_count_no_wait_for_the_other_batchers_pass():
    """The centre and 10-crop batchers share one model thread: a batch waiting there for the
    other's forward pass did count that wait as its own forward time (audit_serve27 #3)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    delay = 0.4

    def fn(a: np.ndarray) -> np.ndarray:
        time.sleep(delay)
        return np.zeros((len(a), 2), np.float32)

    async def go() -> list:
        with ThreadPoolExecutor(1) as pool:
            batchers = [MicroBatcher(fn, pool, max_batch=4, max_wait_s=0.001) for _ in range(2)]
            x = np.zeros((1, 2, 2, 3), np.uint8)
            await asyncio.gather(*(b.submit(x) for b in batchers))  # one waits for the other
            for b in batchers:
                await b.stop()
            return [b.stats for b in batchers]

    stats = asyncio.run(go())
    assert [s.batches for s in stats] == [1, 1]
    total = sum(s.seconds for s in stats)
    assert 2 * delay <= total < 2 * delay + 0.2  # two passes of `delay`, not 3 x delay


# --------------------------------------------------------------------------------------------
# model card, health, docs, the page


def test_model_card_health_docs_and_page(tmp_path):
    from importlib.metadata import version

    run = tmp_path / "run"
    ckpt = make_checkpoint(run / "fold1" / "model.pt")
    (run / "config.json").write_text(json.dumps({"data": "/data/twitter1", "subset": "five",
                                                 "init": "imagenet", "model": "smallcnn"}))
    summary = {"accuracy": {"mean": 0.8125, "std": 0.02}, "evaluation": "center",
               "folds": [{"fold": k} for k in range(1, 6)], "n_images": 880}
    (run / "summary.json").write_text(json.dumps(summary))
    argv = ["/home/me/.venv/bin/vsent", "finetune", "--data", "/data/twitter1", "--out", str(run)]
    (run / "versions.json").write_text(json.dumps({"torch": "2.0", "argv": argv, "resumed": [
        {"date": "2024-01-01", "argv": argv, "changed": {}}]}))
    with running_server(ckpt) as s:
        card = httpx.get(f"{s.url}/v1/model").json()
        # the run's command lines hold the server's folders: left out, as the paths above;
        # the versions are the checkpoint's, and the sessions that resumed the run stay
        assert card["versions"]["torch"] == version("torch") and "argv" not in card["versions"]
        assert card["versions"]["resumed"] == [{"date": "2024-01-01", "changed": {}}]
        assert str(run) not in json.dumps(card)
        assert card["model"]["name"] == "smallcnn" and card["checkpoint"] == "model.pt"
        assert card["preprocess"]["resize"] == 64 and card["preprocess"]["crop"] == 56
        assert card["metrics"]["accuracy"]["mean"] == 0.8125
        assert card["metrics"]["n_folds"] == 5
        assert card["training"]["dataset"] == "twitter1"  # the server's folders are not shown
        assert card["request_options"] == {"oversample": True, "explain": True, "regions": True}
        assert card["training"]["subset"] == "five" and card["training"]["fold"] == 1
        import vsent

        assert card["vsent_version"] == vsent.__version__
        assert httpx.get(f"{s.url}/healthz").json()["status"] == "ok"
        for path in ("/", "/healthz"):  # uptime checkers probe with HEAD
            assert httpx.head(f"{s.url}{path}").status_code == 200, path
        docs = httpx.get(f"{s.url}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        for path in ("/docs", "/redoc"):  # their scripts come from the service, not a CDN
            html = httpx.get(f"{s.url}{path}").text
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), path
            assets = re.findall(r"""(?:src|href)\s*=\s*["'](/[^"']+)""", html)
            assert any(a.endswith(".js") for a in assets), path
            for asset in assets:
                assert httpx.get(f"{s.url}{asset}").status_code == 200, (path, asset)
        spec = httpx.get(f"{s.url}/openapi.json").json()
        assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"][
            "content"]
        page = httpx.get(f"{s.url}/")
        assert page.status_code == 200 and 'id="file-input"' in page.text
        assert 'name="viewport"' in page.text  # phone screens
        for asset in ("/", "/static/app.js", "/static/style.css"):
            text = httpx.get(f"{s.url}{asset}").text
            assert httpx.get(f"{s.url}{asset}").status_code == 200
            # offline: nothing is fetched from another host
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), asset
            assert "@import" not in text and "cdn" not in text.lower(), asset


# --------------------------------------------------------------------------------------------
# the command


def test_cli_unloadable_model_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["serve", "--model", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vsent: error:") and str(bad) in err and "\n" not in err
    missing = tmp_path / "missing.pt"
    assert main(["serve", "--model", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"vsent: error: {missing}: no such file"
    assert main(["serve", "--model", str(bad), "--max-pixels", str(10**12)]) == 2
    assert "--max-pixels 1000000000000 is above the decoder's own limit" in capsys.readouterr().err
    assert main(["serve", "--model", str(bad), "--max-upload-mb", "inf"]) == 2
    assert capsys.readouterr().err.strip() == ("vsent: error: --max-upload-mb must be a finite "
                                               "number > 0, got inf")
    assert main(["serve", "--model", str(bad), "--max-upload-mb", "1e-7"]) == 2
    assert capsys.readouterr().err.strip() == ("vsent: error: --max-upload-mb 1e-07 is less than "
                                               "one byte (1 MB is 1048576 bytes)")  # as typed
    # one byte exactly is allowed: the checkpoint is what fails (mut59c C167)
    assert main(["serve", "--model", str(bad), "--max-upload-mb", str(1 / 2**20)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert main(["serve", "--model", str(bad), "--max-wait-ms", "inf"]) == 2  # would never batch
    assert capsys.readouterr().err.strip() == ("vsent: error: --max-wait-ms must be a finite "
                                               "number >= 0, got inf")


def test_cli_an_address_it_cannot_listen_on_is_one_line_exit_2(checkpoint, capsys):
    """Refused before the model loads, not logged by uvicorn after it (exit 3, no error line)."""
    assert main(["serve", "--model", str(checkpoint), "--host", "256.1.1.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vsent: error: --host 256.1.1.1:") and "\n" not in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(checkpoint), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vsent: error: cannot listen on 127.0.0.1:{port}:")


def test_cli_builds_the_app_from_its_options(checkpoint, monkeypatch, capsys):
    """``vsent serve`` loads the checkpoint, applies its limits and hands the app to uvicorn."""
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    assert main(["serve", "--model", str(checkpoint), "--port", "0", "--max-images", "3",
                 "--max-upload-mb", "0.5", "--timeout", "7", "--max-batch", "4"]) == 0
    # one line says what is served, and how
    device = calls[0]["app"].state.service.device  # cpu here, cuda where there is a GPU
    assert capsys.readouterr().err == (
        f"vsent serve: smallcnn from {checkpoint} on {device}; options oversample, explain, "
        "regions; "
        "limits: 0.5 MiB an image, 64 MiB a request, 40000000 pixels, 3 images, 7 s, 64 requests "
        "at once\n")
    (call,) = calls
    assert call["host"] == "127.0.0.1" and call["port"] == 0  # loopback unless told otherwise
    service = call["app"].state.service
    assert service.limits.max_images == 3 and service.limits.timeout_s == 7
    assert service.limits.max_upload_bytes == 512 * 1024 and service.config.max_batch == 4
    # left out, the batching settings are those the help states (5 ms; decoding threads: auto)
    assert (service.config.max_wait_ms, service.config.decode_workers) == (5.0, None)
    # and that app really serves the checkpoint
    server = uvicorn.Server(uvicorn.Config(call["app"], host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.02)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        data = image_bytes(3)
        r = post(url, [("a.jpg", data)])
        assert r.json()["results"][0]["prob_positive"] == pytest.approx(
            expected_probs(checkpoint, [data])[0], abs=1e-5)
        assert post(url, [("a.jpg", data)] * 4).status_code == 413
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    # an image limit above the request's is never reached: the banner says the one in force
    # (it said the other, robust39 #9)
    assert main(["serve", "--model", str(checkpoint), "--port", "0", "--max-upload-mb", "100",
                 "--max-request-mb", "10", "--max-pixels", "1000", "--max-inflight", "5",
                 "--max-wait-ms", "9", "--workers", "2"]) == 0
    assert ("limits: 10 MiB an image (the request's: --max-upload-mb 100 is above "
            "--max-request-mb), 10 MiB a request,") in capsys.readouterr().err
    service = calls[-1]["app"].state.service  # each option reaches the service (mut54a)
    assert (service.limits.max_request_bytes, service.limits.max_pixels,
            service.limits.max_inflight, service.config.max_wait_ms,
            service.config.decode_workers) == (10 * 1024 * 1024, 1000, 5, 9.0, 2)
    # the port the help states, and an exported model loaded on the --device asked (mut54a
    # S30, S44: "auto" would take a GPU for a service told to stay on the CPU)
    from vsent.cli import build_parser
    from vsent.export import ExportedPredictor

    assert build_parser().parse_args(["serve", "--model", "m"]).port == 8000
    loaded = []

    def from_file(model, **kw):
        loaded.append(kw)
        raise VsentError("stop here")

    monkeypatch.setattr(ExportedPredictor, "from_file", from_file)
    assert main(["serve", "--model", "m.onnx", "--engine", "onnx", "--device", "cpu",
                 "--max-batch", "4"]) == 2
    assert loaded == [{"device": "cpu", "batch_size": 4}]


# --------------------------------------------------------------------------------------------
# an exported model (--engine onnx)


def test_onnx_export_served_gives_the_checkpoints_scores_and_card(checkpoint, tmp_path):
    from vsent.export import ExportedPredictor, export_model
    from vsent.models.card import model_card as card_of

    onnx_file = tmp_path / "m.onnx"
    export_model(checkpoint, onnx_file)
    imgs = [("a.jpg", image_bytes(1, tint=(1, 0.6, 0.3))), ("b.png", image_bytes(2, fmt="PNG"))]
    want = expected_probs(checkpoint, [d for _, d in imgs])
    predictor = ExportedPredictor.from_file(onnx_file, device="cpu")
    with running_server(onnx_file, predictor=predictor) as s:
        r = post(s.url, imgs)
        assert r.status_code == 200
        got = [row["prob_positive"] for row in r.json()["results"]]
        np.testing.assert_allclose(got, want, atol=1e-4)
        card = httpx.get(f"{s.url}/v1/model").json()
        assert card["engine"] == "onnx" and card["checkpoint"] == "model.pt"
        ref = card_of(checkpoint)
        assert card["model"] == ref["model"] and card["preprocess"] == ref["preprocess"]
        r = post(s.url, imgs[:1], explain="true")
        assert r.status_code == 422 and "exported model" in r.json()["detail"]


def test_cli_serve_refuses_region_settings_for_a_model_that_serves_no_regions(
        checkpoint, tmp_path, monkeypatch, capsys):
    """review37b #8: `serve --engine onnx --k 5` took the setting silently (an export serves
    no regions), where predict refuses options of a mode that is off."""
    from vsent.export import export_model

    onnx_file = tmp_path / "m.onnx"
    export_model(checkpoint, onnx_file)
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    capsys.readouterr()
    assert main(["serve", "--engine", "onnx", "--model", str(onnx_file), "--port", "0",
                 "--k", "5", "--senti-log", "natural"]) == 2
    assert capsys.readouterr().err == (
        "vsent: error: --k, --senti-log: this model serves no regions (an export or a "
        "late-fused model), so the setting would be ignored\n")
    assert main(["serve", "--engine", "onnx", "--model", str(onnx_file), "--port", "0"]) == 0
    assert len(calls) == 1


def test_an_export_of_nan_weights_served_fails_each_entry_not_the_response(tmp_path):
    """The export of test_export's NaN weights, written with --no-verify: every image's entry
    says non-finite scores (as predict's rows do), in a JSON answer counted as it was sent."""
    from vsent.export import ExportedPredictor

    model = create_model("smallcnn")
    with torch.no_grad():
        next(p for p in model.parameters() if p.ndim > 1).view(-1)[0] = float("nan")
    ckpt = save_checkpoint(tmp_path / "nan.pt", model)
    out = tmp_path / "nan.onnx"
    assert main(["export", "--model", str(ckpt), "--out", str(out), "--no-verify"]) == 0
    with running_server(out, predictor=ExportedPredictor.from_file(out, device="cpu")) as s:
        r = post(s.url, [("a.jpg", image_bytes(1)), ("b.jpg", image_bytes(2))])
        assert r.status_code == 500
        assert [row["error"] for row in r.json()["results"]] == [
            f"{n} (part {i}): non-finite scores (the model's weights hold NaN/inf?)"
            for i, n in ((1, "a.jpg"), (2, "b.jpg"))]
        assert all(row["prob_positive"] is None for row in r.json()["results"])
        metrics = httpx.get(f"{s.url}/metrics").text
    assert metric(metrics, "vsent_requests_total", status="500") == 1
    assert metric(metrics, "vsent_requests_total", status="200") == 0


def test_cli_an_export_onnxruntime_cannot_load_stops_at_start_up(checkpoint, tmp_path,
                                                                  monkeypatch, capsys):
    """Loaded at start-up, not on the first request: one line and exit 2, never a server whose
    every answer is a 500."""
    onnx = pytest.importorskip("onnx")
    from vsent.export import export_model

    export_model(checkpoint, tmp_path / "good.onnx")
    proto = onnx.load(str(tmp_path / "good.onnx"))
    proto.opset_import[0].version = 99  # written by a newer stack than this onnxruntime
    newer = tmp_path / "newer.onnx"
    onnx.save(proto, str(newer))
    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    assert main(["serve", "--engine", "onnx", "--model", str(newer), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vsent: error: {newer}: onnxruntime cannot load it (")
    assert err.count("\n") == 1 and calls == []
    # a good one: the start-up line names the onnxruntime provider that runs it
    good = tmp_path / "good.onnx"
    assert main(["serve", "--engine", "onnx", "--model", str(good), "--port", "0",
                 "--device", "cpu"]) == 0
    assert len(calls) == 1
    assert f"smallcnn from {good} on cpu (onnxruntime CPUExecutionProvider); options " \
        "oversample; limits" in capsys.readouterr().err


def test_uptime_counts_from_when_the_server_starts_serving(checkpoint, monkeypatch):
    """uptime_s counts from the start of serving (the lifespan), not from create_app. The
    app's clock is one the test moves: it used to sleep 1 s and bound the uptime by 1 s of
    real time, which a slow start-up on a loaded machine could exceed with no bug present."""
    import types

    from fastapi.testclient import TestClient

    import vsent.serve.app as app_module

    now = [1000.0]
    clock = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time)
                                     if not k.startswith("_")})
    clock.monotonic = lambda: now[0]
    monkeypatch.setattr(app_module, "time", clock)  # the app's module alone: not the loop's
    app = create_app(Predictor.from_checkpoint(checkpoint, device="cpu"), checkpoint=checkpoint)
    now[0] += 500.0  # what comes between building the app and serving (uvicorn's start-up)
    with TestClient(app) as client:  # runs the lifespan, as uvicorn does
        now[0] += 2.5
        assert client.get("/healthz").json()["uptime_s"] == 2.5


def test_the_model_card_shows_no_folder_of_the_server(tmp_path):
    """The data, a weights file it started from and the run's command lines are the server's
    business: /v1/model names files, never their folders, for a checkpoint and an export."""
    from vsent.export import ExportedPredictor, export_metadata, export_model, export_module
    from vsent.models.card import model_card as card_of
    from vsent.serve.app import served_card

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run" / "model.pt", create_model("smallcnn"),
                           init=str(tmp_path / "weights" / "start.pt"),
                           data=str(tmp_path / "data" / "twitter1"), fold=2,
                           folds=str(tmp_path / "runs" / "q" / "folds.json"))  # --folds PATH
    card = served_card(ckpt, Predictor.from_checkpoint(ckpt, device="cpu"))
    ts = tmp_path / "exports" / "m.ts"
    export_model(ckpt, ts, format="torchscript")
    exported = served_card(ts, ExportedPredictor.from_file(ts, device="cpu"))
    for served in (card, exported):
        assert str(tmp_path) not in json.dumps(served)
        assert served["weights"]["init"] == served["weights"]["location"] == "start.pt"
        assert served["training"]["dataset"] == "twitter1"
        assert served["training"]["folds"] == "folds.json" and served["training"]["fold"] == 2
    assert card_of(ckpt)["weights"]["location"] == str(tmp_path / "weights" / "start.pt")
    assert exported["checkpoint"] == "model.pt" and exported["engine"] == "torchscript"
    assert exported["export"] == {"file": "m.ts", "engine": "torchscript",
                                  "format": "vsent-export/1"}
    # named split schemes stay as they are
    named = save_checkpoint(tmp_path / "named.pt", create_model("smallcnn"), fold=1,
                            folds="campos")
    assert served_card(named, Predictor.from_checkpoint(named, device="cpu"))["training"][
        "folds"] == "campos"
    # an export written without a stored card (export_module: e.g. a zero-shot model)
    model = create_model("smallcnn")
    bare = tmp_path / "secret_folder" / "nocard.ts"
    export_module(model, bare, metadata=export_metadata(model, {}), format="torchscript")
    served = served_card(bare, ExportedPredictor.from_file(bare, device="cpu"))
    assert str(tmp_path) not in json.dumps(served)
    assert served["checkpoint"] is None and served["engine"] == "torchscript"
    assert served["export"]["file"] == "nocard.ts" and served["model"]["name"] == "smallcnn"


def test_the_package_docstring_names_only_arguments_create_app_takes():
    """vsent.serve's docstring showed a ``meta=`` that create_app refuses (audit_serve27 #9)."""
    import inspect

    import vsent.serve

    shown = re.search(r"``create_app\((.*?)\)``", vsent.serve.__doc__, re.S).group(1)
    keywords = set(re.findall(r"(\w+)=", shown))
    assert keywords and keywords <= set(inspect.signature(create_app).parameters)


def test_cli_serve_takes_the_regions_settings_of_predict_regions(checkpoint, monkeypatch,
                                                                 capsys):
    """prac37 #9: serve had no --k/--alpha/--beta/--n-proposals/--senti-log, so its regions
    rows could not be those of `predict --regions` with other settings."""
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    assert main(["serve", "--model", str(checkpoint), "--port", "0", "--k", "5",
                 "--alpha", "2", "--beta", "1", "--n-proposals", "30",
                 "--senti-log", "natural"]) == 0
    config = calls[0]["app"].state.service.config
    assert (config.k, config.alpha, config.beta, config.n_proposals, config.senti_log) == (
        5, 2.0, 1.0, 30, "natural")
    capsys.readouterr()
    assert main(["serve", "--model", str(checkpoint), "--port", "0", "--k", "50",
                 "--n-proposals", "30"]) == 2  # refused as predict --regions refuses it
    assert "--k (50) must be <= --n-proposals (30)" in capsys.readouterr().err


# mutation round 43b (mut43b): tests that kill mutants the suite missed


# --------------------------------------------------------------------------------------------
# mutation testing (mut43b): micro-batches of several requests, limits at their bounds


def _run_batcher(fn, requests, *, max_batch, max_wait_s, timeout=10.0, late=None):
    """Submit ``requests`` (uint8 arrays) together to one MicroBatcher over ``fn``; returns
    (each request's result or exception, the batcher). ``late``: (array, seconds) submitted
    that long after the others. Bounded by ``timeout``: a request never answered fails."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(fn, pool, max_batch=max_batch, max_wait_s=max_wait_s)
            jobs = [b.submit(x) for x in requests]
            if late is not None:
                async def later():
                    await asyncio.sleep(late[1])
                    return await b.submit(late[0])
                jobs.append(later())
            try:
                out = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True),
                                             timeout)
            finally:
                await b.stop()
            return out, b

    return asyncio.run(go())


def _images(first: int, n: int) -> np.ndarray:
    """n uint8 (2, 2, 3) images whose first pixel value is first, first + 1, ..."""
    x = np.zeros((n, 2, 2, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(first, first + n)
    return x


def _first_pixels(seen: list):
    """A model whose two scores of an image are its first pixel value and its negative, and
    that records the first pixels of every batch it is given."""
    def fn(a: np.ndarray) -> np.ndarray:
        seen.append(a[:, 0, 0, 0].tolist())
        v = a[:, 0, 0, 0].astype(np.float32)
        return np.stack([v, -v], axis=1)
    return fn


def test_requests_fill_a_batch_exactly_and_one_that_does_not_fit_waits_for_the_next():
    """mut43b SV07, SV08, SV09, SV10, SV15: requests of 2 and 2 images fill a batch of 4 (one
    forward pass); then 3 images run, and 2 that do not fit beside them are held for the next
    batch (never lost); each request gets its own rows back, in order; no image stays counted
    as queued."""
    seen: list = []
    reqs = [_images(10, 2), _images(20, 2), _images(30, 3), _images(40, 2), _images(50, 1)]
    out, b = _run_batcher(_first_pixels(seen), reqs, max_batch=4, max_wait_s=0.05)
    assert seen == [[10, 11, 20, 21], [30, 31, 32], [40, 41, 50]]
    for x, got in zip(reqs, out, strict=True):
        v = x[:, 0, 0, 0].astype(np.float32)
        np.testing.assert_array_equal(got, np.stack([v, -v], axis=1))
    assert b.stats.sizes == {4: 1, 3: 2} and b.stats.requests_per_batch == {2: 2, 1: 1}
    assert b.queued_images == 0


def test_with_no_wait_a_batch_still_takes_the_requests_already_queued():
    """mut54g B27, B30: max_wait_s 0 adds no wait, but the requests already queued (three
    submitted together) still share a batch, up to max_batch images counted image by image
    (2 + 2 fill a batch of 4; the request of 1 image does not fit beside them)."""
    seen: list = []
    reqs = [_images(10, 2), _images(20, 2), _images(30, 1)]
    out, b = _run_batcher(_first_pixels(seen), reqs, max_batch=4, max_wait_s=0)
    assert seen == [[10, 11, 20, 21], [30]]
    assert [got[:, 0].tolist() for got in out] == [[10.0, 11.0], [20.0, 21.0], [30.0]]
    assert b.stats.sizes == {4: 1, 1: 1}


def test_a_full_batch_runs_at_once_without_waiting_for_company():
    """mut43b SV06: max_batch images are a full batch: it runs now, not after max_wait_s (an
    hour here; the 10 s bound fails the test)."""
    seen: list = []
    t0 = time.monotonic()
    out, _ = _run_batcher(_first_pixels(seen), [_images(0, 4)], max_batch=4, max_wait_s=3600)
    assert seen == [[0, 1, 2, 3]] and out[0].shape == (4, 2)
    assert time.monotonic() - t0 < 10


def test_a_failed_forward_pass_fails_every_request_of_its_batch():
    """mut43b SV12: the model's exception reaches each request of the batch (not the first
    alone, the others waiting for ever); the next batch runs."""
    calls: list = []

    def fn(a: np.ndarray) -> np.ndarray:
        calls.append(len(a))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((len(a), 2), np.float32)

    out, b = _run_batcher(fn, [_images(0, 1), _images(1, 2)], max_batch=4, max_wait_s=0.05,
                          late=(_images(3, 1), 1.0))
    assert calls == [3, 1]
    assert [type(r) for r in out[:2]] == [RuntimeError, RuntimeError]
    assert out[2].shape == (1, 2) and b.stats.batches == 1


def test_a_request_that_gave_up_is_not_scored_nor_counted():
    """mut43b SV11, SV13: a request that timed out before its batch ran (its futures
    cancelled) is left out of the forward pass and of the batch's request count."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    seen: list = []

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(_first_pixels(seen), pool, max_batch=8, max_wait_s=1.0)
            with pytest.raises(TimeoutError):  # gives up while the batch waits for company
                await asyncio.wait_for(b.submit(_images(0, 2)), 0.05)
            got = await asyncio.wait_for(b.submit(_images(5, 1)), 10)
            await b.stop()
            return got, b.stats

    got, stats = asyncio.run(go())
    assert seen == [[5]] and got.tolist() == [[5.0, -5.0]]
    assert (stats.images, stats.requests_per_batch) == (1, {1: 1})


def test_a_batcher_of_no_images_per_batch_is_refused():
    """mut43b SV03: max_batch 0 is refused when the batcher is built (it failed in every
    request instead: range() with step 0)."""
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
            MicroBatcher(lambda a: a, pool, max_batch=0)
        assert MicroBatcher(lambda a: a, pool, max_batch=1).max_batch == 1
        # mut54g B44: not given, the batcher's settings are the service's defaults (32, 5 ms)
        b = MicroBatcher(lambda a: a, pool)
        assert (b.max_batch, b.max_wait_s) == (32, 0.005)


def test_a_batcher_refuses_a_request_of_no_images():
    """mut48f B06: a request of no images got scores of shape (0, 2) whatever the model's
    number of classes (the batcher does not know it); the service never sends one: refused."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    async def submit_none():
        b = MicroBatcher(lambda a: a, pool, max_batch=2)
        try:
            await b.submit(np.zeros((0, 4, 4, 3), np.uint8))
        finally:
            await b.stop()

    with ThreadPoolExecutor(1) as pool, \
            pytest.raises(ValueError, match="^submit needs at least one image$"):
        asyncio.run(submit_none())


def test_limits_defaults_are_the_documented_ones():
    """mut43b SV23, SV24, SV25: the defaults the Limits docstring gives: 20 MiB per upload,
    64 MiB per request, 40 M pixels, 32 images, 30 s, 64 requests in flight."""
    assert Limits().to_dict() == {"max_upload_bytes": 20 * 2**20, "max_request_bytes": 64 * 2**20,
                                  "max_pixels": 40_000_000, "max_images": 32, "timeout_s": 30.0,
                                  "max_inflight": 64}


def test_max_pixels_may_be_the_decoders_own_limit_and_an_image_of_exactly_it_passes():
    """mut43b SV20, SV21: --max-pixels equal to vsent.data.images.MAX_PIXELS is allowed (one
    more is not), and an image of exactly max_pixels pixels passes (one pixel more is 413)."""
    from conftest import png_header_only
    from vsent.data.images import MAX_PIXELS
    from vsent.serve.limits import TooLarge, check_pixels

    assert Limits(max_pixels=MAX_PIXELS).max_pixels == MAX_PIXELS
    with pytest.raises(VsentError, match="is above the decoder's own limit"):
        Limits(max_pixels=MAX_PIXELS + 1)
    check_pixels(png_header_only(100, 50), 5000, "x.png")
    with pytest.raises(TooLarge, match=r"x\.png: image has 101x50 pixels, above the limit of "
                                       r"5000 \(--max-pixels\)"):
        check_pixels(png_header_only(101, 50), 5000, "x.png")


def test_check_pixels_refuses_a_bomb_warning_turned_error():
    """mut43b SV22: while the decoder's thread has PIL's bomb warning turned into an error (its
    process-wide filter), an image above PIL's limit raises the warning: a 413 naming the
    pixels, not an image let through as "not identifiable"."""
    import warnings

    from PIL import Image

    from conftest import png_header_only
    from vsent.serve.limits import TooLarge, check_pixels

    bomb = png_header_only(10_000, 10_000)  # above PIL's 89 M, below twice that: a warning
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(TooLarge) as info:
            check_pixels(bomb, 40_000_000, "b.png")
    assert str(info.value) == ("b.png: image has 100000000 pixels, above the limit of 40000000 "
                               "(--max-pixels)")


# --------------------------------------------------------------------------------------------
# clients that leave, names in the log, option values, shutdown


def test_a_client_that_leaves_after_its_upload_stops_its_per_image_work(checkpoint, monkeypatch,
                                                                        caplog):
    """review44 #1: a client that disconnects after its upload (a closed tab, a client's own
    timeout) kept the one per-image thread for every image it had sent, in front of every
    other client's explain, and was counted as a 200. Its request is stopped when the
    disconnect is seen (at most the image in progress finishes) and counted as 499."""
    from vsent.serve.app import Service

    names = {image_bytes(i): f"{i}.jpg" for i in range(5)}
    *request, later = names
    started: list[str] = []
    release = threading.Event()

    def held_explain(self, data, target):
        started.append(names[data])
        release.wait(timeout=120)  # a guard against a hang only
        return "", False

    monkeypatch.setattr(Service, "_explain_sync", held_explain)
    body = b"".join(_part(names[d].encode(), d) for d in request)
    body += (b"--b\r\nContent-Disposition: form-data; name=\"explain\"\r\n\r\ntrue\r\n"
             b"--b--\r\n")
    with running_server(checkpoint, ServeConfig(max_wait_ms=1)) as s, \
            caplog.at_level("INFO", logger="vsent"):
        port = int(s.url.rsplit(":", 1)[1])
        try:
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/"
                          b"form-data; boundary=b\r\nContent-Length: " + str(len(body)).encode()
                          + b"\r\n\r\n" + body)
                deadline = time.monotonic() + 20
                while not started:
                    assert time.monotonic() < deadline, "the first explain never started"
                    time.sleep(0.02)
            deadline = time.monotonic() + 5  # the service notices the closed connection
            while metric(httpx.get(f"{s.url}/metrics").text, "vsent_requests_total",
                         status="499") < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            release.set()
        r = post(s.url, [(names[later], later)], explain="true")
        assert r.status_code == 200
        assert started == ["0.jpg", "4.jpg"]  # none of 1.jpg..3.jpg: nobody waits for them
        metrics = httpx.get(f"{s.url}/metrics").text
        assert metric(metrics, "vsent_requests_total", status="499") == 1
        assert metric(metrics, "vsent_requests_total", status="200") == 1
    # mut54g A83: the log says when the client left (after its upload, not during it)
    assert "POST /v1/predict: the client disconnected before its answer" in caplog.text


def test_a_file_name_cannot_write_lines_into_the_servers_log(server, caplog):
    """review44 #2: a file name is the client's text; a line feed in it (the multipart parser
    keeps it) wrote a line of the client's choosing into the server's log, e.g. a forged
    access line. The log shows it escaped; the answer keeps the name as sent."""
    name = b"a.txt\nINFO:     10.0.0.1:1 - \"GET /admin HTTP/1.1\" 200 OK"
    body = _part(name, b"not an image") + b"--b--\r\n"
    with caplog.at_level("INFO", logger="vsent"):
        r = httpx.post(f"{server.url}/v1/predict", content=body,
                       headers={"content-type": "multipart/form-data; boundary=b"})
        cut = httpx.post(f"{server.url}/v1/predict", content=_part(name, b"xx"),
                         headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 422 and r.json()["results"][0]["name"] == name.decode()
    assert cut.status_code == 422
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "vsent"]
    assert len(logged) == 2
    assert all("\n" not in line for line in logged), logged
    assert "a.txt\\nINFO:" in logged[0]


def test_a_cut_bodys_file_is_numbered_as_the_images_are(server):
    """review44 #3: "part N" counted the files only in an image's message, every part in a cut
    body's: with an option sent first (as httpx, requests and curl -F explain=true -F
    files=@... send it), one body called the second file part 2 in one message and part 3 in
    the other. Both count the files."""
    head = (b"--b\r\nContent-Disposition: form-data; name=\"oversample\"\r\n\r\n"
            b"false\r\n")
    headers = {"content-type": "multipart/form-data; boundary=b"}
    r = httpx.post(f"{server.url}/v1/predict", headers=headers,
                   content=head + _part(b"a.jpg", image_bytes(1))
                   + _part(b"notes.txt", b"hello") + b"--b--\r\n")
    assert r.status_code == 200
    assert r.json()["results"][1]["error"] == "notes.txt (part 2): cannot identify image file"
    r = httpx.post(f"{server.url}/v1/predict", headers=headers,
                   content=head + _part(b"a.jpg", image_bytes(1)) + _part(b"notes.txt", b"he"))
    assert r.status_code == 422
    assert r.json()["detail"] == ("malformed multipart body: it ends before its closing "
                                  "boundary (part 2, notes.txt, incomplete)")


def test_an_option_without_a_value_is_refused_not_taken_for_false(server):
    """review44 #4: ``?explain`` (a flag without a value, as many APIs take it) and an empty
    form field were read as false: a request for a heat map was answered without one. An
    option says true or false (422 otherwise, as for any value it cannot read)."""
    files = [("files", ("a.jpg", image_bytes(1), "image/jpeg"))]
    for query, data in (("?explain", {}), ("?explain=", {}), ("", {"explain": ""})):
        r = httpx.post(f"{server.url}/v1/predict{query}", files=files, data=data)
        assert r.status_code == 422, (query, data, r.json())
        assert r.json()["detail"] == "option 'explain': expected true or false, got ''"
    r = httpx.post(f"{server.url}/v1/predict?explain=false", files=files)
    assert r.status_code == 200 and "heatmap" not in r.json()["results"][0]


def test_a_timeout_of_infinite_seconds_is_refused():
    """review44 #5: --timeout inf was taken (no deadline at all), and GET /v1/model then said
    "timeout_s": null; --max-wait-ms and the size limits refuse a value that is not finite."""
    with pytest.raises(VsentError, match=r"--timeout must be a finite number of seconds, "
                                         r"got inf"):
        Limits(timeout_s=float("inf"))


def test_stopping_a_batcher_fails_the_requests_it_holds():
    """review44 #6: stop() cancelled the collector and left the requests it held (queued, or
    in the batch being gathered) waiting for ever: their clients hung until their deadline,
    then were told to retry a service that was gone. They fail at once (503 in the service)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(_first_pixels([]), pool, max_batch=8, max_wait_s=600)
            waiting = [asyncio.ensure_future(b.submit(_images(i, 1))) for i in range(3)]
            await asyncio.sleep(0.1)  # the collector holds the first, waits for company
            await b.stop()
            done, pending = await asyncio.wait(waiting, timeout=5)
            for fut in pending:
                fut.cancel()
            return [f.exception() for f in done], len(pending)

    errors, hung = asyncio.run(go())
    assert hung == 0, f"{hung} of 3 requests still waiting after stop()"
    assert all(isinstance(e, RuntimeError) and "stopped" in str(e) for e in errors), errors


def test_stopping_a_batcher_fails_a_request_whose_first_part_is_answered_already():
    """mut54g B37: a request split in two parts, its first part answered and its second in
    the forward pass when the batcher stops: stop() fails the second part (the first holds
    its answer, it cannot take an exception) and returns; the request gets BatcherStopped."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import BatcherStopped, MicroBatcher

    calls: list = []
    hold = threading.Event()

    def fn(a: np.ndarray) -> np.ndarray:
        calls.append(len(a))
        if len(calls) == 2:
            hold.wait(10)  # a guard only: released once the batcher has stopped
        return np.zeros((len(a), 2), np.float32)

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(fn, pool, max_batch=1, max_wait_s=0)
            request = asyncio.ensure_future(b.submit(_images(0, 2)))
            while len(calls) < 2:  # the first part is answered, the second runs
                await asyncio.sleep(0.005)
            try:
                await b.stop()
            finally:
                hold.set()
            with pytest.raises(BatcherStopped, match="the batcher was stopped"):
                await asyncio.wait_for(request, 5)

    asyncio.run(go())
    assert calls == [1, 1]


def test_a_long_text_part_is_named_not_called_a_malformed_body(server):
    """review44 #7: an image sent as text (curl -F "files=<photo.jpg", '<' for '@') got the
    helpful "'files' holds text" answer below 1 MiB, and "malformed multipart body: Part
    exceeded maximum size of 1024KB." (Starlette's bound on a text part) above it, which names
    neither the part nor the mistake; and an option's value was echoed whole (up to 1 MiB) in
    the answer and in the server's log line."""
    big = image_bytes(1, (800, 800), fmt="PNG")
    assert len(big) > 1 << 20
    r = httpx.post(f"{server.url}/v1/predict", files={"files": (None, big)})
    assert r.status_code == 422 and "'files' holds text, not a file" in r.json()["detail"]
    files = [("files", ("a.jpg", image_bytes(1), "image/jpeg"))]
    r = httpx.post(f"{server.url}/v1/predict", files=files, data={"explain": "y" * (2 << 20)})
    assert r.status_code == 422 and r.json()["detail"] == (  # (mut48f A25: 1024 KiB)
        "the field 'explain' holds more than 1024 KiB of text: an option is true or false")
    r = httpx.post(f"{server.url}/v1/predict", files=files, data={"explain": "y" * 500_000})
    assert r.status_code == 422 and r.json()["detail"].startswith("option 'explain': expected "
                                                                  "true or false, got 'yyy")
    assert len(r.text) < 1000


def _unfinished(body: bytes) -> str | None:
    """What the multipart parser says is unfinished in ``body`` (one chunk; boundary b)."""
    import asyncio

    from starlette.datastructures import Headers

    from vsent.serve.app import _WholeBodyParser

    async def go() -> str | None:
        async def stream():
            yield body
        parser = _WholeBodyParser(Headers({"content-type": "multipart/form-data; boundary=b"}),
                                  stream())
        await (await parser.parse()).close()
        return parser.unfinished()

    return asyncio.run(go())


def test_a_cut_bodys_last_part_is_named_as_the_images_are():
    """review44d: "files numbered alike in every message" held for an incomplete file only:
    a body cut after a part, or in a part's headers, numbered every part, options included
    (httpx, requests and curl -F send them first): a body with one image said "part 3"."""
    option = b"--b\r\nContent-Disposition: form-data; name=\"explain\"\r\n\r\ntrue\r\n"
    head = option + _part(b"a.jpg", image_bytes(1))
    assert _unfinished(head + b"--b\r\nContent-Disp") == (
        "the part after a.jpg (part 1), cut in its headers")
    assert _unfinished(option + b"--b\r\n") == (
        "the part after the field 'explain', cut in its headers")
    assert _unfinished(b"--b\r\nContent-Disp") == "its first part, cut in its headers"


def test_an_answer_ready_as_its_client_leaves_is_not_also_counted_as_a_499():
    """review44d: the work's answer and the disconnect arriving in one event-loop turn: the
    work finished anyway (Python 3.11's wait_for returns a result that is in when it is
    cancelled; _predict had counted its images) and the request was still a 499, whose images
    /metrics says it does not count."""
    import asyncio

    from vsent.serve.app import _unless_client_leaves

    class Request:
        def __init__(self, ev):
            self.ev = ev

        async def receive(self):
            await self.ev.wait()
            return {"type": "http.disconnect"}

    async def go():
        ev, counted = asyncio.Event(), []

        async def predict():  # as Service._predict: counts its images, then answers
            await ev.wait()
            counted.append(1)
            return 200, {}

        asyncio.get_running_loop().call_later(0.01, ev.set)
        answer = await _unless_client_leaves(Request(ev), asyncio.wait_for(predict(), 10))
        return answer, counted

    assert asyncio.run(go()) == ((200, {}), [1])


# mutation round 46 (mut46b): vsent.serve.app mutants the suite missed


def test_metrics_histogram_is_cumulative_with_its_totals(checkpoint):
    """mut46b A83, A84, A85, A86: vsent_batch_size is a Prometheus histogram: bucket ``le``
    counts the batches of at most ``le`` images (cumulative), +Inf and _count count every
    batch, _sum the images; the forward seconds and the most requests of one pass are per
    crop; the queued images are those of both crops."""
    from vsent.serve.app import Service

    service = Service(Predictor.from_checkpoint(checkpoint, device="cpu"))
    try:
        service.batchers[False].stats.add(1, 1, 0.5)
        service.batchers[False].stats.add(2, 2, 0.25)
        service.batchers[False].stats.add(5, 1, 0.125)
        service.batchers[False].queued_images, service.batchers[True].queued_images = 1, 2
        text = service.metrics_text()
    finally:
        service.close()
    center = {le: metric(text, "vsent_batch_size_bucket", crop="center", le=le)
              for le in ("1", "2", "4", "8", "+Inf")}
    assert center == {"1": 1, "2": 2, "4": 2, "8": 3, "+Inf": 3}
    assert metric(text, "vsent_batch_size_sum", crop="center") == 8
    assert metric(text, "vsent_batch_size_count", crop="center") == 3
    assert metric(text, "vsent_forward_seconds_total", crop="center") == 0.875
    assert metric(text, "vsent_batch_requests_max", crop="center") == 2
    assert metric(text, "vsent_batch_requests_max", crop="ten_crop") == 0
    assert 'vsent_batch_requests_max{crop="ten_crop"} 0' in text.splitlines()
    assert metric(text, "vsent_queued_images") == 3


def test_the_batchers_take_the_services_batch_settings(checkpoint):
    """mut46b A23, A24: --max-batch and --max-wait-ms (milliseconds) reach both batchers
    (mut59h H92: and their predictors: a batch is one forward pass)."""
    from vsent.serve.app import Service

    service = Service(Predictor.from_checkpoint(checkpoint, device="cpu"),
                      config=ServeConfig(max_batch=33, max_wait_ms=250))
    calls: list[int] = []
    hook = service.model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    try:
        assert [(b.max_batch, b.max_wait_s) for b in service.batchers.values()] == \
            [(33, 0.25)] * 2
        # a batch above the predictor's own default of 32 images is still one forward pass
        size = service.predictors[False].size
        service.batchers[False].fn(np.zeros((33, size, size, 3), np.uint8))
        assert calls == [33]
    finally:
        hook.remove()
        service.close()


def test_the_card_of_a_model_built_in_python_is_what_the_model_says():
    """mut46b A08, A09, A10: served without a checkpoint, GET /v1/model describes the model
    itself: its name and classes (not repeated among its options) and its preprocessing."""
    import vsent
    from vsent.serve.app import served_card

    model = create_model("smallcnn")
    card = served_card(None, Predictor(model, device="cpu"))
    assert card["checkpoint"] is None and card["weights"] is None and card["metrics"] is None
    assert card["model"] == {"name": "smallcnn", "num_classes": 2,
                             "class_names": ["negative", "positive"], "options": {}}
    assert card["preprocess"] == model.info.preprocess.to_dict()
    assert card["preprocess"]["resize"] == 64 and card["vsent_version"] == vsent.__version__


def test_options_take_every_documented_spelling_of_true_and_false(server):
    """mut46b A101, A102, A103, A104: README: an option is true or false, "also 1/0, yes/no,
    on/off"; its case and surrounding spaces do not matter."""
    files = [("files", ("a.jpg", image_bytes(1), "image/jpeg"))]
    for value, heatmap in (("1", True), ("yes", True), ("on", True), (" TRUE ", True),
                           ("0", False), ("no", False), ("off", False), ("False", False)):
        r = httpx.post(f"{server.url}/v1/predict", files=files, data={"explain": value})
        assert r.status_code == 200, (value, r.json())
        assert ("heatmap" in r.json()["results"][0]) is heatmap, value


def test_a_bad_option_value_is_shown_up_to_40_characters(server):
    """mut46b A105, A106: the answer repeats at most SHOWN_VALUE (40) characters of a bad
    value: one of exactly 40 whole, a longer one cut there and marked."""
    files = [("files", ("a.jpg", image_bytes(1), "image/jpeg"))]
    for value, shown in (("x" * 40, "x" * 40), ("y" * 41, "y" * 40 + "...")):
        r = httpx.post(f"{server.url}/v1/predict", files=files, data={"explain": value})
        assert r.status_code == 422
        assert r.json()["detail"] == f"option 'explain': expected true or false, got {shown!r}"


def test_an_upload_without_a_file_name_is_named_by_its_number(server):
    """mut46b A96: a file part whose name is empty is "image N" in its entry and messages."""
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"\"\r\n\r\n"
            + image_bytes(1) + b"\r\n" + _part(b"", b"not an image") + b"--b--\r\n")
    r = httpx.post(f"{server.url}/v1/predict", content=body,
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 200
    rows = r.json()["results"]
    assert [row["name"] for row in rows] == ["image 1", "image 2"]
    assert rows[0]["error"] == "" and rows[1]["error"] == ("image 2 (part 2): cannot identify "
                                                           "image file")


def test_an_announced_body_above_the_limit_is_refused_before_it_is_read(checkpoint):
    """mut46b A52, A53, A59: a Content-Length above --max-request-mb is refused from the header,
    naming the size (the body is not read); the other refusals name what was sent."""
    config = ServeConfig(limits=Limits(max_request_bytes=1000))
    with running_server(checkpoint, config) as s:
        url = f"{s.url}/v1/predict"
        r = httpx.post(url, content=_part(b"a.jpg", image_bytes(1)) + b"--b--\r\n",
                       headers={"content-type": "multipart/form-data; boundary=b"})
        size = int(r.request.headers["content-length"])
        assert r.status_code == 413 and r.json()["detail"] == (
            f"request of {size} bytes is above the limit of 1000 (--max-request-mb)")
        r = httpx.post(url, content=b"x")
        assert r.status_code == 415 and r.json()["detail"].endswith(
            "got content type 'none'")
    with running_server(checkpoint) as s:
        r = httpx.post(f"{s.url}/v1/predict", data={"explain": "y" * (2 << 20)},
                       files=[("files", ("a.jpg", image_bytes(1), "image/jpeg"))])
        assert r.status_code == 422 and r.json()["detail"] == (
            "the field 'explain' holds more than 1024 KiB of text: an option is true or false")


def test_a_request_waiting_as_the_service_shuts_down_is_a_503(server, monkeypatch):
    """mut46b A34: a request whose batch is stopped (the service shutting down) is a 503 with
    Retry-After, not a 500 (BatcherStopped is no bug)."""
    from vsent.serve.batching import BatcherStopped, MicroBatcher

    async def stopped(self, arrays):
        raise BatcherStopped("the batcher was stopped")

    monkeypatch.setattr(MicroBatcher, "submit", stopped)
    r = post(server.url, [("a.jpg", image_bytes(1))])
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json() == {"detail": "the service is shutting down; retry later"}


def test_the_deadline_counts_the_upload_too(checkpoint, monkeypatch):
    """mut46b A33: --timeout bounds the whole request: an upload that took 1.2 s of a 1.5 s
    deadline leaves 0.3 s for scoring, not another 1.5 s (the batch here would wait for
    company for 10 minutes: the answer is the deadline's 503)."""
    import asyncio

    from vsent.serve.app import Service

    real = Service._read_form

    async def slow_upload(self, request):
        form = await real(self, request)
        await asyncio.sleep(1.2)
        return form

    monkeypatch.setattr(Service, "_read_form", slow_upload)
    config = ServeConfig(max_wait_ms=600_000, limits=Limits(timeout_s=1.5))
    with running_server(checkpoint, config) as s:
        t0 = time.monotonic()
        r = post(s.url, [("a.jpg", image_bytes(1))])
        elapsed = time.monotonic() - t0
    assert r.status_code == 503 and "longer than 1.5 s (--timeout)" in r.json()["detail"]
    assert elapsed < 2.6  # 1.5 s and overhead; a fresh 1.5 s after the upload is >= 2.7 s


def test_the_service_takes_no_wait_and_refuses_no_decode_thread():
    """mut46b A02, A04: --max-wait-ms 0 is allowed (a request never waits for company; the
    check says ">= 0"), and --workers 0 (no decoding thread: no request would finish) is
    refused naming the option."""
    assert ServeConfig(max_wait_ms=0).max_wait_ms == 0
    assert ServeConfig(decode_workers=1).decode_workers == 1
    with pytest.raises(VsentError, match=r"^--workers must be >= 1, got 0$"):
        ServeConfig(decode_workers=0)


def test_labels_are_the_served_predictors_class_names(checkpoint):
    """mut46b A16: a predictor built with its own class names answers with them (index 1 the
    positive class), as vsent predict's rows do."""
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", class_names=["sad", "happy"])
    imgs = [image_bytes(1, tint=(1, 0.6, 0.3)), image_bytes(3, (33, 61), tint=(0.3, 0.5, 1))]
    with running_server(checkpoint, predictor=predictor) as s:
        rows = post(s.url, [(f"{i}.jpg", d) for i, d in enumerate(imgs)]).json()["results"]
    assert [r["label"] for r in rows] == [("happy" if r["prob_positive"] > 0.5 else "sad")
                                          for r in rows]


def test_an_export_announces_neither_option_nor_region_settings(checkpoint, tmp_path):
    """mut46b A21: GET /v1/model gives the ``regions`` settings only where the option is
    served: an export serves neither explain nor regions, and says so."""
    from vsent.export import ExportedPredictor, export_model
    from vsent.serve.app import Service

    export_model(checkpoint, tmp_path / "m.ts", format="torchscript", verify=False)
    service = Service(ExportedPredictor.from_file(tmp_path / "m.ts", device="cpu"),
                      checkpoint=tmp_path / "m.ts")
    try:
        assert service.card["request_options"] == {"oversample": True, "explain": False,
                                                   "regions": False}
        assert "regions" not in service.card
    finally:
        service.close()


def test_regions_run_no_batched_pass_and_an_image_they_fail_is_not_explained(server,
                                                                            monkeypatch):
    """mut46b A42, A44: a regions request scores each image through its regions only (no
    forward pass in the micro-batches: /metrics' histogram counts none), and an image whose
    regions failed gets no Grad-CAM (its entry keeps the regions' reason)."""
    from vsent.data.images import BYTES_NAME
    from vsent.errors import ImageError

    service = server.app.state.service
    r = post(server.url, [("a.jpg", image_bytes(3))], regions="true")
    assert r.status_code == 200 and r.json()["results"][0]["error"] == ""
    text = httpx.get(f"{server.url}/metrics").text
    assert metric(text, "vsent_batch_size_count", crop="center") == 0
    assert metric(text, "vsent_images_total", outcome="scored") == 1
    explained: list = []

    def cut(data):
        raise ImageError(f"{BYTES_NAME}: image file is truncated")

    monkeypatch.setattr(service, "_regions_sync", cut)
    monkeypatch.setattr(service, "_explain_sync", lambda data, target: explained.append(1))
    r = post(server.url, [("a.jpg", image_bytes(3))], regions="true", explain="true")
    assert r.status_code == 422 and explained == []
    assert r.json()["results"][0]["error"] == "a.jpg (part 1): image file is truncated"


def test_an_image_above_the_pixel_limit_is_named_once(checkpoint):
    """mut46b A69: the 413 of an image above --max-pixels names the upload once, as every
    other entry's error does (check_pixels names it itself)."""
    buf = io.BytesIO()
    Image.new("L", (400, 400), 0).save(buf, "PNG")
    config = ServeConfig(limits=Limits(max_pixels=10_000))
    with running_server(checkpoint, config) as s:
        r = post(s.url, [("a.jpg", image_bytes(1)), ("bomb.png", buf.getvalue())])
    assert r.status_code == 200
    assert r.json()["results"][1]["error"] == ("bomb.png (part 2): image has 400x400 pixels, "
                                               "above the limit of 10000 (--max-pixels)")


def test_explain_maps_the_answered_class_and_says_when_the_map_is_empty(server, monkeypatch):
    """mut46b A73, A75, A76, A81: Grad-CAM explains the label answered (class 1 for a
    positive image, 0 for a negative one), heatmap_empty is Grad-CAM's own flag, one copy of
    the model serves every explain, and an entry that failed still has the two keys (null)."""
    import vsent.analyses.explain as explain

    targets: list[int] = []

    def fake(model, data, *, target, **kw):
        targets.append(target)
        return {"image": np.zeros((4, 4, 3), np.uint8), "heatmap": np.zeros((4, 4)),
                "empty": target == 1}

    monkeypatch.setattr(explain, "explain_image", fake)
    imgs = [("neg.jpg", image_bytes(1, tint=(1, 0.6, 0.3))),
            ("pos.jpg", image_bytes(3, (33, 61), tint=(0.3, 0.5, 1))), ("bad.txt", b"text")]
    r = post(server.url, imgs, explain="true")
    assert r.status_code == 200
    neg, pos, bad = r.json()["results"]
    assert (neg["label"], pos["label"]) == ("negative", "positive") and targets == [0, 1]
    assert (neg["heatmap_empty"], pos["heatmap_empty"]) == (False, True)
    assert bad == {"name": "bad.txt", "prob_positive": None, "label": None,
                   "error": "bad.txt (part 3): cannot identify image file", "heatmap": None,
                   "heatmap_empty": None}
    copy = server.app.state.service._cam_model
    assert post(server.url, imgs[:1], explain="true").status_code == 200
    assert server.app.state.service._cam_model is copy  # made on the first explain only


def test_regions_answer_each_regions_positive_score_and_fail_on_non_finite_ones(server,
                                                                                monkeypatch):
    """mut46b A77, A78: each region's prob_positive is its class-1 score (rounded as the
    image's: 6 decimals, mut51g A71); a region scored NaN fails the image (the model's
    fault: 500), as NaN image scores do."""
    service = server.app.state.service
    region_proba = np.array([[0.25, 0.75], [0.8765432109, 0.1234567891]])

    def regions(data):
        return {"proba": np.array([0.4, 0.6]), "boxes": [(0, 1, 20, 30), (5, 5, 9, 9)],
                "region_proba": region_proba}

    monkeypatch.setattr(service, "_regions_sync", regions)
    (row,) = post(server.url, [("a.jpg", image_bytes(1))], regions="true").json()["results"]
    assert row["prob_positive"] == 0.6 and row["label"] == "positive"
    assert row["regions"] == [{"box": [0, 1, 20, 30], "prob_positive": 0.75},
                              {"box": [5, 5, 9, 9], "prob_positive": 0.123457}]
    region_proba[1, 1] = np.nan
    r = post(server.url, [("a.jpg", image_bytes(1))], regions="true")
    assert r.status_code == 500 and r.json()["results"][0] == {
        "name": "a.jpg", "prob_positive": None, "label": None,
        "error": "a.jpg (part 1): non-finite scores (the model's weights hold NaN/inf?)"}


def test_a_cut_body_says_where_it_stops():
    """mut46b A93, A95: the 422 of a body without its closing boundary says where it stops:
    before any part, or inside a text field (not as if the field were a file)."""
    option = b"--b\r\nContent-Disposition: form-data; name=\"explain\"\r\n\r\n"
    assert _unfinished(b"") == "no part"
    assert _unfinished(option + b"tr") == "the field 'explain', incomplete"
    assert _unfinished(option + b"true\r\n--b--\r\n") is None


def test_a_connection_that_cannot_be_watched_is_still_answered():
    """mut46b A98: when watching for the client's disconnect fails (the server's receive
    raises), the request is answered, not taken for a client that left (499)."""
    import asyncio

    from vsent.serve.app import _unless_client_leaves

    class Request:
        async def receive(self):
            raise RuntimeError("receive failed")

    async def work():
        await asyncio.sleep(0.05)
        return 200, {"results": []}

    async def go():
        return await _unless_client_leaves(Request(), work())

    assert asyncio.run(go()) == (200, {"results": []})


def test_a_request_cancelled_while_its_work_runs_cancels_its_work():
    """mut54g A137: a request cancelled itself (not by its client leaving) cancels its work,
    which would else go on holding the per-image thread and the forward passes."""
    import asyncio

    from vsent.serve.app import _unless_client_leaves

    class Request:
        async def receive(self):
            await asyncio.Event().wait()  # the client stays

    async def go():
        work = asyncio.ensure_future(asyncio.Event().wait())  # work that never ends by itself
        request = asyncio.ensure_future(_unless_client_leaves(Request(), work))
        await asyncio.sleep(0)  # the request waits for its work
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait((work,), timeout=1)  # a guard only: the cancel is one loop turn
        return work.cancelled()

    assert asyncio.run(go())


def test_the_model_card_gives_the_limits_and_batching_in_force(server):
    """mut46b A111, A112: GET /v1/model says the limits and the micro-batching settings the
    service runs with (README: "... vsent version, limits")."""
    card = httpx.get(f"{server.url}/v1/model").json()
    assert card["limits"] == Limits().to_dict()
    assert card["batching"] == {"max_batch": 32, "max_wait_ms": 5.0}


def test_a_unicode_line_separator_in_a_file_name_is_escaped_in_the_log(server, caplog):
    """mut46b A107: U+2028 and U+2029 end a line for many log viewers: escaped as the C0
    controls are."""
    with caplog.at_level("WARNING", logger="vsent"):
        r = post(server.url, [("a\u2028b\u2029c.txt", b"text")])  # mut54g A133: U+2029 too
    assert r.status_code == 422 and r.json()["results"][0]["name"] == "a\u2028b\u2029c.txt"
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "vsent"]
    assert len(logged) == 1 and "\u2028" not in logged[0] and "\u2029" not in logged[0]
    assert "a\\u2028b\\u2029c.txt" in logged[0]


# mutation round 46 (mut46b): vsent.serve.batching mutants the suite missed


def test_batch_stats_add_up_over_batches_and_max_requests_starts_at_zero():
    """mut46b B01, B03: /metrics' vsent_batch_requests_max is 0 before the first batch, and the
    forward seconds of one batcher add up over its batches (each test above ran one batch a
    batcher, so keeping the last batch's seconds went unseen)."""
    from vsent.serve.batching import BatchStats

    stats = BatchStats()
    assert stats.max_requests == 0
    stats.add(3, 2, 0.25)
    stats.add(1, 1, 0.5)
    assert (stats.batches, stats.images, stats.seconds) == (2, 4, 0.75)
    assert stats.sizes == {3: 1, 1: 1} and stats.max_requests == 2


def test_a_request_that_gives_up_during_its_forward_pass_leaves_the_others_answered():
    """mut46b B20, B21: a request that times out while its batch is in the model thread: the
    batch's other request still gets its scores, or the model's exception (the collector
    answered nobody else once it tried to answer the cancelled one)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    def run(fails: bool):
        release = threading.Event()

        def fn(a: np.ndarray) -> np.ndarray:
            release.wait(timeout=10)  # a guard against a hang only
            if fails:
                raise RuntimeError("out of memory")
            return _first_pixels([])(a)

        async def go():
            with ThreadPoolExecutor(1) as pool:
                b = MicroBatcher(fn, pool, max_batch=4, max_wait_s=0.05)
                quitter = asyncio.ensure_future(asyncio.wait_for(b.submit(_images(0, 1)), 0.3))
                stayer = asyncio.ensure_future(b.submit(_images(7, 1)))
                try:
                    with pytest.raises(TimeoutError):  # while the pass of both runs
                        await quitter
                finally:
                    release.set()
                done, _ = await asyncio.wait([stayer], timeout=5)
                await b.stop()
                assert done, "the other request of the batch was never answered"
                return stayer.exception() or stayer.result(), b.stats

        return asyncio.run(go())

    got, stats = run(fails=False)
    assert got.tolist() == [[7.0, -7.0]] and stats.sizes == {2: 1}
    got, stats = run(fails=True)
    assert isinstance(got, RuntimeError) and str(got) == "out of memory"


def test_a_stopped_batcher_counts_no_queued_images_and_starts_clean():
    """mut46b B10, B11: stop() fails the request held for the next batch and forgets it:
    /metrics' vsent_queued_images is 0 at once, and a batcher started again (a second lifespan)
    neither takes the dead request back nor counts its images twice (the gauge went negative)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import BatcherStopped, MicroBatcher

    release = threading.Event()

    def fn(a: np.ndarray) -> np.ndarray:
        release.wait(timeout=10)  # a guard against a hang only
        return _first_pixels([])(a)

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(fn, pool, max_batch=2, max_wait_s=0.05)
            try:
                # 1 image runs (held in the model thread); 2 more do not fit beside it: held
                waiting = [asyncio.ensure_future(b.submit(_images(0, 1))),
                           asyncio.ensure_future(b.submit(_images(1, 2)))]
                await asyncio.sleep(0.2)
                assert b.queued_images == 2
                await b.stop()
                assert b.queued_images == 0
            finally:
                release.set()
            errors = await asyncio.gather(*waiting, return_exceptions=True)
            got = await asyncio.wait_for(b.submit(_images(5, 1)), 5)  # started again
            queued = b.queued_images
            await b.stop()
            return errors, got, queued

    errors, got, queued = asyncio.run(go())
    assert [type(e) for e in errors] == [BatcherStopped, BatcherStopped]
    assert got.tolist() == [[5.0, -5.0]] and queued == 0


def test_a_collector_that_died_is_replaced_by_the_next_request():
    """mut46b B06: a bug that escapes the collector ends its task (here: gathering a batch
    raises once); the next request starts a new collector instead of queueing for the dead
    one until its deadline."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(_first_pixels([]), pool, max_batch=4, max_wait_s=0.05)
            real, broken = b._next_batch, [True]

            async def next_batch_breaks_once():
                if broken:
                    broken.pop()
                    raise RuntimeError("a bug")
                return await real()

            b._next_batch = next_batch_breaks_once
            lost = await asyncio.gather(asyncio.wait_for(b.submit(_images(4, 1)), 0.5),
                                        return_exceptions=True)
            got = await asyncio.wait_for(b.submit(_images(5, 1)), 5)
            await b.stop()
            return lost, got

    lost, got = asyncio.run(go())
    assert [type(e) for e in lost] == [TimeoutError]
    assert got.tolist() == [[5.0, -5.0]]


def test_a_batch_of_two_image_sizes_fails_its_requests_not_the_collector():
    """Images of two sizes cannot be stacked into one batch (the service makes every image
    one size; the Python API might not): each request of that batch gets the error at once,
    not a wait until its deadline, and the collector scores the next request."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(_first_pixels([]), pool, max_batch=4, max_wait_s=0.05)
            mixed = [asyncio.wait_for(b.submit(np.zeros((1, s, s, 3), np.uint8)), 5)
                     for s in (2, 3)]
            out = await asyncio.gather(*mixed, return_exceptions=True)
            task = b._task
            got = await asyncio.wait_for(b.submit(_images(5, 1)), 5)
            same_collector = b._task is task
            await b.stop()
            return out, got, same_collector

    out, got, same_collector = asyncio.run(go())
    assert [type(e) for e in out] == [ValueError, ValueError]
    assert got.tolist() == [[5.0, -5.0]] and same_collector


def test_a_request_held_behind_a_batch_whose_requests_all_gave_up_is_answered():
    """mut46b B19: a batch left with no live request (its only one timed out while it waited
    for company) is passed over; the request held for the next batch is still scored (the
    collector died on the empty batch, and the held request waited for ever)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    seen: list = []

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(_first_pixels(seen), pool, max_batch=3, max_wait_s=1.0)
            with pytest.raises(TimeoutError):  # gives up while its batch waits for company
                await asyncio.wait_for(b.submit(_images(0, 2)), 0.05)
            got = await asyncio.wait_for(b.submit(_images(5, 2)), 5)  # does not fit: held
            await b.stop()
            return got

    assert asyncio.run(go()).tolist() == [[5.0, -5.0], [6.0, -6.0]]
    assert seen == [[5, 6]]


def test_a_request_whose_first_part_failed_leaves_its_later_parts_unscored():
    """mut46b B14: a request split across batches that already failed (its first forward pass
    raised) is answered with that error; its parts not yet started are not scored for nobody
    (the part in the model thread at that moment finishes)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    seen: list = []
    record = _first_pixels(seen)

    def fn(a: np.ndarray) -> np.ndarray:
        out = record(a)
        if len(seen) == 1:
            raise RuntimeError("out of memory")
        time.sleep(0.05)
        return out

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(fn, pool, max_batch=1, max_wait_s=0.01)
            with pytest.raises(RuntimeError, match="out of memory"):
                await asyncio.wait_for(b.submit(_images(0, 3)), 5)
            got = await asyncio.wait_for(b.submit(_images(9, 1)), 5)
            await b.stop()
            return got

    assert asyncio.run(go()).tolist() == [[9.0, -9.0]]
    assert seen == [[0], [1], [9]]  # never [2]


# mutation round 46 (mut46b): vsent.serve.limits mutants the suite missed


@pytest.mark.parametrize("name, option", [
    ("max_upload_bytes", "--max-upload-mb"), ("max_request_bytes", "--max-request-mb"),
    ("max_pixels", "--max-pixels"), ("max_images", "--max-images"),
    ("max_inflight", "--max-inflight")])
def test_every_limit_below_one_is_refused_naming_its_option(name, option):
    """mut46b L01, L02, L03, L04: each count limit is at least 1 (0 would refuse every request
    or, for max_inflight, serve none), and the error names the option to fix."""
    with pytest.raises(VsentError, match=rf"^{re.escape(option)} \({name}\) must be >= 1, "
                                         r"got 0$"):
        Limits(**{name: 0})
    assert getattr(Limits(**{name: 1}), name) == 1


def test_a_timeout_that_is_not_a_number_is_refused_as_not_positive():
    """mut46b L06: NaN compares false with everything: ``not timeout > 0`` refuses it first."""
    with pytest.raises(VsentError, match=r"^--timeout must be > 0 seconds, got nan$"):
        Limits(timeout_s=float("nan"))


def test_an_answered_request_leaves_nothing_behind_in_the_batcher():
    """mut46b B15: each part of a request is forgotten once it is answered (or given up); a
    service that answers millions of requests between restarts must not keep one future per
    request (stop() would clear them, but a service runs until it is stopped)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(_first_pixels([]), pool, max_batch=2, max_wait_s=0.05)
            await asyncio.gather(*(b.submit(_images(i, 3)) for i in range(5)))
            with pytest.raises(TimeoutError):  # one that gives up while its batch gathers
                await asyncio.wait_for(b.submit(_images(9, 1)), 0.01)
            await asyncio.sleep(0.3)  # (its batch gathered and passed over)
            left = len(b._waiting), b.queued_images
            await b.stop()
            return left

    assert asyncio.run(go()) == (0, 0)


# mutation round 47 (mut47c): vsent.cli.serve mutants the suite missed


@pytest.mark.parametrize(("option", "message"), [
    (["--port", "65536"], "--port must be in 0..65535, got 65536"),
    (["--port", "-1"], "--port must be in 0..65535, got -1"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be a finite number > 0, got 0.0"),
    (["--max-request-mb", "-2"], "--max-request-mb must be a finite number > 0, got -2.0"),
])
def test_cli_a_port_or_size_out_of_range_is_one_line_before_the_model_loads(tmp_path, capsys,
                                                                           option, message):
    missing = tmp_path / "missing.pt"  # (checked later: its error would be another line)
    assert main(["serve", "--model", str(missing), *option]) == 2
    assert capsys.readouterr().err == f"vsent: error: {message}\n"


def test_cli_serves_a_torchscript_export_with_engine_torchscript(checkpoint, tmp_path,
                                                                 monkeypatch, capsys):
    """--engine torchscript loads the export as an export (the checkpoint loader refuses it),
    as --engine onnx does."""
    from vsent.export import export_model

    ts = tmp_path / "m.ts"
    export_model(checkpoint, ts, format="torchscript", verify=False)
    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    assert main(["serve", "--model", str(ts), "--engine", "torchscript", "--port", "0"]) == 0
    assert len(calls) == 1 and f"from {ts} on " in capsys.readouterr().err


def test_cli_serve_options_reach_the_service(checkpoint, monkeypatch, capsys):
    """mut51a S7, S8, S16, S21: --max-inflight, --workers and --max-batch reach the service's
    config (its decode threads and batches); an image limit equal to the request's is the
    banner's own; the defaults are those the help gives."""
    from vsent.serve import Limits, ServeConfig

    apps: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    assert main(["serve", "--model", str(checkpoint), "--port", "0", "--device", "cpu",
                 "--max-inflight", "7", "--workers", "3", "--max-batch", "5",
                 "--max-upload-mb", "2", "--max-request-mb", "2"]) == 0
    service = apps[0].state.service
    try:
        assert service.config.limits.max_inflight == 7 and service.decode_pool._max_workers == 3
        assert service.config.max_batch == 5 and service.config.decode_workers == 3
        assert all(p.batch_size == 5 for p in service.predictors.values())
    finally:
        service.close()
    err = capsys.readouterr().err
    assert "limits: 2 MiB an image, 2 MiB a request, " in err
    assert "no authentication" not in err  # 127.0.0.1, the default: this machine only
    assert main(["serve", "--model", str(checkpoint), "--port", "0", "--host", "0.0.0.0"]) == 0
    apps[1].state.service.close()
    assert capsys.readouterr().err.endswith(
        "vsent serve: listening on 0.0.0.0, reachable from other machines; there is no "
        "authentication\n")
    args = build_parser().parse_args(["serve", "--model", str(checkpoint)])
    defaults = ServeConfig()
    assert (args.max_batch, args.max_inflight, args.workers) == (
        defaults.max_batch, Limits().max_inflight, None) == (32, 64, None)


# mutation round 48 (mut48f): vsent.serve mutants the suite missed


def test_a_late_fused_model_is_served_with_its_fused_scores(tmp_path):
    """mut48f A73, A75, A76: a late-fused checkpoint answers the fused probabilities (the
    network's batched scores fused with each upload's hand-crafted features, as
    Predictor.predict_proba fuses them), and refuses regions (422), as its card says. No test
    served a late-fused model: dropping the fusion or its features went unseen."""
    from conftest import gch_hand_model
    from vsent.analyses.fused_model import LateFusion

    torch.manual_seed(0)
    model = create_model("smallcnn")
    with torch.no_grad():
        model.fc.weight.mul_(20.0)
    fusion = LateFusion(gch_hand_model(), weight=0.5)
    ckpt = save_checkpoint(tmp_path / "fused.pt", model, fusion=fusion.to_state())
    imgs = [image_bytes(1, tint=(1, 0.6, 0.3)), image_bytes(2, fmt="PNG"),
            image_bytes(3, (33, 61), tint=(0.3, 0.5, 1))]
    pred = Predictor.from_checkpoint(ckpt, device="cpu")
    want = pred.predict_proba(imgs)[:, 1]
    network = pred.network_scores(np.stack([pred.decode(d) for d in imgs]))[:, 1]
    assert np.abs(want - network).min() > 1e-3  # (the fusion changes every score)
    with running_server(ckpt) as s:
        r = post(s.url, [(f"{i}.png", d) for i, d in enumerate(imgs)])
        assert r.status_code == 200, r.text
        got = [row["prob_positive"] for row in r.json()["results"]]
        np.testing.assert_allclose(got, want, atol=1e-5)
        r = post(s.url, [("a.jpg", imgs[0])], regions="true")
        assert r.status_code == 422
        assert r.json()["detail"] == ("regions score with the network alone; this model is "
                                      "fused late with gch")
        card = httpx.get(f"{s.url}/v1/model").json()
    assert card["request_options"] == {"oversample": True, "explain": True, "regions": False}
    assert "regions" not in card


def test_c1_control_characters_of_a_file_name_are_escaped_in_the_log():
    """mut48f A54: the C1 controls (U+0080-U+009F: U+0085 ends a line for str.splitlines
    and many viewers) and DEL are escaped as the C0 ones are; other text is kept."""
    from vsent.serve.app import _loggable

    assert _loggable("a\x85b\x9bc\x7fd\x80e\x9f") == "a\\x85b\\x9bc\\x7fd\\x80e\\x9f"
    assert _loggable("caf\u00e9 \u00a0\u4e2d.jpg") == "caf\u00e9 \u00a0\u4e2d.jpg"


def test_the_batch_size_histogram_has_the_documented_buckets(checkpoint):
    """mut48f B15: vsent_batch_size's buckets are the powers of two from 1 to 256, then +Inf,
    for each crop (the test above reads four of them: a bucket dropped went unseen)."""
    from vsent.serve.app import Service

    service = Service(Predictor.from_checkpoint(checkpoint, device="cpu"))
    try:
        service.batchers[True].stats.add(64, 1, 0.5)
        text = service.metrics_text()
    finally:
        service.close()
    for crop in ("center", "ten_crop"):
        les = re.findall(rf'^vsent_batch_size_bucket{{crop="{crop}",le="([^"]+)"}} ', text, re.M)
        assert les == ["1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"], crop
    assert metric(text, "vsent_batch_size_bucket", crop="ten_crop", le="32") == 0
    assert metric(text, "vsent_batch_size_bucket", crop="ten_crop", le="64") == 1


def test_a_request_that_gives_up_in_front_of_its_batch_leaves_the_rows_of_the_others():
    """mut48f B12: a request that gives up while its batch is in the model thread still
    takes its rows of that pass: the request behind it gets its own rows, not the quitter's
    (the test of mut46b B20 had the quitter behind the stayer)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vsent.serve.batching import MicroBatcher

    started, release = threading.Event(), threading.Event()
    record = _first_pixels([])

    def fn(a: np.ndarray) -> np.ndarray:
        started.set()
        release.wait(timeout=10)  # a guard against a hang only
        return record(a)

    async def go():
        with ThreadPoolExecutor(1) as pool, ThreadPoolExecutor(1) as waiter:
            b = MicroBatcher(fn, pool, max_batch=4, max_wait_s=0.05)
            quitter = asyncio.ensure_future(b.submit(_images(0, 2)))
            await asyncio.sleep(0)  # (its images first in the queue)
            stayer = asyncio.ensure_future(b.submit(_images(7, 1)))
            try:
                assert await asyncio.get_running_loop().run_in_executor(waiter, started.wait,
                                                                        10)
                quitter.cancel()  # gives up while the pass of both runs
                await asyncio.gather(quitter, return_exceptions=True)
            finally:
                release.set()
            got = await asyncio.wait_for(stayer, 5)
            await b.stop()
            return quitter.cancelled(), got, b.stats

    cancelled, got, stats = asyncio.run(go())
    assert cancelled and got.tolist() == [[7.0, -7.0]]
    assert stats.sizes == {3: 1} and stats.requests_per_batch == {2: 1}


def test_a_lone_request_waits_for_company_no_longer_than_max_wait(monkeypatch):
    """mut48f B10: the first request of a batch waits at most max_wait_s for company, counted
    from when it was taken. The batcher's clock is faked (no sleep): 150 s have passed since,
    with max_wait_s 100, so its batch runs at once (a deadline of twice max_wait_s waited 50 s
    more; the 5 s bound fails the test)."""
    from types import SimpleNamespace

    from vsent.serve import batching

    calls = iter([0.0])  # when the first request is taken; 150 s later from then on
    clock = SimpleNamespace(monotonic=lambda: next(calls, 150.0), perf_counter=time.perf_counter)
    monkeypatch.setattr(batching, "time", clock)
    seen: list = []
    out, b = _run_batcher(_first_pixels(seen), [_images(3, 1)], max_batch=4, max_wait_s=100,
                          timeout=5)
    assert seen == [[3]] and out[0].tolist() == [[3.0, -3.0]] and b.stats.batches == 1


def test_every_upload_is_closed_whatever_the_answer(server, monkeypatch):
    """mut48f A26, A28: each uploaded file (a temporary file on disk above 1 MiB) is closed
    once the request has read it: after an answer, after a refusal of the form, and after a
    body cut before its closing boundary (its complete parts too, not only the cut one)."""
    from starlette.datastructures import UploadFile

    closed: list = []
    real = UploadFile.close

    async def close(self):
        closed.append(self.filename)
        await real(self)

    monkeypatch.setattr(UploadFile, "close", close)
    r = post(server.url, [("a.jpg", image_bytes(1)), ("b.txt", b"text")])
    assert r.status_code == 200 and sorted(closed) == ["a.jpg", "b.txt"]
    closed.clear()
    r = httpx.post(f"{server.url}/v1/predict",
                   files=[("files", ("a.jpg", image_bytes(1), "image/jpeg")),
                          ("image", ("b.jpg", image_bytes(2), "image/jpeg"))])
    assert r.status_code == 422 and sorted(closed) == ["a.jpg", "b.jpg"]
    closed.clear()
    whole = _part(b"a.jpg", image_bytes(1)) + _part(b"b.jpg", image_bytes(2))
    r = httpx.post(f"{server.url}/v1/predict", content=whole,
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 422 and "(part 2, b.jpg, incomplete)" in r.json()["detail"]
    assert sorted(closed) == ["a.jpg", "b.jpg"]


def test_shutting_down_stops_the_batchers_and_the_service_threads(checkpoint):
    """mut48f A52, A53: the end of serving (the lifespan's exit) stops both batchers'
    collectors and shuts the decoding, model and per-image thread pools down (a server
    embedded in a longer-lived process left them running)."""
    from fastapi.testclient import TestClient

    app = create_app(Predictor.from_checkpoint(checkpoint, device="cpu"),
                     config=ServeConfig(max_batch=3, max_wait_ms=250))
    service = app.state.service
    release = threading.Event()
    with TestClient(app) as client:  # runs the lifespan, as uvicorn does
        r = client.post("/v1/predict", files=[("files", ("a.jpg", image_bytes(1), "image/jpeg"))])
        assert r.status_code == 200
        assert all(not b._task.done() for b in service.batchers.values())
        # mut54g A149: the card's batching is the service's (max_batch is not --max-images)
        assert client.get("/v1/model").json()["batching"] == {"max_batch": 3, "max_wait_ms": 250}
        service.aux_pool.submit(release.wait, 10)  # holds the per-image thread ...
        queued = service.aux_pool.submit(int)  # ... so this one waits in its queue
    release.set()
    assert queued.cancelled()  # mut54g A147: work still queued at the end is dropped, not run
    assert [b._task for b in service.batchers.values()] == [None, None]
    for pool in (service.decode_pool, service.model_pool, service.aux_pool):
        with pytest.raises(RuntimeError, match="after shutdown"):
            pool.submit(int)


def test_a_streamed_body_above_the_request_limit_is_413_whatever_its_pieces(checkpoint):
    """mut48f A77: a body without Content-Length is counted over all its pieces, not piece by
    piece: 3 MiB streamed to a service of --max-request-mb 1 is a 413 (the server reads it in
    pieces far below 1 MiB). The test of the limits above also has its file above
    --max-upload-mb, which gave its 413 whatever the count of the body."""
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.jpg\"\r\n\r\n"
            + b"x" * (3 << 20) + b"\r\n--b--\r\n")
    config = ServeConfig(limits=Limits(max_request_bytes=1 << 20))
    with running_server(checkpoint, config) as s:
        r = httpx.post(f"{s.url}/v1/predict", content=iter([body[i:i + (64 << 10)] for i in
                                                            range(0, len(body), 64 << 10)]),
                       headers={"content-type": "multipart/form-data; boundary=b"}, timeout=60)
    assert r.status_code == 413
    assert r.json() == {"detail": "request body above the limit of 1048576 bytes "
                                  "(--max-request-mb)"}


@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("myhost", False),
    ("localhost.example.org", False)])
def test_only_a_loopback_host_is_taken_for_this_machine_only(host, local):
    """S18 (mut51a): ``--host ::1`` listens on this machine only, as 127.0.0.1 does (no
    warning); any other address or host name is warned about. Checked without listening:
    this machine may have no IPv6."""
    from vsent.cli.serve import _local_only

    assert _local_only(host) is local
