"""Face units (format 1.1, clause 13): embedding coding, unit syntax and checks, residual
normalisation, the face encoder/decoder with the predictor-free control, and base-layer-only
decoding.  The predictor network itself is tested in test_face_predictor.py."""

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcodec
from refcodec import bitstream, syntax
from refcodec.bitstream import build_stream, parse_stream
from refcodec.enums import LEVELS, Embedder, PredictorType, TextureCodec, UnitType
from refcodec.errors import (BitstreamError, ConformanceViolation, EncoderInputError,
                             SyntaxViolation, UnsupportedFeature)
from refcodec.face import entropy
from refcodec.face.codec import (FaceConfig, FaceInput, decode_faces, denormalize_texture,
                                 normalize_residual, reconstruct_image)
from refcodec.records import Face, FaceBase, FaceEnhancement, StreamHeader
from test_bitstream import recrc, recrc_all

SHA = bytes(range(32))


def base(face_id="face0", levels=(3, -1, 0, 7), step=0.125, order=1, **kw) -> FaceBase:
    fields = dict(face_id=face_id, embedder_idc=Embedder.UNSPECIFIED,
                  embedding_dim=len(levels), embedding_step=step, eg_order=order,
                  levels=tuple(levels), offset=0, payload_offset=0)
    fields.update(kw)
    return FaceBase(**fields)


def enhancement(face_id="face0", **kw) -> FaceEnhancement:
    fields = dict(face_id=face_id, image_height=20, image_width=24, image_channels=3,
                  predictor_type=PredictorType.NETWORK, predictor_id="some-net",
                  predictor_sha256=SHA[::-1], residual_min=-40, residual_max=90,
                  texture_codec=TextureCodec.JPEG, texture_md5=bytes(16),
                  texture_payload=b"\xff\xd8 texture bytes", offset=0, payload_offset=0)
    fields.update(kw)
    return FaceEnhancement(**fields)


def face_stream(*faces, num_layers=0, minor=1, layers=()):
    faces = faces or (Face(0, base(), enhancement()),)
    return build_stream(StreamHeader(1, minor, 1, 10, num_layers), list(layers),
                        faces=list(faces))


def error_of(data, **kw) -> BitstreamError:
    with pytest.raises(BitstreamError) as info:
        parse_stream(data, **kw)
    return info.value


def units(data):
    """(unit_type, position, payload position) of each unit."""
    pos, out = syntax.STREAM_HEADER_SIZE, []
    while pos < len(data):
        length = int.from_bytes(data[pos + 2:pos + 6], "big")
        out.append((data[pos], pos, pos + syntax.UNIT_PREFIX))
        pos += syntax.UNIT_OVERHEAD + length
    return out


def patch(data: bytes, unit_type: int, field: str, value: bytes, struct=None) -> bytes:
    """Overwrite ``field`` of the first unit of ``unit_type`` and fix its CRC."""
    _, pos, payload_pos = next(u for u in units(data) if u[0] == unit_type)
    struct = struct or {UnitType.FACE_BASE: syntax.face_base,
                        UnitType.FACE_ENHANCEMENT: syntax.face_enhancement}[unit_type]
    length = int.from_bytes(data[pos + 2:pos + 6], "big")
    parsed = struct.parse(data[payload_pos:payload_pos + length])
    at = payload_pos + bitstream.field_offset(struct, parsed, field)
    return recrc(data[:at] + value + data[at + len(value):], pos)


# ------------------------------------------------------------------------------------
# Embedding coding (clause 13.3.6 / 13.5)
# ------------------------------------------------------------------------------------

def test_code_numbers_are_a_bijection():
    values = range(-1000, 1001)
    codes = [entropy.code_number(v) for v in values]
    assert sorted(codes) == list(range(2001))
    assert all(entropy.signed_level(entropy.code_number(v)) == v for v in values)
    assert [entropy.code_number(v) for v in (0, 1, -1, 2, -2)] == [0, 1, 2, 3, 4]


