"""Detection fidelity (Annex C.4): Eq. 4 of [CHEN2019] with its open points settled.

For one image, with the detections whose score exceeds ``score_threshold``:

    F_image = sum_j IoU(Bp_j, Br_m(j)) * g(Cp_j, Cr_m(j)) * Cp_j / sum_j Cp_j
    g(Cp, Cr) = max(0, 1 - |Cp - Cr| / Cp)

where m pairs pristine detection j with at most one reconstructed detection of the same
class, each reconstructed detection being used at most once; m is a pairing that makes the
numerator largest (an optimal assignment, scipy.optimize.linear_sum_assignment).  Pristine
detections left unpaired contribute 0.  An image without pristine detections has
F_image = 1 when it has no reconstructed detection either, else 0.  The detection fidelity
is the mean of F_image over all images.

Boxes are (x1, y1, x2, y2) in continuous coordinates, x2 >= x1 and y2 >= y1.  IoU is the
area of the intersection over the area of the union; a box of zero width or height (area 0)
has IoU 1 with an identical box and 0 with every other box.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Detections:
    """The detections of one image: boxes M x 4 (x1, y1, x2, y2), scores M, labels M."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def as_detections(obj, name: str = "detections") -> Detections:
    """Detections from a Detections, a mapping with keys "boxes", "scores", "labels" (as
    torchvision detectors return, converted to numpy) or a (boxes, scores, labels) tuple."""
    if isinstance(obj, Detections):
        boxes, scores, labels = obj.boxes, obj.scores, obj.labels
    elif isinstance(obj, Mapping):
        try:
            boxes, scores, labels = obj["boxes"], obj["scores"], obj["labels"]
        except KeyError as exc:
            raise ValueError(f"{name}: a mapping needs the keys 'boxes', 'scores' and "
                             f"'labels', {exc.args[0]!r} is missing") from None
    else:
        try:
            boxes, scores, labels = obj
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected (boxes, scores, labels), a mapping or "
                             f"Detections, got {type(obj).__name__}") from None
    boxes, scores, labels = np.asarray(boxes), np.asarray(scores), np.asarray(labels)
    if boxes.size == 0:
        boxes = np.zeros((0, 4))
    if scores.size == 0:
        scores = np.zeros(0)
    if labels.size == 0:
        labels = np.zeros(0, dtype=np.int64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: boxes shall be M x 4, got shape {boxes.shape}")
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"{name}: scores and labels shall be vectors, got shapes "
                         f"{scores.shape} and {labels.shape}")
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"{name}: {len(boxes)} boxes, {len(scores)} scores and "
                         f"{len(labels)} labels; the counts shall be equal")
    if boxes.dtype.kind not in "iuf" or scores.dtype.kind not in "iuf":
        raise ValueError(f"{name}: boxes and scores shall be numbers")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name}: labels shall be integers, got dtype {labels.dtype}")
    boxes, scores = boxes.astype(np.float64), scores.astype(np.float64)
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"{name}: boxes and scores shall be finite")
    if (scores < 0).any():
        raise ValueError(f"{name}: scores shall be non-negative")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: box {i} {boxes[i].tolist()} has x2 < x1 or y2 < y1; "
                         f"boxes shall be (x1, y1, x2, y2)")
    return Detections(boxes, scores, labels)


def box_iou(a, b) -> np.ndarray:
    """M x K intersection over union of the boxes of ``a`` (M x 4) and ``b`` (K x 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2])
                - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3])
                - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    # a box is where it was: IoU 1, also for a box of area 0 (a point or a line)
    same = (a[:, None, :] == b[None, :, :]).all(axis=2)
    return np.where(same, 1.0, np.minimum(iou, 1.0))


def confidence_term(cp, cr) -> np.ndarray:
    """g = max(0, 1 - |Cp - Cr| / Cp), elementwise (Cp > 0)."""
    cp = np.asarray(cp, dtype=np.float64)
    cr = np.asarray(cr, dtype=np.float64)
    return np.maximum(0.0, 1.0 - np.abs(cp - cr) / cp)


@dataclasses.dataclass(frozen=True)
class DetectionMatch:
    """The pairing of one image.  Indices refer to the detections as given (before the
    score threshold); ``contribution`` = iou * confidence_term * pristine score."""

    pristine: np.ndarray        # indices of paired pristine detections, ascending
    reconstructed: np.ndarray   # the reconstructed detection paired with each
    iou: np.ndarray
    confidence_term: np.ndarray
    contribution: np.ndarray
    fidelity: float             # F_image


def _check_threshold(score_threshold) -> float:
    t = float(score_threshold)
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"score_threshold shall be a finite number >= 0, got "
                         f"{score_threshold!r}")
    return t


def match_detections(pristine, reconstructed, *, score_threshold: float = 0.0
                     ) -> DetectionMatch:
    """Pair the detections of one image and compute its fidelity (module doc string)."""
    from scipy.optimize import linear_sum_assignment

    t = _check_threshold(score_threshold)
    p = as_detections(pristine, "pristine")
    r = as_detections(reconstructed, "reconstructed")
    keep_p = np.flatnonzero(p.scores > t)
    keep_r = np.flatnonzero(r.scores > t)
    empty = np.zeros(0)
    if keep_p.size == 0:
        return DetectionMatch(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty,
                              empty, 1.0 if keep_r.size == 0 else 0.0)
    contribution = np.zeros(keep_p.size)     # per kept pristine detection, in input order
    partner = np.full(keep_p.size, -1, dtype=np.int64)
    iou_of = np.zeros(keep_p.size)
    g_of = np.zeros(keep_p.size)
    for label in np.unique(p.labels[keep_p]):
        ip = np.flatnonzero(p.labels[keep_p] == label)         # positions in keep_p
        jr = keep_r[r.labels[keep_r] == label]                 # indices into r
        if jr.size == 0:
            continue
        bp, cp = p.boxes[keep_p[ip]], p.scores[keep_p[ip]]
        iou = box_iou(bp, r.boxes[jr])
        g = confidence_term(cp[:, None], r.scores[jr][None, :])
        weight = iou * g * cp[:, None]
        rows, cols = linear_sum_assignment(weight, maximize=True)
        useful = weight[rows, cols] > 0
        rows, cols = rows[useful], cols[useful]
        contribution[ip[rows]] = weight[rows, cols]
        partner[ip[rows]] = jr[cols]
        iou_of[ip[rows]] = iou[rows, cols]
        g_of[ip[rows]] = g[rows, cols]
    paired = partner >= 0
    fidelity = float(contribution.sum() / p.scores[keep_p].sum())
    return DetectionMatch(keep_p[paired], partner[paired], iou_of[paired], g_of[paired],
                          contribution[paired], fidelity)


def image_detection_fidelity(pristine, reconstructed, *, score_threshold: float = 0.0
                             ) -> float:
    """F_image of one image."""
    return match_detections(pristine, reconstructed, score_threshold=score_threshold).fidelity


def detection_fidelity(pristine, reconstructed, *, score_threshold: float = 0.0) -> float:
    """Mean of F_image over images; ``pristine`` and ``reconstructed`` hold one entry per
    image (see ``as_detections`` for the forms an entry may take)."""
    pristine, reconstructed = list(pristine), list(reconstructed)
    if len(pristine) != len(reconstructed):
        raise ValueError(f"pristine and reconstructed hold {len(pristine)} and "
                         f"{len(reconstructed)} images")
    if not pristine:
        raise ValueError("a fidelity needs at least one image, got 0")
    return float(np.mean([image_detection_fidelity(p, r, score_threshold=score_threshold)
                          for p, r in zip(pristine, reconstructed)]))
