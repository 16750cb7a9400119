"""refcodec.hevc.params: HEVC parameter sets and the clause 10 payload constraints.

Real payloads come from libx265 (marked hevc); the cases libx265 cannot produce use NAL
units written here bit by bit, with an Exp-Golomb writer independent of the parser's reader.
"""

import dataclasses
import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcodec.errors import ConformanceViolation
from refcodec.hevc import annexb
from refcodec.hevc.params import (UE_MAX, ProfileTierLevel, RbspReader, check_payload,
                                  parse_parameter_sets)

# ---- an independent bit writer: bits as '0'/'1' strings ----


def ue(value: int) -> str:
    """ue(v) (H.265 9.2): leading zeros, then value + 1 in binary."""
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def se(value: int) -> str:
    """se(v) (Table 9-3): k > 0 is codeNum 2k - 1, k <= 0 is codeNum -2k."""
    return ue(2 * value - 1 if value > 0 else -2 * value)


def u(bits: int, value: int) -> str:
    """u(n): value in n bits (none for n = 0)."""
    return format(value, f"0{bits}b") if bits else ""


def f(*flags: int) -> str:
    return "".join("1" if x else "0" for x in flags)


def to_bytes(bits: str) -> bytes:
    """Bits padded with zeros to whole bytes."""
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def nal(nal_unit_type: int, rbsp_bits: str) -> bytes:
    """A NAL unit: header (layer 0, TemporalId 0), the RBSP with rbsp_trailing_bits and
    emulation_prevention_three_bytes (7.4.2)."""
    data = to_bytes(rbsp_bits + "1")
    out, zeros = bytearray(), 0
    for byte in data:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes([nal_unit_type << 1, 1]) + bytes(out)


MONO_INTRA = (1, 0, 0, 1, 1, 1, 1, 0, 1)   # libx265's 12-bit flags: 12bit..lower_bit_rate
MONOCHROME_12 = (1, 0, 0, 1, 1, 1, 0, 0, 1)


def ptl(profile_idc=4, compat=None, rext=MONOCHROME_12, sub_layers=(), level=93) -> str:
    """profile_tier_level(1, len(sub_layers)) (7.3.3); sub_layers holds
    (sub_layer_profile_present_flag, sub_layer_level_present_flag) pairs."""
    compat = 1 << (31 - profile_idc) if compat is None else compat
    bits = u(2, 0) + f(0) + u(5, profile_idc) + u(32, compat) + f(1, 0, 0, 1)
    bits += (f(*rext) + "0" * 34) if rext is not None else "0" * 43
    bits += f(0) + u(8, level)
    bits += "".join(f(p, lv) for p, lv in sub_layers)
    if sub_layers:
        bits += "00" * (8 - len(sub_layers))
    for p, lv in sub_layers:
        bits += "10" * 44 if p else ""      # arbitrary sub-layer profile bits
        bits += u(8, 90) if lv else ""
    return bits


def vps(profile=None, max_sub_layers_minus1=0) -> bytes:
    """video_parameter_set_rbsp() (7.3.2.1) of one layer without timing information."""
    profile = ptl() if profile is None else profile
    bits = u(4, 0) + f(1, 1) + u(6, 0) + u(3, max_sub_layers_minus1) + f(1) + u(16, 0xFFFF)
    bits += profile + f(0) + ue(7) + ue(3) + ue(0)   # sub-layer ordering of the highest only
    bits += u(6, 0) + ue(0) + f(0, 0)   # vps_max_layer_id, one layer set, no timing, no ext.
    return nal(32, bits)


def rps_bits(index: int, rps) -> str:
    """st_ref_pic_set(index) (7.3.7): ("explicit", [(delta_poc_s0_minus1, used)...],
    [(delta_poc_s1_minus1, used)...]) or ("inter", delta_rps_sign, abs_delta_rps_minus1,
    [(used_by_curr_pic_flag, use_delta_flag)...])."""
    bits = ""
    if rps[0] == "inter":
        _, sign, abs_minus1, flags = rps
        bits += f(1) + f(sign) + ue(abs_minus1)
        for used, use_delta in flags:
            bits += f(used) + ("" if used else f(use_delta))
        return bits
    _, negative, positive = rps
    if index:
        bits += f(0)
    bits += ue(len(negative)) + ue(len(positive))
    for delta_minus1, used in negative + positive:
        bits += ue(delta_minus1) + f(used)
    return bits


def scaling_list_data() -> str:
    """scaling_list_data() (7.3.4): explicit lists for the first matrix of each size, the
    others predicted."""
    bits = ""
    for size_id in range(4):
        for matrix_id in range(0, 6, 3 if size_id == 3 else 1):
            if matrix_id == 0:
                bits += f(1) + (se(8) if size_id > 1 else "")
                bits += "".join(se(1 if i % 2 else -1) for i in range(min(64, 16 << 2 * size_id)))
            else:
                bits += f(0) + ue(1)
    return bits


def hrd_parameters(max_sub_layers_minus1: int) -> str:
    """hrd_parameters(1, ...) (E.2.2) with NAL and VCL HRDs and sub-picture parameters."""
    bits = f(1, 1) + f(1) + u(8, 10) + u(5, 3) + f(1) + u(5, 4)   # sub_pic parameters
    bits += u(4, 2) + u(4, 3) + u(4, 1) + u(5, 23) + u(5, 23) + u(5, 23)
    for i in range(max_sub_layers_minus1 + 1):
        if i % 2 == 0:   # not fixed: low_delay_hrd_flag 0, two CPBs
            bits += f(0, 0) + f(0) + ue(1)
            cpbs = 2
        else:            # fixed rate: elemental_duration_in_tc_minus1, one CPB
            bits += f(1) + ue(3) + ue(0)
            cpbs = 1
        for _ in range(2):   # NAL, then VCL
            bits += "".join(ue(1000) + ue(2000) + ue(30) + ue(40) + f(1) for _ in range(cpbs))
    return bits


