"""Quantizers: the normative dequantization against an independent scalar evaluation,
exact behaviour at the edges, and the round-trip error bound of the informative encoder."""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcodec import quant
from refcodec.records import QuantParams


def scalar_reference(qtype, p, depth, q):
    """Clause 9.4 evaluated one value at a time with Python floats (binary64)."""
    d = float((1 << depth) - 1)
    if qtype == quant.INTEGER:
        return q + p.offset_value
    if qtype == quant.UNIFORM:
        return p.min_value + (q * (p.max_value - p.min_value)) / d
    if qtype == quant.SQRT:       # math.sqrt is IEEE 754 squareRoot, correctly rounded
        return p.min_value + (p.max_value - p.min_value) * math.sqrt(q / d)
    span = math.log2((p.max_value - p.min_value) + 1.0)
    return p.min_value + (2.0 ** ((q * span) / d) - 1.0)


@pytest.mark.parametrize("qtype", [quant.UNIFORM, quant.LOG, quant.SQRT])
@pytest.mark.parametrize("depth", [8, 10, 12])
def test_table_matches_scalar_reference(qtype, depth):
    p = QuantParams(min_value=float(np.float32(-0.731)), max_value=float(np.float32(17.25)))
    table = quant.reconstruction_table(qtype, p, depth)
    ref = np.array([scalar_reference(qtype, p, depth, q) for q in range(1 << depth)])
    if qtype in (quant.UNIFORM, quant.SQRT):
        assert np.array_equal(table, ref)          # only correctly rounded operations
    else:
        # exp2/log2 may differ in the last bit between math libraries: allow a few ulps of
        # the magnitudes added in the last step
        slack = 4 * np.finfo(np.float64).eps * (abs(p.min_value) + np.abs(ref - p.min_value) + 1)
        assert np.all(np.abs(table - ref) <= slack)


@pytest.mark.parametrize("qtype", [quant.UNIFORM, quant.LOG, quant.SQRT])
def test_end_points_exact(qtype):
    p = QuantParams(min_value=-2.5, max_value=3.75)
    t = quant.reconstruction_table(qtype, p, 8)
    assert t[0] == -2.5
    assert abs(t[255] - 3.75) < 1e-14


@pytest.mark.parametrize("qtype", [quant.UNIFORM, quant.LOG, quant.SQRT])
def test_constant_tensor(qtype):
    x = np.full((2, 3, 4, 5), 1e-20, dtype=np.float32)
    params = quant.choose_params(x, qtype, 8, per_channel=False)
    q = quant.quantize(x, qtype, params, 8)
    assert not q.any()
    y = quant.dequantize(q, qtype, params, 8)
    assert np.array_equal(x, y)


def test_rounding_rule_half_up():
    p = [QuantParams(min_value=0.0, max_value=255.0)]
    x = np.array([0.5, 1.5, 2.49999, 254.5, 255.0], dtype=np.float32).reshape(1, 1, 1, 5)
    assert quant.quantize(x, quant.UNIFORM, p, 8).ravel().tolist() == [1, 2, 2, 255, 255]


def test_integer_quantizer_exact_and_refusals():
    x = np.arange(-3, 9, dtype=np.float32).reshape(1, 2, 2, 3)
    params = quant.choose_params(x, quant.INTEGER, 8, per_channel=False)
    assert params == [QuantParams(offset_value=-3.0)]
    q = quant.quantize(x, quant.INTEGER, params, 8)
    assert np.array_equal(quant.dequantize(q, quant.INTEGER, params, 8), x)
    with pytest.raises(quant.QuantizerInputError, match="integer-valued"):
        quant.quantize(x + 0.5, quant.INTEGER, params, 8)
    with pytest.raises(quant.QuantizerInputError, match="max - min <= 255"):
        quant.choose_params(x * 100, quant.INTEGER, 8, per_channel=False)


def test_non_finite_refused():
    x = np.zeros((1, 1, 2, 2), dtype=np.float32)
    x[0, 0, 1, 0] = np.inf
    with pytest.raises(quant.QuantizerInputError, match=r"inf at index \(0, 0, 1, 0\)"):
        quant.choose_params(x, quant.LOG, 8, per_channel=False)


