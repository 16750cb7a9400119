"""Coding of the face embedding in face_base() (clauses 13.3 and 13.5).

The embedding is quantized with a uniform scalar quantizer of step ``embedding_step``
(levels ``q[i]``, signed integers) and each level is written as a signed k-th order
Exp-Golomb code ``sek(v)``: the signed level is mapped to a code number
``u = 2v - 1`` (v > 0) or ``u = -2v`` (v <= 0), then ``u >> k`` is written as an
unsigned 0th-order Exp-Golomb code ``ue(v)`` (H.265 clause 9.2) followed by the ``k`` low
bits of ``u``, most significant first.  After the last level come a stop bit equal to 1 and
zero bits up to the next byte boundary (like H.265's rbsp_trailing_bits()).

Reading and writing work on the payload as a string of binary digits (linear in the
payload; ue(v) is H.265's, clause 9.2).
Nothing here knows about units or byte offsets in a stream: errors carry the bit position
inside embedding_payload and ``refcodec.bitstream`` places them.
"""

from __future__ import annotations

import math

import numpy as np

#: Largest |level| a conforming stream may carry (clause 13.3.6): level * step is then exact
#: in binary64 (24 + 24 significand bits).
MAX_ABS_LEVEL = (1 << 24) - 1
#: Largest eg_order (clause 13.3.5).
MAX_EG_ORDER = 24
#: level * step rounds to infinity in binary32 exactly when |level * step| is at least this:
#: halfway between the largest finite binary32 value (2^128 - 2^104) and 2^128.
OVERFLOW_THRESHOLD = 2.0 ** 128 - 2.0 ** 103
#: Longest ue(v) prefix (leading zero bits) a level within MAX_ABS_LEVEL can need.
MAX_PREFIX_ZEROS = 25


class EmbeddingCodeError(ValueError):
    """embedding_payload does not hold embedding_dim codes followed by the trailing bits.

    ``bit`` is the bit position inside embedding_payload; ``clause`` the violated clause.
    """

    def __init__(self, message: str, bit: int, clause: str = "13.3.6"):
        super().__init__(message)
        self.message = message
        self.bit = bit
        self.clause = clause


def code_number(v: int) -> int:
    """Signed level -> code number (0, 1, -1, 2, -2, ... -> 0, 1, 2, 3, 4, ...)."""
    return 2 * v - 1 if v > 0 else -2 * v


def signed_level(u: int) -> int:
    """Code number -> signed level (the inverse of code_number)."""
    return (u + 1) >> 1 if u & 1 else -(u >> 1)


def code_length(v: int, k: int) -> int:
    """Bits of sek(v) at order k."""
    u = code_number(v)
    return 2 * ((u >> k) + 1).bit_length() - 1 + k


def payload_bits(levels, k: int) -> int:
    """Bits of embedding_payload for ``levels`` at order ``k``, trailing bits included."""
    bits = sum(code_length(int(v), k) for v in levels) + 1
    return bits + (-bits % 8)


def best_order(levels) -> int:
    """The eg_order that codes ``levels`` in the fewest bits (the smallest on a tie)."""
    return min(range(MAX_EG_ORDER + 1), key=lambda k: (payload_bits(levels, k), k))


