"""vsent.analyses.compare and `vsent compare`: two runs, image by image, on the same test images."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
from scipy.stats import binomtest

from vsent.analyses.compare import compare_runs, comparison_text, mcnemar_exact
from vsent.cli import main
from vsent.errors import VsentError

REPO = Path(__file__).resolve().parents[1]


def _run(path: Path, probs: list[float], *, labels: list[int], folds: list[int],
         command: str = "crossval", names: list[str] | None = None,
         ten_crop: list[float] | None = None, pred: list[int] | None = None) -> Path:
    """A finished run directory: config.json, predictions.csv as `command` writes them, and
    summary.json (written last: it marks the run finished)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"command": command}))
    (path / "summary.json").write_text("{}")
    col = "prob_fused" if command == "fuse" else "prob_positive"
    names = names or [f"im{i:02d}.jpg" for i in range(len(probs))]
    with (path / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "fold", "label", col] + ([f"{col}_10crop"] if ten_crop else [])
                   + (["pred"] if pred else []))
        for i, p in enumerate(probs):
            w.writerow([names[i], folds[i], labels[i], p] + ([ten_crop[i]] if ten_crop else [])
                       + ([pred[i]] if pred else []))
    return path


# 10 images, 2 folds; A is right on 0-5, B on 2-9: A alone 2 images (0, 1), B alone 4 (6-9)
LABELS = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
FOLDS = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
A = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.4, 0.6, 0.4, 0.6]
B = [0.4, 0.6, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.6, 0.4]


def test_counts_accuracies_and_the_exact_mcnemar_test(tmp_path):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    # B shuffled: rows are matched by name, not by position
    order = [9, 3, 0, 5, 1, 8, 2, 7, 4, 6]
    b = _run(tmp_path / "b", [B[i] for i in order], labels=[LABELS[i] for i in order],
             folds=[FOLDS[i] for i in order], command="fuse",
             names=[f"im{i:02d}.jpg" for i in order])
    res = compare_runs(a, b)
    assert (res["n"], res["a_only"], res["b_only"]) == (10, 2, 4)
    assert res["accuracy_a"] == pytest.approx(0.6) and res["accuracy_b"] == pytest.approx(0.8)
    assert res["difference"] == pytest.approx(0.2)
    assert res["p_value"] == pytest.approx(binomtest(2, 6, 0.5).pvalue)
    assert res["p_value"] == pytest.approx(2 * (1 + 6 + 15) / 2**6)  # P(X<=2)+P(X>=4), n=6
    assert [(f["fold"], f["n"]) for f in res["folds"]] == [(1, 5), (2, 5)]
    assert [f["difference"] for f in res["folds"]] == pytest.approx([-0.4, 0.8])
    assert res["fold_difference"] == pytest.approx({"mean": 0.2, "std": 0.6})
    assert res["scores_b"].endswith("predictions.csv:prob_fused")
    assert res["identical"] is False and "note:" not in comparison_text(res)
    same = compare_runs(a, a)
    assert same["identical"] is True and comparison_text(same).endswith(
        "\nnote: B gives every image A's probability (a run with itself, or a copy): the "
        "comparison says nothing")


def test_mcnemar_edge_cases():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0


def test_a_crossval_run_with_fusion_is_compared_by_its_fused_probability(tmp_path):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", A, labels=LABELS, folds=FOLDS)  # the CNN: same as A
    (b / "config.json").write_text(json.dumps({"command": "crossval", "fusion": "gch+bow"}))
    _run(b / "fusion", B, labels=LABELS, folds=FOLDS, command="fuse")
    (b / "fusion" / "config.json").unlink()  # crossval writes only the predictions there
    res = compare_runs(a, b)
    assert (res["a_only"], res["b_only"]) == (2, 4)
    assert res["scores_b"] == f"{b / 'fusion' / 'predictions.csv'}:prob_fused"
    # its fused predictions deleted: said, not the network's scored in their place (mut53e C06)
    (b / "fusion" / "predictions.csv").unlink()
    with pytest.raises(VsentError, match="^" + re.escape(
            f"{b}: not a finished crossval --fusion run (needs config.json, predictions.csv, "
            "summary.json and fusion/predictions.csv)") + "$"):
        compare_runs(a, b)


