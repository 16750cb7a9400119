#!/usr/bin/env python3
"""Fuzz harness of refcodec's robustness contract.

For ANY input bytes:

* ``refcodec.read_headers`` and ``refcodec.decode`` either succeed or raise a
  ``refcodec.errors.BitstreamError`` subclass (never IndexError, struct.error, MemoryError,
  RecursionError, UnicodeError, OverflowError, ZeroDivisionError, construct or bitstring
  errors, av errors, nor BackendError);
* ``refcodec.verify.verify`` returns a report whose violations are all BitstreamErrors, and
  never raises;
* every call finishes within a time budget, and the Python side allocates a bounded amount
  of memory (tracemalloc; the process peak RSS is reported);
* a successful decode is never silently wrong: the MD5 of the decoded planes, recomputed here
  with hashlib (not with refcodec), equals the stream's sample_md5, and the tensors are the
  reconstruction of those planes;
* the three entry points agree: read_headers' error is verify's first violation, decode's
  error is one of verify's violations, decode succeeds exactly when verify finds the stream
  conformant.

Seeds are real streams from ``refcodec.encode`` (``build_corpus``), plus up to 20 of the
smallest ``conformance/streams/*.vfc`` when that directory exists.  Mutations are structure
aware (``MUTATORS``): raw bit/byte edits, truncation, insertion/deletion of runs, boundary
values in every header field and length/count field with the CRCs recomputed so that the
change reaches the semantic checks, units duplicated/dropped/reordered, HEVC payload and NAL
unit edits, and splices of two seeds.  Each mutator draws its choices from a ``Source``: a
``RandomSource`` here (fast, reproducible from ``--seed`` and the case number) or a
``DrawSource`` inside Hypothesis (``mutated()`` and the other strategies, used by
tests/test_fuzz.py, so that failures shrink).

    python tools/fuzz.py --cases 100000 [--seed S] [--workers 2] [--decode-fraction 0.2]

prints the counts per outcome (ok, each error class, each clause id), the slowest case and
the peak memory, saves every input that breaks the contract to --out (default
out/fuzz-failures/, with a .txt saying what broke), and exits 1 when there was any.  A
worker that hangs past --hard-timeout or dies (a crash in FFmpeg) is replaced and its case
saved.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import multiprocessing as mp
import os
import random
import resource
import signal
import struct
import sys
import time
import tracemalloc
import traceback
import zlib
from pathlib import Path

import numpy as np

import refcodec
from refcodec import codec
from refcodec.face.codec import decode_faces
from refcodec.errors import BitstreamError
from refcodec.verify import verify

try:  # only the strategies need Hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE_DIR = ROOT / "conformance" / "streams"

MAGIC = b"\x8bVFC\r\n\x1a\n"
HEADER_SIZE = 20
UNIT_OVERHEAD = 10
LAYER_HEADER, LAYER_DATA, END_OF_STREAM = 1, 2, 255
VPS, SPS, PPS = 32, 33, 34


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# =========================================================================================
# The container, read and written here without refcodec (so that the mutations do not
# inherit its bugs)
# =========================================================================================

def fix_crcs(data: bytes) -> bytes:
    """Recompute header_crc32 and the unit_crc32 of every unit whose framing fits, walking
    the units by their len_unit_payload (a broken length makes the walk stop there)."""
    b = bytearray(data)
    if len(b) >= HEADER_SIZE:
        b[16:20] = crc32(bytes(b[:16])).to_bytes(4, "big")
    pos = HEADER_SIZE
    while pos + UNIT_OVERHEAD <= len(b):
        end = pos + UNIT_OVERHEAD + int.from_bytes(b[pos + 2:pos + 6], "big")
        if end > len(b):
            break
        b[end - 4:end] = crc32(bytes(b[pos:end - 4])).to_bytes(4, "big")
        pos = end
    return bytes(b)


@dataclasses.dataclass
class Unit:
    type: int
    flags: int
    payload: bytes

    def to_bytes(self) -> bytes:
        body = (bytes([self.type & 0xFF, self.flags & 0xFF])
                + len(self.payload).to_bytes(4, "big") + self.payload)
        return body + crc32(body).to_bytes(4, "big")


def split_stream(data: bytes) -> tuple[bytes, list[Unit], bytes]:
    """(stream header, units whose framing fits, the bytes after them)."""
    header, pos, units = data[:HEADER_SIZE], HEADER_SIZE, []
    while pos + UNIT_OVERHEAD <= len(data):
        length = int.from_bytes(data[pos + 2:pos + 6], "big")
        end = pos + UNIT_OVERHEAD + length
        if end > len(data):
            break
        units.append(Unit(data[pos], data[pos + 1], data[pos + 6:end - 4]))
        pos = end
    return header, units, data[max(pos, len(header)):]


def join_stream(header: bytes, units: list[Unit], tail: bytes = b"") -> bytes:
    """A stream with every length and CRC right."""
    if len(header) >= HEADER_SIZE:
        header = header[:16] + crc32(header[:16]).to_bytes(4, "big")
    return header + b"".join(u.to_bytes() for u in units) + tail


# ---- layer_header() as a dict of fields (arrays as lists), independent of refcodec ----

LH_INT_FIELDS = (("source_layout", 1), ("source_dtype", 1), ("batch_size", 4),
                 ("num_channels", 4), ("height", 4), ("width", 4), ("sample_bit_depth", 1),
                 ("quantizer_type", 1), ("layer_flags", 1))
LH_TAIL_FIELDS = (("pad_mode", 1), ("pad_bottom", 1), ("pad_right", 1), ("payload_codec", 1))
PER_CHANNEL, PERMUTED = 0x80, 0x40


def parse_layer_header(p: bytes) -> dict | None:
    """The fields of a layer_header() payload, or None when it does not parse exactly."""
    try:
        d: dict = {}
        n = p[0]
        d["layer_id"] = p[1:1 + n]
        if len(d["layer_id"]) != n:
            return None
        pos = 1 + n
        for name, size in LH_INT_FIELDS:
            if pos + size > len(p):
                return None
            d[name] = int.from_bytes(p[pos:pos + size], "big")
            pos += size
        count = d["num_channels"] if d["layer_flags"] & PER_CHANNEL else 1
        size = 4 if d["quantizer_type"] == 2 else 8
        if count > 1 << 16 or pos + count * size > len(p):
            return None
        d["quant_params"] = [p[pos + i * size:pos + (i + 1) * size] for i in range(count)]
        pos += count * size
        d["channel_permutation"] = []
        if d["layer_flags"] & PERMUTED:
            c = d["num_channels"]
            if c > 1 << 16 or pos + 4 * c > len(p):
                return None
            d["channel_permutation"] = [int.from_bytes(p[pos + 4 * i:pos + 4 * i + 4], "big")
                                        for i in range(c)]
            pos += 4 * c
        d["packing_type"] = p[pos]
        pos += 1
        d["tile_rows"] = d["tile_cols"] = 1
        if d["packing_type"] == 1:
            if pos + 4 > len(p):
                return None
            d["tile_rows"], d["tile_cols"] = struct.unpack(">HH", p[pos:pos + 4])
            pos += 4
        for name, _ in LH_TAIL_FIELDS:
            d[name] = p[pos]
            pos += 1
        return d if pos == len(p) else None
    except IndexError:
        return None


def build_layer_header(d: dict) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """(payload, {field: (offset, size)}) of a dict from parse_layer_header; the arrays are
    written as they are, whatever num_channels and the flags say."""
    out = bytearray()
    where: dict[str, tuple[int, int]] = {}

    def put(name, raw):
        where[name] = (len(out), len(raw))
        out.extend(raw)

    lid = bytes(d["layer_id"])
    put("len_layer_id", bytes([len(lid) & 0xFF]))
    put("layer_id", lid)
    for name, size in LH_INT_FIELDS:
        put(name, (d[name] % (1 << 8 * size)).to_bytes(size, "big"))
    for i, raw in enumerate(d["quant_params"]):
        put(f"quant_params[{i}]", raw)
    if d["layer_flags"] & PERMUTED:
        for i, k in enumerate(d["channel_permutation"]):
            put(f"channel_permutation[{i}]", (k % (1 << 32)).to_bytes(4, "big"))
    put("packing_type", bytes([d["packing_type"] & 0xFF]))
    if d["packing_type"] == 1:
        put("tile_rows", (d["tile_rows"] & 0xFFFF).to_bytes(2, "big"))
        put("tile_cols", (d["tile_cols"] & 0xFFFF).to_bytes(2, "big"))
    for name, _ in LH_TAIL_FIELDS:
        put(name, bytes([d[name] & 0xFF]))
    return bytes(out), where


def nal_units(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit of an Annex-B payload, start codes left out."""
    found, i = [], payload.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = payload.find(b"\x00\x00\x01", start)
        end = len(payload) if nxt < 0 else nxt
        while nxt >= 0 and end > start and payload[end - 1] == 0:
            end -= 1
        if end > start:
            found.append((start, end))
        i = nxt
    return found