def test_exp_golomb_vectors():
    # ue(0) = 1, ue(1) = 010, ue(2) = 011; order 1 adds one low bit of u.
    assert entropy.write_levels([0], 0) == bytes([0b11000000])          # 1 | stop 1
    assert entropy.write_levels([1, -1], 0) == bytes([0b01001110])      # 010 011 1
    assert entropy.write_levels([1], 1) == bytes([0b11100000])          # u=1: ue(0)=1, 1 | stop
    assert entropy.write_levels([-2], 2) == bytes([0b01000100])         # u=4: ue(1)=010, 00, 1


@given(st.lists(st.integers(-entropy.MAX_ABS_LEVEL, entropy.MAX_ABS_LEVEL), min_size=1,
                max_size=200), st.integers(0, entropy.MAX_EG_ORDER))
@settings(max_examples=200)
def test_levels_round_trip(levels, k):
    payload = entropy.write_levels(levels, k)
    assert len(payload) * 8 == entropy.payload_bits(levels, k)
    assert entropy.read_levels(payload, len(levels), k) == tuple(levels)


@given(st.lists(st.integers(-300, 300), min_size=1, max_size=64))
def test_best_order_is_the_shortest(levels):
    k = entropy.best_order(levels)
    bits = [len(entropy.write_levels(levels, j)) for j in range(entropy.MAX_EG_ORDER + 1)]
    assert len(entropy.write_levels(levels, k)) == min(bits)


@given(st.binary(max_size=64), st.integers(1, 40), st.integers(0, entropy.MAX_EG_ORDER))
@settings(max_examples=300)
def test_arbitrary_payload_raises_only_embedding_code_error(data, dim, k):
    try:
        levels = entropy.read_levels(data, dim, k)
    except entropy.EmbeddingCodeError as exc:
        assert 0 <= exc.bit <= 8 * len(data)
    else:   # then it is the one valid encoding of these levels
        assert entropy.write_levels(levels, k) == data


def test_payload_errors():
    good = entropy.write_levels([5, -3, 0], 1)
    with pytest.raises(entropy.EmbeddingCodeError, match="stop bit"):
        entropy.read_levels(good, 4, 1)      # the stop bit reads as a 4th level
    with pytest.raises(entropy.EmbeddingCodeError, match="ends inside"):
        entropy.read_levels(good, 9, 1)
    with pytest.raises(entropy.EmbeddingCodeError, match="only the zero bits"):
        entropy.read_levels(good + b"\x00", 3, 1)
    with pytest.raises(entropy.EmbeddingCodeError, match="leading zero bits"):
        entropy.read_levels(bytes(8) + b"\xff", 1, 0)
    # a level one beyond the limit is written with a 25-zero prefix: refused by value
    u = entropy.code_number(entropy.MAX_ABS_LEVEL + 1)
    big = "0" * ((u + 1).bit_length() - 1) + format(u + 1, "b") + "1"
    big += "0" * (-len(big) % 8)
    with pytest.raises(entropy.EmbeddingCodeError, match="at most"):
        entropy.read_levels(int(big, 2).to_bytes(len(big) // 8, "big"), 1, 0)


@given(st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=1, max_size=64),
       st.sampled_from([2.0 ** -10, 1 / 256, 0.01, 0.3]))
def test_quantizer_error_and_exact_dequantization(values, step):
    step = entropy.as_step(step)
    e = np.asarray(values, np.float32)
    levels = entropy.quantize(e, step)
    out = entropy.dequantize(levels, step)
    assert out.dtype == np.float32
    for q, x in zip(levels, out):   # level * step exactly, then rounded once to binary32
        assert float(x) == float(np.float32(float(Fraction(int(q)) * Fraction(step))))
    assert np.all(np.abs(out.astype(np.float64) - e) <= step / 2 * (1 + 1e-6) + 1e-7)


# ------------------------------------------------------------------------------------
# Residual normalisation (clause 13.6.2)
# ------------------------------------------------------------------------------------

@given(st.lists(st.integers(-255, 255), min_size=1, max_size=300))
def test_residual_normalisation_error_at_most_one(values):
    r = np.asarray(values)
    tex, lo, hi = normalize_residual(r)
    assert tex.dtype == np.uint8 and (lo, hi) == (r.min(), r.max())
    back = denormalize_texture(tex, lo, hi)
    assert np.abs(back - r).max() <= 1
    assert back[r == lo].tolist() == [lo] * int((r == lo).sum())
    assert back[r == hi].tolist() == [hi] * int((r == hi).sum())
    if hi - lo <= 255:
        assert np.array_equal(back, r)     # the texture has room for every value


def test_reconstruction_clips():
    pred = np.array([[[250]], [[3]]], np.uint8)
    assert reconstruct_image(pred, np.array([[[10]], [[-9]]])).ravel().tolist() == [255, 0]


# ------------------------------------------------------------------------------------
# Syntax round trip and checks
# ------------------------------------------------------------------------------------

ids = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
              min_size=1, max_size=20)


