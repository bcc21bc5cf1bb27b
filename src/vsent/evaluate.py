"""Scores and metrics on cached images (centre crop or 10-crop oversampling).

A thin layer over :func:`vsent.inference.infer`, the one inference path of vsent
(:func:`resolve_device` lives there too and is re-exported here).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vsent.inference import infer, resolve_device
from vsent.metrics import binary_metrics

__all__ = ["evaluate", "predict_proba", "resolve_device"]


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
    model : a vsent model (``model.info.preprocess``).
    images : uint8 array (N, S, S, 3), RGB, already resized to ``S = preprocess.resize``.
    oversample : average the softmax over the 10 crops (4 corners + centre, and their mirrors)
        instead of scoring the centre crop only.
    batch_size : images per forward pass (10x as many crops when oversampling).

    Returns
    -------
    float32 array (N, num_outputs); rows sum to 1.
    """
    return infer(model, images, oversample=oversample, batch_size=batch_size,
                 device=device).probs


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
