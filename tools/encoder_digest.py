"""SHA-256 of the streams the informative encoder writes for the test-condition shapes.

    python tools/encoder_digest.py -o before.json          # write the digests
    python tools/encoder_digest.py --compare before.json   # exit 1 when any stream differs

A refactoring that must not change the encoder's output (bitstreams byte for byte) is
checked by running this before and after it on the same libx265 build: the shapes are the
feature shapes of the test conditions (refcodec.testconditions, batch 1) at the four test
QPs, plus a set of encoder options on one shape (every quantizer, bit depth, packing, pad
mode, channel order, per-channel parameters, NHWC, lossless, several layers in a stream).
The tensors are seeded ReLU'd Gaussians, so the run needs no data.  --quick codes the
shapes of 56x56 samples and smaller only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import refcodec  # noqa: E402
from refcodec.testconditions import FEATURE_SHAPES, QPS  # noqa: E402

VARIANTS = {
    "uniform-10bit": dict(quantizer="uniform", bit_depth=10),
    "integer-12bit-lossless": dict(quantizer="integer", bit_depth=12, lossless=True),
    "log-per-channel": dict(per_channel=True),
    "tiled-4x8-zero": dict(packing="tiled", tile_grid=(4, 8), pad_mode="zero"),
    "reversed-order": dict(channel_order=tuple(range(31, -1, -1))),
    "nhwc": dict(layout="NHWC"),
}


def tensor(shape: tuple[int, ...], seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.maximum(x, 0)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(quick: bool) -> dict[str, str]:
    out = {}
    for seed, (name, (c, h, w)) in enumerate(FEATURE_SHAPES.items()):
        if quick and h > 56:
            continue
        x = tensor((1, c, h, w), seed)
        for qp in QPS:
            data = refcodec.encode({name: x}, refcodec.EncoderConfig(qp=qp))
            out[f"{name}@qp{qp}"] = digest(data)
    x = tensor((1, 32, 28, 28), 100)
    for name, fields in VARIANTS.items():
        y = np.rint(x * 100).astype(np.float32) if fields.get("quantizer") == "integer" else x
        if fields.get("layout") == "NHWC":
            y = np.ascontiguousarray(y.transpose(0, 2, 3, 1))
        out[f"variant:{name}"] = digest(refcodec.encode({"t": y}, refcodec.EncoderConfig(**fields)))
    two = {"a": x, "b": tensor((2, 8, 14, 14), 101)}
    out["variant:two-layers"] = digest(refcodec.encode(two, refcodec.EncoderConfig(qp=32)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-o", "--output", type=Path, help="write the digests to this JSON file")
    group.add_argument("--compare", type=Path, help="compare with digests written before")
    parser.add_argument("--quick", action="store_true", help="56x56 and smaller shapes only")
    args = parser.parse_args(argv)
    got = digests(args.quick)
    if args.output:
        args.output.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"{len(got)} streams -> {args.output}")
        return 0
    want = json.loads(args.compare.read_text())
    common = sorted(set(got) & set(want))
    differ = [k for k in common if got[k] != want[k]]
    for k in differ:
        print(f"differs: {k}")
    print(f"{len(common) - len(differ)} of {len(common)} streams byte-identical")
    return 1 if differ or not common else 0


if __name__ == "__main__":
    sys.exit(main())
