"""Export a vsent checkpoint to ONNX or TorchScript, and score images with an exported model.

``export_model(checkpoint, out, format="onnx" | "torchscript")`` writes a self-describing file:

* input ``image``: float32 (B, 3, crop, crop), pixels already cropped and normalised as
  ``preprocess`` says (``(pixel - mean) / std`` in 0..255 units; ``mean`` and ``std`` are listed
  in RGB order even when ``channel_order`` is BGR (CaffeNet, PCNN): normalise the RGB pixels,
  then reorder the channels); the batch dimension is dynamic;
* outputs ``logits`` (B, C) and ``probabilities`` (B, C) (softmax of the logits);
* metadata (ONNX ``metadata_props``; TorchScript extra file ``vsent.json``): ``vsent.format``
  (:data:`EXPORT_FORMAT`), ``vsent.preprocess`` (JSON of :class:`Preprocess`),
  ``vsent.input`` (JSON of :data:`INPUT_PIPELINE`: how the pixels become ``image``),
  ``vsent.class_names`` (JSON list), ``vsent.model`` (name, family, spec), ``vsent.card`` (the
  checkpoint's model card, :mod:`vsent.models.card`), ``vsent.exported_with`` (the vsent,
  torch and, for ONNX, onnx versions and opset that wrote the file; the card's ``versions`` are
  the checkpoint's training-time ones). An ONNX file's producer is "vsent" at vsent's version.

After writing, the export is checked against PyTorch on a seeded batch (``verify``): the
probabilities must agree to :data:`TOLERANCE`, or :class:`ExportError` is raised.

:class:`ExportedPredictor` is :class:`vsent.predict.Predictor` with the network replaced by the
export (:class:`ExportedModule`: an onnxruntime session, or the TorchScript module in torch):
decoding, crops, 10-crop averaging and the rows (path, prob_positive, label, error) are
Predictor's own, so every engine gives the same rows.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import itertools
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.engines import Engine, EngineOptions
from vsent.errors import VsentError, WeightsError, import_extra, one_line
from vsent.files import DISK_FULL, make_folder, temp_path
from vsent.models.base import ModelInfo, non_finite_tensors
from vsent.predict import Predictor

log = logging.getLogger(__name__)

EXPORT_FORMAT = "vsent-export/1"
#: Largest difference of probabilities allowed between an export and PyTorch.
TOLERANCE = 1e-4
#: ONNX opset of the exports (supported by onnxruntime >= 1.14).
OPSET = 17
ExportFormat = Literal["onnx", "torchscript"]


class ExportError(VsentError):
    """An export that cannot be written, read, or does not match PyTorch."""


def require(module: str, what: str) -> Any:
    """``import module`` (onnx or onnxruntime), or an :class:`ExportError` naming the onnx
    extra: they come with ``vsent[onnx]``, not with ``vsent[serve]``. ``what`` says what
    needed it ("vsent export --format onnx")."""
    return import_extra(module, what, "onnx", ExportError)


class _WithSoftmax(nn.Module):
    """``x -> (logits, softmax(logits))``: the exported graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(x).float()
        return logits, torch.softmax(logits, dim=1)


#: How vsent turns an image into the ``image`` input (``vsent.input`` in an export): a reader
#: of ``resize`` would otherwise take it for the usual shorter side (scores off by
#: up to 0.05 with onnxruntime alone).
INPUT_PIPELINE = {
    "decode": "RGB, 8 bits a channel, EXIF orientation applied (a JPEG much larger than "
              "resize is decoded at a reduced DCT scale first)",
    "resize": "square warp to resize x resize, aspect ratio not kept (Pillow bilinear, "
              "antialiased)",
    "crop": "centre crop x crop (offset round((resize - crop) / 2)); --oversample: the mean "
            "of the probabilities (softmax, not logits) over the 4 corner and centre crops and "
            "their mirrors",
    "normalise": "(pixel - mean) / std in 0..255 units, RGB order, then channel_order",
}


