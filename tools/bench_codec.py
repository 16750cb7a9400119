#!/usr/bin/env python3
"""Benchmark refcodec.encode / refcodec.decode against bare libx265 / bare FFmpeg.

For each feature-tensor shape (batch 1, 224x224 input, VGG16 and ResNet-50 layers) this
measures, in one process:

* ``refcodec.encode(x, EncoderConfig(...))`` and ``refcodec.decode(data)``;
* the baseline on the *same* pictures: bare libx265 through
  ``refcodec.hevc.pyav.encode_access_units`` (the pictures built exactly as the encoder
  builds them: ``quant.choose_params`` + ``quant.quantize``, ``refcodec.layer._layer_header``,
  ``packing.pack``), and bare FFmpeg decoding of the same HEVC payload
  (``refcodec.hevc.pyav.decode_frames`` + ``frame.to_ndarray()`` per frame);
* the pieces refcodec adds around them (quantize, pack, Annex-B repack, container, parse,
  sample MD5, unpack, dequantize), each timed on its own.

Measurements are interleaved: every repeat runs refcodec and the baseline back to back
(in alternating order), after one warm-up of everything, so that drift hits both alike.
Times are wall-clock (time.perf_counter); the tables give medians.  Ratios are printed,
never asserted (targets: encode <= 1.05, decode <= 1.10 of the bare baseline).

The tensors are synthetic: deterministic (seeded) smooth Gaussian random fields per
channel, through ReLU (about half zeros), scaled to 0..~20 -- real shapes, not real
activations.

    python tools/bench_codec.py --repeats 5 --markdown docs/bench/codec.md \
        --json docs/bench/codec.json
    python tools/bench_codec.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

import refcodec
from refcodec import EncoderConfig, bitstream, codec, packing, quant, threads
from refcodec import layer as layer_unit
from refcodec.enums import Profile, SourceDtype
from refcodec.records import StreamHeader
from refcodec.syntax import VERSION_MAJOR
from refcodec.hevc import annexb, pyav
from refcodec.testconditions import FEATURE_SHAPES

# ------------------------------------------------------------------------------------
# Shapes and data
# ------------------------------------------------------------------------------------

SHAPES: dict[str, tuple[int, int, int, int]] = {
    name: (1, *chw) for name, chw in FEATURE_SHAPES.items()}   # batch 1, 224 x 224 input
QUICK_SHAPES = ("vgg16.pool5", "resnet50.pool1", "vgg16.conv5")
QUICK_REPEATS = 3
#: Cheap shapes repeat beyond --repeats until this much time went into their timed repeats
#: (a full run stays within ~6 minutes on a 2-core machine), up to MAX_REPEATS.
MIN_SECONDS = 20.0
MAX_REPEATS = 30
#: Decoding is timed in a phase of its own, with at least this many repeats, more until they
#: took DECODE_MIN_SECONDS (at most DECODE_MAX_REPEATS)
DECODE_REPEATS = 21
DECODE_MIN_SECONDS = 10.0
DECODE_MAX_REPEATS = 61
TARGET_ENCODE, TARGET_DECODE = 1.05, 1.10


def synthetic_features(name: str, shape: tuple[int, int, int, int], seed: int = 0,
                       chunk: int = 64) -> np.ndarray:
    """ReLU-like float32 features: per channel, white noise low-pass filtered by a Gaussian
    (in the FFT domain, std ``max(0.75, W/112)`` pixels), standardised, shifted by a small
    random bias (so each channel has its own share of zeros, ~50% on average), ReLU, and
    scaled by a per-channel gain in [1, 4] (values 0..~20).  Deterministic in (name, seed)."""
    n, c, h, w = shape
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    sigma = max(0.75, w / 112)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    transfer = np.exp(-2.0 * (math.pi * sigma) ** 2 * (fx ** 2 + fy ** 2))
    out = np.empty(shape, dtype=np.float32)
    for c0 in range(0, c, chunk):
        k = min(chunk, c - c0)
        noise = rng.standard_normal((n, k, h, w))
        field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(h, w))
        field -= field.mean(axis=(-2, -1), keepdims=True)
        field /= field.std(axis=(-2, -1), keepdims=True)
        field += rng.normal(0.0, 0.25, (n, k, 1, 1))
        np.maximum(field, 0.0, out=field)
        field *= rng.uniform(1.0, 4.0, (n, k, 1, 1))
        out[:, c0:c0 + k] = field
    return out


# ------------------------------------------------------------------------------------
# Machine
# ------------------------------------------------------------------------------------

def x265_version() -> str | None:
    """libx265's version string: PyAV has no API for it, so code one 16x16 picture with
    libx265's info SEI on (the default) and read the string from the stream."""
    import av
    try:
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width = ctx.height = 16
        ctx.pix_fmt = "gray"
        ctx.time_base = Fraction(1, 25)
        ctx.options = {"x265-params": "log-level=none"}
        ctx.open()
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16), np.uint8), format="gray")
        data = b"".join(bytes(p) for p in ctx.encode(frame))
        data += b"".join(bytes(p) for p in ctx.encode(None))
    except Exception:  # noqa: BLE001 - informative only
        return None
    m = re.search(rb"x265 \(build \d+\) - [0-9A-Za-z.+\-_]+", data)
    return m.group(0).decode("ascii", "replace") if m else None


