"""refcodec.hevc.external: an external HEVC encoder run from a command template.

A fake encoder (a Python script written into tmp_path, run with sys.executable) stands for
the failure modes; the x265 command line (Debian's 3.5, marked hevc, skipped when absent)
for real encoding.  Every picture MD5 the backend returns is checked against FFmpeg's
decoding of the payload.
"""

import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from refcodec.errors import BackendError, EncoderInputError
from refcodec.hevc import annexb, external, params, pyav, slices
from refcodec.hevc.external import TEMPLATES, ExternalBackend

INTEROP = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "interop",
                            Path("/work/shared/interop")) if p.is_dir()), None)
needs_interop = pytest.mark.skipif(INTEROP is None, reason="shared/interop is absent")
X265 = shutil.which("x265")
needs_x265 = pytest.mark.skipif(X265 is None, reason="the x265 command line is absent")

FAKE = r'''
import json, os, shutil, subprocess, sys, time
mode, log = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
with open(log, "w") as out:
    json.dump({"argv": args, "cwd": os.getcwd(), "pid": os.getpid()}, out)
named = dict(a.split("=", 1) for a in args)
if mode == "copy":
    shutil.copyfile(named["input"], log + ".yuv")
    shutil.copyfile(named["source"], named["output"])
elif mode == "garbage":      # an IDR slice segment of no PPS
    open(named["output"], "wb").write(b"\x00\x00\x01\x26\x01\xff\xffgarbage")
elif mode == "text":
    open(named["output"], "wb").write(b"not an HEVC stream")
elif mode == "fail":
    sys.stderr.write("x265 [info]: starting\nsomething went wrong: no such option\n\n")
    sys.exit(1)
elif mode == "empty":
    open(named["output"], "wb").close()
elif mode == "nothing":
    print("done, but wrote nothing")
elif mode in ("sleep", "hang"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(log + ".pids", "w") as out:
        json.dump([os.getpid(), child.pid], out)
    if mode == "hang":
        sys.stderr.write("x265 [error]: Picture size must be at least one CTU\n")
        sys.stderr.flush()
    time.sleep(120)
'''


@pytest.fixture
def fake(tmp_path):
    """fake(mode, source=None, **kw) -> (backend, log path): the fake encoder in ``mode``;
    ``source`` is the payload it copies."""
    script = tmp_path / "fake_encoder.py"
    script.write_text(FAKE)

    def make(mode, source: bytes | None = None, extra="", **kwargs):
        log = tmp_path / f"{mode}.json"
        template = (f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {mode} "
                    f"{shlex.quote(str(log))} input={{input}} output={{output}} "
                    f"size={{width}}x{{height}} bits={{bit_depth}} n={{frames}} qp={{qp}} "
                    f"preset={{preset}} ctu={{ctu}} {extra}")
        if source is not None:
            src = tmp_path / f"{mode}.hevc"
            src.write_bytes(source)
            template += f" source={shlex.quote(str(src))}"
        return ExternalBackend(template, **kwargs), log
    return make


def pictures(rng, count=6, height=32, width=48, bit_depth=8):
    base = rng.integers(0, 6, (count, height, width)).cumsum(axis=2) << (bit_depth - 8)
    return np.clip(base, 0, (1 << bit_depth) - 1).astype(np.uint8 if bit_depth == 8
                                                          else np.uint16)


def md5s_of(decoded, bit_depth):
    dtype = np.uint8 if bit_depth == 8 else "<u2"
    return [hashlib.md5(np.ascontiguousarray(p, dtype=dtype).tobytes()).digest()
            for p in decoded]


def ffmpeg_md5s(payload, shape, bit_depth):
    count, height, width = shape
    return md5s_of(pyav.PyAVBackend().decode_pictures(payload, count, height, width,
                                                      bit_depth), bit_depth)


