"""Conformance bitstreams of VFC (spec clause 12): generator, manifest, runner, planes dump.

``generate`` codes the streams of a *codec-features table* (CSV, one row per stream) and
writes, under one output directory::

    streams/<name>.vfc       the bitstreams, valid and invalid
    reference/<name>.npz     the reference decoder's output tensors of each valid stream
    manifest.json            everything a test needs: checksums, tolerances, expected errors
    index.md                 a generated table of the streams

Invalid streams are valid streams altered in one place (a header field, a CRC, a unit, an
HEVC parameter set); each alteration in ``ALTERATIONS`` targets one clause, and the
generator checks that the reference decoder refuses the result with that clause before it
records it.  ``run_suite`` runs any decoder (a command line) over a manifest and compares its
output with the references: sample planes bit-exactly (tier 1, clause 12.2), tensors
bit-exactly or within the tolerance of clause 12.3 (tier 2).

conformance/README.md documents the table columns, the manifest fields and the runner.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import decimal
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import shlex
import signal
import struct
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import ml_dtypes
import numpy as np

from . import FORMAT_VERSION, __version__, bitstream
from . import syntax as vfc_syntax
from .codec import (NUMPY_DTYPES, EncoderConfig, decode, decode_samples, encode, read_headers,
                    reconstruct)
from .enums import (DTYPE_INFO, LEVELS, Embedder, PackingType, PredictorType, QuantizerType,
                    SourceDtype, SourceLayout, TextureCodec, UnitType)
from .errors import BitstreamError, RefcodecError
from .face import entropy
from .face import texture as face_texture
from .face.codec import FaceConfig, FaceInput, decode_faces, decode_texture_checked
from .hevc import params as hevc_params
from .hevc.annexb import (PPS_NUT, SPS_NUT, VPS_NUT, emulation_prevention, join_nal_units,
                          nal_unit_type, rbsp, split_nal_units)
from .records import Layer, QuantParams, Stream, StreamHeader
from .syntax import STREAM_HEADER_SIZE, UNIT_OVERHEAD, UNIT_PREFIX, VERSION_MINOR
from .verify import verify

#: Version of the manifest layout (conformance/README.md); raised on incompatible changes.
#: 2 added the faces of format 1.1 (a runner of version 1 would not check them).
SCHEMA_VERSION = 2
#: Manifest versions the runner reads (a version 1 manifest has no faces).
READABLE_SCHEMA_VERSIONS = (1, 2)
DEFAULT_SUITE_NAME = "vfc-conformance"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class SuiteError(Exception):
    """A bad features table, manifest or decoder command, or a generation check that failed.
    The CLI prints it as one line and exits with status 2."""


# ------------------------------------------------------------------------------------
# The codec-features table
# ------------------------------------------------------------------------------------

DTYPE_NAMES = {"float32": SourceDtype.FLOAT32, "float16": SourceDtype.FLOAT16,
               "bfloat16": SourceDtype.BFLOAT16}
DATA_KINDS = ("relu", "gaussian", "constant", "integer", "ramp")
EXTRA_UNITS = ("", "skippable")
#: Values of the ``face`` column: no face, a base layer only, or the enhancement layer's
#: texture codec.
FACE_KINDS = ("", "base", "hevc", "jpeg", "jpeg2000")


@dataclasses.dataclass(frozen=True)
class Features:
    """One row of the codec-features table: the settings of one valid stream.

    ``batch``..``width`` are N, C, H and W whatever the layout; ``layers`` streams get layer
    ids ``<name>.0``, ``<name>.1``, ... with data seeds ``seed``, ``seed + 1``, ...  For a
    stream coded from the user's tensors (``--tensors``) ``data`` is ``file:<name>`` and the
    shape columns are 0 (the shapes are those of the tensors).

    ``face`` adds ``faces`` synthetic faces (``synthetic_face``; face ids ``face0``,
    ``face1``, ..., seeds ``seed``, ``seed + 1``, ...): ``base`` codes the embedding only,
    ``hevc``/``jpeg``/``jpeg2000`` also the image's residual texture with that codec, with
    ``face_channels`` image channels, the HEVC texture QP ``face_qp`` and the predictor
    ``predictor`` (``none``: the control, no prediction).  ``layers`` may then be 0.
    """

    name: str
    purpose: str = ""
    batch: int = 1
    channels: int = 4
    height: int = 16
    width: int = 16
    dtype: str = "float32"
    layout: str = "NCHW"
    quantizer: str = "log"
    bit_depth: int = 8
    per_channel: bool = False
    packing: str = "auto"
    tile_grid: str = ""
    pad_mode: str = "replicate"
    channel_order: str = "identity"
    qp: int = 22
    lossless: bool = False
    layers: int = 1
    data: str = "relu"
    seed: int = 0
    preset: str = "medium"
    extra_unit: str = ""
    future_minor: bool = False
    face: str = ""
    faces: int = 1
    face_channels: int = 3
    face_qp: int = 32
    predictor: str = "none"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def grid(self) -> tuple[int, int] | None:
        if not self.tile_grid:
            return None
        rows, cols = self.tile_grid.split("x")
        return int(rows), int(cols)

    def encoder_config(self, channels: int) -> EncoderConfig:
        return EncoderConfig(qp=self.qp, quantizer=self.quantizer, bit_depth=self.bit_depth,
                             per_channel=self.per_channel, packing=self.packing,
                             tile_grid=self.grid, pad_mode=self.pad_mode,
                             channel_order=channel_order(self.channel_order, channels),
                             lossless=self.lossless, layout=self.layout, preset=self.preset)


FEATURE_COLUMNS = tuple(f.name for f in dataclasses.fields(Features))
_INT_COLUMNS = {"batch", "channels", "height", "width", "bit_depth", "qp", "layers", "seed",
                "faces", "face_channels", "face_qp"}
_BOOL_COLUMNS = {"per_channel", "lossless", "future_minor"}


def channel_order(text: str, channels: int) -> tuple[int, ...] | None:
    """The channel order a table cell names: ``identity`` (no channel_permutation),
    ``reverse``, ``shuffle:SEED`` (a seeded random permutation) or an explicit list such as
    ``2;0;1`` (signalled even when it is the identity)."""
    text = text.strip()
    if text in ("", "identity"):
        return None
    if text == "reverse":
        return tuple(range(channels - 1, -1, -1))
    if text.startswith("shuffle:"):
        seed = int(text.split(":", 1)[1])
        return tuple(int(v) for v in np.random.default_rng(seed).permutation(channels))
    order = tuple(int(v) for v in re.split(r"[;,]", text))
    if sorted(order) != list(range(channels)):
        raise ValueError(f"{text!r} is not a permutation of 0..{channels - 1}")
    return order


def _check_name(name: str, where: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise SuiteError(f"{where}: name {name!r} shall be 1..100 letters, digits, '_', '.' or "
                         f"'-', starting with a letter or digit")


def parse_features(row: Mapping[str, str], where: str = "features") -> Features:
    """A Features from the text cells of one table row (empty cells take the defaults)."""
    unknown = sorted(set(row) - set(FEATURE_COLUMNS))
    if unknown:
        raise SuiteError(f"{where}: unknown column(s) {', '.join(unknown)}; the columns are "
                         f"{', '.join(FEATURE_COLUMNS)}")
    name = (row.get("name") or "").strip()
    _check_name(name, where)
    where = f"{where} (stream {name})"
    values: dict = {}
    for column, text in row.items():
        text = (text or "").strip()
        if column == "name" or text == "":
            continue
        try:
            if column in _INT_COLUMNS:
                values[column] = int(text)
            elif column in _BOOL_COLUMNS:
                if text not in ("0", "1"):
                    raise ValueError("expected 0 or 1")
                values[column] = text == "1"
            else:
                values[column] = text
        except ValueError as exc:
            raise SuiteError(f"{where}: column {column}: bad value {text!r}: {exc}") from None
    f = Features(name=name, **values)
    _validate(f, where)
    return f


def _validate(f: Features, where: str) -> None:
    def bad(msg):
        raise SuiteError(f"{where}: {msg}")
    tensors_mode = f.data.startswith("file:")
    if not tensors_mode:
        for column in ("batch", "channels", "height", "width"):
            if getattr(f, column) < 1:
                bad(f"{column} shall be at least 1, got {getattr(f, column)}")
        if f.data not in DATA_KINDS:
            bad(f"data shall be one of {', '.join(DATA_KINDS)}, got {f.data!r}")
    if f.dtype not in DTYPE_NAMES:
        bad(f"dtype shall be one of {', '.join(DTYPE_NAMES)}, got {f.dtype!r}")
    if not (0 if f.face else 1) <= f.layers <= 256:
        bad(f"layers shall be in {0 if f.face else 1}..256, got {f.layers}"
            + ("" if f.face or f.layers else " (0 only with a face)"))
    if f.face not in FACE_KINDS:
        bad(f"face shall be empty or one of {', '.join(FACE_KINDS[1:])}, got {f.face!r}")
    if f.face:
        if tensors_mode:
            bad("faces cannot be added to given tensors")
        if not 1 <= f.faces <= LEVELS[max(LEVELS)].max_faces:
            bad(f"faces shall be in 1..{LEVELS[max(LEVELS)].max_faces}, got {f.faces}")
        if f.face_channels not in (1, 3):
            bad(f"face_channels shall be 1 or 3, got {f.face_channels}")
        if f.predictor != "none":
            if f.face == "base":
                bad("predictor applies to an enhancement layer; face base has none")
            from .face import predictor as predictors
            shipped = predictors.shipped_predictors()
            if f.predictor not in shipped:
                bad(f"predictor {f.predictor!r} is not shipped with refcodec (shipped: "
                    f"{', '.join(sorted(shipped)) or 'none'}); use a shipped one or 'none'")
        try:
            face_config(f, 0)
        except RefcodecError as exc:
            bad(str(exc))
    if f.extra_unit not in EXTRA_UNITS:
        bad(f"extra_unit shall be empty or 'skippable', got {f.extra_unit!r}")
    if f.tile_grid and not re.fullmatch(r"[0-9]+x[0-9]+", f.tile_grid):
        bad(f"tile_grid shall be ROWSxCOLS such as 2x3, got {f.tile_grid!r}")
    try:
        if tensors_mode:   # the channel order is checked against each tensor when coding
            dataclasses.replace(f, channel_order="identity").encoder_config(1)
        else:
            f.encoder_config(f.channels)
    except (ValueError, RefcodecError) as exc:
        bad(str(exc))


def _read_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """The rows of a CSV table with a header row, each with its place ('FILE line N') for
    messages; blank lines and lines starting with '#' are skipped."""
    if not path.is_file():
        raise SuiteError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            numbered = [(n, line) for n, line in enumerate(fh, 1)
                        if line.strip() and not line.lstrip().startswith("#")]
        reader = csv.DictReader([line for _, line in numbered])
        rows = []
        for row in reader:
            where = f"{path} line {numbered[reader.line_num - 1][0]}"
            if None in row:
                raise SuiteError(f"{where}: more cells than the header has columns")
            rows.append((where, row))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SuiteError(f"{path}: not a UTF-8 CSV table: {exc}") from None
    if reader.fieldnames is None:
        raise SuiteError(f"{path}: empty table")
    return rows


def read_features(path: Path) -> list[Features]:
    """The rows of a codec-features table (CSV with a header row; '#' lines are comments)."""
    rows = [parse_features(row, where) for where, row in _read_csv(path)]
    if not rows:
        raise SuiteError(f"{path}: the table has no stream")
    return rows


@dataclasses.dataclass(frozen=True)
class InvalidRow:
    """One row of the invalid-streams table: ``alteration`` (a key of ALTERATIONS) applied
    to the valid stream ``base`` (empty: the first valid stream it applies to)."""

    name: str
    alteration: str
    base: str = ""
    purpose: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def read_invalid(path: Path) -> list[InvalidRow]:
    """The rows of an invalid-streams table (columns name, alteration, base, purpose)."""
    out = []
    for where, row in _read_csv(path):
        unknown = sorted(set(row) - {"name", "alteration", "base", "purpose"})
        if unknown:
            raise SuiteError(f"{where}: unknown column(s) {', '.join(unknown)}; the columns "
                             f"are name, alteration, base, purpose")
        cells = {k: (v or "").strip() for k, v in row.items()}
        _check_name(cells.get("name", ""), where)
        if cells.get("alteration") not in ALTERATIONS:
            raise SuiteError(f"{where}: unknown alteration {cells.get('alteration')!r}; "
                             f"see `refcodec conformance alterations`")
        out.append(InvalidRow(**cells))
    return out


def default_invalid_rows() -> list[InvalidRow]:
    """The built-in invalid streams: every alteration once, each on the first valid stream
    it applies to."""
    return [InvalidRow(name=f"invalid_{kind}", alteration=kind) for kind in ALTERATIONS]


# ------------------------------------------------------------------------------------
# Synthetic tensors
# ------------------------------------------------------------------------------------

def integer_offset(bit_depth: int, dtype: SourceDtype) -> int:
    """The smallest value of ``integer`` data: -2^(b-1), raised if needed so that
    offset_value..offset_value + 2^b - 1 fits the dtype (clause 8.3.7)."""
    limit = 1 << DTYPE_INFO[dtype].precision
    low = max(-limit, -(1 << (bit_depth - 1)))
    if low + (1 << bit_depth) - 1 > limit:
        raise ValueError(f"integer data of {bit_depth} bits cannot be exact in "
                         f"{dtype.name.lower()} (clause 8.3.7)")
    return low


def synthetic(kind: str, shape: tuple[int, int, int, int], dtype: SourceDtype,
              bit_depth: int, seed: int) -> np.ndarray:
    """A deterministic N x C x H x W tensor of the source dtype.

    relu: smooth ReLU-like field (about half zeros); gaussian: normal, mean 0.5, sd 2;
    constant: one value; integer: integers spanning exactly 2^bit_depth values; ramp: a
    linear ramp from -2 to 6 over the elements in C order.
    """
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    if kind == "relu":
        noise = rng.standard_normal((n, c, h + 2, w + 2))
        smooth = (noise[:, :, :-2, :-2] + noise[:, :, 1:-1, 1:-1] + noise[:, :, 2:, 2:]) / 3
        x = np.maximum(smooth * 4.0, 0.0)
    elif kind == "gaussian":
        x = rng.standard_normal(shape) * 2.0 + 0.5
    elif kind == "constant":
        x = np.full(shape, float(np.float32(rng.uniform(-4, 4)).astype(ml_dtypes.bfloat16)))
    elif kind == "integer":
        low = integer_offset(bit_depth, dtype)
        x = rng.integers(low, low + (1 << bit_depth), size=shape).astype(np.float64)
        flat = x.reshape(-1)
        flat[0] = low                              # the range is exactly 2^b values
        flat[-1] = low + (1 << bit_depth) - 1
    elif kind == "ramp":
        x = np.linspace(-2.0, 6.0, n * c * h * w).reshape(shape)
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    return x.astype(np.float32).astype(NUMPY_DTYPES[dtype])


def feature_tensors(f: Features) -> dict[str, np.ndarray]:
    """The layers of a features row, in the row's layout."""
    dtype = DTYPE_NAMES[f.dtype]
    out = {}
    for i in range(f.layers):
        x = synthetic(f.data, (f.batch, f.channels, f.height, f.width), dtype, f.bit_depth,
                      f.seed + i)
        out[f"{f.name}.{i}"] = x.transpose(0, 2, 3, 1).copy() if f.layout == "NHWC" else x
    return out


