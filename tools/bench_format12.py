#!/usr/bin/env python3
"""What the codings of format 1.2 (issue 15, part 1) save on real MobileNetV2 features.

For the first ``--images`` photographs of the evaluation's image set (refcodec.evaluation
.images), the real ImageNet MobileNetV2 (refcodec.models; weights from
``tools/install_eval_assets.sh``) gives its pool5 (1280x1x1) and conv5 (1280x7x7) features.
Each feature is coded at QP 22, 32 and 42 with the informative encoder's defaults (log
quantizer, 8-bit, per tensor, preset medium) and

* ``packing="auto"`` (format 1.0: one 8x8 coded tile per map, tiled 2x2 into 16x16
  pictures), and
* ``packing="dense"`` (format 1.2, packing_type 2: the maps side by side without padding,
  one picture of 40x40 for pool5 and of 256x256 for conv5),

and also with per-channel parameters in binary32 and binary16.
The tables give, per split, QP and coding, the median over the images of the coded layer
size (container included) as a fraction of the float32 size of the tensor, and the top-1
agreement of the network's decision on the decoded feature with that on the original.

Also: the bytes of a channel permutation of 1280 channels in 32-bit entries, in the
compact code and, for an order of 32 groups, in the grouped code; and the decode time of
the dense and the tiled streams against bare FFmpeg decoding of the same HEVC payloads,
measured in the same process, interleaved (medians of ``--repeats``; ratios printed, never
asserted; the decoder's target is at most 1.10).

    python tools/bench_format12.py --markdown docs/bench/format12.md \\
        --json docs/bench/format12.json
    python tools/bench_format12.py --images 2 --repeats 5       # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import refcodec  # noqa: E402
from refcodec import EncoderConfig, bitstream  # noqa: E402
from refcodec.enums import PermutationCoding, ParamFormat  # noqa: E402
from refcodec.hevc import pyav  # noqa: E402

QPS = (22, 32, 42)
CODINGS = {
    "auto (1.0: tiled 8x8 tiles)": dict(packing="auto"),
    "dense (1.2)": dict(packing="dense"),
}
PER_CHANNEL = {
    "auto, per-channel binary32": dict(packing="auto", per_channel=True),
    "dense, per-channel binary32": dict(packing="dense", per_channel=True),
    "dense, per-channel binary16 (1.2)": dict(packing="dense", per_channel=True,
                                              param_format="binary16"),
}


def features(num_images: int):
    """{split: [(image key, feature, logits of the original)]} and the network's tails."""
    import torch

    from refcodec.evaluation.images import image_set
    from refcodec.models import load_network
    net = load_network("mobilenet_v2")
    splits = {name: net.split(name) for name in ("pool5", "conv5")}
    out = {name: [] for name in splits}
    with torch.no_grad():
        for img in image_set(num_images):
            x = net.preprocess(img.image)
            for name, split in splits.items():
                f = split.head(x)
                logits = split.tail(f)["logits"]
                out[name].append((img.key, f.numpy().astype(np.float32), logits.numpy()))
    return out, splits


def top1(split, feature: np.ndarray) -> int:
    import torch
    with torch.no_grad():
        return int(split.tail(torch.from_numpy(feature))["logits"].argmax())


def rate_table(feats, splits) -> list[dict]:
    rows = []
    for name, items in feats.items():
        codings = dict(CODINGS, **PER_CHANNEL)
        for label, kw in codings.items():
            for qp in QPS:
                fractions, agree, pictures = [], [], None
                for _key, f, logits in items:
                    data = refcodec.encode({name: f}, EncoderConfig(qp=qp, **kw))
                    stream = refcodec.read_headers(data)
                    h = stream.layers[0].header
                    pictures = f"{h.num_pictures} x {h.picture_width}x{h.picture_height}"
                    layer_bytes = len(data) - 20 - 10          # less stream header, EOS
                    fractions.append(layer_bytes / (4 * f.size))
                    decoded = refcodec.decode(data)[name]
                    agree.append(top1(splits[name], decoded) == int(logits.argmax()))
                rows.append(dict(split=name, coding=label, qp=qp,
                                 median_fraction=statistics.median(fractions),
                                 min_fraction=min(fractions), max_fraction=max(fractions),
                                 top1_agreement=sum(agree) / len(agree), pictures=pictures,
                                 version_minor=stream.header.version_minor))
                print(f"{name} {label:34s} QP {qp}: {rows[-1]['median_fraction']:.3f} of "
                      f"float32, top-1 {rows[-1]['top1_agreement']:.2f}, {pictures}",
                      flush=True)
    return rows


def permutation_bytes(channels: int = 1280) -> dict:
    order = tuple(np.random.default_rng(0).permutation(channels).tolist())
    x = np.zeros((1, channels, 7, 7), np.float32)
    x[0, :, 0, 0] = np.arange(channels)
    base = refcodec.read_headers(refcodec.encode(x, EncoderConfig(
        qp=42, packing="dense", channel_order=order, permutation_coding="u32"))).layers[0].header
    sizes = {}
    for coding in (PermutationCoding.U32, PermutationCoding.COMPACT):
        h = base.__class__(**{**base.__dict__, "param_format": ParamFormat.BINARY32,
                              "permutation_coding": coding})
        sizes[coding.name.lower()] = len(bitstream.build_layer_header(h))
    # 32 groups (the tune's, Annex A.7.5): channels g, g + 32, ... form group g
    by_group = tuple(np.argsort(np.arange(channels) % 32, kind="stable").tolist())
    grouped = refcodec.read_headers(refcodec.encode(x, EncoderConfig(
        qp=42, packing="dense", channel_order=by_group,
        permutation_coding="grouped"))).layers[0].header
    sizes["grouped"] = len(bitstream.build_layer_header(grouped))
    none = base.__class__(**{**base.__dict__, "channel_permutation": None})
    plain = len(bitstream.build_layer_header(none))
    return {"channels": channels, "u32": sizes["u32"] - 2 - plain,
            "compact": sizes["compact"] - 2 - plain, "grouped": sizes["grouped"] - 2 - plain,
            "group_bits": grouped.group_bits}


