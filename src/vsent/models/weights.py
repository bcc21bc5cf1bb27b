"""Weights apart from architectures: ``--init random | imagenet | PATH``.

* ``"random"`` keeps the architecture's own initialisation.
* ``"imagenet"`` loads the family's pretrained weights through the :class:`PretrainedWeights`
  record that the registry entry carries (``create_model`` passes it to :func:`apply_init`; this
  module imports nothing from the registry). The layers in ``info.new_layers`` (the replaced
  head) are always left fresh.
* A path loads a ``.pt``/``.pth`` state dict, a vsent checkpoint (its ``"state_dict"``), a
  training checkpoint (its :data:`WRAPPER_ENTRIES` entry) or a Caffe ``.caffemodel``; a prefix
  that every key has (:data:`WRAPPER_PREFIXES`) is removed when the rest fits the model. Keys
  of the file that match the model with the same shape are loaded; keys of ``new_layers`` may
  be missing or of another shape (they stay fresh); any other missing or mismatched key is a
  :class:`WeightsError`. Dropped keys are logged, nothing falls back to random weights
  silently.

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

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.client import HTTPException
from os import PathLike, fspath
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from vsent.data.transforms import Preprocess
from vsent.errors import VsentError, WeightsError, import_extra, one_line
from vsent.files import file_digest

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
    # the resampling the weights were trained with, where the tag's record says another than
    # the architecture's (MobileCLIP2: bilinear); the model's info.extra takes it
    interpolation: str | None = None


def apply_init(
    model: nn.Module,
    name: str,
    init: str | PathLike[str],
    *,
    weights: PretrainedWeights | None,
    new_layers: Iterable[str],
    tags: Sequence[str] = (),
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
    tags : sequence of str
        The family's named weights (CLIP tags), listed when ``init`` is none of them.

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
    named = f" (tags: {', '.join(tags)})" if tags else ""
    if isinstance(init, str) and init == "imagenet":
        if weights is None:
            raise WeightsError(f"{name} has no ImageNet weights: use --init random, "
                               f"{'--init TAG' + named + ', ' if tags else ''}or --init PATH")
        state = weights.loader(model)
        # The replaced head is fresh by definition, even where its shape happens to match
        # (e.g. num_classes=1000).
        load_matching(model, state, source=f"ImageNet weights of {name}",
                      new_layers=new_layers, skip_new=True)
        return model
    if isinstance(init, str) and "/" not in init and not Path(init).suffix \
            and not Path(init).exists():  # a misspelt keyword or tag, not a missing file
        if tags:
            raise WeightsError(f"--init {init!r}: not a tag of {name}{named} nor a weights file")
        raise WeightsError(f"--init {init!r}: use random, imagenet (a CLIP tag for clip/ "
                           "models) or the path of a weights file")
    state = without_wrapper_prefix(read_state_dict(init), model.state_dict(),
                                   source=fspath(init))
    load_matching(model, state, source=fspath(init), new_layers=new_layers)
    return model


#: Prefixes a wrapper puts before every key of a state dict saved from it:
#: ``DataParallel``/``DistributedDataParallel`` (``module.``), ``torch.compile``
#: (``_orig_mod.``), a LightningModule's or a training script's attribute (``model.``).
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


#: Entries of a training checkpoint that hold the state dict, in order of preference: vsent's
#: and Lightning's ``state_dict``, ``model`` (DeiT, MAE, torchvision's reference scripts), the
#: moving averages of timm's (``state_dict_ema``) and DeiT's (``model_ema``) scripts.
WRAPPER_ENTRIES = ("state_dict", "model", "state_dict_ema", "model_ema")


def without_wrapper_prefix(state: Mapping[str, Tensor], own: Mapping[str, Tensor], *,
                           source: str = "weights") -> Mapping[str, Tensor]:
    """``state`` without the :data:`WRAPPER_PREFIXES` that every one of its keys has (one or
    nested: ``module._orig_mod.``), removed only when more keys then match the model's ``own``
    keys (a model whose keys start ``model.`` keeps them); the removal is logged."""
    def common(keys: Iterable[str]) -> int:
        return sum(k in own for k in keys)

    best, removed, current, prefixes = state, "", state, ""
    while current:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in current)),
                      None)
        if prefix is None:
            break
        current = {k[len(prefix):]: v for k, v in current.items()}
        prefixes += prefix
        if common(current) > common(best):
            best, removed = current, prefixes
    if removed:
        logger.info("%s: removed the key prefix %r that all its keys have", source, removed)
    return best


def read_state_dict(path: str | PathLike[str]) -> dict[str, Tensor]:
    """Tensors of a ``.pt``/``.pth``/``.bin`` state dict, a vsent checkpoint, a
    ``.safetensors`` or a ``.caffemodel`` file (suffixes in any case)."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: a folder; give a weights file (.pt, .pth, .safetensors or "
                           ".caffemodel)")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix.lower() == ".caffemodel":
        from vsent.models.caffe import load_caffemodel  # protobuf reader, only needed here

        return dict(load_caffemodel(path))
    if path.suffix.lower() == ".safetensors":  # (torch.load takes ".safetensors" alone)
        return _read_safetensors(path)
    try:
        # weights_only: a weights file must not be able to run code when loaded.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        from vsent.models.checkpoint import load_failure  # (it imports the registry: not above)

        raise WeightsError(f"{path}: not a PyTorch state dict ({load_failure(path, exc)})") \
            from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: not a PyTorch state dict (expected a dict of tensors, "
                           f"got {type(obj).__name__})")
    entry = "" if _not_tensors(obj) is None else \
        next((k for k in WRAPPER_ENTRIES if isinstance(obj.get(k), Mapping)), "")
    if entry:
        obj = obj[entry]
        logger.info("%s: weights taken from its %r entry", path, entry)
    why = _not_tensors(obj)
    if why is not None:
        where = f"its {entry!r} entry: " if entry else ""
        raise WeightsError(f"{path}: not a PyTorch state dict ({where}{why})")
    return dict(obj)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file (the 'backbones' extra brings the library)."""
    reader = import_extra("safetensors.torch", "a .safetensors file", "backbones", WeightsError)
    from safetensors import SafetensorError

    try:
        return dict(reader.load_file(str(path)))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a PyTorch state dict ({one_line(exc)})") from exc


def _not_tensors(obj: Mapping[object, object]) -> str | None:
    """Why ``obj`` is not a dict of named tensors (its first other entry), or None."""
    for key, value in obj.items():
        if not isinstance(key, str):
            return f"key {key!r} is not a string"
        if not isinstance(value, Tensor):
            kind = "dict" if isinstance(value, Mapping) else type(value).__name__
            return f"{key!r} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not a tensor"
    return None


def saved_preprocess(path: str | PathLike[str]) -> Preprocess | None:
    """The preprocessing a vsent checkpoint records: its weights were trained on that input
    (a CLIP tag's statistics, say), which a model initialised from the file must keep. None
    for any other file (:func:`_saved_checkpoint`)."""
    obj = _saved_checkpoint(path)
    if obj is None or not isinstance(obj.get("preprocess"), Mapping):
        return None  # nothing recorded
    try:
        return Preprocess.from_dict(obj["preprocess"])
    except (VsentError, TypeError, ValueError):  # a damaged record: the architecture's stays
        return None


def saved_spec(path: str | PathLike[str]) -> Mapping[str, Any] | None:
    """The spec (name and builder options) a vsent checkpoint records, or None for any other
    file: a model initialised from it takes the options its weights need (CLIP's
    ``quick_gelu``; :attr:`vsent.models.registry.ModelEntry.weight_options`)."""
    obj = _saved_checkpoint(path)
    spec = obj.get("spec") if obj is not None else None
    return spec if isinstance(spec, Mapping) else None


def saved_meta(path: str | PathLike[str]) -> Mapping[str, Any] | None:
    """The metadata a vsent checkpoint records (``data``, ``subset``, ``data_sha256``,
    ``fold``, ...), or None for any other file: what a run starting from it checks against
    its own data (:func:`vsent.data.leakage.check_other_data`)."""
    obj = _saved_checkpoint(path)
    meta = obj.get("meta") if obj is not None else None
    return meta if isinstance(meta, Mapping) else None


def _saved_checkpoint(path: str | PathLike[str]) -> Mapping[str, Any] | None:
    """The dict of a vsent checkpoint, or None for any other file: a plain state dict says
    nothing, and one that cannot be read is :func:`read_state_dict`'s to report. Only the
    small entries are read (``mmap``); vsent writes torch.save's zip format, so other files
    are not opened twice."""
    from vsent.models.checkpoint import CHECKPOINT_FORMAT  # (it imports the registry)

    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(2) != b"PK":
                return None
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # damaged or foreign: read_state_dict gives the one-line reason
        return None
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        return None  # a list, a tensor, a plain state dict
    return obj


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
            f"{', '.join(bad[:3])}{more}{_nothing_fits(state, own, loaded)}"
        )
    model.load_state_dict(loaded, strict=False)
    unused = sorted(k for k in state if k not in own)
    if kept_fresh:
        logger.info("%s: new layers kept freshly initialised: %s", source, ", ".join(kept_fresh))
    if unused:
        logger.info("%s: dropped keys the model does not have: %s", source, ", ".join(unused))
    logger.info("%s: loaded %d of %d model tensors", source, len(loaded), len(own))
    return list(loaded)


def _nothing_fits(state: Mapping[str, Tensor], own: Mapping[str, Tensor],
                  loaded: Mapping[str, Tensor]) -> str:
    """A hint when not one tensor of the file fits the model (weights of another architecture,
    or keys under another prefix): the first keys of both; else ``""``."""
    if loaded or not state:
        return ""
    return (f" (no tensor of the file fits: weights of another architecture? its {len(state)} "
            f"keys start {', '.join(list(state)[:2])}, the model's "
            f"{', '.join(list(own)[:2])})")


def hub_checkpoint_dir() -> Path:
    """Directory where torch.hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def url_file_name(url: str) -> str:
    """The last part of ``url``'s path, the name torch.hub gives its file ("" for none)."""
    return PurePosixPath(urlparse(url).path).name


def hub_checkpoint_file(url: str) -> Path:
    """The file torch.hub downloads ``url`` into (and finds it in): :func:`url_file_name` in
    :func:`hub_checkpoint_dir` (torchvision's and timm's URL weights)."""
    return hub_checkpoint_dir() / url_file_name(url)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Around a load whose model is only checked, not trained (the prototype of
    :func:`vsent.crossval.prepare`): this module's lines on what was loaded are left to the
    load of the model that trains (finetune --init FILE said them twice); its warnings and
    errors still come."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def hub_download(host: str = "huggingface.co") -> Iterator[None]:
    """Around a timm / open_clip download from the Hugging Face hub. When ``host`` cannot be
    resolved (no network), huggingface_hub runs in its offline mode for the call: weights
    already in its cache still load, missing ones fail at once instead of after a minute of
    retries; the hub's retry warnings and open_clip's messages (it logs on the root logger)
    are kept out of the log: a failure is the caller's one-line WeightsError."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm and open_clip depend on huggingface_hub
        yield
        return
    offline = constants.HF_HUB_OFFLINE
    if not offline and not resolvable(host):
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


def resolvable(host: str) -> bool:
    """Whether ``host``'s name resolves (no: no network, a download would fail anyway). Behind
    an HTTP(S) proxy (``https_proxy``, ...) the proxy resolves names: taken as yes."""
    import socket
    import urllib.request

    proxies = urllib.request.getproxies()
    if (proxies.get("https") or proxies.get("all")) and \
            not urllib.request.proxy_bypass(host):
        return True
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def hf_cache_dir() -> str:
    """Where huggingface_hub keeps downloads (the timm and open_clip weights), for messages."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - timm and open_clip depend on huggingface_hub
        return "the Hugging Face cache"
    return str(HF_HUB_CACHE)


#: Weights files timm and open_clip fetch from a Hugging Face repository (safetensors first).
HF_WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                    "open_clip_pytorch_model.bin")


