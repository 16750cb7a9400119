"""Retrieval fidelity: the bubble index of [CHEN2019] Algorithm 1 (Annex C.3).

For two rankings of the same n items, Algorithm 1 bubble-sorts the reconstructed ranking
into the pristine order; it makes one swap per inverted pair and n(n-1)/2 comparisons.
The bubble index used here is the similarity

    bubble_index = 1 - swaps / (n(n-1)/2)        (1 for n < 2)

and the retrieval fidelity is its mean over queries.  The swaps are counted as the
inversions of a sequence, with O(n log n) array operations (``inversion_counts``), for
many queries at once when they rank the same items.

Rankings that do not hold the same items (top-k lists) are compared over the union U of
their items, each list completed by the items it lacks, appended in the order of the other
list (``completed_rankings``); n = |U|.
"""

from __future__ import annotations

import numpy as np

#: Elements per batch of ``inversion_counts`` (its working memory: tens of MB).
_BATCH_ELEMENTS = 1 << 20


def _permutation_rows(perms: np.ndarray) -> np.ndarray:
    """Inversions of each row of a Q x n array whose rows are permutations of 0..n-1.

    The values are grouped by their binary prefix, most significant bit first.  A pair
    i < j with v_i > v_j is counted at the highest bit b where v_i and v_j differ: both
    then lie in the group of their common prefix, v_i with bit b = 1 and v_j with bit
    b = 0.  For each bit b, from the highest down, every element with bit b = 0 adds the
    number of elements with bit b = 1 before it in its group; then each group is split
    stably (bit-0 elements first), which keeps position order inside the new groups.

    Because the rows are permutations, the group of prefix P holds exactly the values
    P * 2^(b+1) .. P * 2^(b+1) + 2^(b+1) - 1 that are below n, so it starts at column
    P * 2^(b+1) and holds min(2^b, n - P * 2^(b+1)) elements with bit b = 0.  Each of the
    ceil(log2 n) rounds is O(Q n) array arithmetic (one cumulative sum, one gather, one
    scatter): O(n log n) per row.
    """
    q, n = perms.shape
    bits = max(1, (n - 1).bit_length())
    dtype = np.int32 if n <= 46340 else np.int64     # n * n fits the type
    cur = perms.astype(dtype)
    col = np.arange(n, dtype=dtype)
    totals = np.zeros(q, dtype=np.int64)
    nxt = np.empty_like(cur)
    for b in range(bits - 1, -1, -1):
        bit = (cur >> b) & 1
        start = (col >> (b + 1)) << (b + 1)                         # group start column
        zeros_in_group = np.minimum(n - start, 1 << b)
        # The k-th bit-0 element of a group (k = 0, 1, ...), at offset o from the group
        # start, has o - k bit-1 elements before it: the count of this round is the sum of
        # the offsets of the bit-0 elements minus z(z - 1)/2 for each group of z of them.
        offset = col - start
        z = zeros_in_group[start == col].astype(np.int64)
        totals += int(offset.sum(dtype=np.int64)) - (bit @ offset).astype(np.int64) \
            - int((z * (z - 1) // 2).sum())
        # stable split: bit-0 elements to the front of their group, bit-1 elements after
        ones_before = np.cumsum(bit, axis=1, dtype=dtype)
        ones_before -= bit                                          # exclusive, per row
        ones_in_group_before = ones_before - ones_before[:, start]
        new_col = np.where(bit == 0, col - ones_in_group_before,
                           start + zeros_in_group + ones_in_group_before)
        np.put_along_axis(nxt, new_col, cur, axis=1)
        cur, nxt = nxt, cur
    return totals


def inversion_counts(perms) -> np.ndarray:
    """Inversions (pairs i < j with p[i] > p[j]) of each row of a Q x n array whose rows
    are permutations of 0..n-1; int64 array of Q counts."""
    p = np.asarray(perms)
    if p.ndim != 2:
        raise ValueError(f"expected a Q x n array of permutations, got shape {p.shape}")
    q, n = p.shape
    if n and not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"permutations shall be integers, got dtype {p.dtype}")
    if n < 2:
        return np.zeros(q, dtype=np.int64)
    if not (np.sort(p, axis=1) == np.arange(n)).all():
        raise ValueError(f"every row shall be a permutation of 0..{n - 1}")
    return _batched(p)


def _batched(perms: np.ndarray) -> np.ndarray:
    q, n = perms.shape
    rows = max(1, _BATCH_ELEMENTS // n)
    return np.concatenate([_permutation_rows(perms[i:i + rows]) for i in range(0, q, rows)]
                          or [np.zeros(0, dtype=np.int64)])


def count_inversions(seq) -> int:
    """Pairs i < j with seq[i] > seq[j] (strictly) of a sequence of comparable values;
    the number of swaps bubble sort makes to sort it."""
    a = np.asarray(seq)
    if a.ndim != 1:
        raise ValueError(f"expected a sequence, got shape {a.shape}")
    if a.size < 2:
        return 0
    ranks = np.empty(a.size, dtype=np.int64)
    ranks[np.argsort(a, kind="stable")] = np.arange(a.size)   # equal values: not inverted
    return int(_permutation_rows(ranks[None, :])[0])


def _items(name: str, ranking) -> np.ndarray:
    a = np.asarray(ranking)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"{name} ranking shall be a sequence of items, got shape {a.shape}")
    if a.dtype.kind not in "iuU":
        raise ValueError(f"{name} ranking items shall be integers or strings, got dtype "
                         f"{a.dtype}")
    if np.unique(a).size != a.size:
        raise ValueError(f"{name} ranking holds an item more than once")
    return a


def completed_rankings(pristine, reconstructed) -> tuple[np.ndarray, np.ndarray]:
    """The two rankings over the union of their items: pristine followed by the items only
    in reconstructed (in reconstructed order), and reconstructed followed by the items
    only in pristine (in pristine order)."""
    p, r = _items("pristine", pristine), _items("reconstructed", reconstructed)
    if p.size and r.size and (p.dtype.kind == "U") != (r.dtype.kind == "U"):
        raise ValueError("pristine and reconstructed items shall be of one kind (integers "
                         "or strings)")
    in_p = np.isin(r, p)
    in_r = np.isin(p, r)
    return np.concatenate([p, r[~in_p]]), np.concatenate([r, p[~in_r]])


def bubble_swaps(pristine, reconstructed) -> tuple[int, int]:
    """(swaps, n): the swaps bubble sort makes to put the reconstructed ranking into the
    pristine order, over the union of the items of both (n items)."""
    p_full, r_full = completed_rankings(pristine, reconstructed)
    n = p_full.size
    if n < 2:
        return 0, n
    sorter = np.argsort(p_full, kind="stable")
    seq = sorter[np.searchsorted(p_full, r_full, sorter=sorter)]   # pristine position
    return int(_permutation_rows(seq[None, :])[0]), n


def _index(swaps: int, n: int) -> float:
    return 1.0 if n < 2 else 1.0 - swaps / (n * (n - 1) // 2)


def bubble_index(pristine, reconstructed) -> float:
    """1 - swaps / (n(n-1)/2) for one query: 1 for the same order, 0 for reversed order;
    1 when the union of the items has fewer than 2 items."""
    return _index(*bubble_swaps(pristine, reconstructed))


def bubble_indices(pristine_rankings, reconstructed_rankings) -> np.ndarray:
    """The bubble index of each query (rows of two Q x n arrays, or two sequences of
    rankings of any lengths)."""
    if len(pristine_rankings) != len(reconstructed_rankings):
        raise ValueError(f"pristine and reconstructed hold {len(pristine_rankings)} and "
                         f"{len(reconstructed_rankings)} queries")
    if len(pristine_rankings) == 0:
        raise ValueError("a fidelity needs at least one query, got 0")
    try:
        p, r = np.asarray(pristine_rankings), np.asarray(reconstructed_rankings)
    except ValueError:                                   # rankings of different lengths
        p = r = None
    if (p is not None and p.ndim == 2 and p.shape == r.shape and p.shape[1] >= 2
            and p.dtype.kind in "iu" and r.dtype.kind in "iu"):
        n = p.shape[1]
        sp, sr = np.sort(p, axis=1), np.sort(r, axis=1)
        if (sp == sr).all() and (np.diff(sp, axis=1) > 0).all():
            # full rankings of one item set per query: batched, no per-query Python work.
            # seq[q, j] = position in p[q] of the item r[q, j]
            rows = np.arange(p.shape[0])[:, None]
            if (sp == np.arange(n)).all():              # items 0..n-1: invert by scatter
                where_p = np.empty(p.shape, dtype=np.int64)
                where_p[rows, p] = np.arange(n)
                seq = where_p[rows, r]
            else:                                        # k-th smallest item: p, r positions
                seq = np.empty(p.shape, dtype=np.int64)
                seq[rows, np.argsort(r, axis=1)] = np.argsort(p, axis=1)
            return 1.0 - _batched(seq) / (n * (n - 1) // 2)
    return np.array([bubble_index(a, b) for a, b in zip(pristine_rankings,
                                                        reconstructed_rankings)])


def retrieval_fidelity(pristine_rankings, reconstructed_rankings) -> float:
    """Mean bubble index over queries (Eq. 3 of [CHEN2019] with the bubble index as a
    similarity)."""
    return float(np.mean(bubble_indices(pristine_rankings, reconstructed_rankings)))


def rank_references(queries, references, *, metric: str = "cosine",
                    top_k: int | None = None) -> np.ndarray:
    """Q x R (or Q x top_k) reference indices, most similar first, for each query.

    ``metric`` "cosine": descending cosine similarity (a zero vector has similarity 0 with
    every vector); "euclidean": ascending Euclidean distance.  Ties go to the lower
    reference index.  Computed in binary64.
    """
    q = np.asarray(queries, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    if q.ndim != 2 or ref.ndim != 2:
        raise ValueError(f"queries and references shall be Q x D and R x D arrays, got shapes "
                         f"{q.shape} and {ref.shape}")
    if q.shape[1] != ref.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, references {ref.shape[1]}")
    if not (np.isfinite(q).all() and np.isfinite(ref).all()):
        raise ValueError("embeddings shall be finite")
    if metric == "cosine":
        def unit(x):
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
        key = -(unit(q) @ unit(ref).T)
    elif metric == "euclidean":
        key = ((q * q).sum(axis=1)[:, None] + (ref * ref).sum(axis=1)[None, :]
               - 2.0 * (q @ ref.T))
        np.maximum(key, 0.0, out=key)
    else:
        raise ValueError(f"metric shall be 'cosine' or 'euclidean', got {metric!r}")
    order = np.argsort(key, axis=1, kind="stable")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k shall be a positive integer, got {top_k!r}")
        order = order[:, :top_k]
    return order
