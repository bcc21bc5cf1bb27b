"""The registry and architectures: every registered model, CaffeNet surgery, PCNN, SmallCNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsent.data.transforms import CAFFE_PREPROCESS, Preprocess
from vsent.errors import VsentError
from vsent.models import create_model, list_models, register_model, registry
from vsent.models.pcnn import pool_out

# Smallest input each architecture accepts (CaffeNet/PCNN have fixed-size fc layers).
INPUT_SIZE = {"caffenet": 227, "pcnn": 227, "smallcnn": 56}


def _forward_shapes(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple]:
    """Shapes (without batch) of the outputs of the named modules for input ``x``."""
    shapes: dict[str, tuple] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:]))
        )
        for n in names
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


# ---------------------------------------------------------------------------------------------
# registry


def test_list_models_has_every_family():
    names = list_models()
    assert names == sorted(names)
    assert {"caffenet", "pcnn", "smallcnn", "alexnet", "vgg16", "resnet18", "resnet50",
            "efficientnet_b0", "convnext_tiny"} <= set(names)
    assert list_models("resnet*") == ["resnet18", "resnet50"]
    assert list_models("nothing*") == []


def test_unknown_model_lists_available_names():
    with pytest.raises(VsentError, match=r"unknown model 'resnet51'; available: .*resnet50"):
        create_model("resnet51")


def test_unknown_option_and_bad_num_classes_are_user_errors():
    with pytest.raises(VsentError, match="caffenet.*colour"):
        create_model("caffenet", colour="red")
    with pytest.raises(VsentError, match="num_classes"):
        create_model("smallcnn", num_classes=0)
    with pytest.raises(VsentError, match="unknown CaffeNet arch 'fc5-2'"):
        create_model("caffenet", arch="fc5-2")


def test_register_model_and_spec(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model("tiny_test")
    def tiny(*, num_classes: int = 2, hidden: int = 4) -> nn.Module:
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, hidden), nn.Linear(hidden, num_classes))
        model.preprocess = CAFFE_PREPROCESS
        model.new_layers, model.probe_layers = ["2"], ["1", "2"]
        model.default_lr, model.num_outputs = None, num_classes
        return model

    model = create_model("tiny_test", num_classes=3, hidden=5)
    assert model.spec == {"name": "tiny_test", "num_classes": 3, "hidden": 5}
    assert model(torch.zeros(2, 3, 2, 2)).shape == (2, 3)
    assert "tiny_test" in list_models("tiny*")
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny_test")(tiny)


# ---------------------------------------------------------------------------------------------
# every registered model


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=2)
    assert model.spec == {"name": name, "num_classes": 2}
    assert isinstance(model.preprocess, Preprocess)
    assert model.default_lr is None or model.default_lr > 0
    for layer in model.new_layers:
        assert isinstance(model.get_submodule(layer), nn.Linear)
    size = INPUT_SIZE.get(name, 64)  # torchvision models accept small inputs: keeps this fast
    x = torch.randn(2, 3, size, size)

    # probe layers exist and run in depth order
    order: list[str] = []
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda *_a, n=n: order.append(n)) for n in model.probe_layers]
    model.eval()
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    assert order == model.probe_layers
    assert out.shape == (2, model.num_outputs) == (2, 2)
    assert torch.isfinite(out).all()

    model.train()
    model(x).logsumexp(dim=1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_spec_rebuilds_the_same_architecture():
    model = create_model("pcnn", num_classes=3, input_size=256, fc_widths=(64, 32, 24))
    spec = dict(model.spec)
    again = create_model(spec.pop("name"), **spec)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# CaffeNet


def test_caffenet_shapes_and_parameter_count():
    model = create_model("caffenet", arch="fc8-1000").eval()
    assert sum(p.numel() for p in model.parameters()) == 60_965_224
    assert model.probe_layers == ["conv1", "pool1", "norm1", "conv2", "pool2", "norm2", "conv3",
                                  "conv4", "conv5", "pool5", "fc6", "fc7", "fc8"]
    shapes = _forward_shapes(model, torch.randn(1, 3, 227, 227), model.probe_layers)
    assert shapes == {
        "conv1": (96, 55, 55), "pool1": (96, 27, 27), "norm1": (96, 27, 27),
        "conv2": (256, 27, 27), "pool2": (256, 13, 13), "norm2": (256, 13, 13),
        "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13),
        "pool5": (256, 6, 6), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
    }
    assert model.conv2.groups == 2 and model.conv3.groups == 1
    assert model.conv4.groups == 2 and model.conv5.groups == 2
    assert model.preprocess == CAFFE_PREPROCESS
    assert model.new_layers == [] and model.num_outputs == 1000


def test_caffenet_probes_capture_post_relu_like_caffe_blobs():
    model = create_model("caffenet").eval()
    captured = {}
    for n in ("conv1", "conv5", "fc6", "fc7"):
        model.get_submodule(n).register_forward_hook(
            lambda _m, _i, out, n=n: captured.__setitem__(n, out))
    with torch.no_grad():
        model(torch.randn(1, 3, 227, 227) * 50)
    for n, out in captured.items():
        assert out.min() >= 0, n
        assert (out > 0).any(), n


def test_caffenet_lrn_matches_caffe_formula():
    # Caffe LRN across channels: b_c = a_c / (k + alpha/n * sum_{|c'-c|<=2} a_c'^2)^beta
    lrn = create_model("caffenet").norm1
    a = torch.randn(1, 7, 3, 3) * 30
    padded = torch.nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))
    window = torch.stack([padded[:, c:c + 5].sum(1) for c in range(7)], dim=1)
    expected = a / (1.0 + 1e-4 / 5 * window) ** 0.75
    torch.testing.assert_close(lrn(a), expected)


@pytest.mark.parametrize(
    ("arch", "outputs", "new_layers", "top", "default_lr"),
    [
        ("fc8-2", 2, ["fc8"], "fc8", None),
        ("fc7-4096", 4096, [], "fc7", None),
        ("fc6-4096", 4096, [], "fc6", None),
        ("fc7-2", 2, ["fc7"], "fc7", None),
        ("fc6-2", 2, ["fc6"], "fc6", 1e-4),
        ("fc8-1000", 1000, [], "fc8", None),
        ("fc9-2", 2, ["fc9"], "fc9", None),
    ],
)
def test_caffenet_surgery_variants(arch, outputs, new_layers, top, default_lr):
    model = create_model("caffenet", arch=arch).eval()
    assert model.spec == {"name": "caffenet", "num_classes": 2, "arch": arch}
    assert model.num_outputs == outputs
    assert model.new_layers == new_layers
    assert model.default_lr == default_lr
    assert model.probe_layers[-1] == top
    assert model.probe_layers[:10] == ["conv1", "pool1", "norm1", "conv2", "pool2", "norm2",
                                       "conv3", "conv4", "conv5", "pool5"]
    names = dict(model.named_children())
    assert all(n in names for n in model.probe_layers)
    assert not ({"fc6", "fc7", "fc8", "fc9"} - set(model.probe_layers)) & set(names)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 227, 227))
    assert out.shape == (2, outputs)
    for layer in new_layers:  # new layers: Gaussian std 0.01, zero bias, plain linear logits
        fresh = model.get_submodule(layer)
        assert type(fresh) is nn.Linear and fresh.out_features == 2
        assert fresh.bias.abs().max() == 0
        assert 0.008 < fresh.weight.std() < 0.012
    if arch.endswith("4096"):  # raw ablations: the top blob is post-ReLU (in-place relu in Caffe)
        assert out.min() >= 0


def test_caffenet_fc9_has_relu_on_fc8_and_num_classes_sets_new_layer():
    model = create_model("caffenet", arch="fc9-2", num_classes=3).eval()
    shapes = _forward_shapes(model, torch.randn(1, 3, 227, 227), ["fc8", "fc9"])
    assert shapes == {"fc8": (1000,), "fc9": (3,)}
    out = {}
    model.fc8.register_forward_hook(lambda _m, _i, o: out.__setitem__("fc8", o))
    with torch.no_grad():
        model(torch.randn(1, 3, 227, 227) * 50)
    assert out["fc8"].min() >= 0
    assert type(create_model("caffenet", arch="fc8-1000").fc8) is nn.Linear  # logits, no ReLU


# ---------------------------------------------------------------------------------------------
# PCNN and SmallCNN


@pytest.mark.parametrize(("size", "conv2", "pool2"), [(227, 12, 6), (256, 14, 7)])
def test_pcnn_shapes(size, conv2, pool2):
    model = create_model("pcnn", input_size=size).eval()
    assert model.preprocess.crop == size and model.preprocess.channel_order == "BGR"
    assert model.probe_layers == ["conv1", "conv2", "fc1", "fc2", "fc3", "fc4"]
    shapes = _forward_shapes(model, torch.randn(2, 3, size, size),
                             ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3", "fc4"])
    c1 = (size - 11) // 4 + 1
    assert shapes["conv1"] == (96, c1, c1)
    assert shapes["conv2"] == (256, conv2, conv2)
    assert shapes["pool2"] == (256, pool2, pool2)
    assert [shapes[f"fc{i}"] for i in (1, 2, 3, 4)] == [(512,), (512,), (24,), (2,)]
    assert model.fc1.in_features == 256 * pool2 * pool2
    assert model.fc3.out_features == 24


def test_pcnn_rejects_other_input_sizes():
    with pytest.raises(VsentError, match="input_size must be 227 or 256"):
        create_model("pcnn", input_size=224)


@pytest.mark.parametrize("size", range(3, 70))
def test_pool_out_matches_torch_ceil_mode(size):
    pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    assert pool_out(size, 3, 2) == pool(torch.zeros(1, 1, size, size)).shape[-1]


def test_smallcnn_shapes_and_widths():
    model = create_model("smallcnn", widths=(8, 16, 32)).eval()
    assert model.preprocess.resize == 64 and model.preprocess.crop == 56
    assert model.new_layers == []
    assert model.probe_layers == ["features.block1", "features.block2", "features.block3",
                                  "pool", "fc"]
    shapes = _forward_shapes(model, torch.randn(3, 3, 56, 56), model.probe_layers)
    assert shapes == {"features.block1": (8, 28, 28), "features.block2": (16, 14, 14),
                      "features.block3": (32, 7, 7), "pool": (32, 1, 1), "fc": (2,)}
    with pytest.raises(VsentError, match="widths"):
        create_model("smallcnn", widths=())
