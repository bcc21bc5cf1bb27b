"""--init random | imagenet | PATH: partial loads, dropped heads, clear errors, offline failures."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import subprocess
import sys
import types
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from vsent.data.transforms import Preprocess
from vsent.errors import WeightsError
from vsent.models import ModelInfo, SentimentModel, create_model, get_model_entry, registry
from vsent.models.caffenet import CAFFENET_IMAGENET, CaffeNet
from vsent.models.weights import (
    PretrainedWeights,
    WeightsFile,
    apply_init,
    load_matching,
    read_state_dict,
    without_wrapper_prefix,
)

LOGGER = "vsent.models.weights"


def _equal(a: torch.nn.Module, b: torch.nn.Module, prefix: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(sa[k], sb[k]) for k in keys)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Empty torch hub cache and a download that fails like a machine without network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def fake_caffe(monkeypatch):
    """Stand-in for vsent.models.caffe whose reader returns a known CaffeNet state dict."""
    torch.manual_seed(1)
    reference = CaffeNet(arch="fc8-1000")
    calls: list[Path] = []

    def load_caffemodel(path):
        calls.append(Path(path))
        return reference.state_dict()

    module = types.ModuleType("vsent.models.caffe")
    module.load_caffemodel = load_caffemodel
    monkeypatch.setitem(sys.modules, "vsent.models.caffe", module)
    return reference, calls


# ---------------------------------------------------------------------------------------------
# PATH


def test_init_from_state_dict_file_loads_equal_values(tmp_path):
    torch.manual_seed(0)
    source = create_model("smallcnn", widths=(8, 16))
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    fresh = create_model("smallcnn", widths=(8, 16))
    assert not _equal(source, fresh)
    loaded = create_model("smallcnn", widths=(8, 16), init=path)
    assert _equal(source, loaded)
    assert loaded.spec == {"name": "smallcnn", "num_classes": 2, "widths": (8, 16)}


def test_init_from_checkpoint_dict_and_str_path(tmp_path):
    source = create_model("pcnn", fc_widths=(16, 8, 24))
    path = tmp_path / "ckpt.pth"
    torch.save({"format": "anything", "state_dict": source.state_dict()}, path)
    loaded = create_model("pcnn", fc_widths=(16, 8, 24), init=str(path))
    assert _equal(source, loaded)


def test_head_of_another_width_is_dropped_and_logged(tmp_path, caplog):
    torch.manual_seed(0)
    source = create_model("resnet18", num_classes=5)
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        loaded = create_model("resnet18", num_classes=2, init=path)
    assert _equal(source, loaded, "layer4.")
    assert _equal(source, loaded, "conv1.")
    assert _equal(source, loaded, "bn1.running_mean")
    assert loaded.fc.weight.shape == (2, 512)
    assert "kept freshly initialised: fc.weight, fc.bias" in caplog.text


def test_imagenet_weights_keep_a_chosen_image_size(offline):
    # the weights' statistics, the user's crop (--model-arg image_size=N with --init imagenet)
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    offline.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), offline / url.rsplit("/", 1)[1])
    weights_pre = get_model_entry("resnet18").weights.preprocess
    pre = create_model("resnet18", init="imagenet", image_size=112).info.preprocess
    assert (pre.resize, pre.crop) == (128, 112)
    assert (pre.mean, pre.std, pre.channel_order) == (
        weights_pre.mean, weights_pre.std, weights_pre.channel_order)
    assert create_model("resnet18", init="imagenet").info.preprocess == weights_pre


def test_matching_head_from_a_file_is_loaded(tmp_path):
    # a fine-tuned file used as --init keeps its head when the shapes agree
    source = create_model("caffenet", arch="fc7-2")
    path = tmp_path / "ft.pt"
    torch.save(source.state_dict(), path)
    assert _equal(source, create_model("caffenet", arch="fc7-2", init=path))


def test_missing_head_and_extra_keys_are_fine(tmp_path, caplog):
    source = create_model("smallcnn", widths=(8,))
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(3)  # keys the model lacks are dropped
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        loaded = create_model("smallcnn", widths=(8,), init=path)
    assert _equal(source, loaded)
    assert "dropped keys the model does not have: extra.weight" in caplog.text
    n = len(source.state_dict())  # counted among the model's tensors, not the file's n + 1
    assert f"{path}: loaded {n} of {n} model tensors" in caplog.text

    # a file without the head loads into a variant whose head is new
    cut = create_model("caffenet", arch="fc8-1000").state_dict()
    del cut["fc8.weight"], cut["fc8.bias"]
    torch.save(cut, tmp_path / "no_fc8.pt")
    loaded = create_model("caffenet", arch="fc8-2", init=tmp_path / "no_fc8.pt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in cut.items())


def test_wrong_shape_outside_the_head_is_an_error(tmp_path):
    torch.save(create_model("smallcnn", widths=(8, 16)).state_dict(), tmp_path / "w.pt")
    with pytest.raises(WeightsError, match=r"w\.pt: .*wrong shape: features\.block1\.0\.weight "
                                           r"\(model \(32, 3, 3, 3\), file \(8, 3, 3, 3\)\)"):
        create_model("smallcnn", init=tmp_path / "w.pt")


def test_missing_key_outside_the_head_is_an_error(tmp_path):
    state = create_model("smallcnn", widths=(8,)).state_dict()
    del state["features.block1.1.bias"]
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(WeightsError, match=r"w\.pt: 1 weights missing .*features\.block1\.1"
                                           r"\.bias .*missing"):
        create_model("smallcnn", widths=(8,), init=tmp_path / "w.pt")


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(WeightsError, match=r"nope\.pt: no such file"):
        create_model("smallcnn", init=tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00 this is not a pickle \xff" * 10)
    with pytest.raises(WeightsError, match=r"garbage\.pt: not a PyTorch state dict \(") as err:
        create_model("smallcnn", init=garbage)
    assert "\n" not in str(err.value)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match=r"list\.pt: not a PyTorch state dict .*got list"):
        create_model("smallcnn", init=tmp_path / "list.pt")


class _RunsCode:
    """Pickled as a call to ``os.mkdir(marker)``: what a booby-trapped weights file can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_weights_file_cannot_run_code_when_loaded(tmp_path):
    # --init PATH takes files from the internet: loading must not unpickle arbitrary objects
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 4), "payload": _RunsCode(marker)}, path)
    with pytest.raises(WeightsError, match=r"evil\.pt: not a PyTorch state dict \(") as err:
        create_model("smallcnn", init=path)
    assert not marker.exists()
    assert "got dict" not in str(err.value)  # refused while reading, not after running it


