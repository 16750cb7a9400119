"""The alterations of a stream's container and feature layers (scope ``layer``), by
syntax structure: stream_header(), unit(), layer_header(), layer_data() and the
hevc_payload (clause 10).

A new invalid stream of these is one ``_alteration(kind, requirement id, purpose, ...)`` in
the section of its syntax structure; ``refcodec conformance alterations`` lists them.
"""

from __future__ import annotations

import dataclasses
import math

from ... import bitstream, syntax
from ...enums import DTYPE_INFO, LEVELS, PackingType, QuantizerType, SourceDtype, UnitType
from ...hevc.annexb import (PARAMETER_SET_TYPES, PPS_NUT, SPS_NUT, VPS_NUT, join_nal_units,
                            nal_unit_type, split_nal_units)
from ...hevc.slices import CRA_NUT, RASL_N, RASL_R
from ...hevc.edit import (MONOCHROME_FLAG_POS, add_conformance_window, add_range_extension,
                          edit_ptl, pps_refers_to, set_chroma_format)
from ...records import QuantParams, Stream
from ..units import (_change_layer0, _is_lossless, _layer0_header_unit, _layers,
                     _patch_layer0_header, _put, _rebuild, _recrc, _rehead, _replace_unit,
                     _unit_of, _units)
from .registry import _alteration


def _minmax(s: Stream) -> bool:
    return s.layers[0].header.quantizer_type != QuantizerType.INTEGER


def _q0(s: Stream) -> QuantParams:
    return s.layers[0].header.quant_params[0]


def _with_q0(s: Stream, p: QuantParams) -> bytes:
    return _change_layer0(s, quant_params=(p,) + s.layers[0].header.quant_params[1:])


def _same_geometry(s: Stream) -> bool:
    if len(s.layers) < 2:
        return False
    a, b = s.layers[0].header, s.layers[1].header
    return ((a.num_pictures, a.picture_height, a.picture_width, a.sample_bit_depth)
            == (b.num_pictures, b.picture_height, b.picture_width, b.sample_bit_depth)
            and s.layers[0].hevc_payload != s.layers[1].hevc_payload)


def _header_u8(pos: int, value: int):
    return lambda data, s: _rehead(_put(data, pos, bytes([value])))


# -- stream_header() --
_alteration("magic", "8.1.1-a", "magic altered: byte 1 is 'W' instead of 'V'")(
    lambda data, s: _put(data, 1, b"W"))
_alteration("truncated_stream_header", "8.1.1-b",
            "the stream ends after 19 bytes, inside stream_header()")(lambda data, s: data[:19])
_alteration("version_major", "8.1.2-a", "version_major 2 (header_crc32 recomputed)")(
    _header_u8(8, 2))
_alteration("profile_idc", "8.1.3-a", "reserved profile_idc 2")(_header_u8(10, 2))
_alteration("level_idc", "8.1.4-a", "reserved level_idc 15")(_header_u8(11, 15))
_alteration("num_layers_zero", "8.1.5-b", "num_layers 0")(
    lambda data, s: _rehead(_put(data, 12, b"\x00\x00")))
_alteration("num_layers_too_large", "8.1.5-a",
            "num_layers one more than the layers present",
            "num_layers below the level's max_layers",
            lambda s: s.header.num_layers < LEVELS[s.header.level_idc].max_layers)(
    lambda data, s: _rehead(_put(data, 12, (s.header.num_layers + 1).to_bytes(2, "big"))))
_alteration("num_layers_too_small", "8.1.5-a", "num_layers one less than the layers present",
            "two layers or more", lambda s: len(s.layers) >= 2)(
    lambda data, s: _rehead(_put(data, 12, (s.header.num_layers - 1).to_bytes(2, "big"))))
_alteration("reserved_zero_16bits", "8.1.6-a", "reserved_zero_16bits 1 in a version 1.0 stream")(
    lambda data, s: _rehead(_put(data, 14, b"\x00\x01")))
_alteration("header_crc32", "8.1.7-a", "one bit of header_crc32 flipped")(
    lambda data, s: _put(data, 19, bytes([data[19] ^ 1])))
_alteration("empty_stream", "8.1.5-c",
            "version_minor 1, num_layers 0 and no face: stream_header() and end_of_stream "
            "only")(
    lambda data, s: _rehead(_put(_put(data[:20], 9, b"\x01"), 12, b"\x00\x00"))
    + bitstream.build_unit(UnitType.END_OF_STREAM, b""))
_alteration("num_layers_over_level", "11.2-a",
            "num_layers one more than max_layers of the stream's level")(
    lambda data, s: _rehead(_put(data, 12, (LEVELS[s.header.level_idc].max_layers + 1)
                                 .to_bytes(2, "big"))))
