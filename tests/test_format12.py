"""The syntax of format 1.2 (issue 15): dense packing (packing_type 2), binary16 quantizer
parameters and the compact channel permutation (layer_header_ext units, unit_type 5).

Round trips (packing, headers, whole streams), the refusals of every new requirement with
its clause, byte offset and path, the version rules (a decoder of version 1.1 refuses every
stream that uses the new syntax; streams without it are written and read as before), and
the encoder's choices.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcodec
from refcodec import bitstream, syntax
from refcodec.enums import (PackingType, PadMode, ParamFormat, PermutationCoding,
                            QuantizerType, SourceDtype, SourceLayout)
from refcodec.errors import ConformanceViolation, EncoderInputError, UnsupportedFeature
from refcodec.layer import EncoderConfig
from refcodec.packing import Layout, groups_of_order, order_of_groups, pack, unpack
from refcodec.quant import choose_params, quantize, to_binary16
from refcodec.records import LayerHeader, QuantParams, StreamHeader

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "conformance"
MANIFEST = json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))
STREAMS = {s["name"]: s for s in MANIFEST["streams"]}
V12_VALID = sorted(n for n, s in STREAMS.items() if n.startswith("v12_") and s["valid"])


def header(**kw) -> LayerHeader:
    fields = dict(layer_id="x", source_layout=SourceLayout.NCHW,
                  source_dtype=SourceDtype.FLOAT32, batch_size=1, num_channels=5, height=3,
                  width=3, sample_bit_depth=8, quantizer_type=QuantizerType.UNIFORM,
                  per_channel_quant_flag=False,
                  quant_params=(QuantParams(min_value=-1.0, max_value=2.0),),
                  channel_permutation=None, packing_type=PackingType.DENSE, tile_rows=2,
                  tile_cols=3, pad_mode=PadMode.REPLICATE, pad_bottom=2, pad_right=7)
    fields.update(kw)
    return LayerHeader(**fields)


def stream_of(h: LayerHeader, version_minor: int = 2) -> bytes:
    """A stream with one layer of header ``h`` and a dummy payload (read_headers does not
    decode it)."""
    return bitstream.build_stream(StreamHeader(1, version_minor, 1, 10, 1),
                                  [(h, bytes(16), b"\x00\x00\x00\x01\x40")])


def refusal(data: bytes):
    with pytest.raises((ConformanceViolation, UnsupportedFeature)) as info:
        refcodec.read_headers(data)
    return info.value


def header_start(data: bytes) -> int:
    """Byte offset of layer 0's layer_header() in a stream of stream_of()."""
    return syntax.STREAM_HEADER_SIZE + syntax.UNIT_PREFIX


# ---------------------------------------------------------------------------------------
# Dense packing: a bijection for every geometry
# ---------------------------------------------------------------------------------------

@st.composite
def dense_layouts(draw):
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 40))
    h = draw(st.sampled_from([1, 2, 3, 5, 7, 8, 9]))
    w = draw(st.sampled_from([1, 2, 3, 5, 7, 8, 9]))
    rows = draw(st.integers(1, 8))
    cols = draw(st.integers(1, 8))
    if rows * cols < 2:
        cols = 2
    pad_b = -(rows * h) % 8 + 8 * draw(st.integers(0, 1))
    pad_r = -(cols * w) % 8 + 8 * draw(st.integers(0, 1))
    perm = draw(st.none() | st.permutations(list(range(c))).map(tuple))
    return Layout(n, c, h, w, rows, cols, pad_b, pad_r, draw(st.booleans()), perm, dense=True)


