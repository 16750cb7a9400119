"""The alterations of the face units (scope ``face``, clause 13 and the face limit of
clause 11.2): face_base() and face_enhancement() fields patched or rebuilt."""

from __future__ import annotations

import hashlib
import struct

from ... import bitstream
from ... import syntax as vfc_syntax
from ...enums import LEVELS, PredictorType, TextureCodec, UnitType
from ...face import entropy
from ...hevc.edit import set_chroma_format
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


# -- face_base(): face_id, embedder, embedding_payload ------------------------------------
def _code_bits(levels, k: int) -> str:
    """The codes of ``levels`` at order ``k``, without stop bit and alignment."""
    payload = entropy.write_levels(levels, k)
    return "".join(f"{b:08b}" for b in payload).rstrip("0")[:-1]


def _as_payload(bits: str) -> bytes:
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _with_payload_bits(make):
    """Rebuild face 0's embedding_payload from the bits ``make(levels, eg_order)`` returns."""
    def alter(data, s):
        b = s.faces[0].base
        return _rebuild_face(data, _FB, embedding_payload=_as_payload(make(b.levels, b.eg_order)))
    return alter


_face_alteration("empty_face_id", "13.3.1-a", "len_face_id 0", "a face without enhancement",
                 lambda s: s.faces[0].enhancement is None)(
    lambda data, s: _rebuild_face(data, _FB, face_id=b""))
_face_alteration("face_id_not_utf8", "13.3.1-b", "the first byte of face_id is 0xFF (not UTF-8)",
                 "a face without enhancement", lambda s: s.faces[0].enhancement is None)(
    lambda data, s: _rebuild_face(data, _FB,
                                  face_id=b"\xff" + s.faces[0].base.face_id.encode()[1:]))
_face_alteration("face_id_control_character", "13.3.1-c", "a TAB (U+0009) inside face_id",
                 "a face without enhancement", lambda s: s.faces[0].enhancement is None)(
    lambda data, s: _rebuild_face(data, _FB,
                                  face_id=s.faces[0].base.face_id.encode()[:1] + b"\t"
                                  + s.faces[0].base.face_id.encode()[1:]))
_face_alteration("embedding_dim_not_128", "13.3.2-b",
                 "embedding_dim 127 with embedder_idc 1 (dlib's embedding has 128 values)",
                 "a face with embedder_idc 1", lambda s: s.faces[0].base.embedder_idc == 1)(
    lambda data, s: _patch_face(data, _FB, "embedding_dim", (127).to_bytes(2, "big")))
_face_alteration("embedding_payload_ends_inside_a_code", "13.3.6-a",
                 "embedding_payload cut inside the code of its last level (no stop bit)")(
    _with_payload_bits(lambda levels, k: _code_bits(levels[:-1], k) + "0"))
_face_alteration("embedding_stop_bit_zero", "13.3.6-b",
                 "stop_one_bit 0 after the last level")(
    _with_payload_bits(lambda levels, k: _code_bits(levels, k) + "0"))
_face_alteration("embedding_alignment_bit_one", "13.3.6-c",
                 "the last alignment_zero_bit of embedding_payload is 1",
                 "a face whose embedding_payload has alignment_zero_bits",
                 lambda s: len(_code_bits(s.faces[0].base.levels, s.faces[0].base.eg_order))
                 % 8 != 7)(
    _with_payload_bits(lambda levels, k: (lambda b: b + "0" * (-len(b) % 8 - 1) + "1")(
        _code_bits(levels, k) + "1")))


def _level_too_large(data, s):
    """eg_order 24 and a first level of 2^24, one more than clause 13.3.6 allows: its code is
    '010' and 24 one bits, the prefix of a conforming length."""
    b = s.faces[0].base
    k = entropy.MAX_EG_ORDER
    bits = "010" + "1" * k     # u = 2^25 - 1: ue(u >> k) = ue(1) is '010', then u's 24 low bits
    data = _patch_face(data, _FB, "eg_order", bytes([k]))
    return _rebuild_face(data, _FB, embedding_payload=_as_payload(
        bits + _code_bits(b.levels[1:], k) + "1"))


