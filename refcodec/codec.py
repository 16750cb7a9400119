"""Streams of feature layers and faces: the encoder's assembly and the decoder's entry
points (clauses 8, 9 and 13).

A stream carries two kinds of unit: feature layers (refcodec.layer) and faces
(refcodec.face.codec).  This module sits above both: it codes each unit with its own
module, chooses the level that every unit fits, and builds the container; it reads the
container and decodes the layers.  Import direction: ids <- layer, face.codec <- codec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import bitstream
from .enums import LEVELS, Level, Profile
from .errors import EncoderInputError
from .face.codec import FaceConfig, FaceInput, decode_faces, encode_face
from .ids import check_id, face_output_keys, output_keys, selected_names
from .layer import (  # noqa: F401 - the layer pipeline's names, as refcodec.codec gave them
    MIN_PICTURE_SIDE, NUMPY_DTYPES, EncoderConfig, decode_layer, decode_pictures,
    decode_samples, encode_layer, payload_violations, planes_md5, rebase, reconstruct,
    sample_md5, sample_md5_violation)
from .records import (LayerHeader, Stream, StreamHeader, embedding_bytes, face_image_bytes,
                      version_minor_of)
from .syntax import FACE_VERSION_MINOR, VERSION_MAJOR


def _layers_of(tensors) -> list[tuple[str, object]]:
    if isinstance(tensors, Mapping):
        items = list(tensors.items())
    elif isinstance(tensors, (list, tuple)) and tensors and all(
            isinstance(t, tuple) and len(t) == 2 for t in tensors):
        items = list(tensors)
    else:
        items = [("layer0", tensors)]
    if not items:
        raise EncoderInputError("no tensor to encode")
    for name, _ in items:
        check_id(name, "layer id")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise EncoderInputError("layer ids shall be unique")
    return items


def _face_fits(face, level: Level) -> bool:
    b, e = face.base, face.enhancement
    if b.embedding_dim > level.max_embedding_dim:
        return False
    if e is None:
        return True
    ph, pw = -(-e.image_height // 8) * 8, -(-e.image_width // 8) * 8
    return (max(ph, pw) <= level.max_picture_size and ph * pw <= level.max_picture_samples
            and len(e.texture_payload) + 1024 <= level.max_unit_payload)


def choose_level(headers: list[LayerHeader], payload_sizes: list[int], faces=()) -> Level:
    """The lowest level whose limits every layer and face satisfies; ``payload_sizes`` are
    the lengths of the layers' hevc_payloads."""
    decoded = sum(h.output_bytes for h in headers) + sum(
        embedding_bytes(f.base.embedding_dim)
        + (0 if f.enhancement is None else face_image_bytes(*f.enhancement.image_shape))
        for f in faces)
    units = 2 * len(headers) + len(faces) + sum(f.enhancement is not None for f in faces) + 1
    values = sum(f.base.embedding_dim for f in faces)
    for level in LEVELS.values():
        if len(faces) > level.max_faces or not all(_face_fits(f, level) for f in faces):
            continue
        if (decoded > level.max_decoded_bytes or units > level.max_units
                or values > level.max_embedding_values):      # the stream totals (1.2)
            continue
        if len(headers) <= level.max_layers and all(
                16 + size <= level.max_unit_payload for size in payload_sizes) and all(
                level.layer_excess(h.num_elements, h.num_channels, h.picture_width,
                                   h.picture_height, h.num_pictures) is None
                for h in headers):
            return level
    raise EncoderInputError("the tensors or faces exceed the limits of every level (clause "
                            "11.2): split them into smaller layers or streams")