def vui_parameters(max_sub_layers_minus1: int) -> str:
    """vui_parameters() (E.2.1) with every optional part present."""
    bits = f(1) + u(8, 255) + u(16, 4) + u(16, 3)       # aspect ratio, EXTENDED_SAR
    bits += f(1, 1)                                      # overscan
    bits += f(1) + u(3, 5) + f(1) + f(1) + u(24, 0x010101)   # video signal, colour
    bits += f(1) + ue(2) + ue(3)                         # chroma location
    bits += f(0, 0, 0)
    bits += f(1) + ue(1) + ue(2) + ue(3) + ue(4)         # default display window
    bits += f(1) + u(32, 1) + u(32, 25) + f(1) + ue(7) + f(1)   # timing, hrd
    bits += hrd_parameters(max_sub_layers_minus1)
    bits += f(1) + f(0, 1, 1) + ue(0) + ue(2) + ue(1) + ue(15) + ue(15)   # restrictions
    return bits


def sps_bits(*, profile=None, max_sub_layers_minus1=0, sub_layer_ordering=True, sps_id=0,
             chroma_format_idc=0, width=64, height=48, window=None, bit_depth=8,
             scaling=False, pcm=False, rps=(), long_term=(), vui=False, range_ext=None,
             extension_4bits=0, extension_data="", ctb_log2=4, transform_depth=1) -> str:
    """seq_parameter_set_rbsp() (7.3.2.2): min CB 8, TB 4 to Min(CtbSizeY, 32).  window is
    (left, right, top, bottom); range_ext the nine sps_range_extension() flags."""
    bits = u(4, 0) + u(3, max_sub_layers_minus1) + f(1)
    bits += ptl() if profile is None else profile
    bits += ue(sps_id) + ue(chroma_format_idc) + (f(0) if chroma_format_idc == 3 else "")
    bits += ue(width) + ue(height)
    bits += f(window is not None) + "".join(ue(x) for x in window or ())
    bits += ue(bit_depth - 8) + ue(bit_depth - 8) + ue(4)
    bits += f(sub_layer_ordering)
    for i in range(0 if sub_layer_ordering else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        bits += ue(4 + i) + ue(i) + ue(0)
    bits += ue(0) + ue(ctb_log2 - 3) + ue(0) + ue(min(ctb_log2, 5) - 2)
    bits += ue(transform_depth) + ue(transform_depth)
    bits += f(scaling) + (f(1) + scaling_list_data() if scaling else "")
    bits += f(0, 0)   # amp, sao
    bits += f(pcm) + (u(4, 7) + u(4, 7) + ue(0) + ue(1) + f(1) if pcm else "")
    bits += ue(len(rps)) + "".join(rps_bits(i, r) for i, r in enumerate(rps))
    bits += f(bool(long_term))
    if long_term:
        bits += ue(len(long_term)) + "".join(u(8, lsb) + f(used) for lsb, used in long_term)
    bits += f(1, 1)   # temporal mvp, strong intra smoothing
    bits += f(vui) + (vui_parameters(max_sub_layers_minus1) if vui else "")
    extension = range_ext is not None or extension_4bits
    bits += f(extension)
    if extension:
        bits += f(range_ext is not None, 0, 0, 0) + u(4, extension_4bits)
    bits += f(*range_ext) if range_ext is not None else ""
    return bits + extension_data


def sps(**kwargs) -> bytes:
    return nal(33, sps_bits(**kwargs))


def pps(*, sps_id=0, transquant_bypass=0, init_qp_minus26=-3) -> bytes:
    """pic_parameter_set_rbsp() (7.3.2.3.1), with nothing after transquant_bypass."""
    bits = ue(5) + ue(sps_id) + f(0, 0) + u(3, 0) + f(0, 0) + ue(0) + ue(0)
    bits += se(init_qp_minus26) + f(0, 0) + f(1) + ue(1) + se(-2) + se(3) + f(0, 0, 0)
    bits += f(transquant_bypass) + f(0, 0, 0, 0, 0, 0, 0)
    return nal(34, bits)


def idr_slice(first: bool = True) -> bytes:
    """An IDR_W_RADL slice segment NAL unit (only its first bit is read)."""
    return bytes([19 << 1, 1, 0x80 if first else 0x40, 0x55, 0xAA])


def payload(*units: bytes) -> bytes:
    return annexb.join_nal_units(list(units))


def hand_payload(sps_unit=None, pps_unit=None, pictures=2) -> bytes:
    return payload(vps(), sps() if sps_unit is None else sps_unit,
                   pps() if pps_unit is None else pps_unit,
                   *[idr_slice() for _ in range(pictures)])


def clauses(violations) -> list[str]:
    return [v.clause for v in violations]


# ---- Exp-Golomb: the writer above against RbspReader ----

def test_exp_golomb_writer_matches_table_9_2():
    assert [ue(v) for v in range(5)] == ["1", "010", "011", "00100", "00101"]
    assert [se(v) for v in (0, 1, -1, 2, -2)] == ["1", "010", "011", "00100", "00101"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("ue"), st.integers(0, UE_MAX)),
                          st.tuples(st.just("se"), st.integers(-(2**31 - 1), 2**31 - 1)),
                          st.tuples(st.just("u"), st.integers(0, 2**12 - 1))),
                min_size=1, max_size=20))
def test_reader_decodes_what_the_writer_encodes(items):
    bits = "".join(ue(v) if kind == "ue" else se(v) if kind == "se" else u(12, v)
                   for kind, v in items)
    r = RbspReader(to_bytes(bits), offset=0, path="x")
    for kind, value in items:
        if kind == "ue":
            assert r.ue("e") == value
        elif kind == "se":
            assert r.se("e", -(2**31), 2**31) == value
        else:
            assert r.u(12, "e") == value


