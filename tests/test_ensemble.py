"""``vsent ensemble``: the mean P(positive) of crossval runs, scored fold by fold."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from conftest import assert_reruns_after_interrupt
from vsent.analyses.ensemble import ensemble, ensemble_runs
from vsent.cli import main
from vsent.errors import VsentError

LABELS = [1, 0, 1, 1, 0, 0, 1, 0]
FOLDS = [1, 1, 1, 1, 2, 2, 2, 2]


def _run(path, probs, probs10=None, folds=FOLDS, labels=LABELS, data="d", model=None,
         subset="five"):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(
        {"command": "crossval", "data": data, "subset": subset, "folds": "campos", "seed": 0,
         "skip_bad": False, **(model or {"model": "smallcnn"})}))
    (path / "folds.json").write_text(json.dumps({"marker": str(path)}))
    (path / "summary.json").write_text(json.dumps(
        {"accuracy": {"mean": 0.5, "std": 0.0}, "center": {"accuracy": {"mean": 0.5,
                                                                        "std": 0.1}}}))
    fields = ["name", "path", "fold", "label", "prob_positive", "pred"]
    if probs10 is not None:
        fields += ["prob_positive_10crop", "pred_10crop"]
    with (path / "predictions.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for i, (k, y, p) in enumerate(zip(folds, labels, probs, strict=True)):
            row = {"name": f"im{i}.jpg", "path": f"/x/im{i}.jpg", "fold": k, "label": y,
                   "prob_positive": p, "pred": int(p > 0.5)}
            if probs10 is not None:
                row.update(prob_positive_10crop=probs10[i], pred_10crop=int(probs10[i] > 0.5))
            w.writerow(row)
    return path


def test_ensemble_averages_probabilities_and_scores_each_fold(tmp_path):
    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    b = [0.7, 0.2, 0.8, 0.4, 0.4, 0.5, 0.2, 0.3]
    c = [0.2, 0.5, 0.9, 0.6, 0.1, 0.2, 0.7, 0.2]
    runs = [_run(tmp_path / n, p, probs10=p[::-1]) for n, p in zip("abc", (a, b, c),
                                                                   strict=True)]
    res = ensemble_runs(runs)
    mean = (np.array(a) + np.array(b) + np.array(c)) / 3
    np.testing.assert_allclose([r["prob_positive"] for r in res["rows"]], mean)
    pred = (mean > 0.5).astype(int)
    acc = [np.mean(pred[:4] == LABELS[:4]), np.mean(pred[4:] == LABELS[4:])]
    assert [f["accuracy"] for f in res["summary"]["center"]["folds"]] == pytest.approx(acc)
    assert res["summary"]["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    mean10 = (np.array(a[::-1]) + np.array(b[::-1]) + np.array(c[::-1])) / 3
    pred10 = (mean10 > 0.5).astype(int)
    assert res["summary"]["ten_crop"]["accuracy"]["mean"] == pytest.approx(
        np.mean([np.mean(pred10[:4] == LABELS[:4]), np.mean(pred10[4:] == LABELS[4:])]))
    assert res["summary"]["n_images"] == 8 and len(res["summary"]["members"]) == 3


def test_ensemble_cli_writes_a_run_that_fuse_can_read(tmp_path, capsys):
    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    runs = [str(_run(tmp_path / "a", a)), str(_run(tmp_path / "b", a[::-1]))]
    out = tmp_path / "ens"
    assert main(["ensemble", *runs, "--out", str(out)]) == 0
    assert "ensemble accuracy" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert {"data", "subset", "folds", "seed", "skip_bad"} <= set(cfg)  # what fuse_run reads
    assert json.loads((out / "folds.json").read_text()) == {"marker": runs[0]}
    rows = list(csv.DictReader((out / "predictions.csv").open(newline="")))
    assert "prob_positive_10crop" not in rows[0]  # not every member has 10-crop
    assert float(rows[0]["prob_positive"]) == pytest.approx((0.9 + 0.1) / 2)
    summary = json.loads((out / "summary.json").read_text())
    assert "ten_crop" not in summary
    acc = summary["accuracy"]  # run.log says what was made (it was left empty)
    assert (out / "run.log").read_text().endswith(
        f" INFO ensemble of 2 runs ({runs[0]}, {runs[1]}): accuracy {acc['mean']:.3f} +- "
        f"{acc['std']:.3f} (centre crop)\n")
    # a finished ensemble is not recomputed; other members are refused
    assert main(["ensemble", *runs, "--out", str(out)]) == 0
    # its runs in another order are the same ensemble (they were refused as "other runs,
    # seed": the first member's seed, an option ensemble does not have)
    made = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.log"}
    capsys.readouterr()
    assert main(["ensemble", *runs[::-1], "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"ensemble accuracy {acc['mean']:.3f}")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.log"} == made
    c = _run(tmp_path / "c", [0.8, *a[1:]])  # another network than runs[0]'s
    assert main(["ensemble", runs[0], str(c), "--out", str(out)]) == 2
    # the Python API writes the same run (the command is a thin layer over it)
    assert ensemble(runs, tmp_path / "api") == summary
    for name in ("config.json", "folds.json", "predictions.csv", "summary.md"):
        assert (tmp_path / "api" / name).read_bytes() == (out / name).read_bytes(), name


def test_ensemble_cli_interrupted_is_written_again_by_the_same_command(tmp_path, capsys,
                                                                     monkeypatch):
    """ensemble has no --resume: an unfinished output directory is written again instead of
    being refused with advice to pass an option it does not have."""
    import vsent.analyses.ensemble as ensemble

    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    argv = ["ensemble", str(_run(tmp_path / "a", a)), str(_run(tmp_path / "b", a[::-1])),
            "--out", str(tmp_path / "ens")]
    assert_reruns_after_interrupt(monkeypatch, capsys, argv, ensemble, "copy_folds")
    assert (tmp_path / "ens" / "summary.json").is_file()
    # the rerun wrote the whole ensemble: the summary ensemble_runs computes, and its folds
    want = ensemble_runs(argv[1:3])["summary"]
    got = json.loads((tmp_path / "ens" / "summary.json").read_text())
    assert got["accuracy"] == pytest.approx(want["accuracy"])
    assert got["n_images"] == want["n_images"] == 8
    assert json.loads((tmp_path / "ens" / "folds.json").read_text()) == {"marker": argv[1]}


def test_ensemble_cli_refuses_to_report_members_that_changed_since(tmp_path, capsys):
    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    b = _run(tmp_path / "b", a[::-1])
    argv = ["ensemble", str(_run(tmp_path / "a", a)), str(b), "--out", str(tmp_path / "ens")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0 and capsys.readouterr().out == first  # the stored result
    shutil.rmtree(b)
    _run(b, [0.99 if y else 0.01 for y in LABELS])  # member b made again: now always right
    assert main(argv) == 2
    assert (f"vsent: error: {(b / 'predictions.csv').resolve()} changed since "
            f"{tmp_path / 'ens'} was made from it: pass --overwrite" in capsys.readouterr().err)
    assert main([*argv, "--overwrite"]) == 0
    assert capsys.readouterr().out.startswith("ensemble accuracy 1.000 +- 0.000")


@pytest.mark.parametrize("change,message", [
    ({"folds": [2, 1, 1, 1, 2, 2, 2, 2]}, "image im0.jpg is fold 2 label 1, in .* fold 1"),
    ({"labels": [0, 0, 1, 1, 0, 0, 1, 0]}, "image im0.jpg is fold 1 label 0"),
    ({"subset": "four"}, "evaluated on other data .*subset: stored 'five', now 'four'"),
])
def test_ensemble_refuses_members_evaluated_otherwise(tmp_path, change, message):
    a = [0.5] * 8
    runs = [_run(tmp_path / "a", a), _run(tmp_path / "b", a, **change)]
    with pytest.raises(VsentError, match=message):
        ensemble_runs(runs)


def test_one_dataset_reached_by_two_paths_is_one_but_a_run_is_taken_once(tmp_path, caplog):
    # the data's path is how a run reached the images (relative, absolute, another machine's
    # copy); the images, labels and folds are what must agree, and they are compared
    copy = tmp_path / "copy" / "twitter1"
    a = _run(tmp_path / "a", [0.9] * 8, data=str(tmp_path / "x" / ".." / "twitter1"))
    b = _run(tmp_path / "b", [0.1] * 8, data=str(copy))
    c = _run(tmp_path / "c", [0.2] * 8, data=str(tmp_path / "twitter1"))
    with caplog.at_level("INFO", logger="vsent"):
        res = ensemble_runs([a, b, c])
    assert f"b read its images from {copy}, " in caplog.text
    # one folder, spelt two ways, is not two (trial32 #13: the default path kept its '..')
    assert "c read its images" not in caplog.text
    assert [r["prob_positive"] for r in res["rows"]] == pytest.approx([0.4] * 8)
    assert res["config"]["data"] == str(tmp_path / "x" / ".." / "twitter1")  # the first's
    with pytest.raises(VsentError, match=r"b/\.\./a: named twice \(as .*a\); an ensemble "
                                         r"takes each run once"):
        ensemble_runs([a, b, b / ".." / "a"])


def test_ensemble_refuses_a_many_way_member(tmp_path):
    # a raw ablation's prob_positive is one output of ImageNet's 1000-way softmax
    a = _run(tmp_path / "a", [0.5] * 8)
    b = _run(tmp_path / "b", [0.5] * 8,
             model={"model": "caffenet", "model_kwargs": {"arch": "fc8-1000"}})
    with pytest.raises(VsentError, match=r"b: an ensemble member: fusion and ensembles average "
                                         r"P\(positive\) of 2-way models; caffenet .* has 1000"):
        ensemble_runs([a, b])


def test_ensemble_of_a_model_this_machine_cannot_build_reads_its_predictions(tmp_path, caplog):
    # e.g. a timm run read where the backbones extra is missing: not checked, logged
    a = _run(tmp_path / "a", [0.5] * 8)
    b = _run(tmp_path / "b", [0.4] * 8, model={"model": "nosuchfamily/net"})
    with caplog.at_level("INFO", logger="vsent"):
        res = ensemble_runs([a, b])
    assert len(res["rows"]) == 8
    assert "b: an ensemble member: nosuchfamily/net cannot be built here" in caplog.text


def test_ensemble_refuses_a_member_missing_a_test_image(tmp_path):
    a = _run(tmp_path / "a", [0.5] * 8)
    b = _run(tmp_path / "b", [0.5] * 7, folds=FOLDS[:7], labels=LABELS[:7])
    with pytest.raises(VsentError, match=r"not tested on the same images: im7.jpg is only in "
                                         r".*a \(7 vs 8 images\)"):
        ensemble_runs([a, b])


def test_ensemble_needs_two_finished_crossval_runs(tmp_path):
    a = _run(tmp_path / "a", [0.5] * 8)
    with pytest.raises(VsentError, match="at least two"):
        ensemble_runs([a])
    (tmp_path / "b").mkdir()
    with pytest.raises(VsentError, match="not a finished crossval run"):
        ensemble_runs([a, tmp_path / "b"])


def test_a_mean_of_exactly_one_half_is_a_negative_prediction(tmp_path):
    # 0.75 and 0.25 average to 0.5 exactly: a tie is negative (as vsent.evaluate's argmax),
    # so the positive images tied at 0.5 are errors and the negative ones are right
    a = [0.75, 0.75, 0.25, 0.9, 0.75, 0.1, 0.25, 0.25]
    b = [0.25, 0.25, 0.75, 0.9, 0.25, 0.1, 0.75, 0.75]
    res = ensemble_runs([_run(tmp_path / "a", a), _run(tmp_path / "b", b)])
    assert [r["prob_positive"] for r in res["rows"]] == [0.5, 0.5, 0.5, 0.9, 0.5, 0.1, 0.5,
                                                         0.5]
    assert [r["pred"] for r in res["rows"]] == [0, 0, 0, 1, 0, 0, 0, 0]
    # LABELS = 1 0 1 1 | 0 0 1 0: fold 1 right on 1 and 3 (2/4), fold 2 on 4, 5, 7 (3/4)
    assert [f["accuracy"] for f in res["summary"]["center"]["folds"]] == [0.5, 0.75]


def test_ten_crop_is_averaged_only_when_every_member_has_it(tmp_path):
    # one member with 10-crop columns, one without: the ensemble has none (no crash, no
    # 10-crop mean taken over one member)
    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    b = [0.8, *a[1:]]  # another network (the same probabilities are refused)
    res = ensemble_runs([_run(tmp_path / "a", a, probs10=a[::-1]), _run(tmp_path / "b", b)])
    assert "prob_positive_10crop" not in res["rows"][0] and "pred_10crop" not in res["rows"][0]
    assert "ten_crop" not in res["summary"]
    res = ensemble_runs([_run(tmp_path / "c", a), _run(tmp_path / "d", b, probs10=a[::-1])])
    assert "ten_crop" not in res["summary"]


def test_members_are_listed_with_their_own_centre_crop_accuracy(tmp_path):
    # _run's summary.json leads with {"mean": 0.5, "std": 0.0} but its "center" entry has
    # std 0.1: the member's centre-crop accuracy is the "center" one
    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    runs = [_run(tmp_path / "a", a), _run(tmp_path / "b", a[::-1])]
    members = ensemble_runs(runs)["summary"]["members"]
    assert members == [{"run": str(r), "accuracy": {"mean": 0.5, "std": 0.1}} for r in runs]


@pytest.mark.parametrize("damage,message", [
    ("missing column", r"b/predictions.csv, line 1: no column 'fold'"),
    ("not a number", r"b/predictions.csv, line 3: unreadable row \(prob_positive: could not "
                     r"convert string to float: 'abc'\)"),
    ("row cut short", r"b/predictions.csv, line 9: unreadable row \(cut short: 3 of 6 "
                      r"fields\)"),
])
def test_a_damaged_member_is_one_line_naming_its_file_and_line(tmp_path, capsys, damage,
                                                                message):
    """compare's reader (vsent.analyses.compare.read_predictions): a KeyError, ValueError or
    TypeError traceback before."""
    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    runs = [_run(tmp_path / "a", a), _run(tmp_path / "b", a[::-1])]
    pred_file = runs[1] / "predictions.csv"
    lines = pred_file.read_text().splitlines()
    if damage == "missing column":
        lines = [",".join(c for i, c in enumerate(line.split(",")) if i != 2) for line in lines]
    elif damage == "not a number":
        lines[2] = "im1.jpg,/x/im1.jpg,1,0,abc,0"
    else:
        lines[-1] = "im7.jpg,/x/im7.jpg,2"
    pred_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(VsentError, match=message):
        ensemble_runs(runs)
    assert main(["ensemble", *map(str, runs), "--out", str(tmp_path / "ens")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {pred_file}")


def test_a_member_whose_predictions_file_has_a_bom_is_averaged_as_without(tmp_path):
    """A spreadsheet's UTF-8 BOM: "line 1: no column 'name'" (audit_input25 #8)."""
    import codecs

    a = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
    runs = [_run(tmp_path / "a", a), _run(tmp_path / "b", a[::-1])]
    want = ensemble_runs(runs)
    pred_file = runs[1] / "predictions.csv"
    pred_file.write_bytes(codecs.BOM_UTF8 + pred_file.read_bytes())
    got = ensemble_runs(runs)
    assert got["rows"] == want["rows"] and got["summary"] == want["summary"]