_alteration("level_too_low", "11.2-a",
            "level_idc lowered to the next lower level, whose limits the stream exceeds",
            "a level above the lowest", lambda s: s.header.level_idc > min(LEVELS))(
    lambda data, s: _rehead(_put(data, 11, bytes([max(lv for lv in LEVELS
                                                      if lv < s.header.level_idc)]))))


# -- unit() --
@_alteration("unknown_critical_unit", "8.2.1-a",
             "a unit of the unknown type 100 with skippable_flag 0 after stream_header()")
def _unknown_critical_unit(data, s):
    return data[:20] + bitstream.build_unit(100, b"critical unit of a future version") + data[20:]


@_alteration("skippable_flag_known_unit", "8.2.2-a",
             "skippable_flag 1 in the layer_header unit")
def _skippable_known(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return _recrc(_put(data, unit.pos + 1, bytes([0x80])), unit)


def _skippable(unit_type: int):
    def alter(data, s):
        unit = _unit_of(data, unit_type)
        return _recrc(_put(data, unit.pos + 1, bytes([0x80])), unit)
    return alter


_alteration("skippable_layer_data", "8.2.2-a", "skippable_flag 1 in the layer_data unit")(
    _skippable(UnitType.LAYER_DATA))
_alteration("skippable_end_of_stream", "8.2.2-a",
            "skippable_flag 1 in the end_of_stream unit")(_skippable(UnitType.END_OF_STREAM))


@_alteration("unit_reserved_bits", "8.2.3-a", "reserved_zero_7bits 1 in the layer_header unit")
def _unit_reserved(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return _recrc(_put(data, unit.pos + 1, bytes([0x01])), unit)


@_alteration("unit_past_end", "8.2.4-a",
             "the stream is cut in the middle of the first layer_data unit")
def _unit_past_end(data, s):
    unit = _unit_of(data, UnitType.LAYER_DATA)
    return data[:unit.pos + 10 + unit.length // 2]


_alteration("unit_too_short", "8.2.4-a",
            "the last 3 bytes are cut: fewer than 10 bytes remain for the end_of_stream unit")(
    lambda data, s: data[:-3])


@_alteration("layer_header_too_short", "8.2.4-b",
             "the layer_header unit of layer 0 lacks the last 3 bytes of layer_header()")
def _layer_header_too_short(data, s):
    unit, payload = _layer0_header_unit(data)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_HEADER, payload[:-3]))


@_alteration("layer_data_too_short", "8.2.4-d",
             "the layer_data unit of layer 0 holds 10 bytes, too few for sample_md5")
def _layer_data_too_short(data, s):
    unit = _unit_of(data, UnitType.LAYER_DATA)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_DATA,
                                                          s.layers[0].sample_md5[:10]))


@_alteration("end_of_stream_payload", "8.2.4-c", "an end_of_stream unit with a 1-byte payload")
def _eos_payload(data, s):
    unit = _unit_of(data, UnitType.END_OF_STREAM)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.END_OF_STREAM, b"\x00"))


