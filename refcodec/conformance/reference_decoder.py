"""refcodec as the decoder of the suite: what the reference decoder outputs for a stream
(``decode_outputs``: tier 2, ``decode_planes``: tier 1 planes and face textures), how it
refuses one (``reference_refusal``), and ``decoder_main``, the command
``python -m refcodec.conformance decode`` that the runner can run as a tier-2 decoder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ml_dtypes
import numpy as np

from ..codec import decode, decode_all, decode_samples, read_headers
from ..errors import BitstreamError, RefcodecError
from ..face.codec import decode_faces, decode_texture_checked
from ..records import Stream
from .files import write_npz
from .manifest import face_keys


def decode_outputs(data: bytes) -> tuple[dict[str, np.ndarray], list[str]]:
    """Everything a tier-2 decoder writes for a stream ({output}, conformance/README.md) and
    the decoder's warnings: ``refcodec.codec.decode_all`` (one array per layer, per face its
    embedding and, with an enhancement layer, image and texture), a bfloat16 layer widened to
    float32 as ``refcodec decode`` writes it.  Raises the decoder's first BitstreamError."""
    arrays, warnings = decode_all(data)
    return {k: v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v
            for k, v in arrays.items()}, warnings


def face_textures(stream: Stream) -> dict[str, np.ndarray]:
    """{face_id: decoded texture (H x W x C uint8)} of the faces with an enhancement layer,
    checked against texture_md5 as the decoder does (an HEVC mismatch raises)."""
    return {face.base.face_id: decode_texture_checked(face)[0] for face in stream.faces
            if face.enhancement is not None}


def reference_refusal(data: bytes) -> tuple[BitstreamError | None, str]:
    """How the reference decoder refuses a stream: (its error, stage), the stage being
    ``any`` (refused by every decoder, also one that decodes only the layers and the face
    embeddings), ``texture`` (refused when a face texture is decoded: tier-1 and tier-2
    decoders) or ``image`` (refused only when a face image is reconstructed); (None, "")
    when it decodes the stream."""
    try:
        stream = read_headers(data)
        decode(data)
    except BitstreamError as exc:
        return exc, "any"
    try:
        face_textures(stream)
    except BitstreamError as exc:
        return exc, "texture"
    try:
        decode_faces(stream, images=True)
    except BitstreamError as exc:
        return exc, "image"
    return None, ""


def decode_planes(data: bytes) -> dict[str, np.ndarray]:
    """{layer_id: decoded pictures (P, H, W)} after every check of the decoder
    (container, parameter sets, sample_md5): uint8 at 8-bit, else uint16; and
    {texture:<face_id>: decoded texture (H, W, C) uint8} of each face with an enhancement
    layer (checked against texture_md5 as the decoder does)."""
    stream = read_headers(data)
    planes = {layer.header.layer_id: decode_samples(layer) for layer in stream.layers}
    for face_id, texture in face_textures(stream).items():
        planes[face_keys(face_id)[2]] = texture
    return planes


def decoder_main(argv: Sequence[str] | None = None) -> int:
    """``python -m refcodec.conformance decode INPUT OUTPUT.npz``: an alias of ``refcodec
    decode INPUT -o OUTPUT.npz`` kept for suites and scripts that name it (the same arrays,
    from ``decode_outputs`` = ``refcodec.codec.decode_all``).
    Exit status and error line as ``refcodec decode``: 0, 2 bad use, 3 bitstream error
    (``refcodec: error: [clause] ...``), 4 HEVC library failure; nothing is written on an
    error."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(
        prog="python -m refcodec.conformance",
        description="refcodec's decoder for `refcodec conformance run`: layers, face "
                    "embeddings, face images and textures of a stream in one .npz")
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode INPUT (.vfc) to OUTPUT (.npz)")
    dec.add_argument("input")
    dec.add_argument("output")
    args = parser.parse_args(argv)
    out = Path(args.output)
    if out.suffix.lower() != ".npz":
        print(f"refcodec: error: {out}: output shall be .npz", file=sys.stderr)
        return 2
    try:
        arrays, warnings = decode_outputs(Path(args.input).read_bytes())
        for warning in warnings:
            print(f"refcodec: warning: {warning}", file=sys.stderr)
        write_npz(out, arrays, compress=False)
    except RefcodecError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"refcodec: error: {exc.filename or args.input}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    return 0
