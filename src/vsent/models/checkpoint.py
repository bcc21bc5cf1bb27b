"""Self-describing checkpoints: architecture spec, weights, preprocessing, class names, metadata.

A checkpoint is a ``torch.save``'d dict::

    {"format": "vsent-checkpoint/1", "spec": model.spec, "state_dict": ...,
     "preprocess": model.info.preprocess.to_dict(), "class_names": [...],
     "info": {"family", "extra", "num_outputs"}, "versions": {...}, "meta": {...}
     [, "fusion": {...}]}

``versions`` (vsent, torch, ... and timm/open_clip for those families) is recorded when the file
is written; ``meta`` is what the caller passes: crossval/finetune give ``init``, ``data``,
``subset``, ``folds``, ``fold``, ``n_train``, ``training`` and ``train`` (the solver), so a card
is complete outside the run.

``fusion`` (optional) is the hand-crafted half of a late-fused model
(:meth:`vsent.analyses.fused_model.LateFusion.to_state`: arrays as tensors); a
:class:`vsent.predict.Predictor` applies it.

It holds only plain types and tensors (``meta`` is converted to JSON types), so it loads with
``torch.load(weights_only=True)`` and a file cannot run code when opened.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError, WeightsError
from vsent.files import atomic_open, check_path_arg, expand_user
from vsent.models.registry import rebuild_model
from vsent.runs import to_jsonable

CHECKPOINT_FORMAT = "vsent-checkpoint/1"
DEFAULT_CLASS_NAMES = ("negative", "positive")
#: The first bytes of torch.save's zip format (a local file header), as torch checks them.
_ZIP_MAGIC = b"PK\x03\x04"
#: Why a cut or damaged checkpoint cannot be read.
_TRUNCATED = "truncated or corrupt: an incomplete file (copied or saved part way?)"
#: What to do with an export handed over as a checkpoint: said for every command that reads
#: checkpoints (serve too, not only predict), so it names the option, not one command.
EXPORT_HINT = ("`vsent predict` and `vsent serve` run it with --engine onnx (or torchscript: "
               "the same engine)")


def save_checkpoint(
    path: str | PathLike[str],
    model: nn.Module,
    *,
    class_names: Sequence[str] | None = None,
    fusion: Mapping[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """Write ``model`` (built by :func:`create_model`) and ``meta`` to ``path`` atomically.

    The file is written next to ``path`` and renamed, so a crash never leaves a truncated
    checkpoint. ``class_names[i]`` names output ``i`` (default: negative, positive; a wider
    model, CaffeNet's raw ablations, trains its outputs 0 and 1 on the labels and names the
    others class2, class3, ...); ``meta`` must be JSON-like (numpy values, paths and
    dataclasses are converted); ``fusion``, plain types and tensors, is stored as is.
    """
    from vsent.provenance import versions

    if not isinstance(model, nn.Module) or isinstance(path, nn.Module):
        raise TypeError(f"save_checkpoint(path, model) takes the file first and a model built by "
                        f"create_model second, got {type(path).__name__} and "
                        f"{type(model).__name__}")
    check_path_arg(path, "save_checkpoint's path")
    n = model.info.num_outputs
    if class_names is None:
        class_names = [*DEFAULT_CLASS_NAMES, *(f"class{i}" for i in range(2, n))]
    if len(class_names) != n:  # loading refuses such a file (check_complete)
        raise ValueError(f"{len(class_names)} class names for a model of {n} outputs")
    path = expand_user(path)  # "~/m.pt" as load_checkpoint and load_dataset read it
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "spec": to_jsonable(model.spec),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocess": model.info.preprocess.to_dict(),
        "class_names": list(class_names),
        # what the card needs when the file travels without its run directory
        "info": to_jsonable({"family": model.info.family, "extra": dict(model.info.extra),
                             "num_outputs": n}),
        # (the families' libraries, timm and open_clip_torch, are among them)
        "versions": to_jsonable(versions()),
        "meta": to_jsonable(meta),
    }
    if fusion is not None:
        ckpt["fusion"] = dict(fusion)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save(ckpt, f)
    return path


def read_checkpoint(path: str | PathLike[str], *, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> Mapping[str, Any]:
    """The saved dict of a vsent checkpoint (format checked), without rebuilding the model.

    ``mmap=True`` maps the tensors instead of reading them (the model card needs the small
    entries only). Raises :class:`WeightsError` naming the file when it is missing, unreadable
    or not a vsent checkpoint.
    """
    check_path_arg(path, "read_checkpoint's path")
    path = expand_user(path)
    if path.is_dir():
        inside = [p for p in (path / "model.pt", path / "fold1" / "model.pt") if p.is_file()]
        hint = f" such as {inside[0]}" if inside else " (model.pt of finetune/crossval)"
        raise WeightsError(f"{path}: a folder; give a checkpoint file{hint}")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read it ({exc.strerror})") from None
    zipped = head[:2] == b"PK"
    what = not_torch_save(head)
    if what is not None:
        if path.suffix.lower() == ".onnx" and what != _TRUNCATED:
            what += f"; {_export_kind(path, 'an ONNX')}"
        raise WeightsError(f"{path}: not a vsent checkpoint ({what})")
    try:
        with warnings.catch_warnings():  # torch's notice when it is handed a TorchScript file
            warnings.simplefilter("ignore", UserWarning)
            # mmap reads only torch.save's zip format; the legacy pickle is read whole
            ckpt = torch.load(path, map_location=map_location, weights_only=True,
                              mmap=mmap and zipped)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        why = _load_failure(path, exc, zipped=zipped)
        raise WeightsError(f"{path}: not a vsent checkpoint ({why})") from exc
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise WeightsError(
            f"{path}: not a vsent checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    return ckpt


def not_torch_save(head: bytes) -> str | None:
    """Why a file starting with the 4 bytes ``head`` cannot have been written whole by
    torch.save (neither its zip nor its legacy pickle; or a zip cut inside its first header,
    which torch would read as a pickle: "Unsupported operand"), or None."""
    zipped = head[:2] == b"PK"
    if head[:1] != b"\x80" and not zipped:
        return "an empty file" if not head else "not a file written by torch.save"
    if zipped and head != _ZIP_MAGIC:
        return _TRUNCATED
    return None


def load_failure(path: Path, exc: Exception) -> str:
    """Why ``torch.load(path)`` raised ``exc``, in a few words (as :func:`read_checkpoint`
    says it): an empty or foreign file, a truncated one, or torch's own reason. Asked after
    the failure, so a file torch reads although torch.save did not write it (safetensors) is
    not refused beforehand."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"cannot read it ({e.strerror})"
    what = None if path.suffix.lower() == ".safetensors" else not_torch_save(head)
    return what or _load_failure(path, exc, zipped=head[:2] == b"PK")


