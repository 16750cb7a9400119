"""Construct definitions of every syntax structure of the VFC bitstream (spec clause 7).

This module is the single source of truth for the byte layout: the same objects parse,
build and size each structure, and ``tools/gen_spec_tables.py`` renders them into the
syntax tables of ``spec/07-syntax.md``.  Each field's doc string names the semantics
clause that defines it.  Nothing here interprets values: range checks live in
``refcodec.bitstream``.

All integers are unsigned big-endian; ``f32`` is IEEE 754 binary32, big-endian.
"""

from __future__ import annotations

from construct import (Array, BitsInteger, BitStruct, Bytes, Const, Flag, Float32b, GreedyBytes,
                       If, Int8ub, Int16sb, Int16ub, Int32ub, Rebuild, Struct, Switch, len_,
                       this)

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
#: without faces, 1.1 with them), so that every decoder that can read it does.
FACE_VERSION_MINOR = 1

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

minmax_params = Struct(
    "min_value" / Float32b * "8.3.7",
    "max_value" / Float32b * "8.3.7",
)

offset_params = Struct(
    "offset_value" / Float32b * "8.3.7",
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
    "quant_params" / Array(
        Expr(lambda ctx: ctx.num_channels if ctx.layer_flags.per_channel_quant_flag else 1,
             "per_channel_quant_flag ? num_channels : 1"),
        Switch(this.quantizer_type, {0: minmax_params, 1: minmax_params, 2: offset_params}),
    ) * "8.3.7",
    "channel_permutation" / If(this.layer_flags.channel_permutation_flag,
                               Array(this.num_channels, Int32ub)) * "8.3.8",
    "packing_type" / Int8ub * "8.3.9",
    "tile_grid" / If(this.packing_type == 1, tile_grid),
    "pad_mode" / Int8ub * "8.3.10",
    "pad_bottom" / Int8ub * "8.3.10",
    "pad_right" / Int8ub * "8.3.10",
    "payload_codec" / Int8ub * "8.3.11",
)
#: Size of layer_header() up to and including quantizer_type and layer_flags: the part that
#: can be checked against the level limits before any array is read.
LAYER_HEADER_FIXED_FIELDS = ("len_layer_id", "layer_id", "source_layout", "source_dtype",
                             "batch_size", "num_channels", "height", "width",
                             "sample_bit_depth", "quantizer_type", "layer_flags")

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
    "minmax_params": minmax_params,
    "offset_params": offset_params,
    "tile_grid": tile_grid,
    "layer_data": layer_data,
    "face_base": face_base,
    "face_enhancement": face_enhancement,
    "predictor_info": predictor_info,
}
