"""Zero-shot CLIP runs: the tag's preprocessing, and no training options or recipe.

Every CLIP here is a tiny open_clip configuration with random weights; a pretrained tag is
faked (its record read from open_clip's configuration or monkeypatched); nothing is downloaded.
"""

from __future__ import annotations

import re

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from vsent.models import clip_models, create_model  # noqa: E402
from vsent.zeroshot import zero_shot_model  # noqa: E402


@pytest.fixture(autouse=True)
def _tiny_clip(tmp_path):
    from test_backbones import add_tiny_clip_configs

    add_tiny_clip_configs(tmp_path)


def _fake_tag(monkeypatch, cfg: dict) -> None:
    """``fake-tag`` of every arch: seeded random weights, open_clip's pretrained record ``cfg``."""
    torch.manual_seed(5)
    pretrained = open_clip.create_model("vsent-test-vit").eval()
    monkeypatch.setattr(clip_models, "tags", lambda arch: ["fake-tag"])
    monkeypatch.setattr(clip_models, "load_clip", lambda arch, tag: pretrained)
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: cfg)
    import vsent.zeroshot as zs

    monkeypatch.setattr(zs, "tags", clip_models.tags)  # imported by name there
    monkeypatch.setattr(zs, "load_clip", clip_models.load_clip)


def test_zero_shot_uses_the_tags_preprocessing_like_create_model(monkeypatch):
    # MobileCLIP's record (no download): inputs in 0..1, mean 0, std 1, not CLIP's statistics
    mobile = open_clip.get_pretrained_cfg("MobileCLIP-S1", "datacompdr")
    assert tuple(mobile["mean"]) == (0.0, 0.0, 0.0) and tuple(mobile["std"]) == (1.0, 1.0, 1.0)
    _fake_tag(monkeypatch, dict(mobile))
    tagged = create_model("clip/vsent-test-vit", init="fake-tag")
    model = zero_shot_model("clip/vsent-test-vit", "fake-tag")
    assert model.info.preprocess == tagged.info.preprocess
    assert model.info.preprocess.mean == (0.0, 0.0, 0.0)
    assert model.info.preprocess.std == (255.0, 255.0, 255.0)
    # a weights file or random weights keep the architecture's configuration
    assert zero_shot_model("clip/vsent-test-vit", "random").info.preprocess == \
        create_model("clip/vsent-test-vit").info.preprocess


def test_zeroshot_names_are_refused_as_a_model_to_build_but_checkpoints_load(tmp_path):
    """``zeroshot/clip/<arch>`` built an empty zero-shot model (zero class embeddings: every
    logit 0) that crossval trained to nothing; only checkpoints rebuild it now."""
    from vsent.errors import VsentError
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    with pytest.raises(VsentError) as err:
        create_model("zeroshot/clip/vsent-test-vit")
    assert str(err.value) == ("'zeroshot/clip/vsent-test-vit' names a saved model, not an "
                              "architecture to build: a zero-shot model comes from --zero-shot "
                              "--model clip/vsent-test-vit (vsent.zeroshot.zero_shot_model)")
    model = zero_shot_model("clip/vsent-test-vit", "random")
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "zs.pt", model))
    assert loaded.spec["name"] == "zeroshot/clip/vsent-test-vit"
    torch.testing.assert_close(loaded.class_embeddings, model.class_embeddings)
    assert bool(loaded.class_embeddings.abs().sum() > 0)


def _activation(model) -> type:
    return type(model.get_submodule("visual.transformer.resblocks.0.mlp.gelu"))


@pytest.mark.parametrize("trained_with_quick_gelu", [True, False])
def test_a_tags_quick_gelu_builds_the_tower_it_was_trained_as(tmp_path, monkeypatch,
                                                              trained_with_quick_gelu):
    """OpenAI's CLIP weights (every `openai` tag, and some others) were trained with QuickGELU;
    open_clip builds the architecture with GELU and only warns, so `--init openai` ran them in
    another function (audit_models27 #1). Fine-tuning, zero-shot (a tag or TAG=PATH) and the
    checkpoints of both now build the tower the tag's record names."""
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    _fake_tag(monkeypatch, {"quick_gelu": trained_with_quick_gelu})
    quick, gelu = open_clip.transformer.QuickGELU, torch.nn.GELU
    want = quick if trained_with_quick_gelu else gelu
    tuned = create_model("clip/vsent-test-vit", init="fake-tag")
    assert _activation(tuned) is want
    assert tuned.spec.get("quick_gelu", False) is trained_with_quick_gelu
    assert _activation(load_checkpoint(save_checkpoint(tmp_path / "t.pt", tuned))[0]) is want
    weights = tmp_path / "clip.pt"
    torch.save(open_clip.create_model("vsent-test-vit").state_dict(), weights)
    zs = zero_shot_model("clip/vsent-test-vit", f"fake-tag={weights}")
    assert _activation(zs) is want
    assert _activation(load_checkpoint(save_checkpoint(tmp_path / "z.pt", zs))[0]) is want
    assert _activation(create_model("clip/vsent-test-vit")) is gelu  # random: the arch's


