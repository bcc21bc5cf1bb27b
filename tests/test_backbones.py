"""timm and CLIP (open_clip) families: interface, preprocessing read from the library's
configuration, head replacement, weights files, pretrained downloads offline, zero-shot.

Every architecture here is built without pretrained weights (timm's ``test_*`` models, tiny
open_clip configurations written by the tests); nothing is downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

open_clip = pytest.importorskip("open_clip")
timm = pytest.importorskip("timm")

from vsent.errors import VsentError, WeightsError  # noqa: E402
from vsent.models import clip_models, create_model, list_models, timm_models  # noqa: E402
from vsent.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vsent.models.weights import read_state_dict  # noqa: E402
from vsent.zeroshot import (  # noqa: E402
    DEFAULT_PROMPTS,
    read_prompts,
    zero_shot_model,
)

#: Tiny open_clip configurations (image and text towers), built in well under a second.
TINY_CLIP = {
    "vsent-test-vit": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2,
                                                       "width": 32, "patch_size": 8,
                                                       "head_width": 16},
                       "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16,
                                    "heads": 2, "layers": 1}},
    "vsent-test-rn": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1],
                                                      "width": 8},
                      "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16,
                                   "heads": 2, "layers": 1}},
}
TIMM_ARCHS = ("test_vit", "test_convnext", "test_resnet")
ALL = tuple(f"timm/{a}" for a in TIMM_ARCHS) + tuple(f"clip/{a}" for a in TINY_CLIP)


def add_tiny_clip_configs(folder) -> None:
    """Write :data:`TINY_CLIP` as JSON files and register them with open_clip."""
    for name, cfg in TINY_CLIP.items():
        if name not in open_clip.list_models():
            path = folder / f"{name}.json"
            path.write_text(json.dumps(cfg))
            open_clip.add_model_config(path)


@pytest.fixture(scope="module", autouse=True)
def _tiny_clip(tmp_path_factory):
    add_tiny_clip_configs(tmp_path_factory.mktemp("clip_cfg"))


def _input(model, n: int = 2, seed: int = 0) -> torch.Tensor:
    c = model.info.preprocess.crop
    return torch.randn(n, 3, c, c, generator=torch.Generator().manual_seed(seed))


# --- interface --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_interface_forward_is_head_of_features_and_probes_exist(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    info = model.info
    assert info.name == name and info.family == name.split("/")[0]
    x = _input(model)
    with torch.no_grad():
        f = model.forward_features(x)
        logits = model(x)
    assert f.shape == (2, info.feature_dim)
    assert logits.shape == (2, 2) == (2, info.num_outputs)
    torch.testing.assert_close(model.forward_head(f), logits)
    assert info.new_layers == (info.head,)
    assert info.probe_layers, "a probe layer from the library's feature info"
    # the pooling mode matches the layer's real output layout
    shapes = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda _m, _i, o, n=n: shapes.__setitem__(n, tuple(o.shape))) for n in info.probe_layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for layer in info.probe_layers:
        expected = {3: "tokens", 4: "avg"}[len(shapes[layer])]
        assert info.pool_of(layer) == expected, layer
    if info.cam_layer:
        assert len(shapes[info.cam_layer]) == 4


def test_timm_models_match_timms_own_forward_and_keys():
    torch.manual_seed(1)
    model = create_model("timm/test_convnext").eval()
    net = timm.create_model("test_convnext", num_classes=2).eval()
    assert list(model.state_dict()) == list(net.state_dict())  # timm's own key names
    net.load_state_dict(model.state_dict())
    x = _input(model)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
        torch.testing.assert_close(model.forward_features(x),
                                   net.forward_head(net.forward_features(x), pre_logits=True))


def test_shared_module_model_moves_and_switches_mode_with_the_network():
    model = create_model("timm/test_vit")
    model.eval()
    assert not model.net.training and not model.net.blocks[0].training
    model.train()
    assert model.net.training
    model.double()
    assert model.net.cls_token.dtype == torch.float64  # one parameter, seen from both sides


# --- preprocessing from the configuration ------------------------------------------------------


@pytest.mark.parametrize("arch, resize, crop, mean, std, interp", [
    # test_vit: input 160, crop_pct 0.95 -> 160 / 0.95 = 168.4; mean/std 0.5 -> 127.5
    ("test_vit", 168, 160, (127.5,) * 3, (127.5,) * 3, "bicubic"),
    # resnet10t: input 176, crop_pct 0.875 -> 201.1; ImageNet mean/std x 255
    ("resnet10t", 201, 176, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "bicubic"),
    ("test_resnet", 168, 160, (127.5,) * 3, (127.5,) * 3, "bilinear"),
])
def test_timm_preprocessing_comes_from_its_pretrained_config(arch, resize, crop, mean, std,
                                                             interp):
    model = create_model(f"timm/{arch}")
    pre = model.info.preprocess
    assert (pre.resize, pre.crop, pre.channel_order) == (resize, crop, "RGB")
    np.testing.assert_allclose(pre.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(pre.std, std, rtol=1e-6)
    assert model.info.extra["interpolation"] == interp


def test_clip_preprocessing_is_clips_own():
    pre = create_model("clip/vsent-test-vit").info.preprocess
    assert (pre.resize, pre.crop) == (32, 32)  # the tower's image size, no crop margin
    np.testing.assert_allclose(pre.mean, np.array([0.48145466, 0.4578275, 0.40821073]) * 255)
    np.testing.assert_allclose(pre.std, np.array([0.26862954, 0.26130258, 0.27577711]) * 255)
    assert pre.channel_order == "RGB"  # CLIP was trained on RGB images (mut53g C28)


# --- head replacement -------------------------------------------------------------------------


@pytest.mark.parametrize("arch, head", [("test_vit", "head"), ("test_convnext", "head.fc"),
                                        ("test_resnet", "fc")])
def test_timm_head_is_replaced_through_timms_api(arch, head):
    model = create_model(f"timm/{arch}", num_classes=3)
    assert model.info.head == head
    layer = model.get_submodule(head)
    assert layer is model.net.get_classifier()
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 3
    assert layer.in_features == model.info.feature_dim
    assert model(_input(model)).shape == (2, 3)


def test_clip_head_is_a_new_linear_on_the_embedding():
    model = create_model("clip/vsent-test-rn", num_classes=2)
    assert model.info.head == "head" and model.info.feature_dim == 16
    assert model.head.weight.shape == (2, 16)
    assert model.info.cam_layer == "visual.layer4"  # a ResNet tower has a convolutional map


# --- weights files ----------------------------------------------------------------------------


def test_timm_state_dict_file_loads_with_init_path(tmp_path):
    torch.manual_seed(5)
    net = timm.create_model("test_resnet", num_classes=1000).eval()
    path = tmp_path / "resnet.pth"
    torch.save(net.state_dict(), path)
    model = create_model("timm/test_resnet", init=str(path)).eval()
    own = model.state_dict()
    for key, value in net.state_dict().items():
        if not key.startswith("fc."):  # the 1000-way head is not ours: it stays fresh
            torch.testing.assert_close(own[key], value)
    x = _input(model)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x),
                                   net.forward_head(net.forward_features(x), pre_logits=True))


def test_timm_safetensors_file_loads_with_init_path(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(6)
    net = timm.create_model("test_vit", num_classes=2)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model = create_model("timm/test_vit", init=str(path))
    torch.testing.assert_close(model.state_dict()["blocks.0.attn.qkv.weight"],
                               net.state_dict()["blocks.0.attn.qkv.weight"])
    # the whole backbone came from the file, not one tensor of it
    own = model.state_dict()
    body = {k: v for k, v in net.state_dict().items() if not k.startswith("head.")}
    assert len(body) > 50
    for key, value in body.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)


def test_clip_full_open_clip_state_dict_loads_with_init_path(tmp_path):
    torch.manual_seed(7)
    clip = open_clip.create_model("vsent-test-vit").eval()
    path = tmp_path / "clip.pt"
    torch.save(clip.state_dict(), path)  # image and text towers, open_clip's own keys
    model = create_model("clip/vsent-test-vit", init=str(path)).eval()
    x = _input(model)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), clip.encode_image(x))


def test_a_wrong_weights_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(timm.create_model("test_convnext").state_dict(), path)
    with pytest.raises(WeightsError) as err:
        create_model("timm/test_resnet", init=str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("name", ["timm/test_vit", "clip/vsent-test-vit"])
def test_checkpoint_round_trip(tmp_path, name):
    torch.manual_seed(8)
    model = create_model(name).eval()
    path = save_checkpoint(tmp_path / "model.pt", model)
    again, _ = load_checkpoint(path)
    x = _input(model)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert again.info.preprocess == model.info.preprocess


class _CountForwards:
    """Every module forward call inside the block (torch's global forward hook)."""

    def __enter__(self):
        self.calls = 0

        def count(*_):
            self.calls += 1

        self._handle = torch.nn.modules.module.register_module_forward_hook(count)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


@pytest.mark.parametrize("name", ALL)
def test_building_an_architecture_again_runs_no_probe_forward_pass(tmp_path, name,
                                                                   monkeypatch):
    monkeypatch.setattr(timm_models, "_KNOWN_POOLS", {}, raising=False)
    with _CountForwards() as counted:
        first = create_model(name)
    assert counted.calls > 0  # the first build probes
    with _CountForwards() as counted:
        second = create_model(name)
        again, _ = load_checkpoint(save_checkpoint(tmp_path / "model.pt", first))
    assert counted.calls == 0 and second.info == first.info and again.info == first.info


def test_no_probe_layers_no_probe_forward_pass():
    model = torch.nn.Linear(2, 2)
    model.forward = None  # a forward pass would fail
    assert timm_models.probe_pools(model, (), 32) == {}


def test_clip_build_keeps_open_clips_info_lines_off_the_console(caplog):
    import logging

    root = logging.getLogger()
    filters = list(root.filters)
    caplog.set_level(logging.INFO)
    clip_models.build_clip("vsent-test-rn")
    chatter = [r.getMessage() for r in caplog.records if "open_clip" in r.pathname]
    assert chatter == []  # e.g. "Loaded built-in vsent-test-rn model config."
    assert root.filters == filters  # scoped to the build
    logging.getLogger("vsent").info("still heard")
    assert "still heard" in caplog.text


# --- pretrained weights: library downloads, offline errors --------------------------------------


def test_timm_pretrained_offline_is_one_line_naming_file_and_folder(monkeypatch):
    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsError) as err:
        create_model("timm/test_vit", init="imagenet")
    msg = str(err.value)
    assert "\n" not in msg
    assert "https://huggingface.co/timm/test_vit.r160_in1k" in msg
    assert "--init PATH" in msg and "safetensors" in msg