def test_reader_errors_name_the_element():
    r = RbspReader(to_bytes(ue(9)), offset=7, path="hevc_payload.sps[0]")
    with pytest.raises(ConformanceViolation) as info:
        r.ue("chroma_format_idc", 3)
    assert (info.value.clause, info.value.offset, info.value.path) == \
        ("10.1", 7, "hevc_payload.sps[0].chroma_format_idc")
    assert info.value.message == "chroma_format_idc shall be in the range 0 to 3, got 9"
    with pytest.raises(ConformanceViolation, match="runs past the end"):
        RbspReader(b"\x00\x01", offset=0, path="x").ue("e")   # 15 zeros: code cut short
    # a huge code is reported by its size, without printing the number
    r = RbspReader(to_bytes("0" * 5000 + "1" * 5001), offset=0, path="x")
    with pytest.raises(ConformanceViolation, match="got a 5001-bit value"):
        r.ue("e")


# ---- profile_name (Table A.2) ----

BASE_PTL = ProfileTierLevel(0, 0, 4, 1 << 27, 1, 0, 0, 1, *MONOCHROME_12, 93)


def rext_ptl(flags, **changes):
    names = ("general_max_12bit_constraint_flag", "general_max_10bit_constraint_flag",
             "general_max_8bit_constraint_flag", "general_max_422chroma_constraint_flag",
             "general_max_420chroma_constraint_flag", "general_max_monochrome_constraint_flag",
             "general_intra_constraint_flag", "general_one_picture_only_constraint_flag",
             "general_lower_bit_rate_constraint_flag")
    return dataclasses.replace(BASE_PTL, **dict(zip(names, flags)), **changes)


@pytest.mark.parametrize("flags, name", [
    ((1, 1, 1, 1, 1, 1, 0, 0, 1), "Monochrome"),
    ((1, 1, 0, 1, 1, 1, 0, 0, 1), "Monochrome 10"),
    (MONOCHROME_12, "Monochrome 12"),
    ((0, 0, 0, 1, 1, 1, 0, 0, 1), "Monochrome 16"),
    ((1, 0, 0, 1, 1, 0, 0, 0, 1), "Main 12"),
    ((1, 1, 0, 1, 0, 0, 0, 0, 1), "Main 4:2:2 10"),
    ((1, 1, 1, 0, 0, 0, 0, 0, 1), "Main 4:4:4"),
    ((1, 1, 1, 1, 1, 0, 1, 0, 0), "Main Intra"),
    ((0, 0, 0, 0, 0, 0, 1, 0, 1), "Main 4:4:4 16 Intra"),
    ((1, 1, 1, 0, 0, 0, 1, 1, 0), "Main 4:4:4 Still Picture"),
    ((1, 1, 1, 1, 1, 1, 0, 0, 0), "unknown"),   # Monochrome needs lower_bit_rate 1
    (MONO_INTRA, "unknown"),                    # libx265 all-intra: no Table A.2 row
])
def test_profile_name_format_range_extensions(flags, name):
    assert rext_ptl(flags).profile_name == name


def test_profile_name_version_1_profiles_and_fallbacks():
    none = (0,) * 9
    assert rext_ptl(none, general_profile_idc=1, general_profile_compatibility_flags=3 << 29) \
        .profile_name == "Main"
    assert rext_ptl(none, general_profile_idc=2).profile_name == "Main 10"
    assert rext_ptl((0,) * 7 + (1, 0), general_profile_idc=2).profile_name == \
        "Main 10 Still Picture"
    assert rext_ptl(none, general_profile_idc=3).profile_name == "Main Still Picture"
    # general_profile_idc 0: named from the compatibility flags
    assert rext_ptl(MONOCHROME_12, general_profile_idc=0).profile_name == "Monochrome 12"
    assert rext_ptl(MONOCHROME_12, general_profile_space=1).profile_name == "unknown"
    assert rext_ptl(none, general_profile_idc=9, general_profile_compatibility_flags=0) \
        .profile_name == "unknown"


# ---- real payloads from libx265 ----

@functools.lru_cache(maxsize=None)
def encode(bit_depth: int, lossless: bool, height: int, width: int, count: int) -> bytes:
    from refcodec.hevc.pyav import PyAVBackend
    rng = np.random.default_rng(bit_depth * 1000 + height + width + count)
    pictures = rng.integers(0, 2**bit_depth, (count, height, width)).astype(np.uint16)
    data, hashes = PyAVBackend().encode_pictures(pictures, bit_depth, 30, lossless, "ultrafast")
    assert len(hashes) == count
    return data


REAL = [(bd, lossless, h, w, count) for bd in (8, 10, 12) for lossless in (False, True)
        for (h, w), count in (((16, 16), 1), ((24, 40), 3), ((64, 48), 2))]