def machine_info() -> dict:
    import av
    cpu = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False,
                                capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "nproc": affinity,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "av": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "libx265": x265_version(),
        "refcodec": refcodec.__version__,
        "git_commit": commit,
    }


# ------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------

def timed(fn, *args):
    """(wall seconds, process CPU seconds of all threads, result)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn(*args)
    t1 = time.perf_counter()
    return t1 - t0, time.process_time() - c0, result


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# The bare HEVC calls, held before any patching (the baselines always use these).
ENCODE_ACCESS_UNITS = pyav.encode_access_units
DECODE_FRAMES = pyav.decode_frames
ITER_FRAMES = pyav.iter_frames


class InnerTimer:
    """While active, times every call refcodec makes to pyav.encode_access_units and the
    frames it pulls from pyav.iter_frames (module globals the backend looks up at call
    time), so that a refcodec run can be split into its own HEVC calls and the rest, in the
    same run."""

    def __init__(self):
        self.seconds = 0.0

    def _wrap(self, fn):
        def timed_call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed_call

    def _wrap_iter(self, fn):
        def timed_iter(*args, **kwargs):
            frames = fn(*args, **kwargs)
            while True:
                t0 = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                finally:
                    self.seconds += time.perf_counter() - t0
                yield frame
        return timed_iter

    def __enter__(self):
        self.seconds = 0.0
        pyav.encode_access_units = self._wrap(ENCODE_ACCESS_UNITS)
        pyav.iter_frames = self._wrap_iter(ITER_FRAMES)
        return self

    def __exit__(self, *exc):
        pyav.encode_access_units = ENCODE_ACCESS_UNITS
        pyav.iter_frames = ITER_FRAMES


def bare_decode(payload: bytes, frame_threads: bool) -> list[np.ndarray]:
    """Bare FFmpeg: decode every frame and take its samples, with the same threading choice
    refcodec makes for the picture size."""
    return [frame.to_ndarray() for frame in DECODE_FRAMES(payload, frame_threads)]


def frames_to_planes(frames, num: int, height: int, width: int, bit_depth: int) -> np.ndarray:
    """What PyAVBackend.decode_pictures does with the frames once decoded (its checks and
    its copy into one array), without raising."""
    want_fmt = pyav.PIX_FMT[bit_depth]
    bad = 0
    if len(frames) != num:
        bad += 1
    out = np.empty((num, height, width), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    for i, frame in enumerate(frames):
        fmt = frame.format.name
        if fmt != want_fmt:
            bad += 1
        if (frame.height, frame.width) != (height, width):
            bad += 1
        pyav.copy_samples(frame, out[i])
    if bad:
        raise RuntimeError("the decoded frames do not match the layer")
    return out


def bare_decode_other_threading(payload: bytes, frame_threads: bool) -> list[np.ndarray]:
    """bare_decode with the other threading choice, to show the size threshold's effect."""
    return bare_decode(payload, not frame_threads)


