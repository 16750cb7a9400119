"""What the HEVC decoder is fed: parameter sets in the order FFmpeg needs them.

H.265 needs a parameter set only to be available when it is activated (7.4.2.4.2): a PPS
may come before the SPS it refers to, an SPS before its VPS, and a parameter set may be
sent again with new content between pictures.  FFmpeg's HEVC decoder discards a PPS whose
SPS it has not seen yet, an SPS whose VPS it has not seen yet, and every PPS of an SPS
whose content changes; it then decodes no picture, or fewer.  ``in_decoder_order`` gives
the same payload with the parameter sets that FFmpeg would lose sent again, in the order
VPS, SPS, PPS, just before the first NAL unit that follows them; a payload FFmpeg takes as
it is (every payload libx265 writes) is returned unchanged, without a copy.

The decoded pictures are the same: parameter sets are only moved or repeated between
pictures (and non-VCL NAL units), never inside the slice data, and a repeated parameter
set has the content of the last one of its id before that point.
"""

from __future__ import annotations

from ..errors import ConformanceViolation
from .annexb import PPS_NUT, SPS_NUT, VPS_NUT, join_nal_units, split_nal_units_with_offsets
from . import params


def _ids(unit: bytes, nal_unit_type: int) -> tuple[int, int | None]:
    """(own id, id referred to) of a parameter set NAL unit."""
    if nal_unit_type == VPS_NUT:
        return unit[2] >> 4, None
    found = params.parameter_set(unit, nal_unit_type, 0, "feed")
    if nal_unit_type == SPS_NUT:
        return found.sps_seq_parameter_set_id, unit[2] >> 4
    return found.pps_pic_parameter_set_id, found.pps_seq_parameter_set_id


def needs_reordering(payload: bytes) -> bool:
    """Whether FFmpeg would discard a parameter set of ``payload`` (see the module doc)."""
    seen = {VPS_NUT: {}, SPS_NUT: {}, PPS_NUT: {}}
    try:
        for _, unit in split_nal_units_with_offsets(payload):
            t = (unit[0] >> 1) & 0x3F if unit else -1
            if t not in seen:
                continue
            own, parent = _ids(unit, t)
            if t == SPS_NUT:
                if parent not in seen[VPS_NUT]:
                    return True
                old = seen[SPS_NUT].get(own)
                if old is not None and old != unit and any(
                        ref == own for ref, _ in seen[PPS_NUT].values()):
                    return True       # changed content: FFmpeg drops this SPS's PPSs
                seen[SPS_NUT][own] = unit
            elif t == PPS_NUT:
                if parent not in seen[SPS_NUT]:
                    return True
                seen[PPS_NUT][own] = (parent, unit)
            else:
                seen[VPS_NUT][own] = unit
    except ConformanceViolation:
        return False     # malformed: decoded as it is, and refused by clause 10.1 anyway
    return False


def in_decoder_order(payload: bytes) -> bytes:
    """``payload`` with its parameter sets sent again where FFmpeg needs them."""
    if not needs_reordering(payload):
        return payload
    current = {VPS_NUT: {}, SPS_NUT: {}, PPS_NUT: {}}
    changed = False
    out: list[bytes] = []
    for _, unit in split_nal_units_with_offsets(payload):
        t = (unit[0] >> 1) & 0x3F
        if t in current:
            current[t][_ids(unit, t)[0]] = unit
            changed = True
            continue
        if changed:
            for kind in (VPS_NUT, SPS_NUT, PPS_NUT):
                out.extend(current[kind][k] for k in sorted(current[kind]))
            changed = False
        out.append(unit)
    return join_nal_units(out)