def test_load_clip_asks_open_clip_for_the_tags_activation(monkeypatch):
    asked, real = {}, open_clip.create_model

    def create(arch, **kwargs):
        asked.update(kwargs)
        return real("vsent-test-vit")

    monkeypatch.setattr(clip_models, "tags", lambda arch: ["openai", "other"])
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda arch, tag: {"quick_gelu": tag == "openai"})
    monkeypatch.setattr(open_clip, "create_model", create)
    for tag, force in (("openai", True), ("other", False)):
        clip_models.load_clip("vsent-test-vit", tag)
        assert asked["force_quick_gelu"] is force and asked["pretrained"] == tag


def test_a_checkpoint_given_as_init_builds_the_tower_its_weights_had(tmp_path, monkeypatch):
    """`--init fold1/model.pt` of a model fine-tuned from an openai tag built a GELU tower for
    its QuickGELU weights (the spec's quick_gelu was read only by load_checkpoint; review27)."""
    from vsent.models.checkpoint import save_checkpoint

    _fake_tag(monkeypatch, {"quick_gelu": True})
    tuned = save_checkpoint(tmp_path / "t.pt", create_model("clip/vsent-test-vit",
                                                            init="fake-tag"))
    again = create_model("clip/vsent-test-vit", init=str(tuned))
    assert _activation(again) is open_clip.transformer.QuickGELU
    assert again.spec["quick_gelu"] is True
    given = create_model("clip/vsent-test-vit", init=str(tuned), quick_gelu=False)
    assert _activation(given) is torch.nn.GELU  # an option given wins


def test_a_zero_shot_tower_that_also_returns_its_tokens_gives_its_pooled_embedding():
    """CoCa's tower returns (pooled, tokens): `zero_shot_model("clip/coca_ViT-B-32", ...)` built,
    then every image failed with "'tuple' object has no attribute 'float'" (code38 #1); the
    fine-tuned model unpacked it, the zero-shot one did not (clip_models.pooled_embedding now)."""

    class WithTokens(torch.nn.Module):
        def __init__(self, tower: torch.nn.Module) -> None:
            super().__init__()
            self.tower = tower

        def forward(self, x):
            pooled = self.tower(x)
            return pooled, pooled[:, None, :].expand(-1, 4, -1)

    torch.manual_seed(0)
    model = zero_shot_model("clip/vsent-test-vit", "random").eval()
    c = model.info.preprocess.crop
    x = torch.randn(2, 3, c, c, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        model.visual = WithTokens(model.visual)
        torch.testing.assert_close(model(x), expected)
    assert expected.shape == (2, 2)


# --- mutation round 44 (mut44a): survivors of mutations of vsent.zeroshot, killed here


def test_read_prompts_json_refuses_what_is_not_two_lists_of_text(tmp_path):
    from vsent.errors import VsentError
    from vsent.zeroshot import read_prompts

    path = tmp_path / "p.json"
    path.write_text('{"positive": [" good ", "  "], "negative": ["bad"]}')
    assert read_prompts(path) == {"positive": ["good"], "negative": ["bad"]}
    path.write_text('{"positive": ["good"], "negative": ["bad"], "neutral": ["meh"]}')
    with pytest.raises(VsentError, match=r'expected \{"positive": \[\.\.\.\], "negative"'):
        read_prompts(path)
    path.write_text('{"positive": ["good", 3], "negative": ["bad"]}')
    with pytest.raises(VsentError, match="'positive' must be a list of strings"):
        read_prompts(path)
    # one string, not a list: refused, not taken as one prompt per letter (mut58k Z26)
    path.write_text('{"positive": ["good"], "negative": "bad"}')
    with pytest.raises(VsentError, match="'negative' must be a list of strings"):
        read_prompts(path)


def test_read_prompts_text_lines(tmp_path):
    from vsent.errors import VsentError
    from vsent.zeroshot import read_prompts

    path = tmp_path / "p.txt"
    path.write_text("Positive: a photo: bright and warm\nNEGATIVE : a grey day\n")
    assert read_prompts(path) == {"positive": ["a photo: bright and warm"],
                                  "negative": ["a grey day"]}
    path.write_text("positive: good\nnegative:   \n")
    with pytest.raises(VsentError, match=r"p\.txt:2: expected 'positive: <prompt>'"):
        read_prompts(path)


def test_check_prompts_ignores_blank_prompts():
    from vsent.errors import VsentError
    from vsent.zeroshot import check_prompts

    assert check_prompts({"positive": ["good", " "], "negative": ["bad"]}) == {
        "positive": ["good"], "negative": ["bad"]}
    with pytest.raises(VsentError, match="^prompts: no negative prompt$"):
        check_prompts({"positive": ["good"], "negative": ["  "]})


def test_zero_shot_prompt_lists_override_the_prompts_file(tmp_path):
    file = tmp_path / "p.txt"
    file.write_text("positive: from the file\nnegative: also from the file\n")
    model = zero_shot_model("clip/vsent-test-vit", "random", prompts_file=file,
                            positive=["given", "  "])
    # a blank prompt given in a list is dropped like one in a file (mut53g Z38)
    assert model.prompts == {"positive": ["given"], "negative": ["also from the file"]}
    # an empty list gives no prompts of that class: the file's stay, not "no positive prompt"
    # (mut58k Z30)
    model = zero_shot_model("clip/vsent-test-vit", "random", prompts_file=file, positive=[])
    assert model.prompts == {"positive": ["from the file"], "negative": ["also from the file"]}


def test_zero_shot_checkpoint_keeps_its_logit_scale(tmp_path):
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = zero_shot_model("clip/vsent-test-vit", "random")
    assert float(model.logit_scale) != 100.0  # open_clip's initial exp(log(1 / 0.07))
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "zs.pt", model))
    assert float(loaded.logit_scale) == pytest.approx(float(model.logit_scale))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x))


