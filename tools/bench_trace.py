"""What the trace hook of refcodec.hevc.params costs when nothing is traced, and what a
trace costs.

    python tools/bench_trace.py [--repeats 7]

The slice-header walk (``refcodec.hevc.slices.pictures``: every VPS, SPS, PPS and slice
segment header read with params.RbspReader) over the HEVC payloads of the conformance
suite's inter and interop streams, in this process, alternately with the reader as it is
(one ``recorder is not None`` test per syntax element) and with a baseline ``_read`` without
that test; then ``refcodec.trace.trace(decode=False)`` of the same streams against
``refcodec.read_headers`` plus that walk.  Medians and ratios.
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
from refcodec.hevc import params, slices  # noqa: E402
from refcodec.trace import trace  # noqa: E402


def _baseline_read(self, dtype: str, name: str):
    """RbspReader._read without the recorder test (the reader before the hook)."""
    try:
        return self._reader.read_value(dtype)
    except ValueError:
        self.fail(name, f"{name} runs past the end of the NAL unit")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    manifest = json.loads((ROOT / "conformance" / "manifest.json").read_text())
    streams = [(ROOT / "conformance" / s["file"]).read_bytes() for s in manifest["streams"]
               if s["valid"] and s["name"].startswith(("hevc_", "interop_"))]
    payloads = [layer.hevc_payload for data in streams
                for layer in refcodec.read_headers(data).layers]

    def walk_all():
        for p in payloads:
            slices.pictures(p)

    hooked = params.RbspReader._read
    times = {"hook": [], "baseline": []}
    try:
        for _ in range(args.repeats):
            for kind in times:
                params.RbspReader._read = hooked if kind == "hook" else _baseline_read
                times[kind].append(_timed(walk_all))
    finally:
        params.RbspReader._read = hooked
    hook, base = (statistics.median(times[k]) for k in ("hook", "baseline"))
    print(f"slice-header walk of {len(payloads)} payloads: with the hook (off) "
          f"{hook * 1e3:.1f} ms, baseline {base * 1e3:.1f} ms, ratio {hook / base:.3f}")

    def headers_all():
        for data in streams:
            for layer in refcodec.read_headers(data).layers:
                slices.pictures(layer.hevc_payload)

    def trace_all():
        for data in streams:
            trace(data, decode=False)

    runs = {"trace": [], "headers": []}
    for _ in range(max(1, args.repeats // 2)):
        runs["headers"].append(_timed(headers_all))
        runs["trace"].append(_timed(trace_all))
    t, h = (statistics.median(runs[k]) for k in ("trace", "headers"))
    print(f"trace of {len(streams)} streams: {t * 1e3:.1f} ms, read_headers + slice-header "
          f"walk {h * 1e3:.1f} ms, ratio {t / h:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