@st.composite
def faces(draw):
    n = draw(st.integers(1, 4))
    names = draw(st.lists(ids, min_size=n, max_size=n, unique=True))
    out = []
    for i, name in enumerate(names):
        levels = draw(st.lists(st.integers(-5000, 5000), min_size=1, max_size=130))
        step = entropy.as_step(draw(st.sampled_from([1e-3, 0.5, 3.0, 2.0 ** -20])))
        b = base(name, levels, step=step,
                 order=draw(st.integers(0, 6)),
                 embedder_idc=draw(st.sampled_from(list(Embedder) if len(levels) == 128
                                                   else [Embedder.UNSPECIFIED])))
        enh = None
        if draw(st.booleans()):
            ptype = draw(st.sampled_from(list(PredictorType)))
            lo = draw(st.integers(-255, 255))
            enh = enhancement(
                name, image_height=draw(st.integers(1, 300)),
                image_width=draw(st.integers(1, 300)), image_channels=draw(st.sampled_from([1, 3])),
                predictor_type=ptype,
                predictor_id=draw(ids) if ptype == PredictorType.NETWORK else None,
                predictor_sha256=(draw(st.binary(min_size=32, max_size=32))
                                  if ptype == PredictorType.NETWORK else None),
                residual_min=lo, residual_max=draw(st.integers(lo, 255)),
                texture_codec=draw(st.sampled_from(list(TextureCodec))),
                texture_md5=draw(st.binary(min_size=16, max_size=16)),
                texture_payload=draw(st.binary(min_size=1, max_size=50)))
        out.append(Face(i, b, enh))
    return out


def _strip(record):
    return dataclasses.replace(record, offset=0, payload_offset=0) if record else None


@given(faces())
@settings(max_examples=150)
def test_face_units_round_trip(fs):
    s = parse_stream(face_stream(*fs))
    assert s.header.num_layers == 0 and len(s.faces) == len(fs)
    for got, want in zip(s.faces, fs):
        assert _strip(got.base) == want.base
        assert _strip(got.enhancement) == want.enhancement
        if got.enhancement:
            assert got.enhancement.offset > got.base.offset


