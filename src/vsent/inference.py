"""The one inference path: decode ahead, crop, normalise, forward, softmax, captured layers.

Scoring a trained network on images (scores, features, layer outputs) goes through this
module. Two callers run the network's last step themselves, on what this module gives them:
Grad-CAM (:mod:`vsent.analyses.explain`: :func:`prepare` and :func:`capture_outputs`, with
gradients) and ``--train head`` (:func:`vsent.frozen.evaluate_model`: the head alone, with its
softmax, on the backbone features :func:`infer` extracted). Training runs its own forward
passes (:mod:`vsent.train`, :mod:`vsent.frozen`).

* :func:`infer` / :func:`infer_batches`: resized uint8 images (N, S, S, 3) -> softmax scores,
  optionally the penultimate features (``model.forward_features``) and the outputs of named
  modules. Centre crop, or Caffe's 10-crop oversampling averaged over the crops. Used by
  :func:`vsent.evaluate.predict_proba` / :func:`~vsent.evaluate.evaluate`,
  :class:`vsent.predict.Predictor`, :func:`vsent.analyses.probes.extract_layer_features` and
  :mod:`vsent.analyses.regions`.
* :func:`prepare`: uint8 batch -> normalised network input (centre crop or the 10 crops), the
  same arithmetic as :func:`infer`; Grad-CAM (:mod:`vsent.analyses.explain`) uses it with
  gradients on.
* :func:`capture_outputs`: the one forward-hook helper (named module outputs, in-place
  activations handled), with or without gradients.
* :func:`prefetch` and :func:`iter_batches`: the one decode-ahead mechanism: a bounded thread
  pool that maps a decoder over any iterable of inputs (a generator of millions of paths is
  consumed lazily, a bounded number of items ahead), in input order, each item's
  :class:`~vsent.errors.VsentError` carried in its slot instead of stopping the stream.

Models follow :mod:`vsent.models.base`: ``model.info.preprocess`` says how to crop and
normalise, ``forward_features`` / ``forward_head`` give the features and the logits.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn

from vsent.data._common import default_workers
from vsent.data.images import load_resized
from vsent.data.transforms import Preprocess, center_crop, normalize, ten_crop
from vsent.errors import VsentError

__all__ = [
    "DecodedBatch", "InferenceResult", "capture_outputs", "infer", "infer_batches",
    "iter_batches", "prefetch", "prepare", "resolve_device",
]

T = TypeVar("T")
R = TypeVar("R")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu. Asking for cuda without one is a user error."""
    if isinstance(name, torch.device):
        return name
    if not isinstance(name, str):  # (None was an AttributeError on .startswith)
        raise VsentError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VsentError("--device cuda: no CUDA device is available here (use --device cpu)")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise VsentError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


# --------------------------------------------------------------------------------------------
# forward hooks