def test_timm_unknown_pretrained_tag_is_one_line_listing_the_tags():
    # timm.is_model accepts any tag; its pretrained configurations do not (RuntimeError)
    for init in ("random", "imagenet"):
        with pytest.raises(VsentError, match=r"^unknown timm pretrained tag 'badtag' for "
                                             r"resnet10t \(tags: c3_in1k\)$"):
            create_model("timm/resnet10t.badtag", init=init)
    assert create_model("timm/resnet10t.c3_in1k").info.extra["pretrained_tag"] == "c3_in1k"


def test_timm_pretrained_record_states_source_licence_and_preprocessing():
    weights = timm_models.pretrained_weights("resnet10t")
    assert weights.licence == "apache-2.0"
    assert "resnet10t" in weights.source and "huggingface.co/timm/" in weights.source
    assert (weights.preprocess.resize, weights.preprocess.crop) == (201, 176)


def test_clip_tag_download_requires_real_weights_and_fails_in_one_line(monkeypatch):
    seen = {}

    def offline(arch, pretrained=None, **kw):
        seen.update(kw, arch=arch, pretrained=pretrained)
        raise RuntimeError("Failed to download file")

    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(WeightsError) as err:
        clip_models.load_clip("ViT-B-32", "openai")
    msg = str(err.value)
    assert "\n" not in msg and "ViT-B-32/openai" in msg
    # open_clip fetches this tag from the Hugging Face hub (its URL is the fallback)
    assert "https://huggingface.co/timm/vit_base_patch32_clip_224.openai" in msg
    # a file alone does not say whose input statistics apply: the message names the tag
    assert "--init openai=PATH" in msg
    # open_clip must fail rather than hand back random weights
    assert seen["require_pretrained"] is True and seen["pretrained"] == "openai"


def test_clip_unknown_tag_lists_the_known_ones():
    with pytest.raises(WeightsError, match="laion2b_s34b_b79k"):
        clip_models.load_clip("ViT-B-32", "no-such-tag")


def test_clip_init_imagenet_or_a_misspelt_tag_lists_the_tags():
    from vsent.models import get_model_entry

    entry = get_model_entry("clip/RN50")
    assert "openai" in entry.tags and entry.tagged("openai").tag == "openai"
    assert entry.tagged("opeanai") is None  # a path then: create_model's message lists the tags


def test_clip_pretrained_record_uses_the_tags_preprocessing():
    weights = clip_models.pretrained_weights("ViT-B-32", "openai")
    assert weights.preprocess.crop == 224
    np.testing.assert_allclose(weights.preprocess.mean[0], 0.48145466 * 255)
    # the tag itself, not only the URL (which holds "openai" too) (mut53g C42)
    where = clip_models.weights_location("ViT-B-32", "openai")
    assert weights.source == f"open_clip ViT-B-32 openai ({where})"


# --- registry ---------------------------------------------------------------------------------


def test_families_list_and_resolve_by_prefix():
    assert "timm/test_vit" in list_models("timm/test_*")
    assert "timm/resnet10t" in list_models("timm/resnet*")
    assert "clip/ViT-B-32" in list_models("clip/ViT-B-*")
    assert "clip/vsent-test-vit" in list_models("clip/vsent-test-*")
    assert not any(n.startswith(("timm/", "clip/")) for n in list_models("*"))
    # case ignored (open_clip's names have capitals); a '.' lists timm's pretrained tags
    assert "clip/ViT-B-32" in list_models("clip/vit-b-32*")
    assert "smallcnn" in list_models("SmallCNN")
    tagged = list_models("timm/resnet18.*")
    assert "timm/resnet18.a1_in1k" in tagged and "timm/resnet18" not in tagged
    for bad in ("timm/no_such_net", "clip/no-such-arch"):
        with pytest.raises(VsentError, match="no.such"):
            create_model(bad)


# --- zero-shot --------------------------------------------------------------------------------


@pytest.fixture
def clip_file(tmp_path):
    torch.manual_seed(9)
    clip = open_clip.create_model("vsent-test-vit").eval()
    path = tmp_path / "clip_full.pt"
    torch.save(clip.state_dict(), path)
    return clip, path


