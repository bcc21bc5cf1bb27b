"""bench/plot_accuracy_cost.py: the cost model behind the README's accuracy-against-cost plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import plot_accuracy_cost  # noqa: E402

from vsent.errors import VsentError  # noqa: E402

BENCH_JSON = {"results": [{"recipe": "quick", "images_per_s": 100.0},
                          {"recipe": "r5", "images_per_s": 10.0}],
              "fusions": [{"features": "gch+bow", "fusion_minutes": 0.5}]}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _crossval(results: Path, name: str, model: str, epochs_images: list[int], acc: float,
              **config) -> Path:
    """A crossval run whose 2 folds each trained ``epochs_images`` images per epoch."""
    run = results / "accuracy" / name
    _write(run / "config.json", {"command": "crossval", "model": model,
                                 "train": {"augment": "none"}, **config})
    for k in (1, 2):
        # images/s x seconds = images seen in the epoch
        _write(run / f"fold{k}" / "history.json",
               [{"images_per_s": 50.0, "seconds": n / 50.0} for n in epochs_images])
    _write(run / "summary.json", {"accuracy": {"mean": acc, "std": 0.01}})
    return run


def test_a_run_costs_its_trained_images_at_the_bench_rate_and_compositions_add(tmp_path):
    results = tmp_path / "results"
    small = _crossval(results, "a", "smallcnn", [600, 600, 600], 0.7)  # 3,600 image-epochs
    res = _crossval(results, "b", "resnet18", [300], 0.72, model_kwargs={"image_size": 64})
    _write(results / "accuracy" / "ens" / "config.json",
           {"command": "ensemble", "runs": ["/elsewhere/runs/i10/a", "runs/i10/b"]})
    fused = results / "accuracy" / "a-l1"
    _write(fused / "config.json", {"command": "fuse", "run": "/x/runs/i10/a",
                                   "features": "gch+bow"})
    _write(fused / "summary.json", {"fused": {"accuracy": {"mean": 0.75, "std": 0.04}}})
    costs = plot_accuracy_cost.CostModel(BENCH_JSON, results)

    assert costs.minutes(small)[0] == pytest.approx(3600 / 100 / 60)
    assert costs.minutes(res)[0] == pytest.approx(600 / 10 / 60)  # r5's rate, not quick's
    ens, parts = costs.minutes(results / "accuracy" / "ens")
    assert ens == pytest.approx(0.6 + 1.0) and len(parts) == 2
    assert costs.minutes(fused)[0] == pytest.approx(0.6 + 0.5)
    assert plot_accuracy_cost.accuracy(fused) == (0.75, 0.04, True)
    assert plot_accuracy_cost.accuracy(small) == (0.7, 0.01, False)

    # a recipe or fusion the bench did not measure is named, not guessed
    wide = _crossval(results, "w", "smallcnn", [10], 0.7, model_kwargs={"widths": [8, 8]})
    with pytest.raises(VsentError, match="bench recipe 'w1' not measured"):
        costs.minutes(wide)
    _write(fused / "config.json", {"command": "fuse", "run": "a", "features": "gch+fv"})
    with pytest.raises(VsentError, match="fusion 'gch\\+fv' not measured"):
        costs.minutes(fused)


@pytest.mark.parametrize(("model", "kwargs", "train", "recipe"), [
    ("smallcnn", {}, {}, "quick"),
    ("smallcnn", {}, {"augment": "trivial"}, "r3"),
    ("smallcnn", {}, {"augment": "trivial", "mix": "mixup|cutmix"}, "m1"),
    ("smallcnn", {"image_size": 96}, {"augment": "trivial"}, "r4"),
    ("smallcnn", {"widths": [64, 128, 256, 512]}, {}, "w1"),
    ("resnet18", {"image_size": 64}, {"augment": "trivial"}, "r5"),
    ("resnet18", {"image_size": 96}, {"augment": "trivial"}, "r6"),
])
def test_each_configuration_is_costed_with_the_bench_recipe_of_its_network(model, kwargs, train,
                                                                          recipe):
    config = {"model": model, "model_kwargs": kwargs, "train": train}
    assert plot_accuracy_cost.bench_recipe(config) == recipe


# --- audit 22: atomic JSON, side-by-side ratios, warm-up epochs, the baselines' file ----------


def test_bench_json_is_written_atomically_by_every_script(tmp_path, monkeypatch):
    import _common

    import vsent.files

    out = tmp_path / "results" / "core.json"
    _common.write_json(out, {"v": 1})
    assert json.loads(out.read_text()) == {"v": 1}

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(vsent.files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _common.write_json(out, {"v": 2})
    assert json.loads(out.read_text()) == {"v": 1}  # the committed file stays whole
    assert [p.name for p in out.parent.iterdir()] == ["core.json"]
    for script in BENCH.glob("*.py"):  # no script writes its JSON another way
        assert ".write_text(json.dumps" not in script.read_text(), script.name


def test_paired_ratios_are_per_repeat_and_an_impossible_one_is_flagged(capsys):
    import _common

    got = _common.paired_ratios([8.0, 9.0, 4.0], [10.0, 10.0, 5.0], what="vsent/forward",
                                at_most_one=True)
    assert got["per_repeat"] == pytest.approx([0.8, 0.9, 0.8])
    assert got["median"] == pytest.approx(0.8) and not got["impossible"]
    assert capsys.readouterr().err == ""
    # end to end faster than its pure forward in one repeat: the load changed within it
    got = _common.paired_ratios([36.2, 9.0], [17.9, 10.0], what="vsent/forward",
                                at_most_one=True)
    assert got["impossible"] and "warning: vsent/forward above 1" in capsys.readouterr().err
    assert not _common.paired_ratios([2.0], [1.0], what="onnx/torch")["impossible"]


def test_bench_inference_records_the_load_and_each_repeats_ratios(tmp_path, monkeypatch,
                                                                  capsys):
    import bench_inference
    import numpy as np
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 50, 3), 40 * i, np.uint8)).save(tmp_path / f"images/{i}.jpg")
    # rates of each repeat, in the script's order: forward, vsent, torchvision
    rates = iter([10.0, 8.0, 6.0, 10.0, 20.0, 5.0])
    monkeypatch.setattr(bench_inference, "_rate", lambda fn, n: next(rates))
    out = tmp_path / "inference.json"
    monkeypatch.setattr("sys.argv", ["bench_inference.py", "--data", str(tmp_path), "--model",
                                     "smallcnn", "--batch-size", "4", "--repeats", "2",
                                     "--loader-workers", "0", "--out", str(out)])
    bench_inference.main()
    doc = json.loads(out.read_text())
    assert doc["vsent_over_forward_per_repeat"] == [0.8, 2.0]
    assert doc["vsent_over_forward_median"] == pytest.approx(1.4)
    assert doc["vsent_over_forward_impossible"] is True
    assert doc["vsent_over_torchvision_per_repeat"] == pytest.approx([8 / 6, 4.0])
    assert len(doc["machine"]["loadavg_before"]) == 3 and len(doc["machine"]["loadavg_after"]) == 3
    err = capsys.readouterr().err
    assert "warning: 4 images for batches of 4" in err and "vsent/forward above 1" in err


def test_bench_train_refuses_a_single_epoch(capsys):
    import bench_train

    with pytest.raises(SystemExit) as stop:
        bench_train.main(["--epochs", "1", "--recipes", "quick"])
    assert stop.value.code == 2
    assert "--epochs 1: give at least 2 (the first epoch warms up" in capsys.readouterr().err


def test_bench_baselines_writes_the_file_make_bench_refreshes(tmp_path, monkeypatch):
    import bench_baselines

    table = {"timings": {"total_s": 1.0, "five": {"extract_s": 0.5, "folds": [{"svm_x": 0.1}]}},
             "rows": []}
    monkeypatch.setattr(bench_baselines, "run_baselines", lambda *a, **k: table)
    # the default is the committed file, wherever the script is run from
    assert Path(bench_baselines.__file__).resolve().parent / "results" == bench_baselines.RESULTS
    monkeypatch.setattr(bench_baselines, "RESULTS", tmp_path / "bench" / "results")
    monkeypatch.chdir(tmp_path / "..")
    assert bench_baselines.main(["--data", "x", "--subset", "five"]) == 0
    doc = json.loads((tmp_path / "bench" / "results" / "baselines.json").read_text())
    assert doc["command"]["subset"] == "five" and doc["parts_s"]["five"]["svm_s"] == 0.1