def test_a_run_without_fusion_is_its_network_whatever_fuse_wrote_into_it(tmp_path):
    """`vsent fuse RUN --out RUN/fusion` writes RUN/fusion/predictions.csv into a run made
    without --fusion: compare (and ensemble) read its fused column as the run's, and
    `compare RUN RUN/fusion` showed no difference (audit_base24 #2)."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    _run(a / "fusion", B, labels=LABELS, folds=FOLDS, command="fuse")
    res = compare_runs(a, a / "fusion")
    assert res["scores_a"] == f"{a / 'predictions.csv'}:prob_positive"
    assert (res["a_only"], res["b_only"]) == (2, 4)


def test_ten_crop_columns_and_their_absence(tmp_path):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS, ten_crop=B)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS, ten_crop=A)
    res = compare_runs(a, b, ten_crop=True)
    assert res["view"] == "10-crop" and (res["a_only"], res["b_only"]) == (4, 2)
    c = _run(tmp_path / "c", B, labels=LABELS, folds=FOLDS)
    with pytest.raises(VsentError, match=r"c/predictions.csv: no 10-crop probabilities"):
        compare_runs(a, c, ten_crop=True)


def test_runs_on_other_images_folds_or_labels_are_refused_by_name(tmp_path):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    other = _run(tmp_path / "other", A[:9], labels=LABELS[:9], folds=FOLDS[:9])
    with pytest.raises(VsentError, match=r"not tested on the same images: im09.jpg is only in"):
        compare_runs(a, other)
    moved = _run(tmp_path / "moved", A, labels=LABELS, folds=[2] + FOLDS[1:])
    with pytest.raises(VsentError,
                       match=r"moved: image im00.jpg is fold 2 label 1, in .*a it is fold 1 "
                             r"label 1"):
        compare_runs(a, moved)
    with pytest.raises(VsentError, match=r"nothing: no such file or directory"):
        compare_runs(a, tmp_path / "nothing")  # (trial32 #13: "not a finished run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VsentError, match=r"empty: not a finished run"):
        compare_runs(a, tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text('{"command": "regions"}')  # robust39 #4
    with pytest.raises(VsentError, match=r"empty: a `vsent regions` run, not a finished run \("):
        compare_runs(a, tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{}")  # no command: nobody to name
    with pytest.raises(VsentError, match=r"empty: not a finished run \("):
        compare_runs(a, tmp_path / "empty")
    # killed during a crossval --fusion: its predictions.csv is the CNN's, not the fused one
    unfinished = _run(tmp_path / "unfinished", A, labels=LABELS, folds=FOLDS)
    (unfinished / "summary.json").unlink()
    with pytest.raises(VsentError, match=r"unfinished: not a finished run \(needs config.json, "
                                         r"predictions.csv and summary.json\)"):
        compare_runs(a, unfinished)
    bad = _run(tmp_path / "bad", A, labels=LABELS, folds=FOLDS)
    lines = (bad / "predictions.csv").read_text().splitlines()
    lines[3] = "im02.jpg,1,1,zero"  # the file's line 4
    (bad / "predictions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(VsentError, match=r"bad/predictions.csv, line 4: unreadable row"):
        compare_runs(a, bad)


def test_on_the_committed_runs_the_accuracies_are_the_summaries(tmp_path):
    """results/quick against its late fusion L1: same numbers as their summary.json files."""
    quick, l1 = REPO / "results" / "quick", REPO / "results" / "accuracy" / "l1"
    if not (quick / "summary.json").is_file():  # a copy without the committed runs (tests38 #13)
        pytest.skip("the committed runs under results/ are not in this copy")
    res = compare_runs(quick, l1)
    summary_q = json.loads((quick / "summary.json").read_text())
    summary_l1 = json.loads((l1 / "summary.json").read_text())
    assert res["n"] == summary_q["n_images"] == 880
    # 5 folds of 176 images: the pooled accuracy is the mean of the folds'
    assert res["accuracy_a"] == pytest.approx(summary_q["accuracy"]["mean"])
    assert res["accuracy_b"] == pytest.approx(summary_l1["fused"]["accuracy"]["mean"])
    assert res["a_only"] - res["b_only"] == round(-res["difference"] * 880)


def test_cli_prints_the_comparison_and_writes_json(tmp_path, capsys):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 0
    out, err = capsys.readouterr()
    assert err.endswith(f"wrote {tmp_path / 'c.json'}\n")  # as export and card say theirs
    assert "B - A: +0.200; right only in A: 2 images, only in B: 4; exact McNemar p = 0.688" in out
    assert "per fold (B - A): -0.400 +0.800; mean +0.200 +- 0.600" in out
    assert json.loads((tmp_path / "c.json").read_text())["b_only"] == 4
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vsent: error: {tmp_path / 'missing'}: no such file or directory"]
    (tmp_path / "missing").mkdir()
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vsent: error: {tmp_path / 'missing'}: not a finished run (needs "
                   "config.json, predictions.csv and summary.json)"]


def test_holm_adjusts_step_down_and_keeps_the_order():
    from vsent.analyses.compare import holm

    # sorted: 0.01 x 4, 0.02 x 3, 0.03 x 2 -> 0.06 (monotone), 0.5 x 1
    assert holm([0.5, 0.01, 0.03, 0.02]) == pytest.approx([0.5, 0.04, 0.06, 0.06])
    assert holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    assert holm([0.7, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1, then monotone
    assert holm([]) == []


def test_several_runs_against_one_reference_give_one_table_with_holm(tmp_path, capsys):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    c = _run(tmp_path / "c", A, labels=LABELS, folds=FOLDS)  # A itself: p = 1
    out_json = tmp_path / "many.json"
    assert main(["compare", str(a), str(b), str(c), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    p_b = binomtest(2, 6, 0.5).pvalue
    assert f"| {b} | 0.800 | +0.200 | 2 | 4 | {p_b:.3g} | {min(1, 2 * p_b):.3g} |" in out
    assert f"| {c} | 0.600 | +0.000 | 0 | 0 | 1 | 1 |" in out
    # a p = 1 that only says c is A again is said so (trial32 #13), b is not named there
    assert out.endswith("\n\nnote: these give every image A's probability (a run with itself, "
                        f"or a copy): {c}\n")
    saved = json.loads(out_json.read_text())
    assert [r["identical"] for r in saved["comparisons"]] == [False, True]
    assert saved["reference"] == str(a)
    assert [r["p_holm"] for r in saved["comparisons"]] == pytest.approx([min(1, 2 * p_b), 1])
    # the scores each run is read from, as the one-B form says them (trial41 F9): A's always,
    # a B's when it is not its predictions.csv's usual column (a fused probability)
    assert out.startswith(f"reference A: {a}: accuracy 0.600 (centre, 10 images; "
                          f"{a / 'predictions.csv'}:prob_positive)\n")
    fused = _run(tmp_path / "f", B, labels=LABELS, folds=FOLDS, command="fuse")
    assert main(["compare", str(a), str(b), str(fused)]) == 0
    out = capsys.readouterr().out
    assert f"| {b} | 0.800 |" in out
    assert f"| {fused} (read: {fused / 'predictions.csv'}:prob_fused) | 0.800 |" in out


def test_left_out_images_are_in_no_count(tmp_path):
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    res = compare_runs(a, b, exclude={"im00.jpg", "im06.jpg"})  # right only in A / only in B
    assert (res["n"], res["n_excluded"], res["a_only"], res["b_only"]) == (8, 2, 1, 3)
    assert res["accuracy_a"] == pytest.approx(5 / 8) and res["accuracy_b"] == pytest.approx(7 / 8)
    assert [(f["fold"], f["n"]) for f in res["folds"]] == [(1, 4), (2, 4)]
    assert res["p_value"] == pytest.approx(binomtest(1, 4, 0.5).pvalue)
    assert compare_runs(a, b)["n_excluded"] == 0
    with pytest.raises(VsentError, match=f"{a}: no test image left once 10 are excluded"):
        compare_runs(a, b, exclude={f"im{i:02d}.jpg" for i in range(10)})


def test_cli_without_train_copies_leaves_out_the_leaked_test_images(twitter_like, tmp_path,
                                                                    capsys):
    import shutil

    from PIL import Image

    from vsent.config import RunConfig
    from vsent.data import load_dataset, make_folds, save_folds
    from vsent.presets import CROSSVAL

    ds = load_dataset(twitter_like, "five", validate=False)
    folds = make_folds(ds, "campos")
    t0, t1 = folds[0].test[:2]
    r0, r1 = folds[0].train[:2]
    # two copies under training names: the same bytes, and a rescaled re-encoded picture
    shutil.copy(ds.paths[t0], ds.paths[r0])
    with Image.open(ds.paths[t1]) as im:
        im.convert("RGB").resize((im.width * 2, im.height * 2)).save(ds.paths[r1], quality=85)
    pairs = {t0: r0, r0: t0, t1: r1, r1: t1}
    # a test image leaks when its copy is in its own fold's training set (both ways round)
    leaked = {ds.names[i] for f in folds for i in f.test if i in pairs and pairs[i] in f.train}
    assert {ds.names[t0], ds.names[t1]} <= leaked

    order = [i for f in folds for i in f.test]
    kw = {"labels": [int(ds.labels[i]) for i in order], "names": [ds.names[i] for i in order],
          "folds": [f.index for f in folds for _ in f.test]}
    run_a = _run(tmp_path / "a", [0.9] * len(order), **kw)
    _run(tmp_path / "b", [0.1] * len(order), **kw)
    # run A is a crossval run: its data and folds say which images leak
    cfg = RunConfig(data=str(twitter_like), model="smallcnn", init="random",
                    train=CROSSVAL["quick"]["train"])
    (run_a / "config.json").write_text(json.dumps({"command": "crossval", **cfg.to_dict()}))
    save_folds(folds, ds, run_a / "folds.json")

    out = tmp_path / "cmp.json"
    assert main(["compare", str(run_a), str(tmp_path / "b"), "--without-train-copies",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"left out: {len(leaked)} test images with a copy in their fold's training set" \
        in printed
    assert f"{len(order) - len(leaked)} images, {len(leaked)} left out" in printed
    res = json.loads(out.read_text())
    assert set(res["left_out"]) == leaked
    assert res["left_out"][ds.names[t0]] == {"copy_in_training": ds.names[r0],
                                             "reason": "same bytes"}
    assert res["left_out"][ds.names[t1]]["copy_in_training"] == ds.names[r1]
    assert res["left_out"][ds.names[t1]]["reason"].startswith("thumbnail similarity")
    assert (res["n"], res["n_excluded"]) == (len(order) - len(leaked), len(leaked))
    # without the option every test image counts
    assert main(["compare", str(run_a), str(tmp_path / "b"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n"] == len(order)


def test_a_probability_of_exactly_one_half_is_a_negative_prediction(tmp_path):
    # ties (0.5) in both runs: predicted negative (P > 0.5 is positive), as vsent.evaluate does.
    # Counting a tie as positive would turn A's two right ties (label 0) into errors.
    labels, folds = [0, 0, 1, 1], [1, 1, 2, 2]
    a = _run(tmp_path / "a", [0.5, 0.5, 0.9, 0.9], labels=labels, folds=folds)
    b = _run(tmp_path / "b", [0.5, 0.9, 0.9, 0.1], labels=labels, folds=folds)
    res = compare_runs(a, b)
    # A right on all 4; B right on 0 (tie, label 0) and 2, wrong on 1 and 3
    assert (res["accuracy_a"], res["accuracy_b"]) == (1.0, 0.5)
    assert (res["a_only"], res["b_only"]) == (2, 0)
    assert res["p_value"] == pytest.approx(0.5)  # two-sided P(X = 0 or 2 | n = 2) = 2 / 4
    assert [f["difference"] for f in res["folds"]] == pytest.approx([-0.5, -0.5])


def test_a_run_is_right_where_its_own_predicted_class_is(tmp_path):
    """fidelity36 #1: a run of more than two outputs (fc8-1000, fc7-4096: Campos et al.'s
    Tables 3-4) predicts the argmax over all of them (its ``pred`` column, which its accuracy
    counts): a negative image whose argmax is unit 1234 is wrong, though its P(positive) is
    below 0.5. A two-way run's pred is P(positive) > 0.5 (ties negative), so nothing changes."""
    labels, folds = [0, 0, 1, 1], [1, 1, 2, 2]
    wide = _run(tmp_path / "wide", [1e-4, 1e-4, 0.9, 0.3], labels=labels, folds=folds,
                pred=[1234, 0, 1, 17])
    two = _run(tmp_path / "two", [0.2, 0.5, 0.9, 0.3], labels=labels, folds=folds,
               pred=[0, 0, 1, 0])
    res = compare_runs(wide, two)
    assert (res["accuracy_a"], res["accuracy_b"]) == (0.5, 0.75)  # wide: right on 1 and 2
    assert (res["a_only"], res["b_only"]) == (0, 1)
    plain = _run(tmp_path / "plain", [0.2, 0.5, 0.9, 0.3], labels=labels, folds=folds)
    assert compare_runs(two, plain)["identical"] and \
        compare_runs(wide, plain)["accuracy_b"] == 0.75
    # 10-crop: its own predicted class (pred_10crop), not the centre crop's pred
    ten = _run(tmp_path / "ten", [0.2, 0.5, 0.9, 0.3], labels=labels, folds=folds,
               ten_crop=[1e-4, 1e-4, 0.9, 0.3], pred=[0, 0, 1, 0])
    lines = (ten / "predictions.csv").read_text().splitlines()
    (ten / "predictions.csv").write_text("\n".join(
        f"{line},{p}" for line, p in zip(lines, ["pred_10crop", 1234, 0, 1, 17], strict=True)))
    assert compare_runs(ten, plain, ten_crop=False)["accuracy_a"] == 0.75
    assert compare_runs(ten, ten, ten_crop=True)["accuracy_a"] == 0.5