@pytest.mark.hevc
@pytest.mark.parametrize("bit_depth, lossless, height, width, count", REAL)
def test_libx265_payloads(bit_depth, lossless, height, width, count):
    data = encode(bit_depth, lossless, height, width, count)
    sets = parse_parameter_sets(data)
    assert len(sets.vps) == len(sets.sps) == len(sets.pps) == 1
    assert sets.num_pictures == count
    offset, s = sets.sps[0]
    assert data[offset - 3:offset] == b"\x00\x00\x01" and data[offset] >> 1 == 33
    assert (s.chroma_format_idc, s.bit_depth, s.bit_depth_chroma_minus8 + 8) == \
        (0, bit_depth, bit_depth)
    assert (s.pic_width_in_luma_samples, s.pic_height_in_luma_samples) == (width, height)
    assert (s.output_width, s.output_height) == (width, height)
    ptl_ = s.profile_tier_level
    assert ptl_ == sets.vps[0][1].profile_tier_level
    assert ptl_.general_profile_idc == 4 and ptl_.profile_compatibility_flag(4)
    assert ptl_.general_max_monochrome_constraint_flag == 1
    # libx265 sets the bit depth constraints of its bit depth and, with keyint=1, the intra
    # constraint, a combination Table A.2 has no Monochrome profile for
    assert (ptl_.general_max_12bit_constraint_flag, ptl_.general_max_10bit_constraint_flag,
            ptl_.general_max_8bit_constraint_flag) == \
        {8: (1, 1, 1), 10: (1, 1, 0), 12: (1, 0, 0)}[bit_depth]
    assert ptl_.general_intra_constraint_flag == 1
    assert ptl_.profile_name == "unknown"
    assert s.sps_range_extension_flag == 0 and s.implicit_rdpcm_enabled_flag == 0
    assert sets.pps[0][1].transquant_bypass_enabled_flag == lossless
    assert sets.pps[0][1].pps_seq_parameter_set_id == s.sps_seq_parameter_set_id

    expected = dict(bit_depth=bit_depth, picture_width=width, picture_height=height,
                    num_pictures=count)
    assert check_payload(data, **expected) == []
    for change, clause in ((dict(bit_depth=bit_depth + 2), "10.4"),
                           (dict(picture_width=width + 8), "10.5"),
                           (dict(picture_height=height - 8), "10.5"),
                           (dict(num_pictures=count + 1), "10.6")):
        found = check_payload(data, **{**expected, **change})
        assert clauses(found) == [clause], found
    found = check_payload(data, **{**expected, "bit_depth": 8 + (bit_depth == 8) * 2,
                                   "num_pictures": 0})
    assert clauses(found) == ["10.4", "10.6"]


@pytest.mark.hevc
def test_hash_sei_and_repeated_parameter_sets_do_not_change_the_count():
    from refcodec.hevc.pyav import encode_access_units
    pictures = np.random.default_rng(5).integers(0, 256, (3, 16, 16)).astype(np.uint16)
    raw = b"".join(encode_access_units(pictures, 8, 30, False, "ultrafast"))
    types = [annexb.nal_unit_type(x) for x in annexb.split_nal_units(raw)]
    assert types.count(annexb.SUFFIX_SEI_NUT) == 3 and types.count(33) == 3
    sets = parse_parameter_sets(raw)
    assert (sets.num_pictures, len(sets.sps)) == (3, 3)
    expected = dict(bit_depth=8, picture_width=16, picture_height=16, num_pictures=3)
    assert check_payload(raw, **expected) == []
    # an access unit delimiter and a prefix SEI before each picture of the repacked payload
    units = annexb.split_nal_units(encode(8, False, 24, 40, 3))
    extra = [bytes([35 << 1, 1, 0x50]), bytes([39 << 1, 1, 5, 1, 0xAA, 0x80])]
    mixed = units[:3] + [x for unit in units[3:] for x in extra + [unit]]
    assert check_payload(annexb.join_nal_units(mixed), **{**expected, "picture_width": 40,
                                                          "picture_height": 24}) == []


# ---- hand-built parameter sets ----

def test_hand_built_payload_conforms():
    data = hand_payload()
    sets = parse_parameter_sets(data)
    s = sets.sps[0][1]
    assert s.profile_tier_level.profile_name == "Monochrome 12"
    assert (s.pic_width_in_luma_samples, s.log2_diff_max_min_luma_coding_block_size) == (64, 1)
    p = sets.pps[0][1]
    assert (p.pps_pic_parameter_set_id, p.init_qp_minus26, p.cu_qp_delta_enabled_flag,
            p.diff_cu_qp_delta_depth, p.pps_cb_qp_offset, p.pps_cr_qp_offset) == \
        (5, -3, 1, 1, -2, 3)
    assert sets.first_vcl_offset == data.index(idr_slice()) and sets.num_pictures == 2
    assert check_payload(data, bit_depth=8, picture_width=64, picture_height=48,
                         num_pictures=2) == []


def test_every_optional_sps_structure_parses_in_sync():
    """Sub-layers, scaling lists, PCM, short- and long-term reference sets, VUI with HRD and
    the range extension: any slip would misread the range extension flags or the trailing
    bits."""
    flags = (1, 0, 1, 1, 0, 1, 0, 0, 1)
    rps = [("explicit", [(0, 1), (1, 1)], [(1, 1)]),            # S0 -1 -3, S1 +2
           ("inter", 1, 0, [(1, 1), (0, 0), (1, 1), (1, 1)]),   # deltaRps -1
           ("explicit", [], [])]
    bits = sps_bits(profile=ptl(sub_layers=[(1, 1), (0, 1), (1, 0)]), max_sub_layers_minus1=3,
                    scaling=True, pcm=True, rps=rps, long_term=[(5, 1), (9, 0)], vui=True,
                    range_ext=flags)
    s = parse_parameter_sets(payload(nal(33, bits))).sps[0][1]
    assert s.sps_max_sub_layers_minus1 == 3
    assert s.sps_max_dec_pic_buffering_minus1 == (4, 5, 6, 7)
    assert s.sps_max_num_reorder_pics == (0, 1, 2, 3)
    assert s.profile_tier_level.general_level_idc == 93
    assert (s.sps_scaling_list_data_present_flag, s.pcm_enabled_flag,
            s.pcm_sample_bit_depth_luma_minus1, s.log2_diff_max_min_pcm_luma_coding_block_size,
            s.pcm_loop_filter_disabled_flag) == (1, 1, 7, 1, 1)
    assert s.num_short_term_ref_pic_sets == 3
    first, second, third = s.st_ref_pic_sets
    assert (first.delta_poc_s0, first.delta_poc_s1) == ((-1, -3), (2,))
    # 7.4.8 by hand: -1-1 and -3-1 from S0, deltaRps -1 itself, 2-1; entry 1 (-3) dropped
    assert (second.delta_poc_s0, second.used_by_curr_pic_s0) == ((-1, -2), (1, 1))
    assert (second.delta_poc_s1, second.used_by_curr_pic_s1) == ((1,), (1,))
    assert third.num_delta_pocs == 0
    assert (s.long_term_ref_pics_present_flag, s.num_long_term_ref_pics_sps) == (1, 2)
    assert s.vui_parameters_present_flag == 1
    assert (s.sps_range_extension_flag, s.transform_skip_rotation_enabled_flag,
            s.transform_skip_context_enabled_flag, s.implicit_rdpcm_enabled_flag,
            s.explicit_rdpcm_enabled_flag, s.extended_precision_processing_flag,
            s.intra_smoothing_disabled_flag, s.high_precision_offsets_enabled_flag,
            s.persistent_rice_adaptation_enabled_flag,
            s.cabac_bypass_alignment_enabled_flag) == (1, *flags)
    # one bit less or more before the trailing bits is caught
    for broken in (bits[:-1], bits + "0"):
        with pytest.raises(ConformanceViolation, match="rbsp_stop_one_bit|after rbsp_stop"):
            parse_parameter_sets(payload(nal(33, broken)))