@given(dense_layouts(), st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_dense_packing_is_a_bijection(lay, seed):
    q = np.random.default_rng(seed).integers(0, 1024, (lay.batch_size, lay.num_channels,
                                                       lay.height, lay.width), dtype=np.uint16)
    pictures = pack(q, lay)
    ph, pw = lay.picture_shape
    assert pictures.shape == (lay.num_pictures, ph, pw)
    assert ph == lay.tile_rows * lay.height + lay.pad_bottom and ph % 8 == 0
    assert pw == lay.tile_cols * lay.width + lay.pad_right and pw % 8 == 0
    assert np.array_equal(unpack(pictures, lay), q)
    # the map of slot 0 sits unpadded at the top left; the padding is the picture's
    first = q[0, lay.permutation[0] if lay.permutation else 0]
    assert np.array_equal(pictures[0, :lay.height, :lay.width], first)
    rows, cols = lay.tile_rows * lay.height, lay.tile_cols * lay.width
    if lay.pad_bottom:
        expect = pictures[:, rows - 1, :] if lay.replicate else 0
        assert np.all(pictures[:, rows:, :] == (expect[:, None, :] if lay.replicate
                                                 else 0))
    if lay.pad_right:
        expect = pictures[:, :, cols - 1] if lay.replicate else 0
        assert np.all(pictures[:, :, cols:] == (expect[:, :, None] if lay.replicate
                                                 else 0))


def test_dense_geometry_of_pool5_and_conv5():
    pool5 = Layout(1, 1280, 1, 1, 36, 36, 4, 4, dense=True)
    assert pool5.picture_shape == (40, 40) and pool5.num_pictures == 1
    tiled = Layout(1, 1280, 1, 1, 2, 2, 7, 7)
    assert tiled.picture_shape == (16, 16) and tiled.num_pictures == 320
    conv5 = Layout(1, 1280, 7, 7, 36, 36, 4, 4, dense=True)
    assert conv5.picture_shape == (256, 256) and conv5.num_pictures == 1


# ---------------------------------------------------------------------------------------
# layer_header() with and without layer_header_ext(): build, parse, fast path
# ---------------------------------------------------------------------------------------

@st.composite
def headers12(draw):
    c = draw(st.integers(1, 70))
    qtype = draw(st.sampled_from(list(QuantizerType)))
    per_channel = draw(st.booleans())
    f16 = st.floats(-65504, 65504, width=16)
    sets = []
    for _ in range(c if per_channel else 1):
        if qtype == QuantizerType.INTEGER:
            sets.append(QuantParams(offset_value=float(draw(st.integers(-2000, 1000)))))
        else:
            a, b = sorted((draw(f16), draw(f16)))
            sets.append(QuantParams(min_value=a, max_value=b))
    binary16 = draw(st.booleans())     # the values are binary16 numbers either way
    perm = draw(st.none() | st.permutations(list(range(c))).map(tuple))
    ext = draw(st.booleans()) or binary16
    kind = draw(st.sampled_from(list(PackingType)))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    rows, cols = (1, 1) if kind == PackingType.CHANNEL_PER_PICTURE else (
        draw(st.integers(1, 6)), draw(st.integers(2, 6)))
    if kind == PackingType.DENSE:
        pad_b, pad_r = -(rows * h) % 8, -(cols * w) % 8
    else:
        pad_b, pad_r = -h % 8, -w % 8
    coding = draw(st.sampled_from(list(PermutationCoding))) if ext else None
    grouped = {}
    if perm is not None and coding == PermutationCoding.GROUPED:
        # any group numbers of group_bits bits: the order is the channels sorted by them
        bits = draw(st.integers(1, 8))
        groups = tuple(draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=c,
                                     max_size=c)))
        grouped = dict(group_bits=bits, channel_groups=groups)
        perm = order_of_groups(groups)
    return header(num_channels=c, height=h, width=w, quantizer_type=qtype,
                  per_channel_quant_flag=per_channel, quant_params=tuple(sets),
                  channel_permutation=perm, packing_type=kind, tile_rows=rows, tile_cols=cols,
                  pad_bottom=pad_b, pad_right=pad_r,
                  param_format=(ParamFormat.BINARY16 if binary16 else ParamFormat.BINARY32)
                  if ext else None,
                  permutation_coding=coding, **grouped)


