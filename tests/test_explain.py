"""Grad-CAM: known-answer models, the default layer, mapping back to the image, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import assert_reruns_after_interrupt
from vsent.analyses import explain as X
from vsent.data.transforms import Preprocess
from vsent.errors import VsentError
from vsent.models.base import ModelInfo


class LeftHalf(nn.Module):
    """Sees only the left half of its input: the right half is zeroed before the conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        nn.init.constant_(self.conv.weight, 1.0 / 27)  # a positive blur
        self.relu = nn.ReLU(inplace=True)  # in-place, as in CaffeNet/VGG
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        mask = torch.zeros_like(x)
        mask[..., : x.shape[-1] // 2] = 1
        return self.head(self.relu(self.conv(x * mask)).mean(dim=(2, 3)))


class RedBlue(nn.Module):
    """Channel 0 detects red, channel 1 blue; 'positive' is red, 'negative' is blue."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, -1, -1], [-1, -1, 1]])[:, :, None, None])
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        self.info = ModelInfo(
            name="redblue", family="test", num_outputs=2, head="head", new_layers=(),
            preprocess=Preprocess(resize=32, crop=32, mean=(0, 0, 0), std=(255, 255, 255)),
            probe_layers=("conv", "head"), cam_layer="conv", feature_dim=2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _red_left_blue_right() -> np.ndarray:
    img = np.zeros((32, 32, 3), np.uint8)
    img[8:24, 2:12] = (255, 0, 0)
    img[8:24, 20:30] = (0, 0, 255)
    return img


def _mass_left(cam: np.ndarray) -> float:
    w = cam.shape[-1]
    return float(cam[..., : w // 2].sum() / cam.sum())


def test_grad_cam_model_that_only_sees_the_left_half():
    model = LeftHalf().eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cams, probs, targets = X.grad_cam(model, x, "conv", "positive")
    assert cams.shape == (2, 16, 16) and cams.dtype == np.float32
    assert cams.min() >= 0 and cams.max() == pytest.approx(1.0)
    assert all(_mass_left(c) > 0.95 for c in cams)
    assert targets.tolist() == [1, 1] and probs.shape == (2, 2)
    assert model.relu.inplace  # restored after the call


def test_grad_cam_target_selects_the_evidence():
    model = RedBlue().eval()
    x = torch.from_numpy(_red_left_blue_right()).permute(2, 0, 1)[None].float() / 255
    pos, probs, _ = X.grad_cam(model, x, "conv", "positive")
    neg, _, _ = X.grad_cam(model, x, "conv", "negative")
    assert _mass_left(pos[0]) > 0.95 and _mass_left(neg[0]) < 0.05
    pred, _, t = X.grad_cam(model, x, "conv", "predicted")
    assert t[0] == probs[0].argmax()
    by_index, _, _ = X.grad_cam(model, x, "conv", 1)
    np.testing.assert_allclose(by_index, pos)


def test_grad_cam_bad_layer_and_target():
    model = RedBlue().eval()
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(VsentError, match="no such layer"):
        X.grad_cam(model, x, "conv9")
    with pytest.raises(VsentError, match="not a \\(B, C, h, w\\) feature map"):
        X.grad_cam(model, x, "head")
    with pytest.raises(VsentError, match="--target"):
        X.grad_cam(model, x, "conv", "happy")
    with pytest.raises(VsentError, match="outside"):
        X.grad_cam(model, x, "conv", 5)


def test_grad_cam_refuses_a_target_list_of_another_length_than_the_batch():
    """code38 #5: 2 targets for 3 images was torch's RuntimeError "The expanded size of the
    tensor (3) must match ..."; every other wrong target is a VsentError naming it."""
    model = RedBlue().eval()
    x = torch.zeros(3, 3, 8, 8)
    with pytest.raises(VsentError, match=r"^target \[0, 1\]: one class index for all 3 images "
                                         r"or one per image, not 2$"):
        X.grad_cam(model, x, "conv", [0, 1])
    assert X.grad_cam(model, x, "conv", [0, 1, 1])[2].tolist() == [0, 1, 1]
    assert X.grad_cam(model, x, "conv", [1])[2].tolist() == [1, 1, 1]


class Residual(nn.Module):
    """A ResNet block's tail: ``out = bn(conv(h)); out += h`` (torchvision's BasicBlock adds the
    identity in place to the output of ``bn``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3), \
            nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``bn``'s output and the logits, written without in-place ops or hooks."""
        h = torch.relu(self.stem(x))
        act = self.bn(self.conv(h))
        return act, self.head(torch.relu(act + h[..., 1:-1, 1:-1]).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        out = self.bn(self.conv(h))
        out += h[..., 1:-1, 1:-1]
        return self.head(torch.relu(out).mean(dim=(2, 3)))


def test_grad_cam_of_a_layer_whose_output_is_later_changed_in_place():
    """Audit 27 #5: the captured tensor was the block's sum, not ``bn``'s output."""
    from vsent.inference import capture_outputs

    torch.manual_seed(5)
    model = Residual().eval()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.enable_grad():
        x = x.requires_grad_(True)
        act, logits = model.parts(x)
        (grads,) = torch.autograd.grad(logits[:, 1].sum(), act)
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=(12, 12), mode="bilinear")[:, 0]
    cam = (cam / cam.flatten(1).amax(dim=1)[:, None, None]).detach().numpy()
    cams, _, _ = X.grad_cam(model, x, "bn", "positive")
    np.testing.assert_allclose(cams, cam, atol=1e-5)
    with capture_outputs(model, ["bn"], grad=True) as acts, torch.enable_grad():
        torch.testing.assert_close(model(x), logits)  # the network's output is unchanged
    torch.testing.assert_close(acts["bn"], act)


def _spatial_conv_output(model: nn.Module, layer: str, size: int) -> bool:
    """Run the model once, independently of vsent: is ``layer`` a convolution (or a block
    holding one) whose output is a (B, C, h, w) map with more than one position?"""
    out = {}
    module = model.get_submodule(layer)
    h = module.register_forward_hook(lambda _m, _i, o: out.setdefault("o", o))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    h.remove()
    o = out["o"]
    has_conv = any(isinstance(m, nn.Conv2d) for m in module.modules())
    return has_conv and torch.is_tensor(o) and o.dim() == 4 and o.shape[2] * o.shape[3] > 1


@pytest.mark.parametrize("name, kwargs, expected", [
    ("smallcnn", {"widths": (4, 8, 8)}, "features.block3"),  # not "pool": its output is 1x1
    ("caffenet", {}, "conv5"),  # the convolution, not pool5 after it
    ("resnet18", {}, None),
])
def test_default_layer_is_the_models_declared_spatial_conv_layer(name, kwargs, expected):
    from vsent.models import create_model

    model = create_model(name, **kwargs)
    layer = X.default_cam_layer(model)
    assert layer == model.info.cam_layer
    if expected is not None:
        assert layer == expected
    assert _spatial_conv_output(model, layer, model.info.preprocess.crop)


def test_default_layer_reads_the_record_without_running_the_model():
    model = RedBlue()
    model.forward = None  # a forward pass (the old dummy-input search) would fail
    assert X.default_cam_layer(model) == "conv"
    model.info = dataclasses.replace(model.info, cam_layer="")
    with pytest.raises(VsentError, match="pass --layer"):
        X.default_cam_layer(model)


def test_explain_image_maps_back_to_the_original_size():
    model = RedBlue().eval()
    big = np.kron(_red_left_blue_right(), np.ones((3, 2, 1), np.uint8))  # 96 x 64
    r = X.explain_image(model, big, target="positive")
    assert r["heatmap"].shape == (96, 64) and r["layer"] == "conv"
    assert r["heatmap"].min() >= 0 and r["heatmap"].max() <= 1
    assert _mass_left(r["heatmap"]) > 0.95
    over = X.overlay_heatmap(r["image"], r["heatmap"])
    assert over.shape == (96, 64, 3) and over.dtype == np.uint8


def _overlay_at_once(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The overlay as it was made before bands: the whole image's float64 colours at once."""
    from matplotlib import colormaps

    colour = colormaps["jet"](np.clip(heatmap, 0, 1))[..., :3] * 255.0
    out = (1 - opacity) * image.astype(np.float32) + opacity * colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def test_overlay_is_blended_in_bands_with_the_pixels_of_a_whole_image_blend(monkeypatch):
    """The colours of a whole 56-megapixel photo at once took 6 GB (audit_input25 #5): they
    are made a band of rows at a time, and the overlay is the same within a grey level."""
    from matplotlib.colors import Colormap

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), np.uint8)
    heat = rng.random((30, 40)).astype(np.float32)
    heat[0, :4] = (0.0, 1.0, -0.5, 2.0)  # the ends and beyond them
    sizes = []
    call = Colormap.__call__
    monkeypatch.setattr(Colormap, "__call__",
                        lambda self, x, *a, **k: sizes.append(np.size(x)) or call(self, x, *a, **k))
    monkeypatch.setattr(X, "_BAND_PIXELS", 200, raising=False)  # 5 rows of 40 a band
    over = X.overlay_heatmap(image, heat)
    assert over.shape == (30, 40, 3) and over.dtype == np.uint8
    assert max(sizes) <= 200 and sum(sizes) == 30 * 40  # bands covering the image once
    ref = _overlay_at_once(image, heat)
    assert np.abs(over.astype(int) - ref).max() <= 1
    # a band wider than the image: one band, the same pixels
    monkeypatch.setattr(X, "_BAND_PIXELS", 1 << 20)
    assert np.abs(X.overlay_heatmap(image, heat).astype(int) - ref).max() <= 1
    # an image wider than a band (a 300000-px banner): a row at a time, not a 0-row step
    # (mut56j K18)
    monkeypatch.setattr(X, "_BAND_PIXELS", 10)
    assert np.abs(X.overlay_heatmap(image, heat).astype(int) - ref).max() <= 1


