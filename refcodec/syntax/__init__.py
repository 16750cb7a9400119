"""Construct definitions of every syntax structure of the VFC bitstream (spec clause 7).

This module is the single source of truth for the byte layout: the same objects parse,
build and size each structure, and ``tools/gen_spec_tables.py`` renders them into the
syntax tables of ``spec/07-syntax.md``.  Each field's doc string names the semantics
clause that defines it.  Nothing here interprets values: range checks live in
``refcodec.bitstream``.

All integers are unsigned big-endian; ``f32`` is IEEE 754 binary32, big-endian.
"""

from __future__ import annotations

from construct import (Array, BitsInteger, BitStruct, Bytes, Const, Flag, Float16b, Float32b,
                       GreedyBytes, If, Int8ub, Int16sb, Int16ub, Int32ub, Rebuild, Struct,
                       Switch, len_, this)

class Expr:
    """A construct count/condition given as a function, with the text the spec tables show."""

    def __init__(self, fn, text: str):
        self.fn = fn
        self.text = text

    def __call__(self, ctx):
        return self.fn(ctx)

    def __repr__(self) -> str:
        return self.text


#: Format version read by this package (clause 8.1.2).  Version 1.1 adds the face units
#: (clause 13); version 1.2 allows a conformance window that crops nothing in an
#: hevc_payload (clause 10.5) and settles the reserved fields of later minor versions.
VERSION_MAJOR = 1
VERSION_MINOR = 2
#: The version_minor the encoder writes: the lowest whose syntax the stream uses (1.0
#: without faces, 1.1 with them, 1.2 with the syntax of 1.2: a layer_header_ext unit or
#: packing_type 2), so that every decoder that can read it does.
FACE_VERSION_MINOR = 1
FORMAT12_VERSION_MINOR = 2
#: unit_type of a layer header with layer_header_ext() (enums.UnitType.LAYER_HEADER_EXT).
LAYER_HEADER_EXT_UNIT = 5

#: The eight bytes every VFC bitstream starts with (clause 8.1.1).  Like PNG's signature:
#: a non-ASCII first byte, the letters, CR LF, SUB and LF so that text-mode transfers are caught.
MAGIC = b"\x8bVFC\r\n\x1a\n"

stream_header = Struct(
    "magic" / Const(MAGIC) * "8.1.1",
    "version_major" / Int8ub * "8.1.2",
    "version_minor" / Int8ub * "8.1.2",
    "profile_idc" / Int8ub * "8.1.3",
    "level_idc" / Int8ub * "8.1.4",
    "num_layers" / Int16ub * "8.1.5",
    "reserved_zero_16bits" / Int16ub * "8.1.6",
    "header_crc32" / Int32ub * "8.1.7",
)
STREAM_HEADER_SIZE = stream_header.sizeof()

unit_flags = BitStruct(
    "skippable_flag" / Flag * "8.2.2",
    "reserved_zero_7bits" / BitsInteger(7) * "8.2.3",
)

unit = Struct(
    "unit_type" / Int8ub * "8.2.1",
    "unit_flags" / unit_flags,
    "len_unit_payload" / Rebuild(Int32ub, len_(this.unit_payload)) * "8.2.4",
    "unit_payload" / Bytes(this.len_unit_payload) * "8.2.4",
    "unit_crc32" / Int32ub * "8.2.5",
)
#: Bytes of a unit() that are not unit_payload.
UNIT_OVERHEAD = 1 + 1 + 4 + 4
#: Bytes before unit_payload inside a unit().
UNIT_PREFIX = 1 + 1 + 4

layer_flags = BitStruct(
    "per_channel_quant_flag" / Flag * "8.3.7",
    "channel_permutation_flag" / Flag * "8.3.8",
    "reserved_zero_6bits" / BitsInteger(6) * "8.3.12",
)


def _root(ctx):
    """The context of layer_header() from the context of any structure inside it."""
    while "_" in ctx and ctx._ is not None and "num_channels" not in ctx:
        ctx = ctx._
    return ctx


def _unit_type(ctx) -> int:
    """The unit_type of the unit whose payload is being parsed or built: passed by the
    reader and writer as ``unit_type=`` (clause 7.3: layer_header() depends on it).  A
    field rebuilt from parsed fields without it (base.field_offset) has it implied by
    whether layer_header_ext is among them."""
    root = _root(ctx)
    params = root.get("_params") or {}
    if "unit_type" in params:
        return params["unit_type"]
    return LAYER_HEADER_EXT_UNIT if root.get("layer_header_ext") is not None else 1