#: Side of the synthetic face images: dlib's aligned face chip is 150 x 150.
FACE_SIZE = 150
#: Size and scale of the synthetic embeddings: dlib's ResNet gives 128 values of about this
#: standard deviation.
EMBEDDING_DIM = 128
EMBEDDING_SD = 0.09


def synthetic_face(seed: int, channels: int = 3) -> FaceInput:
    """A deterministic face to code: a FACE_SIZE x FACE_SIZE cartoon face and a random
    embedding; neither needs dlib (the streams test the bitstream, not the embedder).

    With numpy's ``default_rng(seed)``: five colours uniform in 20..235 (background, face,
    eyes, mouth, nose), the face centre moved by up to 6 samples each way, then the
    embedding: EMBEDDING_DIM values, normal with mean 0 and standard deviation EMBEDDING_SD.
    The image is flat regions: an ellipse (the face) on the background with two elliptic
    eyes, a vertical bar (nose) and a horizontal bar (mouth); sample (y, x) is tested at its
    centre (y + 0.5, x + 0.5).  One channel: the luma 0.299 R + 0.587 G + 0.114 B.  Samples
    are rounded half up to integers.  The embedder is signalled as dlib's ResNet (its scale).
    """
    rng = np.random.default_rng(seed)
    colours = rng.uniform(20.0, 235.0, (5, 3))
    cy, cx = FACE_SIZE / 2 + rng.uniform(-6.0, 6.0, 2)
    y, x = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE] + 0.5
    image = np.empty((FACE_SIZE, FACE_SIZE, 3))
    image[:] = colours[0]
    image[((y - cy) / 58) ** 2 + ((x - cx) / 45) ** 2 <= 1] = colours[1]
    for side in (-1, 1):
        image[((y - cy + 15) / 6) ** 2 + ((x - cx - side * 17) / 9) ** 2 <= 1] = colours[2]
    image[(np.abs(y - cy - 28) <= 4) & (np.abs(x - cx) <= 16)] = colours[3]
    image[(np.abs(x - cx) <= 3) & (y > cy - 8) & (y < cy + 12)] = colours[4]
    if channels == 1:
        image = (image @ np.array([0.299, 0.587, 0.114]))[:, :, None]
    image = np.clip(np.floor(image + 0.5), 0, 255).astype(np.uint8)
    embedding = (rng.standard_normal(EMBEDDING_DIM) * EMBEDDING_SD).astype(np.float32)
    return FaceInput(image=image, embedding=embedding, embedder=Embedder.DLIB_RESNET_V1)


def face_config(f: Features, index: int) -> FaceConfig:
    """The face encoder's settings for face ``index`` of a features row."""
    return FaceConfig(face_id=f"face{index}", enhancement=f.face if f.face != "base" else "none",
                      predictor=f.predictor, qp=f.face_qp, preset=f.preset)


def feature_faces(f: Features) -> list[tuple[FaceInput, FaceConfig]]:
    """The faces of a features row: face i from seed + i."""
    if not f.face:
        return []
    return [(synthetic_face(f.seed + i, f.face_channels), face_config(f, i))
            for i in range(f.faces)]


# ------------------------------------------------------------------------------------
# Checksums and tolerances (manifest fields)
# ------------------------------------------------------------------------------------

def planes_bytes(pictures: np.ndarray, bit_depth: int) -> bytes:
    """Decoded pictures as raw 4:0:0 output: samples in raster order, one byte each at
    8-bit, two bytes little-endian otherwise (what HM and libde265 write)."""
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    return np.ascontiguousarray(pictures, dtype=dtype).tobytes()


def planes_md5_hex(pictures: np.ndarray, bit_depth: int) -> str:
    """planes_md5: MD5 of planes_bytes of all the layer's pictures."""
    return hashlib.md5(planes_bytes(pictures, bit_depth)).hexdigest()


def tensor_bits(x: np.ndarray) -> np.ndarray:
    """The bit patterns of a float tensor, as little-endian unsigned integers of its width."""
    x = np.ascontiguousarray(x)
    if x.dtype.byteorder == ">":
        x = x.astype(x.dtype.newbyteorder("<"))
    return x.view(f"<u{x.dtype.itemsize}")


def tensor_sha256(x: np.ndarray) -> str:
    """sha256 of a tensor's C-order little-endian bytes in its own dtype."""
    return hashlib.sha256(tensor_bits(x).tobytes()).hexdigest()


def ulp_log2(bound: float, dtype: SourceDtype) -> int:
    """log2 of ulp_T(v) of clause 12.3: max(Floor(log2(v)), e_min) - p + 1, for v > 0."""
    p, e_min = DTYPE_INFO[dtype].precision, DTYPE_INFO[dtype].min_exponent
    return max(math.frexp(bound)[1] - 1, e_min) - p + 1


def tolerance(header) -> dict:
    """The tier-2 tolerance of clause 12.3 for a layer header."""
    if header.quantizer_type != QuantizerType.LOG:
        return {"kind": "exact"}
    sets = []
    for p in header.quant_params:
        bound = max(abs(p.min_value), abs(p.max_value), 2.0 ** -24)
        k = ulp_log2(bound, header.source_dtype)
        sets.append({"bound": bound, "max_abs_error": math.ldexp(1.0, k),
                     "max_abs_error_log2": k})
    return {"kind": "abs", "param_sets": sets}


_DEC_CONTEXT = decimal.Context(prec=60)
_LN2 = decimal.Decimal(2).ln(_DEC_CONTEXT)


def _exp2(t: float) -> float:
    return float((decimal.Decimal(t) * _LN2).exp(_DEC_CONTEXT))


def _log2(v: float) -> float:
    return float(_DEC_CONTEXT.divide(decimal.Decimal(v).ln(_DEC_CONTEXT), _LN2))


def correctly_rounded_log_table(p: QuantParams, bit_depth: int, dtype: SourceDtype) -> np.ndarray:
    """Output values of the log quantizer (clause 9.4.2) for q = 0..D with log2 and exp2
    correctly rounded (60-digit decimal, then rounded to binary64): the reference r of
    clause 12.3.  Every other operation is a binary64 operation, as clause 4.4 says."""
    d = float((1 << bit_depth) - 1)
    lo, hi = float(p.min_value), float(p.max_value)
    span = _log2((hi - lo) + 1.0)
    values = [lo + (_exp2((q * span) / d) - 1.0) for q in range(1 << bit_depth)]
    return np.array(values, dtype=np.float64).astype(np.float32).astype(NUMPY_DTYPES[dtype])


def log_reference_is_correctly_rounded(header) -> bool:
    """Whether refcodec's log dequantization equals the correctly rounded one for every
    sample value of every parameter set of the layer."""
    from .quant import output_table
    dtype = NUMPY_DTYPES[header.source_dtype]
    for p in header.quant_params:
        ours = output_table(int(QuantizerType.LOG), p, header.sample_bit_depth, dtype)
        exact = correctly_rounded_log_table(p, header.sample_bit_depth, header.source_dtype)
        if not np.array_equal(tensor_bits(ours), tensor_bits(exact)):
            return False
    return True


# ------------------------------------------------------------------------------------
# Byte-level tools for altered streams
# ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Unit:
    pos: int
    unit_type: int
    flags: int
    length: int

    @property
    def payload(self) -> slice:
        return slice(self.pos + UNIT_PREFIX, self.pos + UNIT_PREFIX + self.length)

    @property
    def end(self) -> int:
        return self.pos + UNIT_OVERHEAD + self.length


def _units(data: bytes) -> list[_Unit]:
    """The units of a well-formed stream, in order."""
    out, pos = [], STREAM_HEADER_SIZE
    while pos + UNIT_OVERHEAD <= len(data):
        unit = _Unit(pos, data[pos], data[pos + 1], int.from_bytes(data[pos + 2:pos + 6], "big"))
        out.append(unit)
        pos = unit.end
        if unit.unit_type == UnitType.END_OF_STREAM:
            break
    return out


def _rehead(data: bytes) -> bytes:
    return data[:16] + bitstream.crc32(data[:16]).to_bytes(4, "big") + data[20:]


def _recrc(data: bytes, unit: _Unit) -> bytes:
    end = unit.end
    return data[:end - 4] + bitstream.crc32(data[unit.pos:end - 4]).to_bytes(4, "big") + data[end:]


def _put(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value):]


def _unit_of(data: bytes, unit_type: int, index: int = 0) -> _Unit:
    return [u for u in _units(data) if u.unit_type == unit_type][index]


def _replace_unit(data: bytes, unit: _Unit, new: bytes) -> bytes:
    return data[:unit.pos] + new + data[unit.end:]


def _layers(s: Stream) -> list[tuple]:
    return [(layer.header, layer.sample_md5, layer.hevc_payload) for layer in s.layers]


def _rebuild(s: Stream, header: StreamHeader | None = None, layers=None) -> bytes:
    return bitstream.build_stream(header or s.header, layers if layers is not None else _layers(s))


def _change_layer0(s: Stream, md5=None, payload=None, **fields) -> bytes:
    layers = _layers(s)
    h, m, p = layers[0]
    layers[0] = (dataclasses.replace(h, **fields) if fields else h,
                 m if md5 is None else md5, p if payload is None else payload)
    return _rebuild(s, layers=layers)


def _layer0_header_unit(data: bytes) -> tuple[_Unit, bytes]:
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return unit, data[unit.payload]