def test_explain_image_max_side_shrinks_the_map_not_the_networks_input():
    model = RedBlue().eval()
    big = np.kron(_red_left_blue_right(), np.ones((6, 4, 1), np.uint8))  # 192 x 128
    full = X.explain_image(model, big, target="positive")
    small = X.explain_image(model, Image.fromarray(big), target="positive", max_side=48)
    assert small["heatmap"].shape == (48, 32) and small["image"].shape == (48, 32, 3)
    # the image shown is shrunk by bicubic resampling (smooth edges), not by picking pixels
    np.testing.assert_array_equal(
        small["image"], np.asarray(Image.fromarray(big).resize((32, 48), Image.BICUBIC)))
    np.testing.assert_array_equal(small["probs"], full["probs"])  # the same input pixels
    assert _mass_left(small["heatmap"]) > 0.95
    # what a service returns: the full-size map shrunk, up to the interpolation
    shrunk = np.asarray(Image.fromarray(full["heatmap"]).resize((32, 48), Image.BILINEAR))
    assert np.abs(small["heatmap"] - shrunk).mean() < 0.05
    assert X.explain_image(model, big, max_side=500)["heatmap"].shape == (192, 128)  # no growth
    for bad in (0, 100.5):  # (a fraction was libjpeg's min_side, named as such: mut59f)
        with pytest.raises(ValueError, match=f"^max_side must be a positive integer, got {bad}$"):
            X.explain_image(model, big, max_side=bad)


@pytest.mark.parametrize("size", [(1100, 1), (1, 1100), (3000, 2)])
def test_explain_image_max_side_keeps_a_pixel_of_a_banner(size):
    """Shrunk to 512 px, a 1100x1 banner would be 512x0 (a 500 of the service): the short
    side stays >= 1 px; the map and the image agree in size, with or without max_side."""
    w, h = size
    banner = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    small = X.explain_image(RedBlue().eval(), banner, max_side=512)
    want = (max(1, round(h / max(w, h) * 512)), max(1, round(w / max(w, h) * 512)))
    assert small["heatmap"].shape == want and small["image"].shape == (*want, 3)
    assert X.explain_image(RedBlue().eval(), banner)["heatmap"].shape == (h, w)


def test_cli_explain(tmp_path, capsys):
    from vsent.cli import main
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    rng = np.random.default_rng(0)
    good = []
    for i in range(2):
        good.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(good[-1])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    loop = tmp_path / "loop.jpg"  # robust36 #6: a link to itself was a RuntimeError traceback
    loop.symlink_to(loop.name)
    out = tmp_path / "out"
    argv = ["explain", str(good[0]), str(bad), str(good[1]), "--model", str(ckpt), "--out",
            str(out), "--target", "positive", "--device", "cpu"]
    assert main([*argv[:2], str(loop), *argv[2:]]) == 3
    looped = list(csv.DictReader((out / "explain.csv").open()))[1]
    assert (looped["image"], looped["error"]) == (str(loop), f"{loop}: too many levels of "
                                                             "symbolic links")
    assert main([*argv, "--overwrite"]) == 3
    rows = list(csv.DictReader((out / "explain.csv").open()))
    assert [r["image"] for r in rows] == [str(good[0]), str(bad), str(good[1])]
    assert rows[1]["error"] and not rows[0]["error"] and not rows[2]["error"]
    for r, shape in ((rows[0], (40, 50)), (rows[2], (41, 50))):
        assert r["target"] == "positive" and r["layer"] == "features.block2"
        assert float(r["prob_negative"]) + float(r["prob_positive"]) == pytest.approx(1, abs=1e-5)
        assert np.load(out / r["heatmap"]).shape == shape
        assert Image.open(out / r["overlay"]).size == (shape[1], shape[0])
    good_only = [str(tmp_path / "out2") if a == str(out) else a for a in argv[:2] + argv[3:]]
    assert main(good_only) == 0  # only good images: success
    # the summary once on the console (the CLI's line; run.log has its own: review33b #6)
    assert capsys.readouterr().err.count("explained 2 of 2 images") == 1
    assert "explained 2 of 2 images" in (tmp_path / "out2" / "run.log").read_text()
    assert main([*argv[:2], "--model", str(ckpt), "--out", str(tmp_path / "out3"),
                 "--layer", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "no such layer" in err and "Traceback" not in err
    # refused before --overwrite empties a finished run (robust36 #1: it was left with its
    # records only, its maps and explain.csv deleted for a typo)
    kept = {p: p.read_bytes() for p in (tmp_path / "out2").rglob("*") if p.is_file()}
    assert main([*good_only, "--layer", "nope", "--overwrite"]) == 2
    assert "no such layer" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tmp_path / "out2").rglob("*") if p.is_file()} == kept
    # an empty name (an unset shell variable) was the default layer, silently (audit_errors28)
    with pytest.raises(SystemExit) as stop:
        main([*argv[:2], "--model", str(ckpt), "--out", str(tmp_path / "out4"), "--layer", ""])
    assert stop.value.code == 2
    assert "argument --layer: an empty layer name" in capsys.readouterr().err
    assert not (tmp_path / "out4").exists()


