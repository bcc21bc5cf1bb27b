"""``vsent reproduce``: reports on a tiny Twitter-like dataset with a tiny network.

The plans keep the papers' structure (tables, sub-runs, published values) but swap the
networks for a 2-block small CNN trained for one epoch, so each reproduction takes seconds.
Every measured number of a report is checked against the run directory it names, and the
published numbers are replaced by sentinels to check they only ever appear as published.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import types
import typing
from pathlib import Path

import pytest

from vsent import papers
from vsent.analyses.probes import ProbeConfig
from vsent.analyses.proposals import ProposalConfig
from vsent.cli import main
from vsent.crossval import PRESETS, RunConfig
from vsent.errors import VsentError, WeightsError
from vsent.models.caffenet import SURGERIES
from vsent.reports import campos2015, runner, you2015
from vsent.reports import reproduce as R

OFFLINE = "cannot download ImageNet weights for smallcnn (no network?): test double"
#: Published values replaced by sentinels nobody would measure by chance.
SENTINEL_T1 = {"center": papers.Published(0.4321, 0.0123, "sentinel"),
               "ten_crop": papers.Published(0.5432, 0.0234, "sentinel")}


def _template(data: Path, init: str = "random") -> RunConfig:
    train = PRESETS["quick"]["train"].replace(epochs=1, batch_size=8, device="cpu")
    return RunConfig(data=str(data), model="smallcnn", model_kwargs={"widths": [4, 8]},
                     init=init, train=train, preset="quick")


def _campos_plan(data: Path) -> R.Campos2015Plan:
    plan = R.make_plan("campos2015", str(data), quick=True, device="cpu")
    return dataclasses.replace(
        plan, template=_template(data, init="imagenet"),
        variants={"fc7-2": {"dropout": 0.1}, "fc9-2": {"widths": [8]}},
        probe=ProbeConfig(Cs=(0.1, 1.0, 10.0), inner_splits=3),
        reductions=["test: a 2-block small CNN for 1 epoch instead of CaffeNet"])


@pytest.fixture(scope="module")
def campos(tmp_path_factory):
    """One campos2015 reproduction with ImageNet weights 'offline' and sentinel Table 1."""
    from conftest import build_twitter_like

    real_create = runner.create_model

    def offline_create(name, *, init="random", **kw):
        if init == "imagenet":
            raise WeightsError(OFFLINE)
        return real_create(name, init=init, **kw)

    tmp = tmp_path_factory.mktemp("campos")
    data = build_twitter_like(tmp / "tw")
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSENT_CACHE", str(tmp / "cache"))
        mp.setattr(runner, "create_model", offline_create)
        mp.setattr(papers, "CAMPOS2015_TABLE1", SENTINEL_T1)
        plan = _campos_plan(data)
        report = R.reproduce(plan, out, progress=False, command="vsent reproduce campos2015 t")
    return data, out, plan, report


def _md_rows(markdown: str, title_start: str) -> list[list[str]]:
    """Cells of the Markdown table under the heading starting with ``title_start``."""
    block = markdown.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _md_header(markdown: str, title_start: str) -> list[str]:
    block = markdown.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in block.splitlines() if ln.startswith("|"))
    return [c.strip() for c in line.strip("|").split("|")]


def _value_at(run_dir: Path, file: str, key: list) -> dict:
    """The mean/std at ``key``; an int key indexes the K-sweep lists (written independently of
    render.lookup)."""
    node = json.loads((run_dir / file).read_text())
    for k in key:
        if isinstance(k, int):
            return {"mean": node["mean"][k], "std": node["std"][k]}
        node = node[k]
    return node


def _md_cells_of_rows(md: str, table: dict) -> list[tuple[list[str], str, str]]:
    """For each report row: (its Markdown cells, its ours cell, its run-dir cell)."""
    md_rows = _md_rows(md, table["title"])
    wide = table.get("wide")
    if not wide:
        assert len(md_rows) == len(table["rows"]), table["id"]
        return [(cells, cells[-3], cells[-1]) for cells in md_rows]
    header = _md_header(md, table["title"])
    by = wide["by"]
    out = []
    for row in table["rows"]:
        head = [c for i, c in enumerate(row["cells"]) if i != by]
        lines = [cells for cells in md_rows if cells[:len(head)] == head]
        assert len(lines) == 1, head
        label = wide["labels"][wide["values"].index(row["cells"][by])]
        cells = lines[0]
        runs = cells[header.index("run dirs")]
        run_cell = "" if row["run_dir"] is None else f"`{row['run_dir']}`"
        assert run_cell in runs
        out.append((cells, cells[header.index(f"{label}: ours")], run_cell))
    return out


def _check_measured(out: Path, report: dict) -> int:
    """Every measured cell equals its run directory's file; returns how many were checked."""
    md = (out / "report.md").read_text()
    checked = 0
    for table in report["tables"]:
        for row, (_, ours_cell, run_cell) in zip(table["rows"], _md_cells_of_rows(md, table),
                                                 strict=True):
            if row["run_dir"] is None:  # a row of the paper vsent does not reproduce
                assert row["ours"] is None and ours_cell == R.NOT_REPRODUCED
                continue
            run_dir = Path(row["run_dir"])
            run_dir = run_dir if run_dir.is_absolute() else out / run_dir
            assert run_cell == f"`{row['run_dir']}`"
            if row["ours"] is None and ours_cell == R.NOT_RECORDED:  # the file lacks it
                assert (run_dir / row["file"]).exists()
                assert R.lookup(run_dir, row["file"], row["key"]) is None
                continue
            if row["ours"] is None:
                assert ours_cell == R.NOT_RUN
                assert not (run_dir / row["file"]).exists() or \
                    R.lookup(run_dir, row["file"], row["key"]) is None
                continue
            stored = _value_at(run_dir, row["file"], row["key"])
            assert row["ours"]["mean"] == stored["mean"]
            assert row["ours"]["std"] == stored["std"]
            scale, digits = (100, 2) if table["unit"] == "percent" else (1, 3)
            assert ours_cell.startswith(f"{scale * stored['mean']:.{digits}f} +- "
                                        f"{scale * stored['std']:.{digits}f}")
            checked += 1
    return checked


# --------------------------------------------------------------------------------------------
# campos2015


def test_campos_report_lists_every_table_and_figure(campos):
    _, out, _, report = campos
    md = (out / "report.md").read_text()
    assert [t["id"] for t in report["tables"]] == ["table1", "table2", "table3", "table4"]
    for title in ("Table 1", "Table 2", "Table 3", "Table 4", "Notes and deviations"):
        assert f"## {title}" in md
    for col in ("paper", "ours (mean +- std)", "run dir"):
        assert f"| {col} |" in md
    assert report["figures"] == ["campos2015.png"]
    assert (out / "campos2015.png").read_bytes()[:4] == b"\x89PNG"
    assert "![campos2015.png](campos2015.png)" in md
    assert report["header"]["date"].endswith("+00:00")  # mut51c U34: in UTC, and says so
    assert json.loads((out / "report.json").read_text())["paper"] == "campos2015"
    # mut54c V19: the report is titled with the paper's full reference, not its short name
    title = R.get_paper("campos2015").title
    assert report["title"] == title and md.startswith(f"# Reproduction: {title}\n")
    assert "- command: `vsent reproduce campos2015 t`" in md
    # the CPU kind is in the header: seeded CPU runs are bit-identical only on the same kind
    machine = report["header"]["machine"]
    assert f"({machine['cpu_capability']}), {machine['cpus']} CPUs" in md
    assert "test: a 2-block small CNN" in md  # every reduction is listed
    # Tables 3-4 list the paper's six variants; the ones this plan did not run say so
    t3 = next(t for t in report["tables"] if t["id"] == "table3")
    t4 = next(t for t in report["tables"] if t["id"] == "table4")
    assert {r["run_dir"] for r in t3["rows"] + t4["rows"]} == set(R.CAMPOS_VARIANTS)
    ran = {r["run_dir"] for r in t3["rows"] + t4["rows"] if r["ours"] is not None}
    assert ran == {"fc7-2", "fc9-2"}


def test_campos_every_measured_number_is_its_run_dirs(campos):
    _, out, _, report = campos
    layers = json.loads((out / "layers" / "layers.json").read_text())
    assert len(layers) == 4  # block1, block2, pool, fc
    # Table 1 (2 evaluations) + 2 classifiers per layer + 2 variants x 2 evaluations
    assert _check_measured(out, report) == 2 + 2 * len(layers) + 4
    t1 = report["tables"][0]["rows"]
    # mut58c A29: a network without an ``arch`` is named alone (not "smallcnn " with a space)
    assert {r["cells"][0] for r in t1} == {"smallcnn"}
    summary = json.loads((out / "table1" / "summary.json").read_text())
    assert [r["ours"]["mean"] for r in t1] == [summary["center"]["accuracy"]["mean"],
                                               summary["ten_crop"]["accuracy"]["mean"]]
    t2 = report["tables"][1]["rows"]
    assert [r["cells"][0] for r in t2[::2]] == list(layers)


def test_published_numbers_are_never_presented_as_measured(campos):
    _, out, _, report = campos
    md = (out / "report.md").read_text()
    for sentinel in ("0.4321 +- 0.0123", "0.5432 +- 0.0234"):
        hits = [cells for t in report["tables"] for cells in _md_rows(md, t["title"])
                if any(sentinel in c for c in cells)]
        assert len(hits) == 1
        assert hits[0][2] == sentinel  # in the paper column, nowhere else
        assert sentinel not in hits[0][3]
    # Tables 3-4: the paper's values as papers.py has them (formatted here independently)
    published = {f"{p.mean:.3f} +- {p.std:.3f}"
                 for t in (papers.CAMPOS2015_TABLE3, papers.CAMPOS2015_TABLE4)
                 for by_eval in t.values() for p in by_eval.values()}
    for t in report["tables"]:
        for cells in _md_rows(md, t["title"]):
            paper = cells[len(t["columns"])]
            allowed = {"0.4321 +- 0.0123", "0.5432 +- 0.0234", R.NOT_AVAILABLE, R.NOT_IN_PAPER}
            if t["id"] in ("table3", "table4"):
                allowed |= published
            assert paper in allowed, paper
    t3 = _md_rows(md, "Table 3")
    assert [c[2] for c in t3 if c[0].startswith("fc7-2 ")] == ["0.784 +- 0.024",
                                                               "0.797 +- 0.021"]
    assert R.NOT_AVAILABLE == "not available"
    assert "n/a (not verified)" not in md


def test_weights_unavailable_is_said_and_rows_are_labelled(campos):
    _, out, _, report = campos
    md = (out / "report.md").read_text()
    head = md.split("## Table 1", 1)[0]
    assert "Pretrained weights were not available" in head
    assert f"Reason: `{OFFLINE}`" in head
    assert report["weights_failures"] == [OFFLINE]
    # a note says it with its reason; the header records the commit (mut54c V29, V21)
    assert f"Weights unavailable, random weights used instead: {OFFLINE}" in report["notes"]
    assert "git_commit" in report["header"]["versions"]
    for name in ("table1", "fc7-2", "fc9-2"):
        w = report["weights"][name]
        assert (w["requested"], w["used"], w["reason"]) == ("imagenet", "random", OFFLINE)
        assert json.loads((out / name / "config.json").read_text())["init"] == "random"
    for t in report["tables"]:
        for r in t["rows"]:
            if r["ours"] is not None:
                assert r["weights"] == R.RANDOM_LABEL


def test_resume_reuses_finished_sub_runs_and_redoes_an_unfinished_fold(campos, tmp_path,
                                                                       monkeypatch):
    import shutil

    data, out, plan, report = campos
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(VsentError, match="pass --resume"):
        R.reproduce(plan, copy, progress=False)
    other = dataclasses.replace(plan, template=dataclasses.replace(
        plan.template, train=plan.template.train.replace(epochs=2)))
    with pytest.raises(VsentError, match=r"plan\.template\.train\.epochs: stored 1, now 2"):
        R.reproduce(other, copy, resume=True, progress=False)

    (copy / "fc9-2" / "summary.json").unlink()  # as if interrupted during fold 5 of fc9-2
    (copy / "fc9-2" / "fold5" / "metrics.json").unlink()
    stamp = lambda p: p.stat().st_mtime_ns  # noqa: E731
    before = {p: stamp(p) for p in copy.glob("*/fold*/model.pt")}
    layers_before = stamp(copy / "layers" / "layers.json")
    again = R.reproduce(plan, copy, resume=True, progress=False)
    changed = sorted(str(p.relative_to(copy)) for p in before if stamp(p) != before[p])
    assert changed == ["fc9-2/fold5/model.pt"]
    assert stamp(copy / "layers" / "layers.json") == layers_before
    assert [r["ours"] for r in again["tables"][0]["rows"]] == \
        [r["ours"] for r in report["tables"][0]["rows"]]
    assert again["steps"]["fc9-2"]["status"] == "done"
    _check_measured(copy, again)


def test_only_runs_the_named_sub_runs(campos, tmp_path, monkeypatch):
    import shutil

    _, out, plan, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "fc9-2")
    report = R.reproduce(plan, copy, resume=True, progress=False, only=["table1"])
    assert not (copy / "fc9-2").exists()
    assert report["steps"]["fc9-2"]["status"] == "skipped (not in --only)"
    rows = [r for t in report["tables"] for r in t["rows"] if r["run_dir"] == "fc9-2"]
    assert rows and all(r["ours"] is None for r in rows)
    assert "| not run |" in (copy / "report.md").read_text()
    with pytest.raises(VsentError, match=r"^--only table9,zz: not a sub-run of campos2015; "
                                         r"choose from table1, "):  # the unknown ones (V17, V18)
        R.reproduce(plan, copy, resume=True, progress=False, only=["table1", "zz", "table9"])
    with pytest.raises(VsentError, match="add table1 to --only"):
        R.reproduce(plan, tmp_path / "fresh", progress=False, only=["layers"])
    (copy / "table1" / "summary.json").unlink()  # mut49c C11: started, not finished
    with pytest.raises(VsentError, match="add table1 to --only"):
        R.reproduce(plan, copy, resume=True, progress=False, only=["layers"])
    assert R.step_names(plan) == ["table1", "layers", "fc7-2", "fc9-2"]


# --------------------------------------------------------------------------------------------
# you2015 and sun2016