def _patch_layer0_header(data: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite bytes of layer 0's layer_header() and recompute its unit_crc32."""
    unit, _ = _layer0_header_unit(data)
    return _recrc(_put(data, unit.payload.start + offset, value), unit)


# ---- HEVC parameter sets, rewritten bit by bit ----

def _bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def _ue(value: int) -> str:
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def _read_ue(bits: str, pos: int) -> tuple[int, int]:
    """(value, position after it) of the ue(v) at ``pos``."""
    zeros = 0
    while bits[pos + zeros] == "0":
        zeros += 1
    end = pos + 2 * zeros + 1
    return int(bits[pos + zeros:end], 2) - 1, end


def _edit_parameter_set(payload: bytes, nut: int, edit: Callable[[str], str]) -> bytes:
    """Rewrite every NAL unit of type ``nut`` of a payload: ``edit`` gets the RBSP bits
    without rbsp_trailing_bits and returns the new ones."""
    units = split_nal_units(payload)
    if join_nal_units(units) != payload:
        raise ValueError("the payload is not laid out as refcodec writes it")
    found = False
    for i, unit in enumerate(units):
        if nal_unit_type(unit) != nut:
            continue
        body = _bits(rbsp(unit)).rstrip("0")[:-1]          # drop rbsp_trailing_bits
        new = edit(body) + "1"
        new += "0" * (-len(new) % 8)
        raw = int(new, 2).to_bytes(len(new) // 8, "big")
        units[i] = unit[:2] + emulation_prevention(raw)
        found = True
    if not found:
        raise ValueError(f"the payload has no NAL unit of type {nut}")
    return join_nal_units(units)


_SPS_PTL, _VPS_PTL = 8, 32   # bit position of profile_tier_level() in the SPS / VPS RBSP
_MONOCHROME_FLAG = 49        # general_max_monochrome_constraint_flag, from the PTL start


def _edit_ptl(payload: bytes, edit: Callable[[str], str]) -> bytes:
    """Apply ``edit`` to the 96 bits of the general profile_tier_level() of the VPS and SPS."""
    def at(start):
        def fn(body):
            return body[:start] + edit(body[start:start + 96]) + body[start + 96:]
        return fn
    return _edit_parameter_set(_edit_parameter_set(payload, VPS_NUT, at(_VPS_PTL)),
                               SPS_NUT, at(_SPS_PTL))


def _sps_positions(body: str) -> dict[str, int]:
    """Bit positions of a few SPS elements (a single sub-layer, as libx265 writes)."""
    if int(body[4:7], 2) != 0:
        raise ValueError("the SPS has sub-layers")
    pos = {}
    _, p = _read_ue(body, _SPS_PTL + 96)                  # sps_seq_parameter_set_id
    pos["chroma_format_idc"] = p
    chroma, p = _read_ue(body, p)
    if chroma == 3:
        p += 1                                            # separate_colour_plane_flag
    _, p = _read_ue(body, p)                              # pic_width_in_luma_samples
    _, p = _read_ue(body, p)                              # pic_height_in_luma_samples
    pos["conformance_window_flag"] = p
    return pos


def _set_chroma_format(payload: bytes, chroma_format_idc: int) -> bytes:
    def edit(body):
        p = _sps_positions(body)["chroma_format_idc"]
        _, end = _read_ue(body, p)
        return body[:p] + _ue(chroma_format_idc) + body[end:]
    return _edit_parameter_set(payload, SPS_NUT, edit)


def _add_conformance_window(payload: bytes) -> bytes:
    def edit(body):
        p = _sps_positions(body)["conformance_window_flag"]
        if body[p] != "0":
            raise ValueError("the SPS already has a conformance window")
        return body[:p] + "1" + _ue(0) * 4 + body[p + 1:]   # a window of zero offsets
    return _edit_parameter_set(payload, SPS_NUT, edit)


def _add_range_extension(payload: bytes, flags: dict[str, int]) -> bytes:
    """Give the SPS an sps_range_extension() with the named flags set (the SPS shall have
    sps_extension_present_flag 0, its last element)."""
    sps = hevc_params.parse_parameter_sets(payload).sps[0][1]
    if sps.sps_extension_present_flag:
        raise ValueError("the SPS already has extensions")
    ext = "".join(str(flags.get(name, 0)) for name in hevc_params.RANGE_EXTENSION_FLAGS)

    def edit(body):
        # sps_extension_present_flag 1, sps_range_extension_flag 1, three more flags and
        # sps_extension_4bits 0, then sps_range_extension()
        return body[:-1] + "1" + "1000" + "0000" + ext
    return _edit_parameter_set(payload, SPS_NUT, edit)


def _pps_refers_to(payload: bytes, sps_id: int) -> bytes:
    def edit(body):
        _, p = _read_ue(body, 0)                          # pps_pic_parameter_set_id
        _, end = _read_ue(body, p)
        return body[:p] + _ue(sps_id) + body[end:]
    return _edit_parameter_set(payload, PPS_NUT, edit)


def _is_lossless(layer: Layer) -> bool:
    sets = hevc_params.parse_parameter_sets(layer.hevc_payload)
    return any(p.transquant_bypass_enabled_flag for _, p in sets.pps)


# ------------------------------------------------------------------------------------
# Alterations: how each invalid stream is made
# ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Alteration:
    """One way of breaking a valid stream.  ``target`` is the clause id the reference
    decoder reports first; ``requires`` says which base streams it applies to, beyond
    ``scope``: ``layer`` alterations need a feature layer, ``face`` ones a face.
    ``verify_warns``: verify finds the altered stream conformant and only warns, naming the
    clause (a decoder's limit, not a fault of the stream: clause 13.4.4)."""

    kind: str
    target: str
    purpose: str
    apply: Callable[[bytes, Stream], bytes]
    applies: Callable[[Stream], bool]
    requires: str
    scope: str = "layer"
    verify_warns: bool = False

    def fits(self, s: Stream) -> bool:
        """Whether the alteration applies to the (plain) stream ``s``."""
        if not (s.faces if self.scope == "face" else s.layers):
            return False
        return bool(self.applies(s))

    @property
    def needs(self) -> str:
        return self.requires or ("a face" if self.scope == "face" else "a feature layer")


ALTERATIONS: dict[str, Alteration] = {}


def _alteration(kind: str, target: str, purpose: str, requires: str = "",
                applies: Callable[[Stream], bool] = lambda s: True, scope: str = "layer",
                verify_warns: bool = False):
    def register(fn):
        ALTERATIONS[kind] = Alteration(kind, target, purpose, fn, applies, requires, scope,
                                       verify_warns)
        return fn
    return register


def _minmax(s: Stream) -> bool:
    return s.layers[0].header.quantizer_type != QuantizerType.INTEGER


def _q0(s: Stream) -> QuantParams:
    return s.layers[0].header.quant_params[0]


def _with_q0(s: Stream, p: QuantParams) -> bytes:
    return _change_layer0(s, quant_params=(p,) + s.layers[0].header.quant_params[1:])


def _same_geometry(s: Stream) -> bool:
    if len(s.layers) < 2:
        return False
    a, b = s.layers[0].header, s.layers[1].header
    return ((a.num_pictures, a.picture_height, a.picture_width, a.sample_bit_depth)
            == (b.num_pictures, b.picture_height, b.picture_width, b.sample_bit_depth)
            and s.layers[0].hevc_payload != s.layers[1].hevc_payload)


def _header_u8(pos: int, value: int):
    return lambda data, s: _rehead(_put(data, pos, bytes([value])))


# -- stream_header() --
_alteration("magic", "8.1.1", "magic altered: byte 1 is 'W' instead of 'V'")(
    lambda data, s: _put(data, 1, b"W"))
_alteration("truncated_stream_header", "8.1.1",
            "the stream ends after 19 bytes, inside stream_header()")(lambda data, s: data[:19])
_alteration("version_major", "8.1.2", "version_major 2 (header_crc32 recomputed)")(
    _header_u8(8, 2))
_alteration("profile_idc", "8.1.3", "reserved profile_idc 2")(_header_u8(10, 2))
_alteration("level_idc", "8.1.4", "reserved level_idc 15")(_header_u8(11, 15))
_alteration("num_layers_zero", "8.1.5", "num_layers 0")(
    lambda data, s: _rehead(_put(data, 12, b"\x00\x00")))
_alteration("num_layers_too_large", "8.1.5",
            "num_layers one more than the layers present",
            "num_layers below the level's max_layers",
            lambda s: s.header.num_layers < LEVELS[s.header.level_idc].max_layers)(
    lambda data, s: _rehead(_put(data, 12, (s.header.num_layers + 1).to_bytes(2, "big"))))
_alteration("num_layers_too_small", "8.1.5", "num_layers one less than the layers present",
            "two layers or more", lambda s: len(s.layers) >= 2)(
    lambda data, s: _rehead(_put(data, 12, (s.header.num_layers - 1).to_bytes(2, "big"))))
_alteration("reserved_zero_16bits", "8.1.6", "reserved_zero_16bits 1 in a version 1.0 stream")(
    lambda data, s: _rehead(_put(data, 14, b"\x00\x01")))
_alteration("header_crc32", "8.1.7", "one bit of header_crc32 flipped")(
    lambda data, s: _put(data, 19, bytes([data[19] ^ 1])))
_alteration("num_layers_over_level", "11.2",
            "num_layers one more than max_layers of the stream's level")(
    lambda data, s: _rehead(_put(data, 12, (LEVELS[s.header.level_idc].max_layers + 1)
                                 .to_bytes(2, "big"))))
_alteration("level_too_low", "11.2",
            "level_idc lowered to the next lower level, whose limits the stream exceeds",
            "a level above the lowest", lambda s: s.header.level_idc > min(LEVELS))(
    lambda data, s: _rehead(_put(data, 11, bytes([max(lv for lv in LEVELS
                                                      if lv < s.header.level_idc)]))))


# -- unit() --
@_alteration("unknown_critical_unit", "8.2.1",
             "a unit of the unknown type 100 with skippable_flag 0 after stream_header()")
def _unknown_critical_unit(data, s):
    return data[:20] + bitstream.build_unit(100, b"critical unit of a future version") + data[20:]


@_alteration("skippable_flag_known_unit", "8.2.2",
             "skippable_flag 1 in the layer_header unit")
def _skippable_known(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return _recrc(_put(data, unit.pos + 1, bytes([0x80])), unit)


@_alteration("unit_reserved_bits", "8.2.3", "reserved_zero_7bits 1 in the layer_header unit")
def _unit_reserved(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return _recrc(_put(data, unit.pos + 1, bytes([0x01])), unit)


@_alteration("unit_past_end", "8.2.4",
             "the stream is cut in the middle of the first layer_data unit")
def _unit_past_end(data, s):
    unit = _unit_of(data, UnitType.LAYER_DATA)
    return data[:unit.pos + 10 + unit.length // 2]


_alteration("unit_too_short", "8.2.4",
            "the last 3 bytes are cut: fewer than 10 bytes remain for the end_of_stream unit")(
    lambda data, s: data[:-3])


@_alteration("layer_header_too_short", "8.2.4",
             "the layer_header unit of layer 0 lacks the last 3 bytes of layer_header()")
def _layer_header_too_short(data, s):
    unit, payload = _layer0_header_unit(data)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_HEADER, payload[:-3]))


@_alteration("layer_data_too_short", "8.2.4",
             "the layer_data unit of layer 0 holds 10 bytes, too few for sample_md5")
def _layer_data_too_short(data, s):
    unit = _unit_of(data, UnitType.LAYER_DATA)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_DATA,
                                                          s.layers[0].sample_md5[:10]))


@_alteration("end_of_stream_payload", "8.2.4", "an end_of_stream unit with a 1-byte payload")
def _eos_payload(data, s):
    unit = _unit_of(data, UnitType.END_OF_STREAM)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.END_OF_STREAM, b"\x00"))


@_alteration("unit_crc32", "8.2.5", "one bit of the layer_header unit's unit_crc32 flipped")
def _unit_crc(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return _put(data, unit.end - 1, bytes([data[unit.end - 1] ^ 1]))


_alteration("missing_end_of_stream", "8.2.6", "the end_of_stream unit is missing")(
    lambda data, s: data[:_unit_of(data, UnitType.END_OF_STREAM).pos])


@_alteration("layer_data_before_header", "8.2.6",
             "the layer_data unit of layer 0 comes before its layer_header unit")
def _data_before_header(data, s):
    h, d = _unit_of(data, UnitType.LAYER_HEADER), _unit_of(data, UnitType.LAYER_DATA)
    return data[:h.pos] + data[d.pos:d.end] + data[h.pos:h.end] + data[d.end:]


@_alteration("layer_header_twice", "8.2.6",
             "the layer_header unit of layer 0 is repeated before its layer_data unit")
def _header_twice(data, s):
    h = _unit_of(data, UnitType.LAYER_HEADER)
    return data[:h.end] + data[h.pos:h.end] + data[h.end:]


@_alteration("layer_data_missing", "8.2.6",
             "the layer_data unit of the last layer is missing: its layer_header unit is "
             "followed by end_of_stream")
def _data_missing(data, s):
    d = _unit_of(data, UnitType.LAYER_DATA, len(s.layers) - 1)
    return data[:d.pos] + data[d.end:]


_alteration("trailing_data", "8.2.7", "one zero byte after the end_of_stream unit")(
    lambda data, s: data + b"\x00")


@_alteration("unit_length_over_level", "11.2",
             "len_unit_payload of the layer_header unit one more than max_unit_payload of "
             "the stream's level")
def _unit_length_over_level(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    value = LEVELS[s.header.level_idc].max_unit_payload + 1
    return _put(data, unit.pos + 2, value.to_bytes(4, "big"))


# -- layer_header() --
_alteration("duplicate_layer_id", "8.3.1", "layer 1 has the layer_id of layer 0",
            "two layers or more", lambda s: len(s.layers) >= 2)(
    lambda data, s: _rebuild(s, layers=[_layers(s)[0], (dataclasses.replace(
        s.layers[1].header, layer_id=s.layers[0].header.layer_id), *_layers(s)[1][1:])]
        + _layers(s)[2:]))
_alteration("empty_layer_id", "8.3.1", "len_layer_id 0")(
    lambda data, s: _change_layer0(s, layer_id=""))
_alteration("layer_id_not_utf8", "8.3.1",
            "the first byte of layer_id is 0xFF (not UTF-8)")(
    lambda data, s: _patch_layer0_header(data, 1, b"\xff"))
_alteration("layer_id_control_character", "8.3.1", "a TAB (U+0009) inside layer_id")(
    lambda data, s: _change_layer0(s, layer_id=s.layers[0].header.layer_id[:1] + "\t"
                                   + s.layers[0].header.layer_id[1:]))
_alteration("source_layout", "8.3.2", "reserved source_layout 2")(
    lambda data, s: _change_layer0(s, source_layout=2))
_alteration("source_dtype", "8.3.3", "reserved source_dtype 3")(
    lambda data, s: _change_layer0(s, source_dtype=3))
_alteration("batch_size_zero", "8.3.4", "batch_size 0")(
    lambda data, s: _change_layer0(s, batch_size=0))
_alteration("sample_bit_depth", "8.3.5", "reserved sample_bit_depth 9")(
    lambda data, s: _change_layer0(s, sample_bit_depth=9))
_alteration("quantizer_type", "8.3.6", "reserved quantizer_type 3")(
    lambda data, s: _change_layer0(s, quantizer_type=3))
_alteration("min_above_max", "8.3.7", "min_value greater than max_value",
            "a uniform or log quantizer", _minmax)(
    lambda data, s: _with_q0(s, QuantParams(
        min_value=_q0(s).max_value + max(1.0, abs(_q0(s).max_value)),
        max_value=_q0(s).max_value)))
_alteration("quant_param_nan", "8.3.7", "min_value NaN", "a uniform or log quantizer",
            _minmax)(lambda data, s: _with_q0(s, QuantParams(min_value=math.nan,
                                                             max_value=_q0(s).max_value)))
_alteration("quant_param_infinite", "8.3.7", "max_value +infinity",
            "a uniform or log quantizer", _minmax)(
    lambda data, s: _with_q0(s, QuantParams(min_value=_q0(s).min_value, max_value=math.inf)))
_alteration("quant_param_beyond_dtype", "8.3.7",
            "max_value 65536 in a float16 layer (beyond its largest finite value 65504)",
            "a float16 layer with a uniform or log quantizer",
            lambda s: _minmax(s) and s.layers[0].header.source_dtype == SourceDtype.FLOAT16)(
    lambda data, s: _with_q0(s, QuantParams(min_value=_q0(s).min_value, max_value=65536.0)))
_alteration("offset_not_integer", "8.3.7", "offset_value with a fraction of 0.5",
            "an integer quantizer", lambda s: not _minmax(s))(
    lambda data, s: _with_q0(s, QuantParams(offset_value=_q0(s).offset_value + 0.5)))
_alteration("offset_out_of_range", "8.3.7",
            "offset_value 2^p: the largest value offset_value + D is not exact in the dtype",
            "an integer quantizer", lambda s: not _minmax(s))(
    lambda data, s: _with_q0(s, QuantParams(offset_value=float(
        1 << DTYPE_INFO[s.layers[0].header.source_dtype].precision))))
_alteration("permutation_repeated", "8.3.8",
            "the last entry of channel_permutation repeats the first",
            "a signalled channel_permutation",
            lambda s: s.layers[0].header.channel_permutation is not None
            and s.layers[0].header.num_channels >= 2)(
    lambda data, s: _change_layer0(s, channel_permutation=(
        s.layers[0].header.channel_permutation[:-1]
        + s.layers[0].header.channel_permutation[:1])))
_alteration("permutation_out_of_range", "8.3.8",
            "the last entry of channel_permutation is num_channels",
            "a signalled channel_permutation",
            lambda s: s.layers[0].header.channel_permutation is not None)(
    lambda data, s: _change_layer0(s, channel_permutation=(
        s.layers[0].header.channel_permutation[:-1] + (s.layers[0].header.num_channels,))))
_alteration("packing_type", "8.3.9", "reserved packing_type 2")(
    lambda data, s: _change_layer0(s, packing_type=2))
_alteration("tile_grid_single_tile", "8.3.9", "packing_type 1 with a 1x1 tile grid",
            "packing_type 1 (tiled)",
            lambda s: s.layers[0].header.packing_type == PackingType.TILED)(
    lambda data, s: _change_layer0(s, tile_rows=1, tile_cols=1))
_alteration("pad_mode", "8.3.10", "reserved pad_mode 2")(
    lambda data, s: _change_layer0(s, pad_mode=2))
_alteration("pad_not_multiple_of_8", "8.3.10",
            "pad_right one more than the stream's: width + pad_right is no multiple of 8")(
    lambda data, s: _change_layer0(s, pad_right=s.layers[0].header.pad_right + 1))
_alteration("payload_codec", "8.3.11", "reserved payload_codec 1")(
    lambda data, s: _change_layer0(s, payload_codec=1))
_alteration("layer_flags_reserved", "8.3.12",
            "reserved_zero_6bits 1 in a version 1.0 stream")(
    lambda data, s: _patch_layer0_header(
        data, len(s.layers[0].header.layer_id.encode()) + 21,
        bytes([_layer0_header_unit(data)[1][len(s.layers[0].header.layer_id.encode()) + 21]
               | 0x01])))


@_alteration("layer_header_trailing_byte", "8.3.13",
             "one byte after layer_header() in its unit")
def _header_trailing(data, s):
    unit, payload = _layer0_header_unit(data)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_HEADER,
                                                          payload + b"\x00"))