def encode(tensors, config: EncoderConfig | Mapping[str, EncoderConfig] | None = None, *,
           faces: Sequence = (), backend=None, tune: str | None = None,
           target_bytes=None, bits_per_element=None, report: list | None = None) -> bytes:
    """Encode one tensor or several named tensors, and optionally faces, into a VFC
    bitstream.

    ``tensors``: an N x C x H x W (or N x H x W x C with layout "NHWC") numpy array or torch
    tensor of float32/float16/bfloat16, or a mapping / list of (layer_id, tensor) pairs;
    None (or empty) for a stream of faces only.
    ``config``: one EncoderConfig for every layer, or a mapping from layer id to config.
    ``faces``: (FaceInput, FaceConfig) pairs (``refcodec.face``), coded as face_base and
    face_enhancement units (format 1.1); the stream is version 1.0 without them.
    ``tune``: "seed", "fast" or "efficient": the choosing encoder (refcodec.tune, Annex
    A.7) picks each layer's coding from the tensor; the config gives the QP, layout and
    verify flag.  ``target_bytes`` / ``bits_per_element``: rate control (Annex A.8), the
    QP chosen so that the stream (a number) or each named layer (a mapping from layer id
    to number) fits.  ``report``: a list that receives one refcodec.tune.LayerReport per
    layer (choice, QP, bytes, encodes spent) when tune or a target is given.
    """
    from .hevc import default_backend
    backend = backend or default_backend()
    face_records = []
    for i, item in enumerate(faces):
        face, fcfg = item if isinstance(item, tuple) else (item, None)
        if not isinstance(face, FaceInput) or not isinstance(fcfg, (FaceConfig, type(None))):
            raise EncoderInputError("faces shall be (FaceInput, FaceConfig) pairs")
        face_records.append(encode_face(face, fcfg, index=i, backend=backend))
    face_ids = [f.base.face_id for f in face_records]
    if len(set(face_ids)) != len(face_ids):
        raise EncoderInputError("face ids shall be unique: give each FaceConfig its face_id")
    no_tensors = tensors is None or (isinstance(tensors, (Mapping, list, tuple))
                                     and not len(tensors))
    if no_tensors and not face_records:
        raise EncoderInputError("nothing to encode: no tensor and no face")
    items = [] if no_tensors else _layers_of(tensors)
    if not (config is None or isinstance(config, EncoderConfig) or (
            isinstance(config, Mapping) and all(isinstance(c, EncoderConfig)
                                                for c in config.values()))):
        raise EncoderInputError(f"config shall be an EncoderConfig, a mapping from layer id to "
                                f"EncoderConfig, or None; got {type(config).__name__}")
    top = LEVELS[max(LEVELS)]
    total = sum(int(np.prod(getattr(t, "shape", ()) or (0,))) * getattr(
        getattr(t, "dtype", None), "itemsize", 4) for _, t in items)
    if total > top.max_decoded_bytes:     # before any layer is coded (clause 11.2)
        raise EncoderInputError(f"the tensors hold {total} bytes, more than the "
                                f"{top.max_decoded_bytes} a stream of level {top.level_idc}, "
                                f"the highest, may decode to (clause 11.2): split them into "
                                f"several streams")
    coded = []
    if tune is not None or target_bytes is not None or bits_per_element is not None:
        from . import tune as tuning

        def stream_bytes(layers):        # the level does not change the stream's size
            return len(bitstream.build_stream(StreamHeader(
                VERSION_MAJOR, FACE_VERSION_MINOR if face_records else 0, int(Profile.MAIN),
                min(LEVELS), len(layers)), layers, faces=face_records))
        coded, reports = tuning.encode_layers(
            items, config, backend, tune=tune, target_bytes=target_bytes,
            bits_per_element=bits_per_element, stream_bytes=stream_bytes)
        if report is not None:
            report.extend(reports)
    for name, tensor in items if not coded else ():
        cfg = config.get(name, EncoderConfig()) if isinstance(config, Mapping) \
            else (config or EncoderConfig())
        coded.append(encode_layer(name, tensor, cfg, backend))
    headers = [header for header, _, _ in coded]
    level = choose_level(headers, [len(payload) for _, _, payload in coded], face_records)
    stream_header = StreamHeader(VERSION_MAJOR, version_minor_of(headers, bool(face_records)),
                                 int(Profile.MAIN), level.level_idc, len(coded))
    return bitstream.build_stream(stream_header, coded, faces=face_records)


