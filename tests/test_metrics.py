"""Fold metrics: accuracy, precision/recall/F1 of the positive class and the confusion matrix."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from vsent.metrics import binary_metrics, mean_std_text, summarize_folds


def test_binary_metrics_of_a_two_way_model():
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    y_pred = np.array([0, 1, 0, 1, 1, 0, 1, 1])
    m = binary_metrics(y_true, y_pred)
    assert m["confusion"] == [[2, 1], [1, 4]]  # [[tn, fp], [fn, tp]]
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(4 / 5) and m["recall"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(4 / 5)
    assert m["n"] == 8 and "other" not in m


def test_predictions_of_another_class_are_wrong_and_counted_apart():
    # a raw ablation (fc8-1000) may predict class 17: wrong for either label, and neither a
    # true negative nor a false negative, so tn + tp stays accuracy * n
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([17, 0, 1, 999, 0])
    m = binary_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["confusion"] == [[1, 0], [1, 1]]
    assert m["other"] == [1, 1]
    (tn, fp), (fn, tp) = m["confusion"]
    assert tn + tp == round(m["accuracy"] * m["n"])
    assert tn + fp + fn + tp + sum(m["other"]) == m["n"]
    assert m["precision"] == pytest.approx(1.0) and m["recall"] == pytest.approx(1 / 3)
    # a fold with no prediction of 0 or 1 at all (a raw ablation that never picks them):
    # every image wrong, an empty matrix (scikit-learn raised on the empty input)
    m = binary_metrics(np.array([0, 1, 1]), np.array([5, 7, 9]))
    assert m["accuracy"] == 0.0 and m["confusion"] == [[0, 0], [0, 0]]
    # mut54d N02: int counts as in every other fold (the JSON says 0, not 0.0)
    assert {type(v) for row in m["confusion"] for v in row} == {int}
    assert m["other"] == [1, 2] and m["precision"] == m["recall"] == m["f1"] == 0.0
    # mut51d M30: class 2 (a 3-way model's third output) is another class too, not a label
    m = binary_metrics(np.array([0, 1, 1]), np.array([2, 1, 2]))
    assert m["confusion"] == [[0, 0], [0, 1]] and m["other"] == [1, 1]
    # mut54d N16: class indices of a 4096-way model are not wrapped into 0..255 (256 -> 0)
    m = binary_metrics(np.array([0, 1]), np.array([256, 4095]))
    assert m["accuracy"] == 0.0 and m["other"] == [1, 1]


@pytest.mark.parametrize(("y_true", "y_pred", "confusion", "scores"), [
    ([1, 1, 1], [1, 1, 1], [[0, 0], [0, 3]], (1.0, 1.0, 1.0, 1.0)),
    ([0, 0], [0, 0], [[2, 0], [0, 0]], (1.0, 0.0, 0.0, 0.0)),
    ([1, 1], [0, 0], [[0, 0], [2, 0]], (0.0, 0.0, 0.0, 0.0)),
])
def test_a_fold_of_one_class_only_still_has_a_two_by_two_confusion(y_true, y_pred, confusion,
                                                                   scores):
    """mut51d M05: a small fold (or a run's split) may hold one label only and the model may
    predict one class only: the matrix stays [[tn, fp], [fn, tp]] (scikit-learn alone gives
    [[3]], read by the report as tn), and precision/recall without positives are 0."""
    m = binary_metrics(y_true, y_pred)
    assert m["confusion"] == confusion
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == scores


def test_summarize_folds_gives_the_population_std():
    folds = [{"fold": 1, "accuracy": 0.7, "precision": 0.5},
             {"fold": 2, "accuracy": 0.8, "precision": 0.7}]
    s = summarize_folds(folds)
    assert s["accuracy"] == {"mean": pytest.approx(0.75), "std": pytest.approx(0.05)}
    assert s["precision"]["mean"] == pytest.approx(0.6)
    assert "recall" not in s and s["folds"] == folds
    # mut54d N05: the records are copied into plain dicts (JSON-able), not the caller's own
    s = summarize_folds([MappingProxyType(f) for f in folds])
    assert [type(f) for f in s["folds"]] == [dict, dict] and s["folds"] == folds


def test_one_fold_is_shown_without_a_spread():
    """trial32 #5: one fold's "0.745 +- 0.000" read as a perfectly stable result."""
    s = {"mean": 0.74451, "std": 0.0}
    assert mean_std_text(s, 1) == "0.745 (1 fold)"
    assert mean_std_text({"mean": 0.7, "std": 0.0125}, 2) == "0.700 +- 0.013"
    assert mean_std_text({"mean": 0.7045, "std": 0.01}, 5, digits=2, scale=100) == \
        "70.45 +- 1.00"
    # mut57f I155: 0 is "fold count unknown" (layers' reference, baselines without n_folds):
    # the spread is shown, not claimed to be one fold's
    assert mean_std_text({"mean": 0.7, "std": 0.0125}, 0) == "0.700 +- 0.013"


def test_the_summary_table_of_one_fold_shows_no_spread():
    """code38 #14: summary.md of a one-fold run read "0.750 +- 0.000" (summary_markdown wrote
    its own mean row), as layers and baselines no longer did."""
    from vsent.metrics import summary_markdown

    one = summarize_folds([{"fold": 3, "accuracy": 0.75, "precision": 1.0, "recall": 0.5,
                            "f1": 2 / 3, "n": 4}])
    assert "| **mean** | 0.750 (1 fold) | 1.000 (1 fold) | 0.500 (1 fold) | 0.667 (1 fold) | |" \
        in summary_markdown(one, "t")
    two = summarize_folds([{"fold": 1, "accuracy": 0.7}, {"fold": 2, "accuracy": 0.8}])
    two["folds"] = [{**f, "precision": 0, "recall": 0, "f1": 0} for f in two["folds"]]
    # the metrics no summary holds keep their columns: "-", the n column empty
    assert "| **mean** | 0.750 +- 0.050 | - | - | - | |" in summary_markdown(two, "t")
    # mut51d M23: a fold record without "n" leaves its n cell empty, not 0 images
    assert "| 1 | 0.700 | 0.000 | 0.000 | 0.000 |  |\n" in summary_markdown(two, "t")
    # a fold record without a metric shows "-" in its column (it raised KeyError)
    two["folds"][1].pop("recall")
    assert "| 2 | 0.800 | 0.000 | - | 0.000 |  |\n" in summary_markdown(two, "t")


def test_the_card_shows_the_metrics_summarised_over_folds():
    from vsent.metrics import SCALARS
    from vsent.models.card import CARD_METRICS

    assert CARD_METRICS is SCALARS


@pytest.mark.parametrize(("y_true", "y_pred", "message"), [
    ([1, 2, 2], [1, 1, 2], r"y_true must hold labels 0 and 1, got \[1, 2\]"),
    ([-1, 1], [0, 1], r"y_true must hold class indices \(integers >= 0\)"),
    ([0, 1, 1], [0.2, 0.9, 0.6], r"y_pred must hold class indices .* such as \[0.2, 0.9, 0.6\]"),
    # the wrong ones, not the smallest (review37 #5)
    ([0, 1, 1, 0], [0, 1, 600.5, 2], r"y_pred must hold class indices .* such as \[600.5\]$"),
    ([0, float("nan")], [0, 1], "y_true must hold class indices"),
    # mut51d M15: an infinite score is no class either (it was cast to -2**63 and scored)
    ([0, 1], [0, float("inf")], r"y_pred must hold class indices .* such as \[inf\]$"),
    ([0, 1], [0], r"one length n >= 1, got 2 and 1"),
    ([], [], r"one length n >= 1, got 0 and 0"),
    ([[0, 1]], [[0, 1]], r"y_true must be of shape \(n,\), got \(1, 2\)"),
    # mut59f F40: complex scores are no classes (1+2j was cast to 1 and scored)
    ([0, 1], [0, 1 + 2j], r"y_pred must hold class indices .* got complex128 values"),
])
def test_binary_metrics_refuses_what_are_not_labels_and_predicted_classes(y_true, y_pred,
                                                                          message):
    """api37 #3: labels 1/2, -1/1, NaN or probabilities given as predictions were cast to int
    and scored (tn + tp no longer accuracy x n); a length mismatch was scikit-learn's text."""
    with pytest.raises(ValueError, match=message):
        binary_metrics(y_true, y_pred)


# mutation round 43 (mut43): tests that kill mutants the suite missed


def test_f1_is_the_harmonic_mean_of_precision_and_recall():
    """mut43 ME16: every earlier case had precision == recall (or both 0), so an F1 that
    reported the precision passed. Here precision 1, recall 1/3: F1 = 2pr / (p + r) = 0.5."""
    from sklearn.metrics import f1_score

    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([17, 0, 1, 999, 0])
    m = binary_metrics(y_true, y_pred)
    assert m["precision"] == pytest.approx(1.0) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred == 1))


