"""tools/bench_rd.py's variants (Annex A.7.7's ablations and the libx265 screenings of
A.7.6): each is a coding the encoder accepts and libx265 takes, and decodes to the shape of
the layer; tools/bench_format12.py's permutation sizes.  No rate or time is asserted (the
benchmarks measure them)."""

import numpy as np
import pytest

import refcodec

from conftest import load_tool

pytestmark = pytest.mark.hevc

bench = load_tool("bench_rd.py", "vfc_bench_rd")

LAYERS = {
    "large": np.maximum(np.random.default_rng(0).standard_normal((1, 8, 40, 40)), 0),
    "small": np.random.default_rng(1).standard_normal((1, 16, 14, 14)),
}


@pytest.mark.parametrize("variant", sorted(bench.VARIANTS))
def test_every_variant_is_a_coding_that_decodes(variant):
    for name, x in LAYERS.items():
        x = x.astype(np.float32)
        choice = bench.VARIANTS[variant](name, x, 37)
        data = refcodec.encode({name: choice.apply(x)}, choice.config)
        assert refcodec.decode(data)[name].shape == x.shape


def test_the_libx265_variants_change_the_efficient_tunes_options():
    x = LAYERS["large"].astype(np.float32)
    efficient = refcodec.tune.choose("large", x, "efficient", refcodec.EncoderConfig(qp=37))
    base = efficient.config.x265_params.split(":")
    assert "no-deblock=1" in base and "ctu=32" in base
    assert "no-deblock=1" not in bench.VARIANTS["deblock"]("large", x, 37).config.x265_params
    assert "ctu=32" not in bench.VARIANTS["ctu-64"]("large", x, 37).config.x265_params
    small = LAYERS["small"].astype(np.float32)
    assert "rdoq-level=2" in refcodec.tune.choose(
        "small", small, "efficient", refcodec.EncoderConfig(qp=37)).config.x265_params
    assert "rdoq" not in bench.VARIANTS["rdoq-8"]("small", small, 37).config.x265_params


def test_bench_format12_counts_every_permutation_code():
    """tools/bench_format12.py's permutation sizes against clause 8.3.16's arithmetic."""
    sizes = load_tool("bench_format12.py", "vfc_bench_format12").permutation_bytes(1280)
    assert sizes["u32"] == 4 * 1280
    assert sizes["compact"] == -(-1280 * 11 // 8)
    assert sizes["group_bits"] == 5 and sizes["grouped"] == 1 + -(-1280 * 5 // 8)