def _names(names, what: str):
    """``layers=`` / ``faces=`` of the decoder: None, a sequence of names, or one name as a
    str (``layers="conv3"`` is ``layers=["conv3"]``, not the letters of the name)."""
    if names is None or isinstance(names, str):
        return names if names is None else [names]
    if isinstance(names, (bytes, Mapping)) or not isinstance(names, (Sequence, set,
                                                                     frozenset)):
        raise ValueError(
            f"{what} shall be a name, a sequence of names or None, got "
            f"{type(names).__name__}")
    return list(names)


def read_headers(data: bytes, *, limits: Level | None = None) -> Stream:
    """Parse and check the container without decoding any HEVC payload."""
    return bitstream.parse_stream(data, limits=limits)


def decode(data: bytes | Stream, *, layers: Sequence[str] | None = None, backend=None,
           limits: Level | None = None) -> dict[str, np.ndarray]:
    """Decode a VFC bitstream (or a stream read_headers gave) to {layer_id: tensor} in
    stream order.

    ``layers`` restricts decoding to the named layers (the others' payloads are not
    decoded; a str is one name: ``layers="conv3"`` is ``layers=["conv3"]``); naming a layer
    the stream lacks raises KeyError.
    """
    stream = data if isinstance(data, Stream) else read_headers(data, limits=limits)
    wanted = selected_names(_names(layers, "layers"),
                            [layer.header.layer_id for layer in stream.layers], "layer")
    out = {}
    for layer in stream.layers:
        if wanted is not None and layer.header.layer_id not in wanted:
            continue
        out[layer.header.layer_id] = decode_layer(layer, backend)
    return out


def output_names(stream: Stream, layers: Sequence[str] | None = None,
                 faces: Sequence[str] | None = None, images: bool = True):
    """(layer ids, faces, array names) that decode_all(stream, layers=, faces=, images=)
    outputs, from the headers alone; KeyError for a name the stream lacks,
    ids.OutputKeyCollision when two array names coincide."""
    layer_ids = [layer.header.layer_id for layer in stream.layers]
    wanted_layers = selected_names(_names(layers, "layers"), layer_ids, "layer")
    wanted_faces = selected_names(_names(faces, "faces"),
                                  [f.base.face_id for f in stream.faces], "face")
    chosen_layers = [n for n in layer_ids if wanted_layers is None or n in wanted_layers]
    chosen_faces = [f for f in stream.faces
                    if wanted_faces is None or f.base.face_id in wanted_faces]
    names = output_keys(chosen_layers, [(f.base.face_id, images and f.enhancement is not None)
                                        for f in chosen_faces])
    return chosen_layers, chosen_faces, names


def decode_all(data: bytes | Stream, *, layers: Sequence[str] | None = None,
               faces: Sequence[str] | None = None, images: bool = True, backend=None,
               limits: Level | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Everything a stream carries, as a complete decoder outputs it: ({name: array},
    warnings).  Names: each layer's layer_id (the tensor in its source dtype and layout);
    per face ``embedding:<face_id>`` (float32) and, when the face has an enhancement layer
    and ``images``, ``image:<face_id>`` and ``texture:<face_id>`` (uint8 H x W x C, the
    face image and the decoded texture; conformance/README.md).

    ``layers`` / ``faces`` select what is decoded (None: everything; a str is one name;
    naming something the stream lacks raises KeyError); ``images=False`` decodes the base
    layers of the faces only (no texture decoded, no predictor needed).  The names are
    checked before anything is decoded (ids.OutputKeyCollision when a layer_id is also a
    face's output name); every check of the decoder runs, and the first violation is raised.
    """
    stream = data if isinstance(data, Stream) else read_headers(data, limits=limits)
    chosen_layers, chosen_faces, _ = output_names(stream, layers, faces, images)
    arrays = decode(stream, layers=chosen_layers, backend=backend) if chosen_layers else {}
    decoded = decode_faces(stream, images=images, faces=[f.base.face_id for f in chosen_faces],
                           backend=backend)
    warnings = []
    for face in chosen_faces:
        out = decoded[face.base.face_id]
        emb_key, image_key, texture_key = face_output_keys(face.base.face_id)
        arrays[emb_key] = out.embedding
        if out.image is not None:
            arrays[image_key] = out.image
            arrays[texture_key] = out.texture
        warnings += out.warnings
    return arrays, warnings