def test_cli_explain_an_out_inside_an_input_folder_leaves_its_own_maps_out(tmp_path, capsys):
    """robust36 #3: `explain FOLDER --out FOLDER/cam` found the first run's overlays and heat
    maps as images the second time: 'already holds a run made with other images_found', so
    the same command could not continue or return the run. Its own maps are left out
    (another run's maps in the folder are images the user gave)."""
    from vsent.cli import main
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
            folder / f"im{i}.png")
    argv = ["explain", str(folder), "--model", str(ckpt), "--device", "cpu"]
    assert main([*argv, "--out", str(folder / "cam")]) == 0
    first = (folder / "cam" / "explain.csv").read_text()
    assert main([*argv, "--out", str(folder / "cam")]) == 0  # the finished run, returned
    assert (folder / "cam" / "explain.csv").read_text() == first
    rows = list(csv.DictReader((folder / "cam" / "explain.csv").open()))
    assert sorted(r["image"] for r in rows) == [str(folder / "im0.png"), str(folder / "im1.png")]
    # inputs that find only its own maps (a glob into --out): refused, and the run kept; with
    # --overwrite the run was deleted and "explained 0 of 0 images", exit 0 (trial40 F1)
    capsys.readouterr()
    for inputs, extra in (([], []), ([], ["--overwrite"]),
                          ([str(tmp_path / "nomatch*.jpg")], ["--overwrite"])):  # (review40)
        assert main(["explain", str(folder / "cam" / "*.png"), *inputs, *argv[2:], "--out",
                     str(folder / "cam"), *extra]) == 2
        assert capsys.readouterr().err == (
            f"vsent: error: every file the inputs find is inside --out {folder / 'cam'}, where "
            "this command writes its maps: choose another --out\n")
        assert (folder / "cam" / "explain.csv").read_text() == first


def test_cli_explain_a_file_name_that_is_not_utf8_is_explained_with_the_others(tmp_path,
                                                                             capsys):
    """A Latin-1 name (caf\\xe9.png) crashed the digest of the files found (strict UTF-8):
    a traceback and no image explained (audit_input25 #2). It is explained and written back
    as its bytes, as predict does; one that cannot be read logs no logging error."""
    import os

    from vsent.cli import main
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((30, 40, 3), 100, np.uint8)).save(folder / "a.png")
    latin = os.fsencode(folder) + b"/caf\xe9.png"
    try:
        with open(latin, "wb") as f:
            Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(f, format="PNG")
    except OSError:  # a file system that takes UTF-8 names only
        pytest.skip("no non-UTF-8 file names here")
    out = tmp_path / "out"
    argv = ["explain", str(folder), "--model", str(ckpt), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    raw = (out / "explain.csv").read_bytes()
    assert b"\n" + latin + b",," in raw.replace(b"\r\n", b"\n")  # byte-exact, no error
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8", "surrogateescape"))))
    assert [os.fsencode(r["image"]) for r in rows] == [os.fsencode(folder / "a.png"), latin]
    assert not any(r["error"] for r in rows)
    assert os.path.isfile(os.fsencode(out) + b"/0001_caf\xe9_gradcam.png")
    assert np.load(out / rows[1]["heatmap"]).shape == (30, 40)
    capsys.readouterr()
    assert main(argv) == 0  # finished: the stored rows, read back as written
    assert (out / "explain.csv").read_bytes() == raw
    # a Latin-1 name that is no image: its row and a warning, in run.log too
    with open(os.fsencode(folder) + b"/bad\xe9.jpg", "wb") as f:
        f.write(b"\xff\xd8 not a jpeg")
    assert main(["explain", str(folder), "--model", str(ckpt), "--out", str(tmp_path / "out2"),
                 "--device", "cpu"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert b"bad\xe9.jpg: cannot identify" in (tmp_path / "out2" / "run.log").read_bytes()


def test_explain_function_runs_the_whole_command(tmp_path, caplog):
    """``explain`` (the Python function of ``vsent explain``): inputs, rows, run directory."""
    from vsent.data.images import load_resized
    from vsent.evaluate import predict_proba
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("smallcnn", widths=(4, 8)).eval()
    ckpt = save_checkpoint(tmp_path / "model.pt", model)
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 45, 3), np.uint8)).save(img)
    nothing = str(tmp_path / "none*.jpg")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="vsent"):
        rows = X.explain(ckpt, [img, nothing, img], out, target="negative", device="cpu")
    # in input order: an input that matched nothing keeps its place
    assert [r["image"] for r in rows] == [str(img), nothing, str(img)]
    assert rows[1]["error"] and not rows[0]["error"] and not rows[2]["error"]
    # and is said, as an image that cannot be read is (robust36 #12: in the CSV only)
    assert f"{nothing}: the pattern matched no file" in caplog.text
    X.explain(ckpt, [nothing], tmp_path / "none", device="cpu")  # no map: no layer resolved
    assert "explained 0 of 1 images, 1 failed (layer default, target predicted)" in (
        tmp_path / "none" / "run.log").read_text()
    assert rows[0]["overlay"] != rows[2]["overlay"]  # each image its own files
    # the scores are the model's centre-crop probabilities (the inference path, not Grad-CAM's)
    probs = predict_proba(model, load_resized(img, model.info.preprocess.resize)[None],
                          device="cpu")[0]
    assert rows[0]["prob_positive"] == pytest.approx(probs[1], abs=1e-5)
    assert rows[0]["target"] == "negative" and rows[0]["layer"] == model.info.cam_layer
    assert np.load(out / rows[0]["heatmap"]).shape == (30, 45)
    with (out / "explain.csv").open(newline="") as f:
        stored = list(csv.DictReader(f))
    assert list(stored[0]) == list(X.FIELDS) and stored[0]["image"] == str(img)
    # run.log has the run's summary (it was empty: trial33 #5)
    assert (f"explained 2 of 3 images, 1 failed (layer {model.info.cam_layer}, target "
            "negative)") in (out / "run.log").read_text()
    # finished: the same call returns the stored rows (typed as the first call's: code38 #3,
    # they were the CSV's text); other settings need overwrite
    assert X.explain(ckpt, [img, nothing, img], out, target="negative", device="cpu") == rows
    with pytest.raises(VsentError, match="target"):
        X.explain(ckpt, [img], out, target="positive", device="cpu")
    again = X.explain(ckpt, [img], out, target="positive", device="cpu", overwrite=True)
    assert [r["target"] for r in again] == ["positive"]
    with pytest.raises(VsentError, match="--target 'happy'"):
        X.explain(ckpt, [img], tmp_path / "o2", target="happy", device="cpu")
    # another model saved at the same path (a fold trained again): not the stored maps
    torch.manual_seed(1)
    save_checkpoint(ckpt, create_model("smallcnn", widths=(4, 8)).eval())
    with pytest.raises(VsentError, match="other model_sha256") as e:
        X.explain(ckpt, [img], out, target="positive", device="cpu")
    # said in words, its digests cut to 12 digits as elsewhere (robust39 #15: 64 each)
    stored = json.loads((out / "config.json").read_text())["model_sha256"]
    assert ("other model_sha256 (the checkpoint's bytes) "
            f"(model_sha256: stored '{stored[:12]}...', now '") in str(e.value)
    assert stored not in str(e.value)