def test_zero_shot_scores_by_similarity_to_the_prompt_sets(clip_file):
    clip, path = clip_file
    model = zero_shot_model("clip/vsent-test-vit", str(path))
    x = _input(model, n=3)
    tok = open_clip.get_tokenizer("vsent-test-vit")
    with torch.no_grad():
        got = torch.softmax(model(x), dim=1)
        # independent: CLIP's own encoders, prompt ensembling done here
        img = F.normalize(clip.encode_image(x), dim=-1)
        cls = []
        for key in ("negative", "positive"):
            t = F.normalize(clip.encode_text(tok(list(DEFAULT_PROMPTS[key]))), dim=-1).mean(0)
            cls.append(F.normalize(t, dim=-1))
        ref = torch.softmax(clip.logit_scale.exp() * img @ torch.stack(cls).T, dim=1)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_zero_shot_user_prompts_replace_the_defaults(clip_file, tmp_path):
    _, path = clip_file
    pos, neg = ["a sunny beach"], ["a rainy funeral"]
    model = zero_shot_model("vsent-test-vit", str(path), positive=pos, negative=neg)
    swapped = zero_shot_model("vsent-test-vit", str(path), positive=neg, negative=pos)
    x = _input(model)
    with torch.no_grad():
        p, q = torch.softmax(model(x), 1), torch.softmax(swapped(x), 1)
    torch.testing.assert_close(p, q.flip(1))  # swapping the prompt sets swaps the classes
    text = tmp_path / "prompts.txt"
    text.write_text("# mine\npositive: a sunny beach\n\nnegative: a rainy funeral\n")
    from_file = zero_shot_model("vsent-test-vit", str(path), prompts_file=text)
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(from_file(x), 1), p)


def test_read_prompts_formats_and_errors(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"positive": ["good", "great"], "negative": ["bad"]}))
    assert read_prompts(j) == {"positive": ["good", "great"], "negative": ["bad"]}
    t = tmp_path / "p.txt"
    t.write_text("positive: good\nneutral: meh\n")
    with pytest.raises(VsentError, match=r"p\.txt:2:"):
        read_prompts(t)
    t.write_text("positive: good\n")
    with pytest.raises(VsentError) as err:
        read_prompts(t)
    assert str(err.value) == f"{t}: no negative prompt"  # names the file (mut53g Z35)
    # a byte that is not UTF-8 (audit_errors28 #1: a UnicodeDecodeError traceback), a folder
    t.write_bytes(b"positive: good\nnegative: \xff\n")
    with pytest.raises(VsentError, match=r"p\.txt:2: not a UTF-8 prompts file"):
        read_prompts(t)
    with pytest.raises(VsentError, match="is a folder, not a prompts file"):
        read_prompts(tmp_path)
    with pytest.raises(VsentError, match="no such file or directory"):
        read_prompts(tmp_path / "missing.txt")


def test_zero_shot_bad_init_is_a_user_error(tmp_path):
    with pytest.raises(WeightsError) as err:
        zero_shot_model("vsent-test-vit", str(tmp_path / "missing.pt"))
    # it lists the tags there are (none for the test tower) (mut53g Z48)
    assert str(err.value) == (f"--init {tmp_path / 'missing.pt'}: neither an open_clip tag of "
                              "vsent-test-vit (none) nor a weights file")
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="not an open_clip vsent-test-vit state dict"):
        zero_shot_model("vsent-test-vit", str(wrong))


def test_zero_shot_from_random_weights_warns_that_its_scores_mean_nothing(caplog):
    with caplog.at_level("WARNING", logger="vsent"):
        zero_shot_model("vsent-test-vit", "random")
    assert "zero-shot CLIP vsent-test-vit from random weights (--init random): its scores " \
        "mean nothing" in caplog.text


def test_read_state_dict_reads_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    got = read_state_dict(tmp_path / "w.safetensors")
    assert set(got) == {"a", "b"}
    torch.testing.assert_close(got["a"], state["a"])
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    with pytest.raises(WeightsError, match=r"bad\.safetensors: not a PyTorch state dict \("):
        read_state_dict(tmp_path / "bad.safetensors")


# --- tags and listing through the registry -------------------------------------------------------


def test_clip_tag_as_init_loads_the_tags_weights_and_preprocessing(monkeypatch):
    torch.manual_seed(5)
    pretrained = open_clip.create_model("vsent-test-vit").eval()
    monkeypatch.setattr(clip_models, "tags", lambda arch: ["fake-tag"])
    monkeypatch.setattr(clip_models, "load_clip", lambda arch, tag: pretrained)
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda arch, tag: {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                                           "url": "https://example.org/w.pt"})
    model = create_model("clip/vsent-test-vit", init="fake-tag").eval()
    for key, value in pretrained.visual.state_dict().items():
        torch.testing.assert_close(model.state_dict()[f"visual.{key}"], value)
    assert model.info.preprocess.mean == (127.5, 127.5, 127.5)
    assert model.info.preprocess.std == (63.75, 63.75, 63.75)
    with pytest.raises(WeightsError, match="no-such-tag"):  # neither a tag nor a file
        create_model("clip/vsent-test-vit", init="no-such-tag")


def test_cli_models_matches_family_names_without_their_prefix(capsys):
    from vsent.cli import main

    assert main(["models", "test_conv*"]) == 0
    assert "timm/test_convnext" in capsys.readouterr().out.split()
    assert main(["models", "convnext*"]) == 0
    shown = capsys.readouterr().out.split()
    assert "convnext_tiny" in shown and "timm/convnext_tiny" in shown  # torchvision and timm
    assert main(["models"]) == 0
    listed = capsys.readouterr()
    assert not any(n.startswith(("timm/", "clip/")) for n in listed.out.split())
    assert "(and the families clip/<arch>, timm/<arch>: vsent models 'timm/*'" in listed.err
    assert main(["models", "--pattern", "convnext*"]) == 0  # the option spelling of the issue
    assert capsys.readouterr().out.split() == shown
    assert main(["models", "nothing*"]) == 2
    assert "vsent: error: no model matches 'nothing*'" in capsys.readouterr().err
    # both spellings at once: one was ignored silently (trial33 #14)
    assert main(["models", "a*", "--pattern", "b*"]) == 2
    assert capsys.readouterr().err == ("vsent: error: two patterns, 'a*' and --pattern 'b*': "
                                       "give one\n")


def test_hub_downloads_without_a_network_fail_at_once_with_a_route_that_works(monkeypatch):
    """No name resolution: huggingface_hub runs offline for the call (a cached file still
    loads, a missing one fails at once instead of a minute of retries); the message says how to
    get the weights (the hub cache has its own layout: a file dropped there is not found)."""
    import logging
    import socket

    from huggingface_hub import constants

    from vsent.models.weights import hub_download

    def no_dns(*a, **kw):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    before = constants.HF_HUB_OFFLINE
    with hub_download():
        assert constants.HF_HUB_OFFLINE is True
        assert logging.getLogger("huggingface_hub").level == logging.CRITICAL
    assert constants.HF_HUB_OFFLINE is before
    msg = timm_models.offline_message("resnet18")
    assert "pass --init PATH to its model.safetensors (from https://huggingface.co/timm/" in msg
    assert "`hf download timm/resnet18." in msg
    msg = clip_models.offline_message("ViT-B-32", "openai")
    assert "`hf download timm/vit_base_patch32_clip_224.openai` where there is a network" in msg


# --- weights files of tagged architectures, damaged downloads ------------------------------------

#: open_clip's pretrained record of MobileCLIP (inputs in 0..1, mean 0, std 1), not CLIP's
MOBILE_STATS = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def _fake_clip_tag(monkeypatch, cfg: dict) -> None:
    """``fake-tag``, the only tag of every CLIP arch, with open_clip's pretrained record
    ``cfg`` (nothing is downloaded: the tests load files)."""
    import vsent.zeroshot as zs

    monkeypatch.setattr(clip_models, "tags", lambda arch: ["fake-tag"])
    monkeypatch.setattr(zs, "tags", clip_models.tags)  # imported by name there
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda arch, tag: {**cfg, "url": "https://example.org/w.pt"})