def test_a_run_named_twice_is_refused_before_holm_counts_it_twice(tmp_path, capsys):
    """robust36 #11: `compare A B C B` (or B and a link to it) made a family of three, its
    Holm correction too strong for the two comparisons there are."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    c = _run(tmp_path / "c", A[::-1], labels=LABELS, folds=FOLDS)
    (tmp_path / "link").symlink_to(b)
    for again in (b, tmp_path / "link"):
        assert main(["compare", str(a), str(b), str(c), str(again)]) == 2
        assert capsys.readouterr().err == (f"vsent: error: {again}: named twice (as {b} too); "
                                           "each run B is compared once\n")
    assert main(["compare", str(a), str(b), str(c)]) == 0
    from vsent.analyses.compare import compare_many  # the API refuses it too, not only the CLI

    with pytest.raises(VsentError, match=r"link: named twice \(as .*b too\)"):
        compare_many(a, [b, c, tmp_path / "link"])


def test_compare_many_gives_each_run_its_own_holm_p_value(tmp_path):
    # two runs with clearly different p-values, the larger one listed first: Holm's values
    # must stay with their runs (a family of p = 1 values, as above, cannot tell)
    from vsent.analyses.compare import compare_many

    n = 20
    labels, folds = [1] * n, [1 + i % 2 for i in range(n)]
    ref = _run(tmp_path / "ref", [0.9] * 10 + [0.1] * 10, labels=labels, folds=folds)
    strong = _run(tmp_path / "strong", [0.9] * n, labels=labels, folds=folds)  # 0 vs 10
    weak = _run(tmp_path / "weak", [0.1] * 2 + [0.9] * 12 + [0.1] * 6, labels=labels,
                folds=folds)  # right only in ref: 0, 1; only in weak: 10-13
    res = compare_many(ref, [weak, strong])
    assert [(r["a_only"], r["b_only"]) for r in res] == [(2, 4), (0, 10)]
    p_weak, p_strong = binomtest(2, 6, 0.5).pvalue, binomtest(0, 10, 0.5).pvalue
    assert p_strong == pytest.approx(2 / 2**10)
    assert [r["p_value"] for r in res] == pytest.approx([p_weak, p_strong])
    # Holm: smallest p times 2, then the next times 1, kept monotone
    assert [r["p_holm"] for r in res] == pytest.approx([max(p_weak, 2 * p_strong),
                                                        2 * p_strong])


#: Damaged predictions.csv files (as text edits of a good one) and the line naming each:
#: the one reader (read_predictions) that compare, fuse and ensemble share.
DAMAGED = {
    "missing column": (lambda lines: [",".join(c for i, c in enumerate(line.split(","))
                                               if i != 1) for line in lines],
                       r"predictions.csv, line 1: no column 'fold'"),
    "not a number": (lambda lines: [*lines[:2], "im01.jpg,1,0,abc", *lines[3:]],
                     r"predictions.csv, line 3: unreadable row \(prob_positive: could not "
                     r"convert string to float: 'abc'\)"),
    "row cut short": (lambda lines: [*lines[:-1], lines[-1][:10]],
                      r"predictions.csv, line 11: unreadable row \(cut short: 2 of 4 fields\)"),
    "no probability": (lambda lines: [*lines[:2], "im01.jpg,1,0,nan", *lines[3:]],
                       r"predictions.csv, line 3: unreadable row \(prob_positive: 'nan' is not "
                       r"a probability\)"),
    "a row twice": (lambda lines: [*lines, lines[4]],
                    r"predictions.csv, line 12: im03.jpg again \(first on line 5\)"),
    # a lost newline: the first row read, the second lost, then "not tested on the same
    # images" naming the wrong cause (audit_ens23 #7)
    "two rows on one line": (lambda lines: [*lines[:2], lines[2] + lines[3], *lines[4:]],
                             r"predictions.csv, line 3: unreadable row \(7 fields, the header "
                             r"has 4\)"),
    "header only": (lambda lines: lines[:1], r"predictions.csv: no rows"),
    # not "no probabilities (column 'prob_positive')" (audit59)
    "empty": (lambda lines: [], r"predictions.csv: empty file \(no header line\)$"),
    "not text": (lambda lines: [*lines[:2], "im01.jpg,1,0,0\udcff", *lines[3:]],  # byte 0xff
                 r"predictions.csv, line 3: unreadable row \(prob_positive: could not convert "
                 r"string to float: '0\\udcff'\)"),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_predictions_file_is_one_line_naming_it(tmp_path, capsys, damage):
    """A column lost, a non-number, a row cut short, ...: one VsentError naming the file and
    the line, from the reader fuse and ensemble use too (tests/test_fusion.py,
    tests/test_ensemble.py), never a KeyError, ValueError or TypeError."""
    from vsent.analyses.compare import read_predictions

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    bad = _run(tmp_path / "bad", A, labels=LABELS, folds=FOLDS)
    edit, message = DAMAGED[damage]
    pred_file = bad / "predictions.csv"
    text = "\n".join(edit(pred_file.read_text().splitlines())) + "\n"
    pred_file.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(VsentError, match=message):
        read_predictions(pred_file, "prob_positive")
    with pytest.raises(VsentError, match=message):
        compare_runs(a, bad)
    assert main(["compare", str(a), str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {pred_file}")


def test_a_predictions_file_resaved_with_a_bom_compares_as_the_original(tmp_path, capsys):
    """A spreadsheet's UTF-8 BOM was read as part of the first column's name: "line 1: no
    column 'name'" (audit_input25 #8). It is dropped, as the dataset CSVs' is."""
    import codecs
    import shutil

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    bom = tmp_path / "bom"
    shutil.copytree(b, bom)
    pred_file = bom / "predictions.csv"
    pred_file.write_bytes(codecs.BOM_UTF8 + pred_file.read_bytes().replace(b"\r\n", b"\n"))
    want, got = compare_runs(a, b), compare_runs(a, bom)
    assert got.pop("b") == str(bom) and got.pop("scores_b").startswith(str(pred_file))
    del want["b"], want["scores_b"]
    assert got == want and got["n"] == 10
    capsys.readouterr()
    assert main(["compare", str(a), str(bom)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_good_predictions_file_is_read_as_written(tmp_path):
    from vsent.analyses.compare import read_predictions

    run = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS, ten_crop=B)
    rows = read_predictions(run / "predictions.csv", "prob_positive",
                            optional=("prob_positive_10crop", "prob_other"))
    assert list(rows) == [f"im{i:02d}.jpg" for i in range(10)]  # the file's order
    assert rows["im01.jpg"] == {"name": "im01.jpg", "fold": 1, "label": 0,
                                "prob_positive": 0.1, "prob_positive_10crop": 0.6}
    # a file name that is not UTF-8, as RunDir.write_csv writes it (its bytes): read back as
    # the dataset names it (os's surrogateescape), not refused as "not a UTF-8 CSV file"
    pred_file = run / "predictions.csv"
    pred_file.write_bytes(pred_file.read_bytes().replace(b"im01.jpg", b"caf\xe9.jpg"))
    rows = read_predictions(pred_file, "prob_positive")
    assert os.fsdecode(b"caf\xe9.jpg") in rows and "im01.jpg" not in rows


def test_cli_json_never_replaces_a_file_that_is_no_comparison(tmp_path, capsys):
    """`--json runs/q/summary.json` replaced a finished run's summary, and any other file,
    without a word (walk24 #1). A run's files are refused, another file needs --overwrite,
    an earlier comparison is replaced."""
    from vsent.cli import main

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    # (a run's config.json too: mut59c C156)
    for target in (a / "summary.json", b / "predictions.csv", a / "config.json"):
        before = target.read_bytes()
        for extra in ([], ["--overwrite"]):
            assert main(["compare", str(a), str(b), "--json", str(target), *extra]) == 2
            assert "which this command reads" in capsys.readouterr().err
            assert target.read_bytes() == before
    # --overwrite without --json was ignored without a word (mut51a)
    assert main(["compare", str(a), str(b), "--overwrite"]) == 2
    assert capsys.readouterr() == ("", "vsent: error: --overwrite goes with --json FILE\n")
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    assert main(["compare", str(a), str(b), "--json", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"vsent: error: --json {notes}: exists and is no comparison of "
                           "vsent compare: choose another file, or pass --overwrite to replace it")
    assert notes.read_text() == '{"mine": 1}'
    assert main(["compare", str(a), str(b), "--json", str(notes), "--overwrite"]) == 0
    assert main(["compare", str(a), str(b), "--json", str(notes)]) == 0  # its own: replaced
    folder = tmp_path / "reports"
    folder.mkdir()
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):  # a folder: no --overwrite offered (audit_errors28 #7)
        assert main(["compare", str(a), str(b), "--json", str(folder), *extra]) == 2
        assert capsys.readouterr().err.strip() == (
            f"vsent: error: --json {folder}: is a folder; give the name of a file")
    assert json.loads(notes.read_text())["scores_b"].endswith("predictions.csv:prob_positive")
    # a folder that is not there: said before the comparison (robust39 #5: after it)
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "no" / "c.json")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == (
        f"vsent: error: --json {tmp_path / 'no' / 'c.json'}: no folder {tmp_path / 'no'}; make "
        "it, or choose another file\n")


