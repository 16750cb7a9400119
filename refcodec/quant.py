"""Float <-> integer quantizers (numpy only).

``dequantize`` is the normative process of clause 9.4; ``choose_params`` and ``quantize``
are the informative encoder side (Annex A).  Arithmetic follows clause 4.4: every
operation of the dequantization is an IEEE 754 binary64 operation with round to nearest,
ties to even, in the order written; the binary64 result is rounded to binary32 and then to
the source dtype.  The uniform, square-root and integer quantizers are therefore bit-exact
across conforming decoders (IEEE 754 requires squareRoot to be correctly rounded); the log
quantizer involves exp2/log2, whose last bit may vary between math libraries (the reason for
the tolerance tier of clause 12.3).

Quantizer types (clause 8.3.6), with D = 2**bit_depth - 1 and q in 0..D:

* uniform: x = min + (q * (max - min)) / D
* log (the paper's Eq. 5/6): L = log2((max - min) + 1);  x = min + (exp2((q * L) / D) - 1)
* integer: x = q + offset
* sqrt (format 1.2): x = min + (max - min) * sqrt(q / D): levels finest near max, coarsest
  near min (for non-negative maps whose small values matter least, Annex A.7.2)
"""

from __future__ import annotations

import numpy as np

from .records import QuantParams as ParamSet

UNIFORM, LOG, INTEGER, SQRT = 0, 1, 2, 3
QUANTIZER_NAMES = {"uniform": UNIFORM, "log": LOG, "integer": INTEGER, "sqrt": SQRT}


class QuantizerInputError(ValueError):
    """The tensor cannot be quantized as asked (the encoder turns it into EncoderInputError)."""


def reconstruction_table(qtype: int, params: ParamSet, bit_depth: int) -> np.ndarray:
    """The binary64 value of every sample value q in 0..D (clause 9.4), before rounding."""
    d = float((1 << bit_depth) - 1)
    q = np.arange((1 << bit_depth), dtype=np.float64)
    if qtype == INTEGER:
        return q + np.float64(params.offset_value)
    lo = np.float64(params.min_value)
    hi = np.float64(params.max_value)
    if qtype == UNIFORM:
        return lo + (q * (hi - lo)) / d
    if qtype == LOG:
        span = np.log2((hi - lo) + np.float64(1.0))
        return lo + (np.exp2((q * span) / d) - np.float64(1.0))
    if qtype == SQRT:
        return lo + (hi - lo) * np.sqrt(q / d)
    raise ValueError(f"unknown quantizer type {qtype}")


def output_table(qtype: int, params: ParamSet, bit_depth: int, out_dtype) -> np.ndarray:
    """reconstruction_table rounded to binary32, then to the output dtype."""
    return reconstruction_table(qtype, params, bit_depth).astype(np.float32).astype(out_dtype)


#: Samples per np.take call in ``dequantize``: np.take first converts its indices to intp,
#: and a block's worth (512 KiB) stays in the CPU cache, which makes the lookup two to three
#: times faster than indexing with the whole array at once.
TAKE_BLOCK = 1 << 16


def _lookup(table: np.ndarray, samples: np.ndarray, out: np.ndarray) -> None:
    """out[...] = table[samples] for a C-contiguous ``out`` of samples' shape, block by block.
    Every sample shall be below len(table) (checked by the caller)."""
    flat = samples.reshape(-1)
    dest = out.reshape(-1)
    for i in range(0, flat.size, TAKE_BLOCK):
        np.take(table, flat[i:i + TAKE_BLOCK], out=dest[i:i + TAKE_BLOCK], mode="wrap")


