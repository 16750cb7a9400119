#!/usr/bin/env python3
"""Evaluate the scalable face layers (spec clause 13) on the real faces available offline.

    python tools/eval_face.py                  # writes docs/eval/face.md, face.json, plots
    python tools/eval_face.py --quick          # fewer rate points (a smoke run)

Three measurements, all on faces held out from the predictor's training (refcodec.face.data
split "test"; the embedding-code statistics use every face):

1. The embedding code (face_base): bits of the signed Exp-Golomb code at its best order
   against a fixed-length code, an adaptive binary arithmetic coder of the same binarization
   (ideal code length of per-bin adaptive models: what a CABAC-like coder would approach),
   and the static entropy of the levels (a lower bound for any memoryless code that knows
   the level distribution), for several quantization steps.
2. Rate-accuracy: distance between the embedding decoded from the base layer and the
   pristine one, and dlib's same-person decision (distance < 0.6), against the embedding
   recomputed from a JPEG / JPEG 2000 / HEVC coded face image at comparable bits (the
   compress-then-analyze anchor).  Impostor pairs (decoded face vs. the other test faces)
   are counted too.
3. Rate-distortion: PSNR of the reconstructed face image against total bits (base +
   enhancement unit bytes) of the scalable scheme with the shipped predictor and with the
   no-predictor control, against the same texture codec applied to the face image itself
   (payload bytes only), with BD-rates (PCHIP).

Needs refcodec[face] and the face assets (tools/install_eval_assets.sh), matplotlib.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import refcodec  # noqa: E402
from refcodec.enums import Embedder, TextureCodec  # noqa: E402
from refcodec.face import data as face_data  # noqa: E402
from refcodec.face import entropy, models, texture  # noqa: E402
from refcodec.face.codec import FaceConfig, FaceInput, decode_faces  # noqa: E402
from refcodec.metrics.bdrate import bd_rate  # noqa: E402
from refcodec.metrics.rate import face_coded_bytes  # noqa: E402
from refcodec.records import Face, FaceBase  # noqa: E402

STEPS = (1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256, 1 / 512, 1 / 1024)
BASE_STEP = 1 / 256
CODEC_POINTS = {
    "hevc": ("qp", [47, 42, 37, 32, 27, 22]),
    "jpeg": ("quality", [5, 10, 20, 35, 50, 75, 90]),
    "jpeg2000": ("rate", [160.0, 80.0, 40.0, 20.0, 10.0, 5.0]),
}
ANCHOR_POINTS = {   # rate-accuracy anchors: down to the lowest rates the codecs reach
    "hevc": ("qp", [51, 47, 42, 37, 32, 27]),
    "jpeg": ("quality", [1, 2, 5, 10, 20, 50]),
    "jpeg2000": ("rate", [2000.0, 1000.0, 400.0, 160.0, 80.0, 40.0]),
}
CODEC_NAMES = {"hevc": "HEVC intra", "jpeg": "JPEG", "jpeg2000": "JPEG 2000"}
THRESHOLD = models.SAME_PERSON_DISTANCE


# ------------------------------------------------------------------------------------
# 1. The embedding code
# ------------------------------------------------------------------------------------

def _kt_bits(bits_seq) -> float:
    """Ideal code length of a bit sequence under an adaptive KT estimator."""
    n0 = n1 = 0.5
    total = 0.0
    for b in bits_seq:
        p = (n1 if b else n0) / (n0 + n1)
        total -= math.log2(p)
        if b:
            n1 += 1
        else:
            n0 += 1
    return total


def adaptive_binary_bits(levels, k: int) -> float:
    """Ideal bits of an adaptive binary arithmetic coder of the sek(v) binarization: the
    prefix bins (one adaptive model per bin index) and the sign-folded suffix bits sent as
    bypass bins, plus the 1-bit stop and byte alignment ignored (a fair lower estimate)."""
    prefix_bins: dict[int, list[int]] = {}
    bypass = 0
    for v in levels:
        u = entropy.code_number(int(v))
        x = (u >> k) + 1
        zeros = x.bit_length() - 1
        for j in range(zeros):
            prefix_bins.setdefault(j, []).append(0)
        prefix_bins.setdefault(zeros, []).append(1)
        bypass += zeros + k
    return sum(_kt_bits(seq) for seq in prefix_bins.values()) + bypass


def embedding_code_table(records) -> list[dict]:
    rows = []
    for step in STEPS:
        step = entropy.as_step(step)
        all_levels = [entropy.quantize(r.embedding, step) for r in records]
        values, counts = np.unique(np.concatenate(all_levels), return_counts=True)
        p = counts / counts.sum()
        static_entropy = float(-(p * np.log2(p)).sum()) * len(all_levels[0])
        eg, fixed, adaptive, orders, unit, dist = [], [], [], [], [], []
        for r, lv in zip(records, all_levels):
            k = entropy.best_order(lv)
            orders.append(k)
            eg.append(entropy.payload_bits(lv, k))
            span = int(lv.max() - lv.min())
            fixed.append(len(lv) * max(1, math.ceil(math.log2(span + 1))) + 32)
            adaptive.append(adaptive_binary_bits(lv, k))
            base = FaceBase(
                face_id="face0", embedder_idc=Embedder.DLIB_RESNET_V1,
                embedding_dim=len(lv), embedding_step=step, eg_order=k,
                levels=tuple(int(v) for v in lv), offset=0, payload_offset=0)
            unit.append(8 * face_coded_bytes(Face(0, base))[0])
            dist.append(models.distance(entropy.dequantize(lv, step), r.embedding))
        rows.append({
            "step": step, "faces": len(records),
            "eg_bits": float(np.mean(eg)), "fixed_length_bits": float(np.mean(fixed)),
            "adaptive_binary_bits": float(np.mean(adaptive)),
            "static_entropy_bits": static_entropy,
            "eg_order_median": float(np.median(orders)),
            "face_base_unit_bits": float(np.mean(unit)),
            "quantization_distance_mean": float(np.mean(dist)),
            "quantization_distance_max": float(np.max(dist)),
        })
    return rows


# ------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    m = mask > 0.5
    err = (a.astype(np.float64) - b.astype(np.float64))[m]
    mse = float(np.mean(err ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def code_plain(chip: np.ndarray, codec: str, param: str, value) -> tuple[int, np.ndarray]:
    """A texture codec applied to the face image itself: (payload bits, decoded image)."""
    tc = TextureCodec[codec.upper()]
    payload = texture.encode_texture(chip, tc, **{param: value})
    out = texture.decode_texture(payload, tc, *chip.shape, offset=0, path="plain")
    return 8 * len(payload), out


def unit_bits(stream) -> tuple[int, int]:
    """(base bits, enhancement bits) of the first face: unit bytes with their overhead."""
    base, enh = face_coded_bytes(stream.faces[0])
    return 8 * base, 8 * enh


# ------------------------------------------------------------------------------------
# 2. Rate-accuracy
# ------------------------------------------------------------------------------------

def rate_accuracy(records, fm, quick: bool) -> dict:
    steps = STEPS[1::2] if quick else STEPS
    pristine = np.stack([r.embedding for r in records])
    n = len(records)

    def decisions(decoded: np.ndarray) -> dict:
        d = np.linalg.norm(decoded[:, None, :].astype(np.float64) - pristine[None], axis=2)
        genuine = np.diag(d)
        impostor = d[~np.eye(n, dtype=bool)]
        return {"distance_mean": float(genuine.mean()), "distance_max": float(genuine.max()),
                "same_person_rate": float((genuine < THRESHOLD).mean()),
                "impostor_rejection_rate": float((impostor >= THRESHOLD).mean())
                if impostor.size else None}

    base_rows = []
    for step in steps:
        bits, decoded = [], []
        for r in records:
            face = FaceInput(r.chip, r.embedding, Embedder.DLIB_RESNET_V1)
            stream = refcodec.read_headers(refcodec.encode(
                None, faces=[(face, FaceConfig(embedding_step=step, enhancement="none"))]))
            bits.append(unit_bits(stream)[0])
            decoded.append(decode_faces(stream, images=False)["face0"].embedding)
        base_rows.append({"step": entropy.as_step(step), "bits": float(np.mean(bits)),
                          **decisions(np.stack(decoded))})
    anchors = {}
    for codec, (param, values) in ANCHOR_POINTS.items():
        rows = []
        for value in (values[::2] if quick else values):
            bits, decoded = [], []
            for r in records:
                b, img = code_plain(r.chip, codec, param, value)
                bits.append(b)
                decoded.append(fm.embed(img))
            rows.append({param: value, "bits": float(np.mean(bits)),
                         **decisions(np.stack(decoded))})
        anchors[codec] = rows
    return {"faces": n, "base_layer": base_rows, "image_anchors": anchors}


# ------------------------------------------------------------------------------------
# 3. Rate-distortion
# ------------------------------------------------------------------------------------

def rate_distortion(records, predictor_id: str | None, quick: bool) -> dict:
    variants = ["none"] + ([predictor_id] if predictor_id else [])
    out = {}
    for codec, (param, values) in CODEC_POINTS.items():
        values = values[::2] if quick else values
        curves = {f"scalable/{v}": [] for v in variants}
        curves["plain"] = []
        for value in values:
            per = {k: ([], []) for k in curves}
            for r in records:
                b, img = code_plain(r.chip, codec, param, value)
                per["plain"][0].append(b)
                per["plain"][1].append(psnr(img, r.chip, r.valid))
                for v in variants:
                    cfg = FaceConfig(embedding_step=BASE_STEP, enhancement=codec, predictor=v,
                                     **{param: value})
                    face = FaceInput(r.chip, r.embedding, Embedder.DLIB_RESNET_V1)
                    stream = refcodec.read_headers(refcodec.encode(None, faces=[(face, cfg)]))
                    base, enh = unit_bits(stream)
                    rec = decode_faces(stream)["face0"].image
                    per[f"scalable/{v}"][0].append(base + enh)
                    per[f"scalable/{v}"][1].append(psnr(rec, r.chip, r.valid))
            for k, (bits, q) in per.items():
                curves[k].append({param: value, "bits": float(np.mean(bits)),
                                  "psnr": float(np.mean(q)),
                                  "per_face_bits": bits, "per_face_psnr": q})
        bd = {}
        for k in curves:
            if k == "plain":
                continue
            per_face = []
            for i in range(len(records)):
                a_r = [p["per_face_bits"][i] for p in curves["plain"]]
                a_q = [p["per_face_psnr"][i] for p in curves["plain"]]
                t_r = [p["per_face_bits"][i] for p in curves[k]]
                t_q = [p["per_face_psnr"][i] for p in curves[k]]
                try:
                    per_face.append(bd_rate(a_r, a_q, t_r, t_q, method="pchip",
                                            plateau="lowest_rate"))
                except ValueError as exc:
                    per_face.append(None)
                    print(f"  BD-rate {codec} {k} face {i}: {exc}", file=sys.stderr)
            ok = [v for v in per_face if v is not None]
            bd[k] = {"mean_bd_rate_percent": float(np.mean(ok)) if ok else None,
                     "faces": len(ok), "per_face": per_face}
        out[codec] = {"param": param, "curves": curves, "bd_rate_vs_plain": bd}
    # the prediction alone (base layer only, image = prediction): its PSNR
    if predictor_id:
        from refcodec.face import predictor as predictors
        model = predictors.shipped_predictors()[predictor_id]
        q = []
        for r in records:
            dec = entropy.dequantize(entropy.quantize(r.embedding, entropy.as_step(BASE_STEP)),
                                     entropy.as_step(BASE_STEP))
            q.append(psnr(model.predict(dec), r.chip, r.valid))
        out["prediction_only_psnr"] = float(np.mean(q))
    return out


# ------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------

def _fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def render(results: dict) -> str:
    L = [
        "# Scalable face layers: evaluation",
        "",
        f"Generated {results['generated']} by `{results['command']}` in "
        f"{results['seconds']:.0f} s ({results['machine']}).",
        "",
        "Data: " + results["data"],
        "",
        "## 1. The embedding code (face_base, clause 13.3.6)",
        "",
        f"Mean bits per {results['embedding_code'][0]['faces']}-face embedding (all faces of "
        "the face set, 128 values each). *EG* = the normative signed Exp-Golomb code at its "
        "best order (payload incl. stop bit and alignment); *fixed* = fixed-length levels "
        "plus 32 bits of range; *adaptive binary* = ideal code length of an adaptive binary "
        "arithmetic coder of the same binarization (per-bin KT models; a CABAC-like coder "
        "would need at least this); *static entropy* = 128 x the entropy of the levels over "
        "the whole set (a bound for a memoryless code whose model is known in advance); "
        "*unit* = the whole face_base unit with its 10 bytes of unit overhead; *distance* = "
        "mean Euclidean distance of the dequantized embedding to the pristine one.",
        "",
        "| step | EG | fixed | adaptive binary | static entropy | EG order (median) | unit | "
        "distance (mean / max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["embedding_code"]:
        L.append(f"| 1/{round(1 / r['step'])} | {r['eg_bits']:.0f} | "
                 f"{r['fixed_length_bits']:.0f} | {r['adaptive_binary_bits']:.0f} | "
                 f"{r['static_entropy_bits']:.0f} | {r['eg_order_median']:.0f} | "
                 f"{r['face_base_unit_bits']:.0f} | "
                 f"{r['quantization_distance_mean']:.4f} / "
                 f"{r['quantization_distance_max']:.4f} |")
    ra = results["rate_accuracy"]
    L += ["", "## 2. Rate-accuracy", "",
          f"{ra['faces']} held-out faces. *same person* = fraction of faces whose decoded "
          f"embedding is within dlib's threshold {THRESHOLD} of its pristine embedding; "
          f"*impostors rejected* = fraction of (decoded face, other test face) pairs at or "
          f"beyond it (with the pristine embeddings this is "
          f"{_fmt(results['pristine_impostor_rejection'], 3)}).", "",
          "| scheme | setting | bits | distance mean | distance max | same person | "
          "impostors rejected |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in ra["base_layer"]:
        L.append(f"| base layer | step 1/{round(1 / r['step'])} | {r['bits']:.0f} | "
                 f"{r['distance_mean']:.4f} | {r['distance_max']:.4f} | "
                 f"{r['same_person_rate']:.3f} | {_fmt(r['impostor_rejection_rate'], 3)} |")
    for codec, rows in ra["image_anchors"].items():
        param = ANCHOR_POINTS[codec][0]
        for r in rows:
            L.append(f"| {CODEC_NAMES[codec]} image, re-embedded | {param} {r[param]} | "
                     f"{r['bits']:.0f} | {r['distance_mean']:.4f} | {r['distance_max']:.4f} | "
                     f"{r['same_person_rate']:.3f} | {_fmt(r['impostor_rejection_rate'], 3)} |")
    rd = results["rate_distortion"]
    L += ["", "## 3. Rate-distortion", "",
          f"{results['rd_faces']} held-out faces, base layer at step 1/{round(1 / BASE_STEP)}. "
          "Bits: scalable = base + enhancement unit bytes (with unit overhead); plain = the "
          "codec's payload bytes only. PSNR over the chip pixels that come from the "
          "photograph. BD-rate (PCHIP) of each scalable variant against the plain codec, "
          "per face, averaged (negative = the scalable scheme needs fewer bits).", ""]
    if "prediction_only_psnr" in rd:
        L.append(f"The prediction alone (base layer only) gives {rd['prediction_only_psnr']:.2f} "
                 "dB on these faces.")
        L.append("")
    for codec in CODEC_POINTS:
        block = rd[codec]
        param = block["param"]
        names = list(block["curves"])
        L += [f"### {CODEC_NAMES[codec]}", "",
              "| " + param + " | " + " | ".join(f"{n} bits | {n} PSNR" for n in names) + " |",
              "|---:|" + "---:|" * (2 * len(names))]
        for i in range(len(block["curves"]["plain"])):
            cells = [str(block["curves"]["plain"][i][param])]
            for n in names:
                p = block["curves"][n][i]
                cells += [f"{p['bits']:.0f}", f"{p['psnr']:.2f}"]
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
        for n, v in block["bd_rate_vs_plain"].items():
            L.append(f"- BD-rate of {n} vs. plain {CODEC_NAMES[codec]}: "
                     f"{_fmt(v['mean_bd_rate_percent'], 1)} % ({v['faces']} faces)")
        L.append("")
    L += ["## Verdict (computed from the numbers above)", ""] + results["verdict"]
    return "\n".join(L) + "\n"


def verdict(results: dict, predictor_id: str | None) -> list[str]:
    out = []
    rd = results["rate_distortion"]
    for codec in CODEC_POINTS:
        curves = rd[codec]["curves"]
        bd = rd[codec]["bd_rate_vs_plain"]
        ctrl = bd.get("scalable/none", {}).get("mean_bd_rate_percent")
        line = f"- {CODEC_NAMES[codec]}: control (no predictor) BD-rate {_fmt(ctrl, 1)} %"
        if predictor_id:
            pred = bd[f"scalable/{predictor_id}"]["mean_bd_rate_percent"]
            wins = sum(p["psnr"] > c["psnr"] and p["bits"] <= c["bits"] * 1.0 or
                       p["bits"] < c["bits"] and p["psnr"] >= c["psnr"]
                       for p, c in zip(curves[f"scalable/{predictor_id}"],
                                       curves["scalable/none"]))
            line += (f"; with the predictor {_fmt(pred, 1)} %; the predictor beats the "
                     f"control (more PSNR at no more bits, or fewer bits at no less PSNR) at "
                     f"{wins} of {len(curves['plain'])} settings")
        out.append(line + ".")
    ra = results["rate_accuracy"]
    target = max(r["same_person_rate"] for r in ra["base_layer"])
    best = min((r for r in ra["base_layer"] if r["same_person_rate"] >= target),
               key=lambda r: r["bits"])
    cheapest_ok = [(codec, r) for codec, rows in ra["image_anchors"].items() for r in rows
                   if r["same_person_rate"] >= target]
    head = (f"- Rate-accuracy: the cheapest base layer that keeps {target:.3f} of the faces "
            f"within the threshold is step 1/{round(1 / best['step'])} at {best['bits']:.0f} "
            f"bits (mean distance {best['distance_mean']:.3f})")
    if cheapest_ok:
        codec, r = min(cheapest_ok, key=lambda x: x[1]["bits"])
        out.append(f"{head}; the cheapest coded image that does as well is "
                   f"{CODEC_NAMES[codec]} at {r['bits']:.0f} bits "
                   f"({r['bits'] / best['bits']:.1f}x), mean distance "
                   f"{r['distance_mean']:.3f}.")
    else:
        out.append(f"{head}; no coded image does as well at any tested setting.")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval"))
    ap.add_argument("--quick", action="store_true", help="fewer rate points")
    ap.add_argument("--render", metavar="FACE_JSON",
                    help="only rewrite face.md and the plots from a face.json")
    args = ap.parse_args()
    if args.render:
        results = json.loads(Path(args.render).read_text())
        results["verdict"] = verdict(results, results["predictor"])
        out = Path(args.out)
        (out / "face.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / "face.md").write_text(render(results))
        plot(results, out, results["predictor"])
        return 0
    t0 = time.perf_counter()
    fm = models.load_face_models()
    every = face_data.face_set(fm=fm)
    test = [r for r in every if r.split == "test"]
    colour_test = [r for r in test if r.color]
    try:
        from refcodec.face import predictor as predictors
        shipped = predictors.shipped_predictors()
    except ImportError:
        shipped = {}
    predictor_id = next(iter(shipped), None)
    print(f"{len(every)} faces, {len(test)} test ({len(colour_test)} colour); predictor "
          f"{predictor_id}", file=sys.stderr)
    results = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python tools/eval_face.py" + (" --quick" if args.quick else ""),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, refcodec "
                   f"{refcodec.__version__}",
        "data": (f"{len(every)} faces of refcodec.face.data (13 colour photographs' faces and "
                 f"the LFW subset); held-out test faces: {len(test)} ({len(colour_test)} "
                 f"colour faces of one photograph not used in training, "
                 f"{len(test) - len(colour_test)} gray 25x25 LFW crops upsampled). Face "
                 f"images are dlib's aligned 150x150 chips; embeddings dlib's ResNet."),
        "predictor": predictor_id,
    }
    print("embedding code ...", file=sys.stderr)
    results["embedding_code"] = embedding_code_table(every)
    pristine = np.stack([r.embedding for r in test])
    d = np.linalg.norm(pristine[:, None] - pristine[None], axis=2)
    off = d[~np.eye(len(test), dtype=bool)]
    results["pristine_impostor_rejection"] = float((off >= THRESHOLD).mean())
    print("rate-accuracy ...", file=sys.stderr)
    results["rate_accuracy"] = rate_accuracy(test, fm, args.quick)
    print("rate-distortion ...", file=sys.stderr)
    results["rd_faces"] = len(test)
    results["rate_distortion"] = rate_distortion(test, predictor_id, args.quick)
    results["verdict"] = verdict(results, predictor_id)
    results["seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "face.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "face.md").write_text(render(results))
    plot(results, out, predictor_id)
    print(f"wrote {out / 'face.md'}, face.json, face_rd.png, face_rate_accuracy.png",
          file=sys.stderr)
    return 0


def plot(results: dict, out: Path, predictor_id: str | None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rd = results["rate_distortion"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, codec in zip(axes, CODEC_POINTS):
        for name, curve in rd[codec]["curves"].items():
            ax.plot([p["bits"] / 8 for p in curve], [p["psnr"] for p in curve], "o-",
                    label=name)
        ax.set_title(f"{CODEC_NAMES[codec]} ({results['rd_faces']} held-out faces)")
        ax.set_xlabel("bytes per face (scalable: base + enhancement)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "face_rd.png", dpi=110)
    plt.close(fig)
    ra = results["rate_accuracy"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, ax, label in (("distance_mean", axes[0], "mean distance to pristine embedding"),
                           ("same_person_rate", axes[1], "same-person rate (d < 0.6)")):
        ax.plot([r["bits"] / 8 for r in ra["base_layer"]], [r[key] for r in ra["base_layer"]],
                "o-", label="base layer (embedding)")
        for codec, rows in ra["image_anchors"].items():
            ax.plot([r["bits"] / 8 for r in rows], [r[key] for r in rows], "s--",
                    label=f"{CODEC_NAMES[codec]} image, re-embedded")
        ax.set_xscale("log")
        ax.set_xlabel("bytes per face")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "face_rate_accuracy.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
