"""The ``refcodec`` command line: encode, decode, info, verify, conformance, eval.

Errors print one line on stderr and exit non-zero, without a traceback:
0 ok, 1 verification mismatch, 2 usage or bad input file, 3 bitstream error,
4 HEVC backend error.  Output files are written atomically (temporary file + rename), so a
failed run leaves none behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np

from . import FORMAT_VERSION, __version__
from .codec import EncoderConfig, decode, encode, read_headers
from .face.codec import decode_faces
from .enums import DTYPE_INFO, Embedder
from .metrics.rate import face_coded_bytes, layer_coded_bytes
from .errors import EncoderInputError, RefcodecError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_BITSTREAM, EXIT_BACKEND = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad command-line use or an unreadable input file (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other error
        raise UsageError(f"{self.prog}: {message}")


# ------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError(".pt files need torch: pip install 'refcodec[torch]'") from None
    return torch


def load_tensors(path: Path, layer_id: str | None) -> dict:
    """Read .npy / .npz / .pt into {layer_id: array or tensor}."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return {layer_id or path.stem: np.load(path, allow_pickle=False)}
        if suffix == ".npz":
            if layer_id:
                raise UsageError("--layer-id applies to .npy and single-tensor .pt input only; "
                                 ".npz arrays are named by their keys")
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        if suffix == ".pt":
            obj = _torch().load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                if layer_id:
                    raise UsageError("--layer-id applies to a single tensor; this .pt holds a dict")
                return dict(obj)
            return {layer_id or path.stem: obj}
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise UsageError(f"{path}: cannot read {suffix} file: {exc}") from None
    raise UsageError(f"{path}: input shall be .npy, .npz or .pt, got '{suffix or path.name}'")


@contextlib.contextmanager
def atomic_output(path: Path):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp",
                               dir=directory)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)       # mkstemp makes the file 0600: give it the usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_tensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".pt"):
        raise UsageError(f"{path}: output shall be .npy, .npz or .pt, got '{suffix or path.name}'")
    if suffix == ".npy" and len(tensors) != 1:
        raise UsageError(f"{path}: the stream has {len(tensors)} layers; write .npz or .pt, or "
                         f"pick one with --layer")
    torch = _torch() if suffix == ".pt" else None
    with atomic_output(path) as tmp:
        if suffix == ".pt":
            def to_torch(a):
                if a.dtype == ml_dtypes.bfloat16:
                    return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
                return torch.from_numpy(a)
            obj = {k: to_torch(v) for k, v in tensors.items()}
            torch.save(obj if len(obj) > 1 else next(iter(obj.values())), tmp)
            return
        # numpy files cannot hold bfloat16: it is widened to float32, which is exact.
        plain = {k: v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v
                 for k, v in tensors.items()}
        with open(tmp, "wb") as fh:
            if suffix == ".npy":
                np.save(fh, next(iter(plain.values())), allow_pickle=False)
            else:
                np.savez(fh, **plain)


def read_input(path: Path) -> bytes:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return path.read_bytes()


# ------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------

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


def cmd_encode(args) -> int:
    if Path(args.output).suffix.lower() != ".vfc":
        raise UsageError(f"{args.output}: output shall end in .vfc")
    tensors = load_tensors(Path(args.input), args.layer_id)
    if not tensors:
        raise UsageError(f"{args.input}: holds no tensor")
    config = EncoderConfig(qp=args.qp, quantizer=args.quantizer, bit_depth=args.bit_depth,
                           per_channel=args.per_channel, packing=args.packing,
                           tile_grid=args.tile_grid, pad_mode=args.pad_mode,
                           channel_order=args.channel_order, lossless=args.lossless,
                           layout=args.layout, preset=args.preset, verify=args.verify)
    out = Path(args.output)
    data = encode(tensors, config)
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    if not args.quiet:
        original = sum(np.asarray(t.shape).prod() * _itemsize(t) for t in tensors.values())
        print(f"{out}: {len(tensors)} layer(s), {len(data)} bytes, compression rate "
              f"{original / len(data):.2f}")
    return EXIT_OK


def _itemsize(t) -> int:
    return t.element_size() if hasattr(t, "element_size") else t.dtype.itemsize