@_alteration("unit_crc32", "8.2.5-a", "one bit of the layer_header unit's unit_crc32 flipped")
def _unit_crc(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return _put(data, unit.end - 1, bytes([data[unit.end - 1] ^ 1]))


_alteration("missing_end_of_stream", "8.2.6-c", "the end_of_stream unit is missing")(
    lambda data, s: data[:_unit_of(data, UnitType.END_OF_STREAM).pos])


@_alteration("layer_data_before_header", "8.2.6-b",
             "the layer_data unit of layer 0 comes before its layer_header unit")
def _data_before_header(data, s):
    h, d = _unit_of(data, UnitType.LAYER_HEADER), _unit_of(data, UnitType.LAYER_DATA)
    return data[:h.pos] + data[d.pos:d.end] + data[h.pos:h.end] + data[d.end:]


@_alteration("layer_header_twice", "8.2.6-a",
             "the layer_header unit of layer 0 is repeated before its layer_data unit")
def _header_twice(data, s):
    h = _unit_of(data, UnitType.LAYER_HEADER)
    return data[:h.end] + data[h.pos:h.end] + data[h.end:]


@_alteration("layer_data_missing", "8.2.6-a",
             "the layer_data unit of the last layer is missing: its layer_header unit is "
             "followed by end_of_stream")
def _data_missing(data, s):
    d = _unit_of(data, UnitType.LAYER_DATA, len(s.layers) - 1)
    return data[:d.pos] + data[d.end:]


_alteration("trailing_data", "8.2.7-a", "one zero byte after the end_of_stream unit")(
    lambda data, s: data + b"\x00")
_alteration("second_end_of_stream", "8.2.7-a",
            "a second end_of_stream unit after the first")(
    lambda data, s: data + bitstream.build_unit(UnitType.END_OF_STREAM, b""))


@_alteration("unit_length_over_level", "11.2-a",
             "len_unit_payload of the layer_header unit one more than max_unit_payload of "
             "the stream's level")
def _unit_length_over_level(data, s):
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    value = LEVELS[s.header.level_idc].max_unit_payload + 1
    return _put(data, unit.pos + 2, value.to_bytes(4, "big"))


# -- layer_header() --
_alteration("duplicate_layer_id", "8.3.1-d", "layer 1 has the layer_id of layer 0",
            "two layers or more", lambda s: len(s.layers) >= 2)(
    lambda data, s: _rebuild(s, layers=[_layers(s)[0], (dataclasses.replace(
        s.layers[1].header, layer_id=s.layers[0].header.layer_id), *_layers(s)[1][1:])]
        + _layers(s)[2:]))
_alteration("empty_layer_id", "8.3.1-a", "len_layer_id 0")(
    lambda data, s: _change_layer0(s, layer_id=""))
_alteration("layer_id_not_utf8", "8.3.1-b",
            "the first byte of layer_id is 0xFF (not UTF-8)")(
    lambda data, s: _patch_layer0_header(data, 1, b"\xff"))
_alteration("layer_id_control_character", "8.3.1-c", "a TAB (U+0009) inside layer_id")(
    lambda data, s: _change_layer0(s, layer_id=s.layers[0].header.layer_id[:1] + "\t"
                                   + s.layers[0].header.layer_id[1:]))
_alteration("source_layout", "8.3.2-a", "reserved source_layout 2")(
    lambda data, s: _change_layer0(s, source_layout=2))
_alteration("source_dtype", "8.3.3-a", "reserved source_dtype 3")(
    lambda data, s: _change_layer0(s, source_dtype=3))
_alteration("batch_size_zero", "8.3.4-a", "batch_size 0")(
    lambda data, s: _change_layer0(s, batch_size=0))


@_alteration("num_channels_zero", "8.3.4-b",
             "num_channels 0 (no per-channel parameter set and no permutation entry left)")
def _num_channels_zero(data, s):
    h = s.layers[0].header
    fields = {"num_channels": 0}
    if h.channel_permutation is not None:
        fields["channel_permutation"] = ()
    if h.per_channel_quant_flag:
        fields["quant_params"] = ()
    return _change_layer0(s, **fields)


_alteration("height_zero", "8.3.4-c", "height 0 (pad_bottom 8: the coded tile keeps its size)")(
    lambda data, s: _change_layer0(s, height=0, pad_bottom=8))
_alteration("width_zero", "8.3.4-d", "width 0 (pad_right 8: the coded tile keeps its size)")(
    lambda data, s: _change_layer0(s, width=0, pad_right=8))
_alteration("sample_bit_depth", "8.3.5-a", "reserved sample_bit_depth 9")(
    lambda data, s: _change_layer0(s, sample_bit_depth=9))


def _quant_params_bytes(s: Stream) -> int:
    """The bytes of quant_params() in layer 0's layer_header() (clause 7.3)."""
    h = s.layers[0].header
    value = 2 if h.param_format_value.name == "BINARY16" else 4
    return len(h.quant_params) * value * (1 if h.quantizer_type == QuantizerType.INTEGER else 2)


def _quantizer_type_without_params(data: bytes, s: Stream) -> bytes:
    """quantizer_type 3 in layer 0's layer_header() and no quant_params(): the bytes a
    writer of version 1.0 or 1.1 made, whose syntax has no parameter set for a value it does
    not know (the stream of this alteration is unchanged since version 1.0; version 1.2 gives
    quantizer_type 3 a minmax_params() set, and a reader refuses the value below 1.2 before
    it reads the parameters)."""
    unit, payload = _layer0_header_unit(data)
    at = len(s.layers[0].header.layer_id.encode()) + 20      # quantizer_type (clause 7.3)
    new = (payload[:at] + b"\x03" + payload[at + 1:at + 2]
           + payload[at + 2 + _quant_params_bytes(s):])
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_HEADER, new))


_alteration("quantizer_type", "8.3.6-a", "reserved quantizer_type 3 in a version 1.0 stream",
            "version_minor 0 or 1, binary32 parameters",
            lambda s: s.header.version_minor < 2)(_quantizer_type_without_params)
_alteration("min_above_max", "8.3.7-c", "min_value greater than max_value",
            "a uniform or log quantizer", _minmax)(
    lambda data, s: _with_q0(s, QuantParams(
        min_value=_q0(s).max_value + max(1.0, abs(_q0(s).max_value)),
        max_value=_q0(s).max_value)))
_alteration("quant_param_nan", "8.3.7-a", "min_value NaN", "a uniform or log quantizer",
            _minmax)(lambda data, s: _with_q0(s, QuantParams(min_value=math.nan,
                                                             max_value=_q0(s).max_value)))
