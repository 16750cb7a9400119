"""FFmpeg as the normative decoder's HEVC decoder (refcodec.hevc.pyav, refcodec.hevc.feed):
threads that never change the result, FFmpeg's errors as clause 10.1 violations with its
own message, and parameter sets in any order H.265 allows."""

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest

from refcodec.errors import ConformanceViolation
from refcodec.hevc import feed, pyav
from refcodec.hevc.annexb import (PPS_NUT, SPS_NUT, VPS_NUT, join_nal_units, nal_unit_type,
                                  split_nal_units)

pytestmark = pytest.mark.hevc

INTEROP = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "interop",
                            Path("/work/shared/interop")) if p.is_dir()), None)
needs_interop = pytest.mark.skipif(INTEROP is None, reason="../shared/interop is absent")


def interop_case(name):
    cases = {c["name"]: c for c in json.loads((INTEROP / "cases.json").read_text())["cases"]}
    return cases[name], (INTEROP / "payloads" / f"{name}.hevc").read_bytes()


def planes_md5(pictures) -> str:
    return hashlib.md5(np.ascontiguousarray(pictures, dtype="<u2" if pictures.dtype != np.uint8
                                            else np.uint8).tobytes()).hexdigest()


def pictures(rng, count=8, size=32):
    base = rng.integers(0, 8, (count, size, size)).cumsum(axis=2)
    return np.clip(base * 2, 0, 255).astype(np.uint8)


@needs_interop
@pytest.mark.parametrize("frame_threads", [False, True])
def test_wpp_dependent_slices_decode_alike_on_any_cpu_count(monkeypatch, frame_threads):
    """kvazaar's WPP payload with a dependent slice segment per CTU row (16x128 pictures):
    FFmpeg's slice threads decode it wrongly, so the decoder never uses them.  The thread
    count FFmpeg would pick on a 16-core machine is forced, so the test does not depend on
    this machine's CPUs; frame threads are forced on too (the pictures are below the size
    from which the decoder turns them on by itself)."""
    case, payload = interop_case("kvz_wpp_slices_small_mono")
    monkeypatch.setattr(pyav, "FRAME_THREAD_COUNT", 16)
    if frame_threads:
        monkeypatch.setattr(pyav, "FRAME_THREADS_MIN_SAMPLES", 1)
    count, height, width = case["hm_decoder_pictures"]
    got = pyav.PyAVBackend().decode_pictures(payload, count, height, width, 8)
    assert planes_md5(got) == case["hm_decoded_planes_md5"]


def test_the_decoder_never_uses_slice_threads():
    for frame_threads in (False, True):
        ctx = pyav.decoder_context(frame_threads, 16)
        assert ctx.thread_type != av.codec.context.ThreadType.SLICE
        assert "SLICE" not in str(ctx.thread_type)
        assert ctx.thread_count == (16 if frame_threads else 1)


@needs_interop
def test_slice_threads_would_get_it_wrong():
    """Why: FFmpeg's slice threads (its default, with one thread per CPU) mis-decode the
    payload.  If FFmpeg fixes this, this test says so and can go."""
    case, payload = interop_case("kvz_wpp_slices_small_mono")
    ctx = av.CodecContext.create("hevc", "r")
    ctx.thread_type, ctx.thread_count = "SLICE", 16
    frames = [f for p in ctx.parse(payload) + ctx.parse(None) for f in ctx.decode(p)]
    frames += ctx.decode(None)
    got = np.stack([f.to_ndarray() for f in frames])
    assert planes_md5(got) != case["hm_decoded_planes_md5"]


@needs_interop
def test_a_dropped_reference_picture_is_10_1_with_ffmpegs_message():
    """A P picture that later pictures refer to is taken out: FFmpeg would drop the pictures
    that need it and decode the rest; with error detection it refuses, and says why."""
    _, payload = interop_case("x265_inter_b3_q27")
    units = split_nal_units(payload)
    vcl = [i for i, u in enumerate(units) if nal_unit_type(u) < 32 and u[2] & 0x80]
    broken = join_nal_units(units[:vcl[1]] + units[vcl[1] + 1:])
    with pytest.raises(ConformanceViolation) as info:
        pyav.PyAVBackend().decode_pictures(broken, 64, 56, 56, 8, offset=100, path="p")
    assert info.value.clause == "10.1"
    assert (info.value.offset, info.value.path) == (100, "p")
    assert "does not decode after" in info.value.message
    assert "[hevc]" in info.value.message and "ref" in info.value.message.lower()


