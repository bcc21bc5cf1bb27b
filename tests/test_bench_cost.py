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