def alive(pid: int) -> bool:
    """A process that runs (a zombie waiting for a parent that does not reap is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:     # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def libx265_with_seis(pics, bit_depth, qp=30):
    """libx265's stream as it writes it (hash SEIs kept) and its picture MD5s."""
    units = pyav.encode_access_units(pics, bit_depth, qp, False, "ultrafast")
    _, hashes = annexb.repack_access_units(units)
    return annexb.join_nal_units([u for au in units for u in annexb.split_nal_units(au)]), \
        hashes


# ---- the fake encoder ----


@pytest.mark.hevc
@pytest.mark.parametrize("bit_depth", [8, 10])
def test_round_trip_without_hash_seis_decodes_with_ffmpeg(fake, rng, bit_depth):
    pics = pictures(rng, bit_depth=bit_depth)
    payload, hashes = pyav.PyAVBackend().encode_pictures(pics, bit_depth, 30, False)
    assert slices.picture_hashes_in_output_order(payload) is None    # SEIs taken out
    backend, log = fake("copy", payload)
    got, md5s = backend.encode_pictures(pics, bit_depth, 31, False, "fast")
    assert got == payload and md5s == hashes
    seen = json.loads(log.read_text())
    assert seen["argv"][2:] == ["size=48x32", f"bits={bit_depth}", "n=6", "qp=31",
                                "preset=fast", "ctu=32", f"source={log.with_suffix('.hevc')}"]
    # {input}: the pictures in order, 1 byte per sample at 8 bits, else 2 bytes LE
    raw = Path(str(log) + ".yuv").read_bytes()
    assert raw == pics.astype(np.uint8 if bit_depth == 8 else "<u2").tobytes()
    # the encoder ran in the temporary folder, which is gone
    folder = Path(seen["cwd"])
    assert Path(seen["argv"][0].split("=", 1)[1]).parent == folder
    assert not folder.exists()


@pytest.mark.hevc
def test_hash_seis_in_output_order_are_taken_and_checked(fake, rng):
    pics = pictures(rng)
    payload, hashes = libx265_with_seis(pics, 8)
    backend, _ = fake("copy", payload)
    got, md5s = backend.encode_pictures(pics, 8, 30, False)
    assert got == payload               # returned as written, SEIs and all
    assert md5s == hashes == ffmpeg_md5s(payload, pics.shape, 8)


@pytest.mark.hevc
def test_hash_seis_that_ffmpeg_contradicts(fake, rng):
    pics = pictures(rng)
    payload, hashes = libx265_with_seis(pics, 8)
    units = annexb.split_nal_units(payload)
    k = next(i for i, u in enumerate(units) if annexb.picture_md5(u) == hashes[2])
    wrong = bytes(15) + b"\x01"
    units[k] = units[k][:2] + annexb.emulation_prevention(bytes([132, 17, 0]) + wrong
                                                          + b"\x80")
    assert annexb.picture_md5(units[k]) == wrong
    tampered = annexb.join_nal_units(units)
    backend, _ = fake("copy", tampered)
    with pytest.raises(BackendError, match=r"FFmpeg decodes 1 of the 6 pictures .* "
                                           r"\(first: picture 2 in output order\)"):
        backend.encode_pictures(pics, 8, 30, False)
    trusting, _ = fake("copy", tampered, cross_check=False)
    assert trusting.encode_pictures(pics, 8, 30, False)[1][2] == wrong


@pytest.mark.parametrize("mode, pattern", [
    ("garbage", r"wrote no valid HEVC stream: \[10\.1\] slice_pic_parameter_set_id 0 "
                r"refers to no PPS"),
    ("text", r"wrote no coded picture \(18 bytes\)")])
def test_garbage_output(fake, rng, mode, pattern):
    backend, _ = fake(mode)
    with pytest.raises(BackendError, match=pattern):
        backend.encode_pictures(pictures(rng), 8, 30, False)


