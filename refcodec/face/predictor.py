"""Predictor networks: a face image predicted from its embedding (numpy inference).

Architecture (after the paper's Fig. 1): the embedding (``embedding_dim`` values) is seen as
an ``embedding_dim`` x 1 x 1 tensor and goes through a stack of "DconvOp" layers, each a 2-D
transposed convolution followed by batch normalisation and ReLU; the last layer is a
transposed convolution followed by tanh.  A fixed crop of the last layer's output gives the
C x H x W prediction ``t`` in [-1, 1].  Batch normalisation is folded into the transposed
convolutions at export (weight scaled per output channel, bias = the shift), so a weights
file holds, per layer, a weight (in_channels, out_channels, k, k) and a bias (out_channels).

A transposed convolution with stride s and padding p maps n to (n - 1) s - 2 p + k samples:
out[o, y, x] = bias[o] + sum over i, ky, kx with y + p = iy s + ky, x + p = ix s + kx of
in[i, iy, ix] weight[i, o, ky, kx] (PyTorch's ConvTranspose2d, no output padding, no
dilation, one group).

Numerics: every layer is computed in binary64 from binary32 inputs and weights, its result
(after bias and activation) rounded to binary32; so two implementations that each sum in
binary64 agree on ``t`` except where a value falls within a binary64 rounding error of a
binary32 rounding boundary, and the 8-bit prediction
``pred8 = clip(floor(127.5 (t + 1) + 0.5), 0, 255)`` (computed in binary64 from binary32
``t``) differs by at most 1 (the tolerance the face decoder allows).

Weights file (deterministic bytes for given weights; SHA-256 of the whole file names it):

- 8 bytes magic ``RCFPRED1``;
- uint32 little-endian header length L;
- L bytes of header: JSON in UTF-8 (ASCII only), keys sorted, no whitespace (the bytes are
  ``json.dumps(header, sort_keys=True, separators=(",", ":"))``): ``format``
  ("refcodec-face-predictor"), ``format_version`` (1), ``predictor_id``, ``embedding_dim``,
  ``output`` {``height``, ``width``, ``channels``, ``crop_top``, ``crop_left``}, ``layers``
  (list of {``op``: "conv_transpose2d", ``in_channels``, ``out_channels``, ``kernel``,
  ``stride``, ``padding``, ``activation``: "relu" or, last layer only, "tanh", ``weight``,
  ``bias``: tensor names}), ``tensors`` (list of {``name``, ``shape``, ``dtype``: "<f4"}, in
  file order), ``metadata`` (free JSON object: training facts; not used for inference);
- the tensors' data, float32 little-endian, C order, concatenated in ``tensors`` order; the
  file ends there.

The output is ``t[c, crop_top + y, crop_left + x]`` for y < height, x < width, given as H x W x
C.  refcodec ships ``refcodec-deconv-v1`` (``weights/refcodec-deconv-v1.bin``, trained by
``tools/train_face_predictor.py``; results in docs/eval/face_predictor.md).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAGIC = b"RCFPRED1"
FORMAT = "refcodec-face-predictor"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SUFFIX = ".bin"

MAX_HEADER_BYTES = 1 << 20
MAX_TENSOR_VALUES = 1 << 24          # 64 MiB of float32 in one file
MAX_CHANNELS = 4096
MAX_KERNEL = 16
MAX_STRIDE = 8
MAX_SIZE = 4096
ACTIVATIONS = ("relu", "tanh")


@dataclasses.dataclass(frozen=True, eq=False)
class DeconvLayer:
    """One transposed convolution with its (folded) bias and activation.

    weight      float32 (in_channels, out_channels, kernel, kernel)
    bias        float32 (out_channels,)
    activation  "relu" for the DconvOp layers, "tanh" for the last one
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int
    activation: str

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[2])

    def out_size(self, n: int) -> int:
        return (n - 1) * self.stride - 2 * self.padding + self.kernel