def write_levels(levels, k: int) -> bytes:
    """embedding_payload for ``levels`` at order ``k`` (clause 13.3.6).  Built as a string of
    binary digits (linear in the payload; ``bitstring`` took some 12 microseconds a level)."""
    if not 0 <= k <= MAX_EG_ORDER:
        raise ValueError(f"eg_order shall be in 0..{MAX_EG_ORDER}, got {k}")
    parts = []
    append = parts.append
    low_mask = (1 << k) - 1
    for v in levels:
        v = int(v)
        if v > MAX_ABS_LEVEL or -v > MAX_ABS_LEVEL:
            raise ValueError(f"|level| shall be at most {MAX_ABS_LEVEL}, got {v}")
        u = 2 * v - 1 if v > 0 else -2 * v
        # ue(u >> k): as many zeros as m = (u >> k) + 1 has bits after its leading one, then m
        m = (u >> k) + 1
        digits = bin(m)[2:]
        append("0" * (len(digits) - 1))
        append(digits)
        if k:
            append(format(u & low_mask, f"0{k}b"))
    append("1")
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def read_levels(payload: bytes, dim: int, k: int) -> tuple[int, ...]:
    """The ``dim`` levels of embedding_payload, with its trailing bits checked.

    Raises EmbeddingCodeError (with the bit position) when a code runs past the end, a code
    is longer than any conforming level needs, a level exceeds MAX_ABS_LEVEL, or the trailing
    bits are not a 1 followed by zeros up to the end of the payload.

    The payload is read as a string of '0'/'1' characters (one conversion of the whole
    payload), so that finding each code's leading one and reading its bits are C-level
    string operations: the cost is linear in the payload and small per level (a run of
    zero levels at order 0, each the one-bit code '1', is read in one step).
    """
    data = bytes(payload)
    total = 8 * len(data)
    bits = format(int.from_bytes(data, "big"), f"0{total}b") if data else ""
    find = bits.find
    levels: list[int] = []
    append = levels.append
    pos = i = 0
    while i < dim:
        start = pos
        one = find("1", start)
        if one < 0:
            raise EmbeddingCodeError(
                f"embedding_payload ends inside the code of level {i} of {dim}", start)
        zeros = one - start
        if zeros == 0 and k == 0:
            # ue(v) '1' is code number 0, level 0: the whole run of ones at once
            run_end = find("0", start)
            run = (total if run_end < 0 else run_end) - start
            run = min(run, dim - i)
            levels.extend([0] * run)
            pos += run
            i += run
            continue
        if zeros > MAX_PREFIX_ZEROS:
            raise EmbeddingCodeError(
                f"the code of level {i} has {zeros} leading zero bits, more than the "
                f"{MAX_PREFIX_ZEROS} a level of magnitude up to {MAX_ABS_LEVEL} needs", start)
        end = one + zeros + 1 + k
        if end > total:
            raise EmbeddingCodeError(
                f"embedding_payload ends inside the code of level {i} of {dim}", start)
        # ue(v) = 2**zeros - 1 + suffix; with the k low bits: (ue << k) | low
        u = int(bits[one:end], 2) - (1 << k)
        v = (u + 1) >> 1 if u & 1 else -(u >> 1)
        if v > MAX_ABS_LEVEL or -v > MAX_ABS_LEVEL:
            raise EmbeddingCodeError(f"level {i} is {v}; |level| shall be at most "
                                     f"{MAX_ABS_LEVEL}", start)
        append(v)
        pos = end
        i += 1
    stop = pos
    if stop >= total or bits[stop] != "1":
        raise EmbeddingCodeError("embedding_payload shall end with a stop bit equal to 1 after "
                                 "the last level" + (" (none left)" if stop >= total else ""),
                                 stop)
    rest = bits[stop + 1:]
    if len(rest) >= 8 or "1" in rest:
        raise EmbeddingCodeError(
            "after the stop bit, embedding_payload shall hold only the zero bits up to the "
            "next byte boundary", stop + 1)
    return tuple(levels)


# ------------------------------------------------------------------------------------
# Quantization (clause 13.5)
# ------------------------------------------------------------------------------------

def as_step(step: float) -> float:
    """``step`` rounded to binary32, the value embedding_step carries."""
    return float(np.float32(step))


def valid_step(step: float) -> bool:
    """embedding_step shall be a positive, finite binary32 number (clause 13.3.4)."""
    return math.isfinite(step) and step > 0


def quantize(embedding: np.ndarray, step: float) -> np.ndarray:
    """Informative encoder: levels ``floor(e / step + 0.5)`` computed in binary64."""
    e = np.asarray(embedding, dtype=np.float64)
    levels = np.floor(e / step + 0.5)
    if not np.all(np.abs(levels) <= MAX_ABS_LEVEL):
        raise ValueError(f"embedding_step {step!r} gives levels beyond +-{MAX_ABS_LEVEL}: "
                         f"choose a larger step")
    return levels.astype(np.int64)


def dequantize(levels, step: float) -> np.ndarray:
    """Normative (clause 13.5): e[i] = level[i] * embedding_step, exact in binary64, then
    rounded to binary32 (round to nearest, ties to even)."""
    with np.errstate(over="ignore"):    # a product beyond binary32 becomes inf (13.5)
        return (np.asarray(levels, dtype=np.float64) * float(step)).astype(np.float32)
