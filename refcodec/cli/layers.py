"""``refcodec encode`` and ``refcodec decode``: feature tensors to a .vfc stream and back
(with the face embeddings and image of ``decode``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..codec import EncoderConfig, decode_all, encode, output_names, read_headers
from ..enums import LEVELS, Level
from ..syntax import MAGIC
from ..ids import OutputKeyCollision
from .base import EXIT_OK, UsageError
from .io import (add_hevc_encoder_options, atomic_output, check_output_path, hevc_backend,
                 load_tensors, read_input, save_png, save_tensors)


def _grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS such as 4x8, got {text!r}") from None
    return rows, cols


def _order(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated permutation such as 2,0,1, got {text!r}") from None


def _byte_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of bytes (at least 1), got "
                                         f"{text!r}")
    return value


def _rate_target(kind):
    """--target-bytes / --bits-per-element: N (the whole stream) or LAYER=N,LAYER=N (each
    named layer)."""
    def parse(text: str):
        def number(value: str):
            try:
                v = int(value) if kind is int else float(value)
            except ValueError:
                v = 0
            if not v > 0 or v == float("inf"):
                raise argparse.ArgumentTypeError(
                    f"expected a positive {'whole ' if kind is int else ''}number or "
                    f"LAYER=N,LAYER=N, got {text!r}")
            return v
        if "=" not in text:
            return number(text)
        out = {}
        for item in text.split(","):
            name, _, value = item.partition("=")
            if not name or name in out:
                raise argparse.ArgumentTypeError(f"expected LAYER=N,LAYER=N with distinct "
                                                 f"layer ids, got {text!r}")
            out[name] = number(value)
        return out
    return parse


def add_limit_options(parser, what: str = "decoding") -> None:
    """--level and --max-output-bytes: the lower limits a decoder may set (clause 11.2)."""
    parser.add_argument("--level", type=int, choices=sorted(LEVELS), metavar="IDC",
                        help=f"the limits of a decoder of this level "
                             f"({', '.join(map(str, LEVELS))}): a stream that exceeds "
                             f"them is refused before {what} "
                             f"(exit 3, clause 11.2)")
    parser.add_argument("--max-output-bytes", type=_byte_count, metavar="N",
                        help=f"refuse, before {what}, a stream whose layers and faces decode "
                             f"to more than N bytes in all (exit 3, clause 11.2)")


def decoder_limits(data: bytes, args) -> Level | None:
    """The limits of --level / --max-output-bytes, each field the lower of the stream's level
    and the option's; None without them (the stream's own level)."""
    level, max_bytes = getattr(args, "level", None), getattr(args, "max_output_bytes", None)
    if level is None and max_bytes is None:
        return None
    own = LEVELS.get(data[11]) if len(data) > 11 and data[:len(MAGIC)] == MAGIC else None
    limits = own or LEVELS[max(LEVELS)]
    if level is not None:
        limits = limits.capped(LEVELS[level])
    if max_bytes is not None:
        limits = limits.capped(max_decoded_bytes=max_bytes)
    return limits


def cmd_encode(args) -> int:
    if Path(args.output).suffix.lower() != ".vfc":
        raise UsageError(f"{args.output}: output shall end in .vfc")
    check_output_path(Path(args.output))
    tensors = load_tensors(Path(args.input), args.layer_id)
    if not tensors:
        raise UsageError(f"{args.input}: holds no tensor")
    if args.target_bytes is not None and args.bits_per_element is not None:
        raise UsageError("give --target-bytes or --bits-per-element, not both")
    rate_control = args.target_bytes is not None or args.bits_per_element is not None
    if args.lossless and (rate_control or args.tune):
        raise UsageError("--lossless codes every sample exactly: it takes no --tune, "
                         "--target-bytes or --bits-per-element")
    config = EncoderConfig(qp=args.qp, quantizer=args.quantizer, bit_depth=args.bit_depth,
                           per_channel=args.per_channel, packing=args.packing,
                           tile_grid=args.tile_grid, pad_mode=args.pad_mode,
                           channel_order=args.channel_order, lossless=args.lossless,
                           layout=args.layout, preset=args.preset, verify=args.verify,
                           x265_params=args.x265_params,
                           param_format=args.param_format,
                           permutation_coding=args.permutation_coding)
    out = Path(args.output)
    backend = hevc_backend(args.hevc_encoder, args.hevc_encoder_timeout)
    choices = []
    data = encode(tensors, config, backend=backend, tune=args.tune,
                  target_bytes=args.target_bytes, bits_per_element=args.bits_per_element,
                  report=choices)
    if backend is not None:        # another encoder's payload: check the whole stream
        from ..verify import verify
        report = verify(data, source=str(out))
        if not report.conformant:
            raise UsageError(f"{args.hevc_encoder}: the stream would not conform: "
                             f"{report.violations[0]}")
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    if not args.quiet:
        original = sum(np.asarray(t.shape).prod() * _itemsize(t) for t in tensors.values())
        print(f"{out}: {len(tensors)} layer(s), {len(data)} bytes, compression rate "
              f"{original / len(data):.2f}{_chosen(choices, args)}")
    return EXIT_OK


def _chosen(report, args) -> str:
    """The summary line's account of the choosing encoder and rate control: the QP (each
    layer's when they differ), the encodes rate control spent, the tune."""
    if not report:
        return ""
    qps = sorted({r.qp for r in report})
    text = f", QP {qps[0]}" if len(qps) == 1 else ", QP " + " ".join(
        f"{r.layer_id}={r.qp}" for r in report)
    target = args.target_bytes if args.target_bytes is not None else args.bits_per_element
    if target is not None:
        encodes = sum(r.encodes for r in report) if isinstance(target, dict) \
            else report[0].encodes
        text += f" (rate control: {encodes} encodes)"
    if args.tune:
        text += f", tune {args.tune}"
    return text