def test_caffemodel_path_goes_through_the_caffe_reader(tmp_path, fake_caffe):
    reference, calls = fake_caffe
    path = tmp_path / "net.caffemodel"
    path.write_bytes(b"protobuf")
    model = create_model("caffenet", arch="fc7-4096", init=path)
    assert calls == [path]
    assert _equal(model, reference)  # fc8 of the file is dropped, the rest loaded


def test_real_caffemodel_round_trip(tmp_path):
    # integration with the real reader: a file written by caffe.export_caffemodel loads back
    caffe = pytest.importorskip("vsent.models.caffe")
    source = CaffeNet(arch="fc8-1000")
    path = caffe.export_caffemodel(tmp_path / "net.caffemodel", source.state_dict())
    model = create_model("caffenet", arch="fc8-2", init=path)
    assert _equal(model, source, "conv")
    assert _equal(model, source, "fc6.") and _equal(model, source, "fc7.")
    assert model.fc8.weight.shape == (2, 4096)
    # the 2-way fc8 is new (the file's is 1000-way): freshly initialised, zero bias
    assert model.fc8.bias.abs().max() == 0 and 0.008 < model.fc8.weight.std() < 0.012


# ---------------------------------------------------------------------------------------------
# imagenet


@pytest.mark.parametrize("name", ["resnet18", "caffenet"])
def test_imagenet_offline_is_a_one_line_error(name, offline):
    with pytest.raises(WeightsError) as err:
        create_model(name, init="imagenet")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot download ImageNet weights for {name} (no network?): download ")
    assert f"into {offline} or pass --init PATH" in msg
    url = (CAFFENET_IMAGENET.url if name == "caffenet"
           else torchvision.models.get_model_weights(name).DEFAULT.url)
    assert url in msg
    assert not offline.exists() or not any(offline.iterdir())  # nothing half-written


def test_download_cut_off_midway_is_the_same_one_line_error(offline, monkeypatch):
    # a connection dropped mid-file raises http.client.IncompleteRead, not an OSError
    def cut(url, dst, *args, **kwargs):
        raise http.client.IncompleteRead(b"partial", 1000)

    monkeypatch.setattr(torch.hub, "download_url_to_file", cut)
    with pytest.raises(WeightsError) as err:
        create_model("caffenet", init="imagenet")
    assert str(err.value) == (
        f"cannot download ImageNet weights for caffenet (no network?): download "
        f"{CAFFENET_IMAGENET.url} into {offline} or pass --init PATH to a weights file")


def test_imagenet_torchvision_from_hub_cache_keeps_head_fresh(offline, caplog):
    # A file already in the torch hub cache is what torchvision loads without network.
    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    offline.mkdir(parents=True)
    torch.save(imagenet.state_dict(), offline / url.rsplit("/", 1)[1])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = create_model("resnet18", num_classes=1000, init="imagenet")
    assert _equal(imagenet, model, "layer")
    assert _equal(imagenet, model, "bn1.")
    # same shape as the file's 1000-way fc, but the head is new by definition
    assert not torch.equal(model.fc.weight, imagenet.fc.weight)
    assert model.fc.bias.abs().max() == 0
    assert "kept freshly initialised: fc.weight, fc.bias" in caplog.text


def test_imagenet_caffenet_downloads_once_and_checks_sha1(offline, fake_caffe, monkeypatch):
    reference, calls = fake_caffe
    content = b"pretend caffemodel"
    downloads = []

    def download(url, dst, *args, **kwargs):
        downloads.append(url)
        Path(dst).write_bytes(content)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    monkeypatch.setattr("vsent.models.caffenet.CAFFENET_IMAGENET", WeightsFile(
        url=CAFFENET_IMAGENET.url, file_name=CAFFENET_IMAGENET.file_name,
        sha1=hashlib.sha1(content).hexdigest()))
    model = create_model("caffenet", arch="fc7-2", init="imagenet")
    assert downloads == [CAFFENET_IMAGENET.url]
    assert calls == [offline / "bvlc_reference_caffenet.caffemodel"]
    state, ref = model.state_dict(), reference.state_dict()
    for key in ("conv1.weight", "conv5.bias", "fc6.weight", "fc6.bias"):
        assert torch.equal(state[key], ref[key])
    assert model.fc7.weight.shape == (2, 4096) and model.fc7.bias.abs().max() == 0
    create_model("caffenet", init="imagenet")  # second time: from the cache
    assert len(downloads) == 1


def test_download_with_wrong_sha1_is_removed(offline, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, *a, **k: Path(dst).write_bytes(b"html error page"))
    weights = WeightsFile(url="http://example.invalid/w.caffemodel", file_name="w.caffemodel",
                          sha1="0" * 40)
    with pytest.raises(WeightsError) as err:
        weights.fetch("caffenet")
    digest = hashlib.sha1(b"html error page").hexdigest()
    assert str(err.value) == (f"{weights.url}: downloaded file has SHA-1 {digest}, "
                              f"expected {'0' * 40}")
    assert not (offline / "w.caffemodel").exists()


def test_a_file_without_a_sha1_is_taken_unhashed(offline, monkeypatch):
    """``sha1=None``: nothing to check the download against, so it is kept and never hashed."""
    from vsent.models import weights as weights_module

    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, *a, **k: Path(dst).write_bytes(b"weights"))
    monkeypatch.setattr(weights_module, "file_digest", lambda *a: pytest.fail("hashed"))
    weights = WeightsFile(url="http://example.invalid/w.pt", file_name="w.pt")
    assert weights.fetch("m") == offline / "w.pt" == weights.fetch("m")  # downloaded, then cached
    assert (offline / "w.pt").read_bytes() == b"weights"
    assert not (offline / "w.pt.sha1-ok").exists()


