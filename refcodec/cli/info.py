"""``refcodec info``: every header field of a stream, its sizes and compression rates."""

from __future__ import annotations

import json
from pathlib import Path

from ..codec import read_headers
from ..enums import DTYPE_INFO
from ..metrics.rate import face_coded_bytes, layer_coded_bytes
from .base import EXIT_OK
from .io import read_input


def stream_info(data: bytes, limits=None) -> dict:
    """Every header field of a stream, its sizes and compression rates (``info --json``);
    ``limits``: a decoder's lower limits (clause 11.2), as read_headers takes them."""
    stream = read_headers(data, limits=limits)
    h = stream.header
    layers = []
    for layer in stream.layers:
        lh = layer.header
        original = lh.num_elements * DTYPE_INFO[lh.source_dtype].itemsize
        layer_bytes = layer_coded_bytes(stream, layer)
        entry = {
            "layer_id": lh.layer_id,
            "source_layout": lh.source_layout.name,
            "source_dtype": lh.source_dtype.name.lower(),
            "batch_size": lh.batch_size, "num_channels": lh.num_channels,
            "height": lh.height, "width": lh.width, "shape": list(lh.shape),
            "sample_bit_depth": lh.sample_bit_depth,
            "quantizer_type": lh.quantizer_type.name.lower(),
            "per_channel_quant_flag": int(lh.per_channel_quant_flag),
            "channel_permutation_flag": int(lh.channel_permutation is not None),
            "quant_params": [{k: v for k, v in vars(p).items() if v is not None}
                             for p in lh.quant_params],
            "channel_permutation": list(lh.channel_permutation)
            if lh.channel_permutation is not None else None,
            "packing_type": lh.packing_type.name.lower(),
            "tile_rows": lh.tile_rows, "tile_cols": lh.tile_cols,
            "pad_mode": lh.pad_mode.name.lower(),
            "pad_bottom": lh.pad_bottom, "pad_right": lh.pad_right,
            "payload_codec": lh.payload_codec.name.lower(),
            # layer_header_ext() (format 1.2): None in a layer_header unit
            "param_format": lh.param_format.name.lower() if lh.has_ext else None,
            "permutation_coding": (lh.permutation_coding.name.lower() if lh.has_ext
                                   else None),
            # grouped_permutation() (permutation_coding grouped): None otherwise
            "group_bits": lh.group_bits,
            "channel_groups": list(lh.channel_groups) if lh.channel_groups is not None
            else None,
            "picture_width": lh.picture_width, "picture_height": lh.picture_height,
            "num_pictures": lh.num_pictures,
            "sample_md5": layer.sample_md5.hex(),
            "len_hevc_payload": len(layer.hevc_payload),
            "layer_bytes": layer_bytes,
            "original_bytes": original,
            "compression_rate": original / layer_bytes,
            "bits_per_element": 8 * layer_bytes / lh.num_elements,
            "offset": layer.header_offset,
        }
        layers.append(entry)
    original = sum(e["original_bytes"] for e in layers)
    faces = [face_info(f) for f in stream.faces]
    face_bytes = sum(f["base_bytes"] + (f["enhancement"]["enhancement_bytes"]
                                        if f["enhancement"] else 0) for f in faces)
    return {
        "format_version": f"{h.version_major}.{h.version_minor}",
        "version_major": h.version_major, "version_minor": h.version_minor,
        "profile_idc": h.profile_idc, "level_idc": h.level_idc, "num_layers": h.num_layers,
        "stream_bytes": len(data), "original_bytes": original,
        "face_bytes": face_bytes,
        # of the feature layers: the face units are not part of the coded tensors
        "compression_rate": original / (len(data) - face_bytes) if original else None,
        "skipped_units": [vars(u) for u in stream.skipped_units],
        "layers": layers,
        "faces": faces,
    }


