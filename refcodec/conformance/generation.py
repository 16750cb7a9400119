"""Generation of a suite: ``generate`` codes the valid streams of a features table
(``_code_valid``: encode, check, reference outputs, manifest entry), makes the invalid ones
(``_code_invalid``: an alteration, checked against the reference decoder and verify) and
writes streams/, reference/, manifest.json and index.md.

The manifest fields of each stream are written here (``_code_valid``, ``_face_entry``,
``_code_invalid``, the notes in ``generate``); ``exercised_clauses`` gives the clauses of a
valid stream.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import FORMAT_VERSION, __version__, bitstream
from ..codec import decode, decode_samples, encode, output_names, read_headers, reconstruct
from ..enums import (LEVELS, PackingType, ParamFormat, PredictorType, QuantizerType, SourceDtype,
                     SourceLayout, UnitType)
from ..errors import RefcodecError
from ..ids import OutputKeyCollision
from ..layer import check_size
from ..face import texture as face_texture
from ..hevc import edit as hevc_edit
from ..records import Stream
from ..syntax import VERSION_MINOR
from ..verify import verify
from .alterations import ALTERATIONS
from .checksums import planes_md5_hex, tensor_bits, tensor_sha256
from .errors import SuiteError
from .features import Features
from .files import atomic_write, write_npz
from .index import describe_face, describe_layer, render_index
from .invalid import InvalidRow, default_invalid_rows
from .manifest import SCHEMA_VERSION, face_keys
from .reference_decoder import decode_outputs, reference_refusal
from .requirements import clause_of, requirement_ids, spec_dir
from .synthetic_data import feature_faces, feature_tensors
from .tolerances import image_tolerance, log_reference_is_correctly_rounded, tolerance
from .units import _change_layer0, _is_lossless, _put, _recrc, _rehead, _unit_of, _units


DEFAULT_SUITE_NAME = "vfc-conformance"

SKIPPABLE_UNITS = ((0, b""), (128, b"VFC conformance: a skippable unit of an unknown type"),
                   (254, bytes(range(64))))


def _with_skippable_units(data: bytes) -> bytes:
    """Skippable units of unknown types after stream_header(), between the first
    layer_header and layer_data units, and before end_of_stream (clause 8.2.1)."""
    units = [bitstream.build_unit(t, p, skippable=True) for t, p in SKIPPABLE_UNITS]
    h = _unit_of(data, UnitType.LAYER_HEADER)
    eos = _unit_of(data, UnitType.END_OF_STREAM)
    return (data[:20] + units[0] + data[20:h.end] + units[1] + data[h.end:eos.pos] + units[2]
            + data[eos.pos:])


def _recode_layer0(data: bytes, f: Features, edit: Callable,
                   fields: Callable = lambda h: {}) -> bytes:
    """The stream with its first layer's decoded pictures changed by ``edit`` and coded again
    (the row's qp, lossless and preset), its header fields changed by ``fields(header)``."""
    from ..hevc.pyav import PyAVBackend
    from ..layer import sample_md5
    s = read_headers(data)
    h = s.layers[0].header
    pictures = np.ascontiguousarray(edit(decode_samples(s.layers[0]), h))
    payload, hashes = PyAVBackend().encode_pictures(pictures, h.sample_bit_depth, f.qp,
                                                    f.lossless, f.preset)
    return _change_layer0(s, payload=payload, md5=sample_md5(hashes), **fields(h))


def _checkerboard_unused_tiles(pictures: np.ndarray, h) -> np.ndarray:
    top = (1 << h.sample_bit_depth) - 1
    th, tw, cols = h.layout.tile_height, h.layout.tile_width, h.layout.tile_cols
    used = h.num_slots - (h.num_pictures - 1) * h.tiles_per_picture
    if used == h.tiles_per_picture:
        raise SuiteError("stream_edit unused_tiles_nonzero: the last picture has no unused "
                         "tile")
    board = (np.indices((th, tw)).sum(axis=0) % 2 * top).astype(pictures.dtype)
    for t in range(used, h.tiles_per_picture):
        r, c = divmod(t, cols)
        pictures[-1, r * th:(r + 1) * th, c * tw:(c + 1) * tw] = board
    return pictures


def _sparse_groups(data: bytes) -> bytes:
    """Layer 0's grouped permutation rewritten with group_bits 8 and its R groups numbered
    far apart, group g as 250 - 37 (R - 1 - g) (139, 176, 213, 250 for four groups): the
    numbers increase with the group, so the order and the pictures stay the same, and a
    decoder has to sort by the numbers whatever their width and gaps."""
    s = read_headers(data)
    h = s.layers[0].header
    runs = max(h.channel_groups) + 1
    if runs * 37 > 250:
        raise SuiteError("stream_edit sparse_groups: more than 6 groups")
    spread = tuple(250 - 37 * (runs - 1 - g) for g in h.channel_groups)
    return _change_layer0(s, group_bits=8, channel_groups=spread)


def _stream_edit(data: bytes, kind: str, f: Features) -> bytes:
    """The stream edited after coding (Features.stream_edit)."""
    if kind == "extra_padding":
        return _recode_layer0(data, f, lambda p, h: np.pad(p, ((0, 0), (0, 8), (0, 8)),
                                                           mode="edge"),
                              lambda h: dict(pad_bottom=h.pad_bottom + 8,
                                             pad_right=h.pad_right + 8))
    if kind == "unused_tiles_nonzero":
        return _recode_layer0(data, f, _checkerboard_unused_tiles)
    if kind == "sparse_groups":
        return _sparse_groups(data)
    if kind == "faces_in_1_0":
        return _rehead(_put(data, 9, b"\x00"))
    units = _units(data)
    faces = [u for u in units if u.unit_type in (UnitType.FACE_BASE, UnitType.FACE_ENHANCEMENT)]
    others = [u for u in units if u not in faces]
    at = 0 if kind == "faces_first" else 2      # before layer 0, or after its layer_data
    order = others[:at] + faces + others[at:]
    return data[:20] + b"".join(data[u.pos:u.end] for u in order) + data[units[-1].end:]


def _future_minor(data: bytes) -> bytes:
    """version_minor one more than the current (VERSION_MINOR + 1) with every reserved field
    nonzero: a decoder of the current version decodes it and ignores the reserved fields
    (clause 8.1.2)."""
    data = _rehead(_put(_put(data, 9, bytes([VERSION_MINOR + 1])), 14, b"\xa5\x5a"))
    stream = read_headers(data)
    for unit in _units(data):
        data = _put(data, unit.pos + 1, bytes([data[unit.pos + 1] | 0x55]))
        if unit.unit_type == UnitType.LAYER_HEADER:
            layer_id = next(layer for layer in stream.layers
                            if layer.header_offset == unit.pos).header.layer_id
            flags = unit.payload.start + len(layer_id.encode()) + 21
            data = _put(data, flags, bytes([data[flags] | 0x2A]))
        data = _recrc(data, unit)
    return data


#: Clauses every face exercises: its unit type and skippable_flag, the fields of face_base()
#: and the dequantization of the embedding.
FACE_BASE_CLAUSES = {"8.1.2", "8.2.1", "8.2.2", "13.3.1", "13.3.2", "13.3.3", "13.3.4",
                     "13.3.5", "13.3.6", "13.5"}
#: ... and a face with an enhancement layer: the fields of face_enhancement() but
#: predictor_info, texture decoding, residual de-normalisation and reconstruction.
FACE_ENHANCEMENT_CLAUSES = {"13.4.1", "13.4.2", "13.4.3", "13.4.5", "13.4.6", "13.4.7",
                            "13.4.8", "13.6.1", "13.6.2", "13.6.3"}
#: ... with a predictor network: predictor_info and the tolerance of the image.
FACE_PREDICTOR_CLAUSES = {"13.4.4", "13.7.3"}


def exercised_clauses(stream: Stream) -> list[str]:
    """The clauses whose syntax elements a valid stream sets to other values than the
    encoder's defaults give (float32 NCHW, 8-bit, log, per tensor, identity order, one
    channel per picture, no padding, one layer, level 10, no face), the dequantization
    clause of each quantizer it uses, and the face clauses of its faces."""
    found = set()
    h0 = stream.header
    if h0.version_minor > VERSION_MINOR:
        found |= {"8.1.2", "8.1.6", "8.2.3", "8.3.12"}
    if h0.level_idc != min(LEVELS):
        found |= {"8.1.4", "11.2"}
    if h0.num_layers != 1:
        found |= {"8.1.5"} | ({"8.2.6"} if h0.num_layers > 1 else set())
    if stream.skipped_units:
        found |= {"8.2.1", "8.2.2"}
    for face in stream.faces:
        found |= FACE_BASE_CLAUSES
        enh = face.enhancement
        if enh is not None:
            found |= FACE_ENHANCEMENT_CLAUSES
            if enh.predictor_type == PredictorType.NETWORK:
                found |= FACE_PREDICTOR_CLAUSES
    for layer in stream.layers:
        h = layer.header
        found.add({QuantizerType.UNIFORM: "9.4.1", QuantizerType.LOG: "9.4.2",
                   QuantizerType.INTEGER: "9.4.3", QuantizerType.SQRT: "9.4.4"}[h.quantizer_type])
        if h.source_layout != SourceLayout.NCHW:
            found |= {"8.3.2", "9.5"}
        if h.source_dtype != SourceDtype.FLOAT32:
            found |= {"8.3.3", "9.5"}
        if h.batch_size > 1:
            found |= {"8.3.4", "8.3.14"}
        if h.sample_bit_depth != 8:
            found |= {"8.3.5", "10.4"}
        if h.quantizer_type != QuantizerType.LOG:
            found.add("8.3.6")
        if h.per_channel_quant_flag or h.quantizer_type == QuantizerType.INTEGER:
            found.add("8.3.7")
        if h.channel_permutation is not None:
            found |= {"8.3.8", "9.3.1"}
        if h.packing_type in (PackingType.TILED, PackingType.DENSE):
            found |= {"8.3.9", "9.3.1", "8.3.14"}
        if h.has_ext:           # a layer_header_ext unit (format 1.2)
            found |= {"8.2.1", "8.3.15", "8.3.16"}
        if h.param_format == ParamFormat.BINARY16:
            found |= {"8.3.7", "9.4"}
        if h.uses_format12:
            found.add("8.1.2")
        if h.pad_bottom or h.pad_right or h.pad_mode:
            found |= {"8.3.10", "9.3.1"}
        if h.num_elements == LEVELS[h0.level_idc].max_layer_elements:
            found.add("11.2")
        if _is_lossless(layer):
            found.add("10.7")
    return sorted(found, key=_clause_key)


def _clause_key(clause: str) -> tuple[int, ...]:
    return tuple(int(v) for v in clause.split("."))


@dataclasses.dataclass
class _Generated:
    name: str
    data: bytes
    entry: dict
    reference: dict[str, np.ndarray] | None = None
    stream: Stream | None = None


def _code_valid(f: Features, tensors: Mapping[str, object] | None,
                backend=None) -> _Generated:
    where = f"stream {f.name}"
    try:
        if tensors is None:
            if f.layers:      # sizes against the levels before any synthetic data exists
                check_size(f.name, (f.batch, f.channels, f.height, f.width),
                           f.encoder_config(f.channels))
            items = feature_tensors(f)
            configs = {k: f.encoder_config(f.channels) for k in items}
        else:
            items = dict(tensors)
            configs = {}
            for k, t in items.items():
                shape = tuple(getattr(t, "shape", ()))
                if len(shape) != 4:
                    raise SuiteError(f"{where}: {k!r} is not a tensor of 4 dimensions "
                                     f"(got {type(t).__name__} {shape})")
                axis = 3 if f.layout == "NHWC" else 1
                configs[k] = f.encoder_config(int(shape[axis]))
        if f.x265_params:
            if backend is not None:
                raise SuiteError(f"{where}: x265_params needs libx265 (no --hevc-encoder)")
            from ..hevc.pyav import PyAVBackend
            layer_backend = PyAVBackend(f.x265_params)
        else:
            layer_backend = backend
        data = encode(items or None, configs, faces=feature_faces(f), backend=layer_backend)
    except (ValueError, RefcodecError) as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if f.hevc_edit:
        s = read_headers(data)
        payload = s.layers[0].hevc_payload
        try:
            payload = (hevc_edit.pps_before_sps(payload) if f.hevc_edit == "pps_before_sps"
                       else hevc_edit.changed_sps_before(payload, s.layers[0].header
                                                         .num_pictures // 2))
        except ValueError as exc:
            raise SuiteError(f"{where}: hevc_edit {f.hevc_edit}: {exc}") from None
        data = _change_layer0(s, payload=payload)
    if f.stream_edit:
        data = _stream_edit(data, f.stream_edit, f)
    if f.extra_unit == "skippable":
        data = _with_skippable_units(data)
    if f.future_minor:
        data = _future_minor(data)
    check = None
    if tensors is None and f.lossless:
        def check(h, tensor):
            if h.quantizer_type != QuantizerType.INTEGER:
                return
            original = np.asarray(items[h.layer_id]).astype(np.float64)
            if not np.array_equal(original, tensor.astype(np.float64)):
                raise SuiteError(f"{where}: lossless integer coding did not reproduce "
                                 f"layer {h.layer_id!r}")
    g = _valid_stream(f.name, f.purpose, data, where, {"features": f.to_json()}, check)
    if f.hevc_edit or f.x265_params:    # another coding than the informative encoder's
        g.entry["clauses"] = sorted(set(g.entry["clauses"]) | {"10.1"}
                                    | ({"9.2"} if f.x265_params else set()), key=_clause_key)
    return g


def _valid_stream(name: str, purpose: str, data: bytes, where: str, extra: dict,
                  check_layer: Callable | None = None) -> _Generated:
    """The manifest entry and reference outputs of a valid stream, after checking that
    verify finds it conformant and that decode() and decode_samples() agree; ``extra``
    goes into the entry after "clauses", ``check_layer(header, tensor)`` checks each
    decoded layer."""
    report = verify(data, source=where)
    if not report.conformant:
        raise SuiteError(f"{where}: the reference encoder made a non-conforming stream: "
                         f"{report.violations[0]}")
    stream = read_headers(data)
    if stream.faces and report.warnings:
        raise SuiteError(f"{where}: verify warns: {report.warnings[0]}")
    decoded = decode(data)
    layers, reference = [], {}
    for layer in stream.layers:
        h = layer.header
        pictures = decode_samples(layer)
        tensor = reconstruct(h, pictures)
        if not np.array_equal(tensor_bits(tensor), tensor_bits(decoded[h.layer_id])):
            raise SuiteError(f"{where}: decode() and decode_samples() disagree")
        if check_layer is not None:
            check_layer(h, tensor)
        bf16 = h.source_dtype == SourceDtype.BFLOAT16
        reference[h.layer_id] = tensor.view(np.uint16) if bf16 else tensor
        entry = {
            "layer_id": h.layer_id, "shape": list(h.shape),
            "dtype": h.source_dtype.name.lower(), "layout": h.source_layout.name,
            "quantizer": h.quantizer_type.name.lower(), "bit_depth": h.sample_bit_depth,
            "per_channel": h.per_channel_quant_flag,
            "pictures": {"count": h.num_pictures, "width": h.picture_width,
                         "height": h.picture_height},
            "sample_md5": layer.sample_md5.hex(),
            "planes_md5": planes_md5_hex(pictures, h.sample_bit_depth),
            "tensor_sha256": tensor_sha256(tensor),
            "reference_encoding": "bfloat16-bits-as-uint16" if bf16 else "native",
            "tolerance": tolerance(h),
        }
        if h.quantizer_type == QuantizerType.LOG:
            entry["tolerance"]["reference_correctly_rounded"] = \
                log_reference_is_correctly_rounded(h)
        layers.append(entry)
    faces = []
    try:
        output_names(stream)
    except OutputKeyCollision as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if stream.faces:
        outputs, warnings = decode_outputs(data)
        if warnings:
            raise SuiteError(f"{where}: {warnings[0]}")
        for face in stream.faces:
            keys = [key for key in face_keys(face.base.face_id) if key in outputs]
            reference.update({key: outputs[key] for key in keys})
            faces.append(_face_entry(face, outputs, where))
    parts = [describe_layer(x.header) for x in stream.layers[:1]]
    if len(stream.layers) > 1:
        parts.append(f"{len(stream.layers)} layers")
    parts += [describe_face(face) for face in stream.faces]
    if stream.skipped_units:
        parts.append(f"{len(stream.skipped_units)} skippable units")
    if stream.header.version_minor:
        parts.append(f"version {stream.header.version_major}.{stream.header.version_minor}")
    parts.append(f"level {stream.header.level_idc}")
    entry = {
        "name": name, "file": f"streams/{name}.vfc", "purpose": purpose, "valid": True,
        "clauses": exercised_clauses(stream), **extra,
        "description": "; ".join(parts),
        "level_idc": stream.header.level_idc, "num_layers": stream.header.num_layers,
        "reference": f"reference/{name}.npz", "layers": layers, "faces": faces,
    }
    return _Generated(name, data, entry, reference, stream)


def _face_entry(face, outputs: Mapping[str, np.ndarray], where: str) -> dict:
    """The manifest entry of a face, from the reference decoder's outputs."""
    b, e = face.base, face.enhancement
    emb_key, image_key, texture_key = face_keys(b.face_id)
    entry = {"face_id": b.face_id, "embedder_idc": int(b.embedder_idc),
             "embedding_dim": b.embedding_dim, "embedding_step": b.embedding_step,
             "eg_order": b.eg_order, "embedding_sha256": tensor_sha256(outputs[emb_key]),
             "enhancement": None}
    if e is None:
        return entry
    texture = outputs[texture_key]
    if face_texture.texture_md5(texture) != e.texture_md5:
        raise SuiteError(f"{where}: face {b.face_id!r}: the texture decodes differently here "
                         f"than at the encoder (texture_md5)")
    network = e.predictor_type == PredictorType.NETWORK
    entry["enhancement"] = {
        "texture_codec": e.texture_codec.name.lower(),
        "image_shape": list(e.image_shape),
        "predictor": e.predictor_id if network else "none",
        "predictor_sha256": e.predictor_sha256.hex() if network else None,
        "residual_min": e.residual_min, "residual_max": e.residual_max,
        "texture_md5": e.texture_md5.hex(),
        "image_sha256": hashlib.sha256(np.ascontiguousarray(outputs[image_key])).hexdigest(),
        "tolerance": image_tolerance(e),
    }
    return entry


def _is_plain(s: Stream) -> bool:
    """A stream alterations may start from: no skippable unit of an unknown type and no
    later minor version than the current one (whose reserved fields a decoder ignores)."""
    return not s.skipped_units and s.header.version_minor <= VERSION_MINOR


@functools.lru_cache(maxsize=1)
def _spec_requirements() -> frozenset[str] | None:
    """The requirement ids of the repository's spec/, None in an installed package."""
    folder = spec_dir()
    return None if folder is None else frozenset(requirement_ids(folder))


def _check_requirement(requirement: str, where: str) -> None:
    known = _spec_requirements()
    if known is not None and requirement not in known:
        raise SuiteError(f"{where}: requirement {requirement} is not a requirement of spec/")


def _code_invalid(row: InvalidRow, valid: list[_Generated]) -> _Generated:
    alt = ALTERATIONS[row.alteration]
    where = f"invalid stream {row.name} ({row.alteration})"
    _check_requirement(alt.requirement, where)
    if row.base:
        base = next((g for g in valid if g.name == row.base), None)
        if base is None:
            raise SuiteError(f"{where}: no valid stream named {row.base!r}")
        if not _is_plain(base.stream):
            raise SuiteError(f"{where}: base {row.base!r} has skippable units or a later "
                             f"minor version; alterations need a plain stream")
        if not alt.fits(base.stream):
            raise SuiteError(f"{where}: base {row.base!r} does not fit: the alteration needs "
                             f"{alt.needs}")
    else:
        base = next((g for g in valid if _is_plain(g.stream) and alt.fits(g.stream)), None)
        if base is None:
            needs = alt.needs if alt.scope == "face" else \
                alt.requires or "a stream without skippable units"
            raise SuiteError(f"{where}: no valid stream fits: the alteration needs {needs}")
    try:
        data = alt.apply(base.data, base.stream)
    except (ValueError, IndexError, RefcodecError) as exc:
        raise SuiteError(f"{where}: cannot alter {base.name!r}: {exc}") from None
    error, refused_by = reference_refusal(data)
    if error is None:
        raise SuiteError(f"{where}: the reference decoder accepts the altered stream")
    if error.clause != alt.clause:
        raise SuiteError(f"{where}: the reference decoder reports clause {error.clause}, "
                         f"not {alt.clause} (requirement {alt.requirement}): {error}")
    report = verify(data, source=row.name)
    clauses = [v.clause for v in report.violations]
    if alt.clause in clauses:
        reports = "first" if clauses[0] == alt.clause else "among"
    elif alt.verify_warns and any(f"clause {alt.clause})" in w for w in report.warnings):
        reports = "warning"
    else:
        raise SuiteError(f"{where}: verify does not report clause {alt.clause} "
                         f"(it reports {', '.join(clauses) or 'nothing'})")
    entry = {
        "name": row.name, "file": f"streams/{row.name}.vfc",
        "purpose": row.purpose or alt.purpose, "valid": False, "clauses": [alt.clause],
        "requirement": alt.requirement,
        "base": base.name, "alteration": row.alteration,
        "description": f"{base.name}, altered: {alt.purpose}",
        **_refusal(error, refused_by, report, reports),
    }
    return _Generated(row.name, data, entry)


def _refusal(error, refused_by: str, report, reports: str) -> dict:
    """The manifest fields of an invalid stream that say how it is refused: the reference
    decoder's first error (and, when not every decoder refuses it, at which stage) and what
    verify reports (``reports``: whether the expected clause comes first, among the others,
    or as a warning)."""
    fields = {
        "expected_clause": error.clause,
        "verify_reports": reports,
        "verify_clauses": [v.clause for v in report.violations],
        "verify_exit_code": report.exit_code,
        "error_class": type(error).__name__, "exit_code": type(error).exit_code,
        "decoder_error": error.to_dict(),
    }
    if reports == "warning":
        fields["verify_warnings"] = report.warnings
    if refused_by != "any":
        fields["refused_by"] = refused_by
    return fields


def _code_interop(folder: Path, case) -> _Generated:
    """A stream of the interop group: the payload of ``case`` wrapped in its template, with
    the verdict of the interop README checked (refcodec.conformance.interop)."""
    from . import interop
    name = f"interop_{case.name}"
    where = f"interop stream {name}"
    data = interop.wrapped(folder, case)
    about = {"group": "interop", "interop": {
        "case": case.name, "encoder": case.encoder, "command": case.command,
        "note": case.note, "source_template": case.source,
        "hm_decoded_planes_md5": case.hm_decoded_planes_md5,
        "libde265_equals_hm": case.libde265_equals_hm}}
    purpose = (f"a payload written by {case.encoder}" + (f": {case.note}" if case.note else "")
               + f" (verdict: {case.verdict})")
    if case.conformant:
        g = _valid_stream(name, purpose, data, where, about)
        planes = [layer["planes_md5"] for layer in g.entry["layers"]]
        if planes != [case.hm_decoded_planes_md5]:
            raise SuiteError(f"{where}: decodes to planes_md5 {planes}, HM decodes it to "
                             f"{case.hm_decoded_planes_md5}")
        return g
    requirement = interop.REQUIREMENTS.get(case.name)
    if requirement is None or clause_of(requirement) != case.verdict_clauses[0]:
        raise SuiteError(f"{where}: interop.REQUIREMENTS names no requirement of clause "
                         f"{case.verdict_clauses[0]} for case {case.name}")
    _check_requirement(requirement, where)
    error, refused_by = reference_refusal(data)
    if error is None or error.clause != case.verdict_clauses[0]:
        raise SuiteError(f"{where}: the reference decoder reports "
                         f"{error.clause if error else 'nothing'}, the interop README "
                         f"{case.verdict_clauses[0]}")
    report = verify(data, source=name)
    clauses = [v.clause for v in report.violations]
    if sorted(set(clauses)) != sorted(set(case.verdict_clauses)):
        raise SuiteError(f"{where}: verify reports {', '.join(clauses)}, the interop README "
                         f"{', '.join(case.verdict_clauses)}")
    entry = {
        "name": name, "file": f"streams/{name}.vfc", "purpose": purpose, "valid": False,
        "clauses": list(case.verdict_clauses), "requirement": requirement, **about,
        "description": f"{case.encoder} payload in template {case.source}: {case.verdict}",
        **_refusal(error, refused_by, report,
                   "first" if clauses[0] == error.clause else "among"),
    }
    return _Generated(name, data, entry)


def _library_versions() -> dict[str, str]:
    from importlib import metadata
    out = {}
    for name in ("numpy", "av", "ml_dtypes", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _files_we_wrote(out_dir: Path, manifest_path: Path) -> set[str]:
    """The files under ``out_dir`` that a previous manifest of ours lists (streams/*.vfc,
    reference/*.npz), the only ones ``generate`` may delete or replace.  Without a readable
    manifest, SuiteError when the folder already holds an index.md or anything in streams/
    or reference/: they are not known to be ours, and nothing is written."""
    listed = None
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            listed = {e[k] for e in old["streams"] for k in ("file", "reference")
                      if isinstance(e.get(k), str)}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            why = f"{manifest_path} is not a readable manifest ({type(exc).__name__})"
        else:
            return listed
    else:
        why = f"{out_dir} has no manifest.json"
    found = [f"{sub}/{p.name}" for sub in ("streams", "reference")
             if (out_dir / sub).is_dir() for p in sorted((out_dir / sub).iterdir())]
    if (out_dir / "index.md").exists():
        found.insert(0, "index.md")
    for sub in ("streams", "reference"):
        if (out_dir / sub).exists() and not (out_dir / sub).is_dir():
            found.insert(0, sub)
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise SuiteError(f"{why}, and it holds {found[0]}{more}, which the suite would "
                         f"overwrite or which are not the generator's: nothing written; "
                         f"use an empty folder or move them away")
    return set()


def generate(out_dir: Path, features: Sequence[Features], *,
             invalid: Sequence[InvalidRow] | None = None,
             tensors: Mapping[str, object] | None = None, force: bool = False,
             command: str = "", suite_name: str = DEFAULT_SUITE_NAME,
             interop: Path | None = None, backend=None,
             log: Callable[[str], None] | None = None) -> dict:
    """Code every stream of ``features`` (and the ``invalid`` ones; None: the built-in list,
    ``[]``: none) into ``out_dir`` and return the manifest.

    ``tensors`` codes the user's tensors instead of synthetic data: then ``features`` holds
    the one row of settings.  ``interop``: a folder of other encoders' payloads
    (refcodec.conformance.interop) whose streams join the suite as its interop group.
    ``backend``: the HEVC encoder of the valid streams (None: libx265 through PyAV; an
    ``refcodec.hevc.external.ExternalBackend`` for another encoder).
    Everything is generated and checked in memory before a file is written; an existing
    manifest is only replaced with ``force``.  Only files a previous manifest lists are ever
    deleted (with ``force``); a folder without a readable manifest is written only when its
    streams/ and reference/ are empty and it has no index.md (else SuiteError).
    """
    log = log or (lambda msg: None)
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists() and not force:
        raise SuiteError(f"{manifest_path} exists: the stored streams are not regenerated "
                         f"silently; use --force to replace them")
    ours = _files_we_wrote(out_dir, manifest_path)
    if tensors is not None and len(features) != 1:
        raise SuiteError("coding given tensors needs exactly one row of settings")
    invalid_rows = default_invalid_rows() if invalid is None else list(invalid)
    names = [f.name for f in features] + [r.name for r in invalid_rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteError(f"stream names shall be unique: {', '.join(dupes)}")
    t0 = time.perf_counter()
    valid = []
    for f in features:
        started = time.perf_counter()
        valid.append(_code_valid(f, tensors, backend))
        log(f"{f.name}: {len(valid[-1].data)} bytes ({time.perf_counter() - started:.1f} s)")
    bad, skipped = [], []
    for row in invalid_rows:
        try:
            bad.append(_code_invalid(row, valid))
        except SuiteError as exc:
            if invalid is not None:      # rows the user asked for shall all work
                raise
            skipped.append({"name": row.name, "alteration": row.alteration,
                            "reason": str(exc)})
            log(f"skipped: {exc}")
    others = []
    if interop is not None:
        from .interop import read_cases
        for case in read_cases(Path(interop)):
            started = time.perf_counter()
            others.append(_code_interop(Path(interop), case))
            log(f"{others[-1].name}: {len(others[-1].data)} bytes "
                f"({time.perf_counter() - started:.1f} s)")
        clash = sorted({g.name for g in others} & set(names))
        if clash:
            raise SuiteError(f"stream names shall be unique: {', '.join(clash)}")
    valid += [g for g in others if g.entry["valid"]]
    streams = valid + bad + [g for g in others if not g.entry["valid"]]
    for g in streams:
        g.entry["sha256"] = hashlib.sha256(g.data).hexdigest()
        g.entry["size"] = len(g.data)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite_name,
        "format_version": FORMAT_VERSION,
        "refcodec_version": __version__,
        "generator": {"command": command, "libraries": _library_versions()},
        "notes": {
            "planes_md5": "MD5 of the layer's decoded pictures concatenated in output order, "
                          "samples in raster order, 1 byte each at 8-bit, else 2 bytes "
                          "little-endian (raw 4:0:0 output of HM or libde265)",
            "tensor_sha256": "sha256 of the decoded tensor's C-order little-endian bytes in "
                             "its source dtype and layout",
            "bfloat16": "numpy has no bfloat16: reference arrays of bfloat16 layers hold the "
                        "bit patterns as uint16 (reference_encoding bfloat16-bits-as-uint16)",
            "tolerance": "clause 12.3: exact for the uniform and integer quantizers; for the "
                         "log quantizer |y - r| <= max_abs_error of the value's parameter set",
            "faces": "reference arrays embedding:<face_id> (float32, compared bit-exactly), "
                     "image:<face_id> (uint8 H x W x C, within the face's tolerance: exact "
                     "without a predictor, |y - r| <= 1 with a predictor network, clause "
                     "13.7.3) and texture:<face_id> (uint8 H x W x C, MD5 texture_md5 of "
                     "clause 13.4.7: samples in channel, row, column order)",
        },
        "streams": [g.entry for g in streams],
        "skipped_alterations": skipped,
    }
    # ---- write ----
    ours = _files_we_wrote(out_dir, manifest_path)   # again: the folder may have changed
    for sub in ("streams", "reference"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    keep = {g.entry["file"] for g in streams} | {g.entry["reference"] for g in valid}
    for sub, suffix in (("streams", ".vfc"), ("reference", ".npz")):
        for old in sorted((out_dir / sub).glob(f"*{suffix}")):
            name = f"{sub}/{old.name}"
            if name in keep:
                continue
            if name in ours and old.is_file():    # listed by the manifest being replaced
                old.unlink()
                log(f"removed stale {name}")
            else:
                log(f"left {name} in place: no previous manifest lists it")
    for g in streams:
        atomic_write(out_dir / g.entry["file"], g.data)
        if g.reference is not None:
            write_npz(out_dir / g.entry["reference"], g.reference)
    atomic_write(out_dir / "index.md", render_index(manifest).encode("utf-8"))
    atomic_write(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
    log(f"{len(valid)} valid and {len(bad)} invalid streams, "
        f"{sum(len(g.data) for g in streams)} bytes, in {time.perf_counter() - t0:.1f} s")
    return manifest