def _itemsize(t) -> int:
    return t.element_size() if hasattr(t, "element_size") else t.dtype.itemsize


#: What a decoder without the face textures and images leaves unchecked (--no-images).
NOT_CHECKED_WITHOUT_IMAGES = ("the face textures and images were not decoded (--no-images): "
                              "texture_md5 (clause 13.4.7), the predictor (13.4.4) and the "
                              "image reconstruction (13.6) were not checked")


def cmd_decode(args) -> int:
    out = Path(args.output) if args.output else None
    image_out = Path(args.image) if args.image else None
    if out is None and image_out is None and not args.pictures:
        raise UsageError("give -o OUTPUT (everything the stream carries) and/or --image "
                         "OUT.png (or --pictures DIR)")
    if out is not None and out.suffix.lower() not in (".npy", ".npz", ".pt"):
        raise UsageError(f"{out}: output shall be .npy, .npz or .pt, "
                         f"got '{out.suffix or out.name}'")
    if image_out is not None and image_out.suffix.lower() != ".png":
        raise UsageError(f"{image_out}: --image writes a .png file")
    if image_out is not None and args.no_images:
        raise UsageError("--image needs the face image: drop --no-images")
    for path in (out, image_out):
        if path is not None:
            check_output_path(path)
    pictures_dir = _pictures_dir(args.pictures) if args.pictures else None
    for flag, names in (("--layer", args.layer), ("--face", args.face)):
        if names is not None and any(not n for n in names):
            raise UsageError(f"{flag} needs a name, got ''")
    data = read_input(Path(args.input))
    stream = read_headers(data, limits=decoder_limits(data, args))
    del data
    face_ids = [f.base.face_id for f in stream.faces]
    if args.face and not face_ids:
        raise UsageError("the stream holds no face")
    # --face alone decodes no layer, --layer alone no face (one of them: only that one)
    layers = args.layer if args.layer else ([] if args.face else None)
    faces = args.face if args.face else ([] if args.layer else None)
    if image_out is not None and out is None and not args.layer:
        layers = []        # only the face image was asked for
    # a .npy file holds one array: a face's embedding, its image only with --image
    npy = out is not None and out.suffix.lower() == ".npy"
    images = not args.no_images and (not npy or image_out is not None)
    try:
        names = [n for n in output_names(stream, layers, faces, images)[2]
                 if not (npy and n.startswith(("image:", "texture:")))]
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    except OutputKeyCollision as exc:
        raise UsageError(str(exc)) from None
    if npy and len(names) != 1:
        raise UsageError(f"{out}: the stream carries {len(names)} arrays ({_kinds(names)}); "
                         f"write .npz or .pt, or pick one with --layer / --face")
    arrays, warnings = decode_all(stream, layers=layers, faces=faces, images=images)
    for warning in warnings:
        print(f"refcodec: warning: {warning}", file=sys.stderr)
    if args.no_images and any(f.enhancement is not None and (faces is None or
                                                              f.base.face_id in faces)
                              for f in stream.faces) and not args.quiet:
        print(f"refcodec: note: {NOT_CHECKED_WITHOUT_IMAGES}", file=sys.stderr)
    if image_out is not None:
        images = {k: v for k, v in arrays.items() if k.startswith("image:")}
        chosen = [f for f in face_ids if faces is None or f in faces]
        if len(chosen) != 1:
            raise UsageError(f"the stream holds {len(chosen)} faces; pick one with --face ID "
                             f"for --image" if chosen else "the stream holds no face")
        if not images:
            raise UsageError(f"face {chosen[0]!r} has no enhancement layer: only its "
                             f"embedding can be decoded")
        save_png(image_out, next(iter(images.values())))
    if out is not None:
        written = {k: v for k, v in arrays.items() if k in names}
        if not written:
            raise UsageError("nothing to write: the stream holds no layer or face")
        save_tensors(out, written)
    if pictures_dir is not None:
        from ..codec import decode_samples
        from ..pictures import write_all
        write_all(pictures_dir, ((layer.index, layer.header.layer_id, decode_samples(layer),
                                  layer.header.sample_bit_depth) for layer in stream.layers
                                 if layer.header.layer_id in arrays),
                  {k.split(":", 1)[1]: v for k, v in arrays.items()
                   if k.startswith("texture:")})
    if not args.quiet:
        parts = [f"{k} {tuple(v.shape)} {v.dtype}" for k, v in arrays.items()]
        if image_out is not None:
            parts.append(f"face image {image_out}")
        if pictures_dir is not None:
            parts.append(f"pictures in {pictures_dir}")
        print(f"{out or image_out or pictures_dir}: " + ", ".join(parts))
    return EXIT_OK