def test_boolean_predictions_are_read_as_classes_0_and_1():
    """mut43 ME14: bool arrays (``p > 0.5``) are accepted (dtype kind "b") as classes 0/1 and
    scored as the same integers would be."""
    y_true = np.array([0, 1, 1, 0, 1])
    as_bool = np.array([0.2, 0.9, 0.4, 0.7, 0.6]) > 0.5
    assert binary_metrics(y_true, as_bool) == binary_metrics(y_true, as_bool.astype(int))
    assert binary_metrics(y_true, as_bool)["confusion"] == [[1, 1], [1, 2]]


def test_summarize_folds_takes_the_mean_not_the_median():
    """mut43 ME19: with two folds the median is the mean; three uneven folds tell them apart
    (mean 0.75, median 0.70; population std sqrt(0.065 / 3))."""
    s = summarize_folds([{"fold": k, "accuracy": a} for k, a in ((1, 0.6), (2, 0.7), (3, 0.95))])
    assert s["accuracy"]["mean"] == pytest.approx(0.75)
    assert s["accuracy"]["std"] == pytest.approx((0.065 / 3) ** 0.5)


def test_write_summary_writes_the_markdown_before_the_json_that_marks_the_run_finished(
        tmp_path, monkeypatch):
    """mut43 ME29: summary.json marks a run finished, so it is written last: when the
    Markdown cannot be written, no summary.json may exist. (tests/test_runs.py's check fails
    every write, the JSON's too, so it could not tell the order.)"""
    from vsent.metrics import write_summary
    from vsent.runs import open_run_dir

    rd = open_run_dir(tmp_path / "r", {"command": "test"})
    rd.close()
    original = rd.write_text

    def md_fails(name, text):
        if name.endswith(".md"):
            raise OSError(28, "No space left on device")
        return original(name, text)

    monkeypatch.setattr(rd, "write_text", md_fails)
    summary = summarize_folds([{"fold": 1, **binary_metrics([0, 1, 1], [0, 1, 0])}])
    with pytest.raises(OSError):
        write_summary(rd, summary, "t")
    assert not (tmp_path / "r" / "summary.json").exists()