def dequantize(samples: np.ndarray, qtype: int, params: list[ParamSet], bit_depth: int,
               out_dtype=np.float32) -> np.ndarray:
    """Dequantize integer samples laid out N x C x H x W.

    ``params`` holds one set (per tensor) or C sets (per channel, indexed by the source
    channel index).  Samples are uint8 or uint16 below 2**bit_depth (a decoder's output
    always is; anything else raises ValueError).
    """
    samples = np.asarray(samples)
    if samples.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"samples shall be uint8 or uint16, got {samples.dtype}")
    if len(params) not in (1, samples.shape[1]):
        raise ValueError(f"{len(params)} parameter sets for {samples.shape[1]} channels")
    # a table has 2**bit_depth entries; samples whose dtype can exceed it are checked here,
    # so that np.take needs no bounds check (8-bit samples never can at 8, 10 or 12 bits)
    if np.iinfo(samples.dtype).max >> bit_depth and samples.size \
            and int(samples.max()) >> bit_depth:
        raise ValueError(f"samples shall be below 2**{bit_depth}")
    if len(params) == 1:
        table = output_table(qtype, params[0], bit_depth, out_dtype)
        if not samples.flags.c_contiguous:  # the result keeps the samples' memory order
            return table[samples]
        out = np.empty(samples.shape, dtype=out_dtype)
        _lookup(table, samples, out)
        return out
    out = np.empty(samples.shape, dtype=out_dtype)
    for c, p in enumerate(params):
        table = output_table(qtype, p, bit_depth, out_dtype)
        if samples.shape[0] == 1:   # a channel of out is contiguous
            _lookup(table, samples[0, c, ...], out[0, c, ...])
        else:
            np.take(table, samples[:, c], out=out[:, c], mode="wrap")
    return out


# ------------------------------------------------------------------------------------
# Informative encoder side (Annex A)
# ------------------------------------------------------------------------------------