def export_metadata(model: nn.Module, meta: Mapping[str, Any],
                    card: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The string key -> JSON value metadata stored in an export (see module docstring)."""
    info: ModelInfo = model.info
    class_names = list(meta.get("class_names") or ("negative", "positive"))
    out = {
        "vsent.format": EXPORT_FORMAT,
        "vsent.preprocess": json.dumps(info.preprocess.to_dict()),
        "vsent.input": json.dumps(INPUT_PIPELINE),
        "vsent.class_names": json.dumps(class_names),
        "vsent.model": json.dumps({"name": info.name, "family": info.family,
                                   "spec": model.spec,
                                   "num_outputs": info.num_outputs,
                                   "interpolation": info.extra.get("interpolation")}),
    }
    if card is not None:
        out["vsent.card"] = json.dumps(card)
    return out


# file name endings that say a format (loading reads the file's content, not its name)
_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".ts", ".pt", ".pth")}


def _check_out(out: Path, format: ExportFormat) -> None:  # noqa: A002
    """``--out`` names a file (no folder, link or device) whose ending says its format: a .onnx
    file that is not ONNX, or an export named notes.txt, misleads people and tools."""
    named = _SUFFIXES[format][0]
    if out.is_dir():
        raise ExportError(f"--out {out}: is a folder; give a file name (e.g. {out / 'model'}"
                          f"{named})")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        # the export replaces --out by a rename: a device or a link would become a plain file
        raise ExportError(f"--out {out}: exists and is not a regular file (a link, a device); "
                          "give the name of a file")
    if out.suffix.lower() in _SUFFIXES[format]:
        return
    other = "torchscript" if format == "onnx" else "onnx"
    if out.suffix.lower() in _SUFFIXES[other]:
        raise ExportError(f"--out {out}: a {out.suffix} name is for --format {other}; name the "
                          f"{format} file {out.with_suffix(named).name} or give "
                          f"--format {other}")
    raise ExportError(f"--out {out}: --format {format} writes a file named *"
                      f"{', *'.join(_SUFFIXES[format])}; name it {out.stem}{named}")


def export_model(
    checkpoint: str | PathLike[str],
    out: str | PathLike[str],
    *,
    format: ExportFormat = "onnx",  # noqa: A002 - the CLI option's name
    verify: bool = True,
    opset: int = OPSET,
) -> dict[str, Any]:
    """Write ``checkpoint``'s model to ``out`` as ONNX or TorchScript (module docstring).

    Returns ``{"out", "format", "max_abs_diff"}`` (the verification's largest probability
    difference, None without ``verify``). Raises :class:`ExportError` when the export fails or
    differs from PyTorch by more than :data:`TOLERANCE`.
    """
    from vsent.models.card import cut_paths, model_card
    from vsent.models.checkpoint import load_checkpoint

    if format not in ("onnx", "torchscript"):
        raise ExportError(f"--format {format!r}: use onnx or torchscript")
    _check_out(Path(out), format)  # before the checkpoint is read or a folder is made
    card = model_card(checkpoint)
    if card["fusion"]:  # its other half is OpenCV and numpy code, not a graph
        raise ExportError(f"{checkpoint}: a late-fused model (network + "
                          f"{card['fusion']['features']}); an export would hold the network "
                          "alone: score it with `vsent predict` or `vsent serve`")
    # a file others get: the data's and weights' folders and the command lines stay here;
    # the checkpoint's path, absolute, is what `vsent explain` of the export points to
    cut_paths(card)
    card["checkpoint"] = str(Path(checkpoint).absolute())
    model, meta = load_checkpoint(checkpoint)
    result = export_module(model, out, metadata=export_metadata(model, meta, card),
                           format=format, verify=verify, opset=opset)
    log.debug("exported %s to %s (%s)", checkpoint, out, format)  # the CLI prints its line
    return result


def export_module(
    model: nn.Module,
    out: str | PathLike[str],
    *,
    metadata: Mapping[str, str],
    format: ExportFormat = "onnx",  # noqa: A002 - the CLI option's name
    verify: bool = True,
    opset: int = OPSET,
) -> dict[str, Any]:
    """:func:`export_model` for a model in memory (e.g. a zero-shot CLIP model) with the
    ``metadata`` of :func:`export_metadata`. ``model`` is traced in eval mode on the CPU and
    given back in the modes and on the device it had."""
    if format not in ("onnx", "torchscript"):
        raise ExportError(f"--format {format!r}: use onnx or torchscript")
    out = Path(out)
    _check_out(out, format)
    if format == "onnx":  # before any work: the verification runs the file in onnxruntime
        for module in ("onnx", "onnxruntime") if verify else ("onnx",):
            require(module, "vsent export --format onnx")
    metadata = {**metadata, "vsent.exported_with": json.dumps(_exporter_versions(format, opset))}
    with _eval_on_cpu(model) as model:
        return _export(model, out, metadata, format, verify, opset)


def _export(model: nn.Module, out: Path, metadata: Mapping[str, str],
            format: ExportFormat, verify: bool, opset: int) -> dict[str, Any]:  # noqa: A002
    """:func:`export_module`'s work on ``model``, in eval mode on the CPU."""
    pre = model.info.preprocess
    try:
        make_folder(out.parent)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot create its folder ({exc.strerror})") from None
    wrapped = _WithSoftmax(model).eval()
    example = torch.randn(2, 3, pre.crop, pre.crop, generator=torch.Generator().manual_seed(0))
    tmp = temp_path(out)  # (one name per writer: two exports of one --out never share it)
    # TorchScript names the root of its archive after the file it writes: the final name, in
    # a folder of its own (the temporary name, its pid and host, was in every export)
    work = tmp if format == "onnx" else tmp / out.name
    try:  # before the export: a folder it cannot write to fails here, named
        work.parent.mkdir(exist_ok=True)
        work.open("wb").close()
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot write it ({exc.strerror})") from None
    diff = None
    try:
        try:
            if format == "onnx":
                _write_onnx(wrapped, example, work, metadata, opset, out)
            else:
                _write_torchscript(wrapped, example, work, metadata)
        except OSError as exc:  # a full disk names --out, not the file written before renaming
            if exc.errno not in DISK_FULL:
                raise
            raise OSError(exc.errno, exc.strerror, str(out)) from None
        if verify:  # before the rename: a failed export never replaces a good one
            diff = verify_export(model, work)
            if not np.isfinite(diff):  # ``nan > TOLERANCE`` is False: NaN would pass
                bad = non_finite_tensors(model)
                why = (f"the model's weights hold NaN/inf ({', '.join(bad[:3])}"
                       f"{', ...' if len(bad) > 3 else ''}: a training that diverged)" if bad
                       else "its scores are NaN/inf")
                raise ExportError(f"{out}: not written: {why}")
            if diff > TOLERANCE:
                raise ExportError(f"{out}: the {format} export differs from PyTorch by "
                                  f"{diff:.2e} (> {TOLERANCE:g}) in probability; not written")
        os.replace(work, out)
    finally:
        work.unlink(missing_ok=True)
        if work != tmp:
            with contextlib.suppress(OSError):
                tmp.rmdir()
    return {"out": str(out), "format": format, "max_abs_diff": diff}


@contextmanager
def _eval_on_cpu(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode on the CPU (as it is traced and verified), its modes and device
    given back afterwards: a caller may export between epochs and train on. Not a copy (a
    model can take GBs), unless its tensors are spread over several devices."""
    devices = {t.device for t in itertools.chain(model.parameters(), model.buffers())}
    if len(devices) > 1:  # one .to() could not put them back
        yield copy.deepcopy(model).eval().cpu()
        return
    modes = [(m, m.training) for m in model.modules()]  # a frozen BatchNorm stays frozen
    try:
        yield model.eval().cpu()
    finally:
        if devices:
            model.to(devices.pop())
        for m, training in modes:
            m.training = training


def _exporter_versions(format: ExportFormat, opset: int) -> dict[str, Any]:  # noqa: A002
    """What wrote an export (the checkpoint's card records what trained it)."""
    from vsent import __version__

    out: dict[str, Any] = {"vsent": __version__, "torch": torch.__version__}
    if format == "onnx":
        out.update(onnx=require("onnx", "vsent export --format onnx").__version__, opset=opset)
    return out


@contextmanager
def _quiet() -> Iterator[None]:
    """torch's deprecation notices for the TorchScript-based ONNX exporter, tracer and loader
    (used on purpose: exact, and faster than the dynamo exporter for these graphs) silenced, and
    its tracer warnings about Python-level shape checks: every export is compared with PyTorch
    on another batch size afterwards (:func:`verify_export`), and its notes on slices it cannot
    fold into constants (PCNN, opset >= 10: they stay operators, and the export is verified)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning,
                                         torch.jit.TracerWarning))
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        yield


@contextmanager
def _no_mha_fastpath() -> Iterator[None]:
    """nn.MultiheadAttention's inference fast path (a fused operator ONNX lacks) switched off,
    so CLIP's attention exports as plain matrix products."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with _quiet():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _write_onnx(wrapped: nn.Module, example: Tensor, path: Path,
                metadata: Mapping[str, str], opset: int, out: Path) -> None:
    """The ONNX file of ``wrapped`` with ``metadata`` at ``path`` (``out``: the name the user
    gave, for messages)."""
    from vsent import __version__

    onnx = require("onnx", "vsent export --format onnx")
    # a folder of its own, removed whatever happens: above protobuf's 2 GiB the exporter writes
    # each weight to a file beside the graph, which would be left in --out's folder
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=path.parent) as scratch:
        graph = Path(scratch) / "graph.onnx"
        try:
            with torch.no_grad(), _no_mha_fastpath():
                # The TorchScript-based exporter: faster than dynamo here and exact for these
                # graphs; the batch axis stays dynamic.
                torch.onnx.export(
                    wrapped, (example,), str(graph), input_names=["image"],
                    output_names=["logits", "probabilities"], opset_version=opset,
                    dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"},
                                  "probabilities": {0: "batch"}},
                    dynamo=False,
                )
        except Exception as exc:  # the exporter raises many kinds for unsupported operators
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise  # no fault of the model: the CLI's full-disk line
            raise ExportError(f"ONNX export failed ({one_line(exc)})") from exc
        size = sum(f.stat().st_size for f in Path(scratch).iterdir())
        too_large = ExportError(f"{out}: the model's ONNX graph takes {size / 2**30:.1f} GiB, "
                                "above the 2 GiB one ONNX file can hold; export it with "
                                "--format torchscript")
        if any(f != graph for f in Path(scratch).iterdir()):  # its weights in files beside it
            raise too_large
        proto = onnx.load(str(graph))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "vsent", __version__  # not torch's version
    try:
        onnx.save(proto, str(path))
    except ValueError:  # protobuf's 2 GiB limit, passed by the metadata
        raise too_large from None


