"""Resource bounds of the decoder (issue 14, points 6 and 9): the stream totals of the
levels (clause 11.2), a decoder's lower limits (--level, --max-output-bytes), per-unit work
that stays linear and small, and the peak memory of reconstruct.  No test here uses the
wall clock: work is counted (calls) or bounded by tracemalloc."""

from __future__ import annotations

import dataclasses
import json
import random
import tracemalloc
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from bitstring import Bits, ReadError, Reader as BitReader

import refcodec
from refcodec import packing, quant
from refcodec.bitstream import Checker, build_stream, parse_stream
from refcodec.bitstream import reader as reader_module
from refcodec.cli import main
from refcodec.enums import (LEVELS, Embedder, PackingType, PadMode, QuantizerType, SourceDtype,
                            SourceLayout)
from refcodec.errors import BitstreamError, ConformanceViolation
from refcodec.face import entropy
from refcodec.layer import NUMPY_DTYPES, reconstruct
from refcodec.records import Face, FaceBase, LayerHeader, QuantParams, StreamHeader
from refcodec.syntax import STREAM_HEADER_SIZE

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT / "conformance"
MD5 = bytes(16)
PAYLOAD = b"\x00\x00\x00\x01\x26\x01"   # never decoded: the limits are read before


def layer_header(layer_id="x", **kw) -> LayerHeader:
    base = dict(layer_id=layer_id, source_layout=SourceLayout.NCHW,
                source_dtype=SourceDtype.FLOAT32, batch_size=1, num_channels=16, height=1024,
                width=1024, sample_bit_depth=8, quantizer_type=QuantizerType.UNIFORM,
                per_channel_quant_flag=False,
                quant_params=(QuantParams(min_value=0.0, max_value=1.0),),
                channel_permutation=None, packing_type=PackingType.CHANNEL_PER_PICTURE,
                tile_rows=1, tile_cols=1, pad_mode=PadMode.REPLICATE, pad_bottom=0,
                pad_right=0)
    base.update(kw)
    return LayerHeader(**base)


def layers_stream(count: int, level: int, **kw) -> bytes:
    """A stream of ``count`` layers, headers only (a dummy HEVC payload)."""
    headers = [layer_header(f"l{i}", **kw) for i in range(count)]
    return build_stream(StreamHeader(1, 0, 1, level, count),
                        [(h, MD5, PAYLOAD) for h in headers])


def empty_units(count: int, unit_type: int = 200) -> bytes:
    """``count`` empty skippable units of a reserved type: all the same bytes."""
    body = bytes([unit_type, 0x80]) + bytes(4)
    return (body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "big")) * count


def skippable_stream(count: int, level: int = 10) -> bytes:
    """A version 1.1 stream: one face, ``count`` empty skippable units before it."""
    head = build_stream(StreamHeader(1, 1, 1, level, 0), [], faces=[face(0, 1)])
    start = STREAM_HEADER_SIZE
    return head[:start] + empty_units(count) + head[start:]


def face(i: int, dim: int) -> Face:
    return Face(i, FaceBase(f"f{i}", Embedder.UNSPECIFIED, dim, 1.0, 0, (0,) * dim, 0, 0))


def refusal(data: bytes, **kw) -> ConformanceViolation:
    with pytest.raises(ConformanceViolation) as info:
        parse_stream(data, **kw)
    return info.value


# ---------------------------------------------------------------------------------
# the suite conforms to the new totals
# ---------------------------------------------------------------------------------

