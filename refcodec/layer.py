"""The feature-layer unit: one tensor <-> a layer_header and a layer_data unit (clause 9).

Encoder (informative): tensor -> quantize -> channel order -> pad -> tile -> HEVC ->
(layer header, sample_md5, hevc_payload).
Decoder (normative): check the parameter sets -> HEVC decode -> compare sample_md5 ->
untile -> crop -> undo channel order -> dequantize -> tensor in its source dtype and layout.

The stream that carries layers and faces is assembled in refcodec.codec, above this module
and refcodec.face.codec; identifiers both kinds share are in refcodec.ids, below both.
"""

from __future__ import annotations

import dataclasses
import hashlib

import ml_dtypes
import numpy as np

from . import packing, progressive, quant, threads
from .hevc import params
from .hevc.annexb import hash_layout as _hash_layout
from .hevc.annexb import planes_md5
from .enums import ALLOWED_BIT_DEPTHS, DTYPE_INFO, LEVELS, PackingType, PadMode, ParamFormat, \
    PermutationCoding, QuantizerType, SourceDtype, SourceLayout
from .errors import BackendError, ConformanceViolation, EncoderInputError
from .records import Layer, LayerHeader

NUMPY_DTYPES = {SourceDtype.FLOAT32: np.dtype(np.float32),
                SourceDtype.FLOAT16: np.dtype(np.float16),
                SourceDtype.BFLOAT16: np.dtype(ml_dtypes.bfloat16)}