def test_cli_json_records_the_files_it_compared_and_which_vsent(tmp_path, capsys, monkeypatch):
    """The JSON names each predictions file scored with its SHA-256 (a run made again since no
    longer matches), the command line and vsent's versions (audit_ens27 #6)."""
    import hashlib

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    c = _run(tmp_path / "c", B, labels=LABELS, folds=FOLDS, command="crossval")
    (c / "config.json").write_text(json.dumps({"command": "crossval", "fusion": "gch+bow"}))
    (c / "fusion").mkdir()  # a crossval --fusion run is scored by its fused probability
    (c / "fusion" / "predictions.csv").write_text(
        (c / "predictions.csv").read_text().replace("prob_positive", "prob_fused"))
    for runs in ([a, b], [a, b, c]):
        out = tmp_path / "cmp.json"
        argv = ["compare", *map(str, runs), "--json", str(out)]
        assert main(argv) == 0
        record = json.loads(out.read_text())["provenance"]
        files = [a / "predictions.csv", b / "predictions.csv", c / "fusion" / "predictions.csv"]
        assert record["inputs"] == {str(f.resolve()): hashlib.sha256(f.read_bytes()).hexdigest()
                                    for f in files[:len(runs)]}
        assert record["argv"] == ["vsent", *argv]
        assert record["versions"]["vsent"] and "git_commit" in record["versions"]
        assert record["date"]
    capsys.readouterr()
    # a --json that cannot be written (a full disk) is one line naming it (mut54a P35)
    import errno

    import vsent.files

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vsent.files, "atomic_write_text", full)
    assert main(["compare", str(a), str(b), "--json", str(out)]) == 2
    assert capsys.readouterr().err == \
        f"vsent: error: {out}: cannot write (No space left on device)\n"


