"""The reader of layer_header() (clause 8.3).

Read in two steps, so that no array is allocated before its size is known to be allowed:
the fixed leading fields (identifier, enumerations, dimensions, bit depth, flags) and the
level limits that depend on them; then the whole structure, whose quantizer parameters,
channel permutation and packing are checked in their syntax order.
"""

from __future__ import annotations

import math

from .. import syntax
from ..enums import (ALLOWED_BIT_DEPTHS, DTYPE_INFO, PackingType, PadMode, ParamFormat,
                     PayloadCodec, PermutationCoding, QuantizerType, SourceDtype, SourceLayout,
                     UnitType)
from ..errors import ConformanceViolation, UnsupportedFeature
from ..packing import order_of_groups
from ..records import LayerHeader, QuantParams
from . import fast
from .base import Located

def read_layer_header(reader, payload: bytes, start: int, path: str,
                      unit_type: int = UnitType.LAYER_HEADER) -> LayerHeader:
    """The layer header in ``payload`` (a unit payload at byte ``start`` of the stream), of
    a layer_header unit or (format 1.2) a layer_header_ext unit, whose layer_header() holds
    layer_header_ext() (clause 8.3.15)."""
    unit_type = int(unit_type)
    parsed = fast.fast_layer_header(payload, unit_type)
    if parsed is None:
        c, _ = reader.parse(fast.LAYER_HEADER_FIXED, payload, start, path, "layer_header()",
                            unit_type=unit_type)
    else:
        c, full, consumed = parsed
    layer_id = _fixed_fields(reader, Located(reader, fast.LAYER_HEADER_FIXED, c, start, path))
    _reserved_packing_type(reader, c, payload, start, path)
    if parsed is None:
        full, consumed = reader.parse(syntax.layer_header, payload, start, path,
                                      "layer_header()", unit_type=unit_type)
    if consumed != len(payload):
        reader.fail(ConformanceViolation, "8.3.13",
                    f"layer_header() is {consumed} bytes but len_unit_payload is "
                    f"{len(payload)}", start + consumed, path)
    fields = Located(reader, syntax.layer_header, full, start, path)
    qtype = QuantizerType(full.quantizer_type)
    dtype = SourceDtype(full.source_dtype)
    ext = full.layer_header_ext
    param_format = perm_coding = None
    if ext is not None:
        param_format = ParamFormat(ext.param_format)
        perm_coding = PermutationCoding(ext.permutation_coding)
    params = _quant_params(fields, qtype, dtype, full.sample_bit_depth,
                           2 if param_format == ParamFormat.BINARY16 else 4)
    perm = _channel_permutation(fields)
    grouped = full.get("grouped_permutation")
    packing, rows, cols = _packing(reader, fields)
    return LayerHeader(
        layer_id=layer_id, source_layout=SourceLayout(full.source_layout), source_dtype=dtype,
        batch_size=full.batch_size, num_channels=full.num_channels, height=full.height,
        width=full.width, sample_bit_depth=full.sample_bit_depth, quantizer_type=qtype,
        per_channel_quant_flag=bool(full.layer_flags.per_channel_quant_flag),
        quant_params=tuple(params), channel_permutation=perm, packing_type=packing,
        tile_rows=rows, tile_cols=cols, pad_mode=PadMode(full.pad_mode),
        pad_bottom=full.pad_bottom, pad_right=full.pad_right,
        payload_codec=PayloadCodec(full.payload_codec), param_format=param_format,
        permutation_coding=perm_coding,
        group_bits=grouped.group_bits if grouped is not None else None,
        channel_groups=tuple(grouped.channel_group) if grouped is not None else None)


