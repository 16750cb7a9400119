"""Statistics of an evaluation: per-image measures, bootstrap confidence intervals, and
BD-rates with paired bootstrap confidence intervals.

Per-image measures (one value per input at one point = network, split, configuration,
QP): ``top1`` (1 when the top-1 class is unchanged), ``top5_agreement``, ``softmax_kl``,
``logit_mse``, ``retrieval`` (the query's bubble index: the input is a query against the
other inputs of the point, whose pristine embeddings are the references, as
``summary.retrieval_fidelity_of``), ``detection`` (F_image, Eq. 4), ``output_mse``.  A
point's value is their mean, so a fidelity is the mean of a per-image measure and can be
resampled by images.

Bootstrap (percentile method): ``B`` resamples of the inputs, drawn with replacement with
``numpy.random.default_rng(seed)``, the same resamples (index vectors into the inputs in
image-index order) for every point of one (network, split): the intervals of two points of
a split, and of the two curves of a BD-rate, are paired.  The interval is the 2.5 and 97.5
percentiles of the B resampled means (``level`` 0.95).  For retrieval the queries are
resampled, the references stay fixed.

BD-rate interval: for each resample, the rate of each point (bits per element: 8 x the
resampled stream bytes over the resampled elements) and its fidelity are recomputed on
the resampled inputs, for the anchor's and the test's curves alike, and the BD-rate of
those curves (PCHIP, plateaus reduced to their lowest rate, as ``summary.bd_rates``) is
computed; resamples where it cannot be (a curve that falls, ranges that do not overlap)
are counted (``bootstrap_failed``) and left out.  Only inputs present at every point of
both curves enter (``images``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .. import metrics
from .configs import BASELINE

#: measure -> (task, row key or None when derived); the tasks' per-image measures
MEASURES = {
    "top1": "classification", "top5_agreement": "classification",
    "softmax_kl": "classification", "logit_mse": "classification",
    "retrieval": "retrieval", "detection": "detection", "output_mse": "output",
}
#: task -> the per-image measure whose mean is the task's fidelity
FIDELITY_MEASURE = {"classification": "top1", "retrieval": "retrieval",
                    "detection": "detection"}
#: task -> the per-image distortion whose mean's -log10 is the task's continuous fidelity
#: (issue 15: top-1 over a few dozen inputs moves in steps that make most BD-rates n/a or
#: noise); summary.bd_rates uses the point's mean of the same distortion
DISTORTION_MEASURE = {"classification_kl": "softmax_kl", "classification_logit_mse": "logit_mse"}
DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 0


_CACHE: dict = {}


def _per_image(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Arrays of one point's per-image measures (rows sorted by image index); the last
    results are kept for the same row objects (summary, intervals and BD-rates of one
    result use the same points)."""
    key = tuple(id(r) for r in rows)
    hit = _CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], rows)):
        return hit[1]
    out = _measures(rows)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = (list(rows), out)
    return out


