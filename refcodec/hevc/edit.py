"""HEVC parameter sets of an hevc_payload, rewritten bit by bit (the writing side of
``refcodec.hevc.params``, which reads them).

The conformance generator uses these edits to make invalid streams (clause 10): another
profile in profile_tier_level(), another chroma_format_idc, a conformance window, an
sps_range_extension(), a PPS naming a missing SPS.  ``edit_parameter_set`` does the NAL unit
work (RBSP without rbsp_trailing_bits, emulation prevention, the payload rebuilt); an edit
gets and returns the RBSP bits as a string of "0" and "1".

Only payloads laid out as refcodec writes them (libx265, one sub-layer) are supported; an
edit that does not apply raises ValueError.
"""

from __future__ import annotations

from collections.abc import Callable

from .annexb import (PPS_NUT, SPS_NUT, VPS_NUT, emulation_prevention, join_nal_units,
                     nal_unit_type, rbsp, split_nal_units)
from .params import RANGE_EXTENSION_FLAGS, parse_parameter_sets


def bit_string(data: bytes) -> str:
    """The bits of ``data``, most significant first, as a string of "0" and "1"."""
    return "".join(f"{b:08b}" for b in data)


def ue_bits(value: int) -> str:
    """The ue(v) code of ``value`` (H.265 9.2), as bits."""
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def read_ue(bits: str, pos: int) -> tuple[int, int]:
    """(value, position after it) of the ue(v) at ``pos``."""
    zeros = 0
    while bits[pos + zeros] == "0":
        zeros += 1
    end = pos + 2 * zeros + 1
    return int(bits[pos + zeros:end], 2) - 1, end


