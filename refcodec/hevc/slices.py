"""HEVC slice segment headers (ITU-T H.265 7.3.6.1), picture order counts (8.3.1) and the
output order of the decoded pictures (C.5.2), with each picture's decoded picture hash.

The pictures of an hevc_payload are kept in output order, which is not their decoding
order when an encoder reorders pictures (B pyramids, open GOPs): the picture MD5s of the
decoded picture hash SEIs, which follow (suffix SEI) or precede (prefix SEI) the slices of
their picture in decoding order, must be reordered before they are compared with decoded
pictures or hashed into sample_md5.

``pictures(payload)`` walks the NAL units and, for each coded picture (a slice segment
with first_slice_segment_in_pic_flag 1 starts one), parses the slice segment headers of
all its slice segments, derives

* PicOrderCntVal (8.3.1: prevTid0Pic, PicOrderCntMsb reset at an IRAP picture with
  NoRaslOutputFlag 1, i.e. an IDR or BLA picture, or a CRA picture that is the first
  picture of the payload or follows an end of sequence (EOS_NUT 36) or end of bitstream
  (EOB_NUT 37) NAL unit; HandleCraAsBlaFlag is 0),
* PicOutputFlag (8.1.3: pic_output_flag, 0 for a RASL picture whose IRAP picture has
  NoRaslOutputFlag 1; such pictures are not decoded, as HM and FFmpeg skip them),
* the MD5 of its decoded picture hash SEI (payloadType 132, hash_type 0, the first
  component: luma), from a suffix SEI after its first slice segment or a prefix SEI
  between the previous picture and its first slice segment,

and runs the output process of C.5.2 (reference picture marking of 8.3.2 from the RPS of
each picture, the removal and "bumping" of C.5.2.2 and C.5.2.3 with
sps_max_num_reorder_pics, sps_max_latency_increase_plus1 and sps_max_dec_pic_buffering
of the highest sub-layer): pictures are output in increasing PicOrderCntVal within each
coded video sequence, those with PicOutputFlag 0 never, and pictures still waiting for
output when an IRAP picture with NoRaslOutputFlag 1 has NoOutputOfPriorPicsFlag 1 (a CRA
picture after an end of sequence, or no_output_of_prior_pics_flag 1) are discarded.
At the end of the payload (and at an end of bitstream NAL unit) every picture waiting is
output.

Each slice segment header is parsed up to slice_qp_delta (all slice types: the short-term
RPS, long-term pictures, temporal MVP, SAO, num_ref_idx, ref_pic_lists_modification(),
mvd_l1_zero, cabac_init, collocated_*, pred_weight_table(), five_minus_max_num_merge_cand);
a dependent slice segment up to slice_segment_address (it inherits the rest).  With the
screen content coding extensions (sps_scc_extension_flag or pps_scc_extension_flag) the
header is parsed only up to the SAO flags (the SCC syntax elements before slice_qp_delta
live in extensions that are not parsed), and slice_qp_delta stays None.

The SPS and PPS come from refcodec.hevc.params (``_sps`` and ``_pps``), read with a reader
that also keeps the two SPS elements params steps over (lt_ref_pic_poc_lsb_sps,
used_by_curr_pic_lt_sps_flag); the rest of the PPS after transquant_bypass_enabled_flag,
up to the extension flags, is parsed here.  A PPS is parsed when a picture refers to it
(its tile syntax is bounded by its SPS), so parameter sets may come in any order before
the first slice that uses them; the last one received of an id is used.

NAL units with nuh_layer_id > 0 and VCL NAL units of reserved types (10..15, 22..31) are
ignored, as H.265 tells decoders to.  Every value read is bounded by H.265's ranges, so
the work is linear in the payload size; malformed data (and the few "shall" constraints
the output order depends on: an IRAP picture first, one PicOrderCntVal per picture of a
coded video sequence, an output order that the DPB parameters allow) raises
ConformanceViolation with clause 10.1, the byte offset of the NAL unit and a syntax path
such as ``hevc_payload.nal_unit[7].slice_segment_header.slice_type``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..errors import ConformanceViolation
from . import params
from .annexb import (PPS_NUT, PREFIX_SEI_NUT, SPS_NUT, SUFFIX_SEI_NUT, picture_md5, rbsp,
                     split_nal_units_with_offsets)
from .params import PATH, PPS, SPS, RbspReader, ShortTermRefPicSet

# nal_unit_type (Table 7-1)
TRAIL_N, TRAIL_R, TSA_N, TSA_R, STSA_N, STSA_R = 0, 1, 2, 3, 4, 5
RADL_N, RADL_R, RASL_N, RASL_R = 6, 7, 8, 9
BLA_W_LP, BLA_W_RADL, BLA_N_LP, IDR_W_RADL, IDR_N_LP, CRA_NUT = 16, 17, 18, 19, 20, 21
EOS_NUT, EOB_NUT = 36, 37
#: VCL NAL unit types a decoder decodes; the other VCL types (10..15, 22..31) are reserved.
DECODED_VCL_TYPES = frozenset(range(0, 10)) | frozenset(range(16, 22))
IRAP_TYPES = range(BLA_W_LP, 24)            # 16..23 (22, 23 reserved IRAP)
IDR_TYPES = (IDR_W_RADL, IDR_N_LP)
BLA_TYPES = (BLA_W_LP, BLA_W_RADL, BLA_N_LP)

# slice_type (Table 7-7)
B_SLICE, P_SLICE, I_SLICE = 0, 1, 2
SLICE_TYPE_NAMES = {B_SLICE: "B", P_SLICE: "P", I_SLICE: "I"}


def _ceil_log2(n: int) -> int:
    """Ceil(Log2(n)) for n >= 1."""
    return (n - 1).bit_length()


def _uv(r: RbspReader, bits: int, name: str, maximum: int | None = None) -> int:
    """u(v): a zero-length element is 0."""
    return r.u(bits, name, maximum) if bits else 0


# ---- the active parameter sets: params' records and what slice headers need besides ----


class _KeepingReader(RbspReader):
    """An RbspReader that keeps the values of the SPS elements params._sps steps over."""

    KEPT = ("lt_ref_pic_poc_lsb_sps[", "used_by_curr_pic_lt_sps_flag[")

    def __init__(self, data: bytes, *, offset: int, path: str):
        super().__init__(data, offset=offset, path=path)
        self.kept: dict[str, int] = {}

    def skip(self, bits: int, name: str) -> None:
        if name.startswith(self.KEPT):
            self.kept[name] = self.u(bits, name)
        else:
            super().skip(bits, name)


@dataclasses.dataclass(frozen=True)
class ActiveSps:
    """An SPS (params.SPS) with the long-term picture candidates that params does not keep."""

    sps: SPS
    lt_ref_pic_poc_lsb_sps: tuple[int, ...]
    used_by_curr_pic_lt_sps_flag: tuple[int, ...]

    @property
    def ctb_log2_size(self) -> int:
        """CtbLog2SizeY (7-10)."""
        return (self.sps.log2_min_luma_coding_block_size_minus3 + 3
                + self.sps.log2_diff_max_min_luma_coding_block_size)

    @property
    def pic_width_in_ctbs(self) -> int:
        size = 1 << self.ctb_log2_size
        return -(-self.sps.pic_width_in_luma_samples // size)

    @property
    def pic_height_in_ctbs(self) -> int:
        size = 1 << self.ctb_log2_size
        return -(-self.sps.pic_height_in_luma_samples // size)

    @property
    def chroma_array_type(self) -> int:
        """ChromaArrayType (7.4.3.2.1)."""
        return 0 if self.sps.separate_colour_plane_flag else self.sps.chroma_format_idc

    @property
    def max_poc_lsb(self) -> int:
        """MaxPicOrderCntLsb (7-8)."""
        return 1 << (self.sps.log2_max_pic_order_cnt_lsb_minus4 + 4)


@dataclasses.dataclass(frozen=True)
class ActivePps:
    """A PPS (params.PPS, up to transquant_bypass_enabled_flag) with the rest of
    pic_parameter_set_rbsp() up to its extension flags (7.3.2.3.1)."""

    pps: PPS
    tiles_enabled_flag: int
    entropy_coding_sync_enabled_flag: int
    num_tile_columns_minus1: int
    num_tile_rows_minus1: int
    pps_loop_filter_across_slices_enabled_flag: int
    deblocking_filter_override_enabled_flag: int
    pps_deblocking_filter_disabled_flag: int
    lists_modification_present_flag: int
    log2_parallel_merge_level_minus2: int
    slice_segment_header_extension_present_flag: int
    pps_range_extension_flag: int
    pps_multilayer_extension_flag: int
    pps_3d_extension_flag: int
    pps_scc_extension_flag: int


def _parse_sps(unit: bytes, offset: int, path: str) -> ActiveSps:
    r = _KeepingReader(rbsp(unit), offset=offset, path=path)
    sps = params._sps(r)
    count = sps.num_long_term_ref_pics_sps
    return ActiveSps(sps, tuple(r.kept[f"lt_ref_pic_poc_lsb_sps[{i}]"] for i in range(count)),
                     tuple(r.kept[f"used_by_curr_pic_lt_sps_flag[{i}]"] for i in range(count)))


def _parse_pps(unit: bytes, offset: int, path: str, active: ActiveSps) -> ActivePps:
    """pic_parameter_set_rbsp() up to pps_extension_4bits, bounded by the SPS it uses."""
    r = RbspReader(rbsp(unit), offset=offset, path=path)
    pps = params._pps(r)
    v: dict = {"pps": pps}
    tiles = v["tiles_enabled_flag"] = r.flag("tiles_enabled_flag")
    v["entropy_coding_sync_enabled_flag"] = r.flag("entropy_coding_sync_enabled_flag")
    v["num_tile_columns_minus1"] = v["num_tile_rows_minus1"] = 0
    if tiles:
        width, height = active.pic_width_in_ctbs, active.pic_height_in_ctbs
        columns = v["num_tile_columns_minus1"] = r.ue("num_tile_columns_minus1", width - 1)
        rows = v["num_tile_rows_minus1"] = r.ue("num_tile_rows_minus1", height - 1)
        if columns == 0 and rows == 0:
            r.fail("num_tile_rows_minus1", "num_tile_columns_minus1 and num_tile_rows_minus1 "
                                           "shall not both be 0 when tiles_enabled_flag is 1")
        if not r.flag("uniform_spacing_flag"):
            for name, count, total in (("column_width_minus1", columns, width),
                                       ("row_height_minus1", rows, height)):
                left = total
                for i in range(count):
                    # each of the count + 1 tiles is at least one CTB wide (high)
                    left -= r.ue(f"{name}[{i}]", left - (count - i) - 1) + 1
        r.flag("loop_filter_across_tiles_enabled_flag")
    v["pps_loop_filter_across_slices_enabled_flag"] = r.flag(
        "pps_loop_filter_across_slices_enabled_flag")
    v["deblocking_filter_override_enabled_flag"] = v["pps_deblocking_filter_disabled_flag"] = 0
    if r.flag("deblocking_filter_control_present_flag"):
        v["deblocking_filter_override_enabled_flag"] = r.flag(
            "deblocking_filter_override_enabled_flag")
        v["pps_deblocking_filter_disabled_flag"] = r.flag("pps_deblocking_filter_disabled_flag")
        if not v["pps_deblocking_filter_disabled_flag"]:
            r.se("pps_beta_offset_div2", -6, 6)
            r.se("pps_tc_offset_div2", -6, 6)
    if r.flag("pps_scaling_list_data_present_flag"):
        params._scaling_list_data(r)
    v["lists_modification_present_flag"] = r.flag("lists_modification_present_flag")
    v["log2_parallel_merge_level_minus2"] = r.ue("log2_parallel_merge_level_minus2",
                                                 active.ctb_log2_size - 2)
    v["slice_segment_header_extension_present_flag"] = r.flag(
        "slice_segment_header_extension_present_flag")
    extension = r.flag("pps_extension_present_flag")
    for name in ("pps_range_extension_flag", "pps_multilayer_extension_flag",
                 "pps_3d_extension_flag", "pps_scc_extension_flag"):
        v[name] = extension and r.flag(name)
    if extension:
        r.u(4, "pps_extension_4bits")
    return ActivePps(**v)


# ---- slice_segment_header() ----


@dataclasses.dataclass(frozen=True)
class LongTermPicture:
    """One long-term entry of a slice segment header (7.3.6.1, 7.4.7.1): PocLsbLt,
    UsedByCurrPicLt, delta_poc_msb_present_flag and DeltaPocMsbCycleLt (7-52)."""

    poc_lsb_lt: int
    used_by_curr_pic_lt: int
    delta_poc_msb_present_flag: int
    delta_poc_msb_cycle_lt: int


@dataclasses.dataclass(frozen=True)
class SliceSegmentHeader:
    """slice_segment_header() (7.3.6.1) up to slice_qp_delta.  Elements absent from the
    bitstream hold their inferred value; a dependent slice segment holds the values of the
    independent slice segment before it.  slice_qp_delta is None where the header was not
    parsed that far (the SCC extensions)."""

    nal_unit_type: int
    first_slice_segment_in_pic_flag: int
    no_output_of_prior_pics_flag: int
    slice_pic_parameter_set_id: int
    dependent_slice_segment_flag: int
    slice_segment_address: int
    slice_reserved_flags: tuple[int, ...]
    slice_type: int
    pic_output_flag: int
    colour_plane_id: int
    slice_pic_order_cnt_lsb: int
    short_term_ref_pic_set_sps_flag: int
    short_term_ref_pic_set_idx: int
    #: The short-term RPS of the picture (7.4.8), empty for IDR pictures.
    st_ref_pic_set: ShortTermRefPicSet
    num_long_term_sps: int
    long_term_pictures: tuple[LongTermPicture, ...]
    slice_temporal_mvp_enabled_flag: int
    slice_sao_luma_flag: int
    slice_sao_chroma_flag: int
    num_ref_idx_l0_active_minus1: int
    num_ref_idx_l1_active_minus1: int
    list_entry_l0: tuple[int, ...] | None
    list_entry_l1: tuple[int, ...] | None
    mvd_l1_zero_flag: int
    cabac_init_flag: int
    collocated_from_l0_flag: int
    collocated_ref_idx: int
    five_minus_max_num_merge_cand: int
    slice_qp_delta: int | None
    #: SliceQpY (7-54), None with slice_qp_delta.
    slice_qp_y: int | None

    @property
    def num_pic_total_curr(self) -> int:
        """NumPicTotalCurr (7-55) without the SCC current-picture reference."""
        rps = self.st_ref_pic_set
        return (sum(rps.used_by_curr_pic_s0) + sum(rps.used_by_curr_pic_s1)
                + sum(p.used_by_curr_pic_lt for p in self.long_term_pictures))


_EMPTY_RPS = ShortTermRefPicSet((), (), (), ())


def _slice_st_ref_pic_set(r: RbspReader, sets: tuple[ShortTermRefPicSet, ...],
                          max_dec_pic_buffering_minus1: int) -> ShortTermRefPicSet:
    """st_ref_pic_set(num_short_term_ref_pic_sets) of a slice segment header (7.3.7) and
    its lists (7.4.8): with inter RPS prediction, delta_idx_minus1 picks the SPS set."""
    return params._st_ref_pic_set(r, len(sets), sets, max_dec_pic_buffering_minus1,
                                  slice_header=True)


def _pred_weight_table(r: RbspReader, active: ActiveSps, slice_type: int,
                       num_ref_idx: tuple[int, int]) -> None:
    """pred_weight_table() (7.3.6.3), checked and skipped.  Without the SCC extensions no
    reference picture has the current picture's PicOrderCntVal, so every flag is present."""
    with r.scope("pred_weight_table"):
        chroma = active.chroma_array_type != 0
        luma_denom = r.ue("luma_log2_weight_denom", 7)
        if chroma:
            # ChromaLog2WeightDenom = luma_log2_weight_denom + delta in 0..7
            r.se("delta_chroma_log2_weight_denom", -luma_denom, 7 - luma_denom)
        high = active.sps.high_precision_offsets_enabled_flag
        half_y = 1 << (active.sps.bit_depth - 1 if high else 7)
        half_c = 1 << (8 + active.sps.bit_depth_chroma_minus8 - 1 if high else 7)
        for lx in range(2 if slice_type == B_SLICE else 1):
            count = num_ref_idx[lx] + 1
            luma = [r.flag(f"luma_weight_l{lx}_flag[{i}]") for i in range(count)]
            chroma_flags = [r.flag(f"chroma_weight_l{lx}_flag[{i}]") if chroma else 0
                            for i in range(count)]
            for i in range(count):
                if luma[i]:
                    r.se(f"delta_luma_weight_l{lx}[{i}]", -128, 127)
                    r.se(f"luma_offset_l{lx}[{i}]", -half_y, half_y - 1)
                if chroma_flags[i]:
                    for j in range(2):
                        r.se(f"delta_chroma_weight_l{lx}[{i}][{j}]", -128, 127)
                        r.se(f"delta_chroma_offset_l{lx}[{i}][{j}]", -4 * half_c,
                             4 * half_c - 1)