@pytest.mark.hevc
@pytest.mark.parametrize("bit_depth", [8, 12])
def test_ffmpeg_agrees_with_the_hand_built_parameter_sets(bit_depth):
    """A hand-built VPS and SPS with sub-layers, VUI/HRD, scaling lists, reference picture
    sets and an all-zero range extension replace libx265's in a lossless payload (CTB 32,
    transform depth 0 as libx265 codes it): FFmpeg decodes the same pictures, and an SPS that
    changes the coding tools changes them, so the writer follows the syntax FFmpeg reads."""
    from refcodec.hevc.pyav import decode_frames
    units = annexb.split_nal_units(encode(bit_depth, True, 48, 64, 2))
    reference = [x.to_ndarray() for x in decode_frames(annexb.join_nal_units(units))]
    profile = ptl(rext=MONO_INTRA, sub_layers=[(1, 1), (0, 1), (1, 0)])
    common = dict(bit_depth=bit_depth, ctb_log2=5, transform_depth=0, profile=profile,
                  max_sub_layers_minus1=3)
    rps = [("explicit", [(0, 1), (1, 1)], [(1, 1)]), ("inter", 1, 0, [(1, 1)] * 4)]

    def built(range_ext):
        return payload(vps(profile, 3), sps(vui=True, scaling=True, rps=rps, long_term=[(5, 1)],
                                            range_ext=range_ext, **common), *units[2:])

    data = built((0,) * 9)
    assert check_payload(data, bit_depth=bit_depth, picture_width=64, picture_height=48,
                         num_pictures=2) == []
    same = [x.to_ndarray() for x in decode_frames(data)]
    assert len(same) == 2 and all(np.array_equal(a, b) for a, b in zip(same, reference))
    rdpcm = [x.to_ndarray() for x in decode_frames(built((0, 0, 1, 0, 0, 0, 0, 0, 0)))]
    assert not all(np.array_equal(a, b) for a, b in zip(rdpcm, reference))


def test_inter_rps_derivation_keeps_all_used_entries():
    rps = [("explicit", [(0, 1), (1, 0)], [(1, 1)]),
           ("inter", 1, 0, [(1, 1), (0, 1), (1, 1), (0, 1)])]   # deltaRps -1, all kept
    s = parse_parameter_sets(payload(sps(rps=rps))).sps[0][1]
    derived = s.st_ref_pic_sets[1]
    assert (derived.delta_poc_s0, derived.used_by_curr_pic_s0) == ((-1, -2, -4), (0, 1, 0))
    assert (derived.delta_poc_s1, derived.used_by_curr_pic_s1) == ((1,), (1,))


def test_sub_layer_ordering_info_absent_is_inferred():
    s = parse_parameter_sets(payload(sps(max_sub_layers_minus1=2, sub_layer_ordering=False,
                                         profile=ptl(sub_layers=[(0, 0), (0, 0)])))).sps[0][1]
    assert s.sps_max_dec_pic_buffering_minus1 == (6, 6, 6)
    assert s.sps_max_num_reorder_pics == (2, 2, 2)


def test_unparsed_sps_extensions_skip_the_trailing_bits_check():
    s = parse_parameter_sets(payload(sps(extension_4bits=5, extension_data="1011"))).sps[0][1]
    assert (s.sps_extension_present_flag, s.sps_extension_4bits) == (1, 5)
    assert s.implicit_rdpcm_enabled_flag == 0


def test_chroma_format_idc_1_violates_10_3():
    found = check_payload(hand_payload(sps(chroma_format_idc=1)), bit_depth=8,
                          picture_width=64, picture_height=48, num_pictures=2)
    assert clauses(found) == ["10.3"]
    assert found[0].message == "chroma_format_idc shall be 0 (4:0:0), got 1"
    assert found[0].path == "hevc_payload.sps[0].chroma_format_idc"


def test_conformance_window_gives_the_output_size():
    data = hand_payload(sps(window=(1, 3, 0, 2)))
    s = parse_parameter_sets(data).sps[0][1]
    assert (s.output_width, s.output_height) == (60, 46)
    expected = dict(bit_depth=8, picture_width=60, picture_height=46, num_pictures=2)
    found = check_payload(data, **expected)   # clause 10.5: a window shall crop nothing
    assert clauses(found) == ["10.5"]
    assert found[0].message == ("the conformance window shall crop nothing (all four offsets "
                                "0), got conf_win_left_offset 1, conf_win_right_offset 3, "
                                "conf_win_bottom_offset 2")
    assert found[0].path == "hevc_payload.sps[0].conformance_window_flag"
    for window in ((0, 0, 0, 1), (1, 0, 0, 0)):     # any one offset is enough
        found = check_payload(hand_payload(sps(window=window)), bit_depth=8,
                              picture_width=64 - window[0], picture_height=48 - window[3],
                              num_pictures=2)
        assert clauses(found) == ["10.5"], window
    found = check_payload(hand_payload(sps()), **{**expected, "picture_width": 60})
    assert clauses(found) == ["10.5"]
    assert found[0].message == "the output picture size shall be 60x46, got 64x48"
    # format 1.2: a window of four zero offsets (as HM writes in every SPS) crops nothing
    zero = hand_payload(sps(window=(0, 0, 0, 0)))
    assert parse_parameter_sets(zero).sps[0][1].conformance_window_flag == 1
    assert check_payload(zero, **{**expected, "picture_width": 64, "picture_height": 48}) == []
    # 4:2:0 counts the offsets in chroma samples (SubWidthC = SubHeightC = 2)
    s = parse_parameter_sets(hand_payload(sps(chroma_format_idc=1, window=(1, 3, 0, 2)))) \
        .sps[0][1]
    assert (s.output_width, s.output_height) == (56, 44)


