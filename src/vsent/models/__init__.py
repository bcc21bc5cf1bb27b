"""Models: a registry of architectures, their weights and self-describing checkpoints.

>>> from vsent.models import create_model, list_models
>>> model = create_model("caffenet", arch="fc7-2", init="imagenet")  # doctest: +SKIP

Importing this package registers every family (caffenet, torchvision models, smallcnn, pcnn).
"""

# Imported for their side effect: each family registers its builders.
from vsent.models import caffenet, pcnn, smallcnn, torchvision_models
from vsent.models.checkpoint import load_checkpoint, save_checkpoint
from vsent.models.registry import (
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)
from vsent.models.weights import apply_init, load_matching, read_state_dict

__all__ = [
    "ModelEntry",
    "apply_init",
    "caffenet",
    "create_model",
    "get_model_entry",
    "list_models",
    "load_checkpoint",
    "load_matching",
    "pcnn",
    "read_state_dict",
    "register_model",
    "save_checkpoint",
    "smallcnn",
    "torchvision_models",
]
