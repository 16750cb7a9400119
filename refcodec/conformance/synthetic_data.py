"""The synthetic inputs of the valid streams: deterministic tensors (``synthetic``) and faces
(``synthetic_face``), and those of a features row (``feature_tensors``, ``feature_faces``).

conformance/README.md describes the data; a change here changes the committed streams.
"""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np

from ..codec import NUMPY_DTYPES
from ..enums import DTYPE_INFO, Embedder, SourceDtype
from ..face.codec import FaceConfig, FaceInput
from .features import DTYPE_NAMES, Features, face_config


def integer_offset(bit_depth: int, dtype: SourceDtype) -> int:
    """The smallest value of ``integer`` data: -2^(b-1), raised if needed so that
    offset_value..offset_value + 2^b - 1 fits the dtype (clause 8.3.7)."""
    limit = 1 << DTYPE_INFO[dtype].precision
    low = max(-limit, -(1 << (bit_depth - 1)))
    if low + (1 << bit_depth) - 1 > limit:
        raise ValueError(f"integer data of {bit_depth} bits cannot be exact in "
                         f"{dtype.name.lower()} (clause 8.3.7)")
    return low


def synthetic(kind: str, shape: tuple[int, int, int, int], dtype: SourceDtype,
              bit_depth: int, seed: int) -> np.ndarray:
    """A deterministic N x C x H x W tensor of the source dtype.

    relu: smooth ReLU-like field (about half zeros); gaussian: normal, mean 0.5, sd 2;
    constant: one value; integer: integers spanning exactly 2^bit_depth values; ramp: a
    linear ramp from -2 to 6 over the elements in C order; negzero: relu whose zeros are
    -0.0 (the quantizer's min_value is -0.0, clause 9.4); extremes: gaussian scaled to the
    whole finite range of the dtype, its first and last elements the dtype's smallest and
    largest finite values (min_value and max_value at the bound of clause 8.3.7).
    """
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    if kind == "relu":
        noise = rng.standard_normal((n, c, h + 2, w + 2))
        smooth = (noise[:, :, :-2, :-2] + noise[:, :, 1:-1, 1:-1] + noise[:, :, 2:, 2:]) / 3
        x = np.maximum(smooth * 4.0, 0.0)
    elif kind == "gaussian":
        x = rng.standard_normal(shape) * 2.0 + 0.5
    elif kind == "constant":
        x = np.full(shape, float(np.float32(rng.uniform(-4, 4)).astype(ml_dtypes.bfloat16)))
    elif kind == "integer":
        low = integer_offset(bit_depth, dtype)
        x = rng.integers(low, low + (1 << bit_depth), size=shape).astype(np.float64)
        flat = x.reshape(-1)
        flat[0] = low                              # the range is exactly 2^b values
        flat[-1] = low + (1 << bit_depth) - 1
    elif kind == "ramp":
        x = np.linspace(-2.0, 6.0, n * c * h * w).reshape(shape)
    elif kind == "negzero":
        x = synthetic("relu", shape, dtype, bit_depth, seed)
        x[x == 0] = -0.0
        return x
    elif kind == "extremes":
        top = DTYPE_INFO[dtype].max_finite
        x = np.tanh(rng.standard_normal(shape)) * top
        flat = x.reshape(-1)
        flat[0], flat[-1] = -top, top
        return x.astype(NUMPY_DTYPES[dtype])
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    return x.astype(np.float32).astype(NUMPY_DTYPES[dtype])


def feature_tensors(f: Features) -> dict[str, np.ndarray]:
    """The layers of a features row, in the row's layout."""
    dtype = DTYPE_NAMES[f.dtype]
    out = {}
    for i in range(f.layers):
        x = synthetic(f.data, (f.batch, f.channels, f.height, f.width), dtype, f.bit_depth,
                      f.seed + i)
        out[f"{f.name}.{i}"] = x.transpose(0, 2, 3, 1).copy() if f.layout == "NHWC" else x
    return out


#: Side of the synthetic face images: dlib's aligned face chip is 150 x 150.
FACE_SIZE = 150
#: Size and scale of the synthetic embeddings: dlib's ResNet gives 128 values of about this
#: standard deviation.
EMBEDDING_DIM = 128
EMBEDDING_SD = 0.09


def synthetic_face(seed: int, channels: int = 3) -> FaceInput:
    """A deterministic face to code: a FACE_SIZE x FACE_SIZE cartoon face and a random
    embedding; neither needs dlib (the streams test the bitstream, not the embedder).

    With numpy's ``default_rng(seed)``: five colours uniform in 20..235 (background, face,
    eyes, mouth, nose), the face centre moved by up to 6 samples each way, then the
    embedding: EMBEDDING_DIM values, normal with mean 0 and standard deviation EMBEDDING_SD.
    The image is flat regions: an ellipse (the face) on the background with two elliptic
    eyes, a vertical bar (nose) and a horizontal bar (mouth); sample (y, x) is tested at its
    centre (y + 0.5, x + 0.5).  One channel: the luma 0.299 R + 0.587 G + 0.114 B.  Samples
    are rounded half up to integers.  The embedder is signalled as dlib's ResNet (its scale).
    """
    rng = np.random.default_rng(seed)
    colours = rng.uniform(20.0, 235.0, (5, 3))
    cy, cx = FACE_SIZE / 2 + rng.uniform(-6.0, 6.0, 2)
    y, x = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE] + 0.5
    image = np.empty((FACE_SIZE, FACE_SIZE, 3))
    image[:] = colours[0]
    image[((y - cy) / 58) ** 2 + ((x - cx) / 45) ** 2 <= 1] = colours[1]
    for side in (-1, 1):
        image[((y - cy + 15) / 6) ** 2 + ((x - cx - side * 17) / 9) ** 2 <= 1] = colours[2]
    image[(np.abs(y - cy - 28) <= 4) & (np.abs(x - cx) <= 16)] = colours[3]
    image[(np.abs(x - cx) <= 3) & (y > cy - 8) & (y < cy + 12)] = colours[4]
    if channels == 1:
        image = (image @ np.array([0.299, 0.587, 0.114]))[:, :, None]
    image = np.clip(np.floor(image + 0.5), 0, 255).astype(np.uint8)
    embedding = (rng.standard_normal(EMBEDDING_DIM) * EMBEDDING_SD).astype(np.float32)
    return FaceInput(image=image, embedding=embedding, embedder=Embedder.DLIB_RESNET_V1)


def feature_faces(f: Features) -> list[tuple[FaceInput, FaceConfig]]:
    """The faces of a features row: face i from seed + i.  With data ``constant`` the face
    images are flat: every sample of every channel the first sample of the synthetic face
    (so that the residual is one value, residual_min = residual_max)."""
    if not f.face:
        return []
    faces = [synthetic_face(f.seed + i, f.face_channels) for i in range(f.faces)]
    if f.data == "constant":
        faces = [dataclasses.replace(face, image=np.full_like(face.image, face.image[0, 0, 0]))
                 for face in faces]
    return [(face, face_config(f, i)) for i, face in enumerate(faces)]
