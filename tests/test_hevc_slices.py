"""refcodec.hevc.slices: slice segment headers, PicOrderCntVal, output order and the picture
hashes of the decoded picture hash SEIs in output order.

Real payloads come from shared/interop (HM, kvazaar, x265 CLI; skipped when absent), where
the reference is HM's decoded output (hm_decoded_planes_md5) and the pictures FFmpeg decodes
with one thread once they give HM's MD5.  The cases no encoder there writes (EOS, RASL
pictures of a first CRA, no_output_of_prior_pics_flag, long-term pictures, every inter
slice element) use NAL units written here bit by bit; their slice data is never read.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcodec.errors import ConformanceViolation
from refcodec.hevc import annexb, params, slices

from test_hevc_params import f, se, u, ue

# ---- shared/interop ----

INTEROP = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "interop",
                            Path("/work/shared/interop")) if p.is_dir()), None)
needs_interop = pytest.mark.skipif(INTEROP is None, reason="shared/interop is absent")
CASES = {c["name"]: c for c in json.loads((INTEROP / "cases.json").read_text())["cases"]} \
    if INTEROP else {}


def payload_of(name: str) -> bytes:
    return (INTEROP / "payloads" / f"{name}.hevc").read_bytes()


def carries_md5_seis(name: str) -> bool:
    """Any MD5 decoded picture hash SEI, found without refcodec.hevc.slices."""
    return any(annexb.picture_md5(u) for u in annexb.split_nal_units(payload_of(name)))


HASHED = [n for n, c in CASES.items() if c["chroma"] == "400" and carries_md5_seis(n)]
ALL = list(CASES) or ["(no interop data)"]


def ffmpeg_frames(payload: bytes, crop: bool = True) -> list[np.ndarray]:
    """FFmpeg with ONE thread (its slice threads mis-decode kvazaar's WPP payloads);
    ``crop=False`` keeps the samples outside the conformance window, which the hash SEIs
    cover."""
    import av
    ctx = av.CodecContext.create("hevc", "r")
    ctx.thread_type = "NONE"
    ctx.thread_count = 1
    if not crop:
        ctx.options = {"apply_cropping": "0"}
    frames = [f for p in ctx.parse(payload) + ctx.parse(None) for f in ctx.decode(p)]
    frames += ctx.decode(None)
    return [f.to_ndarray() for f in frames]


def sample_bytes(picture: np.ndarray, bit_depth: int) -> bytes:
    return np.ascontiguousarray(picture, dtype=np.uint8 if bit_depth == 8 else "<u2").tobytes()


def hm_pictures_md5s(name: str) -> list[bytes] | None:
    """MD5 of each picture HM decodes (uncropped: as the hash SEIs count), from FFmpeg's
    pictures once their concatenation (cropped) is HM's output.  Where FFmpeg decodes the
    payload wrongly (lossless with implicit RDPCM, clause 10.7), from a payload of another
    case with the same HM output and no window."""
    case = CASES[name]
    bits = case["bit_depth"]
    payload = payload_of(name)
    cropped = ffmpeg_frames(payload)
    if hashlib.md5(b"".join(sample_bytes(p, bits) for p in cropped)).hexdigest() == \
            case["hm_decoded_planes_md5"]:
        return [hashlib.md5(sample_bytes(p, bits)).digest()
                for p in ffmpeg_frames(payload, crop=False)]
    for other, c in CASES.items():
        if other != name and c["hm_decoded_planes_md5"] == case["hm_decoded_planes_md5"]:
            pictures = ffmpeg_frames(payload_of(other))
            if hashlib.md5(b"".join(sample_bytes(p, bits) for p in pictures)).hexdigest() \
                    == case["hm_decoded_planes_md5"]:
                return [hashlib.md5(sample_bytes(p, bits)).digest() for p in pictures]
    return None


@needs_interop
def test_the_interop_payloads_with_md5_seis():
    """The 4:0:0 payloads with MD5 hash SEIs: HM's (but the one made with
    --SEIDecodedPictureHash=0), kvazaar's with --hash md5, x265's with --hash 1."""
    assert not {"hm_nohash_aud", "kvz_intra_q22", "kvz_inter_gop8_q27", "kvz_lossless",
                "x265_weighted_pb", "x265_slices_wpp_aud_nohash"} & set(HASHED)
    assert set(HASHED) >= set(
        ["crafted_nal48", "hm_confwin_explicit", "hm_intra_12bit_q22", "hm_intra_rext_q22",
         "hm_lossless_10bit", "hm_lossless_implicit_rdpcm", "hm_lossless_rextoff",
         "hm_lowdelayP_q27", "hm_ra_10bit_q27", "hm_randomaccess_rext_q32",
         "hm_tiles_slice_per_tile", "hm_wpp_dependent_slices", "kvz_wpp_slices_small",
         "kvz_wpp_slices_small_mono", "x265_inter_b3_q27", "x265_inter_opengop_q32_tiled",
         "x265_lossless_inter"])


@needs_interop
@pytest.mark.hevc
@pytest.mark.parametrize("name", HASHED or ["(no interop data)"])
def test_sei_md5s_in_output_order_are_hms_pictures(name):
    reference = hm_pictures_md5s(name)
    assert reference is not None, "no FFmpeg decoding gives HM's pictures"
    assert slices.picture_hashes_in_output_order(payload_of(name)) == reference


@needs_interop
@pytest.mark.parametrize("name", ALL)
def test_output_pictures_are_hms(name):
    case = CASES[name]
    count, height, width = case["hm_decoder_pictures"]
    out = slices.output_order(payload_of(name))
    assert len(out) == count
    assert {(p.height, p.width, p.bit_depth) for p in out} == {(height, width,
                                                                case["bit_depth"])}
    assert [p.output_index for p in out] == list(range(count))


@needs_interop
@pytest.mark.parametrize("name", ALL)
def test_slice_qps_of_idr_pictures_agree_with_params(name):
    payload = payload_of(name)
    expected = [q for q in params.idr_slice_qps(payload)]
    got = [p.slice_qp if p.nal_unit_type in slices.IDR_TYPES and
           p.slice_type == slices.I_SLICE else None for p in slices.pictures(payload)]
    assert got == expected


@needs_interop
def test_a_b_pyramid_is_output_in_another_order_than_decoded():
    """x265 --bframes 3 --b-pyramid: without reordering the SEI MD5s would be wrong."""
    payload = payload_of("x265_inter_b3_q27")
    out = slices.output_order(payload)
    decoding = [p.decode_index for p in out]
    assert decoding != sorted(decoding)
    assert [p.poc for p in out] == sorted(p.poc for p in out)
    in_decoding_order = [p.md5 for p in slices.pictures(payload)]
    assert slices.picture_hashes_in_output_order(payload) != in_decoding_order
    # a CRA picture (x265's open GOP) whose RASL pictures are output: it is not the first
    cra = [p for p in slices.pictures(payload) if p.nal_unit_type == slices.CRA_NUT]
    assert cra and all(p.no_rasl_output_flag == 0 for p in cra)
    assert any(p.nal_unit_type == slices.RASL_N and p.pic_output_flag for p in out)


@needs_interop
def test_end_of_sequence_starts_a_coded_video_sequence():
    pictures = slices.pictures(payload_of("crafted_eos_eob"))
    starts = [p for p in pictures if p.no_rasl_output_flag]
    assert len(starts) == pictures[-1].cvs + 1 > 1
    assert all(p.poc == 0 for p in starts)      # IDR pictures after EOS
    out = slices.output_order(payload_of("crafted_eos_eob"))
    assert [p.cvs for p in out] == sorted(p.cvs for p in out)


@needs_interop
@pytest.mark.parametrize("name", ["x265_weighted_pb", "hm_randomaccess_rext_q32",
                                  "kvz_inter_gop8_q27", "hm_wpp_dependent_slices"])
def test_truncated_slice_headers_of_real_payloads(name):
    units = annexb.split_nal_units(payload_of(name))
    vcl = [i for i, u in enumerate(units) if annexb.nal_unit_type(u) < 32][:12]
    for i in vcl:
        for size in range(2, min(len(units[i]), 48)):
            # the units after the next two only add work
            broken = annexb.join_nal_units(units[:i] + [units[i][:size]] + units[i + 1:i + 3])
            only_conformance_violations(broken)


# ---- a bit writer independent of the reader (the one of test_hevc_params) ----


def nal(nal_unit_type: int, bits: str, temporal_id: int = 0) -> bytes:
    """A NAL unit: header (layer 0), the RBSP bits, rbsp_trailing_bits, emulation
    prevention."""
    bits += "1"
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return bytes([nal_unit_type << 1, temporal_id + 1]) + annexb.emulation_prevention(data)


def ptl() -> str:
    """profile_tier_level(1, 0): Monochrome, level 3.1."""
    return (u(2, 0) + f(0) + u(5, 4) + u(32, 1 << 27) + f(1, 0, 0, 1)
            + f(1, 1, 1, 1, 1, 1, 0, 0, 1) + "0" * 34 + f(0) + u(8, 93))


def rps_bits(index: int, negative=(), positive=()) -> str:
    """An explicit st_ref_pic_set(index): (delta, used) pairs, deltas as magnitudes from
    the previous entry."""
    bits = (f(0) if index else "") + ue(len(negative)) + ue(len(positive))
    return bits + "".join(ue(d - 1) + f(used) for d, used in (*negative, *positive))


def sps(*, poc_lsb_bits=4, dpb_minus1=5, reorder=2, latency_plus1=0, rps=(), long_term=None,
        sao=0, tmvp=1, width=64, height=64) -> bytes:
    """A 4:0:0 8-bit SPS, CTB 16 (CB 8..16, TB 4..16); rps: (negative, positive) lists for
    rps_bits; long_term: (lt_ref_pic_poc_lsb_sps, used_by_curr_pic_lt_sps_flag) pairs."""
    bits = u(4, 0) + u(3, 0) + f(1) + ptl() + ue(0) + ue(0) + ue(width) + ue(height) + f(0)
    bits += ue(0) + ue(0) + ue(poc_lsb_bits - 4) + f(1)
    bits += ue(dpb_minus1) + ue(reorder) + ue(latency_plus1)
    bits += ue(0) + ue(1) + ue(0) + ue(2) + ue(1) + ue(1)
    bits += f(0, 0, sao, 0)
    bits += ue(len(rps)) + "".join(rps_bits(i, *r) for i, r in enumerate(rps))
    bits += f(long_term is not None)
    if long_term is not None:
        bits += ue(len(long_term)) + "".join(u(poc_lsb_bits, lsb) + f(used)
                                             for lsb, used in long_term)
    bits += f(tmvp) + f(0) + f(0) + f(0)
    return nal(33, bits)


def pps(*, pps_id=0, sps_id=0, dependent=0, output_flag_present=0, extra_bits=0,
        cabac_init_present=0, init_qp_minus26=0, weighted_pred=0, weighted_bipred=0,
        lists_modification=0, tiles=None) -> bytes:
    bits = ue(pps_id) + ue(sps_id) + f(dependent, output_flag_present) + u(3, extra_bits)
    bits += f(0, cabac_init_present) + ue(0) + ue(0) + se(init_qp_minus26) + f(0, 0, 0)
    bits += se(0) + se(0) + f(0, weighted_pred, weighted_bipred, 0)
    bits += f(tiles is not None, 0)
    if tiles is not None:
        bits += ue(tiles[0] - 1) + ue(tiles[1] - 1) + f(1) + f(1)
    bits += f(1, 0, 0, lists_modification) + ue(0) + f(0, 0)
    return nal(34, bits)


ADDRESS_BITS = 4      # 64x64 pictures of 16x16 CTBs


def slice_unit(nal_unit_type, *, lsb=0, slice_type=2, rps=((), ()), first=1, address=0,
               dependent=None, pps_id=0, no_output_of_prior_pics=0, pic_output=None,
               extra_bits=0, qp_delta=0, tmvp=None, sao=False, temporal_id=0,
               tail="") -> bytes:
    """A slice segment NAL unit of the default SPS/PPS (no SAO, no long-term pictures):
    its header up to slice_qp_delta (rps: explicit (negative, positive) lists, or an int
    index into the SPS's sets), then ``tail`` bits as slice data."""
    bits = f(first)
    if 16 <= nal_unit_type <= 23:
        bits += f(no_output_of_prior_pics)
    bits += ue(pps_id)
    if not first:
        if dependent is not None:
            bits += f(dependent)
        bits += u(ADDRESS_BITS, address)
        if dependent:
            return nal(nal_unit_type, bits + tail, temporal_id)
    bits += "0" * extra_bits + ue(slice_type)
    if pic_output is not None:
        bits += f(pic_output)
    if nal_unit_type not in (19, 20):
        bits += u(4, lsb)
        if isinstance(rps, int):
            bits += f(1) + u(1, rps)     # two sets in the SPS
        else:
            bits += f(0) + rps_bits(0, *rps)
        if tmvp is not None:
            bits += f(tmvp)
    if sao:
        bits += f(0)                     # slice_sao_luma_flag
    if slice_type != 2:
        bits += f(0)                     # num_ref_idx_active_override_flag
        if slice_type == 0:
            bits += f(0)                 # mvd_l1_zero_flag
        if tmvp:
            if slice_type == 0:
                bits += f(1)             # collocated_from_l0_flag
        bits += ue(0)                    # five_minus_max_num_merge_cand
    bits += se(qp_delta)
    return nal(nal_unit_type, bits + (tail or "1011"), temporal_id)


def stream(*units: bytes, sps_unit=None, pps_unit=None) -> bytes:
    return annexb.join_nal_units([sps_unit or sps(tmvp=0), pps_unit or pps(), *units])


def idr(**kw) -> bytes:
    return slice_unit(19, **kw)


def trail(lsb, rps=((), ()), slice_type=2, nal_unit_type=1, **kw) -> bytes:
    return slice_unit(nal_unit_type, lsb=lsb, rps=rps, slice_type=slice_type, **kw)


def sei(md5: bytes, suffix: bool = True) -> bytes:
    data = bytes([132, 17, 0]) + md5
    return nal(40 if suffix else 39, "".join(format(b, "08b") for b in data))


def violation(payload: bytes) -> ConformanceViolation:
    with pytest.raises(ConformanceViolation) as info:
        slices.pictures(payload)
    assert info.value.clause == "10.1"
    return info.value


def only_conformance_violations(payload: bytes) -> None:
    try:
        slices.pictures(payload)
        slices.picture_hashes_in_output_order(payload)
    except ConformanceViolation as exc:
        assert exc.clause == "10.1" and exc.offset is not None
        assert exc.path.startswith("hevc_payload")


# ---- PicOrderCntVal and output order ----


def test_poc_msb_counts_the_lsb_wraps():
    units = [idr()] + [trail(poc % 16) for poc in range(1, 41)]
    pictures = slices.pictures(stream(*units))
    assert [p.poc for p in pictures] == list(range(41))
    assert [p.output_index for p in pictures] == list(range(41))
    assert pictures[0].no_rasl_output_flag == 1 and pictures[0].is_irap


def test_backward_lsb_steps_make_negative_msb_steps():
    # 14 after 2 is -4 (MaxPicOrderCntLsb 16), not +12
    pictures = slices.pictures(stream(idr(), trail(2), trail(14, nal_unit_type=0)))
    assert [p.poc for p in pictures] == [0, 2, -2]


PYRAMID = [  # (nal_unit_type, POC, slice_type, (negative, positive))
    (19, 0, 2, None), (1, 4, 1, (((4, 1),), ())), (1, 2, 0, (((2, 1),), ((2, 1),))),
    (0, 1, 0, (((1, 1),), ((1, 1), (2, 1)))), (0, 3, 0, (((1, 1), (2, 1)), ((1, 1),)))]


def pyramid(reorder: int) -> bytes:
    units = [idr() if t == 19 else slice_unit(t, lsb=poc, slice_type=s, rps=r)
             for t, poc, s, r in PYRAMID]
    return stream(*units, sps_unit=sps(tmvp=0, reorder=reorder))


def test_output_order_is_increasing_poc():
    out = slices.output_order(pyramid(reorder=2))
    assert [p.poc for p in out] == [0, 1, 2, 3, 4]
    assert [p.decode_index for p in out] == [0, 3, 2, 4, 1]
    assert [p.slice_type for p in out] == [2, 0, 0, 0, 1]


def test_reordering_beyond_sps_max_num_reorder_pics_is_refused():
    exc = violation(pyramid(reorder=0))
    assert "sps_max_num_reorder_pics" in exc.message
    assert exc.path == "hevc_payload.nal_unit[4]"      # POC 2 comes after POC 4


def test_pic_output_flag_0_is_not_output():
    units = [idr(pic_output=1), trail(1, pic_output=0), trail(2, pic_output=1)]
    payload = stream(*units, pps_unit=pps(output_flag_present=1))
    assert [p.poc for p in slices.output_order(payload)] == [0, 2]
    assert [p.pic_output_flag for p in slices.pictures(payload)] == [1, 0, 1]


def test_rasl_pictures_of_a_first_cra_are_not_output():
    units = [slice_unit(21, lsb=8), slice_unit(8, lsb=6, slice_type=1, rps=(((2, 1),), ())),
             slice_unit(6, lsb=7, slice_type=1, rps=((), ((1, 1),))),
             trail(9, rps=(((1, 1),), ()), slice_type=1),
             slice_unit(21, lsb=0),                         # POC 16: not the first CRA
             slice_unit(8, lsb=12, slice_type=1, rps=(((3, 1),), ((4, 1),)))]
    pictures = slices.pictures(stream(*units))
    assert [p.poc for p in pictures] == [8, 6, 7, 9, 16, 12]
    assert [p.pic_output_flag for p in pictures] == [1, 0, 1, 1, 1, 1]
    assert [p.decoded for p in pictures] == [1, 0, 1, 1, 1, 1]
    assert [p.no_rasl_output_flag for p in pictures] == [1, 0, 0, 0, 0, 0]
    assert [p.poc for p in slices.output_order(stream(*units))] == [7, 8, 9, 12, 16]


EOS = bytes([36 << 1, 1])
EOB = bytes([37 << 1, 1])
P4 = trail(4, rps=(((4, 1),), ()), slice_type=1)
B2 = trail(2, rps=(((2, 1),), ((2, 1),)), slice_type=0, nal_unit_type=0)


def test_a_cra_after_end_of_sequence_discards_the_pictures_waiting():
    """C.5.2.2: an IRAP with NoRaslOutputFlag 1 that is not the first picture; a CRA
    picture has NoOutputOfPriorPicsFlag 1, whatever no_output_of_prior_pics_flag says."""
    units = [idr(), P4, B2, EOS, slice_unit(21, lsb=3),
             slice_unit(8, lsb=1, slice_type=1, rps=(((2, 1),), ())),
             trail(5, rps=(((2, 1),), ()), slice_type=1)]
    pictures = slices.pictures(stream(*units))
    assert [p.poc for p in pictures] == [0, 4, 2, 3, 1, 5]
    assert [p.cvs for p in pictures] == [0, 0, 0, 1, 1, 1]
    assert [p.output_index for p in pictures] == [0, None, None, 1, None, 2]
    assert pictures[3].no_rasl_output_flag == 1 and pictures[4].pic_output_flag == 0


@pytest.mark.parametrize("flag, expected", [(0, [0, 2, 4, 0, 1]), (1, [0, 0, 1])])
def test_an_idr_outputs_or_discards_the_pictures_waiting(flag, expected):
    units = [idr(), P4, B2, idr(no_output_of_prior_pics=flag), trail(1)]
    assert [p.poc for p in slices.output_order(stream(*units))] == expected
    with_eos = [idr(), P4, B2, EOS, idr(no_output_of_prior_pics=flag), trail(1)]
    assert [p.poc for p in slices.output_order(stream(*with_eos))] == expected


def test_end_of_bitstream_outputs_every_picture():
    units = [idr(), P4, B2, EOB, slice_unit(21, lsb=3), trail(5, rps=(((2, 1),), ()),
                                                             slice_type=1)]
    out = slices.output_order(stream(*units))
    assert [(p.cvs, p.poc) for p in out] == [(0, 0), (0, 2), (0, 4), (1, 3), (1, 5)]


def test_the_first_picture_after_eos_shall_be_irap():
    exc = violation(stream(idr(), EOS, trail(1)))
    assert exc.path == "hevc_payload.nal_unit[4].nal_unit_type"
    assert "end of sequence" in exc.message


# ---- hash SEIs ----


def md5_of(i: int) -> bytes:
    return hashlib.md5(bytes([i])).digest()


def test_suffix_and_prefix_hash_seis_belong_to_their_pictures():
    units = [sei(md5_of(0), suffix=False), idr(), P4, sei(md5_of(4)), B2, sei(md5_of(2)),
             sei(md5_of(99))]                       # a second hash SEI is not taken
    payload = stream(*units)
    assert [p.md5 for p in slices.pictures(payload)] == [md5_of(0), md5_of(4), md5_of(2)]
    assert slices.picture_hashes_in_output_order(payload) == [md5_of(0), md5_of(2), md5_of(4)]


def test_a_picture_without_a_hash_sei_gives_none():
    payload = stream(idr(), sei(md5_of(0)), P4)
    assert slices.picture_hashes_in_output_order(payload) is None


def test_a_prefix_sei_between_slices_belongs_to_their_picture():
    units = [idr(), sei(md5_of(7), suffix=False), idr(first=0, address=5, dependent=None)]
    pictures = slices.pictures(stream(*units))
    assert len(pictures) == 1 and pictures[0].md5 == md5_of(7)


def test_other_hash_types_are_not_md5():
    crc = nal(40, "".join(format(b, "08b") for b in bytes([132, 3, 1, 0x12, 0x34])))
    assert slices.picture_hashes_in_output_order(stream(idr(), crc)) is None


# ---- slice segment syntax ----


def test_dependent_slice_segments_take_the_header_before():
    units = [idr(), idr(first=0, dependent=1, address=3), idr(first=0, dependent=0, address=8,
                                                            qp_delta=-2)]
    payload = stream(*units, pps_unit=pps(dependent=1))
    headers = [h for _, h in slices.slice_segment_headers(payload)]
    assert [h.slice_segment_address for h in headers] == [0, 3, 8]
    assert [h.dependent_slice_segment_flag for h in headers] == [0, 1, 0]
    assert [h.slice_qp_y for h in headers] == [26, 26, 24]
    picture, = slices.pictures(payload)
    assert picture.slice_types == (2, 2, 2)


def test_two_slice_segments_at_one_address_are_refused():
    payload = stream(idr(), idr(first=0, dependent=0, address=4),
                     idr(first=0, dependent=0, address=4), pps_unit=pps(dependent=1))
    exc = violation(payload)
    assert exc.path == "hevc_payload.nal_unit[4].slice_segment_header.slice_segment_address"


def test_every_inter_slice_element_parses_in_sync():
    """Long-term pictures (from the SPS and explicit, with an MSB cycle), temporal MVP,
    num_ref_idx override, ref_pic_lists_modification, mvd_l1_zero, cabac_init,
    collocated_ref_idx and pred_weight_table: slice_qp_delta lands where it should."""
    sps_unit = sps(long_term=[(3, 1), (5, 0)], tmvp=1, sao=1, rps=[(((1, 1),), ()),
                                                                   (((2, 1),), ())])
    pps_unit = pps(lists_modification=1, weighted_bipred=1, cabac_init_present=1,
                   init_qp_minus26=-4, extra_bits=2)
    bits = f(1) + ue(0) + "01" + ue(0) + u(4, 6)
    bits += f(0) + rps_bits(2, ((1, 1),), ((1, 1),))        # explicit, after the 2 of the SPS
    bits += ue(1) + ue(1)                                   # num_long_term_sps, _pics
    bits += u(1, 0) + f(0)                                  # lt_idx_sps, no MSB
    bits += u(4, 9) + f(1) + f(1) + ue(2)                   # poc_lsb_lt, used, MSB cycle 2
    bits += f(1)                                            # slice_temporal_mvp_enabled_flag
    bits += f(1)                                            # slice_sao_luma_flag
    bits += f(1) + ue(2) + ue(1)                            # override: 3 and 2 references
    bits += f(1) + u(2, 3) + u(2, 0) + u(2, 2) + f(0)       # lists modification (4 pictures)
    bits += f(1) + f(1)                                     # mvd_l1_zero, cabac_init
    bits += f(0) + ue(1)                                    # collocated from L1, index 1
    bits += ue(3) + f(1, 0, 1) + se(-5) + se(7) + se(3) + se(-128) + f(0, 1) + se(1) + se(0)
    bits += ue(2) + se(-3) + "1111"
    payload = stream(idr(extra_bits=2, sao=True), nal(1, bits), sps_unit=sps_unit,
                     pps_unit=pps_unit)
    (_, first), (_, header) = slices.slice_segment_headers(payload)
    assert first.slice_qp_y == 22
    assert header.slice_type == slices.B_SLICE
    assert header.slice_reserved_flags == (0, 1)
    assert header.st_ref_pic_set.delta_poc_s0 == (-1,)
    assert header.st_ref_pic_set.delta_poc_s1 == (1,)
    assert header.long_term_pictures == (slices.LongTermPicture(3, 1, 0, 0),
                                         slices.LongTermPicture(9, 1, 1, 2))
    assert header.num_pic_total_curr == 4
    assert (header.num_ref_idx_l0_active_minus1, header.num_ref_idx_l1_active_minus1) == (2, 1)
    assert header.list_entry_l0 == (3, 0, 2) and header.list_entry_l1 is None
    assert (header.mvd_l1_zero_flag, header.cabac_init_flag) == (1, 1)
    assert (header.collocated_from_l0_flag, header.collocated_ref_idx) == (0, 1)
    assert header.five_minus_max_num_merge_cand == 2
    assert header.slice_qp_delta == -3 and header.slice_qp_y == 19
    assert [p.poc for p in slices.output_order(payload)] == [0, 6]


def test_short_term_rps_from_the_sps():
    sps_unit = sps(tmvp=0, rps=[(((1, 1),), ()), (((2, 1), (2, 0)), ())])
    payload = stream(idr(), trail(1, rps=0, slice_type=1), trail(3, rps=1, slice_type=1),
                     sps_unit=sps_unit)
    headers = [h for _, h in slices.slice_segment_headers(payload)]
    assert headers[1].short_term_ref_pic_set_sps_flag == 1
    assert headers[2].short_term_ref_pic_set_idx == 1
    assert headers[2].st_ref_pic_set.delta_poc_s0 == (-2, -4)


def test_parameter_sets_in_any_order_before_the_slices():
    payload = annexb.join_nal_units([pps(), sps(tmvp=0), idr()])
    assert [p.poc for p in slices.output_order(payload)] == [0]


def test_the_last_pps_of_an_id_is_used():
    payload = annexb.join_nal_units([sps(tmvp=0), pps(init_qp_minus26=3), idr(),
                                     pps(init_qp_minus26=-3), trail(1)])
    assert [p.slice_qp for p in slices.pictures(payload)] == [29, 23]


def test_reserved_types_and_other_layers_are_ignored():
    reserved = slice_unit(11, lsb=5)                        # RSV_VCL_R11
    other_layer = bytearray(trail(1))
    other_layer[1] |= 1 << 3                                # nuh_layer_id 1
    payload = stream(idr(), reserved, bytes(other_layer), bytes([48 << 1, 1, 0xAB]), trail(2))
    assert [p.poc for p in slices.pictures(payload)] == [0, 2]


# ---- malformed slice segments ----


@pytest.mark.parametrize("units, path, message", [
    ([trail(1)], "nal_unit[2].nal_unit_type", "first picture of the payload"),
    ([idr(first=0, address=1)], "nal_unit[2].slice_segment_header."
                                "first_slice_segment_in_pic_flag", "shall have"),
    ([idr(pps_id=3)], "nal_unit[2].slice_segment_header.slice_pic_parameter_set_id",
     "refers to no PPS"),
    ([idr(slice_type=3)], "nal_unit[2].slice_segment_header.slice_type",
     "range 0 to 2, got 3"),
    ([idr(slice_type=1)], "nal_unit[2].slice_segment_header.slice_type", "IRAP"),
    ([idr(), trail(0)], "nal_unit[3].slice_segment_header.slice_pic_order_cnt_lsb",
     "PicOrderCntVal 0"),
    ([idr(), trail(1, slice_type=1)], "nal_unit[3].slice_segment_header.slice_type",
     "NumPicTotalCurr"),
    ([idr(), trail(1, rps=(((1, 1),) * 6, ()))],
     "nal_unit[3].slice_segment_header.st_ref_pic_set[0].num_negative_pics", "range 0 to 5"),
    ([idr(), trail(1, rps=1)], "nal_unit[3].slice_segment_header.short_term_ref_pic_set_sps_flag",
     "no st_ref_pic_set"),
    ([idr(), slice_unit(1, first=0, address=2, lsb=0)], "nal_unit[3].nal_unit_type",
     "same in all slice segments"),
    ([idr(qp_delta=26)], "nal_unit[2].slice_segment_header.slice_qp_delta",
     "range -26 to 25"),
    ([idr(), trail(1, temporal_id=1), slice_unit(21, lsb=2, temporal_id=1)],
     "nal_unit[4].nuh_temporal_id_plus1", "TemporalId shall be 0"),
])
def test_malformed_slice_segments(units, path, message):
    exc = violation(stream(*units))
    assert exc.path == f"hevc_payload.{path}"
    assert message in exc.message


def test_violation_offsets_are_the_nal_units():
    payload = stream(idr(), trail(1, slice_type=1))
    exc = violation(payload)
    assert exc.offset == annexb.split_nal_units_with_offsets(payload)[3][0]


def test_pps_of_a_missing_sps():
    exc = violation(annexb.join_nal_units([sps(tmvp=0), pps(sps_id=2), idr()]))
    assert "SPS 2" in exc.message


def test_pps_tiles_are_bounded_by_the_sps():
    assert slices.pictures(stream(idr(), pps_unit=pps(tiles=(2, 4))))[0].poc == 0
    exc = violation(stream(idr(), pps_unit=pps(tiles=(5, 1))))   # 4 CTB columns
    assert exc.path == "hevc_payload.nal_unit[1].num_tile_columns_minus1"


def test_truncated_slice_headers():
    units = [idr(), P4, B2]
    for i in range(3):
        unit = units[i]
        for size in range(2, len(unit)):
            cut = units[:i] + [unit[:size]] + units[i + 1:]
            only_conformance_violations(stream(*cut))
    exc = violation(stream(idr()[:2]))
    assert exc.path.startswith("hevc_payload.nal_unit[2].slice_segment_header.")
    assert "runs past the end" in exc.message


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    only_conformance_violations(data)
    only_conformance_violations(b"\x00\x00\x01" + data)


@settings(max_examples=300)
@given(st.sampled_from([0, 1, 2, 8, 9, 16, 19, 20, 21, 33, 34, 36, 39, 40]),
       st.binary(min_size=0, max_size=40), st.integers(0, 7))
def test_arbitrary_units_after_valid_parameter_sets(nal_unit_type, body, temporal_id):
    unit = bytes([nal_unit_type << 1, temporal_id]) + body
    only_conformance_violations(stream(idr(), unit, trail(1)))
    only_conformance_violations(stream(unit, idr()))


def test_work_is_linear_in_the_picture_count():
    """Thousands of pictures: the DPB and the per-picture work stay bounded."""
    units = [idr()] + [trail(poc % 16) for poc in range(1, 3000)]
    pictures = slices.pictures(stream(*units))
    assert len(pictures) == 3000 and pictures[-1].poc == 2999


# ---- libx265 ----


@pytest.mark.hevc
def test_libx265_hashes_in_output_order(rng):
    from refcodec.hevc import pyav
    pictures = rng.integers(0, 255, (5, 32, 32)).astype(np.uint8)
    units = pyav.encode_access_units(pictures, 8, 30, False, "ultrafast")
    payload = annexb.join_nal_units([u for au in units for u in annexb.split_nal_units(au)])
    _, hashes = annexb.repack_access_units(units)
    assert slices.picture_hashes_in_output_order(payload) == hashes
