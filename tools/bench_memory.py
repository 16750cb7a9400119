"""Peak memory of decoding one layer, as a multiple of the output tensor's bytes.

For every case (layout NCHW / NHWC x dtype float32 / float16 / bfloat16 x 8-bit / 12-bit
lossless) a stream of one layer is encoded once, then decoded ``--runs`` times, each time in
fresh subprocesses, each of which:

* imports refcodec and decodes a tiny stream (FFmpeg loaded), then takes its resident set
  (VmRSS) as the baseline and resets the peak (``/proc/self/clear_refs``, Linux);
* reads the stream file and decodes it with ``refcodec.decode``, the stream bytes held by
  the caller meanwhile: the peak resident set (VmHWM) minus the baseline is the first
  measure (everything counts, the stream bytes included);
* in a second subprocess, the same with the stream bytes released once read_headers has
  read them (as ``refcodec decode`` does);
* in a third, the latter under ``tracemalloc`` (numpy's allocations are traced, FFmpeg's
  are not).

The three are printed as ratios to the output tensor's bytes, medians over the runs, as a
Markdown table (docs/bench/memory.md).  The goal (issue 14, point 9): at most 2x the output
plus a fixed overhead.

    python tools/bench_memory.py [--shape 1x256x128x128] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import sys, time, tracemalloc
import numpy as np
import refcodec

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

tiny = refcodec.encode(np.zeros((1, 1, 16, 16), np.float32),
                       refcodec.EncoderConfig(preset="ultrafast"))
refcodec.decode(tiny)
path, mode = sys.argv[1], sys.argv[2]
if mode == "traced":
    tracemalloc.start()
base = status("VmRSS")
reset_peak()
t0 = time.perf_counter()
if mode == "held":     # the caller keeps the stream bytes: they count
    data = open(path, "rb").read()
    out = refcodec.decode(data)
else:                  # the stream bytes released once read, as ``refcodec decode`` does
    out = refcodec.decode(refcodec.read_headers(open(path, "rb").read()))
seconds = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1] if mode == "traced" else status("VmHWM") - base
print(peak, sum(a.nbytes for a in out.values()), seconds)
"""


def encode_case(path: Path, shape, layout: str, dtype: str, bit_depth: int) -> None:
    import ml_dtypes
    import numpy as np

    import refcodec
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal(shape, dtype=np.float32), 0)  # relu-like features
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    x = x.astype({"float32": np.float32, "float16": np.float16,
                  "bfloat16": ml_dtypes.bfloat16}[dtype])
    cfg = refcodec.EncoderConfig(bit_depth=bit_depth, lossless=True, layout=layout,
                                 preset="ultrafast", quantizer="uniform")
    path.write_bytes(refcodec.encode(x, cfg))


def measure(path: Path) -> tuple[int, int, int, int, float]:
    """(RSS peak with the stream held, RSS peak with it released, tracemalloc peak with it
    released, output bytes, seconds of the first), each from a fresh subprocess."""
    values = []
    for mode in ("held", "released", "traced"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], check=True,
                             capture_output=True, text=True).stdout.split()
        values.append((int(out[0]), int(out[1]), float(out[2])))
    return (values[0][0], values[1][0], values[2][0], values[0][1], values[0][2])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="1x256x128x128", help="N x C x H x W of the tensor")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split("x"))
    results = []
    print(f"shape {args.shape}, medians over {args.runs} runs; peak minus baseline / output "
          f"bytes\n")
    print("| layout | dtype | bit depth | stream bytes | output bytes | RSS, stream held "
          "| RSS, stream released | tracemalloc, stream released | decode s |")
    print("|:---|:---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("NCHW", "NHWC"):
            for dtype in ("float32", "float16", "bfloat16"):
                for depth in (8, 12):
                    path = Path(tmp) / f"{layout}_{dtype}_{depth}.vfc"
                    encode_case(path, shape, layout, dtype, depth)
                    runs = [measure(path) for _ in range(args.runs)]
                    nbytes = runs[0][3]
                    held, released, traced = (statistics.median(r[i] for r in runs) / nbytes
                                              for i in range(3))
                    secs = statistics.median(r[4] for r in runs)
                    size = path.stat().st_size
                    results.append(dict(layout=layout, dtype=dtype, bit_depth=depth,
                                        stream_bytes=size, output_bytes=nbytes,
                                        rss_ratio_stream_held=held,
                                        rss_ratio_stream_released=released,
                                        traced_ratio_stream_released=traced, seconds=secs))
                    print(f"| {layout} | {dtype} | {depth} | {size} | {nbytes} | {held:.2f} "
                          f"| {released:.2f} | {traced:.2f} | {secs:.2f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
