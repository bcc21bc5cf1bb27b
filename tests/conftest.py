"""Shared fixtures: tiny generated datasets (Twitter I layout, positive/negative folders), bad
image files, and the real Twitter I data when it is present.

Fixtures
--------
twitter_like : Path
    A Twitter I style folder (see :func:`build_twitter_like` for counts) whose images are
    learnable (positives warm and bright, negatives cold and dark, with noise).
make_twitter_like : callable(root=None, n=50, seed=0, ...) -> Path
    The same with other sizes.
learnable_dataset : Path
    A positive/ + negative/ folder, 24 + 24 noisy 32x32 JPEGs a tiny CNN separates quickly.
make_learnable : callable(root=None, n_pos=24, n_neg=24, size=32, seed=0, ext=".jpg") -> Path
bad_images : dict[str, Path]
    One file per awkward case (see :func:`build_bad_images`).
twitter1 : Path
    The real dataset (``$VSENT_DATA`` or ``<repo>/../shared/datasets/twitter1``); skips if absent.

Every test also gets ``$VSENT_CACHE`` pointing into pytest's temporary folder, so no test
writes to ``~/.cache``.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Item counts of the default ``twitter_like`` fixture per subset (nested, like Twitter I).
TWITTER_LIKE_COUNTS = {"three": 50, "four": 44, "five": 36}


# --------------------------------------------------------------------------------------------
# image generators


def sentiment_image(label: int, rng: np.random.Generator, size: tuple[int, int] = (32, 32),
                    noise: float = 30.0) -> np.ndarray:
    """(H, W, 3) uint8 picture a small CNN can classify: label 1 warm/bright, 0 cold/dark.

    ``size`` is (width, height). A random gradient and Gaussian noise keep it from being a
    single colour, so the network has to look at the colours, not memorise pixels.
    """
    w, h = size
    base = np.array([215.0, 160.0, 80.0]) if label == 1 else np.array([45.0, 70.0, 140.0])
    base = base + rng.normal(0, 15, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1)) * 40.0
    img = base[None, None, :] + grad[:, :, None] + rng.normal(0, noise, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save_image(arr: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    if fmt == "JPEG":
        kw.setdefault("quality", 92)
    Image.fromarray(arr).save(path, fmt, **kw)
    return path


def jpeg_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# dataset builders


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB) followed by a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8))
            + chunk(b"IEND", b""))


def build_twitter_like(root: Path, n: int = 50, n_four: int = 44, n_five: int = 36,
                       seed: int = 0, n_folds: int = 5) -> Path:
    """A folder in the Twitter I layout.

    ``images/`` holds ``n`` JPEGs of 24..44 x 20..36 pixels; item ``i`` is negative when
    ``i % 3 == 0`` (about 2:1 positive, as Twitter I). ``twitter_three_agrees.txt`` lists all
    ``n``, ``four`` the first ``n_four``, ``five`` the first ``n_five`` (nested subsets).
    ``folds/campos/<subset>_agrees/test{1..n_folds}/{train,test}.txt`` split each subset
    except its last item (as the paper's folds leave a few images out) into ``n_folds``
    disjoint test folds; lines are ``<file name> <label>``.
    """
    rng = np.random.default_rng(seed)
    names = [f"{100000 + 7 * i}_{428000000000000000 + 13 * i}_Img{i:03d}.jpg" for i in range(n)]
    labels = [0 if i % 3 == 0 else 1 for i in range(n)]
    for name, label in zip(names, labels, strict=True):
        size = (int(rng.integers(24, 45)), int(rng.integers(20, 37)))
        save_image(sentiment_image(label, rng, size), root / "images" / name)
    gt = root / "ground_truth"
    gt.mkdir(parents=True, exist_ok=True)
    for subset, count in (("three", n), ("four", n_four), ("five", n_five)):
        lines = [f"{names[i]} {labels[i]}\n" for i in range(count)]
        (gt / f"twitter_{subset}_agrees.txt").write_text("".join(lines))
        covered = rng.permutation(count - 1)  # the last item is in no fold
        for k, test in enumerate(np.array_split(covered, n_folds), 1):
            train = np.setdiff1d(covered, test)
            d = root / "folds" / "campos" / f"{subset}_agrees" / f"test{k}"
            d.mkdir(parents=True, exist_ok=True)
            for part, idx in (("train", train), ("test", test)):
                (d / f"{part}.txt").write_text(
                    "".join(f"{names[i]} {labels[i]}\n" for i in idx))
    return root


def build_learnable(root: Path, n_pos: int = 24, n_neg: int = 24, size: int = 32,
                    seed: int = 0, ext: str = ".jpg") -> Path:
    """``positive/`` and ``negative/`` folders of noisy warm/bright vs cold/dark images."""
    rng = np.random.default_rng(seed)
    for label, cls, count in ((1, "positive", n_pos), (0, "negative", n_neg)):
        for i in range(count):
            arr = sentiment_image(label, rng, (size, size))
            save_image(arr, root / cls / f"{cls}_{i:03d}{ext}")
    return root


def build_bad_images(root: Path) -> dict[str, Path]:
    """One file per awkward input, all 16x12 (width x height) unless said otherwise.

    Keys: ``ok`` (RGB JPEG), ``corrupt`` (random bytes), ``truncated`` (first half of a JPEG),
    ``empty`` (0 bytes), ``text`` (a .txt renamed .jpg), ``gray`` (L PNG), ``la`` (LA PNG),
    ``palette`` (P PNG), ``palette_transparent`` (P PNG with a transparent index),
    ``cmyk`` (CMYK JPEG), ``rgba`` (fully transparent RGBA PNG), ``gray16`` (16-bit PNG,
    value 65535 everywhere), ``exif6`` (16x12 JPEG with EXIF orientation 6: loads as 12x16),
    ``missing`` (a path that does not exist), ``directory`` (a folder named like an image).
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    out = {"ok": save_image(rgb, root / "ok.jpg")}
    out["corrupt"] = root / "corrupt.jpg"
    out["corrupt"].write_bytes(b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 500, np.uint8).tobytes())
    big = sentiment_image(1, rng, (64, 48), noise=60)
    data = jpeg_bytes(big)
    out["truncated"] = root / "truncated.jpg"
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["empty"] = root / "empty.jpg"
    out["empty"].write_bytes(b"")
    out["text"] = root / "notes.jpg"
    out["text"].write_text("this is not an image\n")
    out["gray"] = root / "gray.png"
    Image.fromarray(np.full((12, 16), 77, np.uint8)).save(out["gray"])
    out["la"] = root / "la.png"
    Image.new("LA", (16, 12), (0, 0)).save(out["la"])  # black, fully transparent
    out["palette"] = root / "palette.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(out["palette"])
    pal = Image.new("P", (16, 12), 1)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    pal.save(root / "palette_transparent.png", transparency=1)
    out["palette_transparent"] = root / "palette_transparent.png"
    out["cmyk"] = root / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(out["cmyk"], quality=95)  # red
    out["rgba"] = root / "rgba.png"
    Image.new("RGBA", (16, 12), (10, 20, 30, 0)).save(out["rgba"])
    out["gray16"] = root / "gray16.png"
    Image.fromarray(np.full((12, 16), 65535, np.uint16)).save(out["gray16"])
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    out["exif6"] = root / "exif6.jpg"
    Image.fromarray(rgb).save(out["exif6"], quality=95, exif=exif)
    out["missing"] = root / "does_not_exist.jpg"
    out["directory"] = root / "folder.jpg"
    out["directory"].mkdir()
    return out


