"""The named recipes, in one place (no torch import: the CLI lists them cheaply).

* :data:`CROSSVAL` -- ``vsent crossval`` / ``finetune`` / ``reproduce``: ``campos2015`` is the
  paper's recipe (CaffeNet from ImageNet weights); ``quick`` trains a small BatchNorm CNN from
  scratch at 64 px, about 5 minutes on 2 CPU cores; ``strong`` is quick fused late with the
  GCH+BoW baseline (``"fusion"``: the ``--fusion`` default of ``vsent crossval``, which
  measures it, and of ``vsent finetune``, which saves it in ``model.pt``).
* :data:`PCNN` -- ``vsent pcnn`` (You et al. 2015, Algorithm 1): stage 1 ``train`` and stage 2
  ``finetune``; :data:`TRANSFER_TRAIN` -- ``vsent pcnn-transfer`` (Algorithm 2).

The quick recipe's solver (AdamW, cosine, weight decay 0.05, no lr multipliers) is
:data:`QUICK_SOLVER`, shared by both quick presets.
"""

from __future__ import annotations

from typing import Any

from vsent.config import TrainConfig

#: Solver settings of every ``quick`` recipe (the epochs and lr differ per stage).
QUICK_SOLVER: dict[str, Any] = {
    "batch_size": 32, "weight_decay": 0.05, "optimizer": "adamw", "schedule": "cosine",
    "head_lr_mult": 1.0, "bias_lr_mult": 1.0,
}

#: Named cross-validation / fine-tuning recipes: model, init and training options.
CROSSVAL: dict[str, dict[str, Any]] = {
    "campos2015": {"model": "caffenet", "init": "imagenet", "train": TrainConfig()},
    "quick": {
        "model": "smallcnn",
        "init": "random",
        "train": TrainConfig(epochs=30, lr=2e-3, **QUICK_SOLVER),
    },
}
#: Issue 10's best measured configuration without external weights (docs/accuracy_plan.md,
#: row L1): the quick network and recipe, its probability fused late with a GCH+BoW logistic
#: regression fitted on each training fold (``crossval`` measures it; ``finetune`` fits the
#: regression on its training images and saves it in ``model.pt`` beside quick's CNN).
CROSSVAL["strong"] = {**CROSSVAL["quick"], "fusion": "gch+bow"}

#: Progressive training recipes. The solver settings are ours, not taken from the paper. PCNN
#: takes raw mean-subtracted pixels (Caffe style) and has no normalisation layers, so its
#: activations are tens of units at every layer: from scratch, SGD at Caffe's usual lr 0.01
#: diverged (loss ~1e15 in the first epoch) and 1e-3 was unstable, while 1e-4 learnt steadily
#: (64 generated images, 4 epochs). Stage 2 continues at a tenth of stage 1's lr.
PCNN: dict[str, dict[str, Any]] = {
    "you2015": {
        "model": "pcnn",
        "train": TrainConfig(epochs=20, batch_size=64, lr=1e-4, schedule="step", lr_step=8,
                             head_lr_mult=1.0),
        "finetune": TrainConfig(epochs=10, batch_size=64, lr=1e-5, schedule="step",
                                lr_step=8, head_lr_mult=1.0),
    },
    # small BatchNorm CNN at 64 px (as ``vsent crossval --preset quick``), minutes on a CPU
    "quick": {
        "model": "smallcnn",
        "train": TrainConfig(epochs=15, lr=2e-3, **QUICK_SOLVER),
        "finetune": TrainConfig(epochs=5, lr=2e-4, **QUICK_SOLVER),
    },
}

#: Algorithm 2: fine-tuning a pretrained network on each Twitter training fold; it trains every
#: layer at 1e-4 (nothing in a pretrained network is new, hence ``head_lr_mult=1``).
TRANSFER_TRAIN = TrainConfig(epochs=30, batch_size=64, lr=1e-4, schedule="step", lr_step=10,
                             head_lr_mult=1.0)

#: Rows of You et al.'s Twitter table a transfer run is set beside (``--reference``).
TRANSFER_REFERENCES = ("pcnn", "cnn")


def preset_for_config(preset: str, user_lr: float | None) -> str | None:
    """The ``preset`` a RunConfig records: None when the user set the learning rate.

    This and :func:`resolve_lr` are the one place that decides whether the lr is the user's:
    a run with ``preset`` None trains at ``train.lr`` as given.
    """
    return preset if user_lr is None else None


def resolve_lr(preset: str | None, lr: float, default_lr: float | None) -> float:
    """The base lr a crossval/finetune run trains at.

    Parameters
    ----------
    preset : the RunConfig's ``preset`` (None: the user set the lr, which then wins).
    lr : the RunConfig's ``train.lr``.
    default_lr : the architecture's lr hint (``model.info.default_lr``, e.g. 1e-4 for CaffeNet
        fc6-2 as in the paper), or None.

    The hint replaces the lr only when it came from the preset unchanged (a name that is no
    crossval preset, e.g. a PCNN one in a Python-made config, sets no lr to replace).
    """
    recipe = CROSSVAL.get(preset or "")
    if recipe is None or default_lr is None or lr != recipe["train"].lr:
        return lr
    return default_lr