def test_a_failing_encoder_is_named_with_its_last_stderr_line(fake, rng):
    backend, _ = fake("fail")
    with pytest.raises(BackendError) as info:
        backend.encode_pictures(pictures(rng), 8, 30, False)
    message = str(info.value)
    assert "exited with status 1: something went wrong: no such option" in message
    assert "\n" not in message and "python" in message


@pytest.mark.parametrize("mode, message", [("empty", "wrote an empty output file"),
                                           ("nothing", "wrote no output file")])
def test_no_output(fake, rng, mode, message):
    backend, _ = fake(mode)
    with pytest.raises(BackendError, match=message):
        backend.encode_pictures(pictures(rng), 8, 30, False)


@pytest.mark.parametrize("mode", ["sleep", "hang"])
def test_timeout_kills_the_process_group(fake, rng, monkeypatch, mode):
    """sleep: past the 1 s timeout; hang: an error line, then no exit (x265 3.5's CLI)."""
    monkeypatch.setattr(external, "ERROR_GRACE", 0.2)
    backend, log = fake(mode, timeout=1 if mode == "sleep" else 60,
                        error_pattern=r"^x265 \[error\]:")
    with pytest.raises(BackendError) as info:
        backend.encode_pictures(pictures(rng), 8, 30, False)
    if mode == "sleep":
        assert "timed out after 1 s and was killed" in str(info.value)
    else:
        assert "printed an error and did not exit (killed): x265 [error]: Picture size" \
            in str(info.value)
    pids = json.loads(Path(str(log) + ".pids").read_text())
    assert not any(alive(pid) for pid in pids)      # the encoder and the child it started
    assert not Path(json.loads(log.read_text())["cwd"]).exists()


def test_a_missing_program(rng):
    backend = ExternalBackend("/nonexistent/encoder {input} {output}")
    with pytest.raises(BackendError, match="cannot run '/nonexistent/encoder'"):
        backend.encode_pictures(pictures(rng), 8, 30, False)


@pytest.mark.parametrize("template, pattern", [
    ("enc {output}", r"has no \{input\} placeholder"),
    ("enc {input}", r"has no \{output\} placeholder"),
    ("enc in", r"has no \{input\} and no \{output\}"),
    ("enc {input} {output} {fps}", r"unknown placeholder \{fps\}; the placeholders are"),
    ("enc {input!r} {output}", r"unknown placeholder \{input!r\}"),
    ("enc {input.name} {output}", r"unknown placeholder \{input.name\}"),
    ("enc {} {input} {output}", r"unknown placeholder \{\}"),
    ("enc {input} {output} {", r"brace"),
    ("enc {input} {output} }", r"brace"),
    ("enc 'unterminated {input} {output}", r"does not split"),
    ("", r"empty"),
    ("   ", r"empty"),
])
def test_bad_templates(template, pattern):
    with pytest.raises(EncoderInputError, match=pattern):
        ExternalBackend(template)


def test_bad_options(rng, fake):
    with pytest.raises(EncoderInputError, match="timeout"):
        ExternalBackend("enc {input} {output}", timeout=0)
    with pytest.raises(EncoderInputError, match="regular expression"):
        ExternalBackend("enc {input} {output}", error_pattern="(")
    with pytest.raises(EncoderInputError, match="lossless"):
        ExternalBackend("enc {input} {output}", lossless_template="enc {input}")
    with pytest.raises(EncoderInputError, match="no encoder template 'ffmpeg'"):
        ExternalBackend.named("ffmpeg")
    backend, _ = fake("garbage")
    with pytest.raises(EncoderInputError, match="no lossless encoder command"):
        backend.encode_pictures(pictures(rng), 8, 30, True)
    for bad, bit_depth in ((pictures(rng)[0], 8), (pictures(rng).astype(float), 8),
                           (pictures(rng, bit_depth=10), 8), (pictures(rng), 9)):
        with pytest.raises(EncoderInputError):
            backend.encode_pictures(bad, bit_depth, 30, False)
    with pytest.raises(EncoderInputError, match="qp"):
        backend.encode_pictures(pictures(rng), 8, 52, False)
    with pytest.raises(EncoderInputError, match="preset"):
        backend.encode_pictures(pictures(rng), 8, 30, False, "--medium")


