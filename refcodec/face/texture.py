"""Texture codecs of face_enhancement() (clauses 13.4.6 and 13.6.1).

The texture is an 8-bit image of image_height x image_width x image_channels samples.

- HEVC (texture_codec 0): one 4:0:0 8-bit picture per channel, in channel order, each of
  Ceil8(image_height) x Ceil8(image_width) samples (the encoder pads by border replication;
  the decoder crops the top-left image_height x image_width samples), all-intra, through the
  same backend and the same clause 10 checks as a feature layer.
- JPEG (texture_codec 1): one ITU-T T.81 baseline/extended/progressive JPEG interchange
  stream (JFIF), grayscale for 1 channel, 3 components for 3 (decoded to RGB).
- JPEG 2000 (texture_codec 2): one ITU-T T.800 codestream (no JP2 box wrapper).

JPEG and JPEG 2000 are read and written with Pillow (libjpeg-turbo, OpenJPEG), imported
only when such a texture is met.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

from ..enums import TextureCodec
from ..errors import BackendError, ConformanceViolation, EncoderInputError, SyntaxViolation
from ..hevc import params

#: The smallest picture side libx265 codes (informative encoder limit).
MIN_HEVC_SIDE = 16
#: The first bytes of each codec's payload: JPEG's SOI marker; a JPEG 2000 codestream's SOC
#: and SIZ markers (a JP2 file, which starts with a box, is not a texture_payload).
MAGIC = {TextureCodec.JPEG: b"\xff\xd8", TextureCodec.JPEG2000: b"\xff\x4f\xff\x51"}
#: Pillow's name of each codec's format.
PIL_FORMATS = {TextureCodec.JPEG: "JPEG", TextureCodec.JPEG2000: "JPEG2000"}


def ceil8(n: int) -> int:
    return -(-n // 8) * 8


def texture_md5(texture: np.ndarray) -> bytes:
    """texture_md5 (clause 13.4.7): MD5 of the samples in channel, row, column order,
    one byte each."""
    planes = np.ascontiguousarray(np.asarray(texture, dtype=np.uint8).transpose(2, 0, 1))
    return hashlib.md5(planes).digest()


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise BackendError("JPEG and JPEG 2000 textures need Pillow: pip install "
                           "'refcodec[face]'") from None
    return Image


# ------------------------------------------------------------------------------------
# Encoder (informative)
# ------------------------------------------------------------------------------------

def encode_texture(texture: np.ndarray, codec: TextureCodec, *, qp: int = 32,
                   quality: int = 50, rate: float = 40.0, preset: str = "medium",
                   backend=None) -> bytes:
    """Code an H x W x C uint8 texture.  ``qp``: HEVC slice QP; ``quality``: JPEG quality
    1..100; ``rate``: JPEG 2000 compression ratio (>= 1)."""
    t = np.asarray(texture)
    h, w, c = t.shape
    if codec == TextureCodec.HEVC:
        if min(h, w) < MIN_HEVC_SIDE:
            raise EncoderInputError(f"an HEVC texture needs at least {MIN_HEVC_SIDE}x"
                                    f"{MIN_HEVC_SIDE} samples (libx265), got {w}x{h}")
        from ..hevc import default_backend
        backend = backend or default_backend()
        planes = np.pad(t.transpose(2, 0, 1), ((0, 0), (0, ceil8(h) - h), (0, ceil8(w) - w)),
                        mode="edge")
        payload, _ = backend.encode_pictures(np.ascontiguousarray(planes), 8, qp, False,
                                             preset)
        return payload
    image_cls = _pil()
    img = image_cls.fromarray(np.ascontiguousarray(t[:, :, 0] if c == 1 else t),
                              mode="L" if c == 1 else "RGB")
    buf = io.BytesIO()
    if codec == TextureCodec.JPEG:
        if not 1 <= quality <= 100:
            raise EncoderInputError(f"JPEG quality shall be in 1..100, got {quality}")
        img.save(buf, format="JPEG", quality=int(quality), optimize=True)
    elif codec == TextureCodec.JPEG2000:
        if not rate >= 1:
            raise EncoderInputError(f"JPEG 2000 rate (compression ratio) shall be at least 1, "
                                    f"got {rate}")
        img.save(buf, format="JPEG2000", no_jp2=True, irreversible=True,
                 quality_mode="rates", quality_layers=[float(rate)])
    else:
        raise EncoderInputError(f"unknown texture codec {codec!r}")
    return buf.getvalue()


# ------------------------------------------------------------------------------------
# Decoder (normative: clause 13.6.1)
# ------------------------------------------------------------------------------------

def hevc_violations(payload: bytes, height: int, width: int, channels: int, *, offset: int,
                    path: str) -> list[ConformanceViolation]:
    """Clause 10 violations of an HEVC texture's parameter sets, placed in the stream."""
    return [type(v)(v.message, clause=v.clause, offset=offset + v.offset,
                    path=f"{path}.{v.path}")
            for v in params.check_payload(payload, bit_depth=8, picture_width=ceil8(width),
                                          picture_height=ceil8(height),
                                          num_pictures=channels)]


