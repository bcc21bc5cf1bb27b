"""Published numbers of the reproduced papers, each with the table it comes from.

Transcribed from ``shared/papers/published.md`` (the papers' own tables, see :data:`SOURCE_FILE`),
cell by cell; ``tests/test_papers.py`` parses that file independently and checks every value
here against it.

Units: every value is a **fraction** in [0, 1]. Sun et al. print percent: their cells are stored
divided by 100 (88.94 % -> 0.8894) and the source says so; the sun2016 report prints them back
in percent.

A value of ``None`` means "not available": the paper has the cell but its value is not in
``published.md`` (You et al.'s own table did not survive in the copy we have). Reports print
:data:`NOT_AVAILABLE_TEXT` for it, never a number typed from memory.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where the values below were read (relative to the project's shared folder).
SOURCE_FILE = "shared/papers/published.md"
#: Printed in place of a cell whose value is not available.
NOT_AVAILABLE_TEXT = "not available"
#: Said of a row that the paper does not have (a table of ours with more rows than its).
NOT_IN_PAPER_TEXT = "not in the paper"


@dataclass(frozen=True)
class Published:
    """One published number.

    ``mean`` (and ``std`` when the paper gives one) as a fraction in [0, 1], or None when not
    available; ``source`` names the paper and table (``"Campos et al. 2015, Table 2"``);
    ``k``: the K of a Sun et al. "best K" cell (the number in brackets), else None.
    ``digits`` / ``std_digits``: the decimals the paper printed, counted on the fraction
    (Campos's "0.82" -> 2, "0.040" -> 3; Sun's "77.30" % -> 4), so a report shows the number
    as printed, trailing zeros kept and none added; None: not recorded.
    """

    mean: float | None
    std: float | None = None
    source: str = ""
    k: int | None = None
    digits: int | None = None
    std_digits: int | None = None

    @property
    def available(self) -> bool:
        return self.mean is not None

    def printed(self) -> str:
        """The fraction as the paper printed it: its decimals (3 when not recorded), e.g.
        ``0.82 +- 0.055``; "" when not available. (Reports read stored values:
        :func:`vsent.reports.render.fmt` with ``exact``.)"""
        if self.mean is None:
            return ""
        text = f"{self.mean:.{3 if self.digits is None else self.digits}f}"
        if self.std is not None:
            text += f" +- {self.std:.{3 if self.std_digits is None else self.std_digits}f}"
        return text


#: A cell the paper has but whose value is not available here.
NOT_AVAILABLE = Published(None, None, NOT_AVAILABLE_TEXT)


def _pm(mean: float, std: float, table: str, digits: tuple[int, int] = (3, 3)) -> Published:
    """A Campos et al. cell: they print 3 decimals, except where ``digits`` (of the mean, of
    the std) says otherwise (0.82, not 0.820)."""
    return Published(mean, std, table, digits=digits[0], std_digits=digits[1])


# --------------------------------------------------------------------------------------------
# Campos, Salvador, Giro-i-Nieto, Jou. "Diving Deep into Sentiment: Understanding Fine-tuned
# CNNs for Visual Sentiment Prediction." ASM workshop, ACM Multimedia 2015. arXiv:1508.05056.
# All on Twitter I five-agree, 5-fold CV, CaffeNet from ImageNet; accuracy mean +- std.

CAMPOS2015 = (
    "Campos, Salvador, Giro-i-Nieto, Jou. Diving Deep into Sentiment: Understanding Fine-tuned "
    "CNNs for Visual Sentiment Prediction. ASM workshop, ACM MM 2015 (arXiv:1508.05056)"
)
_C1 = "Campos et al. 2015, Table 1"
_C2 = "Campos et al. 2015, Table 2"
_C3 = "Campos et al. 2015, Table 3"
_C4 = "Campos et al. 2015, Table 4"

#: Table 1 (fine-tuning): evaluation -> accuracy. "center": fine-tuned CaffeNet; "ten_crop":
#: with oversampling (10 crops). The table's third row (You et al.'s CNN, 0.783) is
#: :data:`YOU2015_TABLE6` ``["cnn"]["five"]["accuracy"]``.
CAMPOS2015_TABLE1: dict[str, Published] = {
    "center": _pm(0.817, 0.038, _C1),
    "ten_crop": _pm(0.830, 0.034, _C1),
}
#: Table 1, row "Fine-tuned CNN from You et al." (no std in the paper).
CAMPOS2015_TABLE1_YOU_CNN = Published(0.783, None, f"{_C1}, row 'Fine-tuned CNN from You et al.'",
                                      digits=3)

#: vsent's model and ``arch`` option for the network of Campos et al.'s Tables 1 and 2 (the
#: fine-tuned CaffeNet fc8-2; the surgery variants of Tables 3-4 are other networks).
CAMPOS2015_NETWORK = ("caffenet", "fc8-2")


def is_campos2015_network(model: str, arch: str | None) -> bool:
    """Whether vsent's ``model`` with the builder option ``arch`` (None: its default) is the
    network Campos et al. fine-tuned and probed (Tables 1 and 2)."""
    return model == CAMPOS2015_NETWORK[0] and arch in (None, CAMPOS2015_NETWORK[1])


#: Table 2 (linear classifiers on each layer of the fine-tuned CaffeNet), in depth order.
CAMPOS2015_TABLE2_LAYERS = (
    "conv1", "pool1", "norm1", "conv2", "pool2", "norm2",
    "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8",
)
#: Table 2: layer -> classifier ("svm", "softmax") -> accuracy.
CAMPOS2015_TABLE2: dict[str, dict[str, Published]] = {
    "fc8": {"svm": _pm(0.82, 0.055, _C2, (2, 3)), "softmax": _pm(0.821, 0.046, _C2)},
    "fc7": {"svm": _pm(0.814, 0.040, _C2), "softmax": _pm(0.814, 0.044, _C2)},
    "fc6": {"svm": _pm(0.804, 0.031, _C2), "softmax": _pm(0.81, 0.038, _C2, (2, 3))},
    "pool5": {"svm": _pm(0.784, 0.020, _C2), "softmax": _pm(0.786, 0.022, _C2)},
    "conv5": {"svm": _pm(0.776, 0.025, _C2), "softmax": _pm(0.779, 0.034, _C2)},
    "conv4": {"svm": _pm(0.794, 0.026, _C2), "softmax": _pm(0.781, 0.020, _C2)},
    "conv3": {"svm": _pm(0.752, 0.033, _C2), "softmax": _pm(0.748, 0.029, _C2)},
    "norm2": {"svm": _pm(0.735, 0.025, _C2), "softmax": _pm(0.737, 0.021, _C2)},
    "pool2": {"svm": _pm(0.732, 0.019, _C2), "softmax": _pm(0.729, 0.022, _C2)},
    "conv2": {"svm": _pm(0.735, 0.019, _C2), "softmax": _pm(0.738, 0.030, _C2)},
    "norm1": {"svm": _pm(0.706, 0.032, _C2), "softmax": _pm(0.712, 0.031, _C2)},
    "pool1": {"svm": _pm(0.674, 0.045, _C2), "softmax": _pm(0.68, 0.035, _C2, (2, 3))},
    "conv1": {"svm": _pm(0.667, 0.049, _C2), "softmax": _pm(0.67, 0.032, _C2, (2, 3))},
}

#: Table 3 (layer ablation): architecture -> "center" (without oversampling) / "ten_crop"
#: (with oversampling) -> accuracy. fc7-4096, fc6-4096: the remaining top layer used raw as
#: logits (the paper notes fc6-4096 "always predict towards the majority class"); fc7-2,
#: fc6-2: the top replaced by a new 2-way layer.
CAMPOS2015_TABLE3: dict[str, dict[str, Published]] = {
    "fc7-4096": {"center": _pm(0.759, 0.023, _C3), "ten_crop": _pm(0.786, 0.019, _C3)},
    "fc6-4096": {"center": _pm(0.657, 0.040, _C3), "ten_crop": _pm(0.657, 0.040, _C3)},
    "fc7-2": {"center": _pm(0.784, 0.024, _C3), "ten_crop": _pm(0.797, 0.021, _C3)},
    "fc6-2": {"center": _pm(0.651, 0.044, _C3), "ten_crop": _pm(0.676, 0.029, _C3)},
}

#: Table 4 (layer addition): fc8-1000 (the ImageNet network fine-tuned with its 1000 outputs),
#: fc9-2 (a new 2-way layer on top of fc8); same layout as Table 3.
CAMPOS2015_TABLE4: dict[str, dict[str, Published]] = {
    "fc8-1000": {"center": _pm(0.723, 0.041, _C4), "ten_crop": _pm(0.731, 0.036, _C4)},
    "fc9-2": {"center": _pm(0.795, 0.023, _C4), "ten_crop": _pm(0.803, 0.034, _C4)},
}

# --------------------------------------------------------------------------------------------
# Sun, Yang, Wang, Shen. "Discovering affective regions in deep convolutional neural networks
# for visual sentiment prediction." ICME 2016. Table 1, accuracy in PERCENT in the paper,
# stored here as fractions (value / 100).

SUN2016 = (
    "Sun, Yang, Wang, Shen. Discovering affective regions in deep convolutional neural "
    "networks for visual sentiment prediction. ICME 2016"
)
_S1 = "Sun et al. 2016, Table 1 (percent in the paper, stored / 100)"

#: Table 1's columns: key -> the paper's heading. five/four/three = Twitter I agreement subsets.
SUN2016_COLUMNS = {
    "five": "Twitter I 5", "four": "Twitter I 4", "three": "Twitter I 3",
    "twitter2": "Twitter II", "flickr": "Flickr",
}
#: Table 1's rows: key -> the paper's method label (as in published.md). "ft" = fine-tuned on
#: ~0.5 M weakly labelled Flickr images; obj / senti = regions by objectness / sentiment score;
#: lf / ff = late / early ("former") fusion; alpha = 1, beta = 0.5.
SUN2016_ROWS = {
    "sentibank": "SentiBank",
    "pcnn_caffenet": "PCNN + CaffeNet (You et al.)",
    "pcnn_vggnet": "PCNN + VGGNet",
    "vggnet": "VGGNet",
    "vggnet_ft": "VGGNet + ft",
    "ft_obj_lf_k1": "VGGNet + ft + obj + lf (K = 1)",
    "ft_senti_lf_k1": "VGGNet + ft + senti + lf (K = 1)",
    "ft_obj_senti_lf_k1": "VGGNet + ft + obj + senti + lf (K = 1)",
    "ft_obj_senti_ff_k1": "VGGNet + ft + obj + senti + ff (K = 1)",
    "ft_obj_senti_lf_best": "VGGNet + ft + obj + senti + lf (best K)",
}


def _sun(row: str, percents: tuple[float, ...], ks: tuple[int, ...] | None = None,
         ) -> dict[str, Published]:
    """One row of Sun et al.'s Table 1: percent values in :data:`SUN2016_COLUMNS` order."""
    cells = {}
    for i, (col, pct) in enumerate(zip(SUN2016_COLUMNS, percents, strict=True)):
        k = None if ks is None else ks[i]
        label = SUN2016_ROWS[row] + (f", best K = {k}" if k is not None else "")
        # every cell printed with 2 decimals of a percent: 4 of the fraction
        cells[col] = Published(round(pct / 100, 6), None,
                               f"{_S1}, row '{label}', {SUN2016_COLUMNS[col]}: {pct:.2f} %", k,
                               digits=4)
    return cells