def test_zero_shot_weights_file_missing_or_misshapen_keys_is_a_weights_error(tmp_path):
    from vsent.errors import WeightsError

    full = open_clip.create_model("vsent-test-vit").state_dict()  # (each case edits a copy)
    state = dict(full)
    del state["text_projection"]
    path = tmp_path / "part.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"not an open_clip vsent-test-vit state dict \(1 "
                                           r"missing, 0 of another shape, e\.g\. "
                                           r"text_projection\)"):
        zero_shot_model("clip/vsent-test-vit", str(path))
    state = dict(full)
    state["text_projection"] = state["text_projection"][:, :8]
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"\(0 missing, 1 of another shape, e\.g\. "
                                           r"text_projection\)"):
        zero_shot_model("clip/vsent-test-vit", str(path))
    # many missing keys: the first three name the part that is missing, not one alone
    # (mut58k Z38)
    gone = list(full)[-4:]
    state = {k: v for k, v in full.items() if k not in gone}
    torch.save(state, path)
    with pytest.raises(WeightsError, match=re.escape(
            f"(4 missing, 0 of another shape, e.g. {', '.join(gone[:3])})")):
        zero_shot_model("clip/vsent-test-vit", str(path))


def test_zero_shot_model_is_in_eval_mode_and_its_rebuild_has_two_classes():
    from vsent.errors import VsentError
    from vsent.models.registry import rebuild_model
    from vsent.zeroshot import DEFAULT_PROMPTS

    assert not zero_shot_model("clip/vsent-test-vit", "random").training
    # the rebuild's default prompts are plain lists, as a zero-shot model's are (mut53g Z49)
    rebuilt = rebuild_model("zeroshot/clip/vsent-test-vit", num_classes=2)
    assert rebuilt.prompts == {k: list(v) for k, v in DEFAULT_PROMPTS.items()}
    with pytest.raises(VsentError, match="a zero-shot model has 2 classes"):
        rebuild_model("zeroshot/clip/vsent-test-vit", num_classes=3)


def test_zero_shot_info_has_the_towers_layers_and_records_its_init():
    info = zero_shot_model("clip/vsent-test-rn", "random").info
    tuned = create_model("clip/vsent-test-rn").info
    assert info.probe_layers == tuned.probe_layers and len(info.probe_layers) == 4
    assert info.cam_layer == tuned.cam_layer == "visual.layer4"  # Grad-CAM of zero-shot scores
    assert info.extra["zero_shot"] is True and info.extra["init"] == "random"


def test_zero_shot_checkpoint_names_need_the_clip_family():
    from vsent.errors import VsentError
    from vsent.models import get_model_entry

    assert get_model_entry("zeroshot/clip/vsent-test-vit").name == "zeroshot/clip/vsent-test-vit"
    with pytest.raises(VsentError, match="unknown zero-shot model 'zeroshot/clap/vsent-test-vit'"):
        get_model_entry("zeroshot/clap/vsent-test-vit")