@dataclasses.dataclass(frozen=True, eq=False)
class Predictor:
    """A loaded predictor network (see the module doc)."""

    predictor_id: str
    sha256: bytes
    embedding_dim: int
    height: int
    width: int
    channels: int
    layers: tuple[DeconvLayer, ...] = dataclasses.field(repr=False)
    crop_top: int = dataclasses.field(repr=False, default=0)
    crop_left: int = dataclasses.field(repr=False, default=0)
    metadata: dict = dataclasses.field(repr=False, default_factory=dict)

    @property
    def num_parameters(self) -> int:
        return sum(lay.weight.size + lay.bias.size for lay in self.layers)

    def _embedding(self, embedding) -> np.ndarray:
        e = np.asarray(embedding)
        if e.dtype == np.bool_ or not (np.issubdtype(e.dtype, np.floating)
                                       or np.issubdtype(e.dtype, np.integer)):
            raise ValueError(f"the embedding shall be a real numeric array, got dtype {e.dtype}")
        if e.shape != (self.embedding_dim,):
            raise ValueError(f"predictor {self.predictor_id!r} takes a ({self.embedding_dim},) "
                             f"embedding, got shape {e.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            e = e.astype(np.float32)
        if not np.all(np.isfinite(e)):
            raise ValueError("the embedding holds NaN or infinite values (as float32)")
        return e

    def predict_float(self, embedding) -> np.ndarray:
        """float32 (H, W, C) in [-1, 1]: the tanh output for a (embedding_dim,) embedding
        (converted to float32 first)."""
        x = self._embedding(embedding).reshape(self.embedding_dim, 1, 1)
        for layer in self.layers:
            x = _deconv_layer(x, layer)
        t = x[:, self.crop_top:self.crop_top + self.height,
              self.crop_left:self.crop_left + self.width]
        return np.ascontiguousarray(t.transpose(1, 2, 0))

    def predict(self, embedding) -> np.ndarray:
        """uint8 (H, W, C): pred8 = clip(floor(127.5 (t + 1) + 0.5), 0, 255), in binary64
        from the binary32 t of ``predict_float``."""
        return to_uint8(self.predict_float(embedding))


def to_uint8(t: np.ndarray) -> np.ndarray:
    """pred8 = clip(floor(127.5 (t + 1) + 0.5), 0, 255) computed in binary64."""
    v = np.floor(127.5 * (np.asarray(t, dtype=np.float32).astype(np.float64) + 1.0) + 0.5)
    return np.clip(v, 0, 255).astype(np.uint8)


def conv_transpose2d(x: np.ndarray, weight: np.ndarray, stride: int,
                     padding: int) -> np.ndarray:
    """Transposed convolution of x (C_in, H, W) with weight (C_in, C_out, k, k) in binary64:
    (C_out, (H-1) s - 2p + k, (W-1) s - 2p + k), no bias."""
    cin, h, w = x.shape
    _, cout, k, _ = weight.shape
    cols = weight.reshape(cin, cout * k * k).T @ x.reshape(cin, h * w)
    cols = cols.reshape(cout, k, k, h, w)
    full = np.zeros((cout, (h - 1) * stride + k, (w - 1) * stride + k), np.float64)
    for ky in range(k):
        for kx in range(k):
            full[:, ky:ky + stride * (h - 1) + 1:stride,
                 kx:kx + stride * (w - 1) + 1:stride] += cols[:, ky, kx]
    ho, wo = (h - 1) * stride - 2 * padding + k, (w - 1) * stride - 2 * padding + k
    return full[:, padding:padding + ho, padding:padding + wo]


def _deconv_layer(x: np.ndarray, layer: DeconvLayer) -> np.ndarray:
    y = conv_transpose2d(x.astype(np.float64), layer.weight.astype(np.float64), layer.stride,
                         layer.padding)
    y += layer.bias.astype(np.float64)[:, None, None]
    y = np.maximum(y, 0.0) if layer.activation == "relu" else np.tanh(y)
    return y.astype(np.float32)


# ------------------------------------------------------------------------------------
# Weights files
# ------------------------------------------------------------------------------------

def _header_bytes(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode("ascii")


def serialize_predictor(predictor_id: str, layers: Sequence[DeconvLayer], *, height: int,
                        width: int, channels: int, crop_top: int = 0, crop_left: int = 0,
                        metadata: dict | None = None) -> bytes:
    """The bytes of a weights file (module doc); the result is checked by parsing it."""
    if not layers:
        raise ValueError("a predictor needs at least one layer")
    tensors, layer_desc, blobs = [], [], []
    for i, layer in enumerate(layers):
        w = np.asarray(layer.weight)
        b = np.asarray(layer.bias)
        if w.ndim != 4 or b.ndim != 1:
            raise ValueError(f"layer {i}: weight shall be 4-D and bias 1-D, got {w.shape} "
                             f"and {b.shape}")
        names = (f"layer{i}.weight", f"layer{i}.bias")
        layer_desc.append({"op": "conv_transpose2d", "in_channels": int(w.shape[0]),
                           "out_channels": int(w.shape[1]), "kernel": int(w.shape[2]),
                           "stride": int(layer.stride), "padding": int(layer.padding),
                           "activation": layer.activation, "weight": names[0],
                           "bias": names[1]})
        for name, arr in zip(names, (w, b)):
            tensors.append({"name": name, "shape": [int(d) for d in arr.shape],
                            "dtype": "<f4"})
            blobs.append(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "predictor_id": predictor_id, "embedding_dim": int(layer_desc[0]["in_channels"]),
              "output": {"height": int(height), "width": int(width),
                         "channels": int(channels), "crop_top": int(crop_top),
                         "crop_left": int(crop_left)},
              "layers": layer_desc, "tensors": tensors, "metadata": dict(metadata or {})}
    try:
        hb = _header_bytes(header)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the header cannot be written as JSON: {exc}") from None
    data = MAGIC + struct.pack("<I", len(hb)) + hb + b"".join(blobs)
    parse_predictor(data, "the new weights file")
    return data


def save_predictor_file(path, predictor_id: str, layers: Sequence[DeconvLayer], *,
                        height: int, width: int, channels: int, crop_top: int = 0,
                        crop_left: int = 0, metadata: dict | None = None) -> Predictor:
    """Write a weights file (atomically) and return the predictor it holds."""
    data = serialize_predictor(predictor_id, layers, height=height, width=width,
                               channels=channels, crop_top=crop_top, crop_left=crop_left,
                               metadata=metadata)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return parse_predictor(data, str(path))


def load_predictor_file(path) -> Predictor:
    """The predictor of a weights file; ValueError naming the problem when it is malformed
    (OSError when it cannot be read)."""
    path = Path(path)
    return parse_predictor(path.read_bytes(), str(path))


def _int(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} shall be an integer in {lo}..{hi}, got {value!r}")
    return value


def _obj(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} shall be a JSON object, got {type(value).__name__}")
    return value


def parse_predictor(data: bytes, name: str = "weights file") -> Predictor:
    """The predictor held by the bytes of a weights file (``name`` is for messages)."""
    try:
        return _parse(bytes(data))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _parse(data: bytes) -> Predictor:
    if len(data) < len(MAGIC) + 4:
        raise ValueError(f"truncated: {len(data)} bytes, shorter than the magic and header "
                         f"length")
    if data[:len(MAGIC)] != MAGIC:
        raise ValueError(f"bad magic {data[:len(MAGIC)]!r}, expected {MAGIC!r} (not a "
                         f"refcodec predictor weights file)")
    (hlen,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if hlen > MAX_HEADER_BYTES:
        raise ValueError(f"header length {hlen} exceeds {MAX_HEADER_BYTES} bytes")
    if start + hlen > len(data):
        raise ValueError(f"truncated: header of {hlen} bytes, only {len(data) - start} left")
    hb = data[start:start + hlen]
    try:
        header = json.loads(hb.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"the header is not ASCII JSON: {exc}") from None
    header = _obj(header, "the header")
    try:
        canonical = _header_bytes(header)
    except ValueError as exc:
        raise ValueError(f"the header holds a non-finite number: {exc}") from None
    if canonical != hb:
        raise ValueError("the header is not in canonical form (sorted keys, no whitespace)")
    expected = {"format", "format_version", "predictor_id", "embedding_dim", "output",
                "layers", "tensors", "metadata"}
    if set(header) != expected:
        missing, extra = sorted(expected - set(header)), sorted(set(header) - expected)
        raise ValueError(f"header keys: missing {missing}, unknown {extra}")
    if header["format"] != FORMAT:
        raise ValueError(f"format {header['format']!r}, expected {FORMAT!r}")
    if header["format_version"] != FORMAT_VERSION:
        raise ValueError(f"format_version {header['format_version']!r} is not supported "
                         f"(this reader knows {FORMAT_VERSION})")
    pid = header["predictor_id"]
    if not isinstance(pid, str) or not 1 <= len(pid.encode("utf-8")) <= 255 or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in pid):
        raise ValueError(f"predictor_id shall be 1..255 bytes of text, got {pid!r}")
    dim = _int(header["embedding_dim"], "embedding_dim", 1, MAX_CHANNELS)
    out = _obj(header["output"], "output")
    if set(out) != {"height", "width", "channels", "crop_top", "crop_left"}:
        raise ValueError(f"output keys shall be height, width, channels, crop_top, "
                         f"crop_left, got {sorted(out)}")
    height = _int(out["height"], "output height", 1, MAX_SIZE)
    width = _int(out["width"], "output width", 1, MAX_SIZE)
    channels = _int(out["channels"], "output channels", 1, MAX_CHANNELS)
    crop_top = _int(out["crop_top"], "crop_top", 0, MAX_SIZE)
    crop_left = _int(out["crop_left"], "crop_left", 0, MAX_SIZE)
    metadata = _obj(header["metadata"], "metadata")

    # tensors: shapes, then the data
    tlist = header["tensors"]
    if not isinstance(tlist, list):
        raise ValueError("tensors shall be a list")
    arrays, offset, total = {}, start + hlen, 0
    for k, t in enumerate(tlist):
        t = _obj(t, f"tensors[{k}]")
        if set(t) != {"name", "shape", "dtype"}:
            raise ValueError(f"tensors[{k}] keys shall be name, shape, dtype, got {sorted(t)}")
        tname, shape = t["name"], t["shape"]
        if not isinstance(tname, str) or tname in arrays:
            raise ValueError(f"tensors[{k}]: bad or repeated name {tname!r}")
        if t["dtype"] != "<f4":
            raise ValueError(f"tensor {tname}: dtype {t['dtype']!r}, only '<f4' "
                             f"(float32 little-endian) is allowed")
        if not isinstance(shape, list) or not 1 <= len(shape) <= 4:
            raise ValueError(f"tensor {tname}: shape shall be a list of 1..4 sizes")
        dims = tuple(_int(d, f"tensor {tname} shape", 1, MAX_TENSOR_VALUES) for d in shape)
        n = math.prod(dims)
        total += n
        if total > MAX_TENSOR_VALUES:
            raise ValueError(f"the tensors hold more than {MAX_TENSOR_VALUES} values")
        nbytes = 4 * n
        if offset + nbytes > len(data):
            raise ValueError(f"truncated: tensor {tname} {list(dims)} needs {nbytes} bytes at "
                             f"offset {offset}, the file has {len(data)}")
        arr = np.frombuffer(data, dtype="<f4", count=n, offset=offset).reshape(dims)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"tensor {tname} holds NaN or infinite values")
        arr = arr.astype(np.float32)
        arr.flags.writeable = False
        arrays[tname] = arr
        offset += nbytes
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes after the last tensor (the file shall "
                         f"end with the tensor data)")

    # layers
    llist = header["layers"]
    if not isinstance(llist, list) or not 1 <= len(llist) <= 64:
        raise ValueError("layers shall be a list of 1..64 layers")
    layers, used = [], set()
    chans, size_h, size_w = dim, 1, 1
    for i, lay in enumerate(llist):
        lay = _obj(lay, f"layers[{i}]")
        keys = {"op", "in_channels", "out_channels", "kernel", "stride", "padding",
                "activation", "weight", "bias"}
        if set(lay) != keys:
            raise ValueError(f"layers[{i}] keys: missing {sorted(keys - set(lay))}, unknown "
                             f"{sorted(set(lay) - keys)}")
        if lay["op"] != "conv_transpose2d":
            raise ValueError(f"layers[{i}]: op {lay['op']!r}, only 'conv_transpose2d'")
        cin = _int(lay["in_channels"], f"layers[{i}] in_channels", 1, MAX_CHANNELS)
        cout = _int(lay["out_channels"], f"layers[{i}] out_channels", 1, MAX_CHANNELS)
        k = _int(lay["kernel"], f"layers[{i}] kernel", 1, MAX_KERNEL)
        s = _int(lay["stride"], f"layers[{i}] stride", 1, MAX_STRIDE)
        p = _int(lay["padding"], f"layers[{i}] padding", 0, MAX_KERNEL - 1)
        act = lay["activation"]
        last = i == len(llist) - 1
        if act != ("tanh" if last else "relu"):
            raise ValueError(f"layers[{i}]: activation {act!r}; the hidden layers shall use "
                             f"'relu' and the last one 'tanh'")
        if cin != chans:
            raise ValueError(f"layers[{i}]: in_channels {cin}, the previous stage gives "
                             f"{chans}")
        if p >= k:
            raise ValueError(f"layers[{i}]: padding {p} shall be less than the kernel {k}")
        shapes = {"weight": (cin, cout, k, k), "bias": (cout,)}
        got = {}
        for role, shape in shapes.items():
            tname = lay[role]
            if tname not in arrays:
                raise ValueError(f"layers[{i}] {role}: no tensor {tname!r}")
            if tname in used:
                raise ValueError(f"tensor {tname!r} is used twice")
            used.add(tname)
            if arrays[tname].shape != shape:
                raise ValueError(f"shape mismatch: layers[{i}] {role} {tname!r} is "
                                 f"{list(arrays[tname].shape)}, the layer needs {list(shape)}")
            got[role] = arrays[tname]
        layer = DeconvLayer(got["weight"], got["bias"], s, p, act)
        size_h, size_w = layer.out_size(size_h), layer.out_size(size_w)
        if not 1 <= size_h <= MAX_SIZE or not 1 <= size_w <= MAX_SIZE:
            raise ValueError(f"layers[{i}] gives {size_w}x{size_h} samples (1..{MAX_SIZE})")
        layers.append(layer)
        chans = cout
    if used != set(arrays):
        raise ValueError(f"tensors not used by any layer: {sorted(set(arrays) - used)}")
    if chans != channels:
        raise ValueError(f"the last layer gives {chans} channels, output channels is "
                         f"{channels}")
    if crop_top + height > size_h or crop_left + width > size_w:
        raise ValueError(f"output {width}x{height} at crop ({crop_left}, {crop_top}) does not "
                         f"fit in the last layer's {size_w}x{size_h}")
    return Predictor(predictor_id=pid, sha256=hashlib.sha256(data).digest(),
                     embedding_dim=dim, height=height, width=width, channels=channels,
                     layers=tuple(layers), crop_top=crop_top, crop_left=crop_left,
                     metadata=metadata)


# ------------------------------------------------------------------------------------
# Shipped predictors
# ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def shipped_predictors() -> dict[str, Predictor]:
    """predictor_id -> Predictor of every weights file in refcodec/face/weights/ (loaded on
    first call).  A shipped file must be named <predictor_id>.bin."""
    found = {}
    if WEIGHTS_DIR.is_dir():
        for path in sorted(WEIGHTS_DIR.glob(f"*{SUFFIX}")):
            pred = load_predictor_file(path)
            if path.name != f"{pred.predictor_id}{SUFFIX}":
                raise ValueError(f"{path}: holds predictor {pred.predictor_id!r}; a shipped "
                                 f"file shall be named {pred.predictor_id}{SUFFIX}")
            found[pred.predictor_id] = pred
    return found


def find_predictor(predictor_id: str, sha256: bytes) -> Predictor | None:
    """The shipped predictor with this id and weights-file SHA-256, or None."""
    if not isinstance(predictor_id, str) or not isinstance(sha256, (bytes, bytearray)):
        return None
    pred = shipped_predictors().get(predictor_id)
    if pred is None or bytes(sha256) != pred.sha256:
        return None
    return pred