def _slice_segment_header(r: RbspReader, nal_unit_type: int,
                          activate: Callable[[int], tuple[ActiveSps, ActivePps]],
                          previous: SliceSegmentHeader | None
                          ) -> tuple[SliceSegmentHeader, ActiveSps, ActivePps]:
    """slice_segment_header() (7.3.6.1) up to slice_qp_delta.  ``activate`` gives the SPS
    and PPS of a slice_pic_parameter_set_id (or fails); ``previous`` is the header of the
    last slice segment of the current picture (None when no picture is under way)."""
    v: dict = {"nal_unit_type": nal_unit_type}
    first = v["first_slice_segment_in_pic_flag"] = r.flag("first_slice_segment_in_pic_flag")
    if not first and previous is None:
        r.fail("first_slice_segment_in_pic_flag",
               "the first slice segment of a picture shall have first_slice_segment_in_pic_"
               "flag 1, got 0")
    irap = nal_unit_type in IRAP_TYPES
    v["no_output_of_prior_pics_flag"] = r.flag("no_output_of_prior_pics_flag") if irap else 0
    pps_id = v["slice_pic_parameter_set_id"] = r.ue("slice_pic_parameter_set_id", 63)
    active, apps = activate(pps_id)
    sps, pps = active.sps, apps.pps
    v["dependent_slice_segment_flag"] = v["slice_segment_address"] = 0
    if not first:
        if pps.dependent_slice_segments_enabled_flag:
            v["dependent_slice_segment_flag"] = r.flag("dependent_slice_segment_flag")
        size = active.pic_width_in_ctbs * active.pic_height_in_ctbs
        v["slice_segment_address"] = _uv(r, _ceil_log2(size), "slice_segment_address",
                                         size - 1)
    if v["dependent_slice_segment_flag"]:
        assert previous is not None     # a first slice segment is never dependent
        return (dataclasses.replace(previous, first_slice_segment_in_pic_flag=0,
                                    dependent_slice_segment_flag=1,
                                    slice_segment_address=v["slice_segment_address"]),
                active, apps)
    v["slice_reserved_flags"] = tuple(r.flag(f"slice_reserved_flag[{i}]")
                                      for i in range(pps.num_extra_slice_header_bits))
    slice_type = v["slice_type"] = r.ue("slice_type", 2)
    scc = sps.sps_scc_extension_flag or apps.pps_scc_extension_flag
    if irap and slice_type != I_SLICE and not scc:
        r.fail("slice_type", f"slice_type shall be 2 (I) in an IRAP picture (nal_unit_type "
                             f"{nal_unit_type}), got {slice_type}")
    v["pic_output_flag"] = r.flag("pic_output_flag") if pps.output_flag_present_flag else 1
    v["colour_plane_id"] = r.u(2, "colour_plane_id", 2) if sps.separate_colour_plane_flag \
        else 0
    v.update(slice_pic_order_cnt_lsb=0, short_term_ref_pic_set_sps_flag=0,
             short_term_ref_pic_set_idx=0, st_ref_pic_set=_EMPTY_RPS, num_long_term_sps=0,
             long_term_pictures=(), slice_temporal_mvp_enabled_flag=0)
    dpb_minus1 = sps.sps_max_dec_pic_buffering_minus1[-1]
    if nal_unit_type not in IDR_TYPES:
        lsb_bits = sps.log2_max_pic_order_cnt_lsb_minus4 + 4
        v["slice_pic_order_cnt_lsb"] = r.u(lsb_bits, "slice_pic_order_cnt_lsb")
        sets = sps.st_ref_pic_sets
        from_sps = v["short_term_ref_pic_set_sps_flag"] = r.flag(
            "short_term_ref_pic_set_sps_flag")
        if not from_sps:
            v["short_term_ref_pic_set_idx"] = len(sets)
            v["st_ref_pic_set"] = _slice_st_ref_pic_set(r, sets, dpb_minus1)
        else:
            if not sets:
                r.fail("short_term_ref_pic_set_sps_flag",
                       "short_term_ref_pic_set_sps_flag shall be 0 when the SPS has no "
                       "st_ref_pic_set() (num_short_term_ref_pic_sets 0)")
            idx = v["short_term_ref_pic_set_idx"] = _uv(
                r, _ceil_log2(len(sets)), "short_term_ref_pic_set_idx", len(sets) - 1)
            v["st_ref_pic_set"] = sets[idx]
        if sps.long_term_ref_pics_present_flag:
            v["long_term_pictures"] = _long_term_pictures(r, v, active, dpb_minus1)
        if sps.sps_temporal_mvp_enabled_flag:
            v["slice_temporal_mvp_enabled_flag"] = r.flag("slice_temporal_mvp_enabled_flag")
    v["slice_sao_luma_flag"] = v["slice_sao_chroma_flag"] = 0
    if sps.sample_adaptive_offset_enabled_flag:
        v["slice_sao_luma_flag"] = r.flag("slice_sao_luma_flag")
        if active.chroma_array_type != 0:
            v["slice_sao_chroma_flag"] = r.flag("slice_sao_chroma_flag")
    v.update(num_ref_idx_l0_active_minus1=pps.num_ref_idx_l0_default_active_minus1,
             num_ref_idx_l1_active_minus1=pps.num_ref_idx_l1_default_active_minus1,
             list_entry_l0=None, list_entry_l1=None, mvd_l1_zero_flag=0, cabac_init_flag=0,
             collocated_from_l0_flag=1, collocated_ref_idx=0, five_minus_max_num_merge_cand=0,
             slice_qp_delta=None, slice_qp_y=None)
    if slice_type == I_SLICE:
        v["num_ref_idx_l0_active_minus1"] = v["num_ref_idx_l1_active_minus1"] = 0
    elif slice_type == P_SLICE:
        v["num_ref_idx_l1_active_minus1"] = 0
    if scc:
        return SliceSegmentHeader(**v), active, apps
    if slice_type != I_SLICE:
        _inter_slice_fields(r, v, active, apps)
    # SliceQpY in -QpBdOffsetY .. 51 (7-54)
    init = 26 + pps.init_qp_minus26
    delta = v["slice_qp_delta"] = r.se("slice_qp_delta", -6 * sps.bit_depth_luma_minus8 - init,
                                       51 - init)
    v["slice_qp_y"] = init + delta
    return SliceSegmentHeader(**v), active, apps


