"""Annex-B byte streams (ITU-T H.265 Annex B): NAL units, SEI messages, repacking.

Used by the encoder to drop repeated parameter sets and take out the decoded picture hash
SEIs, and by the parameter-set reader and verify to find the NAL units.
"""

from __future__ import annotations

import numpy as np

from .. import threads

VPS_NUT, SPS_NUT, PPS_NUT = 32, 33, 34
PARAMETER_SET_TYPES = (VPS_NUT, SPS_NUT, PPS_NUT)
PREFIX_SEI_NUT, SUFFIX_SEI_NUT = 39, 40
DECODED_PICTURE_HASH = 132   # SEI payloadType (H.265 D.2.20)
START_CODE = b"\x00\x00\x01"


def split_nal_units_with_offsets(data: bytes) -> list[tuple[int, bytes]]:
    """The NAL units of an Annex-B byte stream, each with the offset in ``data`` of its
    first header byte; start codes and the zero bytes before them (trailing_zero_8bits of
    the previous unit) are left out."""
    units = []
    start = data.find(START_CODE)
    while start >= 0:
        start += 3
        nxt = data.find(START_CODE, start)
        unit = data[start:] if nxt < 0 else data[start:nxt].rstrip(b"\x00")
        if unit:
            units.append((start, unit))
        start = nxt
    return units


def split_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream (see split_nal_units_with_offsets)."""
    return [unit for _, unit in split_nal_units_with_offsets(data)]


def nal_unit_type(unit: bytes) -> int:
    """nal_unit_type from the two-byte NAL unit header."""
    return (unit[0] >> 1) & 0x3F


def join_nal_units(units: list[bytes]) -> bytes:
    """An Annex-B byte stream with four-byte start codes."""
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def rbsp(unit: bytes) -> bytes:
    """The RBSP of a NAL unit: header dropped, emulation_prevention_three_bytes removed."""
    return unit[2:].replace(b"\x00\x00\x03", b"\x00\x00")


def emulation_prevention(data: bytes) -> bytes:
    """RBSP -> NAL unit payload, the inverse of ``rbsp``: an emulation_prevention_three_byte
    after every two zero bytes that precede a byte of 0..3 (H.265 7.4.2)."""
    out, zeros = bytearray(), 0
    for b in data:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


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


def _md5_of(message: tuple[int, bytes]) -> bytes | None:
    ptype, payload = message
    if ptype == DECODED_PICTURE_HASH and len(payload) >= 17 and payload[0] == 0:
        return bytes(payload[1:17])
    return None


def picture_md5(unit: bytes) -> bytes | None:
    """The luma MD5 of a decoded picture hash SEI (hash_type 0 = MD5), or None."""
    if nal_unit_type(unit) not in (PREFIX_SEI_NUT, SUFFIX_SEI_NUT):
        return None
    for message in sei_messages(unit):
        md5 = _md5_of(message)
        if md5 is not None:
            return md5
    return None


def repack_access_units(access_units: list[bytes]) -> tuple[bytes, list[bytes | None]]:
    """Join libx265's access units into the payload refcodec stores.

    Keeps a VPS/SPS/PPS only where it differs from the last one of its type (libx265 with
    keyint=1 repeats all three in every access unit) and takes out the SEI NAL units that
    hold only a decoded picture hash, returning each picture's luma MD5 from them (None
    where absent).
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
                messages = sei_messages(unit)
                found = _md5_of(messages[0]) if len(messages) == 1 else None
                if found is not None:
                    md5 = found
                    continue
            out.append(unit)
        hashes.append(md5)
    return join_nal_units(out), hashes


def hash_layout(pictures: np.ndarray, bit_depth: int) -> np.ndarray:
    """The planes as picture_md5 reads them: one byte per sample at 8-bit, two bytes
    little-endian otherwise (H.265 D.3.19, clause 8.4.1); no copy when they are so."""
    dtype = np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")
    return np.ascontiguousarray(pictures, dtype=dtype)


def planes_md5(pictures: np.ndarray, bit_depth: int) -> list[bytes]:
    """H.265 picture_md5 of each (P, H, W) plane: samples in raster order, one byte each at
    8-bit, two bytes little-endian otherwise (the MD5 of a decoded picture hash SEI)."""
    return threads.md5_beside(hash_layout(pictures, bit_depth))[0]