@given(faces(), st.data())
@settings(max_examples=150)
def test_mutated_face_streams_raise_only_bitstream_errors(fs, data):
    raw = bytearray(face_stream(*fs))
    pos = data.draw(st.integers(syntax.STREAM_HEADER_SIZE, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    for candidate in (bytes(raw), recrc_all(bytes(raw))):
        try:
            parse_stream(candidate)
        except BitstreamError:
            pass


def test_face_and_layer_streams_keep_their_versions():
    x = np.arange(2 * 16 * 16, dtype=np.float32).reshape(1, 2, 16, 16)
    plain = refcodec.encode(x)
    assert refcodec.read_headers(plain).header.version_minor == 0
    face = FaceInput(np.zeros((16, 16, 1), np.uint8), np.zeros(4, np.float32))
    data = refcodec.encode(x, faces=[(face, FaceConfig(enhancement="none"))])
    s = refcodec.read_headers(data)
    assert s.header.version_minor == 1 and len(s.layers) == 1 and len(s.faces) == 1
    assert np.array_equal(refcodec.decode(data)["layer0"], refcodec.decode(plain)["layer0"])


@pytest.mark.parametrize("change, clause, cls", [
    (lambda d: patch(d, UnitType.FACE_BASE, "eg_order", b"\x19"), "13.3.5",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_BASE, "embedding_step", b"\x00\x00\x00\x00"), "13.3.4",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_BASE, "embedding_step", b"\x7f\xc0\x00\x00"), "13.3.4",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_BASE, "embedding_dim", b"\x00\x00"), "13.3.3",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_BASE, "embedding_dim", b"\x00\x05"), "13.3.6",
     SyntaxViolation),
    (lambda d: patch(d, UnitType.FACE_BASE, "embedding_dim", b"\x10\x01"), "11.2",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "image_channels", b"\x02"), "13.4.2",
     UnsupportedFeature),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "image_height", b"\x00\x00"), "13.4.2",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "image_height", b"\x10\x01"), "11.2",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "predictor_type", b"\x07"), "13.4.3",
     UnsupportedFeature),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "residual_min", b"\x00\x64"), "13.4.5",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "residual_max", b"\x01\x00"), "13.4.5",
     ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "texture_codec", b"\x03"), "13.4.6",
     UnsupportedFeature),
    (lambda d: patch(d, UnitType.FACE_ENHANCEMENT, "face_id", b"fac1"), "13.4.1",
     ConformanceViolation),
    (lambda d: face_stream(Face(0, base()), Face(1, base())), "13.3.1", ConformanceViolation),
    (lambda d: face_stream(Face(0, base(face_id="\x01")),), "13.3.1", ConformanceViolation),
    (lambda d: patch(d, UnitType.FACE_BASE, "embedder_idc", b"\x02"), "13.3.2",
     UnsupportedFeature),
    (lambda d: face_stream(Face(0, base(), enhancement(texture_payload=b""))), "13.4.8",
     ConformanceViolation),
    (lambda d: face_stream(*[Face(i, base(f"f{i}")) for i in range(17)]), "11.2",
     ConformanceViolation),
    (lambda d: face_stream(Face(0, base(embedder_idc=Embedder.DLIB_RESNET_V1)),), "13.3.2",
     ConformanceViolation),
    (lambda d: face_stream(Face(0, base(levels=(3, 1 - (1 << 24)), step=2.0 ** 105)),), "13.5",
     ConformanceViolation),
    (lambda d: build_stream(StreamHeader(1, 1, 1, 10, 0), []), "8.1.5", ConformanceViolation),
])
def test_face_unit_violations(change, clause, cls):
    err = error_of(change(face_stream()))
    assert (err.clause, type(err)) == (clause, cls), str(err)
    assert err.offset is not None and err.path


def test_face_unit_types_are_reserved_in_a_version_1_0_stream():
    # a 1.0 stream may carry skippable units of types reserved in 1.0 (clause 8.2.1): a 1.1
    # decoder skips them there, as a 1.0 decoder does
    checker = bitstream.Checker(collect=True)
    s = parse_stream(face_stream(minor=0), checker=checker)
    assert [v.clause for v in checker.violations] == ["8.1.5"]      # num_layers 0 in 1.0
    assert s.faces == () and [u.unit_type for u in s.skipped_units] == [3, 4]
    raw = bytearray(face_stream(minor=0))
    raw[units(bytes(raw))[0][1] + 1] = 0           # face_base not skippable: unknown, critical
    checker = bitstream.Checker(collect=True)
    parse_stream(recrc_all(bytes(raw)), checker=checker)
    assert [(v.clause, type(v)) for v in checker.violations] == [
        ("8.1.5", ConformanceViolation), ("8.2.1", UnsupportedFeature)]


def test_face_unit_violation_messages_and_positions():
    data = face_stream()
    err = error_of(patch(data, UnitType.FACE_BASE, "eg_order", b"\x19"))
    _, pos, payload_pos = units(data)[0]
    assert str(err) == (f"[13.3.5] eg_order shall be at most 24, got 25 "
                        f"(byte {payload_pos + 1 + 5 + 1 + 2 + 4}, "
                        f"faces[0].base.eg_order)")
    err = error_of(patch(data, UnitType.FACE_ENHANCEMENT, "texture_codec", b"\x03"))
    assert err.path == "faces[0].enhancement.texture_codec"


