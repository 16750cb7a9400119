"""refcodec: reference software of the VFC (visual feature coding) bitstream format.

Public API::

    data = refcodec.encode({"conv4": tensor}, refcodec.EncoderConfig(qp=22))
    tensors = refcodec.decode(data)            # {"conv4": ndarray}
    stream = refcodec.read_headers(data)       # headers only, no HEVC decoding
"""

from .codec import EncoderConfig, decode, encode, read_headers
from .enums import LEVELS
from .errors import (BackendError, BitstreamError, ConformanceViolation, EncoderInputError,
                     RefcodecError, SyntaxViolation, UnsupportedFeature)
from .syntax import VERSION_MAJOR, VERSION_MINOR

__version__ = "0.1.0"
FORMAT_VERSION = f"{VERSION_MAJOR}.{VERSION_MINOR}"

__all__ = ["encode", "decode", "read_headers", "EncoderConfig", "LEVELS", "FORMAT_VERSION",
           "RefcodecError", "BitstreamError", "SyntaxViolation", "ConformanceViolation",
           "UnsupportedFeature", "EncoderInputError", "BackendError", "__version__"]
