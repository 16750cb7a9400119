"""refcodec: reference software of the VFC (visual feature coding) bitstream format.

Public API::

    data = refcodec.encode({"conv4": tensor}, refcodec.EncoderConfig(qp=22))
    tensors = refcodec.decode(data)            # {"conv4": ndarray}
    stream = refcodec.read_headers(data)       # headers only, no HEVC decoding

Faces (format 1.1, clause 13)::

    face = refcodec.face_from_image(rgb)       # detect, align, embed (refcodec[face])
    data = refcodec.encode(None, faces=[(face, refcodec.FaceConfig(qp=32))])
    faces = refcodec.decode_faces(data)        # {"face0": DecodedFace(embedding, image)}
    faces = refcodec.decode_faces(data, images=False)   # base layers only
"""

from .codec import EncoderConfig, decode, encode, read_headers
from .face.codec import DecodedFace, FaceConfig, FaceInput, decode_faces, face_from_image
from .enums import LEVELS
from .errors import (BackendError, BitstreamError, ConformanceViolation, EncoderInputError,
                     RefcodecError, SyntaxViolation, UnsupportedFeature)
from .syntax import VERSION_MAJOR, VERSION_MINOR

__version__ = "0.1.0"
FORMAT_VERSION = f"{VERSION_MAJOR}.{VERSION_MINOR}"

__all__ = ["encode", "decode", "read_headers", "EncoderConfig", "LEVELS", "FORMAT_VERSION",
           "FaceConfig", "FaceInput", "DecodedFace", "decode_faces", "face_from_image",
           "RefcodecError", "BitstreamError", "SyntaxViolation", "ConformanceViolation",
           "UnsupportedFeature", "EncoderInputError", "BackendError", "__version__"]