def _pictures_dir(text: str) -> Path:
    from ..pictures import prepare_directory
    try:
        return prepare_directory(Path(text))
    except ValueError as exc:
        raise UsageError(f"--pictures {exc}") from None


def _kinds(arrays) -> str:
    counts = {}
    for key in arrays:
        kind = key.split(":", 1)[0] if key.split(":", 1)[0] in (
            "embedding", "image", "texture") else "layer"
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items())


def add_parser(sub) -> None:
    enc = sub.add_parser("encode", help="encode .npy/.npz/.pt tensors into a .vfc stream")
    enc.add_argument("input", help=".npy (one tensor), .npz (one layer per array) or .pt")
    enc.add_argument("-o", "--output", required=True, help="output .vfc file")
    d = EncoderConfig()
    enc.add_argument("--qp", type=int, default=d.qp, help="HEVC slice QP 0..51 (default 22)")
    enc.add_argument("--quantizer", choices=["log", "uniform", "sqrt", "integer"],
                     default=d.quantizer,
                     help="sample quantizer (clause 9.4; sqrt is format 1.2)")
    enc.add_argument("--bit-depth", type=int, choices=[8, 10, 12], default=d.bit_depth)
    enc.add_argument("--per-channel", action="store_true",
                     help="one quantizer parameter set per channel")
    enc.add_argument("--packing", choices=["auto", "channel", "tiled", "dense"],
                     default=d.packing, help="dense: small maps side by side without "
                     "padding, only the picture padded (format 1.2)")
    enc.add_argument("--tile-grid", type=_grid, metavar="ROWSxCOLS",
                     help="tile grid for --packing tiled or dense")
    enc.add_argument("--param-format", choices=["binary32", "binary16"],
                     default=d.param_format,
                     help="binary16: 2-byte quantizer parameters (format 1.2)")
    enc.add_argument("--permutation-coding", choices=["auto", "compact", "grouped", "u32"],
                     default=d.permutation_coding,
                     help="coding of --channel-order: compact = Ceil(Log2 C) bits per entry, "
                          "grouped = a group number per channel, the channels sorted by group "
                          "(Ceil(Log2 R) bits per entry for an order of R increasing runs; "
                          "both format 1.2); auto: compact when the layer uses 1.2 syntax "
                          "anyway")
    enc.add_argument("--pad-mode", choices=["replicate", "zero"], default=d.pad_mode)
    enc.add_argument("--channel-order", type=_order, metavar="I,J,...",
                     help="permutation: picture slot k carries channel I_k")
    enc.add_argument("--lossless", action="store_true", help="HEVC lossless coding")
    enc.add_argument("--layout", choices=["NCHW", "NHWC"], default=d.layout)
    enc.add_argument("--preset", default=d.preset, help="libx265 preset (default medium)")
    enc.add_argument("--x265-params", default="", metavar="NAME=VALUE:...",
                     help="libx265 options added to the encoder's (e.g. sao=0:rdoq-level=2)")
    enc.add_argument("--tune", choices=["seed", "fast", "efficient"],
                     help="the choosing encoder (Annex A.7): picks each layer's quantizer, "
                          "bit depth, clipping, flattening, packing, channel order and "
                          "libx265 settings "
                          "from the tensor, in place of those options (--qp, --layout and "
                          "--verify stay); seed is the paper's configuration")
    enc.add_argument("--target-bytes", type=_rate_target(int), metavar="N|LAYER=N,...",
                     help="rate control (Annex A.8): the QP is chosen so that the stream "
                          "(N) or each named layer's units (LAYER=N) take at most N bytes, "
                          "in place of --qp; exit 2 when even QP 51 gives more")
    enc.add_argument("--bits-per-element", type=_rate_target(float), metavar="B|LAYER=B,...",
                     help="rate control as --target-bytes, with B x elements / 8 bytes")
    enc.add_argument("--layer-id", help="layer id for a single tensor (default: file stem)")
    enc.add_argument("--verify", action="store_true",
                     help="decode the payload and check it against libx265's picture hashes")
    add_hevc_encoder_options(enc)
    enc.add_argument("-q", "--quiet", action="store_true")
    enc.set_defaults(func=cmd_encode)

    dec = sub.add_parser("decode", help="decode a .vfc stream: every layer, face embedding, "
                         "face image and texture it carries, to .npz (or .npy/.pt)")
    dec.add_argument("input")
    dec.add_argument("-o", "--output",
                     help=".npz (everything), .pt, or .npy (one array); arrays are named as "
                          "in conformance/README.md: LAYER_ID, embedding:FACE_ID, "
                          "image:FACE_ID, texture:FACE_ID; bfloat16 is widened to float32 "
                          "(exactly) in numpy files")
    dec.add_argument("--layer", action="append", help="decode only this layer (repeatable)")
    dec.add_argument("--pictures", metavar="DIR",
                     help="also write each layer's decoded pictures as PNG (16-bit PNG of "
                          "the sample values at 10 and 12 bits), a mosaic per layer and the "
                          "face textures, into DIR")
    dec.add_argument("--face", action="append",
                     help="decode only this face (repeatable; no layers unless --layer)")
    dec.add_argument("--no-images", action="store_true",
                     help="a base-layer decoder: the face embeddings only, no texture "
                          "decoded and no predictor needed (says what it did not check)")
    dec.add_argument("--image", metavar="OUT.png",
                     help="also write the face image (base + enhancement layer; needs the "
                          "stream's predictor) as PNG")
    add_limit_options(dec)
    dec.add_argument("-q", "--quiet", action="store_true")
    dec.set_defaults(func=cmd_decode)