# --------------------------------------------------------------------------------------------
# fixtures


def warning_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING (and worse) messages captured so far: the CLI sets vsent's logger to INFO,
    so ``caplog.at_level("WARNING")`` alone also keeps its INFO lines."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def record_momentum_forms(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The momentum form of each optimizer :func:`vsent.train.make_optimizer` makes from now
    on (the list grows as they are made)."""
    import vsent.train as train_mod

    used: list[str] = []
    real = train_mod.make_optimizer
    monkeypatch.setattr(train_mod, "make_optimizer",
                        lambda m, c: used.append(c.momentum_form) or real(m, c))
    return used


def resume_form_refusal(out: Path, started: str, given: str) -> str:
    """The one line of ``--resume --momentum-form GIVEN`` on a run that trains in ``started``."""
    return (f"vsent: error: --resume: {out} trains in the momentum form it was started with "
            f"({started}), not {given}: give no --momentum-form to continue it so, or "
            "--overwrite to start again\n")


def interrupt_after(monkeypatch: pytest.MonkeyPatch, n_epochs: int) -> None:
    """Make the next fit() raise KeyboardInterrupt when epoch ``n_epochs + 1`` starts (a Ctrl-C
    after ``n_epochs`` finished epochs)."""
    import vsent.train as train_mod

    real, seen = train_mod.train_one_epoch, []

    def interrupting(*a, **kw):
        if len(seen) == n_epochs:
            raise KeyboardInterrupt
        seen.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "train_one_epoch", interrupting)


def assert_reruns_after_interrupt(monkeypatch: pytest.MonkeyPatch, capsys, argv: list[str],
                                  module, name: str) -> None:
    """``main(argv)`` stopped by a Ctrl-C inside ``module.name`` exits 130, and the same command
    run again finishes (exit 0): an interrupted run does not refuse the next try."""
    from vsent.cli import main

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(module, name, interrupted)
        assert main(argv) == 130
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err


def gch_hand_model():
    """A hand-crafted half made by hand (no fitting): a linear model on the 64 gch columns,
    as vsent.analyses.fused_model.HandCraftedModel holds one."""
    from vsent.analyses.fused_model import HandCraftedModel
    from vsent.analyses.handcrafted import SiftParams

    rng = np.random.default_rng(0)
    return HandCraftedModel(
        blocks=("gch",), sift=SiftParams(), bow_norm="l1", histogram_map="none",
        vocabulary=None, mean=rng.uniform(0, 0.03, 64), std=rng.uniform(0.01, 0.02, 64),
        block_weight=np.full(64, 1 / 8), coef=rng.normal(0, 1, 64), intercept=0.2, C=1.0,
        n_train=40)


def spy_histogram_maps(monkeypatch: pytest.MonkeyPatch, module) -> list[str]:
    """Record the ``histogram_map`` of every ``fold_blocks`` call made through ``module`` (the
    baselines or the fusion module); the calls still do their work."""
    real, maps = module.fold_blocks, []

    def spy(feats, train, names, config=None, timing=None, encoders=None):
        maps.append(config.histogram_map)
        return real(feats, train, names, config, timing, encoders)

    monkeypatch.setattr(module, "fold_blocks", spy)
    return maps


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests (run deliberately) may take an hour before pytest-timeout stops them; the
    others keep pyproject's 300 s."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session", autouse=True)
def _isolated_vsent_cache(tmp_path_factory):
    """Keep image caches in pytest's temp folder, never in ~/.cache: set for the whole session,
    before any module-scoped fixture runs (one that trained a run wrote its image cache into
    ~/.cache/vsent while a function-scoped setting came only later, tests38 #1)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSENT_CACHE", str(tmp_path_factory.getbasetemp() / "vsent-cache"))
        yield


@pytest.fixture(scope="session", autouse=True)
def _isolated_ray_sessions():
    """Ray's session folders (logs, sockets) in a folder of this test session, removed at its
    end: they piled up in /tmp/ray (tests38 #11). Short, under /tmp: Ray's socket paths must
    stay under 107 bytes, which pytest's temp paths do not."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="vr", dir="/tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", folder)
        yield
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_twitter_like(tmp_path):
    """Factory: ``make_twitter_like(root=None, n=50, n_four=44, n_five=36, seed=0)``."""
    def make(root: Path | None = None, **kw) -> Path:
        return build_twitter_like(Path(root) if root else tmp_path / "twitter", **kw)
    return make


@pytest.fixture
def twitter_like(make_twitter_like) -> Path:
    """Twitter I layout with 50/44/36 items (three/four/five agree) and campos-style folds."""
    return make_twitter_like()


@pytest.fixture
def make_learnable(tmp_path):
    """Factory: ``make_learnable(root=None, n_pos=24, n_neg=24, size=32, seed=0, ext='.jpg')``."""
    def make(root: Path | None = None, **kw) -> Path:
        return build_learnable(Path(root) if root else tmp_path / "learnable", **kw)
    return make


@pytest.fixture
def learnable_dataset(make_learnable) -> Path:
    """positive/ + negative/ folder, 24 + 24 32x32 JPEGs; colour alone separates the classes."""
    return make_learnable()


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A smallcnn checkpoint from random weights, ``tmp_path/model.pt``."""
    from vsent.models import create_model
    from vsent.models.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path / "model.pt", create_model("smallcnn"))


@pytest.fixture
def bad_images(tmp_path) -> dict[str, Path]:
    return build_bad_images(tmp_path / "bad")


def twitter1_path() -> Path:
    env = os.environ.get("VSENT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared/datasets/twitter1"


@pytest.fixture
def twitter1() -> Path:
    """The real Twitter I dataset; the test is skipped when it is not there."""
    path = twitter1_path()
    if not (path / "ground_truth" / "twitter_five_agrees.txt").is_file():
        pytest.skip(f"Twitter I dataset not found at {path} (set $VSENT_DATA)")
    return path


def default_sigint() -> None:
    """``preexec_fn`` of a test's subprocess that it stops with SIGINT: Ctrl-C's default
    disposition there. A shell that starts the suite in the background (``make test &``, a
    CI step run detached) passes SIGINT on ignored, and Python then keeps ignoring it: the
    child would never see the signal the test sends."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