#: Table 1: row (:data:`SUN2016_ROWS`) -> column (:data:`SUN2016_COLUMNS`) -> accuracy as a
#: fraction (no std in the paper); the best-K row carries the best K of each column in ``k``.
SUN2016_TABLE1: dict[str, dict[str, Published]] = {
    "sentibank": _sun("sentibank", (71.02, 67.68, 65.93, 67.56, 65.89)),
    "pcnn_caffenet": _sun("pcnn_caffenet", (77.30, 70.09, 68.01, 70.80, 66.69)),
    "pcnn_vggnet": _sun("pcnn_vggnet", (86.06, 81.81, 78.72, 75.23, 69.95)),
    "vggnet": _sun("vggnet", (83.51, 78.89, 75.36, 72.82, 60.88)),
    "vggnet_ft": _sun("vggnet_ft", (86.56, 80.42, 76.93, 72.30, 69.48)),
    "ft_obj_lf_k1": _sun("ft_obj_lf_k1", (85.22, 78.57, 74.48, 75.55, 69.38)),
    "ft_senti_lf_k1": _sun("ft_senti_lf_k1", (85.52, 81.98, 76.06, 77.74, 69.47)),
    "ft_obj_senti_lf_k1": _sun("ft_obj_senti_lf_k1", (86.72, 82.22, 76.80, 78.59, 69.58)),
    "ft_obj_senti_ff_k1": _sun("ft_obj_senti_ff_k1", (85.14, 81.25, 76.03, 73.85, 63.83)),
    "ft_obj_senti_lf_best": _sun("ft_obj_senti_lf_best", (88.94, 84.90, 80.33, 78.97, 70.24),
                                 ks=(11, 13, 11, 7, 12)),
}
#: The best K of their full method on Twitter I five-agree (the K vsent uses by default).
SUN2016_K = SUN2016_TABLE1["ft_obj_senti_lf_best"]["five"].k
# Figure 4 (accuracy against K) is a plot without values in the text (only "the best K is 10
# to 13"), so no published curve is drawn.

