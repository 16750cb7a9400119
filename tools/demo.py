#!/usr/bin/env python3
"""Demo of the main job: code feature tensors at the four test-condition QPs.

Encodes real-shaped feature tensors (VGG16 conv3 256x56x56 and pool5 512x7x7 of a 224x224
input) with the paper's configuration (log quantizer, 8-bit, border replication, one channel
per picture where libx265 allows it, all-intra, QP = slice QP), decodes each stream, checks
it against its stored sample checksum, and prints a rate / error table.  The tensors are
SYNTHETIC (smooth random fields through a ReLU, seeded): evaluation on real networks and
images is ``tools/eval`` (issue 5).  Streams are written to out/demo/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import refcodec  # noqa: E402

SHAPES = {"vgg16.conv3": (1, 256, 56, 56), "vgg16.pool5": (1, 512, 7, 7)}


def synthetic_features(shape, seed=0):
    """Smooth random field per channel (box-blurred noise), ReLU'd: about half zeros."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x = rng.standard_normal((n, c, h + 4, w + 4))
    for _ in range(2):
        x = (x[:, :, :-2, :-2] + x[:, :, 1:-1, 1:-1] + x[:, :, 2:, 2:]
             + x[:, :, :-2, 2:] + x[:, :, 2:, :-2]) / 5 * 2
    return np.maximum(x[:, :, :h, :w] * 6, 0).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qps", type=int, nargs="+", default=[12, 22, 32, 42])
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"refcodec {refcodec.__version__}, VFC format {refcodec.FORMAT_VERSION}; synthetic "
          f"real-shaped ReLU features, log quantizer, 8-bit, all-intra")
    print()
    print("| layer | shape | QP | bytes | compression rate | bits/element | max abs error | "
          "SNR dB | encode s | decode s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, (name, shape) in enumerate(SHAPES.items()):
        x = synthetic_features(shape, seed=i)
        for qp in args.qps:
            t0 = time.perf_counter()
            data = refcodec.encode({name: x}, refcodec.EncoderConfig(qp=qp))
            t1 = time.perf_counter()
            y = refcodec.decode(data)[name]
            t2 = time.perf_counter()
            (args.out / f"{name}.qp{qp}.vfc").write_bytes(data)
            err = y - x
            snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / max(np.sum(err ** 2), 1e-30))
            print(f"| {name} | {'x'.join(map(str, shape[1:]))} | {qp} | {len(data)} | "
                  f"{x.nbytes / len(data):.1f} | {8 * len(data) / x.size:.3f} | "
                  f"{np.abs(err).max():.4f} | {snr:.1f} | {t1 - t0:.2f} | {t2 - t1:.2f} |")
    print()
    print(f"streams written to {args.out}/ (inspect one with: refcodec info {args.out}/"
          f"vgg16.pool5.qp22.vfc)")


if __name__ == "__main__":
    main()
