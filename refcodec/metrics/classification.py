"""Classification fidelity (Annex C.2).

The fidelity is the fraction of samples whose top-1 class is the same for the pristine and
the reconstructed network output; ties in the scores go to the lowest class index (as
``numpy.argmax``).  With ``k`` > 1 it is the top-k agreement: the mean over samples of
|T_k(pristine) ∩ T_k(reconstructed)| / k, where T_k is the set of the first k classes in
the order (score descending, class index ascending).
"""

from __future__ import annotations

import numpy as np


def _outputs(pristine, reconstructed) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pristine), np.asarray(reconstructed)
    if p.shape != r.shape:
        raise ValueError(f"pristine and reconstructed outputs shall have the same shape, got "
                         f"{p.shape} and {r.shape}")
    if p.ndim not in (1, 2):
        raise ValueError(f"outputs shall be N x K scores or N labels, got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError("a fidelity needs at least one sample, got 0")
    if p.ndim == 2 and p.shape[1] == 0:
        raise ValueError("scores shall have at least one class, got 0")
    for name, a in (("pristine", p), ("reconstructed", r)):
        if a.ndim == 1 and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} labels shall be integers, got dtype {a.dtype}")
        if a.ndim == 2 and not (np.issubdtype(a.dtype, np.integer)
                                or np.issubdtype(a.dtype, np.floating)):
            raise ValueError(f"{name} scores shall be numbers, got dtype {a.dtype}")
        if a.ndim == 2 and np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
            raise ValueError(f"{name} scores contain NaN")
    return p, r


def top_k_classes(scores, k: int) -> np.ndarray:
    """N x k class indices: the first k classes of each row ordered by score descending,
    then class index ascending."""
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores shall be N x K, got shape {s.shape}")
    if not 1 <= k <= s.shape[1]:
        raise ValueError(f"k shall be in 1..{s.shape[1]} (the number of classes), got {k}")
    if k == 1:
        return np.argmax(s, axis=1)[:, None]
    # binary64 holds every float16/float32 score exactly; negation keeps the stable order
    return np.argsort(-s.astype(np.float64), axis=1, kind="stable")[:, :k]


def top1_labels(scores) -> np.ndarray:
    """The top-1 class of each row of N x K scores (ties: lowest class index)."""
    return top_k_classes(scores, 1)[:, 0]


def classification_fidelity(pristine, reconstructed, *, k: int = 1) -> float:
    """Fraction of samples whose top-1 class is unchanged (``k`` = 1), or the top-k
    agreement (``k`` > 1, scores only).

    ``pristine`` and ``reconstructed`` are both N x K score arrays (logits or
    probabilities: only their order matters) or both N integer label vectors.
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k shall be an integer, got {k!r}")
    p, r = _outputs(pristine, reconstructed)
    n = p.shape[0]
    if p.ndim == 1:
        if k != 1:
            raise ValueError(f"top-k agreement with k = {k} needs scores, not labels")
        return int(np.count_nonzero(p == r)) / n
    tp, tr = top_k_classes(p, k), top_k_classes(r, k)
    if k == 1:
        return int(np.count_nonzero(tp == tr)) / n
    mp = np.zeros(p.shape, dtype=bool)
    mr = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(mp, tp, True, axis=1)
    np.put_along_axis(mr, tr, True, axis=1)
    return int(np.count_nonzero(mp & mr)) / (n * k)
