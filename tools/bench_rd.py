#!/usr/bin/env python3
"""Rate-distortion benchmark of the choosing encoder (refcodec.tune) against the seed.

Real features: ImageNet MobileNetV2 (refcodec.models, weights from
tools/install_eval_assets.sh) split at conv1..conv5 and pool5, on the evaluation's
photographs (refcodec.evaluation.image_set).  Each feature is coded with every tune
(default seed, fast, efficient) at QPs 12..42 in steps of 5, decoded and fed to the rest of
the network.  Fidelity against the pristine feature's outputs: the mean KL divergence of
the softmax (KL(p_pristine || p_decoded), nats), the mean squared error of the logits and
top-1 agreement.  Per split and tune: BD-rate against the seed measured in the same run
(rate = mean stream bytes over the images at each QP, quality = -log10(mean KL) or
-log10(logit MSE); PCHIP on log rate, refcodec.metrics.bd_rate), with a 90 % paired
bootstrap interval (images resampled with replacement, the same draw for both curves);
median encode and decode times and their ratios against the seed's.  pool5: the smallest
coded size (as a fraction of its float32 size) at a top-1 agreement of at least 0.97.

    flock /tmp/refcodec-heavy.lock nice -n 5 python tools/bench_rd.py --images 24 -o docs/bench

writes rd.json, rd.md and rd.png there.  One thread for torch and libx265 (deterministic
bytes; timings comparable between tunes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import refcodec  # noqa: E402
from refcodec import tune as tuning  # noqa: E402
from refcodec.metrics import bd_rate  # noqa: E402

SPLITS = ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5")
QPS = tuple(range(12, 43, 5))
TUNES = ("seed", "fast", "efficient")


def _variant(overrides=None, **change):
    """An ablation of the efficient tune: its choice for the layer, chosen with the
    module constants of refcodec.tune in ``overrides`` and then with ``change`` applied
    (quantizer and bit depth only where the layer is uniform- or square-root-quantized)."""
    def make(name, f, qp):
        saved = {k: getattr(tuning, k) for k in overrides or {}}
        try:
            for k, v in (overrides or {}).items():
                setattr(tuning, k, v)
            choice = tuning.choose(name, f, "efficient", refcodec.EncoderConfig(qp=qp))
        finally:
            for k, v in saved.items():
                setattr(tuning, k, v)
        cfg, fields = choice.config, dict(change)
        clip = fields.pop("clip", choice.clip)
        flat = fields.pop("flat_maps", choice.flat_maps)
        if callable(fields.get("x265_params")):
            fields["x265_params"] = fields["x265_params"](cfg.x265_params)
        if "bit_depth" in fields and cfg.quantizer not in ("uniform", "sqrt"):
            fields.pop("bit_depth")
        if fields.get("quantizer") == "log" and cfg.quantizer not in ("uniform", "sqrt"):
            fields.pop("quantizer")
        return dataclasses.replace(choice, config=dataclasses.replace(cfg, **fields),
                                   clip=clip, flat_maps=flat)
    return make


def _drop(option):
    return lambda text: ":".join(i for i in text.split(":") if not i.startswith(option))


def _add(options):
    return lambda text: ":".join(i for i in (text, options) if i)


#: --variants: each rule of the efficient tune changed in turn (Annex A.7's measurements)
VARIANTS = {
    "no-clip": _variant(clip=None),
    "10-bit-clip-all": _variant({"SMALL_MAP_ELEMENTS": 1 << 62}),
    "no-flatten": _variant(flat_maps=()),
    "flatten-all": _variant({"FLAT_MAX_ELEMENTS": 1 << 62}),
    "log-quantizer": _variant(quantizer="log", bit_depth=8, clip=None),
    "8-bit": _variant(bit_depth=8),
    "10-bit": _variant(bit_depth=10),
    "no-mosaic": _variant(packing="auto", tile_grid=None),
    "log-large": _variant({"LOG_MAX_ELEMENTS": 1 << 62}),
    "uniform-large": _variant({"LARGE_NONNEGATIVE_QUANTIZER": "uniform"}),
    "flat-capped": _variant({"FLAT_FRACTION": 0.15, "FLAT_NOISE_CAP": True}),
    "no-order": _variant({"ORDER_MAX_BITS_PER_ELEMENT": 0.0,
                          "ORDER_GROUP_MAX_BITS_PER_ELEMENT": 0.0}),
    "order-all": _variant({"ORDER_MAX_BITS_PER_ELEMENT": float("inf")}),
    "no-groups": _variant({"ORDER_GROUP_BITS": 0}),
    "groups-4": _variant({"ORDER_GROUP_BITS": 2}),
    "groups-64": _variant({"ORDER_GROUP_BITS": 6}),
    "per-channel-b16": _variant(per_channel=True, param_format="binary16"),
    "no-dense": _variant({"DENSE": False}),
    "tiled-7x7": _variant({"DENSE_MAX_FILL": 0.5}),
    "sao": _variant(x265_params=_drop("sao")),
    "rdoq-everywhere": _variant(x265_params=lambda t: t if "rdoq" in t else _add(
        "rdoq-level=2")(t)),
    "preset-slower": _variant(preset="slower"),
    "no-psy": _variant(x265_params=_add("psy-rd=0:psy-rdoq=0")),
    "no-aq": _variant(x265_params=_add("aq-mode=0")),
    "no-psy-aq": _variant(x265_params=_add("psy-rd=0:psy-rdoq=0:aq-mode=0")),
    "tu-depth-2": _variant(x265_params=_add("tu-intra-depth=2")),
    "tu-depth-3": _variant(x265_params=_add("tu-intra-depth=3")),
    "rd-4": _variant(x265_params=_add("rd=4")),
    "rd-6": _variant(x265_params=_add("rd=6")),
    "rd-6-tu-2": _variant(x265_params=_add("rd=6:tu-intra-depth=2")),
    "no-tskip": _variant(x265_params=_drop("tskip")),
    "tskip": _variant(x265_params=_add("tskip=1")),
    "no-sis": _variant(x265_params=_add("strong-intra-smoothing=0")),
    "rd-refine": _variant(x265_params=_add("rd-refine=1")),
    "rskip-0": _variant(x265_params=_add("rskip=0")),
    "no-fast-intra": _variant(x265_params=_add("no-fast-intra=1")),
    "no-deblock": _variant(x265_params=_add("no-deblock=1")),
    "deblock-weak": _variant(x265_params=_add("deblock=-3,-3")),
    "deblock-strong": _variant(x265_params=_add("deblock=3,3")),
    "scaling-list": _variant(x265_params=_add("scaling-list=default")),
    "cu-lossless": _variant(x265_params=_add("cu-lossless=1")),
    "ctu-32": _variant(x265_params=_add("ctu=32")),
    "max-tu-8": _variant(x265_params=_add("max-tu-size=8")),
    "deblock": _variant(x265_params=_drop("no-deblock")),
    "rdoq-8": _variant({"RDOQ_MAX_TILE": 8}),
    "ctu-64": _variant({"LARGE_TILE_PARAMS": ""}),
    "rdoq-ctu-16": _variant(x265_params=lambda t: _add("ctu=16:rdoq-level=2")(_drop("ctu")(t))),
    "rdoq-1": _variant(x265_params=lambda t: _add("rdoq-level=1")(_drop("rdoq")(t))),
    "ctu-32-rdoq-1": _variant(x265_params=lambda t: _add("ctu=32:rdoq-level=1")(
        _drop("rdoq")(t))),
    "ctu-32-no-deblock": _variant(x265_params=_add("ctu=32:no-deblock=1")),
    "rdoq-1-no-deblock": _variant(x265_params=lambda t: _add("rdoq-level=1:no-deblock=1")(
        _drop("rdoq")(t))),
}


#: the issue's targets: BD-rate at equal KL (percent)
TARGETS = {"conv2": -16.0, "conv3": -20.0, "conv4": -36.0, "conv5": -41.0, "average": -30.0}
POOL5_TOP1 = 0.97
BOOTSTRAP = 1000


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fidelity(pristine: np.ndarray, decoded: np.ndarray) -> dict:
    """KL(p || q) of the softmaxes (nats), logit MSE, top-1 agreement of one image."""
    p, q = softmax(pristine.astype(np.float64)), softmax(decoded.astype(np.float64))
    kl = float(np.sum(p * (np.log(np.maximum(p, 1e-300)) - np.log(np.maximum(q, 1e-300)))))
    return {"kl": max(kl, 0.0), "mse": float(np.mean((pristine - decoded) ** 2)),
            "top1": float(np.argmax(pristine) == np.argmax(decoded))}


def run(images: int, qps, tunes, splits, progress=True) -> dict:
    import torch
    from refcodec import evaluation, models
    torch.set_num_threads(1)
    net = models.load_network("mobilenet_v2")
    inputs = evaluation.image_set(images)
    # rows[split][tune][qp] -> list over images of {bytes, kl, mse, top1, enc, dec}
    rows = {s: {t: {qp: [] for qp in qps} for t in tunes} for s in splits}
    shapes = {}
    t_start = time.perf_counter()
    for i, item in enumerate(inputs):
        x = net.preprocess(item.image)
        for split_name in splits:
            split = net.split(split_name)
            with torch.no_grad():
                feature = split.head(x)
                pristine = split.tail(feature)["logits"].numpy()[0]
            f = feature.numpy()
            shapes[split_name] = list(f.shape)
            efficient = {}     # qp -> (choice key, row) of the efficient tune
            for tune in tunes:
                for qp in qps:
                    if tune in VARIANTS:
                        choice = VARIANTS[tune](split_name, f, qp)
                        key = (choice.config, choice.clip, choice.flat_maps)
                        if qp in efficient and efficient[qp][0] == key:
                            # the variant changes nothing for this layer: the same stream
                            rows[split_name][tune][qp].append(dict(efficient[qp][1]))
                            continue
                    t0 = time.process_time()
                    if tune in VARIANTS:
                        data = refcodec.encode({split_name: choice.apply(f)}, choice.config)
                    else:
                        data = refcodec.encode({split_name: f},
                                               refcodec.EncoderConfig(qp=qp), tune=tune)
                    t1 = time.process_time()
                    y = refcodec.decode(data)[split_name]
                    t2 = time.process_time()
                    with torch.no_grad():
                        decoded = split.tail(torch.from_numpy(y))["logits"].numpy()[0]
                    row = fidelity(pristine, decoded)
                    row.update(bytes=len(data), enc=t1 - t0, dec=t2 - t1)
                    rows[split_name][tune][qp].append(row)
                    if tune == "efficient":
                        same = tuning.choose(split_name, f, "efficient",
                                             refcodec.EncoderConfig(qp=qp))
                        efficient[qp] = ((same.config, same.clip, same.flat_maps), row)
        if progress:
            print(f"[{i + 1}/{len(inputs)}] {item.key} ({time.perf_counter() - t_start:.0f} s)",
                  file=sys.stderr, flush=True)
    return {"rows": rows, "shapes": shapes, "images": [it.key for it in inputs]}


def _curve(rows_by_qp: dict, idx, key: str):
    rate = np.array([np.mean([rows_by_qp[qp][i]["bytes"] for i in idx]) for qp in rows_by_qp])
    value = np.array([np.mean([rows_by_qp[qp][i][key] for i in idx]) for qp in rows_by_qp])
    return rate, value


def _rising(rate: np.ndarray, quality: np.ndarray):
    """The points of a curve that are not dominated: in order of rate, each point whose
    quality exceeds that of every point of lower rate (at low QPs the quantizer's own error
    floors the fidelity, and the mean over a few dozen images then wobbles)."""
    order = np.argsort(rate, kind="stable")
    keep, best = [], -np.inf
    for i in order:
        if quality[i] > best:
            keep.append(i)
            best = quality[i]
    return rate[keep], quality[keep]


def _bd(anchor: dict, test: dict, idx, key: str) -> float | None:
    ra, va = _curve(anchor, idx, key)
    rt, vt = _curve(test, idx, key)
    if key == "top1":
        qa, qt = va, vt
    else:                                  # a distortion: quality = -log10(distortion)
        if (va <= 0).any() or (vt <= 0).any():
            return None
        qa, qt = -np.log10(va), -np.log10(vt)
    try:
        return bd_rate(*_rising(ra, qa), *_rising(rt, qt), method="pchip",
                       plateau="lowest_rate")
    except ValueError:
        return None


def bd_with_interval(anchor: dict, test: dict, n: int, key: str, seed: int = 0):
    """BD-rate on all images and its 90 % paired bootstrap interval (None when the curves
    do not overlap or fall; the interval from the resamples where it is defined)."""
    full = _bd(anchor, test, range(n), key)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        value = _bd(anchor, test, rng.integers(0, n, n), key)
        if value is not None:
            draws.append(value)
    if full is None or len(draws) < BOOTSTRAP // 2:
        return {"bd": full, "lo": None, "hi": None, "defined": len(draws)}
    lo, hi = np.percentile(draws, [5, 95])
    return {"bd": full, "lo": float(lo), "hi": float(hi), "defined": len(draws)}


def summarize(result: dict) -> dict:
    rows, n = result["rows"], len(result["images"])
    summary = {}
    for split_name, by_tune in rows.items():
        anchor = by_tune["seed"]
        s = {"shape": result["shapes"][split_name], "tunes": {}}
        seed_enc = float(np.median([r["enc"] for qp in anchor for r in anchor[qp]]))
        seed_dec = float(np.median([r["dec"] for qp in anchor for r in anchor[qp]]))
        float_bytes = 4 * int(np.prod(result["shapes"][split_name]))
        for tune, by_qp in by_tune.items():
            enc = float(np.median([r["enc"] for qp in by_qp for r in by_qp[qp]]))
            dec = float(np.median([r["dec"] for qp in by_qp for r in by_qp[qp]]))
            # paired: the same image and QP coded by the seed, in the same process
            enc_ratio = float(np.median([r["enc"] / a["enc"] for qp in by_qp
                                         for r, a in zip(by_qp[qp], anchor[qp])]))
            dec_ratio = float(np.median([r["dec"] / a["dec"] for qp in by_qp
                                         for r, a in zip(by_qp[qp], anchor[qp])]))
            curve = [{"qp": qp, "bytes": float(np.mean([r["bytes"] for r in by_qp[qp]])),
                      "kl": float(np.mean([r["kl"] for r in by_qp[qp]])),
                      "mse": float(np.mean([r["mse"] for r in by_qp[qp]])),
                      "top1": float(np.mean([r["top1"] for r in by_qp[qp]]))}
                     for qp in by_qp]
            entry = {"curve": curve, "encode_median_s": enc, "decode_median_s": dec,
                     "encode_ratio": enc_ratio, "decode_ratio": dec_ratio,
                     "encode_ratio_of_medians": enc / seed_enc,
                     "decode_ratio_of_medians": dec / seed_dec}
            if tune in VARIANTS and "efficient" in by_tune:
                entry["bd_kl_vs_efficient"] = bd_with_interval(by_tune["efficient"], by_qp,
                                                               n, "kl")
                entry["encode_ratio_vs_efficient"] = float(np.median(
                    [r["enc"] / a["enc"] for qp in by_qp
                     for r, a in zip(by_qp[qp], by_tune["efficient"][qp])]))
            if tune != "seed":
                entry["bd_kl"] = bd_with_interval(anchor, by_qp, n, "kl")
                entry["bd_mse"] = bd_with_interval(anchor, by_qp, n, "mse")
                entry["bd_top1"] = bd_with_interval(anchor, by_qp, n, "top1")
            ok = [c for c in curve if c["top1"] >= POOL5_TOP1]
            entry["min_bytes_top1_097"] = min((c["bytes"] for c in ok), default=None)
            entry["min_fraction_of_float32_top1_097"] = (
                None if not ok else min(c["bytes"] for c in ok) / float_bytes)
            s["tunes"][tune] = entry
        summary[split_name] = s
    for tune in next(iter(rows.values())):
        if tune == "seed":
            continue
        values = [summary[s]["tunes"][tune]["bd_kl"]["bd"] for s in summary
                  if s.startswith("conv")]
        if values and all(v is not None for v in values):
            summary.setdefault("average_conv1_conv5", {})[tune] = float(np.mean(values))
    return summary


def _fmt(bd: dict | None) -> str:
    if bd is None or bd["bd"] is None:
        return "n/a"
    if bd["lo"] is None:
        return f"{bd['bd']:+.1f} %"
    return f"{bd['bd']:+.1f} % [{bd['lo']:+.1f}, {bd['hi']:+.1f}]"


def markdown(result: dict, summary: dict, meta: dict) -> str:
    lines = ["# Rate-distortion benchmark: the choosing encoder against the seed", "",
             f"`{meta['command']}` ({meta['date']}, {meta['machine']}; {meta['seconds']:.0f} s)."
             f" {len(result['images'])} photographs of the evaluation's image set, MobileNetV2 "
             f"(ImageNet weights), QPs {', '.join(map(str, meta['qps']))}. BD-rate against "
             f"the seed configuration of the same run (negative = fewer bytes at equal "
             f"fidelity; rate = mean stream bytes, quality = -log10 of the mean softmax KL "
             f"or logit MSE, PCHIP on log rate; a point whose fidelity is below that of a point "
             f"of lower rate is left out), 90 % paired bootstrap intervals over the "
             f"images ({BOOTSTRAP} resamples). Times: CPU time of the process (time.process_time: "
             f"the machine is shared, and wall-clock time there measures the other "
             f"processes too), one libx265 and torch thread; the ratio is the median over "
             f"every image and QP of the encode (decode) time of the tune over the seed's "
             f"for the same feature and QP. Generated by tools/bench_rd.py.", "",
             "| split | shape | tune | BD-rate (KL) | BD-rate (logit MSE) | BD-rate (top-1) "
             "| encode x seed | decode x seed | encode s (median) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for split_name, s in summary.items():
        if split_name.startswith("average"):
            continue
        for tune, e in s["tunes"].items():
            if tune == "seed" or tune in VARIANTS:
                continue
            lines.append(f"| {split_name} | {'x'.join(map(str, s['shape'][1:]))} | {tune} | "
                         f"{_fmt(e.get('bd_kl'))} | {_fmt(e.get('bd_mse'))} | "
                         f"{_fmt(e.get('bd_top1'))} | {e['encode_ratio']:.2f} | "
                         f"{e['decode_ratio']:.2f} | {e['encode_median_s']:.3f} |")
    avg = summary.get("average_conv1_conv5", {})
    lines += ["", "Average BD-rate (KL) over conv1..conv5: " + ", ".join(
        f"{t} {v:+.1f} %" for t, v in avg.items()), ""]
    lines += ["## Targets of issue 15", "", "| target | measured (efficient) | met |",
              "|---|---:|:---:|"]
    for split_name in ("conv2", "conv3", "conv4", "conv5"):
        if split_name not in summary or "efficient" not in summary[split_name]["tunes"]:
            continue
        bd = summary[split_name]["tunes"]["efficient"]["bd_kl"]["bd"]
        met = bd is not None and bd <= TARGETS[split_name]
        lines.append(f"| {split_name} BD-rate (KL) <= {TARGETS[split_name]:.0f} % | "
                     f"{_fmt(summary[split_name]['tunes']['efficient']['bd_kl'])} | "
                     f"{'yes' if met else 'no'} |")
    if "efficient" in avg:
        lines.append(f"| average conv1..conv5 <= -30 % | {avg['efficient']:+.1f} % | "
                     f"{'yes' if avg['efficient'] <= TARGETS['average'] else 'no'} |")
    for tune, limit in (("efficient", 1.5), ("fast", 1.1)):
        ratios = [summary[s]["tunes"][tune]["encode_ratio"] for s in summary
                  if not s.startswith("average") and tune in summary[s]["tunes"]]
        if ratios:
            worst = max(ratios)
            lines.append(f"| {tune} encode time <= {limit}x seed (every split) | worst "
                         f"{worst:.2f}x | {'yes' if worst <= limit else 'no'} |")
    if "pool5" in summary and "efficient" in summary["pool5"]["tunes"]:
        e = summary["pool5"]["tunes"]["efficient"]
        frac = e["min_fraction_of_float32_top1_097"]
        lines.append(f"| pool5 <= 0.25 of float32 at top-1 >= 0.97 | "
                     f"{'n/a' if frac is None else f'{frac:.2f}'} | "
                     f"{'yes' if frac is not None and frac <= 0.25 else 'no'} |")
    variants = [t for t in next(iter(summary.values()))["tunes"] if t in VARIANTS]
    if variants:
        lines += ["", "## Ablations: each rule of the efficient tune undone", "",
                  "BD-rate (KL) of the variant against the efficient tune (positive: the "
                  "rule saves that much), 90 % paired bootstrap interval; encode time "
                  "against the efficient tune's.", "",
                  "| split | " + " | ".join(variants) + " |",
                  "|---|" + "---:|" * len(variants)]
        for split_name, s in summary.items():
            if split_name.startswith("average"):
                continue
            cells = [f"{_fmt(s['tunes'][v].get('bd_kl_vs_efficient'))}, "
                     f"{s['tunes'][v]['encode_ratio_vs_efficient']:.2f}x" for v in variants]
            lines.append(f"| {split_name} | " + " | ".join(cells) + " |")
    lines += ["", "## Curves (mean over the images)", "",
              "| split | tune | QP | bytes | KL | logit MSE | top-1 |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for split_name, s in summary.items():
        if split_name.startswith("average"):
            continue
        for tune, e in s["tunes"].items():
            for c in e["curve"]:
                lines.append(f"| {split_name} | {tune} | {c['qp']} | {c['bytes']:.0f} | "
                             f"{c['kl']:.4g} | {c['mse']:.4g} | {c['top1']:.3f} |")
    lines += ["", "![rate-distortion curves](rd.png)", ""]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    splits = [s for s in summary if not s.startswith("average")]
    fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 3.2))
    for ax, split_name in zip(np.atleast_1d(axes), splits):
        for tune, e in summary[split_name]["tunes"].items():
            if tune not in TUNES:
                continue
            ax.loglog([c["bytes"] for c in e["curve"]], [max(c["kl"], 1e-12) for c in e["curve"]],
                      marker="o", ms=3, label=tune)
        ax.set_title(split_name)
        ax.set_xlabel("stream bytes")
        ax.grid(True, which="both", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("softmax KL (nats)")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--qps", type=int, nargs="+", default=list(QPS))
    ap.add_argument("--splits", nargs="+", default=list(SPLITS))
    ap.add_argument("--tunes", nargs="+", default=list(TUNES), choices=TUNES)
    ap.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS),
                    help="ablations of the efficient tune, each one rule changed, measured "
                         "beside the tunes (where a variant changes nothing for a layer, "
                         "the efficient tune's stream is counted: the same bytes)")
    ap.add_argument("-o", "--output", type=Path, default=Path("out/bench"))
    ap.add_argument("--name", default="rd", help="file stem of the results (default rd)")
    args = ap.parse_args(argv)
    if "seed" not in args.tunes:
        ap.error("--tunes shall include seed (the anchor)")
    t0 = time.perf_counter()
    result = run(args.images, sorted(args.qps), args.tunes + args.variants, args.splits)
    summary = summarize(result)
    meta = {"command": "python tools/bench_rd.py " + " ".join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "seconds": time.perf_counter() - t0, "qps": sorted(args.qps)}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"{args.name}.json").write_text(json.dumps(
        {"meta": meta, "images": result["images"], "summary": summary}, indent=1) + "\n")
    (args.output / f"{args.name}.md").write_text(markdown(result, summary, meta))
    plot(summary, args.output / f"{args.name}.png")
    print(markdown(result, summary, meta).split("## Curves")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