def test_ready_made_templates_parse():
    assert {"x265", "kvazaar", "hm"} <= set(TEMPLATES)
    for name in TEMPLATES:
        backend = ExternalBackend.named(name)
        assert backend.name == name and backend.lossless_argv is not None
    assert "--input-csp" in TEMPLATES["x265"].command and "i400" in TEMPLATES["x265"].command
    assert "--hash 1" in TEMPLATES["x265"].command and "--no-info" in TEMPLATES["x265"].command
    assert "--input-format P400" in TEMPLATES["kvazaar"].command
    assert "--hash md5" in TEMPLATES["kvazaar"].command and TEMPLATES["kvazaar"].rewrite_profile
    hm = TEMPLATES["hm"].command
    assert "--InputChromaFormat=400 --ChromaFormatIDC=400" in hm
    assert "--SEIDecodedPictureHash=1" in hm


@pytest.mark.parametrize("width, height, ctu", [(16, 16, 16), (24, 16, 16), (32, 32, 16),
                                                (40, 32, 32), (64, 64, 32), (72, 64, 64),
                                                (128, 16, 16), (8, 8, 16)])
def test_ctu_size_keeps_two_columns(width, height, ctu):
    assert external.ctu_size(width, height) == ctu


# ---- kvazaar's and HM's streams (shared/interop) ----


def interop(name):
    return (INTEROP / "payloads" / f"{name}.hevc").read_bytes()


@needs_interop
@pytest.mark.parametrize("name", ["kvz_wpp_slices_small", "kvz_inter_gop8_q27"])
def test_rewrite_monochrome_profile_makes_the_mono_payloads(name):
    got = external.rewrite_monochrome_profile(interop(name), 8)
    assert got == interop(f"{name}_mono")
    assert external.rewrite_monochrome_profile(got, 8) is got       # nothing to do


@needs_interop
@pytest.mark.hevc
def test_a_kvazaar_stream_needs_the_profile_rewrite(fake):
    payload = interop("kvz_wpp_slices_small")          # 8 pictures of 16x128, --hash md5
    pics = np.zeros((8, 128, 16), np.uint8)             # the fake encoder ignores them
    refused, _ = fake("copy", payload)
    with pytest.raises(BackendError, match=r"the format refuses: \[10\.2\] general_profile_idc"):
        refused.encode_pictures(pics, 8, 27, False)
    backend, _ = fake("copy", payload, rewrite_profile=True)
    got, md5s = backend.encode_pictures(pics, 8, 27, False)
    assert got == interop("kvz_wpp_slices_small_mono")
    assert md5s == slices.picture_hashes_in_output_order(payload) \
        == ffmpeg_md5s(got, pics.shape, 8)


@needs_interop
@pytest.mark.hevc
def test_hms_zero_conformance_window_is_accepted_and_a_cropping_one_is_not(fake):
    pics = np.zeros((64, 56, 56), np.uint8)
    backend, _ = fake("copy", interop("hm_randomaccess_rext_q32"))
    got, md5s = backend.encode_pictures(pics, 8, 32, False)
    assert md5s == slices.picture_hashes_in_output_order(got)
    assert [p.decode_index for p in slices.output_order(got)] != list(range(64))
    cropping, _ = fake("copy", interop("hm_confwin_explicit"))
    with pytest.raises(BackendError, match=r"cropped by a conformance window .* 10\.5"):
        cropping.encode_pictures(pics, 8, 22, False)