def test_clip_file_needs_its_tag_when_the_tags_take_other_statistics(monkeypatch, clip_file):
    """A plain file of an arch whose tags expect other mean/std than its default (MobileCLIP)
    was fed the default without a word: refused; ``TAG=PATH`` loads it with TAG's."""
    clip, path = clip_file
    _fake_clip_tag(monkeypatch, MOBILE_STATS)
    default = create_model("clip/vsent-test-vit").info.preprocess
    with pytest.raises(WeightsError) as err:
        create_model("clip/vsent-test-vit", init=str(path))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"--init TAG={path}" in msg
    assert "fake-tag: mean 0/0/0 std 255/255/255" in msg
    model = create_model("clip/vsent-test-vit", init=f"fake-tag={path}").eval()
    assert model.info.preprocess == clip_models.pretrained_weights("vsent-test-vit",
                                                                   "fake-tag").preprocess
    assert model.info.preprocess.std == (255.0,) * 3 != default.std
    x = _input(model)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), clip.encode_image(x))
    with pytest.raises(WeightsError, match="give the weights file after 'fake-tag='"):
        create_model("clip/vsent-test-vit", init="fake-tag=")
    with pytest.raises(WeightsError, match="no such file"):
        create_model("clip/vsent-test-vit", init=f"fake-tag={path}.missing")


def test_clip_tag_records_its_own_interpolation(monkeypatch, clip_file, tmp_path):
    """A tag whose record names another resampling than the tower's (MobileCLIP2: bilinear)
    was carded with the tower's bicubic, by create_model and by zero-shot alike."""
    from vsent.models.card import model_card

    clip, path = clip_file
    _fake_clip_tag(monkeypatch, {**MOBILE_STATS, "interpolation": "bilinear"})
    tower = create_model("clip/vsent-test-vit").info.extra
    assert tower["interpolation"] == "bicubic"
    model = create_model("clip/vsent-test-vit", init=f"fake-tag={path}")
    # the tag's resampling replaces the tower's; the tower's other facts stay (mut48d R22)
    assert len(tower) > 1 and model.info.extra == {**tower, "interpolation": "bilinear"}
    zero = zero_shot_model("clip/vsent-test-vit", f"fake-tag={path}")
    assert zero.info.extra["interpolation"] == "bilinear"
    assert zero_shot_model("clip/vsent-test-vit", "random").info.extra["interpolation"] \
        == "bicubic"
    save_checkpoint(tmp_path / "m.pt", model, init=f"fake-tag={path}")
    card = model_card(tmp_path / "m.pt")
    assert card["preprocess"]["weights_interpolation"] == "bilinear"
    assert card["preprocess"]["interpolation"] == "bilinear"  # vsent's own resampling


def test_clip_file_loads_plainly_when_every_tag_takes_the_default_statistics(monkeypatch,
                                                                            clip_file):
    _, path = clip_file
    _fake_clip_tag(monkeypatch, {"mean": clip_models.OPENAI_MEAN, "std": clip_models.OPENAI_STD})
    model = create_model("clip/vsent-test-vit", init=str(path))
    assert model.info.preprocess == create_model("clip/vsent-test-vit").info.preprocess


def test_zero_shot_file_needs_its_tag_like_create_model(monkeypatch, clip_file):
    clip, path = clip_file
    _fake_clip_tag(monkeypatch, MOBILE_STATS)
    with pytest.raises(WeightsError, match=r"--init TAG=.*\(tags: fake-tag\)$"):
        zero_shot_model("clip/vsent-test-vit", str(path))
    model = zero_shot_model("clip/vsent-test-vit", f"fake-tag={path}")
    assert model.info.preprocess.mean == (0.0,) * 3 and model.info.preprocess.std == (255.0,) * 3
    x = _input(model)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x),
                                   F.normalize(clip.encode_image(x), dim=-1))


def test_vsent_checkpoint_as_init_keeps_the_statistics_it_records(monkeypatch, clip_file,
                                                                   tmp_path):
    _, path = clip_file
    _fake_clip_tag(monkeypatch, MOBILE_STATS)
    tuned = create_model("clip/vsent-test-vit", init=f"fake-tag={path}")
    ckpt = save_checkpoint(tmp_path / "model.pt", tuned)
    again = create_model("clip/vsent-test-vit", init=str(ckpt))  # no tag needed: it is recorded
    assert again.info.preprocess == tuned.info.preprocess
    for key, value in tuned.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


def _hf_cache(monkeypatch, tmp_path, repo: str, name: str, data: bytes):
    """A Hugging Face cache in ``tmp_path`` holding ``repo``'s file ``name`` = ``data``, the
    hub offline (a download would fail: only the cached file can be read)."""
    from huggingface_hub import constants

    folder = tmp_path / "hf" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / name).write_bytes(data)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder / "snapshots" / "abc123" / name


def test_a_damaged_timm_file_in_the_hub_cache_is_named_not_blamed_on_the_network(monkeypatch,
                                                                                 tmp_path):
    cached = _hf_cache(monkeypatch, tmp_path, "timm/test_vit.r160_in1k", "model.safetensors",
                       np.random.default_rng(0).bytes(5000))
    with pytest.raises(WeightsError) as err:
        create_model("timm/test_vit", init="imagenet")
    msg = str(err.value)
    assert msg.startswith(f"{cached}: incomplete or damaged weights file (")
    assert "delete it and download it again (https://huggingface.co/timm/test_vit" in msg
    assert "no network" not in msg and "\n" not in msg


def test_a_damaged_clip_file_in_the_hub_cache_is_named_not_blamed_on_the_network(monkeypatch,
                                                                                 tmp_path):
    from open_clip import pretrained

    record = {"url": "", "hf_hub": "vsent/test-clip/", **MOBILE_STATS}
    monkeypatch.setitem(pretrained._PRETRAINED, "vsent-test-vit", {"fake_tag": record})
    cached = _hf_cache(monkeypatch, tmp_path, "vsent/test-clip", "open_clip_model.safetensors",
                       np.random.default_rng(0).bytes(5000))
    with pytest.raises(WeightsError) as err:  # (open_clip's tags have no "-")
        create_model("clip/vsent-test-vit", init="fake_tag")
    msg = str(err.value)
    assert msg.startswith(f"{cached}: incomplete or damaged weights file (")
    assert "no network" not in msg and "\n" not in msg


def test_a_clip_tower_built_on_timm_has_probe_layers_blocks_and_a_cam_layer(tmp_path):
    """open_clip's towers on timm (SigLIP, ConvNeXt-CLIP, EVA: 78 of its 144 architectures)
    keep their blocks under visual.trunk: they had no probe layers, so no --train last-N, no
    `vsent layers`, no Grad-CAM (audit_models27 #3). timm's feature_info names them, as for a
    timm/ model."""
    from vsent.frozen import check_train_mode, train_blocks

    name = "vsent-test-timm-convnext"
    if name not in open_clip.list_models():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({
            "embed_dim": 16,
            "vision_cfg": {"timm_model_name": "test_convnext", "timm_model_pretrained": False,
                           "timm_pool": "avg", "timm_proj": "linear", "image_size": 32},
            "text_cfg": TINY_CLIP["vsent-test-vit"]["text_cfg"]}))
        open_clip.add_model_config(path)
    model = create_model(f"clip/{name}").eval()
    probes = model.info.probe_layers
    assert probes and all(p.startswith("visual.trunk.stages.") for p in probes)
    assert model.info.cam_layer == probes[-1]
    assert [b for b, _ in train_blocks(model)] == list(probes)
    check_train_mode(model, "last-2")  # two blocks to train besides the head
    with torch.no_grad():
        assert model(_input(model)).shape == (2, 2)