def _export_kind(path: Path, kind: str) -> str:
    """What an ONNX or TorchScript file (``kind``: "an ONNX", "a TorchScript") handed over as a
    checkpoint is: a vsent export, with the hint to run it, or a file vsent did not write,
    which ``--engine onnx`` refuses too (the hint would send the user round in a loop)."""
    from vsent.export import ExportError, read_metadata

    try:
        read_metadata(path)
    except ExportError as exc:
        if getattr(exc, "missing_extra", None) != "onnx":  # without onnx nobody can tell
            return f"{kind} file that vsent did not write"
    return f"{kind} export: {EXPORT_HINT}"


def _load_failure(path: Path, exc: Exception, zipped: bool = False) -> str:
    """torch.load's error for ``path`` in a few words, without its advice to load unsafely
    (``zipped``: the file starts as torch.save's zip does)."""
    msg = " ".join(str(exc).split())
    if "TorchScript" in msg:
        return _export_kind(path, "a TorchScript")
    # torch's zip reader gives OSError(22, 'Invalid argument') for some cut points: it seeks
    # to a record past the end of the file
    if ("central directory" in msg or "zip archive" in msg or "miniz" in msg
            or isinstance(exc, EOFError) or (zipped and isinstance(exc, OSError))):
        return _TRUNCATED
    if "inline_container" in msg or "hasRecord(" in msg:  # a zip, of no torch.save
        return "a zip archive that torch.save did not write"
    if "weights_only" in msg:  # the reason, after several sentences of advice to load unsafely
        found = re.search(r"(?:WeightsUnpickler error: |(?=Trying to load ))(.*?)"
                          r"(?: Check the documentation|$)", msg)
        reason = found.group(1).split(" was not an allowed global")[0] if found else \
            "torch refused to read it without running code"
        return f"it holds more than tensors and plain values: {reason.strip()[:150]}"
    return re.sub(r"\x1b\[[0-9;]*m", "", msg)[:200] or type(exc).__name__