@pytest.mark.parametrize("name", ["smallcnn", "pcnn"])
def test_imagenet_for_models_without_imagenet_weights(name):
    with pytest.raises(WeightsError, match=f"{name} has no ImageNet weights"):
        create_model(name, init="imagenet")


# ---------------------------------------------------------------------------------------------
# weights records


class _Two(SentimentModel):
    """body (pretrained) -> head (new), for the weights-record tests."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.body = torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(4, num_classes)
        self.info = ModelInfo(name="two", family="two", preprocess=Preprocess(resize=8, crop=4),
                              num_outputs=num_classes, head="head", new_layers=("head",),
                              probe_layers=("body", "head"), cam_layer="body", feature_dim=4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.mean(dim=(2, 3)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def test_imagenet_init_uses_the_weights_record_and_its_preprocessing(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    pretrained = {"body.weight": torch.full((4, 3), 0.5), "body.bias": torch.arange(4.0),
                  "head.weight": torch.ones(2, 4), "head.bias": torch.ones(2)}
    seen: list[torch.nn.Module] = []

    def loader(model):
        seen.append(model)
        return pretrained

    bgr = Preprocess(resize=8, crop=4, mean=(1, 2, 3), std=(4, 5, 6), channel_order="BGR")
    record = PretrainedWeights(loader=loader, preprocess=bgr, source="test", licence="CC0")
    registry.register_model("two", weights=record)(lambda *, num_classes=2: _Two(num_classes))

    random = create_model("two")
    assert random.info.preprocess == Preprocess(resize=8, crop=4)  # the architecture's own
    model = create_model("two", init="imagenet")
    assert seen == [model]
    assert model.info.preprocess == bgr  # the input the weights expect
    assert torch.equal(model.body.weight, pretrained["body.weight"])
    assert torch.equal(model.body.bias, pretrained["body.bias"])
    assert not torch.equal(model.head.weight, pretrained["head.weight"])  # new layer: fresh
    assert dataclasses.replace(model.info, preprocess=random.info.preprocess) == random.info


def test_builtin_weights_records_carry_their_preprocessing():
    caffe = get_model_entry("caffenet").weights
    assert caffe.file == CAFFENET_IMAGENET and caffe.source == CAFFENET_IMAGENET.url
    # Caffe: BGR, 0..255 minus the ImageNet mean (B, G, R) = (104, 117, 123), no scaling
    assert caffe.preprocess.channel_order == "BGR"
    assert caffe.preprocess.mean == (123.0, 117.0, 104.0) and caffe.preprocess.std == (1, 1, 1)
    assert (caffe.preprocess.resize, caffe.preprocess.crop) == (256, 227)
    tv = get_model_entry("resnet50").weights
    assert tv.source == f"torchvision {torchvision.models.ResNet50_Weights.DEFAULT}"
    # torchvision: RGB in 0..1, then (x - 0.485) / 0.229 etc.: in 0..255 units, x 255
    assert tv.preprocess.channel_order == "RGB" and tv.preprocess.crop == 224
    expected_mean = torchvision.models.ResNet50_Weights.DEFAULT.transforms().mean
    assert tv.preprocess.mean == pytest.approx([m * 255 for m in expected_mean])
    assert tv.preprocess.std == pytest.approx([0.229 * 255, 0.224 * 255, 0.225 * 255])
    for name in ("smallcnn", "pcnn"):
        assert get_model_entry(name).weights is None


def test_weights_module_does_not_import_the_registry():
    # weights.py run on its own, not through vsent.models (whose __init__ imports every family):
    # any import of the registry would pull in vsent.models and its families.
    code = """
