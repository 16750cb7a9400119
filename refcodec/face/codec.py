"""Scalable face layers: informative encoder and normative decoder (clause 13).

Base layer (face_base): the face embedding, quantized with a uniform step and coded with
signed Exp-Golomb codes (``refcodec.face.entropy``).  A decoder that only needs the
embedding stops there.

Enhancement layer (face_enhancement): the aligned face image ``x`` (H x W x C, 8-bit) is
predicted from the *decoded* embedding by a predictor network (or not at all, the control:
the prediction is 0), the integer residual ``r = x - pred`` is min-max normalised to an
8-bit texture and the texture is coded with HEVC, JPEG or JPEG 2000
(``refcodec.face.texture``).  The decoder inverts each step with integer arithmetic; only
the predictor is floating point, hence the +-1 tolerance of clause 13.7.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .. import bitstream
from ..ids import check_id, selected_names
from ..enums import ALLOWED_IMAGE_CHANNELS, Embedder, PredictorType, TextureCodec
from ..errors import ConformanceViolation, EncoderInputError, UnsupportedFeature
from ..records import Face, FaceBase, FaceEnhancement, Stream
from . import entropy, texture

#: The predictor the encoder uses unless told otherwise.
DEFAULT_PREDICTOR = "refcodec-deconv-v1"
ENHANCEMENT_CODECS = {"hevc": TextureCodec.HEVC, "jpeg": TextureCodec.JPEG,
                      "jpeg2000": TextureCodec.JPEG2000}


@dataclasses.dataclass(frozen=True)
class FaceConfig:
    """Settings of the informative face encoder (Annex A.6).

    face_id         identifier of the face in the stream
    embedding_step  quantization step of the embedding (rounded to binary32)
    enhancement     texture codec of the enhancement layer: "hevc", "jpeg", "jpeg2000", or
                    "none" for a base layer only
    predictor       a shipped predictor id, or "none" (the control: the residual is the
                    image itself)
    qp              HEVC slice QP of the texture (0..51)
    quality         JPEG quality (1..100)
    rate            JPEG 2000 compression ratio (>= 1)
    preset          libx265 preset of the HEVC texture
    """

    face_id: str = "face0"
    embedding_step: float = 1 / 256
    enhancement: str = "hevc"
    predictor: str = DEFAULT_PREDICTOR
    qp: int = 32
    quality: int = 50
    rate: float = 40.0
    preset: str = "medium"

    def __post_init__(self):
        from ..hevc.pyav import PRESETS
        check_id(self.face_id, "face_id")
        step = self.embedding_step
        if isinstance(step, bool) or not isinstance(step, (int, float, np.floating)) \
                or not entropy.valid_step(entropy.as_step(step)):
            raise EncoderInputError(f"embedding_step shall be a positive finite number, "
                                    f"got {step!r}")
        if self.enhancement not in (*ENHANCEMENT_CODECS, "none"):
            raise EncoderInputError(f"enhancement shall be one of "
                                    f"{', '.join((*ENHANCEMENT_CODECS, 'none'))}, "
                                    f"got {self.enhancement!r}")
        if self.predictor != "none":
            check_id(self.predictor, "predictor")
        if isinstance(self.qp, bool) or not isinstance(self.qp, (int, np.integer)) \
                or not 0 <= self.qp <= 51:
            raise EncoderInputError(f"qp shall be an integer in 0..51, got {self.qp!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, (int, np.integer)) \
                or not 1 <= self.quality <= 100:
            raise EncoderInputError(f"quality shall be an integer in 1..100, "
                                    f"got {self.quality!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) \
                or not self.rate >= 1:
            raise EncoderInputError(f"rate shall be a number >= 1, got {self.rate!r}")
        if self.preset not in PRESETS:
            raise EncoderInputError(f"preset shall be one of {', '.join(PRESETS)}, "
                                    f"got {self.preset!r}")


@dataclasses.dataclass(frozen=True)
class FaceInput:
    """What the face encoder codes: the aligned face image and its embedding.

    image            H x W x C uint8 (C = 1 or 3, RGB)
    embedding        (dim,) float32, computed from the pristine image
    embedder         the embedding network (embedder_idc, clause 13.3.2)
    """

    image: np.ndarray
    embedding: np.ndarray
    embedder: Embedder = Embedder.UNSPECIFIED

    def __post_init__(self):
        img = np.asarray(self.image)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[2] not in ALLOWED_IMAGE_CHANNELS or img.dtype != np.uint8:
            raise EncoderInputError(f"a face image shall be H x W x 1 or H x W x 3 uint8, got "
                                    f"{img.shape} {img.dtype}")
        if not (1 <= img.shape[0] <= 65535 and 1 <= img.shape[1] <= 65535):
            raise EncoderInputError(f"a face image shall be 1..65535 samples per side, got "
                                    f"{img.shape[1]}x{img.shape[0]}")
        emb = np.asarray(self.embedding)
        if emb.ndim != 1 or not 1 <= emb.size <= 65535 or emb.dtype.kind != "f":
            raise EncoderInputError(f"an embedding shall be a 1-d float vector of 1..65535 "
                                    f"values, got {emb.shape} {emb.dtype}")
        if not np.all(np.isfinite(emb)):
            raise EncoderInputError("the embedding holds NaN or infinite values")
        if self.embedder not in Embedder.__members__.values():
            raise EncoderInputError(f"embedder shall be one of "
                                    f"{', '.join(e.name for e in Embedder)}, "
                                    f"got {self.embedder!r}")
        object.__setattr__(self, "embedder", Embedder(self.embedder))
        object.__setattr__(self, "image", np.ascontiguousarray(img))
        object.__setattr__(self, "embedding", emb.astype(np.float32))


def face_from_image(image: np.ndarray, *, detector: str = "hog") -> FaceInput:
    """Detect the largest face of an RGB image, align it (dlib's 150x150 chip) and compute
    its embedding with dlib's ResNet (needs ``refcodec[face]``)."""
    from . import models
    fm = models.load_face_models()
    boxes = fm.detect(image, detector=detector)
    if not boxes:
        raise EncoderInputError("no face found in the image")
    chip = fm.chip(image, boxes[0])
    return FaceInput(image=chip, embedding=fm.embed(chip), embedder=Embedder.DLIB_RESNET_V1)


# ------------------------------------------------------------------------------------
# Residual normalisation (clause 13.6.2)
# ------------------------------------------------------------------------------------

def normalize_residual(residual: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Informative: integer residual -> (8-bit texture, residual_min, residual_max) with
    t = floor(((r - min) * 255 + floor(range / 2)) / range), or 0 when range is 0."""
    r = np.asarray(residual, dtype=np.int64)
    rmin, rmax = int(r.min()), int(r.max())
    span = rmax - rmin
    if span == 0:
        return np.zeros(r.shape, np.uint8), rmin, rmax
    t = ((r - rmin) * 255 + span // 2) // span
    return t.astype(np.uint8), rmin, rmax


def denormalize_texture(tex: np.ndarray, rmin: int, rmax: int) -> np.ndarray:
    """Normative: r = residual_min + floor((t * (residual_max - residual_min) + 127) / 255),
    in integer arithmetic."""
    t = np.asarray(tex, dtype=np.int32)
    return rmin + (t * (rmax - rmin) + 127) // 255


def reconstruct_image(prediction: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Normative: x = Clip3(0, 255, pred + r)."""
    return np.clip(prediction.astype(np.int32) + residual, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------
# Predictors
# ------------------------------------------------------------------------------------

def load_predictor(name: str):
    """The shipped predictor ``name`` (EncoderInputError if there is none)."""
    from . import predictor
    shipped = predictor.shipped_predictors()
    if name not in shipped:
        raise EncoderInputError(f"no predictor {name!r}; shipped: "
                                f"{', '.join(sorted(shipped)) or 'none'} (or 'none')")
    return shipped[name]


def predictor_for(enh: FaceEnhancement, index: int):
    """The predictor a face_enhancement() names, or UnsupportedFeature (clause 13.4.4)."""
    from . import predictor
    found = predictor.find_predictor(enh.predictor_id, enh.predictor_sha256)
    if found is None:
        raise UnsupportedFeature(
            f"predictor {enh.predictor_id!r} (SHA-256 {enh.predictor_sha256.hex()}) is not "
            f"available to this decoder, so the face image cannot be reconstructed; the "
            f"embedding (base layer) can still be decoded", clause="13.4.4",
            offset=enh.offset, path=f"faces[{index}].enhancement.predictor_info")
    if (found.height, found.width, found.channels) != enh.image_shape:
        raise ConformanceViolation(
            f"predictor {enh.predictor_id!r} gives {found.width}x{found.height}x"
            f"{found.channels} images; the face image is {enh.image_width}x"
            f"{enh.image_height}x{enh.image_channels}", clause="13.4.4", offset=enh.offset,
            path=f"faces[{index}].enhancement.image_height")
    return found


def check_predictor(found, enh: FaceEnhancement, embedding_dim: int, index: int) -> None:
    """ConformanceViolation 13.4.4 when the predictor does not fit the face."""
    if found.embedding_dim != embedding_dim:
        raise ConformanceViolation(
            f"predictor {enh.predictor_id!r} takes {found.embedding_dim}-d embeddings; the "
            f"face's embedding_dim is {embedding_dim}", clause="13.4.4", offset=enh.offset,
            path=f"faces[{index}].enhancement.predictor_info")


def prediction_of(enh: FaceEnhancement, embedding: np.ndarray, index: int) -> np.ndarray:
    """pred (H x W x C, integers 0..255) of clause 13.6.3."""
    if enh.predictor_type == PredictorType.NONE:
        return np.zeros(enh.image_shape, np.uint8)
    found = predictor_for(enh, index)
    check_predictor(found, enh, embedding.size, index)
    return found.predict(embedding)


# ------------------------------------------------------------------------------------
# Encoder (informative, Annex A.6)
# ------------------------------------------------------------------------------------

def encode_face(face: FaceInput, cfg: FaceConfig | None = None, *, index: int = 0,
                backend=None) -> Face:
    """Code one face: its face_base and, unless cfg.enhancement is "none", its
    face_enhancement (returned as a record for bitstream.build_stream)."""
    cfg = cfg or FaceConfig()
    step = entropy.as_step(cfg.embedding_step)
    try:
        levels = entropy.quantize(face.embedding, step)
    except ValueError as exc:
        raise EncoderInputError(f"face {cfg.face_id!r}: {exc}") from None
    decoded = entropy.dequantize(levels, step)
    if not np.all(np.isfinite(decoded)):
        raise EncoderInputError(f"face {cfg.face_id!r}: embedding_step {step!r} makes the "
                                f"decoded embedding overflow binary32 (clause 13.5): choose "
                                f"a smaller step")
    order = entropy.best_order(levels)
    base = FaceBase(face_id=cfg.face_id, embedder_idc=face.embedder,
                    embedding_dim=int(levels.size),
                    embedding_step=step, eg_order=order, levels=tuple(int(v) for v in levels),
                    offset=0, payload_offset=0)
    if cfg.enhancement == "none":
        return Face(index=index, base=base)
    codec = ENHANCEMENT_CODECS[cfg.enhancement]
    h, w, c = face.image.shape
    if cfg.predictor == "none":
        ptype, pid, psha = PredictorType.NONE, None, None
        pred = np.zeros(face.image.shape, np.uint8)
    else:
        model = load_predictor(cfg.predictor)
        if (model.height, model.width, model.channels) != (h, w, c):
            raise EncoderInputError(
                f"predictor {cfg.predictor!r} gives {model.width}x{model.height}x"
                f"{model.channels} images, the face image is {w}x{h}x{c}")
        if model.embedding_dim != decoded.size:
            raise EncoderInputError(f"predictor {cfg.predictor!r} takes "
                                    f"{model.embedding_dim}-d embeddings, got {decoded.size}")
        ptype, pid, psha = PredictorType.NETWORK, model.predictor_id, model.sha256
        pred = model.predict(decoded)
    tex, rmin, rmax = normalize_residual(face.image.astype(np.int32) - pred)
    payload = texture.encode_texture(tex, codec, qp=cfg.qp, quality=cfg.quality,
                                     rate=cfg.rate, preset=cfg.preset, backend=backend)
    decoded_tex = texture.decode_texture(payload, codec, h, w, c, offset=0,
                                         path="texture_payload", backend=backend)
    enh = FaceEnhancement(
        face_id=cfg.face_id, image_height=h, image_width=w, image_channels=c,
        predictor_type=ptype, predictor_id=pid, predictor_sha256=psha, residual_min=rmin,
        residual_max=rmax, texture_codec=codec, texture_md5=texture.texture_md5(decoded_tex),
        texture_payload=payload, offset=0, payload_offset=0)
    return Face(index=index, base=base, enhancement=enh)


# ------------------------------------------------------------------------------------
# Decoder (normative, clause 13.6)
# ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DecodedFace:
    """A decoded face: the embedding always; the image when asked for and coded."""

    face_id: str
    embedding: np.ndarray            # (embedding_dim,) float32
    embedder: Embedder
    image: np.ndarray | None = None  # H x W x C uint8
    warnings: tuple[str, ...] = ()
    texture: np.ndarray | None = None  # the decoded texture, H x W x C uint8, with the image


def decode_texture_checked(face: Face, backend=None,
                           check_params: bool = True) -> tuple[np.ndarray, str | None]:
    """The decoded texture of a face and, for JPEG / JPEG 2000, a warning when it differs
    from the encoder's (texture_md5); an HEVC mismatch raises (clause 13.4.7)."""
    enh = face.enhancement
    path = f"faces[{face.index}].enhancement"
    tex = texture.decode_texture(enh.texture_payload, enh.texture_codec, enh.image_height,
                                 enh.image_width, enh.image_channels,
                                 offset=enh.payload_offset, path=f"{path}.texture_payload",
                                 backend=backend, check_params=check_params)
    got = texture.texture_md5(tex)
    if got == enh.texture_md5:
        return tex, None
    message = (f"texture_md5 shall be the MD5 of the decoded texture: stored "
               f"{enh.texture_md5.hex()}, decoded {got.hex()}")
    if enh.texture_codec == TextureCodec.HEVC:
        raise ConformanceViolation(message, clause="13.4.7", offset=enh.payload_offset - 16,
                                   path=f"{path}.texture_md5")
    return tex, (f"[13.4.7] face {face.base.face_id!r}: the "
                 f"{enh.texture_codec.name} texture decodes differently here than at the "
                 f"encoder ({message}); JPEG and JPEG 2000 decoders may differ slightly")


def decode_face(face: Face, *, image: bool = True, backend=None) -> DecodedFace:
    """Decode one parsed face (clause 13.6)."""
    b = face.base
    embedding = entropy.dequantize(b.levels, b.embedding_step)
    if not image or face.enhancement is None:
        return DecodedFace(b.face_id, embedding, b.embedder_idc)
    enh = face.enhancement
    pred = prediction_of(enh, embedding, face.index)   # before decoding the texture
    tex, warning = decode_texture_checked(face, backend)
    out = reconstruct_image(pred, denormalize_texture(tex, enh.residual_min, enh.residual_max))
    return DecodedFace(b.face_id, embedding, b.embedder_idc, out,
                       (warning,) if warning else (), tex)


def decode_faces(data: bytes | Stream, *, images: bool = True,
                 faces: Sequence[str] | None = None, backend=None,
                 limits=None) -> dict[str, DecodedFace]:
    """Decode the faces of a VFC bitstream to {face_id: DecodedFace} in stream order.

    ``images=False`` decodes only the base layers (no texture is decoded and no predictor is
    needed); ``faces`` restricts decoding to the named faces (KeyError for a missing one).
    """
    stream = data if isinstance(data, Stream) else bitstream.parse_stream(data, limits=limits)
    wanted = selected_names(faces, [f.base.face_id for f in stream.faces], "face")
    return {f.base.face_id: decode_face(f, image=images, backend=backend)
            for f in stream.faces if wanted is None or f.base.face_id in wanted}