# --------------------------------------------------------------------------------------------
# You, Luo, Jin, Yang. "Robust Image Sentiment Analysis Using Progressively Trained and Domain
# Transferred Deep Networks." AAAI 2015. The text of its tables did not survive in the copy we
# have: only the values other papers quote are known (published.md, "You et al."). Its
# Twitter table (report id "table6"; its number in the paper is not known here) has rows
# GCH, LCH, GCH+BoW, LCH+BoW, CNN, PCNN and, per five/four/three-agree subset, precision,
# recall, F1 and accuracy.

YOU2015 = (
    "You, Luo, Jin, Yang. Robust Image Sentiment Analysis Using Progressively Trained and "
    "Domain Transferred Deep Networks. AAAI 2015"
)

#: You et al.'s Twitter table: row -> subset -> metric -> value, the single record of it (the
#: baselines table, the domain-transfer table and ``vsent reproduce you2015`` all read it).
#: Rows "sentibank" (not a vsent method) and the quoted accuracies are what other papers
#: report of You et al.; every other cell (the hand-crafted rows, precision / recall / F1)
#: is not available.
YOU2015_TABLE6: dict[str, dict[str, dict[str, Published]]] = {
    row: {subset: {m: NOT_AVAILABLE for m in ("precision", "recall", "f1", "accuracy")}
          for subset in ("five", "four", "three")}
    for row in ("gch", "lch", "gch+bow", "lch+bow", "cnn", "pcnn", "sentibank")
}
# CNN (2CONV-4FC) fine-tuned on five-agree by domain transfer: quoted by Campos et al. Table 1.
YOU2015_TABLE6["cnn"]["five"]["accuracy"] = CAMPOS2015_TABLE1_YOU_CNN
# PCNN and SentiBank: quoted by Sun et al. Table 1 (rows "PCNN + CaffeNet (You et al.)",
# "SentiBank"), percent there.
for _row, _sun_row in (("pcnn", "pcnn_caffenet"), ("sentibank", "sentibank")):
    for _subset in ("five", "four", "three"):
        YOU2015_TABLE6[_row][_subset]["accuracy"] = SUN2016_TABLE1[_sun_row][_subset]
