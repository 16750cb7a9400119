"""Fast paths of the reader: the stream header and the layer header read with ``struct``
into the same fields construct parses from syntax.stream_header and syntax.layer_header.
A fast parser returns None whenever the data is too short or anything else is not plain,
and construct then parses it (and reports the problem); the checks run on the result
either way.  tests/test_bitstream.py checks that both give the same fields."""

from __future__ import annotations

import struct

import construct
import numpy as np

from .. import syntax

#: The leading fields of layer_header() that limits and array sizes depend on: parsed and
#: checked before the arrays are read.
LAYER_HEADER_FIXED = construct.Struct(*[sc for sc in syntax.layer_header.subcons
                                        if sc.name in syntax.LAYER_HEADER_FIXED_FIELDS])


class _Fields(construct.Container):
    """A construct Container whose fields are also plain instance attributes: the checks
    read dozens of fields, and construct's Container.__getattr__ is a Python-level lookup.
    Equal to the Container construct parses (equality compares the items); never changed
    after it is made."""

    def __init__(self, *args, **fields):
        super().__init__(*args, **fields)
        self.__dict__.update(self)


_STREAM_HEADER = struct.Struct(">8sBBBBHHI")
#: layer_header() from source_layout to layer_flags: two u8, four u32, three u8.
_LAYER_HEADER_MIDDLE = struct.Struct(">BBIIIIBBB")
_MINMAX = struct.Struct(">ff")
_OFFSET = struct.Struct(">f")
_MINMAX16 = struct.Struct(">ee")
_OFFSET16 = struct.Struct(">e")
_TILE_GRID = struct.Struct(">HH")
#: pad_mode, pad_bottom, pad_right, payload_codec.
_LAYER_HEADER_TAIL = struct.Struct(">BBBB")


def fast_stream_header(data: bytes) -> construct.Container:
    """syntax.stream_header.parse(data) for at least STREAM_HEADER_SIZE bytes."""
    (magic, version_major, version_minor, profile_idc, level_idc, num_layers, reserved,
     header_crc32) = _STREAM_HEADER.unpack_from(data)
    return _Fields(magic=magic, version_major=version_major, version_minor=version_minor,
                   profile_idc=profile_idc, level_idc=level_idc, num_layers=num_layers,
                   reserved_zero_16bits=reserved, header_crc32=header_crc32)