def test_range_extension_tools_violate_10_7():
    def found(range_ext, transquant_bypass):
        data = hand_payload(sps(range_ext=range_ext), pps(transquant_bypass=transquant_bypass))
        return check_payload(data, bit_depth=8, picture_width=64, picture_height=48,
                             num_pictures=2)

    implicit_rdpcm = (0, 0, 1, 0, 0, 0, 0, 0, 0)
    rotation = (1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert found(implicit_rdpcm, 0) == [] and found(rotation, 0) == []
    lossless = found(implicit_rdpcm, 1)
    assert clauses(lossless) == ["10.7"]
    assert lossless[0].path == "hevc_payload.sps[0].sps_range_extension.implicit_rdpcm_enabled_flag"
    assert lossless[0].message == ("implicit_rdpcm_enabled_flag shall be 0 when a PPS of the "
                                   "SPS has transquant_bypass_enabled_flag 1, got 1")
    assert clauses(found(rotation, 1)) == ["10.7"]
    assert clauses(found((0, 0, 0, 0, 1, 0, 0, 0, 1), 0)) == ["10.7", "10.7"]
    assert found((0, 1, 0, 1, 0, 1, 1, 1, 0), 1) == []   # the other tools are fine


@pytest.mark.parametrize("profile, clause_path", [
    (ptl(profile_idc=1, rext=None), "general_profile_idc"),
    (ptl(rext=(1, 0, 0, 1, 1, 0, 0, 0, 1)), "general_max_monochrome_constraint_flag"),
    (ptl(profile_idc=0, compat=1 << 27), None),          # compatibility flag 4 is enough
    (ptl(rext=MONO_INTRA), None),                        # libx265's flags
])
def test_profile_violates_10_2(profile, clause_path):
    found = check_payload(hand_payload(sps(profile=profile)), bit_depth=8, picture_width=64,
                          picture_height=48, num_pictures=2)
    if clause_path is None:
        assert found == []
    else:
        assert clauses(found) == ["10.2"]
        assert found[0].path == f"hevc_payload.sps[0].profile_tier_level.{clause_path}"


def test_parameter_sets_missing_before_the_first_picture():
    found = check_payload(payload(vps(), sps(), idr_slice(), pps(), idr_slice()), bit_depth=8,
                          picture_width=64, picture_height=48, num_pictures=2)
    assert clauses(found) == ["10.1"]
    assert found[0].message.endswith("missing: PPS")
    found = check_payload(payload(pps()), bit_depth=8, picture_width=64, picture_height=48,
                          num_pictures=0)
    assert [v.message.split("missing: ")[1] for v in found[:1]] == ["VPS, SPS"]
    assert clauses(found) == ["10.1", "10.1"]   # and the PPS refers to no SPS


def test_pps_referring_to_no_sps():
    found = check_payload(hand_payload(sps(sps_id=3)), bit_depth=8, picture_width=64,
                          picture_height=48, num_pictures=2)
    assert clauses(found) == ["10.1"]
    assert found[0].path == "hevc_payload.pps[0].pps_seq_parameter_set_id"


def test_slices_that_continue_a_picture_are_not_counted():
    data = payload(vps(), sps(), pps(), idr_slice(), idr_slice(first=False), idr_slice())
    assert parse_parameter_sets(data).num_pictures == 2


# ---- malformed payloads: the single 10.1 violation ----

def malformed(data: bytes) -> ConformanceViolation:
    with pytest.raises(ConformanceViolation) as info:
        parse_parameter_sets(data)
    found = check_payload(data, bit_depth=8, picture_width=64, picture_height=48,
                          num_pictures=2)
    assert len(found) == 1 and found[0].clause == info.value.clause == "10.1"
    assert (found[0].offset, found[0].path) == (info.value.offset, info.value.path)
    return info.value


@pytest.mark.parametrize("sps_kwargs, path, message", [
    (dict(chroma_format_idc=4), "chroma_format_idc",
     "chroma_format_idc shall be in the range 0 to 3, got 4"),
    (dict(width=0), "pic_width_in_luma_samples",
     "pic_width_in_luma_samples shall be in the range 1 to 65535, got 0"),
    (dict(height=65536), "pic_height_in_luma_samples",
     "pic_height_in_luma_samples shall be in the range 1 to 65535, got 65536"),
    (dict(width=60), "pic_width_in_luma_samples",
     "pic_width_in_luma_samples shall be a multiple of MinCbSizeY 8, got 60"),
    (dict(bit_depth=17), "bit_depth_luma_minus8",
     "bit_depth_luma_minus8 shall be in the range 0 to 8, got 9"),
    (dict(window=(32, 32, 0, 0)), "conf_win_right_offset",
     "the conformance window shall be narrower than pic_width_in_luma_samples 64"),
    (dict(rps=[("explicit", [(0, 1)] * 5, [])]), "st_ref_pic_set[0].num_negative_pics",
     "num_negative_pics shall be in the range 0 to 4, got 5"),
])
def test_out_of_range_sps_values(sps_kwargs, path, message):
    data = hand_payload(sps(**sps_kwargs))
    exc = malformed(data)
    assert exc.path == f"hevc_payload.sps[0].{path}"
    assert exc.message == message
    assert exc.offset == data.index(sps(**sps_kwargs))


def test_truncated_and_broken_units():
    good = sps()
    exc = malformed(payload(vps(), good[:12], pps()))
    assert exc.message.endswith("runs past the end of the NAL unit")
    assert exc.path.startswith("hevc_payload.sps[0].")
    assert malformed(b"\x01\x02" + hand_payload()).path == "hevc_payload"   # no start code
    assert malformed(b"").offset == 0
    exc = malformed(payload(vps(), bytes([0x80 | good[0]]) + good[1:]))
    assert exc.path == "hevc_payload.nal_unit[1].forbidden_zero_bit"
    assert exc.offset == 4 + len(vps()) + 4
    assert malformed(payload(bytes([good[0], 0]) + good[2:])).path.endswith(
        "nuh_temporal_id_plus1")
    assert malformed(b"\x00\x00\x01\x42").message.startswith("a NAL unit shall hold")
    assert malformed(payload(vps(), sps(), pps(), bytes([0x26, 0x01]))).path.endswith(
        "first_slice_segment_in_pic_flag")
    # repeated parameter sets are valid HEVC (raw libx265 output repeats them per picture)
    assert len(parse_parameter_sets(payload(*[sps()] * 40)).sps) == 40


def test_work_is_linear():
    many = b"\x00\x00\x01\x26\x01\x80" * 200_000
    assert parse_parameter_sets(many).num_pictures == 200_000
    # a SPS holding a megabyte of zeros: the Exp-Golomb reader stops at the end
    malformed(b"\x00\x00\x01" + sps()[:8] + b"\x00" * 1_000_000)


# ---- robustness: only ConformanceViolation ever escapes ----

def only_conformance_violations(data: bytes) -> None:
    try:
        sets = parse_parameter_sets(data)
        assert sets.num_pictures >= 0
    except ConformanceViolation as exc:
        assert exc.clause == "10.1" and isinstance(exc.offset, int) and str(exc)
    for violation in check_payload(data, bit_depth=8, picture_width=16, picture_height=16,
                                   num_pictures=1):
        assert isinstance(violation, ConformanceViolation) and str(violation)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    only_conformance_violations(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 19, 32, 33, 34, 39]), st.binary(max_size=120))
