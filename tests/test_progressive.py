"""refcodec.progressive: the tensor built a batch of pictures at a time equals
layer.reconstruct of all the pictures, for every packing, order, layout and dtype; and
decode_layer (which uses it) refuses what it refused before."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcodec
from refcodec import progressive
from refcodec.codec import NUMPY_DTYPES
from refcodec.errors import ConformanceViolation
from refcodec.hevc.annexb import planes_md5
from refcodec.layer import decode_layer, reconstruct


@functools.lru_cache(maxsize=None)
def _header(channels, height, width, batch, quantizer, bit_depth, per_channel, packing,
            grid, order, layout, dtype):
    """The layer header the encoder writes for such a tensor (coded once, cached)."""
    rng = np.random.default_rng(0)
    shape = (batch, channels, height, width)
    if quantizer == "integer":
        x = rng.integers(0, 1 << bit_depth, size=shape).astype(np.float32)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    x = x.astype(NUMPY_DTYPES[{"float32": 0, "float16": 1, "bfloat16": 2}[dtype]])
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy()
    cfg = refcodec.EncoderConfig(qp=40, quantizer=quantizer, bit_depth=bit_depth,
                                 per_channel=per_channel, packing=packing, tile_grid=grid,
                                 channel_order=order, layout=layout, preset="ultrafast",
                                 lossless=quantizer == "integer")
    return refcodec.read_headers(refcodec.encode({"x": x}, cfg)).layers[0].header


CASES = st.builds(
    lambda c, hw, n, q, depth, per, pack, order, layout, dtype: (
        c, hw[0], hw[1], n, q, depth, per, pack[0], pack[1],
        None if order is None else tuple(np.random.default_rng(order).permutation(c)),
        layout, dtype),
    st.integers(1, 9), st.sampled_from([(16, 16), (5, 3), (1, 1), (7, 7), (13, 29)]),
    st.integers(1, 2), st.sampled_from(["log", "uniform", "integer"]),
    st.sampled_from([8, 10, 12]), st.booleans(),
    st.sampled_from([("auto", None), ("tiled", None), ("dense", None), ("tiled", (2, 3))]),
    st.one_of(st.none(), st.integers(0, 10)), st.sampled_from(["NCHW", "NHWC"]),
    st.sampled_from(["float32", "float16", "bfloat16"]))


@settings(max_examples=60, deadline=None)
@given(case=CASES, batch=st.integers(1, 5), seed=st.integers(0, 99))
def test_progressive_equals_reconstruct(case, batch, seed):
    try:
        header = _header(*case)
    except refcodec.EncoderInputError:
        return                          # a combination the encoder refuses
    ph, pw = header.picture_height, header.picture_width
    rng = np.random.default_rng(seed)
    pictures = rng.integers(0, 1 << header.sample_bit_depth,
                            size=(header.num_pictures, ph, pw)).astype(
        np.uint8 if header.sample_bit_depth == 8 else np.uint16)
    expected = reconstruct(header, pictures.copy())
    built = progressive.Progressive(header, NUMPY_DTYPES[header.source_dtype])
    for start in range(0, len(pictures), batch):
        built.add(pictures[start:start + batch].copy())
    digests, out = built.finish()
    assert out.dtype == expected.dtype and out.shape == expected.shape
    assert np.array_equal(out.view(np.uint8), expected.view(np.uint8))   # bit for bit
    assert digests == planes_md5(pictures, header.sample_bit_depth)


def test_progressive_refuses_too_few_pictures_and_large_samples():
    header = _header(4, 16, 16, 1, "log", 10, False, "auto", None, None, "NCHW", "float32")
    built = progressive.Progressive(header, np.float32)
    built.add(np.zeros((2, 16, 16), dtype=np.uint16))
    with pytest.raises(ValueError, match="2 pictures for a layout of 4"):
        built.finish()
    with pytest.raises(ValueError, match="below 2\\*\\*10"):
        built.add(np.full((1, 16, 16), 1024, dtype=np.uint16))


class _Batches:
    """A backend without iter_pictures: decode_layer takes the path of whole pictures."""

    def __init__(self):
        from refcodec.hevc.pyav import PyAVBackend
        self.inner = PyAVBackend()

    def decode_pictures(self, *args, **kw):
        return self.inner.decode_pictures(*args, **kw)


@pytest.mark.parametrize("layout,dtype,depth", [("NCHW", "float32", 8), ("NHWC", "float16", 12),
                                                ("NCHW", "bfloat16", 10)])
def test_decode_layer_paths_agree(layout, dtype, depth):
    header = _header(6, 7, 7, 2, "uniform", depth, True, "tiled", None, (5, 4, 3, 2, 1, 0),
                     layout, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 7, 7)).astype(NUMPY_DTYPES[header.source_dtype])
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy()
    cfg = refcodec.EncoderConfig(qp=30, quantizer="uniform", bit_depth=depth, per_channel=True,
                                 packing="tiled", channel_order=(5, 4, 3, 2, 1, 0),
                                 layout=layout, preset="ultrafast")
    stream = refcodec.read_headers(refcodec.encode({"x": x}, cfg))
    layer = stream.layers[0]
    a = decode_layer(layer)
    b = decode_layer(layer, _Batches())
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    bad = dataclasses.replace(layer, sample_md5=bytes(16))
    for backend in (None, _Batches()):
        with pytest.raises(ConformanceViolation, match="sample_md5"):
            decode_layer(bad, backend)
