#!/usr/bin/env python3
"""The square-root quantizer against the uniform one on a network's non-negative layers.

Annex A.7.2's rule gives a non-negative layer of large maps the square-root quantizer
(quantizer_type 3) from QP 28 on, unless half of its values lie below the quantizer's
first level; this tool measures both quantizers on any split of the evaluation's networks
at every QP, whatever the rule would pick: each feature is coded with the efficient tune
(refcodec.tune) with the quantizer of A.7.2 forced to ``uniform`` and to ``sqrt``, at QPs
12..42 in steps of 5, and fed to the rest of the network.  Fidelity: for MobileNetV2 the
mean softmax KL divergence (tools/bench_rd.py), for CRAFT the mean squared error of the
region and affinity maps.
BD-rate of sqrt against uniform at equal -log10 fidelity, with tools/bench_rd.py's 90 %
paired bootstrap interval over the photographs, and the fraction of values below the first
square-root level (the rule's measure), per photograph.

    python tools/bench_sqrt.py --network craft --split pool1 --images 3
    python tools/bench_sqrt.py --network mobilenet_v2 --split conv1 --images 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rd  # noqa: E402
import refcodec  # noqa: E402
from refcodec import tune as tuning  # noqa: E402


def _coded(name, f, qp, quantizer):
    """The efficient tune's stream with A.7.2's quantizer of large non-negative maps forced
    to ``quantizer``, at every QP and whatever the values (both conditions of the rule
    lifted)."""
    names = ("LARGE_NONNEGATIVE_QUANTIZER", "SQRT_MAX_BELOW_FIRST", "sqrt_pays_at")
    saved = [getattr(tuning, k) for k in names]
    for k, v in zip(names, (quantizer, 1.01, lambda qp, bit_depth: True)):
        setattr(tuning, k, v)
    try:
        choice = tuning.choose(name, f, "efficient", refcodec.EncoderConfig(qp=qp))
    finally:
        for k, v in zip(names, saved):
            setattr(tuning, k, v)
    if choice.config.quantizer != quantizer:
        raise SystemExit(f"{name}: the tune does not use the quantizer of A.7.2's large "
                         f"non-negative maps here ({choice.reasons[0]})")
    return refcodec.encode({name: choice.apply(f)}, choice.config)


def run(network: str, split_name: str, images: int) -> dict:
    import torch
    from refcodec import evaluation, models
    torch.set_num_threads(1)
    net = models.load_network(network)
    split = net.split(split_name)
    rows = {q: {qp: [] for qp in bench_rd.QPS} for q in ("uniform", "sqrt")}
    below = []
    for i, item in enumerate(evaluation.image_set(images)):
        x = net.preprocess(item.image)
        with torch.no_grad():
            feature = split.head(x)
            key = next(iter(feature)) if isinstance(feature, dict) else None
            f = (feature[key] if key else feature).numpy()
            pristine = split.tail(feature)
        below.append(tuning.below_sqrt_first_level(f, float(f.min()), float(f.max()), 8))
        for quantizer in rows:
            for qp in bench_rd.QPS:
                data = _coded(split_name, f, qp, quantizer)
                y = torch.from_numpy(refcodec.decode(data)[split_name])
                with torch.no_grad():
                    decoded = split.tail({key: y} if key else y)
                if network == "mobilenet_v2":
                    row = bench_rd.fidelity(pristine["logits"].numpy()[0],
                                            decoded["logits"].numpy()[0])
                else:
                    err = float(np.mean((decoded["maps"].numpy()
                                         - pristine["maps"].numpy()) ** 2))
                    row = {"kl": err}        # the distortion bench_rd's BD-rate reads
                row["bytes"] = len(data)
                rows[quantizer][qp].append(row)
        print(f"[{i + 1}/{images}] {item.key}: {below[-1]:.0%} of the values below the "
              f"first square-root level", file=sys.stderr, flush=True)
    bd = bench_rd.bd_with_interval(rows["uniform"], rows["sqrt"], images, "kl")
    return {"bd": bd, "below": below, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", choices=["mobilenet_v2", "craft"], default="mobilenet_v2")
    ap.add_argument("--split", default="conv1")
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args(argv)
    result = run(args.network, args.split, args.images)
    what = "softmax KL" if args.network == "mobilenet_v2" else "output-map MSE"
    print(f"{args.network}.{args.split}, {args.images} photographs: BD-rate of sqrt against "
          f"uniform at equal {what}: {bench_rd._fmt(result['bd'])}; values below the first "
          f"square-root level: {min(result['below']):.0%} to {max(result['below']):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
