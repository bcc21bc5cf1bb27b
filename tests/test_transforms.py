import json
import os

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T

from vsent.data.transforms import (
    CAFFE_PREPROCESS,
    IMAGENET_PREPROCESS,
    Preprocess,
    center_crop,
    normalize,
    random_crop_flip,
    ten_crop,
)
from vsent.errors import VsentError

H, W = 9, 12  # not square, so a swapped height/width shows


def coords(b: int = 3, h: int = H, w: int = W) -> torch.Tensor:
    """(B, H, W, 3) uint8 whose pixel (i, y, x) is (y, x, i): values say where they came from."""
    i, y, x = torch.meshgrid(torch.arange(b), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([y, x, i], dim=-1).to(torch.uint8)


def check_window(crop: torch.Tensor, img: int, top: int, left: int, mirrored: bool) -> None:
    """crop (c, c, 3) must be rows top.., columns left.. of image ``img``, maybe mirrored."""
    c = crop.shape[0]
    rows = torch.arange(top, top + c)
    cols = torch.arange(left, left + c)
    if mirrored:
        cols = cols.flip(0)
    assert torch.equal(crop[..., 0].long(), rows[:, None].expand(c, c))
    assert torch.equal(crop[..., 1].long(), cols[None, :].expand(c, c))
    assert torch.all(crop[..., 2] == img)


# ------------------------------------------------------------------------------------------
# deterministic crops


def test_ten_crop_geometry_and_order():
    batch = coords()
    out = ten_crop(batch, 5)
    assert out.shape == (3, 10, 5, 5, 3) and out.dtype == torch.uint8
    # top-left, top-right, bottom-left, bottom-right, centre; then the same mirrored
    centre = (round((H - 5) / 2), round((W - 5) / 2))  # (2, 4)
    origins = [(0, 0), (0, W - 5), (H - 5, 0), (H - 5, W - 5), centre]
    for i in range(3):
        for k, (top, left) in enumerate(origins):
            check_window(out[i, k], i, top, left, mirrored=False)
            check_window(out[i, k + 5], i, top, left, mirrored=True)


def test_ten_crop_has_the_crops_of_torchvision_tencrop():
    batch = coords(b=2)
    out = ten_crop(batch, 6)
    # torchvision mirrors the whole image before its second five_crop, so its mirrored
    # top-left is the mirror of the top-right window, etc.
    order = [0, 1, 2, 3, 4, 6, 5, 8, 7, 9]
    for i in range(2):
        ref = T.TenCrop(6)(batch[i].permute(2, 0, 1))
        for k in range(10):
            assert torch.equal(out[i, order[k]], ref[k].permute(1, 2, 0))


def test_center_crop():
    batch = coords()
    out = center_crop(batch, 5)
    assert out.shape == (3, 5, 5, 3)
    for i in range(3):
        check_window(out[i], i, 2, 4, mirrored=False)
    assert torch.equal(out, ten_crop(batch, 5)[:, 4])
    # Caffe-sized: 256 -> 227 takes rows/columns 14..240
    big = torch.zeros(1, 256, 256, 3, dtype=torch.uint8)
    big[0, 14, 14] = 255
    big[0, 240, 240] = 7
    c = center_crop(big, 227)
    assert c[0, 0, 0, 0] == 255 and c[0, 226, 226, 0] == 7


@pytest.mark.parametrize("h,w,crop", [(9, 12, 5), (10, 12, 5), (8, 8, 3), (256, 256, 227),
                                      (7, 11, 6), (6, 6, 6)])
def test_crops_are_torchvisions(h, w, crop):
    """The crops index the batch themselves (torchvision costs ~2.5 s of start-up); they are
    torchvision's windows exactly, its rounding of the centre offset included."""
    import torchvision.transforms.v2.functional as TF

    batch = coords(b=2, h=h, w=w)
    chw = batch.permute(0, 3, 1, 2)
    assert torch.equal(center_crop(batch, crop),
                       TF.center_crop(chw, [crop, crop]).permute(0, 2, 3, 1))
    five = [c.permute(0, 2, 3, 1) for c in TF.five_crop(chw, [crop, crop])]
    ten = ten_crop(batch, crop)
    for k in range(5):
        assert torch.equal(ten[:, k], five[k])
        assert torch.equal(ten[:, k + 5], five[k].flip(2))


def test_crops_accept_numpy():
    arr = coords().numpy()
    assert torch.equal(center_crop(arr, 4), center_crop(torch.from_numpy(arr), 4))
    # mut54d U34: a view with a negative stride (torch.from_numpy refuses it) is copied
    flipped = arr[:, ::-1]
    assert torch.equal(center_crop(flipped, 4), center_crop(torch.from_numpy(flipped.copy()), 4))


@pytest.mark.parametrize("fn", [center_crop, ten_crop, random_crop_flip])
def test_crop_argument_errors(fn):
    with pytest.raises(ValueError, match=r"crop 10 is larger than the images \(9x12\)"):
        fn(coords(), 10)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, H, W, 3\)"):
        fn(coords().permute(0, 3, 1, 2), 2)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, H, W, 3\), got "
                                         r"\(9, 12, 3\)"):  # mut54d U15: one image, no batch
        fn(coords()[0], 2)
    with pytest.raises(ValueError, match="crop must be a positive integer"):
        fn(coords(), 0)


