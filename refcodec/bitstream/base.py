"""What the reader and the writer share: the CRC-32, the checker that receives violations,
and the location of a field inside a parsed structure (for error reports)."""

from __future__ import annotations

import zlib

import construct

from ..enums import UnitType
from ..errors import BitstreamError

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


def field_offset(struct: construct.Struct, parsed, name: str) -> int:
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


class Located:
    """The fields of one parsed structure that starts at byte ``start`` of the stream and
    has the syntax path ``path``: where each field is (computed once per field, however many
    violations it has) and the violations reported against it."""

    def __init__(self, reader, struct: construct.Struct, parsed, start: int,
                 path: str):
        self.reader, self.struct, self.parsed = reader, struct, parsed
        self.start, self.path = start, path
        self._offsets: dict[str, int] = {}

    def at(self, name: str) -> int:
        if name not in self._offsets:
            self._offsets[name] = self.start + field_offset(self.struct, self.parsed,
                                                                 name)
        return self._offsets[name]

    def fail(self, cls, clause, message, name, sub="", delta=0):
        self.reader.fail(cls, clause, message, self.at(name) + delta, f"{self.path}.{name}{sub}")

    def stop(self, cls, clause, message, name, sub=""):
        self.reader.stop(cls, clause, message, self.at(name), f"{self.path}.{name}{sub}")