def _long_term_pictures(r: RbspReader, v: dict, active: ActiveSps,
                        dpb_minus1: int) -> tuple[LongTermPicture, ...]:
    sps = active.sps
    candidates = sps.num_long_term_ref_pics_sps
    num_sps = v["num_long_term_sps"] = r.ue("num_long_term_sps", candidates) \
        if candidates else 0
    rps = v["st_ref_pic_set"]
    room = dpb_minus1 - rps.num_delta_pocs - num_sps
    if room < 0:
        r.fail("num_long_term_sps", f"the RPS shall hold at most sps_max_dec_pic_buffering_"
                                    f"minus1 {dpb_minus1} pictures, got "
                                    f"{rps.num_delta_pocs + num_sps}")
    num_pics = r.ue("num_long_term_pics", room)
    lsb_bits = sps.log2_max_pic_order_cnt_lsb_minus4 + 4
    out: list[LongTermPicture] = []
    cycle = 0
    for i in range(num_sps + num_pics):
        if i < num_sps:
            idx = _uv(r, _ceil_log2(candidates), f"lt_idx_sps[{i}]", candidates - 1)
            lsb, used = active.lt_ref_pic_poc_lsb_sps[idx], \
                active.used_by_curr_pic_lt_sps_flag[idx]
        else:
            lsb = r.u(lsb_bits, f"poc_lsb_lt[{i}]")
            used = r.flag(f"used_by_curr_pic_lt_flag[{i}]")
        present = r.flag(f"delta_poc_msb_present_flag[{i}]")
        delta = r.ue(f"delta_poc_msb_cycle_lt[{i}]", 2 ** (32 - lsb_bits)) if present else 0
        # (7-52): the cycles accumulate within each of the two groups
        cycle = delta if i in (0, num_sps) else delta + cycle
        out.append(LongTermPicture(lsb, used, present, cycle))
    return tuple(out)