# ------------------------------------------------------------------------------------------
# random crops


def test_random_crop_flip_windows_are_valid_and_varied():
    batch = coords(b=64)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(batch, 5, g)
    assert out.shape == (64, 5, 5, 3) and out.dtype == torch.uint8
    tops, lefts, mirrors = [], [], []
    for i in range(64):
        crop = out[i]
        top = int(crop[0, 0, 0])
        mirrored = bool(crop[0, 0, 1] > crop[0, -1, 1])
        left = int(crop[0, -1, 1]) if mirrored else int(crop[0, 0, 1])
        check_window(crop, i, top, left, mirrored)
        tops.append(top)
        lefts.append(left)
        mirrors.append(mirrored)
    assert set(tops) == set(range(H - 5 + 1))  # every offset reachable, 64 draws over 5
    assert set(lefts) == set(range(W - 5 + 1))
    assert 16 < sum(mirrors) < 48  # p = 0.5


def test_random_crop_flip_follows_the_documented_draws():
    batch = coords(b=8)
    out = random_crop_flip(batch, 4, torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(123)
    tops = torch.randint(0, H - 4 + 1, (8,), generator=g)
    lefts = torch.randint(0, W - 4 + 1, (8,), generator=g)
    mirrors = torch.rand(8, generator=g) < 0.5
    for i in range(8):
        check_window(out[i], i, int(tops[i]), int(lefts[i]), bool(mirrors[i]))


def test_random_crop_flip_is_deterministic_per_seed():
    batch = coords(b=16)
    a = random_crop_flip(batch, 5, torch.Generator().manual_seed(7))
    b = random_crop_flip(batch, 5, torch.Generator().manual_seed(7))
    c = random_crop_flip(batch, 5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)
    first, second = random_crop_flip(batch, 5, g), random_crop_flip(batch, 5, g)
    assert torch.equal(first, a) and not torch.equal(first, second)  # the generator advances


def test_mirror_is_a_horizontal_flip_of_the_same_window():
    batch = coords(b=1, h=5, w=5)  # crop == image: the only randomness is the mirror
    seen = set()
    for seed in range(20):
        out = random_crop_flip(batch, 5, torch.Generator().manual_seed(seed))[0]
        if torch.equal(out, batch[0]):
            seen.add("plain")
        else:
            assert torch.equal(out, batch[0].flip(1))  # columns reversed, rows kept
            seen.add("mirrored")
    assert seen == {"plain", "mirrored"}


# ------------------------------------------------------------------------------------------
# normalisation


def test_normalize_caffe_bgr_mean_subtraction():
    batch = torch.tensor([200, 100, 50], dtype=torch.uint8).expand(2, 3, 4, 3)  # R, G, B
    out = normalize(batch, CAFFE_PREPROCESS)
    assert out.shape == (2, 3, 3, 4) and out.dtype == torch.float32
    # BGR order, minus (B, G, R) = (104, 117, 123)
    expected = torch.tensor([50 - 104, 100 - 117, 200 - 123], dtype=torch.float32)
    assert torch.equal(out[0, :, 1, 2], expected)
    assert torch.equal(out, expected[None, :, None, None].expand(2, 3, 3, 4))


def test_normalize_imagenet_matches_torchvision():
    batch = torch.randint(0, 256, (2, 6, 5, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    ours = normalize(batch, IMAGENET_PREPROCESS)
    ref = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(
        batch.permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_normalize_rgb_vs_bgr_only_reorders():
    batch = torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))
    pre = Preprocess(mean=(10, 20, 30), std=(2, 4, 8), crop=4, resize=4)
    rgb = normalize(batch, pre)
    bgr = normalize(batch, Preprocess(mean=(10, 20, 30), std=(2, 4, 8), crop=4, resize=4,
                                      channel_order="BGR"))
    assert torch.equal(rgb.flip(1), bgr)
    assert torch.equal(rgb[:, 2], (batch[..., 2].float() - 30) / 8)


def test_normalize_ten_crop_batches_and_numpy():
    crops = ten_crop(coords(), 5)
    out = normalize(crops, CAFFE_PREPROCESS)
    assert out.shape == (3, 10, 3, 5, 5)
    assert torch.equal(out[1, 7], normalize(crops[1, 7][None], CAFFE_PREPROCESS)[0])
    assert torch.equal(normalize(crops.numpy(), CAFFE_PREPROCESS), out)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\)"):
        normalize(torch.zeros(2, 3, 4, 4), CAFFE_PREPROCESS)


# ------------------------------------------------------------------------------------------
# Preprocess


def test_preset_values():
    assert CAFFE_PREPROCESS.mean == (123.0, 117.0, 104.0)
    assert CAFFE_PREPROCESS.std == (1.0, 1.0, 1.0)
    assert (CAFFE_PREPROCESS.channel_order, CAFFE_PREPROCESS.resize,
            CAFFE_PREPROCESS.crop) == ("BGR", 256, 227)
    np.testing.assert_allclose(IMAGENET_PREPROCESS.mean, [123.675, 116.28, 103.53])
    np.testing.assert_allclose(IMAGENET_PREPROCESS.std, [58.395, 57.12, 57.375])
    assert (IMAGENET_PREPROCESS.channel_order, IMAGENET_PREPROCESS.crop) == ("RGB", 224)
    # mut54d U14: what a record without sizes reads as: the Caffe warp and crop, ImageNet stats
    assert Preprocess.from_dict({}) == Preprocess(resize=256, crop=227, channel_order="RGB",
                                                  mean=IMAGENET_PREPROCESS.mean,
                                                  std=IMAGENET_PREPROCESS.std)


@pytest.mark.parametrize("pre", [CAFFE_PREPROCESS, IMAGENET_PREPROCESS, Preprocess()])
def test_to_dict_from_dict_round_trip_through_json(pre):
    d = json.loads(json.dumps(pre.to_dict()))
    assert d == pre.to_dict()  # mut51d T34: lists, as read back (a run config compares equal)
    assert Preprocess.from_dict(d) == pre
    assert hash(Preprocess.from_dict(d)) == hash(pre)


def test_from_dict_rejects_unknown_keys():
    d = CAFFE_PREPROCESS.to_dict() | {"scale": 0.5}
    with pytest.raises(VsentError, match="unknown Preprocess keys: scale"):
        Preprocess.from_dict(d)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop": 300}, r"crop \(300\) is larger than resize \(256\)"),
        ({"crop": 0}, "crop must be a positive integer"),
        ({"channel_order": "GBR"}, "channel_order must be 'RGB' or 'BGR'"),
        ({"std": (1, 0, 1)}, "std must be positive"),
        ({"mean": (1, 2)}, "mean must be 3 finite numbers"),
        ({"std": (1, 2, 3, 4)}, "std must be 3 finite numbers"),  # mut54d U23
        ({"mean": ("a", 1, 2)}, "mean must be 3 finite numbers"),  # mut54d U35: a VsentError
        ({"mean": (1, 2, float("nan"))}, "mean must be 3 finite numbers"),
    ],
)
def test_preprocess_validation(kwargs, message):
    with pytest.raises(VsentError, match=message):
        Preprocess(**kwargs)