def decode_texture(payload: bytes, codec: TextureCodec, height: int, width: int,
                   channels: int, *, offset: int, path: str, backend=None,
                   check_params: bool = True) -> np.ndarray:
    """texture_payload -> H x W x C uint8 texture, with its size and format checked.

    ``offset``/``path`` locate texture_payload in the stream for error messages (``path``
    ends in ``texture_payload``).  ``check_params=False`` skips the clause 10 checks of an
    HEVC texture (for a caller that made them already).
    """
    if codec == TextureCodec.HEVC:
        problems = hevc_violations(payload, height, width, channels, offset=offset,
                                   path=path) if check_params else []
        if problems:
            raise problems[0]
        from ..hevc import default_backend
        backend = backend or default_backend()
        planes = backend.decode_pictures(payload, channels, ceil8(height), ceil8(width), 8,
                                         offset=offset, path=path)
        return np.ascontiguousarray(planes[:, :height, :width].transpose(1, 2, 0))
    image_cls = _pil()
    name = {TextureCodec.JPEG: "JPEG", TextureCodec.JPEG2000: "JPEG 2000"}[codec]
    if not bytes(payload[:4]).startswith(MAGIC[codec]):
        raise SyntaxViolation(f"texture_payload shall be a {name} "
                              f"{'codestream' if codec == TextureCodec.JPEG2000 else 'stream'}"
                              f" starting with {MAGIC[codec].hex()}, got "
                              f"{bytes(payload[:4]).hex() or 'nothing'}", clause="13.4.8",
                              offset=offset, path=path)
    try:
        img = image_cls.open(io.BytesIO(payload), formats=[PIL_FORMATS[codec]])
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad data
        detail = "" if isinstance(exc, image_cls.UnidentifiedImageError) else \
            f": {type(exc).__name__}: {exc}"
        raise SyntaxViolation(f"texture_payload is not a {name} stream{detail}",
                              clause="13.4.8", offset=offset, path=path) from None
    want_mode = "L" if channels == 1 else "RGB"
    if img.size != (width, height):
        raise ConformanceViolation(
            f"the {name} texture is {img.size[0]}x{img.size[1]}, image_width x image_height "
            f"is {width}x{height}", clause="13.4.8", offset=offset, path=path)
    try:
        if img.mode != want_mode:
            if not (channels == 3 and img.mode in ("YCbCr", "RGB")) and not (
                    channels == 1 and img.mode == "L"):
                raise ConformanceViolation(
                    f"the {name} texture has {len(img.getbands())} component(s) "
                    f"({img.mode}); image_channels is {channels}", clause="13.4.8",
                    offset=offset, path=path)
        img.load()
        arr = np.asarray(img.convert(want_mode) if img.mode != want_mode else img,
                         dtype=np.uint8)
    except ConformanceViolation:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad data
        raise SyntaxViolation(f"texture_payload is not a decodable {name} stream: "
                              f"{type(exc).__name__}: {exc}", clause="13.4.8", offset=offset,
                              path=path) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr)
