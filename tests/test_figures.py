"""Figures: the crossval figure's content (read back from the matplotlib figure), atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from vsent import figures


@pytest.fixture
def drawn(monkeypatch):
    """The figures handed to save_figure, instead of written (their axes are read back)."""
    out = []

    def keep(fig, path, **kw):
        out.append(fig)
        return path

    monkeypatch.setattr(figures, "save_figure", keep)
    yield out
    for fig in out:
        figures.pyplot().close(fig)


def _rows(rng, folds=(1, 2), n=20):
    rows = []
    for k in folds:
        y = np.arange(n) % 2
        p = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
        rows += [{"fold": str(k), "label": str(int(a)), "prob_positive": f"{b:.6f}",
                  "prob_positive_10crop": f"{1 - b:.6f}"} for a, b in zip(y, p, strict=True)]
    return rows


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_crossval_figure_draws_each_folds_curves_and_roc_auc(drawn, tmp_path):
    rng = np.random.default_rng(0)
    rows = _rows(rng)
    histories = {k: [{"loss": 1.0 / (e + k), "train_accuracy": 0.5 + e / 10} for e in range(4)]
                 for k in (1, 2)}
    figures.crossval_figure(histories, rows, tmp_path / "c.png", title="t")
    (fig,) = drawn
    loss, acc, roc = fig.axes
    assert [list(line.get_ydata()) for line in loss.get_lines()] == \
        [[h["loss"] for h in histories[k]] for k in (1, 2)]
    assert list(acc.get_lines()[1].get_ydata()) == [0.5, 0.6, 0.7, 0.8]
    assert list(acc.get_lines()[0].get_xdata()) == [1, 2, 3, 4]  # epochs count from 1
    for k, text in zip((1, 2), _legend(roc), strict=True):
        y = [int(r["label"]) for r in rows if r["fold"] == str(k)]
        p = [float(r["prob_positive"]) for r in rows if r["fold"] == str(k)]
        assert text == f"fold {k} (AUC {roc_auc_score(y, p):.3f})"
        fpr, tpr, _ = roc_curve(y, p)  # the curve itself: x false, y true positive rate
        curve = roc.get_lines()[k - 1]
        np.testing.assert_array_equal(curve.get_xdata(), fpr)
        np.testing.assert_array_equal(curve.get_ydata(), tpr)
    assert roc.get_title() == "test images, centre crop"
    assert fig._suptitle.get_text() == "t"


def test_the_roc_of_a_ten_crop_run_is_of_its_ten_crop_probabilities(drawn, tmp_path):
    rows = _rows(np.random.default_rng(1), folds=(3,))
    figures.crossval_figure({3: []}, rows, tmp_path / "c.png", ten_crop=True)
    roc = drawn[0].axes[2]
    y = [int(r["label"]) for r in rows]
    p = [float(r["prob_positive_10crop"]) for r in rows]
    assert _legend(roc) == [f"fold 3 (AUC {roc_auc_score(y, p):.3f})"]
    assert roc.get_title() == "test images, 10-crop"


def test_stages_are_marked_and_an_untrained_run_says_so(drawn, tmp_path):
    staged = [{"loss": 1.0, "train_accuracy": 0.5, "stage": s}
              for s in ("joint", "joint", "kept", "five", "five")]
    figures.crossval_figure({1: staged}, _rows(np.random.default_rng(2), folds=(1,)),
                            tmp_path / "a.png")
    loss = drawn[0].axes[0]
    starts = [line.get_xdata()[0] for line in loss.get_lines()[1:]]  # after the fold's curve
    assert starts == [2.5, 3.5]  # the epochs where "kept" and "five" begin, between epochs
    assert [line.get_linestyle() for line in loss.get_lines()[1:]] == [":", ":"]  # dotted

    figures.crossval_figure({1: []}, _rows(np.random.default_rng(2), folds=(1,)),
                            tmp_path / "b.png")
    assert [[t.get_text() for t in ax.texts] for ax in drawn[1].axes[:2]] == \
        [["no training"], ["no training"]]  # said in both training panels


def test_a_training_figure_draws_one_trainings_curves(drawn, tmp_path):
    history = [{"loss": 0.7 - e / 10, "train_accuracy": 0.5 + e / 20} for e in range(3)]
    figures.training_figure(history, tmp_path / "c.png", title="finetune")
    loss, acc = drawn[0].axes
    assert list(loss.get_lines()[0].get_ydata()) == [h["loss"] for h in history]
    assert list(acc.get_lines()[0].get_ydata()) == [h["train_accuracy"] for h in history]
    assert loss.get_legend() is None  # one line: nothing to tell apart
    assert loss.get_lines()[0].get_color() == acc.get_lines()[0].get_color() == "tab:blue"


def test_a_short_training_has_whole_epochs_on_its_axis(drawn, tmp_path):
    """Two or three epochs: ticks 1, 2, 3, not matplotlib's 1.0, 1.5, 2.0."""
    history = [{"loss": 0.7 - e / 10, "train_accuracy": 0.5 + e / 20} for e in range(3)]
    figures.training_figure(history, tmp_path / "c.png")
    for ax in drawn[0].axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_each_fold_has_its_colour_in_every_panel(drawn, tmp_path):
    """A fold without a history (fold 1 here) does not shift the other folds' colours."""
    rows = _rows(np.random.default_rng(4), folds=(2, 1))  # ROC curves drawn in fold order
    figures.crossval_figure({2: [{"loss": 1.0, "train_accuracy": 0.5}]}, rows,
                            tmp_path / "c.png")
    loss, _, roc = drawn[0].axes
    assert loss.get_lines()[0].get_color() == roc.get_lines()[1].get_color()  # fold 2's
    assert roc.get_lines()[0].get_color() != roc.get_lines()[1].get_color()


