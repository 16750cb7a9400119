#!/usr/bin/env python3
"""Channel orders by groups of the mean, coded with the grouped permutation of format 1.2.

Annex A.7.5 orders the maps of a mosaic by their mean where the compact permutation
(Ceil(Log2 C) bits a channel, clause 8.3.16) costs at most 1/16 bit per element, and by four
groups of their mean with the grouped permutation (2 bits a channel) where only that does,
as on MobileNetV2's conv5 (1280 maps of 7x7).  This tool measures the choice of the number
of groups: the channels split into K groups of equal count by their mean, the mosaic in group
order (channels of a group in index order), each coded with the grouped permutation
(Ceil(Log2 K) bits a channel).  ``full`` is the order by the mean itself with the
permutation counted as free: the stream carries the compact code and its size is counted
without it (the upper bound of any order code).  Every variant is the efficient tune's
choice for the layer otherwise; BD-rate against it at equal softmax KL, tools/bench_rd.py's
90 % paired bootstrap interval over the photographs.

    python tools/bench_order.py --split conv5 --images 24
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rd  # noqa: E402
import refcodec  # noqa: E402
from refcodec import tune as tuning  # noqa: E402
from refcodec.syntax import perm_bits  # noqa: E402

GROUPS = (2, 4, 8, 16, 32)


def variants(f: np.ndarray, choice, groups=GROUPS) -> dict:
    """name -> (config, bytes of the stream not counted in its rate)."""
    c = f.shape[1]
    means = choice.apply(f).astype(np.float64).mean(axis=(0, 2, 3))
    rank = np.argsort(np.argsort(means, kind="stable"), kind="stable")
    # the efficient tune's own stream (with the permutation A.7.5 chose, if any)
    out = {"efficient": (choice.config, 0)}
    for k in groups:
        order = np.argsort((rank * k) // c, kind="stable")
        out[f"groups-{k}"] = (dataclasses.replace(
            choice.config, channel_order=tuple(int(i) for i in order),
            permutation_coding="grouped"), 0)
    out["full"] = (dataclasses.replace(
        choice.config, channel_order=tuple(int(i) for i in np.argsort(means, kind="stable")),
        permutation_coding="compact"), -(-c * perm_bits(c) // 8))
    return out


def run(split_name: str, images: int, groups=GROUPS) -> dict:
    import torch
    from refcodec import evaluation, models
    torch.set_num_threads(1)
    net = models.load_network("mobilenet_v2")
    split = net.split(split_name)
    rows: dict = {}
    for i, item in enumerate(evaluation.image_set(images)):
        x = net.preprocess(item.image)
        with torch.no_grad():
            feature = split.head(x)
            pristine = split.tail(feature)["logits"].numpy()[0]
        f = feature.numpy()
        for qp in bench_rd.QPS:
            choice = tuning.choose(split_name, f, "efficient", refcodec.EncoderConfig(qp=qp))
            if choice.config.tile_grid is None:
                raise SystemExit(f"{split_name}: the efficient tune makes no mosaic here")
            for name, (cfg, free) in variants(f, choice, groups).items():
                data = refcodec.encode({split_name: choice.apply(f)}, cfg)
                y = torch.from_numpy(refcodec.decode(data)[split_name])
                with torch.no_grad():
                    decoded = split.tail(y)["logits"].numpy()[0]
                row = bench_rd.fidelity(pristine, decoded)
                row["bytes"] = len(data) - free
                rows.setdefault(name, {q: [] for q in bench_rd.QPS})[qp].append(row)
        print(f"[{i + 1}/{images}] {item.key}", file=sys.stderr, flush=True)
    return {name: bench_rd.bd_with_interval(rows["efficient"], by_qp, images, "kl")
            for name, by_qp in rows.items() if name != "efficient"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="conv5")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--groups", type=int, nargs="+", default=list(GROUPS),
                    help=f"numbers of groups to compare (2..256; default {GROUPS})")
    args = ap.parse_args(argv)
    if not all(2 <= k <= 256 for k in args.groups):
        ap.error("--groups: each number of groups shall be 2..256 (group_bits 1..8)")
    for name, bd in run(args.split, args.images, tuple(args.groups)).items():
        print(f"{args.split} {name}: {bench_rd._fmt(bd)} against the efficient tune "
              f"(equal softmax KL, {args.images} photographs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
