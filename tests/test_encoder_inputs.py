"""Bad encoder input raises EncoderInputError (issue 14, items 3 and 5)."""

import numpy as np
import pytest

import refcodec
from refcodec import quant
from refcodec.errors import EncoderInputError
from refcodec.records import QuantParams

pytestmark = pytest.mark.hevc


@pytest.mark.parametrize("kwargs", [
    {"channel_order": "abc"}, {"channel_order": 7}, {"channel_order": (0, 0)},
    {"channel_order": (0.0, 1.0)}, {"bit_depth": 8.0}, {"bit_depth": True},
    {"lossless": "no"}, {"per_channel": 1}, {"verify": "yes"}, {"quantizer": ["log"]},
    {"preset": ["fast"]}, {"tile_grid": 4, "packing": "tiled"},
])
def test_encoder_config_refuses(kwargs):
    with pytest.raises(EncoderInputError):
        refcodec.EncoderConfig(**kwargs)


def test_encoder_config_accepts_numpy_bool_and_int():
    cfg = refcodec.EncoderConfig(lossless=np.bool_(True), bit_depth=np.int64(10),
                                 channel_order=np.array([1, 0]))
    assert cfg.lossless is True and cfg.channel_order == (1, 0)


def test_encode_refuses_a_config_that_is_not_one():
    x = np.ones((1, 1, 16, 16), np.float32)
    for config in (22, "log", {"layer0": 22}):
        with pytest.raises(EncoderInputError, match="EncoderConfig"):
            refcodec.encode(x, config)


def test_decode_takes_a_str_as_one_layer_name():
    x = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    data = refcodec.encode({"conv3": x, "c": x}, refcodec.EncoderConfig(preset="ultrafast"))
    assert list(refcodec.decode(data, layers="conv3")) == ["conv3"]
    with pytest.raises(KeyError):
        refcodec.decode(data, layers="conv9")
    with pytest.raises(ValueError):
        refcodec.decode(data, layers=3)


# ---- item 3: the log quantizer's collapse, found by experiment ----

def _log_levels(lo, hi):
    p = QuantParams(min_value=float(lo), max_value=float(hi))
    return np.unique(quant.output_table(quant.LOG, p, 8, np.float32)).size


def test_log_quantizer_collapses_exactly_at_2_to_minus_53():
    # the decoded levels of a non-constant range are all one value exactly when
    # max - min <= 2**-53 (L = log2((max - min) + 1) is 0 in binary64), at any magnitude
    for lo in (0.0, 1e-30, 1e-20, 1e-12, 1e-10):
        lo = np.float32(lo)
        for r, constant in ((1e-17, True), (1.1e-16, True), (1.2e-16, False), (1e-15, False)):
            hi = np.float32(lo + np.float32(r))
            assert (hi - np.float64(lo) <= 2.0 ** -53) == constant
            assert (_log_levels(lo, hi) == 1) == constant, (lo, r)


@pytest.mark.parametrize("per_channel", [False, True])
def test_encoder_refuses_a_range_the_log_quantizer_cannot_represent(per_channel):
    x = np.full((1, 2, 16, 16), 1e-10, np.float32)
    x[0, 1] = 1.0                                    # channel 1 is fine per channel
    x[0, 0, 0, 0] = np.float32(1e-10) + np.float32(5e-17)
    if not per_channel:
        x[0, 1] = 1e-10
    with pytest.raises(EncoderInputError, match=r"2\*\*-53.*quantizer='uniform' or 'integer'"):
        refcodec.encode(x, refcodec.EncoderConfig(per_channel=per_channel))
    # the uniform quantizer represents it
    y = refcodec.decode(refcodec.encode(x, refcodec.EncoderConfig(
        quantizer="uniform", per_channel=per_channel, lossless=True)))["layer0"]
    assert np.unique(y[0, 0]).size == 2
    # the quantizer's own entry refuses too, rather than coding a constant
    p = QuantParams(min_value=float(x[0, 0].min()), max_value=float(x[0, 0].max()))
    with pytest.raises(quant.QuantizerInputError):
        quant.quantize(x[:, :1], quant.LOG, [p], 8)


def test_a_range_just_above_the_limit_is_coded():
    x = np.full((1, 1, 16, 16), 1e-10, np.float32)
    x[0, 0, 0, 0] = np.float32(1e-10) + np.float32(2e-16)
    y = refcodec.decode(refcodec.encode(x, refcodec.EncoderConfig(lossless=True)))["layer0"]
    assert np.unique(y).size == 2


@pytest.mark.parametrize("quantizer", ["uniform", "log", "integer"])
def test_negative_zero_is_reconstructed_as_positive_zero(quantizer):
    # documented in README.md and spec/09-decoding.md 9.4 (the format is unchanged)
    x = np.array([-0.0, 1.0, 2.0, -0.0] * 64, np.float32).reshape(1, 1, 16, 16)
    for t in (x, np.full((1, 1, 16, 16), -0.0, np.float32)):
        y = refcodec.decode(refcodec.encode(t, refcodec.EncoderConfig(
            quantizer=quantizer, lossless=True)))["layer0"]
        zeros = y[t == 0]
        assert (zeros == 0).all() and not np.signbit(zeros).any()


def test_big_endian_input_is_converted_exactly():
    x = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    cfg = refcodec.EncoderConfig(quantizer="integer", lossless=True)
    assert refcodec.encode(x.astype(">f4"), cfg) == refcodec.encode(x, cfg)


def test_meta_and_sparse_torch_tensors_are_refused():
    torch = pytest.importorskip("torch")
    for t in (torch.empty((1, 1, 16, 16), device="meta"),
              torch.ones((1, 1, 16, 16)).to_sparse()):
        with pytest.raises(EncoderInputError, match="dense"):
            refcodec.encode(t)
