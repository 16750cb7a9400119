"""Bytes <-> records: the container layer of VFC (spec clauses 7 and 8).

``parse_stream`` reads and checks a whole bitstream except the HEVC payloads;
``build_stream`` writes one.  This is the only module that handles construct Containers
and the only place where ``ConstructError`` is caught and converted.  The stream header
and layer headers are read with ``struct`` into the Containers construct would give
(construct parses whatever the fast path does not take, so every error is construct's).

Checking is done through a ``Checker``: in the default mode the first violation is
raised; ``refcodec verify`` uses a collecting checker that records every violation that
can be found without losing sync with the syntax.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import zlib

import construct

from . import syntax
from .enums import (ALLOWED_BIT_DEPTHS, ALLOWED_IMAGE_CHANNELS, DTYPE_INFO, LEVELS,
                    UNIT_SKIPPABLE, Embedder, Level, PackingType, PadMode, PayloadCodec,
                    PredictorType, Profile, QuantizerType, SourceDtype, SourceLayout,
                    TextureCodec, UnitType)
from .errors import (BitstreamError, ConformanceViolation, SyntaxViolation,
                     UnsupportedFeature)
from .face import entropy
from .records import (Face, FaceBase, FaceEnhancement, Layer, LayerHeader, QuantParams,
                      SkippedUnit, Stream, StreamHeader)

#: The two face unit types (format 1.1).
FACE_UNITS = (UnitType.FACE_BASE, UnitType.FACE_ENHANCEMENT)
#: residual_min and residual_max lie in -RESIDUAL_LIMIT..RESIDUAL_LIMIT (clause 13.4.5).
RESIDUAL_LIMIT = 255

class Checker:
    """Receives violations.  The default raises the first one."""

    def __init__(self, collect: bool = False):
        self.collect = collect
        self.violations: list[BitstreamError] = []

    def fail(self, error: BitstreamError) -> None:
        if not self.collect:
            raise error
        self.violations.append(error)

    def fatal(self, error: BitstreamError) -> BitstreamError:
        """A violation after which parsing cannot go on: record it and return it to raise."""
        if self.collect:
            self.violations.append(error)
        return error


def crc32(data: bytes) -> int:
    """CRC-32 of clause 4.5 (ISO-HDLC, as in PNG and zlib)."""
    return zlib.crc32(data) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------

def build_stream_header(header: StreamHeader) -> bytes:
    fields = dict(version_major=header.version_major, version_minor=header.version_minor,
                  profile_idc=header.profile_idc, level_idc=header.level_idc,
                  num_layers=header.num_layers, reserved_zero_16bits=0, header_crc32=0)
    body = syntax.stream_header.build(fields)[:-4]
    return body + crc32(body).to_bytes(4, "big")


def build_unit(unit_type: int, payload: bytes, skippable: bool = False) -> bytes:
    raw = syntax.unit.build(dict(unit_type=unit_type,
                                 unit_flags=dict(skippable_flag=skippable, reserved_zero_7bits=0),
                                 unit_payload=payload, unit_crc32=0))
    body = raw[:-4]
    return body + crc32(body).to_bytes(4, "big")


def _layer_header_fields(h: LayerHeader) -> dict:
    if h.quantizer_type == QuantizerType.INTEGER:
        params = [dict(offset_value=p.offset_value) for p in h.quant_params]
    else:
        params = [dict(min_value=p.min_value, max_value=p.max_value) for p in h.quant_params]
    return dict(
        layer_id=h.layer_id.encode("utf-8"), source_layout=int(h.source_layout),
        source_dtype=int(h.source_dtype), batch_size=h.batch_size, num_channels=h.num_channels,
        height=h.height, width=h.width, sample_bit_depth=h.sample_bit_depth,
        quantizer_type=int(h.quantizer_type),
        layer_flags=dict(per_channel_quant_flag=h.per_channel_quant_flag,
                         channel_permutation_flag=h.channel_permutation is not None,
                         reserved_zero_6bits=0),
        quant_params=params,
        channel_permutation=(list(h.channel_permutation)
                             if h.channel_permutation is not None else None),
        packing_type=int(h.packing_type),
        tile_grid=dict(tile_rows=h.tile_rows, tile_cols=h.tile_cols)
        if h.packing_type == PackingType.TILED else None,
        pad_mode=int(h.pad_mode), pad_bottom=h.pad_bottom, pad_right=h.pad_right,
        payload_codec=int(h.payload_codec),
    )


def build_layer_header(h: LayerHeader) -> bytes:
    return syntax.layer_header.build(_layer_header_fields(h))


def build_layer_data(sample_md5: bytes, hevc_payload: bytes) -> bytes:
    return syntax.layer_data.build(dict(sample_md5=sample_md5, hevc_payload=hevc_payload))


def build_face_base(b: FaceBase) -> bytes:
    return syntax.face_base.build(dict(
        face_id=b.face_id.encode("utf-8"), embedder_idc=int(b.embedder_idc),
        embedding_dim=b.embedding_dim,
        embedding_step=b.embedding_step, eg_order=b.eg_order,
        embedding_payload=entropy.write_levels(b.levels, b.eg_order)))


def build_face_enhancement(e: FaceEnhancement) -> bytes:
    info = None
    if e.predictor_type == PredictorType.NETWORK:
        info = dict(predictor_id=e.predictor_id.encode("utf-8"),
                    predictor_sha256=e.predictor_sha256)
    return syntax.face_enhancement.build(dict(
        face_id=e.face_id.encode("utf-8"), image_height=e.image_height,
        image_width=e.image_width, image_channels=e.image_channels,
        predictor_type=int(e.predictor_type), predictor_info=info,
        residual_min=e.residual_min, residual_max=e.residual_max,
        texture_codec=int(e.texture_codec), texture_md5=e.texture_md5,
        texture_payload=e.texture_payload))


def build_stream(header: StreamHeader, layers: list[tuple[LayerHeader, bytes, bytes]],
                 extra_units: list[tuple[int, bytes, bool]] = (),
                 faces: list[Face] = ()) -> bytes:
    """Write a bitstream.  ``layers`` holds (header, sample_md5, hevc_payload) triples;
    ``faces`` the face records, written after the layers: every face_base unit, then every
    face_enhancement unit, so that the enhancement layers end the stream; ``extra_units``
    (type, payload, skippable) are written after the stream header (used by tests and the
    conformance generator)."""
    parts = [build_stream_header(header)]
    for unit_type, payload, skippable in extra_units:
        parts.append(build_unit(unit_type, payload, skippable))
    for layer_header, md5, payload in layers:
        parts.append(build_unit(UnitType.LAYER_HEADER, build_layer_header(layer_header)))
        parts.append(build_unit(UnitType.LAYER_DATA, build_layer_data(md5, payload)))
    for face in faces:
        parts.append(build_unit(UnitType.FACE_BASE, build_face_base(face.base), True))
    for face in faces:
        if face.enhancement is not None:
            parts.append(build_unit(UnitType.FACE_ENHANCEMENT,
                                    build_face_enhancement(face.enhancement), True))
    parts.append(build_unit(UnitType.END_OF_STREAM, b""))
    return b"".join(parts)


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------

#: The leading fields of layer_header() that limits and array sizes depend on: parsed and
#: checked before the arrays are read.
_LAYER_HEADER_FIXED = construct.Struct(*[sc for sc in syntax.layer_header.subcons
                                         if sc.name in syntax.LAYER_HEADER_FIXED_FIELDS])


def _field_offset(struct: construct.Struct, parsed, name: str) -> int:
    """Offset of field ``name`` inside a parsed structure, found by re-building the fields
    before it (only used to locate an error)."""
    offset = 0
    for sc in struct.subcons:
        if sc.name == name:
            return offset
        try:
            offset += len(sc.build(parsed[sc.name], **parsed))
        except Exception:  # noqa: BLE001 - locating an error must never raise another
            return offset
    return offset


# Fast paths: the same fields as construct parses them from syntax.stream_header and
# syntax.layer_header, read with struct.  A fast parser returns None whenever the data is
# too short or anything else is not plain, and construct then parses it (and reports the
# problem); the checks below run on the result either way.  tests/test_bitstream.py checks
# that both give the same fields.

class _Fields(construct.Container):
    """A construct Container whose fields are also plain instance attributes: the checks
    read dozens of fields, and construct's Container.__getattr__ is a Python-level lookup.
    Equal to the Container construct parses (equality compares the items); never changed
    after it is made."""

    def __init__(self, *args, **fields):
        super().__init__(*args, **fields)
        self.__dict__.update(self)


_STREAM_HEADER = struct.Struct(">8sBBBBHHI")
#: layer_header() from source_layout to layer_flags: two u8, four u32, three u8.
_LAYER_HEADER_MIDDLE = struct.Struct(">BBIIIIBBB")
_MINMAX = struct.Struct(">ff")
_OFFSET = struct.Struct(">f")
_TILE_GRID = struct.Struct(">HH")
#: pad_mode, pad_bottom, pad_right, payload_codec.
_LAYER_HEADER_TAIL = struct.Struct(">BBBB")


def _fast_stream_header(data: bytes) -> construct.Container:
    """syntax.stream_header.parse(data) for at least STREAM_HEADER_SIZE bytes."""
    (magic, version_major, version_minor, profile_idc, level_idc, num_layers, reserved,
     header_crc32) = _STREAM_HEADER.unpack_from(data)
    return _Fields(magic=magic, version_major=version_major, version_minor=version_minor,
                   profile_idc=profile_idc, level_idc=level_idc, num_layers=num_layers,
                   reserved_zero_16bits=reserved, header_crc32=header_crc32)


def _fast_layer_header(payload: bytes):
    """(fixed, full, consumed): what _LAYER_HEADER_FIXED and syntax.layer_header parse from
    ``payload`` and the bytes the latter consumes, or None (construct's turn) when the
    payload is too short for either or quantizer_type is not a known value."""
    size = len(payload)
    if not size:
        return None
    pos = 1 + payload[0]
    if size < pos + _LAYER_HEADER_MIDDLE.size:
        return None
    (layout, dtype, batch, channels, height, width, depth, qtype,
     flags) = _LAYER_HEADER_MIDDLE.unpack_from(payload, pos)
    if qtype not in (0, 1, 2):
        return None
    per_channel, permuted = bool(flags & 0x80), bool(flags & 0x40)
    fixed = _Fields(
        len_layer_id=payload[0], layer_id=payload[1:pos], source_layout=layout,
        source_dtype=dtype, batch_size=batch, num_channels=channels, height=height,
        width=width, sample_bit_depth=depth, quantizer_type=qtype,
        layer_flags=_Fields(per_channel_quant_flag=per_channel,
                            channel_permutation_flag=permuted,
                            reserved_zero_6bits=flags & 0x3F))
    pos += _LAYER_HEADER_MIDDLE.size
    one = _OFFSET if qtype == 2 else _MINMAX
    params_end = pos + (channels if per_channel else 1) * one.size
    permutation_end = params_end + (4 * channels if permuted else 0)
    # packing_type, then tile_grid if it is 1, then the four u8 of _LAYER_HEADER_TAIL
    if size < permutation_end + 1 or size < permutation_end + 1 + (
            4 if payload[permutation_end] == 1 else 0) + _LAYER_HEADER_TAIL.size:
        return None
    if qtype == 2:
        params = [_Fields(offset_value=v) for (v,) in one.iter_unpack(payload[pos:params_end])]
    else:
        params = [_Fields(min_value=lo, max_value=hi)
                  for lo, hi in one.iter_unpack(payload[pos:params_end])]
    permutation = None
    if permuted:
        permutation = construct.ListContainer(
            struct.unpack_from(f">{channels}I", payload, params_end))
    pos = permutation_end
    packing_type = payload[pos]
    pos += 1
    tile_grid = None
    if packing_type == 1:
        rows, cols = _TILE_GRID.unpack_from(payload, pos)
        tile_grid = _Fields(tile_rows=rows, tile_cols=cols)
        pos += _TILE_GRID.size
    pad_mode, pad_bottom, pad_right, payload_codec = _LAYER_HEADER_TAIL.unpack_from(payload,
                                                                                    pos)
    full = _Fields(fixed, quant_params=construct.ListContainer(params),
                   channel_permutation=permutation, packing_type=packing_type,
                   tile_grid=tile_grid, pad_mode=pad_mode, pad_bottom=pad_bottom,
                   pad_right=pad_right, payload_codec=payload_codec)
    return fixed, full, pos + _LAYER_HEADER_TAIL.size


class _Reader:
    def __init__(self, data: bytes, checker: Checker, limits: Level | None):
        self.data = data
        self.check = checker
        self.limits_override = limits
        self.level: Level = limits or LEVELS[max(LEVELS)]
        self.lenient_reserved = False
        self.layers: list[Layer] = []
        self.skipped: list[SkippedUnit] = []
        self.face_bases: list[FaceBase] = []
        self.face_enhancements: dict[str, FaceEnhancement] = {}
        self.version_minor = 0

    # -- helpers ---------------------------------------------------------------------------
    def fail(self, cls, clause, message, offset, path):
        self.check.fail(cls(message, clause=clause, offset=offset, path=path))

    def stop(self, cls, clause, message, offset, path):
        err = self.check.fatal(cls(message, clause=clause, offset=offset, path=path))
        raise err

    def _text(self, raw: bytes, name: str, clause: str, offset: int, path: str) -> str:
        """An identifier (layer_id, face_id, predictor_id): 1..255 bytes of UTF-8 without
        control characters."""
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(raw).decode("utf-8", "replace")
            self.fail(ConformanceViolation, clause, f"{name} shall be valid UTF-8", offset,
                      path)
        if not text:
            self.fail(ConformanceViolation, clause, f"len_{name} shall be at least 1, got 0",
                      offset - 1, path.rsplit(".", 1)[0] + f".len_{name}")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            self.fail(ConformanceViolation, clause,
                      f"{name} shall not contain control characters, got {text!r}", offset,
                      path)
        return text

    # -- stream header ------------------------------------------------------------------
    def read_stream_header(self) -> StreamHeader:
        data = self.data
        size = syntax.STREAM_HEADER_SIZE
        if len(data) < len(syntax.MAGIC) or data[:len(syntax.MAGIC)] != syntax.MAGIC:
            got = data[:len(syntax.MAGIC)].hex()
            self.stop(SyntaxViolation, "8.1.1",
                      f"magic shall be {syntax.MAGIC.hex()}, got {got or 'end of data'}",
                      0, "stream_header.magic")
        if len(data) < size:
            self.stop(SyntaxViolation, "8.1.1",
                      f"stream_header() needs {size} bytes, got {len(data)}",
                      len(data), "stream_header")
        c = _fast_stream_header(data)
        if c.version_major != syntax.VERSION_MAJOR:
            newer = c.version_major > syntax.VERSION_MAJOR
            self.stop(UnsupportedFeature, "8.1.2",
                      f"version_major {c.version_major} is "
                      f"{'newer than' if newer else 'not'} the supported version "
                      f"{syntax.VERSION_MAJOR}", 8, "stream_header.version_major")
        self.lenient_reserved = c.version_minor > syntax.VERSION_MINOR
        expected = crc32(data[:size - 4])
        if c.header_crc32 != expected:
            self.stop(SyntaxViolation, "8.1.7",
                      f"header_crc32 shall be {expected:08x}, got {c.header_crc32:08x}",
                      size - 4, "stream_header.header_crc32")
        if c.profile_idc not in Profile.__members__.values():
            self.stop(UnsupportedFeature, "8.1.3",
                      f"profile_idc {c.profile_idc} is reserved", 10, "stream_header.profile_idc")
        if c.level_idc not in LEVELS:
            self.stop(UnsupportedFeature, "8.1.4",
                      f"level_idc {c.level_idc} is reserved (known: "
                      f"{', '.join(map(str, LEVELS))})", 11, "stream_header.level_idc")
        if self.limits_override is None:
            self.level = LEVELS[c.level_idc]
        self.version_minor = c.version_minor
        if c.num_layers > self.level.max_layers or (c.num_layers == 0
                                                    and c.version_minor == 0):
            self.fail(ConformanceViolation, "11.2" if c.num_layers else "8.1.5",
                      f"num_layers shall be in {1 if c.version_minor == 0 else 0}.."
                      f"{self.level.max_layers}, got {c.num_layers}",
                      12, "stream_header.num_layers")
        if c.reserved_zero_16bits != 0 and not self.lenient_reserved:
            self.fail(ConformanceViolation, "8.1.6",
                      f"reserved_zero_16bits shall be 0, got {c.reserved_zero_16bits}",
                      14, "stream_header.reserved_zero_16bits")
        return StreamHeader(c.version_major, c.version_minor, c.profile_idc, c.level_idc,
                            c.num_layers)

    # -- units --------------------------------------------------------------------------------
    def read_units(self, header: StreamHeader) -> None:
        """Read every unit into self.layers / self.skipped."""
        data = self.data
        pos = syntax.STREAM_HEADER_SIZE
        layers = self.layers
        skipped = self.skipped
        pending: tuple[LayerHeader, int] | None = None
        seen_ids: set[str] = set()
        unit_index = 0
        view = memoryview(data)   # CRC-32 of each unit without copying it
        while True:
            path = f"units[{unit_index}]"
            if pos >= len(data):
                self.stop(SyntaxViolation, "8.2.6",
                          "the stream ends without an end_of_stream unit", pos, path)
            if len(data) - pos < syntax.UNIT_OVERHEAD:
                self.stop(SyntaxViolation, "8.2.4",
                          f"unit() needs at least {syntax.UNIT_OVERHEAD} bytes, "
                          f"{len(data) - pos} left", pos, path)
            unit_type = data[pos]
            flags = data[pos + 1]
            skippable = bool(flags & 0x80)
            length = int.from_bytes(data[pos + 2:pos + 6], "big")
            if length > self.level.max_unit_payload:
                self.stop(ConformanceViolation, "11.2",
                          f"len_unit_payload shall be at most {self.level.max_unit_payload}, "
                          f"got {length}", pos + 2, f"{path}.len_unit_payload")
            end = pos + syntax.UNIT_OVERHEAD + length
            if end > len(data):
                self.stop(SyntaxViolation, "8.2.4",
                          f"len_unit_payload {length} runs past the end of the stream "
                          f"({len(data) - pos - syntax.UNIT_OVERHEAD} bytes left)",
                          pos + 2, f"{path}.len_unit_payload")
            stored_crc = int.from_bytes(data[end - 4:end], "big")
            computed = crc32(view[pos:end - 4])
            if stored_crc != computed:
                self.stop(SyntaxViolation, "8.2.5",
                          f"unit_crc32 shall be {computed:08x}, got {stored_crc:08x}",
                          end - 4, f"{path}.unit_crc32")
            payload_pos = pos + syntax.UNIT_PREFIX
            known = unit_type in UnitType.__members__.values()
            if unit_type in FACE_UNITS and header.version_minor < 1:
                known = False      # reserved types in a 1.0 stream (clause 8.2.1)
            if not known:
                if skippable:
                    skipped.append(SkippedUnit(unit_type, pos, length))
                    pos = end
                    unit_index += 1
                    continue
                self.stop(UnsupportedFeature, "8.2.1",
                          f"unit_type {unit_type} is unknown and not skippable", pos,
                          f"{path}.unit_type")
            if skippable != UNIT_SKIPPABLE[unit_type]:
                self.fail(ConformanceViolation, "8.2.2",
                          f"skippable_flag shall be {int(UNIT_SKIPPABLE[unit_type])} for "
                          f"unit_type {unit_type}", pos + 1,
                          f"{path}.unit_flags.skippable_flag")
            if pending is not None and unit_type in FACE_UNITS:
                self.stop(ConformanceViolation, "8.2.6",
                          "a layer_header unit shall be followed by a layer_data unit",
                          pos, f"{path}.unit_type")
            if flags & 0x7F and not self.lenient_reserved:
                self.fail(ConformanceViolation, "8.2.3",
                          f"reserved_zero_7bits shall be 0, got {flags & 0x7F}", pos + 1,
                          f"{path}.unit_flags.reserved_zero_7bits")

            if unit_type == UnitType.LAYER_HEADER:
                if pending is not None:
                    self.stop(ConformanceViolation, "8.2.6",
                              "a layer_header unit shall be followed by a layer_data unit "
                              "before the next layer_header", pos, f"{path}.unit_type")
                if len(layers) >= header.num_layers:
                    self.stop(ConformanceViolation, "8.1.5",
                              f"the stream holds more layers than num_layers "
                              f"({header.num_layers})", pos, f"{path}.unit_type")
                lpath = f"layers[{len(layers)}]"
                lh = self.read_layer_header(data[payload_pos:end - 4], payload_pos, lpath)
                if lh.layer_id in seen_ids:
                    self.fail(ConformanceViolation, "8.3.1",
                              f"layer_id {lh.layer_id!r} shall be unique in the stream",
                              payload_pos + 1, f"{lpath}.layer_id")
                seen_ids.add(lh.layer_id)
                pending = (lh, pos)
            elif unit_type == UnitType.LAYER_DATA:
                if pending is None:
                    self.stop(ConformanceViolation, "8.2.6",
                              "a layer_data unit shall follow a layer_header unit", pos,
                              f"{path}.unit_type")
                lpath = f"layers[{len(layers)}]"
                if length < 16:
                    self.stop(SyntaxViolation, "8.2.4",
                              f"layer_data() needs at least 16 bytes, got {length}",
                              payload_pos, f"{lpath}.sample_md5")
                if length == 16:
                    self.fail(ConformanceViolation, "8.4.2", "hevc_payload shall not be empty",
                              payload_pos + 16, f"{lpath}.hevc_payload")
                layers.append(Layer(index=len(layers), header=pending[0],
                                    sample_md5=data[payload_pos:payload_pos + 16],
                                    hevc_payload=data[payload_pos + 16:end - 4],
                                    header_offset=pending[1], data_offset=pos,
                                    payload_offset=payload_pos + 16))
                pending = None
            elif unit_type == UnitType.FACE_BASE:
                self.read_face_base(data[payload_pos:end - 4], pos, payload_pos)
            elif unit_type == UnitType.FACE_ENHANCEMENT:
                self.read_face_enhancement(data[payload_pos:end - 4], pos, payload_pos)
            else:  # END_OF_STREAM
                if length != 0:
                    self.fail(ConformanceViolation, "8.2.4",
                              f"len_unit_payload of end_of_stream shall be 0, got {length}",
                              pos + 2, f"{path}.len_unit_payload")
                if pending is not None:
                    self.fail(ConformanceViolation, "8.2.6",
                              "end_of_stream follows a layer_header without its layer_data",
                              pos, f"{path}.unit_type")
                if len(layers) != header.num_layers:
                    self.fail(ConformanceViolation, "8.1.5",
                              f"num_layers is {header.num_layers} but the stream holds "
                              f"{len(layers)} layers", 12, "stream_header.num_layers")
                elif not layers and not self.face_bases and header.version_minor >= 1:
                    self.fail(ConformanceViolation, "8.1.5",
                              "the stream shall hold at least one layer or face", 12,
                              "stream_header.num_layers")
                if end != len(data):
                    self.fail(ConformanceViolation, "8.2.7",
                              f"{len(data) - end} bytes follow the end_of_stream unit", end,
                              "trailing_data")
                return
            pos = end
            unit_index += 1

    # -- face units (clause 13) ----------------------------------------------------------
    def read_face_base(self, payload: bytes, unit_pos: int, base: int) -> None:
        lvl = self.level
        path = f"faces[{len(self.face_bases)}].base"
        if len(self.face_bases) >= lvl.max_faces:
            self.stop(ConformanceViolation, "11.2",
                      f"a stream shall hold at most {lvl.max_faces} faces at level "
                      f"{lvl.level_idc}", unit_pos, path)
        c, _ = self._parse(syntax.face_base, payload, base, path, "face_base()")

        @functools.cache
        def at(name):
            return base + _field_offset(syntax.face_base, c, name)

        face_id = self._text(c.face_id, "face_id", "13.3.1", at("face_id"), f"{path}.face_id")
        if any(b.face_id == face_id for b in self.face_bases):
            self.fail(ConformanceViolation, "13.3.1",
                      f"face_id {face_id!r} shall be unique among the faces of the stream",
                      at("face_id"), f"{path}.face_id")
        if c.embedder_idc not in Embedder.__members__.values():
            self.stop(UnsupportedFeature, "13.3.2", f"embedder_idc {c.embedder_idc} is reserved",
                      at("embedder_idc"), f"{path}.embedder_idc")
        dim = c.embedding_dim
        if dim < 1:
            self.stop(ConformanceViolation, "13.3.3", "embedding_dim shall be at least 1, got 0",
                      at("embedding_dim"), f"{path}.embedding_dim")
        if dim > lvl.max_embedding_dim:
            self.stop(ConformanceViolation, "11.2",
                      f"embedding_dim shall be at most {lvl.max_embedding_dim} at level "
                      f"{lvl.level_idc}, got {dim}", at("embedding_dim"),
                      f"{path}.embedding_dim")
        step_ok = entropy.valid_step(c.embedding_step)
        if not step_ok:
            self.fail(ConformanceViolation, "13.3.4",
                      f"embedding_step shall be positive and finite, got {c.embedding_step!r}",
                      at("embedding_step"), f"{path}.embedding_step")
        if c.embedder_idc == Embedder.DLIB_RESNET_V1 and dim != 128:
            self.fail(ConformanceViolation, "13.3.2",
                      f"embedding_dim shall be 128 for embedder_idc 1 (dlib ResNet v1), "
                      f"got {dim}", at("embedding_dim"), f"{path}.embedding_dim")
        if c.eg_order > entropy.MAX_EG_ORDER:
            self.stop(ConformanceViolation, "13.3.5",
                      f"eg_order shall be at most {entropy.MAX_EG_ORDER}, got {c.eg_order}",
                      at("eg_order"), f"{path}.eg_order")
        start = at("embedding_payload")
        try:
            levels = entropy.read_levels(c.embedding_payload, dim, c.eg_order)
        except entropy.EmbeddingCodeError as exc:
            self.stop(SyntaxViolation, exc.clause, exc.message, start + exc.bit // 8,
                      f"{path}.embedding_payload")
        if step_ok:
            peak = max(abs(v) for v in levels) * c.embedding_step
            if peak >= entropy.OVERFLOW_THRESHOLD:
                self.fail(ConformanceViolation, "13.5",
                          f"every decoded embedding value shall be finite in binary32: "
                          f"level {max(levels, key=abs)} x embedding_step "
                          f"{c.embedding_step!r} overflows", at("embedding_step"),
                          f"{path}.embedding_step")
        self.face_bases.append(FaceBase(
            face_id=face_id, embedder_idc=Embedder(c.embedder_idc), embedding_dim=dim,
            embedding_step=c.embedding_step, eg_order=c.eg_order, levels=levels,
            offset=unit_pos, payload_offset=start))

    def read_face_enhancement(self, payload: bytes, unit_pos: int, base: int) -> None:
        lvl = self.level
        c, _ = self._parse(syntax.face_enhancement, payload, base, "faces[?].enhancement",
                           "face_enhancement()")

        @functools.cache
        def at(name):
            return base + _field_offset(syntax.face_enhancement, c, name)

        try:
            face_id = bytes(c.face_id).decode("utf-8")
        except UnicodeDecodeError:
            face_id = None
        index = next((i for i, b in enumerate(self.face_bases) if b.face_id == face_id), None)
        if index is None:
            self.stop(ConformanceViolation, "13.4.1",
                      f"face_id {bytes(c.face_id)!r} shall name a face_base unit that "
                      f"precedes this face_enhancement unit", at("face_id"),
                      "faces[?].enhancement.face_id")
        path = f"faces[{index}].enhancement"
        if face_id in self.face_enhancements:
            self.stop(ConformanceViolation, "13.4.1",
                      f"face {face_id!r} shall have at most one face_enhancement unit",
                      unit_pos, path)
        h, w, ch = c.image_height, c.image_width, c.image_channels

        def stop(cls, clause, message, name):
            self.stop(cls, clause, message, at(name), f"{path}.{name}")

        def fail(cls, clause, message, name):
            self.fail(cls, clause, message, at(name), f"{path}.{name}")

        if h < 1 or w < 1:
            stop(ConformanceViolation, "13.4.2",
                 f"image_height and image_width shall be at least 1, got {h}x{w}",
                 "image_height")
        if ch not in ALLOWED_IMAGE_CHANNELS:
            stop(UnsupportedFeature, "13.4.2", f"image_channels shall be 1 or 3, got {ch}",
                 "image_channels")
        ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
        if max(ph, pw) > lvl.max_picture_size or ph * pw > lvl.max_picture_samples:
            stop(ConformanceViolation, "11.2",
                 f"the image size {w}x{h} (coded {pw}x{ph}) exceeds the limits of level "
                 f"{lvl.level_idc} ({lvl.max_picture_size} per side, "
                 f"{lvl.max_picture_samples} samples)", "image_height")
        if c.predictor_type not in PredictorType.__members__.values():
            stop(UnsupportedFeature, "13.4.3", f"predictor_type {c.predictor_type} is reserved",
                 "predictor_type")
        ptype = PredictorType(c.predictor_type)
        predictor_id = predictor_sha256 = None
        if ptype == PredictorType.NETWORK:
            info = c.predictor_info
            info_at = at("predictor_info")
            predictor_id = self._text(info.predictor_id, "predictor_id", "13.4.4",
                                      info_at + 1, f"{path}.predictor_info.predictor_id")
            predictor_sha256 = bytes(info.predictor_sha256)
        rmin, rmax = c.residual_min, c.residual_max
        if not -RESIDUAL_LIMIT <= rmin <= rmax <= RESIDUAL_LIMIT:
            fail(ConformanceViolation, "13.4.5",
                 f"residual_min and residual_max shall satisfy -{RESIDUAL_LIMIT} <= "
                 f"residual_min <= residual_max <= {RESIDUAL_LIMIT}, got {rmin}, {rmax}",
                 "residual_min")
        if c.texture_codec not in TextureCodec.__members__.values():
            stop(UnsupportedFeature, "13.4.6", f"texture_codec {c.texture_codec} is reserved",
                 "texture_codec")
        start = at("texture_payload")
        if not c.texture_payload:
            fail(ConformanceViolation, "13.4.8", "texture_payload shall not be empty",
                 "texture_payload")
        self.face_enhancements[face_id] = FaceEnhancement(
            face_id=face_id, image_height=h, image_width=w, image_channels=ch,
            predictor_type=ptype, predictor_id=predictor_id,
            predictor_sha256=predictor_sha256, residual_min=rmin, residual_max=rmax,
            texture_codec=TextureCodec(c.texture_codec), texture_md5=bytes(c.texture_md5),
            texture_payload=bytes(c.texture_payload), offset=unit_pos, payload_offset=start)

    # -- layer header ---------------------------------------------------------------------
    def _parse(self, struct, payload: bytes, base: int, path: str, what: str):
        stream = io.BytesIO(payload)
        try:
            return struct.parse_stream(stream), stream.tell()
        except construct.ConstructError as exc:
            where = getattr(exc, "path", None) or ""
            where = where.replace("(parsing) -> ", "").replace(" -> ", ".")
            self.stop(SyntaxViolation, "8.2.4",
                      f"unit payload ({len(payload)} bytes) is too short for {what}",
                      base + min(stream.tell(), len(payload)),
                      f"{path}.{where}" if where else path)

    def read_layer_header(self, payload: bytes, base: int, path: str) -> LayerHeader:
        lvl = self.level
        fixed_struct = _LAYER_HEADER_FIXED
        fast = _fast_layer_header(payload)
        if fast is None:
            c, _ = self._parse(fixed_struct, payload, base, path, "layer_header()")
        else:
            c, full, consumed = fast

        offsets = {}   # one re-build per field, however many violations it has

        def at(name):
            if name not in offsets:
                offsets[name] = base + _field_offset(fixed_struct, c, name)
            return offsets[name]

        def fail(cls, clause, message, name):
            self.fail(cls, clause, message, at(name), f"{path}.{name}")

        def stop(cls, clause, message, name):
            self.stop(cls, clause, message, at(name), f"{path}.{name}")

        # --- limits and everything array sizes depend on, before the arrays are read ---
        layer_id = self._text(c.layer_id, "layer_id", "8.3.1", base + 1,
                              f"{path}.layer_id")
        for name in ("source_layout", "source_dtype", "quantizer_type"):
            enum = {"source_layout": SourceLayout, "source_dtype": SourceDtype,
                    "quantizer_type": QuantizerType}[name]
            clause = {"source_layout": "8.3.2", "source_dtype": "8.3.3",
                      "quantizer_type": "8.3.6"}[name]
            if c[name] not in enum.__members__.values():
                stop(UnsupportedFeature, clause, f"{name} {c[name]} is reserved", name)
        for name in ("batch_size", "num_channels", "height", "width"):
            if c[name] < 1:
                stop(ConformanceViolation, "8.3.4", f"{name} shall be at least 1, got 0", name)
        if c.num_channels > lvl.max_num_channels:
            stop(ConformanceViolation, "11.2",
                 f"num_channels shall be at most {lvl.max_num_channels} at level "
                 f"{lvl.level_idc}, got {c.num_channels}", "num_channels")
        elements = c.batch_size * c.num_channels * c.height * c.width
        if elements > lvl.max_layer_elements:
            stop(ConformanceViolation, "11.2",
                 f"batch_size*num_channels*height*width shall be at most "
                 f"{lvl.max_layer_elements} at level {lvl.level_idc}, got {elements}",
                 "batch_size")
        if c.sample_bit_depth not in ALLOWED_BIT_DEPTHS:
            stop(UnsupportedFeature, "8.3.5",
                 f"sample_bit_depth shall be 8, 10 or 12, got {c.sample_bit_depth}",
                 "sample_bit_depth")
        if c.layer_flags.reserved_zero_6bits and not self.lenient_reserved:
            fail(ConformanceViolation, "8.3.12",
                 f"reserved_zero_6bits shall be 0, got {c.layer_flags.reserved_zero_6bits}",
                 "layer_flags")

        # --- the whole structure ---
        if fast is None:
            full, consumed = self._parse(syntax.layer_header, payload, base, path,
                                         "layer_header()")

        full_offsets = {}

        def at_full(name):
            if name not in full_offsets:
                full_offsets[name] = base + _field_offset(syntax.layer_header, full, name)
            return full_offsets[name]

        def fail_full(cls, clause, message, name, sub="", delta=0):
            self.fail(cls, clause, message, at_full(name) + delta, f"{path}.{name}{sub}")

        def stop_full(cls, clause, message, name, sub=""):
            self.stop(cls, clause, message, at_full(name), f"{path}.{name}{sub}")

        if consumed != len(payload):
            self.fail(ConformanceViolation, "8.3.13",
                      f"layer_header() is {consumed} bytes but len_unit_payload is "
                      f"{len(payload)}", base + consumed, path)

        qtype = QuantizerType(full.quantizer_type)
        dtype = SourceDtype(full.source_dtype)
        depth = full.sample_bit_depth
        params = []
        set_size = 4 if qtype == QuantizerType.INTEGER else 8
        largest = DTYPE_INFO[dtype].max_finite
        for i, p in enumerate(full.quant_params):
            sub, delta = f"[{i}]", i * set_size
            if qtype == QuantizerType.INTEGER:
                off = p.offset_value
                limit = 1 << DTYPE_INFO[dtype].precision
                if not math.isfinite(off) or off != math.floor(off):
                    fail_full(ConformanceViolation, "8.3.7",
                              f"offset_value shall be a finite integer, got {off!r}",
                              "quant_params", sub + ".offset_value", delta)
                elif off < -limit or off + (1 << depth) - 1 > limit:
                    fail_full(ConformanceViolation, "8.3.7",
                              f"offset_value..offset_value+{(1 << depth) - 1} shall lie in "
                              f"-{limit}..{limit} for {dtype.name.lower()}, got {off!r}",
                              "quant_params", sub + ".offset_value", delta)
                params.append(QuantParams(offset_value=off))
            else:
                lo, hi = p.min_value, p.max_value
                if not (abs(lo) <= largest and abs(hi) <= largest):
                    fail_full(ConformanceViolation, "8.3.7",
                              f"min_value and max_value shall be finite in "
                              f"{dtype.name.lower()} (magnitude at most {largest!r}), got "
                              f"{lo!r}, {hi!r}", "quant_params", sub, delta)
                elif lo > hi:
                    fail_full(ConformanceViolation, "8.3.7",
                              f"min_value shall not exceed max_value, got {lo!r} > {hi!r}",
                              "quant_params", sub, delta)
                params.append(QuantParams(min_value=lo, max_value=hi))

        perm = None
        if full.channel_permutation is not None:
            perm = tuple(full.channel_permutation)
            seen = bytearray(full.num_channels)
            for i, k in enumerate(perm):
                if k >= full.num_channels or seen[k]:
                    fail_full(ConformanceViolation, "8.3.8",
                              f"channel_permutation shall be a permutation of "
                              f"0..{full.num_channels - 1}, entry {i} is {k}"
                              + (" (repeated)" if k < full.num_channels else ""),
                              "channel_permutation", f"[{i}]", 4 * i)
                    break
                seen[k] = 1

        if full.packing_type not in PackingType.__members__.values():
            stop_full(UnsupportedFeature, "8.3.9", f"packing_type {full.packing_type} is reserved",
                      "packing_type")
        packing = PackingType(full.packing_type)
        rows = cols = 1
        if packing == PackingType.TILED:
            rows, cols = full.tile_grid.tile_rows, full.tile_grid.tile_cols
            if rows < 1 or cols < 1 or rows * cols < 2:
                stop_full(ConformanceViolation, "8.3.9",
                          f"tile_rows and tile_cols shall be at least 1 with tile_rows*tile_cols "
                          f"at least 2, got {rows}x{cols}", "tile_grid")
        if full.pad_mode not in PadMode.__members__.values():
            stop_full(UnsupportedFeature, "8.3.10", f"pad_mode {full.pad_mode} is reserved",
                      "pad_mode")
        for name, dim in (("pad_bottom", full.height), ("pad_right", full.width)):
            if (dim + full[name]) % 8:
                what = "height" if name == "pad_bottom" else "width"
                fail_full(ConformanceViolation, "8.3.10",
                          f"{what} + {name} shall be a multiple of 8, got "
                          f"{dim} + {full[name]}", name)
        pic_h = rows * (full.height + full.pad_bottom)
        pic_w = cols * (full.width + full.pad_right)
        if max(pic_h, pic_w) > lvl.max_picture_size or pic_h * pic_w > lvl.max_picture_samples:
            stop_full(ConformanceViolation, "11.2",
                      f"the picture size {pic_w}x{pic_h} exceeds the limits of level "
                      f"{lvl.level_idc} ({lvl.max_picture_size} per side, "
                      f"{lvl.max_picture_samples} samples)", "packing_type")
        num_pictures = -(-(full.batch_size * full.num_channels) // (rows * cols))
        if num_pictures > lvl.max_pictures:
            stop_full(ConformanceViolation, "11.2",
                      f"the layer needs {num_pictures} pictures, more than the "
                      f"{lvl.max_pictures} of level {lvl.level_idc}", "packing_type")
        if num_pictures * pic_h * pic_w > lvl.max_layer_samples:
            stop_full(ConformanceViolation, "11.2",
                      f"the layer decodes to {num_pictures} pictures of {pic_w}x{pic_h} = "
                      f"{num_pictures * pic_h * pic_w} samples, more than the "
                      f"{lvl.max_layer_samples} of level {lvl.level_idc}", "packing_type")
        if full.payload_codec not in PayloadCodec.__members__.values():
            stop_full(UnsupportedFeature, "8.3.11",
                      f"payload_codec {full.payload_codec} is reserved", "payload_codec")

        return LayerHeader(
            layer_id=layer_id, source_layout=SourceLayout(full.source_layout), source_dtype=dtype,
            batch_size=full.batch_size, num_channels=full.num_channels, height=full.height,
            width=full.width, sample_bit_depth=depth, quantizer_type=qtype,
            per_channel_quant_flag=bool(full.layer_flags.per_channel_quant_flag),
            quant_params=tuple(params), channel_permutation=perm, packing_type=packing,
            tile_rows=rows, tile_cols=cols, pad_mode=PadMode(full.pad_mode),
            pad_bottom=full.pad_bottom, pad_right=full.pad_right,
            payload_codec=PayloadCodec(full.payload_codec))


def parse_stream(data: bytes, *, checker: Checker | None = None,
                 limits: Level | None = None) -> Stream:
    """Parse and check the container of a VFC bitstream (everything but the HEVC payloads).

    Raises a ``BitstreamError`` subclass on the first violation, unless ``checker`` collects
    them, in which case whatever could be parsed is returned (or ``None`` when not even the
    stream header could be read).  ``limits`` replaces the limits of the stream's level.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    checker = checker or Checker()
    reader = _Reader(data, checker, limits)
    try:
        header = reader.read_stream_header()
    except BitstreamError:
        if checker.collect:
            return None
        raise
    try:
        reader.read_units(header)
    except BitstreamError:
        if not checker.collect:
            raise
    faces = tuple(Face(index=i, base=b, enhancement=reader.face_enhancements.get(b.face_id))
                  for i, b in enumerate(reader.face_bases))
    return Stream(header=header, layers=tuple(reader.layers),
                  skipped_units=tuple(reader.skipped), size=len(data), faces=faces)

