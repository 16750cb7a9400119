"""Tolerances of the decoded outputs (manifest fields): the tier-2 tolerance of a layer
(clause 12.3, ``tolerance``), the correctly rounded log quantizer it is measured from
(``correctly_rounded_log_table``) and the tolerance of a face image (clause 13.7.3,
``image_tolerance``)."""

from __future__ import annotations

import decimal
import math

import numpy as np

from ..codec import NUMPY_DTYPES
from ..enums import DTYPE_INFO, PredictorType, QuantizerType, SourceDtype
from ..records import QuantParams
from .checksums import tensor_bits


def ulp_log2(bound: float, dtype: SourceDtype) -> int:
    """log2 of ulp_T(v) of clause 12.3: max(Floor(log2(v)), e_min) - p + 1, for v > 0."""
    p, e_min = DTYPE_INFO[dtype].precision, DTYPE_INFO[dtype].min_exponent
    return max(math.frexp(bound)[1] - 1, e_min) - p + 1


def tolerance(header) -> dict:
    """The tier-2 tolerance of clause 12.3 for a layer header."""
    if header.quantizer_type != QuantizerType.LOG:
        return {"kind": "exact"}
    sets = []
    for p in header.quant_params:
        bound = max(abs(p.min_value), abs(p.max_value), 2.0 ** -24)
        k = ulp_log2(bound, header.source_dtype)
        sets.append({"bound": bound, "max_abs_error": math.ldexp(1.0, k),
                     "max_abs_error_log2": k})
    return {"kind": "abs", "param_sets": sets}


_DEC_CONTEXT = decimal.Context(prec=60)
_LN2 = decimal.Decimal(2).ln(_DEC_CONTEXT)


def _exp2(t: float) -> float:
    return float((decimal.Decimal(t) * _LN2).exp(_DEC_CONTEXT))


def _log2(v: float) -> float:
    return float(_DEC_CONTEXT.divide(decimal.Decimal(v).ln(_DEC_CONTEXT), _LN2))


def correctly_rounded_log_table(p: QuantParams, bit_depth: int, dtype: SourceDtype) -> np.ndarray:
    """Output values of the log quantizer (clause 9.4.2) for q = 0..D with log2 and exp2
    correctly rounded (60-digit decimal, then rounded to binary64): the reference r of
    clause 12.3.  Every other operation is a binary64 operation, as clause 4.4 says."""
    d = float((1 << bit_depth) - 1)
    lo, hi = float(p.min_value), float(p.max_value)
    span = _log2((hi - lo) + 1.0)
    values = [lo + (_exp2((q * span) / d) - 1.0) for q in range(1 << bit_depth)]
    return np.array(values, dtype=np.float64).astype(np.float32).astype(NUMPY_DTYPES[dtype])


def log_reference_is_correctly_rounded(header) -> bool:
    """Whether refcodec's log dequantization equals the correctly rounded one for every
    sample value of every parameter set of the layer."""
    from ..quant import output_table
    dtype = NUMPY_DTYPES[header.source_dtype]
    for p in header.quant_params:
        ours = output_table(int(QuantizerType.LOG), p, header.sample_bit_depth, dtype)
        exact = correctly_rounded_log_table(p, header.sample_bit_depth, header.source_dtype)
        if not np.array_equal(tensor_bits(ours), tensor_bits(exact)):
            return False
    return True


#: Largest difference a face image may have from the reference when its enhancement layer
#: uses a predictor network (clause 13.7.3: the predictor is floating point).
PREDICTOR_IMAGE_TOLERANCE = 1


def image_tolerance(enh) -> dict:
    """The tolerance of a decoded face image (clause 13.7.3): exact without a predictor, else
    |y - r| <= PREDICTOR_IMAGE_TOLERANCE for every sample."""
    if enh.predictor_type == PredictorType.NONE:
        return {"kind": "exact"}
    return {"kind": "abs", "max_abs_error": PREDICTOR_IMAGE_TOLERANCE}
