"""Model cards: read from the checkpoint and, inside a crossval run directory, from the run's
config, folds, summary and versions; Markdown and JSON; the ``vsent card`` command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vsent import __version__
from vsent.cli import main
from vsent.errors import EXIT_USER_ERROR, WeightsError
from vsent.metrics import summarize_folds
from vsent.models import create_model
from vsent.models.card import card_markdown, cut_paths, model_card
from vsent.models.checkpoint import save_checkpoint

#: Per-fold centre-crop metrics of the fake run (accuracy mean 0.7, std sqrt(0.005)).
FOLD_METRICS = [
    {"fold": 1, "accuracy": 0.6, "precision": 0.5, "recall": 0.75, "f1": 0.6},
    {"fold": 2, "accuracy": 0.8, "precision": 0.9, "recall": 0.7, "f1": 0.7875},
]


@pytest.fixture
def run_dir(tmp_path):
    """A crossval run directory as vsent writes it, with fold checkpoints."""
    run = tmp_path / "runs" / "x"
    config = {"command": "crossval", "data": "/data/twitter1", "subset": "four",
              "folds": "campos", "model": "smallcnn", "init": "random", "model_kwargs": {},
              "train": {"epochs": 3, "lr": 0.001}}
    (run / "fold2").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config))
    (run / "versions.json").write_text(json.dumps({"vsent": "9.9.9", "torch": "1.2.3"}))
    (run / "folds.json").write_text(json.dumps({"n_splits": 2, "folds": [
        {"fold": 1, "train": ["a", "b", "c"], "test": ["d", "e"]},
        {"fold": 2, "train": ["d", "e", "c", "f"], "test": ["a", "b"]}]}))
    summary = summarize_folds(FOLD_METRICS)
    summary.update(evaluation="center", n_images=4)
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "fold2" / "metrics.json").write_text(json.dumps(
        {"center": FOLD_METRICS[1], "ten_crop": {**FOLD_METRICS[1], "accuracy": 0.85}}))
    save_checkpoint(run / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run), train=config["train"], subset="four")
    return run


def test_card_of_a_fold_checkpoint_carries_the_runs_data_and_metrics(run_dir):
    card = model_card(run_dir / "fold2" / "model.pt")
    assert card["model"]["name"] == "smallcnn" and card["model"]["family"] == "smallcnn"
    assert card["model"]["class_names"] == ["negative", "positive"]
    assert card["weights"]["init"] == "random"
    assert "random" in card["weights"]["source"]
    t = card["training"]
    assert (t["dataset"], t["subset"], t["folds"], t["fold"]) == ("/data/twitter1", "four",
                                                                  "campos", 2)
    assert (t["n_train"], t["n_test"]) == (4, 2)
    m = card["metrics"]
    assert m["n_folds"] == 2 and m["evaluation"] == "center"
    assert m["n_images"] == 4  # mut51c C40: the run's summary.json's count
    accs = [f["accuracy"] for f in FOLD_METRICS]
    assert m["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert m["accuracy"]["std"] == pytest.approx(np.std(accs))
    assert m["fold"]["accuracy"] == pytest.approx(0.8)  # this fold, the lead evaluation
    assert card["preprocess"]["crop"] == create_model("smallcnn").info.preprocess.crop
    # the checkpoint's own record, not the run's first session's (versions.json: 9.9.9)
    assert card["versions"]["source"] == "checkpoint" and card["versions"]["vsent"] == __version__
    json.dumps(card)  # JSON types only


def _card_and_warnings(path: Path, caplog: pytest.LogCaptureFixture) -> tuple[dict, str]:
    """The card of the checkpoint at ``path`` and the warnings said while making it."""
    caplog.clear()
    with caplog.at_level("WARNING", logger="vsent"):
        card = model_card(path)
    return card, caplog.text


def test_a_damaged_run_file_is_said_not_hidden_as_not_recorded(run_dir, caplog):
    """robust36 #9: a half-written summary.json gave a card saying its metrics were "not
    recorded (the checkpoint is not inside a finished crossval run)", silently."""
    summary = run_dir / "summary.json"
    summary.write_text(summary.read_text()[:30])
    card, warned = _card_and_warnings(run_dir / "fold2" / "model.pt", caplog)
    assert card["metrics"] is None
    assert f"{summary}: unreadable (" in warned
    summary.write_text("[]")  # parsed, but no summary either (reports38 #8)
    card, warned = _card_and_warnings(run_dir / "fold2" / "model.pt", caplog)
    assert card["metrics"] is None
    assert f"{summary}: unreadable (a JSON list, expected an object)" in warned
    assert "or the run's summary.json holds no metrics" in card_markdown(card)
    summary.unlink()  # absent: nothing to say (a checkpoint outside a run has none)
    card, warned = _card_and_warnings(run_dir / "fold2" / "model.pt", caplog)
    assert "unreadable" not in warned


def test_markdown_card_shows_each_section(run_dir):
    text = card_markdown(model_card(run_dir / "fold2" / "model.pt"))
    for heading in ("# Model card: smallcnn", "## Architecture", "## Initial weights",
                    "## Training data", "## Cross-validated metrics", "## Preprocessing",
                    "## Versions"):
        assert heading in text
    assert "| accuracy | 0.7000 | 0.1000 | 0.8000 |" in text
    assert "Evaluation: center, 2 folds\n" in text  # mut51c C52: folds, not images (4)
    assert "- Subset: four" in text and f"- vsent: {__version__}" in text
    assert "- Training settings: epochs=3, lr=0.001\n" in text  # mut54c K40: key=value
    # random weights: no library, tag, licence or location to leave "not recorded"
    weights = text.split("## Initial weights\n\n")[1].split("\n\n")[0].splitlines()
    assert [line.split(":")[0] for line in weights] == ["- --init", "- Source"]
    # mut51c C16, C34: a recorded False or 0 is shown, not "not recorded" (that is None
    # alone); a GPU's name is shown, "none (no GPU)" is cuda None's
    card = {**model_card(run_dir / "fold2" / "model.pt"),
            "versions": {"source": "run", "git_dirty": False, "processes": 0, "cuda": "H100"}}
    assert "- git_dirty: False\n- processes: 0\n- cuda: H100\n" in card_markdown(card)
    # mut54c K19, K20: each preprocessing line shows its own entry (resize vs crop, std vs mean)
    card["preprocess"] = {"resize": 256, "crop": 224, "mean": [1, 2, 3], "std": [4, 5, 6.5],
                          "channel_order": "RGB", "interpolation": "bilinear"}
    assert "- Resize (square warp): 256\n- Crop: 224\n- Mean (0..255, RGB): 1.000, 2.000, " \
           "3.000\n- Std (0..255, RGB): 4.000, 5.000, 6.500\n- Channel order: RGB\n" \
           "- Interpolation: bilinear\n" in card_markdown(card)
    # mut54c K24: vsent pcnn's stage 2 shows its own settings, not stage 1's again
    card["training"] = {**card["training"], "finetune": {"epochs": 1}}
    assert "- Training settings: epochs=3, lr=0.001\n- Stage-2 settings: epochs=1\n" in \
        card_markdown(card)
    # mut59e E16: a summary that does not name its evaluation (an older vsent's) says so
    card["metrics"] = {k: v for k, v in card["metrics"].items() if k != "evaluation"}
    assert "Evaluation: not recorded, 2 folds\n" in card_markdown(card)