def cmd_decode(args) -> int:
    data = read_input(Path(args.input))
    out = Path(args.output) if args.output else None
    image_out = Path(args.image) if args.image else None
    if out is None and image_out is None:
        raise UsageError("give -o OUTPUT (tensors and embeddings) and/or --image OUT.png")
    if out is not None and out.suffix.lower() not in (".npy", ".npz", ".pt"):
        raise UsageError(f"{out}: output shall be .npy, .npz or .pt, "
                         f"got '{out.suffix or out.name}'")
    if image_out is not None and image_out.suffix.lower() != ".png":
        raise UsageError(f"{image_out}: --image writes a .png file")
    stream = read_headers(data)
    face_ids = [f.base.face_id for f in stream.faces]
    if args.face and not face_ids:
        raise UsageError("the stream holds no face")
    try:
        tensors = decode(stream, layers=args.layer) if out is not None and (
            args.layer or not args.face) else {}
        wanted = args.face or (None if args.layer else face_ids)
        faces = decode_faces(stream, images=image_out is not None, faces=wanted) \
            if wanted else {}
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    arrays = dict(tensors)
    for fid, face in faces.items():
        arrays[f"embedding:{fid}"] = face.embedding
    for face in faces.values():
        for warning in face.warnings:
            print(f"refcodec: warning: {warning}", file=sys.stderr)
    if image_out is not None:
        coded = [f for f in faces.values() if f.image is not None]
        if len(faces) != 1:
            raise UsageError(f"the stream holds {len(faces)} faces; pick one with --face ID "
                             f"for --image" if faces else "the stream holds no face")
        if not coded:
            raise UsageError(f"face {next(iter(faces))!r} has no enhancement layer: only its "
                             f"embedding can be decoded")
        save_png(image_out, coded[0].image)
    if out is not None:
        if not arrays:
            raise UsageError("nothing to write: the stream holds no layer or face")
        if out.suffix.lower() == ".npy" and len(arrays) != 1:
            raise UsageError(f"{out}: the stream has {len(arrays)} layers and embeddings; "
                             f"write .npz or .pt, or pick one with --layer / --face")
        save_tensors(out, arrays)
    if not args.quiet:
        parts = [f"{k} {tuple(v.shape)} {v.dtype}" for k, v in arrays.items()]
        if image_out is not None:
            parts.append(f"face image {image_out}")
        print(f"{out or image_out}: " + ", ".join(parts))
    return EXIT_OK


def save_png(path: Path, image: np.ndarray) -> None:
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("--image needs Pillow: pip install 'refcodec[face]'") from None
    with atomic_output(path) as tmp:
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")


