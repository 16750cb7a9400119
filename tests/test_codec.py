"""End-to-end encoder/decoder through libx265 and FFmpeg (marker: hevc)."""

import dataclasses
import hashlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcodec
from refcodec import bitstream, codec, packing, quant
from refcodec.codec import EncoderConfig
from refcodec.errors import (BackendError, BitstreamError, ConformanceViolation,
                             EncoderInputError)
from refcodec.hevc.pyav import PyAVBackend
from refcodec.testconditions import FEATURE_SHAPES

from conftest import relu_features

pytestmark = pytest.mark.hevc

FAST = dict(preset="ultrafast")

# The paper's test conditions: VGG16 conv1..pool5 and ResNet conv1..conv5/pool1 (C, H, W).
TEST_CONDITION_SHAPES = FEATURE_SHAPES


def max_sample_error(x, cfg, data):
    """Largest |decoded sample - encoder sample| of a one-layer stream (the HEVC error)."""
    stream = refcodec.read_headers(data)
    layer = stream.layers[0]
    h = layer.header
    qtype = int(h.quantizer_type)
    xs = x if cfg.layout == "NCHW" else x.transpose(0, 3, 1, 2)
    q = quant.quantize(xs.astype(np.float32), qtype, list(h.quant_params), h.sample_bit_depth)
    decoded = codec.decode_samples(layer)
    q_dec = packing.unpack(decoded, packing.Layout.of(h))
    return int(np.abs(q_dec.astype(np.int64) - q).max()), q, q_dec, h


@pytest.mark.parametrize("name", list(TEST_CONDITION_SHAPES))
def test_test_condition_shapes_qp12(name, rng):
    c, h, w = TEST_CONDITION_SHAPES[name]
    x = relu_features(rng, (1, c, h, w))
    cfg = EncoderConfig(qp=12, quantizer="log", bit_depth=8, **FAST)
    data = refcodec.encode({name: x}, cfg)
    y = refcodec.decode(data)[name]
    assert y.shape == x.shape and y.dtype == np.float32
    err, q, q_dec, hdr = max_sample_error(x, cfg, data)
    assert err <= 8, f"QP 12 8-bit sample error {err}"
    # reconstruction error bound: quantizer's half step at the true sample plus the HEVC error
    table = quant.reconstruction_table(int(hdr.quantizer_type), hdr.quant_params[0], 8)
    lo = table[np.clip(q.astype(np.int64) - err - 1, 0, 255)]
    hi = table[np.clip(q.astype(np.int64) + err + 1, 0, 255)]
    assert np.all((y >= lo - 1e-6) & (y <= hi + 1e-6))
    if h == 7:   # 7x7 maps: 8x8 tiles in a 2x2 grid (libx265 codes nothing below 16x16)
        assert (hdr.tile_rows, hdr.tile_cols, hdr.picture_width) == (2, 2, 16)


@pytest.mark.parametrize("depth", [8, 10, 12])
@pytest.mark.parametrize("quantizer", ["uniform", "log"])
def test_bit_depths_and_quantizers(depth, quantizer, rng):
    x = relu_features(rng, (2, 5, 20, 30))
    cfg = EncoderConfig(qp=12, quantizer=quantizer, bit_depth=depth, **FAST)
    data = refcodec.encode(x, cfg)
    err, *_ = max_sample_error(x, cfg, data)
    assert err <= 8 << (depth - 8)
    y = refcodec.decode(data)["layer0"]
    assert np.abs(y - x).max() < 0.1 * x.max()


def test_qp_changes_error(rng):
    x = relu_features(rng, (1, 8, 32, 32))
    errors = []
    for qp in (12, 42):
        cfg = EncoderConfig(qp=qp, **FAST)
        errors.append(max_sample_error(x, cfg, refcodec.encode(x, cfg))[0])
    assert errors[0] < errors[1]