def bench_shape(name: str, shape, cfg: EncoderConfig, repeats: int, seed: int,
                min_seconds: float = 0.0, max_repeats: int = MAX_REPEATS,
                decode_repeats: int = DECODE_REPEATS,
                decode_min_seconds: float = DECODE_MIN_SECONDS) -> dict:
    x = synthetic_features(name, shape, seed)
    qtype = quant.QUANTIZER_NAMES[cfg.quantizer]
    bd = cfg.bit_depth
    backend = pyav.PyAVBackend()

    # The pictures exactly as codec.encode builds them.
    params = quant.choose_params(x, qtype, bd, cfg.per_channel)
    samples = quant.quantize(x, qtype, params, bd)
    header = layer_unit._layer_header(name, x, SourceDtype.FLOAT32, cfg, params)
    layout = packing.Layout.of(header)
    pictures = packing.pack(samples, layout)

    # The encoder-side pieces, each on its own.
    def enc_params():
        return quant.choose_params(x, qtype, bd, cfg.per_channel)

    def enc_quantize():
        return quant.quantize(x, qtype, params, bd)

    def enc_check_finite():
        quant._check_finite(x)

    def enc_header():
        h = layer_unit._layer_header(name, x, SourceDtype.FLOAT32, cfg, params)
        return packing.Layout.of(h)

    def enc_pack():
        return packing.pack(samples, layout)

    def bare_encode():
        return ENCODE_ACCESS_UNITS(pictures, bd, cfg.qp, cfg.lossless, cfg.preset)

    def ref_encode():
        return refcodec.encode({name: x}, cfg)

    # Warm-up (also yields the access units, payload and stream the pieces work on).
    units = bare_encode()
    data = ref_encode()
    payload, hashes = annexb.repack_access_units(units)
    stream = refcodec.read_headers(data)
    layer = stream.layers[0]
    if layer.hevc_payload != payload:
        print(f"  note: {name}: refcodec's payload differs from the repacked bare libx265 "
              f"output ({len(layer.hevc_payload)} vs {len(payload)} bytes)", file=sys.stderr)
    payload = layer.hevc_payload
    h = layer.header
    md5 = layer.sample_md5

    def enc_repack():
        return annexb.repack_access_units(units)

    def enc_container():
        s = codec.sample_md5(hashes)
        level = codec.choose_level([h], [len(payload)])
        sh = StreamHeader(VERSION_MAJOR, 0, int(Profile.MAIN), level.level_idc, 1)
        return bitstream.build_stream(sh, [(h, s, payload)])

    def ref_decode():
        return refcodec.decode(data)

    def dec_parse():
        return refcodec.read_headers(data)

    def dec_pictures():
        return backend.decode_pictures(payload, h.num_pictures, h.picture_height,
                                       h.picture_width, bd)

    decoded = dec_pictures()
    frame_threads = pyav.use_frame_threads(h.num_pictures, h.picture_height, h.picture_width)
    frames = DECODE_FRAMES(payload, frame_threads)

    def dec_to_ndarray():
        return [f.to_ndarray() for f in frames]

    def dec_to_planes():
        return frames_to_planes(frames, h.num_pictures, h.picture_height, h.picture_width, bd)

    def dec_params():
        return codec.payload_violations(layer)

    def dec_md5():
        got = codec.sample_md5(codec.planes_md5(decoded, bd))
        assert got == md5
        return got

    def dec_post():   # what decode_layer does once the pictures are decoded
        digests, tensor = threads.md5_beside(layer_unit._hash_layout(decoded, bd),
                                             lambda: codec.reconstruct(h, decoded))
        assert codec.sample_md5(digests) == md5
        return tensor

    def dec_unpack():
        return packing.unpack(decoded, layout)

    unpacked = dec_unpack()

    def dec_dequantize():
        return quant.dequantize(unpacked, int(h.quantizer_type), list(h.quant_params), bd,
                                np.float32)

    pieces = {
        # encoder side
        "enc.params": enc_params, "enc.quantize": enc_quantize,
        "enc.check_finite": enc_check_finite, "enc.header": enc_header,
        "enc.pack": enc_pack, "enc.repack": enc_repack, "enc.container": enc_container,
        # decoder side
        "dec.parse": dec_parse, "dec.decode_pictures": dec_pictures,
        "dec.to_ndarray": dec_to_ndarray, "dec.to_planes": dec_to_planes,
        "dec.params": dec_params,
        "dec.sample_md5": dec_md5, "dec.post": dec_post, "dec.unpack": dec_unpack,
        "dec.dequantize": dec_dequantize,
        # not refcodec: the bare decode with the other threading choice, for reference
        "ffmpeg.other_threading": lambda: bare_decode_other_threading(payload, frame_threads),
    }
    out = ref_decode()[name]
    if out.shape != x.shape or out.dtype != x.dtype:
        raise RuntimeError(f"{name}: decoded {out.shape} {out.dtype}, expected {x.shape}")
    max_err = float(np.max(np.abs(out - x)))
    for fn in pieces.values():          # warm-up of the pieces
        fn()
    bare_decode(payload, frame_threads)

    main_keys = ("encode", "x265", "decode", "ffmpeg")
    times: dict[str, list[float]] = {k: [] for k in (*main_keys, *pieces)}
    cpu: dict[str, list[float]] = {k: [] for k in main_keys}
    # refcodec's time outside its own libx265 / FFmpeg call, in the same run (encode); for
    # decode the InnerTimer's per-frame bookkeeping (about 2 us a frame) would inflate the
    # refcodec time it is measured in, so decode is timed plain and the time of its FFmpeg
    # calls in an extra run of its own ("decode.inner")
    outside: dict[str, list[float]] = {"encode": []}
    inner_decode: list[float] = []
    inner = InnerTimer()
    load = [loadavg()]

    def run_pair(pair, r):
        for key, fn in (pair if r % 2 == 0 else pair[::-1]):
            gc.collect()
            if key in outside:
                with inner:
                    t, c, _ = timed(fn)
                # no inner call seen: refcodec no longer calls the patched function
                outside[key].append(t - inner.seconds if inner.seconds else math.nan)
            else:
                t, c, _ = timed(fn)
            times[key].append(t)
            cpu[key].append(c)

    def run_pieces(prefixes):
        for key, fn in pieces.items():
            if key.startswith(prefixes):
                gc.collect()
                t, _, _ = timed(fn)
                times[key].append(t)

    # Encode and decode are timed in two phases, each repeated on its own: decoding is
    # 10-30 times cheaper than encoding, so it gets more repeats for the same time.
    started = time.perf_counter()
    r = 0
    while r < repeats or (r < max(max_repeats, repeats)
                          and time.perf_counter() - started < min_seconds):
        run_pair((("encode", ref_encode), ("x265", bare_encode)), r)
        run_pieces(("enc.",))
        r += 1
    repeats = r
    started = time.perf_counter()
    r = 0
    while r < decode_repeats or (r < max(DECODE_MAX_REPEATS, decode_repeats)
                                 and time.perf_counter() - started < decode_min_seconds):
        run_pair((("decode", ref_decode),
                  ("ffmpeg", lambda: bare_decode(payload, frame_threads))), r)
        gc.collect()
        with inner:
            timed(ref_decode)
        inner_decode.append(inner.seconds if inner.seconds else math.nan)
        run_pieces(("dec.", "ffmpeg."))
        r += 1
    decode_repeats = r
    load.append(loadavg())

    med = {k: statistics.median(v) for k, v in times.items()}
    in_run = {k: None if any(math.isnan(v) for v in outside[k])
              else statistics.median(outside[k]) for k in outside}
    # decode: refcodec's median less the median time of its FFmpeg calls, less the bare
    # to_ndarray calls the baseline makes (which decode_frames does not)
    in_run["decode"] = None if any(math.isnan(v) for v in inner_decode) else \
        med["decode"] - statistics.median(inner_decode) - med["dec.to_ndarray"]
    ratios = {}
    for what, ref, base in (("encode", "encode", "x265"), ("decode", "decode", "ffmpeg")):
        ratios[what] = {
            "of_medians": med[ref] / med[base],
            "of_minima": min(times[ref]) / min(times[base]),
            "paired_median": statistics.median(a / b for a, b in zip(times[ref], times[base])),
            "cpu_of_medians": statistics.median(cpu[ref]) / statistics.median(cpu[base]),
            "from_pieces": (med[base] + sum(piece_s(med, k) for _, k, _ in
                                            (ENC_PIECES if what == "encode" else DEC_PIECES)))
            / med[base],
            "in_run": None if in_run[what] is None else (med[base] + in_run[what]) / med[base],
        }
    float_bytes = x.size * 4
    return {
        "name": name, "shape": list(shape), "repeats": repeats,
        "decode_repeats": decode_repeats,
        "pictures": [h.num_pictures, h.picture_height, h.picture_width],
        "packing": h.packing_type.name, "tile_grid": [h.tile_rows, h.tile_cols],
        "zero_fraction": float(np.mean(x == 0)), "max_value": float(x.max()),
        "max_abs_error": max_err,
        "stream_bytes": len(data), "payload_bytes": len(payload),
        "compression_rate": float_bytes / len(data),
        "bits_per_element": 8 * len(data) / x.size,
        "median_s": med, "times_s": times, "cpu_s": cpu,
        "outside_hevc_s": outside, "decode_inner_s": inner_decode,
        "in_run_overhead_s": in_run,
        "cpu_median_s": {k: statistics.median(v) for k, v in cpu.items()},
        "encode_ratio": med["encode"] / med["x265"],
        "decode_ratio": med["decode"] / med["ffmpeg"],
        "ratio_estimates": ratios,
        "loadavg_1min": load,
    }


