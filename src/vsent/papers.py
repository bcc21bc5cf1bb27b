"""Published numbers of the reproduced papers, each with where it was read.

A value of ``None`` means "published, but not verified here": the report prints
``n/a (not verified)`` for it and never a number typed from memory. Fill a cell in only after
checking it against the paper, and cite the place in the comment beside it.

What was tried (so the next person does not repeat it): the ``search`` tool's stored copies of
Campos et al. 2015 (arXiv 1508.05056: ar5iv, core.ac.uk, emergentmind, the ASM 2015 project
README githubpgq/sentiment-2015-asm and imatge-upc/sentiment-2017-imavis) expose the abstract
and the first page only; no copy of Tables 2-4 was reachable. Sun et al. 2016 is closed access
(concepedia lists the abstract only). The values below that are filled in come from the Twitter
I dataset README shipped with the data (``/work/shared/datasets/twitter1/README.md``, section
"Published reference numbers on this data"), which quotes each paper.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The dataset README the filled-in values are quoted from.
DATASET_README = "Twitter I dataset README (shared/datasets/twitter1/README.md)"


@dataclass(frozen=True)
class Published:
    """One published number: ``mean`` (and ``std`` when given) as a fraction in [0, 1].

    ``mean is None``: the paper reports the cell but it was not verified here.
    """

    mean: float | None
    std: float | None = None
    source: str = ""

    @property
    def verified(self) -> bool:
        return self.mean is not None


NOT_VERIFIED = Published(None, None, "not verified")

# --------------------------------------------------------------------------------------------
# Campos, Salvador, Giro-i-Nieto, Jou. "Diving Deep into Sentiment: Understanding Fine-tuned
# CNNs for Visual Sentiment Prediction." 1st Int. Workshop on Affect and Sentiment in
# Multimedia (ASM), ACM Multimedia 2015, pp. 57-62. arXiv:1508.05056.

CAMPOS2015 = (
    "Campos, Salvador, Giro-i-Nieto, Jou. Diving Deep into Sentiment: Understanding Fine-tuned "
    "CNNs for Visual Sentiment Prediction. ASM workshop, ACM MM 2015 (arXiv:1508.05056)"
)

#: Table 1: fine-tuned CaffeNet (fc8 replaced by a 2-way layer), five-agree, 5-fold CV on the
#: authors' folds, accuracy mean +- std over folds.
CAMPOS2015_TABLE1: dict[str, Published] = {
    # "Campos et al. 2015, fine-tuned CaffeNet: 0.817 +- 0.038" -- dataset README
    "center": Published(0.817, 0.038, f"Campos et al. 2015 Table 1, as quoted in the "
                                      f"{DATASET_README}"),
    # "with 10-crop oversampling 0.830 +- 0.034" -- dataset README
    "ten_crop": Published(0.830, 0.034, f"Campos et al. 2015 Table 1, as quoted in the "
                                        f"{DATASET_README}"),
}

#: Table 2: a linear SVM and a softmax classifier on each layer's activations of the
#: fine-tuned CaffeNet. Not verified (see the module docstring); which of the CaffeNet blobs
#: the paper's table lists was not verified either, so every blob vsent probes is listed.
CAMPOS2015_TABLE2_LAYERS = (
    "conv1", "pool1", "norm1", "conv2", "pool2", "norm2",
    "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8",
)
CAMPOS2015_TABLE2: dict[str, dict[str, Published]] = {
    layer: {"svm": NOT_VERIFIED, "softmax": NOT_VERIFIED} for layer in CAMPOS2015_TABLE2_LAYERS
}

#: Table 3: layer removal (fc7-4096, fc6-4096: the remaining top layer used raw as logits;
#: fc7-2, fc6-2: the top replaced by a new 2-way layer), without and with oversampling.
#: Not verified.
CAMPOS2015_TABLE3: dict[str, dict[str, Published]] = {
    arch: {"center": NOT_VERIFIED, "ten_crop": NOT_VERIFIED}
    for arch in ("fc7-4096", "fc6-4096", "fc7-2", "fc6-2")
}

#: Table 4: layer addition (fc8-1000: the whole ImageNet network fine-tuned with its 1000
#: outputs; fc9-2: a new 2-way layer on top of fc8). Not verified.
CAMPOS2015_TABLE4: dict[str, dict[str, Published]] = {
    arch: {"center": NOT_VERIFIED, "ten_crop": NOT_VERIFIED} for arch in ("fc8-1000", "fc9-2")
}

# --------------------------------------------------------------------------------------------
# You, Luo, Jin, Yang. "Robust Image Sentiment Analysis Using Progressively Trained and Domain
# Transferred Deep Networks." AAAI 2015. Its Twitter table (here "Table 6") has rows GCH, LCH,
# GCH+BoW, LCH+BoW, CNN and PCNN and, per five/four/three-agree subset, precision, recall, F1
# and accuracy. Only the CNN's five-agree accuracy could be verified (dataset README).

YOU2015 = (
    "You, Luo, Jin, Yang. Robust Image Sentiment Analysis Using Progressively Trained and "
    "Domain Transferred Deep Networks. AAAI 2015"
)

#: You et al.'s Twitter table: row -> subset -> metric -> value, the single record of it (the
#: baselines table, the domain-transfer table and ``vsent reproduce you2015`` all read it).
YOU2015_TABLE6: dict[str, dict[str, dict[str, Published]]] = {
    row: {subset: {m: NOT_VERIFIED for m in ("precision", "recall", "f1", "accuracy")}
          for subset in ("five", "four", "three")}
    for row in ("gch", "lch", "gch+bow", "lch+bow", "cnn", "pcnn")
}
# "You et al. 2015, fine-tuned 2CONV-4FC CNN: accuracy 0.783" (five-agree) -- dataset README
YOU2015_TABLE6["cnn"]["five"]["accuracy"] = Published(
    0.783, None, f"You et al. 2015, fine-tuned 2CONV-4FC CNN, as quoted in the {DATASET_README}")
#: You et al.'s 2CONV-4FC network fine-tuned on Twitter I, 5-fold: subset -> metric -> value.
YOU2015_CNN = YOU2015_TABLE6["cnn"]

# --------------------------------------------------------------------------------------------
# Sun, Yang, Wang, Shen. "Discovering affective regions in deep convolutional neural networks
# for visual sentiment prediction." ICME 2016.

SUN2016 = (
    "Sun, Yang, Wang, Shen. Discovering affective regions in deep convolutional neural "
    "networks for visual sentiment prediction. ICME 2016"
)

#: Table 1 (Twitter I, five-agree, 5-fold): rows are the methods of
#: :data:`vsent.analyses.regions.METHODS`. Only the full method is known here.
SUN2016_TABLE1: dict[str, Published] = {
    # "Sun et al. 2016, VGGNet + affective regions (K=11): 88.94 %" -- dataset README
    "ar": Published(0.8894, None, f"Sun et al. 2016, VGGNet + affective regions, K=11, as "
                                  f"quoted in the {DATASET_README}"),
}
#: K of the published full method.
SUN2016_K = 11
#: Figure 4 (accuracy vs K): not verified, so no published curve is drawn.
SUN2016_K_SWEEP: dict[int, Published] = {}
