"""The codec-features table (conformance/features.csv): one row per valid stream.

``Features`` is one row (its fields are the columns, conformance/README.md documents them);
``read_features`` reads and checks a CSV table, ``parse_features`` one row of text cells.
``_read_csv`` and ``_check_name`` also serve the invalid-streams table (``invalid``).
A new column is a field of ``Features`` (and a check in ``_validate``); the data it codes
is made in ``synthetic_data``.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..codec import EncoderConfig
from ..enums import LEVELS, SourceDtype
from ..errors import RefcodecError
from ..face.codec import FaceConfig
from ..packing import order_of_groups
from .errors import SuiteError


#: The names of streams (in both tables).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

DTYPE_NAMES = {"float32": SourceDtype.FLOAT32, "float16": SourceDtype.FLOAT16,
               "bfloat16": SourceDtype.BFLOAT16}
DATA_KINDS = ("relu", "gaussian", "constant", "integer", "ramp", "negzero", "extremes")
EXTRA_UNITS = ("", "skippable")
#: Edits of the first layer's HEVC payload after coding (refcodec.hevc.edit), which leave
#: its pictures as they are: the parameter sets in the order VPS, PPS, SPS; a changed SPS
#: (another log2_max_pic_order_cnt_lsb_minus4) sent with VPS and PPS, the PPS first, before
#: the middle picture.
HEVC_EDITS = ("", "pps_before_sps", "changed_sps")
#: Edits of the stream after coding.  Of its units, which stay as they are: every face unit
#: moved before the first layer (faces_first) or between the first and the second layer
#: (faces_between); version_minor set to 0 (faces_in_1_0: a version 1.0 stream, in which
#: unit types 3 and 4 are reserved, so that a decoder skips the face units, which are
#: skippable, and outputs the layers only).  Of the first layer's pictures, coded again with
#: the row's qp and preset: 8 more rows and columns of padding than needed (extra_padding, one
#: channel per picture: pad_bottom and pad_right grow by 8), the unused tiles of the last
#: picture filled with a checkerboard of the extreme sample values (unused_tiles_nonzero,
#: packing tiled).
FACE_STREAM_EDITS = ("faces_first", "faces_between", "faces_in_1_0")
STREAM_EDITS = ("", *FACE_STREAM_EDITS, "extra_padding", "unused_tiles_nonzero",
                "sparse_groups")
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
    hevc_edit: str = ""
    stream_edit: str = ""
    x265_params: str = ""
    face: str = ""
    faces: int = 1
    face_channels: int = 3
    face_qp: int = 32
    predictor: str = "none"
    param_format: str = "binary32"
    permutation_coding: str = "auto"

    def to_json(self) -> dict:
        """The row as the manifest records it; the columns of format 1.2 and stream_edit only
        when they differ from their defaults, so that the entries of older streams keep their
        fields."""
        out = dataclasses.asdict(self)
        for name in (*FORMAT12_COLUMNS, "stream_edit"):
            if out[name] == getattr(Features, name):
                del out[name]
        return out

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
                             lossless=self.lossless, layout=self.layout, preset=self.preset,
                             param_format=self.param_format,
                             permutation_coding=self.permutation_coding)


FEATURE_COLUMNS = tuple(f.name for f in dataclasses.fields(Features))
#: The columns format 1.2 added (omitted from the manifest at their defaults).
FORMAT12_COLUMNS = ("param_format", "permutation_coding")
_INT_COLUMNS = {"batch", "channels", "height", "width", "bit_depth", "qp", "layers", "seed",
                "faces", "face_channels", "face_qp"}
_BOOL_COLUMNS = {"per_channel", "lossless", "future_minor"}


def channel_order(text: str, channels: int) -> tuple[int, ...] | None:
    """The channel order a table cell names: ``identity`` (no channel_permutation),
    ``reverse``, ``shuffle:SEED`` (a seeded random permutation), ``groups:K:SEED`` (every
    channel in one of K seeded random groups, the channels sorted by group: the orders the
    grouped permutation of format 1.2 codes in Ceil(Log2 K) bits) or an explicit list such
    as ``2;0;1`` (signalled even when it is the identity)."""
    text = text.strip()
    if text in ("", "identity"):
        return None
    if text == "reverse":
        return tuple(range(channels - 1, -1, -1))
    if text.startswith("groups:"):
        _, k, seed = text.split(":")
        groups = np.random.default_rng(int(seed)).integers(0, int(k), channels)
        return order_of_groups(groups)
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
            from ..face import predictor as predictors
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
    if f.x265_params and not re.fullmatch(r"[a-z0-9-]+=[A-Za-z0-9.-]+(:[a-z0-9-]+=[A-Za-z0-9.-]+)*",
                                          f.x265_params):
        bad(f"x265_params shall be libx265 options name=value:name=value, got "
            f"{f.x265_params!r}")
    if f.hevc_edit not in HEVC_EDITS:
        bad(f"hevc_edit shall be one of {', '.join(repr(e) for e in HEVC_EDITS)}, got "
            f"{f.hevc_edit!r}")
    if f.stream_edit not in STREAM_EDITS:
        bad(f"stream_edit shall be one of {', '.join(repr(e) for e in STREAM_EDITS)}, got "
            f"{f.stream_edit!r}")
    if f.stream_edit in FACE_STREAM_EDITS and not (f.face and f.layers):
        bad(f"stream_edit {f.stream_edit} moves face units among layers: it needs a face and "
            f"a layer")
    if f.stream_edit == "faces_between" and f.layers < 2:
        bad("stream_edit faces_between needs two layers or more")
    if f.stream_edit == "extra_padding" and (f.packing != "channel" or not f.layers):
        bad("stream_edit extra_padding needs a layer of packing channel")
    if f.stream_edit == "unused_tiles_nonzero" and (f.packing != "tiled" or not f.layers
                                                    or f.x265_params or f.hevc_edit):
        bad("stream_edit unused_tiles_nonzero needs a tiled layer coded by the encoder")
    if f.stream_edit == "sparse_groups" and (f.permutation_coding != "grouped"
                                             or not f.layers):
        bad("stream_edit sparse_groups needs a layer of permutation_coding grouped")
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


def face_config(f: Features, index: int) -> FaceConfig:
    """The face encoder's settings for face ``index`` of a features row."""
    return FaceConfig(face_id=f"face{index}", enhancement=f.face if f.face != "base" else "none",
                      predictor=f.predictor, qp=f.face_qp, preset=f.preset)