@needs_interop
@pytest.mark.parametrize("shape, bit_depth, message", [
    ((63, 56, 56), 8, "stream of 64 output pictures"),
    ((64, 48, 56), 8, "as 56x56, 8-bit"),
    ((64, 56, 56), 10, "as 56x56, 8-bit"),
])
def test_streams_of_other_pictures_are_refused(fake, shape, bit_depth, message):
    backend, _ = fake("copy", interop("hm_intra_rext_q22"))
    with pytest.raises(BackendError, match=message):
        backend.encode_pictures(np.zeros(shape, np.uint16), bit_depth, 22, False)


# ---- the x265 command line ----


@needs_x265
@pytest.mark.hevc
@pytest.mark.parametrize("bit_depth, height, width, lossless", [
    (8, 16, 16, False), (8, 24, 40, False), (8, 56, 56, True), (10, 32, 32, False),
    (10, 16, 72, True), (12, 40, 24, False), (8, 64, 136, False)])
def test_x265_all_intra(rng, bit_depth, height, width, lossless):
    pics = pictures(rng, count=5, height=height, width=width, bit_depth=bit_depth)
    payload, md5s = ExternalBackend.named("x265", timeout=120).encode_pictures(
        pics, bit_depth, 27, lossless)
    decoded = pyav.PyAVBackend().decode_pictures(payload, 5, height, width, bit_depth)
    assert md5s == md5s_of(decoded, bit_depth)
    assert slices.picture_hashes_in_output_order(payload) == md5s    # from x265's SEIs
    if lossless:
        assert np.array_equal(decoded, pics)
    else:
        assert params.idr_slice_qps(payload) == [27] * 5
    assert params.check_payload(payload, bit_depth=bit_depth, picture_width=width,
                                picture_height=height, num_pictures=5) == []


@needs_x265
@pytest.mark.hevc
@pytest.mark.parametrize("bit_depth, height, width, lossless", [
    (8, 32, 48, False), (10, 56, 56, False), (8, 24, 40, True)])
def test_x265_inter_md5s_are_in_output_order(rng, bit_depth, height, width, lossless):
    pics = pictures(rng, count=20, height=height, width=width, bit_depth=bit_depth)
    payload, md5s = ExternalBackend.named("x265-inter", timeout=120).encode_pictures(
        pics, bit_depth, 30, lossless)
    decoded = pyav.PyAVBackend().decode_pictures(payload, 20, height, width, bit_depth)
    assert md5s == md5s_of(decoded, bit_depth)
    out = slices.output_order(payload)
    assert [p.decode_index for p in out] != list(range(20))     # reordered: B pyramid
    in_decoding_order = [p.md5 for p in slices.pictures(payload)]
    assert in_decoding_order != md5s and sorted(in_decoding_order) == sorted(md5s)
    if lossless:
        assert np.array_equal(decoded, pics)


@needs_x265
@pytest.mark.hevc
def test_x265_refuses_what_it_cannot_code(rng):
    with pytest.raises(BackendError, match="cannot code 8x32 pictures"):
        ExternalBackend.named("x265").encode_pictures(pictures(rng, height=32, width=8), 8,
                                                      30, False)
    with pytest.raises(BackendError, match="cannot code 16x32 pictures"):
        ExternalBackend.named("x265-inter").encode_pictures(
            pictures(rng, height=32, width=16), 8, 30, False)


@needs_x265
@pytest.mark.hevc
def test_x265_that_prints_an_error_and_hangs_is_killed(rng, monkeypatch):
    """A CTU larger than the picture: x265 3.5 prints its error, then either never exits
    (killed ERROR_GRACE seconds later) or crashes (SIGSEGV), run to run."""
    monkeypatch.setattr(external, "ERROR_GRACE", 0.5)
    template = TEMPLATES["x265"].command.replace("--ctu {ctu}", "--ctu 64")
    backend = ExternalBackend(template, error_pattern=r"^x265 \[error\]:", timeout=120)
    with pytest.raises(BackendError, match=r"(printed an error and did not exit \(killed\)|"
                                           r"was killed by signal 11): x265 \[error\]: "):
        backend.encode_pictures(pictures(rng, height=32, width=32), 8, 30, False)