# mutation round 43 (mut43): tests that kill mutants the suite missed


def test_the_difference_is_over_all_images_not_the_mean_of_the_folds(tmp_path):
    """mut43 CO27: ``difference`` is B - A over all images; with folds of 2 and 4 images it is
    not the mean of the per-fold differences (every earlier case had folds of one size)."""
    labels, folds = [1, 0, 1, 0, 1, 0], [1, 1, 2, 2, 2, 2]
    a = _run(tmp_path / "a", [0.9, 0.1, 0.9, 0.1, 0.9, 0.1], labels=labels, folds=folds)
    b = _run(tmp_path / "b", [0.1, 0.9, 0.9, 0.1, 0.9, 0.1], labels=labels, folds=folds)
    res = compare_runs(a, b)  # B wrong on fold 1's two images: 4 / 6 against 6 / 6
    assert res["difference"] == pytest.approx(4 / 6 - 1)
    assert [f["difference"] for f in res["folds"]] == pytest.approx([-1.0, 0.0])
    assert res["fold_difference"] == pytest.approx({"mean": -0.5, "std": 0.5})


def test_runs_with_the_same_predictions_but_other_probabilities_are_not_identical(tmp_path):
    """mut43 CO18: ``identical`` says B gives every image A's *probability* (a run with
    itself, or a copy); another run that predicts the same classes with other probabilities
    is a comparison with no discordant image, not a copy."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    same_side = [0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.45, 0.55, 0.45, 0.55]  # A's side of 0.5 each
    b = _run(tmp_path / "b", same_side, labels=LABELS, folds=FOLDS)
    res = compare_runs(a, b)
    assert (res["a_only"], res["b_only"], res["p_value"]) == (0, 0, 1.0)
    assert res["identical"] is False and "note:" not in comparison_text(res)


def test_probabilities_of_exactly_zero_and_one_are_read(tmp_path):
    """mut43 CO24: 0 and 1 are probabilities (a saturated softmax writes them); only values
    outside [0, 1] are refused."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", [1.0, 0.0] + B[2:], labels=LABELS, folds=FOLDS)
    res = compare_runs(a, b)  # B now right on images 0 and 1 as well
    assert (res["a_only"], res["b_only"]) == (0, 4)
    assert res["accuracy_b"] == pytest.approx(1.0)