_alteration("quant_param_infinite", "8.3.7-a", "max_value +infinity",
            "a uniform or log quantizer", _minmax)(
    lambda data, s: _with_q0(s, QuantParams(min_value=_q0(s).min_value, max_value=math.inf)))
_alteration("quant_param_beyond_dtype", "8.3.7-b",
            "max_value 65536 in a float16 layer (beyond its largest finite value 65504)",
            "a float16 layer with a uniform or log quantizer",
            lambda s: _minmax(s) and s.layers[0].header.source_dtype == SourceDtype.FLOAT16)(
    lambda data, s: _with_q0(s, QuantParams(min_value=_q0(s).min_value, max_value=65536.0)))
_alteration("offset_not_integer", "8.3.7-d", "offset_value with a fraction of 0.5",
            "an integer quantizer", lambda s: not _minmax(s))(
    lambda data, s: _with_q0(s, QuantParams(offset_value=_q0(s).offset_value + 0.5)))
_alteration("offset_out_of_range", "8.3.7-e",
            "offset_value 2^p: the largest value offset_value + D is not exact in the dtype",
            "an integer quantizer", lambda s: not _minmax(s))(
    lambda data, s: _with_q0(s, QuantParams(offset_value=float(
        1 << DTYPE_INFO[s.layers[0].header.source_dtype].precision))))
def _entries(s: Stream) -> bool:
    """Whether layer 0 codes its channel order entry by entry (a grouped permutation
    always gives a permutation)."""
    h = s.layers[0].header
    return h.channel_permutation is not None and h.permutation_coding_value.name != "GROUPED"


_alteration("permutation_repeated", "8.3.8-a",
            "the last entry of channel_permutation repeats the first",
            "a signalled channel_permutation (32-bit or compact entries)",
            lambda s: _entries(s) and s.layers[0].header.num_channels >= 2)(
    lambda data, s: _change_layer0(s, channel_permutation=(
        s.layers[0].header.channel_permutation[:-1]
        + s.layers[0].header.channel_permutation[:1])))
_alteration("permutation_out_of_range", "8.3.8-a",
            "the last entry of channel_permutation is num_channels",
            "a signalled channel_permutation (32-bit or compact entries)", _entries)(
    lambda data, s: _change_layer0(s, channel_permutation=(
        s.layers[0].header.channel_permutation[:-1] + (s.layers[0].header.num_channels,))))


@_alteration("packing_type", "8.3.9-a", "reserved packing_type 2")
def _reserved_packing_type(data, s):
    # packing_type 2 without a tile_grid(), as version 1.1 reads it (a reserved value below
    # version_minor 2; format 1.2 gives it a tile_grid(), which the writer would add)
    unit, payload = _layer0_header_unit(data)
    tail = 5 + (0 if s.layers[0].header.packing_type == PackingType.CHANNEL_PER_PICTURE
                else 4)
    return _replace_unit(data, unit, bitstream.build_unit(
        UnitType.LAYER_HEADER, payload[:-tail] + b"\x02" + payload[-4:]))


_alteration("tile_grid_single_tile", "8.3.9-d", "packing_type 1 with a 1x1 tile grid",
            "packing_type 1 (tiled)",
            lambda s: s.layers[0].header.packing_type == PackingType.TILED)(
    lambda data, s: _change_layer0(s, tile_rows=1, tile_cols=1))
_alteration("tile_rows_zero", "8.3.9-b", "packing_type 1 with tile_rows 0",
            "packing_type 1 (tiled)",
            lambda s: s.layers[0].header.packing_type == PackingType.TILED)(
    lambda data, s: _change_layer0(s, tile_rows=0))
_alteration("tile_cols_zero", "8.3.9-c", "packing_type 1 with tile_cols 0",
            "packing_type 1 (tiled)",
            lambda s: s.layers[0].header.packing_type == PackingType.TILED)(
    lambda data, s: _change_layer0(s, tile_cols=0))
_alteration("pad_mode", "8.3.10-a", "reserved pad_mode 2")(
    lambda data, s: _change_layer0(s, pad_mode=2))
_alteration("pad_not_multiple_of_8", "8.3.10-c",
            "pad_right one more than the stream's: width + pad_right is no multiple of 8")(
    lambda data, s: _change_layer0(s, pad_right=s.layers[0].header.pad_right + 1))
_alteration("pad_bottom_not_multiple_of_8", "8.3.10-b",
            "pad_bottom one more than the stream's: height + pad_bottom is no multiple of 8")(
    lambda data, s: _change_layer0(s, pad_bottom=s.layers[0].header.pad_bottom + 1))
_alteration("payload_codec", "8.3.11-a", "reserved payload_codec 1")(
    lambda data, s: _change_layer0(s, payload_codec=1))