del _row, _sun_row, _subset
#: You et al.'s 2CONV-4FC network fine-tuned on Twitter I, 5-fold: subset -> metric -> value.
YOU2015_CNN = YOU2015_TABLE6["cnn"]
#: The rows of :data:`YOU2015_TABLE6` that vsent sets beside its networks, named as their
#: sources name them: the "pcnn" row is a CaffeNet-based PCNN, not the 2CONV-4FC network.
YOU2015_QUOTED_LABELS = {
    "cnn": "2CONV-4FC CNN (You et al.; quoted by Campos et al. 2015, Table 1)",
    "pcnn": "PCNN + CaffeNet (You et al.; quoted by Sun et al. 2016, Table 1)",
    "sentibank": "SentiBank (quoted by Sun et al. 2016, Table 1)",
}
#: Where the known values of You et al.'s Twitter table come from (their own tables are not
#: available here: only other papers' quotes are).
YOU2015_QUOTES_SOURCE = (
    f"{YOU2015}: its tables are not available here, only accuracies other papers quote "
    "(the 2CONV-4FC CNN on five-agree: Campos et al. 2015, Table 1; PCNN + CaffeNet and "
    "SentiBank on the three subsets: Sun et al. 2016, Table 1), as recorded in vsent.papers"
)


def all_published() -> list[tuple[str, Published]]:
    """Every cell of this module as ``(dotted name, value)``, available or not."""
    cells: list[tuple[str, Published]] = []
    cells += [(f"CAMPOS2015_TABLE1.{e}", p) for e, p in CAMPOS2015_TABLE1.items()]
    for name, table in (("CAMPOS2015_TABLE2", CAMPOS2015_TABLE2),
                        ("CAMPOS2015_TABLE3", CAMPOS2015_TABLE3),
                        ("CAMPOS2015_TABLE4", CAMPOS2015_TABLE4),
                        ("SUN2016_TABLE1", SUN2016_TABLE1)):
        cells += [(f"{name}.{r}.{c}", p) for r, by in table.items() for c, p in by.items()]
    cells += [(f"YOU2015_TABLE6.{r}.{s}.{m}", p) for r, by in YOU2015_TABLE6.items()
              for s, ms in by.items() for m, p in ms.items()]
    return cells
