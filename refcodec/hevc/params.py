"""HEVC parameter sets (ITU-T H.265 7.3.2) of an hevc_payload and the clause 10 container
constraints on them.

``parse_parameter_sets`` walks the NAL units of an Annex-B payload and parses

* each VPS up to its profile_tier_level() (7.3.2.1),
* each SPS completely (7.3.2.2.1) up to sps_range_extension() (7.3.2.2.2), including
  scaling_list_data() (7.3.4), st_ref_pic_set() (7.3.7), vui_parameters() (E.2.1) and
  hrd_parameters() (E.2.2); rbsp_trailing_bits() are checked unless an SPS carries the
  multilayer, 3D or SCC extensions or sps_extension_4bits, which are not parsed,
* each PPS up to transquant_bypass_enabled_flag (7.3.2.3.1),
* of each slice segment (nal_unit_type 0..31) only first_slice_segment_in_pic_flag.

Malformed data raises ConformanceViolation with clause 10.1, the byte offset of the NAL unit
in the payload and the syntax path of the element; nothing else escapes for any input, and
every loop count read from the bitstream is bounded by H.265's ranges, so the work is
linear in the payload size.  ``check_payload`` reports the clause 10.1-10.7 constraints.

A parse depends on the NAL unit's bytes alone, so parsed parameter sets are kept by their
bytes (payloads of one encoder repeat the same VPS, SPS and PPS); a violation is never kept.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

import numpy as np
from bitstring import Bits, Reader

from ..errors import ConformanceViolation
from .annexb import PPS_NUT, SPS_NUT, VPS_NUT, rbsp, split_nal_units_with_offsets

PATH = "hevc_payload"
#: The largest value of a ue(v) syntax element (9.2).
UE_MAX = 2**32 - 2
#: nal_unit_type 0..31 are VCL NAL units (Table 7-1).
FIRST_NON_VCL_NUT = 32
#: aspect_ratio_idc of an explicit sar_width/sar_height (Table E.1).
EXTENDED_SAR = 255

#: SubWidthC and SubHeightC by chroma_format_idc (Table 6-1; also with separate planes).
SUB_WIDTH_C = (1, 2, 2, 1)
SUB_HEIGHT_C = (1, 2, 1, 1)

RANGE_EXTENSION_FLAGS = (
    "transform_skip_rotation_enabled_flag", "transform_skip_context_enabled_flag",
    "implicit_rdpcm_enabled_flag", "explicit_rdpcm_enabled_flag",
    "extended_precision_processing_flag", "intra_smoothing_disabled_flag",
    "high_precision_offsets_enabled_flag", "persistent_rice_adaptation_enabled_flag",
    "cabac_bypass_alignment_enabled_flag")

# Table A.2, the format range extensions profiles: general_max_12bit, _10bit, _8bit,
# _422chroma, _420chroma, _monochrome, general_intra and general_one_picture_only constraint
# flags, then the allowed general_lower_bit_rate_constraint_flag values.
_ANY = (0, 1)
_REXT_PROFILES = (
    ("Monochrome", (1, 1, 1, 1, 1, 1, 0, 0), (1,)),
    ("Monochrome 10", (1, 1, 0, 1, 1, 1, 0, 0), (1,)),
    ("Monochrome 12", (1, 0, 0, 1, 1, 1, 0, 0), (1,)),
    ("Monochrome 16", (0, 0, 0, 1, 1, 1, 0, 0), (1,)),
    ("Main 12", (1, 0, 0, 1, 1, 0, 0, 0), (1,)),
    ("Main 4:2:2 10", (1, 1, 0, 1, 0, 0, 0, 0), (1,)),
    ("Main 4:2:2 12", (1, 0, 0, 1, 0, 0, 0, 0), (1,)),
    ("Main 4:4:4", (1, 1, 1, 0, 0, 0, 0, 0), (1,)),
    ("Main 4:4:4 10", (1, 1, 0, 0, 0, 0, 0, 0), (1,)),
    ("Main 4:4:4 12", (1, 0, 0, 0, 0, 0, 0, 0), (1,)),
    ("Main Intra", (1, 1, 1, 1, 1, 0, 1, 0), _ANY),
    ("Main 10 Intra", (1, 1, 0, 1, 1, 0, 1, 0), _ANY),
    ("Main 12 Intra", (1, 0, 0, 1, 1, 0, 1, 0), _ANY),
    ("Main 4:2:2 10 Intra", (1, 1, 0, 1, 0, 0, 1, 0), _ANY),
    ("Main 4:2:2 12 Intra", (1, 0, 0, 1, 0, 0, 1, 0), _ANY),
    ("Main 4:4:4 Intra", (1, 1, 1, 0, 0, 0, 1, 0), _ANY),
    ("Main 4:4:4 10 Intra", (1, 1, 0, 0, 0, 0, 1, 0), _ANY),
    ("Main 4:4:4 12 Intra", (1, 0, 0, 0, 0, 0, 1, 0), _ANY),
    ("Main 4:4:4 16 Intra", (0, 0, 0, 0, 0, 0, 1, 0), _ANY),
    ("Main 4:4:4 Still Picture", (1, 1, 1, 0, 0, 0, 1, 1), _ANY),
    ("Main 4:4:4 16 Still Picture", (0, 0, 0, 0, 0, 0, 1, 1), _ANY),
)


def _signals(profile_idc: int, compatibility_flags: int, j: int) -> bool:
    """general_profile_idc is j or general_profile_compatibility_flag[j] is 1 (A.3)."""
    return profile_idc == j or bool((compatibility_flags >> (31 - j)) & 1)


def _shown(value: int) -> str:
    """A value for a message (a huge Exp-Golomb value is too long to print in full)."""
    return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit value"


#: Where ``recording`` keeps the recorder of the syntax elements read in this thread.
_tracing = threading.local()


@contextmanager
def recording(recorder) -> Iterator[None]:
    """Call ``recorder(reader, path, descriptor, start_bit, end_bit, value)`` for every
    syntax element an RbspReader created in this thread reads or steps over (value None),
    ``start_bit``/``end_bit`` in the RBSP (refcodec.trace).  Off, it costs one test per
    element."""
    outer = getattr(_tracing, "recorder", None)
    _tracing.recorder = recorder
    try:
        yield
    finally:
        _tracing.recorder = outer


class RbspReader:
    """The syntax elements of one RBSP, read with the descriptors of H.265 7.2.

    Every problem (reading past the end, a value out of its range) raises
    ConformanceViolation with clause 10.1, the NAL unit's offset and the element's path.
    """

    def __init__(self, data: bytes, *, offset: int, path: str):
        self._reader = Reader(Bits.from_bytes(data))
        self._offset = offset
        self._path = path
        #: The recorder of ``recording`` (refcodec.trace), None when nothing is traced.
        self.recorder = getattr(_tracing, "recorder", None)

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Name a syntax structure in the paths of the elements read inside it."""
        outer = self._path
        self._path = f"{outer}.{name}"
        try:
            yield
        finally:
            self._path = outer

    def fail(self, name: str, message: str) -> NoReturn:
        raise ConformanceViolation(message, clause="10.1", offset=self._offset,
                                   path=f"{self._path}.{name}")

    def _read(self, dtype: str, name: str):
        start = self._reader.pos if self.recorder is not None else 0
        try:
            value = self._reader.read_value(dtype)
        except ValueError:  # bitstring.ReadError: past the end, or an unfinished ue/se code
            self.fail(name, f"{name} runs past the end of the NAL unit")
        if self.recorder is not None:
            self.recorder(self, f"{self._path}.{name}", dtype, start, self._reader.pos, value)
        return value

    def raw_bits(self, start: int, end: int) -> str:
        """The RBSP bits start..end as "0"/"1" characters (for a trace)."""
        return self._reader.bits[start:end].bin

    def _in_range(self, name: str, value: int, minimum: int, maximum: int) -> int:
        if not minimum <= value <= maximum:
            self.fail(name, f"{name} shall be in the range {minimum} to {maximum}, "
                            f"got {_shown(value)}")
        return value

    def u(self, bits: int, name: str, maximum: int | None = None) -> int:
        """u(n), optionally with an upper bound."""
        value = self._read(f"u{bits}", name)
        return value if maximum is None else self._in_range(name, value, 0, maximum)

    def flag(self, name: str) -> int:
        """u(1)."""
        return int(self._read("bool", name))

    def skip(self, bits: int, name: str) -> None:
        """Step over an element whose value is not needed."""
        if self._reader.remaining < bits:
            self.fail(name, f"{name} runs past the end of the NAL unit")
        self._reader.pos += bits
        if self.recorder is not None:
            self.recorder(self, f"{self._path}.{name}", f"u{bits}", self._reader.pos - bits,
                          self._reader.pos, None)

    def ue(self, name: str, maximum: int = UE_MAX, minimum: int = 0) -> int:
        """ue(v) (9.2) in [minimum, maximum]."""
        return self._in_range(name, self._read("ue", name), minimum, maximum)

    def se(self, name: str, minimum: int, maximum: int) -> int:
        """se(v) (9.2.2) in [minimum, maximum]."""
        return self._in_range(name, self._read("se", name), minimum, maximum)

    def rbsp_trailing_bits(self) -> None:
        """rbsp_trailing_bits() (7.3.2.11): a one bit, then zero bits to the end of the unit."""
        if not self.flag("rbsp_stop_one_bit"):
            self.fail("rbsp_stop_one_bit", "rbsp_stop_one_bit shall be 1, got 0 (the "
                                           "parameter set does not end where it should)")
        if self._reader.read_bits(self._reader.remaining).any(True):
            self.fail("rbsp_alignment_zero_bit", "the bits after rbsp_stop_one_bit shall be 0 "
                                                 "(the parameter set does not end where it "
                                                 "should)")


