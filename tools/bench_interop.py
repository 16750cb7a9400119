"""Decode time of the conformance suite's interop group against bare FFmpeg.

    python tools/bench_interop.py [--repeats 7] [--json out.json]

For every valid stream of the interop group (payloads written by HM, kvazaar and the x265
command line), in this process: ``refcodec.decode`` (container, parameter sets, FFmpeg,
picture MD5s, sample_md5, unpacking, dequantization) against bare FFmpeg decoding the same
hevc_payload with the same thread settings (``refcodec.hevc.pyav.iter_frames``, frames
converted to numpy).  Runs alternate between the two; the table gives the median of each
and their ratio, and the median ratio over the group.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import refcodec  # noqa: E402
from refcodec.hevc import pyav  # noqa: E402


def bare(payload: bytes, frame_threads: bool):
    return [f.to_ndarray() for f in pyav.iter_frames(payload, frame_threads)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    manifest = json.loads((ROOT / "conformance" / "manifest.json").read_text())
    rows = []
    for s in manifest["streams"]:
        if s.get("group") != "interop" or not s["valid"]:
            continue
        data = (ROOT / "conformance" / s["file"]).read_bytes()
        layer = refcodec.read_headers(data).layers[0]
        threads = pyav.use_frame_threads(layer.header.num_pictures,
                                         layer.header.picture_height,
                                         layer.header.picture_width)
        ours, theirs = [], []
        refcodec.decode(data)          # warm up both
        bare(layer.hevc_payload, threads)
        for _ in range(args.repeats):
            t = time.perf_counter()
            refcodec.decode(data)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            bare(layer.hevc_payload, threads)
            theirs.append(time.perf_counter() - t)
        a, b = statistics.median(ours), statistics.median(theirs)
        rows.append({"stream": s["name"], "encoder": s["interop"]["encoder"],
                     "pictures": layer.header.num_pictures,
                     "size": f"{layer.header.picture_width}x{layer.header.picture_height}",
                     "refcodec_ms": round(a * 1e3, 2), "ffmpeg_ms": round(b * 1e3, 2),
                     "ratio": round(a / b, 3)})
    print(f"{'stream':38s} {'enc':8s} {'pics':>5s} {'size':>8s} {'refcodec':>9s} "
          f"{'ffmpeg':>8s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['stream']:38s} {r['encoder']:8s} {r['pictures']:5d} {r['size']:>8s} "
              f"{r['refcodec_ms']:8.2f}m {r['ffmpeg_ms']:7.2f}m {r['ratio']:6.3f}")
    ratio = statistics.median(r["ratio"] for r in rows)
    total = sum(r["refcodec_ms"] for r in rows) / sum(r["ffmpeg_ms"] for r in rows)
    print(f"median ratio {ratio:.3f}, total time ratio {total:.3f} over {len(rows)} streams "
          f"({args.repeats} repeats each)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "median_ratio": ratio,
                                         "total_ratio": total}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