def test_markdown_card_names_the_dataset_path_normalised(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "data": "/data/x/../twitter1"}))
    card = model_card(run_dir / "fold2" / "model.pt")
    assert "- Dataset: /data/twitter1\n" in card_markdown(card)
    assert card["training"]["dataset"] == "/data/twitter1"  # the JSON card's too (trial33 #10)
    # mut59e E12: a card normalised by no one (an export's, stored by an older vsent) is
    # shown normalised all the same
    card["training"] = {**card["training"], "dataset": "/data/y/../twitter2/"}
    assert "- Dataset: /data/twitter2\n" in card_markdown(card)
    # versions record cuda None where no GPU was seen: "none", not "not recorded"
    card["versions"]["cuda"] = None
    assert "- cuda: none (no GPU)\n" in card_markdown(card)


def test_card_outside_a_run_says_what_was_not_recorded(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn"))
    card = model_card(path)
    assert card["metrics"] is None and card["training"]["dataset"] is None
    # the versions are recorded in the file when it is written (not read from this process)
    from importlib import metadata

    assert card["versions"]["source"] == "checkpoint"
    assert card["versions"]["torch"] == metadata.version("torch")
    text = card_markdown(card)
    assert "not recorded (the checkpoint is not inside a finished crossval run" in text


def test_timm_card_states_the_weights_source_and_licence(tmp_path):
    pytest.importorskip("timm")
    from vsent.models import timm_models  # noqa: F401  (registers the family)

    run = tmp_path / "run"
    path = save_checkpoint(run / "model.pt", create_model("timm/test_resnet"))
    (run / "config.json").write_text(json.dumps({"command": "finetune", "init": "imagenet"}))
    card = model_card(path)
    w = card["weights"]
    assert w["library"] == "timm" and w["licence"] == "apache-2.0"
    assert w["location"] == "https://huggingface.co/timm/test_resnet.r160_in1k"
    assert card["model"]["family"] == "timm"
    assert card["preprocess"]["weights_interpolation"] == "bilinear"  # timm's test_resnet
    assert "timm" in card["versions"] or "timm (now)" in card["versions"]
    # no versions.json in the run: the versions written into the checkpoint, timm among them
    from importlib import metadata

    assert card["versions"]["source"] == "checkpoint"
    assert card["versions"]["timm"] == metadata.version("timm")


def test_card_rejects_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        model_card(tmp_path / "none.pt")
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a vsent checkpoint"):
        model_card(tmp_path / "x.pt")


def test_cli_card_json_and_markdown(run_dir, tmp_path, capsys):
    ckpt = run_dir / "fold2" / "model.pt"
    assert main(["card", str(ckpt), "--format", "json"]) == 0
    # the JSON text, ended by a newline as every file of a text-file tool (mut54a K31)
    assert capsys.readouterr().out == json.dumps(model_card(ckpt), indent=2) + "\n"
    out = tmp_path / "card.md"
    assert main(["card", str(ckpt), "--out", str(out)]) == 0
    assert out.read_text() == card_markdown(model_card(ckpt))
    assert capsys.readouterr() == ("", f"wrote {out}\n")  # standard output stays empty
    # --overwrite without --out was ignored without a word (mut51a)
    assert main(["card", str(ckpt), "--overwrite"]) == EXIT_USER_ERROR
    assert capsys.readouterr() == ("", "vsent: error: --overwrite goes with --out FILE\n")
    assert main(["card", str(tmp_path / "none.pt")]) == EXIT_USER_ERROR
    assert "vsent: error:" in capsys.readouterr().err
    # a folder that does not exist yet is made, as export makes its own (session 36: refused)
    deep = tmp_path / "cards" / "fold2" / "card.md"
    assert main(["card", str(ckpt), "--out", str(deep)]) == 0
    assert deep.read_text() == card_markdown(model_card(ckpt))


def test_cli_card_out_replaces_an_earlier_card_but_no_other_file(run_dir, tmp_path, capsys):
    """`vsent card model.pt --out victim.pt` replaced a checkpoint with Markdown (audit_input25
    #1): an existing file that is no card is kept unless --overwrite."""
    ckpt = run_dir / "fold2" / "model.pt"
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes())
    for fmt in ("markdown", "json"):
        before = other.read_bytes()
        assert main(["card", str(ckpt), "--format", fmt, "--out", str(other)]) \
            == EXIT_USER_ERROR
        assert capsys.readouterr().err.strip() == (
            f"vsent: error: --out {other}: exists and is no model card: choose another file, "
            "or pass --overwrite to replace it")
        assert other.read_bytes() == before
    for fmt, name in (("markdown", "card.md"), ("json", "card.json")):
        out = tmp_path / name
        assert main(["card", str(ckpt), "--format", fmt, "--out", str(out)]) == 0
        assert main(["card", str(ckpt), "--format", fmt, "--out", str(out)]) == 0  # replaced
    assert main(["card", str(ckpt), "--out", str(tmp_path / "card.json")]) == 0  # json -> md
    assert main(["card", str(ckpt), "--out", str(other), "--overwrite"]) == 0
    assert other.read_text() == card_markdown(model_card(ckpt))
    # a folder: no --overwrite offered, none taken (audit_errors28 #7)
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert main(["card", str(ckpt), "--out", str(tmp_path), *extra]) == EXIT_USER_ERROR
        assert capsys.readouterr().err.strip() == (
            f"vsent: error: --out {tmp_path}: is a folder; give the name of a file")
    # the checkpoint read, named as --out: refused even with --overwrite (mut51a)
    before = ckpt.read_bytes()
    assert main(["card", str(ckpt), "--out", str(ckpt), "--overwrite"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err == (f"vsent: error: --out {ckpt} is {ckpt}, which this "
                                       "command reads: choose another --out\n")
    assert ckpt.read_bytes() == before


def test_a_write_protected_output_file_is_kept(run_dir, tmp_path, capsys,
                                                                 monkeypatch):
    """A card the user made read-only (chmod a-w) was replaced (a rename needs only the
    folder's permission) and left 0644 (robust39 #13); `vsent predict --out` refused it."""
    import os

    ckpt = run_dir / "fold2" / "model.pt"
    card = tmp_path / "card.md"
    assert main(["card", str(ckpt), "--out", str(card)]) == 0
    before = card.read_bytes()

    def refused() -> None:
        capsys.readouterr()
        for extra in ([], ["--overwrite"]):
            assert main(["card", str(run_dir / "fold1" / "model.pt"), "--out", str(card),
                         *extra]) == EXIT_USER_ERROR
            assert capsys.readouterr().err == (
                f"vsent: error: --out {card}: is write-protected; make it writable, or choose "
                "another file\n")
        assert card.read_bytes() == before

    card.chmod(0o444)  # (root, whom os.access lets write anything, too: trial40 F3)
    refused()
    assert card.stat().st_mode & 0o777 == 0o444
    card.chmod(0o644)  # a file of another user's, say: os.access says so
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if os.fspath(path) == str(card)
                        else real(path, mode, **kw))
    refused()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_card_of_an_export_is_read_from_its_metadata(tmp_path, capsys, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    from vsent.export import export_model

    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)),
                           class_names=("neg", "pos"), init="random", data="/data/tw")
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.ts")
    export_model(ckpt, out, format=fmt)
    card, source = model_card(out), model_card(ckpt)
    assert card["export"] == {"file": str(out), "engine": fmt, "format": "vsent-export/1"}
    assert card["checkpoint"] == str(ckpt)  # the file it was exported from (explain needs it)
    assert card["model"] == source["model"] and card["model"]["class_names"] == ["neg", "pos"]
    from vsent.models.card import cut_paths

    cut_paths(source)  # (what an export stores: trial40 F8; the checkpoint's path kept)
    for key in ("weights", "training", "preprocess", "versions"):
        assert card[key] == source[key], key
    assert main(["card", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"Export: `{out}` ({fmt}, vsent-export/1)" in text
    assert f"Exported from checkpoint: `{ckpt}`" in text and "- Dataset: tw\n" in text
    assert "- Outputs: 2 (neg, pos)" in text


def test_card_of_an_export_without_a_stored_card_says_what_it_knows(tmp_path):
    from vsent.export import export_metadata, export_module

    model = create_model("smallcnn", widths=(4, 8)).eval()
    out = tmp_path / "m.ts"
    export_module(model, out, metadata=export_metadata(model, {"class_names": ["a", "b"]}),
                  format="torchscript")
    card = model_card(out)
    assert card["checkpoint"] is None and card["model"]["class_names"] == ["a", "b"]
    assert card["versions"] == {"source": None}  # mut51c C47: the layout's key, unrecorded
    assert card["preprocess"]["crop"] == model.info.preprocess.crop
    assert card["weights"]["init"] is None and card["training"]["dataset"] is None
    text = card_markdown(card)
    assert "Exported from checkpoint: not recorded" in text and "Recorded: not recorded" in text


def test_card_of_a_damaged_onnx_export_says_so_not_to_score_it_as_one(tmp_path, capsys):
    """card reads exports itself: an .onnx it cannot read is "not a readable ONNX export" with
    the reason `vsent predict --engine onnx` gives, not the checkpoint reader's advice to
    run it with `--engine onnx`."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vsent.export import ExportError, export_model, read_metadata

    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    good = tmp_path / "m.onnx"
    export_model(ckpt, good)
    data = good.read_bytes()
    bad = tmp_path / "bad.onnx"
    for size in (3000, len(data) // 2):
        bad.write_bytes(data[:size])
        with pytest.raises(ExportError) as predicted:  # what predict --engine onnx says
            read_metadata(bad)
        reason = str(predicted.value).split(": not an ONNX file (", 1)[1][:-1]
        with pytest.raises(WeightsError) as e:
            model_card(bad)
        assert str(e.value) == f"{bad}: not a readable ONNX export ({reason})"
    assert main(["card", str(bad)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"vsent: error: {bad}: not a readable ONNX export ({reason})\n"
    assert "run it with --engine onnx" not in err
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"empty.onnx: not a readable ONNX export \(an empty "
                                           r"file\)$"):
        model_card(tmp_path / "empty.onnx")
    # readable ONNX files that are not vsent's, or lack an entry of its metadata
    proto = onnx.load(str(good))
    kept = [(p.key, p.value) for p in proto.metadata_props]
    for name, drop, why in (
            ("other.onnx", lambda k: True,
             r"other.onnx: not a vsent export \(no vsent metadata in it\)$"),
            ("partial.onnx", lambda k: k == "vsent.class_names",
             r"partial.onnx: not a readable ONNX export \(its vsent metadata: KeyError "
             r"'vsent.class_names'\)$")):
        del proto.metadata_props[:]
        for key, value in kept:
            if not drop(key):
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
        onnx.save(proto, str(tmp_path / name))
        with pytest.raises(WeightsError, match=why):
            model_card(tmp_path / name)
    # a checkpoint cut short and named .onnx: the checkpoint reader says what it is
    (tmp_path / "cut.onnx").write_bytes(ckpt.read_bytes()[:3000])
    with pytest.raises(WeightsError, match=r"cut.onnx: not a vsent checkpoint \(truncated"):
        model_card(tmp_path / "cut.onnx")


def test_card_of_a_zero_shot_model_lists_no_training_recipe(run_dir):
    # crossval saves a zero-shot fold model with the run's (unused) recipe and fold size
    path = save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                           train={"epochs": 3, "lr": 0.001}, n_train=4, training="zero-shot")
    t = model_card(path)["training"]
    assert t["how"] == "zero-shot" and t["train"] is None and t["n_train"] is None
    assert t["n_test"] == 2 and t["fold"] == 2
    text = card_markdown(model_card(path))
    assert "- Training: zero-shot" in text and "- Held-out images: 2" in text
    assert "Training settings" not in text and "Training images" not in text
    # mut51c C04: a trained fold model recording n_train alone (not n_test) held its fold's
    # images out (folds.json): "none (trained on every image)" is finetune without --fold's
    path = save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                           train={"epochs": 3, "lr": 0.001}, n_train=4)
    assert model_card(path)["training"]["n_test"] == 2


def test_card_names_the_folds_only_when_a_fold_was_held_out(run_dir, tmp_path):
    text = card_markdown(model_card(run_dir / "fold2" / "model.pt"))
    assert "- Folds: campos" in text and "- Fold: 2" in text
    run = tmp_path / "ft"  # vsent finetune on every image: "campos" is only the default
    path = save_checkpoint(run / "model.pt", create_model("smallcnn"), fold=None,
                           folds="campos", data="/data/pn", n_train=16)
    (run / "config.json").write_text(json.dumps({"command": "finetune", "fold": None,
                                                 "folds": "campos", "data": "/data/pn"}))
    card = model_card(path)
    assert card["training"]["folds"] is None and card["training"]["fold"] is None
    text = card_markdown(card)
    assert "Folds" not in text and "- Fold:" not in text and "- Training images: 16" in text
    # trial32 #7: nothing held out is "none", not "not recorded"
    assert card["training"]["n_test"] == 0
    assert "- Held-out images: none (trained on every image)" in text


def test_card_says_whence_a_fold_seed_comes(run_dir):
    """trial32 #6: a fold model's "seed=2" read as the run's seed (crossval trains fold k with
    seed x 1000 + k): a user passing --seed 2 would make another run."""
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "seed": 0}))
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run_dir), train={**config["train"], "seed": 2}, subset="four")
    text = card_markdown(model_card(run_dir / "fold2" / "model.pt"))
    assert "- Seed: 2 is fold 2's, from the run's seed 0 (seed x 1000 + fold)" in text
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run_dir), train={**config["train"], "seed": 7}, subset="four")
    assert "- Seed:" not in card_markdown(model_card(run_dir / "fold2" / "model.pt"))


def test_card_says_vsent_warps_bilinearly_and_what_the_weights_were_trained_with(tmp_path):
    pytest.importorskip("timm")
    from vsent.models import timm_models  # noqa: F401  (registers the family)

    run = tmp_path / "run"
    path = save_checkpoint(run / "model.pt", create_model("timm/test_vit"), init="imagenet")
    (run / "config.json").write_text(json.dumps({"command": "finetune", "init": "imagenet"}))
    card = model_card(path)
    assert card["preprocess"]["interpolation"] == "bilinear"
    assert card["preprocess"]["weights_interpolation"] == "bicubic"  # timm's config
    assert ("- Interpolation: bilinear (vsent); the weights were trained with bicubic"
            in card_markdown(card))
    # random weights were trained by vsent alone; smallcnn/CaffeNet state no other
    for model, init in (("timm/test_vit", "random"), ("smallcnn", "random"),
                        ("smallcnn", "imagenet")):
        path = save_checkpoint(tmp_path / "m.pt", create_model(model), init=init)
        card = model_card(path)
        assert card["preprocess"]["weights_interpolation"] is None
        assert "- Interpolation: bilinear\n" in card_markdown(card)


def test_card_of_a_run_without_cross_validation_says_its_metrics_were_not_recorded(tmp_path):
    """A ``vsent pcnn`` run: config.json and a summary.json with neither folds nor metrics
    beside model.pt. Its card said "Evaluation: not recorded, 0 folds" over an empty table."""
    run = tmp_path / "pcnn"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"command": "pcnn", "data": "/d/flickr",
                                                 "model": "smallcnn"}))
    (run / "summary.json").write_text(json.dumps({
        "data": "/d/flickr", "dataset": "Flickr", "subset": None, "architecture": "smallcnn",
        "n_images": 500, "n_removed": 40, "n_kept": 460}))
    ckpt = save_checkpoint(run / "model.pt", create_model("smallcnn", widths=(4, 8)),
                           stage="pcnn")
    card = model_card(ckpt)
    assert card["metrics"] is None and card["training"]["command"] == "pcnn"
    text = card_markdown(card)
    assert "## Cross-validated metrics\n\nnot recorded" in text
    assert "0 folds" not in text and "| metric |" not in text
    # mut57e P101: a summary with metrics but no per-fold list is a crossval run's still
    from vsent.models.card import _metrics

    accuracy = {"mean": 0.7, "std": 0.1}
    assert _metrics({"evaluation": "center", "accuracy": accuracy}, None)["accuracy"] == accuracy


def test_card_versions_are_the_checkpoints_in_a_run_resumed_after_an_upgrade(run_dir):
    """versions.json keeps the first session's versions at its top level; a fold trained after
    the run was resumed with others records its own. The card gave the run's, which made no
    such model, and /v1/model dropped ``resumed``, the one hint (audit_serve27 #2)."""
    import torch

    pytest.importorskip("fastapi")
    from vsent.predict import Predictor
    from vsent.serve.app import served_card

    (run_dir / "versions.json").write_text(json.dumps({
        "vsent": "0.0.9", "torch": "2.9.0", "git_commit": "abc", "argv": ["/srv/x/vsent"],
        "resumed": [{"date": "2026-01-02", "argv": ["/srv/x/vsent", "--resume"],
                     "changed": {"torch": "2.15.0", "vsent": "0.1.0"}}]}))
    path = run_dir / "fold2" / "model.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["versions"] = {"vsent": "0.1.0", "torch": "2.15.0", "python": "3.12.1"}
    torch.save(ckpt, path)
    v = model_card(path)["versions"]
    assert (v["source"], v["vsent"], v["torch"], v["python"]) == ("checkpoint", "0.1.0",
                                                                  "2.15.0", "3.12.1")
    assert v["git_commit"] == "abc" and v["resumed"][0]["changed"]["torch"] == "2.15.0"
    assert "- torch: 2.15.0" in card_markdown(model_card(path))
    served = served_card(path, Predictor.from_checkpoint(path, device="cpu"))["versions"]
    assert served["resumed"] == [{"date": "2026-01-02",
                                  "changed": {"torch": "2.15.0", "vsent": "0.1.0"}}]
    assert "argv" not in served and "/srv" not in json.dumps(served)


def test_card_of_a_finetune_fold_model_gives_its_held_out_metrics(tmp_path):
    """``finetune --fold K`` evaluates its model on fold K into the run's metrics.json; the card
    said "not recorded" beside it (audit_serve27 #5)."""
    run = tmp_path / "ft"
    path = save_checkpoint(run / "model.pt", create_model("smallcnn"), fold=2, folds="campos")
    (run / "config.json").write_text(json.dumps({"command": "finetune", "fold": 2}))
    (run / "metrics.json").write_text(json.dumps({
        "n_train": 4, "model": str(path), "center": FOLD_METRICS[1],
        "ten_crop": {**FOLD_METRICS[1], "accuracy": 0.85},
        "fused_center": {**FOLD_METRICS[1], "accuracy": 0.9}}))
    m = model_card(path)["metrics"]
    assert m["held_out_fold"] == 2 and m["evaluation"] == "fused_center"
    assert list(m["held_out"]) == ["center", "ten_crop", "fused_center"]
    assert m["held_out"]["ten_crop"]["accuracy"] == 0.85
    assert m["held_out"]["center"] == {k: FOLD_METRICS[1][k] for k in
                                       ("accuracy", "precision", "recall", "f1")}
    text = card_markdown(model_card(path))
    assert "## Held-out fold 2" in text and "not recorded (the checkpoint" not in text
    assert "| center | 0.8000 | 0.9000 | 0.7000 | 0.7875 |" in text
    assert "| fused_center | 0.9000 |" in text and "Cross-validated" not in text
    # mut59e E86: an evaluation without some metric gives the others (a blank cell), no error
    (run / "metrics.json").write_text(json.dumps({"center": {"accuracy": 0.8, "f1": 0.7}}))
    assert model_card(path)["metrics"]["held_out"] == {"center": {"accuracy": 0.8, "f1": 0.7}}
    assert "| center | 0.8000 |  |  | 0.7000 |" in card_markdown(model_card(path))
    # mut57e P91: a finetune config that does not say its fold (written before finetune
    # recorded it) does not make the model foreign: its held-out metrics stay
    (run / "config.json").write_text(json.dumps({"command": "finetune"}))
    assert model_card(path)["metrics"]["held_out_fold"] == 2
    # mut59e E89: finetune trains its fold with the run's seed itself (crossval alone derives
    # seed x 1000 + fold): that seed is no sign of a model of another run
    (run / "config.json").write_text(json.dumps({"command": "finetune", "fold": 2, "seed": 0}))
    save_checkpoint(path, create_model("smallcnn"), fold=2, folds="campos", train={"seed": 0})
    assert model_card(path)["metrics"]["held_out_fold"] == 2
    # mut57e P71: only finetune writes its held-out evaluation into the run's metrics.json; in
    # another command's run that file is none of this model's (no summary: not recorded)
    (run / "config.json").write_text(json.dumps({"command": "crossval"}))
    assert model_card(path)["metrics"] is None
    # finetune on every image holds nothing out: nothing to show
    (run / "config.json").write_text(json.dumps({"command": "finetune", "fold": None}))
    whole = save_checkpoint(run / "model.pt", create_model("smallcnn"), fold=None)
    assert model_card(whole)["metrics"] is None


def test_the_card_of_a_raw_ablations_export_counts_its_outputs_not_its_spec():
    """An export of CaffeNet fc8-1000 listed 1000 class names under "2 outputs" (its spec's
    num_classes, which the raw ablations ignore; review27)."""
    import dataclasses
    from types import SimpleNamespace

    from vsent.models import create_model
    from vsent.models.card import export_card

    info = create_model("caffenet", arch="fc6-2").info  # any CaffeNet record, with its width
    info = dataclasses.replace(info, num_outputs=1000)
    exported = SimpleNamespace(
        card=None, info=info, spec={"name": "caffenet", "num_classes": 2, "arch": "fc8-1000"},
        class_names=["negative", "positive", *(f"class{i}" for i in range(2, 1000))],
        path="m.onnx", engine="onnx", metadata={"vsent.format": "onnx"})
    card = export_card(exported)
    assert card["model"]["num_classes"] == 1000 and card["model"]["options"] == {
        "arch": "fc8-1000"}


def test_a_fold_model_copied_into_another_folds_folder_gets_no_run_metrics(run_dir, caplog):
    """trial33 #2: the card took the fold and the run's metrics from the folder, so a fold-2
    model copied into fold1/ was shown as fold 1 with that run's metrics, silently."""
    import shutil

    (run_dir / "fold1").mkdir()
    shutil.copy(run_dir / "fold2" / "model.pt", run_dir / "fold1" / "model.pt")
    card, warned = _card_and_warnings(run_dir / "fold1" / "model.pt", caplog)
    assert card["metrics"] is None and card["training"]["fold"] == 2  # the checkpoint's
    assert card["training"]["dataset"] is None  # not the run's config
    assert f"records fold 2, not fold 1: it is no model of the run in {run_dir}" in warned
    # review33b #2: a fold-1 model of another run (another recipe) in this run's fold1/
    save_checkpoint(run_dir / "fold1" / "model.pt", create_model("smallcnn"), fold=1,
                    run="elsewhere", train={"epochs": 9, "lr": 0.001}, subset="four")
    card, warned = _card_and_warnings(run_dir / "fold1" / "model.pt", caplog)
    assert card["metrics"] is None
    assert ("was trained otherwise than the run (train.epochs: stored 3, now 9): it is no "
            "model of the run") in warned
    # the run's own fold model, whose seed is the fold's, is the run's: no warning
    save_checkpoint(run_dir / "fold1" / "model.pt", create_model("smallcnn"), fold=1,
                    run=str(run_dir), train={"epochs": 3, "lr": 0.001, "seed": 1001,
                                             "device": "cuda"}, subset="four")
    card, warned = _card_and_warnings(run_dir / "fold1" / "model.pt", caplog)
    assert card["metrics"] is not None and card["training"]["fold"] == 1 and not warned
    # a finetune --fold 1 run whose model.pt is now a fold-2 model
    ft = run_dir.parent / "ft"
    ft.mkdir()
    (ft / "config.json").write_text(json.dumps({"command": "finetune", "fold": 1}))
    (ft / "metrics.json").write_text(json.dumps({"center": FOLD_METRICS[0]}))
    shutil.copy(run_dir / "fold2" / "model.pt", ft / "model.pt")
    card, warned = _card_and_warnings(ft / "model.pt", caplog)
    assert card["metrics"] is None and card["training"]["fold"] == 2
    assert "records fold 2, not fold 1" in warned
    # the same fold-2 model in a finetune run on every image ("fold": None), and a model of
    # every image in the --fold 1 run: neither is the run's (mut57e P91)
    (ft / "config.json").write_text(json.dumps({"command": "finetune", "fold": None}))
    card, warned = _card_and_warnings(ft / "model.pt", caplog)
    assert card["metrics"] is None
    assert "records fold 2, the run trained on every image" in warned
    (ft / "config.json").write_text(json.dumps({"command": "finetune", "fold": 1}))
    save_checkpoint(ft / "model.pt", create_model("smallcnn"), fold=None, subset="four")
    card, warned = _card_and_warnings(ft / "model.pt", caplog)
    assert card["metrics"] is None
    assert "was trained on every image, the run holds out fold 1" in warned


@pytest.mark.parametrize("other, said", [
    ({"folds": "stratified"}, "records folds 'stratified', the run 'campos'"),
    ({"subset": "three"}, "records subset 'three', the run 'four'"),
    ({"data": "/data/flickr"}, "records data '/data/flickr', the run '/data/twitter1'"),
    ({"init": "imagenet"}, "records init 'imagenet', the run 'random'"),
    ({"seed": 5001}, "was trained with seed 5001, not the seed the run's fold 2 trains with "
                     "(2)"),
    ({}, None),  # its own: the run's metrics, no warning
])
def test_a_fold_model_of_another_run_of_the_same_recipe_is_no_model_of_that_run(
        run_dir, caplog, other, said):
    """trial40 F2: a fold model of a run with other folds, data or seed, copied into a run of
    the same recipe, got that run's cross-validated metrics ("this fold": a fold it was never
    tested on), while its card showed its own folds."""
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "seed": 0}))
    meta = {"data": "/data/twitter1", "subset": "four", "folds": "campos", "init": "random",
            "seed": 2, **other}
    seed = meta.pop("seed")
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    command="crossval", train={**config["train"], "seed": seed}, **meta)
    card, warned = _card_and_warnings(run_dir / "fold2" / "model.pt", caplog)
    if not other:
        assert card["metrics"] is not None and not warned
        return
    assert card["metrics"] is None
    assert f"{said}: it is no model of the run in {run_dir}" in warned


