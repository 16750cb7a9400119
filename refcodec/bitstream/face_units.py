"""The readers of the face units (clause 13): face_base() and face_enhancement().

The embedding code is read (and every level bounded) here; the texture payload is only
located: decoding it is the face decoder's (refcodec.face.codec)."""

from __future__ import annotations

from .. import syntax
from ..enums import ALLOWED_IMAGE_CHANNELS, Embedder, PredictorType, TextureCodec
from ..errors import ConformanceViolation, SyntaxViolation, UnsupportedFeature
from ..face import entropy
from ..records import FaceBase, FaceEnhancement, embedding_bytes, face_image_bytes
from .base import RESIDUAL_LIMIT, Located


def read_face_base(reader, payload: bytes, unit_pos: int, base: int) -> None:
    """face_base() (clause 13.3), appended to reader.face_bases."""
    lvl = reader.level
    path = f"faces[{len(reader.face_bases)}].base"
    if len(reader.face_bases) >= lvl.max_faces:
        reader.stop(ConformanceViolation, "11.2",
                    f"a stream shall hold at most {lvl.max_faces} faces at level "
                    f"{lvl.level_idc}", unit_pos, path)
    c, _ = reader.parse(syntax.face_base, payload, base, path, "face_base()")
    f = Located(reader, syntax.face_base, c, base, path)
    face_id = reader.text(c.face_id, "face_id", "13.3.1", f.at("face_id"), f"{path}.face_id")
    if any(b.face_id == face_id for b in reader.face_bases):
        f.fail(ConformanceViolation, "13.3.1",
               f"face_id {face_id!r} shall be unique among the faces of the stream",
               "face_id")
    if c.embedder_idc not in Embedder.__members__.values():
        f.stop(UnsupportedFeature, "13.3.2", f"embedder_idc {c.embedder_idc} is reserved",
               "embedder_idc")
    dim = c.embedding_dim
    if dim < 1:
        f.stop(ConformanceViolation, "13.3.3", "embedding_dim shall be at least 1, got 0",
               "embedding_dim")
    if dim > lvl.max_embedding_dim:
        f.stop(ConformanceViolation, "11.2",
               f"embedding_dim shall be at most {lvl.max_embedding_dim} at level "
               f"{lvl.level_idc}, got {dim}", "embedding_dim")
    # the stream totals (clause 11.2), before embedding_payload is read
    reader.embedding_values += dim
    if reader.embedding_values > lvl.max_embedding_values:
        f.stop(ConformanceViolation, "11.2",
               f"the faces of the stream shall hold at most {lvl.max_embedding_values} "
               f"embedding values in all at {reader.limits_name()}, this face_base unit "
               f"brings them to {reader.embedding_values}", "embedding_dim")
    reader.count_decoded(embedding_bytes(dim), f"the embedding of face {face_id!r}",
                         f.at("embedding_dim"), f"{path}.embedding_dim")
    step_ok = entropy.valid_step(c.embedding_step)
    if not step_ok:
        f.fail(ConformanceViolation, "13.3.4",
               f"embedding_step shall be positive and finite, got {c.embedding_step!r}",
               "embedding_step")
    if c.embedder_idc == Embedder.DLIB_RESNET_V1 and dim != 128:
        f.fail(ConformanceViolation, "13.3.2",
               f"embedding_dim shall be 128 for embedder_idc 1 (dlib ResNet v1), "
               f"got {dim}", "embedding_dim")
    if c.eg_order > entropy.MAX_EG_ORDER:
        f.stop(ConformanceViolation, "13.3.5",
               f"eg_order shall be at most {entropy.MAX_EG_ORDER}, got {c.eg_order}", "eg_order")
    start = f.at("embedding_payload")
    try:
        levels = entropy.read_levels(c.embedding_payload, dim, c.eg_order)
    except entropy.EmbeddingCodeError as exc:
        reader.stop(SyntaxViolation, exc.clause, exc.message, start + exc.bit // 8,
                    f"{path}.embedding_payload")
    if step_ok:
        peak = max(abs(v) for v in levels) * c.embedding_step
        if peak >= entropy.OVERFLOW_THRESHOLD:
            f.fail(ConformanceViolation, "13.5",
                   f"every decoded embedding value shall be finite in binary32: "
                   f"level {max(levels, key=abs)} x embedding_step "
                   f"{c.embedding_step!r} overflows", "embedding_step")
    reader.face_bases.append(FaceBase(
        face_id=face_id, embedder_idc=Embedder(c.embedder_idc), embedding_dim=dim,
        embedding_step=c.embedding_step, eg_order=c.eg_order, levels=levels,
        offset=unit_pos, payload_offset=start))