# =========================================================================================
# Sources of choices
# =========================================================================================

class RandomSource:
    """Choices from random.Random (the campaign of tools/fuzz.py)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def binary(self, lo: int, hi: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(lo, hi))


class DrawSource:
    """Choices drawn by Hypothesis, so that failing cases shrink."""

    def __init__(self, draw):
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(st.sampled_from(seq))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def binary(self, lo: int, hi: int) -> bytes:
        return self.draw(st.binary(min_size=lo, max_size=hi))


# =========================================================================================
# Mutators: (source, data, corpus) -> data
# =========================================================================================

def boundary_int(src, size_bytes: int, orig: int | None = None) -> int:
    """0, 1, max, level limits and their neighbours, or a random large value."""
    top = (1 << (8 * size_bytes)) - 1
    picks = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 255, 256, 4095, 4096, 4097, 8192, 8193,
             65535, 65536, 65537, (1 << 20) + 1, (1 << 24) - 1, 1 << 24, (1 << 24) + 1,
             1 << 28, (1 << 28) + 1, (1 << 31) - 1, 1 << 31, top - 1, top, top // 2]
    if orig is not None:
        picks += [orig - 1, orig + 1, orig * 2, orig + 8, orig ^ 0x80]
    picks = [v for v in picks if 0 <= v <= top]
    if src.integer(0, 3) == 0:
        return src.integer(0, top)
    return src.choice(picks)


SPECIAL_F32 = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7F800000, 0xFF800000, 0x00000000,
               0x80000000, 0x00000001, 0x7F7FFFFF, 0xFF7FFFFF, 0x477FE000, 0x477FF000,
               0xC77FE000, 0x7F7F0000, 0x4B800000, 0xCB800000, 0x4B800001, 0x3F000000,
               0x3F800000, 0xBF800000, 0x7149F2CA, 0x4B7FFFFF]


def special_float(src, orig: bytes | None = None) -> bytes:
    if orig is not None and src.integer(0, 4) == 0:
        b = bytearray(orig)
        b[src.integer(0, len(b) - 1)] ^= 1 << src.integer(0, 7)
        return bytes(b)
    if src.integer(0, 3) == 0:
        return src.integer(0, 0xFFFFFFFF).to_bytes(4, "big")
    return src.choice(SPECIAL_F32).to_bytes(4, "big")


def m_bitflip(src, data, corpus):
    if not data:
        return data
    b = bytearray(data)
    for _ in range(src.integer(1, 4)):
        b[src.integer(0, len(b) - 1)] ^= 1 << src.integer(0, 7)
    return bytes(b)


def m_overwrite(src, data, corpus):
    if not data:
        return data
    b = bytearray(data)
    pos = src.integer(0, len(b) - 1)
    run = src.choice([b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x01", b"\x00\x00\x00\x00",
                      b"\xff\xff\xff\xff"]) if src.boolean() else src.binary(1, 8)
    b[pos:pos + len(run)] = run
    return bytes(b[:len(data)]) if src.boolean() else bytes(b)


def m_truncate(src, data, corpus):
    return data[:src.integer(0, max(0, len(data) - 1))]


def m_insert(src, data, corpus):
    pos = src.integer(0, len(data))
    if src.boolean() and data:   # a copy of a run of the stream itself
        a = src.integer(0, len(data) - 1)
        run = data[a:a + src.integer(1, 64)]
    else:
        run = src.binary(1, 32)
    return data[:pos] + run + data[pos:]


def m_delete(src, data, corpus):
    if not data:
        return data
    pos = src.integer(0, len(data) - 1)
    return data[:pos] + data[pos + src.integer(1, 64):]


def m_splice_raw(src, data, corpus):
    other = src.choice(corpus)
    return data[:src.integer(0, len(data))] + other[src.integer(0, len(other)):]


RAW_MUTATORS = {"bitflip": m_bitflip, "overwrite": m_overwrite, "truncate": m_truncate,
                "insert": m_insert, "delete": m_delete, "splice_raw": m_splice_raw}

STREAM_HEADER_FIELDS = {"version_major": (8, 1), "version_minor": (9, 1),
                        "profile_idc": (10, 1), "level_idc": (11, 1), "num_layers": (12, 2),
                        "reserved_zero_16bits": (14, 2)}


def m_stream_header_field(src, data, corpus):
    if len(data) < HEADER_SIZE:
        return data
    off, size = STREAM_HEADER_FIELDS[src.choice(list(STREAM_HEADER_FIELDS))]
    orig = int.from_bytes(data[off:off + size], "big")
    value = src.choice([0, 1, 2, 10, 11, 20, 21, 255]) if size == 1 and src.boolean() \
        else boundary_int(src, size, orig)
    b = bytearray(data)
    b[off:off + size] = value.to_bytes(size, "big")
    return fix_crcs(bytes(b))


def _units_of_type(units, t):
    return [i for i, u in enumerate(units) if u.type == t]


def m_layer_header_field(src, data, corpus):
    """A layer_header() field set to a boundary value, written in place (raw: a length or
    count then misaligns what follows) or with the arrays resized to match (semantic)."""
    header, units, tail = split_stream(data)
    candidates = [i for i in _units_of_type(units, LAYER_HEADER)
                  if parse_layer_header(units[i].payload) is not None]
    if not candidates:
        return fix_crcs(m_bitflip(src, data, corpus))
    unit = units[src.choice(candidates)]
    d = parse_layer_header(unit.payload)
    _, where = build_layer_header(d)
    names = [n for n in where if n != "layer_id"] + ["layer_id"]
    name = src.choice(names)
    if src.boolean():   # raw: overwrite the bytes of the field where it is
        off, size = where[name]
        p = bytearray(unit.payload)
        if name == "layer_id":
            new = _layer_id_bytes(src, units)
            p[off:off + size] = new
        elif name.startswith("quant_params"):
            p[off:off + 4] = special_float(src, bytes(p[off:off + 4]))
        else:
            orig = int.from_bytes(p[off:off + size], "big")
            p[off:off + size] = boundary_int(src, size, orig).to_bytes(size, "big")
        unit.payload = bytes(p)
    else:               # semantic: change the value, rebuild with consistent arrays
        _set_field(src, d, name, units)
        unit.payload = build_layer_header(d)[0]
    return join_stream(header, units, tail)


def _layer_id_bytes(src, units) -> bytes:
    ids = [d["layer_id"] for u in units if u.type == LAYER_HEADER
           for d in [parse_layer_header(u.payload)] if d is not None]
    return src.choice([b"", b"a", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"a\nb", b"\x7f",
                       "конв".encode(), b"x" * 255, b"\x00"] + ids)


def _set_field(src, d, name, units):
    c = d["num_channels"]
    if name in ("len_layer_id", "layer_id"):
        d["layer_id"] = _layer_id_bytes(src, units)
    elif name.startswith("quant_params["):
        i = int(name[13:-1])
        raw = bytearray(d["quant_params"][i])
        j = 4 * src.integer(0, len(raw) // 4 - 1)
        raw[j:j + 4] = special_float(src, bytes(raw[j:j + 4]))
        if len(raw) == 8 and src.integer(0, 3) == 0:
            raw = raw[4:] + raw[:4]   # min and max swapped
        d["quant_params"][i] = bytes(raw)
    elif name.startswith("channel_permutation["):
        i = int(name[20:-1])
        d["channel_permutation"][i] = src.choice(
            [c, c - 1, c + 1, 0, (1 << 32) - 1, d["channel_permutation"][0],
             boundary_int(src, 4)])
    elif name == "layer_flags":
        d[name] = src.choice([0x00, 0x80, 0x40, 0xC0, 0x01, 0x3F, 0xFF, d[name] ^ 0x80,
                              d[name] ^ 0x40])
    elif name == "packing_type":
        d[name] = src.choice([0, 1, 2, 255])
        if d[name] == 1 and (d["tile_rows"], d["tile_cols"]) == (1, 1):
            d["tile_rows"], d["tile_cols"] = src.choice([(2, 2), (1, 2), (0, 2), (1, 1)])
    elif name in ("tile_rows", "tile_cols"):
        d[name] = boundary_int(src, 2, d[name])
    elif name in ("pad_bottom", "pad_right"):
        d[name] = src.choice([0, 1, 7, 8, 15, 16, 248, 255, (d[name] + 8) % 256,
                              (d[name] + 1) % 256])
    elif name in ("source_layout", "source_dtype", "quantizer_type", "pad_mode",
                  "payload_codec", "sample_bit_depth"):
        d[name] = src.choice([0, 1, 2, 3, 8, 10, 12, 9, 16, 255])
    else:   # batch_size, num_channels, height, width
        d[name] = boundary_int(src, 4, d[name])
    if name == "num_channels" and d[name] <= 4096 and src.boolean():
        # resize the per-channel arrays to the new count, so that the header parses
        new = d[name]
        if d["layer_flags"] & PER_CHANNEL:
            qp = d["quant_params"] or [b"\0" * 8]
            d["quant_params"] = [qp[i % len(qp)] for i in range(new)]
        if d["layer_flags"] & PERMUTED:
            perm = list(range(new))
            for i in range(new - 1, 0, -1):
                j = src.integer(0, i) if new <= 16 else (i * 7919) % (i + 1)
                perm[i], perm[j] = perm[j], perm[i]
            d["channel_permutation"] = perm
    if name == "layer_flags":
        count = c if d["layer_flags"] & PER_CHANNEL else 1
        if count <= 4096:
            qp = d["quant_params"] or [b"\0" * 8]
            d["quant_params"] = [qp[i % len(qp)] for i in range(count)]
        if d["layer_flags"] & PERMUTED and len(d["channel_permutation"]) != c and c <= 4096:
            d["channel_permutation"] = list(range(c))[::-1]
    if name == "quantizer_type":
        size = 4 if d[name] == 2 else 8
        d["quant_params"] = [(q * 2)[:size] for q in d["quant_params"]]


def m_unit_length(src, data, corpus):
    """len_unit_payload set to a boundary value: either only the field (the framing breaks;
    the CRCs are then recomputed where the new framing puts them) or the payload resized to
    match (the unit stays well framed: its contents are too short or too long)."""
    header, units, tail = split_stream(data)
    if not units:
        return m_truncate(src, data, corpus)
    i = src.integer(0, len(units) - 1)
    if src.boolean():
        u = units[i]
        new = src.choice([0, 1, 15, 16, 17, len(u.payload) - 1, len(u.payload) + 1,
                          max(0, len(u.payload) // 2)])
        new = max(0, new)
        grow = max(0, new - len(u.payload))
        u.payload = u.payload[:new] + (src.binary(grow, grow) if src.boolean() else bytes(grow))
        return join_stream(header, units, tail)
    raw = bytearray(join_stream(header, units, tail))
    pos = HEADER_SIZE + sum(UNIT_OVERHEAD + len(u.payload) for u in units[:i])
    orig = len(units[i].payload)
    raw[pos + 2:pos + 6] = boundary_int(src, 4, orig).to_bytes(4, "big")
    return fix_crcs(bytes(raw))


def m_units(src, data, corpus):
    """Units duplicated, dropped, swapped, moved, inserted or retyped; framing and CRCs kept
    right."""
    header, units, tail = split_stream(data)
    if not units:
        return m_truncate(src, data, corpus)
    op = src.choice(["dup", "drop", "swap", "move", "insert", "type", "flags", "reverse"])
    i, j = src.integer(0, len(units) - 1), src.integer(0, len(units) - 1)
    if op == "dup":
        units.insert(j, dataclasses.replace(units[i]))
    elif op == "drop":
        del units[i]
    elif op == "swap":
        units[i], units[j] = units[j], units[i]
    elif op == "move":
        units.insert(j, units.pop(i))
    elif op == "reverse":
        units.reverse()
    elif op == "insert":
        t = src.choice([0, 3, 200, 254, LAYER_HEADER, LAYER_DATA, END_OF_STREAM])
        payload = src.choice([b"", src.binary(0, 16), units[i].payload])
        units.insert(j, Unit(t, src.choice([0x80, 0x00, 0x81, 0x01]), payload))
    elif op == "type":
        units[i].type = src.choice([0, 1, 2, 3, 200, 254, 255])
    else:
        units[i].flags = src.choice([0x00, 0x80, 0x01, 0x7F, 0xFF])
    return join_stream(header, units, tail)


def m_hevc(src, data, corpus):
    """Bytes of a layer_data() unit changed (sample_md5, NAL headers, parameter sets, slice
    data), or NAL units dropped/duplicated/swapped/imported; CRC recomputed."""
    header, units, tail = split_stream(data)
    idx = _units_of_type(units, LAYER_DATA)
    if not idx:
        return m_units(src, data, corpus)
    unit = units[src.choice(idx)]
    md5, payload = unit.payload[:16], bytearray(unit.payload[16:])
    nals = nal_units(bytes(payload))
    op = src.choice(["md5", "ps_bits", "ps_bits", "ps_valid", "ps_valid", "bytes",
                     "nal_header", "nal_drop", "nal_dup", "nal_swap", "nal_import",
                     "payload_swap", "truncate", "start_code"])
    if op == "ps_valid" and nals:
        payload = bytearray(_valid_ps_mutation(src, bytes(payload), nals))
    elif op == "md5":
        md5 = src.choice([bytes(16), b"\xff" * 16, hashlib.md5(md5).digest(),
                          bytes([md5[:1][0] ^ 1 if md5 else 1]) + md5[1:]])
    elif op == "ps_bits" and nals:
        ps = [n for n in nals if (payload[n[0]] >> 1) & 0x3F in (VPS, SPS, PPS)] or nals
        a, b = src.choice(ps)
        for _ in range(src.integer(1, 3)):
            pos = src.integer(a, b - 1)
            payload[pos] ^= 1 << src.integer(0, 7)
    elif op == "bytes" and payload:
        for _ in range(src.integer(1, 4)):
            payload[src.integer(0, len(payload) - 1)] = src.integer(0, 255)
    elif op == "nal_header" and nals:
        a, _ = src.choice(nals)
        if src.boolean():
            payload[a] = (payload[a] & 0x81) | (src.choice([0, 1, 19, 20, 21, 32, 33, 34, 35,
                                                            39, 40, 41, 48, 63]) << 1)
        else:
            payload[a + src.integer(0, 1)] ^= 1 << src.integer(0, 7)
    elif op in ("nal_drop", "nal_dup", "nal_swap", "nal_import") and nals:
        parts = [bytes(payload[a:b]) for a, b in nals]
        i, j = src.integer(0, len(parts) - 1), src.integer(0, len(parts) - 1)
        if op == "nal_drop":
            del parts[i]
        elif op == "nal_dup":
            parts.insert(j, parts[i])
        elif op == "nal_swap":
            parts[i], parts[j] = parts[j], parts[i]
        else:
            other = _payloads(src.choice(corpus))
            if other:
                op_payload = src.choice(other)
                other_nals = nal_units(op_payload)
                if other_nals:
                    a, b = src.choice(other_nals)
                    parts.insert(j, op_payload[a:b])
        payload = bytearray(b"".join(b"\x00\x00\x00\x01" + p for p in parts))
    elif op == "payload_swap":
        other = _payloads(src.choice(corpus))
        if other:
            payload = bytearray(src.choice(other))
    elif op == "truncate":
        payload = payload[:src.integer(0, len(payload))]
    elif op == "start_code" and payload:
        pos = src.integer(0, len(payload))
        payload[pos:pos] = src.choice([b"\x00\x00\x01", b"\x00\x00\x03", b"\x00\x00\x00",
                                       b"\x00\x00\x01\x40\x01"])
    unit.payload = md5 + bytes(payload)
    return join_stream(header, units, tail)


def _valid_ps_mutation(src, payload: bytes, nals) -> bytes:
    """Bits of a VPS/SPS/PPS flipped until refcodec's parameter-set reader accepts the
    payload (at most 24 tries), so that FFmpeg gets unusual but well-formed parameter sets;
    the last try when none is accepted."""
    from refcodec.hevc import params
    ps = [n for n in nals if (payload[n[0]] >> 1) & 0x3F in (VPS, SPS, PPS)]
    if not ps:
        return payload
    a, b = src.choice(ps)
    tried = payload
    for _ in range(24):
        raw = bytearray(payload)
        for _ in range(src.integer(1, 2)):
            raw[src.integer(a + 2, b - 1) if b - a > 2 else a] ^= 1 << src.integer(0, 7)
        tried = bytes(raw)
        try:
            params.parse_parameter_sets(tried)
        except BitstreamError:
            continue
        return tried
    return tried


def _payloads(stream: bytes) -> list[bytes]:
    _, units, _ = split_stream(stream)
    return [u.payload[16:] for u in units if u.type == LAYER_DATA and len(u.payload) > 16]


def m_splice_units(src, data, corpus):
    """The first units of one seed followed by the last units of another, well framed."""
    header, units, tail = split_stream(data)
    _, others, _ = split_stream(src.choice(corpus))
    i, j = src.integer(0, len(units)), src.integer(0, len(others))
    if src.boolean():   # keep the header count right
        out = units[:i] + others[j:]
        n = sum(u.type == LAYER_DATA for u in out)
        if len(header) >= HEADER_SIZE:
            header = header[:12] + n.to_bytes(2, "big") + header[14:]
        return join_stream(header, out, b"")
    return join_stream(header, units[:i] + others[j:], tail if src.boolean() else b"")


STRUCTURED_MUTATORS = {"stream_header_field": m_stream_header_field,
                       "layer_header_field": m_layer_header_field,
                       "unit_length": m_unit_length, "units": m_units, "hevc": m_hevc,
                       "splice_units": m_splice_units}
MUTATORS = {**RAW_MUTATORS, **STRUCTURED_MUTATORS}
#: Relative frequency of each mutator in a campaign.
WEIGHTS = {"bitflip": 8, "overwrite": 5, "truncate": 4, "insert": 3, "delete": 3,
           "splice_raw": 2, "stream_header_field": 5, "layer_header_field": 20,
           "unit_length": 6, "units": 10, "hevc": 25, "splice_units": 4}


def mutate(src, data: bytes, corpus: list[bytes], kinds=None, max_stack: int = 3,
           fix_probability_raw: bool = True) -> tuple[bytes, list[str]]:
    """Apply 1..max_stack mutations of the given kinds; raw ones are followed half of the
    time by fix_crcs, so that they too reach the checks behind the CRCs."""
    kinds = list(kinds or MUTATORS)
    done = []
    for _ in range(src.integer(1, max_stack)):
        kind = src.choice(kinds)
        data = MUTATORS[kind](src, data, corpus)
        if kind in RAW_MUTATORS and fix_probability_raw and src.boolean():
            data = fix_crcs(data)
            kind += "+crc"
        done.append(kind)
    return data, done


def weighted_kind(src) -> str:
    total = sum(WEIGHTS.values())
    pick = src.integer(0, total - 1)
    for kind, w in WEIGHTS.items():
        if pick < w:
            return kind
        pick -= w
    raise AssertionError


# ---- Hypothesis strategies (composable: each takes and gives a strategy of bytes) ----

def seeds(corpus: list[bytes]):
    """One of the seed streams."""
    return st.sampled_from(corpus)


def mutated(base, corpus: list[bytes], kinds=None, max_stack: int = 3):
    """Streams drawn from ``base`` (a strategy of bytes) with 1..max_stack mutations of
    ``kinds`` (names of MUTATORS; all by default)."""
    @st.composite
    def strategy(draw):
        return mutate(DrawSource(draw), draw(base), corpus, kinds, max_stack)[0]
    return strategy()


def with_crcs_fixed(base):
    """The streams of ``base`` with header_crc32 and every unit_crc32 recomputed."""
    return base.map(fix_crcs)


# =========================================================================================
# Seeds
# =========================================================================================

def _features(rng, shape, scale=4.0):
    n, c, h, w = shape
    noise = rng.standard_normal((n, c, h + 2, w + 2))
    smooth = (noise[:, :, :-2, :-2] + noise[:, :, 1:-1, 1:-1] + noise[:, :, 2:, 2:]) / 3
    return np.maximum(smooth * scale, 0).astype(np.float32)


def build_corpus(conformance_dir: Path | None = CONFORMANCE_DIR,
                 max_conformance: int = 20) -> list[tuple[str, bytes]]:
    """Small real streams covering the features of the format, then up to max_conformance of
    the smallest conformance streams (when the directory exists)."""
    import ml_dtypes
    from refcodec import bitstream
    from refcodec.codec import EncoderConfig as C
    fast = dict(preset="ultrafast")
    rng = np.random.default_rng(20240611)
    f = lambda shape: _features(rng, shape)   # noqa: E731
    ints = (rng.integers(0, 4096, (1, 2, 16, 16)) - 1000).astype(np.float32)
    out = [
        ("log8", refcodec.encode({"conv": f((1, 3, 16, 16))}, C(qp=30, **fast))),
        ("uniform10_per_channel_tiled",
         refcodec.encode({"pool5": f((1, 4, 7, 7))},
                         C(quantizer="uniform", bit_depth=10, per_channel=True, **fast))),
        ("integer12_lossless",
         refcodec.encode({"ints": ints}, C(quantizer="integer", bit_depth=12, lossless=True,
                                          **fast))),
        ("permuted_tiled_zero_pad",
         refcodec.encode({"perm": f((2, 5, 5, 6))},
                         C(quantizer="uniform", per_channel=True, packing="tiled",
                           tile_grid=(2, 3), channel_order=(4, 2, 0, 1, 3), pad_mode="zero",
                           **fast))),
        ("nhwc_float16_log10",
         refcodec.encode({"nhwc": f((1, 16, 16, 2)).astype(np.float16)},
                         C(bit_depth=10, layout="NHWC", **fast))),
        ("bfloat16_uniform",
         refcodec.encode({"bf": f((1, 2, 16, 16)).astype(ml_dtypes.bfloat16)},
                         C(quantizer="uniform", **fast))),
        ("three_layers",
         refcodec.encode({"a": f((1, 2, 16, 16)), "b": f((1, 3, 8, 8)),
                          "конв": f((1, 1, 16, 24))},
                         {"a": C(**fast), "b": C(bit_depth=10, **fast),
                          "конв": C(bit_depth=12, quantizer="uniform", **fast)})),
        ("frame_threads_112x112",   # large enough for FFmpeg's frame threads
         refcodec.encode({"big": f((1, 2, 112, 112))}, C(qp=45, **fast))),
        ("lossless_uniform10",
         refcodec.encode({"l": f((1, 2, 16, 16))},
                         C(quantizer="uniform", bit_depth=10, lossless=True, **fast))),
        # format 1.2: dense packing with a grouped order, compact order with binary16
        # parameters, the square-root quantizer
        ("v12_dense_grouped",
         refcodec.encode({"g": f((1, 12, 7, 7))},
                         C(quantizer="uniform", packing="dense",
                           channel_order=(1, 4, 7, 10, 0, 2, 3, 5, 6, 8, 9, 11),
                           permutation_coding="grouped", **fast))),
        ("v12_compact_binary16",
         refcodec.encode({"c": f((1, 5, 8, 8))},
                         C(per_channel=True, param_format="binary16", packing="tiled",
                           tile_grid=(2, 3), channel_order=(3, 1, 4, 0, 2), **fast))),
        ("v12_sqrt", refcodec.encode({"s": f((1, 2, 16, 16))}, C(quantizer="sqrt", **fast))),
    ]
    from refcodec.face.codec import FaceConfig, FaceInput
    img = np.clip(f((1, 3, 24, 32))[0].transpose(1, 2, 0) * 40, 0, 255).astype(np.uint8)
    emb = (rng.standard_normal(128) * 0.09).astype(np.float32)
    face = FaceInput(img, emb)
    out += [
        ("face_jpeg_and_layer",
         refcodec.encode({"conv": f((1, 2, 16, 16))}, C(**fast),
                         faces=[(face, FaceConfig(enhancement="jpeg", predictor="none"))])),
        ("faces_hevc_gray_jpeg2000_base",
         refcodec.encode(None, faces=[
             (FaceInput(img[:16, :16, :1], emb[:40]),
              FaceConfig(face_id="g", predictor="none", preset="ultrafast")),
             (face, FaceConfig(face_id="j2k", enhancement="jpeg2000", predictor="none")),
             (face, FaceConfig(face_id="base", enhancement="none", embedding_step=0.01))])),
    ]
    s = refcodec.read_headers(out[0][1])
    out.append(("skippable_unit", bitstream.build_stream(
        s.header, [(x.header, x.sample_md5, x.hevc_payload) for x in s.layers],
        extra_units=[(200, b"future extension \x00\x01\x02", True)])))
    if conformance_dir is not None and conformance_dir.is_dir():
        files = sorted(conformance_dir.glob("*.vfc"), key=lambda p: (p.stat().st_size, p.name))
        for path in files[:max_conformance]:
            out.append((f"conformance/{path.name}", path.read_bytes()))
    return out


def reference_decodes(corpus: list[tuple[str, bytes]]) -> dict[bytes, dict | None]:
    """decode() of every seed (None for a seed that does not decode, e.g. a conformance
    stream that is meant to be refused)."""
    out = {}
    for _, data in corpus:
        try:
            out[data] = refcodec.decode(data)
        except BitstreamError:
            out[data] = None
    return out


# =========================================================================================
# The contract
# =========================================================================================

@dataclasses.dataclass
class Result:
    outcomes: list[str]                 # "read_headers: ok", "decode: SyntaxViolation", ...
    clauses: list[str]                  # "read_headers 8.2.5", "verify 10.1", ...
    violations: list[tuple[str, str]]   # (kind, detail): contract violations
    seconds: float                      # the slowest call of the case
    slowest_call: str
    traced_peak: int | None = None      # bytes, when traced


def _key(e: BitstreamError):
    return (type(e).__name__, e.clause, e.offset, e.path)


def _label(e: BaseException) -> str:
    return type(e).__name__


def _tb(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-6))


def independent_md5(pictures: np.ndarray, bit_depth: int) -> bytes:
    """sample_md5 of clause 8.4.1, with hashlib only: MD5 of the per-picture MD5s, samples
    one byte each at 8-bit, two bytes little-endian otherwise."""
    digests = []
    for p in pictures:
        arr = np.asarray(p)
        raw = arr.astype(np.uint8).tobytes() if bit_depth == 8 else arr.astype("<u2").tobytes()
        digests.append(hashlib.md5(raw).digest())
    return hashlib.md5(b"".join(digests)).digest()


def _same_tensors(a: dict, b: dict | None) -> bool:
    if b is None or list(a) != list(b):
        return False
    return all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
               and a[k].tobytes() == b[k].tobytes() for k in a)


def check_case(data: bytes, *, decode: bool, reference: dict | None = None,
               budget: float | None = 5.0, trace_limit: int | None = None) -> Result:
    """Run read_headers, verify (and with ``decode`` refcodec.decode and a decoding verify)
    on ``data`` and check the contract.  ``reference`` is decode() of the unmutated seed;
    ``trace_limit`` (bytes) turns on tracemalloc and bounds the Python-side peak."""
    outcomes, clauses, bad = [], [], []
    times: dict[str, float] = {}
    if trace_limit is not None:
        tracemalloc.start()

    def call(name, fn):
        t = time.perf_counter()
        try:
            return fn(), None
        except BaseException as e:   # noqa: BLE001 - the contract is what is checked
            if isinstance(e, KeyboardInterrupt):
                raise
            return None, e
        finally:
            times[name] = time.perf_counter() - t

    def refused(where, e):
        if isinstance(e, BitstreamError):
            outcomes.append(f"{where}: {_label(e)}")
            clauses.append(f"{where} {e.clause}")
            try:
                str(e), e.to_dict()
            except Exception as e2:  # noqa: BLE001
                bad.append(("error-format", f"{where}: {_tb(e2)}"))
            return True
        outcomes.append(f"{where}: !{_label(e)}")
        bad.append(("exception", f"{where} raised {_label(e)}: {e}\n{_tb(e)}"))
        return False

    # 1. headers
    stream, err = call("read_headers", lambda: refcodec.read_headers(data))
    if err is None:
        outcomes.append("read_headers: ok")
    else:
        refused("read_headers", err)

    # 2. verify without decoding
    report, verr = call("verify(decode=False)", lambda: verify(data, decode=False))
    if verr is not None:
        refused("verify(decode=False)", verr)
        bad.append(("verify-raised", f"verify(decode=False) raised {_label(verr)}"))
    else:
        _check_report("verify(decode=False)", report, outcomes, clauses, bad)
        if isinstance(err, BitstreamError):
            first = report.violations[0] if report.violations else None
            if first is None or _key(first) != _key(err):
                bad.append(("inconsistent", f"read_headers raised {_key(err)} but verify's "
                                            f"first violation is "
                                            f"{_key(first) if first else None}"))
        elif err is None:
            container = [v for v in report.violations if not (v.clause or "").startswith("10.")]
            if container or not report.readable or len(report.layers) != len(stream.layers):
                bad.append(("inconsistent", f"read_headers succeeded but verify reports "
                                            f"{[_key(v) for v in container]}"))

    # 3. decoding
    if decode:
        faces, face_err = call("decode_faces", lambda: decode_faces(data))
        if face_err is not None:
            refused("decode_faces", face_err)
        elif stream is not None and list(faces) != [f.base.face_id for f in stream.faces]:
            bad.append(("silently-wrong", f"decode_faces returned faces {list(faces)}"))
        out, derr = call("decode", lambda: refcodec.decode(data))
        full, ferr = call("verify", lambda: verify(data))
        if ferr is not None:
            refused("verify", ferr)
            bad.append(("verify-raised", f"verify raised {_label(ferr)}"))
        else:
            _check_report("verify", full, outcomes, clauses, bad)
        if derr is not None:
            if refused("decode", derr):
                if isinstance(err, BitstreamError) and _key(err) != _key(derr):
                    bad.append(("inconsistent", f"read_headers raised {_key(err)}, decode "
                                                f"{_key(derr)}"))
                if full is not None and not any(_key(v) == _key(derr)
                                                for v in full.violations):
                    bad.append(("inconsistent", f"decode raised {_key(derr)}, which verify "
                                                f"does not report"))
        else:
            same = _same_tensors(out, reference)
            outcomes.append("decode: ok (same tensors as the seed)" if same
                            else "decode: ok (other tensors, sample_md5 matched)")
            if full is not None and not full.conformant:
                # decode() decodes the feature layers only: a face's violation shall make
                # decode_faces() refuse instead
                faced = [v for v in full.violations if (v.path or "").startswith("faces[")]
                if len(faced) < len(full.violations) or face_err is None:
                    bad.append(("inconsistent", f"decode succeeded but verify reports "
                                                f"{[_key(v) for v in full.violations]}"))
            _check_decoded(data, out, bad)
    if trace_limit is not None:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if peak > trace_limit:
            bad.append(("memory", f"Python-side peak {peak / 2**20:.1f} MiB > "
                                  f"{trace_limit / 2**20:.1f} MiB"))
    else:
        peak = None
    slowest = max(times, key=times.get)
    if budget is not None and times[slowest] > budget:
        bad.append(("slow", f"{slowest} took {times[slowest]:.2f} s > {budget} s"))
    return Result(outcomes, clauses, bad, times[slowest], slowest, peak)


def _check_report(where, report, outcomes, clauses, bad):
    try:
        for v in report.violations:
            if not isinstance(v, BitstreamError):
                bad.append(("report", f"{where}: violation {v!r} is not a BitstreamError"))
            else:
                clauses.append(f"{where} {v.clause}")
        outcomes.append(f"{where}: " + ("conformant" if report.conformant else
                                        "not conformant" if report.readable else "unreadable"))
        report.to_json()
        report.to_text()
    except Exception as e:  # noqa: BLE001
        bad.append(("report", f"{where}: the report breaks: {_tb(e)}"))


def _check_decoded(data: bytes, out: dict, bad: list) -> None:
    """The decoded tensors are the reconstruction of planes whose MD5 (hashlib) is the
    stream's sample_md5."""
    try:
        stream = refcodec.read_headers(data)
        if [x.header.layer_id for x in stream.layers] != list(out):
            bad.append(("silently-wrong", f"decode returned layers {list(out)}"))
            return
        for layer in stream.layers:
            h = layer.header
            pictures = codec.decode_pictures(layer)
            md5 = independent_md5(pictures, h.sample_bit_depth)
            if md5 != layer.sample_md5:
                bad.append(("silently-wrong", f"layer {layer.index}: decoded planes have MD5 "
                                              f"{md5.hex()}, sample_md5 is "
                                              f"{layer.sample_md5.hex()}"))
            if codec.sample_md5(codec.planes_md5(pictures, h.sample_bit_depth)) != md5:
                bad.append(("silently-wrong", "codec.planes_md5 disagrees with hashlib"))
            expected = codec.reconstruct(h, pictures)
            got = out[h.layer_id]
            if got.shape != h.shape or got.dtype != codec.NUMPY_DTYPES[h.source_dtype] \
                    or got.tobytes() != expected.tobytes():
                bad.append(("silently-wrong", f"layer {layer.index}: the tensor is not the "
                                              f"reconstruction of the decoded planes"))
    except Exception as e:  # noqa: BLE001
        bad.append(("silently-wrong", f"re-decoding a stream decode() accepted failed: "
                                      f"{_tb(e)}"))