import importlib.util, pathlib, sys
root = pathlib.Path(importlib.util.find_spec("vsent").origin).parent
spec = importlib.util.spec_from_file_location("weights_alone", root / "models" / "weights.py")
module = sys.modules["weights_alone"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(sorted(n for n in sys.modules if n.startswith("vsent.models")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# messages of --init PATH and of cached files (audit 22, findings 8, 9, 12)


def test_init_file_errors_say_what_the_file_is(tmp_path, monkeypatch):
    model = create_model("smallcnn")
    torch.save(model.state_dict(), tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.pt").write_text("hello\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    expected = {
        "text.pt": "not a PyTorch state dict (not a file written by torch.save)",
        "half.pt": "not a PyTorch state dict (truncated or corrupt: an incomplete file "
                   "(copied or saved part way?))",
        "empty.pt": "not a PyTorch state dict (an empty file)",
        "adir": "a folder; give a weights file (.pt, .pth, .safetensors or .caffemodel)",
    }
    for name, why in expected.items():
        with pytest.raises(WeightsError) as err:
            create_model("smallcnn", init=str(tmp_path / name))
        assert str(err.value) == f"{tmp_path / name}: {why}"
    monkeypatch.chdir(tmp_path)  # a bare folder name is a folder, not a misspelt keyword
    with pytest.raises(WeightsError, match=r"^adir: a folder; give a weights file"):
        create_model("smallcnn", init="adir")


def test_a_data_parallel_state_dict_loads_without_its_module_prefix(tmp_path):
    torch.manual_seed(3)
    source = create_model("smallcnn")
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, tmp_path / "dp.pt")
    model = create_model("smallcnn", init=tmp_path / "dp.pt")
    assert _equal(model, source)
    # not stripped when only some keys have it: those are simply not the model's
    mixed = {("module." + k if k.startswith("fc.") else k): v
             for k, v in source.state_dict().items()}
    torch.save(mixed, tmp_path / "mixed.pt")
    with pytest.raises(WeightsError, match=r"2 weights missing .*fc\.weight .*file missing"):
        create_model("smallcnn", init=tmp_path / "mixed.pt")


@pytest.mark.parametrize("layout, entry, prefix", [
    ("model", "model", ""),  # DeiT, MAE, torchvision's reference scripts
    ("state_dict_ema", "state_dict_ema", ""),  # timm's train script
    ("model_ema", "model_ema", ""),
    ("lightning", "state_dict", "model."),  # a LightningModule with the net as self.model
    ("compiled", "", "_orig_mod."),  # torch.compile
    ("ddp_compiled", "", "module._orig_mod."),
])
def test_training_checkpoint_layouts_load_and_log_what_was_unwrapped(tmp_path, caplog, layout,
                                                                     entry, prefix):
    """Audit 27 #7: these were refused ("expected a dict of tensors, got dict")."""
    torch.manual_seed(4)
    source = create_model("smallcnn")
    state = source.state_dict()
    saved = {
        "model": {"model": state, "epoch": 3, "optimizer": {"state": {}}},
        "state_dict_ema": {"state_dict_ema": state, "epoch": 3},
        "model_ema": {"model_ema": state},
        "lightning": {"state_dict": {"model." + k: v for k, v in state.items()}, "epoch": 3},
        "compiled": {"_orig_mod." + k: v for k, v in state.items()},
        "ddp_compiled": {"module._orig_mod." + k: v for k, v in state.items()},
    }[layout]
    torch.save(saved, tmp_path / "ck.pt")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = create_model("smallcnn", init=tmp_path / "ck.pt")
    assert _equal(model, source)
    assert (f"weights taken from its {entry!r} entry" in caplog.text) == bool(entry)
    assert (f"removed the key prefix {prefix!r}" in caplog.text) == bool(prefix)


def test_a_model_whose_own_keys_have_a_wrapper_prefix_keeps_them():
    from vsent.models.weights import without_wrapper_prefix

    own = {"model.fc.weight": torch.zeros(1), "model.fc.bias": torch.zeros(1)}
    assert without_wrapper_prefix(dict(own), own) == own
    # the prefix goes only where it makes keys match: not for another model's weights
    other = {"model.conv.weight": torch.zeros(1)}
    assert without_wrapper_prefix(other, {"conv.bias": torch.zeros(1)}) == other
    # the prefixes after which most keys match go, not the first after which some do: a model
    # with a submodule named model, saved by a Lightning module (attribute model) under DDP
    mixed = {"weight": torch.zeros(1), "bias": torch.zeros(1),
             "model.weight": torch.zeros(1), "model.bias": torch.zeros(1)}
    saved = {"module.model." + k: v for k, v in mixed.items()}
    assert without_wrapper_prefix(saved, mixed) == mixed


def test_a_dict_with_other_entries_names_the_first_that_is_not_a_tensor(tmp_path):
    state = create_model("smallcnn").state_dict()
    files = {
        "flat.pth": ({**state, "epoch": 3}, "'epoch' is an int, not a tensor"),
        "nested.pth": ({"net": state, "epoch": 3}, "'net' is a dict, not a tensor"),
        "bad_entry.pth": ({"state_dict": {"w": torch.zeros(1), "step": 1.5}},
                          "its 'state_dict' entry: 'step' is a float, not a tensor"),
        "int_keys.pth": ({0: torch.zeros(1)}, "key 0 is not a string"),
        "list.pth": ([torch.zeros(1)], "expected a dict of tensors, got list"),
        "tensor.pth": (torch.zeros(1), "expected a dict of tensors, got Tensor"),
    }
    for name, (obj, why) in files.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(WeightsError) as err:
            create_model("smallcnn", init=tmp_path / name)
        assert str(err.value) == f"{tmp_path / name}: not a PyTorch state dict ({why})"


def test_weights_of_another_architecture_get_a_hint(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pt")
    with pytest.raises(WeightsError) as err:
        create_model("smallcnn", init=tmp_path / "r18.pt")
    assert str(err.value).endswith(
        "(no tensor of the file fits: weights of another architecture? its 122 keys start "
        "conv1.weight, bn1.weight, the model's features.block1.0.weight, "
        "features.block1.1.weight)")
    torch.save({**create_model("smallcnn").state_dict(), "fc.weight": torch.zeros(3, 256)},
               tmp_path / "near.pt")
    with pytest.raises(WeightsError) as err:  # most of it fits: no hint
        create_model("smallcnn", init=tmp_path / "near.pt")
    assert "another architecture" not in str(err.value)


def test_init_keyword_messages_list_a_familys_tags():
    from vsent.models.weights import apply_init

    model = create_model("smallcnn")
    tags = ("openai", "yfcc15m")
    with pytest.raises(WeightsError, match=r"^clip/RN50 has no ImageNet weights: use --init "
                                           r"random, --init TAG \(tags: openai, yfcc15m\), or "
                                           r"--init PATH$"):
        apply_init(model, "clip/RN50", "imagenet", weights=None, new_layers=(), tags=tags)
    with pytest.raises(WeightsError, match=r"^--init 'opeanai': not a tag of clip/RN50 \(tags: "
                                           r"openai, yfcc15m\) nor a weights file$"):
        apply_init(model, "clip/RN50", "opeanai", weights=None, new_layers=(), tags=tags)


def test_torchvision_imagenet_offline_prints_nothing_before_its_one_line(offline, monkeypatch,
                                                                          capfd):
    import vsent.models.torchvision_models as tv

    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(tv, "resolvable", lambda host: host != "download.pytorch.org")
    with pytest.raises(WeightsError, match="^cannot download ImageNet weights for resnet18"):
        create_model("resnet18", init="imagenet")
    assert calls == [] and capfd.readouterr().err == ""  # no torch.hub "Downloading:" line


def test_a_name_that_does_not_resolve_is_resolvable_behind_a_proxy(monkeypatch):
    """An HTTP(S) proxy resolves names itself: the offline pre-check must not stop a download
    that would go through it (unless no_proxy names the host)."""
    import socket

    from vsent.models.weights import resolvable

    def no_dns(*args, **kwargs):
        raise socket.gaierror("no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert not resolvable("download.pytorch.org")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    assert resolvable("download.pytorch.org")
    monkeypatch.setenv("no_proxy", "download.pytorch.org")
    assert not resolvable("download.pytorch.org")


def test_a_cached_file_of_another_sha1_is_refused_and_a_good_one_hashed_once(offline,
                                                                             monkeypatch):
    from vsent.models import weights as weights_module

    content = b"the real weights"
    weights = WeightsFile(url="http://example.invalid/w.caffemodel", file_name="w.caffemodel",
                          sha1=hashlib.sha1(content).hexdigest())
    offline.mkdir(parents=True)
    path = offline / "w.caffemodel"
    path.write_bytes(content[:5])  # a copy stopped part way
    with pytest.raises(WeightsError) as err:
        weights.fetch("caffenet")
    assert str(err.value) == (
        f"{path}: incomplete or different file (SHA-1 {hashlib.sha1(content[:5]).hexdigest()}, "
        f"expected {weights.sha1}): delete it and download again ({weights.url})")
    assert path.exists()  # the user's file: theirs to delete
    path.write_bytes(content)
    hashed = []
    real = weights_module.file_digest
    monkeypatch.setattr(weights_module, "file_digest",
                        lambda p, algorithm: hashed.append(p) or real(p, algorithm))
    assert weights.fetch("caffenet") == path and weights.fetch("caffenet") == path
    assert hashed == [path]  # checked once; the marker stands for it afterwards
    path.write_bytes(content[:5] + content[5:].upper())  # replaced: same size, new mtime
    os.utime(path, ns=(1, 1))
    with pytest.raises(WeightsError, match="incomplete or different file"):
        weights.fetch("caffenet")
    # a read-only cache, where no marker can be written: the good file still loads
    path.write_bytes(content)
    write_text = Path.write_text

    def read_only(self: Path, *args: object, **kwargs: object) -> int:
        if self.name.endswith(".sha1-ok"):
            raise PermissionError(13, "Permission denied", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    assert weights.fetch("caffenet") == path


# ---------------------------------------------------------------------------------------------
# a damaged cached download; a vsent checkpoint's statistics


def _cut_zip(path: Path) -> None:
    """``path``: the first half of a real torch.save zip (a download cut part way)."""
    torch.save(torchvision.models.resnet18().state_dict(), path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["random", "cut"])
def test_a_damaged_cached_torchvision_file_is_one_line_naming_it(offline, damage):
    """A wget cut short leaves such a file; torch.load's UnpicklingError/RuntimeError went out
    as a 35-line traceback (exit 1)."""
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    offline.mkdir(parents=True)
    cached = offline / url.rsplit("/", 1)[1]
    if damage == "random":
        cached.write_bytes(os.urandom(100_000))
    else:
        _cut_zip(cached)
    with pytest.raises(WeightsError) as err:
        create_model("resnet18", init="imagenet")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cached}: incomplete or damaged weights file (")
    assert msg.endswith(f"delete it and download it again ({url})")


def test_vsent_checkpoint_as_init_keeps_its_recorded_statistics(tmp_path):
    """The preprocessing a checkpoint records (here other mean/std/channel order than the
    architecture's) travels with its weights; the crop stays the model's (``image_size``)."""
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    source = create_model("smallcnn", widths=(8, 16))
    own = source.info.preprocess
    stats = dataclasses.replace(own, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0),
                                channel_order="BGR")
    source.info = dataclasses.replace(source.info, preprocess=stats)
    ckpt = save_checkpoint(tmp_path / "model.pt", source)
    model = create_model("smallcnn", widths=(8, 16), init=ckpt)
    assert _equal(source, model)
    assert model.info.preprocess == stats
    torch.save(source.state_dict(), tmp_path / "plain.pt")  # a plain state dict says nothing
    assert create_model("smallcnn", widths=(8, 16),
                        init=tmp_path / "plain.pt").info.preprocess == own


def test_torchvision_download_failing_behind_a_resolvable_name_is_one_line(offline, monkeypatch):
    """The name resolves (a proxy, a flaky network) but the download fails: the same one-line
    WeightsError as with no network, not urllib's URLError traceback (mut44a V20)."""
    import vsent.models.torchvision_models as tv

    monkeypatch.setattr(tv, "resolvable", lambda host: True)
    with pytest.raises(WeightsError, match="^cannot download ImageNet weights for resnet18") \
            as err:
        create_model("resnet18", init="imagenet")
    assert isinstance(err.value.__cause__, urllib.error.URLError)


# ---------------------------------------------------------------------------------------------
# mutation round 45 (mut45e): vsent.models.weights mutants the suite missed


class _BodyHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(4, 2)


def test_a_tagged_record_loads_by_its_tag_and_keeps_the_head_fresh():
    """``--init TAG`` (a CLIP family's named weights) loads the record's weights like
    ``imagenet`` does: the head, although the file has one of the same shape, stays fresh."""
    pretrained = {"body.weight": torch.full((4, 3), 0.5), "body.bias": torch.arange(4.0),
                  "head.weight": torch.ones(2, 4), "head.bias": torch.ones(2)}
    record = PretrainedWeights(loader=lambda model: pretrained, preprocess=Preprocess(),
                               source="test", tag="openai")
    torch.manual_seed(0)
    model = _BodyHead()
    fresh_head = model.head.weight.detach().clone()
    assert apply_init(model, "clip/x", "openai", weights=record, new_layers=["head"],
                      tags=("openai",)) is model
    assert torch.equal(model.body.weight, pretrained["body.weight"])
    assert torch.equal(model.body.bias, pretrained["body.bias"])
    assert torch.equal(model.head.weight, fresh_head)
    with pytest.raises(WeightsError, match="not a tag of clip/x"):  # another name: no file
        apply_init(_BodyHead(), "clip/x", "laion", weights=record, new_layers=["head"],
                   tags=("openai",))


def test_a_prefix_only_some_keys_have_is_not_removed():
    """Only a prefix that every key has is a wrapper's; one that some keys have is part of
    their names (removing it would cut the others' names short)."""
    own = {"body.weight": torch.zeros(1), "body.bias": torch.zeros(1)}
    state = {"module.body.weight": torch.ones(1), "module.body.bias": torch.ones(1),
             "scale": torch.ones(1)}
    assert without_wrapper_prefix(state, own) is state
    wrapped = {k: v for k, v in state.items() if k.startswith("module.")}
    assert list(without_wrapper_prefix(wrapped, own)) == ["body.weight", "body.bias"]


def test_a_cut_safetensors_file_gives_the_reason_not_a_torch_save_verdict(tmp_path):
    """torch.load reads .safetensors too, so a cut one gets safetensors' own reason, not
    "not a file written by torch.save" (true of every safetensors file, cut or whole)."""
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"body.weight": torch.ones(4, 3)}, path)
    assert torch.equal(read_state_dict(path)["body.weight"], torch.ones(4, 3))
    # the suffix in capitals is a safetensors file too (as .CAFFEMODEL is a caffemodel)
    upper = tmp_path / "W.SAFETENSORS"
    upper.write_bytes(path.read_bytes())
    assert torch.equal(read_state_dict(upper)["body.weight"], torch.ones(4, 3))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    assert str(err.value).startswith(f"{path}: not a PyTorch state dict (")
    assert "torch.save" not in str(err.value) and "deserializing header" in str(err.value)
    # the same reason for a cut download in the hub's cache (timm, open_clip safetensors)
    from vsent.models.weights import damaged_file_message

    cause = err.value.__cause__
    assert isinstance(cause, Exception)
    message = damaged_file_message(path, cause, "hf-hub:owner/weights")
    assert "torch.save" not in message and "deserializing header" in message


def test_a_safetensors_file_that_cannot_be_read_is_a_one_line_weights_error(tmp_path,
                                                                          monkeypatch):
    """An OS error while reading (permissions, a network drive gone) names the file in one
    line, as a damaged file does. The tests run as root, where chmod does not deny a read:
    the reader raises it instead."""
    import safetensors.torch
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"body.weight": torch.ones(2)}, path)

    def denied(filename: str, device: str = "cpu") -> dict[str, torch.Tensor]:
        raise PermissionError(13, "Permission denied", filename)

    monkeypatch.setattr(safetensors.torch, "load_file", denied)
    with pytest.raises(WeightsError, match="Permission denied") as err:
        read_state_dict(path)
    assert str(err.value).startswith(f"{path}: not a PyTorch state dict (")
    assert "\n" not in str(err.value)


def test_a_caffemodel_suffix_in_capitals_goes_through_the_caffe_reader(tmp_path):
    from vsent.models.caffe import export_caffemodel

    state = {"fc8.weight": torch.arange(6.0).reshape(2, 3), "fc8.bias": torch.ones(2)}
    path = export_caffemodel(tmp_path / "NET.CAFFEMODEL", state)
    read = read_state_dict(path)
    assert sorted(read) == ["fc8.bias", "fc8.weight"]
    assert torch.equal(read["fc8.weight"], state["fc8.weight"])


def test_a_training_checkpoint_gives_its_trained_weights_before_its_moving_average(tmp_path):
    """timm's and DeiT's scripts save the weights and their moving average side by side: the
    order of preference (WRAPPER_ENTRIES) takes ``state_dict``/``model``, not the EMA."""
    trained, ema = {"w": torch.ones(2)}, {"w": torch.zeros(2)}
    for layout in ({"state_dict_ema": ema, "state_dict": trained, "epoch": torch.tensor(3)},
                   {"model_ema": ema, "model": trained, "epoch": torch.tensor(3)},
                   {"state_dict_ema": ema, "model": trained}):  # mut52a W14
        path = tmp_path / "train.pth"
        torch.save(layout, path)
        assert torch.equal(read_state_dict(path)["w"], trained["w"]), list(layout)


@pytest.mark.parametrize("damaged", [{0: 224}, {"crop": "big"}])
def test_a_damaged_preprocess_record_leaves_the_architectures_own(tmp_path, damaged):
    """A checkpoint used as --init whose preprocess entry is damaged (keys that are no names,
    or wrong values) still gives its weights; the input stays the architecture's."""
    from vsent.models import create_model, save_checkpoint

    torch.manual_seed(0)
    source = create_model("smallcnn", widths=(4,))
    path = save_checkpoint(tmp_path / "model.pt", source)
    torch.save({**torch.load(path, weights_only=True), "preprocess": damaged}, path)
    model = create_model("smallcnn", widths=(4,), init=path)
    assert model.info.preprocess == source.info.preprocess
    assert torch.equal(model.state_dict()["fc.weight"], source.state_dict()["fc.weight"])


def test_saved_spec_and_meta_are_the_checkpoints_own_entries(tmp_path):
    """What a run starting from a file reads of it: the spec (builder options its weights
    need) and the meta (its data, for the leakage check); None for a plain state dict."""
    from vsent.models import create_model, save_checkpoint
    from vsent.models.weights import saved_meta, saved_spec

    model = create_model("smallcnn", widths=(4,))
    path = save_checkpoint(tmp_path / "model.pt", model, data="twitter", fold=2)
    assert saved_spec(path) == {"name": "smallcnn", "num_classes": 2, "widths": [4]}  # JSON
    assert saved_meta(path) == {"data": "twitter", "fold": 2}
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    assert saved_spec(tmp_path / "plain.pt") is None and saved_meta(tmp_path / "plain.pt") is None
    # another tool's (or format's) dict with the same entry names is not read as vsent's
    torch.save({"format": "other/1", "spec": {"name": "x"}, "meta": {}}, tmp_path / "other.pt")
    assert saved_spec(tmp_path / "other.pt") is None and saved_meta(tmp_path / "other.pt") is None


def test_a_new_layer_covers_its_own_keys_not_a_module_whose_name_it_begins():
    """``new_layers=("head",)`` lets head.* be missing; a module named head2 is not part of
    it: its missing weights are an error, not kept fresh."""
    model = torch.nn.ModuleDict({"head": torch.nn.Linear(2, 2), "head2": torch.nn.Linear(2, 2)})
    state = {k: v for k, v in model.state_dict().items() if k.startswith("head.")}
    with pytest.raises(WeightsError, match=r"^f: 2 weights missing .*head2\.weight"):
        load_matching(model, state, source="f", new_layers=("head",))
    state = {k: v for k, v in model.state_dict().items() if k.startswith("head2.")}
    assert load_matching(model, state, source="f", new_layers=("head",)) == [
        "head2.weight", "head2.bias"]
    # a new layer may name one key itself: only that key may be missing
    state = {k: v for k, v in model.state_dict().items() if k != "head.bias"}
    assert load_matching(model, state, source="f", new_layers=("head.bias",)) == [
        "head.weight", "head2.weight", "head2.bias"]


def test_a_missing_batchnorm_counter_is_no_error_and_the_error_lists_three_keys():
    """BatchNorm's num_batches_tracked, absent from older files, does not affect outputs and
    may be missing; other missing keys are errors, named up to three, then counted."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    state = {k: v for k, v in model.state_dict().items() if "num_batches" not in k}
    assert sorted(load_matching(model, state, source="f")) == sorted(state)
    norm = {k: v for k, v in state.items() if k.startswith("1.")}  # the Linear's missing
    with pytest.raises(WeightsError) as err:
        load_matching(model, {**norm, "0.weight": torch.zeros(2, 2)}, source="f")
    assert str(err.value) == ("f: 1 weights missing or of the wrong shape: "
                              "0.bias (model (2,), file missing)")
    with pytest.raises(WeightsError) as err:
        load_matching(model, {k: v for k, v in norm.items() if k != "1.weight"}, source="f")
    assert str(err.value).startswith("f: 3 weights missing or of the wrong shape: 0.weight (")
    assert "1.weight (model (2,), file missing)" in str(err.value)
    assert "more" not in str(err.value)
    with pytest.raises(WeightsError, match=r"1\.weight \(.*, file missing\) and 2 more$"):
        load_matching(model, {k: v for k, v in norm.items() if k == "1.bias"}, source="f")
    with pytest.raises(WeightsError) as err:  # an empty dict: no "its 0 keys start" hint
        load_matching(model, {}, source="f")
    assert str(err.value).endswith(" and 3 more")


def test_hub_download_offline_mode_lasts_for_the_call_only(monkeypatch):
    """Offline, the hub runs in its offline mode inside the block only: a later download in
    the same process (the network back, a serve process) must not stay refused."""
    from huggingface_hub import constants

    from vsent.models import weights as weights_module

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights_module, "resolvable", lambda host: False)
    root, level = logging.getLogger(), logging.getLogger().level
    with weights_module.hub_download():
        assert constants.HF_HUB_OFFLINE is True and root.level == logging.CRITICAL
    assert constants.HF_HUB_OFFLINE is False and root.level == level
    # already offline (HF_HUB_OFFLINE=1): no name lookup, which can hang for a while offline,
    # and the user's setting stays after the block (mut52a W34)
    asked = []
    monkeypatch.setattr(weights_module, "resolvable", lambda host: asked.append(host) or True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with weights_module.hub_download():
        assert constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE is True and asked == []


def test_an_all_proxy_alone_counts_as_a_route_out(monkeypatch):
    """``all_proxy`` (curl's and requests' catch-all, often the only one set for SOCKS) also
    resolves names for the download."""
    import socket

    from vsent.models.weights import resolvable

    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror("no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("all_proxy", "socks5://proxy.invalid:1080")
    assert resolvable("huggingface.co")


def test_hf_cached_file_reads_a_revision_and_skips_what_is_gone(tmp_path, monkeypatch):
    """``owner/name@rev`` looks in that revision's snapshot; a cache entry whose file is gone
    (a dangling snapshot link) is no cached file: the next name is tried."""
    import huggingface_hub

    from vsent.models.weights import hf_cached_file

    there = tmp_path / "pytorch_model.bin"
    there.write_bytes(b"x")
    cache = {("owner/net", "model.safetensors", "v2"): str(tmp_path / "gone.safetensors"),
             ("owner/net", "pytorch_model.bin", "v2"): str(there)}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, name, revision=None: cache.get((repo, name, revision)))
    assert hf_cached_file("owner/net@v2") == there
    assert hf_cached_file("owner/net") is None  # another revision: not these files
    # open_clip's configs write the repo with a slash after it ("owner/repo/"): same repo
    cache[("owner/clip", "model.safetensors", None)] = str(there)
    assert hf_cached_file("owner/clip/") == there


# ---------------------------------------------------------------------------------------------
# mutation round 48 (mut48d): vsent.models.weights mutants the suite missed


def test_a_missing_path_without_a_suffix_is_no_such_file_not_a_misspelt_keyword(tmp_path):
    """``--init runs/best`` names a file (it has a folder), even without a suffix: when it is
    missing, the message says so instead of listing the keywords."""
    missing = tmp_path / "runs" / "best"
    with pytest.raises(WeightsError) as err:
        create_model("smallcnn", init=str(missing))
    assert str(err.value) == f"{missing}: no such file"
    with pytest.raises(WeightsError, match=r"^--init 'imagenett': use random, imagenet "):
        create_model("smallcnn", init="imagenett")


def test_a_transposed_weight_of_the_same_size_is_a_shape_error_not_loaded():
    """A (3, 2) weight for a (2, 3) layer has the right number of values, not the right shape:
    a WeightsError naming it (not torch's size-mismatch RuntimeError, nor a silent reshape)."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    state = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(2)}
    with pytest.raises(WeightsError) as err:
        load_matching(model, state, source="f")
    assert str(err.value) == ("f: 1 weights missing or of the wrong shape: "
                              "0.weight (model (2, 3), file (3, 2))")


def test_four_bad_keys_name_three_and_count_the_fourth():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    with pytest.raises(WeightsError) as err:
        load_matching(model, {"9.weight": torch.zeros(1)}, source="f")
    assert str(err.value).startswith(
        "f: 4 weights missing or of the wrong shape: 0.weight (model (2, 2), file missing), "
        "0.bias (model (2,), file missing), 1.weight (model (2, 2), file missing) and 1 more")


def test_a_spec_or_meta_entry_that_is_not_a_dict_reads_as_none(tmp_path):
    """A vsent checkpoint whose spec or meta entry is damaged (a list, a string) gives None,
    as a file without them: create_model reads ``spec.get`` of what saved_spec returns."""
    from vsent.models import save_checkpoint
    from vsent.models.weights import saved_meta, saved_spec

    path = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4,)))
    torch.save({**torch.load(path, weights_only=True), "spec": ["smallcnn"], "meta": "x"}, path)
    assert saved_spec(path) is None and saved_meta(path) is None