def _ext_value(name: str):
    def value(ctx) -> int:
        ext = _root(ctx).get("layer_header_ext")
        return 0 if ext is None else ext[name]
    return value


#: ParamFormat and PermutationCoding (clause 8.3.14): param_format and permutation_coding
#: when layer_header_ext() is present, else 0.
PARAM_FORMAT = Expr(_ext_value("param_format"), "ParamFormat")
PERMUTATION_CODING = Expr(_ext_value("permutation_coding"), "PermutationCoding")


def perm_bits(num_channels: int) -> int:
    """PermBits (clause 8.3.14): bits of one compact channel_permutation entry,
    Ceil(Log2(num_channels)), and 1 when num_channels is 1."""
    return max(1, (num_channels - 1).bit_length())


def perm_pad_bits(num_channels: int) -> int:
    """PermPadBits (clause 8.3.14): the zero bits that end compact_permutation() on a byte
    boundary."""
    return -(num_channels * perm_bits(num_channels)) % 8


#: group_bits (clause 8.3.16): the range of the width of a channel_group entry.
GROUP_BITS_RANGE = range(1, 9)


def group_pad_bits(num_channels: int, group_bits: int) -> int:
    """GroupPadBits (clause 8.3.14): the zero bits that end grouped_permutation() on a byte
    boundary."""
    return -(num_channels * group_bits) % 8