@dataclasses.dataclass(frozen=True)
class ProfileTierLevel:
    """The general part of profile_tier_level() (7.3.3); constraint flags that the profile
    does not signal are 0."""

    general_profile_space: int
    general_tier_flag: int
    general_profile_idc: int
    general_profile_compatibility_flags: int  # flag[j] is bit 31 - j
    general_progressive_source_flag: int
    general_interlaced_source_flag: int
    general_non_packed_constraint_flag: int
    general_frame_only_constraint_flag: int
    general_max_12bit_constraint_flag: int
    general_max_10bit_constraint_flag: int
    general_max_8bit_constraint_flag: int
    general_max_422chroma_constraint_flag: int
    general_max_420chroma_constraint_flag: int
    general_max_monochrome_constraint_flag: int
    general_intra_constraint_flag: int
    general_one_picture_only_constraint_flag: int
    general_lower_bit_rate_constraint_flag: int
    general_level_idc: int

    def profile_compatibility_flag(self, j: int) -> int:
        """general_profile_compatibility_flag[j]."""
        return (self.general_profile_compatibility_flags >> (31 - j)) & 1

    def signals_profile(self, idc: int) -> bool:
        """general_profile_idc is idc or general_profile_compatibility_flag[idc] is 1."""
        return _signals(self.general_profile_idc, self.general_profile_compatibility_flags, idc)

    @property
    def profile_name(self) -> str:
        """The profile of Annex A: general_profile_idc 1 to 3, or 4 named from the constraint
        flags by Table A.2 (the lowest compatibility flag 1 to 4 when general_profile_idc is
        none of these); "unknown" for anything else."""
        if self.general_profile_space != 0:
            return "unknown"
        idc = self.general_profile_idc
        if not 1 <= idc <= 4:
            idc = next((j for j in range(1, 5) if self.profile_compatibility_flag(j)), 0)
        if idc == 1:
            return "Main"
        if idc == 2:
            return "Main 10 Still Picture" if self.general_one_picture_only_constraint_flag \
                else "Main 10"
        if idc == 3:
            return "Main Still Picture"
        if idc == 4:
            flags = (self.general_max_12bit_constraint_flag,
                     self.general_max_10bit_constraint_flag,
                     self.general_max_8bit_constraint_flag,
                     self.general_max_422chroma_constraint_flag,
                     self.general_max_420chroma_constraint_flag,
                     self.general_max_monochrome_constraint_flag,
                     self.general_intra_constraint_flag,
                     self.general_one_picture_only_constraint_flag)
            for name, row, lower_bit_rate in _REXT_PROFILES:
                if row == flags and self.general_lower_bit_rate_constraint_flag in lower_bit_rate:
                    return name
        return "unknown"


@dataclasses.dataclass(frozen=True)
class VPS:
    """The start of video_parameter_set_rbsp() (7.3.2.1), up to its profile_tier_level()."""

    vps_video_parameter_set_id: int
    vps_max_sub_layers_minus1: int
    profile_tier_level: ProfileTierLevel


@dataclasses.dataclass(frozen=True)
class ShortTermRefPicSet:
    """A st_ref_pic_set() (7.3.7) as the derived lists of 7.4.8."""

    delta_poc_s0: tuple[int, ...]
    used_by_curr_pic_s0: tuple[int, ...]
    delta_poc_s1: tuple[int, ...]
    used_by_curr_pic_s1: tuple[int, ...]

    @property
    def num_delta_pocs(self) -> int:
        return len(self.delta_poc_s0) + len(self.delta_poc_s1)