def _inter_slice_fields(r: RbspReader, v: dict, active: ActiveSps, apps: ActivePps) -> None:
    """The P and B slice elements from num_ref_idx_active_override_flag to
    five_minus_max_num_merge_cand (7.3.6.1)."""
    pps = apps.pps
    slice_type = v["slice_type"]
    b = slice_type == B_SLICE
    if r.flag("num_ref_idx_active_override_flag"):
        v["num_ref_idx_l0_active_minus1"] = r.ue("num_ref_idx_l0_active_minus1", 14)
        if b:
            v["num_ref_idx_l1_active_minus1"] = r.ue("num_ref_idx_l1_active_minus1", 14)
    rps = v["st_ref_pic_set"]
    total = (sum(rps.used_by_curr_pic_s0) + sum(rps.used_by_curr_pic_s1)
             + sum(p.used_by_curr_pic_lt for p in v["long_term_pictures"]))
    if total == 0:
        r.fail("slice_type", f"a {SLICE_TYPE_NAMES[slice_type]} slice shall have a reference "
                             f"picture (NumPicTotalCurr is 0)")
    if apps.lists_modification_present_flag and total > 1:
        with r.scope("ref_pic_lists_modification"):
            bits = _ceil_log2(total)
            for lx in range(2 if b else 1):
                if r.flag(f"ref_pic_list_modification_flag_l{lx}"):
                    count = v[f"num_ref_idx_l{lx}_active_minus1"] + 1
                    v[f"list_entry_l{lx}"] = tuple(
                        r.u(bits, f"list_entry_l{lx}[{i}]", total - 1) for i in range(count))
    if b:
        v["mvd_l1_zero_flag"] = r.flag("mvd_l1_zero_flag")
    if pps.cabac_init_present_flag:
        v["cabac_init_flag"] = r.flag("cabac_init_flag")
    if v["slice_temporal_mvp_enabled_flag"]:
        if b:
            v["collocated_from_l0_flag"] = r.flag("collocated_from_l0_flag")
        lx = 0 if v["collocated_from_l0_flag"] else 1
        count_minus1 = v[f"num_ref_idx_l{lx}_active_minus1"]
        if count_minus1 > 0:
            v["collocated_ref_idx"] = r.ue("collocated_ref_idx", count_minus1)
    if (pps.weighted_pred_flag and slice_type == P_SLICE) or \
            (pps.weighted_bipred_flag and b):
        _pred_weight_table(r, active, slice_type, (v["num_ref_idx_l0_active_minus1"],
                                                   v["num_ref_idx_l1_active_minus1"]))
    v["five_minus_max_num_merge_cand"] = r.ue("five_minus_max_num_merge_cand", 4)


