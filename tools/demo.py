#!/usr/bin/env python3
"""Demo of the main job: a real network's intermediate feature coded at the four test QPs.

ImageNet MobileNetV2 (torchvision's trained weights, loaded strictly; refcodec.models) looks
at a real photograph shipped with scikit-image (default: ``chelsea``, a cat).  Its feature at
one or two split points (default conv1 = 32x112x112 and conv5 = 1280x7x7 for the 224x224
input) is coded with the paper's configuration (log quantizer, 8-bit, one channel per
picture where libx265 allows it, all-intra, QP = slice QP) at QP 12/22/32/42, decoded, and
fed back to the rest of the network.  Printed per split and QP: stream bytes, compression
rate, bits per element, the top-1 class from the pristine and the reconstructed feature (and
whether it is unchanged), its probability, top-5 agreement, times.  Streams and a plot are
written to out/demo/.

Needs ``pip install -e ".[test,torch]"`` and ``bash tools/install_eval_assets.sh``.
The evaluation over many images, networks and configurations is tools/eval.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import refcodec  # noqa: E402

HINT = "pip install -e '.[test,torch]' and bash tools/install_eval_assets.sh"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="chelsea",
                    help="a photograph of skimage.data (default chelsea; e.g. coffee, "
                         "astronaut, rocket, motorcycle)")
    ap.add_argument("--splits", nargs="+", default=["conv1", "conv5"],
                    help="MobileNetV2 split points: conv1..conv5, pool5 (default conv1 conv5)")
    ap.add_argument("--qps", type=int, nargs="+", default=[12, 22, 32, 42])
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    args = ap.parse_args(argv)
    try:
        import torch
        from refcodec import evaluation, models
        net = models.load_network("mobilenet_v2")
        image = evaluation.load_photo(args.image)
    except ImportError as exc:
        print(f"demo: {exc}: {HINT}", file=sys.stderr)
        return 2
    except (models.AssetMissing, RuntimeError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except AttributeError:
        print(f"demo: skimage.data has no photograph {args.image!r}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    names = models.imagenet_class_names()

    def label(k):
        return f"{k} {names[k]}" if names else str(k)

    args.out.mkdir(parents=True, exist_ok=True)
    x = net.preprocess(image)
    with torch.no_grad():
        p_full = net.model(x).softmax(1)[0]
    top = int(p_full.argmax())
    print(f"refcodec {refcodec.__version__}, VFC format {refcodec.FORMAT_VERSION}: ImageNet "
          f"MobileNetV2 (torchvision weights) on skimage.data.{args.image} "
          f"({image.shape[1]}x{image.shape[0]}, resized/cropped to 224x224)")
    print(f"uncoded prediction: {label(top)} (p = {float(p_full[top]):.3f})"
          + ("" if names else "  [class names: install Debian package darknet]"))
    print("coding: log quantizer, 8-bit, one channel per picture (auto), all-intra\n")
    print("| split | shape | QP | bytes | compression rate | bits/element | top-1 pristine -> "
          "reconstructed | unchanged | p(top-1) | top-5 agreement | encode s | decode s |")
    print("|---|---|---:|---:|---:|---:|---|:---:|---:|---:|---:|---:|")
    rows = []
    t_start = time.perf_counter()
    for split_name in args.splits:
        try:
            split = net.split(split_name)
        except KeyError as exc:
            print(f"demo: {exc.args[0]}", file=sys.stderr)
            return 2
        with torch.no_grad():
            feature = split.head(x)
            pristine = split.tail(feature)["logits"].softmax(1)[0]
        tp = int(pristine.argmax())
        for qp in args.qps:
            coded = models.code_feature(feature, refcodec.EncoderConfig(qp=qp), detailed=True)
            (args.out / f"mobilenet_v2.{split_name}.qp{qp}.vfc").write_bytes(coded.stream)
            with torch.no_grad():
                rec = split.tail(coded.feature)["logits"].softmax(1)[0]
            tr = int(rec.argmax())
            top5 = len(set(pristine.topk(5).indices.tolist())
                       & set(rec.topk(5).indices.tolist())) / 5
            rate = 4 * coded.num_elements / len(coded.stream)
            rows.append((split_name, qp, rate, tr == tp, float(rec[tp])))
            print(f"| {split_name} | {'x'.join(map(str, feature.shape[1:]))} | {qp} | "
                  f"{len(coded.stream)} | {rate:.1f} | "
                  f"{8 * len(coded.stream) / coded.num_elements:.3f} | {label(tp)} -> "
                  f"{label(tr)} | {'yes' if tr == tp else 'NO'} | {float(rec[tp]):.3f} | "
                  f"{top5:.1f} | {coded.encode_seconds:.2f} | {coded.decode_seconds:.2f} |")
    plot = _plot(rows, args, label(top))
    print(f"\n{len(rows)} codings in {time.perf_counter() - t_start:.1f} s; streams in "
          f"{args.out}/ (inspect one: refcodec info {args.out}/mobilenet_v2."
          f"{args.splits[-1]}.qp22.vfc)" + (f"; plot {plot}" if plot else ""))
    return 0


def _plot(rows, args, top_label):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for split_name in args.splits:
        pts = [r for r in rows if r[0] == split_name]
        a1.plot([r[1] for r in pts], [r[2] for r in pts], marker="o", label=split_name)
        a2.plot([r[1] for r in pts], [r[4] for r in pts], marker="o", label=split_name)
        for r in pts:
            if not r[3]:
                a2.annotate("class changed", (r[1], r[4]), fontsize=8, color="red",
                            textcoords="offset points", xytext=(-75, 4))
    a1.set_yscale("log")
    a1.set_xlabel("QP")
    a1.set_ylabel("compression rate (float32 bytes / stream bytes)")
    a1.set_title(f"MobileNetV2 features of skimage.data.{args.image}")
    a2.set_xlabel("QP")
    a2.set_ylabel("probability of the pristine top-1 class")
    a2.set_ylim(0, 1.05)
    a2.set_title(f"pristine top-1: {top_label}")
    for a in (a1, a2):
        a.set_xticks(args.qps)
        a.grid(True, alpha=0.3)
        a.legend(title="split")
    fig.tight_layout()
    path = args.out / "demo.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
