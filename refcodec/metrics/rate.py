"""Compression rate and bits per element (Annex C.1).

    original_bytes  = number of elements x bytes per element of the source dtype
    compression_rate = original_bytes / coded_bytes          (above 1 when the coding saves)
    coded_fraction  = coded_bytes / original_bytes           (Eq. 1 of [CHEN2019] as printed)
    bits_per_element = 8 x coded_bytes / number of elements

``stream_rates`` applies these to a VFC stream: the whole stream (every byte of it) and each
layer (its layer_header unit plus its layer_data unit, ``layer_coded_bytes``).
"""

from __future__ import annotations

import dataclasses
import operator

import numpy as np

from ..codec import NUMPY_DTYPES, read_headers
from ..enums import SourceDtype
from .. import bitstream
from ..records import Face, Layer, Stream
from ..syntax import UNIT_OVERHEAD

#: The element type [CHEN2019] assumes for the uncoded features (4 bytes per element).
PAPER_DTYPE = "float32"


def _count(name: str, value, *, positive: bool = False) -> int:
    """An integer count: int or numpy integer, not bool, not negative (or not 0 either)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} shall be an integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} shall be an integer, got {type(value).__name__} "
                         f"{value!r}") from None
    if n < 0 or (positive and n == 0):
        raise ValueError(f"{name} shall be {'positive' if positive else 'non-negative'}, "
                         f"got {n}")
    return n


def dtype_size(dtype) -> int:
    """Bytes per element of a source dtype: a SourceDtype, a name ("float32", "float16",
    "bfloat16") or anything numpy accepts as a dtype."""
    if isinstance(dtype, SourceDtype):
        return NUMPY_DTYPES[dtype].itemsize
    if isinstance(dtype, str) and dtype.upper() in SourceDtype.__members__:
        return NUMPY_DTYPES[SourceDtype[dtype.upper()]].itemsize
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        raise ValueError(f"unknown dtype {dtype!r}") from None


def original_bytes(num_elements, dtype=PAPER_DTYPE) -> int:
    """Size of the uncoded tensor: num_elements x bytes per element of ``dtype``."""
    return _count("num_elements", num_elements) * dtype_size(dtype)


def compression_rate(original_bytes, coded_bytes) -> float:
    """original_bytes / coded_bytes (40.0 means the coded data is 40 times smaller)."""
    return _count("original_bytes", original_bytes) / _count("coded_bytes", coded_bytes,
                                                              positive=True)


def coded_fraction(original_bytes, coded_bytes) -> float:
    """coded_bytes / original_bytes: Eq. 1 of [CHEN2019] as printed, the "Comp.Rate" values
    of its Table 3 (0.05 means the coded data is 5 % of the original)."""
    return _count("coded_bytes", coded_bytes) / _count("original_bytes", original_bytes,
                                                       positive=True)


def bits_per_element(coded_bytes, num_elements) -> float:
    """8 x coded_bytes / num_elements."""
    return 8 * _count("coded_bytes", coded_bytes) / _count("num_elements", num_elements,
                                                           positive=True)


def layer_coded_bytes(stream: Stream, layer: Layer) -> int:
    """Bytes of a layer in a stream: its layer_header unit plus its layer_data unit.

    Both units are framed as unit type, flags, length, payload and CRC-32; the layer_data
    unit ends with the CRC-32 after hevc_payload.  A skippable unit of another type that
    sits between the two units belongs to neither and is not counted.
    """
    header_end = min([layer.data_offset] + [u.offset for u in stream.skipped_units
                                            if layer.header_offset < u.offset < layer.data_offset])
    data_end = layer.payload_offset + len(layer.hevc_payload) + 4
    return (header_end - layer.header_offset) + (data_end - layer.data_offset)


def face_coded_bytes(face: Face) -> tuple[int, int]:
    """Bytes of a face in a stream: (its face_base unit, its face_enhancement unit or 0),
    each with the unit framing (type, flags, length, CRC-32)."""
    base = len(bitstream.build_face_base(face.base)) + UNIT_OVERHEAD
    if face.enhancement is None:
        return base, 0
    return base, len(bitstream.build_face_enhancement(face.enhancement)) + UNIT_OVERHEAD


@dataclasses.dataclass(frozen=True)
class RateReport:
    """Sizes of one layer (``layer_id`` set) or of a whole stream (``layer_id`` None)."""

    layer_id: str | None
    num_elements: int
    original_bytes: int
    coded_bytes: int

    @property
    def compression_rate(self) -> float:
        return compression_rate(self.original_bytes, self.coded_bytes)

    @property
    def coded_fraction(self) -> float:
        return coded_fraction(self.original_bytes, self.coded_bytes)

    @property
    def bits_per_element(self) -> float:
        return bits_per_element(self.coded_bytes, self.num_elements)


@dataclasses.dataclass(frozen=True)
class StreamRates:
    total: RateReport                 # every byte of the stream against every layer's tensor
    layers: tuple[RateReport, ...]    # in stream order

    def layer(self, layer_id: str) -> RateReport:
        for report in self.layers:
            if report.layer_id == layer_id:
                return report
        raise KeyError(layer_id)


def stream_rates(data: bytes | Stream, *, original_dtype=None) -> StreamRates:
    """Compression rates of a VFC stream (bytes, or a Stream from refcodec.read_headers).

    The original size of a layer is num_elements x the bytes of its source_dtype, or of
    ``original_dtype`` when given (``"float32"`` counts as [CHEN2019] does, whatever the
    source dtype).  The whole stream's coded size is every byte of it: stream header,
    layers, skippable units and end_of_stream unit.  No HEVC payload is decoded.
    """
    stream = data if isinstance(data, Stream) else read_headers(bytes(data))
    layers = []
    for layer in stream.layers:
        h = layer.header
        dtype = h.source_dtype if original_dtype is None else original_dtype
        layers.append(RateReport(h.layer_id, h.num_elements,
                                 original_bytes(h.num_elements, dtype),
                                 layer_coded_bytes(stream, layer)))
    total = RateReport(None, sum(r.num_elements for r in layers),
                       sum(r.original_bytes for r in layers), stream.size)
    return StreamRates(total, tuple(layers))