def test_a_folder_explained_again_after_its_images_changed_is_not_the_stored_rows(tmp_path):
    """The run's config held the inputs as typed: a folder given again after an image was
    added (or edited in place) returned the stored rows, "explained 2 of 2 images" for 3
    (audit_analyses24 #5). The files found and their bytes are part of the config now."""
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def image(name):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), np.uint8)).save(folder / name)

    image("a.png")
    image("b.png")
    out = tmp_path / "out"
    assert len(X.explain(ckpt, [folder], out, device="cpu")) == 2
    stored = (out / "explain.csv").read_bytes()
    assert len(X.explain(ckpt, [folder], out, device="cpu")) == 2  # unchanged: stored rows
    assert (out / "explain.csv").read_bytes() == stored
    for change in (lambda: image("c.png"), lambda: image("a.png")):  # added; edited in place
        change()
        with pytest.raises(VsentError, match=r"other images_found \(the files the inputs "
                                             r"find: images added, removed or edited\) .*: "
                                             "pass --overwrite"):
            X.explain(ckpt, [folder], out, device="cpu")
        rows = X.explain(ckpt, [folder], out, device="cpu", overwrite=True)
        assert sorted(r["image"].rsplit("/", 1)[-1] for r in rows) == ["a.png", "b.png", "c.png"]
    # a run of a vsent that recorded no images_found still returns its rows (review24 #3)

    cfg_file = out / "config.json"
    cfg = json.loads(cfg_file.read_text())
    del cfg["images_found"]
    cfg_file.write_text(json.dumps(cfg))
    stored = (out / "explain.csv").read_bytes()
    assert len(X.explain(ckpt, [folder], out, device="cpu")) == 3
    assert (out / "explain.csv").read_bytes() == stored


def test_cli_explain_interrupted_is_done_again_by_the_same_command(tmp_path, capsys,
                                                                   monkeypatch):
    """explain has no --resume: after a Ctrl-C the same command starts the work again instead
    of asking for an option it does not have."""
    import vsent.analyses.explain as X
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    image = tmp_path / "img.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(image)
    argv = ["explain", str(image), "--model", str(ckpt), "--out", str(tmp_path / "out"),
            "--device", "cpu"]
    assert_reruns_after_interrupt(monkeypatch, capsys, argv, X, "explain_images")
    assert (tmp_path / "out" / "explain.csv").is_file()
    # the rerun did the work: one row for the image, with its heat map at the image's size
    with (tmp_path / "out" / "explain.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["image"] == str(image) and not row["error"]
    assert np.load(tmp_path / "out" / row["heatmap"]).shape == (40, 50)


def test_a_map_too_small_for_a_heat_map_is_warned_about_once(caplog):
    import logging

    from vsent.models import create_model

    model = create_model("smallcnn", image_size=32).eval()  # 4 blocks: a 2x2 map
    caplog.set_level(logging.WARNING, logger="vsent")
    x = torch.randn(2, 3, 32, 32)
    for _ in range(2):
        X.grad_cam(model, x, model.info.cam_layer)
    warned = [r.getMessage() for r in caplog.records if "almost flat" in r.getMessage()]
    assert len(warned) == 1 and "2x2 map for a 32-px crop" in warned[0]
    # another model with a layer of the same name is warned about too (it was not: the
    # record was the layer's name alone, for the whole process)
    other = create_model("smallcnn", image_size=32).eval()
    X.grad_cam(other, x, other.info.cam_layer)
    warned = [r.getMessage() for r in caplog.records if "almost flat" in r.getMessage()]
    assert len(warned) == 2


def _count_decodes(monkeypatch) -> list[str]:
    """Every image decode (``vsent.data.images._decode``, under load_rgb and load_resized)."""
    from vsent.data import images

    calls: list[str] = []
    real = images._decode

    def counting(im, where, **kw):
        calls.append(where)
        return real(im, where, **kw)

    monkeypatch.setattr(images, "_decode", counting)
    return calls


def test_explain_decodes_once_when_one_decode_serves_map_and_network(tmp_path, monkeypatch):
    model = RedBlue().eval()  # resize 32
    path = tmp_path / "a.png"
    Image.fromarray(np.kron(_red_left_blue_right(), np.ones((3, 2, 1), np.uint8))).save(path)
    calls = _count_decodes(monkeypatch)
    r = X.explain_image(model, path, target="positive", max_side=64)  # <= 2 x resize
    assert calls == [str(path)] and r["heatmap"].shape == (64, 43)
    calls.clear()  # a full-size map: its decode, and predict's for the network
    assert X.explain_image(model, path, target="positive")["heatmap"].shape == (96, 64)
    assert calls == [str(path)] * 2


def test_explain_scores_predicts_pixels_of_a_large_jpeg_without_max_side(tmp_path):
    """The full-size map needs the full decode; the network still gets load_resized's
    reduced-scale decode, so explain's probabilities are predict's."""
    from vsent.data.images import load_resized
    from vsent.inference import prepare

    model = RedBlue().eval()
    big = np.kron(_red_left_blue_right(), np.ones((7, 10, 1), np.uint8))[:200, :300]
    rng = np.random.default_rng(0)  # texture: the 1/2-scale decode differs from a resize
    big = np.clip(big + rng.integers(-40, 40, big.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=90)
    r = X.explain_image(model, path, target="positive")
    assert r["image"].shape[:2] == (200, 300)
    x = prepare(load_resized(path, 32)[None], model.info.preprocess)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0].numpy()
    np.testing.assert_array_equal(r["probs"], expected)


def test_explain_with_max_side_scores_predicts_pixels_of_a_large_jpeg(tmp_path, monkeypatch):
    """A service's heat map (max_side <= 2 x resize): one reduced-scale JPEG decode, and the
    network's input is load_resized's, pixel for pixel."""
    from vsent.data.images import load_resized
    from vsent.inference import prepare

    model = RedBlue().eval()  # resize 32: a 200 x 300 JPEG decodes at 1/2 scale
    big = np.kron(_red_left_blue_right(), np.ones((7, 10, 1), np.uint8))[:200, :300]
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=90)
    calls = _count_decodes(monkeypatch)
    r = X.explain_image(model, path, target="positive", max_side=64)
    assert len(calls) == 1 and max(r["image"].shape[:2]) == 64
    calls.clear()
    x = prepare(load_resized(path, 32)[None], model.info.preprocess)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0].numpy()
    np.testing.assert_array_equal(r["probs"], expected)
    # a smaller max_side: its own 1/4-scale decode would do for the map, but the network
    # still gets load_resized's (1/2-scale) pixels
    calls.clear()
    r = X.explain_image(model, path, target="positive", max_side=40)
    assert len(calls) == 1 and max(r["image"].shape[:2]) == 40
    np.testing.assert_array_equal(r["probs"], expected)


def test_explain_on_an_export_says_why_in_one_line(tmp_path):
    from vsent.export import export_model
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    export_model(ckpt, tmp_path / "model.ts", format="torchscript")
    image = tmp_path / "a.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(image)
    with pytest.raises(VsentError) as caught:
        X.explain(tmp_path / "model.ts", [image], tmp_path / "out", device="cpu")
    msg = str(caught.value)
    assert "\n" not in msg and "a TorchScript export keeps only the forward pass" in msg
    assert "Grad-CAM needs the gradients" in msg and f"({ckpt}) instead" in msg  # (review40 #6)
    (tmp_path / "junk.pt").write_bytes(b"junk")  # not an export: the checkpoint's own error
    with pytest.raises(VsentError, match="not a vsent checkpoint"):
        X.explain(tmp_path / "junk.pt", [image], tmp_path / "out2", device="cpu")