MIN_PICTURE_SIDE = 16   # libx265 codes no smaller picture (informative encoder limit)


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Settings of the informative encoder for one layer (Annex A).

    qp          HEVC slice QP, 0..51 (ignored when lossless)
    quantizer   "log" (the paper's Eq. 5/6), "uniform" (min-max), "sqrt" (format 1.2,
                quantizer_type 3: min-max with levels finest near max, for non-negative
                maps) or "integer" (exact, for integer-valued tensors whose range fits the
                bit depth)
    bit_depth   8, 10 or 12
    per_channel one parameter set per channel instead of one per tensor
    packing     "auto" (one channel per picture when the padded map is at least 16x16,
                else the smallest tile grid that is), "channel", "tiled" or "dense"
                (format 1.2, packing_type 2: unpadded maps side by side, only the picture
                padded to multiples of 8; for small maps such as 1x1 and 7x7)
    tile_grid   (rows, cols) for "tiled" and "dense"; default: near-square grid of one
                batch item
    param_format  "binary32" or "binary16" (format 1.2: 2-byte quantizer parameters, chosen
                so that they still cover the data; clause 8.3.15)
    permutation_coding  how channel_order is coded: "auto" (the compact code of format 1.2
                when the layer uses 1.2 syntax anyway, dense or binary16, else 32 bits per
                entry, readable by 1.1 decoders), "compact" (format 1.2, Ceil(Log2 C) bits
                per entry), "grouped" (format 1.2: a group number per channel, the channels
                sorted by group; for orders made of a few increasing runs, which it codes
                in Ceil(Log2 runs) bits per channel) or "u32"
    pad_mode    "replicate" (border replication, as in the paper) or "zero"
    channel_order  a permutation of range(C): slot k carries source channel order[k]
    lossless    HEVC lossless coding (transquant bypass)
    layout      "NCHW" or "NHWC": the layout of the tensor given to the encoder
    preset      libx265 preset
    verify      decode the coded payload and check it against libx265's picture hashes
    x265_params libx265 options added to the informative encoder's, ``name=value`` items
                joined by ``:`` (e.g. ``sao=0:rdoq-level=2``; Annex A.3); the options the
                encoder relies on (qp, hash, info, threads, ...) cannot be overridden, and
                it needs the libx265 backend
    """

    qp: int = 22
    quantizer: str = "log"
    bit_depth: int = 8
    per_channel: bool = False
    packing: str = "auto"
    tile_grid: tuple[int, int] | None = None
    pad_mode: str = "replicate"
    channel_order: tuple[int, ...] | None = None
    lossless: bool = False
    layout: str = "NCHW"
    preset: str = "medium"
    verify: bool = False
    x265_params: str = ""
    param_format: str = "binary32"
    permutation_coding: str = "auto"

    def __post_init__(self):
        from .hevc.pyav import PRESETS
        def bad(msg):
            raise EncoderInputError(msg)

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        for flag in ("per_channel", "lossless", "verify"):
            value = getattr(self, flag)
            if not isinstance(value, (bool, np.bool_)):
                bad(f"{flag} shall be True or False, got {value!r}")
            object.__setattr__(self, flag, bool(value))
        for name in ("quantizer", "packing", "pad_mode", "layout", "preset", "param_format",
                     "permutation_coding"):
            if not isinstance(getattr(self, name), str):
                bad(f"{name} shall be a string, got {getattr(self, name)!r}")
        if isinstance(self.qp, bool) or not isinstance(self.qp, (int, np.integer)) \
                or not 0 <= self.qp <= 51:
            bad(f"qp shall be an integer in 0..51, got {self.qp!r}")
        if self.quantizer not in quant.QUANTIZER_NAMES:
            bad(f"quantizer shall be one of {', '.join(quant.QUANTIZER_NAMES)}, "
                f"got {self.quantizer!r}")
        if not is_int(self.bit_depth) or self.bit_depth not in ALLOWED_BIT_DEPTHS:
            bad(f"bit_depth shall be 8, 10 or 12, got {self.bit_depth!r}")
        if self.packing not in ("auto", "channel", "tiled", "dense"):
            bad(f"packing shall be auto, channel, tiled or dense, got {self.packing!r}")
        if self.param_format not in ("binary32", "binary16"):
            bad(f"param_format shall be binary32 or binary16, got {self.param_format!r}")
        if self.permutation_coding not in ("auto", "compact", "grouped", "u32"):
            bad(f"permutation_coding shall be auto, compact, grouped or u32, got "
                f"{self.permutation_coding!r}")
        if self.tile_grid is not None:
            if self.packing not in ("tiled", "dense"):
                bad("tile_grid needs packing='tiled' or 'dense'")
            if (not isinstance(self.tile_grid, (tuple, list)) or len(self.tile_grid) != 2
                    or not all(is_int(v) for v in self.tile_grid)
                    or not all(1 <= v <= 65535 for v in self.tile_grid)
                    or self.tile_grid[0] * self.tile_grid[1] < 2):
                bad(f"tile_grid shall be (rows, cols) with 1..65535 each and at least two "
                    f"tiles, got {self.tile_grid!r}")
        if self.pad_mode not in ("replicate", "zero"):
            bad(f"pad_mode shall be replicate or zero, got {self.pad_mode!r}")
        if self.layout not in ("NCHW", "NHWC"):
            bad(f"layout shall be NCHW or NHWC, got {self.layout!r}")
        if self.preset not in PRESETS:
            bad(f"preset shall be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if not isinstance(self.x265_params, str):
            bad(f"x265_params shall be a string, got {self.x265_params!r}")
        problem = check_x265_params(self.x265_params)
        if problem:
            bad(f"x265_params: {problem}")
        if self.channel_order is not None:
            order = self.channel_order
            if isinstance(order, np.ndarray) and order.ndim == 1:
                order = order.tolist()
            if not isinstance(order, (tuple, list)) or not all(is_int(v) for v in order) \
                    or sorted(order) != list(range(len(order))):
                n = len(order) if isinstance(order, (tuple, list)) else 0
                bad(f"channel_order shall be a permutation of 0..{n - 1 if n else 'C-1'} (a "
                    f"sequence of integers), got {self.channel_order!r}")
            object.__setattr__(self, "channel_order", tuple(int(v) for v in order))


#: libx265 options the informative encoder sets itself (Annex A.3): its slice QP, its
#: reproducibility (threads, no version SEI) and its sample_md5 (hash SEI) depend on them.
RESERVED_X265_PARAMS = frozenset({
    "qp", "crf", "bitrate", "vbv-maxrate", "vbv-bufsize", "lossless", "hash", "info",
    "pools", "numa-pools", "frame-threads", "lookahead-threads", "log-level",
    "input-depth", "output-depth", "input-csp", "interlace", "ipratio"})


def check_x265_params(text: str) -> str | None:
    """What is wrong with an ``x265_params`` string (None when nothing): one line of
    ``name=value`` items joined by ``:``, names of letters, digits and '-', no reserved
    name (RESERVED_X265_PARAMS)."""
    if not text:
        return None
    for item in text.split(":"):
        name, eq, value = item.partition("=")
        if not eq or not name or not value or "=" in value or any(
                c in value for c in " \t\n\r\0") or not all(
                c.isascii() and (c.isalnum() or c == "-") for c in name):
            return f"expected name=value items joined by ':', got {item!r}"
        if name.lower() in RESERVED_X265_PARAMS or name.lower().removeprefix(
                "no-") in RESERVED_X265_PARAMS:
            return f"{name} is set by the encoder itself (Annex A.3) and cannot be overridden"
    return None


# ------------------------------------------------------------------------------------
# Tensor input
# ------------------------------------------------------------------------------------

def _as_numpy(x, name: str) -> tuple[np.ndarray, SourceDtype]:
    """numpy view of a numpy array or torch tensor, and its source dtype."""
    if type(x).__module__.startswith("torch"):
        import torch
        if not isinstance(x, torch.Tensor):
            raise EncoderInputError(f"layer {name!r}: expected a tensor, got {type(x).__name__}")
        if x.is_meta or x.layout != torch.strided:
            raise EncoderInputError(f"layer {name!r}: a {'meta' if x.is_meta else str(x.layout)}"
                                    f" tensor holds no dense data; give a dense tensor")
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            return x.float().numpy().astype(ml_dtypes.bfloat16), SourceDtype.BFLOAT16
        x = x.numpy()
    if not isinstance(x, np.ndarray):
        raise EncoderInputError(f"layer {name!r}: expected a numpy array or torch tensor, got "
                                f"{type(x).__name__}")
    if x.dtype.byteorder == (">" if np.little_endian else "<"):
        x = x.astype(x.dtype.newbyteorder("="))   # a big-endian .npy: exact conversion
    for code, dt in NUMPY_DTYPES.items():
        if x.dtype == dt:
            return x, code
    raise EncoderInputError(f"layer {name!r}: dtype {x.dtype} is not a source dtype "
                            f"(float32, float16, bfloat16); cast it first")


# ------------------------------------------------------------------------------------
# Encoder
# ------------------------------------------------------------------------------------

def sample_md5(picture_md5s: list[bytes]) -> bytes:
    """sample_md5 (clause 8.4.1): MD5 of the concatenated picture MD5s in output order."""
    return hashlib.md5(b"".join(picture_md5s)).digest()


def _tile_grid(name, shape: tuple[int, int, int, int], cfg: EncoderConfig) -> tuple[int, int]:
    """(tile_rows, tile_cols) the encoder uses for an N x C x H x W tensor."""
    n, c, h, w = shape
    th, tw = h + -h % 8, w + -w % 8
    if cfg.packing == "dense":
        rows, cols = cfg.tile_grid or packing.near_square_grid(c, h, w, MIN_PICTURE_SIDE)
        pic_h, pic_w = _picture_size(shape, cfg, rows, cols)
        if min(pic_h, pic_w) < MIN_PICTURE_SIDE:
            raise EncoderInputError(
                f"layer {name!r}: dense tile grid {rows}x{cols} gives {pic_w}x{pic_h} "
                f"pictures, smaller than the {MIN_PICTURE_SIDE}x{MIN_PICTURE_SIDE} libx265 "
                f"can code")
        return rows, cols
    if cfg.packing == "channel" or (cfg.packing == "auto" and min(th, tw) >= MIN_PICTURE_SIDE):
        if min(th, tw) < MIN_PICTURE_SIDE:
            raise EncoderInputError(
                f"layer {name!r}: packing 'channel' gives {tw}x{th} pictures, smaller than "
                f"the {MIN_PICTURE_SIDE}x{MIN_PICTURE_SIDE} libx265 can code; use packing "
                f"'auto' or 'tiled'")
        rows = cols = 1
    elif cfg.packing == "auto":
        rows, cols = packing.min_tile_grid(th, tw, MIN_PICTURE_SIDE)
    else:
        rows, cols = cfg.tile_grid or packing.near_square_grid(c, th, tw, MIN_PICTURE_SIDE)
        if min(rows * th, cols * tw) < MIN_PICTURE_SIDE:
            raise EncoderInputError(
                f"layer {name!r}: tile grid {rows}x{cols} gives {cols * tw}x{rows * th} "
                f"pictures, smaller than the {MIN_PICTURE_SIDE}x{MIN_PICTURE_SIDE} libx265 "
                f"can code")
    return rows, cols


def _picture_size(shape: tuple[int, int, int, int], cfg: EncoderConfig, rows: int,
                  cols: int) -> tuple[int, int]:
    """(PictureHeight, PictureWidth) of an N x C x H x W tensor in a rows x cols grid
    (clause 8.3.14): maps padded to multiples of 8, or with packing "dense" (and at least
    two tiles) the whole picture padded."""
    h, w = shape[2], shape[3]
    if cfg.packing == "dense" and rows * cols > 1:
        return rows * h + -(rows * h) % 8, cols * w + -(cols * w) % 8
    return rows * (h + -h % 8), cols * (w + -w % 8)


def check_size(name, shape: tuple[int, int, int, int], cfg: EncoderConfig) -> None:
    """EncoderInputError, before anything is allocated, when a tensor of ``shape`` coded
    with ``cfg`` exceeds the limits of the highest level (clause 11.2): no decoder would
    have to decode it, and the pictures alone could exhaust memory."""
    n, c, h, w = shape
    top = LEVELS[max(LEVELS)]
    rows, cols = _tile_grid(name, shape, cfg)
    pic_h, pic_w = _picture_size(shape, cfg, rows, cols)
    pictures = -(-(n * c) // (rows * cols))
    excess = top.layer_excess(n * c * h * w, c, pic_w, pic_h, pictures)
    if excess is not None:
        what, value, limit = excess
        raise EncoderInputError(
            f"layer {name!r}: {what} {value} exceeds {limit}, the limit of level "
            f"{top.level_idc}, the highest (clause 11.2; {pic_w}x{pic_h} pictures, tile "
            f"grid {rows}x{cols}): split the tensor into smaller layers"
            + (" or use a smaller tile grid" if rows * cols > 1 else ""))


def _layer_header(name, x: np.ndarray, dtype: SourceDtype, cfg: EncoderConfig,
                  params) -> LayerHeader:
    n, c, h, w = x.shape
    rows, cols = _tile_grid(name, x.shape, cfg)
    if cfg.channel_order is not None and sorted(cfg.channel_order) != list(range(c)):
        raise EncoderInputError(f"layer {name!r}: channel_order shall be a permutation of "
                                f"0..{c - 1}")
    # a dense grid of one tile is the geometry of packing_type 0 (clause 8.3.9)
    dense = cfg.packing == "dense" and rows * cols > 1
    if dense:
        pad_b, pad_r = -(rows * h) % 8, -(cols * w) % 8
        kind = PackingType.DENSE
    else:
        pad_b, pad_r = -h % 8, -w % 8
        kind = PackingType.CHANNEL_PER_PICTURE if rows * cols == 1 else PackingType.TILED
    binary16 = cfg.param_format == "binary16"
    coding = PermutationCoding.U32
    ext = {}
    if cfg.channel_order is not None:
        if cfg.permutation_coding == "grouped":
            coding = PermutationCoding.GROUPED
            try:
                groups, bits = packing.groups_of_order(cfg.channel_order)
            except ValueError as e:
                raise EncoderInputError(f"layer {name!r}: permutation_coding grouped: {e}; "
                                        f"use compact") from None
            ext = dict(channel_groups=groups, group_bits=bits)
        elif cfg.permutation_coding == "compact" or (cfg.permutation_coding == "auto"
                                                     and (dense or binary16)):
            coding = PermutationCoding.COMPACT
    if binary16 or coding != PermutationCoding.U32:   # a layer_header_ext unit (8.3.15)
        ext.update(param_format=ParamFormat.BINARY16 if binary16 else ParamFormat.BINARY32,
                   permutation_coding=coding)
    return LayerHeader(
        layer_id=name,
        source_layout=SourceLayout[cfg.layout], source_dtype=dtype,
        batch_size=n, num_channels=c, height=h, width=w, sample_bit_depth=cfg.bit_depth,
        quantizer_type=QuantizerType(quant.QUANTIZER_NAMES[cfg.quantizer]),
        per_channel_quant_flag=cfg.per_channel, quant_params=tuple(params),
        channel_permutation=cfg.channel_order,
        packing_type=kind, tile_rows=rows, tile_cols=cols,
        pad_mode=PadMode.REPLICATE if cfg.pad_mode == "replicate" else PadMode.ZERO,
        pad_bottom=pad_b, pad_right=pad_r, **ext)


def encode_layer(name: str, tensor, cfg: EncoderConfig,
                 backend) -> tuple[LayerHeader, bytes, bytes]:
    """One tensor -> (layer header, sample_md5, hevc_payload): quantize, pack, code with
    HEVC (and, with cfg.verify, decode the payload and compare it with libx265's picture
    hashes)."""
    if not isinstance(cfg, EncoderConfig):
        raise EncoderInputError(f"layer {name!r}: the config shall be an EncoderConfig, got "
                                f"{type(cfg).__name__}")
    arr, dtype = _as_numpy(tensor, name)
    if arr.ndim != 4:
        raise EncoderInputError(f"layer {name!r}: a tensor shall have 4 dimensions "
                                f"({cfg.layout}), got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise EncoderInputError(f"layer {name!r}: the tensor is empty {tuple(arr.shape)}")
    shape = tuple(int(v) for v in arr.shape)
    check_size(name, shape if cfg.layout == "NCHW" else
               (shape[0], shape[3], shape[1], shape[2]), cfg)
    x = arr.astype(np.float32, copy=False)
    if cfg.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    qtype = quant.QUANTIZER_NAMES[cfg.quantizer]
    try:
        params = quant.choose_params(x, qtype, cfg.bit_depth, cfg.per_channel,
                                     DTYPE_INFO[dtype].precision,
                                     binary16=cfg.param_format == "binary16")
        samples = quant.quantize(x, qtype, params, cfg.bit_depth)
    except quant.QuantizerInputError as exc:
        raise EncoderInputError(f"layer {name!r}: {exc}") from None
    header = _layer_header(name, x, dtype, cfg, params)
    pictures = packing.pack(samples, packing.Layout.of(header))
    if cfg.x265_params:
        with_params = getattr(backend, "with_x265_params", None)
        if with_params is None:
            raise EncoderInputError(f"layer {name!r}: x265_params needs the libx265 backend, "
                                    f"not {getattr(backend, 'name', type(backend).__name__)}")
        backend = with_params(cfg.x265_params)
    payload, hashes = backend.encode_pictures(pictures, cfg.bit_depth, cfg.qp,
                                              cfg.lossless, cfg.preset)
    if cfg.verify:
        decoded = backend.decode_pictures(payload, header.num_pictures,
                                          header.picture_height, header.picture_width,
                                          cfg.bit_depth)
        if planes_md5(decoded, cfg.bit_depth) != hashes:
            raise BackendError(f"layer {name!r}: the decoded pictures do not match "
                               f"libx265's picture hashes")
    return header, sample_md5(hashes), payload



# ------------------------------------------------------------------------------------
# Decoder
# ------------------------------------------------------------------------------------

def rebase(exc: ConformanceViolation, layer: Layer) -> ConformanceViolation:
    """A payload-relative violation from refcodec.hevc.params, placed in the stream."""
    return type(exc)(exc.message, clause=exc.clause, offset=layer.payload_offset + exc.offset,
                     path=f"layers[{layer.index}].{exc.path}")


def payload_violations(layer: Layer) -> list[ConformanceViolation]:
    """Clause 10 violations of a layer's HEVC parameter sets, read before any decoding."""
    h = layer.header
    return [rebase(p, layer) for p in params.check_payload(
        layer.hevc_payload, bit_depth=h.sample_bit_depth, picture_width=h.picture_width,
        picture_height=h.picture_height, num_pictures=h.num_pictures)]