def load_checkpoint(
    path: str | PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved by :func:`save_checkpoint`, in eval mode on ``map_location``.

    Returns
    -------
    model : nn.Module
        Architecture from the saved spec with the saved weights (loaded strictly);
        ``model.info.preprocess`` is the saved preprocessing.
    meta : dict
        The saved metadata plus ``"class_names"``.
    """
    check_path_arg(path, "load_checkpoint's path")
    path = expand_user(path)
    return build_model(read_checkpoint(path, map_location=map_location), path, map_location)


def check_complete(ckpt: Mapping[str, Any], path: str | PathLike[str],
                   num_outputs: int | None = None) -> None:
    """WeightsError naming ``path`` when the dict :func:`read_checkpoint` returned lacks an
    entry a model is rebuilt from, or names another number of classes than the model has
    outputs (a label column would then hold bare indices): ``num_outputs`` (the rebuilt
    model's), else the width the file records (``info.num_outputs``; CaffeNet's raw ablations
    are 4096 or 1000 wide whatever ``spec.num_classes`` says), else ``spec.num_classes``."""
    _check_entries(ckpt, path)
    info = ckpt.get("info") if isinstance(ckpt.get("info"), Mapping) else {}
    width = num_outputs or info.get("num_outputs") or _spec_width(ckpt["spec"])
    names = ckpt["class_names"]
    if not isinstance(names, (list, tuple)) or len(names) != width:
        count = len(names) if isinstance(names, (list, tuple)) else "no list of"
        raise WeightsError(f"{path}: not a complete vsent checkpoint ({count} class names for "
                           f"{width} outputs)")


def _spec_width(spec: Mapping[str, Any]) -> int:
    """The outputs of the model a spec builds, for a file that does not record them (saved
    before info.num_outputs): ``num_classes``, or a CaffeNet raw ablation's fixed width."""
    from vsent.models.caffenet import SURGERIES, output_width

    if spec.get("name") == "caffenet" and spec.get("arch") in SURGERIES:
        return output_width(spec["arch"], spec["num_classes"])
    return spec["num_classes"]


def _check_entries(ckpt: Mapping[str, Any], path: str | PathLike[str]) -> None:
    """WeightsError naming ``path`` when ``ckpt`` lacks an entry a model is rebuilt from."""
    missing = [k for k in ("spec", "state_dict", "preprocess", "class_names") if k not in ckpt]
    spec = ckpt.get("spec")
    if missing or not isinstance(spec, Mapping) or not {"name", "num_classes"} <= set(spec):
        what = ", ".join(missing) or "spec.name or spec.num_classes"
        raise WeightsError(f"{path}: not a complete vsent checkpoint (no {what})")


def build_model(ckpt: Mapping[str, Any], path: str | PathLike[str],
                map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_checkpoint` from the dict :func:`read_checkpoint` returned (``path`` names
    the file in errors)."""
    _check_entries(ckpt, path)
    spec = dict(ckpt["spec"])
    name, num_classes = spec.pop("name"), spec.pop("num_classes")
    try:
        # rebuild_model: also the names only checkpoints hold (zeroshot/clip/<arch>)
        model = rebuild_model(name, num_classes=num_classes, **spec)
        model.load_state_dict(ckpt["state_dict"], strict=True)
        # The saved preprocessing wins (e.g. a model trained at another crop size).
        model.info = dataclasses.replace(
            model.info, preprocess=Preprocess.from_dict(ckpt["preprocess"])
        )
    except (VsentError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise WeightsError(f"{path}: cannot rebuild the saved {name} model ({msg})") from exc
    # the width of the rebuilt model: a checkpoint of a raw ablation saved before the file
    # recorded it (info.num_outputs) is read too
    check_complete(ckpt, path, model.info.num_outputs)
    model.spec = {"name": name, "num_classes": num_classes, **spec}
    model.to(map_location).eval()
    meta = dict(ckpt.get("meta") or {})
    meta["class_names"] = list(ckpt["class_names"])
    return model, meta