@given(headers12())
@settings(max_examples=200, deadline=None)
def test_layer_header_round_trip(h):
    data = stream_of(h)
    got = refcodec.read_headers(data).layers[0].header
    assert got == h
    unit_type = data[syntax.STREAM_HEADER_SIZE]
    assert unit_type == (5 if h.has_ext else 1)
    payload = bitstream.build_layer_header(h)
    # the fast path reads what construct reads, for every prefix of the payload too
    slow = syntax.layer_header.parse(payload, unit_type=unit_type)
    fast = bitstream.fast.fast_layer_header(payload, unit_type)
    assert fast is not None and fast[2] == len(payload)
    assert _plain(fast[1]) == _plain(slow)
    for cut in range(0, len(payload), max(1, len(payload) // 7)):
        assert bitstream.fast.fast_layer_header(payload[:cut], unit_type) is None


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if not k.startswith("_")}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def test_compact_permutation_bytes():
    """PermBits bits per entry, most significant bit first, zero bits to the byte boundary:
    the bytes computed here from the entries, independently of construct."""
    for c, perm in ((1, (0,)), (2, (1, 0)), (5, (1, 2, 3, 4, 0)), (16, tuple(range(15, -1, -1))),
                    (1280, tuple(np.random.default_rng(3).permutation(1280).tolist()))):
        bits = max(1, (c - 1).bit_length())
        text = "".join(format(k, f"0{bits}b") for k in perm)
        text += "0" * (-len(text) % 8)
        expected = int(text, 2).to_bytes(len(text) // 8, "big")
        h = header(num_channels=c, channel_permutation=perm, tile_rows=1, tile_cols=2,
                   height=8, width=8, pad_bottom=0, pad_right=0,
                   param_format=ParamFormat.BINARY32,
                   permutation_coding=PermutationCoding.COMPACT)
        u32 = dataclasses.replace(h, permutation_coding=PermutationCoding.U32)
        compact, wide = bitstream.build_layer_header(h), bitstream.build_layer_header(u32)
        assert len(wide) - len(compact) == 4 * c - len(expected)
        tail = 1 + 4 + 4           # packing_type, tile_grid, pad_mode..payload_codec
        assert compact[-tail - len(expected):-tail] == expected
    assert 4 * 1280 - len(expected) == 5120 - 1760


def test_grouped_permutation_bytes():
    """group_bits, then group_bits bits per channel, most significant bit first, zero bits to
    the byte boundary: the bytes computed here from the groups, independently of construct."""
    rng = np.random.default_rng(4)
    for c, bits in ((1, 1), (5, 1), (5, 3), (8, 2), (40, 2), (1280, 2), (70, 8)):
        groups = tuple(int(g) for g in rng.integers(0, 1 << bits, c))
        text = "".join(format(g, f"0{bits}b") for g in groups)
        text += "0" * (-len(text) % 8)
        expected = bytes([bits]) + int(text, 2).to_bytes(len(text) // 8, "big")
        h = header(num_channels=c, channel_permutation=order_of_groups(groups),
                   tile_rows=1, tile_cols=2, height=8, width=8, pad_bottom=0, pad_right=0,
                   param_format=ParamFormat.BINARY32,
                   permutation_coding=PermutationCoding.GROUPED, group_bits=bits,
                   channel_groups=groups)
        raw = bitstream.build_layer_header(h)
        tail = 1 + 4 + 4           # packing_type, tile_grid, pad_mode..payload_codec
        assert raw[-tail - len(expected):-tail] == expected
        got = refcodec.read_headers(stream_of(h)).layers[0].header
        assert (got.channel_groups, got.group_bits) == (groups, bits)
        # ChannelOrder: the channels sorted by group, equal groups in index order
        assert got.channel_permutation == tuple(sorted(range(c), key=lambda k: (groups[k], k)))
    assert len(expected) == 1 + 70


def test_grouped_order_of_the_encoder():
    """groups_of_order: group g holds the g-th increasing run, the fewest group bits; the
    decoded tensor equals the one coded with the same order in 32-bit entries."""
    assert groups_of_order((1, 3, 0, 2, 4)) == ((1, 0, 1, 0, 1), 1)
    assert groups_of_order(tuple(range(6))) == ((0,) * 6, 1)
    assert groups_of_order((4, 3, 2, 1, 0)) == ((4, 3, 2, 1, 0), 3)
    rng = np.random.default_rng(6)
    for _ in range(200):
        c = int(rng.integers(1, 60))
        groups = rng.integers(0, int(rng.integers(1, 9)), c)
        order = order_of_groups(groups)
        canonical, bits = groups_of_order(order)
        assert order_of_groups(canonical) == order
        assert bits <= max(1, (int(groups.max())).bit_length())
    x = np.random.default_rng(1).standard_normal((1, 24, 7, 7)).astype(np.float32)
    order = order_of_groups(np.arange(24) * 7 % 4)
    grouped, sg = _encode(x, qp=27, preset="ultrafast", packing="dense",
                          channel_order=order, permutation_coding="grouped")
    wide, _ = _encode(x, qp=27, preset="ultrafast", packing="dense",
                      channel_order=order, permutation_coding="u32")
    h = sg.layers[0].header
    assert (h.group_bits, h.channel_permutation) == (2, order)
    assert len(wide) - len(grouped) == 4 * 24 - (1 + 6) - 2   # the ext unit adds 2 bytes
    assert np.array_equal(refcodec.decode(grouped)["t"], refcodec.decode(wide)["t"])
    # 257 increasing runs cannot be grouped in 8 bits
    with pytest.raises(EncoderInputError, match="257 increasing runs"):
        _encode(np.zeros((1, 257, 8, 8), np.float32), channel_order=tuple(range(256, -1, -1)),
                permutation_coding="grouped", packing="tiled")


def test_binary16_params_bytes_and_values():
    h = header(quant_params=(QuantParams(min_value=-1.5, max_value=2.0 ** -24),),
               param_format=ParamFormat.BINARY16, permutation_coding=PermutationCoding.U32)
    raw = bitstream.build_layer_header(h)
    at = 1 + 1 + 21 + 2
    assert raw[at:at + 4] == struct.pack(">ee", -1.5, 2.0 ** -24)   # a subnormal max_value
    got = refcodec.read_headers(stream_of(h)).layers[0].header
    assert got.quant_params[0] == QuantParams(min_value=-1.5, max_value=2.0 ** -24)


# ---------------------------------------------------------------------------------------
# Refusals of the new requirements: clause, error class, offset, path
# ---------------------------------------------------------------------------------------

def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    """``data`` with bytes at ``offset`` (inside layer 0's header unit) replaced and the
    unit's CRC recomputed."""
    out = bytearray(data)
    out[offset:offset + len(value)] = value
    start = syntax.STREAM_HEADER_SIZE
    length = int.from_bytes(out[start + 2:start + 6], "big")
    end = start + syntax.UNIT_PREFIX + length
    out[end:end + 4] = bitstream.crc32(bytes(out[start:end])).to_bytes(4, "big")
    return bytes(out)


EXT = dict(param_format=ParamFormat.BINARY32, permutation_coding=PermutationCoding.COMPACT)


def test_reserved_param_format_and_permutation_coding():
    data = stream_of(header(**EXT))
    at = header_start(data) + 1 + 1 + 21
    for delta, clause, name, value in ((0, "8.3.15", "param_format", 2),
                                       (1, "8.3.16", "permutation_coding", 3)):
        err = refusal(_patched(data, at + delta, bytes([value])))
        assert isinstance(err, UnsupportedFeature)
        assert (err.clause, err.offset, err.path) == (
            clause, at + delta, f"layers[0].layer_header_ext.{name}")


@pytest.mark.parametrize("perm, entry, bad", [((1, 2, 3, 4, 0), 4, 5), ((1, 2, 3, 4, 0), 2, 1)])
def test_compact_permutation_not_a_permutation(perm, entry, bad):
    h = header(channel_permutation=perm, **EXT)
    data = stream_of(dataclasses.replace(h, channel_permutation=perm[:entry] + (bad,)
                                         + perm[entry + 1:]))
    err = refusal(data)
    start = header_start(data) + 1 + 1 + 21 + 2 + 8
    assert isinstance(err, ConformanceViolation) and err.clause == "8.3.8"
    assert err.offset == start + entry * 3 // 8
    assert err.path == f"layers[0].compact_permutation.channel_permutation_entry[{entry}]"


def test_compact_permutation_alignment_bits():
    data = stream_of(header(channel_permutation=(1, 2, 3, 4, 0), **EXT))
    last = header_start(data) + 1 + 1 + 21 + 2 + 8 + 1     # 15 bits of entries: 2 bytes
    err = refusal(_patched(data, last, bytes([data[last] | 1])))
    assert isinstance(err, ConformanceViolation)
    assert (err.clause, err.offset, err.path) == (
        "8.3.16", last, "layers[0].compact_permutation.permutation_alignment_zero_bits")


GROUPED = dict(param_format=ParamFormat.BINARY32, permutation_coding=PermutationCoding.GROUPED,
               group_bits=2, channel_groups=(3, 0, 1, 1, 2),
               channel_permutation=order_of_groups((3, 0, 1, 1, 2)))


@pytest.mark.parametrize("bits", [0, 9, 255])
def test_group_bits_out_of_range(bits):
    """group_bits outside 1..8 is refused before the entries are read (their size depends
    on it), at its byte."""
    data = stream_of(header(**GROUPED))
    at = header_start(data) + 1 + 1 + 21 + 2 + 8
    assert data[at] == 2
    err = refusal(_patched(data, at, bytes([bits])))
    assert isinstance(err, ConformanceViolation)
    assert (err.clause, err.offset, err.path) == (
        "8.3.16", at, "layers[0].grouped_permutation.group_bits")
    assert f"group_bits shall be in 1..8, got {bits}" in str(err)


def test_grouped_permutation_alignment_bits():
    data = stream_of(header(**GROUPED))
    last = header_start(data) + 1 + 1 + 21 + 2 + 8 + 2   # group_bits, 10 bits of groups
    err = refusal(_patched(data, last, bytes([data[last] | 1])))
    assert isinstance(err, ConformanceViolation)
    assert (err.clause, err.offset, err.path) == (
        "8.3.16", last, "layers[0].grouped_permutation.group_alignment_zero_bits")


@pytest.mark.parametrize("lo, hi", [(float("nan"), 1.0), (0.0, float("inf")),
                                    (float("-inf"), 0.0), (2.0, 1.0)])
def test_binary16_parameter_values(lo, hi):
    h = header(per_channel_quant_flag=True, quant_params=(QuantParams(min_value=0.0,
                                                                      max_value=1.0),) * 4
               + (QuantParams(min_value=lo, max_value=hi),),
               param_format=ParamFormat.BINARY16, permutation_coding=PermutationCoding.U32)
    data = stream_of(h)
    err = refusal(data)
    assert isinstance(err, ConformanceViolation) and err.clause == "8.3.7"
    assert err.offset == header_start(data) + 1 + 1 + 21 + 2 + 4 * 4
    assert err.path == "layers[0].quant_params[4]"


def test_binary16_min_equal_max_is_a_constant_channel():
    h = header(quant_params=(QuantParams(min_value=0.25, max_value=0.25),),
               param_format=ParamFormat.BINARY16, permutation_coding=PermutationCoding.U32)
    assert refcodec.read_headers(stream_of(h)).layers[0].header == h


def test_dense_grid_and_padding():
    err = refusal(stream_of(header(tile_rows=1, tile_cols=1, pad_bottom=5, pad_right=5)))
    assert (err.clause, err.path) == ("8.3.9", "layers[0].tile_grid")
    # height + pad_bottom = 5 is a multiple of 8 for no tile, but 2 * 3 + 2 is one
    good = header()
    assert refcodec.read_headers(stream_of(good)).layers[0].header.picture_height == 8
    data = stream_of(dataclasses.replace(good, pad_bottom=3))
    err = refusal(data)
    assert isinstance(err, ConformanceViolation) and err.clause == "8.3.10"
    assert err.path == "layers[0].pad_bottom"
    assert data[err.offset] == 3
    # the tiled rule would refuse the dense padding (3 + 2 is no multiple of 8)
    err = refusal(stream_of(dataclasses.replace(good, packing_type=PackingType.TILED)))
    assert err.clause == "8.3.10"


# ---------------------------------------------------------------------------------------
# Version rules
# ---------------------------------------------------------------------------------------

def test_new_syntax_needs_version_minor_2():
    for minor in (0, 1):
        dense = refusal(stream_of(header(), version_minor=minor))
        assert isinstance(dense, UnsupportedFeature) and dense.clause == "8.3.9"
        assert dense.path == "layers[0].packing_type"
        ext = refusal(stream_of(header(packing_type=PackingType.TILED, pad_bottom=5,
                                       pad_right=5, **EXT), version_minor=minor))
        assert isinstance(ext, UnsupportedFeature) and ext.clause == "8.2.1"
        assert ext.offset == syntax.STREAM_HEADER_SIZE and ext.path == "units[0].unit_type"


def _decoder_1_1_refuses(data: bytes) -> str | None:
    """What a decoder of version 1.1 refuses in ``data`` (its own reading, written here
    independently of refcodec's reader: the unit types and the layer_header() layout of
    version 1.1), or None when it would decode the stream."""
    known_units, known_packing, known_quantizers = {1, 2, 3, 4, 255}, {0, 1}, {0, 1, 2}
    pos = syntax.STREAM_HEADER_SIZE
    while pos < len(data):
        unit_type, flags, length = struct.unpack_from(">BBI", data, pos)
        payload = data[pos + 6:pos + 6 + length]
        if unit_type not in known_units:
            if not flags & 0x80:
                return f"unit_type {unit_type}"
        elif unit_type == 1:
            p = 1 + payload[0]
            c = struct.unpack_from(">I", payload, p + 6)[0]
            qtype, lflags = payload[p + 19], payload[p + 20]
            if qtype not in known_quantizers:
                return f"quantizer_type {qtype}"
            p += 21 + (c if lflags & 0x80 else 1) * (4 if qtype == 2 else 8)
            p += 4 * c if lflags & 0x40 else 0
            if payload[p] not in known_packing:
                return f"packing_type {payload[p]}"
        elif unit_type == 255:
            return None
        pos += 6 + length + 4
    return None


@pytest.mark.parametrize("name", V12_VALID)
def test_a_1_1_decoder_refuses_every_1_2_stream(name):
    data = (SUITE / STREAMS[name]["file"]).read_bytes()
    stream = refcodec.read_headers(data)
    assert stream.header.version_minor == 2
    assert any(layer.header.uses_format12 for layer in stream.layers)
    assert _decoder_1_1_refuses(data) is not None


def test_older_streams_keep_their_version_and_bytes():
    """Every stored stream of version 1.0 and 1.1 is read and written back byte for byte by
    this version's reader and writer, and a 1.1 decoder finds nothing to refuse in it."""
    checked = 0
    for name, entry in STREAMS.items():
        if not entry["valid"] or name.startswith(("v12_", "interop_")) or entry.get(
                "features", {}).get("extra_unit") or entry.get("features", {}).get("face") \
                or entry.get("features", {}).get("future_minor"):
            continue
        data = (SUITE / entry["file"]).read_bytes()
        stream = refcodec.read_headers(data)
        assert stream.header.version_minor == 0, name
        layers = [(layer.header, layer.sample_md5, layer.hevc_payload)
                  for layer in stream.layers]
        assert bitstream.build_stream(stream.header, layers) == data, name
        assert _decoder_1_1_refuses(data) is None, name
        checked += 1
    assert checked >= 40


# ---------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------

def _encode(x, **kw):
    data = refcodec.encode({"t": x}, EncoderConfig(**kw))
    return data, refcodec.read_headers(data)


@pytest.mark.parametrize("shape, kw", [
    ((1, 1280, 1, 1), {}),
    ((2, 5, 7, 7), dict(tile_grid=(2, 3), pad_mode="zero")),
    ((1, 3, 3, 5), dict(tile_grid=(3, 2))),
    ((1, 1, 16, 16), {}),                   # one tile: written as packing_type 0
    ((1, 20, 9, 10), dict(layout="NHWC")),
])
def test_dense_lossless_round_trip(shape, kw):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-100, 100, shape).astype(np.float32)
    if kw.get("layout") == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    data, stream = _encode(x, packing="dense", quantizer="integer", lossless=True,
                           preset="ultrafast", **kw)
    h = stream.layers[0].header
    one_tile = h.tile_rows * h.tile_cols == 1
    assert h.packing_type == (PackingType.CHANNEL_PER_PICTURE if one_tile
                              else PackingType.DENSE)
    assert stream.header.version_minor == (0 if one_tile else 2)
    assert h.picture_height % 8 == 0 and h.picture_width % 8 == 0
    assert np.array_equal(refcodec.decode(data)["t"], x)


def test_encoder_versions_and_codings():
    x = np.random.default_rng(1).standard_normal((1, 6, 16, 16)).astype(np.float32)
    order = (5, 4, 3, 2, 1, 0)
    cases = [(dict(), 0, 1, None),
             (dict(channel_order=order), 0, 1, None),              # auto: 32-bit entries
             (dict(channel_order=order, permutation_coding="compact"), 2, 5,
              PermutationCoding.COMPACT),
             (dict(param_format="binary16"), 2, 5, PermutationCoding.U32),
             (dict(param_format="binary16", channel_order=order), 2, 5,
              PermutationCoding.COMPACT),
             (dict(packing="dense", tile_grid=(2, 3)), 2, 1, None),
             # dense needs version 1.2 anyway: auto takes the compact code
             (dict(packing="dense", tile_grid=(2, 3), channel_order=order), 2, 5,
              PermutationCoding.COMPACT),
             (dict(packing="dense", tile_grid=(2, 3), channel_order=order,
                   permutation_coding="u32"), 2, 1, None),
             (dict(channel_order=order, permutation_coding="grouped"), 2, 5,
              PermutationCoding.GROUPED),
             # no order: nothing to code, a layer_header unit
             (dict(permutation_coding="grouped"), 0, 1, None)]
    for kw, minor, unit_type, coding in cases:
        data, stream = _encode(x, qp=30, preset="ultrafast", **kw)
        h = stream.layers[0].header
        assert stream.header.version_minor == minor, kw
        assert data[syntax.STREAM_HEADER_SIZE] == unit_type, kw
        assert h.permutation_coding == coding, kw
        assert h.packing_type == (PackingType.DENSE if kw.get("packing") == "dense"
                                  else PackingType.CHANNEL_PER_PICTURE), kw


def test_binary16_parameters_cover_the_data():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 7, 5, 5)) * np.array([1e-6, 1e-3, 1, 3.3, 100, 3e3, 1e4]
                                                       ).reshape(1, 7, 1, 1)).astype(np.float32)
    for qtype in (0, 1):
        for per_channel in (False, True):
            sets = choose_params(x, qtype, 10, per_channel, binary16=True)
            lo = x.min(axis=(0, 2, 3)) if per_channel else [x.min()]
            hi = x.max(axis=(0, 2, 3)) if per_channel else [x.max()]
            for p, a, b in zip(sets, lo, hi):
                assert float(np.float16(p.min_value)) == p.min_value <= a
                assert float(np.float16(p.max_value)) == p.max_value >= b
                # the nearest binary16 numbers: one step further would not cover
                assert float(np.nextafter(np.float16(p.min_value), np.float16(np.inf))) > a
                assert float(np.nextafter(np.float16(p.max_value), np.float16(-np.inf))) < b
            q = quantize(x, qtype, sets, 10)
            assert q.max() <= 1023
    assert to_binary16(1 / 3, -1) < 1 / 3 < to_binary16(1 / 3, +1)
    assert to_binary16(2.0 ** -24 * 1.5, -1) == 2.0 ** -24          # subnormal
    big = np.full((1, 1, 4, 4), 65520.0, dtype=np.float32)
    with pytest.raises(EncoderInputError, match="binary16"):
        refcodec.encode(big, EncoderConfig(param_format="binary16", quantizer="uniform"))
    # integer quantizer: 4097 is no binary16 number; 4096 covers 4097..4097+D at 8 bits
    ints = np.arange(4097, 4097 + 16, dtype=np.float32).reshape(1, 1, 4, 4)
    (p,) = choose_params(ints, 2, 8, False, binary16=True)
    assert p.offset_value == 4096.0
    wide = np.array([4097.0, 4097.0 + 255], dtype=np.float32).reshape(1, 1, 1, 2)
    with pytest.raises(EncoderInputError, match="binary16"):
        refcodec.encode(np.tile(wide, (1, 1, 16, 8)),
                        EncoderConfig(param_format="binary16", quantizer="integer"))