def face_info(face) -> dict:
    """The fields of a face's units (``info --json``)."""
    b, e = face.base, face.enhancement
    base_bytes, enhancement_bytes = face_coded_bytes(face)
    entry = {
        "face_id": b.face_id, "embedder_idc": int(b.embedder_idc),
        "embedder": b.embedder_idc.name.lower(), "embedding_dim": b.embedding_dim,
        "embedding_step": b.embedding_step, "eg_order": b.eg_order,
        "base_bytes": base_bytes,
        "offset": b.offset, "enhancement": None,
    }
    if e is not None:
        entry["enhancement"] = {
            "image_height": e.image_height, "image_width": e.image_width,
            "image_channels": e.image_channels,
            "predictor_type": e.predictor_type.name.lower(),
            "predictor_id": e.predictor_id,
            "predictor_sha256": e.predictor_sha256.hex() if e.predictor_sha256 else None,
            "residual_min": e.residual_min, "residual_max": e.residual_max,
            "texture_codec": e.texture_codec.name.lower(), "texture_md5": e.texture_md5.hex(),
            "len_texture_payload": len(e.texture_payload),
            "enhancement_bytes": enhancement_bytes,
            "offset": e.offset,
        }
    return entry


def cmd_info(args) -> int:
    from .layers import decoder_limits
    data = read_input(Path(args.input))
    info = stream_info(data, limits=decoder_limits(data, args))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    rate = (f", compression rate {info['compression_rate']:.2f}"
            if info["compression_rate"] is not None else "")
    faces = f", {len(info['faces'])} face(s)" if info["faces"] else ""
    print(f"{args.input}: VFC {info['format_version']}, profile {info['profile_idc']}, level "
          f"{info['level_idc']}, {info['num_layers']} layer(s){faces}, {info['stream_bytes']} "
          f"bytes{rate}")
    for e in info["layers"]:
        params = e["quant_params"]
        shown = ", ".join(f"{k}={v!r}" for k, v in params[0].items())
        if len(params) > 1:
            shown = f"{len(params)} per-channel sets, first: {shown}"
        print(f"  layer {e['layer_id']!r}: {e['source_dtype']} {e['source_layout']} "
              f"{tuple(e['shape'])}, {e['quantizer_type']} quantizer ({shown}), "
              f"{e['sample_bit_depth']}-bit")
        grid = (f"{e['tile_rows']}x{e['tile_cols']} tiles" if e["packing_type"] == "tiled"
                else f"{e['tile_rows']}x{e['tile_cols']} dense tiles"
                if e["packing_type"] == "dense" else "one channel per picture")
        order = ("permuted channel order" if e["channel_permutation"] is not None
                 else "identity channel order")
        print(f"    {e['num_pictures']} pictures of {e['picture_width']}x{e['picture_height']} "
              f"({grid}, padding +{e['pad_bottom']} rows +{e['pad_right']} columns by "
              f"{e['pad_mode']}, {order})")
        print(f"    {e['layer_bytes']} bytes (HEVC {e['len_hevc_payload']}), compression rate "
              f"{e['compression_rate']:.2f}, {e['bits_per_element']:.3f} bits/element, "
              f"sample_md5 {e['sample_md5']}")
    for f in info["faces"]:
        print(f"  face {f['face_id']!r}: {f['embedding_dim']}-d embedding of "
              f"{f['embedder']}, step {f['embedding_step']!r}, Exp-Golomb order "
              f"{f['eg_order']}, base layer {f['base_bytes']} bytes")
        e = f["enhancement"]
        if e is None:
            print("    no enhancement layer")
            continue
        print(f"    enhancement: {e['image_width']}x{e['image_height']}x{e['image_channels']} "
              f"image, predictor {e['predictor_id'] or 'none'}, residual "
              f"{e['residual_min']}..{e['residual_max']}, {e['texture_codec']} texture, "
              f"{e['enhancement_bytes']} bytes")
    for u in info["skipped_units"]:
        print(f"  skipped unit type {u['unit_type']} at byte {u['offset']} ({u['length']} bytes)")
    return EXIT_OK


def add_parser(sub) -> None:
    inf = sub.add_parser("info", help="print every header field, sizes and compression rate")
    inf.add_argument("input")
    inf.add_argument("--json", action="store_true", help="machine-readable output")
    from .layers import add_limit_options
    add_limit_options(inf, "anything is printed")
    inf.set_defaults(func=cmd_info)