def test_write_summary_leaves_a_blank_line_between_the_table_and_what_follows(tmp_path):
    """mut43 ME31: the text after the table (the figure, the fusion section) follows a blank
    line; without it a Markdown renderer reads the next line as one more table row."""
    from vsent.metrics import summary_markdown, write_summary
    from vsent.runs import open_run_dir

    rd = open_run_dir(tmp_path / "r", {"command": "test"})
    rd.close()
    summary = summarize_folds([{"fold": 1, **binary_metrics([0, 1, 1], [0, 1, 0])}])
    write_summary(rd, summary, "t", extra_md="![curves](curves.png)\n")
    md = (tmp_path / "r" / "summary.md").read_text()
    assert md == summary_markdown(summary, "t") + "\n![curves](curves.png)\n"
    assert "| |\n\n![curves]" in md
    # mut54d N12: another stem names both files (the baselines write one summary per row)
    write_summary(rd, summary, "t", stem="b/summary")
    assert (tmp_path / "r" / "b" / "summary.md").read_text() == summary_markdown(summary, "t")
    assert (tmp_path / "r" / "b" / "summary.json").exists()


# mutation round 48 (mut48a): tests that kill mutants the suite missed


def test_a_scalar_is_refused_as_not_of_shape_n():
    """mut48a M11: one label (a 0-d array or a number) is not a (n,) array: refused by name
    with its shape, not len()'s TypeError."""
    with pytest.raises(ValueError, match=r"^y_true must be of shape \(n,\), got \(\)$"):
        binary_metrics(np.int64(1), np.array([1]))
    with pytest.raises(ValueError, match=r"^y_pred must be of shape \(n,\), got \(\)$"):
        binary_metrics([1], 1)


def test_the_summary_table_of_two_folds_is_exactly_a_markdown_table():
    """mut48a M22, M28: the separator row has a cell per column (fold, the metrics, n) and
    fold rows give 3 decimals; the mean row gives mean +- population std."""
    from vsent.metrics import summary_markdown

    s = summarize_folds([
        {"fold": 1, "accuracy": 0.7, "precision": 0.5, "recall": 0.25, "f1": 1 / 3, "n": 10},
        {"fold": 2, "accuracy": 0.8, "precision": 0.7, "recall": 0.75, "f1": 0.72, "n": 12},
    ])
    assert summary_markdown(s, "T") == (
        "# T\n\n"
        "| fold | accuracy | precision | recall | f1 | n |\n"
        "|---|---|---|---|---|---|\n"
        "| 1 | 0.700 | 0.500 | 0.250 | 0.333 | 10 |\n"
        "| 2 | 0.800 | 0.700 | 0.750 | 0.720 | 12 |\n"
        "| **mean** | 0.750 +- 0.050 | 0.600 +- 0.100 | 0.500 +- 0.250 | 0.527 +- 0.193 | |\n"
    )


def test_whole_float_labels_are_read_and_named_as_integers():
    """mut48a M16: labels read from a CSV as floats (1.0, 2.0) are class indices: scored as
    the integers, and a refusal names them as integers."""
    with pytest.raises(ValueError, match=r"^y_true must hold labels 0 and 1, got \[1, 2\]$"):
        binary_metrics(np.array([1.0, 2.0, 2.0]), np.array([1, 1, 2]))
    y_true, y_pred = np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 5.0])
    assert binary_metrics(y_true, y_pred) == binary_metrics([0, 1, 1], [0, 1, 5])