def test_a_model_of_another_command_in_a_runs_folder_is_no_model_of_that_run(run_dir, caplog):
    """review34 #5: a finetune model.pt copied into a crossval run's folder was carded as
    "Command: crossval", "Held-out images: none (trained on every image)" with the run's
    metrics; the checkpoint records its command now, and another one is another run's."""
    save_checkpoint(run_dir / "model.pt", create_model("smallcnn"), fold=None,
                    train={"epochs": 3, "lr": 0.001}, command="finetune", n_test=0, n_train=6)
    card, warned = _card_and_warnings(run_dir / "model.pt", caplog)
    assert card["metrics"] is None and card["training"]["command"] == "finetune"
    assert "was written by finetune, the run by crossval: it is no model of the run" in warned
    # the run's own fold model, which records crossval: the run's, no warning
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run_dir), train={"epochs": 3, "lr": 0.001}, subset="four",
                    command="crossval", n_test=2)
    card, warned = _card_and_warnings(run_dir / "fold2" / "model.pt", caplog)
    assert card["metrics"] is not None and not warned


def test_a_zero_shot_model_of_no_fold_says_its_held_out_count_was_not_recorded(tmp_path):
    """review34 #6: finetune --zero-shot records n_test 0 (nothing held out), and the card
    said "none (trained on every image)" of a model trained on nothing."""
    path = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn"), fold=None,
                           n_train=4, n_test=0, training="zero-shot", command="finetune")
    t = model_card(path)["training"]
    assert t["how"] == "zero-shot" and t["n_test"] is None
    assert "trained on every image" not in card_markdown(model_card(path))