# ------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------

ENC_PIECES = [("params", "enc.params", "choose_params: isfinite check + min/max"),
              ("quantize", "enc.quantize", "quant.quantize (float64 log2, its own isfinite)"),
              ("pack", "enc.pack", "packing.pack (pad/tile copy)"),
              ("repack", "enc.repack", "annexb.repack_access_units (drop PS, SEI MD5)"),
              ("container", "enc.container",
               "sample_md5 + choose_level + bitstream.build_stream (CRC-32)"),
              ("header", "enc.header", "_layer_header + Layout.of")]
DEC_PIECES = [("parse", "dec.parse", "read_headers (container parse, CRC-32)"),
              ("params", "dec.params",
               "codec.payload_violations (VPS/SPS/PPS read with bitstring, clause 10)"),
              ("to_planes", None,
               "decode_pictures' frame -> one planes array copy, beyond bare to_ndarray"),
              ("post", "dec.post",
               "what decode_layer does once the pictures are decoded: the picture MD5s on "
               "refcodec's helper thread while this thread reconstructs the tensor "
               "(threads.md5_beside around codec.reconstruct)")]
#: shown for reference, not added (all three are inside *post*)
DEC_PARTS = [("sample_md5", "dec.sample_md5", "codec.planes_md5 (MD5 of each plane) alone"),
             ("unpack", "dec.unpack", "packing.unpack (crop/untile copy) alone"),
             ("dequantize", "dec.dequantize", "quant.dequantize (table lookup) alone")]