def _write_torchscript(wrapped: nn.Module, example: Tensor, path: Path,
                       metadata: Mapping[str, str]) -> None:
    try:
        with torch.no_grad(), _no_mha_fastpath():
            traced = torch.jit.trace(wrapped, (example,), check_trace=False)
    except Exception as exc:  # tracing raises many kinds for unsupported code
        raise ExportError(f"TorchScript export failed ({one_line(exc)})") from exc
    # torch's file writer aborts the process on a full disk (exit 134, the partial file left
    # behind): a disk without room for the weights is refused before it starts. (Written
    # through Python instead, the archive would be held in memory: twice a large model's size.)
    need = sum(t.numel() * t.element_size() for t in wrapped.state_dict().values())
    need += need // 20 + 2**20  # the archive's code, constants and zip records
    if shutil.disk_usage(path.parent).free < need:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    with _quiet():
        torch.jit.save(traced, str(path), _extra_files={"vsent.json": json.dumps(metadata)})


# --- reading exports --------------------------------------------------------------------------


def read_metadata(path: str | PathLike[str]) -> dict[str, str]:
    """The vsent metadata of an export (``.onnx`` or TorchScript), without running it."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: a folder, not a vsent export")
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if path.stat().st_size == 0:  # (onnx reads it as a model without metadata)
        raise ExportError(f"{path}: an empty file, not a vsent export")
    if _is_onnx(path):
        onnx = require("onnx", f"{path}: reading an ONNX export")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf DecodeError and friends
            raise ExportError(f"{path}: not an ONNX file ({one_line(exc)})") from exc
        meta = {p.key: p.value for p in proto.metadata_props}
    else:
        files = {"vsent.json": ""}
        try:
            with _quiet():
                torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except Exception as exc:  # RuntimeError for anything that is not a TorchScript archive
            if _is_torch_save(path):
                raise ExportError(f"{path}: a checkpoint, not an export: score it without "
                                  "--engine onnx, or export it with `vsent export`") from None
            raise ExportError(f"{path}: not a TorchScript file ({one_line(exc)})") from exc
        meta = json.loads(files["vsent.json"] or "{}")
    if "vsent.format" not in meta:
        raise ExportError(f"{path}: not a vsent export (no vsent metadata in it)")
    if meta["vsent.format"] != EXPORT_FORMAT:
        raise ExportError(f"{path}: not a vsent export (format {meta['vsent.format']!r}, "
                          f"expected {EXPORT_FORMAT!r})")
    return meta


def _is_torch_save(path: Path) -> bool:
    """True for a zip written by ``torch.save`` (a checkpoint; TorchScript adds constants.pkl)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return (any(n.endswith("/data.pkl") for n in names)
            and not any(n.endswith("/constants.pkl") for n in names))