# =========================================================================================
# Campaign
# =========================================================================================

@dataclasses.dataclass
class Case:
    index: int
    seed_name: str
    mutations: list[str]
    decode: bool
    data: bytes
    base: bytes


def make_case(corpus: list[tuple[str, bytes]], seed: int, index: int,
              decode_fraction: float) -> Case:
    rng = random.Random(f"vfc-fuzz:{seed}:{index}")
    src = RandomSource(rng)
    name, base = corpus[rng.randrange(len(corpus))]
    blobs = [d for _, d in corpus]
    data, done = base, []
    for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
        kind = weighted_kind(src)
        data = MUTATORS[kind](src, data, blobs)
        if kind in RAW_MUTATORS and rng.random() < 0.5:
            data, kind = fix_crcs(data), kind + "+crc"
        done.append(kind)
    if rng.random() < 0.01:   # now and then, pure garbage
        data, done = rng.randbytes(rng.randint(0, 200)), ["random"]
        if rng.random() < 0.5:
            data = MAGIC + data
    return Case(index, name, done, rng.random() < decode_fraction, data, base)


def _save(out_dir: Path, kind: str, data: bytes, text: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = out_dir / f"{kind}-{digest}.vfc"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(text)
    return path


@dataclasses.dataclass
class Stats:
    cases: int = 0
    decoded: int = 0
    outcomes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    clauses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    mutations: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    violations: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    slowest: tuple[float, str] = (0.0, "")
    traced_peak: tuple[int, str] = (0, "")
    max_rss_kib: int = 0

    def add(self, result: Result, *, decode: bool, mutations, where: str) -> None:
        """Count one checked case; ``where`` describes it for the slowest/peak records."""
        self.cases += 1
        self.decoded += decode
        self.outcomes.update(result.outcomes)
        self.clauses.update(result.clauses)
        self.mutations.update(m for m in mutations if m)
        self.slowest = max(self.slowest, (result.seconds, f"{where}; {result.slowest_call}"))
        if result.traced_peak is not None:
            self.traced_peak = max(self.traced_peak,
                                   (result.traced_peak, f"{where}; {result.slowest_call}"))
        for kind, _ in result.violations:
            self.violations[kind] += 1

    def merge(self, other: "Stats") -> None:
        self.cases += other.cases
        self.decoded += other.decoded
        for name in ("outcomes", "clauses", "mutations", "violations"):
            getattr(self, name).update(getattr(other, name))
        self.slowest = max(self.slowest, other.slowest)
        self.traced_peak = max(self.traced_peak, other.traced_peak)
        self.max_rss_kib = max(self.max_rss_kib, other.max_rss_kib)


def _describe(case: Case, seed: int) -> str:
    return (f"case {case.index} of --seed {seed}: seed stream {case.seed_name}, mutations "
            f"{'+'.join(case.mutations)}, {'decode' if case.decode else 'container'} tier, "
            f"{len(case.data)} bytes")


def worker(wid: int, indices: range, corpus, references, args, queue, progress) -> None:
    """Run the cases ``indices``; send Stats every few seconds and each violation at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.max_address_space:
        limit = args.max_address_space << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stats, last = Stats(), time.monotonic()
    fault = os.environ.get("VFC_FUZZ_INJECT_FAULT")   # "hang:INDEX" or "crash:INDEX"
    fault = (fault.split(":")[0], int(fault.split(":")[1])) if fault else None
    for index in indices:
        progress[2 * wid] = index
        progress[2 * wid + 1] = time.time()
        case = make_case(corpus, args.seed, index, args.decode_fraction)
        if fault and fault[1] == index:   # self-test of the hang/crash handling
            if fault[0] == "hang":
                time.sleep(3600)
            os.kill(os.getpid(), signal.SIGSEGV)
        traced = args.trace_every and index % args.trace_every == 0
        result = check_case(case.data, decode=case.decode, reference=references.get(case.base),
                            budget=args.budget,
                            trace_limit=(args.trace_limit << 20) if traced else None)
        stats.add(result, decode=case.decode,
                  mutations=[m.removesuffix("+crc") for m in case.mutations],
                  where=_describe(case, args.seed))
        for kind, detail in result.violations:
            queue.put(("violation", wid, kind, case.data,
                       f"{_describe(case, args.seed)}\n{kind}: {detail}\n"))
        now = time.monotonic()
        if now - last > 1.0:
            stats.max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            queue.put(("stats", wid, stats, index))
            stats, last = Stats(), now
    stats.max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    progress[2 * wid] = -1
    queue.put(("stats", wid, stats, indices[-1] if indices else -1))
    queue.put(("done", wid, None))


def run_campaign(args, corpus=None, log=print) -> tuple[Stats, list[Path]]:
    """Run args.cases cases on args.workers processes; returns the merged Stats and the
    saved failing inputs."""
    t0 = time.time()
    corpus = corpus or build_corpus(None if args.no_conformance else CONFORMANCE_DIR)
    references = reference_decodes(corpus)
    log(f"{len(corpus)} seed streams ({sum(len(d) for _, d in corpus)} bytes) built in "
        f"{time.time() - t0:.1f} s")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    progress = ctx.Array("d", [0.0] * (2 * args.workers), lock=False)
    total, saved = Stats(), []
    out_dir = Path(args.out)

    def start(wid, first):
        r = range(first, args.cases, args.workers)
        p = ctx.Process(target=worker, args=(wid, r, corpus, references, args, queue, progress),
                        daemon=True)
        p.start()
        return p

    procs = {w: start(w, w) for w in range(args.workers)}
    reported = {w: w - args.workers for w in range(args.workers)}   # last index in Stats
    done: set[int] = set()
    last_report = last_check = time.time()

    def handle(msg):
        kind, wid = msg[0], msg[1]
        if kind == "stats":
            total.merge(msg[2])
            reported[wid] = msg[3]
        elif kind == "violation":
            _, _, vkind, data, text = msg
            path = _save(out_dir, vkind, data, text)
            if path not in saved:
                saved.append(path)
                log(f"CONTRACT VIOLATION ({vkind}) saved to {path}\n{text[:2000]}")
        elif kind == "done":
            done.add(wid)

    while len(done) < args.workers:
        try:
            msg = queue.get(timeout=0.5)
        except Exception:  # queue.Empty
            msg = None
        if msg is not None:
            handle(msg)
        now = time.time()
        if now - last_check < 0.5:
            continue
        last_check = now
        for wid, p in list(procs.items()):
            if wid in done:
                continue
            index, started = int(progress[2 * wid]), progress[2 * wid + 1]
            died = not p.is_alive() and wid not in done
            hung = index >= 0 and now - started > args.hard_timeout
            if not (died or hung):
                continue
            if died:   # the queue may still hold its last messages
                time.sleep(0.5)
                while True:
                    try:
                        handle(queue.get_nowait())
                    except Exception:  # noqa: BLE001 - queue.Empty
                        break
                if wid in done:
                    continue
            p.kill()
            p.join()
            case = make_case(corpus, args.seed, index, args.decode_fraction)
            vkind = "hang" if hung else f"crash(exit {p.exitcode})"
            text = f"{_describe(case, args.seed)}\n{vkind}\n"
            total.violations[vkind.split("(")[0]] += 1
            lost = (index - reported[wid]) // args.workers   # this case and those unsent
            total.cases += lost
            total.outcomes[f"(not recorded: the worker {vkind.split('(')[0]})"] += lost
            reported[wid] = index
            path = _save(out_dir, vkind.split("(")[0], case.data, text)
            saved.append(path)
            log(f"CONTRACT VIOLATION ({vkind}) saved to {path}\n{text}")
            progress[2 * wid] = index + args.workers
            progress[2 * wid + 1] = time.time()
            if index + args.workers < args.cases:
                procs[wid] = start(wid, index + args.workers)
            else:
                done.add(wid)
        if now - last_report > args.report_every:
            last_report = now
            rate = total.cases / max(now - t0, 1e-9)
            log(f"  {total.cases} cases, {rate:.0f}/s, {sum(total.violations.values())} "
                f"violations")
    total.max_rss_kib = max(total.max_rss_kib,
                            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return total, saved


def format_stats(stats: Stats, seconds: float) -> str:
    lines = [f"{stats.cases} cases ({stats.decoded} with HEVC decoding) in {seconds:.1f} s "
             f"({stats.cases / max(seconds, 1e-9):.0f} cases/s)", "", "Outcomes per call:"]
    for key, n in sorted(stats.outcomes.items()):
        lines.append(f"  {n:8d}  {key}")
    lines += ["", "Clause ids (read_headers/decode: the error raised; verify: every "
                  "violation reported):"]
    def clause_order(item):
        where, _, clause = item[0].rpartition(" ")
        return where, [int(x) if x.isdigit() else 0 for x in clause.split(".")]
    for key, n in sorted(stats.clauses.items(), key=clause_order):
        lines.append(f"  {n:8d}  {key}")
    lines += ["", "Mutations applied:"]
    for key, n in sorted(stats.mutations.items()):
        lines.append(f"  {n:8d}  {key}")
    lines += ["", f"Slowest case: {stats.slowest[0] * 1000:.1f} ms ({stats.slowest[1]})",
              f"Largest Python-side peak (tracemalloc): {stats.traced_peak[0] / 2**20:.2f} MiB "
              f"({stats.traced_peak[1]})",
              f"Peak RSS of a process: {stats.max_rss_kib / 1024:.1f} MiB",
              f"Contract violations: {sum(stats.violations.values())} "
              f"{dict(stats.violations) if stats.violations else ''}"]
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--decode-fraction", type=float, default=0.2,
                    help="share of cases that also decode the HEVC payloads (default 0.2)")
    ap.add_argument("--budget", type=float, default=5.0,
                    help="seconds one call may take before it is a violation (default 5)")
    ap.add_argument("--hard-timeout", type=float, default=60.0,
                    help="seconds after which a worker is killed as hung (default 60)")
    ap.add_argument("--trace-every", type=int, default=10,
                    help="trace Python allocations of every Nth case (0: never; default 10)")
    ap.add_argument("--trace-limit", type=int, default=256,
                    help="MiB a traced case may allocate on the Python side (default 256)")
    ap.add_argument("--max-address-space", type=int, default=4096,
                    help="RLIMIT_AS of the workers in MiB, so that a runaway allocation "
                         "fails as MemoryError (0: none; default 4096)")
    ap.add_argument("--out", default=str(ROOT / "out" / "fuzz-failures"),
                    help="directory for the inputs that break the contract (default "
                         "out/fuzz-failures, which git ignores)")
    ap.add_argument("--no-conformance", action="store_true",
                    help="do not add conformance/streams/*.vfc to the seeds")
    ap.add_argument("--report-every", type=float, default=30.0)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    stats, saved = run_campaign(args)
    print(format_stats(stats, time.time() - t0))
    for path in saved:
        print(f"  saved {path}")
    return 1 if stats.violations else 0


if __name__ == "__main__":
    sys.exit(main())