@pytest.mark.filterwarnings("error")
def test_read_only_arrays_from_the_cache_are_accepted():
    arr = coords().numpy()
    arr.flags.writeable = False  # as the memory-mapped image cache
    assert torch.equal(center_crop(arr, 4), center_crop(coords(), 4))
    assert random_crop_flip(arr, 4, torch.Generator().manual_seed(0)).shape == (3, 4, 4, 3)
    assert normalize(arr, CAFFE_PREPROCESS).shape == (3, 3, H, W)
    # accepted, and given the values a writable copy gets (not a zeroed or stale buffer)
    assert torch.equal(random_crop_flip(arr, 4, torch.Generator().manual_seed(0)),
                       random_crop_flip(coords(), 4, torch.Generator().manual_seed(0)))
    assert torch.equal(normalize(arr, CAFFE_PREPROCESS), normalize(coords(), CAFFE_PREPROCESS))


def test_empty_batch_and_float_input_untouched():
    assert random_crop_flip(coords(b=0), 4).shape == (0, 4, 4, 3)
    x = torch.rand(2, 4, 4, 3) * 255
    before = x.clone()
    normalize(x, IMAGENET_PREPROCESS)
    assert torch.equal(x, before)


def test_trivial_augment_is_seeded_by_the_generator_and_leaves_torch_rng_alone():
    from vsent.data.transforms import augment_batch, trivial_augment

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (6, 20, 20, 3), dtype=np.uint8)
    state = torch.get_rng_state()
    a = trivial_augment(batch, 16, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    b = trivial_augment(batch, 16, torch.Generator().manual_seed(1))
    c = trivial_augment(batch, 16, torch.Generator().manual_seed(2))
    assert a.shape == (6, 16, 16, 3) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    # not a plain crop: RandomResizedCrop rescales and TrivialAugment changes the pixels
    plain = augment_batch(batch, 16, "crop-flip", torch.Generator().manual_seed(1))
    assert not torch.equal(a, plain)
    with pytest.raises(ValueError, match="uint8"):
        trivial_augment(batch.astype(np.float32), 16)


def _torchvision_seed(seed: int) -> int:
    """The seed the documented draw takes from a generator seeded with ``seed``."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(seed)))


def test_trivial_augment_is_the_documented_torchvision_pipeline():
    # RandomResizedCrop(crop, scale 0.35-1) + horizontal mirror + TrivialAugmentWide, run by
    # torchvision from the seed drawn off the generator: another scale or a dropped mirror
    # gives other images
    from vsent.data.transforms import augment_batch, trivial_augment

    batch = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (5, 24, 20, 3),
                                                               dtype=np.uint8))
    out = trivial_augment(batch, 12, torch.Generator().manual_seed(4))
    # mut54d U29: --augment trivial is this function (its generator, not a seed, passed on)
    assert torch.equal(augment_batch(batch, 12, "trivial", torch.Generator().manual_seed(4)), out)
    pipeline = T.Compose([T.RandomResizedCrop(12, scale=(0.35, 1.0), antialias=True),
                          T.RandomHorizontalFlip(), T.TrivialAugmentWide()])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_torchvision_seed(4))
        expected = torch.stack([pipeline(img.permute(2, 0, 1)) for img in batch])
    assert torch.equal(out, expected.permute(0, 2, 3, 1))


@pytest.mark.parametrize(("kind", "mixer"), [
    ("mixup", T.MixUp(alpha=0.2, num_classes=2)),
    ("cutmix", T.CutMix(alpha=1.0, num_classes=2)),
    ("mixup|cutmix", T.RandomChoice([T.MixUp(alpha=0.2, num_classes=2),  # mut54d U21
                                     T.CutMix(alpha=1.0, num_classes=2)])),
])
def test_mix_batch_uses_the_documented_alphas(kind, mixer):
    # MixUp alpha 0.2 (lambda near 0 or 1), CutMix alpha 1.0 (uniform box area)
    from vsent.data.transforms import mix_batch

    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    got_x, got_y = mix_batch(x, y, kind, 2, torch.Generator().manual_seed(9))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_torchvision_seed(9))
        want_x, want_y = mixer(x, y)
    assert torch.equal(got_x, want_x) and torch.equal(got_y, want_y)
    assert not torch.equal(got_x, x)  # something was mixed


def test_the_augment_pool_gives_the_images_of_the_training_loop(monkeypatch):
    """vsent.data.augment_pool: worker processes augment each batch from the seed that the
    loop draws for it, so a run with them trains on the same images, bit for bit (at 224 px,
    where torch's reductions could split over threads)."""
    from vsent.data import augment_pool
    from vsent.data.augment_pool import AugmentPool
    from vsent.data.transforms import draw_seed, trivial_augment, trivial_augment_seeded

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8) for n in (8, 8, 3)]
    gen = torch.Generator().manual_seed(5)
    in_loop = [trivial_augment(b, 224, gen) for b in batches]
    gen = torch.Generator().manual_seed(5)
    seeds = [draw_seed(gen) for _ in batches]
    assert all(torch.equal(trivial_augment_seeded(b, 224, s), x)
               for b, s, x in zip(batches, seeds, in_loop, strict=True))
    # what the augmentation prints (a library's warning, say) goes to standard error, not
    # into the replies (mut59d D55): these workers print a line a batch
    noisy = ("import vsent.data.transforms as t; f = t.trivial_augment_seeded; "
             "t.trivial_augment_seeded = lambda *a: (print('noise', flush=True), f(*a))[1]; ")
    worker = augment_pool._WORKER.replace("from vsent", noisy + "from vsent", 1)
    assert worker != augment_pool._WORKER
    monkeypatch.setattr(augment_pool, "_WORKER", worker)
    with AugmentPool(2) as pool:
        pooled = list(pool.augment(zip(batches, seeds, strict=True), 224))
        # a worker ignores Ctrl-C (the training process says what stopped: no traceback each)
        import signal

        pool._procs[0].send_signal(signal.SIGINT)
        again = list(pool.augment(zip(batches, seeds, strict=True), 224))
        assert pool.failed is None and all(p.poll() is None for p in pool._procs)
    assert [x.shape for x in pooled] == [(8, 224, 224, 3), (8, 224, 224, 3), (3, 224, 224, 3)]
    assert all(torch.equal(a, b) for a, b in zip(pooled, in_loop, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(again, in_loop, strict=True))
    assert all(p.poll() == 0 for p in pool._procs)  # closed: each ended at the end of its input
    with pytest.raises(ValueError, match="workers must be >= 1"):
        AugmentPool(0)


def test_a_dead_augment_worker_leaves_its_batches_to_the_loop(caplog):
    """A worker killed (out of memory, say): a warning, and the same images from the loop."""
    from vsent.data.augment_pool import AugmentPool
    from vsent.data.transforms import trivial_augment_seeded

    rng = np.random.default_rng(1)
    batches = [(rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8), s) for s in (3, 4, 5)]
    with AugmentPool(1) as pool:
        pool._procs[0].kill()
        pool._procs[0].wait()
        with caplog.at_level("WARNING", logger="vsent"):
            out = list(pool.augment(batches, 32))
            again = list(pool.augment(batches, 32))  # the next epoch: no second warning
    assert all(torch.equal(x, trivial_augment_seeded(b, 32, s))
               for x, (b, s) in zip(out, batches, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(out, again, strict=True))
    assert caplog.text.count("an augmentation worker (pid") == 1
    assert "exited with status -9" in caplog.text and "augments the rest itself" in caplog.text


def test_augment_workers_end_with_the_training_process_even_a_killed_one(tmp_path):
    """Their input ends when the training process dies (even by kill -9): no orphans."""
    import signal
    import subprocess
    import sys
    import time

    script = ("import sys; from vsent.data.augment_pool import AugmentPool; "
              "p = AugmentPool(2); print(*[q.pid for q in p._procs], flush=True); "
              "sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in parent.stdout.readline().split()]
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdin.close()
    parent.stdout.close()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # a zombie (ended, not yet reaped by init) has ended too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)


def test_augment_workers_by_default_only_on_a_gpu_for_trivial_without_mix_in_one_process(
        monkeypatch):
    import vsent.data.augment_pool as ap

    monkeypatch.setattr(ap, "usable_cpus", lambda: 16)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert ap.default_augment_workers(cuda, "trivial", "none", 1) == 4
    assert ap.default_augment_workers(cpu, "trivial", "none", 1) == 0
    assert ap.default_augment_workers(cuda, "crop-flip", "none", 1) == 0
    assert ap.default_augment_workers(cuda, "trivial", "mixup", 1) == 0
    assert ap.default_augment_workers(cuda, "trivial", "none", 2) == 0
    monkeypatch.setattr(ap, "usable_cpus", lambda: 2)
    assert ap.default_augment_workers(cuda, "trivial", "none", 1) == 1
    monkeypatch.setattr(ap, "usable_cpus", lambda: 1)  # the training process's own CPU only
    assert ap.default_augment_workers(cuda, "trivial", "none", 1) == 0
    # $VSENT_AUGMENT_WORKERS: how many where a pool can serve, on any device (0: none)
    monkeypatch.setenv(ap.AUGMENT_WORKERS_ENV, "0")
    assert ap.default_augment_workers(cuda, "trivial", "none", 1) == 0
    monkeypatch.setenv(ap.AUGMENT_WORKERS_ENV, "3")
    assert ap.default_augment_workers(cpu, "trivial", "none", 1) == 3
    assert ap.default_augment_workers(cuda, "trivial", "mixup", 1) == 0
    monkeypatch.setenv(ap.AUGMENT_WORKERS_ENV, "two")
    with pytest.raises(VsentError, match=r"\$VSENT_AUGMENT_WORKERS='two': not a whole number"):
        ap.default_augment_workers(cuda, "trivial", "none", 1)


# mutation round 43 (mut43): tests that kill mutants the suite missed


@pytest.mark.parametrize("fn", [center_crop, ten_crop, random_crop_flip])
def test_a_crop_wider_than_a_tall_image_is_refused(fn):
    """mut43 TR18: every refused crop was taller than the 9 x 12 test images, so a check of the
    height alone passed; an image 12 high and 9 wide must refuse a 10-pixel crop too (not
    return windows 9 pixels wide)."""
    tall = coords(h=12, w=9)
    with pytest.raises(ValueError, match=r"crop 10 is larger than the images \(12x9\)"):
        fn(tall, 10)


# mutation round 44 (mut44b): vsent.data.augment_pool mutants the suite missed


@pytest.fixture(scope="module")
def one_worker_pool():
    """A pool of one worker, shared by the tests that leave it working (starting one costs
    seconds: the worker imports torch)."""
    from vsent.data.augment_pool import AugmentPool

    with AugmentPool(1) as pool:
        yield pool


def test_the_augment_pool_keeps_the_height_and_width_of_tall_images(one_worker_pool):
    """mut44b AP10/AP23: every pooled batch was square, so a worker told (or reading) the
    images' width for their height still gave the loop's images; 40 x 56 ones must not."""
    from vsent.data.transforms import trivial_augment_seeded

    rng = np.random.default_rng(2)
    batches = [(rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8), 7),
               (rng.integers(0, 256, (2, 56, 40, 3), dtype=np.uint8), 8)]
    out = list(one_worker_pool.augment(batches, 32))
    assert one_worker_pool.failed is None
    assert all(torch.equal(x, trivial_augment_seeded(b, 32, s))
               for x, (b, s) in zip(out, batches, strict=True))


def test_the_augment_pool_reads_a_bounded_number_of_batches_ahead(one_worker_pool, monkeypatch):
    """mut44b AP07/AP08: at most AHEAD_PER_WORKER x workers batches are read ahead of the one
    yielded (not one batch at a time, with no overlap, nor one more than that)."""
    import vsent.data.augment_pool as ap

    pool = one_worker_pool
    rng = np.random.default_rng(3)
    drawn = []

    def batches():
        for seed in range(6):
            drawn.append(seed)
            yield rng.integers(0, 256, (2, 12, 12, 3), dtype=np.uint8), seed

    it = pool.augment(batches(), 8)
    next(it)
    assert len(drawn) == ap.AHEAD_PER_WORKER == 2
    next(it)
    assert len(drawn) == 3
    assert len(list(it)) == 4 and len(drawn) == 6
    # AHEAD_PER_WORKER per worker: a pool of two reads four ahead (its count alone
    # decides; no second process started for it) (mut51b)
    drawn.clear()
    monkeypatch.setattr(pool, "workers", 2)
    it = pool.augment(batches(), 8)
    next(it)
    assert len(drawn) == 2 * ap.AHEAD_PER_WORKER == 4
    assert len(list(it)) == 5 and len(drawn) == 6
    assert pool.failed is None


def test_reading_a_worker_stream_that_ends_early_gives_none():
    """mut44b AP14: a reply cut short (a worker that died mid-batch) is None, not a part-filled
    array taken for the batch's images."""
    import io

    from vsent.data.augment_pool import _read_array, _read_exactly

    assert _read_array(io.BytesIO(bytes(range(5))), (2, 3)) is None
    assert _read_exactly(io.BytesIO(b"abc"), 4) is None
    got = _read_array(io.BytesIO(bytes(range(6))), (2, 3))
    assert got.flags.writeable and got.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_augment_workers_are_off_for_cutmix_and_the_env_override_may_have_spaces(monkeypatch):
    """mut44b AP02/AP20: any --mix (cutmix too, not only mixup) keeps the pool off, and
    $VSENT_AUGMENT_WORKERS=" 2 " (a shell's stray spaces) is 2, not an error."""
    import vsent.data.augment_pool as ap

    monkeypatch.setattr(ap, "usable_cpus", lambda: 16)
    cuda = torch.device("cuda")
    for mix in ("cutmix", "mixup|cutmix"):
        assert not ap.pool_serves("trivial", mix, 1)
        assert ap.default_augment_workers(cuda, "trivial", mix, 1) == 0
    monkeypatch.setenv(ap.AUGMENT_WORKERS_ENV, " 2 ")
    assert ap.default_augment_workers(cuda, "trivial", "none", 1) == 2


# --------------------------------------------------------------------------------------------
# mutation round 47 (mut47d): vsent.data.augment_pool mutants the suite missed


def test_a_pool_takes_strided_batches_and_once_given_up_sends_no_more_to_workers(monkeypatch):
    """A batch that is a strided view (every other row of a larger array) reaches a worker
    whole, the same images as in the loop. Once a worker has failed the pool is given up:
    the warning says the training process augments the rest itself, and it does, every
    batch (none sent to a worker again). (One pool for both: starting one costs seconds.)"""
    import vsent.data.transforms as tr
    from vsent.data.augment_pool import AugmentPool

    in_loop = []
    real = tr.trivial_augment_seeded
    monkeypatch.setattr(tr, "trivial_augment_seeded",
                        lambda b, crop, seed: in_loop.append(seed) or real(b, crop, seed))
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (4, 12, 24, 3), dtype=np.uint8)
    view = big[:, :, ::2]  # (4, 12, 12, 3), not contiguous
    batches = [(rng.integers(0, 256, (2, 12, 12, 3), dtype=np.uint8), s) for s in (7, 8, 9)]
    with AugmentPool(1) as pool:
        (strided,) = pool.augment([(view, 6)], 8)
        assert pool.failed is None and in_loop == []
        pool.failed = "an augmentation worker (pid 1) exited with status -9"
        out = list(pool.augment(batches, 8))
    assert torch.equal(strided, real(np.ascontiguousarray(view), 8, 6))
    assert in_loop == [7, 8, 9]
    assert all(torch.equal(x, real(b, 8, s)) for x, (b, s) in zip(out, batches, strict=True))