def layer_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` of ``model``; VsentError naming ``--layer`` and the first of the
    model's module names when it has none of that name."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        # any module can be captured (not only a vsent model's probe layers): list the first ones
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} modules)" if len(names) > 20 else "")
        raise VsentError(f"--layer {name!r}: no such layer in {type(model).__name__}; "
                         f"try one of {shown}") from None


@contextmanager
def _no_inplace(model: nn.Module) -> Iterator[None]:
    """Turn off ``inplace`` (ReLU, Dropout, ...) so hooked activations keep their values."""
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


@contextmanager
def capture_outputs(
    model: nn.Module, names: Sequence[str], *, grad: bool = False
) -> Iterator[dict[str, Any]]:
    """Record the outputs of the modules ``names`` of ``model`` during the forward passes run
    inside the ``with`` block: ``{name: output of the latest call}``.

    Parameters
    ----------
    model : the network; names : module names (``model.get_submodule``).
    grad : False: each output is detached and copied when it is produced (a later in-place op,
        e.g. ``ReLU(inplace=True)`` after a conv, cannot change it; Caffe's blob semantics).
        True: outputs stay in the autograd graph (Grad-CAM differentiates with respect to them)
        and the network goes on with a clone of each, so that functional in-place ops
        (ResNet's ``out += identity``) cannot change the captured tensor; in-place modules are
        switched off inside the block so that autograd can use them, and switched back on after.

    Raises :class:`VsentError` naming a layer that does not exist. A non-tensor output is stored
    as it is (the caller decides whether that is an error).
    """
    modules = [(n, layer_module(model, n)) for n in names]
    captured: dict[str, Any] = {}

    def hook(name: str) -> Callable[..., Any]:
        def fn(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            if not torch.is_tensor(output):
                captured[name] = output
            elif grad:  # keep the layer's own output; the network continues on the clone
                captured[name] = output
                return output.clone()
            else:
                captured[name] = output.detach().clone()
            return None  # the network's output unchanged
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in modules]
    try:
        if grad:
            with _no_inplace(model):
                yield captured
        else:
            yield captured
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------------------------
# one batch through the network


def prepare(batch: np.ndarray | torch.Tensor, pre: Preprocess, *, oversample: bool = False,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, S, S, 3) RGB -> float32 network input on ``device``.

    Centre crop: (B, 3, c, c). Oversampling: the 10 crops of :func:`~vsent.data.transforms.
    ten_crop`, image-major, (10 B, 3, c, c) (rows ``10 i .. 10 i + 9`` are image ``i``).
    The uint8 pixels move to the device first (4x fewer bytes than floats), then are cropped
    and normalised there.
    """
    if isinstance(batch, np.ndarray):
        # torch wants writable memory: a read-only memory map (the image cache) is copied
        batch = torch.from_numpy(np.ascontiguousarray(batch) if batch.flags.writeable
                                 else np.array(batch))
    batch = batch.to(device, non_blocking=True)
    if oversample:
        crops = ten_crop(batch, pre.crop)  # (B, 10, c, c, 3)
        return normalize(crops.flatten(0, 1), pre)
    return normalize(center_crop(batch, pre.crop), pre)


@dataclass
class InferenceResult:
    """What :func:`infer` returns for N images.

    Attributes
    ----------
    probs : float32 (N, C) softmax of the logits; with oversampling the mean over the 10 crops.
    activations : layer name -> float32 (N, ...) output of that module (CPU), per image; with
        oversampling the mean over the 10 crops. Empty (no key) for no images: a layer's shape
        is only known from a forward pass.
    features : float32 (N, D) ``model.forward_features`` (mean over the crops when
        oversampling), or None when not asked for.
    """

    probs: np.ndarray
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    features: np.ndarray | None = None


def _per_image(t: torch.Tensor, n: int, oversample: bool) -> torch.Tensor:
    """(10 n, ...) crop rows -> (n, ...) mean over each image's crops; float32 on the CPU."""
    t = t.detach().float()
    if oversample:
        t = t.reshape(n, 10, *t.shape[1:]).mean(dim=1)
    return t.cpu()


def _forward(model: nn.Module, x: torch.Tensor, n: int, *, oversample: bool,
             capture: Sequence[str], features: bool) -> InferenceResult:
    """One prepared batch (n images, ``x`` = n or 10 n crops) -> probabilities and the rest."""
    with capture_outputs(model, capture) as acts:
        if features:
            f = model.forward_features(x)
            logits = model.forward_head(f)
        else:
            logits = model(x)
    probs = torch.softmax(logits.float(), dim=1)
    out = InferenceResult(probs=_per_image(probs, n, oversample).numpy())
    for name in capture:
        a = acts.get(name)
        if a is None:
            raise VsentError(f"layer {name!r} was not called by the forward pass")
        if not torch.is_tensor(a):
            raise VsentError(f"layer {name!r} outputs a {type(a).__name__}, not a tensor")
        out.activations[name] = _per_image(a, n, oversample).numpy()
    if features:
        out.features = _per_image(f, n, oversample).numpy()
    return out


def infer_batches(
    model: nn.Module,
    images: np.ndarray,
    *,
    oversample: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    capture: Sequence[str] = (),
    features: bool = False,
) -> Iterator[tuple[slice, InferenceResult]]:
    """:func:`infer` one batch at a time: ``(rows, result)`` with ``rows`` a slice of ``images``.

    For consumers that must not hold all activations at once (:func:`infer` joins them; the
    layer probes call it per batch of chosen rows instead, as their rows need not be a slice).
    Arguments as :func:`infer`.
    """
    pre = model.info.preprocess
    check_images(images, pre.resize)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model.eval().to(dev)
    capture = list(capture)
    for start in range(0, len(images), batch_size):
        rows = slice(start, min(start + batch_size, len(images)))
        # entered per batch, not around the yield: the caller's code must not run in it
        with torch.inference_mode():
            x = prepare(images[rows], pre, oversample=oversample, device=dev)
            res = _forward(model, x, rows.stop - rows.start, oversample=oversample,
                           capture=capture, features=features)
        yield rows, res


def infer(
    model: nn.Module,
    images: np.ndarray,
    *,
    oversample: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    capture: Sequence[str] = (),
    features: bool = False,
) -> InferenceResult:
    """Softmax scores (and optionally features and named activations) of resized images.

    Parameters
    ----------
    model : a vsent model (:mod:`vsent.models.base`: ``info.preprocess``, ``forward_features``,
        ``forward_head``); put in eval mode on ``device``.
    images : uint8 (N, S, S, 3) RGB, already warped to ``S = model.info.preprocess.resize``
        (the image cache, :func:`vsent.data.images.load_resized`); a memory map is fine.
    oversample : average over the 10 crops (4 corners + centre and their mirrors) instead of
        scoring the centre crop only.
    batch_size : images per forward pass (10x as many crops when oversampling).
    device : "auto", "cpu", "cuda" or a torch.device.
    capture : module names whose outputs are returned (e.g. ``model.info.probe_layers``).
    features : also return ``model.forward_features`` (the penultimate feature, (N, D)).

    Returns
    -------
    :class:`InferenceResult`; ``probs`` rows sum to 1.
    """
    parts = list(infer_batches(model, images, oversample=oversample, batch_size=batch_size,
                               device=device, capture=capture, features=features))
    if not parts:
        n_out = model.info.num_outputs
        return InferenceResult(
            probs=np.zeros((0, n_out), np.float32),
            features=np.zeros((0, model.info.feature_dim), np.float32) if features else None,
        )
    res = [r for _, r in parts]
    return InferenceResult(
        probs=np.concatenate([r.probs for r in res]),
        activations={n: np.concatenate([r.activations[n] for r in res]) for n in capture},
        features=np.concatenate([r.features for r in res]) if features else None,
    )


def check_images(images: np.ndarray, size: int) -> None:
    """ValueError unless ``images`` is uint8 (N, size, size, 3): resized for the model."""
    if not isinstance(images, np.ndarray):  # (api60: a list of arrays, an AttributeError)
        raise TypeError(f"images must be a numpy array, uint8 (N, {size}, {size}, 3), got "
                        f"{type(images).__name__} (np.stack a list of decoded images)")
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if images.shape[1] != size or images.shape[2] != size:
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]}, the model expects {size}x{size} "
            "(resize with the model's info.preprocess.resize)"
        )


# --------------------------------------------------------------------------------------------
# decoding ahead of the model


def _call(fn: Callable[[T], R], item: T) -> tuple[R | None, VsentError | None]:
    try:
        return fn(item), None
    except VsentError as e:  # a bad item; anything else is a bug and propagates
        return None, e


#: What :func:`prefetch` yields, with ``quiet_after``, when its input has been quiet that long
#: and every item read so far has been handed on: a consumer grouping items (into batches)
#: hands on the group it holds instead of waiting for more input.
QUIET = object()
#: :func:`iter_batches`' ``quiet_after``: an input quiet this long (seconds) gets the part batch
#: read before it scored (a list fed as files arrive), instead of it waiting for a full batch.
QUIET_AFTER_S = 1.0


def prefetch(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    ahead: int | None = None,
    quiet_after: float | None = None,
) -> Iterator[tuple[T, R | None, VsentError | None]]:
    """``(item, fn(item), None)`` or ``(item, None, error)`` for each item, in input order.

    ``fn`` runs in a pool of ``workers`` threads (decoding releases the GIL) on up to ``ahead``
    items beyond the one being consumed; ``items`` may be any iterable, read lazily (a
    generator of millions of paths is never held in memory). A :class:`VsentError` raised by
    ``fn`` (e.g. :class:`~vsent.errors.ImageError`) is returned in the item's slot; any other
    exception propagates. An exception raised by ``items`` itself (a list's bad line) is
    raised after the items read before it are yielded: their rows are not lost. Closing the
    iterator early cancels the pending work.

    Parameters
    ----------
    workers : threads (default :func:`default_workers`).
    ahead : items in flight (default ``4 * workers``).
    quiet_after : seconds; when given, ``items`` is read in a thread of its own, and an input
        that pauses (a list written as files arrive) holds nothing back: what was read is
        decoded and yielded, then :data:`QUIET` once the input has been quiet that long.
    """
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise VsentError(f"--workers must be >= 1, got {workers}")
    ahead = max(1, 4 * workers if ahead is None else int(ahead))
    reader = None if quiet_after is None else InputReader(items)
    it = iter(items) if reader is None else None
    pending: deque[tuple[T, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsent-decode")
    failure: Exception | None = None
    try:
        exhausted = quiet = handed_on = False
        while True:
            while not exhausted and len(pending) < ahead:
                if reader is None:
                    try:
                        item = next(it)  # type: ignore[arg-type]
                    except StopIteration:
                        exhausted = True
                        break
                    except Exception as e:  # raised once the items read before it are yielded
                        failure, exhausted = e, True
                        break
                else:
                    # wait for more input only until it is known to be quiet
                    got = reader.get(0 if quiet else quiet_after)
                    if got is None and pending:
                        quiet = True
                        break
                    if got is None:  # quiet, and everything read has been handed on
                        if handed_on:
                            handed_on = False
                            yield QUIET  # type: ignore[misc]
                        got = reader.get(None)
                    quiet = False
                    kind, item = got
                    if kind == "end":
                        exhausted = True
                        break
                    if kind == "error":  # raised once the items read before it are yielded
                        failure, exhausted = item, True
                        break
                pending.append((item, pool.submit(_call, fn, item)))
            if not pending:
                if failure is not None:
                    raise failure
                return
            item, fut = pending.popleft()
            result, error = fut.result()
            handed_on = True
            yield item, result, error
    finally:
        if reader is not None:
            reader.stop()
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


class InputReader:
    """Reads ``items`` in a daemon thread, one entry ahead of the consumer (:func:`prefetch`'s
    ``quiet_after``, the Ray engine's feeder; the input stays read lazily): ``("item", x)``
    for each, then ``("end", None)``, or ``("error", e)`` for the exception that stopped the
    input. The consumer waits on it with a timeout, so an input that pauses (a blocked read of
    a pipe) never holds up what was read before it."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        threading.Thread(target=self._run, args=(items,), name="vsent-input",
                         daemon=True).start()

    def _run(self, items: Iterable[Any]) -> None:
        try:
            for x in items:
                if not self._put(("item", x)):
                    return
        except BaseException as e:  # the consumer raises it after the items before it (any:
            self._put(("error", e))  # a consumer must always get an end or an error)
            return
        self._put(("end", None))

    def _put(self, entry: tuple[str, Any]) -> bool:
        while not self._stop.is_set():  # a consumer that stopped early frees this thread
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float | None) -> tuple[str, Any] | None:
        """The next entry; None when none came within ``timeout`` seconds (None: wait)."""
        try:
            return self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()


class DecodedBatch(NamedTuple):
    """One batch of :func:`iter_batches`.

    Attributes
    ----------
    items : the inputs of this batch, in input order (len B).
    images : uint8 (B_ok, S, S, 3): the decoded images of the items without an error, in order.
    errors : per item, None or the :class:`VsentError` that stopped its decoding (len B).
    features : (B_ok, d) rows of :func:`iter_batches`' ``features`` function, or None.
    """

    items: list[Any]
    images: np.ndarray
    errors: list[VsentError | None]
    features: np.ndarray | None = None

    @property
    def ok(self) -> list[int]:
        """Positions in ``items`` of the rows of ``images``."""
        return [i for i, e in enumerate(self.errors) if e is None]


def iter_batches(
    items: Iterable[Any],
    size: int,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    decode: Callable[[Any, int], np.ndarray] = load_resized,
    features: Callable[[Any], np.ndarray] | None = None,
) -> Iterator[DecodedBatch]:
    """Decode images ahead of the model and group them into uint8 batches.

    Parameters
    ----------
    items : any iterable of paths, bytes, PIL images or arrays (read lazily).
    size : side S of the decoded images (``model.info.preprocess.resize``).
    batch_size : items per batch (the last one may be shorter).
    workers : decoding threads (default :func:`default_workers`); about two batches are
        decoded ahead of the consumer.
    decode : ``decode(item, size) -> uint8 (S, S, 3)``; default
        :func:`vsent.data.images.load_resized`, the decode of the image cache.
    features : ``features(item) -> (d,)``, run in the same decoding thread (e.g. the
        hand-crafted half of a fused model); an item fails if either call fails.

    Yields
    ------
    :class:`DecodedBatch` in input order; an item that fails to decode gets its error and no
    image row. An exception raised by ``items`` is raised after the batch of the items read
    before it.
    """
    if batch_size < 1:
        raise VsentError(f"--batch-size must be >= 1, got {batch_size}")
    workers = default_workers() if workers is None else workers

    def work(item: Any) -> tuple[np.ndarray, np.ndarray | None]:
        return decode(item, size), None if features is None else features(item)

    stream = prefetch(work, items, workers=workers, ahead=max(2 * batch_size, 2 * workers),
                      quiet_after=QUIET_AFTER_S)
    empty = np.empty((0, size, size, 3), np.uint8)
    try:
        failure: Exception | None = None
        while failure is None:
            chunk: list[tuple[Any, Any, VsentError | None]] = []
            try:
                for x in stream:
                    if x is QUIET:  # the input pauses: hand on the part batch held
                        if chunk:
                            break
                        continue  # none held (paused right after a full batch): wait on,
                        # an empty chunk below would end the batches
                    chunk.append(x)
                    if len(chunk) == batch_size:
                        break
            except Exception as e:  # the items' own failure: first the rows read before it
                failure = e
            if not chunk:
                break
            good = [r for _, r, e in chunk if e is None]
            feats = None
            if features is not None:
                feats = np.stack([f for _, f in good]) if good else np.zeros((0, 0))
            yield DecodedBatch(items=[i for i, _, _ in chunk],
                               images=np.stack([im for im, _ in good]) if good else empty,
                               errors=[e for _, _, e in chunk], features=feats)
        if failure is not None:
            raise failure
    finally:
        stream.close()