def test_per_channel_params_follow_source_channels():
    x = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, -5.0, 9.0)])[None]
    x[0, 0, 0, 0] = 2.0
    params = quant.choose_params(x, quant.UNIFORM, 8, per_channel=True)
    assert [(p.min_value, p.max_value) for p in params] == [(1.0, 2.0), (-5.0, -5.0), (9.0, 9.0)]
    y = quant.dequantize(quant.quantize(x, quant.UNIFORM, params, 8), quant.UNIFORM, params, 8)
    assert np.array_equal(x, y)


def test_output_dtypes_round_through_binary32():
    p = QuantParams(min_value=0.0, max_value=1.0)
    q = np.arange(256, dtype=np.uint16).reshape(1, 1, 16, 16)
    for dtype in (np.float32, np.float16, ml_dtypes.bfloat16):
        y = quant.dequantize(q, quant.LOG, [p], 8, dtype)
        expected = quant.reconstruction_table(quant.LOG, p, 8).astype(np.float32).astype(dtype)
        assert y.dtype == dtype and np.array_equal(y.ravel(), expected)


def error_bound(qtype, p, depth, x):
    """Largest reconstruction error of round-half-up quantization at x (plus float slack)."""
    d = (1 << depth) - 1
    lo, hi = p.min_value, p.max_value
    if hi == lo:
        return 0.0
    if qtype == quant.UNIFORM:
        return (hi - lo) / d / 2 * (1 + 1e-9) + 1e-6 * max(abs(lo), abs(hi))
    if qtype == quant.SQRT:
        # half a step in the squared domain, D * t^2, on either side of t
        t, h = (x - lo) / (hi - lo), 0.5 / d
        step = max(math.sqrt(t * t + h) - t, t - math.sqrt(max(t * t - h, 0.0)))
        return (hi - lo) * step * (1 + 1e-6) + 1e-6 * max(abs(lo), abs(hi))
    span = math.log2(hi - lo + 1)
    # half a step in the log domain around x, plus the binary64 rounding of (x - min) + 1,
    # which limits the log quantizer's resolution when max - min is small next to 1
    return ((x - lo + 1) * (2 ** (span / d / 2) - 1) * (1 + 1e-6)
            + 4 * np.finfo(np.float64).eps * (x - lo + 1) + 1e-6 * max(abs(lo), abs(hi)))


@given(st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=64),
       st.sampled_from([quant.UNIFORM, quant.LOG, quant.SQRT]), st.sampled_from([8, 10, 12]))
@settings(max_examples=300)
def test_round_trip_within_bound(values, qtype, depth):
    x = np.array(values, dtype=np.float32).reshape(1, 1, 1, -1)
    if qtype == quant.LOG and 0 < float(x.max()) - float(x.min()) <= quant.LOG_MIN_RANGE:
        with pytest.raises(quant.QuantizerInputError, match="uniform"):   # decodes constant
            quant.choose_params(x, qtype, depth, per_channel=False)
        return
    params = quant.choose_params(x, qtype, depth, per_channel=False)
    y = quant.dequantize(quant.quantize(x, qtype, params, depth), qtype, params, depth)
    p = params[0]
    for a, b in zip(x.ravel().tolist(), y.ravel().tolist()):
        assert abs(a - b) <= error_bound(qtype, p, depth, a), (a, b, p)


@given(st.lists(st.integers(-2000, 2000), min_size=1, max_size=64), st.sampled_from([8, 10, 12]))
def test_integer_round_trip_exact(values, depth):
    x = np.array(values, dtype=np.float32).reshape(1, 1, 1, -1)
    try:
        params = quant.choose_params(x, quant.INTEGER, depth, per_channel=False)
    except quant.QuantizerInputError:
        assert max(values) - min(values) > (1 << depth) - 1
        return
    y = quant.dequantize(quant.quantize(x, quant.INTEGER, params, depth), quant.INTEGER, params,
                         depth)
    assert np.array_equal(x, y)


def test_dequantize_refuses_out_of_range_samples():
    p = [QuantParams(min_value=0.0, max_value=1.0)]
    with pytest.raises(ValueError, match="below 2\\*\\*10"):
        quant.dequantize(np.full((1, 1, 1, 1), 1024, np.uint16), quant.UNIFORM, p, 10)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        quant.dequantize(np.zeros((1, 1, 1, 1), np.int32), quant.UNIFORM, p, 10)