def test_a_checkpoint_without_a_preprocess_entry_records_no_preprocessing(tmp_path):
    """saved_preprocess of a vsent checkpoint lacking the entry is None (the architecture's
    input stays), not a KeyError; its weights still load."""
    from vsent.models import save_checkpoint
    from vsent.models.weights import saved_preprocess

    torch.manual_seed(0)
    source = create_model("smallcnn", widths=(4,))
    path = save_checkpoint(tmp_path / "model.pt", source)
    ckpt = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in ckpt.items() if k != "preprocess"}, path)
    assert saved_preprocess(path) is None
    model = create_model("smallcnn", widths=(4,), init=path)
    assert _equal(model, source)


def test_a_batchnorm_counter_of_another_shape_is_an_error_not_skipped():
    """Only an *absent* num_batches_tracked is forgiven: one of another shape is named."""
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(2))
    state = {**model.state_dict(), "0.num_batches_tracked": torch.zeros(3, dtype=torch.long)}
    with pytest.raises(WeightsError) as err:
        load_matching(model, state, source="f")
    assert str(err.value) == ("f: 1 weights missing or of the wrong shape: "
                              "0.num_batches_tracked (model (), file (3,))")


def test_hf_cached_file_without_a_revision_asks_the_hub_for_its_default(tmp_path, monkeypatch):
    """No ``@rev``: revision None (the hub's default branch), not "" (a ref no cache has)."""
    import huggingface_hub

    from vsent.models.weights import hf_cached_file

    there = tmp_path / "model.safetensors"
    there.write_bytes(b"x")
    asked = []

    def lookup(repo, name, revision=None):
        asked.append(revision)
        return str(there) if revision is None else None

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lookup)
    assert hf_cached_file("owner/net") == there
    assert asked == [None]