_face_alteration("embedding_level_too_large", "13.3.6-e",
                 f"eg_order {entropy.MAX_EG_ORDER} and a first level of 2^24 (|level| shall be "
                 f"at most 2^24 - 1)")(_level_too_large)


# -- stream totals of the level (clause 11.2) --------------------------------------------
def _faces_of_dim(data, s, dim: int, count: int) -> bytes:
    """``count`` face_base units of ``dim`` zero levels (order 0) after the last face."""
    last = _unit_of(data, _FB, len(s.faces) - 1)
    fields = _face_fields(data, last) | {"embedder_idc": 0, "embedding_dim": dim, "eg_order": 0,
                                         "embedding_payload": entropy.write_levels([0] * dim, 0)}
    units = b"".join(bitstream.build_unit(
        _FB, vfc_syntax.face_base.build(fields | {"face_id": f"wide{k}".encode()}),
        skippable=True) for k in range(count))
    return data[:last.end] + units + data[last.end:]


_face_alteration("embedding_dim_over_level", "11.2-a",
                 "a face_base unit of embedding_dim one more than max_embedding_dim of the "
                 "level")(
    lambda data, s: _faces_of_dim(data, s, LEVELS[s.header.level_idc].max_embedding_dim + 1, 1))
_face_alteration("embedding_values_over_level", "11.2-a",
                 "face_base units of max_embedding_dim zero levels added until the faces hold "
                 "more than max_embedding_values of the level")(
    lambda data, s: _faces_of_dim(
        data, s, LEVELS[s.header.level_idc].max_embedding_dim,
        (LEVELS[s.header.level_idc].max_embedding_values
         - sum(f.base.embedding_dim for f in s.faces))
        // LEVELS[s.header.level_idc].max_embedding_dim + 1))


# -- unit order: a face inside a layer (clause 8.2.6) --------------------------------------
@_face_alteration("face_unit_inside_layer", "8.2.6-a",
                  "the face_base unit moved between the layer_header and layer_data units of "
                  "layer 0", "a feature layer and a face", lambda s: bool(s.layers))
def _face_inside_layer(data, s):
    face = _unit_of(data, _FB)
    header = _unit_of(data, UnitType.LAYER_HEADER)
    rest = data[:face.pos] + data[face.end:]
    at = header.end if header.pos < face.pos else header.end - (face.end - face.pos)
    return rest[:at] + data[face.pos:face.end] + rest[at:]


# -- face_enhancement() ------------------------------------------------------------------
@_face_alteration("second_enhancement", "13.4.1-b",
                  "the face_enhancement unit of face 0 is repeated",
                  "an enhancement layer", _enhanced)
def _second_enhancement(data, s):
    unit = _unit_of(data, _FE)
    return data[:unit.end] + data[unit.pos:unit.end] + data[unit.end:]


_face_alteration("image_height_zero", "13.4.2-a", "image_height 0", "an enhancement layer",
                 _enhanced)(lambda data, s: _patch_face(data, _FE, "image_height", b"\x00\x00"))
_face_alteration("image_width_zero", "13.4.2-b", "image_width 0", "an enhancement layer",
                 _enhanced)(lambda data, s: _patch_face(data, _FE, "image_width", b"\x00\x00"))


def _with_predictor(s: Stream) -> bool:
    return _enhanced(s) and _enh0(s).predictor_type == PredictorType.NETWORK


def _predictor_id(make):
    def alter(data, s):
        e = _enh0(s)
        return _rebuild_face(data, _FE, predictor_info=dict(
            predictor_id=make(e.predictor_id.encode()), predictor_sha256=e.predictor_sha256))
    return alter


_face_alteration("empty_predictor_id", "13.4.4-a", "len_predictor_id 0",
                 "an enhancement layer with a predictor", _with_predictor)(
    _predictor_id(lambda pid: b""))
_face_alteration("predictor_id_not_utf8", "13.4.4-b",
                 "the first byte of predictor_id is 0xFF (not UTF-8)",
                 "an enhancement layer with a predictor", _with_predictor)(
    _predictor_id(lambda pid: b"\xff" + pid[1:]))
_face_alteration("predictor_id_control_character", "13.4.4-c",
                 "a DELETE (U+007F) inside predictor_id",
                 "an enhancement layer with a predictor", _with_predictor)(
    _predictor_id(lambda pid: pid[:1] + b"\x7f" + pid[1:]))


def _codec(codec: TextureCodec):
    return lambda s: _enhanced(s) and _enh0(s).texture_codec == codec


def _texture(make):
    def alter(data, s):
        return _rebuild_face(data, _FE, texture_payload=make(_enh0(s).texture_payload, s))
    return alter


def _jp2_file(codestream: bytes, s: Stream) -> bytes:
    """The codestream in a JP2 file (ISO/IEC 15444-1 Annex I): signature, file type, header
    (image header and colour specification, sRGB) and contiguous codestream boxes."""
    e = _enh0(s)

    def box(kind: bytes, content: bytes) -> bytes:
        return struct.pack(">I", 8 + len(content)) + kind + content
    ihdr = struct.pack(">IIHBBBB", e.image_height, e.image_width, e.image_channels, 7, 7, 0, 0)
    colr = bytes([1, 0, 0]) + struct.pack(">I", 16 if e.image_channels == 3 else 17)
    return (box(b"jP  ", b"\r\n\x87\n") + box(b"ftyp", b"jp2 " + bytes(4) + b"jp2 ")
            + box(b"jp2h", box(b"ihdr", ihdr) + box(b"colr", colr))
            + box(b"jp2c", codestream))


for _name, _tc, _what in (("jpeg", TextureCodec.JPEG, "JPEG"),
                          ("j2k", TextureCodec.JPEG2000, "JPEG 2000")):
    _req = {"jpeg": ("13.4.8-b", "13.4.8-c", "13.4.8-d"),
            "j2k": ("13.4.8-e", "13.4.8-f", "13.4.8-g")}[_name]
    _needs = f"a {_what} enhancement layer"
    if _tc == TextureCodec.JPEG:
        _face_alteration("jpeg_leading_byte", _req[0],
                         "a zero byte before the SOI marker of the JPEG texture_payload",
                         _needs, _codec(_tc))(_texture(lambda t, s: b"\x00" + t))
    else:
        _face_alteration("j2k_jp2_file", _req[0],
                         "the JPEG 2000 codestream wrapped in a JP2 file (boxes) instead of a "
                         "bare codestream", _needs, _codec(_tc))(_texture(_jp2_file))
    _face_alteration(f"{_name}_size_mismatch", _req[1],
                     f"image_width 8 less than the width of the {_what} image", _needs,
                     _codec(_tc))(
        lambda data, s: _patch_face(data, _FE, "image_width",
                                    (_enh0(s).image_width - 8).to_bytes(2, "big")))
    _face_alteration(f"{_name}_components_mismatch", _req[2],
                     f"image_channels 1 for a three-component {_what} image", _needs,
                     lambda s, _tc=_tc: _codec(_tc)(s) and _enh0(s).image_channels == 3)(
        lambda data, s: _patch_face(data, _FE, "image_channels", b"\x01"))


# -- clause 10 on HEVC textures ----------------------------------------------------------
_face_alteration("texture_hevc_chroma_420", "10.3-a",
                 "chroma_format_idc 1 (4:2:0) in the SPS of the HEVC texture_payload",
                 "an HEVC enhancement layer", _codec(TextureCodec.HEVC))(
    _texture(lambda t, s: set_chroma_format(t, 1)))