def fancy_reference(samples, qtype, params, depth, dtype):
    """dequantize as plain fancy indexing of the output tables (per tensor or per channel)."""
    if len(params) == 1:
        return quant.output_table(qtype, params[0], depth, dtype)[samples]
    return np.stack([quant.output_table(qtype, p, depth, dtype)[samples[:, c]]
                     for c, p in enumerate(params)], axis=1)


@given(st.data())
@settings(max_examples=200)
def test_block_lookup_matches_fancy_indexing(data):
    """The blockwise np.take of dequantize gives the bits of table[samples] for every dtype,
    layout and size (including sizes around the block length)."""
    depth = data.draw(st.sampled_from([8, 10, 12]), "depth")
    sample_dtype = data.draw(st.sampled_from([np.uint8, np.uint16]), "sample dtype")
    out_dtype = data.draw(st.sampled_from([np.float32, np.float16, ml_dtypes.bfloat16]), "out")
    qtype = data.draw(st.sampled_from([quant.UNIFORM, quant.LOG, quant.INTEGER]), "qtype")
    n, c = data.draw(st.integers(1, 3), "n"), data.draw(st.integers(1, 3), "c")
    size = data.draw(st.sampled_from([1, 7, 64, quant.TAKE_BLOCK // 3 - 1,
                                      quant.TAKE_BLOCK // 3 + 1, quant.TAKE_BLOCK + 1]), "hw")
    per_channel = data.draw(st.booleans(), "per channel")
    seed = data.draw(st.integers(0, 2**32 - 1), "seed")
    rng = np.random.default_rng(seed)
    top = min(1 << depth, np.iinfo(sample_dtype).max + 1)
    samples = rng.integers(0, top, (n, c, 1, size)).astype(sample_dtype)
    if data.draw(st.booleans(), "transposed"):
        samples = samples.transpose(0, 1, 3, 2)   # not C-contiguous
    if qtype == quant.INTEGER:
        params = [QuantParams(offset_value=float(rng.integers(-99, 99)))
                  for _ in range(c if per_channel else 1)]
    else:
        params = [QuantParams(min_value=float(np.float32(lo)), max_value=float(np.float32(lo + w)))
                  for lo, w in rng.uniform(0, 20, (c if per_channel else 1, 2))]
    got = quant.dequantize(samples, qtype, params, depth, out_dtype)
    expected = fancy_reference(samples, qtype, params, depth, out_dtype)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.strides == expected.strides
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("per_channel", [False, True])
def test_dequantize_refuses_uint16_samples_above_8_bits(per_channel):
    p = QuantParams(min_value=0.0, max_value=1.0)
    q = np.zeros((1, 2, 3, quant.TAKE_BLOCK + 5), np.uint16)
    q[0, 1, 2, quant.TAKE_BLOCK + 3] = 256
    with pytest.raises(ValueError, match="below 2\\*\\*8"):
        quant.dequantize(q, quant.UNIFORM, [p] * (2 if per_channel else 1), 8)
    q[0, 1, 2, quant.TAKE_BLOCK + 3] = 255
    assert quant.dequantize(q, quant.UNIFORM, [p] * (2 if per_channel else 1), 8)[
        0, 1, 2, quant.TAKE_BLOCK + 3] == 1.0


@pytest.mark.parametrize("depth", [8, 10, 12])
@pytest.mark.parametrize("lo, hi", [(0.0, 6.0), (-3.5, 17.25), (1e-3, 1e-3 + 2.0 ** -10)])
def test_sqrt_levels_quantize_to_themselves(depth, lo, hi):
    """Every output value of the square-root quantizer (clause 9.4.4), coded again by the
    encoder (Annex A.1), gives back its own sample value; levels are finest at the top."""
    p = QuantParams(min_value=float(np.float32(lo)), max_value=float(np.float32(hi)))
    values = quant.output_table(quant.SQRT, p, depth, np.float32)
    q = quant.quantize(values.reshape(1, 1, 1, -1), quant.SQRT, [p], depth).ravel()
    assert np.array_equal(q, np.arange(1 << depth))
    steps = np.diff(quant.reconstruction_table(quant.SQRT, p, depth))
    assert np.all(np.diff(steps) < 0)          # each step smaller than the one below it
    d = (1 << depth) - 1
    assert steps[0] == pytest.approx((p.max_value - p.min_value) / math.sqrt(d), rel=1e-12)