def test_face_units_shall_be_skippable_and_outside_a_layer():
    data = bytearray(face_stream())
    _, pos, _ = units(bytes(data))[0]
    data[pos + 1] = 0
    err = error_of(recrc_all(bytes(data)))
    assert err.clause == "8.2.2" and "shall be 1" in str(err)


def test_enhancement_shall_follow_its_base_and_be_unique():
    b, e = base(), enhancement()
    sh = StreamHeader(1, 1, 1, 10, 0)
    swapped = (bitstream.build_stream_header(sh)
               + bitstream.build_unit(UnitType.FACE_ENHANCEMENT,
                                      bitstream.build_face_enhancement(e), True)
               + bitstream.build_unit(UnitType.FACE_BASE, bitstream.build_face_base(b), True)
               + bitstream.build_unit(UnitType.END_OF_STREAM, b""))
    assert error_of(swapped).clause == "13.4.1"
    twice = (bitstream.build_stream_header(sh)
             + bitstream.build_unit(UnitType.FACE_BASE, bitstream.build_face_base(b), True)
             + 2 * bitstream.build_unit(UnitType.FACE_ENHANCEMENT,
                                        bitstream.build_face_enhancement(e), True)
             + bitstream.build_unit(UnitType.END_OF_STREAM, b""))
    err = error_of(twice)
    assert err.clause == "13.4.1" and "at most one" in str(err)


def test_level_limits_for_faces():
    assert LEVELS[10].max_faces == 16 and LEVELS[10].max_embedding_dim == 4096
    s = parse_stream(face_stream(*[Face(i, base(f"f{i}")) for i in range(16)]))
    assert len(s.faces) == 16


# ------------------------------------------------------------------------------------
# Encoder and decoder, with the predictor-free control (predictor "none")
# ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def face_input():
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:48]
    img = np.stack([(x * 5) % 256, (y * 6) % 256, (x + y) * 2 % 256], -1)
    img = np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    return FaceInput(img, (rng.normal(size=128) * 0.1).astype(np.float32))


@pytest.mark.hevc
@pytest.mark.parametrize("enh", ["hevc", "jpeg", "jpeg2000"])
def test_face_round_trip_without_predictor(face_input, enh):
    from refcodec.face import texture
    cfg = FaceConfig(enhancement=enh, predictor="none", qp=4, quality=95, rate=4.0)
    data = refcodec.encode(None, faces=[(face_input, cfg)])
    out = decode_faces(data)["face0"]
    assert out.warnings == ()
    step = entropy.as_step(cfg.embedding_step)
    assert np.abs(out.embedding - face_input.embedding).max() <= step / 2 + 1e-7
    # without a predictor the texture is the min-max normalised image: the face's error is
    # the texture codec's error on that texture, scaled by range/255, plus at most 1
    enh_rec = parse_stream(data).faces[0].enhancement
    tex, lo, hi = normalize_residual(face_input.image.astype(np.int32))
    codec = TextureCodec[enh.upper()]
    direct = texture.decode_texture(
        texture.encode_texture(tex, codec, qp=cfg.qp, quality=cfg.quality, rate=cfg.rate),
        codec, *tex.shape, offset=0, path="t")
    err = np.abs(out.image.astype(int) - face_input.image)
    assert (enh_rec.residual_min, enh_rec.residual_max) == (lo, hi)
    assert np.all(err <= np.abs(direct.astype(int) - tex) * (hi - lo) / 255 + 1)
    assert refcodec.encode(None, faces=[(face_input, cfg)]) == data     # deterministic