_alteration("layer_flags_reserved", "8.3.12-a",
            "reserved_zero_6bits 1 in a version 1.0 stream")(
    lambda data, s: _patch_layer0_header(
        data, len(s.layers[0].header.layer_id.encode()) + 21,
        bytes([_layer0_header_unit(data)[1][len(s.layers[0].header.layer_id.encode()) + 21]
               | 0x01])))


@_alteration("layer_header_trailing_byte", "8.3.13-a",
             "one byte after layer_header() in its unit")
def _header_trailing(data, s):
    unit, payload = _layer0_header_unit(data)
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_HEADER,
                                                          payload + b"\x00"))


_alteration("layer_elements_over_level", "11.2-a",
            "batch_size raised so that batch_size * num_channels * height * width exceeds "
            "max_layer_elements of the stream's level")(
    lambda data, s: _change_layer0(s, batch_size=LEVELS[s.header.level_idc].max_layer_elements
                                   // (s.layers[0].header.num_elements
                                       // s.layers[0].header.batch_size) + 1))
_alteration("picture_size_over_level", "11.2-a",
            "a 1 x K tile grid whose picture is wider than max_picture_size of the level")(
    lambda data, s: _change_layer0(
        s, packing_type=PackingType.TILED, tile_rows=1,
        tile_cols=LEVELS[s.header.level_idc].max_picture_size
        // s.layers[0].header.coded_tile_width + 1))
_alteration("picture_count_over_level", "11.2-a",
            "1x1 maps, one per picture, and batch_size raised so that NumPictures exceeds "
            "max_pictures of the level")(
    lambda data, s: _change_layer0(
        s, height=1, width=1, pad_bottom=7, pad_right=7,
        packing_type=PackingType.CHANNEL_PER_PICTURE, tile_rows=1, tile_cols=1,
        batch_size=LEVELS[s.header.level_idc].max_pictures
        // s.layers[0].header.num_channels + 1))
_alteration("layer_samples_over_level", "11.2-a",
            "1x1 maps padded to 256x256, one per picture, and batch_size raised so that the "
            "decoded samples exceed max_layer_samples of the level (padding amplification)")(
    lambda data, s: _change_layer0(
        s, height=1, width=1, pad_bottom=255, pad_right=255,
        packing_type=PackingType.CHANNEL_PER_PICTURE, tile_rows=1, tile_cols=1,
        batch_size=LEVELS[s.header.level_idc].max_layer_samples // (256 * 256)
        // s.layers[0].header.num_channels + 1))


def _decoded_bytes_over_level(data, s):
    """Copies of layer 0, each with batch_size raised as far as the per-layer limits allow,
    until the stream's output exceeds max_decoded_bytes; the payloads are those of the
    base stream, but the total is refused at the layer headers, before any decoding."""
    level = LEVELS[s.header.level_idc]
    h = s.layers[0].header
    per_item = h.num_elements // h.batch_size
    pictures_per_item = max(1, h.num_pictures // h.batch_size)
    samples_per_picture = h.picture_height * h.picture_width
    batch = min(level.max_layer_elements // per_item,
                level.max_pictures // pictures_per_item,
                level.max_layer_samples // (pictures_per_item * samples_per_picture))
    big = dataclasses.replace(h, batch_size=batch)
    copies = level.max_decoded_bytes // big.output_bytes + 1
    if copies > level.max_layers:
        raise ValueError(f"{copies} layers needed, more than max_layers {level.max_layers}")
    layers = [(dataclasses.replace(big, layer_id=f"{h.layer_id}#{k}"), s.layers[0].sample_md5,
               s.layers[0].hevc_payload) for k in range(copies)]
    return _rebuild(s, header=dataclasses.replace(s.header, num_layers=copies), layers=layers)


_alteration("decoded_bytes_over_level", "11.2-a",
            "copies of layer 0 with batch_size raised within the per-layer limits, until the "
            "stream's output exceeds max_decoded_bytes of its level (refused at the headers)")(
    _decoded_bytes_over_level)
_alteration("units_over_level", "11.2-a",
            "empty skippable units of an unknown type after stream_header() until the stream "
            "holds one unit more than max_units of its level")(
    lambda data, s: data[:20] + bitstream.build_unit(200, b"", skippable=True)
    * (LEVELS[s.header.level_idc].max_units + 1 - len(_units(data))) + data[20:])


# -- layer_data() --
_alteration("sample_md5", "8.4.1-a", "one bit of sample_md5 flipped")(
    lambda data, s: _change_layer0(s, md5=bytes([s.layers[0].sample_md5[0] ^ 1])
                                   + s.layers[0].sample_md5[1:]))
_alteration("payloads_swapped", "8.4.1-a",
            "the hevc_payloads of layers 0 and 1 swapped (each keeps its sample_md5)",
            "two layers of the same picture size, count and bit depth", _same_geometry)(
    lambda data, s: _rebuild(s, layers=[(s.layers[0].header, s.layers[0].sample_md5,
                                         s.layers[1].hevc_payload),
                                        (s.layers[1].header, s.layers[1].sample_md5,
                                         s.layers[0].hevc_payload)] + _layers(s)[2:]))
_alteration("empty_hevc_payload", "8.4.2-a", "an empty hevc_payload")(
    lambda data, s: _change_layer0(s, payload=b""))


# -- hevc_payload (clause 10) --
def _payload0(s: Stream) -> bytes:
    return s.layers[0].hevc_payload


_alteration("hevc_no_start_code", "10.1-b",
            "the hevc_payload starts with its first NAL unit, without a start code")(
    lambda data, s: _change_layer0(s, payload=_payload0(s)[_payload0(s).index(b"\x01") + 1:]))
_alteration("hevc_forbidden_zero_bit", "10.1-a",
            "forbidden_zero_bit 1 in the first NAL unit header")(
    lambda data, s: _change_layer0(s, payload=_put(
        _payload0(s), 4, bytes([_payload0(s)[4] | 0x80]))))
_alteration("hevc_nuh_layer_id", "10.1-e", "nuh_layer_id 1 in the first NAL unit")(
    lambda data, s: _change_layer0(s, payload=_put(
        _payload0(s), 5, bytes([(1 << 3) | (_payload0(s)[5] & 0x07)]))))
_alteration("hevc_missing_sps", "10.1-c", "the SPS NAL unit is removed")(
    lambda data, s: _change_layer0(s, payload=join_nal_units(
        [u for u in split_nal_units(_payload0(s)) if nal_unit_type(u) != SPS_NUT])))
_alteration("hevc_missing_vps", "10.1-c", "the VPS NAL unit is removed")(
    lambda data, s: _change_layer0(s, payload=join_nal_units(
        [u for u in split_nal_units(_payload0(s)) if nal_unit_type(u) != VPS_NUT])))
_alteration("hevc_missing_pps", "10.1-c", "the PPS NAL unit is removed")(
    lambda data, s: _change_layer0(s, payload=join_nal_units(
        [u for u in split_nal_units(_payload0(s)) if nal_unit_type(u) != PPS_NUT])))
_alteration("hevc_pps_without_sps", "10.1-d",
            "pps_seq_parameter_set_id 1, an SPS the payload lacks")(
    lambda data, s: _change_layer0(s, payload=pps_refers_to(_payload0(s), 1)))
_alteration("hevc_profile_main", "10.2-a",
            "general_profile_idc 1 (Main) with compatibility flags 1 and 2 in the VPS and "
            "SPS")(
    lambda data, s: _change_layer0(s, payload=edit_ptl(
        _payload0(s), lambda b: b[:3] + f"{1:05b}" + f"{(1 << 30) | (1 << 29):032b}" + b[40:])))
_alteration("hevc_not_monochrome", "10.2-b",
            "general_max_monochrome_constraint_flag 0 (the Main Intra profile) in the VPS "
            "and SPS")(
    lambda data, s: _change_layer0(s, payload=edit_ptl(
        _payload0(s), lambda b: b[:MONOCHROME_FLAG_POS] + "0" + b[MONOCHROME_FLAG_POS + 1:])))
_alteration("hevc_chroma_420", "10.3-a", "chroma_format_idc 1 (4:2:0) in the SPS")(
    lambda data, s: _change_layer0(s, payload=set_chroma_format(_payload0(s), 1)))
_alteration("hevc_bit_depth_mismatch", "10.4-a",
            "sample_bit_depth changed (8 to 10, else to 8): the payload's bit depth differs",
            "a uniform or log quantizer", _minmax)(
    lambda data, s: _change_layer0(
        s, sample_bit_depth=10 if s.layers[0].header.sample_bit_depth == 8 else 8))
_alteration("hevc_conformance_window", "10.5-a",
            "a conformance window cropping the last column (conf_win_right_offset 1) in the "
            "SPS; since format 1.2 a window of four zero offsets is allowed")(
    lambda data, s: _change_layer0(s, payload=add_conformance_window(_payload0(s),
                                                                     (0, 1, 0, 0))))
_alteration("hevc_picture_size_mismatch", "10.5-b",
            "height raised by 8: the header's picture height exceeds the payload's")(
    lambda data, s: _change_layer0(s, height=s.layers[0].header.height + 8))
_alteration("hevc_picture_count_mismatch", "10.6-a",
            "batch_size raised: NumPictures exceeds the pictures of the payload")(
    lambda data, s: _change_layer0(s, batch_size=s.layers[0].header.batch_size
                                   + s.layers[0].header.tiles_per_picture))


@_alteration("hevc_rasl_not_output", "10.6-b",
             "the payload cut to its parameter sets and the pictures from its first CRA "
             "picture on, num_channels set to their number: the CRA picture begins the "
             "payload, so its RASL pictures have PicOutputFlag 0 and are not output",
             "an inter payload with a CRA picture and RASL pictures after it, one channel per "
             "picture", lambda s: _has_rasl(s.layers[0]))
def _rasl_not_output(data, s):
    units = split_nal_units(_payload0(s))
    kinds = [nal_unit_type(u) for u in units]
    cra = kinds.index(CRA_NUT)
    kept = [u for u in units[:cra] if nal_unit_type(u) in PARAMETER_SET_TYPES] + units[cra:]
    pictures = sum(1 for u in units[cra:] if nal_unit_type(u) < 32 and u[2] & 0x80)
    return _change_layer0(s, payload=join_nal_units(kept), num_channels=pictures)


def _has_rasl(layer) -> bool:
    if layer.header.packing_type != PackingType.CHANNEL_PER_PICTURE or \
            layer.header.batch_size != 1 or layer.header.per_channel_quant_flag:
        return False
    kinds = [nal_unit_type(u) for u in split_nal_units(layer.hevc_payload)]
    return CRA_NUT in kinds and any(k in (RASL_N, RASL_R) for k in
                                    kinds[kinds.index(CRA_NUT):])


_alteration("hevc_extended_precision", "10.7-b",
            "an sps_range_extension() with extended_precision_processing_flag 1")(
    lambda data, s: _change_layer0(s, payload=add_range_extension(
        _payload0(s), {"extended_precision_processing_flag": 1})))
_alteration("hevc_cabac_bypass_alignment", "10.7-b",
            "an sps_range_extension() with cabac_bypass_alignment_enabled_flag 1")(
    lambda data, s: _change_layer0(s, payload=add_range_extension(
        _payload0(s), {"cabac_bypass_alignment_enabled_flag": 1})))
for _kind, _flag in (("hevc_lossless_implicit_rdpcm", "implicit_rdpcm_enabled_flag"),
                     ("hevc_lossless_transform_skip_rotation",
                      "transform_skip_rotation_enabled_flag")):
    _alteration(_kind, "10.7-a",
                f"{_flag} 1 in the SPS of a lossless payload (transquant_bypass_enabled_flag 1)",
                "a lossless layer 0", lambda s: _is_lossless(s.layers[0]))(
        lambda data, s, flag=_flag: _change_layer0(s, payload=add_range_extension(
            _payload0(s), {flag: 1})))


# -- the syntax of format 1.2 (packing_type 2, layer_header_ext units) --
def _dense(s: Stream) -> bool:
    return s.layers[0].header.packing_type == PackingType.DENSE


def _ext_unit(data: bytes):
    """Layer 0's layer_header_ext unit and layer_header() (clause 8.3.15)."""
    unit = _unit_of(data, UnitType.LAYER_HEADER_EXT)
    return unit, data[unit.payload]


def _patch_ext_header(data: bytes, offset: int, value: int) -> bytes:
    unit, _ = _ext_unit(data)
    return _recrc(_put(data, unit.payload.start + offset, bytes([value])), unit)


def _ext_offset(s: Stream) -> int:
    """The offset of layer_header_ext() in layer 0's layer_header()."""
    return len(s.layers[0].header.layer_id.encode()) + 22


def _compact_padded(s: Stream) -> bool:
    h = s.layers[0].header
    return (h.channel_permutation is not None and h.permutation_coding is not None
            and h.permutation_coding.name == "COMPACT"
            and syntax.perm_pad_bits(h.num_channels) > 0)


def _compact_last_byte(s: Stream) -> int:
    """The offset in layer 0's layer_header() of the last byte of compact_permutation()."""
    h = s.layers[0].header
    bits = syntax.perm_bits(h.num_channels)
    return _ext_offset(s) + 2 + _quant_params_bytes(s) + -(-(h.num_channels * bits) // 8) - 1


_alteration("dense_single_tile", "8.3.9-d", "packing_type 2 (dense) with a 1x1 tile grid",
            "packing_type 2 (dense)", _dense)(
    lambda data, s: _change_layer0(s, tile_rows=1, tile_cols=1))
_alteration("dense_pad_not_multiple_of_8", "8.3.10-e",
            "pad_bottom one more than the stream's in a dense layer: tile_rows * height + "
            "pad_bottom is no multiple of 8", "packing_type 2 (dense)", _dense)(
    lambda data, s: _change_layer0(s, pad_bottom=s.layers[0].header.pad_bottom + 1))
_alteration("dense_pad_right_not_multiple_of_8", "8.3.10-f",
            "pad_right one more than the stream's in a dense layer: tile_cols * width + "
            "pad_right is no multiple of 8", "packing_type 2 (dense)", _dense)(
    lambda data, s: _change_layer0(s, pad_right=s.layers[0].header.pad_right + 1))
_alteration("dense_in_version_1_1", "8.3.9-a",
            "version_minor 1 in a stream with a dense layer: packing_type 2 is reserved "
            "below version_minor 2, as a version 1.1 decoder reads it",
            "packing_type 2 (dense) in a layer_header unit",
            lambda s: _dense(s) and not s.layers[0].header.has_ext)(_header_u8(9, 1))
_alteration("sqrt_in_version_1_1", "8.3.6-a",
            "version_minor 1 in a stream with a square-root layer: quantizer_type 3 is "
            "reserved below version_minor 2, as a version 1.1 decoder reads it",
            "quantizer_type 3 (square root) in a layer_header unit",
            lambda s: s.layers[0].header.quantizer_type == QuantizerType.SQRT
            and not s.layers[0].header.has_ext and not _dense(s))(_header_u8(9, 1))
_alteration("quantizer_type_reserved_1_2", "8.3.6-a",
            "reserved quantizer_type 4 in a version 1.2 stream",
            "version_minor 2", lambda s: s.header.version_minor >= 2)(
    lambda data, s: _change_layer0(s, quantizer_type=4))
_alteration("layer_header_ext_in_version_1_1", "8.2.1-a",
            "version_minor 1 in a stream with a layer_header_ext unit: unit_type 5 is a "
            "reserved critical type below version_minor 2, as a version 1.1 decoder reads it",
            "a layer_header_ext unit", lambda s: s.layers[0].header.has_ext)(_header_u8(9, 1))
_alteration("param_format_reserved", "8.3.15-a", "reserved param_format 2",
            "a layer_header_ext unit", lambda s: s.layers[0].header.has_ext)(
    lambda data, s: _patch_ext_header(data, _ext_offset(s), 2))
_alteration("permutation_coding_reserved", "8.3.16-a", "reserved permutation_coding 3",
            "a layer_header_ext unit", lambda s: s.layers[0].header.has_ext)(
    lambda data, s: _patch_ext_header(data, _ext_offset(s) + 1, 3))
_alteration("compact_permutation_alignment_bits", "8.3.16-b",
            "the last permutation_alignment_zero_bit of compact_permutation() is 1",
            "a compact channel permutation with alignment bits", _compact_padded)(
    lambda data, s: _patch_ext_header(
        data, _compact_last_byte(s),
        _ext_unit(data)[1][_compact_last_byte(s)] | 0x01))


def _grouped(s: Stream) -> bool:
    h = s.layers[0].header
    return h.channel_permutation is not None and h.permutation_coding_value.name == "GROUPED"


def _group_bits_offset(s: Stream) -> int:
    """The offset of group_bits (the first byte of grouped_permutation()) in layer 0's
    layer_header()."""
    return _ext_offset(s) + 2 + _quant_params_bytes(s)


def _group_bits_zero(data: bytes, s: Stream) -> bytes:
    """group_bits 0 and so no entries and no alignment bits: grouped_permutation() is the
    one byte group_bits would make it."""
    unit, payload = _ext_unit(data)
    at, h = _group_bits_offset(s), s.layers[0].header
    new = (payload[:at] + b"\x00"
           + payload[at + syntax.grouped_permutation_size(h.num_channels, h.group_bits):])
    return _replace_unit(data, unit, bitstream.build_unit(UnitType.LAYER_HEADER_EXT, new))


_alteration("group_bits_zero", "8.3.16-c",
            "group_bits 0: a grouped_permutation() of one byte, with entries of no bits",
            "a grouped channel permutation", _grouped)(_group_bits_zero)
_alteration("group_bits_above_8", "8.3.16-c",
            "group_bits 9, with the groups written in entries of 9 bits",
            "a grouped channel permutation", _grouped)(
    lambda data, s: _change_layer0(s, group_bits=9))
_alteration("grouped_permutation_alignment_bits", "8.3.16-d",
            "the last group_alignment_zero_bit of grouped_permutation() is 1",
            "a grouped channel permutation with alignment bits",
            lambda s: _grouped(s) and syntax.group_pad_bits(
                s.layers[0].header.num_channels, s.layers[0].header.group_bits) > 0)(
    lambda data, s: _patch_ext_header(
        data, _group_bits_offset(s) + syntax.grouped_permutation_size(
            s.layers[0].header.num_channels, s.layers[0].header.group_bits) - 1,
        _ext_unit(data)[1][_group_bits_offset(s) + syntax.grouped_permutation_size(
            s.layers[0].header.num_channels, s.layers[0].header.group_bits) - 1] | 0x01))