# mutation round 48 (mut48a): tests that kill mutants the suite missed


def test_numpy_integer_sizes_become_python_ints():
    """mut48a T05: sizes read from numpy (a config array) are stored as ints, so the
    preprocessing still goes to JSON (a checkpoint) and compares equal to the int one."""
    pre = Preprocess(resize=np.int64(64), crop=np.int64(56))
    assert type(pre.resize) is int and type(pre.crop) is int
    assert json.loads(json.dumps(pre.to_dict()))["resize"] == 64
    assert pre == Preprocess(resize=64, crop=56)


def test_with_crop_keeps_the_warp_to_crop_ratio_rounded():
    """mut48a T06, T07: 64:56 with crop 96 warps to round(96 * 64 / 56) = round(109.7) = 110
    (truncation gives 109), and the crop is the one asked for; the rest is kept."""
    pre = Preprocess(resize=64, crop=56, mean=(1, 2, 3), std=(4, 5, 6), channel_order="BGR")
    assert pre.with_crop(96) == Preprocess(resize=110, crop=96, mean=(1, 2, 3), std=(4, 5, 6),
                                           channel_order="BGR")
    assert CAFFE_PREPROCESS.with_crop(227) == CAFFE_PREPROCESS


def test_trivial_augment_of_no_images_gives_no_crops():
    """mut48a T23: an empty batch (the last of an exactly divided epoch, a filtered one) gives
    an empty (0, crop, crop, 3) batch, not torch.stack's error on an empty list."""
    from vsent.data.transforms import trivial_augment

    out = trivial_augment(torch.zeros(0, 20, 20, 3, dtype=torch.uint8), 16,
                          torch.Generator().manual_seed(0))
    assert out.shape == (0, 16, 16, 3) and out.dtype == torch.uint8


