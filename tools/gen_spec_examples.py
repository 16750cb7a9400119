#!/usr/bin/env python3
"""Render the worked examples of the specification from the reference software.

Blocks (between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED -->``):

``example_stream``  (spec/07-syntax.md) a small tensor encoded with ``refcodec.encode``:
                    the input, the quantized samples, the packed picture, every byte of
                    ``stream_header()`` and of the layer_header unit with its syntax element,
                    and the decoded tensor;
``example_dequant`` (spec/09-decoding.md) entries of a log quantizer reconstruction table;
``example_errors`` (spec/12-conformance.md) the error reports of the reference decoder for
                    altered copies of the example stream;
``anchor_layouts``  (spec/annex-b-test-conditions.md) the layout the reference encoder
                    chooses for each feature of the source method's test conditions.

Nothing here is typed by hand: every number comes from refcodec.  HEVC lossless coding is
used so that everything shown is independent of the libx265 build (the HEVC payload itself,
which is not, is not shown).  Needs PyAV with libx265.

Usage::

    python tools/gen_spec_examples.py            # rewrite spec/*.md
    python tools/gen_spec_examples.py --check    # exit 1 when an example is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import struct
import sys
from pathlib import Path

import construct
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_spec_tables as tables  # noqa: E402

import refcodec  # noqa: E402
from refcodec import bitstream, codec, enums, layer, packing, quant, syntax  # noqa: E402
from refcodec.records import QuantParams  # noqa: E402
from refcodec.testconditions import FEATURE_SHAPES  # noqa: E402

# ----------------------------------------------------------------------------------------
# The example
# ----------------------------------------------------------------------------------------

EXAMPLE_LAYER_ID = "example"
EXAMPLE_SHAPE = (1, 3, 3, 5)
#: Keyword arguments of the EncoderConfig of the example (shown in the spec as written).
EXAMPLE_CONFIG = dict(qp=22, quantizer="uniform", bit_depth=8, packing="tiled",
                      tile_grid=(2, 2), channel_order=(2, 0, 1), lossless=True)

DEQUANT_PARAMS = QuantParams(min_value=0.0, max_value=10.0)
DEQUANT_BIT_DEPTH = 8
DEQUANT_ROWS = list(range(0, 8)) + list(range(248, 256))

#: How the spec names the networks of refcodec.testconditions.FEATURE_SHAPES.
NETWORK_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet"}

#: Syntax elements whose values are enumerations (for the annotations).
ENUM_OF_FIELD = {field: getattr(enums, cls)
                 for cls, (_, field) in tables.ENUM_FIELDS.items()}


def example_tensor() -> np.ndarray:
    """Quarter steps between -1.25 and 4.25, in a scrambled order."""
    k = np.arange(int(np.prod(EXAMPLE_SHAPE)))
    return (((7 * k) % 23 - 5) / 4).astype(np.float32).reshape(EXAMPLE_SHAPE)


def f32(v) -> str:
    """Shortest decimal text that reads back as the same binary32 value."""
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def f32_bits(v) -> str:
    return "0x" + struct.pack(">f", float(v)).hex()


def grid(rows, fmt, width: int) -> list[str]:
    return ["  ".join(fmt(v).rjust(width) for v in row) for row in rows]


def tensor_block(name: str, tensor, fmt, width: int) -> list[str]:
    """A fenced block showing each channel of batch item 0 of ``tensor`` as a grid."""
    out = ["```"]
    for c in range(tensor.shape[1]):
        for r, line in enumerate(grid(tensor[0, c], fmt, width)):
            out.append(f"{f'{name}[0][{c}]' if r == 0 else '':8}  {line}")
        out.append("")
    out[-1] = "```"
    return out


# ----------------------------------------------------------------------------------------
# Byte annotation: walk a construct with its parsed value
# ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Field:
    offset: int | str
    data: bytes
    path: str
    value: str


def _value_text(name: str, con, value) -> str:
    leaf = name.rsplit(".", 1)[-1].split("[")[0]
    if isinstance(value, float):
        return f"{f32(value)} ({f32_bits(value)})"
    if isinstance(value, (bytes, bytearray)):
        if leaf == "layer_id":
            return repr(bytes(value).decode("utf-8"))
        return "0x" + bytes(value).hex() if value else "(empty)"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        if leaf in ENUM_OF_FIELD:
            try:
                return f"{value} ({ENUM_OF_FIELD[leaf](value).name})"
            except ValueError:
                return f"{value} (reserved)"
        if leaf.endswith("crc32"):
            return f"0x{value:08x}"
        return str(value)
    raise tables.UnknownConstruct(f"no text for value {value!r} of {name}")


def annotate(con, value, ctx: dict, path: str, offset: int, out: list[Field]) -> int:
    """Append one Field per syntax element of ``con`` built from ``value``; return the
    offset after it."""
    if isinstance(con, construct.Renamed):
        inner = tables._unwrap_renamed(con)[2]
        return annotate(inner, value, ctx, path, offset, out)
    bits = tables._bitwise_struct(con)
    if bits is not None:
        data = con.build(value)
        flags = ", ".join(f"{sc.name} = {int(value[sc.name])}" for sc in bits.subcons)
        out.append(Field(offset, data, path, flags))
        return offset + len(data)
    if isinstance(con, construct.Struct):
        inner_ctx = {k: v for k, v in value.items() if not k.startswith("_")}
        for sc in con.subcons:
            offset = annotate(sc, value[sc.name], inner_ctx,
                              f"{path}.{sc.name}" if path else sc.name, offset, out)
        return offset
    if isinstance(con, construct.Array):
        for i, item in enumerate(value):
            offset = annotate(con.subcon, item, ctx, f"{path}[{i}]", offset, out)
        return offset
    if isinstance(con, construct.Switch):
        key = con.keyfunc(construct.Container(ctx)) if callable(con.keyfunc) else con.keyfunc
        return annotate(con.cases[key], value, ctx, path, offset, out)
    if isinstance(con, construct.IfThenElse):
        if con.condfunc(construct.Container(ctx)):
            return annotate(con.thensubcon, value, ctx, path, offset, out)
        return offset
    data = con.build(value, **ctx)
    out.append(Field(offset, data, path, _value_text(path, con, value)))
    return offset + len(data)


def hexdump(data: bytes, per_line: int = 8) -> str:
    return "<br>".join(data[i:i + per_line].hex(" ") for i in range(0, len(data), per_line))


def field_table(fields: list[Field]) -> list[str]:
    lines = ["| Offset | Bytes | Syntax element | Value |", "|---:|:---|:---|:---|"]
    for f in fields:
        shown = f"`{hexdump(f.data)}`".replace("<br>", "`<br>`") if f.data else ""
        lines.append(f"| {f.offset} | {shown} | `{f.path}` | {f.value.replace('|', '&#124;')} |")
    return lines


# ----------------------------------------------------------------------------------------
# Renderers
# ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _encoded_example():
    x = example_tensor()
    cfg = refcodec.EncoderConfig(**EXAMPLE_CONFIG)
    data = refcodec.encode({EXAMPLE_LAYER_ID: x}, cfg)
    return x, cfg, data


def render_example_stream(ctx: tables.Context) -> str:
    x, _, data = _encoded_example()
    stream = refcodec.read_headers(data)
    layer = stream.layer(EXAMPLE_LAYER_ID)
    h = layer.header
    D = h.max_sample_value
    qtype = int(h.quantizer_type)
    params = list(h.quant_params)

    # the encoder's steps, redone with the informative functions it uses
    q = quant.quantize(x, qtype, quant.choose_params(x, qtype, h.sample_bit_depth,
                                                     h.per_channel_quant_flag),
                       h.sample_bit_depth)
    pictures = packing.pack(q, packing.Layout.of(h))
    decoded = refcodec.decode(data)[EXAMPLE_LAYER_ID]
    expected = quant.dequantize(q, qtype, params, h.sample_bit_depth, np.float32)
    if not np.array_equal(decoded.view(np.uint32), expected.view(np.uint32)):
        raise AssertionError("lossless example: decoded tensor differs from dequantize(q)")
    md5s = codec.planes_md5(pictures, h.sample_bit_depth)
    if codec.sample_md5(md5s) != layer.sample_md5:
        raise AssertionError("sample_md5 of the example does not match its pictures")

    cfg_text = ", ".join(f"{k}={v!r}" for k, v in EXAMPLE_CONFIG.items())
    out = []
    out.append(f"**Input.** One layer, layer_id `{EXAMPLE_LAYER_ID}`, a float32 tensor in NCHW "
               f"layout of shape {' x '.join(map(str, x.shape))} (batch_size x num_channels x "
               f"height x width), coded with")
    out.append("")
    out.append("```python")
    out.append(f"refcodec.encode({{{EXAMPLE_LAYER_ID!r}: x}}, refcodec.EncoderConfig({cfg_text}))")
    out.append("```")
    out.append("")
    out.extend(tensor_block("x", x, f32, 6))
    out.append("")
    p = params[0]
    out.append(f"**Quantization** (Annex A.1, uniform, sample_bit_depth {h.sample_bit_depth}, "
               f"D = {D}): one parameter set, min_value = {f32(p.min_value)}, max_value = "
               f"{f32(p.max_value)}; sample values q:")
    out.append("")
    out.extend(tensor_block("q", q, str, 3))
    out.append("")
    perm = h.channel_permutation
    slots = ", ".join(f"slot {k} = channel {perm[k]}" for k in range(h.num_channels))
    out.append(f"**Packing** (clauses 8.3.14 and 9.3): channel_permutation = "
               f"{list(perm)}, so {slots}. Each {h.height} x {h.width} map is padded by "
               f"replication to a {h.coded_tile_height} x {h.coded_tile_width} coded tile "
               f"(pad_bottom = {h.pad_bottom}, pad_right = {h.pad_right}), and the tiles go into "
               f"a {h.tile_rows} x {h.tile_cols} grid, giving NumPictures = {h.num_pictures} "
               f"picture of {h.picture_width} x {h.picture_height} samples; the last tile is "
               f"unused and filled with 0:")
    out.append("")
    out.append("```")
    for pic in pictures:
        for r, row in enumerate(pic):
            cells = [str(int(v)).rjust(3) for v in row]
            text = " | ".join(" ".join(cells[c0:c0 + h.coded_tile_width])
                              for c0 in range(0, len(cells), h.coded_tile_width))
            out.append(text)
            if (r + 1) % h.coded_tile_height == 0 and r + 1 < len(pic):
                out.append("-" * len(text))
    out.append("```")
    out.append("")
    out.append(f"The HEVC payload codes this picture losslessly, so the decoded picture is the "
               f"same; its picture MD5 is `{md5s[0].hex()}` and sample_md5, the MD5 of that "
               f"16-byte value (clause 8.4.1), is `{layer.sample_md5.hex()}`.")
    out.append("")

    # bytes
    fields: list[Field] = []
    header_c = syntax.stream_header.parse(data[:syntax.STREAM_HEADER_SIZE])
    annotate(syntax.stream_header, header_c, {}, "stream_header", 0, fields)
    out.append("**Bytes.** N denotes the length of hevc_payload, which depends on the libx265 "
               "build and is not shown; the bitstream is 124 + N bytes long. Every other byte "
               "shown is independent of the HEVC encoder:")
    out.append("")
    pos = layer.header_offset
    unit_c = syntax.unit.parse(data[pos:])
    unit_fields: list[Field] = []
    annotate(syntax.unit, unit_c, {}, "units[0]", pos, unit_fields)
    payload_c = syntax.layer_header.parse(bytes(unit_c.unit_payload))
    payload_fields: list[Field] = []
    end = annotate(syntax.layer_header, payload_c, {}, "layer_header", pos + syntax.UNIT_PREFIX,
                   payload_fields)
    if end != pos + syntax.UNIT_PREFIX + unit_c.len_unit_payload:
        raise AssertionError("layer_header() does not fill its unit payload")
    for f in unit_fields:
        if f.path.endswith(".unit_payload"):
            fields.extend(payload_fields)
        else:
            fields.append(f)
    # layer_data unit: its framing, sample_md5; the HEVC payload is build-dependent
    dpos = layer.data_offset
    data_c = syntax.unit.parse(data[dpos:])
    dfields: list[Field] = []
    annotate(syntax.unit, data_c, {}, "units[1]", dpos, dfields)
    n_hevc = len(layer.hevc_payload)
    if len(data) != 124 + n_hevc:
        raise AssertionError(f"the example stream is {len(data)} bytes, not 124 + {n_hevc}")

    def after(offset: int) -> str:      # an offset behind hevc_payload, in terms of N
        return f"{offset - n_hevc} + N"

    for f in dfields:
        if f.path.endswith(".unit_payload"):
            fields.append(Field(f.offset, f.data[:16], "layer_data.sample_md5",
                                "0x" + f.data[:16].hex()))
            fields.append(Field(f.offset + 16, b"", "layer_data.hevc_payload",
                                "N bytes of HEVC byte stream (not shown)"))
        elif f.path.endswith(".len_unit_payload"):
            fields.append(Field(f.offset, b"", f.path, "16 + N (not shown)"))
        elif f.path.endswith(".unit_crc32"):
            fields.append(Field(after(f.offset), b"", f.path, "(not shown)"))
        else:
            fields.append(f)
    epos = len(data) - syntax.UNIT_OVERHEAD
    eos_c = syntax.unit.parse(data[epos:])
    eos_fields: list[Field] = []
    annotate(syntax.unit, eos_c, {}, "units[2]", epos, eos_fields)
    fields.extend(dataclasses.replace(f, offset=after(f.offset)) for f in eos_fields)
    out.extend(field_table(fields))
    out.append("")
    out.append(f"**Decoding** (clause 9): the decoder reads the samples back from the tiles, "
               f"restores the source channel order and dequantizes with "
               f"v = min_value + ((q * (max_value − min_value)) / {D}) in binary64, rounded to "
               f"binary32:")
    out.append("")
    out.extend(tensor_block("y", decoded, f32, 11))
    out.append("")
    err = np.abs(decoded.astype(np.float64) - x.astype(np.float64)).max()
    step = (np.float64(p.max_value) - np.float64(p.min_value)) / D
    out.append(f"The largest difference from the input is {err:.6g}: rounding to the nearest "
               f"sample value keeps it within half a quantization step, "
               f"(max_value − min_value) / (2 * D) = {step / 2:.6g}.")
    return "\n".join(out) + "\n"


def render_example_dequant(ctx: tables.Context) -> str:
    p = DEQUANT_PARAMS
    b = DEQUANT_BIT_DEPTH
    table = quant.output_table(quant.LOG, p, b, np.float32)
    span = np.log2((np.float64(p.max_value) - np.float64(p.min_value)) + 1.0)
    out = [(f"min_value = {f32(p.min_value)}, max_value = {f32(p.max_value)}, "
            f"sample_bit_depth = {b} (D = {(1 << b) - 1}); "
            f"L = log2({f32(p.max_value)} − {f32(p.min_value)} + 1) ≈ {span:.9f}."), "",
           "| q | v rounded to binary32 | binary32 bits |", "|---:|---:|:---|"]
    for q in DEQUANT_ROWS:
        if q != DEQUANT_ROWS[0] and q - 1 not in DEQUANT_ROWS:
            out.append("| … | | |")
        out.append(f"| {q} | {f32(table[q])} | `{f32_bits(table[q])}` |")
    return "\n".join(out) + "\n"


def render_anchor_layouts(ctx: tables.Context) -> str:
    cfg = refcodec.EncoderConfig(quantizer="log", bit_depth=8)
    params = [QuantParams(min_value=0.0, max_value=1.0)]
    out = [("| Network | Feature | C x H x W | Coded tile | packing_type | Tile grid | Picture "
            "| NumPictures |"), "|:---|:---|---:|---:|---:|---:|---:|---:|"]
    for feature, (c, hgt, wid) in FEATURE_SHAPES.items():
        prefix, name = feature.split(".")
        net = NETWORK_NAMES[prefix]
        x = np.broadcast_to(np.float32(0), (1, c, hgt, wid))
        h = layer._layer_header(f"{net}.{name}", x, enums.SourceDtype.FLOAT32, cfg, params)
        grid_text = f"{h.tile_rows} x {h.tile_cols}" if h.packing_type == 1 else "—"
        out.append(f"| {net} | {name} | {c} x {hgt} x {wid} | {h.coded_tile_height} x "
                   f"{h.coded_tile_width} | {int(h.packing_type)} | {grid_text} | "
                   f"{h.picture_width} x {h.picture_height} | {h.num_pictures} |")
    return "\n".join(out) + "\n"


def _mutated(data: bytes, offset: int, value: bytes, *, fix_unit_at: int | None) -> bytes:
    """``data`` with ``value`` written at ``offset``; the CRC of the unit starting at
    ``fix_unit_at`` recomputed (None: leave every CRC as it is)."""
    b = bytearray(data)
    b[offset:offset + len(value)] = value
    if fix_unit_at is not None:
        length = int.from_bytes(b[fix_unit_at + 2:fix_unit_at + 6], "big")
        end = fix_unit_at + syntax.UNIT_OVERHEAD + length
        b[end - 4:end] = bitstream.crc32(bytes(b[fix_unit_at:end - 4])).to_bytes(4, "big")
    return bytes(b)


def _fix_header_crc(data: bytes) -> bytes:
    size = syntax.STREAM_HEADER_SIZE
    return data[:size - 4] + bitstream.crc32(data[:size - 4]).to_bytes(4, "big") + data[size:]


def render_example_errors(ctx: tables.Context) -> str:
    """Errors the reference decoder reports for altered copies of the clause 7.6 example."""
    _, _, data = _encoded_example()
    stream = refcodec.read_headers(data)
    layer = stream.layer(EXAMPLE_LAYER_ID)
    at = layer.header_offset
    payload = at + syntax.UNIT_PREFIX
    fields: list[Field] = []
    annotate(syntax.layer_header,
             syntax.layer_header.parse(data[payload:layer.data_offset - 4]), {},
             "layer_header", payload, fields)
    offset_of = {f.path: f.offset for f in fields}
    cases = [
        ("one bit of header_crc32 flipped",
         _mutated(data, 16, bytes([data[16] ^ 1]), fix_unit_at=None)),
        ("version_major set to 2",
         _mutated(data, 8, b"\x02", fix_unit_at=None)),
        ("sample_bit_depth set to 9, unit_crc32 recomputed",
         _mutated(data, offset_of["layer_header.sample_bit_depth"], b"\x09", fix_unit_at=at)),
        ("channel_permutation[2] set to 0, unit_crc32 recomputed",
         _mutated(data, offset_of["layer_header.channel_permutation[2]"], bytes(4),
                  fix_unit_at=at)),
        ("pad_bottom set to 6, unit_crc32 recomputed",
         _mutated(data, offset_of["layer_header.pad_bottom"], b"\x06", fix_unit_at=at)),
        ("skippable_flag of the layer_header unit set to 1, unit_crc32 recomputed",
         _mutated(data, at + 1, b"\x80", fix_unit_at=at)),
        ("num_layers set to 2, header_crc32 recomputed",
         _fix_header_crc(_mutated(data, 12, b"\x00\x02", fix_unit_at=None))),
    ]
    out = ["| Change to the example of clause 7.6 | Error class | Report |",
           "|:---|:---|:---|"]
    for what, bad in cases:
        try:
            refcodec.read_headers(bad)
        except refcodec.BitstreamError as exc:
            report = str(exc).replace("|", "\\|")
            out.append(f"| {what} | {type(exc).__name__} | `{report}` |")
        else:
            raise AssertionError(f"the decoder accepted the example with {what}")
    return "\n".join(out) + "\n"


RENDERERS = {
    "example_errors": render_example_errors,
    "example_stream": render_example_stream,
    "example_dequant": render_example_dequant,
    "anchor_layouts": render_anchor_layouts,
}


def renderer_for(name: str):
    return RENDERERS.get(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a generated example is stale")
    parser.add_argument("--spec-dir", type=Path, default=tables.SPEC_DIR)
    args = parser.parse_args(argv)
    problems = tables.run(args.spec_dir, renderer_for, set(RENDERERS), check=args.check)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        if args.check:
            print("run: python tools/gen_spec_examples.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