def load_image(path: Path, gray: bool = False) -> np.ndarray:
    """An image file (anything Pillow reads) as H x W x 3 RGB (or x 1 gray) uint8."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading images needs Pillow: pip install 'refcodec[face]'") from None
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise UsageError(f"{path}: cannot read the image: {exc}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def cmd_encode_face(args) -> int:
    from .face.codec import FaceConfig, FaceInput, face_from_image
    if Path(args.output).suffix.lower() != ".vfc":
        raise UsageError(f"{args.output}: output shall end in .vfc")
    cfg = FaceConfig(face_id=args.face_id, embedding_step=args.embedding_step,
                     enhancement=args.enhancement, predictor=args.predictor, qp=args.qp,
                     quality=args.quality, rate=args.rate, preset=args.preset)
    tensors = load_tensors(Path(args.features), None) if args.features else None
    image = load_image(Path(args.input))
    try:
        from .face import models
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


def stream_info(data: bytes) -> dict:
    """Every header field of a stream, its sizes and compression rates (``info --json``)."""
    stream = read_headers(data)
    h = stream.header
    layers = []
    for layer in stream.layers:
        lh = layer.header
        original = lh.num_elements * DTYPE_INFO[lh.source_dtype].itemsize
        layer_bytes = layer_coded_bytes(stream, layer)
        entry = {
            "layer_id": lh.layer_id,
            "source_layout": lh.source_layout.name,
            "source_dtype": lh.source_dtype.name.lower(),
            "batch_size": lh.batch_size, "num_channels": lh.num_channels,
            "height": lh.height, "width": lh.width, "shape": list(lh.shape),
            "sample_bit_depth": lh.sample_bit_depth,
            "quantizer_type": lh.quantizer_type.name.lower(),
            "per_channel_quant_flag": int(lh.per_channel_quant_flag),
            "channel_permutation_flag": int(lh.channel_permutation is not None),
            "quant_params": [{k: v for k, v in vars(p).items() if v is not None}
                             for p in lh.quant_params],
            "channel_permutation": list(lh.channel_permutation)
            if lh.channel_permutation is not None else None,
            "packing_type": lh.packing_type.name.lower(),
            "tile_rows": lh.tile_rows, "tile_cols": lh.tile_cols,
            "pad_mode": lh.pad_mode.name.lower(),
            "pad_bottom": lh.pad_bottom, "pad_right": lh.pad_right,
            "payload_codec": lh.payload_codec.name.lower(),
            "picture_width": lh.picture_width, "picture_height": lh.picture_height,
            "num_pictures": lh.num_pictures,
            "sample_md5": layer.sample_md5.hex(),
            "len_hevc_payload": len(layer.hevc_payload),
            "layer_bytes": layer_bytes,
            "original_bytes": original,
            "compression_rate": original / layer_bytes,
            "bits_per_element": 8 * layer_bytes / lh.num_elements,
            "offset": layer.header_offset,
        }
        layers.append(entry)
    original = sum(e["original_bytes"] for e in layers)
    faces = [face_info(f) for f in stream.faces]
    face_bytes = sum(f["base_bytes"] + (f["enhancement"]["enhancement_bytes"]
                                        if f["enhancement"] else 0) for f in faces)
    return {
        "format_version": f"{h.version_major}.{h.version_minor}",
        "version_major": h.version_major, "version_minor": h.version_minor,
        "profile_idc": h.profile_idc, "level_idc": h.level_idc, "num_layers": h.num_layers,
        "stream_bytes": len(data), "original_bytes": original,
        "face_bytes": face_bytes,
        # of the feature layers: the face units are not part of the coded tensors
        "compression_rate": original / (len(data) - face_bytes) if original else None,
        "skipped_units": [vars(u) for u in stream.skipped_units],
        "layers": layers,
        "faces": faces,
    }


def face_info(face) -> dict:
    """The fields of a face's units (``info --json``)."""
    b, e = face.base, face.enhancement
    base_bytes, enhancement_bytes = face_coded_bytes(face)
    entry = {
        "face_id": b.face_id, "embedder_idc": int(b.embedder_idc),
        "embedder": b.embedder_idc.name.lower(), "embedding_dim": b.embedding_dim,
        "embedding_step": b.embedding_step, "eg_order": b.eg_order,
        "base_bytes": base_bytes,
        "offset": b.offset, "enhancement": None,
    }
    if e is not None:
        entry["enhancement"] = {
            "image_height": e.image_height, "image_width": e.image_width,
            "image_channels": e.image_channels,
            "predictor_type": e.predictor_type.name.lower(),
            "predictor_id": e.predictor_id,
            "predictor_sha256": e.predictor_sha256.hex() if e.predictor_sha256 else None,
            "residual_min": e.residual_min, "residual_max": e.residual_max,
            "texture_codec": e.texture_codec.name.lower(), "texture_md5": e.texture_md5.hex(),
            "len_texture_payload": len(e.texture_payload),
            "enhancement_bytes": enhancement_bytes,
            "offset": e.offset,
        }
    return entry


def cmd_info(args) -> int:
    info = stream_info(read_input(Path(args.input)))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    rate = (f", compression rate {info['compression_rate']:.2f}"
            if info["compression_rate"] is not None else "")
    faces = f", {len(info['faces'])} face(s)" if info["faces"] else ""
    print(f"{args.input}: VFC {info['format_version']}, profile {info['profile_idc']}, level "
          f"{info['level_idc']}, {info['num_layers']} layer(s){faces}, {info['stream_bytes']} "
          f"bytes{rate}")
    for e in info["layers"]:
        params = e["quant_params"]
        shown = ", ".join(f"{k}={v!r}" for k, v in params[0].items())
        if len(params) > 1:
            shown = f"{len(params)} per-channel sets, first: {shown}"
        print(f"  layer {e['layer_id']!r}: {e['source_dtype']} {e['source_layout']} "
              f"{tuple(e['shape'])}, {e['quantizer_type']} quantizer ({shown}), "
              f"{e['sample_bit_depth']}-bit")
        grid = (f"{e['tile_rows']}x{e['tile_cols']} tiles" if e["packing_type"] == "tiled"
                else "one channel per picture")
        order = ("permuted channel order" if e["channel_permutation"] is not None
                 else "identity channel order")
        print(f"    {e['num_pictures']} pictures of {e['picture_width']}x{e['picture_height']} "
              f"({grid}, padding +{e['pad_bottom']} rows +{e['pad_right']} columns by "
              f"{e['pad_mode']}, {order})")
        print(f"    {e['layer_bytes']} bytes (HEVC {e['len_hevc_payload']}), compression rate "
              f"{e['compression_rate']:.2f}, {e['bits_per_element']:.3f} bits/element, "
              f"sample_md5 {e['sample_md5']}")
    for f in info["faces"]:
        print(f"  face {f['face_id']!r}: {f['embedding_dim']}-d embedding of "
              f"{f['embedder']}, step {f['embedding_step']!r}, Exp-Golomb order "
              f"{f['eg_order']}, base layer {f['base_bytes']} bytes")
        e = f["enhancement"]
        if e is None:
            print("    no enhancement layer")
            continue
        print(f"    enhancement: {e['image_width']}x{e['image_height']}x{e['image_channels']} "
              f"image, predictor {e['predictor_id'] or 'none'}, residual "
              f"{e['residual_min']}..{e['residual_max']}, {e['texture_codec']} texture, "
              f"{e['enhancement_bytes']} bytes")
    for u in info["skipped_units"]:
        print(f"  skipped unit type {u['unit_type']} at byte {u['offset']} ({u['length']} bytes)")
    return EXIT_OK