def test_arbitrary_units_after_a_start_code(nal_unit_type, body):
    only_conformance_violations(payload(vps(), bytes([nal_unit_type << 1, 1]) + body))


def mutated(base: bytes, draw) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_hand_built_payloads(data):
    base = hand_payload(sps(scaling=True, pcm=True, vui=True, rps=[
        ("explicit", [(0, 1)], [(2, 0)]), ("inter", 0, 1, [(1, 1), (0, 1), (0, 0)])],
        range_ext=(0,) * 9))
    only_conformance_violations(mutated(base, data.draw))


@pytest.mark.hevc
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_libx265_payloads(data):
    base = encode(10, True, 16, 16, 1)[:120]   # the parameter sets and a slice start
    only_conformance_violations(mutated(base, data.draw))


@pytest.mark.parametrize("qp", [0, 12, 22, 32, 42, 51])
def test_slice_qp_is_the_requested_qp(qp):
    """ipratio=1 keeps libx265 from coding I slices at QP - 3 (hevc-notes)."""
    from refcodec.hevc import pyav
    from refcodec.hevc.params import idr_slice_qps
    pics = np.random.default_rng(qp).integers(0, 256, (3, 16, 24)).astype(np.uint16)
    payload, _ = pyav.PyAVBackend().encode_pictures(pics, 8, qp, False, "ultrafast")
    assert idr_slice_qps(payload) == [qp] * 3


def test_slice_qp_reader_sees_the_ipratio_offset(monkeypatch):
    """Without ipratio=1 the slice QP differs: the check above can fail."""
    from refcodec.hevc import pyav
    from refcodec.hevc.params import idr_slice_qps
    plain = pyav.x265_params
    monkeypatch.setattr(pyav, "x265_params",
                        lambda qp, lossless, extra="":
                        plain(qp, lossless, extra).replace(":ipratio=1", ""))
    pics = np.random.default_rng(0).integers(0, 256, (2, 16, 16)).astype(np.uint16)
    payload, _ = pyav.PyAVBackend().encode_pictures(pics, 8, 22, False, "ultrafast")
    assert idr_slice_qps(payload) == [19, 19]


@given(st.binary(max_size=64))
def test_emulation_prevention_inverts_rbsp(data):
    """annexb.emulation_prevention (used to rebuild edited parameter sets) leaves no start
    code emulation and is undone by annexb.rbsp."""
    unit = annexb.emulation_prevention(data)
    assert b"\x00\x00\x00" not in unit and b"\x00\x00\x01" not in unit
    assert annexb.rbsp(b"\x40\x01" + unit) == data


# ---- the NAL unit walk and the parameter-set cache of parse_parameter_sets ----