def edit_parameter_set(payload: bytes, nut: int, edit: Callable[[str], str]) -> bytes:
    """Rewrite every NAL unit of type ``nut`` of a payload: ``edit`` gets the RBSP bits
    without rbsp_trailing_bits and returns the new ones."""
    units = split_nal_units(payload)
    if join_nal_units(units) != payload:
        raise ValueError("the payload is not laid out as refcodec writes it")
    found = False
    for i, unit in enumerate(units):
        if nal_unit_type(unit) != nut:
            continue
        body = bit_string(rbsp(unit)).rstrip("0")[:-1]      # drop rbsp_trailing_bits
        new = edit(body) + "1"
        new += "0" * (-len(new) % 8)
        raw = int(new, 2).to_bytes(len(new) // 8, "big")
        units[i] = unit[:2] + emulation_prevention(raw)
        found = True
    if not found:
        raise ValueError(f"the payload has no NAL unit of type {nut}")
    return join_nal_units(units)


#: Bit positions of profile_tier_level() in the SPS and in the VPS RBSP.
SPS_PTL_POS, VPS_PTL_POS = 8, 32
#: Bit position of general_max_monochrome_constraint_flag, from the start of
#: profile_tier_level().
MONOCHROME_FLAG_POS = 49


def edit_ptl(payload: bytes, edit: Callable[[str], str]) -> bytes:
    """Apply ``edit`` to the 96 bits of the general profile_tier_level() of the VPS and SPS."""
    def at(start):
        def fn(body):
            return body[:start] + edit(body[start:start + 96]) + body[start + 96:]
        return fn
    return edit_parameter_set(edit_parameter_set(payload, VPS_NUT, at(VPS_PTL_POS)),
                              SPS_NUT, at(SPS_PTL_POS))


def sps_positions(body: str) -> dict[str, int]:
    """Bit positions of a few SPS elements (a single sub-layer, as libx265 writes)."""
    if int(body[4:7], 2) != 0:
        raise ValueError("the SPS has sub-layers")
    pos = {}
    _, p = read_ue(body, SPS_PTL_POS + 96)               # sps_seq_parameter_set_id
    pos["chroma_format_idc"] = p
    chroma, p = read_ue(body, p)
    if chroma == 3:
        p += 1                                           # separate_colour_plane_flag
    _, p = read_ue(body, p)                              # pic_width_in_luma_samples
    _, p = read_ue(body, p)                              # pic_height_in_luma_samples
    pos["conformance_window_flag"] = p
    return pos


def set_chroma_format(payload: bytes, chroma_format_idc: int) -> bytes:
    """The payload with ``chroma_format_idc`` in its SPS."""
    def edit(body):
        p = sps_positions(body)["chroma_format_idc"]
        _, end = read_ue(body, p)
        return body[:p] + ue_bits(chroma_format_idc) + body[end:]
    return edit_parameter_set(payload, SPS_NUT, edit)


def add_conformance_window(payload: bytes, offsets: tuple[int, int, int, int] = (0, 0, 0, 0)
                           ) -> bytes:
    """The payload with conformance_window_flag 1 and the conformance window ``offsets``
    (left, right, top, bottom) in its SPS (which shall have no conformance window)."""
    def edit(body):
        p = sps_positions(body)["conformance_window_flag"]
        if body[p] != "0":
            raise ValueError("the SPS already has a conformance window")
        return body[:p] + "1" + "".join(ue_bits(v) for v in offsets) + body[p + 1:]
    return edit_parameter_set(payload, SPS_NUT, edit)


def add_range_extension(payload: bytes, flags: dict[str, int]) -> bytes:
    """Give the SPS an sps_range_extension() with the named flags set (the SPS shall have
    sps_extension_present_flag 0, its last element)."""
    sps = parse_parameter_sets(payload).sps[0][1]
    if sps.sps_extension_present_flag:
        raise ValueError("the SPS already has extensions")
    ext = "".join(str(flags.get(name, 0)) for name in RANGE_EXTENSION_FLAGS)

    def edit(body):
        # sps_extension_present_flag 1, sps_range_extension_flag 1, three more flags and
        # sps_extension_4bits 0, then sps_range_extension()
        return body[:-1] + "1" + "1000" + "0000" + ext
    return edit_parameter_set(payload, SPS_NUT, edit)


def pps_refers_to(payload: bytes, sps_id: int) -> bytes:
    """The payload with pps_seq_parameter_set_id ``sps_id`` in its PPS."""
    def edit(body):
        _, p = read_ue(body, 0)                          # pps_pic_parameter_set_id
        _, end = read_ue(body, p)
        return body[:p] + ue_bits(sps_id) + body[end:]
    return edit_parameter_set(payload, PPS_NUT, edit)


def pps_before_sps(payload: bytes) -> bytes:
    """The payload with its first PPS moved before its first SPS (the order VPS, PPS, SPS,
    which H.265 allows: a parameter set need only be there when it is activated)."""
    units = split_nal_units(payload)
    kinds = [nal_unit_type(u) for u in units]
    if kinds[:3] != [VPS_NUT, SPS_NUT, PPS_NUT]:
        raise ValueError("the payload does not start with VPS, SPS, PPS")
    return join_nal_units([units[0], units[2], units[1]] + units[3:])


def changed_sps_before(payload: bytes, picture: int) -> bytes:
    """The payload with its parameter sets sent again before picture ``picture`` (counting
    from 0), in the order VPS, PPS, SPS, the SPS with another value of
    log2_max_pic_order_cnt_lsb_minus4: the content of SPS 0 changes between two coded video
    sequences.  Every picture shall be an IDR picture (which carries no POC LSBs), so the
    decoded pictures are the same."""
    units = split_nal_units(payload)
    vps = next(u for u in units if nal_unit_type(u) == VPS_NUT)
    pps = next(u for u in units if nal_unit_type(u) == PPS_NUT)
    firsts = [i for i, u in enumerate(units) if nal_unit_type(u) < 32 and u[2] & 0x80]
    if any(nal_unit_type(units[i]) not in (19, 20) for i in firsts):
        raise ValueError("every picture shall be an IDR picture")
    if not 0 < picture < len(firsts):
        raise ValueError(f"picture {picture} is not one of 1..{len(firsts) - 1}")

    def edit(body):
        p = sps_positions(body)["conformance_window_flag"]
        if body[p] != "0":
            raise ValueError("the SPS has a conformance window")
        _, p = read_ue(body, p + 1)                     # bit_depth_luma_minus8
        _, p = read_ue(body, p)                         # bit_depth_chroma_minus8
        value, end = read_ue(body, p)                   # log2_max_pic_order_cnt_lsb_minus4
        return body[:p] + ue_bits(12 if value != 12 else 0) + body[end:]
    changed = next(u for u in split_nal_units(edit_parameter_set(join_nal_units(
        [u for u in units if nal_unit_type(u) == SPS_NUT][:1]), SPS_NUT, edit)))
    at = firsts[picture]
    return join_nal_units(units[:at] + [vps, pps, changed] + units[at:])
