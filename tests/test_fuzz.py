"""Fuzzing the robustness contract of the decoder side (harness: tools/fuzz.py).

For any input bytes read_headers and decode succeed or raise a BitstreamError subclass,
verify returns a report and never raises, memory stays bounded (tools/fuzz.py also enforces
a time budget per call; the tests assert no wall-clock time), a successful decode is never
silently wrong (the MD5 of the decoded planes, recomputed with hashlib, is the stream's
sample_md5), and the three entry points agree.

Seeds are small real streams from refcodec.encode (8/10/12-bit; log, uniform, integer;
per-channel; tiled; permuted; NHWC, float16, bfloat16; several layers; lossless; a skippable
unknown unit; a picture big enough for FFmpeg's frame threads) and up to 20 of the smallest
conformance/streams/*.vfc when that directory exists.  The default run is a few thousand
cases (under a minute on two cores); the slow tier (``-m slow``) and ``python tools/fuzz.py --cases
100000`` run many more.
"""

from __future__ import annotations

import functools
import os
import resource
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import refcodec
from refcodec.enums import PackingType, ParamFormat, PermutationCoding
from refcodec.errors import BitstreamError
from refcodec.verify import verify

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "fuzz.py"


fuzz = load_tool("fuzz.py", "vfc_fuzz")

pytestmark = pytest.mark.hevc

#: Seconds one call of read_headers / decode / verify may take on a case.
BUDGET = None   # no wall-clock assertion in tests: tools/fuzz.py --budget enforces the time budget
#: Bytes the Python side may allocate while refusing a small mutated stream.
TRACE_LIMIT = 64 << 20

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


# ---------------------------------------------------------------------------------------
# corpus and bookkeeping
# ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _corpus() -> tuple:
    return tuple(fuzz.build_corpus())


@functools.lru_cache(maxsize=None)
def _references() -> dict:
    return fuzz.reference_decodes(list(_corpus()))


def _blobs() -> list[bytes]:
    return [data for _, data in _corpus()]


@pytest.fixture(scope="session")
def corpus():
    """The seed streams, built once per session."""
    return list(_corpus())


@pytest.fixture(scope="session")
def references():
    return _references()


#: Counts of every case of this session (printed at its end by report_tally).
TALLY = fuzz.Stats()


@pytest.fixture(scope="module", autouse=True)
def report_tally(request):
    start = time.time()
    yield
    if not TALLY.cases:
        return
    TALLY.max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("tests/test_fuzz.py: fuzz cases of this run " + "-" * 30)
        for line in fuzz.format_stats(TALLY, time.time() - start).splitlines():
            reporter.write_line(line)


def run(data: bytes, *, decode: bool, reference=None, trace: bool = False,
        mutations=("",)) -> "fuzz.Result":
    """check_case, counted in TALLY; fails the test on any contract violation."""
    result = fuzz.check_case(data, decode=decode, reference=reference, budget=BUDGET,
                             trace_limit=TRACE_LIMIT if trace else None)
    TALLY.add(result, decode=decode, mutations=mutations, where=f"{len(data)} bytes")
    assert not result.violations, (
        f"contract violated by {data.hex()}:\n"
        + "\n".join(f"{kind}: {detail}" for kind, detail in result.violations))
    return result


def draw_case(data, kinds, max_stack=2, fix=True):
    """A seed and a stack of mutations of the given kinds, drawn by Hypothesis."""
    blobs = _blobs()
    base = blobs[data.draw(st.integers(0, len(blobs) - 1), label="seed index")]
    mutated, done = fuzz.mutate(fuzz.DrawSource(data.draw), base, blobs, kinds, max_stack,
                                fix_probability_raw=fix)
    return base, mutated, done


# ---------------------------------------------------------------------------------------
# the harness itself
# ---------------------------------------------------------------------------------------