def sample_md5_violation(layer: Layer, pictures: np.ndarray,
                         digests: list[bytes] | None = None) -> ConformanceViolation | None:
    """The clause 8.4.1 violation when the decoded planes (whose picture MD5s are
    ``digests``, when already known) do not match sample_md5."""
    if digests is None:
        digests = planes_md5(pictures, layer.header.sample_bit_depth)
    got = sample_md5(digests)
    if got == layer.sample_md5:
        return None
    return ConformanceViolation(
        f"sample_md5 shall be the MD5 of the decoded planes: stored {layer.sample_md5.hex()}, "
        f"decoded {got.hex()}", clause="8.4.1", offset=layer.payload_offset - 16,
        path=f"layers[{layer.index}].sample_md5")


def decode_pictures(layer: Layer, backend=None) -> np.ndarray:
    """Decode a layer's HEVC payload to its (P, H, W) planes (count, size and format
    checked against the header), without comparing sample_md5."""
    from .hevc import default_backend
    backend = backend or default_backend()
    h = layer.header
    return backend.decode_pictures(layer.hevc_payload, h.num_pictures, h.picture_height,
                                   h.picture_width, h.sample_bit_depth,
                                   offset=layer.payload_offset,
                                   path=f"layers[{layer.index}].hevc_payload")