def test_card_of_a_folder_dataset_model_says_it_has_no_subset_not_that_none_was_recorded(
        tmp_path):
    """session 36: a model trained on a folder dataset (its checkpoint records subset None)
    was carded "Subset: not recorded", and the config's default "five" is no subset of it."""
    run = tmp_path / "ft"
    path = save_checkpoint(run / "model.pt", create_model("smallcnn"), fold=None,
                           subset=None, data="/data/pn", n_train=16)
    (run / "config.json").write_text(json.dumps({"command": "finetune", "fold": None,
                                                 "subset": "five", "data": "/data/pn"}))
    card = model_card(path)
    assert card["training"]["subset"] == "none (a folder or CSV dataset has no agreement subsets)"
    assert "- Subset: none (a folder or CSV dataset has no agreement subsets)" in (
        card_markdown(card))
    # a checkpoint without the entry (written before it was recorded): the run's config says
    save_checkpoint(run / "model.pt", create_model("smallcnn"), fold=None, data="/data/pn",
                    n_train=16)
    assert model_card(run / "model.pt")["training"]["subset"] == "five"


def test_a_fold_model_is_told_by_its_datas_fingerprint_where_both_record_it(run_dir, caplog):
    """review40 #1: a fold trained after `crossval --resume --data NEW` (the data moved, a link
    at its old path) records the new path; once the link was removed, the path comparison
    called it no model of the run. Where the checkpoint and the run record the data's SHA-256,
    those decide: the same images wherever they are; other images under the same path."""
    (run_dir / "data.json").write_text(json.dumps({"sha256": "a" * 64}))
    config = json.loads((run_dir / "config.json").read_text())
    for data, sha, foreign in (("/data/moved", "a" * 64, False),
                               ("/data/twitter1", "b" * 64, True)):
        save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                        command="crossval", train=config["train"], data=data, subset="four",
                        folds="campos", init="random", data_sha256=sha)
        card, warned = _card_and_warnings(run_dir / "fold2" / "model.pt", caplog)
        assert (card["metrics"] is None) == foreign, data
        assert ("records other data than the run (SHA-256 bbbbbbbbbbbb, aaaaaaaaaaaa): it is "
                "no model of the run" in warned) == foreign