def test_a_fold_with_one_class_has_no_roc_curve_and_no_error(drawn, tmp_path):
    rows = _rows(np.random.default_rng(3), folds=(1, 2))
    rows = [r for r in rows if not (r["fold"] == "2" and r["label"] == "0")]
    figures.crossval_figure({}, rows, tmp_path / "c.png")
    assert [t.split(" (")[0] for t in _legend(drawn[0].axes[2])] == ["fold 1"]


def _save_with_figures(fig, folder):
    return figures.save_figure(fig, folder / "f.png").name


def _save_with_render(fig, folder):  # the reports' helper (a name for report.md)
    from vsent.reports import render

    return render.save_report_figure(fig, folder, "f.png")


@pytest.mark.parametrize("save", [_save_with_figures, _save_with_render])
def test_a_figure_is_written_whole_or_not_at_all(tmp_path, save):
    plt = figures.pyplot()
    (tmp_path / "f.png").write_bytes(b"old")
    fig = plt.figure()

    def interrupted(f, **kw):
        f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    fig.savefig = interrupted
    with pytest.raises(KeyboardInterrupt):
        save(fig, tmp_path)
    plt.close(fig)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary file left
    assert (tmp_path / "f.png").read_bytes() == b"old"
    assert save(plt.figure(), tmp_path) == "f.png"
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_non_finite_probabilities_are_left_out_of_the_roc(drawn, tmp_path):
    """A diverged fold's NaN scores give it no curve; the figure (and so the run) is made."""
    rows = _rows(np.random.default_rng(5), folds=(1, 2))
    for r in rows:
        if r["fold"] == "2":
            r["prob_positive"] = "nan"
    rows[0]["prob_positive"] = "inf"
    figures.crossval_figure({}, rows, tmp_path / "c.png")
    y = [int(r["label"]) for r in rows[1:] if r["fold"] == "1"]
    p = [float(r["prob_positive"]) for r in rows[1:] if r["fold"] == "1"]
    assert _legend(drawn[0].axes[2]) == [f"fold 1 (AUC {roc_auc_score(y, p):.3f})"]
    assert not drawn[0].axes[0].texts  # no history read: nothing said of training


