"""Batched crops and normalisation on uint8 (B, H, W, 3) tensors, straight from the image cache.

Everything here works on whole batches with tensor indexing (no per-image PIL in the training
loop). :class:`Preprocess` records what a model expects (input size, mean, std, channel order)
and travels with the model into checkpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from vsent.data._common import positive_int
from vsent.errors import VsentError

__all__ = [
    "CAFFE_PREPROCESS", "IMAGENET_PREPROCESS", "Preprocess", "center_crop", "normalize",
    "augment_batch", "crop_windows", "draw_crops", "draw_seed", "mix_batch", "random_crop_flip",
    "ten_crop", "trivial_augment", "trivial_augment_seeded",
]

_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class Preprocess:
    """What a network expects as input.

    Attributes
    ----------
    resize : int
        Side images are warped to before cropping (the image cache size).
    crop : int
        Side of the square crop fed to the network.
    mean, std : tuple of 3 floats
        Per-channel mean and standard deviation in 0..255 pixel units, listed in **RGB** order
        whatever ``channel_order`` is. Input = (pixel - mean) / std.
    channel_order : {"RGB", "BGR"}
        Channel order the network was trained with (Caffe models use BGR).
    """

    resize: int = 256
    crop: int = 227
    mean: tuple[float, float, float] = _IMAGENET_MEAN
    std: tuple[float, float, float] = _IMAGENET_STD
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            positive_int(getattr(self, name), f"Preprocess.{name}", VsentError)
        if self.crop > self.resize:
            raise VsentError(f"Preprocess.crop ({self.crop}) is larger than resize "
                             f"({self.resize})")
        for name in ("mean", "std"):
            v = getattr(self, name)
            try:
                t = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                t = ()
            if len(t) != 3 or not all(np.isfinite(t)):
                raise VsentError(f"Preprocess.{name} must be 3 finite numbers, got {v!r}")
            object.__setattr__(self, name, t)  # lists from JSON become tuples: hashable, frozen
        if min(self.std) <= 0:
            raise VsentError(f"Preprocess.std must be positive, got {self.std}")
        if self.channel_order not in ("RGB", "BGR"):
            raise VsentError(f"Preprocess.channel_order must be 'RGB' or 'BGR', got "
                             f"{self.channel_order!r}")
        object.__setattr__(self, "resize", int(self.resize))
        object.__setattr__(self, "crop", int(self.crop))

    def with_crop(self, crop: int) -> Preprocess:
        """This preprocessing for ``crop`` x ``crop`` crops, the warp keeping the resize:crop
        ratio (64:56 with ``crop`` 96 -> images warped to 110 x 110)."""
        return replace(self, resize=round(crop * self.resize / self.crop), crop=crop)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for checkpoints and run configs)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VsentError(f"unknown Preprocess keys: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**dict(d))


#: Caffe reference models (CaffeNet as fine-tuned by Campos et al.): BGR, 0..255 minus the
#: ImageNet mean pixel (B, G, R) = (104, 117, 123), no scaling; 256x256 warp, 227 crops. (The
#: reference prototxt subtracts the ImageNet mean image and gives this pixel as its alternative;
#: Campos et al. do not say which they used.)
CAFFE_PREPROCESS = Preprocess(resize=256, crop=227, mean=(123.0, 117.0, 104.0),
                              std=(1.0, 1.0, 1.0), channel_order="BGR")
#: torchvision ImageNet weights: RGB, mean/std of torchvision (x 255 for 0..255 input), 224 crops.
IMAGENET_PREPROCESS = Preprocess(resize=256, crop=224, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
                                 channel_order="RGB")


# --------------------------------------------------------------------------------------------
# crops: (B, H, W, 3) uint8 in, uint8 out


def _to_tensor(batch: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(batch, np.ndarray):
        # A read-only memmap (the image cache) is copied: torch tensors assume writable memory.
        arr = np.ascontiguousarray(batch) if batch.flags.writeable else np.array(batch)
        return torch.from_numpy(arr)
    return batch


def _as_bhwc(batch: torch.Tensor | np.ndarray, crop: int) -> torch.Tensor:
    batch = _to_tensor(batch)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected a batch of shape (B, H, W, 3), got {tuple(batch.shape)}")
    h, w = batch.shape[-3], batch.shape[-2]
    positive_int(crop, "crop")
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} is larger than the images ({h}x{w})")
    return batch


def random_crop_flip(
    batch: torch.Tensor | np.ndarray, crop: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random ``crop`` x ``crop`` window per image, mirrored horizontally with probability 0.5.

    Caffe's training-time augmentation. Offsets and mirrors are drawn independently for each
    image from ``generator`` (in this order: row offsets, column offsets, mirror coins), so a
    seeded generator gives the same crops on every run and device.

    Parameters
    ----------
    batch : (B, H, W, 3) tensor or array, any dtype (uint8 from the cache)
    crop : int
    generator : torch.Generator, optional
        A CPU generator; None uses torch's global one.

    Returns
    -------
    torch.Tensor
        (B, crop, crop, 3), same dtype and device as ``batch``.
    """
    batch = _as_bhwc(batch, crop)
    b, h, w, _ = batch.shape
    return crop_windows(batch, *draw_crops(b, h, w, crop, generator), crop)


