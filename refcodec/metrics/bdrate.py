"""Bjøntegaard delta rate between two rate-quality curves (Annex C.5).

Each curve's log10(rate) is modelled as a function of quality, either by one cubic
polynomial fitted to all its points (least squares; interpolation for 4 points; VCEG-M33)
or by piecewise cubic Hermite interpolation (PCHIP, as in the JCT-VC / JVET reporting
sheets).  Over the quality interval both curves cover, the mean difference
D = (integral of test - integral of anchor) / interval length gives

    BD-rate = (10^D - 1) x 100 %     (negative: the test needs less rate for equal quality)
"""

from __future__ import annotations

import numpy as np

METHODS = {"cubic": 4, "pchip": 2}      # method -> fewest points (after plateau handling)
PLATEAU = ("error", "lowest_rate")


def _curve(name: str, rate, quality, method: str, plateau: str):
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.ndim != 1 or q.ndim != 1 or r.shape != q.shape:
        raise ValueError(f"{name}: rate and quality shall be vectors of one length, got shapes "
                         f"{r.shape} and {q.shape}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()):
        raise ValueError(f"{name}: rates and qualities shall be finite")
    if (r <= 0).any():
        raise ValueError(f"{name}: rates shall be positive")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    if (np.diff(r) == 0).any():
        i = int(np.flatnonzero(np.diff(r) == 0)[0])
        raise ValueError(f"{name}: two points have the same rate {r[i]!r}")
    dq = np.diff(q)
    if (dq < 0).any():
        i = int(np.flatnonzero(dq < 0)[0])
        raise ValueError(f"{name}: quality falls from {q[i]!r} to {q[i + 1]!r} when the rate "
                         f"rises from {r[i]!r} to {r[i + 1]!r}; a rate-quality curve shall "
                         f"not fall")
    if (dq == 0).any():
        if plateau == "error":
            i = int(np.flatnonzero(dq == 0)[0])
            raise ValueError(f"{name}: quality {q[i]!r} is reached at rates {r[i]!r} and "
                             f"{r[i + 1]!r} (a plateau, e.g. a saturated fidelity); pass "
                             f"plateau='lowest_rate' to keep only the lowest rate of each "
                             f"plateau")
        keep = np.concatenate([[True], dq > 0])      # first (lowest-rate) point of each run
        r, q = r[keep], q[keep]
    if q.size < METHODS[method]:
        raise ValueError(f"{name}: method {method!r} needs at least {METHODS[method]} points "
                         f"of distinct quality, got {q.size}")
    return q, np.log10(r)


def _integral(q: np.ndarray, log_r: np.ndarray, lo: float, hi: float, method: str) -> float:
    if method == "cubic":
        antiderivative = np.polynomial.Polynomial.fit(q, log_r, 3).integ()
        return float(antiderivative(hi) - antiderivative(lo))
    from scipy.interpolate import PchipInterpolator
    return float(PchipInterpolator(q, log_r).integrate(lo, hi))


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality, *,
            method: str = "pchip", plateau: str = "error") -> float:
    """BD-rate of the test curve against the anchor curve, in percent.

    Rates are positive (bytes, bits per element, ...; one unit for both curves, which
    cancels); quality is any measure that rises with rate (fidelity, PSNR).  After sorting
    by rate, quality shall not fall.  Equal qualities at several rates (a plateau, typical
    of a fidelity saturating at 1) raise ValueError unless ``plateau="lowest_rate"``, which
    keeps the lowest-rate point of each plateau.  ``method`` is "pchip" (the default,
    >= 2 points) or "cubic" (>= 4 points; one polynomial can swing far from the points of
    a curve that flattens as fidelity nears 1, see Annex C.5).
    """
    if method not in METHODS:
        raise ValueError(f"method shall be one of {sorted(METHODS)}, got {method!r}")
    if plateau not in PLATEAU:
        raise ValueError(f"plateau shall be one of {list(PLATEAU)}, got {plateau!r}")
    qa, la = _curve("anchor", anchor_rate, anchor_quality, method, plateau)
    qt, lt = _curve("test", test_rate, test_quality, method, plateau)
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not hi > lo:
        raise ValueError(f"the quality ranges [{qa[0]!r}, {qa[-1]!r}] (anchor) and "
                         f"[{qt[0]!r}, {qt[-1]!r}] (test) do not overlap")
    mean_diff = (_integral(qt, lt, lo, hi, method) - _integral(qa, la, lo, hi, method)) / (hi - lo)
    return float((10.0 ** mean_diff - 1.0) * 100.0)