def test_an_all_zero_map_is_marked_and_warned_about(tmp_path, caplog):
    """trial33 #3: --target negative wrote all-zero maps (a uniform blue overlay) silently."""
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255  # nothing blue: no location raises the 'negative' (blue) score
    paths = [tmp_path / "red.png", tmp_path / "both.png"]
    Image.fromarray(red).save(paths[0])
    Image.fromarray(_red_left_blue_right()).save(paths[1])
    rows = X.explain_images(RedBlue(), paths, tmp_path / "out", target="negative")
    assert [r["empty_map"] for r in rows] == [True, False]
    assert not np.load(tmp_path / "out" / rows[0]["heatmap"]).any()
    with caplog.at_level("INFO", logger="vsent"):
        X._say_done(rows, None, "negative")
    assert ("1 of 2 maps are empty (all zero: no location of layer conv raises the score of "
            "the class they explain; empty_map in explain.csv)") in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="vsent"):
        X._say_done(rows[1:], None, "negative")
    assert "empty" not in caplog.text


def test_explain_writes_maps_no_larger_than_max_side(tmp_path):
    """trial33 #4: a 7000x5000 photo gave a 140 MB full-size map (a few feature cells
    interpolated). The default keeps the longer side at DEFAULT_MAX_SIDE; 0 keeps the size."""
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)).eval())
    img = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (60, 300, 3), np.uint8)).save(img)
    default = X.explain(ckpt, [img], tmp_path / "a", device="cpu")
    assert np.load(tmp_path / "a" / default[0]["heatmap"]).shape == (60, 300)  # under 1024
    small = X.explain(ckpt, [img], tmp_path / "b", device="cpu", max_side=100)
    assert np.load(tmp_path / "b" / small[0]["heatmap"]).shape == (20, 100)
    assert Image.open(tmp_path / "b" / small[0]["overlay"]).size == (100, 20)
    assert small[0]["prob_positive"] == default[0]["prob_positive"]  # the same input
    full = X.explain(ckpt, [img], tmp_path / "c", device="cpu", max_side=0)
    assert np.load(tmp_path / "c" / full[0]["heatmap"]).shape == (60, 300)

    assert "max_side" not in json.loads((tmp_path / "a" / "config.json").read_text())
    assert json.loads((tmp_path / "b" / "config.json").read_text())["max_side"] == 100
    with pytest.raises(VsentError, match=r"^--max-side must be 0 \(the image's size\) or a "
                                         r"number of pixels, got -1$"):
        X.explain(ckpt, [img], tmp_path / "d", device="cpu", max_side=-1)


def test_explain_shrinks_maps_to_1024_px_by_default(tmp_path, monkeypatch):
    """review33b #4: no test image reached 1024 px, so a default of 0 passed as well."""
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    assert X.DEFAULT_MAX_SIDE == 1024
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    img = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 1500, 3), np.uint8)).save(img)
    rows = X.explain(ckpt, [img], tmp_path / "out", device="cpu")
    assert np.load(tmp_path / "out" / rows[0]["heatmap"]).shape == (205, 1024)


def test_a_finished_run_returns_the_rows_of_the_first_call_with_their_types(tmp_path, caplog,
                                                                           monkeypatch):
    """code38 #3: the same call again returned explain.csv's text: empty_map 'False' (true
    as a bool), prob_positive a str; the first call's rows were typed."""
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (20, 30, 3), np.uint8)).save(img)
    inputs = [str(tmp_path / "none*.jpg"), img]  # an error row first: its cells are empty
    first = X.explain(ckpt, inputs, tmp_path / "out", device="cpu")
    # read back, not explained again (the maps of a finished run are not rewritten)
    monkeypatch.setattr(X, "explain_images", lambda *a, **k: pytest.fail("explained again"))
    with caplog.at_level("WARNING", logger="vsent"):
        again = X.explain(ckpt, inputs, tmp_path / "out", device="cpu")
    assert again == first
    assert type(again[1]["prob_positive"]) is float and type(again[1]["empty_map"]) is bool
    assert set(again[0]) == {"image", "error"} and again[0]["error"]
    assert "before --max-side" not in caplog.text  # the file's columns, not the first row's