def piece_s(med: dict, key: str | None) -> float:
    if key is None:   # the part of decode_pictures beyond the bare to_ndarray calls
        return max(0.0, med["dec.to_planes"] - med["dec.to_ndarray"])
    return med[key]


def breakdown_table(rows: list[dict], base: str, ref: str, pieces, target: float,
                    extras=()) -> list[str]:
    """The pieces' table; ``extras`` (name, key, description) are shown after the estimate
    for reference, not added."""
    head = f"| layer | {base} | overhead | in-run | " + " | ".join(a for a, _, _ in pieces) \
        + " | sum | est. ratio |" + "".join(f" {a} |" for a, _, _ in extras)
    out = [head, "|---|" + "---:|" * (len(pieces) + 5 + len(extras))]
    total = {"base": 0.0, "ref": 0.0, "in_run": 0.0, "parts": [0.0] * len(pieces),
             "extras": [0.0] * len(extras)}
    for r in rows + [None]:
        if r is not None:
            m = r["median_s"]
            b, e, ir = m[base], m[ref], r["in_run_overhead_s"][ref]
            parts = [piece_s(m, k) for _, k, _ in pieces]
            ex = [m[k] for _, k, _ in extras]
            total["base"] += b
            total["ref"] += e
            total["in_run"] = None if ir is None or total["in_run"] is None \
                else total["in_run"] + ir
            total["parts"] = [a + v for a, v in zip(total["parts"], parts)]
            total["extras"] = [a + v for a, v in zip(total["extras"], ex)]
            label = r["name"]
        else:
            b, e, ir = total["base"], total["ref"], total["in_run"]
            parts, ex = total["parts"], total["extras"]
            label = "**all**"
        est = (b + sum(parts)) / b
        out.append(f"| {label} | {1e3 * b:.1f} | {1e3 * (e - b):.1f} | "
                   + ("n/a" if ir is None else f"{1e3 * ir:.1f}") + " | "
                   + " | ".join(f"{1e3 * v:.2f}" for v in parts)
                   + f" | {1e3 * sum(parts):.1f} | {est:.3f}{'' if est <= target else ' !'} |"
                   + "".join(f" {1e3 * v:.2f} |" for v in ex))
    return out


def fmt_s(v: float) -> str:
    return f"{v:.4f}" if v < 1 else f"{v:.3f}"