@settings(max_examples=8, deadline=None)
@given(st.data())
def test_lossless_integer_tensors_exact(data):
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4))
    h, w = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 20))
    depth = data.draw(st.sampled_from([8, 10, 12]))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    low = data.draw(st.integers(-1000, 1000))
    x = (low + rng.integers(0, 1 << depth, (n, c, h, w))).astype(np.float32)
    cfg = EncoderConfig(quantizer="integer", bit_depth=depth, lossless=True,
                        per_channel=data.draw(st.booleans()), **FAST)
    y = refcodec.decode(refcodec.encode(x, cfg))["layer0"]
    assert np.array_equal(x, y)


def test_lossless_samples_exact_with_float_data(rng):
    x = relu_features(rng, (1, 6, 9, 13))
    cfg = EncoderConfig(quantizer="uniform", bit_depth=10, lossless=True, **FAST)
    err, *_ = max_sample_error(x, cfg, refcodec.encode(x, cfg))
    assert err == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_dtypes_and_nhwc_layout(dtype, rng):
    x = relu_features(rng, (2, 10, 12, 3)).astype(dtype)     # NHWC: H=10, W=12, C=3
    cfg = EncoderConfig(qp=12, layout="NHWC", **FAST)
    data = refcodec.encode({"f": x}, cfg)
    h = refcodec.read_headers(data).layers[0].header
    assert (h.batch_size, h.num_channels, h.height, h.width) == (2, 3, 10, 12)
    y = refcodec.decode(data)["f"]
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.abs(y.astype(np.float32) - x.astype(np.float32)).max() < 0.2


def test_permutation_tiling_per_channel(rng):
    x = relu_features(rng, (2, 7, 5, 6))
    x[:, 3] *= 50
    order = (6, 2, 0, 1, 5, 3, 4)
    cfg = EncoderConfig(qp=12, quantizer="uniform", per_channel=True, packing="tiled",
                        tile_grid=(2, 3), channel_order=order, pad_mode="zero", **FAST)
    data = refcodec.encode(x, cfg)
    h = refcodec.read_headers(data).layers[0].header
    assert h.channel_permutation == order and (h.tile_rows, h.tile_cols) == (2, 3)
    assert h.num_pictures == 3 and len(h.quant_params) == 7
    y = refcodec.decode(data)["layer0"]
    for ch in range(7):
        step = (x[:, ch].max() - x[:, ch].min()) / 255
        assert np.abs(y[:, ch] - x[:, ch]).max() <= step * 9 + 1e-6


def test_several_layers_and_selection(rng):
    tensors = {"conv1": relu_features(rng, (1, 4, 32, 32)),
               "pool5": relu_features(rng, (1, 16, 7, 7)),
               "конв": relu_features(rng, (1, 2, 16, 16))}
    data = refcodec.encode(tensors, {"pool5": EncoderConfig(bit_depth=10, **FAST)})
    out = refcodec.decode(data)
    assert list(out) == list(tensors)
    assert refcodec.read_headers(data).layers[1].header.sample_bit_depth == 10
    only = refcodec.decode(data, layers=["pool5"])
    assert list(only) == ["pool5"] and np.array_equal(only["pool5"], out["pool5"])
    with pytest.raises(KeyError):
        refcodec.decode(data, layers=["nope"])


def test_deterministic_bytes(rng):
    x = relu_features(rng, (1, 8, 24, 24))
    cfg = EncoderConfig(qp=22)
    assert refcodec.encode(x, cfg) == refcodec.encode(x.copy(), cfg)


def test_no_repeated_parameter_sets_or_sei(rng):
    from refcodec.hevc.annexb import nal_unit_type, split_nal_units
    data = refcodec.encode(relu_features(rng, (1, 5, 16, 16)), EncoderConfig(**FAST))
    payload = refcodec.read_headers(data).layers[0].hevc_payload
    types = [nal_unit_type(u) for u in split_nal_units(payload)]
    assert types.count(32) == types.count(33) == types.count(34) == 1
    assert 39 not in types and 40 not in types
    assert sum(t < 32 for t in types) == 5