def test_seeds_are_conformant_and_understood_by_the_harness(corpus, references):
    names = {name for name, _ in corpus}
    assert {"log8", "integer12_lossless", "three_layers", "skippable_unit"} <= names
    for name, data in corpus:
        made_here = not name.startswith("conformance/")  # those may be broken on purpose
        header, units, tail = fuzz.split_stream(data)
        assert fuzz.join_stream(header, units, tail) == data or not made_here, name
        for unit in units:
            if unit.type == fuzz.LAYER_HEADER:
                fields = fuzz.parse_layer_header(unit.payload)
                assert fields is not None or not made_here, name
                if fields is not None:
                    assert fuzz.build_layer_header(fields)[0] == unit.payload, name
        result = run(data, decode=True, reference=references[data], trace=True)
        if made_here:
            assert result.outcomes[0] == "read_headers: ok", name
            assert "decode: ok (same tensors as the seed)" in result.outcomes, name
            assert verify(data).conformant, name
    made = [d for n, d in corpus if not n.startswith("conformance/")]
    headers = [x.header for d in made for x in refcodec.read_headers(d).layers]
    assert {h.sample_bit_depth for h in headers} == {8, 10, 12}
    assert {int(h.quantizer_type) for h in headers} == {0, 1, 2, 3}
    # format 1.2: dense packing, binary16 parameters, compact and grouped permutations
    assert {h.permutation_coding for h in headers if h.has_ext} == {
        PermutationCoding.COMPACT, PermutationCoding.GROUPED}
    assert any(h.packing_type == PackingType.DENSE for h in headers)
    assert any(h.param_format == ParamFormat.BINARY16 for h in headers)
    assert {int(h.source_dtype) for h in headers} == {0, 1, 2}
    assert {int(h.source_layout) for h in headers} == {0, 1}
    assert any(h.per_channel_quant_flag for h in headers)
    assert any(h.channel_permutation for h in headers)
    assert any(h.tile_rows * h.tile_cols > 1 for h in headers)
    assert any(refcodec.read_headers(d).skipped_units for d in made)


@pytest.mark.parametrize("field", ["num_channels", "height", "tile_cols", "pad_bottom",
                                   "quant_params[0]"])
def test_fix_crcs_lets_a_field_change_reach_the_semantic_checks(corpus, field):
    data = dict(corpus)["permuted_tiled_zero_pad"]
    header, units, tail = fuzz.split_stream(data)
    fields = fuzz.parse_layer_header(units[0].payload)
    offset, size = fuzz.build_layer_header(fields)[1][field]
    pos = fuzz.HEADER_SIZE + fuzz.UNIT_OVERHEAD - 4 + offset
    raw = bytearray(data)
    raw[pos:pos + size] = b"\xff" * size
    with pytest.raises(BitstreamError) as info:
        refcodec.read_headers(bytes(raw))
    assert info.value.clause == "8.2.5"
    with pytest.raises(BitstreamError) as info:
        refcodec.read_headers(fuzz.fix_crcs(bytes(raw)))
    assert info.value.clause not in ("8.2.5", "8.1.7")


def test_independent_md5_matches_the_encoder(corpus):
    for _, data in corpus[:3]:
        for layer in refcodec.read_headers(data).layers:
            pictures = refcodec.codec.decode_pictures(layer)
            assert fuzz.independent_md5(pictures, layer.header.sample_bit_depth) == \
                layer.sample_md5


# ---------------------------------------------------------------------------------------
# property tests (default tier: about 3500 cases)
# ---------------------------------------------------------------------------------------

@settings(max_examples=600, suppress_health_check=HEALTH)
@given(data=st.data())
def test_raw_mutations(data):
    """Bit flips, byte overwrites, truncation, inserted and deleted runs, raw splices; half
    of the time with every CRC recomputed afterwards."""
    _, mutated, done = draw_case(data, list(fuzz.RAW_MUTATORS))
    run(mutated, decode=False, mutations=done)


@settings(max_examples=700, suppress_health_check=HEALTH)
@given(data=st.data())
def test_field_boundary_values_with_crcs_fixed(data):
    """Stream header, layer header, length and count fields at 0, 1, max, level limits and
    random large values, with the CRCs recomputed: the change reaches the semantic checks."""
    kinds = ["stream_header_field", "layer_header_field", "unit_length"]
    _, mutated, done = draw_case(data, kinds)
    result = run(mutated, decode=False, mutations=done)
    assert not any(c in ("read_headers 8.2.5", "read_headers 8.1.7") for c in result.clauses)


