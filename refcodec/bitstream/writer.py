"""Records -> bytes: the writer of every container structure (clause 8, and clause 13 for
the face units).  A CRC is computed over what was built, never taken from the caller."""

from __future__ import annotations

from .. import syntax
from ..enums import PackingType, PermutationCoding, PredictorType, QuantizerType, UnitType
from ..face import entropy
from ..records import Face, FaceBase, FaceEnhancement, LayerHeader, StreamHeader
from .base import crc32

def build_stream_header(header: StreamHeader) -> bytes:
    fields = dict(version_major=header.version_major, version_minor=header.version_minor,
                  profile_idc=header.profile_idc, level_idc=header.level_idc,
                  num_layers=header.num_layers, reserved_zero_16bits=0, header_crc32=0)
    body = syntax.stream_header.build(fields)[:-4]
    return body + crc32(body).to_bytes(4, "big")


def build_unit(unit_type: int, payload: bytes, skippable: bool = False) -> bytes:
    raw = syntax.unit.build(dict(unit_type=unit_type,
                                 unit_flags=dict(skippable_flag=skippable, reserved_zero_7bits=0),
                                 unit_payload=payload, unit_crc32=0))
    body = raw[:-4]
    return body + crc32(body).to_bytes(4, "big")


def _layer_header_fields(h: LayerHeader) -> dict:
    if h.quantizer_type == QuantizerType.INTEGER:
        params = [dict(offset_value=p.offset_value) for p in h.quant_params]
    else:
        params = [dict(min_value=p.min_value, max_value=p.max_value) for p in h.quant_params]
    ext = compact = grouped = None
    if h.has_ext:
        ext = dict(param_format=int(h.param_format_value),
                   permutation_coding=int(h.permutation_coding_value))
    perm = list(h.channel_permutation) if h.channel_permutation is not None else None
    if perm is not None and h.permutation_coding_value == PermutationCoding.COMPACT:
        perm, compact = None, dict(channel_permutation_entry=perm,
                                   permutation_alignment_zero_bits=0)
    elif perm is not None and h.permutation_coding_value == PermutationCoding.GROUPED:
        if h.channel_groups is None or h.group_bits is None:
            raise ValueError("a GROUPED permutation needs group_bits and channel_groups")
        perm, grouped = None, dict(group_bits=h.group_bits,
                                   channel_group=list(h.channel_groups),
                                   group_alignment_zero_bits=0)
    return dict(
        layer_id=h.layer_id.encode("utf-8"), source_layout=int(h.source_layout),
        source_dtype=int(h.source_dtype), batch_size=h.batch_size, num_channels=h.num_channels,
        height=h.height, width=h.width, sample_bit_depth=h.sample_bit_depth,
        quantizer_type=int(h.quantizer_type),
        layer_flags=dict(per_channel_quant_flag=h.per_channel_quant_flag,
                         channel_permutation_flag=h.channel_permutation is not None,
                         reserved_zero_6bits=0),
        layer_header_ext=ext,
        quant_params=params,
        channel_permutation=perm,
        compact_permutation=compact,
        grouped_permutation=grouped,
        packing_type=int(h.packing_type),
        tile_grid=dict(tile_rows=h.tile_rows, tile_cols=h.tile_cols)
        if h.packing_type in (PackingType.TILED, PackingType.DENSE) else None,
        pad_mode=int(h.pad_mode), pad_bottom=h.pad_bottom, pad_right=h.pad_right,
        payload_codec=int(h.payload_codec),
    )


def build_layer_header(h: LayerHeader) -> bytes:
    """The payload of the header's unit, whose unit_type is ``h.unit_type``."""
    return syntax.layer_header.build(_layer_header_fields(h), unit_type=int(h.unit_type))


def build_layer_data(sample_md5: bytes, hevc_payload: bytes) -> bytes:
    return syntax.layer_data.build(dict(sample_md5=sample_md5, hevc_payload=hevc_payload))


def build_face_base(b: FaceBase) -> bytes:
    return syntax.face_base.build(dict(
        face_id=b.face_id.encode("utf-8"), embedder_idc=int(b.embedder_idc),
        embedding_dim=b.embedding_dim,
        embedding_step=b.embedding_step, eg_order=b.eg_order,
        embedding_payload=entropy.write_levels(b.levels, b.eg_order)))


def build_face_enhancement(e: FaceEnhancement) -> bytes:
    info = None
    if e.predictor_type == PredictorType.NETWORK:
        info = dict(predictor_id=e.predictor_id.encode("utf-8"),
                    predictor_sha256=e.predictor_sha256)
    return syntax.face_enhancement.build(dict(
        face_id=e.face_id.encode("utf-8"), image_height=e.image_height,
        image_width=e.image_width, image_channels=e.image_channels,
        predictor_type=int(e.predictor_type), predictor_info=info,
        residual_min=e.residual_min, residual_max=e.residual_max,
        texture_codec=int(e.texture_codec), texture_md5=e.texture_md5,
        texture_payload=e.texture_payload))


def build_stream(header: StreamHeader, layers: list[tuple[LayerHeader, bytes, bytes]],
                 extra_units: list[tuple[int, bytes, bool]] = (),
                 faces: list[Face] = ()) -> bytes:
    """Write a bitstream.  ``layers`` holds (header, sample_md5, hevc_payload) triples;
    ``faces`` the face records, written after the layers: every face_base unit, then every
    face_enhancement unit, so that the enhancement layers end the stream; ``extra_units``
    (type, payload, skippable) are written after the stream header (used by tests and the
    conformance generator)."""
    parts = [build_stream_header(header)]
    for unit_type, payload, skippable in extra_units:
        parts.append(build_unit(unit_type, payload, skippable))
    for layer_header, md5, payload in layers:
        parts.append(build_unit(layer_header.unit_type, build_layer_header(layer_header)))
        parts.append(build_unit(UnitType.LAYER_DATA, build_layer_data(md5, payload)))
    for face in faces:
        parts.append(build_unit(UnitType.FACE_BASE, build_face_base(face.base), True))
    for face in faces:
        if face.enhancement is not None:
            parts.append(build_unit(UnitType.FACE_ENHANCEMENT,
                                    build_face_enhancement(face.enhancement), True))
    parts.append(build_unit(UnitType.END_OF_STREAM, b""))
    return b"".join(parts)