def cmd_verify(args) -> int:
    from .verify import verify
    report = verify(read_input(Path(args.input)), source=args.input, decode=not args.no_decode)
    print(report.to_json() if args.json else report.to_text())
    return report.exit_code


# ------------------------------------------------------------------------------------
# refcodec conformance
# ------------------------------------------------------------------------------------

#: Options of ``conformance generate --tensors``: the columns of the features table.
_SETTINGS = (("--name", "name"), ("--purpose", "purpose"), ("--qp", "qp"),
             ("--quantizer", "quantizer"), ("--bit-depth", "bit_depth"),
             ("--packing", "packing"), ("--tile-grid", "tile_grid"),
             ("--pad-mode", "pad_mode"), ("--channel-order", "channel_order"),
             ("--layout", "layout"), ("--preset", "preset"), ("--extra-unit", "extra_unit"))
_SETTING_FLAGS = (("--per-channel", "per_channel"), ("--lossless", "lossless"),
                  ("--future-minor", "future_minor"))


def _generate_command(args) -> str:
    """The generate command line, rebuilt from the options (recorded in the manifest)."""
    import shlex
    argv = ["refcodec", "conformance", "generate"]
    if args.features:
        argv.append(args.features)
    argv += ["-o", args.output]
    if args.tensors:
        argv += ["--tensors", args.tensors]
        for flag, column in _SETTINGS:
            if getattr(args, column) is not None:
                argv += [flag, str(getattr(args, column))]
        argv += [flag for flag, column in _SETTING_FLAGS if getattr(args, column)]
    if args.invalid:
        argv += ["--invalid", args.invalid]
    if args.no_invalid:
        argv.append("--no-invalid")
    if args.suite_name != "vfc-conformance":
        argv += ["--suite-name", args.suite_name]
    return shlex.join(argv)