@settings(max_examples=400, suppress_health_check=HEALTH)
@given(data=st.data())
def test_units_duplicated_dropped_reordered(data):
    _, mutated, done = draw_case(data, ["units", "splice_units"])
    result = run(mutated, decode=False, mutations=done)
    assert "read_headers 8.2.5" not in result.clauses


@settings(max_examples=250, suppress_health_check=HEALTH)
@given(data=st.data())
def test_hevc_payload_mutations_decoded(data):
    """sample_md5, NAL headers, parameter sets and slice data changed, NAL units dropped,
    duplicated, swapped or imported from other seeds (CRC fixed): the parameter-set reader
    and FFmpeg get garbage; a decode that succeeds matches sample_md5."""
    base, mutated, done = draw_case(data, ["hevc"], max_stack=2)
    run(mutated, decode=True, reference=_references()[base], mutations=done)


@settings(max_examples=200, suppress_health_check=HEALTH)
@given(data=st.data())
def test_any_mutation_decoded(data):
    base, mutated, done = draw_case(data, None, max_stack=3)
    run(mutated, decode=True, reference=_references()[base], mutations=done,
        trace=True)


@settings(max_examples=100, suppress_health_check=HEALTH)
@given(data=st.data())
def test_splices_of_two_seeds_decoded(data):
    base, mutated, done = draw_case(data, ["splice_raw", "splice_units"], max_stack=1)
    run(mutated, decode=True, reference=_references()[base], mutations=done)


SEEDS = st.deferred(lambda: fuzz.seeds(_blobs()))


def mutated(base, kinds, max_stack=1):
    return st.deferred(lambda: fuzz.mutated(base, _blobs(), kinds, max_stack))


@settings(max_examples=100, suppress_health_check=HEALTH)
@given(blob=fuzz.with_crcs_fixed(mutated(mutated(SEEDS, ["units", "splice_units"]),
                                         ["hevc", "layer_header_field", "bitflip"])))
def test_composed_strategies(blob):
    """The strategies compose: units reordered, then a payload or field changed, then every
    CRC recomputed."""
    run(blob, decode=True)


@settings(max_examples=300, suppress_health_check=HEALTH)
@given(blob=st.one_of(st.binary(max_size=400),
                 st.binary(max_size=400).map(lambda b: fuzz.MAGIC + b),
                 st.binary(max_size=400).map(lambda b: fuzz.fix_crcs(
                     fuzz.MAGIC + bytes([1, 0, 1, 10, 0, 1, 0, 0, 0, 0, 0, 0]) + b))))
@example(b"")
@example(fuzz.MAGIC)
def test_arbitrary_bytes(blob):
    run(blob, decode=True)


# ---------------------------------------------------------------------------------------
# boundary values, deterministically: refused quickly and before allocating
# ---------------------------------------------------------------------------------------

COUNT_FIELDS = ("batch_size", "num_channels", "height", "width", "tile_rows", "tile_cols")
BOUNDARY = (0, 1, 4097, 65536, (1 << 24) + 1, (1 << 32) - 1)


@pytest.mark.parametrize("seed", ["permuted_tiled_zero_pad", "three_layers"])
def test_count_fields_at_boundaries(corpus, references, seed):
    """Every count field of the first layer at boundary values (num_channels also with the
    per-channel arrays resized to match), CRCs fixed: refused, or decoded and checked, with
    little Python memory."""
    base = dict(corpus)[seed]
    header, units, tail = fuzz.split_stream(base)
    fields = fuzz.parse_layer_header(units[0].payload)
    for name in COUNT_FIELDS:
        for value in BOUNDARY:
            for resize in (False, True) if name == "num_channels" else (False,):
                d = {k: (list(v) if isinstance(v, list) else v) for k, v in fields.items()}
                d[name] = value if name.startswith("tile") is False else min(value, 65535)
                if name.startswith("tile"):
                    d["packing_type"] = 1
                if resize and value <= 4097:
                    if d["layer_flags"] & fuzz.PER_CHANNEL:
                        d["quant_params"] = [d["quant_params"][0]] * value
                    if d["layer_flags"] & fuzz.PERMUTED:
                        d["channel_permutation"] = list(range(value))
                new = [fuzz.Unit(units[0].type, units[0].flags, fuzz.build_layer_header(d)[0])]
                data = fuzz.join_stream(header, new + units[1:], tail)
                run(data, decode=True, reference=references[base], trace=True,
                    mutations=["count_field_boundary"])


