"""bench/plot_accuracy_cost.py: the cost model behind the README's accuracy-against-cost plot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    # --weight inner (L5): its inner crossval runs are trained too, and costed as such
    inner = fused / "inner"
    for k in (1, 2):
        _crossval(inner, f"fold{k}", "smallcnn", [300, 300], 0.7)  # 1,200 image-epochs each
        shutil.move(inner / "accuracy" / f"fold{k}", inner / f"fold{k}")
    assert costs.minutes(fused)[0] == pytest.approx(0.6 + 0.5)  # (weight 0.5: not inner runs)
    _write(fused / "config.json", {"command": "fuse", "run": "/x/runs/i10/a",
                                   "features": "gch+bow", "weight": "inner"})
    total, parts = costs.minutes(fused)
    assert total == pytest.approx(0.6 + 0.5 + 2 * 1200 / 100 / 60)
    assert [p.split(":")[0] for p in parts][-2:] == ["inner/fold1", "inner/fold2"]
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
    monkeypatch.setattr(_common.sys, "argv", ["bench/bench_core.py", "--out", "a b.json"])
    _common.write_json(out, {"v": 1})
    written = json.loads(out.read_text())
    # with how it was made and where (reports38 #4): 12 of 15 files said neither
    assert written.pop("command") == "python bench/bench_core.py --out 'a b.json'"
    assert set(written.pop("machine")) >= {"cpus", "cpu", "cpu_capability", "loadavg"}
    assert written == {"v": 1}

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(vsent.files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _common.write_json(out, {"v": 2})
    assert json.loads(out.read_text())["v"] == 1  # the committed file stays whole
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
    # rates of each repeat, in the script's order: forward, vsent, vsent_inline, torchvision
    rates = iter([10.0, 8.0, 8.5, 6.0, 10.0, 20.0, 16.0, 5.0])
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
    assert doc["vsent_over_vsent_inline_per_repeat"] == pytest.approx([8 / 8.5, 1.25])
    assert len(doc["machine"]["loadavg_before"]) == 3 and len(doc["machine"]["loadavg_after"]) == 3
    err = capsys.readouterr().err
    assert "warning: 4 images for batches of 4" in err and "vsent/forward above 1" in err


def test_plot_accuracy_cost_says_a_missing_bench_file_in_one_line(tmp_path, capsys):
    """bench42 #8: "error: /x.json: [Errno 2] ..." and exit 1, unlike every bench script."""
    missing = tmp_path / "train.json"
    assert plot_accuracy_cost.main(["--bench", str(missing), "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err == (f"plot_accuracy_cost.py: error: {missing}: no such file "
                                       "or directory\n")
    missing.write_text("{")
    assert plot_accuracy_cost.main(["--bench", str(missing), "--out", str(tmp_path / "a")]) == 2
    assert f"plot_accuracy_cost.py: error: {missing}: not JSON (" in capsys.readouterr().err


def test_bench_train_refuses_a_single_epoch(capsys):
    import bench_train

    with pytest.raises(SystemExit) as stop:
        bench_train.main(["--epochs", "1", "--recipes", "quick"])
    assert stop.value.code == 2
    assert "--epochs 1: give at least 2 (the first epoch warms up" in capsys.readouterr().err


def test_device_data_refuses_a_folder_that_is_not_twitter_before_writing(tmp_path, capsys):
    """bench42 #6: a traceback, and a copy holding the labels and folds without images."""
    import device_data

    src = tmp_path / "tw"
    (src / "folds").mkdir(parents=True)
    dst = tmp_path / "copy"
    assert device_data.main([str(src), str(dst)]) == 2
    assert capsys.readouterr().err == (f"device_data.py: error: {src}: not a Twitter I folder "
                                       "(no ground_truth or images folder)\n")
    assert not dst.exists()


def test_bench_serve_without_httpx_says_so_in_one_line():
    """bench42 #4: httpx is a dev dependency, in no extra; its absence was a traceback."""
    code = ("import runpy, sys; sys.modules['httpx'] = None; sys.argv = ['bench_serve.py']; "
            f"sys.path.insert(0, {str(BENCH)!r}); "
            f"runpy.run_path({str(BENCH / 'bench_serve.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == ("bench_serve.py: error: needs httpx (the dev dependency group: `uv run` "
                           "installs it; or pip install httpx)\n")


def test_bench_layers_makes_its_work_folder(tmp_path, monkeypatch):
    """bench42 #5: a --work folder that did not exist was a traceback."""
    import bench_layers

    def child(args):
        work = Path(args[args.index("--work") + 1])
        assert work.parent == tmp_path / "new" / "work"
        return {"seconds": 1.0, "gram_seconds": 0.5, "classifier_seconds": 0.5,
                "peak_rss_mb": 1.0}

    monkeypatch.setattr(bench_layers, "_child", child)
    out = tmp_path / "layers.json"
    assert bench_layers.main(["--n", "4", "--folds", "1", "--scale", "0.0001", "--extract", "0",
                              "--work", str(tmp_path / "new" / "work"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["table"]["seconds"] == 1.0


def test_bench_train_checks_the_fusion_run_first_and_records_its_data(tmp_path, monkeypatch,
                                                                      capsys):
    """bench42 #2, #3: a wrong --fusion-run stopped the script after every recipe had trained
    (minutes lost, no JSON), and the JSON named --data for fusions made on the run's data."""
    import bench_train

    def no_training(*a, **k):
        raise AssertionError("trained before the fusion run was checked")

    monkeypatch.setattr(bench_train, "load_dataset", no_training)
    assert bench_train.main(["--recipes", "quick", "--fusions", "cues", "--data", "d",
                             "--fusion-run", str(tmp_path / "nope")]) == 2
    assert f"bench_train.py: error: {tmp_path / 'nope'}: no such file or directory" in \
        capsys.readouterr().err
    half = tmp_path / "half"  # a run without predictions: not finished
    half.mkdir()
    (half / "config.json").write_text(json.dumps({"command": "crossval", "data": "/x"}))
    assert bench_train.main(["--recipes", "quick", "--fusions", "cues", "--data", "d",
                             "--fusion-run", str(half)]) == 2
    assert "not a finished crossval run (--fusion-run) (needs config.json and predictions.csv)" \
        in capsys.readouterr().err

    (half / "predictions.csv").write_text("name,fold,prob_positive\n")
    # a run whose data is not on this machine (the committed one elsewhere: review42 F3)
    assert bench_train.main(["--recipes", "quick", "--fusions", "cues", "--data", "d",
                             "--fusion-run", str(half)]) == 2
    assert f"{half / 'config.json'}: its data /x is not found" in capsys.readouterr().err
    (half / "config.json").write_text(json.dumps({"command": "crossval", "data": str(tmp_path)}))
    folds = [type("Fold", (), {"train": np.arange(4)})()]
    monkeypatch.setattr(bench_train, "load_dataset", lambda data, subset: "base")
    monkeypatch.setattr(bench_train, "make_folds", lambda base, spec: folds)
    monkeypatch.setattr(bench_train, "_setup", lambda name, *a: (
        "smallcnn", {}, bench_train.CROSSVAL["quick"]["train"], np.zeros((4, 8, 8, 3)), None))
    monkeypatch.setattr(bench_train, "create_model", lambda *a, **k: None)
    epoch = {"images_per_s": 10.0, "seconds": 1.0, "data_wait_share": 0.1}
    monkeypatch.setattr(bench_train, "fit", lambda *a, **k: [epoch, epoch])
    monkeypatch.setattr(bench_train, "fuse_run", lambda run, features, **k: {"rows": [{}] * 3})
    out = tmp_path / "train.json"
    assert bench_train.main(["--recipes", "quick", "--fusions", "cues", "--data", "d",
                             "--rounds", "1", "--fusion-run", str(half), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["data"] == "d" and doc["fusion_data"] == str(tmp_path)
    assert doc["fusions"][0]["images"] == 3


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
    assert doc["options"]["subset"] == "five" and doc["parts_s"]["five"]["svm_s"] == 0.1
    # the command line, as every script records it, and the machine's usual record (bench42 #8)
    assert doc["command"].startswith("python ") and doc["machine"]["cpus"] == os.cpu_count()
    assert {"cpu", "loadavg_before", "loadavg_after"} <= set(doc["machine"])


# --- audit cli25: one data default, recorded; one-line errors; every part and script runs -----


def _jpegs(folder: Path, n: int) -> Path:
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (50, 40), (40 * i, 0, 0)).save(folder / "images" / f"{i}.jpg")
    return folder


def test_bench_data_has_one_default_and_a_named_folder_without_images_stops(tmp_path,
                                                                            monkeypatch, capsys):
    import _common

    monkeypatch.delenv("VSENT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/datasets/twitter1 from here
    assert _common.dataset_jpegs(None, 3) == ([], {"data": None, "images_source": "generated"})
    assert "warning: no data set at ../shared/datasets/twitter1" in capsys.readouterr().err
    with pytest.raises(VsentError, match="^the default data .*: no JPEG images"):
        _common.dataset_jpegs(None, 3, required=True)
    data = _jpegs(tmp_path / "tw", 2)
    monkeypatch.setenv("VSENT_DATA", str(data))  # the default, as for the vsent commands
    paths, record = _common.dataset_jpegs(None, None)
    assert len(paths) == 2 and record == {"data": str(data), "images_source": "dataset"}
    monkeypatch.setenv("VSENT_DATA", str(tmp_path / "typo"))  # named: no fallback
    with pytest.raises(VsentError, match=r"^\$VSENT_DATA .*typo: no JPEG images"):
        _common.dataset_jpegs(None, 3)
    with pytest.raises(VsentError, match=r"^--data .*typo: no JPEG images in .*typo/images"):
        _common.dataset_jpegs(str(tmp_path / "typo"), 3)
    for script in BENCH.glob("bench_*.py"):  # the default is _common's, nowhere else
        code = script.read_text().split('"""', 2)[-1]  # past the docstring's usage line
        assert "datasets/twitter1" not in code and "VSENT_DATA" not in code, script.name


def test_bench_core_and_regions_record_their_images_and_stop_on_a_wrong_data(tmp_path,
                                                                             monkeypatch, capsys):
    import bench_core
    import bench_regions
    import torch

    for script in (bench_core, bench_regions):
        out = tmp_path / "typo.json"
        assert script.main(["--data", str(tmp_path / "typo"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (f"{script.__name__}.py: error: --data {tmp_path / 'typo'}: no JPEG images "
                       f"in {tmp_path / 'typo' / 'images'}\n")
        assert not out.exists()
    data = _jpegs(tmp_path / "tw", 3)
    seen = []
    monkeypatch.setattr(bench_core, "bench_inference", lambda name, paths, *a: seen.append(paths))
    monkeypatch.setattr(bench_core, "bench_training", lambda *a: {})
    out = tmp_path / "core.json"
    assert bench_core.main(["--data", str(data), "--models", "smallcnn", "--n", "2", "--out",
                            str(out)]) == 0
    assert seen == [sorted((data / "images").glob("*.jpg"))[:2]]
    doc = json.loads(out.read_text())
    assert (doc["data"], doc["images_source"]) == (str(data), "dataset")
    # CPUs and threads, each under its own name
    assert doc["machine"]["cpus"] == os.cpu_count()
    assert doc["machine"]["torch_threads"] == torch.get_num_threads()
    monkeypatch.setattr(bench_regions, "bench_proposals", lambda images, *a: len(images))
    monkeypatch.setattr(bench_regions, "bench_scoring", lambda *a: {})
    out = tmp_path / "regions.json"
    assert bench_regions.main(["--data", str(data), "--n", "5", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert (doc["data"], doc["images_source"], doc["proposals"]) == (str(data), "dataset", 3)
    # the scoring's boxes come from vsent's default side, whatever --sides (bench42 #7)
    from vsent.analyses.proposals import ProposalConfig

    assert doc["scoring_proposal_side"] == ProposalConfig.max_side == 320


def test_bench_baselines_says_a_wrong_data_in_one_line(tmp_path, capsys):
    import bench_baselines

    out = tmp_path / "b.json"
    assert bench_baselines.main(["--data", str(tmp_path / "none"), "--subset", "five",
                                 "--features", "gch", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench_baselines.py: error: ") and "none" in err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()


def test_bench_backbones_warms_up_and_records_a_failed_model_and_goes_on(tmp_path, monkeypatch,
                                                                         capsys):
    import bench_backbones

    calls = []

    class Engine:
        def __init__(self, key):
            self.key = key

        def score(self, paths):
            calls.append((self.key, len(paths)))
            return [{"prob_positive": 0.5} for _ in paths]

    monkeypatch.setattr(bench_backbones, "export_model", lambda ckpt, out: {"out": out})
    monkeypatch.setattr(bench_backbones.Predictor, "from_checkpoint",
                        lambda *a, **k: Engine("torch"))
    monkeypatch.setattr(bench_backbones.ExportedPredictor, "from_file",
                        lambda *a, **k: Engine("onnxruntime"))
    out = tmp_path / "backbones.json"
    assert bench_backbones.main(["--models", "nosuch", "smallcnn", "--n", "4", "--batch-size",
                                 "2", "--repeats", "2", "--no-frozen", "--out", str(out)]) == 1
    # one unmeasured batch per engine before the first measured repeat
    assert calls == [("torch", 2), ("onnxruntime", 2), *[("torch", 4), ("onnxruntime", 4)] * 2]
    doc = json.loads(out.read_text())
    failed, done = doc["results"]
    assert failed["model"] == "nosuch" and "nosuch" in failed["error"]
    assert done["model"] == "smallcnn" and len(done["ratio_onnx_torch_per_repeat"]) == 2
    assert doc["failed"] == ["nosuch"] and doc["images_source"] == "generated"
    assert "bench_backbones.py: failed: nosuch" in capsys.readouterr().err


def test_bench_core_and_regions_record_a_failed_model_and_go_on(tmp_path, monkeypatch, capsys):
    import bench_core
    import bench_regions

    data = _jpegs(tmp_path / "tw", 2)

    def inference(name, *a):
        if name == "nosuch":
            raise RuntimeError("no weights for nosuch")
        return {"center": name}

    monkeypatch.setattr(bench_core, "bench_inference", inference)
    monkeypatch.setattr(bench_core, "bench_training", lambda name, *a: {"train": name})
    out = tmp_path / "core.json"
    assert bench_core.main(["--data", str(data), "--models", "nosuch", "smallcnn", "--n", "2",
                            "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert doc["models"]["nosuch"]["inference"] == {
        "error": "RuntimeError: no weights for nosuch"}
    assert doc["models"]["nosuch"]["training"] == {"train": "nosuch"}
    assert doc["models"]["smallcnn"] == {"inference": {"center": "smallcnn"},
                                         "training": {"train": "smallcnn"}}
    assert doc["failed"] == ["nosuch inference"]
    assert f"bench_core.py: failed: nosuch inference (their errors are in {out})" in (
        capsys.readouterr().err)

    monkeypatch.setattr(bench_regions, "bench_proposals", lambda *a: {})
    out = tmp_path / "regions.json"
    assert bench_regions.main(["--data", str(data), "--n", "2", "--n-proposals", "5",
                               "--models", "nosuch", "smallcnn", "--batch-size", "4",
                               "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert "nosuch" in doc["scoring"]["nosuch"]["error"]
    assert doc["scoring"]["smallcnn"]["score_s"] > 0 and doc["failed"] == ["nosuch scoring"]
    assert "bench_regions.py: failed: nosuch scoring" in capsys.readouterr().err


def test_bench_predict_scale_records_a_failed_run_and_goes_on(tmp_path, monkeypatch, capsys):
    import bench_predict_scale

    def run_one(cmd, out, n, timeout):
        if "ray" in cmd:
            raise bench_predict_scale.RunFailed("exit 2, 0 rows of 3", "vsent: error: no ray")
        return {"n": n, "images_per_s": 1.0, "driver_peak_rss_mb": 1.0, "tree_peak_rss_mb": 1.0}

    monkeypatch.setattr(bench_predict_scale, "run_one", run_one)
    out = tmp_path / "scale.json"
    assert bench_predict_scale.main(["--counts", "2", "3", "--engines", "ray", "default",
                                     "--workdir", str(tmp_path / "w"), "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert [(r["engine"], r["n"], "error" in r) for r in doc["results"]] == [
        ("ray", 2, True), ("default", 2, False), ("ray", 3, True), ("default", 3, False)]
    assert doc["results"][0]["stderr_tail"] == "vsent: error: no ray"
    assert set(doc["peak_rss_ratio_largest_over_smallest_count"]) == {"default"}
    assert len(doc["failed"]) == 2
    assert "bench_predict_scale.py: failed: ray on 2: exit 2" in capsys.readouterr().err


def test_bench_predict_scale_tree_peak_is_at_least_the_process_own(tmp_path):
    """The process tree held the command's own peak at its moment: a short peak that the
    0.2 s polling misses still counts (bench42 #1: the tree's 709 MB under vsent's 752)."""
    import bench_predict_scale

    out = tmp_path / "out.csv"
    # a 300 MB peak for a few ms, then 0.6 s at rest: the polls see the rest
    script = ("import time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); "
              "del b; time.sleep(0.6); "
              f"open({str(out)!r}, 'w').write('path\\na\\nb\\n')")
    r = bench_predict_scale.run_one([sys.executable, "-c", script], out, 2, timeout=60)
    assert r["n"] == 2 and r["driver_peak_rss_mb"] > 300
    assert r["tree_peak_rss_mb"] >= r["driver_peak_rss_mb"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_bench_runs_every_script_passes_data_and_lists_the_failures(tmp_path):
    log = tmp_path / "log"
    uv = tmp_path / "uv"  # stands for `uv run ... python SCRIPT`: logs, fails for two scripts
    uv.write_text(f'#!/bin/sh\necho "$VSENT_DATA $*" >> {log}\n'
                  'case "$*" in *bench_core.py|*bench_train.py) exit 1;; esac\n')
    uv.chmod(0o755)
    done = subprocess.run(["make", "-s", "bench", f"UV={uv}", f"DATA={tmp_path / 'tw'}"],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = log.read_text().splitlines()
    expected = [*sorted(f"bench/{p.name}" for p in BENCH.glob("bench_*.py")),
                "bench/plot_accuracy_cost.py"]
    assert [line.split()[-1] for line in lines] == expected
    assert all(line.startswith(f"{tmp_path / 'tw'} run ") for line in lines)
    assert "make bench: failed: bench/bench_core.py bench/bench_train.py" in done.stderr


def test_bench_layers_docstring_gives_the_bytes_per_image_of_its_json():
    import bench_layers

    size = 4 * sum(bench_layers.CAFFENET_DIMS.values())
    committed = json.loads((BENCH / "results" / "layers.json").read_text())
    assert committed["extract"]["bytes_per_image"] == size
    assert f"{size:,} bytes = {size / 1e6:.1f} MB per image" in " ".join(
        bench_layers.__doc__.split())