def cmd_conformance_generate(args) -> int:
    from . import conformance as conf
    if bool(args.features) == bool(args.tensors):
        raise UsageError("give either a features table or --tensors FILE")
    if args.invalid and args.no_invalid:
        raise UsageError("--invalid and --no-invalid exclude each other")
    given = [flag for flag, column in _SETTINGS + _SETTING_FLAGS
             if getattr(args, column) not in (None, False) and column != "purpose"]
    if args.features and given:
        raise UsageError(f"{given[0]} applies to --tensors only; a features table gives the "
                         f"settings of each stream in its columns")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: not a directory")
    try:
        if args.tensors:
            tensors = load_tensors(Path(args.tensors), None)
            if not tensors:
                raise UsageError(f"{args.tensors}: holds no tensor")
            row = {column: str(getattr(args, column)) for _, column in _SETTINGS
                   if getattr(args, column) is not None}
            row.update({column: "1" for _, column in _SETTING_FLAGS if getattr(args, column)})
            row.setdefault("name", Path(args.tensors).stem)
            row.update(batch="0", channels="0", height="0", width="0",
                       layers=str(len(tensors)), data=f"file:{Path(args.tensors).name}")
            features = [conf.parse_features(row, "--tensors")]
        else:
            tensors = None
            features = conf.read_features(Path(args.features))
        invalid = ([] if args.no_invalid else
                   conf.read_invalid(Path(args.invalid)) if args.invalid else None)
        out.mkdir(parents=True, exist_ok=True)
        conf.generate(out, features, invalid=invalid, tensors=tensors, force=args.force,
                      command=_generate_command(args), suite_name=args.suite_name,
                      log=None if args.quiet else print)
    except conf.SuiteError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_conformance_run(args) -> int:
    from . import conformance as conf
    if args.jobs < 1 or args.timeout <= 0:
        raise UsageError("--jobs shall be at least 1 and --timeout positive")
    try:
        decoder, has_output, has_planes = conf.command_decoder(args.decoder, args.timeout)
        if args.planes and not has_planes:
            raise UsageError("--planes needs a {planes} placeholder in --decoder")
        if not args.planes and not has_output:
            raise UsageError("--decoder has no {output} placeholder (a decoder that writes "
                             "only planes runs with --planes)")
        results = conf.run_suite(Path(args.suite), decoder, outputs=has_output,
                                 planes=has_planes, streams=args.streams or (), jobs=args.jobs)
    except conf.SuiteError as exc:
        raise UsageError(str(exc)) from None
    results["decoder"] = args.decoder
    print(conf.format_results(results, args.decoder))
    if args.json:
        with atomic_output(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return EXIT_OK if results["summary"]["failed"] == 0 else EXIT_MISMATCH


def cmd_conformance_planes(args) -> int:
    from . import conformance as conf
    out = Path(args.output)
    if out.suffix.lower() != ".npz":
        raise UsageError(f"{out}: output shall be .npz (one array of pictures per layer)")
    planes = conf.decode_planes(read_input(Path(args.input)))
    with atomic_output(out) as tmp:
        conf.write_npz(tmp, planes, compress=False)
    if not args.quiet:
        print(f"{out}: " + ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in planes.items()))
    return EXIT_OK


def cmd_conformance_alterations(args) -> int:
    from . import conformance as conf
    for alt in conf.ALTERATIONS.values():
        needs = f" [needs {alt.requires}]" if alt.requires else ""
        print(f"{alt.kind:30} {alt.target:7} {alt.purpose}{needs}")
    return EXIT_OK