def test_a_clip_tower_that_also_returns_its_tokens_gives_its_pooled_embedding():
    """CoCa's tower returns (pooled, tokens): `create_model("clip/coca_ViT-B-32")` failed with
    "linear(): argument 'input' must be Tensor, not tuple" (audit_models27 #3)."""
    from vsent.models.clip_models import ClipImageModel

    class PooledAndTokens(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)), x.flatten(2).transpose(1, 2)

    base = create_model("clip/vsent-test-vit")
    model = ClipImageModel(PooledAndTokens(), 3, 2, base.info)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model.forward_features(x), x.mean(dim=(2, 3)))
    assert model(x).shape == (2, 2)


# --- mutation round 44 (mut44a): survivors of mutations of the timm/CLIP builders, killed here


def test_timm_preprocessing_defaults_when_the_configuration_is_silent():
    """What a pretrained configuration leaves out takes timm's own defaults: ImageNet mean/std,
    crop_pct 0.875 (224 -> warp 256), bicubic, centre crop; a crop_pct above 1 never warps
    below the crop, and a non-square input size crops its height (with a warning)."""
    pre, facts = timm_models.preprocess_from_cfg({})
    assert (pre.resize, pre.crop, pre.channel_order) == (256, 224, "RGB")
    np.testing.assert_allclose(pre.mean, (123.675, 116.28, 103.53), rtol=1e-6)
    np.testing.assert_allclose(pre.std, (58.395, 57.12, 57.375), rtol=1e-6)
    assert facts == {"interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center"}
    # timm's configurations hold crop_pct None where they have none
    assert timm_models.preprocess_from_cfg({"crop_pct": None})[0].resize == 256
    # timm's eval transform floors crop / crop_pct: 224 / 0.9 = 248.9 -> 248, not 249 (mut53g)
    assert timm_models.preprocess_from_cfg({"input_size": (3, 224, 224),
                                            "crop_pct": 0.9})[0].resize == 248
    assert timm_models.preprocess_from_cfg({"input_size": (3, 200, 200),
                                            "crop_pct": 1.25})[0].resize == 200
    pre, _ = timm_models.preprocess_from_cfg({"input_size": (3, 192, 256), "crop_pct": 0.75})
    assert (pre.resize, pre.crop) == (256, 192)


def test_timm_interpolation_of_is_the_architectures_own():
    assert timm_models.interpolation_of("test_resnet") == "bilinear"
    assert timm_models.interpolation_of("test_vit") == "bicubic"


class _ChannelsLast(torch.nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def _layout_net(channels: int, channels_last: bool) -> torch.nn.Module:
    """Layer ``conv``: a 1x1 convolution 3 -> ``channels``, whose map is (B, h, w, C) when
    ``channels_last``."""
    from collections import OrderedDict

    conv = torch.nn.Conv2d(3, channels, 1)
    layer = torch.nn.Sequential(conv, _ChannelsLast()) if channels_last else conv
    return torch.nn.Sequential(OrderedDict(conv=layer))


def test_probe_pools_leave_out_maps_they_cannot_tell_from_channels_last():
    """(B, C, h, w) -> "avg"; a (B, h, w, C) map, or a (B, n, n, n) one that could be either,
    is left out (flattened): averaging it would pool over the wrong axes."""
    nchw = _layout_net(8, channels_last=False)
    assert timm_models.probe_pools(nchw, ["conv"], 16) == {"conv": "avg"}
    assert timm_models.probe_pools(nchw, ["conv"], 8) == {}  # (1, 8, 8, 8): ambiguous
    nhwc = _layout_net(16, channels_last=True)
    assert timm_models.probe_pools(nhwc, ["conv"], 16) == {}  # (1, 16, 16, 16)
    assert timm_models.probe_pools(nhwc, ["conv"], 8) == {}  # (1, 8, 8, 16)
    # a square input giving a map that is not square, (1, 8, 16, 8): no layout to trust, left
    # out too (mut56m M4: only the channel test kept, it was averaged)
    wide = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1, stride=(1, 2)))
    assert timm_models.probe_pools(wide, ["0"], 16) == {}


def test_probe_pools_known_per_input_size_and_keep_the_training_mode(monkeypatch):
    monkeypatch.setattr(timm_models, "_KNOWN_POOLS", {})
    net = _layout_net(8, channels_last=False)
    assert timm_models.probe_pools(net, ["conv"], 8, key="k") == {}
    assert timm_models.probe_pools(net, ["conv"], 16, key="k") == {"conv": "avg"}  # not reused
    # the known pools are handed out as copies: a model changing its own leaves them be
    timm_models.probe_pools(net, ["conv"], 16, key="k")["conv"] = "flatten"
    assert timm_models.probe_pools(net, ["conv"], 16, key="k") == {"conv": "avg"}  # mut53g M41
    net.train()
    timm_models.probe_pools(net, ["conv"], 12)
    assert net.training  # the probe runs in eval mode, then gives the mode back
    net.eval()
    timm_models.probe_pools(net, ["conv"], 12)
    assert not net.training


def test_clip_probe_pools_are_found_again_for_another_tower_under_one_name(tmp_path,
                                                                         monkeypatch):
    """open_clip can register another configuration under a name already built: the pools
    known for the first tower (layer1 avg-pooled at width 8) must not be reused for the second
    (width 2: layer1 is (1, 8, 8, 8), channels not told from width, so left out)."""
    from open_clip import factory

    monkeypatch.setattr(factory, "_MODEL_CONFIG_PATHS", list(factory._MODEL_CONFIG_PATHS))
    monkeypatch.setattr(factory, "_MODEL_CONFIGS", dict(factory._MODEL_CONFIGS))
    monkeypatch.setattr(timm_models, "_KNOWN_POOLS", {})
    pools = []
    for width in (8, 2):
        cfg = {**TINY_CLIP["vsent-test-rn"], "vision_cfg": {
            **TINY_CLIP["vsent-test-rn"]["vision_cfg"], "width": width}}
        (tmp_path / "vsent-test-swap.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(tmp_path / "vsent-test-swap.json")
        pools.append(create_model("clip/vsent-test-swap").info.probe_pool)
    later = {"visual.layer2": "avg", "visual.layer3": "avg", "visual.layer4": "avg"}
    assert pools == [{"visual.layer1": "avg", **later}, later]


@pytest.mark.parametrize("arch, cam", [("test_resnet", "layer4"), ("test_convnext", "stages.3"),
                                       ("test_vit", "")])
def test_timm_cam_layer_is_the_last_spatial_stage(arch, cam):
    info = create_model(f"timm/{arch}").info
    assert info.cam_layer == cam  # a ViT's blocks output tokens: no Grad-CAM map


def test_timm_feature_dim_is_the_classifiers_input_behind_a_hidden_head_layer(monkeypatch):
    """A head with a pre-logits layer (ConvNeXt's head_hidden_size, timm's *_mlp models):
    the classifier's input is head_hidden_size wide, not num_features."""
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model",
                        lambda name, **kw: real(name, head_hidden_size=24, **kw))
    model = create_model("timm/test_convnext").eval()
    assert model.net.num_features == 64 and model.info.feature_dim == 24
    with torch.no_grad():
        assert model.forward_features(_input(model)).shape == (2, 24)


def test_timm_feature_dim_behind_a_classifier_that_is_no_plain_linear_layer(monkeypatch):
    """A classifier that is no nn.Linear (DLA's and DPN's 1x1 convolutions) has no in_features:
    feature_dim then comes from the net's head_hidden_size, not from num_features."""
    real = timm.create_model

    def wrapped_head(name, **kw):
        net = real(name, head_hidden_size=24, **kw)
        reset = net.reset_classifier

        def reset_wrapped(num_classes: int) -> None:
            reset(num_classes)
            net.head.fc = torch.nn.Sequential(net.head.fc)

        net.reset_classifier = reset_wrapped
        return net

    monkeypatch.setattr(timm, "create_model", wrapped_head)
    model = create_model("timm/test_convnext").eval()
    assert isinstance(model.net.get_classifier(), torch.nn.Sequential)
    assert model.net.num_features == 64 and model.info.feature_dim == 24
    with torch.no_grad():
        assert model.forward_features(_input(model)).shape == (2, 24)