def _fixed_fields(reader, f: Located) -> str:
    """The leading fields and everything array sizes depend on, before the arrays are read;
    returns layer_id."""
    c, lvl = f.parsed, reader.level
    layer_id = reader.text(c.layer_id, "layer_id", "8.3.1", f.start + 1, f"{f.path}.layer_id")
    for name in ("source_layout", "source_dtype", "quantizer_type"):
        enum = {"source_layout": SourceLayout, "source_dtype": SourceDtype,
                "quantizer_type": QuantizerType}[name]
        clause = {"source_layout": "8.3.2", "source_dtype": "8.3.3",
                  "quantizer_type": "8.3.6"}[name]
        if c[name] not in enum.__members__.values():
            f.stop(UnsupportedFeature, clause, f"{name} {c[name]} is reserved", name)
    if c.quantizer_type == QuantizerType.SQRT \
            and reader.version_minor < syntax.FORMAT12_VERSION_MINOR:
        # reserved below 1.2: refused as a decoder of version 1.0 or 1.1 refuses it
        f.stop(UnsupportedFeature, "8.3.6", "quantizer_type 3 is reserved", "quantizer_type")
    for name in ("batch_size", "num_channels", "height", "width"):
        if c[name] < 1:
            f.stop(ConformanceViolation, "8.3.4", f"{name} shall be at least 1, got 0", name)
    if c.num_channels > lvl.max_num_channels:
        f.stop(ConformanceViolation, "11.2",
               f"num_channels shall be at most {lvl.max_num_channels} at level "
               f"{lvl.level_idc}, got {c.num_channels}", "num_channels")
    elements = c.batch_size * c.num_channels * c.height * c.width
    if elements > lvl.max_layer_elements:
        f.stop(ConformanceViolation, "11.2",
               f"batch_size*num_channels*height*width shall be at most "
               f"{lvl.max_layer_elements} at level {lvl.level_idc}, got {elements}",
               "batch_size")
    if c.sample_bit_depth not in ALLOWED_BIT_DEPTHS:
        f.stop(UnsupportedFeature, "8.3.5",
               f"sample_bit_depth shall be 8, 10 or 12, got {c.sample_bit_depth}",
               "sample_bit_depth")
    if c.layer_flags.reserved_zero_6bits and not reader.lenient_reserved:
        f.fail(ConformanceViolation, "8.3.12",
               f"reserved_zero_6bits shall be 0, got {c.layer_flags.reserved_zero_6bits}",
               "layer_flags")
    ext = c.layer_header_ext
    if ext is not None:     # a layer_header_ext unit (format 1.2), before any array is read
        if ext.param_format not in ParamFormat.__members__.values():
            f.stop(UnsupportedFeature, "8.3.15",
                   f"param_format {ext.param_format} is reserved", "layer_header_ext",
                   ".param_format")
        if ext.permutation_coding not in PermutationCoding.__members__.values():
            reader.stop(UnsupportedFeature, "8.3.16",
                        f"permutation_coding {ext.permutation_coding} is reserved",
                        f.at("layer_header_ext") + 1,
                        f"{f.path}.layer_header_ext.permutation_coding")
    return layer_id