def test_a_refused_batch_draws_nothing_from_the_generator():
    """mut48a T24: trivial_augment refuses a non-uint8 batch before its seed is drawn, so a
    caught refusal leaves the seeded generator (and the run's later batches) as they were."""
    from vsent.data.transforms import trivial_augment, trivial_augment_seeded

    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    with pytest.raises(ValueError, match="trivial_augment expects uint8 images, got "
                                         "torch.float32"):
        trivial_augment(torch.zeros(2, 20, 20, 3), 16, g)
    assert torch.equal(g.get_state(), state)
    # the augment pool's workers call the seeded half directly: it refuses floats too
    # (mut59f F18: torchvision augmented them into float crops)
    with pytest.raises(ValueError, match="trivial_augment expects uint8 images"):
        trivial_augment_seeded(torch.zeros(2, 20, 20, 3), 16, 0)


def test_normalize_takes_a_single_image():
    """mut48a T32: one (H, W, 3) image is a batch of shape (..., H, W, 3) with no leading
    dimension: (3, H, W) out, as torchvision's Normalize of one CHW image."""
    img = coords(b=1)[0]
    out = normalize(img, IMAGENET_PREPROCESS)
    assert out.shape == (3, H, W)
    assert torch.equal(out, normalize(img[None], IMAGENET_PREPROCESS)[0])
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\), got \(4, 3\)"):
        normalize(torch.zeros(4, 3), IMAGENET_PREPROCESS)


