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
    """Whether FFmpeg would discard a parameter set of ``payload`` (see the module doc).
    Reads the parameter sets as refcodec.hevc.params finds them (parsed once per distinct
    NAL unit), not every NAL unit of the payload."""
    try:
        sets = params.parse_parameter_sets(payload)
    except ConformanceViolation:
        return False     # malformed: decoded as it is, and refused by clause 10.1 anyway
    events = sorted([(o, VPS_NUT, v) for o, v in sets.vps] + [(o, SPS_NUT, s) for o, s in sets.sps]
                    + [(o, PPS_NUT, p) for o, p in sets.pps], key=lambda e: e[0])
    vps_ids: set[int] = set()
    sps_by_id: dict = {}
    pps_refs: set[int] = set()
    for _, kind, record in events:
        if kind == VPS_NUT:
            vps_ids.add(record.vps_video_parameter_set_id)
        elif kind == SPS_NUT:
            if record.sps_video_parameter_set_id not in vps_ids:
                return True
            own = record.sps_seq_parameter_set_id
            if own in sps_by_id and sps_by_id[own] != record and own in pps_refs:
                return True       # changed content: FFmpeg drops this SPS's PPSs
            sps_by_id[own] = record
        else:
            if record.pps_seq_parameter_set_id not in sps_by_id:
                return True
            pps_refs.add(record.pps_seq_parameter_set_id)
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
