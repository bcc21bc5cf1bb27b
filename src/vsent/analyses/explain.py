"""Grad-CAM heat maps: which parts of an image drove a sentiment prediction.

Grad-CAM (Selvaraju et al., ICCV 2017): with ``A`` the activations (C, h, w) of a convolutional
layer and ``y`` the target logit, channel weights are the spatially averaged gradients
``w_c = mean_{ij} dy/dA_cij`` and the map is ``ReLU(sum_c w_c A_c)``, upsampled to the input
and scaled to [0, 1] per image (all zero when nothing contributes positively).

The model sees the centre crop of the image warped to ``preprocess.resize``; the heat map is
computed on that crop, placed back into the warped frame (zero on the border the crop cut off,
which the model never saw) and warped back to the original image size.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vsent.data._common import is_real, positive_int
from vsent.data.images import ImageSource, load_resized, load_rgb, resize_rgb
from vsent.errors import ImageError, VsentError, WeightsError, check_many
from vsent.files import Parse, csv_rows, file_sha256
from vsent.inference import capture_outputs, prepare

__all__ = ["FIELDS", "TARGETS", "default_cam_layer", "explain", "explain_image",
           "explain_images", "grad_cam", "overlay_heatmap"]

log = logging.getLogger("vsent")

#: ``--target`` choices: a class by name, or the predicted class of each image.
TARGETS = ("predicted", "positive", "negative")
_TARGET_INDEX = {"negative": 0, "positive": 1}  # labels: 1 = positive, 0 = negative
#: Per model (held weakly: a model's entry goes with it), its layers whose map was too small
#: for a useful heat map, already warned about (once each).
_WARNED_SMALL: weakref.WeakKeyDictionary[nn.Module, set[str]] = weakref.WeakKeyDictionary()


def _true_or_false(text: str) -> bool:
    """A bool as csv writes it (``str(True)``)."""
    if text not in ("True", "False"):
        raise ValueError(f"{text!r} is not True or False")
    return text == "True"


#: Columns of ``explain.csv``, in order.
FIELDS = ("image", "error", "prob_negative", "prob_positive", "predicted", "target", "layer",
          "overlay", "heatmap", "empty_map")
#: How the typed columns of ``explain.csv`` read back (the others are text), so that a
#: finished run returns the rows :func:`explain_images` gave, not their text.
FIELD_TYPES: Mapping[str, Parse] = {"prob_negative": float, "prob_positive": float,
                                    "empty_map": _true_or_false}
#: The file whose presence marks an explain run directory finished.
DONE = "explain.csv"
#: ``vsent explain``'s longest side of the maps and overlays written (``--max-side``; 0: the
#: image's own size). A map comes from a few cells of a feature map: a 7000x5000 photo's
#: full-size map took 140 MB and 1 GB of memory for nothing more.
DEFAULT_MAX_SIDE = 1024


def default_cam_layer(model: nn.Module) -> str:
    """The layer Grad-CAM weighs by default: ``model.info.cam_layer``, declared by the model's
    builder (the last convolutional map, e.g. CaffeNet's conv5)."""
    layer = model.info.cam_layer
    if not layer:
        raise VsentError(f"{model.info.name} declares no Grad-CAM layer: pass --layer")
    return layer


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    target: str | int | Sequence[int] = "predicted",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM maps of a batch.

    Parameters
    ----------
    model : nn.Module, ``forward(x) -> logits (B, M)``; run in eval mode.
    x : float torch.Tensor (B, 3, H, W), the network input (already normalised, as
        :func:`vsent.inference.prepare` makes it), on the model's device.
    layer : module name (``model.get_submodule``) whose output is (B, C, h, w).
    target : "predicted", "positive" (class 1), "negative" (class 0), a class index, or one
        index per image.

    Returns
    -------
    cams : float32 (B, H, W) in [0, 1] (bilinear upsampling of the (h, w) map).
    probs : float32 (B, M) softmax of the logits.
    targets : int64 (B,) the class each map explains.
    """
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        # a numpy array was AttributeError 'detach' after the hooks were set
        what = (f"{type(x).__name__} {x.dtype} {tuple(x.shape)}"
                if torch.is_tensor(x) or isinstance(x, np.ndarray) else type(x).__name__)
        raise TypeError(f"x must be a float torch.Tensor (B, 3, H, W), the prepared network "
                        f"input (vsent.inference.prepare), got {what}")
    model.eval()
    # the one hook helper of vsent.inference, keeping the graph (in-place ops switched off)
    with capture_outputs(model, [layer], grad=True) as acts, torch.enable_grad():
        x = x.detach().requires_grad_(True)  # a graph even if the weights are frozen
        logits = model(x)
    act = acts.get(layer)  # None if the forward pass never called it
    if not torch.is_tensor(act) or act.dim() != 4:
        shape = tuple(act.shape) if torch.is_tensor(act) else type(act).__name__
        raise VsentError(f"--layer {layer!r} outputs {shape}, not a (B, C, h, w) feature map")
    warned = _WARNED_SMALL.setdefault(model, set())
    if act.shape[2] * act.shape[3] <= 4 and layer not in warned:
        warned.add(layer)  # once per layer of a model, not once per image
        log.warning("Grad-CAM: layer %r gives a %dx%d map for a %d-px crop: the heat map is "
                    "almost flat; an earlier layer (--layer) or a larger image_size shows more",
                    layer, act.shape[2], act.shape[3], x.shape[-1])
    b = logits.shape[0]
    if isinstance(target, str):
        if target == "predicted":
            t = logits.argmax(dim=1)
        elif target in _TARGET_INDEX:
            t = torch.full((b,), _TARGET_INDEX[target], dtype=torch.long)
        else:
            raise VsentError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    else:
        t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
        if t.numel() not in (1, b):  # said here: expand() would be torch's RuntimeError
            raise VsentError(f"target {t.tolist()}: one class index for all {b} images or one "
                             f"per image, not {t.numel()}")
        t = t.expand(b)
    t = t.to(logits.device)
    if (t < 0).any() or (t >= logits.shape[1]).any():
        raise VsentError(f"target class {t.tolist()} outside the model's {logits.shape[1]} outputs")
    score = logits.gather(1, t[:, None]).sum()  # images are independent: one backward for all
    (grads,) = torch.autograd.grad(score, act)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    cam = torch.where(peak > 1e-12, cam / peak, torch.zeros_like(cam))
    probs = torch.softmax(logits.detach().float(), dim=1)
    return (cam.detach().float().cpu().numpy(), probs.cpu().numpy(), t.cpu().numpy())


def explain_image(
    model: nn.Module,
    image: ImageSource,
    *,
    layer: str | None = None,
    target: str | int = "predicted",
    device: torch.device | str = "cpu",
    max_side: int | None = None,
) -> dict[str, Any]:
    """Grad-CAM of one image, mapped back to the original image's pixels.

    ``max_side``: if set, ``image`` and ``heatmap`` are shrunk (aspect kept) so that their
    longer side is at most this many pixels; the network's input is the same either way. A
    service sets it: a 12-megapixel photo's full-size map and overlay cost seconds and a GB.

    The network's input is always :func:`~vsent.data.images.load_resized`'s pixels, so the
    probabilities are ``vsent predict``'s. With ``max_side`` <= 2 x ``preprocess.resize`` (a
    service) one decode serves both; otherwise the map's finer decode is a second one (a large
    JPEG's reduced-scale decode for the network differs from a resize of the full one).

    Returns
    -------
    dict with ``heatmap`` float32 (H, W) in [0, 1] at the original resolution (or shrunk to
    ``max_side``), ``image`` uint8 (H, W, 3) of the same size, ``probs`` (M,), ``target`` (int),
    ``layer`` (str) and ``empty`` (bool: an all-zero map, no location of ``layer`` raises the
    target's score and ReLU leaves nothing: a uniform overlay).
    """
    device = torch.device(device)
    model.eval().to(device)
    pre = model.info.preprocess
    if max_side is not None:  # (a fraction would reach load_rgb as its min_side)
        max_side = positive_int(max_side, "max_side")
    # min_side: a JPEG decodes at the smallest DCT scale keeping its sides >= max_side; with
    # max_side <= 2 x resize that is load_resized's own scale, so one decode serves both
    shared = max_side is not None and max_side <= 2 * pre.resize
    shown = load_rgb(image, min_side=2 * pre.resize if shared else max_side)
    # the pixels the model sees, exactly as in predict
    warped = resize_rgb(shown, pre.resize) if shared else load_resized(image, pre.resize)
    if max_side is not None and max(shown.size) > max_side:
        shown = shown.resize(_contained(shown.size, max_side), Image.Resampling.BICUBIC)
    rgb = np.asarray(shown)
    x = prepare(warped[None], pre, device=device)  # centre crop, as vsent.inference.infer
    layer = layer or default_cam_layer(model)
    cams, probs, targets = grad_cam(model, x, layer, target)
    # back into the warped frame: torchvision's centre-crop offsets
    top = int(round((pre.resize - pre.crop) / 2.0))
    frame = np.zeros((pre.resize, pre.resize), np.float32)
    frame[top : top + pre.crop, top : top + pre.crop] = cams[0]
    import cv2

    heat = cv2.resize(frame, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    np.clip(heat, 0.0, 1.0, out=heat)  # in place: a full-size map is 4 bytes a pixel
    return {"heatmap": heat, "image": rgb, "probs": probs[0],
            "target": int(targets[0]), "layer": layer, "empty": not bool(heat.any())}


def _contained(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``ImageOps.contain``'s size (aspect kept, longer side ``max_side``), but never 0 px a
    side: a 1100x1 banner shrunk to 512 px would be 512x0, which no resize takes."""
    w, h = size
    if w >= h:
        return max_side, max(1, round(h / w * max_side))
    return max(1, round(w / h * max_side)), max_side


#: Pixels blended at a time by :func:`overlay_heatmap` (a band of rows): its float64 colours
#: cost ~100 bytes a pixel, 6 GB for a whole 56-megapixel photo at once, ~25 MB for a band.
_BAND_PIXELS = 1 << 18


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heat map (jet colours) over a uint8 (H, W, 3) image -> uint8 (H, W, 3).

    ``heatmap`` is a real (H, W) array, the image's size (values outside [0, 1] are
    clipped); ``opacity`` (the map's weight, a number in [0, 1]: 0 gives the image, 1 the
    colours alone).

    Done in bands of rows, each with the same arithmetic as the whole image at once (the same
    pixels), so that the memory it takes beyond its result is bounded."""
    image, heatmap = np.asarray(image), np.asarray(heatmap)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an RGB uint8 array (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
    if heatmap.shape != image.shape[:2] or heatmap.dtype.kind not in "iuf":
        # another size was numpy's broadcast error, or a band of it blended silently
        raise ValueError(f"heatmap must be a real array of the image's size "
                         f"{image.shape[:2]}, got {heatmap.dtype} {heatmap.shape}")
    if not is_real(opacity) or not 0.0 <= opacity <= 1.0:  # 2: colours beyond the map's
        raise ValueError(f"opacity must be a number in [0, 1], got {opacity!r}")
    from matplotlib import colormaps

    jet = colormaps["jet"]
    out = np.empty((*image.shape[:2], 3), np.uint8)
    step = max(1, _BAND_PIXELS // max(1, image.shape[1]))
    for top in range(0, image.shape[0], step):
        band = slice(top, top + step)
        colour = jet(np.clip(heatmap[band], 0, 1))[..., :3] * 255.0
        blend = (1 - opacity) * image[band].astype(np.float32) + opacity * colour
        out[band] = np.clip(blend + 0.5, 0, 255)  # truncated to uint8, as astype did
    return out


def explain_images(
    model: nn.Module,
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    layer: str | None = None,
    target: str = "predicted",
    device: torch.device | str = "cpu",
    class_names: Sequence[str] = ("negative", "positive"),
    fusion: Any = None,
    max_side: int | None = None,
) -> list[dict[str, Any]]:
    """Grad-CAM overlays (PNG) and raw maps (.npy) for each image, one row per image, at the
    image's size, or with its longer side at most ``max_side`` (:func:`explain_image`).

    Files are ``<out>/<i>_<stem>_gradcam.png`` and ``.npy`` (``i`` = position in ``paths``,
    so equal file names from different folders do not collide). An image that cannot be read
    gets a row with ``error`` set; the others are still explained.

    ``fusion``: a late-fused checkpoint's :class:`vsent.analyses.fused_model.LateFusion`. The
    probabilities and the predicted label are then the fused ones (``vsent predict``'s), and
    ``target="predicted"`` maps the network's evidence for the fused label (as ``vsent
    serve``); the map itself is the network's (the hand-crafted half has none).

    Returns
    -------
    list of dict rows: ``image, error, prob_negative, prob_positive, predicted, target, layer,
    overlay, heatmap, empty_map`` (True: an all-zero map, no location of ``layer`` raises the
    target class's score).
    """
    check_many(paths, "explain_images", "images")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, path in enumerate(paths):
        row: dict[str, Any] = {"image": str(path), "error": ""}
        try:
            r = explain_image(model, path, layer=layer, target=target, device=device,
                              max_side=max_side)
            p = r["probs"]
            if fusion is not None:
                hand = fusion.hand.features(np.asarray(load_rgb(path), np.uint8))
                p = fusion.fuse(p[None], hand[None])[0]
                if target == "predicted" and int(p.argmax()) != r["target"]:
                    r = explain_image(model, path, layer=layer, target=int(p.argmax()),
                                      device=device, max_side=max_side)  # the fused label's
        except ImageError as e:  # a bad --layer/--target is not the image's fault: raised
            row["error"] = str(e)
            rows.append(row)
            log.warning("%s", e)
            continue
        layer = r["layer"]  # the default layer, resolved once
        stem = f"{i:04d}_{Path(str(path)).stem}_gradcam"
        Image.fromarray(overlay_heatmap(r["image"], r["heatmap"])).save(out / f"{stem}.png")
        np.save(out / f"{stem}.npy", np.asarray(r["heatmap"], np.float32))  # no copy
        pred = int(p.argmax())
        row.update(
            prob_negative=round(float(p[0]), 6), prob_positive=round(float(p[1]), 6)
            if len(p) > 1 else None,
            predicted=class_names[pred] if pred < len(class_names) else str(pred),
            target=class_names[r["target"]] if r["target"] < len(class_names) else r["target"],
            layer=r["layer"], overlay=f"{stem}.png", heatmap=f"{stem}.npy",
            empty_map=r["empty"],
        )
        rows.append(row)
    return rows


def _refuse_export(path: str | Path) -> None:
    """One line on why an ONNX/TorchScript export cannot be explained (it keeps the forward
    pass only); nothing when ``path`` is not an export."""
    from vsent.models.card import read_export

    exported = read_export(path)
    if exported is None:
        return
    source = (exported.card or {}).get("checkpoint")
    what = {"onnx": "an ONNX", "torchscript": "a TorchScript"}.get(exported.engine, "an")
    raise WeightsError(f"{path}: {what} export keeps only the forward pass, and "
                       "Grad-CAM needs the gradients of a layer inside the network: explain "
                       f"the checkpoint it was exported from ({source or 'model.pt'}) instead")


def _found(items: Sequence[Any]) -> str:
    """``"<n> files, sha1 <12 hex digits>"``: the digest of the files the inputs expanded to,
    each by its path and bytes (or why it cannot be read; an unmatched input by its pattern)."""
    from vsent.data.cache import content_key
    from vsent.inputs import Unmatched

    h = hashlib.sha1()
    for item in items:
        if isinstance(item, Unmatched):
            # a name that is not UTF-8 hashes as its bytes (surrogateescape), as predict reads it
            h.update(f"unmatched {item.path}\n".encode("utf-8", "surrogateescape"))
            continue
        try:
            key = content_key([item], 0)
        except (ImageError, OSError) as e:  # the image's own row says what is wrong
            key = f"unreadable {type(e).__name__}"
        h.update(f"{item} {key}\n".encode("utf-8", "surrogateescape"))
    n = sum(not isinstance(i, Unmatched) for i in items)
    return f"{n} file{'s' * (n != 1)}, sha1 {h.hexdigest()[:12]}"


def _made_before_images_found(out: Path) -> bool:
    """True for an explain run whose config.json holds no ``images_found`` (an older vsent)."""
    from vsent.runs import read_config

    try:
        stored = read_config(out)
    except VsentError:  # none, or damaged: open_run_dir says what to do
        return False
    return stored.get("command") == "explain" and "images_found" not in stored


def explain(
    checkpoint: str | Path,
    images: Sequence[str | Path],
    out: str | Path,
    *,
    layer: str | None = None,
    target: str = "predicted",
    device: torch.device | str = "auto",
    overwrite: bool = False,
    max_side: int = DEFAULT_MAX_SIDE,
) -> list[dict[str, Any]]:
    """``vsent explain``: Grad-CAM maps of ``images`` by a checkpoint's model, in a run directory.

    Parameters
    ----------
    checkpoint : a vsent checkpoint (``model.pt`` of finetune/crossval).
    images : files, folders (searched recursively for images) or globs
        (:func:`vsent.inputs.iter_inputs`).
    out : run directory, opened by :func:`vsent.runs.open_run_dir`: ``explain.csv`` marks it
        finished (the same call again returns the stored rows, typed as the first call's),
        other images or settings are refused unless ``overwrite``.
    layer : module name (default the model's ``info.cam_layer``); target : one of
        :data:`TARGETS`; device : "auto", "cpu", "cuda".
    max_side : the longest side of the maps and overlays (0: the image's size); recorded in
        config.json when not :data:`DEFAULT_MAX_SIDE`.

    Returns
    -------
    One row per image found, in input order (columns :data:`FIELDS`, :func:`explain_images`);
    an input that matches no file has a row at its place. A row whose image could not be
    read (or input matched nothing) has ``error`` set. The maps and ``explain.csv`` are
    written under ``out``.
    """
    check_many(images, "explain", "images")
    from vsent.inference import layer_module, resolve_device
    from vsent.inputs import Unmatched, iter_inputs
    from vsent.predict import Predictor
    from vsent.runs import open_run_dir

    if target not in TARGETS:
        raise VsentError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 0:
        raise VsentError(f"--max-side must be 0 (the image's size) or a number of pixels, "
                         f"got {max_side!r}")
    dev = resolve_device(device)
    try:  # a late-fused checkpoint's hand-crafted half too, as predict reads it
        predictor = Predictor.from_checkpoint(checkpoint, device=dev)
    except WeightsError:
        _refuse_export(checkpoint)
        raise
    if layer is not None:  # before the run directory is opened (--overwrite empties it)
        layer_module(predictor.model, layer)
    items = list(iter_inputs(images))  # folders walked, globs expanded, in input order
    items = _outside(items, Path(out))
    # the checkpoint's bytes too: one retrained at the same path must not return the old maps;
    # and the files found: a folder given again after images were added or edited is not done
    config = {"command": "explain", "model": str(checkpoint),
              "model_sha256": file_sha256(checkpoint), "images": [str(i) for i in images],
              "images_found": _found(items),
              "layer": layer, "target": target, "device": str(dev)}
    if max_side != DEFAULT_MAX_SIDE:  # left out at its default: earlier runs stay finished
        config["max_side"] = max_side
    if _made_before_images_found(Path(out)):  # still returned, but its files are not checked
        del config["images_found"]
        log.warning("%s was made by a vsent that did not record the files its inputs found: "
                    "images added or edited since are not seen (--overwrite redoes it)", out)
    # no --resume: an unfinished run (interrupted) is simply done again
    with open_run_dir(out, config, resume=True, overwrite=overwrite, done=DONE,
                      resume_asked=False) as rd:
        if rd.status == "finished":
            stored, columns = _stored_rows(rd / DONE)
            if stored and "empty_map" not in columns:
                log.warning("%s was made by a vsent before --max-side and empty_map: its maps "
                            "are at the images' full size (--overwrite remakes them)", out)
            return stored
        paths = [i for i in items if not isinstance(i, Unmatched)]
        for i in items:  # logged, and given an error row, as an image that cannot be read
            if isinstance(i, Unmatched):
                log.warning("%s", i.reason)
        explained = iter(explain_images(predictor.model, paths, rd.path, layer=layer,
                                        target=target, device=dev,
                                        class_names=predictor.class_names,
                                        fusion=predictor.fusion, max_side=max_side or None))
        # an input that matched nothing keeps its place, as in predict's output
        rows = [{"image": i.path, "error": i.reason} if isinstance(i, Unmatched)
                else next(explained) for i in items]
        rd.write_csv(DONE, rows, list(FIELDS))
        _say_done(rows, layer, target, rd)
    return rows


def _stored_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a finished run's ``explain.csv`` as :func:`explain_images` gave them (the
    columns of :data:`FIELD_TYPES` typed, the cells an error row leaves empty left out: its
    row has ``image`` and ``error`` only), and the file's columns. A damaged file is a
    VsentError naming it."""
    from vsent.data.datasets import read_text

    columns: list[str] = []

    def typed(header: Sequence[str]) -> list[tuple[str, Parse]]:
        columns.extend(header)
        # an error row's cells are empty: not a number to read
        return [(c, lambda v, parse=parse: parse(v) if v else v)
                for c, parse in FIELD_TYPES.items() if c in header]

    # as written: a name that is not UTF-8 comes back as the same str
    text = read_text(path, "CSV file", errors="surrogateescape")
    rows = [{k: v for k, v in row.items() if v != "" or k in ("image", "error")}
            for _, row in csv_rows(path, text, typed)]
    return rows, columns


def _outside(items: list[Any], out: Path) -> list[Any]:
    """``items`` without the files inside ``out`` (an --out inside an input
    folder had this run's maps explained as images by the next run, and the files found
    differ from the first run's, which refused to continue it); said in one line."""
    from vsent.inputs import Unmatched

    root = Path(os.path.abspath(out))  # (the items' spelling: no file system lookups)
    kept = [i for i in items if isinstance(i, Unmatched)
            or not Path(os.path.abspath(i)).is_relative_to(root)]
    if len(kept) < len(items) and all(isinstance(i, Unmatched) for i in kept):
        # (with --overwrite, a glob into it: the run was deleted to explain nothing)
        raise VsentError(f"every file the inputs find is inside --out {out}, where this "
                         "command writes its maps: choose another --out")
    if len(kept) < len(items):
        log.info("%d files inside --out %s, where this command writes its maps, left out of "
                 "the inputs", len(items) - len(kept), out)
    return kept


def _say_done(rows: Sequence[Mapping[str, Any]], layer: str | None, target: str,
              rd: Any = None) -> None:
    """The run's summary on ``rd``'s run.log alone (it was empty; the CLI prints its own line),
    and a warning for all-zero maps (written silently, a uniform overlay that
    reads as a result)."""
    failed = sum(bool(r["error"]) for r in rows)
    empty = [r for r in rows if r.get("empty_map")]
    # (every input failed: no map resolved the default layer, said as such, not "None")
    used = next((r["layer"] for r in rows if r.get("layer")), layer) or "default"
    if rd is not None:
        rd.log_only(f"explained {len(rows) - failed} of {len(rows)} images, {failed} failed "
                    f"(layer {used}, target {target})")
    if empty:
        log.warning("%d of %d maps are empty (all zero: no location of layer %s raises the "
                    "score of the class they explain; empty_map in explain.csv)", len(empty),
                    len(rows) - failed, used)