@pytest.mark.parametrize("level,count", [(10, 4096), (10, (1 << 32) - 1), (20, 65536),
                                         (20, (1 << 32) - 1)])
def test_declared_arrays_refused_before_allocation(corpus, level, count):
    """num_channels with per-channel parameters and a permutation, the arrays absent: the
    decoder refuses from the counts (11.2) or the missing bytes (8.2.4), allocating no more
    than a few MiB."""
    base = dict(corpus)["permuted_tiled_zero_pad"]
    header, units, tail = fuzz.split_stream(base)
    d = fuzz.parse_layer_header(units[0].payload)
    d["num_channels"] = count
    units[0].payload = fuzz.build_layer_header(d)[0]
    header = header[:11] + bytes([level]) + header[12:]
    data = fuzz.join_stream(header, units, tail)
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError) as info:
            refcodec.decode(data)
        report = verify(data)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert info.value.clause in ("11.2", "8.2.4")
    assert not report.conformant
    assert peak < 4 << 20


# ---------------------------------------------------------------------------------------
# contract violations the fuzzer found (fixed; kept as regression tests)
# ---------------------------------------------------------------------------------------

def padded_amplifier(k: int) -> bytes:
    """A conformant level-10 stream whose layer is k channels of 1x1 samples, each padded
    (pad_bottom = pad_right = 255) to its own 256x256 picture: the HEVC payload is one
    43-byte slice per picture, so the stream is about 46 bytes per channel while decoding
    holds 64 KiB of frames per channel, twice (FFmpeg's frames and the numpy planes)."""
    from refcodec import bitstream
    from refcodec.enums import PackingType, PadMode, QuantizerType, SourceDtype, SourceLayout
    from refcodec.hevc.annexb import nal_unit_type, split_nal_units
    from refcodec.hevc.pyav import PyAVBackend
    from refcodec.records import LayerHeader, QuantParams, StreamHeader
    import hashlib
    payload, hashes = PyAVBackend().encode_pictures(np.zeros((1, 256, 256), np.uint8), 8, 51,
                                                    False, "ultrafast")
    nals = split_nal_units(payload)
    sets = b"".join(b"\x00\x00\x00\x01" + n for n in nals if nal_unit_type(n) >= 32)
    slices = [n for n in nals if nal_unit_type(n) < 32]
    h = LayerHeader(layer_id="amp", source_layout=SourceLayout.NCHW,
                    source_dtype=SourceDtype.FLOAT32, batch_size=1, num_channels=k, height=1,
                    width=1, sample_bit_depth=8, quantizer_type=QuantizerType.UNIFORM,
                    per_channel_quant_flag=False,
                    quant_params=(QuantParams(min_value=0.0, max_value=1.0),),
                    channel_permutation=None, packing_type=PackingType.CHANNEL_PER_PICTURE,
                    tile_rows=1, tile_cols=1, pad_mode=PadMode.ZERO, pad_bottom=255,
                    pad_right=255)
    return bitstream.build_stream(StreamHeader(1, 0, 1, 10, 1),
                                  [(h, hashlib.md5(hashes[0] * k).digest(),
                                    sets + (b"\x00\x00\x01" + slices[0]) * k)])