def read_face_enhancement(reader, payload: bytes, unit_pos: int, base: int) -> None:
    """face_enhancement() (clause 13.4), stored in reader.face_enhancements by face_id."""
    lvl = reader.level
    c, _ = reader.parse(syntax.face_enhancement, payload, base, "faces[?].enhancement",
                        "face_enhancement()")
    f = Located(reader, syntax.face_enhancement, c, base, "faces[?].enhancement")
    try:
        face_id = bytes(c.face_id).decode("utf-8")
    except UnicodeDecodeError:
        face_id = None
    index = next((i for i, b in enumerate(reader.face_bases) if b.face_id == face_id), None)
    if index is None:
        reader.stop(ConformanceViolation, "13.4.1",
                    f"face_id {bytes(c.face_id)!r} shall name a face_base unit that "
                    f"precedes this face_enhancement unit", f.at("face_id"),
                    "faces[?].enhancement.face_id")
    path = f.path = f"faces[{index}].enhancement"
    if face_id in reader.face_enhancements:
        reader.stop(ConformanceViolation, "13.4.1",
                    f"face {face_id!r} shall have at most one face_enhancement unit",
                    unit_pos, path)
    h, w, ch = c.image_height, c.image_width, c.image_channels

    if h < 1 or w < 1:
        f.stop(ConformanceViolation, "13.4.2",
               f"image_height and image_width shall be at least 1, got {h}x{w}",
               "image_height" if h < 1 else "image_width")
    if ch not in ALLOWED_IMAGE_CHANNELS:
        f.stop(UnsupportedFeature, "13.4.2", f"image_channels shall be 1 or 3, got {ch}",
               "image_channels")
    ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
    if max(ph, pw) > lvl.max_picture_size or ph * pw > lvl.max_picture_samples:
        f.stop(ConformanceViolation, "11.2",
               f"the image size {w}x{h} (coded {pw}x{ph}) exceeds the limits of level "
               f"{lvl.level_idc} ({lvl.max_picture_size} per side, "
               f"{lvl.max_picture_samples} samples)", "image_height")
    # the face image and the decoded texture, uint8 H x W x C each (clause 11.2 total)
    reader.count_decoded(face_image_bytes(h, w, ch),
                         f"the image and texture of face {face_id!r}",
                         f.at("image_height"), f"{path}.image_height")
    if c.predictor_type not in PredictorType.__members__.values():
        f.stop(UnsupportedFeature, "13.4.3", f"predictor_type {c.predictor_type} is reserved",
               "predictor_type")
    ptype = PredictorType(c.predictor_type)
    predictor_id = predictor_sha256 = None
    if ptype == PredictorType.NETWORK:
        info = c.predictor_info
        info_at = f.at("predictor_info")
        predictor_id = reader.text(info.predictor_id, "predictor_id", "13.4.4",
                                   info_at + 1, f"{path}.predictor_info.predictor_id")
        predictor_sha256 = bytes(info.predictor_sha256)
    rmin, rmax = c.residual_min, c.residual_max
    if not -RESIDUAL_LIMIT <= rmin <= rmax <= RESIDUAL_LIMIT:
        f.fail(ConformanceViolation, "13.4.5",
               f"residual_min and residual_max shall satisfy -{RESIDUAL_LIMIT} <= "
               f"residual_min <= residual_max <= {RESIDUAL_LIMIT}, got {rmin}, {rmax}",
               "residual_min")
    if c.texture_codec not in TextureCodec.__members__.values():
        f.stop(UnsupportedFeature, "13.4.6", f"texture_codec {c.texture_codec} is reserved",
               "texture_codec")
    start = f.at("texture_payload")
    if not c.texture_payload:
        f.fail(ConformanceViolation, "13.4.8", "texture_payload shall not be empty",
               "texture_payload")
    reader.face_enhancements[face_id] = FaceEnhancement(
        face_id=face_id, image_height=h, image_width=w, image_channels=ch,
        predictor_type=ptype, predictor_id=predictor_id,
        predictor_sha256=predictor_sha256, residual_min=rmin, residual_max=rmax,
        texture_codec=TextureCodec(c.texture_codec), texture_md5=bytes(c.texture_md5),
        texture_payload=bytes(c.texture_payload), offset=unit_pos, payload_offset=start)
