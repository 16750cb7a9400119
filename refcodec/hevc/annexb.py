"""Annex-B byte streams (ITU-T H.265 Annex B): splitting into NAL units.

Used by the encoder to drop repeated parameter sets and by verify to find them.
"""

from __future__ import annotations

import re

VPS_NUT, SPS_NUT, PPS_NUT = 32, 33, 34
PARAMETER_SET_TYPES = (VPS_NUT, SPS_NUT, PPS_NUT)

_START = re.compile(re.escape(b"\x00\x00\x01"))


def split_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes or the zero bytes
    before them (trailing_zero_8bits of the previous unit)."""
    starts = [m.end() for m in _START.finditer(data)]
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00") if i + 1 < len(starts) else data[start:end]
        if unit:
            units.append(unit)
    return units


def nal_unit_type(unit: bytes) -> int:
    """nal_unit_type from the two-byte NAL unit header."""
    return (unit[0] >> 1) & 0x3F


def join_nal_units(units: list[bytes]) -> bytes:
    """An Annex-B byte stream with four-byte start codes."""
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def repack_access_units(access_units: list[bytes]) -> tuple[bytes, list[bytes | None]]:
    """Join libx265's access units into the payload refcodec stores.

    Keeps a VPS/SPS/PPS only where it differs from the last one of its type (libx265 with
    keyint=1 repeats all three in every access unit) and takes out the decoded picture hash
    SEI messages, returning each picture's luma MD5 from them (None where absent).
    """
    last: dict[int, bytes] = {}
    out = []
    hashes: list[bytes | None] = []
    for au in access_units:
        md5 = None
        for unit in split_nal_units(au):
            t = nal_unit_type(unit)
            if t in PARAMETER_SET_TYPES:
                if last.get(t) == unit:
                    continue
                last[t] = unit
            elif t in (PREFIX_SEI_NUT, SUFFIX_SEI_NUT):
                found = picture_md5(unit)
                if found is not None and len(sei_messages(unit)) == 1:
                    md5 = found
                    continue
            out.append(unit)
        hashes.append(md5)
    return join_nal_units(out), hashes


PREFIX_SEI_NUT, SUFFIX_SEI_NUT = 39, 40
DECODED_PICTURE_HASH = 132


def rbsp(unit: bytes) -> bytes:
    """The RBSP of a NAL unit: header dropped, emulation_prevention_three_bytes removed."""
    return unit[2:].replace(b"\x00\x00\x03", b"\x00\x00")


def sei_messages(unit: bytes) -> list[tuple[int, bytes]]:
    """(payloadType, payload) of each SEI message in an SEI NAL unit (H.265 7.3.5)."""
    data = rbsp(unit)
    out = []
    pos = 0
    while pos < len(data) and not (data[pos] == 0x80 and pos == len(data) - 1):
        values = []
        for _ in range(2):
            value = 0
            while pos < len(data) and data[pos] == 0xFF:
                value += 255
                pos += 1
            if pos >= len(data):
                return out
            value += data[pos]
            pos += 1
            values.append(value)
        ptype, size = values
        out.append((ptype, data[pos:pos + size]))
        pos += size
    return out


def picture_md5(unit: bytes) -> bytes | None:
    """The luma MD5 of a decoded picture hash SEI (hash_type 0), or None."""
    if nal_unit_type(unit) not in (PREFIX_SEI_NUT, SUFFIX_SEI_NUT):
        return None
    for ptype, payload in sei_messages(unit):
        if ptype == DECODED_PICTURE_HASH and len(payload) >= 17 and payload[0] == 0:
            return bytes(payload[1:17])
    return None


def split_nal_units_with_offsets(data: bytes) -> list[tuple[int, bytes]]:
    """As split_nal_units, each unit with the byte offset in data of its first header byte
    (the byte after its start code)."""
    starts = [m.end() for m in _START.finditer(data)]
    units = []
    for i, start in enumerate(starts):
        if i + 1 < len(starts):
            unit = data[start:starts[i + 1] - 3].rstrip(b"\x00")
        else:
            unit = data[start:]
        if unit:
            units.append((start, unit))
    return units