def test_decoding_memory_is_bounded_by_the_stream_and_level(tmp_path):
    data = padded_amplifier(4096)
    assert len(data) < 200_000
    path = tmp_path / "amp.vfc"
    path.write_bytes(data)
    # in a fresh process, so that its peak RSS is the decoder's
    code = ("import resource, sys, refcodec\n"
            "data = open(sys.argv[1], 'rb').read()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n"
            "    refcodec.decode(data); status = 'decoded'\n"
            "except refcodec.BitstreamError as e:\n"
            "    status = 'refused ' + str(e)\n"
            "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
            "print(status); print(grown)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    status, grown_kib = out[0], int(out[1])
    # refused by a level limit, or decoded with memory proportionate to the 16 KiB tensor
    assert status.startswith("refused") or grown_kib < 64 * 1024, (status, grown_kib)


def many_violations_stream(corpus, channels: int, level: int) -> bytes:
    """A layer with ``channels`` per-channel parameter sets, every one NaN."""
    base = dict(corpus)["log8"]
    header, units, tail = fuzz.split_stream(base)
    d = fuzz.parse_layer_header(units[0].payload)
    d.update(num_channels=channels, layer_flags=fuzz.PER_CHANNEL | fuzz.PERMUTED, height=1,
             width=1, pad_bottom=7, pad_right=7,
             quant_params=[struct.pack(">ff", float("nan"), 1.0)] * channels,
             channel_permutation=list(range(channels)))
    units[0].payload = fuzz.build_layer_header(d)[0]
    return fuzz.join_stream(header[:11] + bytes([level]) + header[12:], units, tail)


def test_verify_work_is_proportionate_to_parsing(corpus, monkeypatch):
    """Locating 4096 violations of one field re-builds the fields before it once, not 4096
    times (it took ~16 s for 65536 at level 20 before): counted, not timed."""
    from refcodec.bitstream import base
    calls = []
    original = base.field_offset
    monkeypatch.setattr(base, "field_offset",
                        lambda *a: calls.append(a[2]) or original(*a))
    data = many_violations_stream(corpus, 4096, 10)
    report = verify(data, decode=False)
    assert len(report.violations) >= 4096
    assert len(calls) == len(set(calls)) <= 10, calls[:20]


# ---------------------------------------------------------------------------------------
# tools/fuzz.py
# ---------------------------------------------------------------------------------------

def _tool(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_tool_runs_a_small_campaign(tmp_path):
    proc = _tool("--cases", "300", "--seed", "5", "--workers", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "300 cases (" in out
    for text in ("Outcomes per call:", "read_headers: ok", "Clause ids", "Slowest case:",
                 "Peak RSS", "Contract violations: 0"):
        assert text in out, text
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fault", ["crash", "hang"])
def test_tool_saves_the_case_of_a_crashed_or_hung_worker(tmp_path, fault):
    proc = _tool("--cases", "40", "--out", str(tmp_path), "--hard-timeout", "2",
                 env={"VFC_FUZZ_INJECT_FAULT": f"{fault}:17"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "40 cases (" in proc.stdout
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert len(saved) == 2 and saved[0].startswith(fault) and saved[0].endswith(".txt")
    assert "case 17 of --seed 0" in (tmp_path / saved[0]).read_text()


# ---------------------------------------------------------------------------------------
# slow tier
# ---------------------------------------------------------------------------------------

@pytest.mark.slow
@settings(max_examples=5000, suppress_health_check=HEALTH)
@given(data=st.data())
def test_slow_any_mutation_container(data):
    _, mutated, done = draw_case(data, None, max_stack=3)
    run(mutated, decode=False, mutations=done)


@pytest.mark.slow
@settings(max_examples=2000, suppress_health_check=HEALTH)
@given(data=st.data())
def test_slow_any_mutation_decoded(data):
    base, mutated, done = draw_case(data, None, max_stack=3)
    run(mutated, decode=True, reference=_references()[base], mutations=done, trace=True)


@pytest.mark.slow
def test_slow_campaign(tmp_path):
    proc = _tool("--cases", "30000", "--seed", str(int(time.time()) % 100000),
                 "--out", str(tmp_path), timeout=3600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