def test_a_finished_run_made_before_max_side_says_its_maps_are_full_size(tmp_path, caplog):
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(img)
    rows = X.explain(ckpt, [img], tmp_path / "out", device="cpu")
    with caplog.at_level("WARNING", logger="vsent"):
        assert X.explain(ckpt, [img], tmp_path / "out", device="cpu")[0]["image"] == str(img)
    assert "before --max-side" not in caplog.text
    done = tmp_path / "out" / "explain.csv"  # as an older vsent wrote it: no empty_map column
    with done.open("w", newline="") as f:
        w = csv.DictWriter(f, [k for k in X.FIELDS if k != "empty_map"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with caplog.at_level("WARNING", logger="vsent"):
        X.explain(ckpt, [img], tmp_path / "out", device="cpu")
    assert "made by a vsent before --max-side and empty_map: its maps are at the images' " \
        "full size (--overwrite remakes them)" in caplog.text


# mutation round 43 (mut43): tests that kill mutants the suite missed


def _reference_cam(model: RedBlue, x: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM of RedBlue's ``conv`` written out without vsent: weights are the spatial mean
    of d logit_target / d conv, the map ReLU(sum_c w_c A_c), bilinearly upsampled to the
    input (here of the conv's own size), divided by its maximum."""
    with torch.enable_grad():
        act = model.conv(x).detach().requires_grad_(True)
        logits = model.head(torch.relu(act).mean(dim=(2, 3)))
        (g,) = torch.autograd.grad(logits[:, target].sum(), act)
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1))
    return (cam / cam.flatten(1).amax(dim=1)[:, None, None]).detach().numpy()


def test_grad_cam_of_a_non_square_input_is_the_inputs_size():
    """mut43 EX10: the map is upsampled to the input's height and width (every earlier input
    was square)."""
    model = RedBlue().eval()
    x = torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(3))
    cams, _, _ = X.grad_cam(model, x, "conv", "positive")
    assert cams.shape == (2, 12, 20)
    np.testing.assert_allclose(cams, _reference_cam(model, x, 1), atol=1e-5)


@pytest.mark.parametrize(("colour", "label"), [((255, 0, 0), 1), ((0, 0, 255), 0)])
def test_the_predicted_target_is_the_class_of_the_largest_logit(colour, label):
    """mut43 EX15: the only "predicted" case had two equal logits (argmax = argmin = 0). A red
    picture is positive for RedBlue, a blue one negative: the map explains that class."""
    model = RedBlue().eval()
    img = np.zeros((32, 32, 3), np.uint8)
    img[8:24, 8:24] = colour
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    cams, probs, targets = X.grad_cam(model, x, "conv", "predicted")
    assert targets.tolist() == [label] and probs[0].argmax() == label
    np.testing.assert_allclose(cams, _reference_cam(model, x, label), atol=1e-5)


def test_a_target_equal_to_the_number_of_outputs_is_refused():
    """mut43 EX17: class indices run 0 .. M - 1: index M (2 for a two-way model) is a
    VsentError, not torch's index error from gather."""
    model = RedBlue().eval()
    with pytest.raises(VsentError, match=r"target class \[2\] outside the model's 2 outputs"):
        X.grad_cam(model, torch.zeros(1, 3, 8, 8), "conv", 2)


def test_a_map_at_float_noise_level_is_all_zero():
    """mut43 EX12: a map whose peak is at most 1e-12 (no location raises the score beyond
    float noise) comes back all zero (explain's "empty map"), not divided by the 1e-12 floor."""
    model = RedBlue().eval()
    with torch.no_grad():
        model.head.weight.mul_(1e-16)
    x = torch.from_numpy(_red_left_blue_right()).permute(2, 0, 1)[None].float() / 255
    cams, _, _ = X.grad_cam(model, x, "conv", "positive")
    assert cams.shape == (1, 32, 32) and not cams.any()


def test_the_map_goes_back_where_the_centre_crop_was_taken():
    """mut43 EX20, EX21: with resize 35 and crop 32 the centre crop starts at row and column
    2 (torchvision's round(1.5) = 2, where a floor gives 1); the crop's map is placed there in
    the warped frame and zero on the border the network never saw."""
    from vsent.inference import prepare

    model = RedBlue().eval()
    pre = Preprocess(resize=35, crop=32, mean=(0, 0, 0), std=(255, 255, 255))
    model.info = dataclasses.replace(model.info, preprocess=pre)
    img = np.zeros((35, 35, 3), np.uint8)
    img[6:30, 3:14] = (255, 0, 0)
    img[6:30, 20:33] = (0, 0, 255)
    r = X.explain_image(model, img, target="positive")
    x = prepare(img[None], pre)  # a 35 x 35 image is its own warp
    cams, _, _ = X.grad_cam(model, x, "conv", "positive")
    frame = np.zeros((35, 35), np.float32)
    frame[2:34, 2:34] = cams[0]
    assert r["heatmap"].shape == (35, 35)
    np.testing.assert_allclose(r["heatmap"], frame, atol=1e-6)


# mutation round 44 (mut44c): rows, fused label, overlay rounding, max_side, refusals


def test_rows_keep_six_places_name_an_unnamed_class_and_save_float32_maps(tmp_path):
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255  # RedBlue: 'positive', output 1
    Image.fromarray(red).save(tmp_path / "red.png")
    probs = X.explain_image(RedBlue(), tmp_path / "red.png")["probs"]
    row, = X.explain_images(RedBlue(), [tmp_path / "red.png"], tmp_path / "out",
                            class_names=("negative",))
    assert row["prob_negative"] == round(float(probs[0]), 6) != round(float(probs[0]), 4)
    assert row["predicted"] == "1"  # no name for output 1: its index, as text
    heat = np.load(tmp_path / "out" / row["heatmap"])
    assert heat.dtype == np.float32
    # the overlay written is the map blended at the default opacity over the image
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / row["overlay"])),
                                  X.overlay_heatmap(red, heat))


def _red_image_fused_negative(tmp_path):
    """A red image RedBlue calls positive, and a fusion that calls it negative (P = 0.9)."""
    from types import SimpleNamespace

    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    fusion = SimpleNamespace(hand=SimpleNamespace(features=lambda rgb: np.zeros(1)),
                             fuse=lambda p, hand: np.array([[0.9, 0.1]]))
    return tmp_path / "red.png", fusion


def test_a_fused_label_other_than_the_networks_is_the_one_mapped(tmp_path):
    red, fusion = _red_image_fused_negative(tmp_path)
    row, = X.explain_images(RedBlue(), [red], tmp_path / "out", fusion=fusion)
    assert row["predicted"] == "negative" and row["target"] == "negative"
    assert row["prob_negative"] == 0.9


def test_overlay_rounds_half_grey_levels_up():
    image = np.ones((2, 2, 3), np.uint8)  # jet(0) has no red: red is half of 1
    assert (X.overlay_heatmap(image, np.zeros((2, 2), np.float32))[..., 0] == 1).all()


def test_explain_image_shrinks_an_image_one_pixel_over_max_side():
    big = np.zeros((49, 30, 3), np.uint8)
    assert X.explain_image(RedBlue().eval(), big, max_side=48)["heatmap"].shape[0] == 48


def test_empty_maps_are_counted_among_the_maps_made_not_the_failed_images(caplog):
    rows = [{"image": "a", "error": "", "empty_map": True, "layer": "conv"},
            {"image": "b", "error": "", "empty_map": False, "layer": "conv"},
            {"image": "c", "error": "unreadable"}]
    with caplog.at_level("WARNING", logger="vsent"):
        X._say_done(rows, None, "negative")
    assert "1 of 2 maps are empty" in caplog.text


def test_explain_refuses_a_bad_target_or_a_bool_max_side_before_its_run_directory(tmp_path):
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "model.pt", create_model("smallcnn", widths=(4, 8)))
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img)
    with pytest.raises(VsentError, match="--target 'happy': choose one of"):
        X.explain(ckpt, [img], tmp_path / "o1", target="happy", device="cpu")
    with pytest.raises(VsentError, match="--max-side must be 0"):
        X.explain(ckpt, [img], tmp_path / "o2", device="cpu", max_side=True)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    X.explain(ckpt, [img, str(tmp_path / "none*.jpg")], tmp_path / "o3", device="cpu")
    found = json.loads((tmp_path / "o3" / "config.json").read_text())["images_found"]
    assert found.startswith("1 file, sha1 ")  # the pattern that matched nothing is no file


def test_images_found_hashes_an_unreadable_file_by_why_and_says_none_as_0_files(tmp_path,
                                                                                 monkeypatch):
    """mut58h K49, K50: a file that cannot be read (an OSError, e.g. no permission: root
    reads anything, so content_key is made to raise it) is hashed by why, its own row says
    what is wrong, not a traceback before the run; no file found is "0 files"."""
    import vsent.data.cache as cache

    img = tmp_path / "a.png"
    img.write_bytes(b"not read")

    def unreadable(paths: list, size: int) -> str:
        raise PermissionError(13, "Permission denied", str(paths[0]))

    monkeypatch.setattr(cache, "content_key", unreadable)
    assert X._found([img]).startswith("1 file, sha1 ")
    assert X._found([]).startswith("0 files, sha1 ")


# mutation round 47 (mut47c): vsent.cli.explain mutants the suite missed


def _explain_spy(monkeypatch, rows: list[dict]) -> list[dict]:
    """Replace the analysis with one that records its arguments and returns ``rows``."""
    calls: list[dict] = []

    def spy(model, images, out, **kwargs):
        calls.append({"model": model, "images": images, "out": out, **kwargs})
        return rows

    monkeypatch.setattr(X, "explain", spy)
    return calls


def test_cli_explain_options_reach_the_analysis_and_default_as_documented(monkeypatch, capsys):
    from vsent.cli import main

    calls = _explain_spy(monkeypatch, [{"error": ""}])
    assert main(["explain", "a.jpg", "--model", "m.pt"]) == 0
    assert calls.pop() == {"model": "m.pt", "images": ["a.jpg"], "out": "runs/explain",
                           "layer": None, "target": "predicted", "device": "auto",
                           "overwrite": False, "max_side": X.DEFAULT_MAX_SIDE}
    capsys.readouterr()
    assert main(["explain", "a.jpg", "b.jpg", "--model", "m.pt", "--layer", "conv2",
                 "--target", "negative", "--device", "cpu", "--overwrite", "--max-side", "0",
                 "--out", "maps"]) == 0
    assert calls.pop() == {"model": "m.pt", "images": ["a.jpg", "b.jpg"], "out": "maps",
                           "layer": "conv2", "target": "negative", "device": "cpu",
                           "overwrite": True, "max_side": 0}
    assert capsys.readouterr().err == "explained 1 of 1 images, 0 failed; maps/explain.csv\n"