@dataclasses.dataclass(frozen=True)
class SPS:
    """seq_parameter_set_rbsp() (7.3.2.2.1).  Elements absent from the bitstream hold their
    inferred value, or 0 where H.265 infers none (the pcm_* elements without PCM); the
    sps_max_* tuples hold one value per sub-layer."""

    sps_video_parameter_set_id: int
    sps_max_sub_layers_minus1: int
    sps_temporal_id_nesting_flag: int
    profile_tier_level: ProfileTierLevel
    sps_seq_parameter_set_id: int
    chroma_format_idc: int
    separate_colour_plane_flag: int
    pic_width_in_luma_samples: int
    pic_height_in_luma_samples: int
    conformance_window_flag: int
    conf_win_left_offset: int
    conf_win_right_offset: int
    conf_win_top_offset: int
    conf_win_bottom_offset: int
    bit_depth_luma_minus8: int
    bit_depth_chroma_minus8: int
    log2_max_pic_order_cnt_lsb_minus4: int
    sps_sub_layer_ordering_info_present_flag: int
    sps_max_dec_pic_buffering_minus1: tuple[int, ...]
    sps_max_num_reorder_pics: tuple[int, ...]
    sps_max_latency_increase_plus1: tuple[int, ...]
    log2_min_luma_coding_block_size_minus3: int
    log2_diff_max_min_luma_coding_block_size: int
    log2_min_luma_transform_block_size_minus2: int
    log2_diff_max_min_luma_transform_block_size: int
    max_transform_hierarchy_depth_inter: int
    max_transform_hierarchy_depth_intra: int
    scaling_list_enabled_flag: int
    sps_scaling_list_data_present_flag: int
    amp_enabled_flag: int
    sample_adaptive_offset_enabled_flag: int
    pcm_enabled_flag: int
    pcm_sample_bit_depth_luma_minus1: int
    pcm_sample_bit_depth_chroma_minus1: int
    log2_min_pcm_luma_coding_block_size_minus3: int
    log2_diff_max_min_pcm_luma_coding_block_size: int
    pcm_loop_filter_disabled_flag: int
    num_short_term_ref_pic_sets: int
    st_ref_pic_sets: tuple[ShortTermRefPicSet, ...]
    long_term_ref_pics_present_flag: int
    num_long_term_ref_pics_sps: int
    sps_temporal_mvp_enabled_flag: int
    strong_intra_smoothing_enabled_flag: int
    vui_parameters_present_flag: int
    sps_extension_present_flag: int
    sps_range_extension_flag: int
    sps_multilayer_extension_flag: int
    sps_3d_extension_flag: int
    sps_scc_extension_flag: int
    sps_extension_4bits: int
    # sps_range_extension() (7.3.2.2.2), all 0 when it is absent
    transform_skip_rotation_enabled_flag: int
    transform_skip_context_enabled_flag: int
    implicit_rdpcm_enabled_flag: int
    explicit_rdpcm_enabled_flag: int
    extended_precision_processing_flag: int
    intra_smoothing_disabled_flag: int
    high_precision_offsets_enabled_flag: int
    persistent_rice_adaptation_enabled_flag: int
    cabac_bypass_alignment_enabled_flag: int

    @property
    def bit_depth(self) -> int:
        """BitDepthY (7-4)."""
        return 8 + self.bit_depth_luma_minus8

    @property
    def output_width(self) -> int:
        """The width of the cropped output picture (7.4.3.2.1)."""
        return self.pic_width_in_luma_samples - SUB_WIDTH_C[self.chroma_format_idc] * (
            self.conf_win_left_offset + self.conf_win_right_offset)

    @property
    def output_height(self) -> int:
        """The height of the cropped output picture (7.4.3.2.1)."""
        return self.pic_height_in_luma_samples - SUB_HEIGHT_C[self.chroma_format_idc] * (
            self.conf_win_top_offset + self.conf_win_bottom_offset)


@dataclasses.dataclass(frozen=True)
class PPS:
    """pic_parameter_set_rbsp() (7.3.2.3.1) up to transquant_bypass_enabled_flag."""

    pps_pic_parameter_set_id: int
    pps_seq_parameter_set_id: int
    dependent_slice_segments_enabled_flag: int
    output_flag_present_flag: int
    num_extra_slice_header_bits: int
    sign_data_hiding_enabled_flag: int
    cabac_init_present_flag: int
    num_ref_idx_l0_default_active_minus1: int
    num_ref_idx_l1_default_active_minus1: int
    init_qp_minus26: int
    constrained_intra_pred_flag: int
    transform_skip_enabled_flag: int
    cu_qp_delta_enabled_flag: int
    diff_cu_qp_delta_depth: int
    pps_cb_qp_offset: int
    pps_cr_qp_offset: int
    pps_slice_chroma_qp_offsets_present_flag: int
    weighted_pred_flag: int
    weighted_bipred_flag: int
    transquant_bypass_enabled_flag: int


@dataclasses.dataclass(frozen=True)
class ParameterSets:
    """The parameter sets of a payload, each with the byte offset of its NAL unit."""

    vps: tuple[tuple[int, VPS], ...]
    sps: tuple[tuple[int, SPS], ...]
    pps: tuple[tuple[int, PPS], ...]
    #: VCL NAL units with first_slice_segment_in_pic_flag 1: the coded pictures.
    num_pictures: int
    #: Byte offset of the first VCL NAL unit, None when there is none.
    first_vcl_offset: int | None


# ---- syntax structures ----

def _profile_tier_level(r: RbspReader, max_sub_layers_minus1: int) -> ProfileTierLevel:
    """profile_tier_level(1, maxNumSubLayersMinus1) (7.3.3)."""
    with r.scope("profile_tier_level"):
        v = {"general_profile_space": r.u(2, "general_profile_space"),
             "general_tier_flag": r.flag("general_tier_flag"),
             "general_profile_idc": r.u(5, "general_profile_idc"),
             "general_profile_compatibility_flags": r.u(32, "general_profile_compatibility_flag"),
             "general_progressive_source_flag": r.flag("general_progressive_source_flag"),
             "general_interlaced_source_flag": r.flag("general_interlaced_source_flag"),
             "general_non_packed_constraint_flag": r.flag("general_non_packed_constraint_flag"),
             "general_frame_only_constraint_flag": r.flag("general_frame_only_constraint_flag")}
        rext = ("general_max_12bit_constraint_flag", "general_max_10bit_constraint_flag",
                "general_max_8bit_constraint_flag", "general_max_422chroma_constraint_flag",
                "general_max_420chroma_constraint_flag",
                "general_max_monochrome_constraint_flag", "general_intra_constraint_flag",
                "general_one_picture_only_constraint_flag",
                "general_lower_bit_rate_constraint_flag")
        v.update(dict.fromkeys(rext, 0))
        idc, compat = v["general_profile_idc"], v["general_profile_compatibility_flags"]
        # 43 bits of constraint flags, whose meaning depends on the profile
        if any(_signals(idc, compat, j) for j in range(4, 12)):
            for name in rext:
                v[name] = r.flag(name)
            r.skip(34, "general_reserved_zero_34bits")  # or max_14bit flag + 33 bits
        elif _signals(idc, compat, 2):
            r.skip(7, "general_reserved_zero_7bits")
            v["general_one_picture_only_constraint_flag"] = r.flag(
                "general_one_picture_only_constraint_flag")
            r.skip(35, "general_reserved_zero_35bits")
        else:
            r.skip(43, "general_reserved_zero_43bits")
        r.skip(1, "general_inbld_flag")
        v["general_level_idc"] = r.u(8, "general_level_idc")

        present = [(r.flag(f"sub_layer_profile_present_flag[{i}]"),
                    r.flag(f"sub_layer_level_present_flag[{i}]"))
                   for i in range(max_sub_layers_minus1)]
        if max_sub_layers_minus1 > 0:
            r.skip(2 * (8 - max_sub_layers_minus1), "reserved_zero_2bits")
        for i, (profile_present, level_present) in enumerate(present):
            if profile_present:  # sub_layer_profile_space .. sub_layer_inbld_flag
                r.skip(88, f"sub_layer_profile[{i}]")
            if level_present:
                r.skip(8, f"sub_layer_level_idc[{i}]")
    return ProfileTierLevel(**v)


def _vps(r: RbspReader) -> VPS:
    """video_parameter_set_rbsp() (7.3.2.1) up to its profile_tier_level()."""
    vps_id = r.u(4, "vps_video_parameter_set_id")
    r.skip(1, "vps_base_layer_internal_flag")
    r.skip(1, "vps_base_layer_available_flag")
    r.skip(6, "vps_max_layers_minus1")
    max_sub_layers_minus1 = r.u(3, "vps_max_sub_layers_minus1", maximum=6)
    r.skip(1, "vps_temporal_id_nesting_flag")
    r.skip(16, "vps_reserved_0xffff_16bits")
    return VPS(vps_id, max_sub_layers_minus1, _profile_tier_level(r, max_sub_layers_minus1))