def test_quiet_loading_hides_this_modules_info_lines_only_while_it_lasts(caplog):
    """quiet_loading (the prototype's load in crossval.prepare): the lines on what was loaded
    are left out, its warnings still come, and after the block the lines come again
    (mut48d W55, W56)."""
    from vsent.models.weights import logger, quiet_loading

    with caplog.at_level(logging.INFO, logger=LOGGER):
        with quiet_loading():
            logger.info("loaded in the prototype")
            logger.warning("a warning of the prototype's load")
        logger.info("loaded for training")
        assert logger.level == logging.INFO
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "a warning of the prototype's load", "loaded for training"]


# ---------------------------------------------------------------------------------------------
# mutation round 50 (mut50f): torchvision ImageNet weights mutants the suite missed


def test_torchvision_download_cut_off_midway_is_the_one_line_error(offline, monkeypatch):
    """A connection dropped mid-file raises http.client.IncompleteRead, no OSError: the same
    one line as no network (URL and folder), not http.client's traceback."""
    import vsent.models.torchvision_models as tv

    def cut(url, dst, *args, **kwargs):
        raise http.client.IncompleteRead(b"partial", 1000)

    monkeypatch.setattr(torch.hub, "download_url_to_file", cut)
    monkeypatch.setattr(tv, "resolvable", lambda host: True)
    with pytest.raises(WeightsError) as err:
        create_model("resnet18", init="imagenet")
    assert str(err.value) == (
        f"cannot download ImageNet weights for resnet18 (no network?): download "
        f"{torchvision.models.ResNet18_Weights.DEFAULT.url} into {offline} or pass --init PATH "
        f"to a weights file")
    assert isinstance(err.value.__cause__, http.client.IncompleteRead)


