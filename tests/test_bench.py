"""Smoke test of the codec benchmark (tools/bench_codec.py): one small shape, one repeat.

No timing is asserted: only that every estimate the report gives is computed from what was
measured, and that the report renders.
"""

import math

import pytest

from refcodec import EncoderConfig

from conftest import load_tool

pytestmark = pytest.mark.hevc

bench = load_tool("bench_codec.py", "vfc_bench_codec")


def test_bench_shape_and_report():
    cfg = EncoderConfig(qp=32, preset="ultrafast")
    row = bench.bench_shape("vgg16.pool5", bench.SHAPES["vgg16.pool5"], cfg, repeats=1,
                            seed=0, min_seconds=0.0, decode_repeats=2,
                            decode_min_seconds=0.0)
    assert (row["repeats"], row["decode_repeats"]) == (1, 2)
    assert len(row["times_s"]["decode"]) == len(row["times_s"]["ffmpeg"]) == 2
    assert len(row["times_s"]["dec.post"]) == len(row["decode_inner_s"]) == 2
    for what in ("encode", "decode"):
        estimates = row["ratio_estimates"][what]
        assert set(estimates) == {"of_medians", "of_minima", "paired_median",
                                  "cpu_of_medians", "from_pieces", "in_run"}
        assert all(v is not None and math.isfinite(v) and v > 0 for v in estimates.values())
    # the pieces' estimate adds the decode pieces, not the reference-only parts
    m = row["median_s"]
    added = sum(bench.piece_s(m, key) for _, key, _ in bench.DEC_PIECES)
    assert row["ratio_estimates"]["decode"]["from_pieces"] == pytest.approx(
        (m["ffmpeg"] + added) / m["ffmpeg"])
    assert row["max_abs_error"] < 20   # the decoded tensor came back
    result = {"date": "d", "command": "c", "machine": bench.machine_info(),
              "config": {"qp": 32, "quantizer": "log", "bit_depth": 8, "preset": "ultrafast",
                         "repeats": 1, "quick": True, "seed": 0, "min_seconds": 0.0,
                         "max_repeats": 1, "decode_repeats": 2, "decode_min_seconds": 0.0,
                         "decode_max_repeats": 2},
              "data": "synthetic", "targets": {}, "rows": [row],
              "totals": bench.totals([row])}
    text = bench.markdown(result)
    assert "| vgg16.pool5 |" in text and "| 1/2 |" in text and "post" in text