def test_you2015_baselines_and_cnn_rows(tmp_path, make_twitter_like):
    data = make_twitter_like()
    plan = R.make_plan("you2015", str(data), quick=True, device="cpu")
    template = _template(data, init=plan.template.init)
    # trained long enough to be confident on some images: the progressive rule keeps those
    template = dataclasses.replace(template, train=template.train.replace(epochs=8))
    plan = dataclasses.replace(plan, template=template, subsets=("five",),
                               baselines={"features": ("gch", "lch")},
                               weak_finetune=template.train)
    report = R.reproduce(plan, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    md = (out / "report.md").read_text()
    assert [t["id"] for t in report["tables"]] == ["table6", "table6-prf"]
    # GCH, LCH, always positive, CNN, CNN on in-domain weak labels x 4 metrics
    assert _check_measured(out, report) == 5 * 4
    # the weak-label row: Algorithms 1 + 2 on the three-agree extras, from random weights,
    # with no published value beside it (it is not You et al.'s Flickr PCNN)
    weak = [r for r in report["tables"][0]["rows"] if r["run_dir"] == "pcnn-weak-five"]
    assert len(weak) == 1 and weak[0]["cells"][0] == you2015.WEAK_LABEL
    assert weak[0]["paper"] is None and R.RANDOM_LABEL in weak[0]["weights"]
    weak_cfg = json.loads((out / "pcnn-weak-five" / "config.json").read_text())
    assert (weak_cfg["extra_train"], weak_cfg["extra_schedule"], weak_cfg["init"]) == (
        "three", "progressive", "random")
    assert (out / "pcnn-weak-five" / "fold1" / "removal.csv").is_file()  # the selection ran
    assert "`pcnn-weak-five`: the selection removed " in md  # what it did, in the notes
    # no checkpoint to transfer: the CNN row is trained from random weights, and says so
    cnn = [r for r in report["tables"][0]["rows"] if r["run_dir"] == "pcnn-five"]
    assert len(cnn) == 1 and R.RANDOM_LABEL in cnn[0]["weights"]
    # the plan ran a small CNN, not You et al.'s 2CONV-4FC: the row names the one that ran
    assert cnn[0]["cells"][0] == "smallcnn (not 2CONV-4FC) from random weights, Twitter only"
    assert "(`vsent crossval --model smallcnn --extra-train three --extra-schedule " \
           "progressive`)" in md  # the weak-label note's command names the model too
    assert cnn[0]["paper"]["mean"] == 0.783  # You et al.'s fine-tuned 2CONV-4FC (README)
    gch = json.loads((out / "baselines" / "five" / "gch" / "summary.json").read_text())
    row = next(r for r in report["tables"][0]["rows"] if r["run_dir"] == "baselines/five/gch")
    assert row["ours"]["mean"] == gch["accuracy"]["mean"]
    assert (out / "you2015.png").exists()


def test_you2015_resumes_its_interrupted_baselines(tmp_path, make_twitter_like, monkeypatch):
    """trial32 #1: a Ctrl-C in the baselines sub-run, then `reproduce you2015 --resume`: the
    sub-run was refused as "an unfinished run: pass --resume" (it was called without it)."""
    from vsent.analyses import baselines as B

    data = make_twitter_like()
    plan = R.make_plan("you2015", str(data), quick=True, device="cpu")
    plan = dataclasses.replace(plan, template=_template(data, init=plan.template.init),
                               subsets=("five",), baselines={"features": ("gch",)})

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(B, "cross_validate", stop)  # after the features: config.json is written
        with pytest.raises(KeyboardInterrupt):
            R.reproduce(plan, tmp_path / "out", progress=False, only=["baselines"])
    assert (tmp_path / "out" / "baselines" / "config.json").exists()
    assert not (tmp_path / "out" / "baselines" / "table.json").exists()
    R.reproduce(plan, tmp_path / "out", resume=True, progress=False, only=["baselines"])
    assert (tmp_path / "out" / "baselines" / "table.json").exists()


def test_you2015_notes_say_what_the_selection_removed(tmp_path):
    """Read from each fold's removal.csv: the share removed (min-max over folds) and the folds
    left with fewer than two classes, whose progressive fine-tuning crossval skipped."""
    from vsent.data.extra import write_removal

    names, labels, scores = [f"im{i}.jpg" for i in range(4)], [0, 1, 1, 0], [[0.5, 0.5]] * 4
    kept = {1: [True, True, False, False],  # 2 of 4 removed, both classes kept
            2: [False, False, False, True]}  # 3 of 4 removed, one class kept
    for k, flags in kept.items():
        d = tmp_path / "pcnn-weak-four" / f"fold{k}"
        d.mkdir(parents=True)
        write_removal(d / "removal.csv", names, labels, scores, flags)
    notes = you2015._selection_notes(tmp_path, ["five", "four"])  # five: no sub-run
    assert notes == ["`pcnn-weak-four`: the selection removed 50.0-75.0 % of the training "
                     "images of each of 2 folds (`fold*/removal.csv`); in 1 of them the rest held "
                     "fewer than two classes and the progressive fine-tuning was skipped."]


def test_you2015_notes_name_the_network_that_ran_and_only_the_plans_weak_sub_runs(tmp_path):
    """mut60c2 Y42: a weak-label folder the plan does not run (left there) is not described;
    Y43: the weak-label note names the network the plan trains, not always 2CONV-4FC."""
    from vsent.data.extra import write_removal

    fold = tmp_path / "pcnn-weak-five" / "fold1"
    fold.mkdir(parents=True)
    write_removal(fold / "removal.csv", ["a.jpg", "b.jpg"], [0, 1], [[0.5, 0.5]] * 2,
                  [True, True])
    paper, session = R.get_paper("you2015"), types.SimpleNamespace(out=tmp_path)
    plan = R.make_plan("you2015", "d", quick=True)

    def notes(p: typing.Any) -> str:
        return " ".join(paper.notes(p, session, {}))

    assert "`pcnn-weak-five`: the selection removed 0.0-0.0 %" in notes(plan)
    assert "pcnn-weak-five" not in notes(dataclasses.replace(plan, weak_finetune=None))
    assert "the 2CONV-4FC network trains on both" in notes(plan)
    small = dataclasses.replace(plan, template=dataclasses.replace(plan.template,
                                                                   model="smallcnn"))
    assert "the smallcnn (not 2CONV-4FC) network trains on both" in notes(small)


def test_table2_sets_the_papers_probes_beside_the_papers_network_only(campos, tmp_path,
                                                                      monkeypatch):
    """A layer named as one of Campos et al.'s (fc7) in another network is not theirs: no
    published cell beside it (audit_ens27 #7), as layers.md does."""
    from vsent.reports import campos2015

    _, out, plan, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    copy = shutil.copytree(out, tmp_path / "copy")
    layers = json.loads((copy / "layers" / "layers.json").read_text())
    layers["fc7"] = next(iter(layers.values()))  # a smallcnn layer of that name
    (copy / "layers" / "layers.json").write_text(json.dumps(layers))
    report = R.reproduce(plan, copy, resume=True, progress=False)
    t2 = next(t for t in report["tables"] if t["id"] == "table2")
    fc7 = [r for r in t2["rows"] if r["cells"][0] == "fc7"]
    assert fc7 and all(r["paper"] is None and r["ours"] is not None for r in fc7)
    assert "so does every layer here: the plan ran smallcnn (published: fine-tuned CaffeNet " \
           "fc8-2)" in t2["note"]
    assert all(r[-4] == R.NOT_IN_PAPER for r in _md_rows((copy / "report.md").read_text(),
                                                         "Table 2"))
    assert campos2015.is_paper_network(R.make_plan("campos2015", "data").template)
    assert not campos2015.is_paper_network(dataclasses.replace(
        R.make_plan("campos2015", "data").template, model_kwargs={"arch": "fc7-2"}))


def test_campos_figure_draws_table2_published_probes_only_for_the_paper_network(
        campos, tmp_path, monkeypatch):
    """The figure's Table 2 panel was given Table 4's values (a loop variable took the name
    of Table 2's): the paper's probes were never drawn (reports38 #1)."""
    _, out, plan, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    given = []
    real = campos2015._figure
    monkeypatch.setattr(campos2015, "_figure",
                        lambda *a: given.append(a[-1]) or real(*a))
    copy = shutil.copytree(out, tmp_path / "copy")
    R.reproduce(plan, copy, resume=True, progress=False)
    assert given == [{}]  # a 2-block small CNN: its layers are not CaffeNet's
    monkeypatch.setattr(campos2015, "is_paper_network", lambda template: True)
    R.reproduce(plan, copy, resume=True, progress=False)
    assert given[-1] is papers.CAMPOS2015_TABLE2


def test_a_damaged_but_parseable_summary_is_an_error_not_not_recorded(campos, tmp_path,
                                                                      monkeypatch):
    """A summary.json holding [] or a string where a mean and std belong read as "not
    recorded" (a report made by an older vsent), exit 0 (reports38 #8)."""
    _, out, plan, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    copy = shutil.copytree(out, tmp_path / "copy")
    summary = copy / "table1" / "summary.json"
    for text, message in (("[]", "unreadable (a JSON list, expected an object)"),
                          ('{"center": {"accuracy": "x"}}',
                           'center.accuracy is not a mean and std (it holds "x")'),
                          ('{"center": [1, 2]}', "center is not an object (it holds [1, 2])")):
        summary.write_text(text)
        with pytest.raises(VsentError, match=re.escape(f"{summary}: {message}")):
            R.reproduce(plan, copy, resume=True, progress=False)


def test_a_damaged_sub_run_csv_is_one_line_naming_it(campos, tmp_path, monkeypatch):
    """Read once every sub-run is done: a cut predictions.csv or removal.csv ended the
    reproduction in a traceback, with no report (audit_ens27 #5)."""
    _, out, plan, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    copy = shutil.copytree(out, tmp_path / "copy")
    pred = copy / "table1" / "predictions.csv"
    lines = pred.read_text().splitlines()
    pred.write_text("\n".join(lines[:5] + [lines[5][:20]]) + "\n")  # a copy cut short
    with pytest.raises(VsentError, match=rf"^{re.escape(str(pred))}, line 6: unreadable row "
                                         r"\(cut short"):
        R.reproduce(plan, copy, resume=True, progress=False)
    fold = tmp_path / "pcnn-weak-five" / "fold1"
    fold.mkdir(parents=True)
    removal = fold / "removal.csv"
    for text, message in (("name,label,s1,s2\na.jpg,1,0.5,0.5\n", "line 1: no column 'removed'"),
                          ("name,label,s1,s2,removed\na.jpg,1,0.5,0.5,0\nb.jpg,0,0.5,0.5,2\n",
                           "line 3: unreadable row (removed: '2' is not 0 or 1)"),
                          ("name,label,s1,s2,removed\na.jpg,1\n",
                           "line 2: unreadable row (cut short")):
        removal.write_text(text)
        with pytest.raises(VsentError, match=re.escape(f"{removal}, {message}")):
            you2015._selection_notes(tmp_path, ["five"])


def test_an_init_file_that_does_not_load_is_refused_before_anything_runs(tmp_path, capsys,
                                                                         make_twitter_like):
    # the fallback to random weights is for ImageNet weights that cannot be downloaded, not for
    # a typo in a path: the reproduction would run for hours and say so only at the end
    data = make_twitter_like()
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("not a checkpoint")
    # a checkpoint trained on the data it would be tested on: refused up front too, not
    # after the baselines' sub-run (trial41 F7)
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    saw_it = save_checkpoint(tmp_path / "saw.pt", create_model("smallcnn", widths=[8]),
                             data=str(data), subset="five")
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(b"truncated download")
    folder = tmp_path / "weights.d"
    folder.mkdir()
    cases = [("you2015", tmp_path / "missing.pt", "missing.pt: no such file (imagenet, random"),
             ("you2015", not_a_checkpoint, "notes.pt: not a vsent checkpoint"),
             ("you2015", "imagenet", "you2015 --init: random, or a vsent checkpoint"),
             ("you2015", saw_it, f"saw.pt was trained on {data}, the data it would be "
                                 "fine-tuned and tested on"),
             ("campos2015", tmp_path / "missing.caffemodel", "missing.caffemodel: no such file"),
             # a folder is no weights file either: refused up front, as a folder (mut57e P56)
             ("campos2015", folder, f"{folder}: a folder; give"),
             ("you2015", folder, f"{folder}: a folder; give"),
             ("sun2016", folder, f"{folder}: a folder; give"),
             # a file that exists but does not load: not replaced by random weights
             # (audit_ens27 #2), for campos2015 and sun2016 too
             ("campos2015", not_a_checkpoint, "notes.pt: not a PyTorch state dict"),
             ("campos2015", cut, "cut.caffemodel: not a valid Caffe model"),
             ("sun2016", not_a_checkpoint, "notes.pt: not a PyTorch state dict")]
    for paper, init, message in cases:
        out = tmp_path / "out"
        assert main(["reproduce", paper, "--quick", "--data", str(data), "--init", str(init),
                     "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (paper, init, err)
        assert not out.exists()  # nothing made, nothing downloaded
    # a missing dataset too (before ImageNet weights would be fetched for it)
    assert main(["reproduce", "campos2015", "--quick", "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "nope: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_init_file_every_network_of_the_plan_cannot_take_is_refused_up_front(
        tmp_path, make_twitter_like, monkeypatch):
    """Table 1's network takes the file, a variant's does not: refused before --out is made,
    not after hours of other sub-runs (nor trained from random weights); and a sub-run that
    meets such a file anyway stops rather than falling back (audit_ens27 #2)."""
    import torch

    from vsent.models import create_model

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    data = make_twitter_like()
    weights = tmp_path / "small.pt"  # the template's widths [4, 8]; variant fc9-2 has [8]
    torch.save(create_model("smallcnn", widths=[4, 8]).state_dict(), weights)
    plan = _campos_plan(data)
    plan = dataclasses.replace(plan, template=dataclasses.replace(plan.template,
                                                                  init=str(weights)))
    with pytest.raises(VsentError, match=r"^--init .*small\.pt: 5 weights missing or of the "
                                         r"wrong shape: features\.block1"):
        R.reproduce(plan, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    R.reproduce(dataclasses.replace(plan, variants={"fc7-2": {"dropout": 0.1}}),  # it loads
                tmp_path / "ok", progress=False, only=[])
    rundir = runner.open_reproduction(plan, tmp_path / "s", resume=False)
    with rundir:
        session = runner.Session(tmp_path / "s", rundir, progress=False)
        variant = dataclasses.replace(plan.template, model_kwargs={"widths": [8]})
        with pytest.raises(VsentError, match=r"^--init .*small\.pt: 5 weights missing"):
            session.resolve_init("fc9-2", variant)
        assert "fc9-2" not in session.weights  # nothing recorded as trained from random


def test_a_reproduction_stopped_by_a_missing_dataset_does_not_refuse_the_next(tmp_path, capsys):
    out = str(tmp_path / "o")
    for data in ("missing", "also-missing"):  # the second is not refused as another plan
        assert main(["reproduce", "you2015", "--quick", "--data", str(tmp_path / data),
                     "--out", out, "--no-progress"]) == 2
        assert f"{data}: no such file or directory" in capsys.readouterr().err


def test_a_dataset_that_is_not_twitter_i_is_refused_before_the_run_starts(tmp_path, capsys,
                                                                          make_learnable):
    """audit_readme28 #5: a folder dataset failed in the first sub-run's folds, after --out was
    made, saying "pass --folds stratified", an option reproduce does not have."""
    data = make_learnable(n_pos=4, n_neg=4)
    out = tmp_path / "o"
    assert main(["reproduce", "campos2015", "--quick", "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{data}: vsent reproduce runs the papers' experiments on Twitter I" in err
    assert "this is a folder dataset" in err and not out.exists()


def test_you2015_figure_leaves_a_gap_where_a_method_has_no_row(tmp_path, monkeypatch):
    """The weak-label row exists on five- and four-agree only: its three-agree bar is empty
    (NaN, no bar), not another subset's value. The bars' heights are read where they are
    drawn: the file alone said nothing of them, and a row lookup that ignored the subset (the
    five-agree value drawn as three-agree) went unseen."""
    from matplotlib.axes import Axes

    heights: list[list[float]] = []  # one list per subset, one height per method
    real_bar = Axes.bar

    def bar(self, x, height, *args, **kwargs):
        heights.append([float(h) for h in height])
        return real_bar(self, x, height, *args, **kwargs)

    monkeypatch.setattr(Axes, "bar", bar)

    def row(method, sub, mean):
        return {"cells": [method, sub, "accuracy"], "paper": None,
                "ours": {"mean": mean, "std": 0.01}}

    table = {"rows": [row("GCH", "five", 0.7), row("GCH", "three", 0.6),
                      row(you2015.WEAK_LABEL, "five", 0.65)]}
    name = you2015._figure(tmp_path, table, ("five", "three"))
    assert (tmp_path / name).stat().st_size > 0
    assert len(heights) == 2  # five-agree, then three-agree; methods GCH, weak labels
    assert heights[0] == [0.7, 0.65]
    assert heights[1][0] == 0.6 and math.isnan(heights[1][1])


def test_sun2016_on_an_existing_run(campos, tmp_path, monkeypatch):
    _, out, _, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = out / "table1"
    plan = R.make_plan("sun2016", "unused", quick=True, device="cpu", run=str(run))
    regions = dataclasses.replace(plan.regions, k=11, k_max=11, overlays=0,
                                  proposals=ProposalConfig(n_proposals=12))
    plan = dataclasses.replace(plan, regions=regions)
    report = R.reproduce(plan, tmp_path / "sun", progress=False)
    md = (tmp_path / "sun" / "report.md").read_text()
    # the paper's whole image, 3 K=1 late fusions and the best-K row; ours only: random,
    # objectness and sentiment at K (quick: no early fusion, no linear control)
    assert _check_measured(tmp_path / "sun", report) == 5 + 3
    rows = report["tables"][0]["rows"]
    best = papers.SUN2016_ROWS["ft_obj_senti_lf_best"]
    ar = next(r for r in rows if r["cells"][0] == best)
    assert ar["paper"]["mean"] == 0.8894 and ar["paper"]["k"] == 11
    assert ar["run_dir"] == "regions" and ar["key"] == ["results", "ar", "accuracy"]
    assert "| 88.94 % (K = 11) |" in md  # published, in the paper column only
    assert sum("88.94" in line for line in md.splitlines()) == 1
    # K = 1 rows read the K sweep's first entry
    k1 = next(r for r in rows if r["cells"][0] == papers.SUN2016_ROWS["ft_obj_senti_lf_k1"])
    sweep = json.loads((tmp_path / "sun" / "regions" / "k_sweep.json").read_text())
    assert sweep["k"][0] == 1 and k1["ours"]["mean"] == sweep["ar"]["mean"][0]
    assert k1["paper"]["mean"] == pytest.approx(0.8672)
    # every row of Sun et al.'s Table 1 is listed; the ones vsent lacks say so
    assert [r["cells"][0] for r in rows[:10]] == list(papers.SUN2016_ROWS.values())
    assert sum(r["run_dir"] is None for r in rows) == 5
    assert "| SentiBank | not reproduced | 71.02 % | not reproduced |" in md
    assert report["run"] == str(run.resolve())
    assert (tmp_path / "sun" / "sun2016_k_sweep.png").exists()
    # the reused run was trained from random weights: its rows say so, and name the model
    assert all(r["weights"] == R.RANDOM_LABEL for r in rows if r["run_dir"] is not None)
    assert report["model"] == "smallcnn from scratch (quick), not VGGNet"
    assert report["tables"][0]["columns"][1] == f"ours: {report['model']}"
    assert f"| method (Sun et al.) | ours: {report['model']} | Twitter I 5: paper |" in md
    assert "## Table 1: Twitter I five agree, 5-fold, accuracy" in md


def test_sun2016_resumed_scores_a_retrained_fold_again(campos, tmp_path, monkeypatch):
    import numpy as np
    import torch

    from vsent.files import file_sha256
    from vsent.models import create_model
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = shutil.copytree(campos[1] / "table1", tmp_path / "table1")  # changed below
    plan = R.make_plan("sun2016", "unused", quick=True, device="cpu", run=str(run))
    regions = dataclasses.replace(plan.regions, k=2, k_max=2, overlays=0,
                                  proposals=ProposalConfig(n_proposals=4))
    plan = dataclasses.replace(plan, regions=regions)
    R.reproduce(plan, tmp_path / "sun", progress=False)
    npz = tmp_path / "sun" / "regions" / "fold2" / "regions.npz"
    before = npz.read_bytes()
    R.reproduce(plan, tmp_path / "sun", resume=True, progress=False)
    assert npz.read_bytes() == before  # nothing changed: reused
    # fold 2 trained again (crossval --overwrite): the report must not keep the old scores
    old, _ = load_checkpoint(run / "fold2" / "model.pt")
    torch.manual_seed(9)
    save_checkpoint(run / "fold2" / "model.pt", create_model(old.spec["name"], **{
        k: v for k, v in old.spec.items() if k not in ("name", "num_classes")}), fold=2)
    # left out by --only: its rows read "not run", not the old model's scores (audit_ens27 #1)
    stale = R.reproduce(plan, tmp_path / "sun", resume=True, progress=False, only=[])
    assert npz.read_bytes() == before
    assert stale["steps"]["regions"]["status"] == runner.OUT_OF_DATE
    rows = [r for r in stale["tables"][0]["rows"] if r["run_dir"] is not None]
    assert rows and all(r["ours"] is None and r["missing"] == R.NOT_RUN for r in rows)
    assert stale["figures"] == []  # nor drawn
    assert any(n.startswith("`regions`: done before, out of date now") for n in stale["notes"])
    R.reproduce(plan, tmp_path / "sun", resume=True, progress=False)
    with np.load(npz) as z:
        assert str(z["checkpoint_sha256"]) == file_sha256(run / "fold2" / "model.pt")
    # the small files alone (as results/ keeps them: no models, no regions.npz): the report is
    # made again from them, the scores kept (it failed on "fold 1 has no model", reports38 #3)
    table = (tmp_path / "sun" / "regions" / "table1.json").read_bytes()
    for gone in (run.glob("fold*/model.pt"), (tmp_path / "sun").glob("regions/fold*/*.npz")):
        for f in list(gone):  # the models first (regions.npz kept), then both
            f.unlink()
        again = R.reproduce(plan, tmp_path / "sun", resume=True, progress=False)
        assert again["steps"]["regions"]["status"] == "done"
        assert (tmp_path / "sun" / "regions" / "table1.json").read_bytes() == table
        assert any(r["ours"] is not None for r in again["tables"][0]["rows"])


def test_campos2015_resumed_probes_a_retrained_fold_again(campos, tmp_path, monkeypatch):
    """Table 2 must not keep the probes of a fold model replaced since (crossval --overwrite
    of table1): the layers step was done as soon as layers.json existed (audit_analyses24 #1)."""
    import torch

    from vsent.files import file_sha256
    from vsent.models import create_model
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    data = campos[0]
    real_create = runner.create_model

    def offline_create(name, *, init="random", **kw):
        if init == "imagenet":
            raise WeightsError(OFFLINE)
        return real_create(name, init=init, **kw)

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "create_model", offline_create)
    plan = dataclasses.replace(_campos_plan(data), variants={})
    out = tmp_path / "out"
    R.reproduce(plan, out, progress=False)
    stamp = out / "layers" / "results" / "fold2" / "model.sha256"
    before = stamp.read_text()
    R.reproduce(plan, out, resume=True, progress=False)
    assert stamp.read_text() == before  # nothing changed: reused
    ckpt = out / "table1" / "fold2" / "model.pt"
    old, meta = load_checkpoint(ckpt)
    torch.manual_seed(9)
    save_checkpoint(ckpt, create_model(old.spec["name"], **{
        k: v for k, v in old.spec.items() if k not in ("name", "num_classes")}), fold=2)
    # layers left out by --only: Table 2 reads "not run", not the replaced model's probes
    # (audit_ens27 #1), and says why
    stale = R.reproduce(plan, out, resume=True, progress=False, only=["table1"])
    assert stamp.read_text() == before  # not probed again
    assert stale["steps"]["layers"]["status"] == runner.OUT_OF_DATE
    t2 = next(t for t in stale["tables"] if t["id"] == "table2")
    assert t2["rows"] and all(r["ours"] is None and r["missing"] == R.NOT_RUN
                              for r in t2["rows"])
    assert any(n.startswith("`layers`: done before, out of date now") for n in stale["notes"])
    md_rows = _md_rows((out / "report.md").read_text(), "Table 2")
    assert len(md_rows) == len(t2["rows"]) and all(r[-3] == R.NOT_RUN for r in md_rows)
    again = R.reproduce(plan, out, resume=True, progress=False)
    assert stamp.read_text().split()[0] == file_sha256(ckpt) != before.split()[0]
    assert again["steps"]["layers"]["status"] == "done"
    t2 = next(t for t in again["tables"] if t["id"] == "table2")
    assert all(r["ours"] is not None for r in t2["rows"])
    # the small files alone (results/ keeps no models, no features): Table 2 is made again
    # from them (it failed on "fold 1 has no model", review38 #1)
    probes = (out / "layers" / "layers.json").read_bytes()
    for f in out.glob("*/fold*/model.pt"):
        f.unlink()
    shutil.rmtree(out / "layers" / "features")
    kept = R.reproduce(plan, out, resume=True, progress=False)
    assert kept["steps"]["layers"]["status"] == "done"
    assert (out / "layers" / "layers.json").read_bytes() == probes
    t2 = next(t for t in kept["tables"] if t["id"] == "table2")
    assert all(r["ours"] is not None for r in t2["rows"])


# --------------------------------------------------------------------------------------------
# plans, cells, CLI


def test_campos_plans_full_and_quick():
    full = R.make_plan("campos2015", "data")
    quick = R.make_plan("campos2015", "data", quick=True)
    assert full.template.model == "caffenet" and full.template.init == "imagenet"
    assert full.template.train.epochs == 65 and full.reductions == []
    assert quick.template.train.epochs == 1 and quick.reductions
    # mut60c A34, A48: the reduction names the full recipe's epochs and the lr it keeps
    assert ("fine-tuned for 1 epoch instead of 65, on all 5 folds (same solver and batch 64; "
            "the lr, 0.001, never reaches its first drop after 6 epochs)") in quick.reductions[0]
    # mut60c A35, A36: the probes' inner CV splits by the --seed given, in either mode
    for q in (False, True):
        assert R.make_plan("campos2015", "data", quick=q, seed=3).probe.seed == 3
    assert set(full.variants) == set(SURGERIES) - {"fc8-2"}
    assert set(full.variants) == set(papers.CAMPOS2015_TABLE3) | set(papers.CAMPOS2015_TABLE4)
    assert R.make_plan("campos2015", "data", init="w.caffemodel").template.init == "w.caffemodel"
    assert R.make_plan("you2015", "data").template.init == "random"
    assert R.make_plan("sun2016", "data").template.model == "vgg16"
    assert R.make_plan("sun2016", "data", run="r").template is None
    # mut49c S3, S5: sun2016 trains from the --init given, in either mode
    for quick, default in ((True, "random"), (False, "imagenet")):
        assert R.make_plan("sun2016", "data", quick=quick).template.init == default
        assert R.make_plan("sun2016", "data", quick=quick, init="w.pt").template.init == "w.pt"
        # mut60c S36: the regions' random ranking and probes follow --seed
        assert R.make_plan("sun2016", "data", quick=quick, seed=3).regions.seed == 3


def test_plan_errors():
    # mut51c U35: the message names the papers there are
    with pytest.raises(VsentError, match="^unknown paper 'smith2020'; choose one of .*sun2016"):
        R.make_plan("smith2020", "data")
    with pytest.raises(VsentError, match="--run applies to sun2016"):
        R.make_plan("campos2015", "data", run="somewhere")
    # mut57e P54: --only names an unknown sub-run, not the plan's sub-runs it leaves out; a
    # known one passes on to the next check (the data), before anything is made
    plan = R.make_plan("campos2015", "no-such-data", quick=True)
    with pytest.raises(VsentError, match="^--only nope: not a sub-run of campos2015; choose"):
        R.reproduce(plan, "never-made", only=["nope", "table1"])
    with pytest.raises(VsentError, match="^no-such-data: no such file or directory$"):
        R.reproduce(plan, "never-made", only=["table1"])


def test_published_values_cite_their_source():
    tables = [papers.CAMPOS2015_TABLE1, *papers.SUN2016_TABLE1.values(),
              *papers.CAMPOS2015_TABLE2.values(), *papers.CAMPOS2015_TABLE3.values(),
              *papers.CAMPOS2015_TABLE4.values(), *papers.YOU2015_CNN.values()]
    values = [p for t in tables for p in t.values()]
    assert all(p.source for p in values)
    available = [p for p in values if p.available]
    assert (0.817, 0.038) in {(p.mean, p.std) for p in available}
    assert (0.8894, None) in {(p.mean, p.std) for p in available}
    assert {(p.mean, p.std) for p in papers.YOU2015_CNN["five"].values() if p.available} \
        == {(0.783, None)}
    # every available value names its paper and table; the others say "not available"
    assert all(re.search(r"(Campos|Sun) et al\. 201[56], Table \d", p.source) for p in available)
    assert all(p.source == "not available" for p in values if not p.available)


def test_cells():
    row = {"paper": {"mean": 0.817, "std": 0.038, "source": "x"},
           "ours": {"mean": 0.61234, "std": 0.0456}}
    assert R.paper_cell(row) == "0.817 +- 0.038"
    assert R.ours_cell(row) == "0.612 +- 0.046"
    assert R.ours_cell(row, "percent") == "61.23 +- 4.56 %"
    assert R.paper_cell({"paper": None}) == R.NOT_IN_PAPER
    assert R.paper_cell({"paper": {"mean": None, "std": None, "source": "not verified"}}) \
        == R.NOT_AVAILABLE
    assert R.ours_cell({"ours": None}) == R.NOT_RUN
    assert R.ours_cell({"ours": None, "run_dir": None}) == R.NOT_REPRODUCED
    assert R.paper_cell({"paper": {"mean": 0.8894, "std": None, "source": "x", "k": 11}},
                        "percent") == "88.94 % (K = 11)"


def test_cli_errors_exit_2(capsys, tmp_path):
    assert main(["reproduce", "campos2015", "--run", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "--run applies to sun2016" in capsys.readouterr().err
    assert main(["reproduce", "sun2016", "--run", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "not a finished crossval run" in capsys.readouterr().err
    # options the run decides were ignored (a --data not there passed; --init went into the
    # report's command line): refused (robust39 #10)
    for extra, said in ((["--init", "random"], "--init does not apply with --run: the run's own "
                                               "fold models are analysed; leave --init out"),
                        (["--data", str(tmp_path / "nope")], "--data does not apply with --run: "
                                                            "the run's own data is analysed "
                                                            "(its config.json names it); leave "
                                                            "--data out")):
        assert main(["reproduce", "sun2016", "--run", str(tmp_path), "--out",
                     str(tmp_path / "o"), *extra]) == 2
        assert capsys.readouterr().err == f"vsent: error: {said}\n"
    assert not (tmp_path / "o").exists()


def test_cli_sun2016_quick_on_an_existing_run(campos, tmp_path, monkeypatch, capsys):
    _, out, _, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    dest = tmp_path / "cli"
    argv = ["reproduce", "sun2016", "--quick", "--run", str(out / "table1"), "--out",
            str(dest), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    assert f"report written to {dest}/report.md" in capsys.readouterr().out
    md = (dest / "report.md").read_text()
    assert f"- command: `vsent reproduce sun2016 --quick --out {dest}" in md
    assert "early fusion skipped" in md
    assert main(argv) == 2  # an existing reproduction needs --resume
    assert "pass --resume" in capsys.readouterr().err
    # the analysed run's recipe, not the paper's; no --data (the run's data is used)
    mode = next(line for line in md.splitlines() if line.startswith("- mode: "))
    assert mode.startswith("- mode: analysis of the existing run `") and "1 epochs" in mode
    assert "--data" not in md.split("- command:")[1].splitlines()[0]
    assert "full (the paper recipe)" not in md and "Full mode" not in md
    assert main([*argv, "--resume"]) == 0
    steps = json.loads((dest / "steps.json").read_text())
    made = json.loads((dest / "regions" / "versions.json").read_text())
    assert steps == {"regions": {"status": "done", "seconds": steps["regions"]["seconds"],
                                 "git_commit": made["git_commit"],
                                 "cpu": f"{made['cpu'] or 'CPU'} ({made['cpu_capability']})"}}


def test_command_line_is_canonical():
    cmd = R.command_line("campos2015", quick=True, out="runs/x y", data="d", init=None,
                         device="cpu", resume=True)
    assert cmd == "vsent reproduce campos2015 --quick --out 'runs/x y' --data d --device cpu " \
                  "--resume"
    assert re.search(r"--init w\.pt", R.command_line("you2015", quick=False, out="o", data="d",
                                                     init="w.pt", device="auto", resume=False))


# --------------------------------------------------------------------------------------------
# the registry, and Sun et al.'s three subsets


def test_every_registered_paper_builds_a_plan():
    modules = sorted(p.stem for p in Path(R.__file__).parent.glob("*.py")
                     if re.fullmatch(r"[a-z]+\d{4}", p.stem))
    assert list(R.paper_names()) == modules == ["campos2015", "sun2016", "you2015"]
    # mut51c P01: the package's other modules (render, runner, reproduce) are no papers
    from vsent.reports import paper_modules

    assert paper_modules() == ("campos2015", "sun2016", "you2015")
    for name in modules:
        for quick in (False, True):
            plan = R.make_plan(name, "data", quick=quick, device="cpu")
            assert plan.paper == name and R.get_paper(name).name == name
            assert R.step_names(plan) and bool(plan.reductions) == quick
    assert R.step_names(R.make_plan("sun2016", "data", quick=True)) == [
        "crossval-five", "regions-five", "crossval-four", "regions-four", "crossval-three",
        "regions-three"]
    assert R.step_names(R.make_plan("you2015", "data")) == [
        "baselines", "pcnn-five", "pcnn-four", "pcnn-three", "pcnn-weak-five", "pcnn-weak-four"]
    # mut58c A15: the layer probes are a sub-run of their own (--only layers), after Table 1
    campos = R.make_plan("campos2015", "data")
    assert R.step_names(campos) == ["table1", "layers", *campos.variants]
    # mut56e Y8: weak-label sub-runs only for the plan's own subsets (none for three-agree)
    three = dataclasses.replace(R.make_plan("you2015", "data"), subsets=("three",))
    assert R.step_names(three) == ["baselines", "pcnn-three"]


def test_a_new_paper_is_one_registered_class(tmp_path):
    """The runner knows no paper by name: a class registered here is run, resumed, reported."""

    @dataclasses.dataclass
    class Plan:
        paper: typing.ClassVar[str] = "test2099"
        template: None = None
        reductions: list = dataclasses.field(default_factory=list)

    try:
        @runner.register_paper
        class Test2099(runner.Paper):
            name = "test2099"
            title = "Test et al. 2099"

            def make_plan(self, data, *, quick, init, device, seed, run):
                return Plan()

            def steps(self, plan):
                return ["measure"]

            def run(self, plan, s):
                d = s.out / "measure"
                s.step("measure", lambda: (d / "r.json").exists(), lambda: (
                    d.mkdir(), (d / "r.json").write_text('{"acc": {"mean": 0.5, "std": 0.1}}')))
                pub = papers.Published(0.75, None, "Test et al. 2099, Table 9")
                rows = [s.row(["x"], pub, d, "r.json", ["acc"], "none")]
                return {"tables": [runner.render.make_table("t9", "Table 9", ["m"], rows)],
                        "figures": []}

        assert "test2099" in R.PAPERS
        report = R.reproduce(R.make_plan("test2099", "d"), tmp_path / "o", progress=False)
        md = (tmp_path / "o" / "report.md").read_text()
        assert "| x | 0.750 | 0.500 +- 0.100 | none | `measure` |" in md
        assert report["steps"]["measure"]["status"] == "done"
        again = R.reproduce(Plan(), tmp_path / "o", resume=True, progress=False)
        assert again["tables"][0]["rows"][0]["ours"] == {"mean": 0.5, "std": 0.1}
        (tmp_path / "o" / "measure" / "r.json").unlink()
        with pytest.raises(VsentError, match="pass --resume"):
            R.reproduce(Plan(), tmp_path / "o", progress=False)
        fresh = R.reproduce(Plan(), tmp_path / "o", overwrite=True, progress=False)
        assert fresh["steps"]["measure"]["status"] == "done"
        assert json.loads((tmp_path / "o" / "report.json").read_text())["paper"] == "test2099"
        with pytest.raises(TypeError, match="registered twice"):
            runner.register_paper(type("Other", (runner.Paper,), {"name": "test2099"}))
    finally:
        R.PAPERS.pop("test2099", None)


def test_sun2016_on_the_three_subsets(tmp_path, make_twitter_like, monkeypatch):
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    data = make_twitter_like()
    plan = R.make_plan("sun2016", str(data), quick=True, device="cpu")
    regions = dataclasses.replace(plan.regions, k=3, k_max=3, overlays=0, folds=(1,),
                                  proposals=ProposalConfig(n_proposals=6))
    plan = dataclasses.replace(plan, template=_template(data), regions=regions)
    report = R.reproduce(plan, tmp_path / "sun", progress=False)
    out = tmp_path / "sun"
    md = (out / "report.md").read_text()
    assert report["steps"].keys() == set(R.step_names(plan))
    assert all(e["status"] == "done" for e in report["steps"].values())
    header = _md_header(md, "Table 1")
    assert header == ["method (Sun et al.)", "ours: smallcnn from scratch (quick), not VGGNet",
                      "Twitter I 5: paper", "Twitter I 5: ours",
                      "Twitter I 4: paper", "Twitter I 4: ours",
                      "Twitter I 3: paper", "Twitter I 3: ours", "weights", "run dirs"]
    # (whole image, 3 K=1 fusions, best K, random/objectness/sentiment at K) x 3 subsets
    assert _check_measured(out, report) == 8 * 3
    line = next(c for c in _md_rows(md, "Table 1") if c[0] == "VGGNet")
    assert line[2::2][:3] == ["83.51 %", "78.89 %", "75.36 %"]  # five, four, three
    for sub, ours in zip(("five", "four", "three"), line[3::2][:3], strict=True):
        table1 = json.loads((out / f"regions-{sub}" / "table1.json").read_text())
        assert ours.startswith(f"{100 * table1['results']['global']['accuracy']['mean']:.2f}")
        assert json.loads((out / f"crossval-{sub}" / "config.json").read_text())["subset"] == sub
    best = next(c for c in _md_rows(md, "Table 1") if "best K" in c[0])
    assert best[2::2][:3] == ["88.94 % (K = 11)", "84.90 % (K = 13)", "80.33 % (K = 11)"]
    assert "- data: `" in md and "(subset five, four, three, folds campos)" in md
    # the reproduction moved whole, one sub-run's table cut: --resume makes it again from its
    # stored scores (it was "unreadable", then a step taken as done read "not run", robust39
    # #11), the regions sub-run known beside its moved crossval run by its predictions
    moved = tmp_path / "moved"
    out.rename(moved)
    table = moved / "regions-four" / "table1.json"
    before = json.loads(table.read_text())["results"]
    table.write_text('{"x": [')
    (moved / "steps.json").write_text('{"x": [')
    with pytest.raises(VsentError, match=r"steps.json: unreadable \(.*\); delete it, and "
                                         r"--resume makes it again$"):
        R.reproduce(plan, moved, resume=True, progress=False)
    (moved / "steps.json").unlink()
    R.reproduce(plan, moved, resume=True, progress=False)
    assert json.loads(table.read_text())["results"] == before
    assert "not run" not in (moved / "report.md").read_text()


def test_reproduce_never_deletes_the_run_it_analyses(campos, tmp_path, capsys):
    _, out, _, _ = campos
    run = tmp_path / "run"
    shutil.copytree(out / "table1", run)
    before = sorted(p.name for p in run.iterdir())
    argv = ["reproduce", "sun2016", "--quick", "--run", str(run), "--out", str(run),
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 2
    assert f"{run} holds a crossval run, not a reproduce run" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 2
    assert f"--overwrite would delete {run}, which this run reads" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
    nope, o = tmp_path / "nope", tmp_path / "o"
    assert main(["reproduce", "sun2016", "--run", str(nope), "--out", str(o)]) == 2
    assert f"--run {nope}: no such directory" in capsys.readouterr().err
    assert not o.exists()  # refused before the reproduction's folder was made


def test_reused_sub_runs_are_checked_and_bad_files_named(campos, tmp_path):
    """A finished sub-run of another recipe (a four-agree run copied in) is refused, not
    reported as the plan's; an unreadable result file is named; a plan stored by a version
    that wrote later-added keys at their default still resumes."""
    _, out, plan, _ = campos
    rep = tmp_path / "rep"
    shutil.copytree(out, rep)
    cfg_file = rep / "fc7-2" / "config.json"
    good = cfg_file.read_text()
    cfg_file.write_text(json.dumps({**json.loads(good), "subset": "four"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(papers, "CAMPOS2015_TABLE1", SENTINEL_T1)
        with pytest.raises(VsentError, match=r"fc7-2: not this reproduction's fc7-2 sub-run: "
                                             r"made with other subset \(subset: stored 'four', "
                                             r"now 'five'\)") as info:
            R.reproduce(plan, rep, resume=True, progress=False)
        # mut54c V11: the message names the sub-run's folder, not only its name
        assert str(info.value).startswith(f"{rep / 'fc7-2'}: not this")
        cfg_file.write_text(good)
        layers = rep / "layers" / "layers.json"
        kept = layers.read_text()
        layers.write_text("{")
        with pytest.raises(VsentError, match=r"layers.json: unreadable"):
            R.reproduce(plan, rep, resume=True, progress=False)
        layers.write_text("[1, 2]")
        with pytest.raises(VsentError, match=r"layers.json: unreadable \(a JSON list"):
            R.reproduce(plan, rep, resume=True, progress=False)
        layers.write_text(kept)
        stored = json.loads((rep / "config.json").read_text())
        stored["plan"]["template"]["extra_schedule"] = "joint"  # as 0.1.0 wrote it for a while
        (rep / "config.json").write_text(json.dumps(stored))
        # a folder named as a variant this plan does not run is not read
        shutil.copytree(rep / "fc7-2", rep / "fc6-4096")
        report = R.reproduce(plan, rep, resume=True, progress=False)
    assert report["tables"] == json.loads((out / "report.json").read_text())["tables"]
    t3 = next(t for t in report["tables"] if t["id"] == "table3")
    assert [r["ours"] for r in t3["rows"] if r["run_dir"] == "fc6-4096"] == [None, None]


def test_sun2016_names_a_run_that_is_not_twitter_i(tmp_path):
    from vsent.reports import sun2016

    folder = tmp_path / "mine"
    (folder / "positive").mkdir(parents=True)
    (folder / "negative").mkdir()
    assert sun2016._run_subset({"data": str(folder), "subset": "five"}) == \
        "mine (not Twitter I)"
    tw = tmp_path / "tw"
    (tw / "images").mkdir(parents=True)
    assert sun2016._run_subset({"data": str(tw), "subset": "four"}) == "four"


def test_published_cells_keep_their_digits():
    assert R.paper_cell({"paper": {"mean": 0.7102, "std": None}}) == "0.7102"
    assert R.paper_cell({"paper": {"mean": 0.8894, "std": None, "k": 11}}, "percent") == \
        "88.94 % (K = 11)"
    assert R.paper_cell({"paper": {"mean": 0.657, "std": 0.04}}) == "0.657 +- 0.040"
    assert R.ours_cell({"ours": {"mean": 0.71024, "std": 0.0}, "run_dir": "x"}) == \
        "0.710 +- 0.000"


def test_campos_majority_line_is_the_share_of_positive_test_images(tmp_path):
    """Always answering "positive" on Table 1's test folds: per fold the share of positive
    labels, then mean and population std over the folds (unbalanced folds: the share of
    negatives would differ)."""
    from vsent.reports import campos2015

    pred = tmp_path / "table1" / "predictions.csv"
    pred.parent.mkdir()
    labels = {1: [1, 1, 1, 0], 2: [1, 0]}  # fold 1: 3/4 positive, fold 2: 1/2
    pred.write_text("name,fold,label,prob_positive\n" + "".join(
        f"f{k}_{i}.jpg,{k},{y},0.5\n" for k, ys in labels.items() for i, y in enumerate(ys)))
    m = campos2015._majority(pred)
    assert m == {"mean": pytest.approx(0.625), "std": pytest.approx(0.125),
                 "source": "table1/predictions.csv"}
    assert campos2015._majority(tmp_path / "none" / "predictions.csv") is None


def test_notes_count_the_published_cells_whose_value_is_not_available():
    """Cells of the paper without a value here, not every cell the paper has (nor rows it
    lacks)."""
    from types import SimpleNamespace

    def row(paper):
        return {"paper": paper, "ours": {"mean": 0.5, "std": 0.0}, "run_dir": "x"}

    report = {"tables": [{"rows": [row({"mean": None}), row({"mean": 0.7}), row(None),
                                   row({"mean": None})]}]}
    paper = SimpleNamespace(analysed_run=lambda plan: None, notes=lambda *a: [])
    notes = runner._notes(paper, SimpleNamespace(reductions=[]), SimpleNamespace(steps={}),
                          report)
    counted = [n for n in notes if "published cells read" in n]
    assert len(counted) == 1 and counted[0].startswith(
        f"2 published cells read '{R.NOT_AVAILABLE}': the paper has them")


def test_folds_that_predict_one_class_are_flagged(tmp_path):
    from vsent.reports import render

    summary = {"center": {"accuracy": {"mean": 0.5, "std": 0.16}, "folds": [
        {"fold": 1, "confusion": [[0, 61], [0, 115]]},   # all positive
        {"fold": 2, "confusion": [[60, 0], [116, 0]]},   # all negative
        {"fold": 3, "confusion": [[40, 21], [30, 85]]}]}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    row = render.make_row(["x"], None, out=tmp_path, run_dir=tmp_path, file="summary.json",
                          key=["center", "accuracy"])
    assert row["one_class_folds"] == [2, 3]
    assert R.ours_cell(row) == "0.500 +- 0.160 (one class in 2 of 3 folds)"
    summary["center"]["folds"] = summary["center"]["folds"][2:]
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    row = render.make_row(["x"], None, out=tmp_path, run_dir=tmp_path, file="summary.json",
                          key=["center", "accuracy"])
    assert row["one_class_folds"] == [0, 1] and R.ours_cell(row) == "0.500 +- 0.160"
    assert render.one_class_folds(tmp_path, "summary.json", ["center", "accuracy", 0]) is None


# --------------------------------------------------------------------------------------------
# audit: legend placement, "not recorded", the model named, one read per row


def test_sun2016_k_sweep_legend_covers_no_data(tmp_path, monkeypatch):
    """The legend lies outside the axes (inside the figure), so it covers no published point:
    with ours close to the paper's, a legend inside the axes hid the three-agree point."""
    from vsent.reports import render, sun2016

    ks = list(range(1, 16))
    reg_dirs = {}
    for sub, level in zip(sun2016.SUBSETS, (0.86, 0.82, 0.78), strict=True):
        curve = {"mean": [level + 0.002 * (k % 4) for k in ks], "std": [0.01] * len(ks)}
        reg_dirs[sub] = tmp_path / sub
        reg_dirs[sub].mkdir()
        (reg_dirs[sub] / "k_sweep.json").write_text(json.dumps(
            {"k": ks, "global": {"mean": level - 0.02, "std": 0.01}, "ar": curve,
             "objectness": curve, "sentiment": curve, "random": curve}))
    seen = []

    def check_then_save(fig, out, name):
        fig.tight_layout()  # as save_figure lays it out
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent()
        points = [ax.transData.transform(xy) for line in ax.get_lines()
                  if line.get_label().startswith("published") for xy in line.get_xydata()]
        seen.append((legend, ax.get_window_extent(), fig.bbox, points))
        return real_save(fig, out, name)

    real_save = render.save_report_figure
    monkeypatch.setattr(render, "save_report_figure", check_then_save)
    for dirs in (reg_dirs, {"three": reg_dirs["three"]}):  # three subsets, and one
        assert sun2016._figure(tmp_path, dirs) == "sun2016_k_sweep.png"
    assert len(seen) == 2  # both figures checked below (tests38 #3: else the loop checks none)
    for legend, axes, figure, points in seen:
        assert len(points) in (2, 6)  # best K and K = 1 per subset
        assert not any(legend.contains(x, y) for x, y in points)
        assert not legend.overlaps(axes)
        assert figure.contains(legend.x0, legend.y0) and figure.contains(legend.x1, legend.y1)
    # mut56e S12: regions folders none of which holds a sweep yet: no figure, no error
    assert sun2016._figure(tmp_path, {"five": tmp_path / "no-sweep"}) is None


def test_a_value_missing_from_a_finished_sub_run_reads_not_recorded(campos, tmp_path,
                                                                    monkeypatch):
    from vsent.reports import render

    summary = {"center": {"accuracy": {"mean": 0.6, "std": 0.1}}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))

    def row(run_dir, key, planned=True):
        return render.make_row(["x"], None, out=tmp_path, run_dir=run_dir,
                               file="summary.json", key=key, planned=planned)

    assert R.ours_cell(row(tmp_path, ["center", "accuracy"])) == "0.600 +- 0.100"
    assert R.ours_cell(row(tmp_path, ["ten_crop", "accuracy"])) == "not recorded"
    assert R.ours_cell(row(tmp_path / "nothing", ["center", "accuracy"])) == R.NOT_RUN
    assert R.ours_cell(row(tmp_path, ["center", "accuracy"], planned=False)) == R.NOT_RUN
    assert R.ours_cell({"ours": None, "run_dir": "x"}) == R.NOT_RUN  # an older report.json
    # a reproduction whose Table 1 run lacks its 10-crop accuracy says so, not "not run"
    _, out, plan, _ = campos
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    stored = json.loads((copy / "table1" / "summary.json").read_text())
    del stored["ten_crop"]["accuracy"]
    (copy / "table1" / "summary.json").write_text(json.dumps(stored))
    report = R.reproduce(plan, copy, resume=True, progress=False)
    md = (copy / "report.md").read_text()
    t1 = _md_rows(md, "Table 1")
    assert [c[3] for c in t1 if c[1] == "10-crop"] == [R.NOT_RECORDED]
    assert sum(R.NOT_RUN in c[3] for t in report["tables"] for c in _md_rows(md, t["title"])) \
        == 8  # fc7-4096, fc6-4096, fc6-2, fc8-1000: not in this plan, x 2 evaluations
    assert "1 cells read 'not recorded'" in md and "8 cells read 'not run'" in md
    _check_measured(copy, report)


def test_table1_and_the_cnn_row_name_the_model_that_ran(campos):
    from vsent.reports import campos2015

    _, out, plan, report = campos
    title = report["tables"][0]["title"]
    assert title == ("Table 1: smallcnn (published: fine-tuned CaffeNet fc8-2), five-agree, "
                     "5-fold CV, accuracy")
    assert f"## {title}" in (out / "report.md").read_text()
    assert campos2015.table1_network(R.make_plan("campos2015", "d").template) == \
        "fine-tuned CaffeNet (fc8-2)"  # the paper's plan: the paper's title, as before
    other = dataclasses.replace(plan.template, model="caffenet", model_kwargs={"arch": "fc7-2"})
    assert campos2015.table1_network(other) == \
        "caffenet fc7-2 (published: fine-tuned CaffeNet fc8-2)"
    # mut60c2 A46: a variant is Table 1's network with its surgery: the template's options kept
    assert json.loads((out / "fc7-2" / "config.json").read_text())["model_kwargs"] == {
        "widths": [4, 8], "dropout": 0.1}
    assert you2015.network_label(R.make_plan("you2015", "d").template.model) == "2CONV-4FC"
    assert you2015.network_label("smallcnn") == "smallcnn (not 2CONV-4FC)"


def test_a_row_reads_its_file_once(tmp_path, monkeypatch):
    from vsent.reports import render

    summary = {"center": {"accuracy": {"mean": 0.5, "std": 0.1}, "folds": [
        {"fold": 1, "confusion": [[0, 61], [0, 115]]},
        {"fold": 2, "confusion": [[40, 21], [30, 85]]}]}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    reads = []
    real_read = render.read_json
    monkeypatch.setattr(render, "read_json",
                        lambda path, default=None: reads.append(path) or real_read(path, default))
    row = render.make_row(["x"], None, out=tmp_path, run_dir=tmp_path, file="summary.json",
                          key=["center", "accuracy"])
    assert reads == [tmp_path / "summary.json"]
    assert row["ours"] == {"mean": 0.5, "std": 0.1} and row["one_class_folds"] == [1, 2]
    assert R.lookup(tmp_path, "summary.json", ["center", "accuracy"]) == row["ours"]
    assert render.one_class_folds(tmp_path, "summary.json", ["center", "accuracy"]) == [1, 2]


# --------------------------------------------------------------------------------------------
# audit 22: published precision, one-class flags of the K sweep, sub-run CPUs, Campos notes


def test_published_cells_show_the_precision_the_paper_printed(tmp_path):
    from vsent.reports import render

    rows = [render.make_row([layer, clf], papers.CAMPOS2015_TABLE2[layer][clf], out=tmp_path,
                            run_dir=None)
            for layer, clf in (("fc8", "svm"), ("fc7", "svm"), ("conv1", "softmax"))]
    md = "\n".join(render.table_markdown(render.make_table("t2", "Table 2", ["layer", "clf"],
                                                           rows)))
    # published.md: "| fc8 | 0.82 +- 0.055 |", "| fc7 | 0.814 +- 0.040 |", "0.67 +- 0.032"
    assert "| fc8 | svm | 0.82 +- 0.055 |" in md and "| fc7 | svm | 0.814 +- 0.040 |" in md
    assert "| conv1 | softmax | 0.67 +- 0.032 |" in md
    pcnn = render.published_dict(papers.SUN2016_TABLE1["pcnn_caffenet"]["five"])
    senti = render.published_dict(papers.SUN2016_TABLE1["sentibank"]["five"])
    assert R.paper_cell({"paper": pcnn}, "percent") == "77.30 %"  # Sun's print, zero kept
    # beside 0.7102 in a fraction column, the same four decimals (not 0.773)
    assert (R.paper_cell({"paper": pcnn}), R.paper_cell({"paper": senti})) == ("0.7730",
                                                                              "0.7102")
    assert R.paper_cell({"paper": render.published_dict(papers.CAMPOS2015_TABLE1_YOU_CNN)}) \
        == "0.783"


def test_k_sweep_rows_carry_the_one_class_flag_or_say_it_is_unknown(tmp_path):
    """Sun's K = 1 rows read k_sweep.json: its per-fold ``one_class`` flags give the same flag
    as the rows read from confusion matrices; a sweep without them says so."""
    from vsent.reports import render

    sweep = {"k": [1, 2], "ar": {"mean": [0.59, 0.6], "std": [0.35, 0.3],
                                 "folds": [[0.9, 0.9], [0.4, 0.5], [0.3, 0.4]],
                                 "one_class": [[False, False], [True, False], [True, True]]}}
    (tmp_path / "k_sweep.json").write_text(json.dumps(sweep))

    def cell(k: int) -> str:
        row = render.make_row(["x"], None, out=tmp_path, run_dir=tmp_path, file="k_sweep.json",
                              key=["ar", k])
        return R.ours_cell(row, "percent")

    assert cell(0) == "59.00 +- 35.00 % (one class in 2 of 3 folds)"
    assert cell(1) == "60.00 +- 30.00 % (one class in 1 of 3 folds)"
    del sweep["ar"]["one_class"]  # written by an older vsent
    (tmp_path / "k_sweep.json").write_text(json.dumps(sweep))
    assert cell(0) == "59.00 +- 35.00 % (one-class check not available)"


def test_sub_runs_name_their_cpu_as_the_header_does(campos):
    from vsent.reports import render

    _, out, _, report = campos
    label = render.cpu_label(report["header"]["machine"])
    assert label and "(" in label  # the model and the instruction set, e.g. "AMD EPYC (AVX2)"
    md = (out / "report.md").read_text()
    assert f", {label}, " in md.split("\n- machine: ", 1)[1].split("\n", 1)[0]
    rows = _md_rows(md, "Sub-runs")
    ran = [r for r in rows if r[1] == "done"]
    assert ran and all(r[4] == label for r in ran), rows


def test_campos_notes_state_caffenet_and_split_facts_only_where_they_hold(tmp_path):
    from vsent.reports import campos2015

    paper = campos2015.Campos2015()
    plan = R.make_plan("campos2015", str(tmp_path), quick=False, device="cpu")
    assert plan.template.model == "caffenet"
    notes = " ".join(paper.notes(plan, None, {}))
    assert "(Caffe reference convention); CaffeNet fc6-2 at base lr 1e-4" in notes
    # the images the splits cover, counted on the data the run read (trial41 F6: "880 of
    # the 882" was said of any data); none before table1 wrote its folds
    assert "The authors' 5 splits (folds/campos) are not stratified. " in notes
    table1 = tmp_path / "table1"
    table1.mkdir()
    (table1 / "folds.json").write_text(json.dumps({"folds": [
        {"fold": 1, "train": ["a", "b"], "test": ["c"]},
        {"fold": 2, "train": ["a", "c"], "test": ["b"]}]}))
    session = types.SimpleNamespace(out=tmp_path)
    assert "are not stratified and cover 2 five-agree images." in " ".join(
        paper.notes(plan, session, {}))
    (table1 / "data.json").write_text(json.dumps({"n_images": 3}))
    assert "are not stratified and cover 2 of the 3 five-agree images." in " ".join(
        paper.notes(plan, session, {}))
    # mut56e A1: a count that is no integer (a damaged data.json) is not printed as one
    (table1 / "data.json").write_text(json.dumps({"n_images": "?"}))
    assert "are not stratified and cover 2 five-agree images." in " ".join(
        paper.notes(plan, session, {}))
    # mut58c A27: an entry of the list that is no object (a damaged fold) is left out
    (table1 / "folds.json").write_text(json.dumps({"folds": [{"test": ["c"]}, "x"]}))
    assert "are not stratified and cover 1 five-agree images." in " ".join(
        paper.notes(plan, session, {}))
    # mut56e A2: folds that are no list (a damaged folds.json) cover nothing that is said
    (table1 / "folds.json").write_text(json.dumps({"folds": {"1": {"test": ["c"]}}}))
    assert "are not stratified. " in " ".join(paper.notes(plan, session, {}))
    other = dataclasses.replace(plan, template=_template(tmp_path).replace(
        folds="stratified", subset="four"))  # a smallcnn with AdamW, another split
    notes = " ".join(paper.notes(other, None, {}))
    assert "CaffeNet" not in notes and "Caffe reference" not in notes
    assert "880" not in notes and "Folds: stratified." in notes
    four = dataclasses.replace(plan, template=plan.template.replace(subset="four"))
    assert "Folds: campos. The" not in " ".join(paper.notes(four, session, {}))  # mut52e C22
    assert "biases at 1x lr without weight decay." in notes
    # mut60c A42: CaffeNet's new layers and biases each at their own lr multiple
    assert ("new layers at 10x lr, biases at 2x lr without weight decay (Caffe reference "
            "convention)") in " ".join(paper.notes(plan, session, {}))


def test_a_reproduction_recorded_with_train_seed_0_and_seed_1_resumes(twitter_like, tmp_path):
    """review23 #1: the previous vsent stored template.train.seed 0 (and each sub-run's
    train.seed 0) beside --seed 1; RunConfig now records train.seed = seed, and the plan and
    sub-run comparisons refused such a directory (--overwrite would throw hours away)."""
    from vsent.crossval import prepare
    from vsent.runs import check_run_dir

    plan = _campos_plan(twitter_like)
    plan = dataclasses.replace(plan, template=dataclasses.replace(plan.template, seed=1))
    assert plan.template.train.seed == 1
    out = tmp_path / "rep"
    stored = {"command": "reproduce", "plan": runner.plan_dict(plan)}
    stored["plan"]["template"]["train"]["seed"] = 0  # as the previous version wrote it
    sub = out / "fc7-2"
    sub.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(stored))
    recorded, _ = prepare(dataclasses.replace(plan.template, init="random"))
    now = {"command": "crossval", **recorded.to_dict()}
    (sub / "config.json").write_text(json.dumps({**now, "train": {**now["train"], "seed": 0}}))
    (sub / "summary.json").write_text("{}")
    with runner.open_reproduction(plan, out, resume=True) as rd:
        session = runner.Session(out, rd, progress=False)
        assert session.crossval("fc7-2", plan.template) == sub  # reused, not refused
        assert session.steps["fc7-2"]["status"] == "done"
    # crossval(..., resume=True), which resumes an unfinished sub-run, takes it as its own
    assert check_run_dir(sub, now, resume=True) == "finished"
    assert json.loads((out / "config.json").read_text()) == stored  # kept as stored
    other = dataclasses.replace(plan, template=dataclasses.replace(plan.template, seed=2))
    with pytest.raises(VsentError, match=r"plan\.template\.seed: stored 1, now 2"):
        runner.open_reproduction(other, out, resume=True)
    runner.open_reproduction(plan, out, resume=True, overwrite=True).close()
    assert json.loads((out / "config.json").read_text())["plan"]["template"]["train"][
        "seed"] == 1  # a new reproduction records the normalised seed


def test_a_step_that_fails_is_recorded_failed_not_interrupted(campos, tmp_path):
    """steps.json said "interrupted" of a sub-run stopped by an error (reports38 #3)."""
    plan = campos[2]
    with runner.open_reproduction(plan, tmp_path / "rep", resume=False) as rd:
        session = runner.Session(tmp_path / "rep", rd, progress=False)

        def fails():
            raise VsentError("no model")

        def stopped():
            raise KeyboardInterrupt

        with pytest.raises(VsentError, match="no model"):
            session.step("a", lambda: False, fails)
        with pytest.raises(KeyboardInterrupt):
            session.step("b", lambda: False, stopped)
        assert session.step("c", lambda: False, lambda: None) is False  # ran, still not done
    steps = json.loads((tmp_path / "rep" / "steps.json").read_text())
    assert [steps[k]["status"] for k in "abc"] == ["failed", "interrupted", "interrupted"]


# mutation round 43b (mut43b): tests that kill mutants the suite missed


# --------------------------------------------------------------------------------------------
# mutation testing (mut43b): the cells of a report, what reads as "not recorded", --only


def _sweep_row(out, run_dir, published, cells, weights="w"):
    """A report row read from ``run_dir/k_sweep.json`` (K = 1: 0.59 +- 0.35, no one-class
    fold), ``run_dir`` made and written here."""
    from vsent.reports import render

    run_dir.mkdir(exist_ok=True)
    (run_dir / "k_sweep.json").write_text(json.dumps(
        {"k": [1], "ar": {"mean": [0.59], "std": [0.35], "one_class": [[False]]}}))
    return render.make_row(cells, published, out=out, run_dir=run_dir, file="k_sweep.json",
                           key=["ar", 0], weights=weights)


def test_a_percent_table_prints_the_papers_cell_in_percent_beside_ours(tmp_path):
    """mut43b RP43: in a table in percent (one line per row) the published cell is in percent
    too: 88.94 % beside our 59.00 %, not the stored fraction 0.8894 (a number 100 times off
    beside ours)."""
    from vsent.reports import render

    row = _sweep_row(tmp_path, tmp_path / "regions",
                     papers.SUN2016_TABLE1["ft_obj_senti_lf_best"]["five"], ["five"])
    md = render.table_markdown(render.make_table("t", "T", ["subset"], [row], unit="percent"))
    assert md[2:5] == ["| subset | paper | ours (mean +- std) | weights | run dir |",
                       "|---|---|---|---|---|",
                       "| five | 88.94 % (K = 11) | 59.00 +- 35.00 % | w | `regions` |"]


def test_a_wide_table_names_the_run_dir_of_a_row_that_did_not_run(tmp_path):
    """mut43b RP41: a wide table's "run dirs" (and "weights") come from every reproduced row,
    one that reads "not run" too, as the narrow table's "run dir" does."""
    from vsent.reports import render

    vgg = papers.SUN2016_TABLE1["vggnet"]
    rows = [_sweep_row(tmp_path, tmp_path / "five", vgg["five"], ["vggnet", "five"]),
            render.make_row(["vggnet", "four"], vgg["four"], out=tmp_path,
                            run_dir=tmp_path / "four", file="k_sweep.json", key=["ar", 0],
                            weights="w4")]
    assert (rows[1]["ours"], rows[1]["missing"]) == (None, R.NOT_RUN)
    wide = {"by": 1, "values": ["five", "four"], "labels": ["Twitter I 5", "Twitter I 4"]}
    md = render.table_markdown(render.make_table("t", "T", ["method", "subset"], rows,
                                                 unit="percent", wide=wide))
    assert md[4] == "| vggnet | 83.51 % | 59.00 +- 35.00 % | 78.89 % | not run | w; w4 | " \
                    "`five`, `four` |"


def test_every_line_of_a_report_table_has_as_many_cells_as_its_header(tmp_path):
    """mut43b RP42: the delimiter line has one ``---|`` per column, in narrow and wide tables
    (with one fewer, Markdown renders no table at all)."""
    from vsent.reports import render

    rows = [render.make_row(["vggnet", s], papers.SUN2016_TABLE1["vggnet"][s], out=tmp_path,
                            run_dir=None) for s in ("five", "four")]
    # mut54c S12: a row vsent does not reproduce has no measured value missing (the docstring's
    # "missing" is for a reproduced row's: not run or not recorded)
    assert [(r["ours"], r["missing"], r["run_dir"]) for r in rows] == [(None, None, None)] * 2
    for wide in (None, {"by": 1, "values": ["five", "four"], "labels": ["5", "4"]}):
        md = render.table_markdown(render.make_table("t", "T", ["method", "subset"], rows,
                                                     unit="percent", wide=wide))
        table = [line for line in md if line.startswith("|")]
        assert len(table) == 2 + (1 if wide else 2)
        assert {line.count("|") for line in table} == {table[0].count("|")}, table


def test_a_k_past_the_sweep_and_an_integer_mean_are_read_as_the_docstring_says():
    """mut43b RP18, RP20: an index past the end of a K sweep is not there (None: "not
    recorded"), not an IndexError; -n is the first K; a mean stored as a JSON integer is a
    value like 1.0."""
    from vsent.reports import render

    sweep = {"ar": {"mean": [0.5, 0.6], "std": [0.1, 0.2]}}
    assert render.value_at(sweep, ["ar", 2]) is None
    assert render.value_at(sweep, ["ar", -2]) == {"mean": 0.5, "std": 0.1}
    assert render.value_at({"m": {"mean": 1, "std": 0}}, ["m"]) == {"mean": 1.0, "std": 0.0}
    # a mean recorded without a std (one run, no spread) is read with std 0 (mut54c S07)
    assert render.value_at({"m": {"mean": 0.7}}, ["m"]) == {"mean": 0.7, "std": 0.0}
    # a sweep recorded without its stds reads std 0 at each K, not some other spread (mut57e P5)
    assert render.value_at({"ar": {"mean": [0.5, 0.6]}}, ["ar", 1]) == {"mean": 0.6, "std": 0.0}


@pytest.mark.parametrize("held", [0, {}, []])
def test_a_zero_or_empty_value_at_the_key_is_damage_not_not_recorded(tmp_path, held):
    """mut43b RP45: a key that is there but holds 0, {} or [] is a damaged file (an error naming
    it), not a value the sub-run did not record."""
    from vsent.reports import render

    (tmp_path / "summary.json").write_text(json.dumps({"center": {"accuracy": held}}))
    with pytest.raises(VsentError, match=r"summary\.json: center\.accuracy is not a mean and "
                                         r"std \(it holds "):
        render.lookup(tmp_path, "summary.json", ["center", "accuracy"])


def test_a_value_not_recorded_carries_no_one_class_flag(tmp_path):
    """mut43b RP28: a row without our value has no one-class flag, even where its file holds
    per-fold confusion matrices beside the missing value."""
    from vsent.reports import render

    summary = {"center": {"folds": [{"fold": 1, "confusion": [[0, 61], [0, 115]]}]}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    row = render.make_row(["x"], None, out=tmp_path, run_dir=tmp_path, file="summary.json",
                          key=["center", "accuracy"])
    assert (row["ours"], row["missing"], row["one_class_folds"]) == (None, R.NOT_RECORDED, None)


def test_a_two_decimal_fraction_is_a_whole_percent_when_printed_as_published():
    """mut43b RP31: exact cells in percent take two decimals off the paper's (0.82 -> 82 %),
    adding none the paper did not print."""
    from vsent.reports import render

    cell = {"mean": 0.82, "std": 0.055, "digits": 2, "std_digits": 3}
    assert render.fmt(cell, "percent", exact=True) == "82 +- 5.5 %"
    assert render.fmt(cell, exact=True) == "0.82 +- 0.055"


def test_a_sub_run_out_of_date_stays_so_through_later_only_runs(tmp_path):
    """mut43b RP48: a sub-run out of date, left out by --only again, is still out of date (its
    directory holds results that no longer count, and the notes say how to redo it), not
    merely skipped; one whose directory is gone is skipped."""
    from types import SimpleNamespace

    (tmp_path / "regions").mkdir()
    session = runner.Session(tmp_path, SimpleNamespace(write_json=lambda name, obj: None),
                             False, only=[])
    session.steps = {"regions": {"status": runner.OUT_OF_DATE, "seconds": 3.0},
                     "gone": {"status": runner.OUT_OF_DATE, "seconds": 1.0}}
    for name in ("regions", "gone"):
        assert session.step(name, lambda: False, lambda: pytest.fail("ran")) is False
    assert session.steps["regions"]["status"] == runner.OUT_OF_DATE
    assert session.steps["gone"]["status"] == runner.SKIPPED


# --------------------------------------------------------------------------------------------
# mutation round 44 (mut44b): vsent.reports.runner mutants the suite missed


def _bare_session(out: Path, **kw) -> runner.Session:
    """A Session whose bookkeeping goes nowhere (no run directory)."""
    out.mkdir(parents=True, exist_ok=True)
    return runner.Session(out, types.SimpleNamespace(write_json=lambda name, obj: None), False,
                          **kw)


def test_a_paper_class_registered_again_is_no_error():
    """mut44b RN01: a paper module imported again (importlib.reload, a test's re-import)
    registers its own class again; only another class of the same name is refused."""
    runner.load_papers()
    cls = type(R.PAPERS["campos2015"])
    assert runner.register_paper(cls) is cls
    assert type(R.PAPERS["campos2015"]) is cls


def test_a_steps_seconds_add_up_over_sessions(tmp_path):
    """mut44b RN02: a sub-run interrupted after 5 s and finished in a later session has
    spent both sessions' seconds (the header's seconds_all_sessions sums them)."""
    session = _bare_session(tmp_path)
    session.steps = {"a": {"status": "interrupted", "seconds": 5.0}}
    done = []
    assert session.step("a", lambda: bool(done), lambda: done.append(1)) is True
    assert session.steps["a"]["status"] == "done" and session.steps["a"]["seconds"] >= 5.0


def test_weights_are_tried_per_model_and_its_options_and_said_on_one_line(tmp_path,
                                                                         monkeypatch):
    """mut44b RN05, RN06: a weights file that loads into one variant's network may not load
    into another's (other widths): each is tried, not taken from the first's answer."""
    def create(name, *, init="random", **kw):
        if kw.get("widths") == [8]:
            raise WeightsError("w.pt: 5 weights missing\n   or of the wrong shape")
        return None

    monkeypatch.setattr(runner, "create_model", create)
    session = _bare_session(tmp_path)
    assert session.weights_failure("smallcnn", "w.pt", {"widths": [4, 8]}) is None
    assert session.weights_failure("smallcnn", "w.pt", {"widths": [8]}) == \
        "w.pt: 5 weights missing or of the wrong shape"
    cfgs = [types.SimpleNamespace(model="smallcnn", init="w.pt", model_kwargs={"widths": w})
            for w in ([4, 8], [8])]
    with pytest.raises(VsentError, match=r"^--init w\.pt: 5 weights missing or of the wrong"):
        runner.check_init_file(cfgs)


def test_the_stored_plan_leaves_out_the_device_and_the_reductions():
    """mut44b RN07: a reproduction started on a CPU resumes on a GPU (the same plan)."""
    cpu = runner.plan_dict(R.make_plan("campos2015", "d", quick=True, device="cpu"))
    cuda = runner.plan_dict(R.make_plan("campos2015", "d", quick=True, device="cuda"))
    assert cpu == cuda and cpu["paper"] == "campos2015"
    assert "device" not in json.dumps(cpu) and "reductions" not in json.dumps(cpu)


def _devices(obj: typing.Any, where: str = "plan") -> dict[str, str]:
    """Every ``device`` field in the dataclasses of ``obj`` (a plan), by where it sits."""
    if not dataclasses.is_dataclass(obj):
        return {}
    found = {f"{where}.device": obj.device} if hasattr(obj, "device") else {}
    for f in dataclasses.fields(obj):
        found.update(_devices(getattr(obj, f.name), f"{where}.{f.name}"))
    return found


def test_every_recipe_of_a_plan_runs_on_the_device_asked_for():
    """mut60c2 Y44, Y45: you2015's transfer and weak-label recipes take --device too (else a
    GPU reproduction trains them on whatever "auto" finds)."""
    for name in R.paper_names():
        for quick in (False, True):
            devices = _devices(R.make_plan(name, "d", quick=quick, device="cuda"))
            assert devices and set(devices.values()) == {"cuda"}, (name, quick, devices)
    you = _devices(R.make_plan("you2015", "d", device="cuda"))
    assert {"plan.transfer_train.device", "plan.weak_finetune.device"} <= set(you)


def test_the_header_and_notes_of_an_analysed_run(tmp_path):
    """mut44b RN08-RN10, RN16: a plan without networks of its own (sun2016 on --run) is no
    quick mode, says no "Full mode" note; the seconds of every session add up; each step
    records the commit its sub-run was made with."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "versions.json").write_text(json.dumps(
        {"git_commit": "c" * 40, "cpu": "Some CPU", "cpu_capability": "AVX2"}))
    session = _bare_session(tmp_path)
    session.steps = {"a": {"status": "done", "seconds": 2.0},
                     "b": {"status": "done", "seconds": 3.0}}
    paper = types.SimpleNamespace(data=lambda plan: None, subsets=lambda plan: None,
                                  folds=lambda plan: None, notes=lambda *a: [],
                                  analysed_run=lambda plan: {"run": "r"})
    plan = types.SimpleNamespace(paper="x", template=None, reductions=["fewer K"])
    header = runner._header(paper, plan, session, None, 1.0)
    assert header["quick"] is False
    assert (header["seconds_this_session"], header["seconds_all_sessions"]) == (1.0, 5.0)
    full = types.SimpleNamespace(paper="x", template=None, reductions=[])
    notes = runner._notes(paper, full, session, {"tables": []})
    assert not any(n.startswith("Full mode") for n in notes)
    runner._provenance(session)
    assert session.steps["a"]["git_commit"] == "c" * 40
    assert session.steps["a"]["cpu"] == "Some CPU (AVX2)" and session.steps["b"]["cpu"] is None


def test_command_line_of_a_run_analysed_only_some_sub_runs_and_overwrite():
    """mut44b RN11, RN12, RN17: --run replaces --data; --only and --overwrite are said."""
    cmd = R.command_line("sun2016", quick=False, out="o", data="d", init=None, device="auto",
                         resume=False, run="runs/q", only="regions,k", overwrite=True)
    assert cmd == "vsent reproduce sun2016 --out o --run runs/q --only regions,k --overwrite"


def test_an_init_that_is_a_folder_is_no_weights_file(tmp_path, make_twitter_like):
    """mut44b RN13: --init naming a folder is refused as a folder, before anything runs (it
    was "no such file" until mut57e P56)."""
    data = make_twitter_like()
    plan = _campos_plan(data)
    plan = dataclasses.replace(plan, template=dataclasses.replace(plan.template,
                                                                  init=str(tmp_path)))
    with pytest.raises(VsentError, match=f"^--init {re.escape(str(tmp_path))}: a folder; give a "
                       r"weights file \(\.pt, "):
        R.reproduce(plan, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_finished_sub_run_trained_from_imagenet_weights_is_reused(campos, tmp_path):
    """mut44b RN15: a sub-run whose ImageNet weights did load (config.json: init imagenet) is
    this plan's (only the weights may differ: they fall back to random offline); another
    recipe is still refused."""
    _, out, plan, _ = campos
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    config = copy / "table1" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "init": "imagenet"}))
    session = _bare_session(copy)
    assert session.crossval("table1", plan.template) == copy / "table1"
    assert session.steps["table1"]["status"] == "done"
    other = dataclasses.replace(plan.template, train=plan.template.train.replace(epochs=2))
    with pytest.raises(VsentError, match="not this reproduction's table1 sub-run: made with "
                                         "other train.epochs"):
        session.crossval("table1", other)


# --------------------------------------------------------------------------------------------
# mutation round 45 (mut45f): vsent.reports.campos2015 mutants the suite missed


def test_each_campos_variant_runs_its_own_surgery_on_table1s_recipe():
    """mut45f C01: every row of Tables 3-4 is a CaffeNet with that row's ``arch`` (the rest of
    Table 1's recipe kept); without it each variant trained Table 1's fc8-2 again."""
    plan = R.make_plan("campos2015", "data", quick=True, device="cpu")
    assert list(plan.variants) == [*papers.CAMPOS2015_TABLE3, *papers.CAMPOS2015_TABLE4]
    for arch, kwargs in plan.variants.items():
        cfg = campos2015._variant(plan, kwargs)
        assert (cfg.model, cfg.model_kwargs) == ("caffenet", {"arch": arch})
        assert cfg.train == plan.template.train and cfg.init == plan.template.init
    assert plan.template.model_kwargs == {"arch": "fc8-2"}  # the variants copy, not change it


def _plan_differences(stored: object, now: object, path: str = "plan") -> list[str]:
    """Where ``stored`` and ``now`` differ. A run's or a recipe's field in one only is none
    (added since, or left out of the stored form at its default); any other key is."""
    from vsent.train import TrainConfig

    fields = {f.name for cls in (RunConfig, TrainConfig) for f in dataclasses.fields(cls)}
    if isinstance(stored, dict) and isinstance(now, dict):
        return [f"{path}.{k}: only in one" for k in stored.keys() ^ now.keys()
                if k not in fields] + [
            d for k in stored.keys() & now.keys()
            for d in _plan_differences(stored[k], now[k], f"{path}.{k}")]
    return [] if stored == now else [f"{path}: {stored!r} != {now!r}"]


@pytest.mark.parametrize("name", ["campos2015-quick", "sun2016-quick", "you2015-quick",
                                  "you2015-weak-full"])
def test_the_plans_are_those_results_reproduce_was_made_with(name):
    """mut45f C01, C09, S01, ...: the plan ``vsent reproduce <paper> [--quick]`` makes is the
    one stored with its report in results/reproduce (its epochs, probe grid, variants, region
    settings), so a changed recipe cannot leave the published reports describing another."""
    stored = json.loads((Path(__file__).resolve().parents[1] / "results" / "reproduce" / name
                         / "config.json").read_text())["plan"]
    plan = R.make_plan(stored["paper"], stored["template"]["data"], quick="quick" in name,
                       device="cpu")
    assert _plan_differences(stored, runner.plan_dict(plan)) == []


def test_campos_table2_names_the_papers_classifiers(campos):
    """mut45f C17: Table 2's classifier column says "linear SVM" (the paper's SVM column is a
    linear one), not vsent's option name."""
    _, _, plan, report = campos
    t2 = next(t for t in report["tables"] if t["id"] == "table2")
    assert plan.probe.classifiers == ("svm", "softmax")
    assert [r["cells"][1] for r in t2["rows"][:2]] == ["linear SVM", "softmax"]


def test_campos_figure_leaves_out_probes_of_replaced_models(campos, tmp_path, monkeypatch):
    """mut45f C19: probes not of the fold models the run holds now read "not run" in Table 2,
    and are not drawn in the figure's Table 2 panel either."""
    _, out, plan, _ = campos
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    drawn = []
    real = campos2015._figure
    monkeypatch.setattr(campos2015, "_figure", lambda *a: drawn.append(a[2]) or real(*a))
    copy = shutil.copytree(out, tmp_path / "copy")
    for current in (False, True):
        monkeypatch.setattr(campos2015, "probed_with_current_models", lambda *a, c=current: c)
        R.reproduce(plan, copy, resume=True, progress=False, only=["table1"])
    assert drawn == [{}, json.loads((out / "layers" / "layers.json").read_text())]


def test_campos_notes_say_what_always_positive_scores():
    """mut45f C26: the majority baseline of Table 1's folds is stated in the notes (the
    paper's fc6-4096 models "always predict the majority class": the line to compare with)."""
    paper = campos2015.Campos2015()
    plan = R.make_plan("campos2015", "data", device="cpu")
    majority = {"mean": 0.625, "std": 0.125, "source": "table1/predictions.csv"}
    notes = paper.notes(plan, None, {"majority": majority})
    assert "Always answering 'positive' on the same test folds scores 0.625 +- 0.125 " \
           "(computed from table1/predictions.csv)." in notes
    assert not any("Always answering" in n for n in paper.notes(plan, None, {"majority": None}))


def test_campos_figure_says_why_an_architecture_has_no_bar(tmp_path, monkeypatch):
    """mut45f C35: a group of bars left empty (a variant not run) is labelled with the
    report's reason; a group with a bar is not."""
    from matplotlib.axes import Axes

    said: list[str] = []
    real_text = Axes.text
    monkeypatch.setattr(Axes, "text", lambda self, x, y, s, *a, **kw: said.append(s) or
                        real_text(self, x, y, s, *a, **kw))

    def row(run_dir: str, e: str, ours: dict | None) -> dict:
        return {"run_dir": run_dir, "key": [e, "accuracy"], "cells": [run_dir, e],
                "paper": None, "ours": ours, "missing": None if ours else R.NOT_RUN}

    tables = [{"id": "table3", "rows": [
        row(arch, e, {"mean": 0.7, "std": 0.01} if arch == "fc7-2" else None)
        for arch in ("fc7-2", "fc6-2") for e in campos2015.EVALS]}]
    plan = R.make_plan("campos2015", "data", quick=True, device="cpu")
    name = campos2015._figure(tmp_path, tables, {}, plan, None, {})
    assert (tmp_path / name).is_file()
    assert said.count(R.NOT_RUN) == 1 and "layer probes not run" in said


def test_campos_figure_names_table_1s_bar_by_its_rows_model(tmp_path, monkeypatch):
    """mut49c C40: Table 1's group of bars is named by the model its row ran ("caffenet fc8-2
    (Table 1)"), the variants by their architecture; not by the step names."""
    from vsent.reports import render

    def row(run_dir: str, model: str, e: str) -> dict:
        return {"run_dir": run_dir, "key": [e, "accuracy"], "cells": [model, e],
                "paper": None, "ours": {"mean": 0.7, "std": 0.01}, "missing": None}

    tables = [{"id": "table1", "rows": [row("table1", "caffenet fc8-2", e)
                                        for e in campos2015.EVALS]},
              {"id": "table3", "rows": [row("fc7-2", "fc7-2", e) for e in campos2015.EVALS]}]
    ticks: list[str] = []
    monkeypatch.setattr(render, "save_report_figure", lambda fig, out, name: ticks.extend(
        t.get_text() for t in fig.axes[0].get_xticklabels()))
    plan = R.make_plan("campos2015", "data", quick=True, device="cpu")
    campos2015._figure(tmp_path, tables, {}, plan, None, {})
    assert ticks == ["caffenet fc8-2 (Table 1)", "fc7-2"]


# --------------------------------------------------------------------------------------------
# mutation round 45 (mut45f): vsent.reports.sun2016 mutants the suite missed


def _crossval_record(tmp_path: Path, **config: object) -> Path:
    """A finished crossval run's record alone (config.json, summary.json): what sun2016
    reads of an analysed run before its regions step."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_sun2016_on_a_run_reads_the_runs_own_record(tmp_path):
    """mut45f S07, S10, S11, S13, S31, S38: with --run the one sub-run is ``regions``, and the
    header (data, subset, folds) and the notes' recipe are the analysed run's."""
    from vsent.reports import sun2016

    tw = tmp_path / "tw"
    (tw / "images").mkdir(parents=True)
    run = _crossval_record(tmp_path, command="crossval", data=str(tw), subset="four",
                           folds="campos", model="smallcnn", init="random",
                           train={"epochs": 3}, model_kwargs={"image_size": 64},
                           preset="quick")
    paper = sun2016.Sun2016()
    plan = R.make_plan("sun2016", "unused", quick=True, device="cpu", run=str(run))
    recipe = "smallcnn from random weights, 3 epochs, 64 px, preset quick, subset four, " \
             "folds campos"
    assert paper.steps(plan) == ["regions"]
    assert (paper.data(plan), paper.subsets(plan), paper.folds(plan)) == (str(tw), "four",
                                                                         "campos")
    assert paper.analysed_run(plan) == {"path": str(run), "recipe": recipe}
    notes = paper.notes(plan, None, {})
    assert notes[-1] == f"The whole-image model is the analysed run's ({run}): {recipe}."
    full = R.make_plan("sun2016", str(tw), device="cpu")
    assert paper.steps(full) == [f"{kind}-{sub}" for sub in ("five", "four", "three")
                                 for kind in ("crossval", "regions")]
    assert "full mode uses vsent's Campos et al. recipe" in paper.notes(full, None, {})[-1]


def test_sun2016_refuses_an_init_with_a_run_and_a_run_that_is_no_finished_crossval(tmp_path):
    """mut45f S02, S33, S34: --init with --run is refused (the run's models are analysed), as
    a folder without summary.json or the record of another command; a record older than the
    ``command`` key is a crossval run's."""
    from vsent.reports import sun2016

    run = _crossval_record(tmp_path, data="d")  # no "command": an older crossval run
    assert sun2016._run_config(str(run)) == {"data": "d"}
    with pytest.raises(VsentError, match="--init does not apply with --run"):
        R.make_plan("sun2016", "unused", init="random", run=str(run))
    (run / "config.json").write_text(json.dumps({"command": "fuse"}))
    with pytest.raises(VsentError, match="a fuse run, not a crossval run"):
        sun2016._run_config(str(run))
    # mut56e S7: nor is any other command's record (a reproduce folder) a crossval run
    (run / "config.json").write_text(json.dumps({"command": "reproduce"}))
    with pytest.raises(VsentError, match="a reproduce run, not a crossval run"):
        sun2016._run_config(str(run))
    (run / "config.json").write_text(json.dumps({"command": "ensemble"}))  # its article (audit59)
    with pytest.raises(VsentError, match=f"^--run {re.escape(str(run))} holds an ensemble run, "
                                         "not a crossval run$"):
        sun2016._run_config(str(run))
    (run / "summary.json").unlink()
    with pytest.raises(VsentError, match=r"not a finished crossval run \(no summary.json\)"):
        sun2016._run_config(str(run))


def test_sun2016_notes_name_the_papers_best_k_per_column(tmp_path):
    """mut45f S30, S39: the paper's best K of each subset is listed, and ours is called their
    five-agree best only when it is (K = 11)."""
    from vsent.reports import sun2016

    paper = sun2016.Sun2016()
    plan = R.make_plan("sun2016", "d", quick=True, device="cpu")
    assert plan.regions.k == papers.SUN2016_K == 11
    text = " ".join(paper.notes(plan, None, {}))
    assert "Sun et al.'s best K was chosen per column (Twitter I 5: 11, Twitter I 4: 13, " \
           "Twitter I 3: 11); ours is read at the fixed K = 11 (their five-agree best), not " \
           "chosen on the test folds" in text
    other = dataclasses.replace(plan, regions=dataclasses.replace(plan.regions, k=5))
    text = " ".join(paper.notes(other, None, {}))
    assert "at the fixed K = 5, not chosen" in text and "five-agree best" not in text
    # mut60c S35: the fusion note gives the plan's beta and alpha, each in its own place
    other = dataclasses.replace(plan, regions=dataclasses.replace(plan.regions, beta=0.5,
                                                                   alpha=2.0))
    text = " ".join(paper.notes(other, None, {}))
    assert "region scores (beta = 0.5); AR = sqrt(obj^2 + alpha senti^2), alpha = 2.0." in text


def test_sun2016_labels_ours_with_the_model_that_ran(tmp_path):
    """mut45f S25, S27-S29: the "ours" column names the whole-image model the weights record
    says ran, from which weights, quick or not, and "not VGGNet" unless it is."""
    from vsent.reports import sun2016

    quick = R.make_plan("sun2016", "d", quick=True, device="cpu")
    full = R.make_plan("sun2016", "d", device="cpu")
    runs = {"five": (Path("cv"), Path("reg"), "crossval-five")}

    def label(plan: object, weights: dict) -> str:
        return sun2016.Sun2016._model_label(plan, types.SimpleNamespace(weights=weights), runs)

    assert label(quick, {}) == "smallcnn (quick), not VGGNet"
    assert label(full, {}) == "vgg16"
    assert label(full, {"crossval-five": {"model": "vgg16", "used": "imagenet"}}) == \
        "vgg16 from ImageNet"
    assert label(quick, {"crossval-five": {"model": "resnet18", "used": "random"}}) == \
        "resnet18 from scratch (quick), not VGGNet"
    # --run: "(quick)" is the analysed run's preset, not the plan's reductions (mut52e S19)
    assert quick.reductions
    for preset, said in (("quick", "smallcnn (quick), not VGGNet"),
                         (None, "smallcnn, not VGGNet")):
        run = tmp_path / f"run-{preset}"
        run.mkdir()
        (run / "summary.json").write_text("{}")
        (run / "config.json").write_text(json.dumps({"command": "crossval", "preset": preset}))
        assert label(dataclasses.replace(quick, run=str(run)), {}) == said


def _nothing_run_session(out: Path, ran: dict[str, object]) -> types.SimpleNamespace:
    """A reproduction session in which no sub-run runs (--only names none of them): the
    report's rows and titles from the plan alone."""
    from vsent.reports import render

    def crossval(name: str, cfg: object) -> Path:
        ran[name] = cfg
        return out / name

    def row(cells, published, run_dir, file="", key=(), weights="", planned=True):
        return render.make_row(cells, published, out=out, run_dir=run_dir, file=file,
                               key=key, weights=weights, planned=planned)

    return types.SimpleNamespace(out=out, progress=False, weights={}, row=row,
                                 step=lambda name, done, do: False, crossval=crossval,
                                 wants=lambda name: False, weights_label=lambda name: "w")


def test_sun2016_table_of_a_plan_nothing_of_which_ran(tmp_path):
    """mut45f S15, S18, S21, S22: the three subsets' Table 1 before anything ran: titled
    "Twitter I five / four / three agree" without a fold count (no regions table yet), the
    best-K row naming the plan's K, every row "not run"; no error (the regions are not asked
    for, so their crossval runs need not be finished)."""
    from vsent.reports import sun2016

    plan = R.make_plan("sun2016", "d", quick=True, device="cpu")
    plan = dataclasses.replace(plan, regions=dataclasses.replace(plan.regions, k=7))
    ran: dict[str, object] = {}
    (tmp_path / "regions-five").mkdir()  # mut52e S08: an old table is not this plan's
    (tmp_path / "regions-five" / "table1.json").write_text(json.dumps({"results": {
        m: {"accuracy": {"mean": 0.5, "std": 0.1}} for m in ("global", "ar")}}))
    (tmp_path / "regions-five" / "k_sweep.json").write_text(json.dumps({  # (nor drawn: S16)
        "k": [1], "global": {"mean": 0.5}, "ar": {"mean": [0.5], "std": [0.1]}}))
    report = sun2016.Sun2016().run(plan, _nothing_run_session(tmp_path, ran))
    assert list(ran) == ["crossval-five", "crossval-four", "crossval-three"]
    # mut56e S10: the runs the report cites are the crossval runs, not their regions
    assert report["run"] == list(ran)
    table = report["tables"][0]
    assert table["title"] == "Table 1: Twitter I five / four / three agree, accuracy"
    best = [r for r in table["rows"] if r["cells"][0] == papers.SUN2016_ROWS[
        "ft_obj_senti_lf_best"]]
    assert [r["cells"][1] for r in best] == ["late fusion, top-K regions by AR at K = 7 "
                                            "(fixed, not chosen on the test folds), no ft"] * 3
    assert all(r["ours"] is None for r in table["rows"]) and report["figures"] == []
    # the paper's rows only: ours-only methods are listed once a regions table has them
    assert len(table["rows"]) == len(papers.SUN2016_ROWS) * 3


# --------------------------------------------------------------------------------------------
# mutation round 45 (mut45f): vsent.reports.you2015 mutants the suite missed


def test_you2015_runs_the_baselines_on_all_three_subsets_or_one(tmp_path, monkeypatch):
    """mut45f Y11, Y12: the baselines sub-run gets ``all`` for the three subsets and the one
    subset otherwise; two subsets, or a name that is none, are refused before it runs."""
    from vsent.analyses import baselines as B

    class Ran(Exception):
        pass

    given, passed = [], []

    def run_baselines(data: str, *, subset: str, **kwargs: object) -> None:
        given.append(subset)
        passed.append({k: kwargs[k] for k in ("folds_spec", "skip_bad", "seed", "k")})
        raise Ran

    plan = R.make_plan("you2015", "data", quick=True, device="cpu")  # (reads its signature)
    monkeypatch.setattr(B, "run_baselines", run_baselines)
    session = types.SimpleNamespace(out=tmp_path, progress=False,
                                    step=lambda name, done, do: do())
    for subsets in (("five", "four", "three"), ("three", "five", "four"), ("four",)):
        with pytest.raises(Ran):
            you2015.You2015().run(dataclasses.replace(plan, subsets=subsets), session)
    assert given == ["all", "all", "four"]
    # mut60c Y30: the report header names the plan's subsets, not its template's one
    assert you2015.You2015().subsets(plan) == "five, four, three"
    assert you2015.You2015().subsets(dataclasses.replace(plan, subsets=("four",))) == "four"
    # mut56e Y1: a subset named twice is no "all three" (its rows would be listed twice)
    for subsets in (("five", "four"), ("seven",), ("five", "four", "three", "five")):
        with pytest.raises(VsentError, match="you2015 subsets must be all three or one of"):
            you2015.You2015().run(dataclasses.replace(plan, subsets=subsets), session)
    assert len(given) == 3
    # mut52e Y28, Y29: the template's folds, --skip-bad and seed reach the baselines
    template = dataclasses.replace(plan.template, folds="stratified", skip_bad=True, seed=4)
    with pytest.raises(Ran):
        you2015.You2015().run(dataclasses.replace(plan, template=template), session)
    assert passed[0] == {"folds_spec": "campos", "skip_bad": False, "seed": 0, "k": 100}
    assert passed[-1] == {"folds_spec": "stratified", "skip_bad": True, "seed": 4, "k": 100}
    # mut52e Y31: the quick plan's reduction says the vocabulary it gives the baselines
    assert ("BoW vocabulary k = 100 words from at most 20,000 SIFT descriptors per fold "
            "(vsent default ") in plan.reductions[1]


def test_you2015_refuses_imagenet_and_an_unreadable_checkpoint_up_front(tmp_path):
    """mut45f Y07, Y08: 2CONV-4FC has no ImageNet weights, and a checkpoint to transfer is read
    by check (before the baselines' sub-run), not hours later."""
    paper = you2015.You2015()
    plan = R.make_plan("you2015", str(tmp_path), device="cpu")
    paper.check(plan)  # random weights: nothing to check
    with pytest.raises(VsentError, match="2CONV-4FC has no ImageNet weights"):
        paper.check(R.make_plan("you2015", str(tmp_path), init="imagenet", device="cpu"))
    absent = tmp_path / "absent.pt"
    with pytest.raises(VsentError, match="absent.pt"):
        paper.check(R.make_plan("you2015", str(tmp_path), init=str(absent), device="cpu"))


def test_you2015_refuses_a_checkpoint_trained_on_an_image_of_any_subset_it_tests(
        tmp_path, twitter_like):
    """mut60c Y29: check compares the checkpoint's training data with every subset the plan
    tests on, not five-agree alone: an image only three-agree holds is one of its test
    images too."""
    from vsent.data.datasets import load_dataset
    from vsent.models import create_model, save_checkpoint

    five = set(load_dataset(twitter_like, "five", validate=False).names)
    three_only = next(p for p in load_dataset(twitter_like, "three", validate=False).paths
                      if p.name not in five)
    weak = tmp_path / "weak"
    weak.mkdir()
    shutil.copy(three_only, weak / "x.jpg")
    (weak / "weak.csv").write_text("path,label\nx.jpg,1\n")
    ckpt = save_checkpoint(tmp_path / "weak.pt", create_model("pcnn"),
                           data=str(weak / "weak.csv"))
    plan = R.make_plan("you2015", str(twitter_like), init=str(ckpt), device="cpu")
    assert plan.subsets == ("five", "four", "three")
    with pytest.raises(VsentError, match=r"holds 1 of the images of .*five/four/three-agree"):
        you2015.You2015().check(plan)


def test_you2015_tables_list_every_row_of_the_paper_and_ours(tmp_path):
    """mut45f Y01, Y02, Y15-Y22, Y25-Y27, Y35: nothing run (a session that runs nothing): the
    Twitter table still lists the four baselines ("not available" published), always
    positive, the CNN (You et al.'s 0.783 on five-agree), the weak-label rows on five and four
    only, and the two quoted rows (accuracy only, Sun et al.'s values, not reproduced)."""
    ran: dict[str, RunConfig] = {}
    session = _nothing_run_session(tmp_path, ran)
    plan = R.make_plan("you2015", "data", quick=True, device="cpu")
    report = you2015.You2015().run(plan, session)
    acc, prf = report["tables"]
    cells = [tuple(r["cells"]) for r in acc["rows"]]
    subs = ("five", "four", "three")
    base = ["GCH", "LCH", "GCH+BoW", "LCH+BoW"]
    assert [c[0] for c in cells if c[1] == "five"][:len(base)] == base
    cnn = "2CONV-4FC from random weights, Twitter only"
    quoted = list(you2015.QUOTED_ROWS.values())
    assert quoted == [papers.YOU2015_QUOTED_LABELS[r] for r in ("pcnn", "sentibank")]
    for sub in subs:
        mine = [c[0] for c in cells if c[1] == sub]
        weak = [you2015.WEAK_LABEL] if sub != "three" else []
        assert mine[len(base) + 1:] == [cnn, *weak, *quoted], sub
    assert len(acc["rows"]) == 3 * (len(base) + 4) + 2
    by_cells = {tuple(r["cells"]): r for r in acc["rows"]}
    assert by_cells[("GCH", "five", "accuracy")]["paper"]["source"] == R.NOT_AVAILABLE
    assert by_cells[(mine[len(base)], "five", "accuracy")]["paper"] is None  # always positive
    assert by_cells[(cnn, "five", "accuracy")]["paper"]["mean"] == 0.783
    for label, sun_row in zip(quoted, ("pcnn_caffenet", "sentibank"), strict=True):
        for sub in subs:
            r = by_cells[(label, sub, "accuracy")]
            assert r["run_dir"] is None
            assert r["paper"]["mean"] == papers.SUN2016_TABLE1[sun_row][sub].mean
    # precision, recall and F1: no quoted rows (nobody quotes them)
    assert {r["cells"][2] for r in prf["rows"]} == {"precision", "recall", "f1"}
    assert len(prf["rows"]) == 3 * (3 * (len(base) + 2) + 2)
    assert not any(r["cells"][0] in quoted for r in prf["rows"])
    # mut52e Y30: the CNN row of each metric reads that metric of its summary
    assert [r["key"] for r in prf["rows"] if r["cells"][0] == cnn] == [
        [m] for m in ("precision", "recall", "f1") for _ in subs]
    # the weak-label sub-runs: Algorithms 1 and 2 on the three-agree extras, from random
    weak = {n: c for n, c in ran.items() if n.startswith("pcnn-weak-")}
    assert list(weak) == ["pcnn-weak-five", "pcnn-weak-four"]
    # mut52e Y21: the CNN row's sub-run of each subset trains on that subset
    assert [(n, c.subset, c.init) for n, c in ran.items() if n not in weak] == [
        (f"pcnn-{sub}", sub, "random") for sub in subs]
    for sub, cfg in zip(("five", "four"), weak.values(), strict=True):
        assert (cfg.subset, cfg.extra_train, cfg.extra_schedule, cfg.init, cfg.finetune) == (
            sub, "three", "progressive", "random", plan.weak_finetune)
    assert not any(n.startswith("pcnn-weak-") for n in R.step_names(
        dataclasses.replace(plan, weak_finetune=None)))


def test_you2015_transfers_a_checkpoint_with_the_plans_recipe(tmp_path, monkeypatch):
    """mut45f Y23: domain transfer (Algorithm 2) fine-tunes a checkpoint with the plan's
    transfer recipe (2 epochs in quick mode), not the full one."""
    from vsent.analyses import pcnn as P

    given = []
    monkeypatch.setattr(P, "checkpoint_spec", lambda init: ("pcnn", None, None))
    kws: list[dict] = []
    monkeypatch.setattr(P, "transfer", lambda cfg, out, **kw: (given.append(cfg),
                                                                kws.append(kw)))
    plan = R.make_plan("you2015", "data", quick=True, init="ckpt.pt", device="cpu")
    plan = dataclasses.replace(plan, template=dataclasses.replace(  # (mut52e Y27)
        plan.template, folds="stratified", skip_bad=True, seed=3, oversample=True,
        eval_batch_size=7))  # (mut60c Y37, Y38)
    session = types.SimpleNamespace(out=tmp_path, progress=False, weights={},
                                    save=lambda: None, step=lambda name, done, do: do(),
                                    weights_label=lambda name: "w")
    dirs, _, label = you2015._cnn(plan, session, ("five", "four"))
    assert [cfg.train for cfg in given] == [plan.transfer_train]
    assert plan.transfer_train.epochs == 2 < P.TRANSFER_TRAIN.epochs
    assert (given[0].model, given[0].subsets) == ("ckpt.pt", ["five", "four"])
    assert (given[0].folds, given[0].skip_bad, given[0].seed) == ("stratified", True, 3)
    assert (given[0].oversample, given[0].eval_batch_size) == (True, 7)
    # mut60c Y39: the leakage check You2015.check made is not made again (images hashed twice)
    assert (kws[0]["init_checked"], kws[0]["resume"]) == (True, False)
    # mut60c Y40, Y41: the weak-label rows train from random weights (not the checkpoint
    # transferred), then fine-tune with the plan's recipe
    ran: dict[str, RunConfig] = {}
    assert list(you2015._weak(plan, _nothing_run_session(tmp_path, ran))) == ["five", "four"]
    assert [(c.init, c.finetune, c.extra_train) for c in ran.values()] == [
        ("random", plan.weak_finetune, "three")] * 2
    assert dirs == {s: tmp_path / "transfer" / s for s in ("five", "four")}
    assert label == "2CONV-4FC, pre-trained checkpoint + domain transfer"
    # mut49c Y21: the checkpoint is recorded as the weights used (not a fallback's None)
    assert session.weights["transfer"] == {"model": "pcnn", "requested": "ckpt.pt",
                                           "used": "ckpt.pt", "reason": None}
    # mut49c Y8: the transfer is a sub-run of such a plan (and only of such a plan)
    assert "transfer" in R.step_names(plan)
    assert "transfer" not in R.step_names(R.make_plan("you2015", "data", quick=True))
    # mut49c Y1: a plan that records no model ran the paper's network
    assert you2015.network_label(None) == you2015.network_label("pcnn") == "2CONV-4FC"
    assert you2015.network_label("smallcnn") == "smallcnn (not 2CONV-4FC)"


# mutation round 47 (mut47c): vsent.cli.reproduce mutants the suite missed


def _reproduce_spy(monkeypatch) -> list[tuple]:
    """Replace the plan and the runner with recorders (nothing is trained)."""
    import vsent.reports.runner as runner

    calls: list[tuple] = []
    monkeypatch.setattr(runner, "make_plan",
                        lambda paper, data, **kw: calls.append(("plan", paper, data, kw)) or "P")
    monkeypatch.setattr(runner, "reproduce", lambda plan, out, **kw: calls.append(
        ("run", plan, out, kw)) or {"weights_failures": ["no network"]})
    return calls


def test_cli_reproduce_options_reach_the_plan_and_the_runner(monkeypatch, tmp_path, capsys):
    from vsent.cli import main

    calls = _reproduce_spy(monkeypatch)
    monkeypatch.setattr("vsent.progress.on_terminal", lambda progress: progress)  # a terminal
    data = str(tmp_path)
    assert main(["reproduce", "campos2015", "--data", data, "--quick", "--only",
                 "table1,layers", "--seed", "3", "--device", "cpu", "--init", "random",
                 "--overwrite", "--no-progress"]) == 0
    (_, paper, got_data, plan_kw), (_, plan, out, run_kw) = calls
    assert (paper, got_data, plan_kw) == ("campos2015", data, {
        "quick": True, "init": "random", "device": "cpu", "seed": 3, "run": None})
    # the default folder of a quick reproduction is its own, not the full one's
    assert (plan, out, run_kw["only"], run_kw["resume"]) == (
        "P", "runs/reproduce/campos2015-quick", ["table1", "layers"], False)
    assert (run_kw["overwrite"], run_kw["progress"]) == (True, False)
    assert run_kw["command"] == (  # the report's command line, every option (mut51a)
        f"vsent reproduce campos2015 --quick --out runs/reproduce/campos2015-quick --data {data} "
        "--init random --device cpu --seed 3 --only table1,layers --overwrite")
    out, err = capsys.readouterr()
    assert out == "report written to runs/reproduce/campos2015-quick/report.md\n"
    assert err == "vsent: warning: random weights used instead: no network\n"
    calls.clear()
    assert main(["reproduce", "campos2015", "--data", data]) == 0
    assert calls[1][2] == "runs/reproduce/campos2015" and calls[1][3]["only"] is None
    assert calls[1][3]["progress"] is True
    calls.clear()  # --resume reaches the runner and the report's command line (mut51a D12)
    assert main(["reproduce", "campos2015", "--data", data, "--resume"]) == 0
    assert calls[1][3]["resume"] is True and calls[1][3]["command"].endswith(" --resume")


def test_cli_reproduce_run_with_the_default_data_is_not_refused(monkeypatch, tmp_path):
    """--run analyses that run's own data: only a --data typed with it is refused, not the
    default one (which need not exist)."""
    from vsent.cli import main

    calls = _reproduce_spy(monkeypatch)
    monkeypatch.setenv("VSENT_DATA", str(tmp_path / "nowhere"))
    assert main(["reproduce", "sun2016", "--run", str(tmp_path)]) == 0
    assert calls[0][3]["run"] == str(tmp_path)
    assert main(["reproduce", "sun2016", "--run", str(tmp_path), "--data", str(tmp_path)]) == 2


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47e): vsent.reports.render mutants the suite missed


def test_a_damaged_bookkeeping_file_says_what_to_do_about_it(tmp_path):
    """A damaged steps.json names itself and the remedy (delete it: --resume makes it again)."""
    from vsent.reports import render

    (tmp_path / "steps.json").write_text("{half")
    with pytest.raises(VsentError, match=r"steps\.json: unreadable .*; delete it, and --resume"):
        runner.Session(tmp_path, None, False)
    (tmp_path / "l.json").write_text("[]")
    with pytest.raises(VsentError, match=r"unreadable \(a JSON list, expected an object\); fix$"):
        render.read_json(tmp_path / "l.json", {}, "fix")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(VsentError, match=r"d\.json: unreadable \(a JSON dict, expected a list\)$"):
        render.read_json(tmp_path / "d.json", [])


def test_a_file_damaged_above_the_values_key_names_the_key_that_is_no_object(tmp_path):
    """summary.json's "center" holding a number is damage (not "not recorded"), said in one
    line naming the key, not an AttributeError."""
    from vsent.reports import render

    (tmp_path / "summary.json").write_text(json.dumps({"center": 0.5}))
    with pytest.raises(VsentError, match=r"summary\.json: center is not an object \(it holds "
                                         r"0\.5\)"):
        render.lookup(tmp_path, "summary.json", ["center", "accuracy"])


def test_a_sweep_without_folds_has_no_one_class_count_and_an_unplanned_row_reads_not_run(
        tmp_path):
    """No per-fold confusion matrices: no "0 of 0 folds" claim. A sub-run the plan does not run
    reads "not run" whatever its folder holds (make_row's ``planned``)."""
    from vsent.reports import render

    summary = {"center": {"accuracy": {"mean": 0.6, "std": 0.1}, "folds": []}}
    assert render.one_class_at(summary, ["center", "accuracy"]) is None
    sweep = {"ar": {"mean": [0.5], "std": [0.1], "one_class": []}}  # flags of no fold
    assert render.one_class_at(sweep, ["ar", 0]) == render.ONE_CLASS_UNKNOWN
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    row = render.make_row(["x"], None, out=tmp_path, run_dir=tmp_path, file="summary.json",
                          key=["center", "accuracy"], planned=False)
    assert (row["ours"], row["missing"], render.ours_cell(row)) == (None, "not run", "not run")


def test_a_published_value_not_available_formats_as_nothing_as_it_prints():
    from vsent.reports import render

    gone = papers.Published(None, None, "sentinel")
    assert render.fmt(render.published_dict(gone), exact=True) == "" == gone.printed()


def test_a_value_needing_more_than_six_decimals_is_printed_to_six():
    """A published value of a report without its printed digits gets the digits it has, six at
    most (no StopIteration for 1/3)."""
    from vsent.reports import render

    assert render.fmt({"mean": 1 / 3, "std": None}, exact=True) == "0.333333"
    assert render.fmt({"mean": 0.25, "std": None}, exact=True) == "0.250"


def test_a_wide_table_is_headed_by_its_labels_and_keeps_its_columns_for_a_missing_row(
        tmp_path):
    """The header names each value by its label ("Twitter I 5"), and a method without a row for
    one value keeps two empty cells there, so the next value's cells stay under their heading."""
    from vsent.reports import render

    vgg = papers.SUN2016_TABLE1["vggnet"]
    rows = [render.make_row(["vggnet", "four"], vgg["four"], out=tmp_path, run_dir=None)]
    wide = {"by": 1, "values": ["five", "four"], "labels": ["Twitter I 5", "Twitter I 4"]}
    md = render.table_markdown(render.make_table("t", "T", ["method", "subset"], rows,
                                                 unit="percent", wide=wide))
    assert md[2] == ("| method | Twitter I 5: paper | Twitter I 5: ours | Twitter I 4: paper | "
                     "Twitter I 4: ours | weights | run dirs |")
    assert md[4] == "| vggnet |  |  | 78.89 % | not reproduced |  |  |"


def test_a_sub_run_whose_weights_nobody_recorded_is_labelled_n_a():
    from vsent.reports import render

    assert render.weights_label({"used": None, "model": "smallcnn"}) == "n/a"
    # a weights file is named as code, as the report's other names (mut54c S25)
    assert render.weights_label({"used": "runs/a/model.pt", "model": "smallcnn"}) == \
        "`runs/a/model.pt`"


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47e): vsent.reports.runner mutants the suite missed


def _report(**header: typing.Any) -> dict:
    """A minimal report as runner.reproduce writes it: no tables, one sub-run."""
    h = {"command": "vsent reproduce x", "date": "2026-01-01", "seconds_this_session": 90.0,
         "seconds_all_sessions": 600.0, "quick": False, "analysed_run": None,
         "machine": {"platform": "Linux", "cpu": None, "cpu_capability": None, "cpus": 2,
                     "torch_threads": 2, "cuda": None},
         "versions": {"vsent": "1.0", "torch": "2.0", "git_commit": None},
         "data": "tw", "subset": None, "folds": None, **header}
    return {"title": "T", "header": h, "tables": [], "notes": [], "weights_failures": [],
            "weights": {"table1": {"model": "smallcnn", "requested": "imagenet",
                                   "used": "random"}},
            "steps": {"table1": {"status": "done", "seconds": 599.6,
                                 "git_commit": "0123456789abc", "cpu": None}}}


def test_the_report_header_says_what_was_asked_for_measured_and_on_what_machine():
    """The weights line says which were asked for where others were used; no GPU reads
    "CUDA: none"; minutes, an unrecorded subset and folds, versions not recorded left out;
    a sub-run's seconds whole and its commit short."""
    from vsent.reports import render

    md = render.report_markdown(_report())
    assert "- weights: random init, not comparable to the paper (asked for imagenet): " \
           "`table1`" in md
    assert "- machine: Linux, 2 CPUs, 2 torch threads, CUDA: none\n" in md  # mut51c R33
    assert "- date: 2026-01-01; time spent: 1.5 min this session, 10.0 min in all sub-runs" in md
    assert "- versions: vsent 1.0, torch 2.0\n" in md
    assert "- data: `tw` (subset see tables, folds of the run)" in md
    assert "- mode: full (the paper recipe)" in md and "Quick mode" not in md
    assert "| `table1` | done | 600 | 0123456 |  |" in md
    quick = render.report_markdown({**_report(quick=True),
                                    "weights_failures": ["offline", "no cache"]})
    assert "- mode: quick (CPU-sized)" in quick and "> **Quick mode**" in quick
    assert "> **Pretrained weights were not available" in quick and \
        "> Reason: `offline`\n> Reason: `no cache`\n" in quick  # mut54c S36: every reason
    # mut51c R20: a sub-run of an older session asked for nothing recorded: no "(asked for)"
    older = {"table1": {"model": "caffenet", "requested": None, "used": "imagenet"}}
    assert "- weights: ImageNet (caffenet): `table1`\n" in \
        render.report_markdown({**_report(), "weights": older})
    # every note is listed, the last too (mut54c S41)
    noted = render.report_markdown({**_report(), "notes": ["first note", "last note"]})
    assert "## Notes and deviations from the paper\n\n- first note\n- last note\n" in noted
    # mut54c S37: every sub-run of one weights label is named after it, not the first alone
    older["layers"] = older["table1"]
    assert "- weights: ImageNet (caffenet): `table1`, `layers`\n" in \
        render.report_markdown({**_report(), "weights": older})
    # mut60c2 N15: weights used as asked for: no "(asked for)" either
    got = {"table1": {"model": "caffenet", "requested": "imagenet", "used": "imagenet"}}
    assert "- weights: ImageNet (caffenet): `table1`\n" in \
        render.report_markdown({**_report(), "weights": got})
    # mut57e P36: the report's figures are shown under their own heading, none without figures
    assert "## Figures" not in md
    assert "## Figures\n\n![campos2015.png](campos2015.png)\n" in \
        render.report_markdown({**_report(), "figures": ["campos2015.png"]})
    # mut59e E35: a report of no networks' weights (an analysed run) says so, not "- weights: "
    assert "- weights: n/a\n" in render.report_markdown({**_report(), "weights": {}})


def test_imagenet_weights_are_tried_once_per_model_whatever_its_options(tmp_path, monkeypatch):
    """An offline download is tried once per model: each further sub-run of that network
    reuses the answer (each try may wait for a network timeout)."""
    tried = []

    def create(name: str, *, init: str = "random", **kw: typing.Any) -> None:
        tried.append((name, init))
        raise WeightsError("offline")

    monkeypatch.setattr(runner, "create_model", create)
    session = _bare_session(tmp_path)
    for kwargs in ({"widths": [4, 8]}, {"widths": [8]}, {"widths": [4, 8]}):
        assert session.weights_failure("smallcnn", "imagenet", kwargs) == "offline"
    assert tried == [("smallcnn", "imagenet")]


def test_a_weights_file_is_loaded_once_per_network_however_many_sub_runs_build_it(
        monkeypatch):
    """check_init_file loads each (model, file, options) once: the plan's sub-runs share it."""
    loaded = []
    monkeypatch.setattr(runner, "create_model", lambda *a, **kw: loaded.append(a))
    cfgs = [types.SimpleNamespace(model="smallcnn", init="w.pt", model_kwargs={"widths": [4, 8]})
            for _ in range(3)]
    runner.check_init_file(cfgs)
    assert loaded == [("smallcnn",)]
    # ImageNet weights are not a file to check: offline they fall back to random later
    runner.check_init_file([types.SimpleNamespace(model="smallcnn", init="imagenet",
                                                  model_kwargs={})])
    assert loaded == [("smallcnn",)]


def test_notes_count_the_cells_not_run_and_not_recorded_and_name_out_of_date_sub_runs(
        tmp_path):
    from vsent.reports import render

    def row(run_dir: str | None, missing: str | None) -> dict:
        return {"paper": None, "ours": None, "run_dir": run_dir, "missing": missing}

    rows = [row("a", render.NOT_RUN), row("a", render.NOT_RUN), row("b", render.NOT_RECORDED),
            row(None, None)]  # a row vsent does not reproduce is neither
    session = types.SimpleNamespace(steps={"a": {"status": runner.OUT_OF_DATE},
                                           "b": {"status": "done"}})
    plan = types.SimpleNamespace(reductions=["fewer epochs"])

    class Noted(runner.Paper):  # (not registered: _notes takes the paper itself)
        def notes(self, plan: typing.Any, session: typing.Any,
                  report: typing.Any) -> list[str]:
            return ["the paper's own note"]

    notes = runner._notes(Noted(), plan, session,
                          {"tables": [{"rows": rows}], "weights_failures": []})
    assert notes[0] == "Reduced for a CPU (--quick): fewer epochs."
    assert notes[1].startswith("`a`: done before, out of date now") and \
        notes[1].endswith("run it again with --resume --only a.")
    assert notes[2].startswith("2 cells read 'not run': their sub-run is not part of this plan")
    assert notes[3].startswith("1 cells read 'not recorded': their sub-run wrote its file")
    assert notes[4:] == ["the paper's own note"]


def test_command_line_names_a_seed_other_than_the_default():
    line = runner.command_line("campos2015", quick=False, out="o", data="d", init=None,
                               device="auto", resume=False, seed=3)
    assert line == "vsent reproduce campos2015 --out o --data d --seed 3"
    assert "--seed" not in runner.command_line("campos2015", quick=False, out="o", data="d",
                                               init=None, device="auto", resume=False)


def test_a_failed_step_is_recorded_and_raised_and_a_done_one_outside_only_is_reused(tmp_path):
    """mut57e P40, P43, P44: a sub-run's error stops the reproduction (raised) and steps.json
    says "failed", not "interrupted"; a finished sub-run left out by --only is reused as done,
    not reported as skipped."""
    session = _bare_session(tmp_path, only=["b"])

    def fails():
        raise VsentError("no model")

    with pytest.raises(VsentError, match="no model"):
        session.step("b", lambda: False, fails)
    assert session.steps["b"]["status"] == "failed"

    def stopped() -> None:
        raise KeyboardInterrupt

    # mut59e E94: a sub-run stopped by the user (Ctrl-C) is "interrupted", not "failed"
    with pytest.raises(KeyboardInterrupt):
        session.step("b", lambda: False, stopped)
    assert session.steps["b"]["status"] == "interrupted"
    assert session.step("a", lambda: True, lambda: pytest.fail("ran")) is True
    assert session.steps["a"]["status"] == "done"


def test_a_step_whose_work_did_not_finish_is_not_done_and_random_weights_are_not_tried(
        tmp_path, monkeypatch):
    """step() says whether the sub-run is done now: one whose work returned without its
    results is "interrupted" and its rows must read "not run". Random weights need no try."""
    session = _bare_session(tmp_path)
    assert session.step("x", lambda: False, lambda: None) is False
    assert session.steps["x"]["status"] == "interrupted"
    built = []
    monkeypatch.setattr(runner, "create_model", lambda *a, **kw: built.append(a))
    cfg = types.SimpleNamespace(model="smallcnn", init="random", model_kwargs={})
    assert session.resolve_init("x", cfg) is cfg and built == []
    assert session.weights["x"]["used"] == "random" and session.weights["x"]["reason"] is None
    # a sub-run an older session started: its weights are read from its config.json
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps({"model": "m", "init": "imagenet"}))
    session.record_weights("old", tmp_path / "old")
    assert session.weights["old"] == {"model": "m", "requested": None, "used": "imagenet",
                                      "reason": None}
    # mut57e P50: a sub-run this session recorded keeps its entry, not its config.json's
    session.record_weights("x", tmp_path / "old")
    assert (session.weights["x"]["used"], session.weights["x"]["requested"]) == \
        ("random", "random")


def test_a_weights_file_that_does_not_load_is_refused_not_replaced_by_random(tmp_path, monkeypatch):
    """mut57e P49: only ImageNet weights that cannot be had fall back to random ones; a weights
    file that does not load is a one-line user error, and nothing is recorded as used."""
    session = _bare_session(tmp_path)

    def refuse(*args, **kwargs):
        raise WeightsError("w.pt: not a vsent checkpoint")

    monkeypatch.setattr(runner, "create_model", refuse)
    cfg = types.SimpleNamespace(model="smallcnn", init="w.pt", model_kwargs={})
    with pytest.raises(VsentError, match=r"^--init w\.pt: not a vsent checkpoint$"):
        session.resolve_init("x", cfg)
    assert "x" not in session.weights


def test_a_damaged_k_sweep_is_an_error_not_not_recorded(tmp_path):
    """mut47e R06: a K-sweep value (an integer key) read a damaged k_sweep.json as "not
    recorded"; only an absent ranking or a K beyond the sweep is."""
    from vsent.reports import render

    sweep = tmp_path / "k_sweep.json"
    sweep.write_text(json.dumps({"ar": {"mean": [0.5, 0.75], "std": [0.1, 0.2]}}))
    assert render.lookup(tmp_path, "k_sweep.json", ["ar", 1]) == {"mean": 0.75, "std": 0.2}
    assert render.lookup(tmp_path, "k_sweep.json", ["ar", 2]) is None  # K beyond the sweep
    assert render.lookup(tmp_path, "k_sweep.json", ["objectness", 0]) is None  # not there
    for text, message in (
            ('{"ar": [0.5, 0.75]}', "ar is not an object (it holds [0.5, 0.75])"),
            ('{"ar": {"mean": "x"}}', 'ar.mean is not a list of means (it holds "x")'),
            ('{"ar": {"mean": ["x"]}}', 'ar.0 is not a mean and std (it holds {"mean": "x"})'),
            # mut51c R38: a long value is quoted to its first 60 characters
            (json.dumps({"ar": [0.5] * 21}),
             f"ar is not an object (it holds {json.dumps([0.5] * 21)[:60]})")):
        sweep.write_text(text)
        with pytest.raises(VsentError, match=re.escape(f"{sweep}: {message}")):
            render.lookup(tmp_path, "k_sweep.json", ["ar", 0])
    # mut51c R28: the last K (-1, as value_at reads it) of a damaged sweep is damage too
    sweep.write_text('{"ar": {"mean": ["x"]}}')
    with pytest.raises(VsentError, match=re.escape(f"{sweep}: ar.-1 is not a mean and std")):
        render.lookup(tmp_path, "k_sweep.json", ["ar", -1])


# mutation round 47 (main session): render/runner mutants mut47e left unrun


def test_a_path_is_shown_relative_to_the_report_inside_it_else_absolute(tmp_path,
                                                                        monkeypatch):
    """render.relative resolves both sides: ``out/a/../b`` is ``b``, and a relative path
    outside the report is shown absolute (the report may be read from anywhere)."""
    from vsent.reports import render

    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    assert render.relative(out, out / "a" / ".." / "b") == "b"
    monkeypatch.chdir(tmp_path)
    assert render.relative(out, Path("runs") / "x") == str(tmp_path / "runs" / "x")


def test_labels_of_the_weights_and_the_cpu_name_what_they_say():
    from vsent.reports import render

    assert render.weights_label({"used": "imagenet", "model": "caffenet"}) == \
        "ImageNet (caffenet)"
    assert render.cpu_label({"cpu": "AMD EPYC"}) == "AMD EPYC"  # no capability: no "()"
    assert render.cpu_label({"cpu": "AMD EPYC", "cpu_capability": "AVX2"}) == "AMD EPYC (AVX2)"
    assert render.cpu_label({"cpu_capability": "AVX2"}) == "CPU (AVX2)"


def test_a_tables_note_stands_under_its_heading(tmp_path):
    from vsent.reports import render

    row = render.make_row(["gch"], None, out=tmp_path, run_dir=None)
    md = render.table_markdown(render.make_table("t", "T", ["method"], [row], note="Why."))
    assert md[:4] == ["## T", "", "Why.", ""]
    # mut51c R37: a row vsent does not reproduce has an empty run dir cell, not `None`
    assert md[6] == f"| gch | {R.NOT_IN_PAPER} | {R.NOT_REPRODUCED} |  |  |"


def test_a_wide_tables_weights_are_said_once_each(tmp_path):
    """Two reproduced cells of one line with the same weights: "w", not "w; w"."""
    from vsent.reports import render

    vgg = papers.SUN2016_TABLE1["vggnet"]
    rows = [render.make_row(["vggnet", s], vgg[s], out=tmp_path, run_dir=tmp_path / s,
                            file="k_sweep.json", key=["ar", 0], weights="w") for s in
            ("five", "four")]
    wide = {"by": 1, "values": ["five", "four"], "labels": ["Twitter I 5", "Twitter I 4"]}
    md = render.table_markdown(render.make_table("t", "T", ["method", "subset"], rows,
                                                 unit="percent", wide=wide))
    assert md[4].endswith("| w | `five`, `four` |"), md[4]
    # mut54c S35: two cells of one line read from one sub-run name its folder once
    rows = [render.make_row(["vggnet", s], vgg[s], out=tmp_path, run_dir=tmp_path / "all",
                            file="k_sweep.json", key=["ar", 0], weights="w") for s in
            ("five", "four")]
    md = render.table_markdown(render.make_table("t", "T", ["method", "subset"], rows,
                                                 unit="percent", wide=wide))
    assert md[4].endswith("| w | `all` |"), md[4]


def test_a_paper_without_a_name_is_refused_when_registered():
    with pytest.raises(TypeError, match="Nameless: a registered paper needs a name"):
        @runner.register_paper
        class Nameless(runner.Paper):
            name = ""


def test_weights_failures_list_only_the_weights_that_failed(tmp_path, monkeypatch):
    """mut47e U36: report["weights_failures"] holds the reasons of the sub-runs whose weights
    did not load, each once, not a None for each that loaded (or was random by request)."""

    @dataclasses.dataclass
    class Plan:
        paper: typing.ClassVar[str] = "test2098"
        template: None = None
        reductions: list = dataclasses.field(default_factory=list)

    @dataclasses.dataclass
    class Cfg:  # (resolve_init replaces a failed init with random: a dataclass)
        init: str
        model: str = "smallcnn"
        model_kwargs: dict = dataclasses.field(default_factory=dict)

    def create(name, *, init="random", **kw):
        if init == "imagenet":
            raise WeightsError("no network here")

    monkeypatch.setattr(runner, "create_model", create)
    try:
        @runner.register_paper
        class Test2098(runner.Paper):
            name = "test2098"
            title = "Test et al. 2098"

            def steps(self, plan):
                return []

            def run(self, plan, s):
                for name, init in (("a", "random"), ("b", "imagenet"), ("c", "w.pt"),
                                   ("d", "imagenet")):
                    s.resolve_init(name, Cfg(init))
                return {"tables": [], "figures": []}

        report = R.reproduce(Plan(), tmp_path / "o", progress=False)
        # two sub-runs that failed for one reason list it once (mut57e P57)
        assert report["weights_failures"] == ["no network here"]
        assert [report["weights"][n]["reason"] for n in "abcd"] == \
            [None, "no network here", None, "no network here"]
    finally:
        R.PAPERS.pop("test2098", None)


# mutation round 49 (mut49c): campos2015 / sun2016 / you2015 mutants the suite missed


def test_sun2016_sets_each_subsets_published_value_beside_its_column_in_the_papers_order(
        tmp_path):
    """mut49c S12, S13, S14: the subsets are the paper's columns in its order (five, four,
    three) whatever the plan's order, and each row's cell of a subset holds the paper's value
    of that subset, also on the rows vsent does not reproduce."""
    from vsent.reports import render, sun2016

    plan = R.make_plan("sun2016", "d", quick=True, device="cpu")
    plan = dataclasses.replace(plan, subsets=("three", "five"))
    report = sun2016.Sun2016().run(plan, _nothing_run_session(tmp_path, {}))
    table = report["tables"][0]
    assert table["wide"]["values"] == ["five", "three"]
    assert table["wide"]["labels"] == ["Twitter I 5", "Twitter I 3"]  # (mut52e S12)
    assert table["title"] == "Table 1: Twitter I five / three agree, accuracy"
    assert [r["cells"][2] for r in table["rows"]] == ["five", "three"] * len(papers.SUN2016_ROWS)
    for r in table["rows"]:
        row = next(k for k, label in papers.SUN2016_ROWS.items() if label == r["cells"][0])
        pub = papers.SUN2016_TABLE1[row].get(r["cells"][2])
        assert r["paper"] == render.published_dict(pub), r["cells"]
    assert any(r["run_dir"] is None and r["paper"]["mean"] is not None
               for r in table["rows"])  # a row not reproduced keeps the paper's number
    # mut60c2 S44, S45: printed with a paper / ours pair per subset, in percent as the paper
    md = "\n".join(render.table_markdown(table))
    assert " | Twitter I 5: paper | Twitter I 5: ours | Twitter I 3: paper | Twitter I 3: ours " \
           "| weights | run dirs |" in md
    assert "| VGGNet | whole image only | 83.51 % | not run | 75.36 % | not run |" in md


def test_sun2016_recipe_and_column_of_a_run_with_few_records(tmp_path):
    """mut49c S34, S35, S36, S37: the analysed run's recipe leaves out the image size and the
    preset it did not record (no "None px", no "preset None"); a run without a subset read
    five-agree (load_dataset's default); a CSV data set is named as not Twitter I."""
    from vsent.reports import sun2016

    tw = tmp_path / "tw"
    (tw / "images").mkdir(parents=True)
    cfg = {"data": str(tw), "model": "smallcnn", "init": "random", "train": {"epochs": 2},
           "folds": "stratified"}
    assert sun2016._run_subset(cfg) == "five"
    # mut56e S2: a subset recorded as null (no subset given) reads five-agree too
    assert sun2016._run_subset({**cfg, "subset": None}) == "five"
    assert sun2016._recipe(cfg) == ("smallcnn from random weights, 2 epochs, subset five, "
                                    "folds stratified")
    # mut60c S31, S32: model_kwargs or train recorded as null is read as none (no
    # AttributeError)
    assert sun2016._recipe({**cfg, "model_kwargs": None}) == sun2016._recipe(cfg)
    assert sun2016._recipe({**cfg, "train": None}).endswith(", subset five, folds stratified")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n")
    assert sun2016._run_subset({"data": str(csv), "subset": "five"}) == \
        "labels.csv (not Twitter I)"


def test_you2015_rows_name_their_own_run_dir_and_weights(tmp_path):
    """mut49c Y13, Y14, Y16, Y24: each baseline row reads its subset's and feature's folder,
    the weak-label row the weights of its own sub-run (not the random-weights CNN's), and the
    CNN row says it had no weakly labelled pre-training; its published cell is You et al.'s
    five-agree value on five-agree only (the other subsets' are not available)."""
    from vsent.reports import render

    session = _nothing_run_session(tmp_path, {})
    session.weights_label = lambda name: f"weights of {name}"
    plan = R.make_plan("you2015", "data", quick=True, device="cpu")
    acc, _ = you2015.You2015().run(plan, session)["tables"]
    by_cells = {tuple(r["cells"][:2]): r for r in acc["rows"]}
    assert by_cells[("GCH+BoW", "four")]["run_dir"] == "baselines/four/gch+bow"
    assert by_cells[("always positive", "three")]["run_dir"] == \
        "baselines/three/always-positive"
    weak = by_cells[(you2015.WEAK_LABEL, "five")]
    assert (weak["run_dir"], weak["weights"]) == ("pcnn-weak-five", "weights of pcnn-weak-five")
    cnn = by_cells[("2CONV-4FC from random weights, Twitter only", "four")]
    assert (cnn["run_dir"], cnn["weights"]) == (
        "pcnn-four", render.RANDOM_LABEL + " (no weakly labelled pre-training)")
    assert cnn["paper"] == render.published_dict(papers.NOT_AVAILABLE)


def test_campos_layer_probes_are_given_the_plans_probe_device_and_keep_features(
        tmp_path, monkeypatch):
    """mut60c A38: the layers sub-run probes Table 1's run with the plan's probe settings,
    device and keep_features (a plan that keeps the activations on disk gets them kept)."""

    class Ran(Exception):
        pass

    given = []

    def layer_probes(cfg: object, out: Path, progress: bool) -> None:
        given.append(cfg)
        raise Ran

    monkeypatch.setattr(campos2015, "layer_probes", layer_probes)
    session = _nothing_run_session(tmp_path, {})
    session.step = lambda name, done, do: do()
    plan = dataclasses.replace(R.make_plan("campos2015", "d", quick=True, device="cpu"),
                               keep_features=True)
    with pytest.raises(Ran):
        campos2015.Campos2015().run(plan, session)
    (cfg,) = given
    assert (cfg.keep_features, cfg.probe, cfg.device) == (True, plan.probe, "cpu")
    assert cfg.run == str((tmp_path / "table1").resolve())


def test_campos_rows_of_a_plan_nothing_of_which_ran_set_each_published_cell_beside_its_own(
        tmp_path):
    """mut49c C12, C13, C17, C21-C25: Table 1's two rows read and set beside the paper's
    centre crop and 10-crop values each; Table 2's probes (none run: the paper's layers)
    beside the paper's value of that layer and classifier; Tables 3-4 list every architecture
    of the paper (labelled with its surgery) with its own published cell per evaluation, those
    the plan does not run "not run" (an old folder of that name is not read); a variant of the
    plan that is not in the paper gets its own table, both evaluations."""
    from vsent.reports import render

    plan = R.make_plan("campos2015", "d", quick=True, device="cpu")
    plan = dataclasses.replace(plan, variants={"fc7-2": {"arch": "fc7-2"},
                                               "mine": {"arch": "fc7-2", "dropout": 0.1}})
    old = tmp_path / "fc6-2"  # not in this plan: what its folder holds is not this report's
    old.mkdir()
    (old / "summary.json").write_text(json.dumps(
        {e: {"accuracy": {"mean": 0.5, "std": 0.1}} for e in campos2015.EVALS}))
    # mut60c A40: old probes (of fold models trained again since) are not this plan's
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "layers.json").write_text(json.dumps(
        {layer: {clf: {"mean": 0.9, "std": 0.01} for clf in ("svm", "softmax")}
         for layer in papers.CAMPOS2015_TABLE2_LAYERS}))
    report = campos2015.Campos2015().run(plan, _nothing_run_session(tmp_path, {}))
    tables = {t["id"]: t for t in report["tables"]}
    assert list(tables) == ["table1", "table2", "table3", "table4", "variants"]
    t1 = tables["table1"]["rows"]
    assert [r["key"] for r in t1] == [["center", "accuracy"], ["ten_crop", "accuracy"]]
    assert [r["paper"] for r in t1] == [render.published_dict(papers.CAMPOS2015_TABLE1[e])
                                        for e in ("center", "ten_crop")]
    assert plan.probe.classifiers == ("svm", "softmax")
    t2 = tables["table2"]["rows"]
    assert [r["cells"] for r in t2] == [[layer, clf] for layer in papers.CAMPOS2015_TABLE2_LAYERS
                                        for clf in ("linear SVM", "softmax")]
    assert [r["key"] for r in t2] == [[layer, clf] for layer in papers.CAMPOS2015_TABLE2_LAYERS
                                      for clf in ("svm", "softmax")]  # (mut52e C11)
    assert [r["paper"] for r in t2] == [
        render.published_dict(papers.CAMPOS2015_TABLE2.get(layer, {}).get(clf))
        for layer in papers.CAMPOS2015_TABLE2_LAYERS for clf in ("svm", "softmax")]
    assert all(r["ours"] is None and r["missing"] == R.NOT_RUN for r in t2)
    for tid, published in (("table3", papers.CAMPOS2015_TABLE3),
                           ("table4", papers.CAMPOS2015_TABLE4)):
        rows = tables[tid]["rows"]
        assert [r["cells"] for r in rows] == [
            [campos2015.CAMPOS_VARIANT_LABELS[arch], label] for arch in published
            for label in ("centre crop", "10-crop")]
        assert [r["paper"] for r in rows] == [render.published_dict(by_eval[e])
                                              for by_eval in published.values()
                                              for e in ("center", "ten_crop")]
        assert all(r["ours"] is None and r["missing"] == R.NOT_RUN for r in rows)
        assert [r["run_dir"] for r in rows] == [a for a in published for _ in "ce"]  # mut52e C17
    assert campos2015.CAMPOS_VARIANT_LABELS["fc7-2"].startswith("fc7-2 (")
    assert [(r["cells"], r["run_dir"], r["paper"]) for r in tables["variants"]["rows"]] == [
        (["mine", "centre crop"], "mine", None), (["mine", "10-crop"], "mine", None)]


def test_sun2016_rows_of_our_own_methods_read_each_methods_accuracy(tmp_path):
    """mut49c S18, S19: a method of ours without a row in the paper (random, sentiment, ...) is
    listed when the regions table holds it, at the plan's K, with its own accuracy (not the
    AR row's)."""
    from vsent.analyses.regions_run import METHODS
    from vsent.reports import sun2016

    plan = R.make_plan("sun2016", "d", quick=True, device="cpu")
    plan = dataclasses.replace(plan, subsets=("five",))
    session = _nothing_run_session(tmp_path, {})
    session.step = lambda name, done, do: True  # the regions sub-run is done
    (tmp_path / "regions-five").mkdir()
    results = {m: {"accuracy": {"mean": 0.5 + i / 100, "std": 0.01}}
               for i, m in enumerate(("global", "ar", "random", "sentiment"))}
    (tmp_path / "regions-five" / "table1.json").write_text(json.dumps({"results": results}))
    sweep = {m: {"mean": [0.6 + i / 100, 0.7], "std": [0.02, 0.03]}
             for i, m in enumerate(("objectness", "sentiment", "ar"))}
    (tmp_path / "regions-five" / "k_sweep.json").write_text(json.dumps(
        {"k": [1, 2], "global": {"mean": 0.5, "std": 0.01}, **sweep}))
    table = sun2016.Sun2016().run(plan, session)["tables"][0]
    # mut52e S01-S04: each paper row reads its own counterpart (K = 1 from the sweep's first
    # point, the best-K row from the table at the plan's K)
    paper_rows = {r["cells"][0]: r["ours"] and r["ours"]["mean"] for r in table["rows"]}
    assert [paper_rows[papers.SUN2016_ROWS[row]] for row in (
        "vggnet", "ft_obj_lf_k1", "ft_senti_lf_k1", "ft_obj_senti_lf_k1",
        "ft_obj_senti_lf_best", "sentibank", "vggnet_ft")] == [
            0.5, 0.6, 0.61, 0.62, 0.51, None, None]
    ours = {r["cells"][0]: r for r in table["rows"] if r["cells"][0].startswith("vsent: ")}
    assert list(ours) == ["vsent: random", "vsent: sentiment"]
    for method, mean in (("random", 0.52), ("sentiment", 0.53)):
        row = ours[f"vsent: {method}"]
        assert row["cells"][1:] == [f"{METHODS[method]} (K = {plan.regions.k})", "five"]
        assert (row["key"], row["ours"]["mean"], row["paper"]) == (
            ["results", method, "accuracy"], mean, None)


def test_sun2016_cites_an_analysed_run_given_relative_by_its_absolute_path(tmp_path,
                                                                         monkeypatch):
    """mut49c S24: the report cites the run it analysed by a path that still holds when read
    from elsewhere: ``--run run`` (relative to the working folder) is cited absolute."""
    from vsent.reports import sun2016

    tw = tmp_path / "tw"
    (tw / "images").mkdir(parents=True)
    _crossval_record(tmp_path, command="crossval", data=str(tw), subset="four",
                     model="smallcnn", init="random")
    monkeypatch.chdir(tmp_path)
    plan = R.make_plan("sun2016", "unused", quick=True, device="cpu", run="run")
    out = tmp_path / "out"
    out.mkdir()
    session = _nothing_run_session(out, {})
    session.save = lambda: None
    report = sun2016.Sun2016().run(plan, session)
    assert report["run"] == str(tmp_path.resolve() / "run")
    assert {r["cells"][2] for r in report["tables"][0]["rows"]} == {"four"}


def test_sun2016_titles_a_run_on_other_data_by_its_folder_not_twitter_i(tmp_path):
    """mut56e S4: the table of a run on a positive/ + negative/ folder is titled by that
    folder, not "Twitter I ... agree" (only Twitter I subsets make that title)."""
    from vsent.reports import sun2016

    mine = tmp_path / "mine"
    for cls in ("positive", "negative"):
        (mine / cls).mkdir(parents=True)
    run = _crossval_record(tmp_path, command="crossval", data=str(mine), model="smallcnn",
                           init="random")
    plan = R.make_plan("sun2016", "unused", quick=True, device="cpu", run=str(run))
    out = tmp_path / "out"
    out.mkdir()
    session = _nothing_run_session(out, {})
    session.save = lambda: None
    report = sun2016.Sun2016().run(plan, session)
    assert report["tables"][0]["title"] == "Table 1: mine (not Twitter I), accuracy"
    # mut58c S17: the analysed run's weights are those its record says it started from
    assert session.weights["run"] == {"model": "smallcnn", "requested": None, "used": "random",
                                      "reason": None}
    assert report["model"] == "smallcnn from scratch, not VGGNet"


def test_you2015_lists_a_plans_extra_features_before_always_positive_and_prf_in_order(
        tmp_path):
    """mut49c Y11, Y15, Y19, Y20: a feature set the plan adds to the paper's four is a row of
    ours (no published value) after them and before always positive; the weak-label row has
    no published value beside it (it is not You et al.'s PCNN); the second table lists
    precision, then recall, then F1."""
    session = _nothing_run_session(tmp_path, {})
    plan = R.make_plan("you2015", "data", quick=True, device="cpu")
    plan = dataclasses.replace(plan, baselines={**plan.baselines,
                                                "features": (*you2015.YOU_FEATURES, "fv")})
    acc, prf = you2015.You2015().run(plan, session)["tables"]
    five = [r for r in acc["rows"] if r["cells"][1] == "five"]
    assert [r["cells"][0] for r in five[:6]] == ["GCH", "LCH", "GCH+BoW", "LCH+BoW", "SIFT FV",
                                                 "always positive"]
    assert (five[4]["run_dir"], five[4]["paper"]) == ("baselines/five/fv", None)
    weak = [r for r in acc["rows"] + prf["rows"] if r["cells"][0] == you2015.WEAK_LABEL]
    assert len(weak) == 2 * 4 and all(r["paper"] is None for r in weak)
    metrics = [r["cells"][2] for r in prf["rows"]]
    assert metrics == sorted(metrics, key=["precision", "recall", "f1"].index)


def test_sun2016_k_sweep_draws_the_papers_k1_and_best_k_ar_points_in_percent(tmp_path,
                                                                           monkeypatch):
    """mut49c S39, S40: the published points beside the sweep are the paper's AR late fusion
    at K = 1 and at its best K (not the objectness row), and ours is drawn in percent as
    they are."""
    from vsent.reports import render, sun2016

    (tmp_path / "five").mkdir()
    curve = {"mean": [0.5, 0.6, 0.7], "std": [0.01] * 3}
    (tmp_path / "five" / "k_sweep.json").write_text(json.dumps(
        {"k": [1, 2, 3], "global": {"mean": 0.4, "std": 0.0}, "ar": curve}))
    lines = {}
    monkeypatch.setattr(render, "save_report_figure", lambda fig, out, name: lines.update(
        {ln.get_label(): ln.get_xydata().tolist() for ln in fig.axes[0].get_lines()}))
    sun2016._figure(tmp_path, {"five": tmp_path / "five"})
    k1 = papers.SUN2016_TABLE1["ft_obj_senti_lf_k1"]["five"]
    best = papers.SUN2016_TABLE1["ft_obj_senti_lf_best"]["five"]
    assert lines["published, K = 1, five-agree"] == [[1, pytest.approx(100 * k1.mean)]]
    assert lines["published, best K, five-agree"] == [[best.k, pytest.approx(100 * best.mean)]]
    assert lines["ours, ar, five-agree"] == [[1, 50], [2, 60], [3, 70]]


def test_you2015_figure_says_why_only_where_a_method_has_no_bar_at_all(tmp_path, monkeypatch):
    """mut49c Y33: a method with a bar on one subset (not run on another) gets no "why" text;
    only a method without any bar says why (as campos2015.png)."""
    from matplotlib.axes import Axes

    texts: list[str] = []
    real_text = Axes.text
    monkeypatch.setattr(Axes, "text", lambda self, x, y, s, *a, **k: texts.append(s) or
                        real_text(self, x, y, s, *a, **k))

    def row(method, sub, ours):
        return {"cells": [method, sub, "accuracy"], "paper": None, "ours": ours,
                "missing": None if ours else R.NOT_RUN, "run_dir": "x"}

    table = {"rows": [row("GCH", "five", {"mean": 0.7, "std": 0.01}), row("GCH", "three", None),
                      row("LCH", "five", None), row("LCH", "three", None)]}
    you2015._figure(tmp_path, table, ("five", "three"))
    assert texts == [R.NOT_RUN]