def reference_walk(data: bytes):
    """What parse_parameter_sets reads of the NAL units, written plainly over
    annexb.split_nal_units_with_offsets: (num_pictures, first VCL offset, parameter-set
    offsets by type) or the violation's (message, offset, path)."""
    try:
        sets = parse_parameter_sets(data)
    except ConformanceViolation as exc:
        got = (exc.message, exc.offset, exc.path)
    else:
        got = (sets.num_pictures, sets.first_vcl_offset,
               [o for o, _ in sets.vps], [o for o, _ in sets.sps], [o for o, _ in sets.pps])
    rest = data.lstrip(b"\x00")
    if not (len(data) - len(rest) >= 2 and rest[:1] == b"\x01"):
        return got, ("the HEVC payload shall start with an Annex-B start code (0x000001)", 0,
                     "hevc_payload")
    pictures, first, offsets = 0, None, {32: [], 33: [], 34: []}
    for index, (offset, unit) in enumerate(annexb.split_nal_units_with_offsets(data)):
        where = f"hevc_payload.nal_unit[{index}]"
        if len(unit) < 2:
            return got, ("a NAL unit shall hold its two-byte header, got 1 byte", offset, where)
        if unit[0] & 0x80:
            return got, ("forbidden_zero_bit shall be 0, got 1", offset,
                         f"{where}.forbidden_zero_bit")
        if unit[1] & 7 == 0:
            return got, ("nuh_temporal_id_plus1 shall not be 0", offset,
                         f"{where}.nuh_temporal_id_plus1")
        layer = ((unit[0] & 1) << 5) | (unit[1] >> 3)
        if layer:
            return got, (f"nuh_layer_id shall be 0 (one HEVC layer), got {layer}", offset,
                         f"{where}.nuh_layer_id")
        t = (unit[0] >> 1) & 0x3F
        if t < 32:
            if len(unit) < 3:
                return got, ("a slice segment NAL unit shall hold a slice segment header",
                             offset, f"{where}.first_slice_segment_in_pic_flag")
            pictures += unit[2] >> 7
            first = offset if first is None else first
        elif t in offsets:
            try:   # the unit on its own, where its violation (if any) is the whole answer
                parse_parameter_sets(b"\x00\x00\x01" + unit)
            except ConformanceViolation as exc:
                name = {32: "vps", 33: "sps", 34: "pps"}[t]
                return got, (exc.message, offset,
                             exc.path.replace(f"{name}[0]", f"{name}[{len(offsets[t])}]", 1))
            offsets[t].append(offset)
    return got, (pictures, first, offsets[32], offsets[33], offsets[34])


_UNIT_HEADS = [bytes([t << 1, 1]) for t in (0, 1, 19, 21, 39, 40)] + [
    b"\x80\x01", b"\x26\x00", b"\x27\x01", b"\x26\x09"]


@st.composite
def annexb_streams(draw):
    """Annex-B streams of units with every kind of head and tail the walk distinguishes:
    zero third bytes, one- and two-byte units, trailing zero bytes, empty units, units that
    are parameter sets (good and cut short), 3- and 4-byte start codes."""
    parts = [draw(st.sampled_from([b"", b"\x00", b"\x00" * 5]))]
    for _ in range(draw(st.integers(0, 8))):
        parts.append(draw(st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01"])))
        kind = draw(st.integers(0, 5))
        if kind == 0:
            unit = draw(st.sampled_from([vps(), sps(), pps(), sps(width=128), sps()[:9]]))
        elif kind == 1:
            unit = b""
        else:
            unit = draw(st.sampled_from(_UNIT_HEADS))[:draw(st.integers(1, 2))]
            unit += draw(st.binary(max_size=4)).replace(b"\x00\x00", b"\x00\x05")
        parts.append(unit + b"\x00" * draw(st.integers(0, 2)))
    return b"".join(parts)


@settings(max_examples=500, deadline=None)
@given(annexb_streams())
def test_nal_unit_walk_matches_split_nal_units(data):
    got, expected = reference_walk(data)
    assert got == expected


def test_parameter_set_cache_follows_the_bytes(monkeypatch):
    from refcodec.hevc import params
    monkeypatch.setattr(params, "_parameter_set_cache", {})
    small, large = hand_payload(sps(width=64)), hand_payload(sps(width=128))
    for data, width in ((small, 64), (large, 128), (small, 64), (large, 128)):
        sets = parse_parameter_sets(data)
        assert sets.sps[0][1].pic_width_in_luma_samples == width
    assert len(params._parameter_set_cache) == 4          # a VPS, a PPS, two SPSs
    # a cached unit at another offset: the offsets are the payload's own
    moved = payload(vps(), pps(), sps(width=64), idr_slice())
    sets = parse_parameter_sets(moved)
    assert sets.sps[0][0] == moved.index(sps(width=64)) and sets.pps[0][0] == moved.index(pps())
    # cached results equal fresh ones
    cached = parse_parameter_sets(small)
    monkeypatch.setattr(params, "_parameter_set_cache", {})
    assert parse_parameter_sets(small) == cached


def test_parameter_set_cache_is_bounded(monkeypatch):
    from refcodec.hevc import params
    monkeypatch.setattr(params, "_parameter_set_cache", {})
    for width in range(8, 8 * (params.PARAMETER_SET_CACHE_SIZE + 10), 8):
        assert parse_parameter_sets(hand_payload(sps(width=width))).sps[0][
            1].pic_width_in_luma_samples == width
        assert len(params._parameter_set_cache) <= params.PARAMETER_SET_CACHE_SIZE
    # a large SPS (its extension data is not parsed) is parsed every time, never kept
    big = sps(extension_4bits=5, extension_data="10" * 4 * params.PARAMETER_SET_CACHE_UNIT_BYTES)
    assert len(big) > params.PARAMETER_SET_CACHE_UNIT_BYTES
    params._parameter_set_cache.clear()
    assert parse_parameter_sets(payload(big)).sps[0][1].sps_extension_4bits == 5
    assert params._parameter_set_cache == {}


def test_parameter_set_cache_never_hides_a_violation(monkeypatch):
    from refcodec.hevc import params
    monkeypatch.setattr(params, "_parameter_set_cache", {})
    broken = sps(width=60)
    first = malformed(hand_payload(broken))
    again = malformed(hand_payload(broken))
    assert (again.message, again.offset, again.path) == (first.message, first.offset,
                                                         first.path)
    later = payload(vps(), sps(), sps(), broken, pps(), idr_slice(), idr_slice())
    exc = malformed(later)
    assert exc.offset == later.index(broken) and exc.path.startswith("hevc_payload.sps[2].")
    assert broken not in params._parameter_set_cache
