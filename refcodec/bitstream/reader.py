"""Bytes -> records: the reader of the container (clauses 8.1, 8.2 and 8.4).

``Reader`` holds what one parse knows (the data, the checker, the level's limits, the
units read so far) and reads the stream header and the unit sequence; the structures
inside the units have a reader each, in their own module, as the spec has a table each:
layer_header() in ``layer_header.py``, face_base() and face_enhancement() in
``face_units.py``.  Every check is reported through the Checker, in the order the elements
are read.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib

import construct

from .. import syntax
from ..enums import LEVELS, UNIT_SKIPPABLE, UNIT_VERSION_MINOR, Level, Profile, UnitType
from ..errors import BitstreamError, ConformanceViolation, SyntaxViolation, UnsupportedFeature
from ..records import (Face, FaceBase, FaceEnhancement, Layer, LayerHeader, SkippedUnit,
                       Stream, StreamHeader)
from . import fast
from .base import FACE_UNITS, Checker, crc32
from .face_units import read_face_base, read_face_enhancement
from .layer_header import read_layer_header

#: unit_type, unit_flags and len_unit_payload (clause 8.2).
_FRAME = struct.Struct(">BBI")
#: The unit types of this version (the face units only from version 1.1 on).
KNOWN_UNIT_TYPES = frozenset(int(t) for t in UnitType)


@dataclasses.dataclass(frozen=True)
class UnitFrame:
    """The framing of one unit() (clause 8.2): where it starts, its type and flags, and
    where its payload lies."""
    index: int
    pos: int
    unit_type: int
    flags: int
    length: int

    @property
    def payload_pos(self) -> int:
        return self.pos + syntax.UNIT_PREFIX

    @property
    def end(self) -> int:
        return self.pos + syntax.UNIT_OVERHEAD + self.length

    @property
    def skippable(self) -> bool:
        return bool(self.flags & 0x80)

    @property
    def path(self) -> str:
        return f"units[{self.index}]"


class Reader:
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
        self.pending: tuple[LayerHeader, int] | None = None   # a layer_header without data
        self.seen_ids: set[str] = set()
        # the stream totals of clause 11.2, counted as the units are read
        self.decoded_bytes = 0
        self.embedding_values = 0

    def count_decoded(self, nbytes: int, what: str, offset: int, path: str) -> None:
        """Add ``nbytes`` of output arrays to the stream total (max_decoded_bytes, clause
        11.2), refused before anything is allocated for them."""
        self.decoded_bytes += nbytes
        limit = self.level.max_decoded_bytes
        if self.decoded_bytes > limit:
            self.stop(ConformanceViolation, "11.2",
                      f"the stream decodes to at least {self.decoded_bytes} bytes with "
                      f"{what}, more than the {limit} of {self.limits_name()}", offset, path)

    def limits_name(self) -> str:
        """The limits in force, for messages: the level, or the decoder's own limits."""
        if self.limits_override is None:
            return f"level {self.level.level_idc}"
        return "the decoder's limits"

    # -- reporting ----------------------------------------------------------------------
    def fail(self, cls, clause, message, offset, path):
        self.check.fail(cls(message, clause=clause, offset=offset, path=path))

    def stop(self, cls, clause, message, offset, path):
        err = self.check.fatal(cls(message, clause=clause, offset=offset, path=path))
        raise err

    # -- shared by the structure readers ----------------------------------------------------
    def text(self, raw: bytes, name: str, clause: str, offset: int, path: str) -> str:
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

    def parse(self, struct, payload: bytes, start: int, path: str, what: str, **context):
        """construct's parse of a unit payload: (fields, bytes consumed); a payload too short
        for the structure is a clause 8.2.4 violation.  ``context``: what the structure
        depends on outside itself (the unit_type of a layer_header())."""
        stream = io.BytesIO(payload)
        try:
            return struct.parse_stream(stream, **context), stream.tell()
        except construct.ConstructError as exc:
            where = getattr(exc, "path", None) or ""
            where = where.replace("(parsing) -> ", "").replace(" -> ", ".")
            self.stop(SyntaxViolation, "8.2.4",
                      f"unit payload ({len(payload)} bytes) is too short for {what}",
                      start + min(stream.tell(), len(payload)),
                      f"{path}.{where}" if where else path)

    # -- stream_header() (clause 8.1) ----------------------------------------------------
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
        c = fast.fast_stream_header(data)
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

    # -- the unit sequence (clause 8.2) --------------------------------------------------
    def read_units(self, header: StreamHeader) -> None:
        """Read every unit into self.layers / self.skipped / the face records, up to and
        including end_of_stream."""
        view = memoryview(self.data)   # CRC-32 of each unit without copying it
        pos = syntax.STREAM_HEADER_SIZE
        index = 0
        max_units = self.level.max_units
        data, size, skipped = self.data, len(self.data), self.skipped
        max_payload, overhead = self.level.max_unit_payload, syntax.UNIT_OVERHEAD
        known = KNOWN_UNIT_TYPES - {t for t, minor in UNIT_VERSION_MINOR.items()
                                    if header.version_minor < minor}
        while True:
            if index >= max_units:
                self.stop(ConformanceViolation, "11.2",
                          f"a stream shall hold at most {max_units} units at "
                          f"{self.limits_name()}", pos, f"units[{index}]")
            # an unknown skippable unit that is whole and intact: recorded in a few
            # operations (what read_frame and check_unit_type would do for it)
            if size - pos >= overhead:
                unit_type, flags, length = _FRAME.unpack_from(data, pos)
                end = pos + overhead + length
                if (flags & 0x80 and unit_type not in known and length <= max_payload
                        and end <= size and zlib.crc32(view[pos:end - 4])
                        == int.from_bytes(data[end - 4:end], "big")):
                    skipped.append(SkippedUnit(unit_type, pos, length))
                    pos = end
                    index += 1
                    continue
            unit = self.read_frame(pos, index, view)
            if self.check_unit_type(unit, header):
                if unit.unit_type == UnitType.LAYER_DATA:   # sliced once, in the reader
                    self.read_layer_data_unit(unit, None)
                    pos = unit.end
                    index += 1
                    continue
                payload = self.data[unit.payload_pos:unit.end - 4]
                if unit.unit_type in (UnitType.LAYER_HEADER, UnitType.LAYER_HEADER_EXT):
                    self.read_layer_header_unit(unit, payload, header)
                elif unit.unit_type == UnitType.FACE_BASE:
                    read_face_base(self, payload, unit.pos, unit.payload_pos)
                elif unit.unit_type == UnitType.FACE_ENHANCEMENT:
                    read_face_enhancement(self, payload, unit.pos, unit.payload_pos)
                else:
                    self.read_end_of_stream(unit, header)
                    return
            pos = unit.end
            index += 1

    def read_frame(self, pos: int, index: int, view: memoryview) -> UnitFrame:
        """unit_type, unit_flags, len_unit_payload and unit_crc32 of the unit at ``pos``:
        the level's payload limit, the end of the stream and the CRC-32 checked."""
        data = self.data
        path = f"units[{index}]"
        if pos >= len(data):
            self.stop(SyntaxViolation, "8.2.6",
                      "the stream ends without an end_of_stream unit", pos, path)
        if len(data) - pos < syntax.UNIT_OVERHEAD:
            self.stop(SyntaxViolation, "8.2.4",
                      f"unit() needs at least {syntax.UNIT_OVERHEAD} bytes, "
                      f"{len(data) - pos} left", pos, path)
        unit = UnitFrame(index, pos, data[pos], data[pos + 1],
                         int.from_bytes(data[pos + 2:pos + 6], "big"))
        if unit.length > self.level.max_unit_payload:
            self.stop(ConformanceViolation, "11.2",
                      f"len_unit_payload shall be at most {self.level.max_unit_payload}, "
                      f"got {unit.length}", pos + 2, f"{path}.len_unit_payload")
        end = unit.end
        if end > len(data):
            self.stop(SyntaxViolation, "8.2.4",
                      f"len_unit_payload {unit.length} runs past the end of the stream "
                      f"({len(data) - pos - syntax.UNIT_OVERHEAD} bytes left)",
                      pos + 2, f"{path}.len_unit_payload")
        stored_crc = int.from_bytes(data[end - 4:end], "big")
        computed = crc32(view[pos:end - 4])
        if stored_crc != computed:
            self.stop(SyntaxViolation, "8.2.5",
                      f"unit_crc32 shall be {computed:08x}, got {stored_crc:08x}",
                      end - 4, f"{path}.unit_crc32")
        return unit

    def check_unit_type(self, unit: UnitFrame, header: StreamHeader) -> bool:
        """The unit type and flags against the stream so far; False for a unit that is
        skipped (unknown and skippable, clause 8.2.1)."""
        unit_type, pos, path = unit.unit_type, unit.pos, unit.path
        known = unit_type in UnitType.__members__.values()
        if header.version_minor < UNIT_VERSION_MINOR.get(unit_type, 0):
            known = False      # reserved in a stream of that version (clause 8.2.1)
        if not known:
            if unit.skippable:
                self.skipped.append(SkippedUnit(unit_type, pos, unit.length))
                return False
            self.stop(UnsupportedFeature, "8.2.1",
                      f"unit_type {unit_type} is unknown and not skippable", pos,
                      f"{path}.unit_type")
        if unit.skippable != UNIT_SKIPPABLE[unit_type]:
            self.fail(ConformanceViolation, "8.2.2",
                      f"skippable_flag shall be {int(UNIT_SKIPPABLE[unit_type])} for "
                      f"unit_type {unit_type}", pos + 1,
                      f"{path}.unit_flags.skippable_flag")
        if self.pending is not None and unit_type in FACE_UNITS:
            self.stop(ConformanceViolation, "8.2.6",
                      "a layer_header unit shall be followed by a layer_data unit",
                      pos, f"{path}.unit_type")
        if unit.flags & 0x7F and not self.lenient_reserved:
            self.fail(ConformanceViolation, "8.2.3",
                      f"reserved_zero_7bits shall be 0, got {unit.flags & 0x7F}", pos + 1,
                      f"{path}.unit_flags.reserved_zero_7bits")
        return True

    def read_layer_header_unit(self, unit: UnitFrame, payload: bytes,
                               header: StreamHeader) -> None:
        if self.pending is not None:
            self.stop(ConformanceViolation, "8.2.6",
                      "a layer_header unit shall be followed by a layer_data unit "
                      "before the next layer_header", unit.pos, f"{unit.path}.unit_type")
        if len(self.layers) >= header.num_layers:
            self.stop(ConformanceViolation, "8.1.5",
                      f"the stream holds more layers than num_layers "
                      f"({header.num_layers})", unit.pos, f"{unit.path}.unit_type")
        lpath = f"layers[{len(self.layers)}]"
        lh = read_layer_header(self, payload, unit.payload_pos, lpath, unit.unit_type)
        if lh.layer_id in self.seen_ids:
            self.fail(ConformanceViolation, "8.3.1",
                      f"layer_id {lh.layer_id!r} shall be unique in the stream",
                      unit.payload_pos + 1, f"{lpath}.layer_id")
        self.seen_ids.add(lh.layer_id)
        self.count_decoded(lh.output_bytes,
                           f"layer {lh.layer_id!r}", unit.payload_pos, lpath)
        self.pending = (lh, unit.pos)

    def read_layer_data_unit(self, unit: UnitFrame, payload: bytes | None) -> None:
        """layer_data() (clause 8.4): sample_md5 and hevc_payload, the HEVC payload itself
        checked later (clause 10, refcodec.hevc.params).  ``payload`` None: sliced from the
        stream here, hevc_payload in one copy (not the unit payload and then its tail)."""
        if self.pending is None:
            self.stop(ConformanceViolation, "8.2.6",
                      "a layer_data unit shall follow a layer_header unit", unit.pos,
                      f"{unit.path}.unit_type")
        lpath = f"layers[{len(self.layers)}]"
        start, length = unit.payload_pos, unit.length
        if length < 16:
            self.stop(SyntaxViolation, "8.2.4",
                      f"layer_data() needs at least 16 bytes, got {length}",
                      start, f"{lpath}.sample_md5")
        if length == 16:
            self.fail(ConformanceViolation, "8.4.2", "hevc_payload shall not be empty",
                      start + 16, f"{lpath}.hevc_payload")
        if payload is None:
            md5 = self.data[start:start + 16]
            hevc_payload = self.data[start + 16:unit.end - 4]
        else:
            md5, hevc_payload = payload[:16], payload[16:]
        self.layers.append(Layer(index=len(self.layers), header=self.pending[0],
                                 sample_md5=md5, hevc_payload=hevc_payload,
                                 header_offset=self.pending[1], data_offset=unit.pos,
                                 payload_offset=start + 16))
        self.pending = None

    def read_end_of_stream(self, unit: UnitFrame, header: StreamHeader) -> None:
        """end_of_stream (clause 8.2): the checks that need the whole unit sequence."""
        data, layers = self.data, self.layers
        if unit.length != 0:
            self.fail(ConformanceViolation, "8.2.4",
                      f"len_unit_payload of end_of_stream shall be 0, got {unit.length}",
                      unit.pos + 2, f"{unit.path}.len_unit_payload")
        if self.pending is not None:
            self.fail(ConformanceViolation, "8.2.6",
                      "end_of_stream follows a layer_header without its layer_data",
                      unit.pos, f"{unit.path}.unit_type")
        if len(layers) != header.num_layers:
            self.fail(ConformanceViolation, "8.1.5",
                      f"num_layers is {header.num_layers} but the stream holds "
                      f"{len(layers)} layers", 12, "stream_header.num_layers")
        elif not layers and not self.face_bases and header.version_minor >= 1:
            self.fail(ConformanceViolation, "8.1.5",
                      "the stream shall hold at least one layer or face", 12,
                      "stream_header.num_layers")
        if unit.end != len(data):
            self.fail(ConformanceViolation, "8.2.7",
                      f"{len(data) - unit.end} bytes follow the end_of_stream unit", unit.end,
                      "trailing_data")


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
    reader = Reader(data, checker, limits)
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
