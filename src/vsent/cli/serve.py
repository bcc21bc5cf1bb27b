"""``vsent serve``: an HTTP service and web page for a trained model (FastAPI on uvicorn).

Only argparse and vsent's CLI modules (common, predict's region options) are imported here:
FastAPI, uvicorn and torch load when the command runs, so ``vsent --help`` stays fast and
works without the ``serve`` extra.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

from vsent.cli.common import DEVICES

MB = 1 << 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="HTTP service and web page for a trained model",
        description="Serve a checkpoint over HTTP: POST /v1/predict (multipart images), "
                    "GET /v1/model, /healthz, /metrics, OpenAPI docs at /docs, and a web page at "
                    "/. The model is loaded once at start-up; one that cannot be loaded stops "
                    "the command (exit 2). Concurrent requests share forward passes.",
    )
    p.add_argument("--model", required=True,
                   help="checkpoint (model.pt) from finetune/crossval, or with --engine onnx "
                        "(or torchscript) an "
                        "export from `vsent export` (.onnx, or TorchScript)")
    p.add_argument("--engine", choices=("default", "onnx", "torchscript"), default="default",
                   help="default: PyTorch on the checkpoint; onnx or torchscript (the same "
                        "engine): an export, on onnxruntime or torch (its card is the one "
                        "stored in the export; no explain/regions)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    g = p.add_argument_group("batching")
    g.add_argument("--max-batch", type=int, default=32, help="images per forward pass (32)")
    g.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to share its batch (5 ms)")
    g.add_argument("--workers", type=int, default=None,
                   help="decoding threads (default: the CPUs this process may use, at most 32)")
    from vsent.cli.predict import add_region_settings

    # as predict --regions takes them: the service's rows can be predict's
    add_region_settings(p.add_argument_group(
        "affective regions (requests with regions=true; as vsent predict --regions)"))
    g = p.add_argument_group("limits (413 above a size, 503 when overloaded or late)")
    g.add_argument("--max-upload-mb", type=float, default=20.0, help="per uploaded image (20)")
    g.add_argument("--max-request-mb", type=float, default=64.0, help="per request body (64)")
    g.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="width x height per image, read from its header (40000000)")
    g.add_argument("--max-images", type=int, default=32, help="images per request (32)")
    g.add_argument("--timeout", type=float, default=30.0,
                   help="seconds per request, upload included: 408 if the upload is not in by "
                        "then (30)")
    g.add_argument("--max-inflight", type=int, default=64,
                   help="requests handled at once; more get 503 (64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsent.errors import VsentError, import_extra

    # the options are checked first: a bad one is named whether or not the extra is installed
    if not 0 <= args.port <= 65535:
        raise VsentError(f"--port must be in 0..65535, got {args.port}")
    for name in ("max_upload_mb", "max_request_mb"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise VsentError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")
        if value * MB < 1:  # said in MB, as typed (Limits would name the byte count, 0)
            raise VsentError(f"--{name.replace('_', '-')} {value:g} is less than one byte "
                             f"(1 MB is {MB} bytes)")
    uvicorn = import_extra("uvicorn", "vsent serve", "serve")
    # the service imports the rest of the extra (fastapi, fastapi-offline, python-multipart)
    serve = import_extra("vsent.serve", "vsent serve", "serve")
    Limits, ServeConfig, create_app = serve.Limits, serve.ServeConfig, serve.create_app
    from vsent.predict import Predictor

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * MB),
                    max_request_bytes=int(args.max_request_mb * MB),
                    max_pixels=args.max_pixels, max_images=args.max_images,
                    timeout_s=args.timeout, max_inflight=args.max_inflight)
    config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         decode_workers=args.workers, limits=limits, k=args.k,
                         alpha=args.alpha, beta=args.beta, n_proposals=args.n_proposals,
                         senti_log=args.senti_log)  # (validated when built)
    _check_address(args.host, args.port)
    # loaded once, before the server starts: a bad checkpoint is one line and exit 2
    if args.engine in ("onnx", "torchscript"):
        from vsent.export import ExportedPredictor

        predictor = ExportedPredictor.from_file(args.model, device=args.device,
                                                batch_size=args.max_batch)
    else:
        predictor = Predictor.from_checkpoint(args.model, device=args.device,
                                              batch_size=args.max_batch)
    app = create_app(predictor, checkpoint=args.model, config=config)
    card = app.state.service.card
    _check_region_settings(args, card["request_options"].get("regions", False))
    served = [k for k, ok in card["request_options"].items() if ok]
    where = str(predictor.device)
    provider = getattr(predictor.model, "provider", None)  # an ONNX export
    if provider is not None:  # onnxruntime without CUDA runs on the CPU whatever --device says
        where += f" (onnxruntime {provider})"
    print(f"vsent serve: {(card.get('model') or {}).get('name') or 'model'} from {args.model} "
          f"on {where}; options {', '.join(served)}; limits: "
          f"{_upload_limit(args)}, {args.max_request_mb:g} MiB a request, "
          f"{limits.max_pixels} pixels, {limits.max_images} images, {limits.timeout_s:g} s, "
          f"{limits.max_inflight} requests at once", file=sys.stderr)
    # a malformed body is answered 422 and its reason logged by the service: the parser's own
    # warning line ("Expected boundary character 45, ...") would only repeat it without context
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    if not _local_only(args.host):
        print(f"vsent serve: listening on {args.host}, reachable from other machines; there is "
              "no authentication", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _local_only(host: str) -> bool:
    """True when ``host`` is reachable from this machine only: ``localhost`` or a loopback
    address (127.0.0.0/8, ``::1``); any other name or address is warned about at start."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _check_address(host: str, port: int) -> None:
    """VsentError unless ``host:port`` can be listened on (checked before the model loads;
    uvicorn would log the failure and exit without the one-line error)."""
    import socket

    from vsent.errors import VsentError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise VsentError(f"--host {host}: {e.strerror}") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(addr)
        except OSError as e:
            raise VsentError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def _check_region_settings(args: argparse.Namespace, served: bool) -> None:
    """VsentError when region settings are given for a model that serves no regions (an
    export, a late-fused model): as predict refuses options of a mode that is off, they would
    be ignored."""
    from vsent.cli.predict import region_settings_given
    from vsent.errors import VsentError

    given = region_settings_given(args)
    if given and not served:
        raise VsentError(f"{', '.join(given)}: this model serves no regions (an export or a "
                         "late-fused model), so the setting would be ignored")


def _upload_limit(args: argparse.Namespace) -> str:
    """The banner's image limit: an image is part of its request, so a --max-upload-mb above
    --max-request-mb is never reached (the banner said the one that is not)."""
    if args.max_upload_mb <= args.max_request_mb:
        return f"{args.max_upload_mb:g} MiB an image"
    return (f"{args.max_request_mb:g} MiB an image (the request's: --max-upload-mb "
            f"{args.max_upload_mb:g} is above --max-request-mb)")