def hf_cached_file(repo: str, names: Iterable[str] = HF_WEIGHTS_NAMES) -> Path | None:
    """The first of ``names`` the Hugging Face cache holds for ``repo`` (``owner/name``, an
    ``@revision`` allowed), or None. A load that failed with that file there failed at reading
    it (a download cut short, a damaged copy), not for want of a network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - timm and open_clip depend on huggingface_hub
        return None
    repo_id, _, revision = repo.strip("/").partition("@")
    for name in names:
        found = try_to_load_from_cache(repo_id, name, revision=revision or None)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def damaged_file_message(path: Path, exc: Exception, source: str) -> str:
    """One line for a downloaded weights file that is there but cannot be read: the file, why
    (:func:`vsent.models.checkpoint.load_failure`), and to fetch it again from ``source``;
    an offline message would send the user to download what they already have."""
    from vsent.models.checkpoint import load_failure  # (it imports the registry: not above)

    return (f"{path}: incomplete or damaged weights file ({load_failure(path, exc)}): delete "
            f"it and download it again ({source})")


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
        """Path of the cached file, downloaded first if needed; :class:`WeightsError` offline.

        A file found in the cache (put there by hand, as the offline message says) is checked
        against the SHA-1 once: a ``<file>.sha1-ok`` marker next to it records the size and
        mtime it was checked at, so a 230 MB file is not hashed at every load.
        """
        folder = hub_checkpoint_dir()
        path = folder / self.file_name
        if path.is_file():
            digest = self._wrong_digest(path)
            if digest is not None:
                raise WeightsError(f"{path}: incomplete or different file (SHA-1 {digest}, "
                                   f"expected {self.sha1}): delete it and download again "
                                   f"({self.url})")
            return path
        folder.mkdir(parents=True, exist_ok=True)
        try:
            # Writes to a temporary file and renames it, so an interrupted download leaves nothing.
            torch.hub.download_url_to_file(self.url, fspath(path), progress=True)
        except (OSError, HTTPException) as exc:
            raise WeightsError(download_failed_message(model_name, self.url, folder)) from exc
        digest = self._wrong_digest(path)
        if digest is not None:
            path.unlink()
            raise WeightsError(
                f"{self.url}: downloaded file has SHA-1 {digest}, expected {self.sha1}"
            )
        return path

    def _wrong_digest(self, path: Path) -> str | None:
        """``path``'s SHA-1 when it is not :attr:`sha1`, else None. A ``<file>.sha1-ok`` marker
        records the size and mtime of a file that matched, so it is hashed once."""
        if self.sha1 is None:
            return None
        marker = path.with_name(path.name + ".sha1-ok")
        stat = path.stat()
        stamp = f"{self.sha1} {stat.st_size} {stat.st_mtime_ns}"
        with suppress(OSError):  # no marker yet
            if marker.read_text() == stamp:
                return None
        digest = file_digest(path, "sha1")
        if digest != self.sha1:
            return digest
        with suppress(OSError):  # a read-only cache: checked again next time
            marker.write_text(stamp)
        return None


def download_failed_message(model_name: str, url: str, folder: Path) -> str:
    """The one-line message for ImageNet weights that cannot be downloaded."""
    return (
        f"cannot download ImageNet weights for {model_name} (no network?): download {url} "
        f"into {folder} or pass --init PATH to a weights file"
    )
