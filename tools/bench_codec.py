#!/usr/bin/env python3
"""Benchmark refcodec.encode / refcodec.decode against bare libx265 / bare FFmpeg.

For each feature-tensor shape (batch 1, 224x224 input, VGG16 and ResNet-50 layers) this
measures, in one process:

* ``refcodec.encode(x, EncoderConfig(...))`` and ``refcodec.decode(data)``;
* the baseline on the *same* pictures: bare libx265 through
  ``refcodec.hevc.pyav.encode_access_units`` (the pictures built exactly as the encoder
  builds them: ``quant.choose_params`` + ``quant.quantize``, ``codec._layer_header``,
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
from refcodec import EncoderConfig, codec, packing, quant
from refcodec.hevc import annexb, pyav

# ------------------------------------------------------------------------------------
# Shapes and data
# ------------------------------------------------------------------------------------

SHAPES: dict[str, tuple[int, int, int, int]] = {
    "vgg16.conv1": (1, 64, 224, 224),
    "vgg16.conv2": (1, 128, 112, 112),
    "vgg16.conv3": (1, 256, 56, 56),
    "vgg16.conv4": (1, 512, 28, 28),
    "vgg16.conv5": (1, 512, 14, 14),
    "vgg16.pool5": (1, 512, 7, 7),
    "resnet50.conv1": (1, 64, 112, 112),
    "resnet50.pool1": (1, 64, 56, 56),
    "resnet50.conv2": (1, 256, 56, 56),
    "resnet50.conv3": (1, 512, 28, 28),
    "resnet50.conv4": (1, 1024, 14, 14),
    "resnet50.conv5": (1, 2048, 7, 7),
}
QUICK_SHAPES = ("vgg16.pool5", "resnet50.pool1", "vgg16.conv5")
QUICK_REPEATS = 3
#: Shapes with more elements than this run at most LARGE_REPEATS timed repeats (the
#: 10-minute budget of a full run on a 2-core machine); the tables say when this happened.
LARGE_ELEMENTS = 2_000_000
LARGE_REPEATS = 3
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
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
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


def bare_decode(payload: bytes) -> list[np.ndarray]:
    """Bare FFmpeg: decode every frame and take its samples."""
    return [frame.to_ndarray() for frame in pyav.decode_frames(payload)]


def frames_to_uint16(frames, num: int, height: int, width: int) -> np.ndarray:
    """What PyAVBackend.decode_pictures does with the frames after decoding them."""
    out = np.empty((num, height, width), dtype=np.uint16)
    for i, frame in enumerate(frames):
        out[i] = frame.to_ndarray()
    return out


def bench_shape(name: str, shape, cfg: EncoderConfig, repeats: int, seed: int) -> dict:
    x = synthetic_features(name, shape, seed)
    qtype = quant.QUANTIZER_NAMES[cfg.quantizer]
    bd = cfg.bit_depth
    backend = pyav.PyAVBackend()

    # The pictures exactly as codec.encode builds them.
    params = quant.choose_params(x, qtype, bd, cfg.per_channel)
    samples = quant.quantize(x, qtype, params, bd)
    header = codec._layer_header(name, x, codec.SourceDtype.FLOAT32, cfg, params)
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
        h = codec._layer_header(name, x, codec.SourceDtype.FLOAT32, cfg, params)
        return packing.Layout.of(h)

    def enc_pack():
        return packing.pack(samples, layout)

    def bare_encode():
        return pyav.encode_access_units(pictures, bd, cfg.qp, cfg.lossless, cfg.preset)

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
        level = codec.choose_level([h])
        sh = codec.StreamHeader(codec.VERSION_MAJOR, codec.VERSION_MINOR,
                                int(codec.Profile.MAIN), level.level_idc, 1)
        return codec.bitstream.build_stream(sh, [(h, s, payload)])

    def ref_decode():
        return refcodec.decode(data)

    def dec_parse():
        return refcodec.read_headers(data)

    def dec_pictures():
        return backend.decode_pictures(payload, h.num_pictures, h.picture_height,
                                       h.picture_width, bd)

    decoded = dec_pictures()
    frames = pyav.decode_frames(payload)

    def dec_to_ndarray():
        return [f.to_ndarray() for f in frames]

    def dec_to_uint16():
        return frames_to_uint16(frames, h.num_pictures, h.picture_height, h.picture_width)

    def dec_md5():
        got = codec.sample_md5(codec.planes_md5(decoded, bd))
        assert got == md5
        return got

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
        "dec.to_ndarray": dec_to_ndarray, "dec.to_uint16": dec_to_uint16,
        "dec.sample_md5": dec_md5, "dec.unpack": dec_unpack,
        "dec.dequantize": dec_dequantize,
    }
    out = ref_decode()[name]
    if out.shape != x.shape or out.dtype != x.dtype:
        raise RuntimeError(f"{name}: decoded {out.shape} {out.dtype}, expected {x.shape}")
    max_err = float(np.max(np.abs(out - x)))
    for fn in pieces.values():          # warm-up of the pieces
        fn()
    bare_decode(payload)

    main_keys = ("encode", "x265", "decode", "ffmpeg")
    times: dict[str, list[float]] = {k: [] for k in (*main_keys, *pieces)}
    cpu: dict[str, list[float]] = {k: [] for k in main_keys}
    load = [loadavg()]
    for r in range(repeats):
        pairs = [(("encode", ref_encode), ("x265", bare_encode)),
                 (("decode", ref_decode), ("ffmpeg", lambda: bare_decode(payload)))]
        for pair in pairs:
            for key, fn in (pair if r % 2 == 0 else pair[::-1]):
                gc.collect()
                t, c, _ = timed(fn)
                times[key].append(t)
                cpu[key].append(c)
        for key, fn in pieces.items():
            gc.collect()
            t, _, _ = timed(fn)
            times[key].append(t)
    load.append(loadavg())

    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {}
    for what, ref, base in (("encode", "encode", "x265"), ("decode", "decode", "ffmpeg")):
        ratios[what] = {
            "of_medians": med[ref] / med[base],
            "of_minima": min(times[ref]) / min(times[base]),
            "paired_median": statistics.median(a / b for a, b in zip(times[ref], times[base])),
            "cpu_of_medians": statistics.median(cpu[ref]) / statistics.median(cpu[base]),
        }
    float_bytes = x.size * 4
    return {
        "name": name, "shape": list(shape), "repeats": repeats,
        "pictures": [h.num_pictures, h.picture_height, h.picture_width],
        "packing": h.packing_type.name, "tile_grid": [h.tile_rows, h.tile_cols],
        "zero_fraction": float(np.mean(x == 0)), "max_value": float(x.max()),
        "max_abs_error": max_err,
        "stream_bytes": len(data), "payload_bytes": len(payload),
        "compression_rate": float_bytes / len(data),
        "bits_per_element": 8 * len(data) / x.size,
        "median_s": med, "times_s": times, "cpu_s": cpu,
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
              ("to_uint16", None,
               "decode_pictures' frame -> uint16 copy, beyond bare to_ndarray"),
              ("sample_md5", "dec.sample_md5", "planes_md5 (uint16 -> uint8 copy + MD5)"),
              ("unpack", "dec.unpack", "packing.unpack (crop/untile copy)"),
              ("dequantize", "dec.dequantize", "quant.dequantize (table lookup)")]


def piece_ms(row: dict, key: str | None) -> float:
    m = row["median_s"]
    if key is None:   # the part of decode_pictures beyond the bare to_ndarray calls
        return 1e3 * max(0.0, m["dec.to_uint16"] - m["dec.to_ndarray"])
    return 1e3 * m[key]


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
        f"- Timing: wall clock (time.perf_counter), median of the timed repeats (\"reps\") "
        f"after one warm-up; refcodec and baseline run back to back in each repeat, in "
        f"alternating order. Shapes above {LARGE_ELEMENTS:,} elements run at most "
        f"{LARGE_REPEATS} repeats.",
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
            f"| {r['stream_bytes']:,} | {r['compression_rate']:.1f} | {r['repeats']} "
            f"| {fmt_s(m['encode'])} | {fmt_s(m['x265'])} | {r['encode_ratio']:.3f}{enc_flag} "
            f"| {fmt_s(m['decode'])} | {fmt_s(m['ffmpeg'])} | {r['decode_ratio']:.3f}{dec_flag} |")
    tot = result["totals"]
    lines += [
        f"| **all** | | | {tot['stream_bytes']:,} | {tot['compression_rate']:.1f} | "
        f"| {fmt_s(tot['encode'])} | {fmt_s(tot['x265'])} | {tot['encode_ratio']:.3f} "
        f"| {fmt_s(tot['decode'])} | {fmt_s(tot['ffmpeg'])} | {tot['decode_ratio']:.3f} |",
        "",
        "`!` marks a ratio above its target. The *all* row sums the medians.",
        "",
        "## Where refcodec's extra time goes (medians, ms)",
        "",
        "Each piece is timed on its own (same repeats, interleaved). *overhead* = refcodec "
        "median - baseline median; *sum* = sum of the pieces; the difference is noise "
        "and the Python glue not timed separately.",
        "",
        "Encode pieces: " + "; ".join(f"*{a}* = {d}" for a, _, d in ENC_PIECES) + ". "
        "*isfinite* (one pass of `quant._check_finite`, included in both *params* and "
        "*quantize*) is shown for reference.",
        "",
        "| layer | x265 | overhead | % | " + " | ".join(a for a, _, _ in ENC_PIECES)
        + " | sum | isfinite |",
        "|---|" + "---:|" * (len(ENC_PIECES) + 5),
    ]
    for r in rows:
        m = r["median_s"]
        over = 1e3 * (m["encode"] - m["x265"])
        parts = [piece_ms(r, k) for _, k, _ in ENC_PIECES]
        lines.append(f"| {r['name']} | {1e3 * m['x265']:.1f} | {over:.1f} "
                     f"| {100 * over / (1e3 * m['x265']):.1f} | "
                     + " | ".join(f"{v:.2f}" for v in parts)
                     + f" | {sum(parts):.1f} | {1e3 * m['enc.check_finite']:.2f} |")
    lines += [
        "",
        "Decode pieces: " + "; ".join(f"*{a}* = {d}" for a, _, d in DEC_PIECES) + ".",
        "",
        "| layer | ffmpeg | overhead | % | " + " | ".join(a for a, _, _ in DEC_PIECES)
        + " | sum |",
        "|---|" + "---:|" * (len(DEC_PIECES) + 4),
    ]
    for r in rows:
        m = r["median_s"]
        over = 1e3 * (m["decode"] - m["ffmpeg"])
        parts = [piece_ms(r, k) for _, k, _ in DEC_PIECES]
        lines.append(f"| {r['name']} | {1e3 * m['ffmpeg']:.1f} | {over:.1f} "
                     f"| {100 * over / (1e3 * m['ffmpeg']):.1f} | "
                     + " | ".join(f"{v:.2f}" for v in parts) + f" | {sum(parts):.1f} |")
    lines += [
        "",
        "## Ratio estimates",
        "",
        "The machine may be shared and its timings drift; these are other estimates of the "
        "same ratios from the same samples: ratio of the medians (the tables above), ratio of "
        "the minima, median of the per-repeat ratios (refcodec / baseline run back to back), "
        "and ratio of the median process CPU times (all threads). 1-min load average before "
        "and after the shape's repeats.",
        "",
        "| layer | enc medians | enc minima | enc paired | enc CPU | dec medians "
        "| dec minima | dec paired | dec CPU | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        e, d = r["ratio_estimates"]["encode"], r["ratio_estimates"]["decode"]
        load = " -> ".join("?" if v is None else f"{v:.2f}" for v in r["loadavg_1min"])
        lines.append(f"| {r['name']} | " + " | ".join(
            f"{v[k]:.3f}" for v in (e, d)
            for k in ("of_medians", "of_minima", "paired_median", "cpu_of_medians"))
            + f" | {load} |")
    lines += [
        "",
        "## Data",
        "",
        "| layer | zeros | max value | max abs error | payload bytes | bits/element |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {100 * r['zero_fraction']:.1f}% | {r['max_value']:.2f} "
                     f"| {r['max_abs_error']:.4f} | {r['payload_bytes']:,} "
                     f"| {r['bits_per_element']:.3f} |")
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
                    help=f"timed repeats per shape (default 5; at most {LARGE_REPEATS} for "
                         f"shapes above {LARGE_ELEMENTS:,} elements)")
    ap.add_argument("--quick", action="store_true",
                    help=f"only {', '.join(QUICK_SHAPES)}, {QUICK_REPEATS} repeats")
    ap.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    ap.add_argument("--json", type=Path, metavar="PATH")
    ap.add_argument("--markdown", type=Path, metavar="PATH")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats shall be at least 1")
    if args.quantizer == "integer":
        ap.error("the integer quantizer needs integer-valued tensors; the synthetic data "
                 "is not")

    names = list(QUICK_SHAPES) if args.quick and not args.shapes else select_shapes(args.shapes)
    repeats = min(args.repeats, QUICK_REPEATS) if args.quick else args.repeats
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
        reps = repeats if math.prod(shape) <= LARGE_ELEMENTS else min(repeats, LARGE_REPEATS)
        t0 = time.perf_counter()
        row = bench_shape(name, shape, cfg, reps, args.seed)
        rows.append(row)
        print(f"  {name:15s} {str(shape):22s} reps {reps}  enc {row['encode_ratio']:.3f}  "
              f"dec {row['decode_ratio']:.3f}  ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr)

    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python tools/bench_codec.py" + "".join(
            f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        "machine": info,
        "config": {"qp": cfg.qp, "quantizer": cfg.quantizer, "bit_depth": cfg.bit_depth,
                   "preset": cfg.preset, "repeats": repeats, "quick": args.quick,
                   "seed": args.seed, "large_elements": LARGE_ELEMENTS,
                   "large_repeats": LARGE_REPEATS},
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