def test_every_conformance_stream_within_the_stream_totals():
    """Every stream of the suite, valid or not, stays within the stream totals of its level
    (max_decoded_bytes, max_units, max_embedding_values): the new limits make no conforming
    stream non-conforming and change no invalid stream's reason."""
    manifest = json.loads((CONFORMANCE / "manifest.json").read_text())
    checked = 0
    over = {"decoded_bytes_over_level", "units_over_level", "embedding_values_over_level"}
    for entry in manifest["streams"]:
        if entry.get("alteration") in over:     # break the totals on purpose (11.2-a)
            assert entry["expected_clause"] == "11.2", entry["name"]
            checked += 1
            continue
        data = (CONFORMANCE / entry["file"]).read_bytes()
        r = reader_module.Reader(data, Checker(collect=True), None)
        try:
            r.read_units(r.read_stream_header())
        except BitstreamError:
            pass
        level = r.level
        assert r.decoded_bytes <= level.max_decoded_bytes, entry["name"]
        assert r.embedding_values <= level.max_embedding_values, entry["name"]
        units = (2 * len(r.layers) + len(r.skipped) + len(r.face_bases)
                 + len(r.face_enhancements) + 1)
        assert units <= level.max_units, entry["name"]
        if entry["valid"]:
            parse_stream(data)      # conforming at its level: nothing raised
            assert not r.check.violations, entry["name"]
        checked += 1
    assert checked == len(manifest["streams"]) > 100


def test_level_totals_are_consistent():
    for lvl in LEVELS.values():
        # one layer of the largest size, in float32, fits the total
        assert 4 * lvl.max_layer_elements <= lvl.max_decoded_bytes
        assert lvl.max_embedding_dim <= lvl.max_embedding_values
        assert 2 * (lvl.max_layers + lvl.max_faces) + 1 <= lvl.max_units
    assert LEVELS[10].max_decoded_bytes <= LEVELS[20].max_decoded_bytes


# ---------------------------------------------------------------------------------
# the totals refuse the small-stream, large-output class (header only)
# ---------------------------------------------------------------------------------