_alteration("layer_elements_over_level", "11.2",
            "batch_size raised so that batch_size * num_channels * height * width exceeds "
            "max_layer_elements of the stream's level")(
    lambda data, s: _change_layer0(s, batch_size=LEVELS[s.header.level_idc].max_layer_elements
                                   // (s.layers[0].header.num_elements
                                       // s.layers[0].header.batch_size) + 1))
_alteration("picture_size_over_level", "11.2",
            "a 1 x K tile grid whose picture is wider than max_picture_size of the level")(
    lambda data, s: _change_layer0(
        s, packing_type=PackingType.TILED, tile_rows=1,
        tile_cols=LEVELS[s.header.level_idc].max_picture_size
        // s.layers[0].header.coded_tile_width + 1))
_alteration("picture_count_over_level", "11.2",
            "1x1 maps, one per picture, and batch_size raised so that NumPictures exceeds "
            "max_pictures of the level")(
    lambda data, s: _change_layer0(
        s, height=1, width=1, pad_bottom=7, pad_right=7,
        packing_type=PackingType.CHANNEL_PER_PICTURE, tile_rows=1, tile_cols=1,
        batch_size=LEVELS[s.header.level_idc].max_pictures
        // s.layers[0].header.num_channels + 1))
_alteration("layer_samples_over_level", "11.2",
            "1x1 maps padded to 256x256, one per picture, and batch_size raised so that the "
            "decoded samples exceed max_layer_samples of the level (padding amplification)")(
    lambda data, s: _change_layer0(
        s, height=1, width=1, pad_bottom=255, pad_right=255,
        packing_type=PackingType.CHANNEL_PER_PICTURE, tile_rows=1, tile_cols=1,
        batch_size=LEVELS[s.header.level_idc].max_layer_samples // (256 * 256)
        // s.layers[0].header.num_channels + 1))


# -- layer_data() --
_alteration("sample_md5", "8.4.1", "one bit of sample_md5 flipped")(
    lambda data, s: _change_layer0(s, md5=bytes([s.layers[0].sample_md5[0] ^ 1])
                                   + s.layers[0].sample_md5[1:]))
_alteration("payloads_swapped", "8.4.1",
            "the hevc_payloads of layers 0 and 1 swapped (each keeps its sample_md5)",
            "two layers of the same picture size, count and bit depth", _same_geometry)(
    lambda data, s: _rebuild(s, layers=[(s.layers[0].header, s.layers[0].sample_md5,
                                         s.layers[1].hevc_payload),
                                        (s.layers[1].header, s.layers[1].sample_md5,
                                         s.layers[0].hevc_payload)] + _layers(s)[2:]))
_alteration("empty_hevc_payload", "8.4.2", "an empty hevc_payload")(
    lambda data, s: _change_layer0(s, payload=b""))


# -- hevc_payload (clause 10) --
def _payload0(s: Stream) -> bytes:
    return s.layers[0].hevc_payload


_alteration("hevc_no_start_code", "10.1",
            "the hevc_payload starts with its first NAL unit, without a start code")(
    lambda data, s: _change_layer0(s, payload=_payload0(s)[_payload0(s).index(b"\x01") + 1:]))
_alteration("hevc_forbidden_zero_bit", "10.1",
            "forbidden_zero_bit 1 in the first NAL unit header")(
    lambda data, s: _change_layer0(s, payload=_put(
        _payload0(s), 4, bytes([_payload0(s)[4] | 0x80]))))
_alteration("hevc_nuh_layer_id", "10.1", "nuh_layer_id 1 in the first NAL unit")(
    lambda data, s: _change_layer0(s, payload=_put(
        _payload0(s), 5, bytes([(1 << 3) | (_payload0(s)[5] & 0x07)]))))
_alteration("hevc_missing_sps", "10.1", "the SPS NAL unit is removed")(
    lambda data, s: _change_layer0(s, payload=join_nal_units(
        [u for u in split_nal_units(_payload0(s)) if nal_unit_type(u) != SPS_NUT])))
_alteration("hevc_pps_without_sps", "10.1",
            "pps_seq_parameter_set_id 1, an SPS the payload lacks")(
    lambda data, s: _change_layer0(s, payload=_pps_refers_to(_payload0(s), 1)))
_alteration("hevc_profile_main", "10.2",
            "general_profile_idc 1 (Main) with compatibility flags 1 and 2 in the VPS and "
            "SPS")(
    lambda data, s: _change_layer0(s, payload=_edit_ptl(
        _payload0(s), lambda b: b[:3] + f"{1:05b}" + f"{(1 << 30) | (1 << 29):032b}" + b[40:])))
_alteration("hevc_not_monochrome", "10.2",
            "general_max_monochrome_constraint_flag 0 (the Main Intra profile) in the VPS "
            "and SPS")(
    lambda data, s: _change_layer0(s, payload=_edit_ptl(
        _payload0(s), lambda b: b[:_MONOCHROME_FLAG] + "0" + b[_MONOCHROME_FLAG + 1:])))
_alteration("hevc_chroma_420", "10.3", "chroma_format_idc 1 (4:2:0) in the SPS")(
    lambda data, s: _change_layer0(s, payload=_set_chroma_format(_payload0(s), 1)))
_alteration("hevc_bit_depth_mismatch", "10.4",
            "sample_bit_depth changed (8 to 10, else to 8): the payload's bit depth differs",
            "a uniform or log quantizer", _minmax)(
    lambda data, s: _change_layer0(
        s, sample_bit_depth=10 if s.layers[0].header.sample_bit_depth == 8 else 8))
_alteration("hevc_conformance_window", "10.5",
            "conformance_window_flag 1 (all four offsets 0) in the SPS")(
    lambda data, s: _change_layer0(s, payload=_add_conformance_window(_payload0(s))))
_alteration("hevc_picture_size_mismatch", "10.5",
            "height raised by 8: the header's picture height exceeds the payload's")(
    lambda data, s: _change_layer0(s, height=s.layers[0].header.height + 8))
_alteration("hevc_picture_count_mismatch", "10.6",
            "batch_size raised: NumPictures exceeds the pictures of the payload")(
    lambda data, s: _change_layer0(s, batch_size=s.layers[0].header.batch_size
                                   + s.layers[0].header.tiles_per_picture))
_alteration("hevc_extended_precision", "10.7",
            "an sps_range_extension() with extended_precision_processing_flag 1")(
    lambda data, s: _change_layer0(s, payload=_add_range_extension(
        _payload0(s), {"extended_precision_processing_flag": 1})))
_alteration("hevc_lossless_implicit_rdpcm", "10.7",
            "implicit_rdpcm_enabled_flag 1 in the SPS of a lossless payload "
            "(transquant_bypass_enabled_flag 1)",
            "a lossless layer 0", lambda s: _is_lossless(s.layers[0]))(
    lambda data, s: _change_layer0(s, payload=_add_range_extension(
        _payload0(s), {"implicit_rdpcm_enabled_flag": 1})))


# -- face units (clause 13) --
_FACE_STRUCTS = {UnitType.FACE_BASE: vfc_syntax.face_base,
                 UnitType.FACE_ENHANCEMENT: vfc_syntax.face_enhancement}
UNKNOWN_PREDICTOR_ID = "vfc-conformance-unknown-predictor"
UNKNOWN_PREDICTOR_SHA256 = hashlib.sha256(b"VFC conformance: a predictor no decoder has").digest()


def _face_fields(data: bytes, unit: _Unit) -> dict:
    fields = _FACE_STRUCTS[unit.unit_type].parse(data[unit.payload])
    return {k: v for k, v in fields.items() if not k.startswith("_")}


def _patch_face(data: bytes, unit_type: int, name: str, value: bytes, index: int = 0) -> bytes:
    """Overwrite field ``name`` of the index-th face unit of ``unit_type`` (same size) and
    recompute its unit_crc32."""
    unit = _unit_of(data, unit_type, index)
    struct = _FACE_STRUCTS[unit_type]
    at = unit.payload.start + bitstream._field_offset(struct, struct.parse(data[unit.payload]),
                                                      name)
    return _recrc(_put(data, at, value), unit)


def _rebuild_face(data: bytes, unit_type: int, index: int = 0, **changes) -> bytes:
    """The index-th face unit of ``unit_type`` rebuilt with ``changes`` to its fields."""
    unit = _unit_of(data, unit_type, index)
    fields = _face_fields(data, unit) | changes
    new = bitstream.build_unit(unit_type, _FACE_STRUCTS[unit_type].build(fields),
                               skippable=bool(data[unit.pos + 1] & 0x80))
    return _replace_unit(data, unit, new)


def _enhanced(s: Stream) -> bool:
    return any(f.enhancement is not None for f in s.faces)


def _enh0(s: Stream):
    """The first face_enhancement of a stream (the first face_enhancement unit)."""
    return next(f.enhancement for f in s.faces if f.enhancement is not None)


def _no_predictor(s: Stream) -> bool:
    return _enhanced(s) and _enh0(s).predictor_type == PredictorType.NONE


def _add_faces_over_level(data: bytes, s: Stream) -> bytes:
    last = _unit_of(data, UnitType.FACE_BASE, len(s.faces) - 1)
    fields = _face_fields(data, last)
    extra = LEVELS[s.header.level_idc].max_faces + 1 - len(s.faces)
    units = b"".join(bitstream.build_unit(
        UnitType.FACE_BASE, vfc_syntax.face_base.build(fields | {"face_id": f"extra{k}".encode()}),
        skippable=True) for k in range(extra))
    return data[:last.end] + units + data[last.end:]


def _face_alteration(kind, target, purpose, requires="a face", applies=lambda s: True, **kw):
    return _alteration(kind, target, purpose, requires, applies, scope="face", **kw)


_FB, _FE = UnitType.FACE_BASE, UnitType.FACE_ENHANCEMENT

@_face_alteration("face_unit_in_version_1_0", "8.2.1",
                  "version_minor 0 (format 1.0, where unit_type 3 is reserved) and "
                  "skippable_flag 0 in the face_base unit: an unknown critical unit",
                  "a feature layer and a face", lambda s: bool(s.layers))
def _face_unit_in_version_1_0(data, s):
    data = _rehead(_put(data, 9, b"\x00"))
    unit = _unit_of(data, _FB)
    return _recrc(_put(data, unit.pos + 1, bytes([data[unit.pos + 1] & 0x7F])), unit)


@_face_alteration("face_unit_not_skippable", "8.2.2", "skippable_flag 0 in the face_base unit")
def _face_not_skippable(data, s):
    unit = _unit_of(data, _FB)
    return _recrc(_put(data, unit.pos + 1, bytes([data[unit.pos + 1] & 0x7F])), unit)


_face_alteration("faces_over_level", "11.2",
                 "face_base units added (face_id extra0, extra1, ...) until the stream holds "
                 "one face more than max_faces of its level")(_add_faces_over_level)
_face_alteration("duplicate_face_id", "13.3.1", "face 1 has the face_id of face 0",
                 "two faces", lambda s: len(s.faces) >= 2)(
    lambda data, s: _rebuild_face(data, _FB, 1, face_id=s.faces[0].base.face_id.encode()))
_face_alteration("embedder_idc", "13.3.2", "reserved embedder_idc 200")(
    lambda data, s: _patch_face(data, _FB, "embedder_idc", bytes([200])))
_face_alteration("embedding_dim_zero", "13.3.3", "embedding_dim 0")(
    lambda data, s: _patch_face(data, _FB, "embedding_dim", b"\x00\x00"))
_face_alteration("embedding_step_zero", "13.3.4", "embedding_step 0.0")(
    lambda data, s: _patch_face(data, _FB, "embedding_step", bytes(4)))
_face_alteration("embedding_overflow", "13.5",
                 "embedding_step 2^127: level x embedding_step overflows binary32 for every "
                 "level of magnitude 2 or more", "a face with a level of magnitude 2 or more",
                 lambda s: any(max(map(abs, f.base.levels)) >= 2 for f in s.faces))(
    lambda data, s: _patch_face(data, _FB, "embedding_step", struct.pack(">f", 2.0 ** 127)))
_face_alteration("eg_order", "13.3.5",
                 f"eg_order {entropy.MAX_EG_ORDER + 1}, one more than the largest allowed")(
    lambda data, s: _patch_face(data, _FB, "eg_order", bytes([entropy.MAX_EG_ORDER + 1])))
_face_alteration("embedding_payload_trailing_byte", "13.3.6",
                 "a zero byte appended to embedding_payload: more than the trailing bits "
                 "follow the last level")(
    lambda data, s: _rebuild_face(data, _FB, embedding_payload=_face_fields(
        data, _unit_of(data, _FB))["embedding_payload"] + b"\x00"))
_face_alteration("enhancement_without_base", "13.4.1",
                 "the face_id of the face_enhancement unit names no face_base unit",
                 "an enhancement layer", _enhanced)(
    lambda data, s: _rebuild_face(data, _FE, face_id=b"no-such-face"))
_face_alteration("image_channels", "13.4.2", "image_channels 2", "an enhancement layer",
                 _enhanced)(
    lambda data, s: _patch_face(data, _FE, "image_channels", b"\x02"))
_face_alteration("predictor_type", "13.4.3", "reserved predictor_type 2",
                 "an enhancement layer without predictor", _no_predictor)(
    lambda data, s: _patch_face(data, _FE, "predictor_type", b"\x02"))
_face_alteration("unknown_predictor", "13.4.4",
                 f"predictor_type 1 naming a predictor no decoder has "
                 f"({UNKNOWN_PREDICTOR_ID}): refused when the image is reconstructed; the "
                 f"stream itself is conformant",
                 "an enhancement layer without predictor", _no_predictor, verify_warns=True)(
    lambda data, s: _rebuild_face(data, _FE, predictor_type=int(PredictorType.NETWORK),
                                  predictor_info=dict(
                                      predictor_id=UNKNOWN_PREDICTOR_ID.encode(),
                                      predictor_sha256=UNKNOWN_PREDICTOR_SHA256)))
_face_alteration("residual_min_above_max", "13.4.5", "residual_min one more than residual_max",
                 "an enhancement layer", _enhanced)(
    lambda data, s: _patch_face(data, _FE, "residual_min", (_enh0(s).residual_max + 1)
                                .to_bytes(2, "big", signed=True)))
_face_alteration("texture_codec", "13.4.6", "reserved texture_codec 3", "an enhancement layer",
                 _enhanced)(
    lambda data, s: _patch_face(data, _FE, "texture_codec", b"\x03"))
_face_alteration("texture_md5", "13.4.7", "one bit of texture_md5 flipped in an HEVC texture",
                 "an HEVC enhancement layer",
                 lambda s: _enhanced(s) and _enh0(s).texture_codec == TextureCodec.HEVC)(
    lambda data, s: _patch_face(data, _FE, "texture_md5",
                                bytes([_enh0(s).texture_md5[0] ^ 1])))
_face_alteration("empty_texture_payload", "13.4.8", "an empty texture_payload",
                 "an enhancement layer", _enhanced)(
    lambda data, s: _rebuild_face(data, _FE, texture_payload=b""))


# ------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------

SKIPPABLE_UNITS = ((0, b""), (128, b"VFC conformance: a skippable unit of an unknown type"),
                   (254, bytes(range(64))))


def _with_skippable_units(data: bytes) -> bytes:
    """Skippable units of unknown types after stream_header(), between the first
    layer_header and layer_data units, and before end_of_stream (clause 8.2.1)."""
    units = [bitstream.build_unit(t, p, skippable=True) for t, p in SKIPPABLE_UNITS]
    h = _unit_of(data, UnitType.LAYER_HEADER)
    eos = _unit_of(data, UnitType.END_OF_STREAM)
    return (data[:20] + units[0] + data[20:h.end] + units[1] + data[h.end:eos.pos] + units[2]
            + data[eos.pos:])


def _future_minor(data: bytes) -> bytes:
    """version_minor one more than the current (VERSION_MINOR + 1) with every reserved field
    nonzero: a decoder of the current version decodes it and ignores the reserved fields
    (clause 8.1.2)."""
    data = _rehead(_put(_put(data, 9, bytes([VERSION_MINOR + 1])), 14, b"\xa5\x5a"))
    stream = read_headers(data)
    for unit in _units(data):
        data = _put(data, unit.pos + 1, bytes([data[unit.pos + 1] | 0x55]))
        if unit.unit_type == UnitType.LAYER_HEADER:
            layer_id = next(layer for layer in stream.layers
                            if layer.header_offset == unit.pos).header.layer_id
            flags = unit.payload.start + len(layer_id.encode()) + 21
            data = _put(data, flags, bytes([data[flags] | 0x2A]))
        data = _recrc(data, unit)
    return data


#: Clauses every face exercises: its unit type and skippable_flag, the fields of face_base()
#: and the dequantization of the embedding.
FACE_BASE_CLAUSES = {"8.1.2", "8.2.1", "8.2.2", "13.3.1", "13.3.2", "13.3.3", "13.3.4",
                     "13.3.5", "13.3.6", "13.5"}
#: ... and a face with an enhancement layer: the fields of face_enhancement() but
#: predictor_info, texture decoding, residual de-normalisation and reconstruction.
FACE_ENHANCEMENT_CLAUSES = {"13.4.1", "13.4.2", "13.4.3", "13.4.5", "13.4.6", "13.4.7",
                            "13.4.8", "13.6.1", "13.6.2", "13.6.3"}
#: ... with a predictor network: predictor_info and the tolerance of the image.
FACE_PREDICTOR_CLAUSES = {"13.4.4", "13.7.3"}


def exercised_clauses(stream: Stream) -> list[str]:
    """The clauses whose syntax elements a valid stream sets to other values than the
    encoder's defaults give (float32 NCHW, 8-bit, log, per tensor, identity order, one
    channel per picture, no padding, one layer, level 10, no face), the dequantization
    clause of each quantizer it uses, and the face clauses of its faces."""
    found = set()
    h0 = stream.header
    if h0.version_minor > VERSION_MINOR:
        found |= {"8.1.2", "8.1.6", "8.2.3", "8.3.12"}
    if h0.level_idc != min(LEVELS):
        found |= {"8.1.4", "11.2"}
    if h0.num_layers != 1:
        found |= {"8.1.5"} | ({"8.2.6"} if h0.num_layers > 1 else set())
    if stream.skipped_units:
        found |= {"8.2.1", "8.2.2"}
    for face in stream.faces:
        found |= FACE_BASE_CLAUSES
        enh = face.enhancement
        if enh is not None:
            found |= FACE_ENHANCEMENT_CLAUSES
            if enh.predictor_type == PredictorType.NETWORK:
                found |= FACE_PREDICTOR_CLAUSES
    for layer in stream.layers:
        h = layer.header
        found.add({QuantizerType.UNIFORM: "9.4.1", QuantizerType.LOG: "9.4.2",
                   QuantizerType.INTEGER: "9.4.3"}[h.quantizer_type])
        if h.source_layout != SourceLayout.NCHW:
            found |= {"8.3.2", "9.5"}
        if h.source_dtype != SourceDtype.FLOAT32:
            found |= {"8.3.3", "9.5"}
        if h.batch_size > 1:
            found |= {"8.3.4", "8.3.14"}
        if h.sample_bit_depth != 8:
            found |= {"8.3.5", "10.4"}
        if h.quantizer_type != QuantizerType.LOG:
            found.add("8.3.6")
        if h.per_channel_quant_flag or h.quantizer_type == QuantizerType.INTEGER:
            found.add("8.3.7")
        if h.channel_permutation is not None:
            found |= {"8.3.8", "9.3.1"}
        if h.packing_type == PackingType.TILED:
            found |= {"8.3.9", "9.3.1", "8.3.14"}
        if h.pad_bottom or h.pad_right or h.pad_mode:
            found |= {"8.3.10", "9.3.1"}
        if h.num_elements == LEVELS[h0.level_idc].max_layer_elements:
            found.add("11.2")
        if _is_lossless(layer):
            found.add("10.7")
    return sorted(found, key=_clause_key)


def _clause_key(clause: str) -> tuple[int, ...]:
    return tuple(int(v) for v in clause.split("."))


def describe_face(face) -> str:
    """A short text of a face's coding features (for index.md)."""
    b, e = face.base, face.enhancement
    text = f"face {b.face_id}: {b.embedding_dim}-d embedding"
    if e is None:
        return text + ", base layer only"
    predictor = (f"predictor {e.predictor_id}" if e.predictor_type == PredictorType.NETWORK
                 else "no predictor")
    return (text + f", {e.image_width}x{e.image_height}x{e.image_channels} image, "
            f"{e.texture_codec.name.replace('JPEG2000', 'JPEG 2000')} texture, {predictor}")


def describe_layer(h) -> str:
    """A short text of a layer's coding features (for index.md)."""
    parts = [f"{h.source_dtype.name.lower()} {h.source_layout.name} "
             f"{'x'.join(map(str, h.shape))}", f"{h.quantizer_type.name.lower()} "
             f"{h.sample_bit_depth}-bit" + (" per-channel" if h.per_channel_quant_flag else "")]
    if h.packing_type == PackingType.TILED:
        parts.append(f"tiled {h.tile_rows}x{h.tile_cols}")
    parts.append(f"{h.num_pictures} picture{'s' if h.num_pictures != 1 else ''} "
                 f"{h.picture_width}x{h.picture_height}")
    if h.pad_bottom or h.pad_right:
        parts.append(f"pad +{h.pad_bottom}/+{h.pad_right} {h.pad_mode.name.lower()}")
    if h.channel_permutation is not None:
        parts.append("permuted channels")
    return ", ".join(parts)


@dataclasses.dataclass
class _Generated:
    name: str
    data: bytes
    entry: dict
    reference: dict[str, np.ndarray] | None = None
    stream: Stream | None = None


def _code_valid(f: Features, tensors: Mapping[str, object] | None) -> _Generated:
    where = f"stream {f.name}"
    try:
        if tensors is None:
            items = feature_tensors(f)
            configs = {k: f.encoder_config(f.channels) for k in items}
        else:
            items = dict(tensors)
            configs = {}
            for k, t in items.items():
                shape = tuple(getattr(t, "shape", ()))
                if len(shape) != 4:
                    raise SuiteError(f"{where}: {k!r} is not a tensor of 4 dimensions "
                                     f"(got {type(t).__name__} {shape})")
                axis = 3 if f.layout == "NHWC" else 1
                configs[k] = f.encoder_config(int(shape[axis]))
        data = encode(items or None, configs, faces=feature_faces(f))
    except (ValueError, RefcodecError) as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if f.extra_unit == "skippable":
        data = _with_skippable_units(data)
    if f.future_minor:
        data = _future_minor(data)
    report = verify(data, source=where)
    if not report.conformant:
        raise SuiteError(f"{where}: the reference encoder made a non-conforming stream: "
                         f"{report.violations[0]}")
    stream = read_headers(data)
    if stream.faces and report.warnings:
        raise SuiteError(f"{where}: verify warns: {report.warnings[0]}")
    decoded = decode(data)
    layers, reference = [], {}
    for layer in stream.layers:
        h = layer.header
        pictures = decode_samples(layer)
        tensor = reconstruct(h, pictures)
        if not np.array_equal(tensor_bits(tensor), tensor_bits(decoded[h.layer_id])):
            raise SuiteError(f"{where}: decode() and decode_samples() disagree")
        if tensors is None and f.lossless and h.quantizer_type == QuantizerType.INTEGER:
            original = np.asarray(items[h.layer_id]).astype(np.float64)
            if not np.array_equal(original, tensor.astype(np.float64)):
                raise SuiteError(f"{where}: lossless integer coding did not reproduce "
                                 f"layer {h.layer_id!r}")
        bf16 = h.source_dtype == SourceDtype.BFLOAT16
        reference[h.layer_id] = tensor.view(np.uint16) if bf16 else tensor
        entry = {
            "layer_id": h.layer_id, "shape": list(h.shape),
            "dtype": h.source_dtype.name.lower(), "layout": h.source_layout.name,
            "quantizer": h.quantizer_type.name.lower(), "bit_depth": h.sample_bit_depth,
            "per_channel": h.per_channel_quant_flag,
            "pictures": {"count": h.num_pictures, "width": h.picture_width,
                         "height": h.picture_height},
            "sample_md5": layer.sample_md5.hex(),
            "planes_md5": planes_md5_hex(pictures, h.sample_bit_depth),
            "tensor_sha256": tensor_sha256(tensor),
            "reference_encoding": "bfloat16-bits-as-uint16" if bf16 else "native",
            "tolerance": tolerance(h),
        }
        if h.quantizer_type == QuantizerType.LOG:
            entry["tolerance"]["reference_correctly_rounded"] = \
                log_reference_is_correctly_rounded(h)
        layers.append(entry)
    faces = []
    if stream.faces:
        outputs, warnings = decode_outputs(data)
        if warnings:
            raise SuiteError(f"{where}: {warnings[0]}")
        for face in stream.faces:
            keys = [key for key in face_keys(face.base.face_id) if key in outputs]
            reference.update({key: outputs[key] for key in keys})
            faces.append(_face_entry(face, outputs, where))
    parts = [describe_layer(x.header) for x in stream.layers[:1]]
    if len(stream.layers) > 1:
        parts.append(f"{len(stream.layers)} layers")
    parts += [describe_face(face) for face in stream.faces]
    if stream.skipped_units:
        parts.append(f"{len(stream.skipped_units)} skippable units")
    if stream.header.version_minor:
        parts.append(f"version {stream.header.version_major}.{stream.header.version_minor}")
    parts.append(f"level {stream.header.level_idc}")
    entry = {
        "name": f.name, "file": f"streams/{f.name}.vfc", "purpose": f.purpose, "valid": True,
        "clauses": exercised_clauses(stream), "features": f.to_json(),
        "description": "; ".join(parts),
        "level_idc": stream.header.level_idc, "num_layers": stream.header.num_layers,
        "reference": f"reference/{f.name}.npz", "layers": layers, "faces": faces,
    }
    return _Generated(f.name, data, entry, reference, stream)


def face_keys(face_id: str) -> tuple[str, str, str]:
    """The array names of a face in reference and output files: its embedding, image and
    texture."""
    return f"embedding:{face_id}", f"image:{face_id}", f"texture:{face_id}"


#: Largest difference a face image may have from the reference when its enhancement layer
#: uses a predictor network (clause 13.7.3: the predictor is floating point).
PREDICTOR_IMAGE_TOLERANCE = 1


def image_tolerance(enh) -> dict:
    """The tolerance of a decoded face image (clause 13.7.3): exact without a predictor, else
    |y - r| <= PREDICTOR_IMAGE_TOLERANCE for every sample."""
    if enh.predictor_type == PredictorType.NONE:
        return {"kind": "exact"}
    return {"kind": "abs", "max_abs_error": PREDICTOR_IMAGE_TOLERANCE}


def _face_entry(face, outputs: Mapping[str, np.ndarray], where: str) -> dict:
    """The manifest entry of a face, from the reference decoder's outputs."""
    b, e = face.base, face.enhancement
    emb_key, image_key, texture_key = face_keys(b.face_id)
    entry = {"face_id": b.face_id, "embedder_idc": int(b.embedder_idc),
             "embedding_dim": b.embedding_dim, "embedding_step": b.embedding_step,
             "eg_order": b.eg_order, "embedding_sha256": tensor_sha256(outputs[emb_key]),
             "enhancement": None}
    if e is None:
        return entry
    texture = outputs[texture_key]
    if face_texture.texture_md5(texture) != e.texture_md5:
        raise SuiteError(f"{where}: face {b.face_id!r}: the texture decodes differently here "
                         f"than at the encoder (texture_md5)")
    network = e.predictor_type == PredictorType.NETWORK
    entry["enhancement"] = {
        "texture_codec": e.texture_codec.name.lower(),
        "image_shape": list(e.image_shape),
        "predictor": e.predictor_id if network else "none",
        "predictor_sha256": e.predictor_sha256.hex() if network else None,
        "residual_min": e.residual_min, "residual_max": e.residual_max,
        "texture_md5": e.texture_md5.hex(),
        "image_sha256": hashlib.sha256(np.ascontiguousarray(outputs[image_key])).hexdigest(),
        "tolerance": image_tolerance(e),
    }
    return entry


def decode_outputs(data: bytes) -> tuple[dict[str, np.ndarray], list[str]]:
    """Everything a tier-2 decoder writes for a stream ({output}, conformance/README.md) and
    the decoder's warnings: one array per layer (a bfloat16 layer widened to float32, as
    ``refcodec decode`` writes it), and per face ``embedding:<face_id>`` (float32) and, with
    an enhancement layer, ``image:<face_id>`` (uint8 H x W x C) and ``texture:<face_id>``
    (the decoded texture, uint8 H x W x C).  Raises the decoder's first BitstreamError."""
    stream = read_headers(data)
    arrays = {k: v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v
              for k, v in decode(data).items()}
    decoded = decode_faces(stream, images=True)
    textures = face_textures(stream)
    warnings = []
    for face in stream.faces:
        emb_key, image_key, texture_key = face_keys(face.base.face_id)
        out = decoded[face.base.face_id]
        arrays[emb_key] = out.embedding
        if face.enhancement is not None:
            arrays[image_key] = out.image
            arrays[texture_key] = textures[face.base.face_id]
        warnings += out.warnings
    return arrays, warnings


def face_textures(stream: Stream) -> dict[str, np.ndarray]:
    """{face_id: decoded texture (H x W x C uint8)} of the faces with an enhancement layer,
    checked against texture_md5 as the decoder does (an HEVC mismatch raises)."""
    return {face.base.face_id: decode_texture_checked(face)[0] for face in stream.faces
            if face.enhancement is not None}


def reference_refusal(data: bytes) -> tuple[BitstreamError | None, str]:
    """How the reference decoder refuses a stream: (its error, stage), the stage being
    ``any`` (refused by every decoder, also one that decodes only the layers and the face
    embeddings), ``texture`` (refused when a face texture is decoded: tier-1 and tier-2
    decoders) or ``image`` (refused only when a face image is reconstructed); (None, "")
    when it decodes the stream."""
    try:
        stream = read_headers(data)
        decode(data)
    except BitstreamError as exc:
        return exc, "any"
    try:
        face_textures(stream)
    except BitstreamError as exc:
        return exc, "texture"
    try:
        decode_faces(stream, images=True)
    except BitstreamError as exc:
        return exc, "image"
    return None, ""


def _is_plain(s: Stream) -> bool:
    """A stream alterations may start from: no skippable unit of an unknown type and no
    later minor version than the current one (whose reserved fields a decoder ignores)."""
    return not s.skipped_units and s.header.version_minor <= VERSION_MINOR


def _code_invalid(row: InvalidRow, valid: list[_Generated]) -> _Generated:
    alt = ALTERATIONS[row.alteration]
    where = f"invalid stream {row.name} ({row.alteration})"
    if row.base:
        base = next((g for g in valid if g.name == row.base), None)
        if base is None:
            raise SuiteError(f"{where}: no valid stream named {row.base!r}")
        if not _is_plain(base.stream):
            raise SuiteError(f"{where}: base {row.base!r} has skippable units or a later "
                             f"minor version; alterations need a plain stream")
        if not alt.fits(base.stream):
            raise SuiteError(f"{where}: base {row.base!r} does not fit: the alteration needs "
                             f"{alt.needs}")
    else:
        base = next((g for g in valid if _is_plain(g.stream) and alt.fits(g.stream)), None)
        if base is None:
            needs = alt.needs if alt.scope == "face" else \
                alt.requires or "a stream without skippable units"
            raise SuiteError(f"{where}: no valid stream fits: the alteration needs {needs}")
    try:
        data = alt.apply(base.data, base.stream)
    except (ValueError, IndexError, RefcodecError) as exc:
        raise SuiteError(f"{where}: cannot alter {base.name!r}: {exc}") from None
    error, refused_by = reference_refusal(data)
    if error is None:
        raise SuiteError(f"{where}: the reference decoder accepts the altered stream")
    if error.clause != alt.target:
        raise SuiteError(f"{where}: the reference decoder reports clause {error.clause}, "
                         f"not {alt.target}: {error}")
    report = verify(data, source=row.name)
    clauses = [v.clause for v in report.violations]
    if alt.target in clauses:
        reports = "first" if clauses[0] == alt.target else "among"
    elif alt.verify_warns and any(f"clause {alt.target})" in w for w in report.warnings):
        reports = "warning"
    else:
        raise SuiteError(f"{where}: verify does not report clause {alt.target} "
                         f"(it reports {', '.join(clauses) or 'nothing'})")
    entry = {
        "name": row.name, "file": f"streams/{row.name}.vfc",
        "purpose": row.purpose or alt.purpose, "valid": False, "clauses": [alt.target],
        "base": base.name, "alteration": row.alteration,
        "description": f"{base.name}, altered: {alt.purpose}",
        "expected_clause": alt.target,
        "verify_reports": reports,
        "verify_clauses": clauses, "verify_exit_code": report.exit_code,
        "error_class": type(error).__name__, "exit_code": type(error).exit_code,
        "decoder_error": error.to_dict(),
    }
    if reports == "warning":
        entry["verify_warnings"] = report.warnings
    if refused_by != "any":
        entry["refused_by"] = refused_by
    return _Generated(row.name, data, entry)


# ---- files ----

def write_npz(path: Path, arrays: Mapping[str, np.ndarray], compress: bool = True) -> None:
    """An .npz file that np.load reads, with fixed zip timestamps so that the same arrays
    always give the same bytes; written atomically."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            raw = io.BytesIO()
            np.lib.format.write_array(raw, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(info, raw.getvalue(), compresslevel=9 if compress else None)
    atomic_write(path, buf.getvalue())


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file through a temporary file and a rename, so that it is whole or absent."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _library_versions() -> dict[str, str]:
    from importlib import metadata
    out = {}
    for name in ("numpy", "av", "ml_dtypes", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def generate(out_dir: Path, features: Sequence[Features], *,
             invalid: Sequence[InvalidRow] | None = None,
             tensors: Mapping[str, object] | None = None, force: bool = False,
             command: str = "", suite_name: str = DEFAULT_SUITE_NAME,
             log: Callable[[str], None] | None = None) -> dict:
    """Code every stream of ``features`` (and the ``invalid`` ones; None: the built-in list,
    ``[]``: none) into ``out_dir`` and return the manifest.

    ``tensors`` codes the user's tensors instead of synthetic data: then ``features`` holds
    the one row of settings.  Everything is generated and checked in memory before a file is
    written; an existing manifest is only replaced with ``force``.
    """
    log = log or (lambda msg: None)
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists() and not force:
        raise SuiteError(f"{manifest_path} exists: the stored streams are not regenerated "
                         f"silently; use --force to replace them")
    if tensors is not None and len(features) != 1:
        raise SuiteError("coding given tensors needs exactly one row of settings")
    invalid_rows = default_invalid_rows() if invalid is None else list(invalid)
    names = [f.name for f in features] + [r.name for r in invalid_rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteError(f"stream names shall be unique: {', '.join(dupes)}")
    t0 = time.perf_counter()
    valid = []
    for f in features:
        started = time.perf_counter()
        valid.append(_code_valid(f, tensors))
        log(f"{f.name}: {len(valid[-1].data)} bytes ({time.perf_counter() - started:.1f} s)")
    bad, skipped = [], []
    for row in invalid_rows:
        try:
            bad.append(_code_invalid(row, valid))
        except SuiteError as exc:
            if invalid is not None:      # rows the user asked for shall all work
                raise
            skipped.append({"name": row.name, "alteration": row.alteration,
                            "reason": str(exc)})
            log(f"skipped: {exc}")
    streams = valid + bad
    for g in streams:
        g.entry["sha256"] = hashlib.sha256(g.data).hexdigest()
        g.entry["size"] = len(g.data)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite_name,
        "format_version": FORMAT_VERSION,
        "refcodec_version": __version__,
        "generator": {"command": command, "libraries": _library_versions()},
        "notes": {
            "planes_md5": "MD5 of the layer's decoded pictures concatenated in output order, "
                          "samples in raster order, 1 byte each at 8-bit, else 2 bytes "
                          "little-endian (raw 4:0:0 output of HM or libde265)",
            "tensor_sha256": "sha256 of the decoded tensor's C-order little-endian bytes in "
                             "its source dtype and layout",
            "bfloat16": "numpy has no bfloat16: reference arrays of bfloat16 layers hold the "
                        "bit patterns as uint16 (reference_encoding bfloat16-bits-as-uint16)",
            "tolerance": "clause 12.3: exact for the uniform and integer quantizers; for the "
                         "log quantizer |y - r| <= max_abs_error of the value's parameter set",
            "faces": "reference arrays embedding:<face_id> (float32, compared bit-exactly), "
                     "image:<face_id> (uint8 H x W x C, within the face's tolerance: exact "
                     "without a predictor, |y - r| <= 1 with a predictor network, clause "
                     "13.7.3) and texture:<face_id> (uint8 H x W x C, MD5 texture_md5 of "
                     "clause 13.4.7: samples in channel, row, column order)",
        },
        "streams": [g.entry for g in streams],
        "skipped_alterations": skipped,
    }
    # ---- write ----
    for sub in ("streams", "reference"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    keep = {g.entry["file"] for g in streams} | {g.entry["reference"] for g in valid}
    for sub, suffix in (("streams", ".vfc"), ("reference", ".npz")):
        for old in (out_dir / sub).glob(f"*{suffix}"):
            if f"{sub}/{old.name}" not in keep:
                old.unlink()
                log(f"removed stale {sub}/{old.name}")
    for g in streams:
        atomic_write(out_dir / g.entry["file"], g.data)
        if g.reference is not None:
            write_npz(out_dir / g.entry["reference"], g.reference)
    atomic_write(out_dir / "index.md", render_index(manifest).encode("utf-8"))
    atomic_write(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
    log(f"{len(valid)} valid and {len(bad)} invalid streams, "
        f"{sum(len(g.data) for g in streams)} bytes, in {time.perf_counter() - t0:.1f} s")
    return manifest


def render_index(manifest: dict) -> str:
    """index.md: one table row per stream, generated from the manifest."""
    streams = manifest["streams"]
    valid = [s for s in streams if s["valid"]]
    lines = [
        f"# Conformance streams: {manifest['suite']}",
        "",
        "<!-- Generated by `refcodec conformance generate` from the manifest; do not edit. -->",
        "",
        f"VFC format {manifest['format_version']}, refcodec {manifest['refcodec_version']}. "
        f"{len(valid)} valid and {len(streams) - len(valid)} invalid streams, "
        f"{sum(s['size'] for s in streams)} bytes in all. Generator: "
        f"`{manifest['generator']['command'] or '(API)'}`.",
        "",
        "## Valid streams",
        "",
        "A decoder outputs the reference tensors (tier 2, clause 12.3), face embeddings and "
        "images (clause 13.7) and planes (tier 1, clause 12.2).",
        "",
        "| Stream | Purpose | Clauses | Features | Tier 2 | Size (bytes) |",
        "|:---|:---|:---|:---|:---|---:|",
    ]
    for s in valid:
        tier = ("exact" if all(x["tolerance"]["kind"] == "exact" for x in s["layers"])
                and all(f["enhancement"] is None or f["enhancement"]["tolerance"]["kind"]
                        == "exact" for f in s.get("faces", [])) else "tolerance")
        lines.append(f"| `{s['name']}` | {_cell(s['purpose'])} | {', '.join(s['clauses'])} | "
                     f"{_cell(s['description'])} | {tier} | {s['size']} |")
    lines += [
        "",
        "## Invalid streams",
        "",
        "A decoder refuses each of them; the reference decoder reports the clause shown "
        "and exits with the status shown. Clauses marked *texture* are only "
        "found by a decoder that decodes the face textures, *image* only by one that "
        "reconstructs the face images.",
        "",
        "| Stream | Clause | Error class | Exit | Alteration | Base | Size (bytes) |",
        "|:---|:---|:---|---:|:---|:---|---:|",
    ]
    for s in streams:
        if not s["valid"]:
            stage = f" ({s['refused_by']})" if s.get("refused_by") else ""
            lines.append(f"| `{s['name']}` | {s['expected_clause']}{stage} | "
                         f"{s['error_class']} | {s['exit_code']} | {_cell(s['purpose'])} | "
                         f"`{s['base']}` | {s['size']} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------------------------
# Planes (tier 1 output of refcodec itself)
# ------------------------------------------------------------------------------------

def decode_planes(data: bytes) -> dict[str, np.ndarray]:
    """{layer_id: decoded pictures (P, H, W)} after every check of the decoder
    (container, parameter sets, sample_md5): uint8 at 8-bit, else uint16; and
    {texture:<face_id>: decoded texture (H, W, C) uint8} of each face with an enhancement
    layer (checked against texture_md5 as the decoder does)."""
    stream = read_headers(data)
    planes = {layer.header.layer_id: decode_samples(layer) for layer in stream.layers}
    for face_id, texture in face_textures(stream).items():
        planes[face_keys(face_id)[2]] = texture
    return planes


# ------------------------------------------------------------------------------------
# Runner
# ------------------------------------------------------------------------------------

PLACEHOLDERS = ("{input}", "{output}", "{planes}")


@dataclasses.dataclass
class DecoderRun:
    """What one decoder run did."""

    returncode: int | None          # None: timed out
    stderr: str = ""
    seconds: float = 0.0


Decoder = Callable[[Path, Path | None, Path | None], DecoderRun]


def command_decoder(template: str, timeout: float = 120.0) -> tuple[Decoder, bool, bool]:
    """A decoder running the command line ``template`` (no shell: it is split with
    shlex and the placeholders are replaced inside each argument), and whether it writes
    {output} and {planes}."""
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise SuiteError(f"--decoder: {exc}") from None
    if not argv:
        raise SuiteError("--decoder: empty command")
    joined = " ".join(argv)
    if "{input}" not in joined:
        raise SuiteError("--decoder: the command has no {input} placeholder")
    unknown = set(re.findall(r"\{[A-Za-z_]+\}", joined)) - set(PLACEHOLDERS)
    if unknown:
        raise SuiteError(f"--decoder: unknown placeholder(s) {', '.join(sorted(unknown))}; "
                         f"the placeholders are {', '.join(PLACEHOLDERS)}")
    has_output, has_planes = "{output}" in joined, "{planes}" in joined

    def run(input_path: Path, output: Path | None, planes: Path | None) -> DecoderRun:
        args = []
        for arg in argv:
            arg = arg.replace("{input}", str(input_path))
            arg = arg.replace("{output}", str(output)) if output else arg
            arg = arg.replace("{planes}", str(planes)) if planes else arg
            args.append(arg)
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise SuiteError(f"--decoder: cannot run {args[0]!r}: {exc.strerror or exc}") \
                from None
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return DecoderRun(None, f"timed out after {timeout:g} s",
                              time.perf_counter() - started)
        return DecoderRun(proc.returncode, err.decode("utf-8", "replace"),
                          time.perf_counter() - started)
    return run, has_output, has_planes


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a timed-out decoder with every process it started (its own session)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except ProcessLookupError:
        pass
    proc.communicate()


_STREAM_KEYS = {"name": str, "file": str, "valid": bool, "sha256": str}
_VALID_KEYS = {"reference": str, "layers": list}
_LAYER_KEYS = {"layer_id": str, "shape": list, "dtype": str, "layout": str, "quantizer": str,
               "bit_depth": int, "pictures": dict, "planes_md5": str, "tensor_sha256": str,
               "reference_encoding": str, "tolerance": dict}
_FACE_KEYS = {"face_id": str, "embedding_dim": int, "embedding_sha256": str}
_ENHANCEMENT_KEYS = {"image_shape": list, "texture_md5": str, "image_sha256": str,
                     "tolerance": dict}


def _check_manifest(manifest: dict, path: Path) -> None:
    """Enough structure for the runner; a readable error rather than a KeyError."""
    def need(obj, keys, where):
        for key, kind in keys.items():
            if not isinstance(obj.get(key), kind):
                raise SuiteError(f"{path}: {where}: {key} missing or not a {kind.__name__}")
    streams = manifest.get("streams")
    if not isinstance(streams, list):
        raise SuiteError(f"{path}: no streams list")
    for i, s in enumerate(streams):
        if not isinstance(s, dict):
            raise SuiteError(f"{path}: streams[{i}] is not an object")
        need(s, _STREAM_KEYS, f"streams[{i}]")
        files = [s["file"]]
        if s["valid"]:
            need(s, _VALID_KEYS, f"stream {s['name']}")
            for layer in s["layers"]:
                need(layer, _LAYER_KEYS, f"stream {s['name']} layer")
            if not isinstance(s.get("faces", []), list):
                raise SuiteError(f"{path}: stream {s['name']}: faces is not a list")
            for face in s.get("faces", []):
                need(face, _FACE_KEYS, f"stream {s['name']} face")
                if face.get("enhancement") is not None:
                    need(face["enhancement"], _ENHANCEMENT_KEYS,
                         f"stream {s['name']} face {face['face_id']} enhancement")
            files.append(s["reference"])
        else:
            need(s, {"expected_clause": str}, f"stream {s['name']}")
        for name in files:
            parts = Path(name).parts
            if Path(name).is_absolute() or ".." in parts or not parts:
                raise SuiteError(f"{path}: stream {s['name']}: {name!r} is not a path inside "
                                 f"the suite directory")


def load_manifest(path: Path) -> dict:
    if not Path(path).is_file():
        raise SuiteError(f"{path}: no such manifest")
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: not a JSON manifest: {exc}") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version not in READABLE_SCHEMA_VERSIONS:
        raise SuiteError(f"{path}: manifest schema_version shall be one of "
                         f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}, got {version!r}")
    _check_manifest(manifest, Path(path))
    return manifest


def _load_arrays(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    return loaded


def reference_tensor(manifest_dir: Path, stream: dict, layer: dict) -> np.ndarray:
    """A layer's reference tensor in its source dtype (bfloat16 bit patterns reinterpreted)."""
    with np.load(manifest_dir / stream["reference"], allow_pickle=False) as z:
        array = z[layer["layer_id"]]
    if layer["reference_encoding"] == "bfloat16-bits-as-uint16":
        return array.view(ml_dtypes.bfloat16)
    return array


def as_source_dtype(array: np.ndarray, dtype: str) -> tuple[np.ndarray | None, str]:
    """A decoder's output array as the layer's source dtype, with a note on how it was
    read, or (None, reason).  bfloat16 may come as bfloat16, as its bit patterns in uint16
    (or 2-byte void) or widened to float32 (exactly: the low 16 bits zero)."""
    target = NUMPY_DTYPES[DTYPE_NAMES[dtype]]
    got = array.dtype
    if got == target or (got.kind == "f" and got.itemsize == target.itemsize
                         and dtype != "bfloat16"):
        return array.astype(target), ""
    if dtype == "bfloat16":
        if got.kind in "uV" and got.itemsize == 2:
            return np.ascontiguousarray(array).view("<u2").astype("<u2").view(target), \
                "bfloat16 read from uint16 bit patterns"
        if got.kind == "f" and got.itemsize == 4:
            bits = tensor_bits(array.astype(np.float32))
            if np.any(bits & 0xFFFF):
                return None, "float32 values that are not bfloat16 values"
            return (bits >> 16).astype("<u2").view(target), "bfloat16 read from float32"
    return None, f"dtype {got} instead of {dtype}"


def compare_tensor(got: np.ndarray, ref: np.ndarray, layer: dict) -> tuple[bool, str]:
    """Tier 2 (clause 12.3): (passed, 'exact' | 'tolerance' | a reason of failure)."""
    if tuple(got.shape) != tuple(layer["shape"]):
        return False, f"shape {list(got.shape)} instead of {layer['shape']}"
    got_bits, ref_bits = tensor_bits(got), tensor_bits(ref)
    if np.array_equal(got_bits, ref_bits):
        return True, "exact"
    differ = int(np.count_nonzero(got_bits != ref_bits))
    y = got.astype(np.float64)
    r = ref.astype(np.float64)
    error = np.abs(y - r)
    tol = layer["tolerance"]
    worst = float(np.max(np.where(np.isnan(error), np.inf, error)))
    if tol["kind"] == "exact":
        return False, (f"{differ} of {got.size} values differ from the reference (the "
                       f"{layer['quantizer']} quantizer is exact); largest |y - r| {worst:.6g}")
    limits = np.array([math.ldexp(1.0, s["max_abs_error_log2"]) for s in tol["param_sets"]])
    if len(limits) > 1:
        shape = [1] * got.ndim
        axis = 3 if layer["layout"] == "NHWC" else 1
        shape[axis] = len(limits)
        limit = limits.reshape(shape)
    else:
        limit = limits[0]
    ok = np.isfinite(y) & (error <= limit)
    if ok.all():
        return True, "tolerance"
    outside = int(np.count_nonzero(~ok))
    return False, (f"{outside} of {got.size} values outside the tolerance of clause 12.3 "
                   f"(largest |y - r| {worst:.6g}, tolerance {float(np.min(limits)):.6g}"
                   + (" and more" if len(limits) > 1 else "") + ")")


def reference_faces(manifest_dir: Path, stream: dict) -> dict[str, np.ndarray]:
    """The reference arrays of a stream's faces (embedding:, image:, texture:<face_id>)."""
    names = {key for face in stream.get("faces", []) for key in face_keys(face["face_id"])}
    with np.load(manifest_dir / stream["reference"], allow_pickle=False) as z:
        return {key: z[key] for key in z.files if key in names}


def compare_embedding(got: np.ndarray, ref: np.ndarray) -> tuple[bool, str]:
    """A decoded embedding against the reference: bit-exact float32 values (clause 13.7.1)."""
    if got.shape != ref.shape:
        return False, f"embedding of shape {list(got.shape)} instead of {list(ref.shape)}"
    if got.dtype.kind != "f":
        return False, f"embedding of dtype {got.dtype} instead of float32"
    as32 = got.astype(np.float32)
    if got.dtype != np.float32 and not np.array_equal(as32.astype(got.dtype), got,
                                                      equal_nan=True):
        return False, f"embedding of {got.dtype} values that are not float32 values"
    differ = int(np.count_nonzero(tensor_bits(as32) != tensor_bits(ref)))
    if differ:
        return False, (f"{differ} of {ref.size} embedding values differ from the reference "
                       f"(exact, clause 13.7.1)")
    return True, "exact"


def _as_image(got: np.ndarray, shape: Sequence[int], what: str) -> tuple[np.ndarray | None, str]:
    """A decoder's H x W x C (or H x W for one channel) 8-bit array as int64, or a reason."""
    shape = tuple(shape)
    if got.shape == shape[:2] and shape[2] == 1:
        got = got[:, :, None]
    if got.shape != shape or got.dtype.kind not in "ui":
        return None, (f"{what} {got.dtype}{list(got.shape)}, expected 8-bit integers of shape "
                      f"{list(shape)}")
    if got.size and (got.min() < 0 or got.max() > 255):
        return None, f"{what} samples outside 0..255"
    return got.astype(np.int64), ""


def compare_image(got: np.ndarray, ref: np.ndarray, enh: dict) -> tuple[bool, str]:
    """A decoded face image against the reference, within the face's tolerance (clause
    13.7.3): (passed, 'exact' | 'tolerance' | a reason of failure)."""
    image, why = _as_image(got, enh["image_shape"], "image")
    if image is None:
        return False, why
    error = np.abs(image - ref.astype(np.int64))
    worst = int(error.max()) if error.size else 0
    if worst == 0:
        return True, "exact"
    tol = enh["tolerance"]
    limit = tol["max_abs_error"] if tol["kind"] == "abs" else 0
    if worst <= limit:
        return True, "tolerance"
    outside = int(np.count_nonzero(error > limit))
    return False, (f"{outside} of {error.size} image samples differ from the reference by "
                   f"more than {limit} (largest {worst}; "
                   + ("exact without a predictor" if tol["kind"] == "exact" else
                      f"tolerance {limit} with a predictor")
                   + ", clause 13.7.3)")


def check_texture(got: np.ndarray, face: dict) -> tuple[list[str], str]:
    """A decoded face texture against texture_md5 (clauses 13.4.7 and 13.7.2): (failure
    reasons, a note).  An HEVC texture must match; a JPEG or JPEG 2000 texture that does not
    is allowed (the decoder warns and uses its own texture): the note says so."""
    enh, fid = face["enhancement"], face["face_id"]
    texture, why = _as_image(got, enh["image_shape"], "texture")
    if texture is None:
        return [f"face {fid}: {why}"], ""
    md5 = face_texture.texture_md5(texture.astype(np.uint8)).hex()
    if md5 == enh["texture_md5"]:
        return [], ""
    if enh.get("texture_codec", "hevc") != "hevc":
        return [], (f"face {fid}: the {enh['texture_codec']} texture differs from the "
                    f"encoder's (texture_md5), which clause 13.7.2 allows: its image is not "
                    f"compared")
    return [f"face {fid}: texture MD5 {md5}, expected texture_md5 {enh['texture_md5']}"], ""


def check_faces(arrays: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                faces: Sequence[dict]) -> tuple[list[str], list[str], list[str]]:
    """A decoder's face outputs (embedding:, image: and, when given, texture:<face_id>)
    against the references (clause 13.7); (failure reasons, the tier of each passed check,
    notes).  The image of a JPEG or JPEG 2000 face whose given texture differs from
    texture_md5 is not compared (clause 13.7.3), only its shape checked."""
    reasons, tiers, notes = [], [], []
    for face in faces:
        fid, enh = face["face_id"], face.get("enhancement")
        emb_key, image_key, texture_key = face_keys(fid)
        if emb_key not in arrays:
            reasons.append(f"face {fid}: no {emb_key}")
        else:
            passed, detail = compare_embedding(arrays[emb_key], reference[emb_key])
            (tiers if passed else reasons).append(detail if passed else f"face {fid}: {detail}")
        if enh is None:
            continue
        note = ""
        if texture_key in arrays:
            why, note = check_texture(arrays[texture_key], face)
            reasons += why
            if note:
                notes.append(note)
        if image_key not in arrays:
            reasons.append(f"face {fid}: no {image_key}")
        elif note:
            image, why = _as_image(arrays[image_key], enh["image_shape"], "image")
            if image is None:
                reasons.append(f"face {fid}: {why}")
            else:
                tiers.append("tolerance")
        else:
            passed, detail = compare_image(arrays[image_key], reference[image_key], enh)
            if passed:
                tiers.append(detail)
            else:
                hint = "" if enh.get("texture_codec", "hevc") == "hevc" or \
                    texture_key in arrays else \
                    (f"; a decoder whose {enh['texture_codec']} texture differs from the "
                     f"encoder's may show it with {texture_key}")
                reasons.append(f"face {fid}: {detail}{hint}")
    return reasons, tiers, notes


def check_planes(path: Path, stream: dict, notes: list[str] | None = None) -> list[str]:
    """Tier 1 (clause 12.2): the decoder's pictures against planes_md5 and its face textures
    against texture_md5; failure reasons (notes on allowed differences go to ``notes``)."""
    if not path.is_file():
        return ["wrote no planes file"]
    try:
        arrays = _load_arrays(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a failure of the decoder
        return [f"planes file unreadable: {exc}"]
    enhanced = [f for f in stream.get("faces", []) if f.get("enhancement") is not None]
    if not isinstance(arrays, dict):
        if enhanced:
            return ["planes file is one array, the stream has face textures (write .npz)"]
        if len(stream["layers"]) != 1:
            return ["planes file is one array, the stream has several layers"]
        arrays = {stream["layers"][0]["layer_id"]: arrays}
    reasons = []
    for face in enhanced:
        key = face_keys(face["face_id"])[2]
        if key not in arrays:
            reasons.append(f"face {face['face_id']}: no {key}")
        else:
            why, note = check_texture(arrays[key], face)
            reasons += why
            if note and notes is not None:
                notes.append(note)
    for layer in stream["layers"]:
        lid, pics = layer["layer_id"], layer["pictures"]
        array = arrays.get(lid)
        if array is None:
            reasons.append(f"layer {lid}: no planes")
            continue
        shape = (pics["count"], pics["height"], pics["width"])
        if array.shape != shape or array.dtype.kind not in "ui":
            reasons.append(f"layer {lid}: planes {array.dtype}{list(array.shape)}, expected "
                           f"integers of shape {list(shape)}")
            continue
        if array.size and (array.min() < 0 or array.max() >= 1 << layer["bit_depth"]):
            reasons.append(f"layer {lid}: samples outside 0..2^{layer['bit_depth']}-1")
            continue
        md5 = planes_md5_hex(array, layer["bit_depth"])
        if md5 != layer["planes_md5"]:
            reasons.append(f"layer {lid}: planes_md5 {md5}, expected {layer['planes_md5']}")
    return reasons


def check_output(path: Path, manifest_dir: Path, stream: dict,
                 notes: list[str] | None = None) -> tuple[list[str], str]:
    """Tier 2: the decoder's tensors and faces against the reference; (failure reasons,
    tier); notes on allowed differences go to ``notes``."""
    if not path.is_file():
        return ["wrote no output file"], ""
    try:
        arrays = _load_arrays(path)
    except Exception as exc:  # noqa: BLE001
        return [f"output file unreadable: {exc}"], ""
    faces = stream.get("faces", [])
    if not isinstance(arrays, dict):
        if faces:
            return ["output is one array, the stream has faces (write .npz)"], ""
        if len(stream["layers"]) != 1:
            return ["output is one array, the stream has several layers (write .npz)"], ""
        arrays = {stream["layers"][0]["layer_id"]: arrays}
    reasons, tiers = [], []
    wanted = [layer["layer_id"] for layer in stream["layers"]]
    for face in faces:
        wanted += face_keys(face["face_id"]) if face.get("enhancement") else \
            face_keys(face["face_id"])[:1]
    extra = sorted(set(arrays) - set(wanted))
    if extra:
        reasons.append(f"unexpected arrays {', '.join(extra)}")
    if faces:
        why, face_tiers, face_notes = check_faces(arrays, reference_faces(manifest_dir, stream),
                                                  faces)
        reasons += why
        tiers += face_tiers
        if notes is not None:
            notes += face_notes
    for layer in stream["layers"]:
        lid = layer["layer_id"]
        if lid not in arrays:
            reasons.append(f"layer {lid}: missing")
            continue
        got, note = as_source_dtype(arrays[lid], layer["dtype"])
        if got is None:
            reasons.append(f"layer {lid}: {note}")
            continue
        passed, detail = compare_tensor(got, reference_tensor(manifest_dir, stream, layer), layer)
        if passed:
            tiers.append(detail)
        else:
            reasons.append(f"layer {lid}: {detail}")
    tier = "" if reasons else ("tolerance" if "tolerance" in tiers else "exact")
    return reasons, tier


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_stream(stream: dict, manifest_dir: Path, decoder: Decoder, *, outputs: bool,
               planes: bool) -> dict:
    """Run the decoder on one stream of a manifest; the result record."""
    result = {"name": stream["name"], "valid": stream["valid"], "status": "FAIL",
              "tier": None, "reasons": []}
    path = manifest_dir / stream["file"]
    if not path.is_file():
        result["reasons"].append(f"stream file {stream['file']} missing")
        return result
    if hashlib.sha256(path.read_bytes()).hexdigest() != stream["sha256"]:
        result["reasons"].append(f"stream file {stream['file']} does not match its sha256")
        return result
    with tempfile.TemporaryDirectory(prefix="vfc-conformance-") as tmp:
        out = Path(tmp) / f"{stream['name']}.npz" if outputs else None
        pl = Path(tmp) / f"{stream['name']}.planes.npz" if planes else None
        run = decoder(path, out, pl)
        result["seconds"] = round(run.seconds, 3)
        result["exit_code"] = run.returncode
        result["stderr"] = _last_line(run.stderr)
        reasons = result["reasons"]
        if run.returncode is None:
            reasons.append(run.stderr or "timed out")
        elif stream["valid"]:
            if run.returncode != 0:
                reasons.append(f"exit status {run.returncode} on a valid stream: "
                               f"{result['stderr']}")
            else:
                notes = []
                if out is not None:
                    why, tier = check_output(out, manifest_dir, stream, notes)
                    reasons += why
                    result["tier"] = tier or None
                if pl is not None:
                    reasons += check_planes(pl, stream, notes)
                if notes:
                    result["notes"] = sorted(set(notes))
        else:
            result["refused"] = run.returncode != 0
            # only a decoder of face images refuses it: a decoder of planes may accept it
            may_accept = stream.get("refused_by") == "image" and not outputs
            if run.returncode == 0 and not may_accept:
                reasons.append(f"exit status 0 on an invalid stream (expected a refusal, "
                               f"clause {stream['expected_clause']})")
            elif run.returncode < 0:
                reasons.append(f"killed by signal {-run.returncode} instead of refusing "
                               f"the stream")
            left = [p.name for p in (out, pl) if p is not None and p.exists()]
            if left and not (may_accept and run.returncode == 0):
                reasons.append(f"left output behind: {', '.join(left)}")
            result["reported_clause"] = f"[{stream['expected_clause']}]" in run.stderr
    if not result["reasons"]:
        result["status"] = "PASS"
    return result


def run_suite(manifest_path: Path, decoder: Decoder, *, outputs: bool = True,
              planes: bool = False, streams: Sequence[str] = (), jobs: int = 1,
              progress: Callable[[dict], None] | None = None) -> dict:
    """Run ``decoder`` on every stream of a manifest (or those whose name matches one of
    the fnmatch patterns ``streams``); the results record (see conformance/README.md)."""
    manifest_path = Path(manifest_path)
    manifest = load_manifest(manifest_path)
    selected = [s for s in manifest["streams"]
                if not streams or any(fnmatch.fnmatchcase(s["name"], p) for p in streams)]
    if not selected:
        raise SuiteError(f"no stream of {manifest_path} matches {', '.join(streams)}")
    if not outputs and not planes:
        raise SuiteError("the decoder shall write {output} or {planes}")
    started = time.perf_counter()

    def one(stream):
        result = run_stream(stream, manifest_path.parent, decoder, outputs=outputs,
                            planes=planes)
        if progress:
            progress(result)
        return result
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, selected))
    summary = {"total": len(results),
               "passed": sum(r["status"] == "PASS" for r in results),
               "failed": sum(r["status"] != "PASS" for r in results)}
    for kind, valid in (("valid", True), ("invalid", False)):
        subset = [r for r in results if r["valid"] == valid]
        summary[kind] = {"total": len(subset),
                         "passed": sum(r["status"] == "PASS" for r in subset)}
    summary["valid"]["exact"] = sum(r["tier"] == "exact" for r in results)
    summary["valid"]["tolerance"] = sum(r["tier"] == "tolerance" for r in results)
    return {"schema_version": SCHEMA_VERSION, "suite": manifest["suite"],
            "manifest": str(manifest_path), "format_version": manifest["format_version"],
            "checks": {"tensors": outputs, "planes": planes},
            "seconds": round(time.perf_counter() - started, 3),
            "summary": summary, "results": results}


def format_results(results: dict, decoder_name: str) -> str:
    """The summary table printed by ``refcodec conformance run``."""
    rows = [("Stream", "Valid", "Result", "Details")]
    for r in results["results"]:
        if r["status"] == "PASS":
            detail = (f"tier 2 {r['tier']}" if r["valid"] and r["tier"] else
                      "tier 1" if r["valid"] else "refused")
            if r.get("notes"):
                detail += "; " + "; ".join(r["notes"])
            if not r["valid"] and not r.get("refused", True):
                detail = "accepted (refused only by a decoder of face images)"
            elif not r["valid"] and not r.get("reported_clause", True):
                detail += " (clause not in the message)"
        else:
            detail = "; ".join(r["reasons"])
        rows.append((r["name"], "yes" if r["valid"] else "no", r["status"], detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"Suite {results['suite']} (VFC {results['format_version']}), decoder: "
             f"{decoder_name}", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  "
                     + row[3])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    s = results["summary"]
    lines += ["", f"{s['passed']}/{s['total']} passed: valid {s['valid']['passed']}/"
                  f"{s['valid']['total']} ({s['valid']['exact']} bit-exact, "
                  f"{s['valid']['tolerance']} within the tolerance of clause 12.3), invalid "
                  f"{s['invalid']['passed']}/{s['invalid']['total']} refused; "
                  f"{results['seconds']:.1f} s"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------
# The reference decoder's complete output, for the runner
# ------------------------------------------------------------------------------------

def decoder_main(argv: Sequence[str] | None = None) -> int:
    """``python -m refcodec.conformance decode INPUT OUTPUT.npz``: the reference decoder's
    {output} for the runner (``decode_outputs``): the layers and every face's embedding,
    image and texture in one .npz, which ``refcodec decode`` cannot write for face images.
    Exit status and error line as ``refcodec decode``: 0, 2 bad use, 3 bitstream error
    (``refcodec: error: [clause] ...``), 4 HEVC library failure; nothing is written on an
    error."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(
        prog="python -m refcodec.conformance",
        description="refcodec's decoder for `refcodec conformance run`: layers, face "
                    "embeddings, face images and textures of a stream in one .npz")
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode INPUT (.vfc) to OUTPUT (.npz)")
    dec.add_argument("input")
    dec.add_argument("output")
    args = parser.parse_args(argv)
    out = Path(args.output)
    if out.suffix.lower() != ".npz":
        print(f"refcodec: error: {out}: output shall be .npz", file=sys.stderr)
        return 2
    try:
        arrays, warnings = decode_outputs(Path(args.input).read_bytes())
        for warning in warnings:
            print(f"refcodec: warning: {warning}", file=sys.stderr)
        write_npz(out, arrays, compress=False)
    except RefcodecError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"refcodec: error: {exc.filename or args.input}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(decoder_main())