def test_sample_md5_matches_independent_computation(rng):
    x = relu_features(rng, (1, 3, 16, 16))
    data = refcodec.encode(x, EncoderConfig(bit_depth=10, **FAST))
    layer = refcodec.read_headers(data).layers[0]
    pics = PyAVBackend().decode_pictures(layer.hevc_payload, 3, 16, 16, 10)
    per_picture = b"".join(hashlib.md5(p.astype("<u2").tobytes()).digest() for p in pics)
    assert layer.sample_md5 == hashlib.md5(per_picture).digest()


@pytest.mark.parametrize("depth, height, width", [(8, 16, 16), (8, 24, 40), (10, 16, 24),
                                                  (12, 40, 16)])
def test_planes_copied_from_the_frame_buffer_equal_to_ndarray(depth, height, width, rng):
    """decode_pictures copies each plane from the frame's buffer (pyav.copy_samples), with
    to_ndarray as the fallback for an unusual plane: both give to_ndarray's samples."""
    from refcodec.hevc import pyav
    x = relu_features(rng, (1, 3, height, width), scale=40.0)
    data = refcodec.encode(x, EncoderConfig(bit_depth=depth, quantizer="uniform", **FAST))
    layer = refcodec.read_headers(data).layers[0]
    h = layer.header
    dtype = np.uint8 if depth == 8 else np.uint16
    planes = codec.decode_pictures(layer)
    frames = pyav.decode_frames(layer.hevc_payload)
    assert planes.dtype == dtype and len(frames) == len(planes) == h.num_pictures
    for frame, plane in zip(frames, planes):
        assert frame.planes[0].line_size > width * planes.itemsize or width % 64 == 0
        assert np.array_equal(plane, frame.to_ndarray())
        assert depth == 8 or plane.max() > 255

    class NarrowPlane:   # a plane whose lines are shorter than the picture: the fallback
        line_size = 1
        buffer_size = 1

    class Frame:
        planes = (NarrowPlane(),)

        def __init__(self, frame):
            self.frame = frame

        def to_ndarray(self):
            return self.frame.to_ndarray()

    dest = np.empty((h.picture_height, h.picture_width), dtype)
    pyav.copy_samples(Frame(frames[-1]), dest)
    assert np.array_equal(dest, frames[-1].to_ndarray())


def test_corrupted_md5_detected(rng):
    data = bytearray(refcodec.encode(relu_features(rng, (1, 2, 16, 16)), EncoderConfig(**FAST)))
    layer = refcodec.read_headers(bytes(data)).layers[0]
    pos = layer.payload_offset - 16
    data[pos] ^= 1
    unit = layer.data_offset
    length = int.from_bytes(data[unit + 2:unit + 6], "big")
    data[unit + 6 + length:unit + 10 + length] = bitstream.crc32(
        bytes(data[unit:unit + 6 + length])).to_bytes(4, "big")
    with pytest.raises(ConformanceViolation) as info:
        refcodec.decode(bytes(data))
    assert info.value.clause == "8.4.1" and info.value.offset == pos


def test_payload_swapped_between_layers_detected(rng):
    """A payload with the wrong picture count or size is refused, not mis-decoded."""
    a = refcodec.encode(relu_features(rng, (1, 3, 16, 16)), EncoderConfig(**FAST))
    b = refcodec.encode(relu_features(rng, (1, 4, 16, 16)), EncoderConfig(**FAST))
    la, lb = refcodec.read_headers(a).layers[0], refcodec.read_headers(b).layers[0]
    forged = bitstream.build_stream(refcodec.read_headers(a).header,
                                    [(la.header, la.sample_md5, lb.hevc_payload)])
    with pytest.raises(ConformanceViolation) as info:
        refcodec.decode(forged)
    assert info.value.clause in ("10.5", "10.6")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_mutated_streams_raise_only_bitstream_errors(data):
    base = _small_stream()
    blob = bytearray(base)
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    try:
        refcodec.decode(bytes(blob))
    except BitstreamError:
        pass