def draw_crops(b: int, h: int, w: int, crop: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random windows of :func:`random_crop_flip` for ``b`` images of ``h`` x ``w``:
    row offsets (b,), column offsets (b,) and mirror coins (b,) bool, drawn from
    ``generator`` in this order (data-parallel training draws a whole global batch's, then
    crops its own rows: every process's generator then ends as one process's would)."""
    rows0 = torch.randint(0, h - crop + 1, (b,), generator=generator)
    cols0 = torch.randint(0, w - crop + 1, (b,), generator=generator)
    mirror = torch.rand(b, generator=generator) < 0.5
    return rows0, cols0, mirror


def crop_windows(batch: torch.Tensor, rows0: torch.Tensor, cols0: torch.Tensor,
                 mirror: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, crop, crop, 3): image i's window at (rows0[i], cols0[i]), mirrored where mirror[i]
    (:func:`draw_crops`); ``batch`` (B, H, W, 3)."""
    if len(batch) == 0:
        return batch[:, :crop, :crop]
    crops = []
    for i, (r, c, m) in enumerate(zip(rows0.tolist(), cols0.tolist(), mirror.tolist(),
                                      strict=True)):
        window = batch[i, r:r + crop, c:c + crop]  # a view: slicing beats a gather here
        crops.append(window.flip(1) if m else window)
    return torch.stack(crops)


def draw_seed(generator: torch.Generator | None) -> int:
    """The seed of torch's global generator for one batch, drawn from ``generator``."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


@contextlib.contextmanager
def _global_rng_from(generator: torch.Generator | None) -> Iterator[None]:
    """Torch's global CPU generator seeded from ``generator`` for the block, restored after:
    torchvision's random transforms draw from it. Only the CPU generator is forked, so only
    it is seeded (``torch.manual_seed`` would also reset the GPU's, e.g. its dropout draws)."""
    with _global_rng_seeded(draw_seed(generator)):
        yield


@contextlib.contextmanager
def _global_rng_seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def trivial_augment(
    batch: torch.Tensor | np.ndarray, crop: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """torchvision's RandomResizedCrop(``crop``, scale 0.35-1) + horizontal mirror +
    TrivialAugmentWide, image by image (``--augment trivial``).

    torchvision draws from torch's global generator: it is seeded here from ``generator``
    inside :func:`torch.random.fork_rng`, so a seeded generator gives the same images on every
    run and the global generator is left as it was.

    (B, H, W, 3) uint8 -> (B, crop, crop, 3) uint8.
    """
    batch = _check_uint8(_as_bhwc(batch, crop))  # (before the draw: a refused batch draws none)
    return trivial_augment_seeded(batch, crop, draw_seed(generator))


def trivial_augment_seeded(batch: torch.Tensor | np.ndarray, crop: int,
                           seed: int) -> torch.Tensor:
    """:func:`trivial_augment` of the batch whose draw from the generator gave ``seed``
    (:func:`draw_seed`): the same images in any process (vsent.data.augment_pool's workers)."""
    from torchvision.transforms import v2

    batch = _check_uint8(_as_bhwc(batch, crop))
    pipeline = v2.Compose([
        v2.RandomResizedCrop(crop, scale=(0.35, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.TrivialAugmentWide(),
    ])
    with _global_rng_seeded(seed):
        out = [pipeline(image.permute(2, 0, 1)) for image in batch]
    if not out:
        return batch[:, :crop, :crop]
    return torch.stack(out).permute(0, 2, 3, 1).contiguous()


def _check_uint8(batch: torch.Tensor) -> torch.Tensor:
    if batch.dtype != torch.uint8:
        raise ValueError(f"trivial_augment expects uint8 images, got {batch.dtype}")
    return batch


#: ``--augment`` name -> batch augmentation ``(batch, crop, generator) -> crops``.
AUGMENTATIONS = {"crop-flip": random_crop_flip, "trivial": trivial_augment}


def augment_batch(batch: torch.Tensor | np.ndarray, crop: int, kind: str,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The training-time augmentation ``kind`` (a key of :data:`AUGMENTATIONS`)."""
    return AUGMENTATIONS[kind](batch, crop, generator)


def mix_batch(x: torch.Tensor, y: torch.Tensor, kind: str, num_classes: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's MixUp / CutMix on a normalised batch (``--mix``).

    ``x`` float (B, 3, H, W), ``y`` int64 (B,) -> the mixed images and soft targets float
    (B, num_classes) (rows sum to 1), on ``x``'s device. ``kind`` is ``mixup`` (alpha 0.2),
    ``cutmix`` (alpha 1.0) or ``mixup|cutmix`` (one of them per batch). torchvision draws from
    torch's global generator: it is seeded here from ``generator`` inside
    :func:`torch.random.fork_rng`, as in :func:`trivial_augment`.
    """
    from torchvision.transforms import v2

    mixers = {"mixup": v2.MixUp(alpha=0.2, num_classes=num_classes),
              "cutmix": v2.CutMix(alpha=1.0, num_classes=num_classes)}
    if kind == "mixup|cutmix":
        mixer = v2.RandomChoice(list(mixers.values()))
    elif kind in mixers:
        mixer = mixers[kind]
    else:
        raise ValueError(f"unknown mix {kind!r}")
    with _global_rng_from(generator):
        return mixer(x, y)


# The test-time crops are plain indexing with torchvision's offsets (tests compare them with
# its center_crop and five_crop): importing torchvision costs a process ~2.5 s (it imports
# torch._dynamo), most of what scoring one image with `vsent predict` waits for.


def _windows(batch: torch.Tensor, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the five windows of torchvision's ``five_crop``: tl, tr, bl, br, centre
    (the centre offset rounded as its ``center_crop`` rounds it)."""
    h, w = batch.shape[-3], batch.shape[-2]
    centre = (int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0)))
    return [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), centre]


def center_crop(batch: torch.Tensor | np.ndarray, crop: int) -> torch.Tensor:
    """Central ``crop`` x ``crop`` window (torchvision's rounding of the offset).

    (B, H, W, 3) -> (B, crop, crop, 3), same dtype and device.
    """
    batch = _as_bhwc(batch, crop)
    top, left = _windows(batch, crop)[4]
    return batch[:, top : top + crop, left : left + crop].contiguous()


def ten_crop(batch: torch.Tensor | np.ndarray, crop: int) -> torch.Tensor:
    """The 10 test-time crops of Caffe's ``oversample``.

    (B, H, W, 3) -> (B, 10, crop, crop, 3): top-left, top-right, bottom-left, bottom-right,
    centre, then each of these five windows mirrored horizontally, in the same order.
    (torchvision's ``TenCrop`` yields the same ten crops but takes its last five from the
    mirrored image, so its mirrored top-left is our mirrored top-right, and so on.)
    """
    batch = _as_bhwc(batch, crop)
    five = [batch[:, t : t + crop, x : x + crop] for t, x in _windows(batch, crop)]
    crops = five + [c.flip(-2) for c in five]  # (B, crop, crop, 3): -2 is the width
    return torch.stack(crops, dim=1).contiguous()


# --------------------------------------------------------------------------------------------


def normalize(batch: torch.Tensor | np.ndarray, pre: Preprocess) -> torch.Tensor:
    """uint8 channels-last pixels -> float32 channels-first network input.

    Parameters
    ----------
    batch : (..., H, W, 3) tensor or array, RGB, 0..255 (e.g. (B, H, W, 3) or (B, 10, H, W, 3))
    pre : Preprocess

    Returns
    -------
    torch.Tensor
        (..., 3, H, W) float32 on the device of ``batch``: channels reordered to
        ``pre.channel_order``, then ``(x - mean) / std``.
    """
    batch = _to_tensor(batch)
    if batch.ndim < 3 or batch.shape[-1] != 3:
        raise ValueError(f"expected a batch of shape (..., H, W, 3), got {tuple(batch.shape)}")
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=batch.device)
    std = torch.tensor(pre.std, dtype=torch.float32, device=batch.device)
    x = batch.movedim(-1, -3)
    if pre.channel_order == "BGR":
        x, mean, std = x.flip(-3), mean.flip(0), std.flip(0)
    # Reorder while still uint8 (4x fewer bytes), then one float copy normalised in place.
    x = x.contiguous().to(torch.float32, copy=True)
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])