def test_only_excluded_images_of_the_runs_count_as_left_out(tmp_path):
    """mut43 CO17: ``n_excluded`` is how many of the runs' images were left out; a name in
    ``exclude`` that is no image of theirs leaves nothing out."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    res = compare_runs(a, b, exclude={"im00.jpg", "elsewhere.jpg"})
    assert (res["n"], res["n_excluded"], res["a_only"], res["b_only"]) == (9, 1, 1, 4)
    assert res["p_value"] == pytest.approx(binomtest(1, 5, 0.5).pvalue)


def test_compare_many_leaves_the_excluded_images_out_of_every_comparison(tmp_path):
    """mut43 CO28: ``exclude`` reaches each comparison of the family, its p-value and so its
    Holm correction."""
    from vsent.analyses.compare import compare_many

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    c = _run(tmp_path / "c", A[::-1], labels=LABELS, folds=FOLDS)
    left_out = {"im00.jpg", "im06.jpg"}
    many = compare_many(a, [b, c], exclude=left_out)
    for res, run in zip(many, [b, c], strict=True):
        alone = compare_runs(a, run, exclude=left_out)
        assert (res["n"], res["n_excluded"]) == (8, 2)
        assert (res["a_only"], res["b_only"], res["p_value"]) == \
            (alone["a_only"], alone["b_only"], alone["p_value"])
    assert (many[0]["a_only"], many[0]["b_only"]) == (1, 3)
    from vsent.analyses.compare import comparisons_table  # and the table says so

    assert comparisons_table(many).startswith(
        f"reference A: {a}: accuracy 0.625 (centre, 8 images, 2 left out; {a}/predictions.csv:")


def test_cli_without_train_copies_leaves_them_out_of_each_of_several_runs(tmp_path, capsys,
                                                                          monkeypatch):
    """mut43 CO30: with several runs B, --without-train-copies leaves the leaked test images
    out of every comparison, as with one (train_copies stubbed: the images it names)."""
    import vsent.analyses.compare as C

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    c = _run(tmp_path / "c", A[::-1], labels=LABELS, folds=FOLDS)
    copies = {"im00.jpg": ("im05.jpg", "same bytes"), "im06.jpg": ("im01.jpg", "same bytes")}
    monkeypatch.setattr(C, "train_copies", lambda run: copies)
    out = tmp_path / "many.json"
    assert main(["compare", str(a), str(b), str(c), "--without-train-copies",
                 "--json", str(out)]) == 0
    assert "left out: 2 test images" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert [(r["n"], r["n_excluded"]) for r in saved["comparisons"]] == [(8, 2), (8, 2)]
    assert set(saved["left_out"]) == set(copies)


# mutation round 47 (mut47c): vsent.cli.compare mutants the suite missed


def test_a_run_named_twice_is_refused_before_the_train_copies_are_searched(tmp_path, capsys,
                                                                            monkeypatch):
    """--without-train-copies reads every image of run A's data: a run B named twice is
    refused before that work, not after it."""
    import vsent.analyses.compare as C

    def searched(run):
        raise AssertionError("train copies searched before the runs were checked")

    monkeypatch.setattr(C, "train_copies", searched)
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    assert main(["compare", str(a), str(b), str(b), "--without-train-copies"]) == 2
    assert "named twice" in capsys.readouterr().err


def test_cli_ten_crop_reaches_one_comparison_and_several(tmp_path):
    """--ten-crop scores the 10-crop columns, for one run B and for several (the centre crops
    give the opposite counts: 2 images only A gets right, 4 only B)."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS, ten_crop=B)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS, ten_crop=A)
    c = _run(tmp_path / "c", B, labels=LABELS, folds=FOLDS, ten_crop=A)
    out = tmp_path / "one.json"
    assert main(["compare", str(a), str(b), "--ten-crop", "--json", str(out)]) == 0
    one = json.loads(out.read_text())
    assert one["view"] == "10-crop" and (one["a_only"], one["b_only"]) == (4, 2)
    out = tmp_path / "many.json"
    assert main(["compare", str(a), str(b), str(c), "--ten-crop", "--json", str(out)]) == 0
    many = json.loads(out.read_text())["comparisons"]
    assert [(r["view"], r["a_only"], r["b_only"]) for r in many] == [("10-crop", 4, 2)] * 2