# --------------------------------------------------------------------------------------------
# audit_ens23: runs counted twice, the column read, damaged summaries, the records


P1 = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]
P2 = [0.7, 0.2, 0.8, 0.4, 0.4, 0.5, 0.2, 0.3]
P3 = [0.2, 0.5, 0.9, 0.6, 0.1, 0.2, 0.7, 0.2]


def test_a_run_inside_a_member_ensemble_is_not_taken_again(tmp_path, caplog, capsys):
    """ensemble(ens(A, B), A) gave A 3/4 of the vote and B 1/4, reported as 2 runs (#1)."""
    import re

    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens, ens2 = tmp_path / "ens", tmp_path / "ens2"
    assert main(["ensemble", str(a), str(b), "--out", str(ens)]) == 0
    with pytest.raises(VsentError, match=re.escape(
            f"{a.resolve()}: taken twice (inside the ensemble {ens} and as {a}); an ensemble "
            "takes each run once")):
        ensemble_runs([ens, a])
    # through two levels (recorded paths, resolved), whichever member comes first
    assert main(["ensemble", str(ens), str(c), "--out", str(ens2)]) == 0
    with pytest.raises(VsentError, match=re.escape(
            f"{b.resolve()}: taken twice (as {b} and inside the ensemble {ens2})")):
        ensemble_runs([b, ens2])
    assert main(["ensemble", str(ens2), str(c / ".." / "a"), "--out",
                 str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.splitlines()
    # (a member spelled otherwise than its resolved path is still named "as" itself)
    assert err == [f"vsent: error: {a.resolve()}: taken twice (inside the ensemble {ens2} and "
                   f"as {c / '..' / 'a'}); an ensemble takes each run once"]
    # an ensemble and a run it does not hold: one member each, its runs share its weight
    with caplog.at_level("INFO", logger="vsent"):
        res = ensemble_runs([ens, c])
    assert f"{ens} is an ensemble of 2 runs: they share its weight, 1/2 of the mean" in \
        caplog.text
    want = ((np.array(P1) + np.array(P2)) / 2 + np.array(P3)) / 2
    np.testing.assert_allclose([r["prob_positive"] for r in res["rows"]], want)


def test_two_members_with_the_same_probabilities_are_one_network(tmp_path, capsys):
    """results/quick and results/accuracy/strong (the same recipe and seed, with --fusion)
    have the same prob_positive: averaged, one network counted twice as "2 runs" (#1)."""
    import re

    a = _run(tmp_path / "quick", P1)
    strong = _run(tmp_path / "strong", P1, model={"model": "smallcnn", "fusion": "gch+bow"})
    b = _run(tmp_path / "b", P2)
    with pytest.raises(VsentError, match=re.escape(
            f"{strong} and {a} give every test image the same probability: the same network")):
        ensemble_runs([a, b, strong])
    assert main(["ensemble", str(a), str(strong), "--out", str(tmp_path / "ens")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the same network" in err[0]
    # one probability differs: two networks
    c = _run(tmp_path / "c", [*P1[:-1], 0.11])
    assert len(ensemble_runs([a, c])["rows"]) == 8


def test_a_crossval_fusion_member_is_averaged_by_its_networks_probability_and_says_so(
        tmp_path, caplog):
    """compare scores a crossval --fusion run by its fused probability; the ensemble averages
    its network's: the config names the column read per member and the log says it (#6)."""
    a = _run(tmp_path / "a", P1)
    f = _run(tmp_path / "f", P2, model={"model": "smallcnn", "fusion": "gch+bow"})
    (f / "fusion").mkdir()
    with (f / "fusion" / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "fold", "label", "prob_fused"])
        for i, (k, y) in enumerate(zip(FOLDS, LABELS, strict=True)):
            w.writerow([f"im{i}.jpg", k, y, 0.99])
    out = tmp_path / "ens"
    with caplog.at_level("INFO", logger="vsent"):
        assert main(["ensemble", str(a), str(f), "--out", str(out)]) == 0
    assert (f"{f} was run with --fusion: the ensemble averages its network's probability "
            "(predictions.csv:prob_positive), not its fused one "
            "(fusion/predictions.csv:prob_fused), by which vsent compare scores it"
            in caplog.text)
    members = json.loads((out / "config.json").read_text())["members"]
    assert [m["scores"] for m in members] == ["predictions.csv:prob_positive"] * 2
    assert "not_averaged" not in members[0]
    assert members[1]["not_averaged"] == "fusion/predictions.csv:prob_fused"
    rows = list(csv.DictReader((out / "predictions.csv").open(newline="")))
    np.testing.assert_allclose([float(r["prob_positive"]) for r in rows],
                               (np.array(P1) + np.array(P2)) / 2)
    assert f"| `{f}` | 0.500 +- 0.100 | predictions.csv:prob_positive |" in \
        (out / "summary.md").read_text()


def test_the_ensembles_config_records_each_members_recipe_and_seed(tmp_path, capsys):
    """config.json's seed was the first member's alone, the members' recipes were not
    recorded (#11); an ensemble made before they were stays finished."""
    a = _run(tmp_path / "a", P1, model={"model": "smallcnn", "preset": "quick", "seed": 0})
    b = _run(tmp_path / "b", P2, model={"model": "smallcnn", "preset": "strong", "seed": 3})
    (a / "data.json").write_text('{"n_images": 8}\n')
    cfg = ensemble_runs([a, b])["config"]
    assert cfg["seed"] == 0 and cfg["seeds"] == [0, 3]
    assert [(m["run"], m["command"], m["model"], m["preset"], m["seed"])
            for m in cfg["members"]] == [(str(a), "crossval", "smallcnn", "quick", 0),
                                         (str(b), "crossval", "smallcnn", "strong", 3)]
    out = tmp_path / "ens"
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    stored = json.loads((out / "config.json").read_text())
    assert stored["seeds"] == [0, 3] and stored["members"] == cfg["members"]
    # the first member's data record travels with the folds (vsent fuse checks it)
    assert (out / "data.json").read_text() == '{"n_images": 8}\n'
    old = {k: v for k, v in stored.items() if k not in ("seeds", "members")}
    (out / "config.json").write_text(json.dumps(old))
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    assert capsys.readouterr().out == first


@pytest.mark.parametrize("damage,message", [
    ("cut short", r"b/summary.json: unreadable \("),
    ("no accuracy", r"b/summary.json: not a run summary \(no accuracy mean and std\)"),
    ("not a number", r"b/summary.json: not a run summary \(no accuracy mean and std\)"),
])
def test_a_member_with_a_damaged_summary_is_one_line_naming_it(tmp_path, capsys, damage,
                                                               message):
    """json.JSONDecodeError or KeyError: 'accuracy' tracebacks before (#5)."""
    runs = [_run(tmp_path / "a", P1), _run(tmp_path / "b", P2)]
    file = runs[1] / "summary.json"
    text = {"cut short": file.read_text()[:25], "no accuracy": "{}",
            "not a number": '{"accuracy": {"mean": "high", "std": 0}}'}[damage]
    file.write_text(text)
    with pytest.raises(VsentError, match=message):
        ensemble_runs(runs)
    assert main(["ensemble", *map(str, runs), "--out", str(tmp_path / "ens")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {file}: ")


def test_a_finished_ensemble_with_a_damaged_summary_is_one_line_naming_it(tmp_path, capsys):
    """The same command on a finished output whose summary.json is damaged: a
    JSONDecodeError traceback before (RunDir.read_json, #5)."""
    argv = ["ensemble", str(_run(tmp_path / "a", P1)), str(_run(tmp_path / "b", P2)),
            "--out", str(tmp_path / "ens")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    file = tmp_path / "ens" / "summary.json"
    text = file.read_text()
    file.write_text(text[:40])
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {file}: unreadable (")
    assert err[0].endswith("pass --overwrite to start again")
    file.write_text('{"accuracy": {}}')  # JSON, but not a summary
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {file}: not an ensemble summary")
    assert main([*argv, "--overwrite"]) == 0 and capsys.readouterr().out == first


def test_the_mean_is_fusions_ensemble_mean(tmp_path, monkeypatch):
    """One mean of P(positive)s (fusion.ensemble_mean), not a second copy (#10); row by row,
    so its bits are those of each image's own mean whatever the number of members."""
    import vsent.analyses.ensemble as ensemble
    from vsent.analyses.fusion import ensemble_mean

    calls = []

    def spy(probs):
        calls.append(len(probs))
        return ensemble_mean(probs)

    monkeypatch.setattr(ensemble, "ensemble_mean", spy)
    ensemble_runs([_run(tmp_path / "a", P1, probs10=P2), _run(tmp_path / "b", P3, probs10=P1)])
    assert calls == [2, 2]  # centre crop and 10-crop
    rng = np.random.default_rng(0)
    cols = [rng.uniform(0, 1, 50) for _ in range(11)]
    assert ensemble_mean(cols).tolist() == [float(np.mean([c[i] for c in cols]))
                                            for i in range(50)]


def test_compare_ensemble_and_fuse_refuse_an_unfinished_run_alike(tmp_path, capsys):
    """One check of "a finished run" (#10): the same files named by the three commands."""
    a, b = _run(tmp_path / "a", P1), _run(tmp_path / "b", P2)
    (b / "summary.json").unlink()
    needs = "(needs config.json, predictions.csv and summary.json)"
    for argv, kind in ((["compare", str(a), str(b)], "run"),
                       (["ensemble", str(a), str(b), "--out", str(tmp_path / "e")],
                        "crossval run"),
                       (["fuse", str(b), "--features", "gch"], "crossval run")):
        assert main(argv) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"vsent: error: {b}: not a finished {kind} {needs}"]


# --------------------------------------------------------------------------------------------
# review23: a run known by its content, not only by its path


def test_a_run_copied_or_moved_is_still_taken_once(tmp_path, capsys):
    """Leaves were the paths a nested ensemble recorded: a member copied or moved elsewhere
    was taken again unnoticed (review23 #2). Its predictions.csv's SHA-256 (the ensemble's
    inputs.json) names it now, through two levels too."""
    import re

    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens, ens2 = tmp_path / "ens", tmp_path / "ens2"
    assert main(["ensemble", str(a), str(b), "--out", str(ens)]) == 0
    assert main(["ensemble", str(ens), str(c), "--out", str(ens2)]) == 0
    copy = tmp_path / "elsewhere" / "a"
    shutil.copytree(a, copy)
    with pytest.raises(VsentError, match=re.escape(
            f"{copy.resolve()}: taken twice (inside the ensemble {ens} and as {copy}: its "
            f"predictions.csv is that of {a.resolve()}, copied or moved); an ensemble takes "
            "each run once")):
        ensemble_runs([ens, copy])
    with pytest.raises(VsentError, match=re.escape(
            f"{a.resolve()}: taken twice (as {copy} and inside the ensemble {ens2}: its "
            f"predictions.csv is that of {copy.resolve()}, copied or moved)")):
        ensemble_runs([copy, ens2])
    # moved: the path ens recorded is gone, the content it averaged is still known
    moved = tmp_path / "elsewhere" / "b"
    shutil.move(b, moved)
    with pytest.raises(VsentError, match=re.escape(f"{moved.resolve()}: taken twice")):
        ensemble_runs([ens2, moved])
    assert main(["ensemble", str(ens2), str(moved), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {moved.resolve()}: taken twice")


def test_an_older_ensemble_without_inputs_is_checked_by_the_runs_it_finds(tmp_path, caplog):
    """An ensemble made before inputs.json: the runs found where it recorded them are hashed
    (a copy is still refused); runs not found cannot be checked, and a WARNING says so instead
    of taking them silently (review23 #2)."""
    import re

    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens = tmp_path / "ens"
    assert main(["ensemble", str(a), str(b), "--out", str(ens)]) == 0
    (ens / "inputs.json").unlink()
    copy = tmp_path / "elsewhere" / "a"
    shutil.copytree(a, copy)
    with pytest.raises(VsentError, match=re.escape(
            f"{copy.resolve()}: taken twice (inside the ensemble {ens} and as {copy}: its "
            f"predictions.csv is that of {a.resolve()}, copied or moved)")):
        ensemble_runs([ens, copy])
    shutil.rmtree(a)
    with caplog.at_level("INFO", logger="vsent"):
        res = ensemble_runs([ens, c])
    assert len(res["rows"]) == 8
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        f"{ens.resolve()} records runs that are not found ({a.resolve()}) and no inputs.json: "
        "whether they are also taken elsewhere (copied or moved) cannot be checked"]


def test_a_member_ensemble_moved_away_is_named_as_unchecked(tmp_path, caplog):
    """ens2 = ensemble(ens, c) with ens moved since: its runs' SHA-256 are in ens's own
    inputs.json, out of reach; a WARNING names it (review23 #2)."""
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    d = _run(tmp_path / "d", [*P1[:-1], 0.11])
    ens, ens2 = tmp_path / "ens", tmp_path / "ens2"
    assert main(["ensemble", str(a), str(b), "--out", str(ens)]) == 0
    assert main(["ensemble", str(ens), str(c), "--out", str(ens2)]) == 0
    shutil.move(ens, tmp_path / "ens-moved")
    with caplog.at_level("WARNING", logger="vsent"):
        assert len(ensemble_runs([ens2, d])["rows"]) == 8
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{ens2.resolve()} holds the ensemble {ens.resolve()}, which is not found: whether its "
        "runs are also taken elsewhere (copied or moved) cannot be checked"]


def test_a_member_ensemble_made_again_since_is_named_as_unchecked(tmp_path, caplog):
    """ens2 = ensemble(ens, c), then ens made again from other runs: ens2 averaged the runs
    ens held then, which ens's inputs.json no longer lists; a WARNING says they cannot be
    checked (its runs now still are)."""
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    d = _run(tmp_path / "d", [*P1[:-1], 0.11])
    e = _run(tmp_path / "e", [*P2[:-1], 0.12])
    ens, ens2 = tmp_path / "ens", tmp_path / "ens2"
    assert main(["ensemble", str(a), str(b), "--out", str(ens)]) == 0
    assert main(["ensemble", str(ens), str(c), "--out", str(ens2)]) == 0
    with caplog.at_level("WARNING", logger="vsent"):
        ensemble_runs([ens2, d])
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert main(["ensemble", str(d), str(b), "--out", str(ens), "--overwrite"]) == 0
    with caplog.at_level("WARNING", logger="vsent"):
        assert len(ensemble_runs([ens2, e])["rows"]) == 8
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{ens2.resolve()} holds the ensemble {ens.resolve()}, which changed since: whether "
        "the runs it held then are also taken elsewhere cannot be checked (its runs now are)"]
    with pytest.raises(VsentError, match="taken twice"):  # d is in ens now
        ensemble_runs([ens2, d])


@pytest.mark.parametrize("damage", [b"{not json", b"[1, 2]"])
def test_a_finished_ensemble_with_a_damaged_inputs_record_says_to_make_it_again(
        tmp_path, capsys, damage):
    """Deleting a damaged inputs.json (read_json's usual remedy) would only silence the check
    of the members: the message says --overwrite, in one line naming the file."""
    a, b = _run(tmp_path / "a", P1), _run(tmp_path / "b", P2)
    argv = ["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]
    assert main(argv) == 0
    capsys.readouterr()
    (tmp_path / "ens" / "inputs.json").write_bytes(damage)
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"vsent: error: {tmp_path / 'ens' / 'inputs.json'}: not ")
    assert err[0].endswith(f"; restore it from a copy of the run, or pass --overwrite to make "
                           f"{tmp_path / 'ens'} again")  # (once, review36 #8)


# mut40: behaviours a mutation of ensemble._stored_order and compare._made_by changed unseen

PROBS = [0.9, 0.6, 0.4, 0.8, 0.2, 0.7, 0.6, 0.1]


def test_relative_runs_in_another_order_are_the_stored_ensemble(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _run(tmp_path / "a", PROBS)
    _run(tmp_path / "b", PROBS[::-1])
    assert main(["ensemble", "a", "b", "--out", "ens"]) == 0
    capsys.readouterr()
    assert main(["ensemble", "b", "a", "--out", "ens"]) == 0, capsys.readouterr().err


def test_a_run_named_twice_is_refused_even_where_the_ensemble_is_stored(tmp_path, capsys):
    a, b = _run(tmp_path / "a", PROBS), _run(tmp_path / "b", PROBS[::-1])
    out = tmp_path / "ens"
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["ensemble", str(a), str(b), str(b / ".." / "a"), "--out", str(out)]) == 2
    assert "named twice" in capsys.readouterr().err


def test_an_out_holding_another_commands_run_is_one_line(tmp_path, capsys):
    a, b = _run(tmp_path / "a", PROBS), _run(tmp_path / "b", PROBS[::-1])
    other = _run(tmp_path / "c", PROBS)  # a crossval run: its config.json has no "runs"
    assert main(["ensemble", str(a), str(b), "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vsent: error: ") and "Traceback" not in err, err


@pytest.mark.parametrize("config, said", [
    ({"command": "fuse"}, "not a finished run"),  # compare reads fuse runs: not "another's"
    ({}, "not a finished run"),                    # no command recorded
])
def test_an_unfinished_run_compare_reads_is_not_named_as_another_commands(tmp_path, config,
                                                                           said):
    a = _run(tmp_path / "a", PROBS)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps(config))
    with pytest.raises(VsentError) as e:
        from vsent.analyses.compare import compare_runs

        compare_runs(a, tmp_path / "x")
    assert f"x: {said}" in str(e.value) and "`vsent" not in str(e.value), str(e.value)


# --------------------------------------------------------------------------------------------
# mutation round 42 (mut42, mut42b): survivors of mutations of the papers' code, each killed here


def test_ensemble_precision_and_recall_are_of_the_positive_predictions(tmp_path):
    """Each fold's precision is TP / predicted positives and its recall TP / true positives
    (mut42 en02: binary_metrics(pred, labels) swapped them; accuracy and F1 did not move)."""
    a = [0.9, 0.6, 0.7, 0.8, 0.8, 0.7, 0.6, 0.1]
    b = [0.7, 0.8, 0.9, 0.6, 0.6, 0.5, 0.2, 0.3]
    res = ensemble_runs([_run(tmp_path / "a", a), _run(tmp_path / "b", b)])
    pred = ((np.array(a) + np.array(b)) / 2 > 0.5).astype(int)
    y = np.array(LABELS)
    folds = np.array(FOLDS)
    for k, got in zip((1, 2), res["summary"]["center"]["folds"], strict=True):
        m = folds == k
        tp = int(((pred == 1) & (y == 1) & m).sum())
        assert got["precision"] == pytest.approx(tp / int(((pred == 1) & m).sum()))
        assert got["recall"] == pytest.approx(tp / int(((y == 1) & m).sum()))
    # (the case tells them apart: in fold 1 four predicted positives, three true positives)
    assert res["summary"]["center"]["folds"][0]["precision"] != pytest.approx(
        res["summary"]["center"]["folds"][0]["recall"])


# mutation round 44 (mut44c): member checks, nested seeds, cycles, rows and summary fields


def test_a_finetune_run_laid_out_as_a_crossval_run_is_no_member(tmp_path):
    runs = [_run(tmp_path / "a", P1), _run(tmp_path / "b", P2, model={"command": "finetune"})]
    with pytest.raises(VsentError, match="made by `vsent finetune`, not by crossval"):
        ensemble_runs(runs)
    # nor a fuse run (its fused probabilities are a fusion's, not a network's)
    runs[1] = _run(tmp_path / "c", P2, model={"command": "fuse"})
    with pytest.raises(VsentError, match="made by `vsent fuse`, not by crossval"):
        ensemble_runs(runs)


# (a summary.json holding a list, not an object: mut58h N42, it was an AttributeError)
@pytest.mark.parametrize("summary", [{"accuracy": {"mean": True, "std": 0.1}},
                                     {"accuracy": {"mean": 0.5}}, [0.5, 0.1]])
def test_a_member_summary_with_a_bool_or_no_std_is_refused(tmp_path, summary):
    runs = [_run(tmp_path / "a", P1), _run(tmp_path / "b", P2)]
    (runs[1] / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(VsentError, match="not a run summary"):
        ensemble_runs(runs)


def test_members_alike_at_the_centre_but_not_in_ten_crop_are_two_networks(tmp_path):
    runs = [_run(tmp_path / "a", P1, probs10=P1), _run(tmp_path / "b", P1, probs10=P2)]
    res = ensemble_runs(runs)
    assert res["summary"]["evaluation"] == "center" and "ten_crop" in res["summary"]
    assert res["rows"][0]["path"] == "/x/im0.jpg"  # the first member's image path kept


def test_an_ensemble_member_is_recorded_with_its_runs_seeds(tmp_path):
    a = _run(tmp_path / "a", P1, model={"model": "smallcnn", "seed": 1})
    b = _run(tmp_path / "b", P2, model={"model": "smallcnn", "seed": 2})
    c = _run(tmp_path / "c", P3)
    ensemble([a, b], tmp_path / "ens")
    assert ensemble_runs([tmp_path / "ens", c])["config"]["seeds"] == [[1, 2], 0]


def test_an_ensemble_whose_inputs_name_itself_is_refused(tmp_path):
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens = tmp_path / "ens"
    ensemble([a, b], ens)
    inputs = json.loads((ens / "inputs.json").read_text())
    inputs[str(ens.resolve() / "predictions.csv")] = "0" * 64
    (ens / "inputs.json").write_text(json.dumps(inputs))
    with pytest.raises(VsentError, match="an ensemble that holds itself"):
        ensemble_runs([ens, c])


def test_an_inputs_record_of_other_than_digests_is_refused(tmp_path):
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens = tmp_path / "ens"
    ensemble([a, b], ens)
    # (one digest among them is not enough: every value must be one)
    (ens / "inputs.json").write_text(json.dumps({str(a / "predictions.csv"): "0" * 64,
                                                 str(b / "predictions.csv"): 1}))
    with pytest.raises(VsentError, match="not a record of inputs"):
        ensemble_runs([ens, c])


@pytest.mark.parametrize("emptied", [False, True])
def test_an_older_ensembles_run_not_found_still_counts_among_its_runs(tmp_path, caplog,
                                                                      emptied):
    """A recorded run gone since, or whose folder is still there but holds no run (no
    config.json: mut50e, it was taken for a run), cannot be checked: the WARNING names it as
    a run not found, and it still counts among the ensemble's runs."""
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens = tmp_path / "ens"
    ensemble([a, b], ens)
    (ens / "inputs.json").unlink()
    shutil.rmtree(a)
    if emptied:
        a.mkdir()
    with caplog.at_level("INFO", logger="vsent"):
        ensemble_runs([ens, c])
    assert f"{ens} is an ensemble of 2 runs: they share its weight, 1/2 of the mean" in (
        caplog.text)
    assert (f"{ens.resolve()} records runs that are not found ({a.resolve()}) and no "
            "inputs.json") in caplog.text


def test_a_run_gone_from_two_older_ensembles_is_still_taken_twice(tmp_path):
    """mut58h N37: a run gone since has no content to be known by: two older ensembles (no
    inputs.json) that both recorded it are refused by its path alone."""
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    e1, e2 = tmp_path / "e1", tmp_path / "e2"
    ensemble([a, b], e1)
    ensemble([a, c], e2)
    for e in (e1, e2):
        (e / "inputs.json").unlink()
    shutil.rmtree(a)
    with pytest.raises(VsentError, match=f"{a.resolve()}: taken twice .*an ensemble takes "
                       "each run once"):
        ensemble_runs([e1, e2])


def test_an_older_ensemble_whose_first_member_has_another_seed_now_is_refused(tmp_path):
    """mut58h N52: the seed (the first member's, with which fuse rebuilds the folds) is part
    of what defines an ensemble: an older one (no inputs.json to catch the run made again)
    is not returned as finished when its first member now says another seed."""
    a, b = _run(tmp_path / "a", P1), _run(tmp_path / "b", P2)
    ens = tmp_path / "ens"
    ensemble([a, b], ens)
    (ens / "inputs.json").unlink()
    (a / "config.json").write_text(json.dumps({**json.loads((a / "config.json").read_text()),
                                               "seed": 5}))
    with pytest.raises(VsentError, match="seed"):
        ensemble([a, b], ens)


def test_a_key_the_first_member_lacks_stays_out_of_the_ensembles_config(tmp_path):
    """mut58h N47: an older member without ``subset`` leaves it out of the ensemble's
    config.json, where readers take their default ("five"); a null would be read as None."""
    runs = [_run(tmp_path / n, p) for n, p in zip("ab", (P1, P2), strict=True)]
    for run in runs:
        cfg = json.loads((run / "config.json").read_text())
        del cfg["subset"]
        (run / "config.json").write_text(json.dumps(cfg))
    config = ensemble_runs(runs)["config"]
    assert "subset" not in config and config["skip_bad"] is False


# mutation round 47 (mut47c): vsent.cli.ensemble mutants the suite missed


@pytest.mark.parametrize("argv", [["a", "b"], ["--out", "ens"]])
def test_cli_ensemble_without_out_or_runs_is_a_usage_error_before_any_work(argv, tmp_path,
                                                                            monkeypatch, capsys):
    """--out and the runs are required: argparse says which is missing (exit 2) before the
    runs are read."""
    import vsent.analyses.ensemble as E

    def no_work(*args, **kwargs):
        raise AssertionError("ensemble started without its required options")

    monkeypatch.setattr(E, "ensemble", no_work)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["ensemble", *argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "the following arguments are required" in err
    assert not (tmp_path / "ens").exists()


def test_cli_ensemble_line_gives_both_crops_and_a_summary_without_accuracy_is_one_line(
        monkeypatch, capsys):
    """mut51a: the 10-crop part of the line (a summary with ten_crop), and a stored summary
    without its accuracy (KeyError) said in one line, exit 2."""
    import vsent.analyses.ensemble as E

    calls = []
    summaries = [{"accuracy": {"mean": 0.75, "std": 0.05},
                  "ten_crop": {"accuracy": {"mean": 0.8, "std": 0.1}}}, {"n_images": 4}]
    monkeypatch.setattr(E, "ensemble", lambda runs, out, **kw: calls.append(
        (runs, out, kw)) or summaries.pop(0))
    assert main(["ensemble", "a", "b", "--out", "ens", "--overwrite"]) == 0
    assert capsys.readouterr().out == ("ensemble accuracy 0.750 +- 0.050 (centre crop; 10-crop "
                                       "0.800 +- 0.100); results in ens/summary.md\n")
    assert calls == [(["a", "b"], "ens", {"overwrite": True})]
    assert main(["ensemble", "a", "b", "--out", "ens"]) == 2
    assert capsys.readouterr().err == ("vsent: error: ens/summary.json: not an ensemble summary "
                                       "(no 'accuracy' entry); pass --overwrite to make it "
                                       "again\n")


def test_cli_ensemble_says_where_its_summary_is_and_reads_a_damaged_one_in_one_line(
        tmp_path, capsys):
    """The last line names OUT/summary.md; a stored summary.json whose accuracy is no mapping
    (a list: TypeError) is one line too, not a traceback."""
    out = tmp_path / "ens"
    argv = ["ensemble", str(_run(tmp_path / "a", P1)), str(_run(tmp_path / "b", P2)),
            "--out", str(out)]
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"; results in {out}/summary.md")
    (out / "summary.json").write_text('{"accuracy": [0.5, 0.1]}')
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "not an ensemble summary" in err[0]
    assert "(list indices must be integers or slices, not str)" in err[0]  # the why, as said


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47f): vsent.analyses.ensemble mutants the suite missed


def test_a_members_ten_crop_column_is_checked_as_a_probability(tmp_path):
    # the 10-crop mean is reported too: a damaged 10-crop cell must stop the ensemble as a
    # damaged centre one does, not be averaged as 1.5
    runs = [_run(tmp_path / "a", P1, probs10=P1), _run(tmp_path / "b", P2, probs10=P2)]
    pred_file = runs[1] / "predictions.csv"
    lines = pred_file.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 2)[0] + ",1.5,1"
    pred_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(VsentError, match=r"b/predictions.csv, line 3: .*prob_positive_10crop"):
        ensemble_runs(runs)


def test_a_nested_ensembles_runs_share_its_weight_and_are_counted_once(tmp_path, caplog):
    # the module docstring: ensemble(ens(A, B), C) weighs A and B 1/4 each, C 1/2; one more
    # level: ensemble(ens(ens(A, B), C), D) weighs A, B 1/8, C 1/4, D 1/2
    from vsent.analyses.ensemble import leaf_runs

    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    p4 = [0.3, 0.9, 0.1, 0.5, 0.6, 0.4, 0.8, 0.7]
    d = _run(tmp_path / "d", p4)
    ens, ens2 = tmp_path / "ens", tmp_path / "ens2"
    ensemble([a, b], ens)
    ensemble([ens, c], ens2)
    # the runs it stands for, not the member ensemble as a run of its own
    assert [leaf.path for leaf in leaf_runs(ens2)] == [r.resolve() for r in (a, b, c)]
    with caplog.at_level("INFO", logger="vsent"):
        res = ensemble_runs([ens2, d])
    assert f"{ens2} is an ensemble of 3 runs: they share its weight, 1/2 of the mean" in \
        caplog.text
    want = (np.array(P1) + np.array(P2)) / 8 + np.array(P3) / 4 + np.array(p4) / 2
    np.testing.assert_allclose([r["prob_positive"] for r in res["rows"]], want)


def test_an_older_ensemble_that_lists_itself_is_refused_in_one_line(tmp_path):
    # no inputs.json: its recorded runs are followed, and a hand-edited list naming the
    # ensemble itself must be a VsentError, not a RecursionError
    a, b, c = (_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True))
    ens = tmp_path / "ens"
    ensemble([a, b], ens)
    (ens / "inputs.json").unlink()
    cfg = json.loads((ens / "config.json").read_text())
    cfg["runs"].append(str(ens.resolve()))
    (ens / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VsentError, match="an ensemble that holds itself"):
        ensemble_runs([ens, c])


def test_rows_follow_the_first_members_order_with_each_images_own_mean(tmp_path):
    # the first member lists its images out of name order: each row's mean must still be
    # that image's, in that member's order (the docstring's "first member's order")
    order = [3, 0, 6, 1, 7, 2, 5, 4]
    a = _run(tmp_path / "a", [P1[i] for i in order], folds=[FOLDS[i] for i in order],
             labels=[LABELS[i] for i in order])
    lines = (a / "predictions.csv").read_text().splitlines()
    renamed = [lines[0]] + [line.replace(f"im{j}.jpg", f"im{order[j]}.jpg")
                            for j, line in enumerate(lines[1:])]
    (a / "predictions.csv").write_text("\n".join(renamed) + "\n")
    res = ensemble_runs([a, _run(tmp_path / "b", P2)])
    assert [r["name"] for r in res["rows"]] == [f"im{i}.jpg" for i in order]
    assert [r["prob_positive"] for r in res["rows"]] == pytest.approx(
        [(P1[i] + P2[i]) / 2 for i in order])


def test_the_summary_md_names_the_number_of_runs_and_each_members_accuracy(tmp_path):
    runs = [_run(tmp_path / n, p) for n, p in zip("abc", (P1, P2, P3), strict=True)]
    ensemble(runs, tmp_path / "ens")
    md = (tmp_path / "ens" / "summary.md").read_text()
    assert md.startswith("# Ensemble (mean P(positive)) of 3 runs, centre crop\n")
    for r in runs:  # _run's summary.json: centre-crop accuracy 0.5 +- 0.1
        assert f"| `{r}` | 0.500 +- 0.100 | predictions.csv:prob_positive |" in md


def test_a_members_predictions_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    # a predictions.csv that exists but cannot be hashed (permissions, I/O error) is named,
    # not taken as a run "no longer where it was recorded" (which is never checked)
    import vsent.analyses.ensemble as E

    def unreadable(file):
        raise PermissionError(13, "Permission denied")

    runs = [_run(tmp_path / "a", P1), _run(tmp_path / "b", P2)]
    monkeypatch.setattr(E, "file_sha256", unreadable)
    with pytest.raises(VsentError, match=r"a/predictions.csv: unreadable \(.*Permission denied"):
        ensemble_runs(runs)


# --------------------------------------------------------------------------------------------
# mutation round 50 (mut50e): vsent.analyses.ensemble mutants the suite missed


def test_each_member_is_listed_with_its_own_accuracy_not_the_first_ones(tmp_path):
    runs = [_run(tmp_path / "a", P1), _run(tmp_path / "b", P2)]
    (runs[1] / "summary.json").write_text(json.dumps(
        {"center": {"accuracy": {"mean": 0.75, "std": 0.05}}}))
    members = ensemble_runs(runs)["summary"]["members"]
    assert [m["accuracy"] for m in members] == [{"mean": 0.5, "std": 0.1},
                                                {"mean": 0.75, "std": 0.05}]


def test_members_given_by_relative_paths_are_recorded_by_absolute_ones(tmp_path, monkeypatch):
    # config.json's members, as its runs, name each run wherever the ensemble is read from
    _run(tmp_path / "a", P1), _run(tmp_path / "b", P2)
    monkeypatch.chdir(tmp_path)
    res = ensemble_runs(["a", "b"])
    config = res["config"]
    want = [str((tmp_path / n).resolve()) for n in "ab"]
    assert [m["run"] for m in config["members"]] == want == config["runs"]
    # summary.json's members (summary.md's table) name each run as typed (mut58h N46)
    assert [m["run"] for m in res["summary"]["members"]] == ["a", "b"]
