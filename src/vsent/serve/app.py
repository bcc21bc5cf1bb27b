"""The ``vsent serve`` application: FastAPI endpoints, the web page, metrics.

Endpoints
---------
``POST /v1/predict``  multipart upload of one or more images (field ``files``); options
    ``oversample``, ``explain`` (Grad-CAM overlay, base64 PNG) and ``regions`` (late fusion
    with affective regions) as form fields or query parameters. Returns ``{"results": [...]}``,
    one entry per image in upload order: ``name, prob_positive, label, error`` (+ ``heatmap``
    and ``heatmap_empty``, ``regions``).
An option the model cannot serve (``explain`` without a Grad-CAM layer or on an export,
``regions`` on an export or a late-fused model) and an unknown option are 422;
``GET /v1/model`` says which options the model serves (``request_options``).
``GET /v1/model``  the model card. ``GET /healthz``  liveness. ``GET /metrics``  Prometheus text.
``GET /``  the web page (``static/``, no external resources). ``GET /docs`` and ``GET /redoc``
OpenAPI docs, their scripts served from the service (fastapi-offline): they work offline too.

Status codes: 200 when at least one image was scored (a bad image fails only its own entry);
413 for a request, upload or image above a limit; 422 for a request whose every image is
unreadable (the detail names each part and why), bad options, or a body cut before its closing
boundary; 415 for a body that is not multipart; 408 for an upload not in by the request's
deadline; 503 when the service is overloaded or a request passes its deadline after its upload.
User input never causes a 500 (a bug does: a JSON 500, counted, its traceback in the server's
log; a bug in one image's Grad-CAM fails only that image's entry; so does a model that scores
NaN/inf, each image's entry failed). A client that disconnects before its answer (during its
upload, or while its images are scored: its work then stops) is counted as 499
(:data:`CLIENT_GONE`), not as a 500.

Threads: the event loop only parses and dispatches. Images decode in a thread pool; the batched
forward passes run in one model thread (:class:`~vsent.serve.batching.MicroBatcher`). The
per-image work runs one image at a time in a third thread, so it does not hold up the batches:
affective regions (proposals, then one forward pass) and Grad-CAM, which hooks into a private
copy of the model (made on the first ``explain``: its hooks must not see the shared model's other
forward passes) and works on the image shrunk to :data:`HEATMAP_MAX_SIDE`. The heat map explains
the label the service returns (for a late-fused model, the fused label).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from vsent import __version__
from vsent.data._common import default_workers
from vsent.data.images import BYTES_NAME
from vsent.errors import ImageError, VsentError
from vsent.predict import NON_FINITE_SCORES, Predictor, scores_row
from vsent.serve.batching import BATCH_BUCKETS, BatcherStopped, MicroBatcher
from vsent.serve.limits import Limits, TooLarge, check_pixels

__all__ = ["ServeConfig", "Service", "create_app", "served_card"]

log = logging.getLogger("vsent")
T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
#: Longer side of the Grad-CAM overlay returned by ``explain`` (pixels).
HEATMAP_MAX_SIDE = 512
#: The per-request options (form fields or query parameters), all booleans.
OPTIONS = ("oversample", "explain", "regions")
#: The ``crop`` label of /metrics' batch series, by ``oversample``.
CROP_LABEL = {False: "center", True: "ten_crop"}
#: Counted for a client that disconnected before its answer (nginx's code).
CLIENT_GONE = 499
#: Form fields (options) in one request, beside its files (a bound of ours: a request has
#: three options; Starlette's default is 1000).
MAX_FIELDS = 100
#: The most characters of a bad option value an answer (and the log) repeats.
SHOWN_VALUE = 40
#: Files as text (curl -F "files=<photo.jpg", '<' for '@'): one message, whatever its size.
_FILES_AS_TEXT = ("the part 'files' holds text, not a file (no file name; a name given only as "
                  "filename*= is not read): send each image as a file, e.g. curl -F "
                  "files=@photo.jpg")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}  # not "": a bare ?explain says nothing clear
#: What the log shows of a client's text (file and field names) instead of a control character:
#: its escape, so that a name cannot end the log line and write one of its own.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the service besides the model.

    max_batch : images per forward pass [32]. max_wait_ms : how long a request waits for others
    to share its batch [5 ms]. decode_workers : image decoding threads [the CPUs it may use,
    at most 32].
    k, alpha, beta, n_proposals, senti_log : affective regions (as ``vsent predict
    --regions``).
    """

    max_batch: int = 32
    max_wait_ms: float = 5.0
    decode_workers: int | None = None
    limits: Limits = field(default_factory=Limits)
    k: int = 11
    alpha: float = 1.0
    beta: float = 0.5
    n_proposals: int = 100
    senti_log: str = "classes"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> ServeConfig:
        """Raise :class:`VsentError` naming the first bad option (run when built, as every
        vsent config); ``self``."""
        if self.max_batch < 1:
            raise VsentError(f"--max-batch must be >= 1, got {self.max_batch}")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise VsentError(f"--max-wait-ms must be a finite number >= 0, got {self.max_wait_ms}")
        if self.decode_workers is not None and self.decode_workers < 1:
            raise VsentError(f"--workers must be >= 1, got {self.decode_workers}")
        self.limits.validate()
        # the region settings are checked here, at start-up: a bad one would fail every
        # regions request with an internal error
        from vsent.analyses.regions import check_predict_options

        check_predict_options(k=self.k, alpha=self.alpha, beta=self.beta,
                              n_proposals=self.n_proposals, senti_log=self.senti_log)
        return self