def test_cli_explain_exits_3_when_an_image_failed(monkeypatch, capsys):
    from vsent.cli import main
    from vsent.errors import EXIT_ITEMS_FAILED

    _explain_spy(monkeypatch, [{"error": ""}, {"error": ""},
                               {"error": "cannot identify image file"}])
    assert main(["explain", "a.jpg", "b.jpg", "c.jpg", "--model", "m.pt"]) \
        == EXIT_ITEMS_FAILED == 3
    assert capsys.readouterr().err.startswith("explained 2 of 3 images, 1 failed;")


def test_cli_explain_refuses_a_blank_layer_name(capsys):
    from vsent.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["explain", "a.jpg", "--model", "m.pt", "--layer", "  "])
    assert stop.value.code == 2 and "an empty layer name" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47f): vsent.analyses.explain mutants the suite missed


def test_a_finished_runs_damaged_empty_map_cell_is_named_not_read_as_false(tmp_path):
    # a finished run returns its stored rows typed: a cell that is neither True nor False is
    # damage (one line naming the file and line), not an empty_map of False
    done = tmp_path / "explain.csv"
    with done.open("w", newline="") as f:
        w = csv.DictWriter(f, list(X.FIELDS))
        w.writeheader()
        w.writerow({"image": "a.png", "error": "", "prob_negative": 0.25, "prob_positive": 0.75,
                    "predicted": "positive", "target": "positive", "layer": "conv",
                    "overlay": "a.png", "heatmap": "a.npy", "empty_map": "yes"})
    with pytest.raises(VsentError, match=r"explain.csv, line 2: .*empty_map"):
        X._stored_rows(done)


def test_a_layer_of_three_dimensional_output_is_refused_by_name():
    # e.g. a flattened (B, C, h*w) map: not a feature map Grad-CAM can weigh per channel
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(2), nn.Flatten(1), nn.Linear(32, 2))
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(VsentError, match=r"--layer '1' outputs \(1, 2, 16\), not a \(B, C, h, "
                                         r"w\) feature map"):
        X.grad_cam(model, x, "1")
    # nor one of more dimensions than four (mut58h K37: it failed in torch's interpolate)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Unflatten(1, (1, 2)), nn.Flatten(1),
                          nn.Linear(32, 2))
    with pytest.raises(VsentError, match=r"--layer '1' outputs \(1, 1, 2, 4, 4\), not a "):
        X.grad_cam(model, x, "1")


def test_a_negative_target_class_is_refused_by_name():
    # -1 would index the last output (or fail in torch's gather): not a class of the model
    with pytest.raises(VsentError, match=r"target class \[-1\] outside the model's 2 outputs"):
        X.grad_cam(RedBlue().eval(), torch.zeros(1, 3, 8, 8), "conv", -1)


def test_overlay_opacity_runs_from_the_image_alone_to_the_colours_alone():
    # opacity 0: the photo as it is; 1: the jet colours only (jet(0) is (0, 0, 0.5): 127.5
    # blue, rounded up); the default 0.5 cannot tell the two weights apart
    image = np.full((2, 3, 3), 100, np.uint8)
    heat = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(X.overlay_heatmap(image, heat, opacity=0.0), image)
    np.testing.assert_array_equal(X.overlay_heatmap(image, heat, opacity=1.0)[0, 0], [0, 0, 128])


def test_a_class_target_is_mapped_whatever_the_fused_label(tmp_path):
    # only target="predicted" follows the fused label; --target positive maps positive
    red, fusion = _red_image_fused_negative(tmp_path)
    row, = X.explain_images(RedBlue(), [red], tmp_path / "out", fusion=fusion,
                            target="positive")
    assert row["predicted"] == "negative" and row["target"] == "positive"


def test_a_bad_layer_stops_explain_images_instead_of_failing_each_image(tmp_path):
    # only an image that cannot be read is the image's row error; a layer that is no
    # feature map is the caller's mistake, said once, not written as every image's error
    Image.fromarray(_red_left_blue_right()).save(tmp_path / "a.png")
    with pytest.raises(VsentError, match="not a \\(B, C, h, w\\) feature map"):
        X.explain_images(RedBlue(), [tmp_path / "a.png"], tmp_path / "out", layer="head")


def test_prob_positive_of_a_many_way_model_is_output_1s(tmp_path):
    # labels: 1 = positive; the last output of a 3-way model is another class
    model = RedBlue()
    model.head = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]))
    model.info = dataclasses.replace(model.info, num_outputs=3)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255  # logits (0, 1, 0)
    Image.fromarray(red).save(tmp_path / "red.png")
    row, = X.explain_images(model, [tmp_path / "red.png"], tmp_path / "out")
    e = np.exp([0.0, 1.0, 0.0])
    assert row["prob_positive"] == pytest.approx(e[1] / e.sum(), abs=1e-6)
    assert row["predicted"] == "positive"


def test_the_fused_probabilities_use_the_images_hand_crafted_features(tmp_path):
    # the fusion is given the image's own hand-crafted features (here its mean red)
    from types import SimpleNamespace

    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    fusion = SimpleNamespace(
        hand=SimpleNamespace(features=lambda rgb: np.array([rgb[..., 0].mean() / 255])),
        fuse=lambda p, hand: np.array([[1 - 0.8 * hand[0, 0], 0.8 * hand[0, 0]]]))
    row, = X.explain_images(RedBlue(), [tmp_path / "red.png"], tmp_path / "out", fusion=fusion)
    assert row["prob_positive"] == pytest.approx(0.8) and row["predicted"] == "positive"


def test_grad_cam_of_a_model_with_frozen_weights_is_that_of_the_trainable_one():
    # a probe or an exported-then-loaded model may have requires_grad off everywhere
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    model = RedBlue().eval()
    want = X.grad_cam(model, x, "conv", "positive")[0]
    for p in model.parameters():
        p.requires_grad_(False)
    np.testing.assert_allclose(X.grad_cam(model, x, "conv", "positive")[0], want)


# --------------------------------------------------------------------------------------------
# mutation round 50 (mut50e): vsent.analyses.explain mutants the suite missed


def test_a_map_positive_everywhere_is_scaled_by_its_peak_not_stretched_to_its_minimum():
    # red everywhere, 128 .. 255 from left to right: RedBlue's positive map is the red level,
    # positive at every pixel; Grad-CAM divides by the peak (min 128/255), a min-max
    # scaling would make the faintest column 0
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = np.linspace(128, 255, 32).round().astype(np.uint8)[None, :]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    cams, _, _ = X.grad_cam(RedBlue().eval(), x, "conv", "positive")
    np.testing.assert_allclose(cams[0], img[..., 0] / 255, atol=1e-6)
    # such a map placed back in the warp: the border the crop cut off stays 0 (never seen)
    model = RedBlue().eval()
    model.info = dataclasses.replace(model.info, preprocess=Preprocess(
        resize=36, crop=32, mean=(0, 0, 0), std=(255, 255, 255)))
    heat = X.explain_image(model, np.full((36, 36, 3), (200, 0, 0), np.uint8),
                           target="positive")["heatmap"]
    assert (heat[2:34, 2:34] == 1).all() and heat.sum() == 32 * 32


