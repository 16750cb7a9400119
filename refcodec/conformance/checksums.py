"""Checksums of decoded outputs (manifest fields planes_md5 and tensor_sha256) and the bit
patterns of float tensors they and the comparisons use."""

from __future__ import annotations

import hashlib

import numpy as np


def planes_bytes(pictures: np.ndarray, bit_depth: int) -> bytes:
    """Decoded pictures as raw 4:0:0 output: samples in raster order, one byte each at
    8-bit, two bytes little-endian otherwise (what HM and libde265 write)."""
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    return np.ascontiguousarray(pictures, dtype=dtype).tobytes()


def planes_md5_hex(pictures: np.ndarray, bit_depth: int) -> str:
    """planes_md5: MD5 of planes_bytes of all the layer's pictures."""
    return hashlib.md5(planes_bytes(pictures, bit_depth)).hexdigest()


def tensor_bits(x: np.ndarray) -> np.ndarray:
    """The bit patterns of a float tensor, as little-endian unsigned integers of its width."""
    x = np.ascontiguousarray(x)
    if x.dtype.byteorder == ">":
        x = x.astype(x.dtype.newbyteorder("<"))
    return x.view(f"<u{x.dtype.itemsize}")


def tensor_sha256(x: np.ndarray) -> str:
    """sha256 of a tensor's C-order little-endian bytes in its own dtype."""
    return hashlib.sha256(tensor_bits(x).tobytes()).hexdigest()
