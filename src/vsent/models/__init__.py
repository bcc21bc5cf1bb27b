"""Models: a registry of architectures, their weights and self-describing checkpoints.

>>> from vsent.models import create_model, list_models
>>> model = create_model("caffenet", arch="fc7-2", init="imagenet")  # doctest: +SKIP

Importing this package registers every family of the modules it imports below (e.g. caffenet,
smallcnn) and the prefix families ``timm/`` and ``clip/`` (timm and open_clip themselves are
imported only when one of their models is listed or built).
Every model follows :mod:`vsent.models.base`: ``model.info`` (:class:`ModelInfo`) and
``forward_features`` / ``forward_head``.
"""

# Imported for their side effect: each family registers its builders.
from vsent.models import (
    caffenet,
    clip_models,
    pcnn,
    smallcnn,
    timm_models,
    torchvision_models,
)
from vsent.models.base import ModelInfo, SentimentModel
from vsent.models.checkpoint import load_checkpoint, save_checkpoint
from vsent.models.registry import (
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    register_family,
    register_model,
)
from vsent.models.weights import PretrainedWeights, apply_init, load_matching, read_state_dict

__all__ = [
    "ModelEntry",
    "ModelInfo",
    "PretrainedWeights",
    "SentimentModel",
    "apply_init",
    "caffenet",
    "clip_models",
    "create_model",
    "get_model_entry",
    "list_models",
    "load_checkpoint",
    "load_matching",
    "pcnn",
    "read_state_dict",
    "register_family",
    "register_model",
    "save_checkpoint",
    "smallcnn",
    "timm_models",
    "torchvision_models",
]