def _decode_checked(layer: Layer, backend, then=None):
    """Check the parameter sets, decode the payload and check sample_md5 (clauses 9.2, 10):
    (pictures, then(pictures)), ``then`` run while the picture MD5s are computed on the
    helper thread (refcodec.threads) and its result returned only when sample_md5 matches."""
    problems = payload_violations(layer)   # before FFmpeg allocates any picture
    if problems:
        raise problems[0]
    pictures = decode_pictures(layer, backend)
    digests, result = threads.md5_beside(
        _hash_layout(pictures, layer.header.sample_bit_depth),
        None if then is None else lambda: then(pictures))
    mismatch = sample_md5_violation(layer, pictures, digests)
    if mismatch:
        raise mismatch
    return pictures, result


def decode_samples(layer: Layer, backend=None) -> np.ndarray:
    """Check the parameter sets, decode the payload and check sample_md5 (clauses 9.2, 10)."""
    return _decode_checked(layer, backend)[0]


def reconstruct(header: LayerHeader, pictures: np.ndarray, *,
                overwrite: bool = False) -> np.ndarray:
    """Planes -> tensor (clauses 9.3 and 9.4): untile, crop, undo the channel order,
    dequantize, and return the tensor in its source dtype and layout.

    ``overwrite``: the pictures are not needed afterwards; when the tensor has their memory
    layout and element size (2-byte dtypes at 10 and 12 bits, no tiling, padding or channel
    order, NCHW or one channel), it is dequantized into their memory (same values)."""
    if overwrite and _in_place(header, pictures):
        return _dequantize_in_place(header, pictures)
    samples = packing.unpack(pictures, packing.Layout.of(header))
    if header.source_layout == SourceLayout.NHWC and header.num_channels > 1:
        return _dequantize_nhwc(samples, header)   # no NCHW tensor and transposed copy
    out = quant.dequantize(samples, int(header.quantizer_type), list(header.quant_params),
                           header.sample_bit_depth, NUMPY_DTYPES[header.source_dtype])
    if header.source_layout == SourceLayout.NHWC:   # one channel: the same memory order
        out = out.reshape(out.shape[0], out.shape[2], out.shape[3], 1)
    return out