@pytest.mark.parametrize(("resize", "top"), [(33, 0), (37, 2)])
def test_the_map_goes_back_at_torchvisions_rounded_half_crop_offset(resize, top):
    # (resize - crop) / 2 = 0.5 or 2.5: torchvision's round() goes to the even offset (0, 2),
    # as vsent's centre crop; rounding half up would shift the map by a pixel
    from vsent.inference import prepare

    model = RedBlue().eval()
    pre = Preprocess(resize=resize, crop=32, mean=(0, 0, 0), std=(255, 255, 255))
    model.info = dataclasses.replace(model.info, preprocess=pre)
    img = np.random.default_rng(1).integers(0, 256, (resize, resize, 3), np.uint8)
    r = X.explain_image(model, img, target="positive")
    cams, _, _ = X.grad_cam(model, prepare(img[None], pre), "conv", "positive")
    frame = np.zeros((resize, resize), np.float32)
    frame[top : top + 32, top : top + 32] = cams[0]
    np.testing.assert_allclose(r["heatmap"], frame, atol=1e-6)


def test_the_map_is_enlarged_to_the_image_bilinearly():
    # an image twice the warp's size: the frame's map upsampled by bilinear interpolation
    # (pixel centres, as torch's align_corners=False), not by repeating each cell
    img = np.kron(_red_left_blue_right(), np.ones((2, 2, 1), np.uint8))  # 64 x 64
    img[..., 0] = np.where(img[..., 0] > 0, np.arange(64, dtype=np.uint8)[:, None] + 150, 0)
    r = X.explain_image(RedBlue().eval(), img, target="positive")
    from vsent.data.images import load_resized
    from vsent.inference import prepare

    model = RedBlue().eval()
    x = prepare(load_resized(img, 32)[None], model.info.preprocess)
    cams, _, _ = X.grad_cam(model, x, "conv", "positive")
    want = torch.nn.functional.interpolate(torch.from_numpy(cams)[None], size=(64, 64),
                                           mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(r["heatmap"], want.numpy(), atol=1e-5)


def test_overlay_at_full_opacity_is_jets_colours_on_the_0_255_scale():
    # the colours alone: jet's [0, 1] channels times 255, rounded (x 256 is at most a grey
    # level off, within the band test's tolerance, but not these values)
    from matplotlib import colormaps

    heat = np.linspace(0, 1, 64, dtype=np.float32).reshape(2, 32)
    over = X.overlay_heatmap(np.zeros((2, 32, 3), np.uint8), heat, opacity=1.0)
    want = np.floor(colormaps["jet"](heat)[..., :3] * 255.0 + 0.5)
    np.testing.assert_array_equal(over, want)


def test_only_an_explain_run_without_images_found_is_one_made_before_it(tmp_path):
    # another command's run at --out is refused by open_run_dir, not first warned about as
    # an older explain run whose files are not checked
    cfg = tmp_path / "config.json"
    for stored, older in (({"command": "crossval"}, False), ({"command": "explain"}, True),
                          ({"command": "explain", "images_found": "1 file, sha1 0"}, False)):
        cfg.write_text(json.dumps(stored))
        assert X._made_before_images_found(tmp_path) is older


def test_the_hand_crafted_features_are_of_the_full_image_whatever_max_side(tmp_path):
    # vsent predict's fused probability: the hand-crafted half sees the image as read, not
    # the copy shrunk to --max-side for the map and overlay
    from types import SimpleNamespace

    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "a.png")
    fusion = SimpleNamespace(
        hand=SimpleNamespace(features=lambda rgb: np.array([rgb.shape[0] / 100])),
        fuse=lambda p, hand: np.array([[1 - hand[0, 0], hand[0, 0]]]))
    row, = X.explain_images(RedBlue(), [tmp_path / "a.png"], tmp_path / "out", fusion=fusion,
                            max_side=20)
    assert row["prob_positive"] == pytest.approx(0.4)
    assert np.load(tmp_path / "out" / row["heatmap"]).shape == (20, 15)


def test_explain_maps_the_layer_it_is_given(tmp_path):
    # --layer reaches the maps, not only config.json: an earlier block than the default one
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("smallcnn", widths=(4, 8)).eval()
    assert model.info.cam_layer == "features.block2"
    ckpt = save_checkpoint(tmp_path / "model.pt", model)
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (30, 45, 3), np.uint8)).save(img)
    row, = X.explain(ckpt, [img], tmp_path / "out", layer="features.block1", device="cpu")
    assert row["layer"] == "features.block1"
    want = X.explain_image(model, img, layer="features.block1", max_side=X.DEFAULT_MAX_SIDE)
    np.testing.assert_allclose(np.load(tmp_path / "out" / row["heatmap"]), want["heatmap"],
                               atol=1e-6)


def test_grad_cam_and_overlay_refuse_what_they_cannot_use():
    """api60 F10, F12: grad_cam of a numpy array was AttributeError 'detach'; an overlay of
    another size numpy's broadcast error; opacity 2 was taken. Each names the argument."""
    with pytest.raises(TypeError, match=r"^x must be a float torch\.Tensor \(B, 3, H, W\).* got "
                                        r"ndarray float32 \(1, 3, 8, 8\)$"):
        X.grad_cam(RedBlue().eval(), np.zeros((1, 3, 8, 8), np.float32), "conv")
    # a tensor must be a float batch: not uint8 pixels, not one image without its batch axis
    for x, what in ((torch.zeros((1, 3, 8, 8), dtype=torch.uint8), r"torch\.uint8 \(1, 3, 8, 8\)"),
                    (torch.zeros((3, 8, 8)), r"torch\.float32 \(3, 8, 8\)")):
        with pytest.raises(TypeError, match=rf"^x must be a float torch\.Tensor .* got "
                                            rf"Tensor {what}$"):
            X.grad_cam(RedBlue().eval(), x, "conv")
    image = np.full((4, 6, 3), 100, np.uint8)
    with pytest.raises(ValueError, match=r"^heatmap must be a real array of the image's size "
                                         r"\(4, 6\), got float32 \(6, 4\)$"):
        X.overlay_heatmap(image, np.zeros((6, 4), np.float32))
    with pytest.raises(ValueError, match=r"^image must be an RGB uint8 array \(H, W, 3\), got "
                                         r"float64"):
        X.overlay_heatmap(image / 255.0, np.zeros((4, 6), np.float32))
    # RGBA is not RGB; a boolean mask is not a heat map (its size right or not)
    with pytest.raises(ValueError, match=r"^image must be an RGB uint8 array \(H, W, 3\), got "
                                         r"uint8 \(4, 6, 4\)$"):
        X.overlay_heatmap(np.zeros((4, 6, 4), np.uint8), np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match=r"^heatmap must be a real array .* got bool \(4, 6\)$"):
        X.overlay_heatmap(image, np.zeros((4, 6), bool))
    for opacity in (2, -0.1, "0.5", float("nan"), True):
        with pytest.raises(ValueError, match=r"^opacity must be a number in \[0, 1\], got "):
            X.overlay_heatmap(image, np.zeros((4, 6), np.float32), opacity=opacity)