# ---- pictures ----


@dataclasses.dataclass(frozen=True)
class PictureInfo:
    """One coded picture of a payload, in decoding order."""

    #: Position in decoding order among the payload's pictures (0 for the first).
    decode_index: int
    #: Byte offset of the NAL unit of its first slice segment.
    offset: int
    #: Index of that NAL unit (as in the paths of violations).
    nal_unit_index: int
    nal_unit_type: int
    temporal_id: int
    #: slice_type of its first slice segment; all its slice segments in slice_types.
    slice_type: int
    slice_types: tuple[int, ...]
    #: PicOrderCntVal (8.3.1).
    poc: int
    #: PicOutputFlag (8.1.3).
    pic_output_flag: int
    #: NoRaslOutputFlag of an IRAP picture (0 for other pictures).
    no_rasl_output_flag: int
    #: Index of its coded video sequence (a new one at each IRAP with NoRaslOutputFlag 1).
    cvs: int
    #: 0 for a RASL picture of an IRAP picture with NoRaslOutputFlag 1 (not decoded).
    decoded: int
    #: The luma MD5 of its decoded picture hash SEI (hash_type 0), None without one.
    md5: bytes | None
    #: SliceQpY of its first slice segment (None where not parsed: SCC).
    slice_qp: int | None
    #: Its position in output order; None when it is not output (PicOutputFlag 0, or
    #: discarded by NoOutputOfPriorPicsFlag).
    output_index: int | None
    #: The active SPS: picture size after the conformance window, BitDepthY, chroma.
    width: int
    height: int
    bit_depth: int
    chroma_format_idc: int
    #: The slice segment header of its first slice segment.
    header: SliceSegmentHeader

    @property
    def is_irap(self) -> bool:
        return self.nal_unit_type in IRAP_TYPES


