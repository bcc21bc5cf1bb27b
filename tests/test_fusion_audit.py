"""vsent fuse (audit_ens23): the early rule's fold models, the run's data record, the
config's record of the hand-crafted side, a damaged stored summary, the early rule's help."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from conftest import save_image
from test_fusion import _fake_run
from vsent.analyses.fusion_run import fuse_run
from vsent.cli import main
from vsent.data import load_dataset
from vsent.errors import VsentError


def _finished_run(root, data, *, fold_models: bool = False, data_record: bool = False):
    """A finished crossval run as `vsent fuse` reads it, P(positive) 0.5 everywhere, with a
    fold-recording model per fold and the data record when asked."""
    ds = load_dataset(data, "five", validate=False)
    run = _fake_run(root, data, dict.fromkeys(ds.names, 0.5))
    (run / "summary.json").write_text("{}")
    if data_record:
        (run / "data.json").write_text(json.dumps(ds.fingerprint()))
    if fold_models:
        import torch

        from vsent.models import create_model, save_checkpoint

        for k in range(1, 6):
            torch.manual_seed(k)
            (run / f"fold{k}").mkdir()
            save_checkpoint(run / f"fold{k}" / "model.pt",
                            create_model("smallcnn", widths=(4, 8)), fold=k)
    return run


def test_the_early_rule_refuses_a_model_of_another_fold(twitter_like, tmp_path, capsys,
                                                        monkeypatch):
    """fold<k>/model.pt was loaded whatever fold it records: a swapped one has been trained
    on fold k's test images (#2). Its config records no weight, which the rule has none of,
    and the hand-crafted settings and seed (#11)."""
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = _finished_run(tmp_path / "run", twitter_like, fold_models=True)
    out = tmp_path / "early"
    argv = ["fuse", str(run), "--features", "gch", "--rule", "early", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["rule"] == "early" and "weight" not in config
    assert config["seed"] == 0 and config["hand_crafted"]["histogram_map"] == "none"
    capsys.readouterr()
    one, two = run / "fold1" / "model.pt", run / "fold2" / "model.pt"
    shutil.move(one, tmp_path / "m.pt")
    shutil.move(two, one)
    shutil.move(tmp_path / "m.pt", two)
    assert main([*argv, "--overwrite"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"vsent: error: {one}: checkpoint of fold 2, expected fold 1 (a model trained on "
        "another fold has seen this fold's test images)"]


def test_fuse_refuses_a_run_whose_images_changed_since_it_was_trained(make_twitter_like,
                                                                      tmp_path, capsys,
                                                                      monkeypatch):
    """An image replaced after training: the CNN's probability was of the old one, the
    hand-crafted features would be of the new one (#3)."""
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    data = make_twitter_like()
    run = _finished_run(tmp_path / "run", data, data_record=True)
    image = load_dataset(data, "five", validate=False).paths[0]
    before = image.stat().st_size
    save_image(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8), image)
    assert image.stat().st_size != before  # the record holds names, labels and sizes
    message = f"{data}: its images or labels changed since {run} was trained on them"
    with pytest.raises(VsentError, match=re.escape(message)):
        fuse_run(run, "gch")
    assert main(["fuse", str(run), "--features", "gch", "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {message}")
    assert err[0].endswith("restore them, or train the run again (crossval --overwrite)")


def test_the_fusions_config_records_the_hand_crafted_settings_and_seed(twitter_like, tmp_path,
                                                                        capsys, monkeypatch):
    """The baselines record their settings; fuse recorded neither those nor the seed (#11).
    A fusion made before they were recorded stays finished; one made with other settings is
    refused."""
    from dataclasses import asdict

    from vsent.analyses.baselines import BaselineConfig

    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = _finished_run(tmp_path / "run", twitter_like)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "seed": 7}))
    argv = ["fuse", str(run), "--features", "gch", "--no-progress"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    out = run / "fuse" / "gch-mean-w0.5-logistic"
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 7 and config["weight"] == 0.5
    assert config["hand_crafted"] == json.loads(json.dumps(asdict(BaselineConfig())))
    # a config.json as fuse wrote it before: still the finished fusion, not refused
    old = {k: v for k, v in config.items() if k not in ("hand_crafted", "seed")}
    (out / "config.json").write_text(json.dumps(old))
    assert main(argv) == 0 and capsys.readouterr().out == first
    # a recorded setting that differs is refused, naming it
    (out / "config.json").write_text(json.dumps(
        {**config, "hand_crafted": {**config["hand_crafted"], "k": 100}}))
    assert main(argv) == 2
    assert "already holds a run made with other hand_crafted.k" in capsys.readouterr().err


def test_a_damaged_data_record_of_the_run_read_names_what_mends_it(twitter_like, tmp_path,
                                                                     capsys, monkeypatch):
    """robust36 #8: fuse (as layers and regions) read a run whose data.json is damaged and
    said "... or pass --overwrite to start again": fuse's --overwrite remakes the fusion, not
    the run's record. The remedy is the run's own."""
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = _finished_run(tmp_path / "run", twitter_like, data_record=True)
    (run / "data.json").write_text("{cut")
    assert main(["fuse", str(run), "--features", "gch", "--no-progress", "--overwrite"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {run / 'data.json'}: not "
                                               "readable JSON (")
    assert err[0].endswith("; restore it from a copy of the run, or train the run again "
                           "(crossval --overwrite)")


def test_a_run_config_whose_seed_is_no_integer_is_one_line_naming_it(twitter_like, tmp_path,
                                                                      capsys):
    """robust36 #7: a hand-edited "seed": "abc" was numpy's ValueError traceback in fuse."""
    run = _finished_run(tmp_path / "run", twitter_like)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "seed": "abc"}))
    assert main(["fuse", str(run), "--features", "gch", "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"vsent: error: {run / 'config.json'}: seed must be an "
                                       "integer in 0..4294967295, got 'abc'\n")
    assert not (run / "fuse").exists()


def test_a_finished_fusion_with_a_damaged_summary_is_one_line_naming_it(twitter_like,
                                                                         tmp_path, capsys,
                                                                         monkeypatch):
    """A JSONDecodeError traceback before (RunDir.read_json, #5)."""
    monkeypatch.setenv("VSENT_CACHE", str(tmp_path / "cache"))
    run = _finished_run(tmp_path / "run", twitter_like)
    argv = ["fuse", str(run), "--features", "gch", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    file = run / "fuse" / "gch-mean-w0.5-logistic" / "summary.json"
    file.write_text(file.read_text()[:50])
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {file}: unreadable (")
    assert err[0].endswith("pass --overwrite to start again")
    file.write_text('{"fused": {}}')
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"vsent: error: {file}: not a fusion summary")


def test_the_early_rules_in_sample_bias_is_documented(capsys):
    """#9: the early classifier learns from the fold models' features of their own training
    images; --help and the module say so."""
    import vsent.analyses.fusion_run as fusion_run

    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "features of its own training images, which the network has fitted: an " \
           "in-sample fit that favours the CNN block" in help_text
    assert "The early rule is biased towards the CNN" in fusion_run.__doc__


class _Stop(Exception):
    """Raised in place of the folds: the data check is done by then."""


def test_fuse_checks_an_older_ensemble_by_its_first_members_record(make_twitter_like, tmp_path,
                                                                   caplog, monkeypatch):
    """An ensemble made before it kept data.json was not checked at all, nor was any older run
    (and silently); now its first member's record is used, and a run with none is logged
    (review23 #6)."""
    import vsent.data

    data = make_twitter_like()
    member = _finished_run(tmp_path / "member", data, data_record=True)
    ens = _finished_run(tmp_path / "ens", data)  # no data.json of its own
    cfg = json.loads((ens / "config.json").read_text())
    (ens / "config.json").write_text(json.dumps(
        {**cfg, "command": "ensemble", "runs": [str(member.resolve()), "/gone/b"]}))

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(vsent.data, "make_folds", stop)
    with caplog.at_level("INFO", logger="vsent"), pytest.raises(_Stop):
        fuse_run(ens, "gch")  # the same data: checked, passes
    assert "data not checked" not in caplog.text
    image = load_dataset(data, "five", validate=False).paths[0]
    save_image(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8), image)
    with pytest.raises(VsentError, match=re.escape(
            f"{data}: its images or labels changed since {member.resolve()} was trained on "
            f"them (") + ".*" + re.escape(f"see {member.resolve() / 'data.json'})")):
        fuse_run(ens, "gch")
    # no record anywhere (the member made before data.json too): one INFO line
    (member / "data.json").unlink()
    caplog.clear()
    with caplog.at_level("INFO", logger="vsent"), pytest.raises(_Stop):
        fuse_run(ens, "gch")
    assert [r.getMessage() for r in caplog.records if "not checked" in r.getMessage()] == [
        f"data not checked: {ens} was made before data.json"]


def test_the_early_rules_help_says_plainly_what_it_sees(capsys):
    """"flatters nothing on the test fold but its design" was hard to parse (review23 #10)."""
    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "no test image is seen, but the fit is optimistic" in help_text
    assert "flatters" not in help_text