def test_timm_headless_classifier_is_refused(monkeypatch):
    real = timm.create_model

    def headless(name, **kw):
        net = real(name, **kw)
        net.reset_classifier = lambda n: setattr(net, "fc", torch.nn.Identity())
        return net

    monkeypatch.setattr(timm, "create_model", headless)
    with pytest.raises(VsentError, match=r"^timm/test_resnet: its classifier Identity cannot "
                                         r"be used as one sentiment head"):
        timm_models.build_timm("test_resnet")


def test_timm_cached_weights_file_of_a_url_or_a_named_hub_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    cfg = {"url": "https://example.org/releases/w_176-abc.pth"}
    assert timm_models.cached_weights_file(cfg) is None
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "w_176-abc.pth").write_bytes(b"x")
    assert timm_models.cached_weights_file(cfg) == tmp_path / "hub" / "checkpoints" / \
        "w_176-abc.pth"
    cached = _hf_cache(monkeypatch, tmp_path, "vsent/own-name", "weights.bin", b"x")
    assert timm_models.cached_weights_file({"hf_hub_id": "vsent/own-name"}) is None
    assert timm_models.cached_weights_file({"hf_hub_id": "vsent/own-name",
                                            "hf_hub_filename": "weights.bin"}) == cached


def test_timm_offline_message_of_a_hub_only_configuration_says_hf_download(monkeypatch):
    """test_vit's weights are on the Hugging Face hub only (no URL): `hf download` fetches
    them; dropping a file into the hub cache would not be found (its own layout)."""
    msg = timm_models.offline_message("test_vit")
    assert "`hf download timm/test_vit.r160_in1k` where there is a network" in msg
    # a configuration naming its hub file: --init PATH names that file (mut53g M55)
    monkeypatch.setattr(timm_models, "_pretrained_cfg", lambda arch: {
        "hf_hub_id": "timm/own", "hf_hub_filename": "open_clip_model.safetensors"})
    assert ("pass --init PATH to its open_clip_model.safetensors (from "
            "https://huggingface.co/timm/own), or `hf download timm/own`"
            in timm_models.offline_message("test_vit"))


def test_timm_card_entry_of_a_weights_file_names_the_file():
    assert timm_models.describe_weights("test_vit", "/w/vit.safetensors") == {
        "source": "weights file (timm key names)", "library": "timm",
        "location": "/w/vit.safetensors"}


def test_timm_names_list_case_insensitively():
    assert "timm/test_vit" in list_models("TIMM/Test_ViT*")
    assert "timm/test_vit" in list_models("Timm/test_vit")


def test_clip_preprocess_takes_the_tags_statistics_over_the_towers():
    """clip_preprocess(visual, cfg): the tag's mean/std win over the tower's own configuration,
    what either leaves unsaid (None) falls back; a tower stating nothing gets CLIP's."""
    from types import SimpleNamespace

    from vsent.models.clip_models import clip_preprocess

    tower = SimpleNamespace(image_size=(32, 32), preprocess_cfg={
        "mean": clip_models.OPENAI_MEAN, "std": clip_models.OPENAI_STD,
        "interpolation": "bilinear", "resize_mode": "squash"})
    pre, facts = clip_preprocess(tower, {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
                                         "interpolation": None})
    assert (pre.resize, pre.crop) == (32, 32)
    assert pre.mean == (0.0, 0.0, 0.0) and pre.std == (255.0, 255.0, 255.0)
    assert facts == {"interpolation": "bilinear", "resize_mode": "squash"}
    pre, facts = clip_preprocess(SimpleNamespace(image_size=48))
    assert (pre.resize, pre.crop) == (48, 48)
    np.testing.assert_allclose(pre.mean, np.array(clip_models.OPENAI_MEAN) * 255)
    assert facts == {"interpolation": "bicubic", "resize_mode": "shortest"}


def test_clip_vit_probes_every_transformer_block():
    info = create_model("clip/vsent-test-vit").info
    assert info.probe_layers == ("visual.transformer.resblocks.0",
                                 "visual.transformer.resblocks.1")
    assert info.cam_layer == ""  # tokens, no spatial map


def test_clip_unknown_architecture_is_a_user_error_when_built_directly():
    with pytest.raises(VsentError, match="^unknown CLIP architecture 'no-such-arch'"):
        clip_models.build_clip("no-such-arch")


def test_clip_new_head_is_initialised_like_campos_new_layers():
    torch.manual_seed(0)
    head = create_model("clip/vsent-test-rn").head
    assert torch.all(head.bias == 0)
    assert 0.005 < float(head.weight.detach().std()) < 0.02  # Gaussian std 0.01 (not nn.Linear's)


def test_clip_quick_gelu_is_only_forced_where_the_architecture_lacks_it(monkeypatch):
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: {"quick_gelu": True})
    assert clip_models.quick_gelu_of("vsent-test-vit", "t") is True
    real = open_clip.get_model_config
    monkeypatch.setattr(open_clip, "get_model_config",
                        lambda arch: {**real(arch), "quick_gelu": True})
    assert clip_models.quick_gelu_of("vsent-test-vit", "t") is False  # built with it already


