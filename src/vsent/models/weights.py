"""Weights apart from architectures: ``--init random | imagenet | PATH``.

* ``"random"`` keeps the architecture's own initialisation.
* ``"imagenet"`` loads the family's pretrained weights through the :class:`PretrainedWeights`
  record that the registry entry carries (``create_model`` passes it to :func:`apply_init`; this
  module imports nothing from the registry). The layers in ``info.new_layers`` (the replaced
  head) are always left fresh.
* A path loads a ``.pt``/``.pth`` state dict, a vsent checkpoint (its ``"state_dict"``) or a Caffe
  ``.caffemodel``. Keys of the file that match the model with the same shape are loaded; keys of
  ``new_layers`` may be missing or of another shape (they stay fresh); any other missing or
  mismatched key is a :class:`WeightsError`. Dropped keys are logged, nothing falls back to
  random weights silently.

The weights record of a family (one per registered name or per resolved family name)::

    PretrainedWeights(
        loader: Callable[[nn.Module], Mapping[str, Tensor]],  # model -> state dict keyed like
                                                              # model.state_dict() (remapped)
        preprocess: Preprocess,   # input the weights were trained with: resize/crop, mean/std
                                  # in 0..255 pixel units (this is the input scale: std 1 =
                                  # raw 0..255 as Caffe, std ~58 = torchvision 0..1 then /0.229),
                                  # channel order "RGB"/"BGR"
        source: str,              # where they come from: URL, "torchvision ResNet50_Weights.
                                  # IMAGENET1K_V2", "timm resnet18.a1_in1k", ...
        licence: str = "unknown", # licence of the weights as published
        description: str = "",    # one line (data set, accuracy)
        file: WeightsFile | None = None,  # a single download-once file (url, file_name, sha1)
        tag: str | None = None,   # named weights of a family (CLIP "openai"): --init TAG; the
                                  # registry entry's ``tagged(tag)`` returns the record
    )

``loader(model)`` may download (into :func:`hub_checkpoint_dir`) and must raise
:class:`WeightsError` with :func:`download_failed_message` when offline: one line, no traceback.
A family whose checkpoint keys differ from its module names remaps them inside ``loader``.
With ``init="imagenet"`` ``create_model`` sets ``model.info.preprocess`` to ``preprocess``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from os import PathLike, fspath
from pathlib import Path

import torch
from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.errors import WeightsError, one_line

logger = logging.getLogger(__name__)

#: Standard deviation of the Gaussian that initialises new fully connected layers
#: (``weight_filler { type: "gaussian" std: 0.01 }`` in the Campos et al. prototxt).
NEW_LAYER_STD = 0.01


def init_new_linear(layer: nn.Linear, std: float = NEW_LAYER_STD) -> nn.Linear:
    """Gaussian weights (``std``) and zero bias, in place, as Caffe's fillers for a new layer."""
    nn.init.normal_(layer.weight, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


#: Returns a family's pretrained state dict for the given model, keyed like its state_dict().
PretrainedLoader = Callable[[nn.Module], Mapping[str, Tensor]]


@dataclass(frozen=True)
class PretrainedWeights:
    """Pretrained weights of an architecture and the input they expect (module docstring)."""

    loader: PretrainedLoader
    preprocess: Preprocess
    source: str
    licence: str = "unknown"
    description: str = ""
    file: WeightsFile | None = None
    tag: str | None = None  # a named pretrained set (CLIP "openai"): ``--init TAG`` selects it


def apply_init(
    model: nn.Module,
    name: str,
    init: str | PathLike[str],
    *,
    weights: PretrainedWeights | None,
    new_layers: Iterable[str],
) -> nn.Module:
    """Initialise ``model`` (built by the registered builder ``name``) from ``init``, in place.

    Parameters
    ----------
    model : nn.Module
        Freshly built architecture (its own random initialisation).
    name : str
        Registered model name, used in messages.
    init : {"random", "imagenet"} or path
        See the module docstring.
    weights : PretrainedWeights or None
        The architecture's pretrained weights (``init="imagenet"``); None if it has none.
    new_layers : iterable of str
        Module names that replace the pretrained head: left fresh by ``"imagenet"``, allowed to be
        missing or mismatched in a file.

    Returns
    -------
    nn.Module
        ``model`` itself.
    """
    new_layers = list(new_layers)
    if isinstance(init, str) and init == "random":
        return model
    if isinstance(init, str) and weights is not None and weights.tag is not None \
            and init == weights.tag:  # a family's named weights (ModelEntry.tagged)
        load_matching(model, weights.loader(model), source=weights.source,
                      new_layers=new_layers, skip_new=True)
        return model
    if isinstance(init, str) and init == "imagenet":
        if weights is None:
            raise WeightsError(
                f"{name} has no ImageNet weights: use --init random or --init PATH"
            )
        state = weights.loader(model)
        # The replaced head is fresh by definition, even where its shape happens to match
        # (e.g. num_classes=1000).
        load_matching(model, state, source=f"ImageNet weights of {name}",
                      new_layers=new_layers, skip_new=True)
        return model
    if not Path(init).is_file() and isinstance(init, str) and "/" not in init \
            and not Path(init).suffix:  # a misspelt keyword, not a missing file
        raise WeightsError(f"--init {init!r}: use random, imagenet (a CLIP tag for clip/ "
                           "models) or the path of a weights file")
    state = read_state_dict(init)
    load_matching(model, state, source=fspath(init), new_layers=new_layers)
    return model


def read_state_dict(path: str | PathLike[str]) -> dict[str, Tensor]:
    """Tensors of a ``.pt``/``.pth`` state dict, a vsent checkpoint or a ``.caffemodel`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix.lower() == ".caffemodel":
        from vsent.models.caffe import load_caffemodel  # protobuf reader, only needed here

        return dict(load_caffemodel(path))
    try:
        # weights_only: a weights file must not be able to run code when loaded.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        raise WeightsError(f"{path}: not a PyTorch state dict ({one_line(exc)})") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # vsent checkpoint (or Lightning-style {"state_dict": ...})
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{path}: not a PyTorch state dict (expected a dict of tensors, "
            f"got {type(obj).__name__})"
        )
    return dict(obj)


def load_matching(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    source: str,
    new_layers: Iterable[str] = (),
    skip_new: bool = False,
) -> list[str]:
    """Load the entries of ``state`` that match ``model`` by name and shape.

    Keys of ``new_layers`` may be missing or mismatched (and are never loaded when
    ``skip_new``); keys of the file the model lacks are dropped. Both are logged.

    Returns
    -------
    list of str
        The model keys that were loaded.

    Raises
    ------
    WeightsError
        If a key outside ``new_layers`` is missing from ``state`` or has another shape.
    """
    new_layers = tuple(new_layers)

    def is_new(key: str) -> bool:
        return any(key == n or key.startswith(n + ".") for n in new_layers)

    own = model.state_dict()
    loaded: dict[str, Tensor] = {}
    bad: list[str] = []
    kept_fresh: list[str] = []
    for key, target in own.items():
        value = state.get(key)
        ok = value is not None and tuple(value.shape) == tuple(target.shape)
        if is_new(key) and (skip_new or not ok):
            kept_fresh.append(key)
        elif ok:
            loaded[key] = value
        elif value is None and key.endswith("num_batches_tracked"):
            continue  # BatchNorm counter absent from older files; it does not affect outputs
        else:
            got = "missing" if value is None else f"{tuple(value.shape)}"
            bad.append(f"{key} (model {tuple(target.shape)}, file {got})")
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise WeightsError(
            f"{source}: {len(bad)} weights missing or of the wrong shape: "
            f"{', '.join(bad[:3])}{more}"
        )
    model.load_state_dict(loaded, strict=False)
    unused = sorted(k for k in state if k not in own)
    if kept_fresh:
        logger.info("%s: new layers kept freshly initialised: %s", source, ", ".join(kept_fresh))
    if unused:
        logger.info("%s: dropped keys the model does not have: %s", source, ", ".join(unused))
    logger.info("%s: loaded %d of %d model tensors", source, len(loaded), len(own))
    return list(loaded)


def hub_checkpoint_dir() -> Path:
    """Directory where torch.hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


@contextmanager
def hub_download(host: str = "huggingface.co") -> Iterator[None]:
    """Around a timm / open_clip download from the Hugging Face hub. When ``host`` cannot be
    resolved (no network), huggingface_hub runs in its offline mode for the call: weights
    already in its cache still load, missing ones fail at once instead of after a minute of
    retries; the hub's retry warnings and open_clip's messages (it logs on the root logger)
    are kept out of the log: a failure is the caller's one-line WeightsError."""
    import socket

    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm and open_clip depend on huggingface_hub
        yield
        return
    offline = constants.HF_HUB_OFFLINE
    if not offline:
        try:
            socket.getaddrinfo(host, 443)
        except OSError:
            constants.HF_HUB_OFFLINE = True
    quiet = [logging.getLogger("huggingface_hub"), logging.getLogger()]  # vsent's: its own
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = offline
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def hf_cache_dir() -> str:
    """Where huggingface_hub keeps downloads (the timm and open_clip weights), for messages."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - timm and open_clip depend on huggingface_hub
        return "the Hugging Face cache"
    return str(HF_HUB_CACHE)


@dataclass(frozen=True)
class WeightsFile:
    """A pretrained weights file outside torchvision's catalogue (e.g. a Caffe model zoo file).

    ``fetch()`` downloads it once into the torch hub cache and checks its SHA-1.
    """

    url: str
    file_name: str
    sha1: str | None = None
    description: str = ""

    def fetch(self, model_name: str) -> Path:
        """Path of the cached file, downloaded first if needed; :class:`WeightsError` offline."""
        folder = hub_checkpoint_dir()
        path = folder / self.file_name
        if path.is_file():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        try:
            # Writes to a temporary file and renames it, so an interrupted download leaves nothing.
            torch.hub.download_url_to_file(self.url, fspath(path), progress=True)
        except (OSError, HTTPException) as exc:
            raise WeightsError(download_failed_message(model_name, self.url, folder)) from exc
        if self.sha1 is not None:
            digest = _sha1(path)
            if digest != self.sha1:
                path.unlink()
                raise WeightsError(
                    f"{self.url}: downloaded file has SHA-1 {digest}, expected {self.sha1}"
                )
        return path


def download_failed_message(model_name: str, url: str, folder: Path) -> str:
    """The one-line message for ImageNet weights that cannot be downloaded."""
    return (
        f"cannot download ImageNet weights for {model_name} (no network?): download {url} "
        f"into {folder} or pass --init PATH to a weights file"
    )


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