def decode_times(feats, repeats: int) -> list[dict]:
    rows = []
    for name, items in feats.items():
        f = items[0][1]
        for label, kw in CODINGS.items():
            data = refcodec.encode({name: f}, EncoderConfig(qp=32, **kw))
            layer = refcodec.read_headers(data).layers[0]
            h = layer.header
            threads = pyav.use_frame_threads(h.num_pictures, h.picture_height, h.picture_width)

            def ref(data=data):
                return refcodec.decode(data)

            def bare(payload=layer.hevc_payload, threads=threads):
                return [fr.to_ndarray() for fr in pyav.decode_frames(payload, threads)]
            ref(), bare()                               # warm-up
            t_ref, t_bare = [], []
            for i in range(repeats):
                for fn, acc in ((ref, t_ref), (bare, t_bare))[::1 if i % 2 else -1]:
                    t0 = time.perf_counter()
                    fn()
                    acc.append(time.perf_counter() - t0)
            rows.append(dict(split=name, coding=label, qp=32,
                             pictures=f"{h.num_pictures} x {h.picture_width}x{h.picture_height}",
                             refcodec_ms=1e3 * statistics.median(t_ref),
                             ffmpeg_ms=1e3 * statistics.median(t_bare),
                             ratio=statistics.median(t_ref) / statistics.median(t_bare)))
            print(f"decode {name} {label}: {rows[-1]['refcodec_ms']:.2f} ms vs bare FFmpeg "
                  f"{rows[-1]['ffmpeg_ms']:.2f} ms = {rows[-1]['ratio']:.3f}", flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = ["# Format 1.2 codings on real MobileNetV2 features",
             "",
             f"Generated by `python tools/bench_format12.py {' '.join(result['argv'])}`: "
             f"{result['images']} photographs of the evaluation's image set, the ImageNet "
             "MobileNetV2 of `refcodec.models`, the informative encoder's defaults (log "
             "quantizer, 8-bit, preset medium) but for the coding named. Size: the coded "
             "layer (its two units) over the float32 tensor, median (min..max) over the "
             "photographs; top-1: share of photographs whose decision on the decoded "
             "feature is that on the original.",
             "",
             "| split | coding | QP | size / float32 | top-1 | pictures | version |",
             "|:---|:---|---:|---:|---:|:---|:---|"]
    for r in result["rates"]:
        lines.append(f"| {r['split']} | {r['coding']} | {r['qp']} | "
                     f"{r['median_fraction']:.3f} ({r['min_fraction']:.3f}..."
                     f"{r['max_fraction']:.3f}) | {r['top1_agreement']:.2f} | {r['pictures']} "
                     f"| 1.{r['version_minor']} |")
    p = result["permutation"]
    lines += ["",
              f"Channel permutation of {p['channels']} channels in `layer_header()`: "
              f"{p['u32']} bytes in 32-bit entries (permutation_coding 0), {p['compact']} "
              f"bytes in the compact code (permutation_coding 1, 11 bits per entry), "
              f"{p['grouped']} bytes in the grouped code for an order of 32 groups "
              f"(permutation_coding 2, {p['group_bits']} bits per entry and group_bits), plus "
              f"2 bytes of `layer_header_ext()`.",
              "",
              f"Decode time at QP 32 ({result['repeats']} interleaved repeats, medians): "
              "`refcodec.decode` of the stream against bare FFmpeg decoding of its HEVC "
              "payload (`pyav.decode_frames` and `to_ndarray` per frame), same process; "
              f"1-minute load average {result['load'][0]:.1f} before and "
              f"{result['load'][1]:.1f} after the run on {result['cpus']} CPUs (the "
              "ratios of sub-millisecond decodes are dominated by the fixed cost of a "
              "stream: container parse, parameter-set checks, MD5, unpack).",
              "",
              "| split | coding | pictures | refcodec ms | bare FFmpeg ms | ratio |",
              "|:---|:---|:---|---:|---:|---:|"]
    for r in result["decode"]:
        lines.append(f"| {r['split']} | {r['coding']} | {r['pictures']} | "
                     f"{r['refcodec_ms']:.2f} | {r['ffmpeg_ms']:.2f} | {r['ratio']:.3f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    feats, splits = features(args.images)
    result = {"argv": sys.argv[1:] if argv is None else list(argv), "images": args.images,
              "repeats": args.repeats, "rates": rate_table(feats, splits),
              "permutation": permutation_bytes(), "decode": decode_times(feats, args.repeats)}
    result["seconds"] = time.perf_counter() - t0
    result["load"] = [load0, os.getloadavg()[0]]
    result["cpus"] = os.cpu_count()
    print(f"permutation of 1280 channels: {result['permutation']}")
    if args.markdown:
        args.markdown.write_text(markdown(result), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
