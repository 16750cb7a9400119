"""From the jobs' rows to the results: summary per (network, split, config, QP), the
BD-rates against the baseline, the Fig. 5 comparison with the input image."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .. import metrics
from .configs import BASELINE
from .images import images_for
from .jobs import _network


def retrieval_fidelity_of(queries_pristine, queries_reconstructed, references) -> float:
    """Mean bubble index: query q ranks references j != q by cosine similarity."""
    n = len(references)
    p_rank, r_rank = [], []
    for q in range(n):
        others = np.array([j for j in range(n) if j != q])
        if len(others) < 1:
            continue
        refs = references[others]
        p_rank.append(others[metrics.rank_references(queries_pristine[q][None], refs)[0]])
        r_rank.append(others[metrics.rank_references(queries_reconstructed[q][None], refs)[0]])
    if not p_rank:
        return 1.0
    return metrics.retrieval_fidelity(np.stack(p_rank), np.stack(r_rank))


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
             "retrieval_fidelity": None, "detection_fidelity": None}
        if "top1_pristine" in rs[0]:
            s["classification_fidelity"] = metrics.classification_fidelity(
                np.array([r["top1_pristine"] for r in rs]),
                np.array([r["top1_reconstructed"] for r in rs]))
            s["top5_agreement"] = float(np.mean([r["top5_agreement"] for r in rs]))
            if references is not None and len(rs) == len(references) and len(rs) >= 2:
                s["retrieval_fidelity"] = retrieval_fidelity_of(
                    np.stack([r["embedding_pristine"] for r in rs]),
                    np.stack([r["embedding_reconstructed"] for r in rs]), references)
        if "detection_fidelity_image" in rs[0]:
            s["detection_fidelity"] = float(np.mean([r["detection_fidelity_image"]
                                                     for r in rs]))
            s["inputs_with_pristine_detections"] = sum(r["detections_pristine"] > 0
                                                       for r in rs)
            s["pristine_detections"] = sum(r["detections_pristine"] for r in rs)
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
        for task, key in FIDELITIES.items():
            if pts[0][key] is None:
                continue
            row = {"network": network, "split": split, "config": config, "anchor": anchor,
                   "task": task, "bd_rate_percent": None, "note": ""}
            try:
                row["bd_rate_percent"] = metrics.bd_rate(
                    [p["bits_per_element"] for p in base], [p[key] for p in base],
                    [p["bits_per_element"] for p in pts], [p[key] for p in pts],
                    plateau="lowest_rate")
            except ValueError as exc:
                row["note"] = _clean_note(str(exc))
            out.append(row)
    return out


def _clean_note(text: str) -> str:
    """An exception text without numpy reprs, numbers to 4 significant digits."""
    import re
    text = re.sub(r"np\.float64\(([^)]*)\)", r"\1", text)
    return re.sub(r"\d+\.\d{5,}", lambda m: f"{float(m.group()):.4g}", text)


def jpeg_size(image_uint8: np.ndarray, quality: int = 75) -> int:
    """Bytes of the image coded by Pillow's JPEG encoder (libjpeg; baseline, 4:2:0 chroma
    subsampling, Pillow's default quantization tables scaled to ``quality``)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image_uint8).save(buf, format="JPEG", quality=quality)
    return buf.tell()


def network_input_image(network: str, x) -> np.ndarray:
    """The network input (after resizing / cropping) as H x W x 3 uint8 RGB."""
    from ..models import IMAGENET_MEAN, IMAGENET_STD
    scale = 255.0 if network == "craft" else 1.0
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1) * scale
    std = np.array(IMAGENET_STD).reshape(3, 1, 1) * scale
    v = x[0].double().numpy() * std + mean
    if network != "craft":
        v = v * 255.0
    return np.clip(np.rint(v), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def fig5(summary: Sequence[dict], networks: Iterable[str], n_by_net: dict,
         config: str = BASELINE, qp: int = 22) -> list[dict]:
    """Coded feature size at QP 22 relative to the network input image, raw (H x W x 3
    bytes) and coded as JPEG at quality 75 (Pillow), both summed over the inputs."""
    out = []
    for network in networks:
        net = _network(network)
        ims = images_for(network, n_by_net[network])
        raw = jpg = 0
        for im in ims:
            u8 = network_input_image(network, net.preprocess(im.image))
            raw += u8.size
            jpg += jpeg_size(u8)
        for s in summary:
            if s["network"] == network and s["config"] == config and s["qp"] == qp:
                fb = s["bytes_per_image"] * s["images"]
                out.append({"network": network, "split": s["split"], "qp": qp,
                            "feature_bytes_per_image": fb / len(ims),
                            "input_raw_bytes_per_image": raw / len(ims),
                            "input_jpeg75_bytes_per_image": jpg / len(ims),
                            "relative_to_raw_input": fb / raw,
                            "relative_to_jpeg75": fb / jpg})
    return out