def _in_place(header: LayerHeader, pictures: np.ndarray) -> bool:
    """Whether the tensor of ``header`` can take the memory of ``pictures``."""
    return (pictures.dtype == np.uint16 and pictures.flags.c_contiguous
            and pictures.flags.writeable and pictures.base is None
            and NUMPY_DTYPES[header.source_dtype].itemsize == 2
            and header.tiles_per_picture == 1 and not header.pad_bottom
            and not header.pad_right and header.channel_permutation is None
            and (header.source_layout == SourceLayout.NCHW or header.num_channels == 1)
            and pictures.shape == (header.num_slots, header.height, header.width))


def _dequantize_in_place(header: LayerHeader, pictures: np.ndarray) -> np.ndarray:
    """reconstruct(header, pictures) in the memory of ``pictures`` (see _in_place): each
    block of samples is copied to an index array before its values are written over it."""
    depth, dtype = header.sample_bit_depth, NUMPY_DTYPES[header.source_dtype]
    params = list(header.quant_params)
    c = header.num_channels
    if len(params) not in (1, c):
        raise ValueError(f"{len(params)} parameter sets for {c} channels")
    if pictures.size and int(pictures.max()) >> depth:
        raise ValueError(f"samples shall be below 2**{depth}")
    qtype = int(header.quantizer_type)
    tables = [quant.output_table(qtype, p, depth, dtype) for p in params]
    flat = pictures.reshape(-1)
    dest = flat.view(dtype)
    plane = header.height * header.width
    index = np.empty(min(quant.TAKE_BLOCK, flat.size), dtype=np.intp)
    # one parameter set: the whole tensor as one run; else one run per channel map
    runs = [(0, flat.size, tables[0])] if len(tables) == 1 else [
        (s * plane, (s + 1) * plane, tables[s % c]) for s in range(header.num_slots)]
    for start, stop, table in runs:
        for i in range(start, stop, quant.TAKE_BLOCK):
            j = min(i + quant.TAKE_BLOCK, stop)
            idx = index[:j - i]
            idx[...] = flat[i:j]
            np.take(table, idx, out=dest[i:j], mode="wrap")
    return dest.reshape(header.shape)


