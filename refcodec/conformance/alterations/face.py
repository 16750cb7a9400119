"""The alterations of the face units (scope ``face``, clause 13 and the face limit of
clause 11.2): face_base() and face_enhancement() fields patched or rebuilt."""

from __future__ import annotations

import hashlib
import struct

from ... import bitstream
from ... import syntax as vfc_syntax
from ...enums import LEVELS, PredictorType, TextureCodec, UnitType
from ...face import entropy
from ...records import Stream
from ..units import _put, _recrc, _rehead, _replace_unit, _Unit, _unit_of
from .registry import _alteration


_FACE_STRUCTS = {UnitType.FACE_BASE: vfc_syntax.face_base,
                 UnitType.FACE_ENHANCEMENT: vfc_syntax.face_enhancement}
UNKNOWN_PREDICTOR_ID = "vfc-conformance-unknown-predictor"
UNKNOWN_PREDICTOR_SHA256 = hashlib.sha256(b"VFC conformance: a predictor no decoder has").digest()


def _face_fields(data: bytes, unit: _Unit) -> dict:
    fields = _FACE_STRUCTS[unit.unit_type].parse(data[unit.payload])
    return {k: v for k, v in fields.items() if not k.startswith("_")}


def _patch_face(data: bytes, unit_type: int, name: str, value: bytes, index: int = 0) -> bytes:
    """Overwrite field ``name`` of the index-th face unit of ``unit_type`` (same size) and
    recompute its unit_crc32."""
    unit = _unit_of(data, unit_type, index)
    struct = _FACE_STRUCTS[unit_type]
    at = unit.payload.start + bitstream._field_offset(struct, struct.parse(data[unit.payload]),
                                                      name)
    return _recrc(_put(data, at, value), unit)


def _rebuild_face(data: bytes, unit_type: int, index: int = 0, **changes) -> bytes:
    """The index-th face unit of ``unit_type`` rebuilt with ``changes`` to its fields."""
    unit = _unit_of(data, unit_type, index)
    fields = _face_fields(data, unit) | changes
    new = bitstream.build_unit(unit_type, _FACE_STRUCTS[unit_type].build(fields),
                               skippable=bool(data[unit.pos + 1] & 0x80))
    return _replace_unit(data, unit, new)


def _enhanced(s: Stream) -> bool:
    return any(f.enhancement is not None for f in s.faces)


def _enh0(s: Stream):
    """The first face_enhancement of a stream (the first face_enhancement unit)."""
    return next(f.enhancement for f in s.faces if f.enhancement is not None)


def _no_predictor(s: Stream) -> bool:
    return _enhanced(s) and _enh0(s).predictor_type == PredictorType.NONE


def _add_faces_over_level(data: bytes, s: Stream) -> bytes:
    last = _unit_of(data, UnitType.FACE_BASE, len(s.faces) - 1)
    fields = _face_fields(data, last)
    extra = LEVELS[s.header.level_idc].max_faces + 1 - len(s.faces)
    units = b"".join(bitstream.build_unit(
        UnitType.FACE_BASE, vfc_syntax.face_base.build(fields | {"face_id": f"extra{k}".encode()}),
        skippable=True) for k in range(extra))
    return data[:last.end] + units + data[last.end:]


def _face_alteration(kind, requirement, purpose, requires="a face", applies=lambda s: True,
                     **kw):
    return _alteration(kind, requirement, purpose, requires, applies, scope="face", **kw)


_FB, _FE = UnitType.FACE_BASE, UnitType.FACE_ENHANCEMENT

@_face_alteration("face_unit_in_version_1_0", "8.2.1-a",
                  "version_minor 0 (format 1.0, where unit_type 3 is reserved) and "
                  "skippable_flag 0 in the face_base unit: an unknown critical unit",
                  "a feature layer and a face", lambda s: bool(s.layers))
def _face_unit_in_version_1_0(data, s):
    data = _rehead(_put(data, 9, b"\x00"))
    unit = _unit_of(data, _FB)
    return _recrc(_put(data, unit.pos + 1, bytes([data[unit.pos + 1] & 0x7F])), unit)


@_face_alteration("face_unit_not_skippable", "8.2.2-b", "skippable_flag 0 in the face_base unit")
def _face_not_skippable(data, s):
    unit = _unit_of(data, _FB)
    return _recrc(_put(data, unit.pos + 1, bytes([data[unit.pos + 1] & 0x7F])), unit)


_face_alteration("faces_over_level", "11.2-a",
                 "face_base units added (face_id extra0, extra1, ...) until the stream holds "
                 "one face more than max_faces of its level")(_add_faces_over_level)