def test_clip_cached_weights_file_falls_back_to_the_url_download(monkeypatch, tmp_path):
    """A tag with a Hugging Face repository and a URL: a file open_clip fetched from the URL
    (its ~/.cache/clip) is found when the hub cache has none."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: {
        "hf_hub": "vsent/none-cached/", "url": "https://example.org/clip/ViT-T.pt"})
    assert clip_models.cached_weights_file("vsent-test-vit", "t") is None
    (tmp_path / ".cache" / "clip").mkdir(parents=True)
    (tmp_path / ".cache" / "clip" / "ViT-T.pt").write_bytes(b"x")
    assert clip_models.cached_weights_file("vsent-test-vit", "t") == \
        tmp_path / ".cache" / "clip" / "ViT-T.pt"


def test_clip_tag_loader_gives_the_image_tower_only(monkeypatch):
    pretrained = open_clip.create_model("vsent-test-vit")
    _fake_clip_tag(monkeypatch, {})
    monkeypatch.setattr(clip_models, "load_clip", lambda arch, tag: pretrained)
    state = clip_models.pretrained_weights("vsent-test-vit", "fake-tag").loader(None)
    assert state and all(k.startswith("visual.") for k in state)
    assert set(state) == {f"visual.{k}" for k in pretrained.visual.state_dict()}


def test_clip_tower_preprocess_defaults_to_224(tmp_path):
    name = "vsent-test-no-size"
    if name not in open_clip.list_models():
        cfg = {**TINY_CLIP["vsent-test-vit"]}
        cfg["vision_cfg"] = {k: v for k, v in cfg["vision_cfg"].items() if k != "image_size"}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        open_clip.add_model_config(path)
    pre = clip_models.tower_preprocess(name)
    assert (pre.resize, pre.crop) == (224, 224)  # open_clip's default image size


def test_clip_card_entries_and_interpolation(monkeypatch):
    assert clip_models.interpolation_of("vsent-test-vit") == "bicubic"
    _fake_clip_tag(monkeypatch, {})
    assert clip_models.describe_weights("vsent-test-vit", "fake-tag=/w/clip.bin") == {
        "source": "weights file of open_clip vsent-test-vit fake-tag", "library": "open_clip",
        "tag": "fake-tag", "licence": None, "location": "/w/clip.bin"}
    assert clip_models.describe_weights("vsent-test-vit", "/w/clip.bin")["location"] == \
        "/w/clip.bin"
    # a configuration stating its own resampling (open_clip.add_model_config) (mut53g C44)
    monkeypatch.setattr(open_clip, "get_model_config",
                        lambda arch: {"preprocess_cfg": {"interpolation": "bilinear"}})
    assert clip_models.interpolation_of("vsent-test-vit") == "bilinear"


def test_clip_entry_tagged_reads_tag_equals_path():
    from vsent.models import get_model_entry

    entry = get_model_entry("clip/RN50")
    assert entry.tagged("openai=/no/such/rn50.bin").tag == "openai"


def test_clip_list_names_matches_its_pattern():
    assert clip_models.list_names("clip/vsent-test-v*") == ["clip/vsent-test-vit"]
    assert clip_models.list_names("vsent-test-v*") == []  # not the family's prefix


def test_clip_quiet_build_filter_lets_open_clips_warnings_through():
    import logging

    quiet = clip_models._QuietRandomBuild("/lib/open_clip/")

    def record(level, msg, path="/lib/open_clip/factory.py"):
        return logging.LogRecord("root", level, path, 1, msg, None, None)

    assert not quiet.filter(record(logging.INFO, "Loaded ViT-B-32 model config."))
    assert not quiet.filter(record(logging.WARNING, "No pretrained weights loaded for model"))
    assert quiet.filter(record(logging.WARNING, "QuickGELU mismatch between final model "
                                                "config and pretrained tag"))
    assert quiet.filter(record(logging.INFO, "mine", path="/home/me/train.py"))


# mutation round 47 (mut47a): vsent.models.timm_models mutants the suite missed


def test_timm_probes_leave_out_feature_info_modules_the_network_lacks(monkeypatch):
    """A timm feature_info entry naming a module the network does not have (pruned,
    replaced) is no probe layer: `vsent layers`, --train last-N and Grad-CAM would fail on it."""
    real = timm.create_model

    def with_a_stale_entry(name, **kw):
        net = real(name, **kw)
        net.feature_info = [*net.feature_info, {"module": "stages.9", "num_chs": 8,
                                                "reduction": 64}]
        return net

    monkeypatch.setattr(timm, "create_model", with_a_stale_entry)
    info = timm_models.build_timm("test_resnet").info
    assert info.probe_layers == ("act1", "layer1", "layer2", "layer3", "layer4")
    assert info.cam_layer == "layer4"


def test_timm_load_pretrained_asks_timm_for_the_models_head_width(monkeypatch):
    """timm drops a pretrained classifier of another width itself, so the state dict loads
    into the model: asked for 1000 classes, its head would not fit a 3-class model."""
    real, asked = timm.create_model, {}

    def create(name, **kw):
        asked.update(kw)
        return real(name, num_classes=kw["num_classes"])  # no download

    model = create_model("timm/test_vit", num_classes=3)
    monkeypatch.setattr(timm, "create_model", create)
    state = timm_models.load_pretrained("test_vit", model)
    assert asked == {"pretrained": True, "num_classes": 3}
    model.load_state_dict(state)  # every key, the 3-wide head included


def test_timm_configuration_without_a_weights_location_has_no_pretrained_record(monkeypatch):
    monkeypatch.setattr(timm_models, "_pretrained_cfg",
                        lambda arch: {"architecture": "test_vit", "tag": "local"})
    assert timm_models.pretrained_weights("test_vit") is None
    # a configuration naming a local file has its record (mut53g M57)
    monkeypatch.setattr(timm_models, "_pretrained_cfg",
                        lambda arch: {"architecture": "test_vit", "file": "/w/vit.pth"})
    assert timm_models.pretrained_weights("test_vit").source == "timm test_vit (/w/vit.pth)"
    assert timm_models.describe_weights("test_vit", "imagenet")["location"] == "/w/vit.pth"
    # an architecture timm knows no configuration of at all: none, and no error (mut53g M50)
    monkeypatch.undo()
    import timm

    monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda arch: None)
    assert timm_models.pretrained_weights("test_vit") is None
    assert timm_models.interpolation_of("test_vit") is None


# mutation round 47 (mut47a): vsent.models.clip_models mutants the suite missed


def test_clip_quick_gelu_only_for_tags_whose_record_asks_for_it():
    """open_clip's own records (no download): OpenAI's weights were trained with QuickGELU,
    LAION's with GELU, whose record says nothing about it (mut47a cl07: a silent record
    defaulting to QuickGELU ran LAION's weights in another function)."""
    assert clip_models.quick_gelu_of("ViT-B-32", "openai") is True
    assert "quick_gelu" not in open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")
    assert clip_models.quick_gelu_of("ViT-B-32", "laion2b_s34b_b79k") is False


def test_clip_preprocess_of_a_tower_without_an_image_size_is_224_with_clips_statistics():
    """As tower_preprocess: open_clip's default image size, OpenAI's mean/std in 0..255."""
    pre, facts = clip_models.clip_preprocess(torch.nn.Identity())
    assert (pre.resize, pre.crop) == (224, 224)
    assert pre.mean == pytest.approx(tuple(255 * m for m in clip_models.OPENAI_MEAN))
    assert facts == {"interpolation": "bicubic", "resize_mode": "shortest"}


def test_clip_timm_trunk_probes_leave_out_feature_info_modules_it_lacks():
    """A trunk whose timm feature_info names a module it no longer has (pruned, replaced) gets
    probe layers it has only: a missing name fails every `vsent layers`/--train last-N/Grad-CAM
    with an AttributeError."""
    trunk = torch.nn.Module()
    trunk.stages = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    trunk.feature_info = [{"module": "stages.0"}, {"module": "head.norm"}]
    visual = torch.nn.Module()
    visual.trunk = trunk
    assert clip_models._probe_layers(visual) == ("visual.trunk.stages.0",)


def test_clip_names_list_case_insensitively():
    """As timm's: the family prefix and open_clip's mixed-case names in any case."""
    assert clip_models.list_names("CLIP/VSENT-test-v*") == ["clip/vsent-test-vit"]
    assert "clip/vsent-test-vit" in list_models("Clip/vsent-test-vit")


def test_clip_unknown_architecture_is_refused_when_its_entry_is_resolved():
    """The registry entry itself (cards, `vsent models`, --init checks come before a build)."""
    from vsent.models import get_model_entry

    with pytest.raises(VsentError, match=r"^unknown CLIP architecture 'ViT-Q-99' \(list them "
                                         r"with `vsent models 'clip/\*'`\)$"):
        clip_models.resolve("clip/ViT-Q-99")
    with pytest.raises(VsentError, match="ViT-Q-99"):
        get_model_entry("clip/ViT-Q-99")


def test_clip_card_entry_of_a_tag_names_the_tag_and_where_open_clip_fetches_it(monkeypatch):
    _fake_clip_tag(monkeypatch, {})
    assert clip_models.describe_weights("vsent-test-vit", "fake-tag") == {
        "source": "open_clip pretrained weights vsent-test-vit fake-tag",
        "library": "open_clip", "tag": "fake-tag", "licence": None,
        "location": "https://example.org/w.pt"}


def test_clip_cached_weights_file_of_a_tag_naming_its_hub_file(monkeypatch, tmp_path):
    """A tag whose hf_hub names its file (``owner/repo/file.bin``): that file in the hub cache
    is the one found (a damaged copy of it is then named, not blamed on the network; mut47a
    cl33b), as timm's hf_hub_filename is."""
    cached = _hf_cache(monkeypatch, tmp_path, "vsent/own-clip", "weights.bin", b"x")
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda arch, tag: {"hf_hub": "vsent/own-clip/weights.bin"})
    assert clip_models.cached_weights_file("vsent-test-vit", "t") == cached
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda arch, tag: {"hf_hub": "vsent/own-clip/"})
    assert clip_models.cached_weights_file("vsent-test-vit", "t") is None  # not a usual name


