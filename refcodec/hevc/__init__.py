"""The HEVC backend interface.

The codec pipeline talks to HEVC only through ``encode_pictures`` / ``decode_pictures``
of a backend; ``refcodec.hevc.pyav`` (libx265 encoder, FFmpeg decoder) is the only module
that imports av.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    def encode_pictures(self, pictures: np.ndarray, bit_depth: int, qp: int, lossless: bool,
                        preset: str) -> tuple[bytes, list[bytes]]:
        """Code (P, H, W) integer planes as one all-intra 4:0:0 Annex-B stream; return it
        with the MD5 of each reconstructed picture (H.265 picture_md5 of the luma plane)."""

    def decode_pictures(self, payload: bytes, num_pictures: int, height: int, width: int,
                        bit_depth: int) -> np.ndarray:
        """Decode an Annex-B stream to (P, H, W) planes (uint8 at 8-bit, else uint16),
        checking count, size, bit depth and chroma format against the expected values."""


def default_backend() -> Backend:
    from . import pyav
    return pyav.PyAVBackend()