def test_ffmpeg_messages_do_not_reach_the_terminal(capfd, rng):
    payload = _x265(pictures(rng), "keyint=8:min-keyint=8:bframes=0")
    units = split_nal_units(payload)
    vcl = [i for i, u in enumerate(units) if nal_unit_type(u) < 32]
    broken = join_nal_units(units[:vcl[1]] + units[vcl[1] + 1:])
    with pytest.raises(ConformanceViolation, match=r"^\[10\.1\].*\[hevc\]"):
        pyav.PyAVBackend().decode_pictures(broken, 8, 32, 32, 8)
    assert capfd.readouterr().err == ""
    assert av.logging.get_level() is None      # FFmpeg's logging is off again


def reorder(payload: bytes, order) -> bytes:
    units = split_nal_units(payload)
    head = {nal_unit_type(u): u for u in units[:3]}
    return join_nal_units([head[t] for t in order] + units[3:])


@pytest.mark.parametrize("order", [(VPS_NUT, PPS_NUT, SPS_NUT), (SPS_NUT, VPS_NUT, PPS_NUT),
                                   (PPS_NUT, SPS_NUT, VPS_NUT)])
def test_parameter_sets_in_any_order_decode(rng, order):
    pics = pictures(rng)
    payload, hashes = pyav.PyAVBackend().encode_pictures(pics, 8, 30, False)
    moved = reorder(payload, order)
    assert feed.needs_reordering(moved)
    assert not feed.needs_reordering(payload)
    assert feed.in_decoder_order(payload) is payload        # no copy when not needed
    got = pyav.PyAVBackend().decode_pictures(moved, 8, 32, 32, 8)
    assert np.array_equal(got, pyav.PyAVBackend().decode_pictures(payload, 8, 32, 32, 8))


def _x265(pics, params):
    from fractions import Fraction
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width = ctx.height = pics.shape[1]
    ctx.pix_fmt, ctx.time_base = "gray", Fraction(1, 25)
    ctx.options = {"preset": "ultrafast", "x265-params": f"keyint=1:info=0:log-level=none:"
                                                       f"pools=1:frame-threads=1:{params}"}
    ctx.open()
    out = []
    for i, p in enumerate(pics):
        frame = av.VideoFrame.from_ndarray(p, format="gray")
        frame.pts = i
        out += [bytes(x) for x in ctx.encode(frame)]
    return b"".join(out + [bytes(x) for x in ctx.encode(None)])


def test_a_changed_sps_and_its_pps_in_any_order_decode(rng):
    """Two sequences whose SPS (id 0) differ, the second with its PPS before its SPS:
    FFmpeg discards the PPS of an SPS whose content changes, and one it has no SPS for."""
    pics = pictures(rng)
    first, second = _x265(pics[:4], "sao=1:qp=20"), _x265(pics[4:], "sao=0:qp=40")
    assert split_nal_units(first)[1] != split_nal_units(second)[1]        # the SPS changes
    joined = first + reorder(second, (VPS_NUT, PPS_NUT, SPS_NUT))
    assert feed.needs_reordering(joined)
    got = pyav.PyAVBackend().decode_pictures(joined, 8, 32, 32, 8)
    want = np.concatenate([pyav.PyAVBackend().decode_pictures(p, 4, 32, 32, 8)
                           for p in (first, second)])
    assert np.array_equal(got, want)


def test_b_pictures_give_picture_md5s_in_output_order(rng):
    """libx265 with B pictures: access units come in decoding order, sample_md5 follows the
    output order (clause 9.2); the MD5s in decoding order would not match."""
    from refcodec.codec import planes_md5 as picture_md5s
    from refcodec.hevc.annexb import repack_access_units
    pics = pictures(rng, count=12)
    backend = pyav.PyAVBackend("keyint=16:min-keyint=16:bframes=3:b-pyramid=1:ctu=16")
    payload, hashes = backend.encode_pictures(pics, 8, 30, False)
    decoded = backend.decode_pictures(payload, 12, 32, 32, 8)
    assert picture_md5s(decoded, 8) == hashes
    in_decoding_order = repack_access_units(pyav.encode_access_units(
        pics, 8, 30, False, "medium", backend.x265_params))[1]
    assert in_decoding_order != hashes and sorted(in_decoding_order) == sorted(hashes)


def test_frame_threads_only_for_several_large_pictures():
    """FFmpeg's frame threads decode different pictures at once: none for one picture,
    however large; from FRAME_THREADS_MIN_SAMPLES samples per picture otherwise."""
    side = int(pyav.FRAME_THREADS_MIN_SAMPLES ** 0.5)
    assert not pyav.use_frame_threads(1, 4096, 4096)
    assert pyav.use_frame_threads(2, side, side)
    assert not pyav.use_frame_threads(100, side - 1, side - 1)