def _dequantize_nhwc(samples: np.ndarray, header: LayerHeader) -> np.ndarray:
    """quant.dequantize(samples, ...).transpose(0, 2, 3, 1), written directly into the N x H
    x W x C output a block of rows at a time (the same output tables, so bit-identical): the
    memory is the output plus a block, not the NCHW tensor and its transposed copy."""
    n, c, h, w = samples.shape
    depth, dtype = header.sample_bit_depth, NUMPY_DTYPES[header.source_dtype]
    params = list(header.quant_params)
    if len(params) not in (1, c):
        raise ValueError(f"{len(params)} parameter sets for {c} channels")
    if samples.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"samples shall be uint8 or uint16, got {samples.dtype}")
    if np.iinfo(samples.dtype).max >> depth and samples.size \
            and int(samples.max()) >> depth:
        raise ValueError(f"samples shall be below 2**{depth}")
    size = 1 << depth
    # one table per parameter set, end to end: channel k reads entries k*size + q
    tables = np.concatenate([quant.output_table(int(header.quantizer_type), p, depth, dtype)
                             for p in params])
    offsets = None
    if len(params) > 1:
        offsets = (np.arange(c, dtype=np.intp) * size).reshape(c, 1, 1)
    out = np.empty((n, h, w, c), dtype=dtype)
    rows = max(1, min(h, quant.TAKE_BLOCK // (c * w)))
    block = np.empty(c * rows * w, dtype=dtype)
    index = np.empty(c * rows * w, dtype=np.intp)
    for i in range(n):
        for r in range(0, h, rows):
            src = samples[i, :, r:r + rows]          # C x rows x W
            count = src.size
            idx = index[:count].reshape(src.shape)
            if offsets is None:
                idx[...] = src
            else:
                np.add(src, offsets, out=idx)
            dst = block[:count].reshape(src.shape)
            np.take(tables, idx, out=dst, mode="wrap")
            out[i, r:r + src.shape[1]] = dst.transpose(1, 2, 0)
    return out


def decode_layer(layer: Layer, backend=None) -> np.ndarray:
    """reconstruct(layer.header, decode_samples(layer)), returned only when sample_md5
    matches.  With a backend that delivers the pictures a batch at a time (``iter_pictures``)
    the tensor is built as they arrive (refcodec.progressive): the pictures of the whole
    layer are never held beside it."""
    from .hevc import default_backend
    backend = backend or default_backend()
    h = layer.header
    if hasattr(backend, "iter_pictures"):
        problems = payload_violations(layer)   # before FFmpeg allocates any picture
        if problems:
            raise problems[0]
        building = progressive.Progressive(h, NUMPY_DTYPES[h.source_dtype])
        for _, planes in backend.iter_pictures(
                layer.hevc_payload, h.num_pictures, h.picture_height, h.picture_width,
                h.sample_bit_depth, offset=layer.payload_offset,
                path=f"layers[{layer.index}].hevc_payload",
                batch=progressive.batch_pictures(h)):
            building.add(planes)
        digests, out = building.finish()
        mismatch = sample_md5_violation(layer, None, digests)
        if mismatch:
            raise mismatch
        return out
    if h.sample_bit_depth > 8 and NUMPY_DTYPES[h.source_dtype].itemsize == 2:
        # a 2-byte tensor may take the pictures' memory: sample_md5 is checked first, as
        # nothing may write to the planes while they are hashed (refcodec.threads)
        pictures = _decode_checked(layer, backend)[0]
        return reconstruct(h, pictures, overwrite=True)
    return _decode_checked(layer, backend, lambda p: reconstruct(h, p))[1]