def test_binary16_stream_decodes_like_binary32_with_the_same_values():
    """The dequantization does not depend on the parameters' coding (clause 9.4): a layer
    with binary16 parameters decodes to the tensor of the same layer rewritten with the
    same values as binary32."""
    x = np.random.default_rng(4).standard_normal((1, 4, 16, 16)).astype(np.float32)
    data, stream = _encode(x, quantizer="log", per_channel=True, param_format="binary16",
                           qp=27, preset="ultrafast")
    layer = stream.layers[0]
    as32 = dataclasses.replace(layer.header, param_format=None, permutation_coding=None)
    data32 = bitstream.build_stream(dataclasses.replace(stream.header, version_minor=0),
                                    [(as32, layer.sample_md5, layer.hevc_payload)])
    assert len(data32) == len(data) + 4 * 4 - 2
    assert np.array_equal(refcodec.decode(data)["t"], refcodec.decode(data32)["t"])


def test_config_errors():
    with pytest.raises(EncoderInputError, match="param_format shall be binary32 or binary16"):
        EncoderConfig(param_format="half")
    with pytest.raises(EncoderInputError, match="permutation_coding shall be"):
        EncoderConfig(permutation_coding="lehmer")
    with pytest.raises(EncoderInputError, match="dense tile grid 1x2 gives"):
        refcodec.encode(np.zeros((1, 2, 1, 1), np.float32),
                        EncoderConfig(packing="dense", tile_grid=(1, 2)))


def test_cli_encode_dense_binary16(tmp_path):
    from refcodec.cli import main
    x = np.random.default_rng(5).standard_normal((1, 64, 7, 7)).astype(np.float32)
    np.save(tmp_path / "conv.npy", x)
    out = tmp_path / "conv.vfc"
    assert main(["encode", str(tmp_path / "conv.npy"), "-o", str(out), "--packing", "dense",
                 "--param-format", "binary16", "--per-channel", "--channel-order",
                 ",".join(str(v) for v in range(63, -1, -1)), "--preset", "ultrafast",
                 "-q"]) == 0
    stream = refcodec.read_headers(out.read_bytes())
    h = stream.layers[0].header
    assert (h.packing_type, h.param_format, h.permutation_coding) == (
        PackingType.DENSE, ParamFormat.BINARY16, PermutationCoding.COMPACT)
    assert (h.picture_height, h.picture_width) == (56, 56)
    buf = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(buf):
        assert main(["info", str(out), "--json"]) == 0
    info = json.loads(buf.getvalue())
    assert info["version_minor"] == 2
    assert info["layers"][0]["param_format"] == "binary16"
    assert info["layers"][0]["permutation_coding"] == "compact"