def test_cut_paths_keeps_last_parts_and_drops_command_lines():
    card = {
        "training": {"dataset": "/home/me/data/twitter1", "folds": "/home/me/runs/folds.json",
                     "subset": "five"},
        "weights": {"source": "weights file", "init": "/home/me/w/caffenet.pt",
                    "location": "/home/me/w/caffenet.pt", "sha256": "ab"},
        "versions": {"vsent": "1.0", "argv": ["vsent", "crossval", "--data", "/home/me/data"],
                     "resumed": [{"date": "d1", "changed": {"torch": ["2.1", "2.2"]},
                                  "argv": ["vsent", "crossval", "--resume"]}, "junk"]},
    }
    cut_paths(card)
    assert card["training"] == {"dataset": "twitter1", "folds": "folds.json", "subset": "five"}
    assert card["weights"] == {"source": "weights file", "init": "caffenet.pt",
                               "location": "caffenet.pt", "sha256": "ab"}
    assert card["versions"] == {"vsent": "1.0", "resumed": [
        {"date": "d1", "changed": {"torch": ["2.1", "2.2"]}}]}
    # mut57e P82: a damaged "resumed" (no list) goes whole, its command lines with it
    damaged = {"versions": {"vsent": "1.0", "resumed": {"argv": ["vsent", "--data", "/home/me"]}}}
    cut_paths(damaged)
    assert damaged["versions"] == {"vsent": "1.0"}
    named = {"training": {"dataset": "/d/x", "folds": "campos"},
             "weights": {"source": "pretrained (imagenet)", "init": "imagenet",
                         "location": "https://example.org/w.pt"}}
    cut_paths(named)
    assert named["training"]["folds"] == "campos"
    assert named["weights"]["location"] == "https://example.org/w.pt"  # URLs stay


