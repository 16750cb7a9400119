"""``refcodec encode-face``: a face image to a stream with its base (embedding) and
enhancement (texture) layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codec import EncoderConfig, encode, read_headers
from ..enums import Embedder
from .base import EXIT_OK, UsageError
from .io import atomic_output, check_output_path, load_image, load_tensors


def cmd_encode_face(args) -> int:
    from ..face.codec import FaceConfig, FaceInput, face_from_image
    if Path(args.output).suffix.lower() != ".vfc":
        raise UsageError(f"{args.output}: output shall end in .vfc")
    check_output_path(Path(args.output))
    if args.gray and args.enhancement != "none" and args.predictor != "none":
        from ..face.codec import load_predictor
        model = load_predictor(args.predictor)
        if model.channels != 1:
            raise UsageError(f"--gray codes a 1-channel face image, and predictor "
                             f"{args.predictor!r} makes {model.channels}-channel images: add "
                             f"--predictor none")
    cfg = FaceConfig(face_id=args.face_id, embedding_step=args.embedding_step,
                     enhancement=args.enhancement, predictor=args.predictor, qp=args.qp,
                     quality=args.quality, rate=args.rate, preset=args.preset)
    tensors = load_tensors(Path(args.features), None) if args.features else None
    image = load_image(Path(args.input))
    try:
        from ..face import models
        fm = models.load_face_models()
    except (ImportError, RuntimeError) as exc:   # dlib or its model files missing
        raise UsageError(f"face detection and embedding need dlib and its models: pip "
                         f"install 'refcodec[face]' and run tools/install_eval_assets.sh "
                         f"({exc})") from None
    if args.aligned:
        if image.shape[:2] != (models.CHIP_SIZE, models.CHIP_SIZE):
            raise UsageError(f"{args.input}: an --aligned face shall be {models.CHIP_SIZE}x"
                             f"{models.CHIP_SIZE} (dlib's face chip), got "
                             f"{image.shape[1]}x{image.shape[0]}")
        face = FaceInput(image=image, embedding=fm.embed(image),
                         embedder=Embedder.DLIB_RESNET_V1)
    else:
        face = face_from_image(image, detector=args.detector)
    if args.gray:
        gray = np.asarray(face.image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
        face = FaceInput(image=np.floor(gray + 0.5).astype(np.uint8)[:, :, None],
                         embedding=face.embedding, embedder=face.embedder)
    out = Path(args.output)
    data = encode(tensors, EncoderConfig(qp=args.features_qp), faces=[(face, cfg)])
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    if not args.quiet:
        stream = read_headers(data)
        f = stream.faces[0]
        enh = f.enhancement
        what = "base layer only" if enh is None else (
            f"{enh.image_width}x{enh.image_height}x{enh.image_channels} image, "
            f"{enh.texture_codec.name} texture of {len(enh.texture_payload)} bytes, predictor "
            f"{enh.predictor_id or 'none'}")
        print(f"{out}: face {f.base.face_id!r}: {f.base.embedding_dim}-d embedding, "
              f"{len(stream.layers)} layer(s), {what}, {len(data)} bytes")
    return EXIT_OK


def add_parser(sub) -> None:
    from ..face.codec import FaceConfig
    fd = FaceConfig()
    ef = sub.add_parser("encode-face", help="code a face image: base layer (128-d dlib "
                        "embedding) and enhancement layer (residual texture)")
    ef.add_argument("input", help="an image file (PNG, JPEG, ...) holding a face")
    ef.add_argument("-o", "--output", required=True, help="output .vfc file")
    ef.add_argument("--face-id", default=fd.face_id)
    ef.add_argument("--embedding-step", type=float, default=fd.embedding_step,
                    help="quantization step of the embedding (default 1/256)")
    ef.add_argument("--enhancement", choices=["hevc", "jpeg", "jpeg2000", "none"],
                    default=fd.enhancement, help="texture codec, or none for the base layer "
                    "only (default hevc)")
    ef.add_argument("--predictor", default=fd.predictor,
                    help=f"predictor network id, or none (default {fd.predictor})")
    ef.add_argument("--qp", type=int, default=fd.qp, help="HEVC texture QP (default 32)")
    ef.add_argument("--quality", type=int, default=fd.quality,
                    help="JPEG texture quality 1..100 (default 50)")
    ef.add_argument("--rate", type=float, default=fd.rate,
                    help="JPEG 2000 texture compression ratio (default 40)")
    ef.add_argument("--preset", default=fd.preset, help="libx265 preset (default medium)")
    ef.add_argument("--detector", choices=["hog", "cnn"], default="hog",
                    help="dlib face detector (default hog)")
    ef.add_argument("--aligned", action="store_true",
                    help="the input is already a 150x150 aligned face chip: no detection")
    ef.add_argument("--gray", action="store_true", help="code a 1-channel (luma) face image")
    ef.add_argument("--features", metavar="TENSORS",
                    help=".npy/.npz/.pt feature tensors to carry in the same stream")
    ef.add_argument("--features-qp", type=int, default=22,
                    help="QP of the feature layers (default 22)")
    ef.add_argument("-q", "--quiet", action="store_true")
    ef.set_defaults(func=cmd_encode_face)