def test_read_state_dict_safetensors_suffix_any_case_and_a_missing_file(tmp_path):
    """A .SAFETENSORS file is read as one (torch.load goes by the lower-case suffix alone: it
    was "not a PyTorch state dict (... Unsupported operand 56)" for --init of any model but a
    zero-shot CLIP, whose reader was its own)."""
    from safetensors.torch import save_file

    from vsent.errors import WeightsError
    from vsent.models import create_model
    from vsent.models.weights import read_state_dict

    save_file({"a": torch.ones(2)}, str(tmp_path / "W.SAFETENSORS"))
    torch.testing.assert_close(read_state_dict(tmp_path / "W.SAFETENSORS")["a"], torch.ones(2))
    with pytest.raises(WeightsError, match=r"missing\.safetensors: no such file$"):
        read_state_dict(tmp_path / "missing.safetensors")
    source = create_model("smallcnn", widths=(4,))
    save_file(source.state_dict(), str(tmp_path / "M.SafeTensors"))
    loaded = create_model("smallcnn", widths=(4,), init=tmp_path / "M.SafeTensors")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in source.state_dict().items())


def test_a_builder_option_given_wins_over_the_tags(monkeypatch):
    """create_model builds a tag's model with the tag's options unless given (registry
    ModelEntry.tag_options): quick_gelu=False stays False for a QuickGELU tag."""
    _fake_tag(monkeypatch, {"quick_gelu": True})
    assert _activation(create_model("clip/vsent-test-vit", init="fake-tag")) is \
        open_clip.transformer.QuickGELU
    model = create_model("clip/vsent-test-vit", init="fake-tag", quick_gelu=False)
    assert _activation(model) is torch.nn.GELU and model.spec["quick_gelu"] is False


def test_a_zero_shot_checkpoint_given_as_init_builds_the_tower_its_weights_had(tmp_path,
                                                                              monkeypatch):
    """`--init zs/model.pt` (a zero-shot model of a QuickGELU tag) for clip/<arch> built a
    GELU tower for its QuickGELU weights: only checkpoints named clip/<arch> passed their
    quick_gelu on (mut44a R15)."""
    from vsent.models.checkpoint import save_checkpoint

    _fake_tag(monkeypatch, {"quick_gelu": True})
    weights = tmp_path / "clip.pt"
    torch.save(open_clip.create_model("vsent-test-vit").state_dict(), weights)
    zs = save_checkpoint(tmp_path / "zs.pt",
                         zero_shot_model("clip/vsent-test-vit", f"fake-tag={weights}"))
    tuned = create_model("clip/vsent-test-vit", init=str(zs))
    assert _activation(tuned) is open_clip.transformer.QuickGELU
    assert tuned.spec["quick_gelu"] is True


# mutation round 47 (mut47a): vsent.zeroshot mutants the suite missed


def test_read_prompts_takes_a_json_suffix_in_any_case(tmp_path):
    """``P.JSON`` is JSON too (mut47a zs08: a case-sensitive suffix read it as text lines and
    refused its first line)."""
    from vsent.zeroshot import read_prompts

    path = tmp_path / "P.JSON"
    path.write_text('{"positive": ["good"], "negative": ["bad"]}')
    assert read_prompts(path) == {"positive": ["good"], "negative": ["bad"]}


def test_check_prompts_names_both_classes_when_both_are_empty():
    from vsent.errors import VsentError
    from vsent.zeroshot import check_prompts

    with pytest.raises(VsentError, match="^p.txt: no positive and no negative prompt$"):
        check_prompts({"positive": [" "]}, where="p.txt")


@pytest.mark.parametrize("side", ["positive", "negative"])
def test_zero_shot_prompts_given_as_one_string_are_refused(side):
    """A string would be taken a character at a time: one prompt per letter."""
    with pytest.raises(TypeError, match=rf"zero_shot_model\({side}=\.\.\.\) takes a list of "
                                        r"prompts, got one string 'a sunny beach'"):
        zero_shot_model("clip/vsent-test-vit", "random", **{side: "a sunny beach"})


def test_zero_shot_logit_scale_is_clips_100_when_the_model_has_none(monkeypatch):
    """A CLIP without a learnt ``logit_scale`` scores with CLIP's trained value, 100 (a
    temperature of 0.01), not 1, which would squash every probability towards 0.5."""
    import vsent.zeroshot as zs

    class NoScale(torch.nn.Module):
        def __init__(self, clip: torch.nn.Module) -> None:
            super().__init__()
            self.visual, self.encode_text = clip.visual, clip.encode_text

    real = zs._load_full
    monkeypatch.setattr(zs, "_load_full", lambda *a, **k: NoScale(real(*a, **k)))
    assert float(zero_shot_model("clip/vsent-test-vit", "random").logit_scale) == 100.0


