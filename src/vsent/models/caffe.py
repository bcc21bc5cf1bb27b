"""Caffe ``.caffemodel`` files: a minimal protobuf reader/writer and the CaffeNet key mapping.

A ``.caffemodel`` is a binary protobuf ``caffe.NetParameter``. We read only the fields that
carry weights, so neither Caffe nor the ``protobuf`` package is needed. Field numbers are those
of BVLC Caffe's ``src/caffe/proto/caffe.proto``::

    NetParameter      name = 1 (string), layer = 100 (LayerParameter, current format),
                      layers = 2 (V1LayerParameter, legacy format)
    LayerParameter    name = 1 (string), type = 2 (string), blobs = 7 (BlobProto)
    V1LayerParameter  name = 4 (string), type = 5 (enum), blobs = 6 (BlobProto),
                      layer = 1 (V0LayerParameter: name = 1, type = 2, blobs = 50)
    BlobProto         data = 5 (packed float), double_data = 8 (packed double),
                      shape = 7 (BlobShape: dim = 1, packed int64),
                      legacy 4-D shape num = 1, channels = 2, height = 3, width = 4

Weight layouts already agree with PyTorch: a Convolution blob 0 is (out, in / group, kh, kw) like
``nn.Conv2d`` with ``groups``; an InnerProduct blob 0 is (out, in) like ``nn.Linear`` and Caffe
flattens pool5 in (C, H, W) order like ``torch.flatten``. Legacy files store biases as
(1, 1, 1, out) and InnerProduct weights as (1, 1, out, in); :func:`load_caffemodel` squeezes them.

Input convention (why nothing is permuted here): Caffe's CaffeNet was trained on **BGR** images in
0..255 with the ImageNet mean (B, G, R) = (104, 117, 123) subtracted and no division by a std.
Its ``conv1`` weights therefore expect BGR input channels. vsent keeps those weights as they are
and lets the model's preprocessing record do the rest: the caffenet ``model.info.preprocess``
(``CAFFE_PREPROCESS``: ``channel_order="BGR"``, Caffe's mean, std 1, 227 centre crop of a 256x256
warp) turns an RGB uint8 image into exactly the array Caffe's ``Transformer`` would feed the net.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsent.errors import WeightsError
from vsent.files import atomic_open

# Protobuf wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

#: V1LayerParameter.LayerType enum values we name (others are reported as ``V1:<number>``).
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 17: "Pooling", 18: "ReLU", 15: "LRN",
             6: "Dropout", 20: "Softmax", 21: "SoftmaxWithLoss", 5: "Data", 1: "Accuracy"}
_V1_CODES = {v: k for k, v in _V1_TYPES.items()}

#: Caffe layer name -> caffenet module name, for every CaffeNet layer with weights. The fine-tuned
#: model released by Campos et al. (``twitter_finetuned_test4_iter_180.caffemodel``) names its
#: 2-way classifier ``fc8_twitter``.
CAFFE_LAYER_MAP: dict[str, str] = {
    "conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "conv4": "conv4", "conv5": "conv5",
    "fc6": "fc6", "fc7": "fc7", "fc8": "fc8", "fc8_twitter": "fc8",
}
_CONV = {"conv1", "conv2", "conv3", "conv4", "conv5"}
#: Caffe's limit on a blob's size (``Blob::Reshape`` checks ``count_ <= INT_MAX``).
_MAX_DIM = 2**31 - 1


class _ParseError(ValueError):
    """Malformed protobuf bytes (turned into a WeightsError naming the file)."""


@dataclass
class CaffeLayer:
    """One layer of a caffemodel: its name, type and parameter blobs (float32 arrays)."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Wire format reader


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _ParseError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _ParseError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)``; LEN values are zero-copy memoryviews."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise _ParseError("field number 0")
        if wt == _VARINT:
            value, pos = _varint(buf, pos)
        elif wt == _I64:
            if pos + 8 > end:
                raise _ParseError("truncated 64-bit field")
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wt == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _ParseError(f"field {num} runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        elif wt == _I32:
            if pos + 4 > end:
                raise _ParseError("truncated 32-bit field")
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:  # groups (3, 4) are not used by caffe.proto
            raise _ParseError(f"unsupported wire type {wt} (field {num})")
        yield num, wt, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _text(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise _ParseError("expected a string field")
    return bytes(value).decode("utf-8", errors="replace")


def _parse_blob(buf: memoryview) -> np.ndarray:
    chunks: list[np.ndarray] = []
    dims: list[int] | None = None
    legacy = [0, 0, 0, 0]
    for num, wt, value in _fields(buf):
        if num == 5:  # data: packed floats (or, unusually, one float per field)
            if wt == _LEN:
                if len(value) % 4:
                    raise _ParseError("packed float data is not a multiple of 4 bytes")
                chunks.append(np.frombuffer(value, dtype="<f4"))
            elif wt == _I32:
                chunks.append(np.array([value], dtype="<u4").view("<f4"))
        elif num == 8:  # double_data
            if wt == _LEN:
                if len(value) % 8:
                    raise _ParseError("packed double data is not a multiple of 8 bytes")
                chunks.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
            elif wt == _I64:
                chunks.append(np.array([value], dtype="<u8").view("<f8").astype(np.float32))
        elif num == 7 and wt == _LEN:  # BlobShape
            dims = []
            for snum, swt, svalue in _fields(value):
                if snum == 1:
                    dims.extend(_packed_varints(svalue) if swt == _LEN else [svalue])
        elif 1 <= num <= 4 and wt == _VARINT:
            legacy[num - 1] = value
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    shape = tuple(dims) if dims is not None else tuple(legacy)
    if dims is None and not any(legacy):
        shape = (data.size,)
    # Python ints: np.prod(int64) wraps for dims of 2**32 and more, and a wrapped product could
    # pass the size check; Caffe itself refuses blobs of more than INT_MAX values.
    if any(d > _MAX_DIM for d in shape):
        raise _ParseError(f"blob shape {shape} has a dimension above Caffe's limit {_MAX_DIM}")
    if math.prod(shape) != data.size:
        raise _ParseError(f"blob shape {shape} does not match its {data.size} values")
    return data.astype(np.float32, copy=True).reshape(shape)


def _parse_layer(buf: memoryview, legacy: bool) -> CaffeLayer:
    name_f, type_f, blobs_f = (4, 5, 6) if legacy else (1, 2, 7)
    layer = CaffeLayer(name="", type="")
    v0: memoryview | None = None
    for num, wt, value in _fields(buf):
        if num == name_f and wt == _LEN:
            layer.name = _text(value)
        elif num == type_f:
            if legacy and wt == _VARINT:
                layer.type = _V1_TYPES.get(value, f"V1:{value}")
            elif wt == _LEN:
                layer.type = _text(value)
        elif num == blobs_f and wt == _LEN:
            layer.blobs.append(_parse_blob(value))
        elif legacy and num == 1 and wt == _LEN:
            v0 = value
    if legacy and v0 is not None and not layer.name:  # V0 layer nested in a V1 layer
        for num, wt, value in _fields(v0):
            if num == 1 and wt == _LEN:
                layer.name = _text(value)
            elif num == 2 and wt == _LEN:
                layer.type = _text(value)
            elif num == 50 and wt == _LEN:
                layer.blobs.append(_parse_blob(value))
    return layer


def _parse_net(data: mmap.mmap | bytes) -> tuple[str, list[CaffeLayer]]:
    name, layers = "", []
    with memoryview(data) as buf:
        for num, wt, value in _fields(buf):
            if num == 1 and wt == _LEN:
                name = _text(value)
            elif num in (100, 2) and wt == _LEN:
                layers.append(_parse_layer(value, legacy=num == 2))
        del value
    return name, layers


def read_caffemodel(path: str | Path) -> tuple[str, list[CaffeLayer]]:
    """Read a binary ``.caffemodel`` (NetParameter) into ``(net_name, layers)``.

    Layers come in file order, in either format (``layer`` or legacy ``layers``); blobs are
    float32 arrays shaped as stored (legacy 4-D shapes are kept).

    Raises
    ------
    WeightsError
        If the file is missing, empty or not a NetParameter (the message names the file).
    """
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise WeightsError(f"cannot read Caffe model {path}: {e.strerror}") from None
    with f:
        size = path.stat().st_size
        if size == 0:
            raise WeightsError(f"{path}: empty file, not a Caffe model")
        # mmap: the file (244 MB for CaffeNet) is not copied; blobs are copied out one by one.
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            error = None
            try:
                name, layers = _parse_net(mm)
            except (ValueError, OverflowError) as e:  # _ParseError, or numpy refusing a shape
                # keep no traceback: its frames would pin views of the mmap, and closing it
                # would then raise BufferError instead of this error
                error = str(e)
    if error is not None:
        raise WeightsError(f"{path}: not a valid Caffe model ({error})")
    if not layers:
        raise WeightsError(f"{path}: no layers found; not a Caffe model (NetParameter)")
    return name, layers


# --------------------------------------------------------------------------------------------
# Wire format writer


def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf does
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_len(num: int, payload: bytes) -> bytes:
    return _enc_varint(num << 3 | _LEN) + _enc_varint(len(payload)) + payload


def _enc_blob(array: np.ndarray, legacy: bool) -> bytes:
    array = np.asarray(array, dtype="<f4")
    parts = []
    if legacy:  # num/channels/height/width, shapes with fewer axes padded with leading 1s
        if array.ndim > 4:
            raise ValueError(f"legacy blobs have at most 4 axes, got shape {array.shape}")
        dims4 = (1,) * (4 - array.ndim) + array.shape
        for num, d in zip((1, 2, 3, 4), dims4, strict=True):
            parts.append(_enc_varint(num << 3 | _VARINT) + _enc_varint(int(d)))
    else:
        shape = b"".join(_enc_varint(int(d)) for d in array.shape)
        parts.append(_enc_len(7, _enc_len(1, shape)))
    parts.append(_enc_len(5, array.tobytes()))
    return b"".join(parts)


def write_caffemodel(
    path: str | Path, layers: Sequence[CaffeLayer], *, name: str = "", legacy: bool = False
) -> Path:
    """Write layers as a binary ``.caffemodel`` (the subset of NetParameter read above).

    Parameters
    ----------
    layers : layers with their blobs (any float arrays; written as float32).
    legacy : write the old ``layers`` (V1LayerParameter) format with 4-D legacy blob shapes,
        like the BVLC reference CaffeNet file; default: current ``layer`` format with BlobShape.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        if name:
            f.write(_enc_len(1, name.encode()))
        for layer in layers:
            if legacy:
                body = [_enc_len(4, layer.name.encode())]
                if layer.type in _V1_CODES:
                    body.append(_enc_varint(5 << 3 | _VARINT) + _enc_varint(_V1_CODES[layer.type]))
                body += [_enc_len(6, _enc_blob(b, legacy=True)) for b in layer.blobs]
                f.write(_enc_len(2, b"".join(body)))
            else:
                body = [_enc_len(1, layer.name.encode()), _enc_len(2, layer.type.encode())]
                body += [_enc_len(7, _enc_blob(b, legacy=False)) for b in layer.blobs]
                f.write(_enc_len(100, b"".join(body)))
    return path


# --------------------------------------------------------------------------------------------
# CaffeNet mapping


def _canonical(path: Path, name: str, module: str, index: int, blob: np.ndarray) -> np.ndarray:
    """Drop the leading 1-axes of legacy shapes: bias -> (out,), fc weight -> (out, in)."""
    want = 1 if index == 1 else 4 if module in _CONV else 2
    lead = blob.shape[: max(blob.ndim - want, 0)]
    if blob.ndim < want or any(d != 1 for d in lead):
        kind = "bias" if index == 1 else "weight"
        raise WeightsError(
            f"{path}: layer {name!r} {kind} has shape {blob.shape}; expected {want} "
            f"{'axis' if want == 1 else 'axes'}"
        )
    return blob.reshape(blob.shape[blob.ndim - want:])


def _refuse_alexnet(path: Path, net_name: str) -> None:
    """:class:`WeightsError` for BVLC AlexNet's file (net ``AlexNet``): its layers have
    CaffeNet's names and shapes, so it would load, but AlexNet normalises before pooling and
    CaffeNet after; its weights in CaffeNet's order give other features without a word."""
    if "alexnet" in net_name.lower():
        raise WeightsError(
            f"{path}: the net {net_name!r} is AlexNet (norm before pool), not CaffeNet (pool "
            f"before norm): its weights would run in the wrong layer order; use "
            f"bvlc_reference_caffenet.caffemodel, or torchvision's alexnet with --init imagenet")


def load_caffemodel(
    path: str | Path, *, layer_map: Mapping[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Read a CaffeNet-family ``.caffemodel`` as a caffenet state dict.

    Parameters
    ----------
    path : the BVLC reference CaffeNet (fc8: 1000 ImageNet classes), the fine-tuned model of
        Campos et al. (``fc8_twitter``: 2 classes, returned as ``fc8``) or any file with the same
        layer names.
    layer_map : Caffe layer name -> caffenet module name; default :data:`CAFFE_LAYER_MAP`.

    Returns
    -------
    dict ``{"conv1.weight": (96, 3, 11, 11), "conv1.bias": (96,), ..., "fc8.weight": (K, 4096),
    "fc8.bias": (K,)}`` of float32 tensors. ``conv1`` expects BGR input minus Caffe's mean (see
    the module docstring). Layers without blobs (ReLU, pooling, data) are skipped.

    Raises
    ------
    WeightsError
        Unreadable or corrupt file, BVLC AlexNet's file (same layer names, other layer order), a
        layer with weights whose name is not in ``layer_map``, a layer given twice, or a layer
        with other than 2 blobs (weight and bias).
    """
    layer_map = CAFFE_LAYER_MAP if layer_map is None else layer_map
    path = Path(path)
    net_name, layers = read_caffemodel(path)
    _refuse_alexnet(path, net_name)
    state: dict[str, torch.Tensor] = {}
    seen: dict[str, str] = {}
    unknown = [lay.name for lay in layers if lay.blobs and lay.name not in layer_map]
    if unknown:
        raise WeightsError(
            f"{path}: layer(s) {', '.join(unknown)} are not CaffeNet layers (known: "
            f"{', '.join(sorted(layer_map))}); pass layer_map to name them"
        )
    for lay in layers:
        if not lay.blobs:
            continue
        module = layer_map[lay.name]
        if module in seen:
            raise WeightsError(
                f"{path}: layers {seen[module]!r} and {lay.name!r} both map to {module!r}"
            )
        seen[module] = lay.name
        if len(lay.blobs) != 2:
            raise WeightsError(
                f"{path}: layer {lay.name!r} has {len(lay.blobs)} blobs; expected weight and bias"
            )
        for index, suffix in enumerate(("weight", "bias")):
            array = _canonical(path, lay.name, module, index, lay.blobs[index])
            state[f"{module}.{suffix}"] = torch.from_numpy(array)
    if not state:
        raise WeightsError(f"{path}: no layer carries weights")
    return state


def export_caffemodel(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], *, name: str = "CaffeNet",
    legacy: bool = False, layer_names: Mapping[str, str] | None = None,
) -> Path:
    """Write a caffenet state dict as a ``.caffemodel`` (Convolution/InnerProduct layers).

    ``layer_names`` maps module names to Caffe layer names (e.g. ``{"fc8": "fc8_twitter"}``);
    modules missing from the state dict are skipped. The inverse of :func:`load_caffemodel`.
    """
    layer_names = layer_names or {}
    layers = []
    for module in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        if f"{module}.weight" not in state_dict:
            continue
        blobs = [state_dict[f"{module}.{s}"].detach().cpu().float().numpy()
                 for s in ("weight", "bias")]
        layers.append(CaffeLayer(layer_names.get(module, module),
                                 "Convolution" if module in _CONV else "InnerProduct", blobs))
    return write_caffemodel(path, layers, name=name, legacy=legacy)