def _is_onnx(path: Path) -> bool:
    # TorchScript archives are zip files ("PK"); ONNX is a protobuf
    with path.open("rb") as f:
        return f.read(2) != b"PK"


class ExportedModule(nn.Module):
    """An exported model behind the vsent model interface, enough for :func:`vsent.inference.
    infer` and :class:`Predictor`: ``info`` (from the export's metadata) and
    ``forward(x: float (B, 3, c, c)) -> logits (B, C)``. ONNX runs in onnxruntime (CUDA when the
    device is cuda and onnxruntime has it), TorchScript in torch.

    It has no feature/head split (``forward_features`` raises): analyses need the checkpoint.
    """

    def __init__(self, path: str | PathLike[str], *, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        self.engine = "onnx" if _is_onnx(self.path) else "torchscript"
        try:
            self._describe(self.metadata)
        except (KeyError, ValueError, TypeError, VsentError) as exc:
            # e.g. an entry a metadata tool dropped: named here, not a KeyError traceback
            why = one_line(exc) if isinstance(exc, VsentError) else \
                f"{type(exc).__name__} {one_line(exc)}"
            kind = "ONNX" if self.engine == "onnx" else "TorchScript"
            raise ExportError(f"{self.path}: not a readable {kind} export (its vsent "
                              f"metadata: {why})") from None
        self._device = torch.device(device)
        self._session: Any = None
        self._script: Any = None

    def _describe(self, metadata: Mapping[str, str]) -> None:
        """``class_names``, ``card``, ``spec`` and ``info`` from the export's metadata."""
        self.class_names = json.loads(metadata["vsent.class_names"])
        described = json.loads(metadata["vsent.model"])
        self.card = json.loads(metadata["vsent.card"]) if "vsent.card" in metadata else None
        self.spec = dict(described["spec"])  # the checkpoint's, as create_model records it
        self.info = ModelInfo(
            name=described["name"], family=described["family"],
            preprocess=Preprocess.from_dict(json.loads(metadata["vsent.preprocess"])),
            num_outputs=int(described["num_outputs"]), head="", new_layers=(),
            probe_layers=(), cam_layer="", feature_dim=0,
            extra={"engine": self.engine, "interpolation": described.get("interpolation")},
        )

    def _apply(self, fn, *args, **kwargs):  # .to(device): remember where inputs will be
        device = fn(torch.zeros(())).device
        if device != self._device:
            self._device = device
            self._session = self._script = None  # reopened on first use for the new device
        return super()._apply(fn, *args, **kwargs)

    def open(self) -> None:
        """Load the file into onnxruntime (or torch) now, if not yet done: a file it cannot run
        (an opset newer than it, onnxruntime missing) is then an :class:`ExportError` at
        start-up rather than in every request, and the first request does not pay for it."""
        if self._session is None and self._script is None:
            self._open()

    @property
    def provider(self) -> str | None:
        """The onnxruntime execution provider running the file (None for TorchScript, or before
        :meth:`open`): CPU also where the device is cuda, when this onnxruntime lacks CUDA."""
        return self._session.get_providers()[0] if self._session is not None else None

    def _open(self) -> None:
        if self.engine == "onnx":
            ort = require("onnxruntime", f"{self.path}: running an ONNX export")
            providers = ["CPUExecutionProvider"]
            if self._device.type == "cuda":
                if "CUDAExecutionProvider" in ort.get_available_providers():
                    providers.insert(0, "CUDAExecutionProvider")
                else:  # the CPU-only onnxruntime package: say so, not a silently slow run
                    log.warning("%s: this onnxruntime has no CUDA provider (install "
                                "onnxruntime-gpu for --device cuda): running on the CPU",
                                self.path)
            try:
                self._session = ort.InferenceSession(str(self.path), providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ExportError(f"{self.path}: onnxruntime cannot load it "
                                  f"({one_line(exc)})") from exc
            # metadata edited by hand (or another tool) against its graph: every image would
            # be an onnxruntime error (a 500 from serve), not one line at load
            size = tuple(self._session.get_inputs()[0].shape[-2:])
            crop = self.info.preprocess.crop
            if all(isinstance(d, int) for d in size) and size != (crop, crop):
                self._session = None
                raise ExportError(f"{self.path}: not a readable ONNX export (its vsent "
                                  f"metadata: crop {crop}, but its graph takes {size[0]} x "
                                  f"{size[1]} images)")
        else:
            with _quiet():
                self._script = torch.jit.load(str(self.path), map_location=self._device).eval()

    def forward(self, x: Tensor) -> Tensor:
        """float32 (B, 3, c, c) normalised crops -> logits (B, C) on ``x``'s device."""
        self.open()
        if self._script is not None:  # back on x's device, as the ONNX branch (no GPU test)
            return self._script(x.to(self._device))[0].to(x.device)
        logits = self._session.run(["logits"], {"image": x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(logits)).to(x.device)

    def forward_features(self, x: Tensor) -> Tensor:
        raise VsentError(f"{self.path}: an exported model has no feature layer; use the "
                         "checkpoint for analyses")

    def forward_head(self, features: Tensor) -> Tensor:
        raise VsentError(f"{self.path}: an exported model has no separate head; use the "
                         "checkpoint for analyses")


class ExportedPredictor(Predictor):
    """:class:`Predictor` running an exported model (ONNX via onnxruntime, or TorchScript).

    Same rows and arguments as Predictor; only the forward pass differs.

    >>> p = ExportedPredictor.from_file("model.onnx")          # doctest: +SKIP
    >>> rows = list(p.score(["a.jpg", "b.jpg"]))            # doctest: +SKIP
    """

    @classmethod
    def from_file(cls, path: str | PathLike[str], **kwargs: Any) -> ExportedPredictor:
        """Predictor of the export at ``path`` (class names from its metadata), the file
        loaded into its runtime on the predictor's device (:meth:`ExportedModule.open`)."""
        module = ExportedModule(path)
        kwargs.setdefault("class_names", module.class_names)
        predictor = cls(module, **kwargs)
        module.open()
        return predictor

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> ExportedPredictor:
        """Refused: the inherited constructor reads a vsent checkpoint, which this predictor
        does not run."""
        if Path(path).suffix.lower() in {names[0] for names in _SUFFIXES.values()}:
            raise WeightsError(f"{path}: an export: ExportedPredictor.from_file runs it "
                               "(from_checkpoint is for a vsent checkpoint, with Predictor)")
        raise WeightsError(f"{path}: ExportedPredictor runs an exported model; export it first "
                           "(vsent export --format onnx) and use ExportedPredictor.from_file")


class ExportedEngine(Engine):
    """``vsent predict --engine onnx`` (or ``torchscript``): :class:`ExportedPredictor` on the
    export named by ``options.model`` (a :class:`vsent.engines.EngineOptions`); the rows are
    Predictor's."""

    name = "onnx"

    def __init__(self, options: EngineOptions) -> None:
        self.predictor = ExportedPredictor.from_file(
            options.model, oversample=options.oversample, batch_size=options.batch_size,
            device=options.device, workers=options.workers)

    def score(self, paths: Iterator[Path]) -> Iterator[dict[str, Any]]:
        return self.predictor.score(paths)


#: The names before session 37 (they also ran TorchScript exports).
OnnxPredictor, OnnxEngine = ExportedPredictor, ExportedEngine


def verify_export(model: nn.Module, path: str | PathLike[str], n: int = 4,
                  seed: int = 0) -> float:
    """Largest |probability difference| between ``model`` (PyTorch) and its export ``path`` on
    ``n`` seeded random inputs (normalised crops, float (n, 3, c, c))."""
    crop = model.info.preprocess.crop
    x = torch.randn(n, 3, crop, crop, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), _eval_on_cpu(model) as model:
        ref = torch.softmax(model(x).float(), dim=1)
        got = torch.softmax(ExportedModule(path)(x).float(), dim=1)
    return float((ref - got).abs().max())