def test_torchvision_weights_failing_for_another_reason_is_not_called_a_download_failure(
        offline, monkeypatch):
    """An error that is neither the network's (OSError, HTTPException) nor a damaged cached
    file is a bug to see whole: it propagates, neither disguised as "no network?" nor
    swallowed (random weights reported as ImageNet's)."""
    import vsent.models.torchvision_models as tv

    def broken(url, dst, *args, **kwargs):
        raise RuntimeError("boom in the downloader")

    monkeypatch.setattr(torch.hub, "download_url_to_file", broken)
    monkeypatch.setattr(tv, "resolvable", lambda host: True)
    with pytest.raises(RuntimeError, match="^boom in the downloader$"):
        create_model("resnet18", init="imagenet")


# ---------------------------------------------------------------------------------------------
# mutation round 52 (mut52a): vsent.models.weights mutants the suite missed


def test_the_hub_file_of_a_url_is_named_by_its_path_without_query_or_fragment(monkeypatch,
                                                                                 tmp_path):
    """torch.hub names a download by the URL's path: a query or fragment (a signed URL, a
    ``?download=1``) is not part of the file name looked for in the cache (mut52a W32)."""
    from vsent.models.weights import hub_checkpoint_file, url_file_name

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    url = "https://example.invalid/models/r18-5c106cde.pth?download=1#sha"
    assert url_file_name(url) == "r18-5c106cde.pth"
    assert url_file_name("https://example.invalid/") == ""
    assert hub_checkpoint_file(url) == tmp_path / "hub" / "checkpoints" / "r18-5c106cde.pth"


# ---------------------------------------------------------------------------------------------
# mutation round 53 (mut53g): torchvision builder mutants the suite missed


def test_resnet50_imagenet_weights_are_torchvisions_default_v2(offline):
    """``--init imagenet`` of resnet50 is torchvision's DEFAULT, its IMAGENET1K_V2 weights
    (the spec and the card name them), not the older V1 (mut53g T35); offline, the one-line
    error names V2's file before any model is needed."""
    from vsent.models.torchvision_models import imagenet_state_dict

    with pytest.raises(WeightsError) as err:
        imagenet_state_dict("resnet50", None)
    assert torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url in str(err.value)