@dataclasses.dataclass
class _Picture:
    """A picture while the payload is walked (becomes a PictureInfo)."""

    fields: dict
    md5: bytes | None = None
    output_index: int | None = None
    slice_types: list = dataclasses.field(default_factory=list)
    addresses: set = dataclasses.field(default_factory=set)
    last_header: SliceSegmentHeader | None = None


@dataclasses.dataclass
class _Stored:
    """A picture storage buffer of the DPB (C.5.2)."""

    picture: int                 # index of the _Picture
    poc: int
    needed_for_output: bool
    reference: bool
    latency: int = 0


class _Walk:
    """The state of one pass over a payload's NAL units (8.1.3, 8.3.1, 8.3.2, C.5.2)."""

    def __init__(self) -> None:
        self.sps_units: dict[int, ActiveSps] = {}
        #: pps_pic_parameter_set_id -> offset, NAL unit index, NAL unit, its SPS id
        self.pps_units: dict[int, tuple[int, int, bytes, int]] = {}
        self.sps_cache: dict[bytes, ActiveSps] = {}
        self.pps_cache: dict[tuple[bytes, int], ActivePps] = {}
        self.pictures: list[_Picture] = []
        self.headers: list[tuple[int, SliceSegmentHeader]] = []
        self.current: _Picture | None = None       # the picture under way
        self.pending_md5: bytes | None = None      # of a prefix SEI before the next slice
        self.first_in_bitstream = True             # the next picture is picture 0
        self.after_eos = False
        self.prev_tid0: tuple[int, int] | None = None   # (lsb, msb) of prevTid0Pic
        self.irap_no_rasl = 0                     # NoRaslOutputFlag of the last IRAP
        self.cvs = -1
        self.cvs_pocs: set[int] = set()
        self.dpb: list[_Stored] = []
        self.output: list[int] = []             # picture indices in output order

    # -- parameter sets --

    def sps_unit(self, unit: bytes, offset: int, where: str) -> None:
        key = bytes(unit)
        active = self.sps_cache.get(key)
        if active is None:
            active = self.sps_cache[key] = _parse_sps(unit, offset, where)
        self.sps_units[active.sps.sps_seq_parameter_set_id] = active

    def pps_unit(self, unit: bytes, offset: int, index: int, where: str) -> None:
        r = RbspReader(rbsp(unit[:16]), offset=offset, path=where)
        pps_id = r.ue("pps_pic_parameter_set_id", 63)
        sps_id = r.ue("pps_seq_parameter_set_id", 15)
        self.pps_units[pps_id] = (offset, index, bytes(unit), sps_id)

    def activate(self, r: RbspReader, pps_id: int) -> tuple[ActiveSps, ActivePps]:
        found = self.pps_units.get(pps_id)
        if found is None:
            r.fail("slice_pic_parameter_set_id", f"slice_pic_parameter_set_id {pps_id} refers "
                                                 f"to no PPS before the slice segment")
        offset, index, unit, sps_id = found
        active = self.sps_units.get(sps_id)
        if active is None:
            r.fail("slice_pic_parameter_set_id", f"the PPS {pps_id} of the slice segment "
                                                 f"refers to SPS {sps_id}, which is not "
                                                 f"before the slice segment")
        key = (unit, id(active))
        apps = self.pps_cache.get(key)
        if apps is None:
            apps = self.pps_cache[key] = _parse_pps(unit, offset, f"{PATH}.nal_unit[{index}]",
                                                    active)
        return active, apps

    # -- slice segments --

    def slice_segment(self, unit: bytes, offset: int, index: int, nal_unit_type: int,
                      temporal_id: int) -> None:
        where = f"{PATH}.nal_unit[{index}]"
        r = RbspReader(rbsp(unit), offset=offset, path=f"{where}.slice_segment_header")
        current = self.current
        header, active, _ = _slice_segment_header(
            r, nal_unit_type, lambda pps_id: self.activate(r, pps_id),
            None if current is None else current.last_header)
        self.headers.append((offset, header))
        if header.first_slice_segment_in_pic_flag:
            current = self.start_picture(r, header, active, offset, index, nal_unit_type,
                                         temporal_id, where)
        else:
            assert current is not None
            self.continue_picture(r, current, header, offset, nal_unit_type, temporal_id,
                                  where)
        current.last_header = header
        # a prefix SEI belongs to the picture of the next VCL NAL unit
        if self.pending_md5 is not None:
            if current.md5 is None:
                current.md5 = self.pending_md5
            self.pending_md5 = None

    def continue_picture(self, r: RbspReader, picture: _Picture, header: SliceSegmentHeader,
                         offset: int, nal_unit_type: int, temporal_id: int,
                         where: str) -> None:
        first: SliceSegmentHeader = picture.fields["header"]
        if nal_unit_type != first.nal_unit_type:
            raise ConformanceViolation(
                f"nal_unit_type shall be the same in all slice segments of a picture: "
                f"{first.nal_unit_type}, then {nal_unit_type}", clause="10.1",
                offset=offset, path=f"{where}.nal_unit_type")
        if temporal_id != picture.fields["temporal_id"]:
            raise ConformanceViolation(
                f"TemporalId shall be the same in all slice segments of a picture: "
                f"{picture.fields['temporal_id']}, then {temporal_id}", clause="10.1",
                offset=offset, path=f"{where}.nuh_temporal_id_plus1")
        for name in ("slice_pic_parameter_set_id", "no_output_of_prior_pics_flag",
                     "pic_output_flag", "slice_pic_order_cnt_lsb", "st_ref_pic_set",
                     "long_term_pictures", "slice_temporal_mvp_enabled_flag"):
            if getattr(header, name) != getattr(first, name):
                shown = name if name not in ("st_ref_pic_set", "long_term_pictures") \
                    else "the reference picture set"
                r.fail(name, f"{shown} shall be the same in all slice segment headers of a "
                             f"picture")
        if header.slice_segment_address in picture.addresses:
            r.fail("slice_segment_address", f"slice_segment_address "
                                            f"{header.slice_segment_address} is the address "
                                            f"of another slice segment of the picture")
        picture.addresses.add(header.slice_segment_address)
        picture.slice_types.append(header.slice_type)

    def start_picture(self, r: RbspReader, header: SliceSegmentHeader, active: ActiveSps,
                      offset: int, index: int, nal_unit_type: int, temporal_id: int,
                      where: str) -> _Picture:
        irap = nal_unit_type in IRAP_TYPES
        picture_0 = self.first_in_bitstream
        if (picture_0 or self.after_eos) and not irap:
            after = "the first picture of the payload" if picture_0 else \
                "the picture after an end of sequence NAL unit"
            raise ConformanceViolation(f"{after} shall be an IRAP picture (nal_unit_type 16 "
                                       f"to 21), got nal_unit_type {nal_unit_type}",
                                       clause="10.1", offset=offset,
                                       path=f"{where}.nal_unit_type")
        if irap and temporal_id != 0:
            raise ConformanceViolation(f"TemporalId shall be 0 in an IRAP picture, got "
                                       f"{temporal_id}", clause="10.1", offset=offset,
                                       path=f"{where}.nuh_temporal_id_plus1")
        no_rasl = 0
        if irap:
            no_rasl = int(nal_unit_type in IDR_TYPES or nal_unit_type in BLA_TYPES
                          or picture_0 or self.after_eos)
            self.irap_no_rasl = no_rasl
        if no_rasl:
            self.cvs += 1
            self.cvs_pocs = set()
        # 8.3.1: PicOrderCntVal
        max_lsb = active.max_poc_lsb
        lsb = header.slice_pic_order_cnt_lsb
        if no_rasl:
            msb = 0
        else:
            prev_lsb, prev_msb = self.prev_tid0 if self.prev_tid0 is not None else (0, 0)
            if lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
                msb = prev_msb + max_lsb
            elif lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
                msb = prev_msb - max_lsb
            else:
                msb = prev_msb
        poc = msb + lsb
        if not -2**31 <= poc < 2**31:
            r.fail("slice_pic_order_cnt_lsb", f"PicOrderCntVal shall be in the range -2^31 to "
                                              f"2^31 - 1, got {poc}")
        if poc in self.cvs_pocs:
            r.fail("slice_pic_order_cnt_lsb", f"PicOrderCntVal {poc} is that of another "
                                              f"picture of the coded video sequence")
        self.cvs_pocs.add(poc)
        sub_layer_non_reference = nal_unit_type <= 14 and nal_unit_type % 2 == 0
        if temporal_id == 0 and not (RADL_N <= nal_unit_type <= RASL_R
                                     or sub_layer_non_reference):
            self.prev_tid0 = (lsb, msb)
        # 8.1.3: PicOutputFlag; the RASL pictures of such an IRAP picture are not decoded
        rasl = nal_unit_type in (RASL_N, RASL_R)
        decoded = not (rasl and self.irap_no_rasl)
        output_flag = header.pic_output_flag if decoded else 0
        sps = active.sps
        picture = _Picture({
            "decode_index": len(self.pictures), "offset": offset, "nal_unit_index": index,
            "nal_unit_type": nal_unit_type, "temporal_id": temporal_id,
            "slice_type": header.slice_type, "poc": poc, "pic_output_flag": output_flag,
            "no_rasl_output_flag": no_rasl, "cvs": self.cvs, "decoded": int(decoded),
            "slice_qp": header.slice_qp_y, "width": sps.output_width,
            "height": sps.output_height, "bit_depth": sps.bit_depth,
            "chroma_format_idc": sps.chroma_format_idc, "header": header})
        picture.slice_types.append(header.slice_type)
        picture.addresses.add(header.slice_segment_address)
        self.pictures.append(picture)
        self.current = picture
        if decoded:
            self.decode(len(self.pictures) - 1, header, active, poc, no_rasl, picture_0)
        self.first_in_bitstream = self.after_eos = False
        return picture

    # -- the DPB (8.3.2, C.5.2) --

    def decode(self, number: int, header: SliceSegmentHeader, active: ActiveSps, poc: int,
               no_rasl: int, picture_0: bool) -> None:
        """The picture ``number`` is decoded: 8.3.2 and C.5.2.2 before, C.5.2.3 after."""
        sps = active.sps
        reorder = sps.sps_max_num_reorder_pics[-1]
        latency_plus1 = sps.sps_max_latency_increase_plus1[-1]
        max_latency = reorder + latency_plus1 - 1
        dpb_size = sps.sps_max_dec_pic_buffering_minus1[-1] + 1

        def waiting() -> int:
            return sum(s.needed_for_output for s in self.dpb)

        def too_late() -> bool:
            return latency_plus1 != 0 and any(s.needed_for_output and s.latency >= max_latency
                                              for s in self.dpb)

        if no_rasl:
            # 8.3.2: all reference pictures are marked unused; C.5.2.2
            for s in self.dpb:
                s.reference = False
            if not picture_0:
                nal_unit_type = header.nal_unit_type
                no_output = 1 if nal_unit_type == CRA_NUT else header.no_output_of_prior_pics_flag
                if no_output:
                    self.dpb = []           # emptied without output
                else:
                    while any(s.needed_for_output for s in self.dpb):
                        self.bump()
                    self.dpb = []
        else:
            self.mark_references(header, active, poc)
            self.dpb = [s for s in self.dpb if s.needed_for_output or s.reference]
            while waiting() > reorder or too_late() or len(self.dpb) >= dpb_size:
                if not self.bump():
                    break           # full of reference pictures: nothing to output
        # C.5.2.3
        output_flag = self.pictures[number].fields["pic_output_flag"]
        if output_flag:
            for s in self.dpb:
                if s.needed_for_output and s.poc > poc:
                    s.latency += 1
        self.dpb.append(_Stored(number, poc, bool(output_flag), True))
        while waiting() > reorder or too_late():
            self.bump()

    def mark_references(self, header: SliceSegmentHeader, active: ActiveSps, poc: int) -> None:
        """8.3.2: the pictures of the RPS stay reference pictures, the others are marked
        unused for reference."""
        rps = header.st_ref_pic_set
        short = {poc + d for d in rps.delta_poc_s0 + rps.delta_poc_s1}
        max_lsb = active.max_poc_lsb
        full, lsbs = set(), set()
        for lt in header.long_term_pictures:
            if lt.delta_poc_msb_present_flag:
                full.add(lt.poc_lsb_lt + poc - lt.delta_poc_msb_cycle_lt * max_lsb
                         - (poc & (max_lsb - 1)))
            else:
                lsbs.add(lt.poc_lsb_lt)
        for s in self.dpb:
            s.reference = s.reference and (s.poc in short or s.poc in full
                                           or (s.poc & (max_lsb - 1)) in lsbs)

    def bump(self) -> bool:
        """C.5.2.4: output the picture with the smallest PicOrderCntVal that waits."""
        candidates = [s for s in self.dpb if s.needed_for_output]
        if not candidates:
            return False
        first = min(candidates, key=lambda s: s.poc)
        picture = self.pictures[first.picture]
        cvs = picture.fields["cvs"]
        if self.output:
            last = self.pictures[self.output[-1]].fields
            if last["cvs"] == cvs and last["poc"] > first.poc:
                raise ConformanceViolation(
                    f"the picture with PicOrderCntVal {first.poc} is output after the one "
                    f"with PicOrderCntVal {last['poc']} of the same coded video sequence "
                    f"(the payload breaks its sps_max_num_reorder_pics, "
                    f"sps_max_latency_increase_plus1 or sps_max_dec_pic_buffering_minus1, "
                    f"C.5.2)", clause="10.1", offset=picture.fields["offset"],
                    path=f"{PATH}.nal_unit[{picture.fields['nal_unit_index']}]")
        picture.output_index = len(self.output)
        self.output.append(first.picture)
        first.needed_for_output = False
        if not first.reference:
            self.dpb.remove(first)
        return True

    def flush(self) -> None:
        """Output every picture that waits (the end of the bitstream)."""
        while self.bump():
            pass
        self.dpb = []

    # -- the other NAL units --

    def sei(self, unit: bytes, nal_unit_type: int) -> None:
        md5 = picture_md5(unit)
        if md5 is None:
            return
        if nal_unit_type == PREFIX_SEI_NUT:
            if self.pending_md5 is None:
                self.pending_md5 = md5
        elif self.current is not None and self.current.md5 is None:
            self.current.md5 = md5          # a suffix SEI: the picture it follows

    def end_of_sequence(self) -> None:
        self.after_eos = True
        self.current = None
        self.pending_md5 = None

    def end_of_bitstream(self) -> None:
        self.flush()
        self.first_in_bitstream = True
        self.current = None
        self.pending_md5 = None
        self.prev_tid0 = None


