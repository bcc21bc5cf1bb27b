"""Inference on cached images: centre crop or 10-crop oversampling, and evaluation metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vsent.data.transforms import center_crop, normalize, ten_crop
from vsent.errors import VsentError
from vsent.metrics import binary_metrics


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu. Asking for cuda without one is a user error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VsentError("--device cuda: no CUDA device is available here (use --device cpu)")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise VsentError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def _check_images(images: np.ndarray, size: int) -> None:
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if images.shape[1] != size or images.shape[2] != size:
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]}, the model expects {size}x{size} "
            "(resize with the model's preprocess.resize)"
        )


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    images: np.ndarray,
    *,
    oversample: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Softmax scores of ``model`` on resized images.

    Parameters
    ----------
    model : a vsent model (has ``preprocess``).
    images : uint8 array (N, S, S, 3), RGB, already resized to ``S = model.preprocess.resize``.
    oversample : average the softmax over the 10 crops (4 corners + centre, and their mirrors)
        instead of scoring the centre crop only.
    batch_size : images per forward pass (10x as many crops when oversampling).

    Returns
    -------
    float32 array (N, num_outputs); rows sum to 1.
    """
    pre = model.preprocess
    _check_images(images, pre.resize)
    dev = resolve_device(device)
    model.eval().to(dev)
    out = []
    for start in range(0, len(images), batch_size):
        # a copy: cached images are read-only memory maps, which torch cannot wrap
        batch = torch.from_numpy(np.array(images[start : start + batch_size]))
        if oversample:
            crops = ten_crop(batch, pre.crop)  # (B, 10, c, c, 3)
            b = crops.shape[0]
            x = normalize(crops.reshape(b * 10, *crops.shape[2:]), pre).to(dev)
            probs = torch.softmax(model(x).float(), dim=1).reshape(b, 10, -1).mean(dim=1)
        else:
            x = normalize(center_crop(batch, pre.crop), pre).to(dev)
            probs = torch.softmax(model(x).float(), dim=1)
        out.append(probs.cpu().numpy())
    n_out = out[0].shape[1] if out else 2
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    oversample: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
) -> tuple[dict, np.ndarray]:
    """Metrics of :func:`vsent.metrics.binary_metrics` and the (N, C) scores they came from.

    The predicted class is the arg-max over all outputs (as Caffe's accuracy layer does, so a
    4096-way raw ablation predicting an index other than 0/1 counts as wrong).
    """
    probs = predict_proba(
        model, images, oversample=oversample, batch_size=batch_size, device=device
    )
    return binary_metrics(labels, probs.argmax(axis=1)), probs