def test_normalize_leaves_a_float_batch_of_one_pixel_images_untouched():
    """mut48a T35: normalising works on a copy even where moving the channels needs none (1 x 1
    images: (B, 1, 1, 3) and (B, 3, 1, 1) share their memory layout)."""
    x = torch.rand(2, 1, 1, 3) * 255
    before = x.clone()
    out = normalize(x, IMAGENET_PREPROCESS)
    assert torch.equal(x, before)
    want = (before[:, 0, 0] - torch.tensor(IMAGENET_PREPROCESS.mean)) / torch.tensor(
        IMAGENET_PREPROCESS.std)
    torch.testing.assert_close(out[:, :, 0, 0], want)


def test_an_unknown_mix_is_refused_by_name():
    """mut48a T39: a mix name that is none of mixup, cutmix, mixup|cutmix is an error, not a
    silent fallback to one of them."""
    from vsent.data.transforms import mix_batch

    x, y = torch.zeros(2, 3, 4, 4), torch.tensor([0, 1])
    for kind in ("mixpu", "cutmix|mixup", ""):
        with pytest.raises(ValueError, match=rf"^unknown mix {kind!r}$"):
            mix_batch(x, y, kind, 2)


@pytest.mark.parametrize("resize", [0, 2.5, "256"])
def test_preprocess_resize_must_be_a_positive_integer(resize):
    """mut48a T40: the warp size is checked as the crop is (0 was reported as a crop larger
    than it, 2.5 silently became 2)."""
    with pytest.raises(VsentError, match=rf"^Preprocess\.resize must be a positive integer, "
                                         rf"got {resize!r}$"):
        Preprocess(resize=resize, crop=1)