def _walk(payload: bytes) -> _Walk:
    walk = _Walk()
    for index, (offset, unit) in enumerate(split_nal_units_with_offsets(payload)):
        where = f"{PATH}.nal_unit[{index}]"
        if len(unit) < 2:
            raise ConformanceViolation("a NAL unit shall hold its two-byte header, got 1 byte",
                                       clause="10.1", offset=offset, path=where)
        if unit[0] & 0x80:
            raise ConformanceViolation("forbidden_zero_bit shall be 0, got 1", clause="10.1",
                                       offset=offset, path=f"{where}.forbidden_zero_bit")
        if unit[1] & 0x07 == 0:
            raise ConformanceViolation("nuh_temporal_id_plus1 shall not be 0", clause="10.1",
                                       offset=offset, path=f"{where}.nuh_temporal_id_plus1")
        if (unit[0] & 1) or (unit[1] >> 3):
            continue                    # nuh_layer_id > 0: not for this decoder
        nal_unit_type = (unit[0] >> 1) & 0x3F
        temporal_id = (unit[1] & 0x07) - 1
        if nal_unit_type in DECODED_VCL_TYPES:
            walk.slice_segment(unit, offset, index, nal_unit_type, temporal_id)
            continue
        if nal_unit_type < params.FIRST_NON_VCL_NUT:
            continue                    # a reserved VCL type: ignored
        if nal_unit_type == SPS_NUT:
            walk.sps_unit(unit, offset, where)
        elif nal_unit_type == PPS_NUT:
            walk.pps_unit(unit, offset, index, where)
        elif nal_unit_type in (PREFIX_SEI_NUT, SUFFIX_SEI_NUT):
            walk.sei(unit, nal_unit_type)
        elif nal_unit_type == EOS_NUT:
            walk.end_of_sequence()
        elif nal_unit_type == EOB_NUT:
            walk.end_of_bitstream()
    walk.flush()
    return walk