# mutation round 44 (mut44c): family names, weights, Markdown details, held-out, extra, export


def test_family_of_a_nested_name_is_its_first_part_and_torchvision_weights_are_tagged():
    from vsent.models.card import describe_weights, family_of

    assert family_of("zeroshot/clip/ViT-B-32") == "zeroshot"
    w = describe_weights("torchvision", "resnet18", "imagenet")
    assert w["library"] == "torchvision" and w["tag"] == "DEFAULT"
    assert describe_weights("caffenet", "caffenet", "imagenet")["tag"] is None


def test_card_markdown_lists_four_class_names_means_to_three_places_and_one_interpolation(
        tmp_path):
    card = model_card(save_checkpoint(tmp_path / "m.pt", create_model("smallcnn")))
    card["model"]["class_names"] = ["a", "b", "c", "d"]
    card["preprocess"].update(mean=[1.23456, 2, 3], weights_interpolation="bilinear")
    text = card_markdown(card)
    assert "(a, b, c, d)" in text and "..." not in text
    assert "- Mean (0..255, RGB): 1.235, 2.000, 3.000" in text
    assert "- Interpolation: bilinear\n" in text
    card["model"]["class_names"] = ["a", "b", "c", "d", "e"]
    assert "(a, b, c, d, ... e)" in card_markdown(card)


def test_card_takes_the_weights_the_checkpoint_records(tmp_path):
    weights = {"init": "imagenet", "source": "recorded at training", "library": "x",
               "tag": "t", "licence": "l", "location": "u"}
    card = model_card(save_checkpoint(tmp_path / "m.pt", create_model("smallcnn"),
                                      init="imagenet", weights=weights,
                                      class_names=["pos", "neg"]))
    assert card["weights"] == weights
    # mut54c K05: the class names in the checkpoint's order (output i's name), not sorted
    assert card["model"]["class_names"] == ["pos", "neg"]
    # mut54c K42: the Markdown card shows the recorded location, not the --init again
    assert "- Tag: t\n- Licence (as the library states it): l\n- Location: u\n" in \
        card_markdown(card)