class HTTPProblem(Exception):
    """A request answered with ``status`` and a JSON ``detail`` (never a 500)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# --------------------------------------------------------------------------------------------
# the building blocks of vsent.predict, behind one adapter each


def decode_image(predictor: Predictor, data: bytes) -> np.ndarray:
    """Encoded bytes -> uint8 (S, S, 3), S = the model's resize; ImageError with the reason."""
    return predictor.decode(data)


def network_scores(predictor: Predictor, arrays: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S, 3) -> the network's softmax scores (N, C), with the predictor's
    oversampling: before late fusion, unlike :meth:`Predictor.predict_arrays` (a late-fused
    model's hand-crafted half is added per request)."""
    return predictor.network_scores(arrays)


def served_card(checkpoint: str | Path | None, predictor: Predictor) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: :func:`vsent.models.card.model_card` of the checkpoint
    (architecture, weights, training data, the run's cross-validated metrics, preprocessing,
    versions) plus ``vsent_version``, the version serving it.

    The paths of the checkpoint, the export, the training data, its folds file and a weights
    file it started from are cut to their last part, and the command lines of the run
    (``versions.argv``, those of ``versions.resumed``) are left out: the server's folders are
    nobody's business. An export is described by the card stored in it (:func:`~vsent.models.card.
    export_card`; "not recorded" where it stores none, as ``export_module`` writes it), never by
    the card of the file it is served from. A predictor built in Python without a checkpoint
    gets what the model itself says.
    """
    from vsent.models.card import cut_paths, export_card, model_card

    engine = predictor.model.info.extra.get("engine")  # an export (vsent.export)
    if engine is not None:
        card = export_card(predictor.model)
        card["export"] = {**card["export"], "file": Path(card["export"]["file"]).name}
        card["engine"] = engine
    elif checkpoint is not None:
        card = dict(model_card(checkpoint))
    else:
        model = predictor.model
        spec = dict(model.spec)  # set by create_model, load_checkpoint and ExportedModule
        card = {"checkpoint": None,
                "model": {"name": spec.pop("name", None), "num_classes": spec.pop("num_classes",
                                                                                 None),
                          "class_names": list(predictor.class_names), "options": spec},
                "weights": None, "training": None, "metrics": None,
                "preprocess": model.info.preprocess.to_dict(), "versions": None}
    if card.get("checkpoint"):
        card["checkpoint"] = Path(str(card["checkpoint"])).name
    cut_paths(card)
    card["vsent_version"] = __version__
    return card


# --------------------------------------------------------------------------------------------
# the service


@dataclass
class _Entry:
    name: str
    where: str  # how messages name it: "<file name> (part <i>)"
    data: bytes = b""
    array: np.ndarray | None = None
    hand: np.ndarray | None = None  # a late-fused model's hand-crafted features (d,)
    cls: int = -1  # the class answered (index into class_names), the one Grad-CAM explains
    error: str = ""
    status: int = 200  # 413 or 422 when the entry failed (500: the model's or a bug's fault)
    out: dict[str, Any] = field(default_factory=dict)

    def fail(self, status: int, reason: str) -> None:
        """Fail this image alone: its error is ``reason``, named as messages name it."""
        self.error, self.status = f"{self.where}: {reason}", status


class Service:
    """State shared by the requests: predictors, thread pools, batchers and counters."""

    def __init__(self, predictor: Predictor, *, checkpoint: str | Path | None = None,
                 config: ServeConfig | None = None) -> None:
        self.config = config or ServeConfig()  # (a frozen config, validated when built)
        self.limits = self.config.limits
        # the same weights with and without 10-crop oversampling (a per-request option)
        self.predictors = {
            ov: Predictor(predictor.model, class_names=predictor.class_names, oversample=ov,
                          batch_size=self.config.max_batch, device=str(predictor.device),
                          fusion=predictor.fusion)
            for ov in (False, True)
        }
        self.model = predictor.model
        self.fusion = predictor.fusion
        self.device = predictor.device
        self.class_names = list(predictor.class_names)
        self.card = served_card(checkpoint, predictor)
        info = self.model.info  # (every model a Predictor runs has one: its preprocessing)
        engine = info.extra.get("engine")  # an export (vsent.export) has no layers to look into
        why_not = {"explain": None, "regions": None}
        if engine is not None:
            why_not["explain"] = why_not["regions"] = (
                f"explain and regions need the checkpoint; this service runs an exported model "
                f"({engine})")
        elif not info.cam_layer:
            why_not["explain"] = (f"explain is not available: {info.name} declares no Grad-CAM "
                                  "layer")
        if engine is None and self.fusion is not None:
            why_not["regions"] = (f"regions score with the network alone; this model is fused "
                                  f"late with {self.fusion.features}")
        self._unavailable = {k: v for k, v in why_not.items() if v}
        self.card["request_options"] = {k: k not in self._unavailable for k in OPTIONS}
        if "regions" not in self._unavailable:  # what `regions` does here (a ServeConfig's)
            c = self.config
            self.card["regions"] = {"k": c.k, "alpha": c.alpha, "beta": c.beta,
                                    "n_proposals": c.n_proposals, "senti_log": c.senti_log}
        self._cam_model: Any = None  # Grad-CAM's copy of the model, made on the first explain
        self.model_pool = ThreadPoolExecutor(1, thread_name_prefix="vsent-model")
        self.aux_pool = ThreadPoolExecutor(1, thread_name_prefix="vsent-aux")
        # the CPUs this process may use (a container's share, not the host's), as predict
        self.decode_pool = ThreadPoolExecutor(self.config.decode_workers or default_workers(),
                                              thread_name_prefix="vsent-decode")
        wait = self.config.max_wait_ms / 1000.0
        self.batchers = {
            ov: MicroBatcher(lambda a, p=p: network_scores(p, a), self.model_pool,
                             max_batch=self.config.max_batch, max_wait_s=wait)
            for ov, p in self.predictors.items()
        }
        self._detector = None
        self.inflight = 0
        self.responses: dict[int, int] = {}
        self.images_ok = 0
        self.images_failed = 0

    def close(self) -> None:
        for pool in (self.decode_pool, self.aux_pool, self.model_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    # ---- one request --------------------------------------------------------------------

    async def handle(self, request: Request) -> JSONResponse:
        """Answer ``POST /v1/predict``, counting the status."""
        try:
            if self.inflight >= self.limits.max_inflight:
                raise HTTPProblem(503, f"overloaded: {self.inflight} requests in progress "
                                       f"(--max-inflight {self.limits.max_inflight}); retry later")
            self.inflight += 1
            try:
                status, body = await self._within_deadline(request)
            finally:
                self.inflight -= 1
        except HTTPProblem as e:
            status, body = e.status, {"detail": e.detail}
        except ClientDisconnect as e:  # the client went away: neither a bug nor a 500
            status, body = CLIENT_GONE, {"detail": str(e) or "the client disconnected during "
                                                             "the upload"}
        except Exception as e:  # a bug, not the client's fault: JSON, counted, logged
            status, body = _internal_error(e)
        status, body, response = _render(status, body)  # counted as what is sent
        if status == CLIENT_GONE:  # nobody reads the answer; no alert should fire either
            log.info("POST /v1/predict: %s", _loggable(body["detail"]))
        elif status != 200:  # the access log says only the status: say why
            log.warning("POST /v1/predict %d: %s", status, _loggable(body.get("detail", "")))
        self.responses[status] = self.responses.get(status, 0) + 1
        return response

    async def _within_deadline(self, request: Request) -> tuple[int, dict[str, Any]]:
        """``_predict`` within ``--timeout``, counted from the request's start. Past it during
        the upload, a 408: a link too slow for the body is no overload, and a retry after 1 s
        could not help; past it afterwards, a 503 (queueing, model time)."""
        timeout = self.limits.timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            uploads, fields = await asyncio.wait_for(self._read_form(request), timeout)
        except TimeoutError:
            raise HTTPProblem(408, f"the upload took longer than {timeout:g} s (--timeout); "
                                   "send fewer or smaller images per request") from None
        try:
            return await _unless_client_leaves(request, asyncio.wait_for(
                self._predict(request, uploads, fields), deadline - loop.time()))
        except TimeoutError:
            raise HTTPProblem(503, f"request took longer than {timeout:g} s (--timeout); "
                                   "retry later or send fewer images") from None
        except BatcherStopped:
            raise HTTPProblem(503, "the service is shutting down; retry later") from None

    async def _predict(self, request: Request, uploads: list[tuple[UploadFile, bytes]],
                       fields: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The answer to a request whose form has been read."""
        unknown = sorted((set(fields) | set(request.query_params)) - set(OPTIONS))
        if unknown:
            raise HTTPProblem(422, f"unknown option {', '.join(map(repr, unknown))} (the options "
                                   f"are {', '.join(OPTIONS)})")
        given = {k: [*fields.get(k, []), *request.query_params.getlist(k)] for k in OPTIONS}
        for k, values in given.items():
            if len(values) > 1:  # explain=true and explain=false: which one was meant?
                raise HTTPProblem(422, f"option {k!r} given twice")
        opts = {k: _flag(k, values[0]) if values else False for k, values in given.items()}
        if opts["regions"] and opts["oversample"]:
            raise HTTPProblem(422, "regions scores centre crops: it cannot be combined with "
                                   "oversample")
        for k in ("explain", "regions"):
            if opts[k] and k in self._unavailable:
                raise HTTPProblem(422, self._unavailable[k])
        entries = [self._entry(i, up, data) for i, (up, data) in enumerate(uploads)]
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(self._decode(loop, e) for e in entries if not e.error))
        good = [e for e in entries if not e.error]
        if good and not opts["regions"]:
            batch = np.stack([e.array for e in good])
            probs = await self.batchers[opts["oversample"]].submit(batch)
            if self.fusion is not None:
                probs = self.fusion.fuse(probs, np.stack([e.hand for e in good]))
            for e, p in zip(good, probs, strict=True):
                self._set_scores(e, p)
        for e in good:  # per image and slow: outside the micro-batches, one at a time
            if opts["regions"]:
                await self._regions(loop, e)
            if opts["explain"] and not e.error:
                await self._explain(loop, e)
        self.images_ok += sum(not e.error for e in entries)
        self.images_failed += sum(bool(e.error) for e in entries)
        results = [self._result(e, opts) for e in entries]
        failed = [e for e in entries if e.error]
        if len(failed) == len(entries):
            status = (500 if any(e.status == 500 for e in failed)
                      else 413 if all(e.status == 413 for e in failed) else 422)
            return status, {"detail": "; ".join(e.error for e in failed), "results": results}
        return 200, {"results": results}

    async def _read_form(self, request: Request) -> tuple[list[tuple[UploadFile, bytes]],
                                                          dict[str, list[str]]]:
        """The uploads (with their bytes) and the text fields of a multipart body (each
        field's values in order)."""
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):  # media types ignore case
            raise HTTPProblem(415, f"expected a multipart/form-data body with images in the field "
                                   f"'files', got content type {ctype or 'none'!r}")
        size = request.headers.get("content-length")
        limit = self.limits.max_request_bytes
        if size is not None and size.isdigit() and int(size) > limit:
            raise HTTPProblem(413, f"request of {int(size)} bytes is above the limit of {limit} "
                                   "(--max-request-mb)")
        parser = _WholeBodyParser(request.headers, _counted(request.stream(), limit),
                                  max_files=self.limits.max_images, max_fields=MAX_FIELDS)
        try:
            form = await parser.parse()
        except MultiPartException as e:
            if "Too many files" in e.message:
                raise HTTPProblem(413, f"more than {self.limits.max_images} images in one "
                                       "request (--max-images)") from None
            if "Too many fields" in e.message:  # (a sound body: "malformed" sent them looking)
                raise HTTPProblem(422, f"more than {MAX_FIELDS} form fields in one request "
                                       "(options are a few fields; images go in 'files')") from None
            if "Part exceeded maximum size" in e.message:  # Starlette's bound on a text part
                if parser.part_name() == "files":
                    raise HTTPProblem(422, _FILES_AS_TEXT) from None
                raise HTTPProblem(422, f"the field {parser.part_name()!r} holds more than "
                                       f"{parser.max_part_size >> 10} KiB of text: an option is "
                                       "true or false") from None
            raise HTTPProblem(422, f"malformed multipart body: {e.message}") from None
        cut = parser.unfinished()
        if cut is not None:
            await form.close()
            raise HTTPProblem(422, f"malformed multipart body: it ends before its closing "
                                   f"boundary ({cut})")
        try:
            uploads: list[tuple[UploadFile, bytes]] = []
            fields: dict[str, list[str]] = {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile) and key != "files":  # (an option's name too)
                    _, where = _upload_names(value.filename, len(uploads) + 1)
                    raise HTTPProblem(422, f"{where} is sent in the field {key!r}: images go "
                                           "in the field 'files', e.g. curl -F "
                                           "files=@photo.jpg")
                if isinstance(value, UploadFile):
                    uploads.append((value, await self._read_upload(value)))
                elif key == "files":
                    raise HTTPProblem(422, _FILES_AS_TEXT)
                else:
                    fields.setdefault(key, []).append(value)
        finally:
            await form.close()
        if not uploads:
            raise HTTPProblem(422, "no image: send one or more files in the multipart field "
                                   "'files'")
        return uploads, fields

    async def _read_upload(self, up: UploadFile) -> bytes:
        # the body is bounded already; read at most one byte past the limit to detect it
        return await up.read(self.limits.max_upload_bytes + 1)

    def _entry(self, i: int, up: UploadFile, data: bytes) -> _Entry:
        name, where = _upload_names(up.filename, i + 1)
        e = _Entry(name=name, where=where, data=data)
        if len(data) > self.limits.max_upload_bytes:
            e.fail(413, f"upload above the limit of {self.limits.max_upload_bytes} bytes "
                        "(--max-upload-mb)")
        elif not data:
            e.fail(422, "empty file")
        return e

    async def _decode(self, loop: asyncio.AbstractEventLoop, e: _Entry) -> None:
        try:
            e.array, e.hand = await loop.run_in_executor(self.decode_pool, self._decode_sync,
                                                         e.data, e.where)
        except TooLarge as err:  # (check_pixels names the image itself)
            e.error, e.status = str(err), 413
        except ImageError as err:
            e.fail(422, _image_reason(err))

    def _decode_sync(self, data: bytes, where: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The network's input (S, S, 3) and, for a late-fused model, the hand-crafted
        features of the full-resolution image."""
        check_pixels(data, self.limits.max_pixels, where)  # before any pixel is decoded
        predictor = self.predictors[False]
        hand = predictor.hand_features(data) if self.fusion is not None else None
        return decode_image(predictor, data), hand

    def _set_scores(self, e: _Entry, p: np.ndarray) -> None:
        """The answer for one image from its class scores ``p`` (M,). NaN/inf scores (a model
        whose weights hold or overflow to NaN/inf) fail the entry, as ``vsent predict`` fails
        the row: they are no "negative", and JSON cannot carry them."""
        # predict's row (vsent predict and every engine write it): one rule for the label,
        # the rounding and non-finite scores
        row = scores_row(e.where, p, self.class_names)
        if row["error"]:
            self._non_finite(e)
            return
        e.cls = int(np.argmax(p))
        e.out = {k: row[k] for k in ("prob_positive", "label")}

    @staticmethod
    def _non_finite(e: _Entry) -> None:
        """Fail ``e`` for NaN/inf scores: the served model's fault, so a 500 for the server's
        operator (logged), not a 422 that would blame the image."""
        log.warning("%s: the model gave %s", _loggable(e.where), NON_FINITE_SCORES)
        e.fail(500, NON_FINITE_SCORES)

    async def _explain(self, loop: asyncio.AbstractEventLoop, e: _Entry) -> None:
        try:
            e.out["heatmap"], e.out["heatmap_empty"] = await loop.run_in_executor(
                self.aux_pool, self._explain_sync, e.data, e.cls)
        except ImageError as err:
            e.fail(422, _image_reason(err))
        except Exception as err:  # a bug: it fails this image only, not the request's others
            log.exception("%s: explain failed", _loggable(e.where))
            e.fail(500, f"explain failed (internal error {type(err).__name__}; see the "
                        "server's log)")

    def _explain_sync(self, data: bytes, target: int) -> tuple[str, bool]:
        """A base64 PNG: the Grad-CAM overlay of ``target``'s logit, at most
        :data:`HEATMAP_MAX_SIDE` pixels a side; and whether the map is all zero (no location
        raises the score: a uniform overlay, as explain.csv's empty_map). Runs in the aux
        thread only."""
        from PIL import Image

        from vsent.analyses.explain import explain_image, overlay_heatmap

        if self._cam_model is None:  # the hooks go on a copy: the shared model runs meanwhile
            self._cam_model = copy.deepcopy(self.model)
        r = explain_image(self._cam_model, data, target=target, device=self.device,
                          max_side=HEATMAP_MAX_SIDE)
        img = Image.fromarray(overlay_heatmap(r["image"], r["heatmap"]))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return base64.b64encode(buf.getvalue()).decode("ascii"), r["empty"]

    async def _regions(self, loop: asyncio.AbstractEventLoop, e: _Entry) -> None:
        try:
            r = await loop.run_in_executor(self.aux_pool, self._regions_sync, e.data)
        except ImageError as err:
            e.fail(422, _image_reason(err))
            return
        self._set_scores(e, r["proba"])
        if e.error:
            return
        if not np.isfinite(r["region_proba"]).all():
            self._non_finite(e)
            return
        e.out["regions"] = [
            {"box": [int(v) for v in box], "prob_positive": round(float(p[1]), 6)}
            for box, p in zip(r["boxes"], r["region_proba"], strict=True)
        ]

    def _regions_sync(self, data: bytes) -> dict[str, Any]:
        from vsent.analyses.proposals import make_edge_detector
        from vsent.analyses.regions import fused_proba

        if self._detector is None:
            self._detector = make_edge_detector()
        c = self.config
        return fused_proba(self.model, data, k=c.k, alpha=c.alpha, beta=c.beta,
                           n_proposals=c.n_proposals, senti_log=c.senti_log,
                           detector=self._detector,
                           device=self.device)

    @staticmethod
    def _result(e: _Entry, opts: dict[str, bool]) -> dict[str, Any]:
        row: dict[str, Any] = {"name": e.name, "prob_positive": None, "label": None,
                               "error": e.error}
        if not e.error:
            row.update(e.out)
        if opts["explain"]:
            row.setdefault("heatmap", None)
            row.setdefault("heatmap_empty", None)
        return row

    # ---- metrics ------------------------------------------------------------------------

    def metrics_text(self) -> str:
        """Prometheus text exposition of the counters and the batch-size histograms."""
        lines = [
            "# HELP vsent_requests_total Prediction requests answered, by HTTP status.",
            "# TYPE vsent_requests_total counter",
            *(f'vsent_requests_total{{status="{s}"}} {n}'
              for s, n in sorted(self.responses.items())),
            "# HELP vsent_images_total Images of the requests answered image by image, by outcome "
            "(all failed included; a request refused before its images were read, timed out or "
            "left by its client counts none).",
            "# TYPE vsent_images_total counter",
            f'vsent_images_total{{outcome="scored"}} {self.images_ok}',
            f'vsent_images_total{{outcome="failed"}} {self.images_failed}',
            "# HELP vsent_inflight_requests Prediction requests in progress.",
            "# TYPE vsent_inflight_requests gauge",
            f"vsent_inflight_requests {self.inflight}",
            "# HELP vsent_queued_images Decoded images waiting for a forward pass.",
            "# TYPE vsent_queued_images gauge",
            f"vsent_queued_images {sum(b.queued_images for b in self.batchers.values())}",
            "# HELP vsent_batch_size Images per forward pass (dynamic micro-batching).",
            "# TYPE vsent_batch_size histogram",
        ]
        crops = {CROP_LABEL[ov]: b for ov, b in self.batchers.items()}
        for mode, b in crops.items():
            for le in BATCH_BUCKETS:
                cum = sum(n for size, n in b.stats.sizes.items() if size <= le)
                lines.append(f'vsent_batch_size_bucket{{crop="{mode}",le="{le}"}} {cum}')
            lines += [f'vsent_batch_size_bucket{{crop="{mode}",le="+Inf"}} {b.stats.batches}',
                      f'vsent_batch_size_sum{{crop="{mode}"}} {b.stats.images}',
                      f'vsent_batch_size_count{{crop="{mode}"}} {b.stats.batches}']
        lines += ["# HELP vsent_batch_requests_max Most requests served by one forward pass.",
                  "# TYPE vsent_batch_requests_max gauge"]
        for mode, b in crops.items():
            lines.append(f'vsent_batch_requests_max{{crop="{mode}"}} '
                         f"{b.stats.max_requests}")
        lines += ["# HELP vsent_forward_seconds_total Wall time of the batched forward passes.",
                  "# TYPE vsent_forward_seconds_total counter"]
        for mode, b in crops.items():
            lines.append(f'vsent_forward_seconds_total{{crop="{mode}"}} {b.stats.seconds:.6f}')
        return "\n".join(lines) + "\n"


class _WholeBodyParser(MultiPartParser):
    """Starlette's multipart parser, which takes a body that stops before its closing boundary
    for a complete one and drops the unfinished part without a word (a client that forgets the
    closing boundary lost its last image, answered 200). This one remembers how far it got.

    A file part is numbered as the images' messages number it (the N-th file; httpx, requests
    and curl -F with an option first send the options before the files)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts, self._name, self._open, self._ended = 0, "", False, False
        self._files = 0  # file parts begun
        self._last = ""  # the last complete part, named as the images' messages name it

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._parts, self._name, self._open = self._parts + 1, "", True

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        part = self._current_part
        self._name = part.file.filename if part.file is not None else part.field_name
        self._files += part.file is not None

    def on_part_end(self) -> None:
        if self._current_part.file is not None:
            self._last = _upload_names(self._name, self._files)[1]
        else:
            self._last = f"the field {self._name!r}"
        super().on_part_end()
        self._open = False

    def on_end(self) -> None:
        super().on_end()
        self._ended = True

    async def parse(self) -> FormData:
        form = await super().parse()
        if not self._ended and self._open and self._current_part.file is not None:
            # the unfinished part is in no form item: nobody else would close its temporary file
            await self._current_part.file.close()
        return form

    def part_name(self) -> str:
        """The file or field name of the part read last (``""`` before its headers)."""
        return self._name

    def unfinished(self) -> str | None:
        """None for a body that reached its closing boundary, else where it stops."""
        if self._ended:
            return None
        if not self._parts:
            return "no part"
        if not self._open:
            return f"after {self._last}"
        if not self._name:
            where = f"the part after {self._last}" if self._last else "its first part"
            return f"{where}, cut in its headers"
        if self._current_part.file is None:
            return f"the field {self._name!r}, incomplete"
        return f"part {self._files}, {self._name}, incomplete"


def _upload_names(filename: str | None, n: int) -> tuple[str, str]:
    """The ``n``-th file of a request (from 1) as answers name it (its file name, else
    ``image n``) and as messages name it (``<name> (part n)``)."""
    name = filename or f"image {n}"
    return name, f"{name} (part {n})"


def _image_reason(err: ImageError) -> str:
    """The decoder's message without the name it gives uploaded bytes: the entry names the
    image (``where``)."""
    return str(err).removeprefix(f"{BYTES_NAME}: ")


def _loggable(text: str) -> str:
    """``text`` (which holds the client's file and field names) on one log line: control
    characters escaped (a line feed in a file name wrote a line of the client's choosing)."""
    return text.translate(_ESCAPES)


async def _unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """``await work``, stopped when the client disconnects first (:class:`ClientDisconnect`):
    nobody reads that answer, and the forward passes, the per-image thread and the
    ``--max-inflight`` slot it holds are other clients' (an image in progress in a thread
    still finishes). Run once the body is read: the request's next ASGI message is then the
    disconnect."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request itself was cancelled: so is its work
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    if gone.exception() is not None:  # the connection could not be watched: answer anyway
        return await task
    task.cancel()
    await asyncio.wait((task,))  # its cleanup (the batcher's futures) runs to its end
    # the answer was ready as the disconnect came (3.11's wait_for returns a result that is in
    # when it is cancelled): its images are counted already, so it is answered, not a 499;
    # any other exception is retrieved here (asyncio would log it as never retrieved)
    if not task.cancelled() and task.exception() is None:
        return task.result()
    raise ClientDisconnect("the client disconnected before its answer")


async def _disconnect(request: Request) -> None:
    """Return when the client disconnects (any rest of the body is passed over)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _internal_error(exc: Exception) -> tuple[int, dict[str, Any]]:
    """A bug, not the client's fault: a JSON 500, its traceback in the server's log."""
    log.error("POST /v1/predict: internal error", exc_info=exc)
    return 500, {"detail": f"internal error ({type(exc).__name__}); see the server's log"}


def _render(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], JSONResponse]:
    """``(status, body, response)``, rendered before the status is counted: a value JSON
    cannot hold (a bug) becomes a JSON 500, counted as such, not a plain-text 500 from the
    framework counted as the status it replaced."""
    headers = {"Retry-After": "1"} if status == 503 else None
    try:
        return status, body, JSONResponse(body, status_code=status, headers=headers)
    except (TypeError, ValueError) as exc:
        status, body = _internal_error(exc)
        return status, body, JSONResponse(body, status_code=status)


async def _counted(stream: AsyncGenerator[bytes, None], limit: int) -> AsyncGenerator[bytes, None]:
    """Pass the body through, refusing it (413) as soon as it exceeds ``limit`` bytes."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise HTTPProblem(413, f"request body above the limit of {limit} bytes "
                                   "(--max-request-mb)")
        yield chunk


def _flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    shown = value if len(value) <= SHOWN_VALUE else value[:SHOWN_VALUE] + "..."
    raise HTTPProblem(422, f"option {name!r}: expected true or false, got {shown!r}")


# --------------------------------------------------------------------------------------------
# the application

_PREDICT_DOC = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "one or more images (JPEG, PNG, ...)"},
                "oversample": {"type": "boolean", "default": False,
                               "description": "average over 10 crops"},
                "explain": {"type": "boolean", "default": False,
                            "description": "add a Grad-CAM overlay (base64 PNG) per image"},
                "regions": {"type": "boolean", "default": False,
                            "description": "late fusion with the top-K affective regions "
                                           "(slower; not with oversample)"},
            },
        }}},
    },
    "responses": {
        "200": {"description": "one entry per image: name, prob_positive, label, error"},
        "408": {"description": "the upload took longer than the request deadline"},
        "413": {"description": "request, upload, image or image count above a limit"},
        "415": {"description": "not a multipart body"},
        "422": {"description": "no readable image (each part named with the reason), bad option"},
        "503": {"description": "overloaded or past the request deadline; retry later"},
    },
}


def create_app(predictor: Predictor, *, checkpoint: str | Path | None = None,
               config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application serving ``predictor`` (loaded once, shared by all requests).

    ``checkpoint``: the file ``predictor`` was loaded from, for the model card.
    """
    service = Service(predictor, checkpoint=checkpoint, config=config)

    started = [time.monotonic()]  # reset when the server starts serving (the model loaded)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        started[0] = time.monotonic()
        for b in service.batchers.values():
            b.start()
        try:
            yield
        finally:
            for b in service.batchers.values():
                await b.stop()
            service.close()

    # FastAPI's own /docs and /redoc load their scripts from a CDN, blank on offline machines
    app = FastAPIOffline(
        title="vsent", version=__version__, lifespan=lifespan, static_url="/static-docs",
        description="Visual sentiment of images: a probability of positive per image.")
    app.state.service = service

    @app.post("/v1/predict", openapi_extra=_PREDICT_DOC, summary="Score images")
    async def predict(request: Request) -> JSONResponse:
        return await service.handle(request)

    @app.get("/v1/model", summary="Model card")
    async def model() -> dict[str, Any]:
        return {**service.card, "limits": service.limits.to_dict(),
                "batching": {"max_batch": service.config.max_batch,
                             "max_wait_ms": service.config.max_wait_ms}}

    @app.head("/healthz", include_in_schema=False)  # uptime checkers probe with HEAD
    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.monotonic() - started[0], 3)}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> str:
        return service.metrics_text()

    @app.head("/", include_in_schema=False)  # uptime checkers probe with HEAD
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