def markdown(result: dict) -> str:
    mi, cfg, rows = result["machine"], result["config"], result["rows"]
    lines = [
        "# refcodec codec benchmark",
        "",
        f"Generated {result['date']} by `{result['command']}`.",
        "",
        f"- Machine: nproc {mi['nproc']} ({mi['cpu'] or 'unknown CPU'}), "
        f"{mi['platform']}",
        f"- Python {mi['python']}, numpy {mi['numpy']}, PyAV {mi['av']}, FFmpeg "
        f"{mi['ffmpeg']} (libavcodec {mi['libavcodec']}), libx265: "
        f"{mi['libx265'] or 'version not exposed'}; refcodec {mi['refcodec']} "
        f"(git {mi['git_commit'] or '?'})",
        f"- Config: QP {cfg['qp']}, {cfg['quantizer']} quantizer, {cfg['bit_depth']}-bit, "
        f"preset {cfg['preset']}, packing auto, per-tensor parameters",
        "- Data: **synthetic real-shaped tensors** (batch 1, 224x224 input; VGG16 / "
        "ResNet-50 layer shapes): seeded smooth Gaussian random fields per channel, ReLU "
        "(~50% zeros), values 0..~20. Not real activations: sizes and ratios are "
        "indicative only.",
        f"- Timing: wall clock (time.perf_counter), median of the timed repeats (\"reps\", "
        f"encode/decode) after one warm-up; refcodec and baseline run back to back in each "
        f"repeat, in alternating order, then each piece. Encode and decode are timed in two "
        f"phases: encode at least {cfg['repeats']} repeats per shape, cheaper shapes until "
        f"their repeats took {cfg['min_seconds']:g} s (at most {cfg['max_repeats']}); decode "
        f"at least {cfg.get('decode_repeats', cfg['repeats'])} repeats, more until they took "
        f"{cfg.get('decode_min_seconds', 0):g} s (at most "
        f"{cfg.get('decode_max_repeats', cfg['max_repeats'])}).",
        "- Baselines: *x265* = `refcodec.hevc.pyav.encode_access_units` on the same "
        "pictures (libx265 single-threaded as refcodec configures it); *ffmpeg* = "
        "`decode_frames(payload)` + `frame.to_ndarray()` of the same HEVC payload.",
        f"- Targets (printed, not asserted): encode ratio <= {TARGET_ENCODE}, decode ratio "
        f"<= {TARGET_DECODE}. Compression rate = float32 bytes / stream bytes.",
        "",
        "## Encode and decode",
        "",
        "| layer | shape N x C x H x W | pictures | bytes | comp. rate | reps "
        "| encode s | x265 s | enc ratio | decode s | ffmpeg s | dec ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["median_s"]
        p = r["pictures"]
        pics = f"{p[0]} x {p[2]}x{p[1]}"
        if r["packing"] == "TILED":
            pics += f" ({r['tile_grid'][0]}x{r['tile_grid'][1]} tiles)"
        enc_flag = "" if r["encode_ratio"] <= TARGET_ENCODE else " !"
        dec_flag = "" if r["decode_ratio"] <= TARGET_DECODE else " !"
        lines.append(
            f"| {r['name']} | {' x '.join(map(str, r['shape']))} | {pics} "
            f"| {r['stream_bytes']:,} | {r['compression_rate']:.1f} "
            f"| {r['repeats']}/{r.get('decode_repeats', r['repeats'])} "
            f"| {fmt_s(m['encode'])} | {fmt_s(m['x265'])} | {r['encode_ratio']:.3f}{enc_flag} "
            f"| {fmt_s(m['decode'])} | {fmt_s(m['ffmpeg'])} | {r['decode_ratio']:.3f}{dec_flag} |")
    tot = result["totals"]
    lines += [
        f"| **all** | | | {tot['stream_bytes']:,} | {tot['compression_rate']:.1f} | "
        f"| {fmt_s(tot['encode'])} | {fmt_s(tot['x265'])} | {tot['encode_ratio']:.3f} "
        f"| {fmt_s(tot['decode'])} | {fmt_s(tot['ffmpeg'])} | {tot['decode_ratio']:.3f} |",
        "",
        "`!` marks a ratio above its target. The *all* row sums the medians. On a shared "
        "machine the end-to-end ratios carry the run-to-run noise of libx265 / FFmpeg "
        "(often +-10%); the *in-run* and *pieces* estimates below measure refcodec's own "
        "time directly and are the ones to judge the targets by.",
    ]
    lines += [
        "",
        "## Where refcodec's extra time goes (medians, ms)",
        "",
        "*overhead* = refcodec median - baseline median (end to end, so as noisy as the "
        "baseline itself); *in-run* = for encode, median of (refcodec's time - the time of "
        "its own libx265 call in the same run); for decode, refcodec's median - the median "
        "time of its own FFmpeg calls (timed in an extra run each repeat, since timing them "
        "frame by frame slows the run they are timed in by about 2 us a frame) - the bare "
        "`to_ndarray` calls the baseline makes; i.e. the overhead measured directly and "
        "mostly free of HEVC run-to-run noise. Each piece is timed on its own (same "
        "repeats, interleaved); "
        "*sum* = sum of the pieces' medians; *est. ratio* = (baseline + sum) / baseline.",
        "",
        "Encode pieces: " + "; ".join(f"*{a}* = {d}" for a, _, d in ENC_PIECES) + ". "
        "*isfinite* (one pass of `quant._check_finite`, which runs in both *params* and "
        "*quantize*) is shown for reference, not added.",
        "",
    ]
    lines += breakdown_table(rows, "x265", "encode", ENC_PIECES, TARGET_ENCODE,
                             extras=[("isfinite", "enc.check_finite", "")])
    lines += [
        "",
        "Decode pieces: " + "; ".join(f"*{a}* = {d}" for a, _, d in DEC_PIECES) + ". "
        "Shown for reference, not added (each is part of *post*): "
        + "; ".join(f"*{a}* = {d}" for a, _, d in DEC_PARTS) + ".",
        "",
    ]
    lines += breakdown_table(rows, "ffmpeg", "decode", DEC_PIECES, TARGET_DECODE,
                             extras=DEC_PARTS)
    lines += [
        "",
        "## Ratio estimates",
        "",
        "The machine may be shared and its timings drift; these are other estimates of the "
        "same ratios from the same samples: ratio of the medians (the tables above), ratio of "
        "the minima, median of the per-repeat ratios (refcodec / baseline run back to back), "
        "ratio of the median process CPU times (all threads), the in-run estimate "
        "(baseline median + in-run overhead) / baseline median, and the pieces' estimate "
        "(as above). The last two do not depend on the HEVC call's run-to-run noise. 1-min "
        "load average before and after the shape's repeats.",
        "",
        "| layer | enc medians | enc minima | enc paired | enc CPU | enc in-run | enc pieces "
        "| dec medians | dec minima | dec paired | dec CPU | dec in-run | dec pieces | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        e, d = r["ratio_estimates"]["encode"], r["ratio_estimates"]["decode"]
        load = " -> ".join("?" if v is None else f"{v:.2f}" for v in r["loadavg_1min"])
        lines.append(f"| {r['name']} | " + " | ".join(
            "n/a" if v[k] is None else f"{v[k]:.3f}" for v in (e, d)
            for k in ("of_medians", "of_minima", "paired_median", "cpu_of_medians", "in_run",
                      "from_pieces"))
            + f" | {load} |")
    lines += [
        "",
        "## Data",
        "",
        "*ffmpeg other threading*: the bare decode with the other frame-threading choice "
        "than refcodec's (frame threads from "
        f"{pyav.FRAME_THREADS_MIN_SAMPLES} samples per picture), for reference.",
        "",
        "| layer | zeros | max value | max abs error | payload bytes | bits/element "
        "| ffmpeg ms | ffmpeg other threading ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["median_s"]
        lines.append(f"| {r['name']} | {100 * r['zero_fraction']:.1f}% | {r['max_value']:.2f} "
                     f"| {r['max_abs_error']:.4f} | {r['payload_bytes']:,} "
                     f"| {r['bits_per_element']:.3f} | {1e3 * m['ffmpeg']:.1f} "
                     f"| {1e3 * m['ffmpeg.other_threading']:.1f} |")
    lines.append("")
    return "\n".join(lines)


def totals(rows: list[dict]) -> dict:
    t = {k: sum(r["median_s"][k] for r in rows) for k in ("encode", "x265", "decode", "ffmpeg")}
    t["stream_bytes"] = sum(r["stream_bytes"] for r in rows)
    t["compression_rate"] = sum(4 * math.prod(r["shape"]) for r in rows) / t["stream_bytes"]
    t["encode_ratio"] = t["encode"] / t["x265"]
    t["decode_ratio"] = t["decode"] / t["ffmpeg"]
    return t


def select_shapes(specs: list[str] | None) -> list[str]:
    if not specs:
        return list(SHAPES)
    chosen = []
    for spec in (s for item in specs for s in item.split(",") if s):
        hits = [n for n in SHAPES if n == spec or n.startswith(spec + ".")]
        if not hits:
            raise SystemExit(f"unknown shape {spec!r}; known: {', '.join(SHAPES)} "
                             f"(or a family: vgg16, resnet50)")
        chosen += [n for n in hits if n not in chosen]
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", metavar="NAME",
                    help="subset of shapes (names or families, comma/space separated): "
                         + ", ".join(SHAPES))
    ap.add_argument("--qp", type=int, default=22)
    ap.add_argument("--quantizer", default="log", choices=sorted(quant.QUANTIZER_NAMES))
    ap.add_argument("--bit-depth", type=int, default=8, choices=(8, 10, 12))
    ap.add_argument("--preset", default="medium", choices=pyav.PRESETS)
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed repeats per shape, at least (default 5)")
    ap.add_argument("--min-seconds", type=float, default=None,
                    help=f"repeat a shape beyond --repeats until its timed repeats took this "
                         f"long (default {MIN_SECONDS:g}; 0 with --quick; 0 = exactly "
                         f"--repeats)")
    ap.add_argument("--max-repeats", type=int, default=MAX_REPEATS,
                    help=f"cap of the --min-seconds extension (default {MAX_REPEATS})")
    ap.add_argument("--decode-repeats", type=int, default=None,
                    help=f"timed decode repeats per shape, at least (default "
                         f"{DECODE_REPEATS}; {QUICK_REPEATS} with --quick); more until they "
                         f"took {DECODE_MIN_SECONDS:g} s (not with --quick), at most "
                         f"{DECODE_MAX_REPEATS}")
    ap.add_argument("--quick", action="store_true",
                    help=f"only {', '.join(QUICK_SHAPES)}, {QUICK_REPEATS} repeats")
    ap.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    ap.add_argument("--json", type=Path, metavar="PATH")
    ap.add_argument("--markdown", type=Path, metavar="PATH")
    args = ap.parse_args(argv)
    if args.repeats < 1 or (args.decode_repeats is not None and args.decode_repeats < 1):
        ap.error("--repeats and --decode-repeats shall be at least 1")
    if args.quantizer == "integer":
        ap.error("the integer quantizer needs integer-valued tensors; the synthetic data "
                 "is not")

    names = list(QUICK_SHAPES) if args.quick and not args.shapes else select_shapes(args.shapes)
    repeats = min(args.repeats, QUICK_REPEATS) if args.quick else args.repeats
    min_seconds = args.min_seconds if args.min_seconds is not None else \
        (0.0 if args.quick else MIN_SECONDS)
    decode_repeats = args.decode_repeats if args.decode_repeats is not None else \
        (QUICK_REPEATS if args.quick else DECODE_REPEATS)
    decode_min_seconds = 0.0 if args.quick else DECODE_MIN_SECONDS
    cfg = EncoderConfig(qp=args.qp, quantizer=args.quantizer, bit_depth=args.bit_depth,
                        preset=args.preset)

    started = time.perf_counter()
    info = machine_info()
    print(f"# machine: nproc {info['nproc']}, python {info['python']}, av {info['av']}, "
          f"ffmpeg {info['ffmpeg']}, {info['libx265'] or 'libx265 version not exposed'}",
          file=sys.stderr)
    rows = []
    for name in names:
        shape = SHAPES[name]
        t0 = time.perf_counter()
        row = bench_shape(name, shape, cfg, repeats, args.seed, min_seconds, args.max_repeats,
                          decode_repeats, decode_min_seconds)
        rows.append(row)
        print(f"  {name:15s} {shape!s:22s} reps {row['repeats']:2d}/{row['decode_repeats']:2d}  "
              f"enc {row['encode_ratio']:.3f}  "
              f"dec {row['decode_ratio']:.3f}  ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr)

    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python tools/bench_codec.py" + "".join(
            f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        "machine": info,
        "config": {"qp": cfg.qp, "quantizer": cfg.quantizer, "bit_depth": cfg.bit_depth,
                   "preset": cfg.preset, "repeats": repeats, "quick": args.quick,
                   "seed": args.seed, "min_seconds": min_seconds,
                   "max_repeats": args.max_repeats, "decode_repeats": decode_repeats,
                   "decode_min_seconds": decode_min_seconds,
                   "decode_max_repeats": DECODE_MAX_REPEATS},
        "data": "synthetic real-shaped tensors: seeded smooth Gaussian random fields per "
                "channel, ReLU (~50% zeros), 0..~20",
        "targets": {"encode_ratio": TARGET_ENCODE, "decode_ratio": TARGET_DECODE},
        "rows": rows,
        "totals": totals(rows),
    }
    result["wall_s"] = time.perf_counter() - started
    md = markdown(result)
    print(md)
    print(f"(benchmark wall time {result['wall_s']:.0f} s)", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(md)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