def test_a_finetune_run_without_center_metrics_or_a_derived_seed_says_neither(tmp_path):
    run = tmp_path / "ft"
    path = save_checkpoint(run / "model.pt", create_model("smallcnn"), fold=2,
                           train={"epochs": 1, "seed": 7})
    (run / "config.json").write_text(json.dumps({"command": "finetune", "fold": 2, "seed": 0}))
    (run / "metrics.json").write_text(json.dumps({"ten_crop": FOLD_METRICS[1]}))
    card = model_card(path)
    assert card["metrics"] is None  # no centre-crop evaluation: nothing held out to show
    assert card["training"]["run_seed"] is None  # seed 7 is not fold 2's of seed 0


def test_card_shows_the_fold_metrics_of_the_runs_evaluation(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "evaluation": "ten_crop"}))
    assert model_card(run_dir / "fold2" / "model.pt")["metrics"]["fold"]["accuracy"] == 0.85
    # mut59e E83: a fold file without some metric (an older vsent's) gives the others, no error
    (run_dir / "fold2" / "metrics.json").write_text(json.dumps(
        {"ten_crop": {"accuracy": 0.85, "f1": 0.5}}))
    assert model_card(run_dir / "fold2" / "model.pt")["metrics"]["fold"] == \
        {"accuracy": 0.85, "f1": 0.5}


def test_card_counts_the_extra_training_images_of_the_runs_record(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run_dir), train=config["train"], subset="four",
                    extra_train="three")
    (run_dir / "extra.json").write_text(json.dumps({"names": ["p", "q", "r"]}))
    extra = model_card(run_dir / "fold2" / "model.pt")["training"]["extra"]
    assert extra == {"subset": "three", "n_images": 3, "schedule": "joint"}
    # mut51c C53: the Markdown card gives the count too
    assert "- Extra training images: 3 weakly labelled (three-agree images not in four-agree; " \
           "--extra-schedule joint)\n" in card_markdown(model_card(run_dir / "fold2" / "model.pt"))
    # mut59e E80: a record of no extra images counts 0, not "not recorded"
    (run_dir / "extra.json").write_text(json.dumps({"names": []}))
    assert model_card(run_dir / "fold2" / "model.pt")["training"]["extra"]["n_images"] == 0


def test_card_versions_add_the_familys_library_as_it_is_now(monkeypatch):
    from importlib import metadata

    from vsent.models.card import _versions

    out = _versions({"versions": {"vsent": "1"}}, None, "torchvision")
    assert out["source"] == "checkpoint" and "torchvision (now)" in out
    assert "torchvision (now)" not in _versions({"versions": {"torchvision": "0.1"}}, None,
                                                "torchvision")

    def absent(name: str) -> str:  # the family's library not installed (mut59e E84)
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", absent)  # said (None), not left out
    assert _versions({"versions": {"vsent": "1"}}, None, "timm")["timm (now)"] is None


def test_an_exports_own_preprocessing_wins_over_its_stored_cards():
    from types import SimpleNamespace

    from vsent.models.card import export_card

    info = create_model("smallcnn").info
    stored = {"preprocess": {**info.preprocess.to_dict(), "resize": 999, "crop": 998}}
    exported = SimpleNamespace(
        card=stored, info=info, spec={"name": "smallcnn", "num_classes": 2},
        class_names=["negative", "positive"], path="m.onnx", engine="onnx",
        metadata={"vsent.format": "onnx"})
    assert export_card(exported)["preprocess"]["resize"] == info.preprocess.resize


# mutation round 47 (mut47c): vsent.cli.card mutants the suite missed


def test_cli_card_to_standard_output_is_the_card_exactly(run_dir, capsys):
    """Markdown on standard output is the text --out would hold, byte for byte (print would
    add a blank line after the card's own final newline)."""
    ckpt = run_dir / "fold2" / "model.pt"
    assert main(["card", str(ckpt)]) == 0
    assert capsys.readouterr().out == card_markdown(model_card(ckpt))


@pytest.mark.parametrize("text", [
    "my notes\n",
    '{"card_format": "vsent-card/0"}\n',  # another format's JSON (mut51a)
    "[1, 2]\n",  # JSON, but no object: no card, and no traceback (mut51a)
    "# Notes on the model\n",  # Markdown, but not a card's own heading (mut57c)
])
def test_cli_card_keeps_a_text_file_that_is_no_card(run_dir, tmp_path, capsys, text):
    """A text file that is neither a Markdown card nor JSON (the user's notes) is no card:
    kept unless --overwrite, as a checkpoint is."""
    notes = tmp_path / "notes.md"
    notes.write_text(text)
    ckpt = run_dir / "fold2" / "model.pt"
    assert main(["card", str(ckpt), "--out", str(notes)]) == EXIT_USER_ERROR
    assert "exists and is no model card" in capsys.readouterr().err
    assert notes.read_text() == text


def test_cli_card_that_cannot_be_written_is_one_line_and_exit_2(run_dir, tmp_path, capsys,
                                                                  monkeypatch):
    """A write that fails (permission, a read-only file system) says so in one line, exit 2,
    no traceback."""
    import errno

    import vsent.files

    def denied(path, text):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(vsent.files, "atomic_write_text", denied)
    out = tmp_path / "card.md"
    assert main(["card", str(run_dir / "fold2" / "model.pt"), "--out", str(out)]) \
        == EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        f"vsent: error: --out {out}: cannot write it (Permission denied)\n")


# mutation round 47 (mut47e): vsent.models.card mutants the suite missed


def _rewrite_checkpoint(path: Path, edit: Callable[[dict], object]) -> None:
    """Rewrite a saved checkpoint with ``edit(ckpt)`` applied (a file damaged or renamed)."""
    import torch

    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


def test_card_of_a_checkpoint_whose_class_names_miss_an_output_is_refused(tmp_path):
    # a card of a file that predict cannot score would describe a model nobody can use
    path = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn"))
    _rewrite_checkpoint(path, lambda c: c.update(class_names=["negative"]))
    with pytest.raises(WeightsError, match="not a complete vsent checkpoint"):
        model_card(path)


def test_card_takes_the_family_the_checkpoint_records_over_its_names(tmp_path):
    # a name no registry knows (a renamed or plugin model) still has the family it was saved with
    path = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn"))
    _rewrite_checkpoint(path, lambda c: c["spec"].update(name="mynet"))
    card = model_card(path)
    assert card["model"]["name"] == "mynet" and card["model"]["family"] == "smallcnn"


def test_card_names_the_interpolation_the_models_info_states_for_its_weights(tmp_path):
    # timm and open_clip models record their weights' resampling in info.extra
    path = save_checkpoint(tmp_path / "m.pt", create_model("smallcnn"), init="imagenet")
    _rewrite_checkpoint(path, lambda c: c["info"].update(extra={"interpolation": "bicubic"}))
    card = model_card(path)
    assert card["preprocess"]["weights_interpolation"] == "bicubic"
    assert "- Interpolation: bilinear (vsent); the weights were trained with bicubic" in \
        card_markdown(card)