# --------------------------------------------------------------------------------------------
# mutation round 57 (mut57d): vsent.data.augment_pool mutants the suite missed


def test_batches_read_ahead_are_dropped_when_the_epoch_or_the_pool_stops_early(monkeypatch):
    """mut57d F110/F117: an epoch stopped early (an error in the training loop, Ctrl-C) and a
    pool closed under an epoch still suspended both drop the batches read ahead and not yet
    started: no worker time on batches nobody trains on, and no wait for them at the exit."""
    import threading
    from collections.abc import Iterator

    import vsent.data.augment_pool as ap

    # the batches never reach a worker here: a cheap process stands in (no torch to import)
    monkeypatch.setattr(ap, "_WORKER", "import sys; sys.stdin.buffer.read()")
    started: list[int] = []
    gate = threading.Event()

    def run(images: np.ndarray, crop: int, seed: int) -> np.ndarray:
        started.append(seed)
        if seed:  # the first batch is given; the next holds the one thread, the rest queue
            gate.wait(10)
        return np.zeros((len(images), crop, crop, 3), np.uint8)

    def batches() -> Iterator[tuple[np.ndarray, int]]:
        for seed in range(8):
            yield np.zeros((1, 8, 8, 3), np.uint8), seed

    with ap.AugmentPool(1) as pool:
        monkeypatch.setattr(pool, "_run", run)
        monkeypatch.setattr(pool, "workers", 3)  # six read ahead, on its one thread
        it = pool.augment(batches(), 8)
        next(it)
        it.close()  # the epoch stops early
        gate.set()
        pool._threads.submit(int).result()  # all queued before it has run or was dropped
        assert started in ([0], [0, 1])
        started.clear()
        gate.clear()
        real = pool._threads.shutdown

        def shutdown(wait: bool = True, cancel_futures: bool = False) -> None:
            real(wait=False, cancel_futures=cancel_futures)
            gate.set()  # the batch running ends once the queued ones are dropped (or not)
            real(wait=wait)

        monkeypatch.setattr(pool._threads, "shutdown", shutdown)
        suspended = pool.augment(batches(), 8)
        next(suspended)
    assert started in ([0], [0, 1])
    assert all(p.poll() == 0 for p in pool._procs)