def _info(picture: _Picture) -> PictureInfo:
    return PictureInfo(**picture.fields, slice_types=tuple(picture.slice_types),
                       md5=picture.md5, output_index=picture.output_index)


def pictures(payload: bytes) -> list[PictureInfo]:
    """The coded pictures of an Annex-B payload in decoding order, each with its
    PicOrderCntVal, PicOutputFlag, hash SEI MD5 and position in output order.

    Raises ConformanceViolation (clause 10.1) on malformed data."""
    return [_info(p) for p in _walk(payload).pictures]


def slice_segment_headers(payload: bytes) -> list[tuple[int, SliceSegmentHeader]]:
    """Every slice segment header of the payload (RASL pictures that are not decoded
    included) with the byte offset of its NAL unit, in decoding order."""
    return _walk(payload).headers


def output_order(payload: bytes) -> list[PictureInfo]:
    """The pictures that are output, in output order (C.5.2): within each coded video
    sequence in increasing PicOrderCntVal; pictures with PicOutputFlag 0 and pictures
    discarded by NoOutputOfPriorPicsFlag are left out."""
    walk = _walk(payload)
    return [_info(walk.pictures[i]) for i in walk.output]


def picture_hashes_in_output_order(payload: bytes) -> list[bytes] | None:
    """The MD5s of the decoded picture hash SEIs in output order; None when an output
    picture has no MD5 hash SEI."""
    hashes = [p.md5 for p in output_order(payload)]
    if any(h is None for h in hashes):
        return None
    return hashes