def test_level10_refuses_a_stream_decoding_to_1_gib():
    # 16 layers of 1x16x1024x1024 float32: 64 MiB each, every per-layer limit of level 10
    # held, 1 GiB in all from a stream of a few hundred bytes
    data = layers_stream(16, 10)
    assert len(data) < 2000
    err = refusal(data)
    limit = LEVELS[10].max_decoded_bytes
    assert err.clause == "11.2" and err.path == f"layers[{limit // (64 << 20)}]"
    assert "decodes to at least" in err.message
    parse_stream(layers_stream(limit // (64 << 20), 10))   # up to the total: accepted


def test_level20_refuses_layers_beyond_the_total():
    # 1x256x1024x1024 float32 = 2^28 elements = 1 GiB per layer (level 20's largest)
    count = LEVELS[20].max_decoded_bytes // (1 << 30)
    kw = dict(num_channels=256)
    parse_stream(layers_stream(count, 20, **kw))
    err = refusal(layers_stream(count + 1, 20, **kw))
    assert err.clause == "11.2" and err.path == f"layers[{count}]"


def test_unit_count_limit():
    lvl = LEVELS[10]
    parse_stream(skippable_stream(lvl.max_units - 2))   # + face_base + end_of_stream
    err = refusal(skippable_stream(lvl.max_units - 1))
    assert err.clause == "11.2" and err.path == f"units[{lvl.max_units}]"


def test_embedding_values_limit():
    lvl = LEVELS[10]
    dim = lvl.max_embedding_dim
    count = lvl.max_embedding_values // dim
    faces = [face(i, dim) for i in range(count + 1)]
    data = build_stream(StreamHeader(1, 1, 1, 10, 0), [], faces=faces)
    err = refusal(data)
    assert err.clause == "11.2" and err.path == f"faces[{count}].base.embedding_dim"
    assert "embedding values in all" in err.message


# ---------------------------------------------------------------------------------
# a decoder's lower limits
# ---------------------------------------------------------------------------------

def test_capped_limits():
    capped = LEVELS[20].capped(LEVELS[10], max_decoded_bytes=1000)
    assert capped.level_idc == 10 and capped.max_decoded_bytes == 1000
    assert capped.max_layers == LEVELS[10].max_layers
    with pytest.raises(TypeError):
        LEVELS[10].capped(max_nothing=1)


def test_read_headers_with_lower_limits():
    data = layers_stream(1, 10)
    refcodec.read_headers(data)
    limits = LEVELS[10].capped(max_decoded_bytes=(64 << 20) - 1)
    with pytest.raises(ConformanceViolation) as info:
        refcodec.read_headers(data, limits=limits)
    assert info.value.clause == "11.2" and "decoder's limits" in info.value.message


@pytest.mark.parametrize("command", ["decode", "info", "verify"])
def test_cli_max_output_bytes(tmp_path, capsys, command):
    path = tmp_path / "s.vfc"
    path.write_bytes(layers_stream(2, 20))
    extra = ["-o", str(tmp_path / "o.npz")] if command == "decode" else []
    code = main([command, str(path), "--max-output-bytes", str(100 << 20)] + extra)
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "[11.2]" in err
    assert not (tmp_path / "o.npz").exists()


def test_cli_level(tmp_path, capsys):
    path = tmp_path / "s.vfc"
    path.write_bytes(layers_stream(1, 20, num_channels=256))   # 1 GiB: beyond level 10
    code = main(["info", str(path), "--level", "10"])
    err = capsys.readouterr().err
    assert code == 3 and "[11.2]" in err and err.count("\n") == 1
    assert main(["info", str(path), "--level", "20"]) == 0
    assert main(["info", str(path), "--level", "30"]) == 2
    assert main(["info", str(path), "--max-output-bytes", "0"]) == 2


# ---------------------------------------------------------------------------------
# per-unit work
# ---------------------------------------------------------------------------------

def test_skippable_units_read_without_the_general_path(monkeypatch):
    """A million empty skippable units: each is recorded by the reader's fast path, the
    general unit reader (read_frame) runs only for the known units, and the memory is that
    of the records (bounded per unit)."""
    count = 1_000_000
    data = skippable_stream(count)
    calls = {"read_frame": 0}
    original = reader_module.Reader.read_frame

    def counting(self, *args):
        calls["read_frame"] += 1
        return original(self, *args)

    monkeypatch.setattr(reader_module.Reader, "read_frame", counting)
    limits = dataclasses.replace(LEVELS[10], max_units=count + 2)
    tracemalloc.start()
    stream = parse_stream(data, limits=limits)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(stream.skipped_units) == count
    assert calls["read_frame"] == 2          # the face_base unit and end_of_stream
    assert peak < 400 * count, peak          # the SkippedUnit records and their list
    # at the stream's own level the count is refused at once
    calls["read_frame"] = 0
    assert refusal(data).path == f"units[{LEVELS[10].max_units}]"
    assert calls["read_frame"] == 0


def _read_levels_bitstring(payload: bytes, dim: int, k: int):
    """The reader of embedding_payload as it was (bitstring), the reference of the new one."""
    bits = Bits.from_bytes(bytes(payload))
    total = len(bits)
    r = BitReader(bits)
    levels = []
    for i in range(dim):
        start = r.pos
        one = bits.find("0b1", start=start)
        if one is None:
            raise entropy.EmbeddingCodeError(
                f"embedding_payload ends inside the code of level {i} of {dim}", start)
        zeros = one - start
        if zeros > entropy.MAX_PREFIX_ZEROS:
            raise entropy.EmbeddingCodeError(
                f"the code of level {i} has {zeros} leading zero bits, more than the "
                f"{entropy.MAX_PREFIX_ZEROS} a level of magnitude up to "
                f"{entropy.MAX_ABS_LEVEL} needs", start)
        try:
            u = r.read_value("ue") << k
            if k:
                u |= r.read_value(f"u{k}")
        except ReadError:
            raise entropy.EmbeddingCodeError(
                f"embedding_payload ends inside the code of level {i} of {dim}",
                start) from None
        v = entropy.signed_level(u)
        if abs(v) > entropy.MAX_ABS_LEVEL:
            raise entropy.EmbeddingCodeError(f"level {i} is {v}; |level| shall be at most "
                                             f"{entropy.MAX_ABS_LEVEL}", start)
        levels.append(v)
    stop = r.pos
    if stop >= total or not bits[stop]:
        raise entropy.EmbeddingCodeError(
            "embedding_payload shall end with a stop bit equal to 1 after the last level"
            + (" (none left)" if stop >= total else ""), stop)
    rest = bits[stop + 1:]
    if len(rest) >= 8 or rest.any(True):
        raise entropy.EmbeddingCodeError(
            "after the stop bit, embedding_payload shall hold only the zero bits up to the "
            "next byte boundary", stop + 1)
    return tuple(levels)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except entropy.EmbeddingCodeError as exc:
        return ("error", exc.message, exc.bit, exc.clause)


def test_read_levels_matches_the_bitstring_reader():
    rng = random.Random(14)
    for _ in range(3000):
        k = rng.choice([0, 0, 1, 2, 5, 24])
        dim = rng.randint(1, 16)
        if rng.random() < 0.6:
            levels = [rng.choice([0, 0, 1, -1, rng.randint(-50, 50),
                                  rng.randint(-entropy.MAX_ABS_LEVEL, entropy.MAX_ABS_LEVEL)])
                      for _ in range(dim)]
            payload = bytearray(entropy.write_levels(levels, k))
            if rng.random() < 0.5:
                j = rng.randrange(len(payload))
                payload[j] ^= 1 << rng.randrange(8)
            if rng.random() < 0.2:
                payload = payload[:rng.randrange(len(payload) + 1)]
            if rng.random() < 0.2:
                payload += bytes([rng.randrange(256)])
            want = dim + rng.choice([0, 0, 1, -1]) if dim > 1 else dim
        else:
            payload = bytes(rng.choice([0, 255, 128, 1, rng.randrange(256)])
                            for _ in range(rng.randint(0, 10)))
            want = dim
        payload = bytes(payload)
        assert _outcome(entropy.read_levels, payload, want, k) == \
            _outcome(_read_levels_bitstring, payload, want, k), (payload.hex(), want, k)


def _write_levels_bitstring(levels, k: int) -> bytes:
    """The writer of embedding_payload as it was (bitstring), the reference of the new one."""
    parts = []
    for v in levels:
        u = entropy.code_number(int(v))
        parts.append(Bits.from_dtype("ue", u >> k))
        if k:
            parts.append(Bits.from_dtype(f"u{k}", u & ((1 << k) - 1)))
    nbits = sum(len(p) for p in parts) + 1
    parts.append(Bits.from_string("0b1"))
    if nbits % 8:
        parts.append(Bits.from_zeros(-nbits % 8))
    return Bits.from_joined(parts).to_bytes()


def test_write_levels_matches_the_bitstring_writer():
    rng = random.Random(9)
    for _ in range(2000):
        k = rng.choice([0, 0, 1, 2, 7, 24])
        levels = [rng.choice([0, 0, 1, -1, rng.randint(-300, 300),
                              rng.randint(-entropy.MAX_ABS_LEVEL, entropy.MAX_ABS_LEVEL)])
                  for _ in range(rng.randint(0, 20))]
        payload = entropy.write_levels(levels, k)
        assert payload == _write_levels_bitstring(levels, k)
        assert len(payload) * 8 == entropy.payload_bits(levels, k)
    with pytest.raises(ValueError):
        entropy.write_levels([entropy.MAX_ABS_LEVEL + 1], 0)
    with pytest.raises(ValueError):
        entropy.write_levels([0], entropy.MAX_EG_ORDER + 1)


def test_read_levels_large_embedding():
    levels = [(-1) ** i * (i % 7) for i in range(65535)]
    for k in (0, 3):
        assert entropy.read_levels(entropy.write_levels(levels, k), len(levels), k) == \
            tuple(levels)


# ---------------------------------------------------------------------------------
# reconstruct: NHWC bit-identical to the NCHW tensor transposed, and its peak memory
# ---------------------------------------------------------------------------------

def _reconstruct_before(header, pictures):
    """reconstruct as it was: dequantize N x C x H x W, then a transposed copy for NHWC."""
    samples = packing.unpack(pictures, packing.Layout.of(header))
    out = quant.dequantize(samples, int(header.quantizer_type), list(header.quant_params),
                           header.sample_bit_depth, NUMPY_DTYPES[header.source_dtype])
    if header.source_layout == SourceLayout.NHWC:
        out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    return out


def _random_header(rng, layout, dtype, qtype, per_channel) -> LayerHeader:
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    h, w = int(rng.integers(1, 30)), int(rng.integers(1, 200))
    depth = int(rng.choice([8, 10, 12]))

    def params():
        if qtype == QuantizerType.INTEGER:
            return QuantParams(offset_value=float(rng.integers(-100, 100)))
        lo = float(np.float32(rng.normal() * 10))
        hi = float(np.float32(lo + abs(rng.normal()) * rng.choice([1e-3, 1.0, 100.0])))
        return QuantParams(min_value=lo, max_value=hi)

    tiled = bool(rng.integers(0, 2)) and n * c > 1
    return LayerHeader(
        layer_id="x", source_layout=layout, source_dtype=dtype, batch_size=n,
        num_channels=c, height=h, width=w, sample_bit_depth=depth, quantizer_type=qtype,
        per_channel_quant_flag=per_channel,
        quant_params=tuple(params() for _ in range(c if per_channel else 1)),
        channel_permutation=tuple(rng.permutation(c).tolist()) if rng.integers(0, 2)
        else None,
        packing_type=PackingType.TILED if tiled else PackingType.CHANNEL_PER_PICTURE,
        tile_rows=1, tile_cols=2 if tiled else 1, pad_mode=PadMode.ZERO,
        pad_bottom=-h % 8, pad_right=-w % 8)


@pytest.mark.parametrize("layout", list(SourceLayout))
@pytest.mark.parametrize("dtype", list(SourceDtype))
@pytest.mark.parametrize("qtype", list(QuantizerType))
def test_reconstruct_bit_identical(layout, dtype, qtype):
    rng = np.random.default_rng(int(layout) * 100 + int(dtype) * 10 + int(qtype))
    for trial in range(12):
        h = _random_header(rng, layout, dtype, qtype, per_channel=bool(trial % 2))
        sample_dtype = np.uint8 if h.sample_bit_depth == 8 else np.uint16
        pictures = rng.integers(0, 1 << h.sample_bit_depth,
                                size=(h.num_pictures, h.picture_height, h.picture_width))
        pictures = pictures.astype(sample_dtype)
        want, got = _reconstruct_before(h, pictures), reconstruct(h, pictures)
        assert got.shape == want.shape == h.shape and got.dtype == want.dtype
        assert got.flags.c_contiguous
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [SourceDtype.FLOAT32, SourceDtype.BFLOAT16])
@pytest.mark.parametrize("per_channel", [False, True])
def test_reconstruct_nhwc_peak_memory(dtype, per_channel):
    """NHWC: the output plus a fixed block, no N x C x H x W tensor and transposed copy."""
    c = 64
    h = layer_header(source_layout=SourceLayout.NHWC, source_dtype=dtype, num_channels=c,
                     height=128, width=128, per_channel_quant_flag=per_channel,
                     quant_params=(QuantParams(min_value=0.0, max_value=1.0),)
                     * (c if per_channel else 1))
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, size=(h.num_pictures, 128, 128), dtype=np.uint8)
    out_bytes = h.num_elements * NUMPY_DTYPES[dtype].itemsize
    fixed = 2 << 20
    tracemalloc.start()
    out = reconstruct(h, pictures)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.nbytes == out_bytes
    assert peak <= out_bytes + fixed, (peak, out_bytes)      # well within 2x + fixed
    assert out.tobytes() == _reconstruct_before(h, pictures).tobytes()