def test_a_figure_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    from vsent.errors import VsentError

    (tmp_path / "f.png").mkdir()  # a folder where the figure goes
    fig = figures.pyplot().figure()
    with pytest.raises(VsentError, match=f"{tmp_path / 'f.png'}: cannot be written"):
        figures.save_figure(fig, tmp_path / "f.png")
    # mut58i G29: closed on failure too (a run that goes on does not keep the figure)
    assert not figures.pyplot().fignum_exists(fig.number)


# mutation round 46 (mut46f): vsent.figures mutants the suite missed


def test_save_figure_keeps_rect_free_writes_the_suffix_format_at_dpi_and_closes(tmp_path):
    plt = figures.pyplot()
    fig = plt.figure(figsize=(6, 4))
    fig.add_subplot().plot([0, 1])
    figures.save_figure(fig, tmp_path / "f.png", dpi=25, rect=(0, 0.3, 1, 1))
    assert fig.axes[0].get_position().y0 >= 0.3  # the band under rect kept for a figure text
    assert not plt.fignum_exists(fig.number)  # closed: a long run does not pile up figures
    png = (tmp_path / "f.png").read_bytes()
    # IHDR width and height: 6 x 4 inches at 25 dpi
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (150, 100)
    figures.save_figure(plt.figure(), tmp_path / "f.svg")
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:1000]  # the suffix's format, not PNG
    figures.save_figure(plt.figure(figsize=(2, 1)), tmp_path / "f")  # no suffix, no dpi given
    png = (tmp_path / "f").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"  # PNG when the name has no suffix
    assert int.from_bytes(png[16:20], "big") == 220  # 2 inches at the default 110 dpi


def test_fold_one_takes_the_first_colour_and_a_missing_value_is_a_gap(drawn, tmp_path):
    history = [{"loss": 0.9, "train_accuracy": 0.5}, {"loss": 0.8}]  # accuracy not recorded
    figures.crossval_figure({1: history, 2: []}, _rows(np.random.default_rng(6), folds=(1,)),
                            tmp_path / "c.png")
    loss, acc, roc = drawn[0].axes
    first = figures.pyplot().rcParams["axes.prop_cycle"].by_key()["color"][0]
    assert loss.get_lines()[0].get_color() == roc.get_lines()[0].get_color() == first
    ys = list(acc.get_lines()[0].get_ydata())
    assert ys[0] == 0.5 and np.isnan(ys[1])  # not drawn as an accuracy of 0
    # one fold trained: the panels are not "no training"
    assert not loss.texts and not acc.texts


def test_a_stage_starting_at_the_second_epoch_is_marked_and_axes_are_named(drawn, tmp_path):
    staged = [{"loss": 1.0, "train_accuracy": 0.5, "stage": s} for s in ("joint", "kept")]
    figures.training_figure(staged, tmp_path / "t.png")
    loss, acc = drawn[0].axes
    assert [line.get_xdata()[0] for line in loss.get_lines()[1:]] == [1.5]
    assert (loss.get_xlabel(), loss.get_ylabel()) == ("epoch", "training loss")
    assert drawn[0]._suptitle is None  # no title given: none drawn (no empty band on top)
    figures.crossval_figure({}, _rows(np.random.default_rng(7), folds=(1,)), tmp_path / "c.png")
    roc = drawn[1].axes[2]
    assert (roc.get_xlabel(), roc.get_ylabel()) == ("false positive rate", "true positive rate")
    chance = roc.get_lines()[-1]  # the diagonal a useless classifier follows
    assert list(chance.get_xdata()) == [0, 1] and list(chance.get_ydata()) == [0, 1]


def test_the_training_panels_name_each_fold_in_their_legend(drawn, tmp_path):
    """mut50c G10: each training curve is labelled with its own fold number (not the
    template "fold {}"), in fold order, in both training panels."""
    histories = {k: [{"loss": 1.0 / k, "train_accuracy": 0.5}] for k in (2, 1)}
    figures.crossval_figure(histories, _rows(np.random.default_rng(8), folds=(1,)),
                            tmp_path / "c.png")
    loss, acc, _ = drawn[0].axes
    assert _legend(loss) == _legend(acc) == ["fold 1", "fold 2"]