def _bit_entries(payload: bytes, pos: int, channels: int, bits: int) -> tuple[list[int], int]:
    """``channels`` entries of ``bits`` bits from byte ``pos``, most significant bit first,
    and the alignment bits after them to the byte boundary, as construct parses
    compact_permutation() and the entries of grouped_permutation() (clause 8.3.16)."""
    nbytes = -(-(channels * bits) // 8)
    raw = np.unpackbits(np.frombuffer(payload, dtype=np.uint8, count=nbytes, offset=pos))
    weights = np.left_shift(np.int64(1), np.arange(bits - 1, -1, -1, dtype=np.int64))
    entries = raw[:channels * bits].reshape(channels, bits).astype(np.int64) @ weights
    pad = 0
    for b in raw[channels * bits:].tolist():
        pad = (pad << 1) | b
    return entries.tolist(), pad


def fast_layer_header(payload: bytes, unit_type: int = 1):
    """(fixed, full, consumed): what LAYER_HEADER_FIXED and syntax.layer_header parse from
    ``payload`` (the payload of a unit of ``unit_type``) and the bytes the latter consumes,
    or None (construct's turn) when the payload is too short for either or quantizer_type
    (or an element of layer_header_ext()) is not a known value."""
    size = len(payload)
    if not size:
        return None
    pos = 1 + payload[0]
    if size < pos + _LAYER_HEADER_MIDDLE.size:
        return None
    (layout, dtype, batch, channels, height, width, depth, qtype,
     flags) = _LAYER_HEADER_MIDDLE.unpack_from(payload, pos)
    if qtype not in (0, 1, 2, 3):
        return None
    per_channel, permuted = bool(flags & 0x80), bool(flags & 0x40)
    pos += _LAYER_HEADER_MIDDLE.size
    ext = None
    param_format = permutation_coding = 0
    if unit_type == syntax.LAYER_HEADER_EXT_UNIT:
        if size < pos + 2 or payload[pos] > 1 or payload[pos + 1] > 2:
            return None
        param_format, permutation_coding = payload[pos], payload[pos + 1]
        ext = _Fields(param_format=param_format, permutation_coding=permutation_coding)
        pos += 2
    fixed = _Fields(
        len_layer_id=payload[0], layer_id=payload[1:1 + payload[0]], source_layout=layout,
        source_dtype=dtype, batch_size=batch, num_channels=channels, height=height,
        width=width, sample_bit_depth=depth, quantizer_type=qtype,
        layer_flags=_Fields(per_channel_quant_flag=per_channel,
                            channel_permutation_flag=permuted,
                            reserved_zero_6bits=flags & 0x3F),
        layer_header_ext=ext)
    if param_format:
        one = _OFFSET16 if qtype == 2 else _MINMAX16
    else:
        one = _OFFSET if qtype == 2 else _MINMAX
    params_end = pos + (channels if per_channel else 1) * one.size
    compact = permuted and permutation_coding == 1
    grouped = permuted and permutation_coding == 2
    if not permuted:
        permutation_end = params_end
    elif compact:
        permutation_end = params_end + -(-(channels * syntax.perm_bits(channels)) // 8)
    elif grouped:
        if size <= params_end or payload[params_end] not in syntax.GROUP_BITS_RANGE:
            return None
        group_bits = payload[params_end]
        permutation_end = params_end + syntax.grouped_permutation_size(channels, group_bits)
    else:
        permutation_end = params_end + 4 * channels
    # packing_type, then tile_grid if it is 1 or 2, then the four u8 of _LAYER_HEADER_TAIL
    if size < permutation_end + 1 or size < permutation_end + 1 + (
            4 if payload[permutation_end] in (1, 2) else 0) + _LAYER_HEADER_TAIL.size:
        return None
    if qtype == 2:
        params = [_Fields(offset_value=v) for (v,) in one.iter_unpack(payload[pos:params_end])]
    else:
        params = [_Fields(min_value=lo, max_value=hi)
                  for lo, hi in one.iter_unpack(payload[pos:params_end])]
    permutation = compact_permutation = grouped_permutation = None
    if compact:
        entries, pad = _bit_entries(payload, params_end, channels, syntax.perm_bits(channels))
        compact_permutation = _Fields(
            channel_permutation_entry=construct.ListContainer(entries),
            permutation_alignment_zero_bits=pad if syntax.perm_pad_bits(channels) else None)
    elif grouped:
        entries, pad = _bit_entries(payload, params_end + 1, channels, group_bits)
        grouped_permutation = _Fields(
            group_bits=group_bits, channel_group=construct.ListContainer(entries),
            group_alignment_zero_bits=pad if syntax.group_pad_bits(channels, group_bits)
            else None)
    elif permuted:
        permutation = construct.ListContainer(
            struct.unpack_from(f">{channels}I", payload, params_end))
    pos = permutation_end
    packing_type = payload[pos]
    pos += 1
    tile_grid = None
    if packing_type in (1, 2):
        rows, cols = _TILE_GRID.unpack_from(payload, pos)
        tile_grid = _Fields(tile_rows=rows, tile_cols=cols)
        pos += _TILE_GRID.size
    pad_mode, pad_bottom, pad_right, payload_codec = _LAYER_HEADER_TAIL.unpack_from(payload,
                                                                                    pos)
    full = _Fields(fixed, quant_params=construct.ListContainer(params),
                   channel_permutation=permutation, compact_permutation=compact_permutation,
                   grouped_permutation=grouped_permutation,
                   packing_type=packing_type,
                   tile_grid=tile_grid, pad_mode=pad_mode, pad_bottom=pad_bottom,
                   pad_right=pad_right, payload_codec=payload_codec)
    return fixed, full, pos + _LAYER_HEADER_TAIL.size