def test_cli_json_replaces_an_earlier_comparison_of_several_runs(tmp_path, capsys):
    """A comparison of several runs (its JSON has "comparisons", no "scores_a") is an earlier
    comparison: the same command again replaces it without --overwrite."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    c = _run(tmp_path / "c", A, labels=LABELS, folds=FOLDS)
    out = tmp_path / "cmp.json"
    argv = ["compare", str(a), str(b), str(c), "--json", str(out)]
    assert main(argv) == 0
    assert main(argv) == 0
    assert "comparisons" in json.loads(out.read_text())


def test_cli_json_never_replaces_a_runs_fused_predictions_even_with_overwrite(tmp_path, capsys):
    """A crossval --fusion run is scored from fusion/predictions.csv: --json naming that file
    is refused even with --overwrite (the run would lose its fused result)."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    (b / "fusion").mkdir()
    fused = b / "fusion" / "predictions.csv"
    fused.write_text((b / "predictions.csv").read_text().replace("prob_positive", "prob_fused"))
    before = fused.read_bytes()
    assert main(["compare", str(a), str(b), "--json", str(fused), "--overwrite"]) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert fused.read_bytes() == before


def test_cli_json_in_a_folder_it_cannot_write_is_said_before_the_comparison(tmp_path, capsys,
                                                                            monkeypatch):
    """A --json whose folder is not writable is one line, before anything is printed."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    folder = tmp_path / "reports"
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False
                        if os.fspath(path) == str(folder) else real(path, mode, **kw))
    assert main(["compare", str(a), str(b), "--json", str(folder / "c.json")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == (
        f"vsent: error: --json {folder / 'c.json'}: its folder is not writable; choose another "
        "file\n")


@pytest.mark.parametrize("text", ["3\n", '"scores_a and comparisons"\n', "scores_a: mine\n"])
def test_cli_json_keeps_a_json_file_that_is_no_object(tmp_path, capsys, text):
    """A JSON file that holds a number or a string is no earlier comparison: kept, one line
    (a text that merely contains "scores_a" is no comparison's record); so is a file that is
    no JSON at all (mut59c C158: its ValueError was a traceback)."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    mine = tmp_path / "mine.json"
    mine.write_text(text)
    assert main(["compare", str(a), str(b), "--json", str(mine)]) == 2
    assert "exists and is no comparison" in capsys.readouterr().err
    assert mine.read_text() == text


def test_cli_json_expands_the_home_folder_and_refuses_an_empty_path(tmp_path, capsys,
                                                                    monkeypatch):
    """--json takes paths as --out does: ``~`` is the home folder (quoted, the shell leaves it),
    and an empty one (an unset shell variable) is a usage error, not a comparison that writes
    nothing."""
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert main(["compare", str(a), str(b), "--json", "~/c.json"]) == 0
    assert json.loads((tmp_path / "home" / "c.json").read_text())["b_only"] == 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(a), str(b), "--json", ""])
    assert exit_.value.code == 2
    assert "--json: an empty path" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47f): vsent.analyses.compare mutants the suite missed