def _scaling_list_data(r: RbspReader) -> None:
    """scaling_list_data() (7.3.4), checked and skipped."""
    with r.scope("scaling_list_data"):
        for size_id in range(4):
            for matrix_id in range(0, 6, 3 if size_id == 3 else 1):
                at = f"[{size_id}][{matrix_id}]"
                if not r.flag(f"scaling_list_pred_mode_flag{at}"):
                    r.ue(f"scaling_list_pred_matrix_id_delta{at}",
                         matrix_id // 3 if size_id == 3 else matrix_id)
                    continue
                next_coef = 8
                if size_id > 1:
                    next_coef = 8 + r.se(f"scaling_list_dc_coef_minus8{at}", -7, 247)
                for i in range(min(64, 1 << (4 + (size_id << 1)))):
                    name = f"scaling_list_delta_coef{at}[{i}]"
                    next_coef = (next_coef + r.se(name, -128, 127) + 256) % 256
                    if next_coef == 0:  # 7.4.5: ScalingList values are greater than 0
                        r.fail(name, f"{name} makes a scaling list entry 0; entries shall be "
                                     f"greater than 0")


def _st_ref_pic_set(r: RbspReader, idx: int, sets: Sequence[ShortTermRefPicSet],
                    max_dec_pic_buffering_minus1: int, *,
                    slice_header: bool = False) -> ShortTermRefPicSet:
    """st_ref_pic_set(stRpsIdx) (7.3.7) and its lists (7.4.8): of an SPS, or with
    ``slice_header`` the one a slice segment header carries (stRpsIdx equal to
    num_short_term_ref_pic_sets, refcodec.hevc.slices)."""
    with r.scope(f"st_ref_pic_set[{idx}]"):
        if idx and r.flag("inter_ref_pic_set_prediction_flag"):
            # In an SPS delta_idx_minus1 is absent and 0: RefRpsIdx = stRpsIdx - 1; in a
            # slice segment header it picks any set of the SPS.
            ref = sets[idx - (r.ue("delta_idx_minus1", idx - 1) + 1 if slice_header else 1)]
            sign = r.flag("delta_rps_sign")
            delta_rps = (1 - 2 * sign) * (r.ue("abs_delta_rps_minus1", 2**15 - 1) + 1)
            used, use_delta = [], []
            for j in range(ref.num_delta_pocs + 1):
                used.append(r.flag(f"used_by_curr_pic_flag[{j}]"))
                use_delta.append(1 if used[j] else r.flag(f"use_delta_flag[{j}]"))
            # Entry j of the reference set: S0 then S1; entry NumDeltaPocs is deltaRps itself.
            neg = len(ref.delta_poc_s0)
            s0, s1 = [], []
            # (7-61): the negative pictures, closest first
            for j in reversed(range(len(ref.delta_poc_s1))):
                if ref.delta_poc_s1[j] + delta_rps < 0 and use_delta[neg + j]:
                    s0.append((ref.delta_poc_s1[j] + delta_rps, used[neg + j]))
            if delta_rps < 0 and use_delta[-1]:
                s0.append((delta_rps, used[-1]))
            for j in range(neg):
                if ref.delta_poc_s0[j] + delta_rps < 0 and use_delta[j]:
                    s0.append((ref.delta_poc_s0[j] + delta_rps, used[j]))
            # (7-62): the positive pictures, closest first
            for j in reversed(range(neg)):
                if ref.delta_poc_s0[j] + delta_rps > 0 and use_delta[j]:
                    s1.append((ref.delta_poc_s0[j] + delta_rps, used[j]))
            if delta_rps > 0 and use_delta[-1]:
                s1.append((delta_rps, used[-1]))
            for j in range(len(ref.delta_poc_s1)):
                if ref.delta_poc_s1[j] + delta_rps > 0 and use_delta[neg + j]:
                    s1.append((ref.delta_poc_s1[j] + delta_rps, used[neg + j]))
            if slice_header and len(s0) + len(s1) > max_dec_pic_buffering_minus1:
                r.fail("abs_delta_rps_minus1",
                       f"the predicted RPS holds {len(s0) + len(s1)} pictures, more than "
                       f"sps_max_dec_pic_buffering_minus1 {max_dec_pic_buffering_minus1}")
        else:
            num_negative = r.ue("num_negative_pics", max_dec_pic_buffering_minus1)
            num_positive = r.ue("num_positive_pics", max_dec_pic_buffering_minus1 - num_negative)
            s0, s1, poc = [], [], 0
            for i in range(num_negative):  # (7-65), (7-67)
                poc -= r.ue(f"delta_poc_s0_minus1[{i}]", 2**15 - 1) + 1
                s0.append((poc, r.flag(f"used_by_curr_pic_s0_flag[{i}]")))
            poc = 0
            for i in range(num_positive):  # (7-66), (7-68)
                poc += r.ue(f"delta_poc_s1_minus1[{i}]", 2**15 - 1) + 1
                s1.append((poc, r.flag(f"used_by_curr_pic_s1_flag[{i}]")))
    return ShortTermRefPicSet(tuple(p for p, _ in s0), tuple(u for _, u in s0),
                              tuple(p for p, _ in s1), tuple(u for _, u in s1))


def _sub_layer_hrd_parameters(r: RbspReader, sub_layer: int, cpb_cnt: int,
                              sub_pic_hrd_params_present: int) -> None:
    """sub_layer_hrd_parameters(subLayerId) (E.2.3), checked and skipped."""
    with r.scope(f"sub_layer_hrd_parameters[{sub_layer}]"):
        for i in range(cpb_cnt):
            r.ue(f"bit_rate_value_minus1[{i}]")
            r.ue(f"cpb_size_value_minus1[{i}]")
            if sub_pic_hrd_params_present:
                r.ue(f"cpb_size_du_value_minus1[{i}]")
                r.ue(f"bit_rate_du_value_minus1[{i}]")
            r.skip(1, f"cbr_flag[{i}]")


def _hrd_parameters(r: RbspReader, max_sub_layers_minus1: int) -> None:
    """hrd_parameters(1, maxNumSubLayersMinus1) (E.2.2) of the VUI, checked and skipped."""
    with r.scope("hrd_parameters"):
        nal = r.flag("nal_hrd_parameters_present_flag")
        vcl = r.flag("vcl_hrd_parameters_present_flag")
        sub_pic = 0
        if nal or vcl:
            sub_pic = r.flag("sub_pic_hrd_params_present_flag")
            if sub_pic:
                r.skip(8, "tick_divisor_minus2")
                r.skip(5, "du_cpb_removal_delay_increment_length_minus1")
                r.skip(1, "sub_pic_cpb_params_in_pic_timing_sei_flag")
                r.skip(5, "dpb_output_delay_du_length_minus1")
            r.skip(4, "bit_rate_scale")
            r.skip(4, "cpb_size_scale")
            if sub_pic:
                r.skip(4, "cpb_size_du_scale")
            r.skip(5, "initial_cpb_removal_delay_length_minus1")
            r.skip(5, "au_cpb_removal_delay_length_minus1")
            r.skip(5, "dpb_output_delay_length_minus1")
        for i in range(max_sub_layers_minus1 + 1):
            # fixed_pic_rate_within_cvs_flag is inferred 1 with fixed_pic_rate_general_flag
            fixed = r.flag(f"fixed_pic_rate_general_flag[{i}]") or \
                r.flag(f"fixed_pic_rate_within_cvs_flag[{i}]")
            low_delay = 0
            if fixed:
                r.ue(f"elemental_duration_in_tc_minus1[{i}]", 2047)
            else:
                low_delay = r.flag(f"low_delay_hrd_flag[{i}]")
            cpb_cnt = 1 if low_delay else r.ue(f"cpb_cnt_minus1[{i}]", 31) + 1
            for present in (nal, vcl):
                if present:
                    _sub_layer_hrd_parameters(r, i, cpb_cnt, sub_pic)


def _vui_parameters(r: RbspReader, max_sub_layers_minus1: int) -> None:
    """vui_parameters() (E.2.1), checked and skipped."""
    with r.scope("vui_parameters"):
        if r.flag("aspect_ratio_info_present_flag"):
            if r.u(8, "aspect_ratio_idc") == EXTENDED_SAR:
                r.skip(16, "sar_width")
                r.skip(16, "sar_height")
        if r.flag("overscan_info_present_flag"):
            r.skip(1, "overscan_appropriate_flag")
        if r.flag("video_signal_type_present_flag"):
            r.skip(3, "video_format")
            r.skip(1, "video_full_range_flag")
            if r.flag("colour_description_present_flag"):
                r.skip(8, "colour_primaries")
                r.skip(8, "transfer_characteristics")
                r.skip(8, "matrix_coeffs")
        if r.flag("chroma_loc_info_present_flag"):
            r.ue("chroma_sample_loc_type_top_field", 5)
            r.ue("chroma_sample_loc_type_bottom_field", 5)
        r.skip(1, "neutral_chroma_indication_flag")
        r.skip(1, "field_seq_flag")
        r.skip(1, "frame_field_info_present_flag")
        if r.flag("default_display_window_flag"):
            for side in ("left", "right", "top", "bottom"):
                r.ue(f"def_disp_win_{side}_offset")
        if r.flag("vui_timing_info_present_flag"):
            r.skip(32, "vui_num_units_in_tick")
            r.skip(32, "vui_time_scale")
            if r.flag("vui_poc_proportional_to_timing_flag"):
                r.ue("vui_num_ticks_poc_diff_one_minus1")
            if r.flag("vui_hrd_parameters_present_flag"):
                _hrd_parameters(r, max_sub_layers_minus1)
        if r.flag("bitstream_restriction_flag"):
            r.skip(1, "tiles_fixed_structure_flag")
            r.skip(1, "motion_vectors_over_pic_boundaries_flag")
            r.skip(1, "restricted_ref_pic_lists_flag")
            r.ue("min_spatial_segmentation_idc", 4095)
            r.ue("max_bytes_per_pic_denom", 16)
            r.ue("max_bits_per_min_cu_denom", 16)
            r.ue("log2_max_mv_length_horizontal", 15)
            r.ue("log2_max_mv_length_vertical", 15)


def _sps(r: RbspReader) -> SPS:
    """seq_parameter_set_rbsp() (7.3.2.2.1) with its range extension (7.3.2.2.2)."""
    v: dict = {}
    v["sps_video_parameter_set_id"] = r.u(4, "sps_video_parameter_set_id")
    max_sub = v["sps_max_sub_layers_minus1"] = r.u(3, "sps_max_sub_layers_minus1", maximum=6)
    v["sps_temporal_id_nesting_flag"] = r.flag("sps_temporal_id_nesting_flag")
    v["profile_tier_level"] = _profile_tier_level(r, max_sub)
    v["sps_seq_parameter_set_id"] = r.ue("sps_seq_parameter_set_id", 15)
    chroma = v["chroma_format_idc"] = r.ue("chroma_format_idc", 3)
    v["separate_colour_plane_flag"] = r.flag("separate_colour_plane_flag") if chroma == 3 else 0
    width = v["pic_width_in_luma_samples"] = r.ue("pic_width_in_luma_samples", 65535, 1)
    height = v["pic_height_in_luma_samples"] = r.ue("pic_height_in_luma_samples", 65535, 1)
    window = v["conformance_window_flag"] = r.flag("conformance_window_flag")
    for side in ("left", "right", "top", "bottom"):
        v[f"conf_win_{side}_offset"] = r.ue(f"conf_win_{side}_offset") if window else 0
    # 7.4.3.2.1: the window leaves at least one sample in each direction
    if SUB_WIDTH_C[chroma] * (v["conf_win_left_offset"] + v["conf_win_right_offset"]) >= width:
        r.fail("conf_win_right_offset", f"the conformance window shall be narrower than "
                                        f"pic_width_in_luma_samples {width}")
    if SUB_HEIGHT_C[chroma] * (v["conf_win_top_offset"] + v["conf_win_bottom_offset"]) >= height:
        r.fail("conf_win_bottom_offset", f"the conformance window shall be lower than "
                                         f"pic_height_in_luma_samples {height}")
    for name in ("bit_depth_luma_minus8", "bit_depth_chroma_minus8"):
        v[name] = r.ue(name, 8)
    v["log2_max_pic_order_cnt_lsb_minus4"] = r.ue("log2_max_pic_order_cnt_lsb_minus4", 12)

    ordering = v["sps_sub_layer_ordering_info_present_flag"] = r.flag(
        "sps_sub_layer_ordering_info_present_flag")
    dpb, reorder, latency = [], [], []
    for i in range(0 if ordering else max_sub, max_sub + 1):
        dpb.append(r.ue(f"sps_max_dec_pic_buffering_minus1[{i}]", 15))  # MaxDpbSize <= 16
        reorder.append(r.ue(f"sps_max_num_reorder_pics[{i}]", dpb[-1]))
        latency.append(r.ue(f"sps_max_latency_increase_plus1[{i}]"))
    # Without ordering info the lower sub-layers take the values of the highest.
    lower = max_sub + 1 - len(dpb)
    v["sps_max_dec_pic_buffering_minus1"] = tuple(dpb[:1] * lower + dpb)
    v["sps_max_num_reorder_pics"] = tuple(reorder[:1] * lower + reorder)
    v["sps_max_latency_increase_plus1"] = tuple(latency[:1] * lower + latency)

    # Block sizes (7.4.3.2.1): MinCbLog2SizeY <= CtbLog2SizeY <= 6,
    # MinTbLog2SizeY < MinCbLog2SizeY, MaxTbLog2SizeY <= Min(CtbLog2SizeY, 5).
    min_cb = 3 + r.ue("log2_min_luma_coding_block_size_minus3", 3)
    ctb = min_cb + r.ue("log2_diff_max_min_luma_coding_block_size", 6 - min_cb)
    min_tb = 2 + r.ue("log2_min_luma_transform_block_size_minus2", min_cb - 3)
    max_tb = min_tb + r.ue("log2_diff_max_min_luma_transform_block_size", min(ctb, 5) - min_tb)
    v["log2_min_luma_coding_block_size_minus3"] = min_cb - 3
    v["log2_diff_max_min_luma_coding_block_size"] = ctb - min_cb
    v["log2_min_luma_transform_block_size_minus2"] = min_tb - 2
    v["log2_diff_max_min_luma_transform_block_size"] = max_tb - min_tb
    for name in ("max_transform_hierarchy_depth_inter", "max_transform_hierarchy_depth_intra"):
        v[name] = r.ue(name, ctb - min_tb)
    for name, size in (("pic_width_in_luma_samples", width),
                       ("pic_height_in_luma_samples", height)):
        if size % (1 << min_cb):
            r.fail(name, f"{name} shall be a multiple of MinCbSizeY {1 << min_cb}, got {size}")

    scaling = v["scaling_list_enabled_flag"] = r.flag("scaling_list_enabled_flag")
    v["sps_scaling_list_data_present_flag"] = scaling and r.flag(
        "sps_scaling_list_data_present_flag")
    if v["sps_scaling_list_data_present_flag"]:
        _scaling_list_data(r)
    v["amp_enabled_flag"] = r.flag("amp_enabled_flag")
    v["sample_adaptive_offset_enabled_flag"] = r.flag("sample_adaptive_offset_enabled_flag")

    pcm = v["pcm_enabled_flag"] = r.flag("pcm_enabled_flag")
    v.update(pcm_sample_bit_depth_luma_minus1=0, pcm_sample_bit_depth_chroma_minus1=0,
             log2_min_pcm_luma_coding_block_size_minus3=0,
             log2_diff_max_min_pcm_luma_coding_block_size=0, pcm_loop_filter_disabled_flag=0)
    if pcm:
        # PCM bit depths <= BitDepthY/C; Min(MinCbLog2SizeY, 5) <= Log2MinIpcmCbSizeY <=
        # Log2MaxIpcmCbSizeY <= Min(CtbLog2SizeY, 5)
        for name, bit_depth_minus8 in (
                ("pcm_sample_bit_depth_luma_minus1", v["bit_depth_luma_minus8"]),
                ("pcm_sample_bit_depth_chroma_minus1", v["bit_depth_chroma_minus8"])):
            v[name] = r.u(4, name, maximum=bit_depth_minus8 + 7)
        pcm_min = 3 + r.ue("log2_min_pcm_luma_coding_block_size_minus3", min(ctb, 5) - 3,
                           min(min_cb, 5) - 3)
        v["log2_min_pcm_luma_coding_block_size_minus3"] = pcm_min - 3
        v["log2_diff_max_min_pcm_luma_coding_block_size"] = r.ue(
            "log2_diff_max_min_pcm_luma_coding_block_size", min(ctb, 5) - pcm_min)
        v["pcm_loop_filter_disabled_flag"] = r.flag("pcm_loop_filter_disabled_flag")

    count = v["num_short_term_ref_pic_sets"] = r.ue("num_short_term_ref_pic_sets", 64)
    sets: list[ShortTermRefPicSet] = []
    for i in range(count):
        sets.append(_st_ref_pic_set(r, i, sets, dpb[-1]))
    v["st_ref_pic_sets"] = tuple(sets)
    long_term = v["long_term_ref_pics_present_flag"] = r.flag("long_term_ref_pics_present_flag")
    v["num_long_term_ref_pics_sps"] = long_term and r.ue("num_long_term_ref_pics_sps", 32)
    for i in range(v["num_long_term_ref_pics_sps"]):
        r.skip(v["log2_max_pic_order_cnt_lsb_minus4"] + 4, f"lt_ref_pic_poc_lsb_sps[{i}]")
        r.skip(1, f"used_by_curr_pic_lt_sps_flag[{i}]")
    v["sps_temporal_mvp_enabled_flag"] = r.flag("sps_temporal_mvp_enabled_flag")
    v["strong_intra_smoothing_enabled_flag"] = r.flag("strong_intra_smoothing_enabled_flag")
    v["vui_parameters_present_flag"] = r.flag("vui_parameters_present_flag")
    if v["vui_parameters_present_flag"]:
        _vui_parameters(r, max_sub)

    extension = v["sps_extension_present_flag"] = r.flag("sps_extension_present_flag")
    for name in ("sps_range_extension_flag", "sps_multilayer_extension_flag",
                 "sps_3d_extension_flag", "sps_scc_extension_flag"):
        v[name] = extension and r.flag(name)
    v["sps_extension_4bits"] = extension and r.u(4, "sps_extension_4bits")
    v.update(dict.fromkeys(RANGE_EXTENSION_FLAGS, 0))
    if v["sps_range_extension_flag"]:
        with r.scope("sps_range_extension"):
            for name in RANGE_EXTENSION_FLAGS:
                v[name] = r.flag(name)
    if not (v["sps_multilayer_extension_flag"] or v["sps_3d_extension_flag"]
            or v["sps_scc_extension_flag"] or v["sps_extension_4bits"]):
        r.rbsp_trailing_bits()
    return SPS(**v)


def _pps(r: RbspReader) -> PPS:
    """pic_parameter_set_rbsp() (7.3.2.3.1) up to transquant_bypass_enabled_flag."""
    v: dict = {}
    v["pps_pic_parameter_set_id"] = r.ue("pps_pic_parameter_set_id", 63)
    v["pps_seq_parameter_set_id"] = r.ue("pps_seq_parameter_set_id", 15)
    for name in ("dependent_slice_segments_enabled_flag", "output_flag_present_flag"):
        v[name] = r.flag(name)
    v["num_extra_slice_header_bits"] = r.u(3, "num_extra_slice_header_bits")
    for name in ("sign_data_hiding_enabled_flag", "cabac_init_present_flag"):
        v[name] = r.flag(name)
    for name in ("num_ref_idx_l0_default_active_minus1", "num_ref_idx_l1_default_active_minus1"):
        v[name] = r.ue(name, 14)
    # -(26 + QpBdOffsetY) .. 25, with QpBdOffsetY at most 48 (16-bit samples)
    v["init_qp_minus26"] = r.se("init_qp_minus26", -(26 + 48), 25)
    for name in ("constrained_intra_pred_flag", "transform_skip_enabled_flag",
                 "cu_qp_delta_enabled_flag"):
        v[name] = r.flag(name)
    # 0 .. log2_diff_max_min_luma_coding_block_size, at most 3
    v["diff_cu_qp_delta_depth"] = v["cu_qp_delta_enabled_flag"] and r.ue(
        "diff_cu_qp_delta_depth", 3)
    for name in ("pps_cb_qp_offset", "pps_cr_qp_offset"):
        v[name] = r.se(name, -12, 12)
    for name in ("pps_slice_chroma_qp_offsets_present_flag", "weighted_pred_flag",
                 "weighted_bipred_flag", "transquant_bypass_enabled_flag"):
        v[name] = r.flag(name)
    return PPS(**v)


# ---- the payload ----

LOSSLESS = " when a PPS of the SPS has transquant_bypass_enabled_flag 1"

def _violation(message: str, offset: int, path: str, clause: str = "10.1") -> ConformanceViolation:
    return ConformanceViolation(message, clause=clause, offset=offset, path=path)


def _starts_with_start_code(payload: bytes) -> bool:
    """Annex B (B.2): optional leading_zero_8bits, then zero_byte and 0x000001."""
    head = payload[:64]
    rest = head.lstrip(b"\x00")
    if not rest:    # 64 zero bytes or fewer bytes: look at the whole payload
        head = payload
        rest = payload.lstrip(b"\x00")
    return len(head) - len(rest) >= 2 and rest[:1] == b"\x01"


#: Parameter sets parsed before, by their NAL unit bytes: the payloads of one encoder repeat
#: the same VPS, SPS and PPS.  Only NAL units that parsed without a violation are kept (a
#: parse depends on the bytes alone; the offset and path only go into a violation), at most
#: PARAMETER_SET_CACHE_SIZE of them of at most PARAMETER_SET_CACHE_UNIT_BYTES bytes each.
PARAMETER_SET_CACHE_SIZE = 64
PARAMETER_SET_CACHE_UNIT_BYTES = 4096
_parameter_set_cache: dict[bytes, VPS | SPS | PPS] = {}


def parameter_set(unit: bytes, nal_unit_type: int, offset: int, path: str) -> VPS | SPS | PPS:
    """The VPS, SPS or PPS of a NAL unit (whose nal_unit_type is one of the three);
    ConformanceViolation (clause 10.1) when it is malformed."""
    key = bytes(unit)
    found = _parameter_set_cache.get(key)
    if found is not None:
        return found
    parse = _vps if nal_unit_type == VPS_NUT else _sps if nal_unit_type == SPS_NUT else _pps
    value = parse(RbspReader(rbsp(unit), offset=offset, path=path))
    if len(key) <= PARAMETER_SET_CACHE_UNIT_BYTES:
        if len(_parameter_set_cache) >= PARAMETER_SET_CACHE_SIZE:
            _parameter_set_cache.clear()
        _parameter_set_cache[key] = value
    return value


_HEAD = np.arange(3)


#: The last payload parse_parameter_sets read and its result: the decoder checks a payload's
#: parameter sets (check_payload) and then feeds the same bytes object to FFmpeg
#: (refcodec.hevc.feed), which needs them again.  Kept by identity (the object itself is
#: held, so its id cannot be reused); a violation is never kept.
_last_parsed: tuple[bytes | None, ParameterSets | None] = (None, None)


def parse_parameter_sets(payload: bytes) -> ParameterSets:
    """The VPS, SPS and PPS of an Annex-B payload and its number of pictures.

    Raises ConformanceViolation (clause 10.1) on malformed data, with the offset of the NAL
    unit in the payload.
    """
    global _last_parsed
    last, found = _last_parsed
    if last is payload and isinstance(payload, bytes):
        return found
    found = _parse_parameter_sets(payload)
    _last_parsed = (payload, found)
    return found


def _parse_parameter_sets(payload: bytes) -> ParameterSets:
    if not _starts_with_start_code(payload):
        raise _violation("the HEVC payload shall start with an Annex-B start code "
                         "(0x000001)", 0, PATH)
    vps: list[tuple[int, VPS]] = []
    sps: list[tuple[int, SPS]] = []
    pps: list[tuple[int, PPS]] = []
    sets = {VPS_NUT: ("vps", vps), SPS_NUT: ("sps", sps), PPS_NUT: ("pps", pps)}
    # The NAL units of annexb.split_nal_units_with_offsets: a unit runs from after a start
    # code to the next one (or the end), less the zero bytes before the next start code;
    # empty units are left out.  Start codes never overlap, so they are all found at once;
    # so are the plain units: at least three bytes with a non-zero third byte (stripping
    # trailing zeros keeps those three, all that is read of a slice segment), a valid
    # header and not a parameter set.  Only the other units are read one by one, in order.
    size = len(payload)
    data = np.frombuffer(payload, np.uint8)
    ones = (data[2:] == 1).nonzero()[0]
    starts = ones[(data[ones] | data[ones + 1]) == 0] + 3
    count = len(starts)
    ends = np.empty(count, np.intp)
    ends[:-1] = starts[1:] - 3
    ends[-1:] = size
    # the first three bytes of each unit (clipped at the end of the payload: units shorter
    # than three bytes are never plain)
    b0, b1, b2 = data[np.minimum(starts[:, None] + _HEAD, size - 1)].T
    nal_unit_types = (b0 >> 1) & 0x3F
    vcl = nal_unit_types < FIRST_NON_VCL_NUT
    # forbidden_zero_bit 0, nuh_layer_id 0 (its high bit is bit 0 of the first byte),
    # nuh_temporal_id_plus1 not 0, not a VPS, SPS or PPS
    plain = ((ends - starts >= 3) & (b2 != 0) & (b0 & 0x81 == 0) & (b1 != 0) & (b1 < 8)
             & (vcl | (nal_unit_types > PPS_NUT)))
    plain_vcl = plain & vcl
    num_pictures = int(np.count_nonzero(plain_vcl & (b2 >= 0x80)))
    first = plain_vcl.nonzero()[0][:1]
    first_vcl_offset = int(starts[first[0]]) if len(first) else None
    empty = 0
    for k in (~plain).nonzero()[0].tolist():
        offset = int(starts[k])
        unit = payload[offset:] if k == count - 1 else \
            payload[offset:int(ends[k])].rstrip(b"\x00")
        if not unit:
            empty += 1
            continue
        where = f"{PATH}.nal_unit[{k - empty}]"
        # nal_unit_header() (7.3.1.2)
        if len(unit) < 2:
            raise _violation("a NAL unit shall hold its two-byte header, got 1 byte", offset,
                             where)
        if unit[0] & 0x80:
            raise _violation("forbidden_zero_bit shall be 0, got 1", offset,
                             f"{where}.forbidden_zero_bit")
        if unit[1] & 0x07 == 0:
            raise _violation("nuh_temporal_id_plus1 shall not be 0", offset,
                             f"{where}.nuh_temporal_id_plus1")
        nuh_layer_id = ((unit[0] & 1) << 5) | (unit[1] >> 3)
        if nuh_layer_id:
            raise _violation(f"nuh_layer_id shall be 0 (one HEVC layer), got {nuh_layer_id}",
                             offset, f"{where}.nuh_layer_id")
        nal_unit_type = (unit[0] >> 1) & 0x3F
        if nal_unit_type < FIRST_NON_VCL_NUT:
            # The first bit of slice_segment_header() (7.3.6.1); the payload byte after a
            # header is never an emulation_prevention_three_byte.
            if len(unit) < 3:
                raise _violation("a slice segment NAL unit shall hold a slice segment header",
                                 offset, f"{where}.first_slice_segment_in_pic_flag")
            num_pictures += unit[2] >> 7
            if first_vcl_offset is None or offset < first_vcl_offset:
                first_vcl_offset = offset
        elif VPS_NUT <= nal_unit_type <= PPS_NUT:
            name, found = sets[nal_unit_type]
            found.append((offset, parameter_set(unit, nal_unit_type, offset,
                                                f"{PATH}.{name}[{len(found)}]")))
    return ParameterSets(tuple(vps), tuple(sps), tuple(pps), num_pictures, first_vcl_offset)


def check_payload(payload: bytes, *, bit_depth: int, picture_width: int, picture_height: int,
                  num_pictures: int) -> list[ConformanceViolation]:
    """The clause 10 constraints on an hevc_payload that a layer header expects to hold
    num_pictures monochrome pictures of picture_width x picture_height at bit_depth.

    Returns every violation found (empty when the payload conforms); a malformed payload
    gives its single 10.1 violation.  Offsets are relative to the payload.
    """
    try:
        sets = parse_parameter_sets(payload)
    except ConformanceViolation as exc:
        return [exc]
    out: list[ConformanceViolation] = []

    # 10.1: a VPS, an SPS and a PPS precede the first VCL NAL unit.
    end = len(payload) if sets.first_vcl_offset is None else sets.first_vcl_offset
    missing = [name for name, units in (("VPS", sets.vps), ("SPS", sets.sps), ("PPS", sets.pps))
               if not any(offset < end for offset, _ in units)]
    if missing:
        out.append(_violation(f"the HEVC payload shall hold a VPS, an SPS and a PPS before its "
                              f"first VCL NAL unit; missing: {', '.join(missing)}",
                              sets.first_vcl_offset or 0, PATH))
    sps_ids = {s.sps_seq_parameter_set_id for _, s in sets.sps}
    for j, (offset, pps) in enumerate(sets.pps):
        if pps.pps_seq_parameter_set_id not in sps_ids:
            out.append(_violation(f"pps_seq_parameter_set_id {pps.pps_seq_parameter_set_id} "
                                  f"refers to no SPS of the payload", offset,
                                  f"{PATH}.pps[{j}].pps_seq_parameter_set_id"))
    lossless_sps_ids = {p.pps_seq_parameter_set_id for _, p in sets.pps
                        if p.transquant_bypass_enabled_flag}

    for i, (offset, sps) in enumerate(sets.sps):
        path = f"{PATH}.sps[{i}]"
        ptl = sps.profile_tier_level
        # 10.2: a monochrome format range extensions profile
        if not ptl.signals_profile(4):
            mono = (" for a 4:0:0 payload, which no profile but the format range extensions "
                    "(Monochrome) profiles allows (H.265 A.3; kvazaar 2.3 writes Main for "
                    "4:0:0)" if sps.chroma_format_idc == 0 else "")
            out.append(_violation(
                f"general_profile_idc shall be 4 (format range extensions) or "
                f"general_profile_compatibility_flag[4] shall be 1, got general_profile_idc "
                f"{ptl.general_profile_idc} ({ptl.profile_name}){mono}", offset,
                f"{path}.profile_tier_level.general_profile_idc", "10.2"))
        elif not ptl.general_max_monochrome_constraint_flag:
            out.append(_violation(
                f"general_max_monochrome_constraint_flag shall be 1 (a Monochrome profile), "
                f"got 0 ({ptl.profile_name})", offset,
                f"{path}.profile_tier_level.general_max_monochrome_constraint_flag", "10.2"))
        # 10.3: 4:0:0
        if sps.chroma_format_idc != 0:
            out.append(_violation(f"chroma_format_idc shall be 0 (4:0:0), got "
                                  f"{sps.chroma_format_idc}", offset,
                                  f"{path}.chroma_format_idc", "10.3"))
        # 10.4: the layer's sample bit depth
        if sps.bit_depth != bit_depth:
            out.append(_violation(f"bit_depth_luma_minus8 + 8 shall be {bit_depth}, got "
                                  f"{sps.bit_depth}", offset, f"{path}.bit_depth_luma_minus8",
                                  "10.4"))
        # 10.5: the layer's picture size, with a conformance window that crops nothing (so
        # that the decoded picture hash of H.265, computed before cropping, covers exactly
        # the samples of sample_md5).  Format 1.2 allows conformance_window_flag 1 with four
        # zero offsets, which HM writes in every SPS.
        window = {side: getattr(sps, f"conf_win_{side}_offset")
                  for side in ("left", "right", "top", "bottom")}
        if any(window.values()):
            crops = ", ".join(f"conf_win_{side}_offset {value}"
                              for side, value in window.items() if value)
            out.append(_violation(f"the conformance window shall crop nothing (all four "
                                  f"offsets 0), got {crops}", offset,
                                  f"{path}.conformance_window_flag", "10.5"))
        elif (sps.output_width, sps.output_height) != (picture_width, picture_height):
            out.append(_violation(f"the output picture size shall be {picture_width}x"
                                  f"{picture_height}, got {sps.output_width}x"
                                  f"{sps.output_height}", offset, path, "10.5"))
        # 10.7: tools FFmpeg's decoder gets wrong (with lossless coding) or lacks
        lossless = sps.sps_seq_parameter_set_id in lossless_sps_ids
        for name, applies, when in (
                ("transform_skip_rotation_enabled_flag", lossless, LOSSLESS),
                ("implicit_rdpcm_enabled_flag", lossless, LOSSLESS),
                ("extended_precision_processing_flag", True, ""),
                ("cabac_bypass_alignment_enabled_flag", True, "")):
            if applies and getattr(sps, name):
                out.append(_violation(f"{name} shall be 0{when}, got 1", offset,
                                      f"{path}.sps_range_extension.{name}", "10.7"))

    # 10.6: the layer's number of pictures
    if sets.num_pictures != num_pictures:
        out.append(_violation(f"the HEVC payload shall hold {num_pictures} pictures (slice "
                              f"segments with first_slice_segment_in_pic_flag 1), got "
                              f"{sets.num_pictures}", 0, PATH, "10.6"))
    return out


IDR_W_RADL, IDR_N_LP = 19, 20
I_SLICE = 2


def idr_slice_qps(payload: bytes) -> list[int | None]:
    """SliceQpY (7.4.7.1: 26 + init_qp_minus26 + slice_qp_delta) of the first slice segment
    of each picture, for IDR pictures with I slices; None for other pictures.

    Reads slice_segment_header() (7.3.6.1) only as far as slice_qp_delta, which for an IDR
    I slice that starts its picture needs no reference picture syntax.  Used to check that
    the encoder's QP is the slice QP (clause A.3).
    """
    sps_by_id: dict[int, SPS] = {}
    pps_by_id: dict[int, PPS] = {}
    qps: list[int | None] = []
    for offset, unit in split_nal_units_with_offsets(payload):
        t = (unit[0] >> 1) & 0x3F
        path = f"{PATH}.nal_unit"
        if t == SPS_NUT:
            s = _sps(RbspReader(rbsp(unit), offset=offset, path=path))
            sps_by_id[s.sps_seq_parameter_set_id] = s
        elif t == PPS_NUT:
            p = _pps(RbspReader(rbsp(unit), offset=offset, path=path))
            pps_by_id[p.pps_pic_parameter_set_id] = p
        elif t < FIRST_NON_VCL_NUT and len(unit) > 2 and unit[2] & 0x80:
            if t not in (IDR_W_RADL, IDR_N_LP):
                qps.append(None)
                continue
            r = RbspReader(rbsp(unit), offset=offset, path=f"{path}.slice_segment_header")
            r.flag("first_slice_segment_in_pic_flag")
            r.flag("no_output_of_prior_pics_flag")
            pps = pps_by_id.get(r.ue("slice_pic_parameter_set_id", 63))
            sps = pps and sps_by_id.get(pps.pps_seq_parameter_set_id)
            if sps is None:
                r.fail("slice_pic_parameter_set_id", "slice_pic_parameter_set_id refers to no "
                                                     "PPS/SPS before it")
            r.skip(pps.num_extra_slice_header_bits, "slice_reserved_flag")
            slice_type = r.ue("slice_type", 2)
            if slice_type != I_SLICE:
                qps.append(None)
                continue
            if pps.output_flag_present_flag:
                r.flag("pic_output_flag")
            if sps.separate_colour_plane_flag:
                r.u(2, "colour_plane_id")
            if sps.sample_adaptive_offset_enabled_flag:
                r.flag("slice_sao_luma_flag")
                if sps.chroma_format_idc != 0 and not sps.separate_colour_plane_flag:
                    r.flag("slice_sao_chroma_flag")
            delta = r.se("slice_qp_delta", -(26 + 48) - pps.init_qp_minus26,
                         25 - pps.init_qp_minus26)
            qps.append(26 + pps.init_qp_minus26 + delta)
    return qps