_face_alteration("duplicate_face_id", "13.3.1-d", "face 1 has the face_id of face 0",
                 "two faces", lambda s: len(s.faces) >= 2)(
    lambda data, s: _rebuild_face(data, _FB, 1, face_id=s.faces[0].base.face_id.encode()))
_face_alteration("embedder_idc", "13.3.2-a", "reserved embedder_idc 200")(
    lambda data, s: _patch_face(data, _FB, "embedder_idc", bytes([200])))
_face_alteration("embedding_dim_zero", "13.3.3-a", "embedding_dim 0")(
    lambda data, s: _patch_face(data, _FB, "embedding_dim", b"\x00\x00"))
_face_alteration("embedding_step_zero", "13.3.4-a", "embedding_step 0.0")(
    lambda data, s: _patch_face(data, _FB, "embedding_step", bytes(4)))
_face_alteration("embedding_overflow", "13.5-a",
                 "embedding_step 2^127: level x embedding_step overflows binary32 for every "
                 "level of magnitude 2 or more", "a face with a level of magnitude 2 or more",
                 lambda s: any(max(map(abs, f.base.levels)) >= 2 for f in s.faces))(
    lambda data, s: _patch_face(data, _FB, "embedding_step", struct.pack(">f", 2.0 ** 127)))
_face_alteration("eg_order", "13.3.5-a",
                 f"eg_order {entropy.MAX_EG_ORDER + 1}, one more than the largest allowed")(
    lambda data, s: _patch_face(data, _FB, "eg_order", bytes([entropy.MAX_EG_ORDER + 1])))
_face_alteration("embedding_payload_trailing_byte", "13.3.6-d",
                 "a zero byte appended to embedding_payload: more than the trailing bits "
                 "follow the last level")(
    lambda data, s: _rebuild_face(data, _FB, embedding_payload=_face_fields(
        data, _unit_of(data, _FB))["embedding_payload"] + b"\x00"))
_face_alteration("enhancement_without_base", "13.4.1-a",
                 "the face_id of the face_enhancement unit names no face_base unit",
                 "an enhancement layer", _enhanced)(
    lambda data, s: _rebuild_face(data, _FE, face_id=b"no-such-face"))
_face_alteration("image_channels", "13.4.2-c", "image_channels 2", "an enhancement layer",
                 _enhanced)(
    lambda data, s: _patch_face(data, _FE, "image_channels", b"\x02"))
_face_alteration("predictor_type", "13.4.3-a", "reserved predictor_type 2",
                 "an enhancement layer without predictor", _no_predictor)(
    lambda data, s: _patch_face(data, _FE, "predictor_type", b"\x02"))
_face_alteration("unknown_predictor", "13.4.4-d",
                 f"predictor_type 1 naming a predictor no decoder has "
                 f"({UNKNOWN_PREDICTOR_ID}): refused when the image is reconstructed; the "
                 f"stream itself is conformant",
                 "an enhancement layer without predictor", _no_predictor, verify_warns=True)(
    lambda data, s: _rebuild_face(data, _FE, predictor_type=int(PredictorType.NETWORK),
                                  predictor_info=dict(
                                      predictor_id=UNKNOWN_PREDICTOR_ID.encode(),
                                      predictor_sha256=UNKNOWN_PREDICTOR_SHA256)))
_face_alteration("residual_min_above_max", "13.4.5-a", "residual_min one more than residual_max",
                 "an enhancement layer", _enhanced)(
    lambda data, s: _patch_face(data, _FE, "residual_min", (_enh0(s).residual_max + 1)
                                .to_bytes(2, "big", signed=True)))
_face_alteration("texture_codec", "13.4.6-a", "reserved texture_codec 3", "an enhancement layer",
                 _enhanced)(
    lambda data, s: _patch_face(data, _FE, "texture_codec", b"\x03"))
_face_alteration("texture_md5", "13.4.7-a", "one bit of texture_md5 flipped in an HEVC texture",
                 "an HEVC enhancement layer",
                 lambda s: _enhanced(s) and _enh0(s).texture_codec == TextureCodec.HEVC)(
    lambda data, s: _patch_face(data, _FE, "texture_md5",
                                bytes([_enh0(s).texture_md5[0] ^ 1])))
_face_alteration("empty_texture_payload", "13.4.8-a", "an empty texture_payload",
                 "an enhancement layer", _enhanced)(
    lambda data, s: _rebuild_face(data, _FE, texture_payload=b""))