def _packing_type_offset(reader, c, payload: bytes, start: int, path: str) -> int | None:
    """The offset of packing_type in layer_header(), from the fixed fields, before the
    arrays are read; on the way, group_bits of a grouped_permutation() (clause 8.3.16),
    which the size of the structure depends on, is refused outside 1..8.  None when the
    payload ends first (the full parse reports it)."""
    ext = c.layer_header_ext
    value = 2 if ext is not None and ext.param_format == ParamFormat.BINARY16 else 4
    sets = c.num_channels if c.layer_flags.per_channel_quant_flag else 1
    pos = 1 + c.len_layer_id + 21 + (2 if ext is not None else 0) + sets * value * (
        1 if c.quantizer_type == QuantizerType.INTEGER else 2)
    if not c.layer_flags.channel_permutation_flag:
        return pos
    coding = ext.permutation_coding if ext is not None else PermutationCoding.U32
    if coding == PermutationCoding.COMPACT:
        return pos - (-(c.num_channels * syntax.perm_bits(c.num_channels)) // 8)
    if coding == PermutationCoding.GROUPED:
        if pos >= len(payload):
            return None
        if payload[pos] not in syntax.GROUP_BITS_RANGE:
            reader.stop(ConformanceViolation, "8.3.16",
                        f"group_bits shall be in 1..8, got {payload[pos]}", start + pos,
                        f"{path}.grouped_permutation.group_bits")
        return pos + syntax.grouped_permutation_size(c.num_channels, payload[pos])
    return pos + 4 * c.num_channels


def _reserved_packing_type(reader, c, payload: bytes, start: int, path: str) -> None:
    """packing_type read where the fixed fields put it, before the rest is parsed: 2 is
    reserved in a stream whose version_minor is below 2 (clause 8.3.9), where no tile_grid()
    follows it, so that such a stream is refused as a decoder of version 1.0 or 1.1 refuses
    it, and not for the tile_grid() it lacks."""
    pos = _packing_type_offset(reader, c, payload, start, path)
    if reader.version_minor >= syntax.FORMAT12_VERSION_MINOR:
        return
    if pos is not None and pos < len(payload) and payload[pos] == PackingType.DENSE:
        reader.stop(UnsupportedFeature, "8.3.9",     # the message of 1.1
                    "packing_type 2 is reserved", start + pos,
                    f"{path}.packing_type")


def _quant_params(f: Located, qtype: QuantizerType, dtype: SourceDtype,
                  depth: int, value_size: int = 4) -> list[QuantParams]:
    """quant_params (clause 8.3.7): one set per tensor or per channel, of binary32 values
    (value_size 4) or binary16 values (value_size 2, clause 8.3.15: parsed to the binary32
    -- here binary64 -- value they convert to exactly, then checked alike)."""
    params = []
    set_size = value_size if qtype == QuantizerType.INTEGER else 2 * value_size
    largest = DTYPE_INFO[dtype].max_finite
    for i, p in enumerate(f.parsed.quant_params):
        sub, delta = f"[{i}]", i * set_size
        if qtype == QuantizerType.INTEGER:
            off = p.offset_value
            limit = 1 << DTYPE_INFO[dtype].precision
            if not math.isfinite(off) or off != math.floor(off):
                f.fail(ConformanceViolation, "8.3.7",
                       f"offset_value shall be a finite integer, got {off!r}",
                       "quant_params", sub + ".offset_value", delta)
            elif off < -limit or off + (1 << depth) - 1 > limit:
                f.fail(ConformanceViolation, "8.3.7",
                       f"offset_value..offset_value+{(1 << depth) - 1} shall lie in "
                       f"-{limit}..{limit} for {dtype.name.lower()}, got {off!r}",
                       "quant_params", sub + ".offset_value", delta)
            params.append(QuantParams(offset_value=off))
        else:
            lo, hi = p.min_value, p.max_value
            if not (abs(lo) <= largest and abs(hi) <= largest):
                f.fail(ConformanceViolation, "8.3.7",
                       f"min_value and max_value shall be finite in "
                       f"{dtype.name.lower()} (magnitude at most {largest!r}), got "
                       f"{lo!r}, {hi!r}", "quant_params", sub, delta)
            elif lo > hi:
                f.fail(ConformanceViolation, "8.3.7",
                       f"min_value shall not exceed max_value, got {lo!r} > {hi!r}",
                       "quant_params", sub, delta)
            params.append(QuantParams(min_value=lo, max_value=hi))
    return params


def _channel_permutation(f: Located) -> tuple[int, ...] | None:
    """channel_permutation, compact_permutation() or grouped_permutation() (clauses 8.3.8,
    8.3.16), when channel_permutation_flag is 1: ChannelOrder."""
    full = f.parsed
    compact, grouped = full.get("compact_permutation"), full.get("grouped_permutation")
    if grouped is not None:
        if grouped.group_alignment_zero_bits:
            f.fail(ConformanceViolation, "8.3.16",
                   f"group_alignment_zero_bits shall be 0, got "
                   f"{grouped.group_alignment_zero_bits}", "grouped_permutation",
                   ".group_alignment_zero_bits",
                   1 + full.num_channels * grouped.group_bits // 8)
        # any channel_group values give a permutation: no check of clause 8.3.8 applies
        return order_of_groups(grouped.channel_group)
    if full.channel_permutation is None and compact is None:
        return None
    if compact is not None:
        perm = tuple(compact.channel_permutation_entry)
        name, sub, bits = "compact_permutation", ".channel_permutation_entry", \
            syntax.perm_bits(full.num_channels)
    else:
        perm = tuple(full.channel_permutation)
        name, sub, bits = "channel_permutation", "", 32
    seen = bytearray(full.num_channels)
    for i, k in enumerate(perm):
        if k >= full.num_channels or seen[k]:
            # the byte that holds the entry's first bit
            f.fail(ConformanceViolation, "8.3.8",
                   f"{name} shall be a permutation of 0..{full.num_channels - 1}, entry "
                   f"{i} is {k}" + (" (repeated)" if k < full.num_channels else ""),
                   name, f"{sub}[{i}]", i * bits // 8)
            break
        seen[k] = 1
    if compact is not None and compact.permutation_alignment_zero_bits:
        f.fail(ConformanceViolation, "8.3.16",
               f"permutation_alignment_zero_bits shall be 0, got "
               f"{compact.permutation_alignment_zero_bits}", name,
               ".permutation_alignment_zero_bits", full.num_channels * bits // 8)
    return perm


def _packing(reader, f: Located) -> tuple[PackingType, int, int]:
    """packing_type, tile_grid, padding (clauses 8.3.9, 8.3.10), the picture limits of the
    level (clause 11.2) and payload_codec (8.3.11): (packing, tile_rows, tile_cols)."""
    full, lvl = f.parsed, reader.level
    if full.packing_type not in PackingType.__members__.values():
        f.stop(UnsupportedFeature, "8.3.9", f"packing_type {full.packing_type} is reserved",
               "packing_type")
    packing = PackingType(full.packing_type)
    if packing == PackingType.DENSE and reader.version_minor < syntax.FORMAT12_VERSION_MINOR:
        f.stop(UnsupportedFeature, "8.3.9", "packing_type 2 is reserved",   # below 1.2
               "packing_type")
    dense = packing == PackingType.DENSE
    rows = cols = 1
    if packing in (PackingType.TILED, PackingType.DENSE):
        rows, cols = full.tile_grid.tile_rows, full.tile_grid.tile_cols
        if rows < 1 or cols < 1 or rows * cols < 2:
            f.stop(ConformanceViolation, "8.3.9",
                   f"tile_rows and tile_cols shall be at least 1 with tile_rows*tile_cols "
                   f"at least 2, got {rows}x{cols}", "tile_grid")
    if full.pad_mode not in PadMode.__members__.values():
        f.stop(UnsupportedFeature, "8.3.10", f"pad_mode {full.pad_mode} is reserved",
               "pad_mode")
    for name, dim, n in (("pad_bottom", full.height, rows), ("pad_right", full.width, cols)):
        what = "height" if name == "pad_bottom" else "width"
        if dense and (n * dim + full[name]) % 8:
            grid = "tile_rows" if name == "pad_bottom" else "tile_cols"
            f.fail(ConformanceViolation, "8.3.10",
                   f"{grid} * {what} + {name} shall be a multiple of 8 for packing_type 2, "
                   f"got {n} * {dim} + {full[name]}", name)
        elif not dense and (dim + full[name]) % 8:
            f.fail(ConformanceViolation, "8.3.10",
                   f"{what} + {name} shall be a multiple of 8, got {dim} + {full[name]}",
                   name)
    if dense:   # PictureHeight and PictureWidth (clause 8.3.14)
        pic_h = rows * full.height + full.pad_bottom
        pic_w = cols * full.width + full.pad_right
    else:
        pic_h = rows * (full.height + full.pad_bottom)
        pic_w = cols * (full.width + full.pad_right)
    if max(pic_h, pic_w) > lvl.max_picture_size or pic_h * pic_w > lvl.max_picture_samples:
        f.stop(ConformanceViolation, "11.2",
               f"the picture size {pic_w}x{pic_h} exceeds the limits of level "
               f"{lvl.level_idc} ({lvl.max_picture_size} per side, "
               f"{lvl.max_picture_samples} samples)", "packing_type")
    num_pictures = -(-(full.batch_size * full.num_channels) // (rows * cols))
    if num_pictures > lvl.max_pictures:
        f.stop(ConformanceViolation, "11.2",
               f"the layer needs {num_pictures} pictures, more than the "
               f"{lvl.max_pictures} of level {lvl.level_idc}", "packing_type")
    if num_pictures * pic_h * pic_w > lvl.max_layer_samples:
        f.stop(ConformanceViolation, "11.2",
               f"the layer decodes to {num_pictures} pictures of {pic_w}x{pic_h} = "
               f"{num_pictures * pic_h * pic_w} samples, more than the "
               f"{lvl.max_layer_samples} of level {lvl.level_idc}", "packing_type")
    if full.payload_codec not in PayloadCodec.__members__.values():
        f.stop(UnsupportedFeature, "8.3.11",
               f"payload_codec {full.payload_codec} is reserved", "payload_codec")
    return packing, rows, cols