def test_init_random_is_never_read_as_a_file(monkeypatch, tmp_path):
    """``--init random`` is the keyword even where a file named ``random`` is at hand: not
    checked as a weights file (here it would be refused, as the tags take other statistics)."""
    _fake_tag(monkeypatch, {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "random").write_bytes(b"not weights")
    model = zero_shot_model("clip/vsent-test-vit", "random")
    assert model.info.extra["init"] == "random"


def test_a_zero_shot_rebuild_refuses_one_class_too():
    from vsent.errors import VsentError
    from vsent.models.registry import rebuild_model

    with pytest.raises(VsentError, match="a zero-shot model has 2 classes"):
        rebuild_model("zeroshot/clip/vsent-test-vit", num_classes=1)


def test_a_zero_shot_checkpoint_keeps_the_users_prompts(tmp_path):
    """The prompts are part of the model (its card, a rerun): a checkpoint of a model with the
    user's prompts loads with them, not the defaults."""
    from vsent.models.checkpoint import load_checkpoint, save_checkpoint

    model = zero_shot_model("clip/vsent-test-vit", "random", positive=["a sunny beach"],
                            negative=["a rainy funeral"])
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "zs.pt", model))
    assert loaded.prompts == {"positive": ["a sunny beach"], "negative": ["a rainy funeral"]}
    assert loaded.spec["prompts"] == loaded.prompts


def test_a_zero_shot_weights_file_with_extra_keys_loads_its_clip_keys(tmp_path):
    """Keys the architecture lacks (another open_clip version's buffers, a training run's
    extras) are left out, as the docstring's full-state-dict route promises; the model's own
    keys must all be there (the test above)."""
    torch.manual_seed(3)
    clip = open_clip.create_model("vsent-test-vit").eval()
    state = {**clip.state_dict(), "extra.step": torch.tensor(7)}
    path = tmp_path / "extra.pt"
    torch.save(state, path)
    model = zero_shot_model("clip/vsent-test-vit", str(path))
    for key, value in clip.visual.state_dict().items():
        torch.testing.assert_close(model.visual.state_dict()[key], value)


def test_the_default_prompt_sets_are_five_captions_each_used_whole():
    """README: "five captions each, averaged"; a model without user prompts carries them all."""
    from vsent.zeroshot import DEFAULT_PROMPTS

    assert {k: len(set(v)) for k, v in DEFAULT_PROMPTS.items()} == {"positive": 5, "negative": 5}
    model = zero_shot_model("clip/vsent-test-vit", "random")
    assert model.prompts == {k: list(v) for k, v in DEFAULT_PROMPTS.items()}


# mutation round 50 (mut50f): vsent.zeroshot mutants the suite missed


def test_read_prompts_text_skips_comments_and_names_a_bad_line_and_bad_json(tmp_path):
    """'#' lines (indented too) and blank lines are skipped; a line of no class is quoted
    whole (up to 60 characters) after the file and line number; a JSON file that does not
    parse is named with the parser's reason."""
    from vsent.errors import VsentError
    from vsent.zeroshot import read_prompts

    path = tmp_path / "p.txt"
    path.write_text("# my prompts\n\npositive: good\n   # negative: not this one\nnegative: bad\n")
    assert read_prompts(path) == {"positive": ["good"], "negative": ["bad"]}
    path.write_text("positive: good\na line that names no class\n")
    with pytest.raises(VsentError) as err:
        read_prompts(path)
    assert str(err.value) == (f"{path}:2: expected 'positive: <prompt>' or 'negative: "
                              "<prompt>', got 'a line that names no class'")
    bad = tmp_path / "p.json"
    bad.write_text('{"positive": ["good"],')
    with pytest.raises(VsentError, match=rf"^{re.escape(str(bad))}: not valid JSON \(.+\)$"):
        read_prompts(bad)


def test_zero_shot_info_states_the_embedding_width_and_no_new_head():
    """feature_dim is the tower's embedding width (16 here): what probes and `vsent layers`
    report; the class embeddings are fixed, so the model has no new layer to train."""
    model = zero_shot_model("clip/vsent-test-vit", "random")
    info = model.info
    assert (info.feature_dim, info.num_outputs, info.head, info.new_layers) == (16, 2, "", ())
    assert tuple(model.class_embeddings.shape) == (2, 16)