_SMALL = []


def _small_stream():
    if not _SMALL:
        x = relu_features(np.random.default_rng(5), (1, 3, 16, 16))
        _SMALL.append(refcodec.encode(x, EncoderConfig(**FAST)))
    return _SMALL[0]


# ---------------------------------------------------------------------------------
# encoder input errors
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(qp=52), "qp shall be an integer in 0..51, got 52"),
    (dict(qp=True), "qp shall be an integer in 0..51, got True"),
    (dict(quantizer="cubic"), "quantizer shall be one of uniform, log, integer, sqrt, got 'cubic'"),
    (dict(bit_depth=9), "bit_depth shall be 8, 10 or 12, got 9"),
    (dict(packing="spiral"), "packing shall be auto, channel, tiled or dense, got 'spiral'"),
    (dict(tile_grid=(2, 2)), "tile_grid needs packing='tiled' or 'dense'"),
    (dict(packing="tiled", tile_grid=(1, 1)),
     "tile_grid shall be (rows, cols) with 1..65535 each and at least two tiles, got (1, 1)"),
    (dict(layout="CHW"), "layout shall be NCHW or NHWC, got 'CHW'"),
    (dict(pad_mode="mirror"), "pad_mode shall be replicate or zero, got 'mirror'"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(EncoderInputError) as info:
        EncoderConfig(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("tensor,message", [
    (np.zeros((2, 3, 4), np.float32),
     "a tensor shall have 4 dimensions (NCHW), got shape (2, 3, 4)"),
    (np.zeros((1, 0, 4, 4), np.float32), "the tensor is empty (1, 0, 4, 4)"),
    (np.zeros((1, 1, 4, 4), np.float64), "dtype float64 is not a source dtype"),
    (np.full((1, 1, 4, 4), np.nan, np.float32), "non-finite value (nan at index (0, 0, 0, 0))"),
    ([[1.0]], "expected a numpy array or torch tensor, got list"),
])
def test_tensor_errors(tensor, message):
    with pytest.raises(EncoderInputError, match=None) as info:
        refcodec.encode({"t": tensor})
    assert message in str(info.value)


def test_channel_packing_too_small_refused():
    with pytest.raises(EncoderInputError, match="smaller than the 16x16 libx265 can code"):
        refcodec.encode(np.zeros((1, 2, 7, 7), np.float32), EncoderConfig(packing="channel"))


def test_bad_permutation_refused():
    with pytest.raises(EncoderInputError, match="permutation of 0..2"):
        refcodec.encode(np.zeros((1, 3, 16, 16), np.float32),
                        EncoderConfig(channel_order=(0, 1, 1)))


def test_layer_id_rules():
    x = np.zeros((1, 1, 16, 16), np.float32)
    with pytest.raises(EncoderInputError, match="1..255 bytes"):
        refcodec.encode({"": x})
    with pytest.raises(EncoderInputError, match="control characters"):
        refcodec.encode({"a\tb": x})
    with pytest.raises(EncoderInputError, match="strings"):
        refcodec.encode({3: x})


def test_backend_error_wraps_ffmpeg():
    with pytest.raises(BackendError) as info:
        PyAVBackend().encode_pictures(np.zeros((1, 8, 8), np.uint16), 8, 22, False, "ultrafast")
    assert info.value.__cause__ is not None and "libx265 failed" in str(info.value)


@given(n=st.integers(0, 30), size=st.integers(1, 9), fail_at=st.none() | st.integers(0, 30))
@settings(max_examples=200, deadline=None)
def test_frame_batches_keep_order_and_errors(n, size, fail_at):
    """pyav.batches: the items in order, in lists of ``size``; an error of the source comes
    after every item taken before it (as one item at a time would see them)."""
    from refcodec.hevc.pyav import batches

    def source():
        for i in range(n):
            if i == fail_at:
                raise ValueError("decoder error")
            yield i

    seen, error = [], None
    try:
        for batch in batches(source(), size):
            assert 1 <= len(batch) <= size
            seen.extend(batch)
    except ValueError as exc:
        error = exc
    stop = n if fail_at is None or fail_at >= n else fail_at
    assert seen == list(range(stop))
    assert (error is not None) == (fail_at is not None and fail_at < n)


@pytest.mark.parametrize("shape", [(1, 20, 56, 56), (1, 11, 16, 16)])
def test_frame_threads_and_batches_give_the_same_pictures(shape, rng, monkeypatch):
    """decode_pictures with and without FFmpeg's frame threads (more pictures than a batch)."""
    from refcodec.hevc import pyav
    data = refcodec.encode({"x": relu_features(rng, shape)}, EncoderConfig(qp=22, **FAST))
    layer = refcodec.read_headers(data).layers[0]
    got = {}
    for threads_from in (1, 10**9):
        monkeypatch.setattr(pyav, "FRAME_THREADS_MIN_SAMPLES", threads_from)
        got[threads_from] = codec.decode_samples(layer)
    assert got[1].tobytes() == got[10**9].tobytes()
    assert len(got[1]) == shape[1] > pyav.FRAME_BATCH


def test_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(relu_features(rng, (1, 4, 16, 16)))
    data = refcodec.encode({"a": x, "b": x.to(torch.bfloat16), "c": x.half()},
                           EncoderConfig(qp=12, **FAST))
    out = refcodec.decode(data)
    assert out["a"].dtype == np.float32 and out["c"].dtype == np.float16
    assert out["b"].dtype == ml_dtypes.bfloat16
    assert np.abs(out["a"] - x.numpy()).max() < 0.2


def test_verify_option(rng):
    x = relu_features(rng, (1, 3, 16, 16))
    plain = refcodec.encode(x, EncoderConfig(**FAST))
    assert refcodec.encode(x, dataclasses.replace(EncoderConfig(**FAST), verify=True)) == plain


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_corrupted_hevc_payload_detected(data):
    """Bytes changed inside hevc_payload (CRC recomputed) never give a silently wrong tensor:
    either the decoded planes still match sample_md5 or a BitstreamError is raised."""
    base = _small_stream()
    layer = refcodec.read_headers(base).layers[0]
    blob = bytearray(base)
    start, end = layer.payload_offset, layer.payload_offset + len(layer.hevc_payload)
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(start, end - 1))] = data.draw(st.integers(0, 255))
    unit = layer.data_offset
    blob[end:end + 4] = bitstream.crc32(bytes(blob[unit:end])).to_bytes(4, "big")
    try:
        out = refcodec.decode(bytes(blob))
    except BitstreamError:
        return
    assert np.array_equal(out["layer0"], refcodec.decode(base)["layer0"])


def test_integer_quantizer_offset_fits_the_dtype():
    """float16 holds integers exactly only up to 2048: a 12-bit integer layer of small values
    gets an offset below its minimum so that offset..offset+4095 stays exact (clause 8.3.7)."""
    x = np.arange(-5, 6, dtype=np.float16).reshape(1, 1, 1, 11)
    data = refcodec.encode(x, EncoderConfig(quantizer="integer", bit_depth=12, lossless=True,
                                            **FAST))
    h = refcodec.read_headers(data).layers[0].header
    assert h.quant_params[0].offset_value == 2048 - 4095
    assert np.array_equal(refcodec.decode(data)["layer0"], x)
    with pytest.raises(EncoderInputError, match="cannot hold 4096 consecutive integers"):
        refcodec.encode(x.astype(ml_dtypes.bfloat16),
                        EncoderConfig(quantizer="integer", bit_depth=12, **FAST))
