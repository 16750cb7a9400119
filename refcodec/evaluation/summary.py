"""From the jobs' rows to the results: summary per (network, split, config, QP), the
BD-rates against the baseline, the Fig. 5 comparison with the input image."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .. import metrics
from .configs import BASELINE
from .jobs import input_image, jpeg_size  # noqa: F401 (re-exported)
from .stats import DISTORTION_MEASURE, quality_of_distortion
from .stats import clean_note as _clean_note
from .stats import query_bubble_indices


def retrieval_fidelity_of(queries_pristine, queries_reconstructed, references) -> float:
    """Mean bubble index: query q ranks references j != q by cosine similarity."""
    n = len(references)
    if n < 2:
        return 1.0
    return float(np.mean(query_bubble_indices(np.asarray(queries_pristine, np.float64),
                                              np.asarray(queries_reconstructed, np.float64),
                                              np.asarray(references, np.float64))))


def aggregate(rows: Sequence[dict], references: np.ndarray | None) -> list[dict]:
    """One summary row per (network, split, config, qp)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["network"], r["split"], r["config"], r["qp"])].append(r)
    out = []
    for (network, split, config, qp), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["image_index"])
        elements = sum(r["elements"] for r in rs)
        nbytes = sum(r["bytes"] for r in rs)
        orig = metrics.original_bytes(elements)
        s = {"network": network, "split": split, "config": config, "qp": qp,
             "images": len(rs), "elements_per_image": rs[0]["elements"],
             "bytes_per_image": nbytes / len(rs),
             "compression_rate": metrics.compression_rate(orig, nbytes),
             "coded_fraction": metrics.coded_fraction(orig, nbytes),
             "bits_per_element": metrics.bits_per_element(nbytes, elements),
             "encode_s_per_image": float(np.mean([r["encode_s"] for r in rs])),
             "decode_s_per_image": float(np.mean([r["decode_s"] for r in rs])),
             "classification_fidelity": None, "top5_agreement": None,
             "retrieval_fidelity": None, "detection_fidelity": None,
             "softmax_kl": None, "logit_mse": None}
        if "top1_pristine" in rs[0]:
            s["classification_fidelity"] = metrics.classification_fidelity(
                np.array([r["top1_pristine"] for r in rs]),
                np.array([r["top1_reconstructed"] for r in rs]))
            s["top5_agreement"] = float(np.mean([r["top5_agreement"] for r in rs]))
            refs = references
            if refs is None and "embedding_pristine" in rs[0]:
                refs = np.stack([r["embedding_pristine"] for r in rs])   # the point's inputs
            if refs is not None and len(rs) == len(refs) and len(rs) >= 2 and \
                    "embedding_pristine" in rs[0]:
                s["retrieval_fidelity"] = retrieval_fidelity_of(
                    np.stack([r["embedding_pristine"] for r in rs]),
                    np.stack([r["embedding_reconstructed"] for r in rs]), refs)
            if "softmax_kl" in rs[0]:
                s["softmax_kl"] = float(np.mean([r["softmax_kl"] for r in rs]))
                s["logit_mse"] = float(np.mean([r["logit_mse"] for r in rs]))
        if "detection_fidelity_image" in rs[0]:
            s["detection_fidelity"] = float(np.mean([r["detection_fidelity_image"]
                                                     for r in rs]))
            s["inputs_with_pristine_detections"] = sum(r["detections_pristine"] > 0
                                                       for r in rs)
            s["pristine_detections"] = sum(r["detections_pristine"] for r in rs)
        if "output_mse" in rs[0]:
            s["output_mse"] = float(np.mean([r["output_mse"] for r in rs]))
        out.append(s)
    order = {c: i for i, c in enumerate(dict.fromkeys(r["config"] for r in rows))}
    split_order = {}
    for r in rows:
        split_order.setdefault((r["network"], r["split"]), len(split_order))
    out.sort(key=lambda s: (split_order[(s["network"], s["split"])], order[s["config"]],
                            s["qp"]))
    return out


FIDELITIES = {"classification": "classification_fidelity", "retrieval": "retrieval_fidelity",
              "detection": "detection_fidelity"}


def bd_rates(summary: Sequence[dict], anchor: str = BASELINE) -> list[dict]:
    """BD-rate (PCHIP, plateaus reduced to their lowest rate, Annex C.5) of every
    configuration against ``anchor``, per network, split and task; rate in bits per
    element.  A curve the BD-rate cannot be computed for gets ``None`` and the reason."""
    curves = defaultdict(list)
    for s in summary:
        curves[(s["network"], s["split"], s["config"])].append(s)
    out = []
    for (network, split, config), pts in curves.items():
        if config == anchor or (network, split, anchor) not in curves:
            continue
        base = curves[(network, split, anchor)]
        # the task fidelities as they are; the distortions at equal -log10 (Annex C.5)
        tasks = [(t, k, False) for t, k in FIDELITIES.items()] + \
            [(t, k, True) for t, k in DISTORTION_MEASURE.items()]
        for task, key, distortion in tasks:
            if (any(p.get(key) is None for p in base + pts) if distortion
                    else pts[0][key] is None):
                continue
            row = {"network": network, "split": split, "config": config, "anchor": anchor,
                   "task": task, "bd_rate_percent": None, "note": ""}
            try:
                qa, qt = [p[key] for p in base], [p[key] for p in pts]
                if distortion:
                    qa, qt = quality_of_distortion(qa), quality_of_distortion(qt)
                row["bd_rate_percent"] = metrics.bd_rate(
                    [p["bits_per_element"] for p in base], qa,
                    [p["bits_per_element"] for p in pts], qt, plateau="lowest_rate")
            except ValueError as exc:
                row["note"] = _clean_note(str(exc))
            out.append(row)
    return out


def network_input_image(network: str, x) -> np.ndarray:
    """The network input (after resizing / cropping) as H x W x 3 uint8 RGB."""
    return input_image("craft" if network == "craft" else "imagenet", x)


def fig5(rows: Sequence[dict], config: str = BASELINE, qp: int = 22) -> list[dict]:
    """Coded feature size at QP 22 relative to the network input image, raw (H x W x 3
    bytes) and coded as JPEG at quality 75 (Pillow), both summed over the inputs of the
    point (each job row carries its input's sizes, ``jobs.pristine``)."""
    groups = defaultdict(list)
    for r in rows:
        if r["config"] == config and r["qp"] == qp and r.get("input_raw_bytes"):
            groups[(r["network"], r["split"])].append(r)
    out = []
    for (network, split), rs in groups.items():
        n = len(rs)
        fb = sum(r["bytes"] for r in rs)
        raw = sum(r["input_raw_bytes"] for r in rs)
        jpg = sum(r["input_jpeg75_bytes"] for r in rs)
        out.append({"network": network, "split": split, "qp": qp,
                    "feature_bytes_per_image": fb / n, "input_raw_bytes_per_image": raw / n,
                    "input_jpeg75_bytes_per_image": jpg / n,
                    "relative_to_raw_input": fb / raw, "relative_to_jpeg75": fb / jpg})
    return out