def grouped_permutation_size(num_channels: int, group_bits: int) -> int:
    """The bytes of grouped_permutation(): group_bits, then the entries and their alignment
    bits."""
    return 1 + -(-(num_channels * group_bits) // 8)


def _group_bits(ctx) -> int:
    return ctx.group_bits


layer_header_ext = Struct(
    "param_format" / Int8ub * "8.3.15",
    "permutation_coding" / Int8ub * "8.3.16",
)

minmax_params = Struct(
    "min_value" / Switch(PARAM_FORMAT, {0: Float32b, 1: Float16b}) * "8.3.7",
    "max_value" / Switch(PARAM_FORMAT, {0: Float32b, 1: Float16b}) * "8.3.7",
)

offset_params = Struct(
    "offset_value" / Switch(PARAM_FORMAT, {0: Float32b, 1: Float16b}) * "8.3.7",
)

compact_permutation = BitStruct(
    "channel_permutation_entry" / Array(
        Expr(lambda ctx: _root(ctx).num_channels, "num_channels"),
        BitsInteger(Expr(lambda ctx: perm_bits(_root(ctx).num_channels), "PermBits")),
    ) * "8.3.16",
    "permutation_alignment_zero_bits" / If(
        Expr(lambda ctx: perm_pad_bits(_root(ctx).num_channels) > 0, "PermPadBits > 0"),
        BitsInteger(Expr(lambda ctx: perm_pad_bits(_root(ctx).num_channels),
                         "PermPadBits"))) * "8.3.16",
)

grouped_permutation = BitStruct(
    "group_bits" / BitsInteger(8) * "8.3.16",
    "channel_group" / Array(
        Expr(lambda ctx: _root(ctx).num_channels, "num_channels"),
        BitsInteger(Expr(_group_bits, "group_bits"))) * "8.3.16",
    "group_alignment_zero_bits" / If(
        Expr(lambda ctx: group_pad_bits(_root(ctx).num_channels, ctx.group_bits) > 0,
             "GroupPadBits > 0"),
        BitsInteger(Expr(lambda ctx: group_pad_bits(_root(ctx).num_channels,
                                                    ctx.group_bits),
                         "GroupPadBits"))) * "8.3.16",
)

tile_grid = Struct(
    "tile_rows" / Int16ub * "8.3.9",
    "tile_cols" / Int16ub * "8.3.9",
)

layer_header = Struct(
    "len_layer_id" / Rebuild(Int8ub, len_(this.layer_id)) * "8.3.1",
    "layer_id" / Bytes(this.len_layer_id) * "8.3.1",
    "source_layout" / Int8ub * "8.3.2",
    "source_dtype" / Int8ub * "8.3.3",
    "batch_size" / Int32ub * "8.3.4",
    "num_channels" / Int32ub * "8.3.4",
    "height" / Int32ub * "8.3.4",
    "width" / Int32ub * "8.3.4",
    "sample_bit_depth" / Int8ub * "8.3.5",
    "quantizer_type" / Int8ub * "8.3.6",
    "layer_flags" / layer_flags,
    "layer_header_ext" / If(Expr(lambda ctx: _unit_type(ctx) == LAYER_HEADER_EXT_UNIT,
                                 "unit_type == 5"), layer_header_ext),
    "quant_params" / Array(
        Expr(lambda ctx: ctx.num_channels if ctx.layer_flags.per_channel_quant_flag else 1,
             "per_channel_quant_flag ? num_channels : 1"),
        Switch(this.quantizer_type, {0: minmax_params, 1: minmax_params, 2: offset_params,
                                     3: minmax_params}),
    ) * "8.3.7",
    "channel_permutation" / If(
        Expr(lambda ctx: ctx.layer_flags.channel_permutation_flag
             and PERMUTATION_CODING(ctx) == 0,
             "channel_permutation_flag && PermutationCoding == 0"),
        Array(this.num_channels, Int32ub)) * "8.3.8",
    "compact_permutation" / If(
        Expr(lambda ctx: ctx.layer_flags.channel_permutation_flag
             and PERMUTATION_CODING(ctx) == 1,
             "channel_permutation_flag && PermutationCoding == 1"),
        compact_permutation) * "8.3.16",
    "grouped_permutation" / If(
        Expr(lambda ctx: ctx.layer_flags.channel_permutation_flag
             and PERMUTATION_CODING(ctx) == 2,
             "channel_permutation_flag && PermutationCoding == 2"),
        grouped_permutation) * "8.3.16",
    "packing_type" / Int8ub * "8.3.9",
    "tile_grid" / If(Expr(lambda ctx: ctx.packing_type in (1, 2),
                          "packing_type == 1 || packing_type == 2"), tile_grid),
    "pad_mode" / Int8ub * "8.3.10",
    "pad_bottom" / Int8ub * "8.3.10",
    "pad_right" / Int8ub * "8.3.10",
    "payload_codec" / Int8ub * "8.3.11",
)
#: Size of layer_header() up to and including quantizer_type and layer_flags (and
#: layer_header_ext() when present): the part that can be checked against the level
#: limits before any array is read.
LAYER_HEADER_FIXED_FIELDS = ("len_layer_id", "layer_id", "source_layout", "source_dtype",
                             "batch_size", "num_channels", "height", "width",
                             "sample_bit_depth", "quantizer_type", "layer_flags",
                             "layer_header_ext")

layer_data = Struct(
    "sample_md5" / Bytes(16) * "8.4.1",
    "hevc_payload" / GreedyBytes * "8.4.2",
)

# ---- Scalable face layers (clause 13, format 1.1) ----

face_base = Struct(
    "len_face_id" / Rebuild(Int8ub, len_(this.face_id)) * "13.3.1",
    "face_id" / Bytes(this.len_face_id) * "13.3.1",
    "embedder_idc" / Int8ub * "13.3.2",
    "embedding_dim" / Int16ub * "13.3.3",
    "embedding_step" / Float32b * "13.3.4",
    "eg_order" / Int8ub * "13.3.5",
    "embedding_payload" / GreedyBytes * "13.3.6",
)

predictor_info = Struct(
    "len_predictor_id" / Rebuild(Int8ub, len_(this.predictor_id)) * "13.4.4",
    "predictor_id" / Bytes(this.len_predictor_id) * "13.4.4",
    "predictor_sha256" / Bytes(32) * "13.4.4",
)

face_enhancement = Struct(
    "len_face_id" / Rebuild(Int8ub, len_(this.face_id)) * "13.4.1",
    "face_id" / Bytes(this.len_face_id) * "13.4.1",
    "image_height" / Int16ub * "13.4.2",
    "image_width" / Int16ub * "13.4.2",
    "image_channels" / Int8ub * "13.4.2",
    "predictor_type" / Int8ub * "13.4.3",
    "predictor_info" / If(this.predictor_type == 1, predictor_info),
    "residual_min" / Int16sb * "13.4.5",
    "residual_max" / Int16sb * "13.4.5",
    "texture_codec" / Int8ub * "13.4.6",
    "texture_md5" / Bytes(16) * "13.4.7",
    "texture_payload" / GreedyBytes * "13.4.8",
)
#: Every structure, in the order the specification presents them.
STRUCTURES = {
    "stream_header": stream_header,
    "unit": unit,
    "unit_flags": unit_flags,
    "layer_header": layer_header,
    "layer_flags": layer_flags,
    "layer_header_ext": layer_header_ext,
    "minmax_params": minmax_params,
    "offset_params": offset_params,
    "compact_permutation": compact_permutation,
    "grouped_permutation": grouped_permutation,
    "tile_grid": tile_grid,
    "layer_data": layer_data,
    "face_base": face_base,
    "face_enhancement": face_enhancement,
    "predictor_info": predictor_info,
}