def _measures(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    out = {}
    r0 = rows[0]
    if "top1_pristine" in r0:
        out["top1"] = np.array([float(r["top1_pristine"] == r["top1_reconstructed"])
                                for r in rows])
        out["top5_agreement"] = np.array([r["top5_agreement"] for r in rows], float)
        if "softmax_kl" in r0:
            out["softmax_kl"] = np.array([r["softmax_kl"] for r in rows], float)
            out["logit_mse"] = np.array([r["logit_mse"] for r in rows], float)
        if "embedding_pristine" in r0 and len(rows) >= 2:
            out["retrieval"] = query_bubble_indices(
                np.stack([r["embedding_pristine"] for r in rows]),
                np.stack([r["embedding_reconstructed"] for r in rows]))
    if "detection_fidelity_image" in r0:
        out["detection"] = np.array([r["detection_fidelity_image"] for r in rows], float)
    if "output_mse" in r0:
        out["output_mse"] = np.array([r["output_mse"] for r in rows], float)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def leave_one_out_rankings(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Q x (Q - 1) rankings: row q orders the references j != q by descending cosine
    similarity to query q (ties to the lower index; a zero vector has similarity 0), as
    ``metrics.rank_references`` over the other references, for all queries in one matrix
    product (binary64)."""
    q = np.asarray(queries, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    n = len(ref)
    key = -(_unit(q) @ _unit(ref).T)
    key[np.arange(n), np.arange(n)] = np.inf            # the query itself sorts last
    return np.argsort(key, axis=1, kind="stable")[:, :n - 1]


def query_bubble_indices(pristine: np.ndarray, reconstructed: np.ndarray,
                         references: np.ndarray | None = None) -> np.ndarray:
    """Bubble index of each query q: references j != q (by default the pristine
    embeddings), ranked by cosine similarity to q's pristine and to q's reconstructed
    embedding."""
    refs = pristine if references is None else references
    return metrics.bubble_indices(leave_one_out_rankings(pristine, refs),
                                  leave_one_out_rankings(reconstructed, refs))


def _seed_for(seed: int, network: str, split: str) -> int:
    h = hashlib.sha256(f"{seed}|{network}|{split}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def resamples(n: int, b: int, seed: int, network: str, split: str) -> np.ndarray:
    """B x n index vectors (with replacement) for the inputs of one (network, split)."""
    rng = np.random.default_rng(_seed_for(seed, network, split))
    return rng.integers(0, n, size=(b, n))


def _points(rows: Sequence[dict]) -> dict[tuple, list[dict]]:
    pts = defaultdict(list)
    for r in rows:
        pts[(r["network"], r["split"], r["config"], r["qp"])].append(r)
    for k in pts:
        pts[k].sort(key=lambda r: (r["image_index"], r["image"]))
    return pts


def point_statistics(rows: Sequence[dict], *, bootstrap: int = DEFAULT_BOOTSTRAP,
                     seed: int = DEFAULT_SEED, level: float = 0.95) -> list[dict]:
    """Per point: images, bits per element, and for each measure its mean and bootstrap
    interval (``<measure>``, ``<measure>_lo``, ``<measure>_hi``)."""
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = []
    for (network, split, config, qp), rs in _points(rows).items():
        vals = _per_image(rs)
        n = len(rs)
        idx = resamples(n, bootstrap, seed, network, split) if bootstrap else None
        elements = np.array([r["elements"] for r in rs], float)
        nbytes = np.array([r["bytes"] for r in rs], float)
        s = {"network": network, "split": split, "config": config, "qp": qp, "images": n,
             "bits_per_element": float(8 * nbytes.sum() / elements.sum())}
        if idx is not None:
            bpe = 8 * nbytes[idx].sum(axis=1) / elements[idx].sum(axis=1)
            s["bits_per_element_lo"], s["bits_per_element_hi"] = (
                float(v) for v in np.percentile(bpe, [lo_q, hi_q]))
        labels = [r.get("label") for r in rs]
        if "top1_pristine" in rs[0] and all(isinstance(v, int) for v in labels):
            y = np.array(labels)
            s["accuracy_pristine"] = float(np.mean([r["top1_pristine"] for r in rs] == y))
            s["accuracy_reconstructed"] = float(np.mean(
                [r["top1_reconstructed"] for r in rs] == y))
        for m, v in vals.items():
            s[m] = float(v.mean())
            if idx is not None:
                s[f"{m}_lo"], s[f"{m}_hi"] = (float(x) for x in
                                              np.percentile(v[idx].mean(axis=1), [lo_q, hi_q]))
        out.append(s)
    return out


def bd_rate_intervals(rows: Sequence[dict], anchor: str = BASELINE, *,
                      bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED,
                      level: float = 0.95) -> list[dict]:
    """BD-rate of every configuration against ``anchor`` per network, split and task, on
    the inputs common to both curves, with its paired bootstrap interval (module doc)."""
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    pts = _points(rows)
    curves = defaultdict(dict)              # (network, split, config) -> qp -> rows
    for (network, split, config, qp), rs in pts.items():
        curves[(network, split, config)][qp] = rs
    out = []
    for (network, split, config), test in curves.items():
        if config == anchor or (network, split, anchor) not in curves:
            continue
        base = curves[(network, split, anchor)]
        common = set.intersection(*[{r["image"] for r in rs}
                                    for rs in list(base.values()) + list(test.values())])
        if len(common) < 1:
            continue

        def aligned(curve, common=common):
            qps = sorted(curve)
            sel = [[r for r in curve[qp] if r["image"] in common] for qp in qps]
            for s in sel:
                s.sort(key=lambda r: (r["image_index"], r["image"]))
            el = np.array([[r["elements"] for r in s] for s in sel], float)
            nb = np.array([[r["bytes"] for r in s] for s in sel], float)
            return el, nb, [_per_image(s) for s in sel]
        a_el, a_nb, a_m = aligned(base)
        t_el, t_nb, t_m = aligned(test)
        n = len(common)
        idx = resamples(n, bootstrap, seed, network, split) if bootstrap else \
            np.zeros((0, n), int)
        for task, measure in list(FIDELITY_MEASURE.items()) + list(DISTORTION_MEASURE.items()):
            if measure not in a_m[0] or measure not in t_m[0]:
                continue
            av = np.stack([m[measure] for m in a_m])         # QPs x images
            tv = np.stack([m[measure] for m in t_m])
            row = {"network": network, "split": split, "config": config, "anchor": anchor,
                   "task": task, "images": n, "bd_rate_percent": None, "note": "",
                   "ci_lo": None, "ci_hi": None, "bootstrap": int(bootstrap),
                   "bootstrap_failed": 0}
            distortion = task in DISTORTION_MEASURE
            try:
                row["bd_rate_percent"] = _bd(a_el, a_nb, av, t_el, t_nb, tv, slice(None),
                                             distortion)
            except ValueError as exc:
                row["note"] = clean_note(str(exc))
            values = []
            for b in range(len(idx)):
                try:
                    values.append(_bd(a_el, a_nb, av, t_el, t_nb, tv, idx[b], distortion))
                except ValueError:
                    row["bootstrap_failed"] += 1
            if values:
                row["ci_lo"], row["ci_hi"] = (float(x) for x in
                                              np.percentile(values, [lo_q, hi_q]))
            out.append(row)
    return out


def clean_note(text: str) -> str:
    """An exception text without numpy reprs, numbers to 4 significant digits."""
    import re
    text = re.sub(r"np\.float64\(([^)]*)\)", r"\1", text)
    return re.sub(r"\d+\.\d{5,}", lambda m: f"{float(m.group()):.4g}", text)


def quality_of_distortion(values) -> np.ndarray:
    """-log10 of each distortion (larger is better); ValueError for a distortion that is not
    positive (a lossless point has no finite quality)."""
    v = np.asarray(values, dtype=np.float64)
    bad = ~(v > 0)
    if bad.any():
        raise ValueError(f"a distortion of {v[bad][0]:g} has no finite quality (-log10)")
    return -np.log10(v)


def _bd(a_el, a_nb, av, t_el, t_nb, tv, sel, distortion: bool = False) -> float:
    """BD-rate of the resampled curves; ``distortion``: the measure is a distortion and the
    quality is -log10 of its mean (quality_of_distortion)."""
    def curve(el, nb, v):
        value = v[:, sel].mean(axis=1)
        if distortion:
            value = quality_of_distortion(value)
        return 8 * nb[:, sel].sum(axis=1) / el[:, sel].sum(axis=1), value
    ar, aq = curve(a_el, a_nb, av)
    tr, tq = curve(t_el, t_nb, tv)
    return metrics.bd_rate(ar, aq, tr, tq, plateau="lowest_rate")


__all__ = ["MEASURES", "FIDELITY_MEASURE", "DISTORTION_MEASURE", "DEFAULT_BOOTSTRAP",
           "DEFAULT_SEED", "point_statistics", "bd_rate_intervals", "query_bubble_indices",
           "quality_of_distortion", "resamples"]