def test_decode_payload_over_one_parse_chunk():
    """A layer whose HEVC payload is more than the PARSE_CHUNK bytes iter_frames gives
    FFmpeg's parser at a time decodes exactly (lossless, integer quantizer)."""
    from refcodec.hevc import pyav
    assert pyav.PARSE_CHUNK == 1 << 20
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4096, size=(1, 48, 128, 128)).astype(np.float32)
    cfg = refcodec.EncoderConfig(quantizer="integer", bit_depth=12, lossless=True,
                                 preset="ultrafast")
    data = refcodec.encode(x, cfg)
    assert len(refcodec.read_headers(data).layers[0].hevc_payload) > 1 << 20
    assert np.array_equal(refcodec.decode(data)["layer0"], x)


def test_bfloat16_itemsize_counted():
    data = layers_stream(1, 10, source_dtype=SourceDtype.BFLOAT16)
    limits = LEVELS[10].capped(max_decoded_bytes=(32 << 20))
    parse_stream(data, limits=limits)                       # 2 bytes per element
    assert ml_dtypes.bfloat16(1).itemsize == 2
    assert refusal(data, limits=LEVELS[10].capped(max_decoded_bytes=(32 << 20) - 1))


@pytest.mark.parametrize("dtype", [SourceDtype.FLOAT16, SourceDtype.BFLOAT16])
@pytest.mark.parametrize("qtype", list(QuantizerType))
def test_reconstruct_in_place_bit_identical(dtype, qtype):
    """overwrite=True: a 2-byte tensor dequantized into the pictures' memory has the values
    of the ordinary reconstruct; ineligible headers fall back to it."""
    rng = np.random.default_rng(int(dtype) * 10 + int(qtype))
    for trial in range(16):
        h = _random_header(rng, SourceLayout(trial % 2), dtype, qtype,
                           per_channel=bool(trial // 2 % 2))
        if trial % 4 < 2:     # mostly eligible: no tiling, padding or permutation
            h = dataclasses.replace(h, packing_type=PackingType.CHANNEL_PER_PICTURE,
                                    tile_cols=1, channel_permutation=None,
                                    height=8 * (1 + h.height // 8),
                                    width=8 * (1 + h.width // 8), pad_bottom=0, pad_right=0,
                                    sample_bit_depth=12)
        sample_dtype = np.uint8 if h.sample_bit_depth == 8 else np.uint16
        pictures = rng.integers(0, 1 << h.sample_bit_depth,
                                size=(h.num_pictures, h.picture_height, h.picture_width))
        pictures = pictures.astype(sample_dtype)
        want = reconstruct(h, pictures)
        got = reconstruct(h, pictures.copy(), overwrite=True)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert got.tobytes() == want.tobytes()


def test_reconstruct_in_place_peak_memory():
    h = layer_header(source_dtype=SourceDtype.FLOAT16, num_channels=64, height=128,
                     width=128, sample_bit_depth=12)
    pictures = np.random.default_rng(1).integers(0, 4096, size=(64, 128, 128),
                                                 dtype=np.uint16)
    want = reconstruct(h, pictures)
    tracemalloc.start()
    got = reconstruct(h, pictures, overwrite=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got.tobytes() == want.tobytes()
    assert peak < 1 << 20, peak      # a block of indices, not a tensor


def test_decode_layer_2_byte_12_bit():
    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal((1, 8, 32, 32)), 0).astype(np.float16)
    cfg = refcodec.EncoderConfig(bit_depth=12, lossless=True, preset="ultrafast",
                                 quantizer="uniform")
    data = refcodec.encode(x, cfg)
    stream = refcodec.read_headers(data)
    from refcodec.codec import decode_samples
    want = reconstruct(stream.layers[0].header, decode_samples(stream.layers[0]))
    got = refcodec.decode(data)["layer0"]
    assert got.dtype == np.float16 and got.tobytes() == want.tobytes()