def _add_conformance(sub) -> None:
    conf = sub.add_parser("conformance", help="generate conformance streams, run a decoder "
                          "over them, write decoded planes")
    csub = conf.add_subparsers(dest="conformance_command", required=True, parser_class=_Parser)

    gen = csub.add_parser("generate", help="code the streams of a codec-features table (or "
                          "of --tensors) with references, manifest.json and index.md")
    gen.add_argument("features", nargs="?", help="codec-features table (CSV, one row per "
                     "stream; see conformance/README.md)")
    gen.add_argument("-o", "--output", required=True, help="output directory")
    gen.add_argument("--invalid", metavar="CSV", help="invalid-streams table (default: one "
                     "stream per built-in alteration)")
    gen.add_argument("--no-invalid", action="store_true", help="write no invalid streams")
    gen.add_argument("--force", action="store_true", help="replace an existing manifest")
    gen.add_argument("--suite-name", default="vfc-conformance")
    gen.add_argument("--tensors", metavar="FILE", help=".npy/.npz/.pt tensors to code, with "
                     "the settings below, instead of a features table")
    settings = gen.add_argument_group("settings for --tensors (columns of the features table)")
    for flag, column in _SETTINGS:
        settings.add_argument(flag, dest=column, type=int if column in ("qp", "bit_depth")
                              else str)
    for flag, column in _SETTING_FLAGS:
        settings.add_argument(flag, dest=column, action="store_true")
    gen.add_argument("-q", "--quiet", action="store_true")
    gen.set_defaults(func=cmd_conformance_generate)

    run = csub.add_parser("run", help="run a decoder command over a conformance suite; exit 0 "
                          "when every stream passes, 1 otherwise")
    run.add_argument("--decoder", required=True, metavar="CMD",
                     help="command line with {input}, {output} (tensors, .npz) and/or "
                          "{planes} (decoded pictures, .npz); run without a shell")
    run.add_argument("--suite", default="conformance/manifest.json", metavar="MANIFEST")
    run.add_argument("--json", metavar="FILE", help="write the results as JSON")
    run.add_argument("--planes", action="store_true",
                     help="tier-1 decoder: check the {planes} output; {output} is optional")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds per stream")
    run.add_argument("-j", "--jobs", type=int, default=1, help="streams decoded in parallel")
    run.add_argument("--streams", action="append", metavar="PATTERN",
                     help="only the streams whose name matches (fnmatch; repeatable)")
    run.set_defaults(func=cmd_conformance_run)

    planes = csub.add_parser("planes", help="decode a stream's HEVC pictures (after every "
                             "check) to .npz, one (P, H, W) array per layer")
    planes.add_argument("input")
    planes.add_argument("-o", "--output", required=True, help=".npz file")
    planes.add_argument("-q", "--quiet", action="store_true")
    planes.set_defaults(func=cmd_conformance_planes)

    alts = csub.add_parser("alterations", help="list the alterations an invalid-streams "
                           "table can name, with the clause each targets")
    alts.set_defaults(func=cmd_conformance_alterations)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="refcodec", description="VFC feature codec reference software "
                     f"(format {FORMAT_VERSION})")
    parser.add_argument("--version", action="version",
                        version=f"refcodec {__version__} (VFC format {FORMAT_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    enc = sub.add_parser("encode", help="encode .npy/.npz/.pt tensors into a .vfc stream")
    enc.add_argument("input", help=".npy (one tensor), .npz (one layer per array) or .pt")
    enc.add_argument("-o", "--output", required=True, help="output .vfc file")
    d = EncoderConfig()
    enc.add_argument("--qp", type=int, default=d.qp, help="HEVC slice QP 0..51 (default 22)")
    enc.add_argument("--quantizer", choices=["log", "uniform", "integer"], default=d.quantizer)
    enc.add_argument("--bit-depth", type=int, choices=[8, 10, 12], default=d.bit_depth)
    enc.add_argument("--per-channel", action="store_true",
                     help="one quantizer parameter set per channel")
    enc.add_argument("--packing", choices=["auto", "channel", "tiled"], default=d.packing)
    enc.add_argument("--tile-grid", type=_grid, metavar="ROWSxCOLS",
                     help="tile grid for --packing tiled")
    enc.add_argument("--pad-mode", choices=["replicate", "zero"], default=d.pad_mode)
    enc.add_argument("--channel-order", type=_order, metavar="I,J,...",
                     help="permutation: picture slot k carries channel I_k")
    enc.add_argument("--lossless", action="store_true", help="HEVC lossless coding")
    enc.add_argument("--layout", choices=["NCHW", "NHWC"], default=d.layout)
    enc.add_argument("--preset", default=d.preset, help="libx265 preset (default medium)")
    enc.add_argument("--layer-id", help="layer id for a single tensor (default: file stem)")
    enc.add_argument("--verify", action="store_true",
                     help="decode the payload and check it against libx265's picture hashes")
    enc.add_argument("-q", "--quiet", action="store_true")
    enc.set_defaults(func=cmd_encode)

    dec = sub.add_parser("decode", help="decode a .vfc stream to .npy/.npz/.pt (tensors and "
                         "face embeddings) and optionally a face image")
    dec.add_argument("input")
    dec.add_argument("-o", "--output",
                     help=".npy (one layer or embedding), .npz or .pt; face embeddings are "
                          "named embedding:FACE_ID; bfloat16 is widened to float32 (exactly) "
                          "in numpy files")
    dec.add_argument("--layer", action="append", help="decode only this layer (repeatable)")
    dec.add_argument("--face", action="append",
                     help="decode only this face (repeatable; no layers unless --layer)")
    dec.add_argument("--image", metavar="OUT.png",
                     help="also reconstruct the face image (base + enhancement layer; needs "
                          "the stream's predictor) and write it as PNG")
    dec.add_argument("-q", "--quiet", action="store_true")
    dec.set_defaults(func=cmd_decode)

    from .face.codec import FaceConfig
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

    inf = sub.add_parser("info", help="print every header field, sizes and compression rate")
    inf.add_argument("input")
    inf.add_argument("--json", action="store_true", help="machine-readable output")
    inf.set_defaults(func=cmd_info)

    ver = sub.add_parser("verify", help="check a stream against every requirement of the spec; "
                         "exit 0 conformant, 1 not conformant, 3 unreadable")
    ver.add_argument("input")
    ver.add_argument("--json", action="store_true", help="machine-readable report")
    ver.add_argument("--no-decode", action="store_true",
                     help="check the HEVC parameter sets but do not decode the payloads")
    ver.set_defaults(func=cmd_verify)

    from . import eval_cli     # registers `eval`; torch is imported only when it runs
    eval_cli.register(sub)

    _add_conformance(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EncoderInputError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RefcodecError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"refcodec: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("refcodec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