# mutation round 50 (mut50f): timm/CLIP builder mutants the suite missed


def test_a_tagged_timm_architecture_names_its_tag_in_info_record_card_and_offline_message():
    """``timm/<arch>.<tag>``: the architecture and the tag are recorded apart (info.extra),
    and the pretrained record, the card entry and the offline message name the tagged weights
    (not the architecture's default ones) and where timm fetches them."""
    from vsent.models.weights import hf_cache_dir

    extra = create_model("timm/resnet10t.c3_in1k").info.extra
    assert (extra["timm_arch"], extra["pretrained_tag"], extra["hf_hub_id"], extra["license"]) \
        == ("resnet10t", "c3_in1k", "timm/resnet10t.c3_in1k", "apache-2.0")
    assert extra["url"].endswith("/resnet10t_176_c3-f3215ab1.pth")
    hub = "https://huggingface.co/timm/resnet10t.c3_in1k"
    assert timm_models.pretrained_weights("resnet10t.c3_in1k").source == \
        f"timm resnet10t.c3_in1k ({hub})"
    assert timm_models.describe_weights("resnet10t.c3_in1k", "imagenet") == {
        "source": "timm pretrained weights resnet10t.c3_in1k", "library": "timm",
        "tag": "c3_in1k", "licence": "apache-2.0", "location": hub}
    assert timm_models.offline_message("resnet10t.c3_in1k", OSError("no route")) == (
        f"cannot download timm weights for resnet10t.c3_in1k (OSError) (no network?): pass "
        f"--init PATH to its model.safetensors (from {hub}), or `hf download "
        f"timm/resnet10t.c3_in1k` where there is a network, then copy the Hugging Face cache "
        f"({hf_cache_dir()}) here")


def test_timm_offline_message_of_a_url_only_configuration_names_torch_hubs_folder(
        monkeypatch, tmp_path):
    """timm fetches a configuration without a Hugging Face repository from its URL with
    torch.hub (into torch.hub's checkpoints folder, where cached_weights_file looks too): the
    message sends the file there, not into the Hugging Face cache, where timm never looks; and
    the file --init takes is that URL's .pth (it read "model.safetensors": mut50f's note)."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(timm_models, "_pretrained_cfg",
                        lambda arch: {"url": "https://example.org/releases/w_176-abc.pth"})
    assert timm_models.offline_message("test_resnet") == (
        "cannot download timm weights for test_resnet (no network?): pass --init PATH to its "
        "w_176-abc.pth (from https://example.org/releases/w_176-abc.pth), or download "
        f"https://example.org/releases/w_176-abc.pth into {tmp_path / 'hub' / 'checkpoints'}")
    # a configuration with no URL either: the default file name, not the folder's
    # ("checkpoints": the name was read off the folder joined with an empty URL path)
    monkeypatch.setattr(timm_models, "_pretrained_cfg", lambda arch: {})
    assert "pass --init PATH to its model.safetensors (from nowhere (timm lists no file for " \
           "it))" in timm_models.offline_message("test_resnet")


def test_clip_offline_message_names_the_hub_repository_or_open_clips_url_folder(monkeypatch,
                                                                                 tmp_path):
    """open_clip's records end a Hugging Face repository with '/': the message names the
    repository without it (`hf download owner/repo`, its page); a tag downloaded from a URL
    goes to open_clip's own folder (~/.cache/clip, where cached_weights_file looks), not the
    Hugging Face cache, where open_clip never looks for it."""
    from vsent.models.weights import hf_cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda arch, tag: {"hf_hub": "vsent/tiny-clip/"})
    assert clip_models.offline_message("vsent-test-vit", "fake-tag", RuntimeError("x")) == (
        "cannot download CLIP weights vsent-test-vit/fake-tag (RuntimeError) (no network?): "
        "pass --init fake-tag=PATH with PATH its open_clip state dict (.bin or .safetensors, "
        "from https://huggingface.co/vsent/tiny-clip), or `hf download vsent/tiny-clip` where "
        f"there is a network, then copy the Hugging Face cache ({hf_cache_dir()}) here")
    url = "https://example.org/clip/ViT-T.pt"
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: {"url": url})
    assert clip_models.offline_message("vsent-test-vit", "fake-tag") == (
        "cannot download CLIP weights vsent-test-vit/fake-tag (no network?): pass --init "
        f"fake-tag=PATH with PATH its open_clip state dict (.bin or .safetensors, from {url}), "
        f"or download {url} into {tmp_path / '.cache' / 'clip'}")


def test_timm_pretrained_record_describes_the_weights_by_their_notes(monkeypatch):
    """The configuration's notes describe the weights: a string, or timm's usual tuple of
    sentences joined (it was left out: every real timm configuration's notes are a tuple, so
    no card showed them); anything else is left out rather than printed as a Python value."""
    cfg = {"architecture": "test_vit", "tag": "r160_in1k", "hf_hub_id": "timm/test_vit.r160_in1k",
           "notes": "trained on a tiny set", "license": "mit"}
    monkeypatch.setattr(timm_models, "_pretrained_cfg", lambda arch: dict(cfg))
    weights = timm_models.pretrained_weights("test_vit")
    assert (weights.description, weights.licence) == ("trained on a tiny set", "mit")
    cfg["notes"] = ("natively QuickGELU.", " use the quickgelu variant. ", "")
    assert timm_models.pretrained_weights("test_vit").description == \
        "natively QuickGELU. use the quickgelu variant."
    for odd in ((1, 2), {"a": "b"}, 3):
        cfg["notes"] = odd
        assert timm_models.pretrained_weights("test_vit").description == ""
    # a configuration stating no licence says so on the card, not "None" (mut58k M35)
    del cfg["license"]
    assert timm_models.pretrained_weights("test_vit").licence == "unknown"


def test_timm_non_square_input_size_warns_once_naming_the_crop(caplog):
    with caplog.at_level("WARNING", logger="vsent.models.timm_models"):
        timm_models.preprocess_from_cfg({"input_size": (3, 224, 224)})
        assert caplog.messages == []
        timm_models.preprocess_from_cfg({"input_size": (3, 192, 256)})
    assert caplog.messages == ["timm input size 192x256 is not square: vsent crops 192x192"]


def test_timm_architecture_timm_has_no_pretrained_weights_for_has_no_record(monkeypatch):
    """A configuration naming a location is not enough: timm must list the architecture as
    pretrained (else --init imagenet would only fail at the download)."""
    monkeypatch.setattr(timm.models, "is_model_pretrained", lambda name: False)
    assert timm_models.pretrained_weights("test_vit") is None


def test_clip_head_has_the_asked_number_of_classes():
    model = create_model("clip/vsent-test-rn", num_classes=3)
    assert (model.head.in_features, model.head.out_features) == (16, 3)
    assert model.info.num_outputs == 3
    assert model(_input(model)).shape == (2, 3)


def test_clip_preprocess_of_a_tower_stating_no_statistics_takes_clips_std_too():
    pre, _ = clip_models.clip_preprocess(torch.nn.Identity())
    assert pre.std == pytest.approx(tuple(255 * s for s in clip_models.OPENAI_STD))
    assert pre.std == pytest.approx((68.5005327, 66.6321579, 70.3231631))


def test_clip_info_records_the_open_clip_architecture_and_clips_resampling():
    """info.extra names the open_clip configuration the tower was built from, with CLIP's
    bicubic resampling and shortest-side resize."""
    assert create_model("clip/vsent-test-vit").info.extra == {
        "interpolation": "bicubic", "resize_mode": "shortest", "open_clip_arch": "vsent-test-vit"}