def _check_finite(x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise QuantizerInputError(
            f"the tensor holds a non-finite value ({float(x[tuple(bad)])!r} at index "
            f"{tuple(bad.tolist())})")


#: The largest finite binary16 number (clause 8.3.15).
BINARY16_MAX = 65504.0


def to_binary16(value: float, direction: int) -> float:
    """The binary16 number nearest ``value`` in ``direction`` (-1: the largest not above it,
    +1: the smallest not below it), as an exact float; QuantizerInputError beyond the
    binary16 range (magnitude above 65504 after rounding outward)."""
    if abs(value) > BINARY16_MAX:
        if direction * value < 0:          # rounded toward zero: the largest magnitude
            return BINARY16_MAX if value > 0 else -BINARY16_MAX
        raise QuantizerInputError(
            f"param_format binary16 cannot cover the value {value!r}: binary16 parameters "
            f"reach magnitude {BINARY16_MAX:g}; use param_format binary32")
    h = np.float16(value)
    if direction < 0 and float(h) > value:
        h = np.nextafter(h, np.float16(-np.inf))
    elif direction > 0 and float(h) < value:
        h = np.nextafter(h, np.float16(np.inf))
    if not np.isfinite(h):
        raise QuantizerInputError(
            f"param_format binary16 cannot cover the value {value!r}: binary16 parameters "
            f"reach magnitude {BINARY16_MAX:g}; use param_format binary32")
    return float(h)


def choose_params(x: np.ndarray, qtype: int, bit_depth: int, per_channel: bool,
                  precision: int = 24, binary16: bool = False) -> list[ParamSet]:
    """Parameter sets for tensor ``x`` (N x C x H x W, float32): its exact min and max (per
    tensor or per channel).

    For the integer quantizer the offset is the minimum, lowered where needed so that
    offset..offset + D stays within -2**precision..2**precision (clause 8.3.7: every value
    the decoder can produce is exact in a source dtype with that significand precision).

    ``binary16`` (param_format BINARY16, clause 8.3.15): every parameter is a binary16
    number that still covers the data: min rounded down and max rounded up to binary16
    (the range only widens), the integer offset rounded down where it is not one; a
    tensor they cannot cover (beyond +-65504, or an integer range that the rounded offset
    no longer spans at this bit depth) raises QuantizerInputError.
    """
    _check_finite(x)
    if per_channel:
        lo = x.min(axis=(0, 2, 3)).astype(np.float32)
        hi = x.max(axis=(0, 2, 3)).astype(np.float32)
    else:
        lo = np.array([x.min()], dtype=np.float32)
        hi = np.array([x.max()], dtype=np.float32)
    sets = []
    top = (1 << bit_depth) - 1
    for a, b in zip(lo.tolist(), hi.tolist()):
        if qtype == INTEGER:
            if b - a > top:
                raise QuantizerInputError(
                    f"the integer quantizer needs max - min <= {top} at {bit_depth}-bit, "
                    f"got {b} - {a} = {b - a}")
            limit = 1 << precision
            offset = min(a, limit - top)
            if binary16:
                offset = to_binary16(offset, -1)
                if b - offset > top:
                    raise QuantizerInputError(
                        f"param_format binary16: the offset {a} is not a binary16 number "
                        f"and the nearest one below, {offset}, leaves max - offset = "
                        f"{b - offset} > {top} at {bit_depth}-bit; use param_format binary32 "
                        f"or a higher bit depth")
            if offset < -limit:
                raise QuantizerInputError(
                    f"the integer quantizer at {bit_depth}-bit needs values exact in a dtype "
                    f"of {precision}-bit precision (|v| <= {limit}), which cannot hold "
                    f"{top + 1} consecutive integers; use a lower bit depth")
            sets.append(ParamSet(offset_value=offset))
        else:
            if binary16:
                a, b = to_binary16(a, -1), to_binary16(b, +1)
            p = ParamSet(min_value=a, max_value=b)
            if qtype == LOG and b > a:
                _check_log_levels(p, bit_depth, len(sets) if per_channel else None)
            sets.append(p)
    return sets


#: The log quantizer's limit: a range max - min of at most 2**-53 (about 1.1e-16) gives
#: L = log2((max - min) + 1) = 0 in binary64 (clause 9.4.2), and every sample decodes to min.
LOG_MIN_RANGE = 2.0 ** -53


def _check_log_levels(p: ParamSet, bit_depth: int, channel: int | None) -> None:
    """QuantizerInputError when the log quantizer's levels for a non-constant range all
    decode to one value (found by experiment: exactly when max - min <= 2**-53; the check
    is on the reconstruction table itself, so it also covers any rounding to binary32)."""
    table = output_table(LOG, p, bit_depth, np.float32)
    if table[-1] != table[0]:
        return
    where = "" if channel is None else f"channel {channel}: "
    raise QuantizerInputError(
        f"{where}the log quantizer cannot represent this range: max - min = "
        f"{p.max_value - p.min_value:.3g} (min {np.float32(p.min_value)!s}, max "
        f"{np.float32(p.max_value)!s}) is at most "
        f"2**-53 (about 1.1e-16), so L = log2((max - min) + 1) is 0 in binary64 and every "
        f"value would decode to min; use quantizer='uniform' or 'integer'")


def _quantize_one(x: np.ndarray, qtype: int, p: ParamSet, bit_depth: int) -> np.ndarray:
    top = (1 << bit_depth) - 1
    d = np.float64(top)
    if qtype == INTEGER:
        v = x.astype(np.float64) - np.float64(p.offset_value)
        if not np.array_equal(v, np.floor(v)):
            raise QuantizerInputError("the integer quantizer needs integer-valued tensors")
        return np.clip(v, 0, top).astype(np.uint16)
    lo = np.float64(p.min_value)
    hi = np.float64(p.max_value)
    if hi == lo:
        return np.zeros(x.shape, dtype=np.uint16)
    v = x.astype(np.float64) - lo
    if qtype == UNIFORM:
        v *= d / (hi - lo)
    elif qtype == SQRT:         # the inverse of the reconstruction: D * ((x - min) / range)^2
        v /= hi - lo
        np.square(v, out=v)
        v *= d
    else:
        span = np.log2((hi - lo) + 1.0)
        if span == 0:   # max - min <= 2**-53: every q would decode to min (choose_params)
            _check_log_levels(p, bit_depth, None)
        v += 1.0
        np.log2(v, out=v)
        v *= d / span
    v += 0.5
    np.floor(v, out=v)
    np.clip(v, 0, top, out=v)
    return v.astype(np.uint16)


def quantize(x: np.ndarray, qtype: int, params: list[ParamSet], bit_depth: int) -> np.ndarray:
    """Quantize N x C x H x W ``x`` to uint16 samples in 0..D (round half up: floor(v + 0.5))."""
    _check_finite(x)
    if len(params) == 1:
        return _quantize_one(x, qtype, params[0], bit_depth)
    out = np.empty(x.shape, dtype=np.uint16)
    for c, p in enumerate(params):
        out[:, c] = _quantize_one(x[:, c], qtype, p, bit_depth)
    return out