@pytest.mark.hevc
def test_base_layer_only_decoding_needs_no_texture(face_input):
    data = refcodec.encode(None, faces=[(face_input, FaceConfig(predictor="none"))])
    s = parse_stream(data)
    enh = s.faces[0].enhancement
    # break the texture (keeping the container valid): the base layer still decodes
    broken = bytearray(data)
    broken[enh.payload_offset + len(enh.texture_payload) // 2] ^= 0xFF   # slice data
    broken = recrc_all(bytes(broken))
    only_base = decode_faces(broken, images=False)["face0"]
    assert only_base.image is None
    assert np.array_equal(only_base.embedding, decode_faces(data, images=False)["face0"].embedding)
    with pytest.raises(BitstreamError):
        decode_faces(broken)


@pytest.mark.hevc
def test_texture_md5_mismatch(face_input):
    for enh, raises in (("hevc", True), ("jpeg", False)):
        data = refcodec.encode(None, faces=[(face_input, FaceConfig(enhancement=enh,
                                                                    predictor="none"))])
        bad = patch(data, UnitType.FACE_ENHANCEMENT, "texture_md5", bytes(16))
        if raises:
            with pytest.raises(ConformanceViolation) as info:
                decode_faces(bad)
            assert info.value.clause == "13.4.7"
        else:
            out = decode_faces(bad)["face0"]
            assert out.image is not None and "13.4.7" in out.warnings[0]
        from refcodec.verify import verify
        report = verify(bad)
        assert report.faces[0].texture_md5_match is False
        assert report.conformant is (not raises)


def test_unknown_predictor_refused_only_for_the_image(face_input):
    payload = entropy.write_levels([1, 2], 0)
    del payload
    data = face_stream(Face(0, base(), enhancement(predictor_id="not-shipped")))
    assert decode_faces(data, images=False)["face0"].image is None
    with pytest.raises(UnsupportedFeature) as info:
        decode_faces(data)
    assert info.value.clause == "13.4.4" and "not-shipped" in str(info.value)


def test_encoder_input_errors(face_input):
    with pytest.raises(EncoderInputError):
        FaceInput(np.zeros((4, 4, 2), np.uint8), np.zeros(3, np.float32))
    with pytest.raises(EncoderInputError, match="NaN"):
        FaceInput(np.zeros((4, 4, 3), np.uint8), np.array([np.nan], np.float32))
    with pytest.raises(EncoderInputError):
        FaceConfig(embedding_step=0)
    with pytest.raises(EncoderInputError):
        FaceConfig(enhancement="png")
    with pytest.raises(EncoderInputError, match="no predictor"):
        refcodec.encode(None, faces=[(face_input, FaceConfig(predictor="missing-net"))])
    with pytest.raises(EncoderInputError, match="larger step"):
        refcodec.encode(None, faces=[(face_input, FaceConfig(embedding_step=1e-12))])
    with pytest.raises(EncoderInputError, match="unique"):
        refcodec.encode(None, faces=[(face_input, FaceConfig(enhancement="none"))] * 2)
    with pytest.raises(EncoderInputError, match="nothing to encode"):
        refcodec.encode(None)


# ------------------------------------------------------------------------------------
# With a predictor network (a small random one, shipped for the test only)
# ------------------------------------------------------------------------------------

@pytest.fixture
def small_predictor(tmp_path, monkeypatch):
    """128-d -> 24 x 24 x 3 random deconvolution predictor in a temporary weights folder."""
    from refcodec.face import predictor
    rng = np.random.default_rng(11)

    def layer(c_in, c_out, k, stride, activation):
        return predictor.DeconvLayer(
            weight=(rng.standard_normal((c_in, c_out, k, k)) * 0.3).astype(np.float32),
            bias=np.zeros(c_out, np.float32), stride=stride, padding=0, activation=activation)
    weights = tmp_path / "weights"
    weights.mkdir()
    predictor.save_predictor_file(weights / "small-net.bin", "small-net",
                                  [layer(128, 4, 6, 1, "relu"), layer(4, 3, 4, 4, "tanh")],
                                  height=24, width=24, channels=3, crop_top=0, crop_left=0)
    monkeypatch.setattr(predictor, "WEIGHTS_DIR", weights)
    predictor.shipped_predictors.cache_clear()
    yield predictor.shipped_predictors()["small-net"]
    predictor.shipped_predictors.cache_clear()


@pytest.mark.hevc
def test_round_trip_with_a_predictor(small_predictor):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    face = FaceInput(img, (rng.normal(size=128) * 0.1).astype(np.float32))
    cfg = FaceConfig(predictor="small-net", enhancement="hevc", qp=0)
    data = refcodec.encode(None, faces=[(face, cfg)])
    enh = parse_stream(data).faces[0].enhancement
    assert (enh.predictor_id, enh.predictor_sha256) == ("small-net", small_predictor.sha256)
    out = decode_faces(data)["face0"]
    pred = small_predictor.predict(out.embedding)      # from the DECODED embedding
    residual = img.astype(int) - pred
    assert (enh.residual_min, enh.residual_max) == (residual.min(), residual.max())
    assert np.abs(out.image.astype(int) - img).max() <= 2    # QP 0 + normalisation rounding
    from refcodec.verify import verify
    report = verify(data)
    assert report.conformant and report.faces[0].predictor_available is True


def test_a_known_predictor_shall_fit_the_face(small_predictor):
    from refcodec.verify import verify
    wrong = face_stream(Face(0, base(levels=tuple(range(128))),
                             enhancement(predictor_id="small-net",
                                         predictor_sha256=small_predictor.sha256)))
    with pytest.raises(ConformanceViolation) as info:
        decode_faces(wrong)      # the face is 24x20, the predictor makes 24x24 images
    assert info.value.clause == "13.4.4"
    report = verify(wrong, decode=False)
    assert [v.clause for v in report.violations] == ["13.4.4"]
    short = face_stream(Face(0, base(levels=(1, 2, 3)),
                             enhancement(predictor_id="small-net", image_height=24,
                                         predictor_sha256=small_predictor.sha256)))
    with pytest.raises(ConformanceViolation, match="128-d"):
        decode_faces(short)


def test_embedding_overflow_is_refused():
    face = FaceInput(np.zeros((16, 16, 3), np.uint8), np.array([3e38, 0.0], np.float32))
    with pytest.raises(EncoderInputError, match="overflow"):
        refcodec.encode(None, faces=[(face, FaceConfig(embedding_step=2e38,
                                                       enhancement="none"))])


def test_largest_finite_embedding_is_allowed():
    # 2^24 - 1 levels of step 2^104 give 2^128 - 2^104, the largest finite binary32 value
    s = parse_stream(face_stream(Face(0, base(levels=((1 << 24) - 1,), step=2.0 ** 104)),))
    out = decode_faces(s, images=False)["face0"].embedding
    assert out[0] == np.finfo(np.float32).max


def test_jpeg2000_texture_shall_be_a_codestream():
    from PIL import Image
    import io
    from refcodec.face import texture
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG2000")   # JP2 file
    with pytest.raises(SyntaxViolation, match="codestream starting with ff4fff51"):
        texture.decode_texture(buf.getvalue(), TextureCodec.JPEG2000, 16, 16, 3, offset=9,
                               path="p")
    with pytest.raises(SyntaxViolation, match="starting with ffd8"):
        texture.decode_texture(b"\x89PNG....", TextureCodec.JPEG, 16, 16, 3, offset=9, path="p")


def test_jpeg_colour_space_follows_the_rules_of_13_4_8():
    """A three-component JPEG texture is YCbCr with a JFIF APP0 segment and RGB with an
    Adobe APP14 segment of transform 0 (no JFIF segment): the decoder reads both as the
    spec's rules say, so an RGB texture decodes to its own samples, not to a YCbCr reading
    of them."""
    import io

    from PIL import Image

    from refcodec.enums import TextureCodec
    from refcodec.face import texture
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    for keep_rgb in (False, True):
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=100, subsampling=0,
                                         keep_rgb=keep_rgb)
        data = buf.getvalue()
        jfif = data[6:11] == b"JFIF\x00"
        adobe = b"Adobe" in data[:200]
        assert (jfif, adobe) == ((False, True) if keep_rgb else (True, False))
        got = texture.decode_texture(data, TextureCodec.JPEG, 16, 24, 3, offset=0,
                                     path="t")
        # quality 100 without subsampling: within a few levels of the source either way,
        # which a YCbCr reading of R, G, B samples (or the reverse) is not
        assert np.abs(got.astype(int) - rgb).max() <= 8, keep_rgb