def test_card_names_the_weights_file_as_the_checkpoint_records_it(run_dir, monkeypatch):
    # a run of an older vsent recorded --init as typed (relative): the same file, but only the
    # checkpoint's absolute record names it from any folder
    monkeypatch.chdir(run_dir.parent)
    (run_dir.parent / "w.pt").write_bytes(b"weights")
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "init": "w.pt"}))
    weights = str(run_dir.parent / "w.pt")
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run_dir), train=config["train"], subset="four", init=weights)
    card = model_card(run_dir / "fold2" / "model.pt")
    assert card["metrics"] is not None  # the run's own model: its records are read
    assert card["weights"]["init"] == card["weights"]["location"] == weights


def test_an_export_counts_its_outputs_even_where_it_names_only_two_classes():
    # export_module without class names stores negative/positive, also for a 4096-wide fc7
    # ablation: the card's width is the network's, not the length of that default list
    import dataclasses
    from types import SimpleNamespace

    from vsent.models.card import export_card

    info = dataclasses.replace(create_model("smallcnn").info, num_outputs=4096)
    exported = SimpleNamespace(
        card=None, info=info, spec={"name": "smallcnn", "num_classes": 2},
        class_names=["negative", "positive"], path="m.onnx", engine="onnx",
        metadata={"vsent.format": "onnx"})
    assert export_card(exported)["model"]["num_classes"] == 4096


def test_weights_nobody_recorded_are_not_recorded_not_a_weights_file(tmp_path):
    from vsent.models.card import describe_weights

    assert describe_weights("smallcnn", "smallcnn", None) == {
        "init": None, "source": None, "library": None, "tag": None, "licence": None,
        "location": None}
    card = model_card(save_checkpoint(tmp_path / "m.pt", create_model("smallcnn")))
    text = card_markdown(card)
    assert "- Source: not recorded" in text
    # the versions' source is said once, above their list, not again as a version
    assert "Recorded: checkpoint\n" in text and "- source:" not in text


def test_a_metric_of_zero_is_printed_not_left_blank(tmp_path):
    # a model that answers one class has recall 0 on the other: 0.0000, not an empty cell
    card = model_card(save_checkpoint(tmp_path / "m.pt", create_model("smallcnn")))
    zero = {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    card["metrics"] = {"evaluation": "center", "held_out_fold": 3,
                       "held_out": {"center": zero}}
    assert "| center | 0.5000 | 0.0000 | 0.0000 | 0.0000 |" in card_markdown(card)
    card["metrics"] = {"evaluation": "center", "n_folds": 2, "fold": zero,
                       **{m: {"mean": 0.25, "std": 0.25} for m in zero}}
    assert "| recall | 0.2500 | 0.2500 | 0.0000 |" in card_markdown(card)


def test_card_states_the_late_fusion_weights_of_network_and_classifier(tmp_path):
    card = model_card(save_checkpoint(tmp_path / "m.pt", create_model("smallcnn")))
    card["fusion"] = {"weight": 0.7, "classifier": "logreg", "features": "colour", "C": 1.0,
                      "rule": "mean", "n_train": 10}
    assert "P(positive) = 0.7 x network + 0.3 x logreg on colour (mean rule; C 1, fitted on " \
           "10 training images)" in card_markdown(card)
    card["fusion"]["bow_words"] = 500
    assert "10 training images, BoW of 500 words)" in card_markdown(card)
    assert "- Options: none\n" in card_markdown(card)  # smallcnn at its defaults


def test_a_zero_shot_fold_model_outside_its_run_keeps_its_recorded_held_out_count(tmp_path):
    # scored on its fold's 5 test images: the count it records, though no folds.json is near
    path = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn"), fold=2, n_test=5,
                           training="zero-shot")
    t = model_card(path)["training"]
    assert (t["fold"], t["n_train"], t["n_test"]) == (2, None, 5)


def test_card_counts_the_extra_images_the_checkpoint_records_without_the_runs_file(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    save_checkpoint(run_dir / "fold2" / "model.pt", create_model("smallcnn"), fold=2,
                    run=str(run_dir), train=config["train"], subset="four",
                    extra_train="three", n_extra=7, extra_schedule="progressive")
    extra = model_card(run_dir / "fold2" / "model.pt")["training"]["extra"]
    assert extra == {"subset": "three", "n_images": 7, "schedule": "progressive"}


def test_an_onnx_name_in_capitals_or_a_misnamed_pickle_gets_the_right_readers_reason(
        tmp_path):
    # M.ONNX is an ONNX name too; a legacy torch.save pickle named .onnx is the checkpoint's
    import torch

    pytest.importorskip("onnx")
    (tmp_path / "EMPTY.ONNX").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"EMPTY\.ONNX: not a readable ONNX export \(an empty "
                                           r"file\)$"):
        model_card(tmp_path / "EMPTY.ONNX")
    torch.save({"x": 1}, tmp_path / "p.onnx", _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match=r"p\.onnx: not a vsent checkpoint \(format None"):
        model_card(tmp_path / "p.onnx")


def test_an_export_keeps_its_stored_cards_word_that_random_weights_have_no_interpolation():
    # a timm network trained from random weights: its library's bicubic is no weights' recipe
    import dataclasses
    from types import SimpleNamespace

    from vsent.models.card import export_card

    info = create_model("smallcnn").info
    info = dataclasses.replace(info, extra={"interpolation": "bicubic"})
    stored = {"preprocess": {"interpolation": "bilinear", "weights_interpolation": None}}
    exported = SimpleNamespace(
        card=stored, info=info, spec={"name": "smallcnn", "num_classes": 2},
        class_names=["negative", "positive"], path="m.onnx", engine="onnx",
        metadata={"vsent.format": "onnx"})
    assert export_card(exported)["preprocess"]["weights_interpolation"] is None
    exported.card = None  # no card stored: the export's own word
    assert export_card(exported)["preprocess"]["weights_interpolation"] == "bicubic"


def test_family_of_a_registered_name_is_its_modules_and_of_an_unknown_name_unknown():
    from vsent.models.card import family_of

    assert family_of("resnet18") == "torchvision"  # (registered by torchvision_models)
    assert family_of("caffenet") == "caffenet"
    assert family_of("nosuchnet") == "unknown"


def test_card_of_a_checkpoint_without_versions_takes_its_runs(run_dir):
    # a checkpoint saved before it recorded versions: the run's versions.json, said so
    path = run_dir / "fold2" / "model.pt"
    _rewrite_checkpoint(path, lambda c: [c.pop("versions", None),
                                         c["meta"].pop("versions", None)])
    versions = model_card(path)["versions"]
    assert (versions["source"], versions["vsent"], versions["torch"]) == ("run", "9.9.9", "1.2.3")
    # mut54c K37: neither records them: this process's versions, said to be the current ones
    (run_dir / "versions.json").unlink()
    versions = model_card(path)["versions"]
    assert (versions["source"], versions["vsent"]) == ("current", __version__)
