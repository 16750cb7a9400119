"""The reports of an evaluation: CSV, JSON, Markdown tables and PNG plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from .configs import BASELINE, QPS
from .summary import FIDELITIES, bd_rates


SUMMARY_COLUMNS = ["network", "split", "config", "qp", "images", "elements_per_image",
                   "bytes_per_image", "compression_rate", "coded_fraction",
                   "bits_per_element", "classification_fidelity", "top5_agreement",
                   "retrieval_fidelity", "detection_fidelity", "softmax_kl", "logit_mse",
                   "encode_s_per_image", "decode_s_per_image"]
#: columns of statistics.csv (per point, with bootstrap intervals)
STAT_MEASURES = ["top1", "top5_agreement", "softmax_kl", "logit_mse", "retrieval",
                 "detection", "output_mse"]
STAT_COLUMNS = ["network", "split", "config", "qp", "images", "bits_per_element",
                "bits_per_element_lo", "bits_per_element_hi"] + [
    f"{m}{x}" for m in STAT_MEASURES for x in ("", "_lo", "_hi")] + [
    "accuracy_pristine", "accuracy_reconstructed"]
BD_CI_COLUMNS = ["network", "split", "config", "anchor", "task", "images", "bd_rate_percent",
                 "ci_lo", "ci_hi", "bootstrap", "bootstrap_failed", "note"]
NETWORK_TITLES = {"mobilenet_v2": "MobileNetV2", "craft": "CRAFT (VGG16-BN)"}


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def write_csv(path, rows: Sequence[dict], columns: Sequence[str]):
    import csv
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else
                        (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c]) for c in columns])


def table3(summary: Sequence[dict], config: str = BASELINE, qps: Sequence[int] = QPS) -> str:
    """Markdown table shaped like Table 3 of [CHEN2019]: rows = split points, per task and
    QP the coded fraction (coded / original, Table 3's "Comp.Rate") and the fidelity."""
    idx = {(s["network"], s["split"], s["qp"]): s for s in summary if s["config"] == config}
    tasks = [t for t, k in FIDELITIES.items() if any(s[k] is not None for s in idx.values())]
    head = ["Feat."] + [f"{t[:3].title()} QP{qp} {w}" for t in tasks for qp in qps
                        for w in ("rate", "fid.")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    networks = list(dict.fromkeys(s["network"] for s in summary))
    for network in networks:
        lines.append(f"| **{NETWORK_TITLES.get(network, network)}** |" + " |" *
                     (len(head) - 1))
        for split in dict.fromkeys(s["split"] for s in summary if s["network"] == network):
            cells = [split]
            for t in tasks:
                for qp in qps:
                    s = idx.get((network, split, qp))
                    if s is None or s[FIDELITIES[t]] is None:
                        cells += ["-", "-"]
                    else:
                        cells += [_fmt(s["coded_fraction"]), _fmt(s[FIDELITIES[t]])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(summary: Sequence[dict]) -> str:
    cols = ["network", "split", "config", "QP", "bytes/input", "comp. rate", "coded fr.",
            "bits/elem.", "cls", "top-5", "ret", "det", "enc s", "dec s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * 3 + "---:|" * (len(cols) - 3)]
    for s in summary:
        lines.append("| " + " | ".join([
            s["network"], s["split"], s["config"], str(s["qp"]), f"{s['bytes_per_image']:.0f}",
            f"{s['compression_rate']:.1f}", f"{s['coded_fraction']:.4f}",
            f"{s['bits_per_element']:.3f}", _fmt(s["classification_fidelity"]),
            _fmt(s["top5_agreement"]), _fmt(s["retrieval_fidelity"]),
            _fmt(s["detection_fidelity"]), f"{s['encode_s_per_image']:.2f}",
            f"{s['decode_s_per_image']:.2f}"]) + " |")
    return "\n".join(lines)


def bd_table(rows: Sequence[dict]) -> str:
    lines = ["| network | split | configuration | task | BD-rate vs baseline | note |",
             "|---|---|---|---|---:|---|"]
    for r in rows:
        v = "n/a" if r["bd_rate_percent"] is None else f"{r['bd_rate_percent']:+.1f} %"
        lines.append(f"| {r['network']} | {r['split']} | {r['config']} | {r['task']} | {v} | "
                     f"{r['note']} |")
    return "\n".join(lines)


def fig5_table(rows: Sequence[dict]) -> str:
    lines = ["| network | split | feature bytes/input (QP 22) | input raw bytes | "
             "input JPEG q75 bytes | feature / raw input | feature / JPEG q75 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['split']} | {r['feature_bytes_per_image']:.0f} | "
                     f"{r['input_raw_bytes_per_image']:.0f} | "
                     f"{r['input_jpeg75_bytes_per_image']:.0f} | "
                     f"{r['relative_to_raw_input']:.3f} | {r['relative_to_jpeg75']:.2f} |")
    return "\n".join(lines)


def plot(result: dict, out_dir) -> list[str]:
    """Rate-fidelity curves (one figure per network, one panel per task, one line per split,
    baseline configuration), configuration comparison, and the Fig. 5 bars; PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter
    from pathlib import Path
    out_dir = Path(out_dir)

    def log_x(ax):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())

    files = []
    summary = result["summary"]
    for network in dict.fromkeys(s["network"] for s in summary):
        rows = [s for s in summary if s["network"] == network]
        tasks = [t for t, k in FIDELITIES.items() if rows[0][k] is not None]
        if not tasks:
            continue
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.6), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            key = FIDELITIES[task]
            for split in dict.fromkeys(s["split"] for s in rows):
                pts = [s for s in rows if s["split"] == split and s["config"] == BASELINE]
                ax.plot([p["bits_per_element"] for p in pts], [p[key] for p in pts],
                        marker="o", label=split)
                for p in pts:
                    ax.annotate(f"{p['qp']}", (p["bits_per_element"], p[key]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            log_x(ax)
            ax.set_xlabel("bits per element (log scale); labels: QP")
            ax.set_ylabel(f"{task} fidelity")
            ax.set_title(f"{NETWORK_TITLES.get(network, network)}: {task} "
                         f"({rows[0]['images']} inputs)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(title="split", fontsize=8)
        fig.tight_layout()
        name = f"rate_fidelity_{network}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        files.append(name)
        configs = list(dict.fromkeys(s["config"] for s in rows))
        if len(configs) > 1:
            splits = list(dict.fromkeys(s["split"] for s in rows))
            task = "retrieval" if "retrieval" in tasks else tasks[0]
            key = FIDELITIES[task]
            cols = min(3, len(splits))
            nrows = math.ceil(len(splits) / cols)
            fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows),
                                     squeeze=False)
            for ax, split in zip(axes.ravel(), splits):
                for cfg in configs:
                    pts = [s for s in rows if s["split"] == split and s["config"] == cfg]
                    ax.plot([p["bits_per_element"] for p in pts], [p[key] for p in pts],
                            marker="o", label=cfg)
                log_x(ax)
                ax.set_title(f"{split}")
                ax.set_xlabel("bits per element")
                ax.set_ylabel(f"{task} fidelity")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=7)
            for ax in axes.ravel()[len(splits):]:
                ax.axis("off")
            fig.suptitle(f"{NETWORK_TITLES.get(network, network)}: {task} fidelity of each "
                         f"configuration (QPs 12..42)")
            fig.tight_layout()
            name = f"configs_{network}.png"
            fig.savefig(out_dir / name, dpi=100)
            plt.close(fig)
            files.append(name)
    if result["fig5"]:
        rows = result["fig5"]
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4.4))
        labels = [f"{NETWORK_TITLES.get(r['network'], r['network']).split()[0]}\n{r['split']}"
                  for r in rows]
        xs = np.arange(len(rows))
        ax.bar(xs - 0.2, [r["relative_to_raw_input"] for r in rows], 0.4,
               label="feature / raw input image")
        ax.bar(xs + 0.2, [r["relative_to_jpeg75"] for r in rows], 0.4,
               label="feature / input as JPEG q75")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_ylabel("coded feature size at QP 22 (input image = 1)")
        ax.set_title("Fig. 5 comparison: feature stream vs input image")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "fig5_size_vs_image.png", dpi=110)
        plt.close(fig)
        files.append("fig5_size_vs_image.png")
    return files


def write_reports(result: dict, out_dir, command: str = "") -> list[str]:
    """CSV, JSON, Markdown and PNG files of an evaluation into out_dir."""
    from pathlib import Path
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if command:
        result["meta"]["command"] = command
    command = result["meta"].get("command", "")
    write_csv(out / "summary.csv", result["summary"], SUMMARY_COLUMNS)
    job_cols = list(dict.fromkeys(k for r in result["jobs"] for k in r))
    write_csv(out / "jobs.csv", result["jobs"], job_cols)
    with open(out / "results.json", "w") as fh:
        json.dump(result, fh, indent=1, default=_json_default)
        fh.write("\n")
    files = ["summary.csv", "jobs.csv", "results.json"]
    if result.get("statistics"):
        write_csv(out / "statistics.csv", result["statistics"]["points"], STAT_COLUMNS)
        write_csv(out / "bd_rates_ci.csv", result["statistics"]["bd_rates"], BD_CI_COLUMNS)
        files += ["statistics.csv", "bd_rates_ci.csv"]
    pngs = plot(result, out) + plot_intervals(result, out)
    (out / "README.md").write_text(markdown_report(result, command, pngs))
    return [*files, "README.md", *pngs]


def render_store(store_path, out_dir, **kwargs) -> list[str]:
    """The reports of everything a results store holds (a finished, partial or killed
    run), written into out_dir; nothing is run."""
    from .driver import result_from_store
    return write_reports(result_from_store(store_path, **kwargs), out_dir)


def _ci(s: dict, m: str, digits: int = 3) -> str:
    v = s.get(m)
    if v is None:
        return "-"
    lo, hi = s.get(f"{m}_lo"), s.get(f"{m}_hi")
    if lo is None:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _sci(s: dict, m: str) -> str:
    v = s.get(m)
    if v is None:
        return "-"
    lo, hi = s.get(f"{m}_lo"), s.get(f"{m}_hi")
    return f"{v:.3g}" + ("" if lo is None else f" [{lo:.3g}, {hi:.3g}]")


def statistics_table(points: Sequence[dict]) -> str:
    """Per point: the mean of each per-image measure with its 95 % bootstrap interval."""
    have = [m for m in STAT_MEASURES if any(p.get(m) is not None for p in points)]
    acc = any(p.get("accuracy_pristine") is not None for p in points)
    titles = {"top1": "top-1 unchanged", "top5_agreement": "top-5 agreement",
              "softmax_kl": "softmax KL (nats)", "logit_mse": "logit MSE",
              "retrieval": "retrieval (bubble)", "detection": "detection (Eq. 4)",
              "output_mse": "output MSE"}
    head = ["network", "split", "config", "QP", "inputs", "bits/elem."] + \
        [titles[m] for m in have] + (["top-1 acc. pristine / coded"] if acc else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for p in points:
        cells = [p["network"], p["split"], p["config"], str(p["qp"]), str(p["images"]),
                 f"{p['bits_per_element']:.3f}"]
        for m in have:
            cells.append(_sci(p, m) if m in ("softmax_kl", "logit_mse", "output_mse")
                         else _ci(p, m))
        if acc:
            a, b = p.get("accuracy_pristine"), p.get("accuracy_reconstructed")
            cells.append("-" if a is None else f"{a:.3f} / {b:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bd_ci_table(rows: Sequence[dict]) -> str:
    lines = ["| network | split | configuration | task | inputs | BD-rate vs baseline | "
             "95 % interval | resamples without a BD-rate | note |",
             "|---|---|---|---|---:|---:|---|---:|---|"]
    for r in rows:
        v = "n/a" if r["bd_rate_percent"] is None else f"{r['bd_rate_percent']:+.1f} %"
        ci = "-" if r["ci_lo"] is None else f"[{r['ci_lo']:+.1f} %, {r['ci_hi']:+.1f} %]"
        lines.append(f"| {r['network']} | {r['split']} | {r['config']} | {r['task']} | "
                     f"{r['images']} | {v} | {ci} | {r['bootstrap_failed']} of "
                     f"{r['bootstrap']} | {r['note']} |")
    return "\n".join(lines)


def plot_intervals(result: dict, out_dir) -> list[str]:
    """Per network: each task's fidelity and the softmax KL against bits per element, one
    line per (split, configuration), 95 % bootstrap intervals as error bars (both axes)."""
    stats = (result.get("statistics") or {}).get("points") or []
    if not stats:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path
    out_dir = Path(out_dir)
    files = []
    panels_of = {"top1": "classification fidelity (top-1 unchanged)",
                 "retrieval": "retrieval fidelity (bubble index)",
                 "detection": "detection fidelity (Eq. 4)",
                 "softmax_kl": "softmax KL (nats, log scale)",
                 "output_mse": "output MSE (log scale)"}
    for network in dict.fromkeys(p["network"] for p in stats):
        pts = [p for p in stats if p["network"] == network]
        panels = [m for m in panels_of if any(p.get(m) is not None for p in pts)]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.4),
                                 squeeze=False)
        for ax, m in zip(axes[0], panels):
            for (split, config) in dict.fromkeys((p["split"], p["config"]) for p in pts):
                cur = sorted((p for p in pts if p["split"] == split and p["config"] == config
                              and p.get(m) is not None), key=lambda p: p["bits_per_element"])
                if not cur:
                    continue
                x = np.array([p["bits_per_element"] for p in cur])
                y = np.array([p[m] for p in cur])
                yerr = np.array([[p[m] - p.get(f"{m}_lo", p[m]) for p in cur],
                                 [p.get(f"{m}_hi", p[m]) - p[m] for p in cur]])
                xerr = np.array([[p["bits_per_element"] - p.get("bits_per_element_lo",
                                                                p["bits_per_element"])
                                  for p in cur],
                                 [p.get("bits_per_element_hi", p["bits_per_element"]) -
                                  p["bits_per_element"] for p in cur]])
                ax.errorbar(x, y, yerr=np.maximum(yerr, 0), xerr=np.maximum(xerr, 0),
                            marker="o", ms=3, capsize=3,
                            ls="-" if config == BASELINE else "--",
                            label=f"{split} {config}")
            ax.set_xscale("log")
            if m in ("softmax_kl", "output_mse"):
                ax.set_yscale("log")
            ax.set_xlabel("bits per element (log scale)")
            ax.set_ylabel(panels_of[m])
            ax.set_title(f"{NETWORK_TITLES.get(network, network)}: {panels_of[m].split(' (')[0]}"
                         f" ({max(p['images'] for p in pts)} inputs)", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"intervals_{network}.png"
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        files.append(name)
    return files


def render(results_json, out_dir) -> list[str]:
    """Re-write the reports of a saved evaluation (results.json) without re-running it."""
    with open(results_json) as fh:
        result = json.load(fh)
    result["bd_rates"] = bd_rates(result["summary"])      # deterministic from the summary
    return write_reports(result, out_dir)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def markdown_report(result: dict, command: str, pngs: Sequence[str] = ()) -> str:
    m = result["meta"]
    lines = [
        "# VFC evaluation on real networks (AVS VFC test conditions)",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {_wall(m)} with {m.get('workers')} worker processes "
        f"({m['jobs']} jobs{_partial(m)}; {m['cpu_count']} CPUs; Python {m['python']}, "
        f"torch {m['torch']}).  ",
        "Every number below comes from that run (`results.json`, `summary.csv`, "
        "`jobs.csv`); the definitions are in `refcodec/evaluation/` and spec Annex C.",
        "",
        "## Networks, inputs, configurations",
        "",
    ]
    for n, desc in m["networks"].items():
        lines.append(f"- **{n}**: {desc}; {len(m['images'][n])} inputs; split points: " +
                     "; ".join(f"{s} = {d}" for s, d in m["splits"][n].items()) + ".")
    lines += [
        "- Inputs: real photographs of `skimage.data` (scikit-image), expanded by "
        "deterministic crops and flips (see `refcodec/evaluation/`): "
        + ", ".join(f"{n}: " + _image_list(m["images"][n]) for n in m["images"]) + ".",
        "- No ground truth is used: every fidelity compares the network's output from the "
        "reconstructed feature with its output from the pristine feature.",
        f"- QPs {', '.join(map(str, m['qps']))}; configurations: " + "; ".join(
            f"{k} = {v or 'log quantizer, 8-bit, per tensor, one channel per picture (auto)'}"
            for k, v in m["configs"].items()) + f". The detector is run with "
        f"{', '.join(m['detection_configs'])}.",
        "",
        "Reading the numbers:",
        "",
        "- With N inputs a classification fidelity moves in steps of 1/N; these are "
        "small real-image sets, not ImageNet / VehicleID / VOC: compare shapes of curves "
        "and configurations, not third decimals, with the paper.",
        "- MobileNetV2's pool5 is 1280 maps of 1 x 1. VFC pads every map to a multiple of "
        "8 (clause 8.3.10) and tiles the 8 x 8 maps into pictures, so its stream can be larger "
        "than the float32 feature (coded fraction above 1).",
        "- MobileNetV2's conv2..conv4 are linear bottleneck outputs (signed), unlike the "
        "post-ReLU features of the paper's VGG16 / ResNet.",
        "- CRAFT is a U-Net: from conv2 on, a cut carries the decoder's skip tensors too "
        "(see `refcodec/models/craft.py`), all coded in one multi-layer stream whose bytes "
        "are the rate. The paper's Faster R-CNN cut carries one tensor.",
        "- Encode / decode times are per input, one thread per worker, on a machine that "
        "may have been running other jobs.",
        "",
        "## Table 3 layout (baseline configuration)",
        "",
        "rate = coded fraction = stream bytes / float32 bytes of the feature (the quantity "
        "of Table 3's \"Comp.Rate\" column; its reciprocal is the compression rate); fid. = "
        "fidelity of the task (Cla = classification top-1, Ret = retrieval bubble index, "
        "Det = detection Eq. 4).",
        "",
        table3(result["summary"], qps=m["qps"]),
        "",
        "## All results",
        "",
        detail_table(result["summary"]),
        "",
        "## BD-rate against the baseline configuration",
        "",
        "PCHIP, rate in bits per element, plateaus of equal fidelity reduced to their "
        "lowest-rate point (Annex C.5). n/a: the curve is not monotone or saturates so that "
        "fewer than two points are left, or the fidelity ranges do not overlap. "
        "classification_kl and classification_logit_mse: the BD-rate at equal -log10 of the "
        "mean softmax KL divergence and of the mean squared logit error, continuous "
        "fidelities that resolve what top-1 agreement over a few dozen or hundred inputs "
        "moves through in steps.",
        "",
        bd_table(result["bd_rates"]),
        "",
        "## Fig. 5: coded feature size at QP 22 relative to the input image",
        "",
        "Input image = the network's input after resizing / cropping (224 x 224 for "
        "MobileNetV2; the resized CRAFT input); raw = H x W x 3 bytes; JPEG = Pillow's "
        "libjpeg encoder at quality 75 (4:2:0). Sums over the inputs.",
        "",
        fig5_table(result["fig5"]),
        "",
    ]
    st = result.get("statistics")
    if st:
        lines += [
            "## Per-image measures with 95 % bootstrap intervals",
            "",
            f"Means over the inputs; [lo, hi] = percentile interval of {m.get('bootstrap')} "
            f"bootstrap resamples of the inputs (seed {m.get('seed')}, the same resamples for "
            "every point of a split). Softmax KL = KL(pristine || reconstructed) of the "
            "class probabilities; logit MSE = mean squared logit difference.",
            "",
            statistics_table(st["points"]),
            "",
            "## BD-rate with paired bootstrap intervals",
            "",
            "Both curves recomputed on each resample of the inputs common to them (rates "
            "and fidelities), BD-rate as above; the interval is over the resamples where "
            "a BD-rate exists.",
            "",
            bd_ci_table(st["bd_rates"]),
            "",
        ]
    if result.get("skipped"):
        lines += ["## Skipped inputs", "", "| network | input | reason |", "|---|---|---|"] + [
            f"| {s['network']} | {s['image']} | {s['reason']} |" for s in result["skipped"]
        ] + [""]
    if result.get("failed"):
        lines += ["## Jobs refused by the encoder", "", "| job | reason |", "|---|---|"] + [
            f"| {f['job']} | {f['reason']} |" for f in result["failed"]] + [""]
    if pngs:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)


def _wall(m: dict) -> str:
    w = m.get("wall_time_s")
    return "-" if w is None else f"{w:.0f} s"


def _partial(m: dict) -> str:
    planned = m.get("planned")
    if planned and planned != m["jobs"]:
        return f" of {planned} planned: a partial run"
    return ""


def _image_list(keys: Sequence[str], limit: int = 40) -> str:
    if len(keys) <= limit:
        return ", ".join(keys)
    return f"{len(keys)} inputs ({', '.join(keys[:6])}, ..., {', '.join(keys[-2:])})"