def test_an_unfinished_ensemble_is_said_as_such_not_as_another_commands_run(tmp_path):
    # compare reads ensembles: an interrupted one is "not a finished run", not "a `vsent
    # ensemble` run, " as if another command's output had been given
    from vsent.analyses.compare import check_finished_run

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    (a / "summary.json").unlink()
    # a fuse run too: compare reads it (mut56j O2)
    for command in ("ensemble", "fuse"):
        (a / "config.json").write_text(json.dumps({"command": command}))
        with pytest.raises(VsentError) as e:
            check_finished_run(a)
        assert str(e.value) == (f"{a}: not a finished run (needs config.json, predictions.csv "
                                "and summary.json)")


def test_a_check_of_one_file_names_it_alone(tmp_path):
    from vsent.analyses.compare import check_finished_run

    (tmp_path / "r").mkdir()
    with pytest.raises(VsentError, match=r"r: not a finished run \(needs config\.json\)$"):
        check_finished_run(tmp_path / "r", files=("config.json",))


def test_provenance_records_each_file_read_once_by_its_absolute_path(tmp_path, monkeypatch):
    # the JSON record's inputs are "predictions file (absolute): SHA-256": a run named by a
    # relative path and by an absolute one is one file, recorded once, wherever it was run
    from vsent.analyses.compare import provenance
    from vsent.files import file_sha256

    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    monkeypatch.chdir(tmp_path)
    record = provenance(["a", a])
    pred = a.resolve() / "predictions.csv"
    assert record["inputs"] == {str(pred): file_sha256(pred)}
    assert record["argv"] is None


def test_the_fold_difference_is_the_mean_over_the_folds_not_their_median(tmp_path):
    # three folds (two alike): per-fold B - A of -1, 0, 0 has mean -1/3 but median 0
    labels, folds = [1] * 6, [1, 1, 2, 2, 3, 3]
    a = _run(tmp_path / "a", [0.9] * 6, labels=labels, folds=folds)
    b = _run(tmp_path / "b", [0.1, 0.1, 0.9, 0.9, 0.9, 0.9], labels=labels, folds=folds)
    res = compare_runs(a, b)
    assert [f["difference"] for f in res["folds"]] == [-1.0, 0.0, 0.0]
    assert res["fold_difference"] == pytest.approx({"mean": -1 / 3, "std": (2 / 9) ** 0.5})
    assert comparison_text(res).splitlines()[3] == (
        "per fold (B - A): -1.000 +0.000 +0.000; mean -0.333 +- 0.471")


# --------------------------------------------------------------------------------------------
# mutation round 50 (mut50e): vsent.analyses.compare mutants the suite missed


def test_a_ten_crop_table_names_no_b_read_from_its_usual_10crop_column(tmp_path, capsys):
    # --ten-crop with several runs: a B scored by predictions.csv:prob_positive_10crop is
    # read from its usual column (no "(read: ...)"); a fuse run's fused one is said
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS, ten_crop=B)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS, ten_crop=A)
    f = _run(tmp_path / "f", B, labels=LABELS, folds=FOLDS, command="fuse", ten_crop=A)
    assert main(["compare", str(a), str(b), str(f), "--ten-crop"]) == 0
    out = capsys.readouterr().out
    assert f"| {b} | 0.600 |" in out
    assert f"| {f} (read: {f / 'predictions.csv'}:prob_fused_10crop) | 0.600 |" in out


def test_runs_alike_on_every_image_compared_are_identical_whatever_the_left_out_ones(tmp_path):
    # "identical" is of the images compared: B differing from A only on an image left out
    # gives the comparison nothing to say, and is noted as such
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", [0.1, *A[1:]], labels=LABELS, folds=FOLDS)
    assert compare_runs(a, b)["identical"] is False
    res = compare_runs(a, b, exclude={"im00.jpg"})
    assert res["identical"] is True and comparison_text(res).endswith("says nothing")


def test_no_image_left_says_how_many_of_the_runs_images_were_excluded(tmp_path):
    # the count is of the runs' images (10), not of the names given (a name of no image too)
    a = _run(tmp_path / "a", A, labels=LABELS, folds=FOLDS)
    b = _run(tmp_path / "b", B, labels=LABELS, folds=FOLDS)
    every = {f"im{i:02d}.jpg" for i in range(10)} | {"elsewhere.jpg"}
    with pytest.raises(VsentError, match=f"{a}: no test image left once 10 are excluded$"):
        compare_runs(a, b, exclude=every)


def test_a_predictions_file_without_a_name_column_is_one_line_naming_it(tmp_path):
    # images are matched by name: a file that lost its name column is damage said in one
    # line (its file, line 1), not a KeyError on the first row
    from vsent.analyses.compare import read_predictions

    bad = _run(tmp_path / "bad", A, labels=LABELS, folds=FOLDS)
    pred_file = bad / "predictions.csv"
    lines = pred_file.read_text().splitlines()
    pred_file.write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")
    with pytest.raises(VsentError, match=r"bad/predictions.csv, line 1: no column 'name' \(a "
                                         r"predictions file has name, fold, label and "
                                         r"probabilities\)$"):
        read_predictions(pred_file, "prob_positive")
