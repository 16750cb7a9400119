"""manifest.json as the runner reads it: the schema version, the array names of a face
(``face_keys``), the keys a runner needs (``_check_manifest``) and ``load_manifest``.

The generator writes the fields (``generation``); a field the runner relies on is added to
the key tables here as well.  conformance/README.md documents them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..ids import OutputKeyCollision, face_output_keys, output_keys
from .errors import SuiteError
from .features import NAME_PATTERN
from .requirements import REQUIREMENT_ID, clause_of


#: Version of the manifest layout (conformance/README.md); raised on incompatible changes.
#: 2 added the faces of format 1.1 (a runner of version 1 would not check them).
SCHEMA_VERSION = 2
#: Manifest versions the runner reads (a version 1 manifest has no faces).
READABLE_SCHEMA_VERSIONS = (1, 2)


#: The array names of a face in reference and output files: its embedding, image and texture.
face_keys = face_output_keys


_STREAM_KEYS = {"name": str, "file": str, "valid": bool, "sha256": str}
_VALID_KEYS = {"reference": str, "layers": list}
_LAYER_KEYS = {"layer_id": str, "shape": list, "dtype": str, "layout": str, "quantizer": str,
               "bit_depth": int, "pictures": dict, "planes_md5": str, "tensor_sha256": str,
               "reference_encoding": str, "tolerance": dict}
_FACE_KEYS = {"face_id": str, "embedding_dim": int, "embedding_sha256": str}
_ENHANCEMENT_KEYS = {"image_shape": list, "texture_md5": str, "image_sha256": str,
                     "tolerance": dict}


def _check_manifest(manifest: dict, path: Path) -> None:
    """Enough structure for the runner; a readable error rather than a KeyError."""
    def need(obj, keys, where):
        for key, kind in keys.items():
            if not isinstance(obj.get(key), kind):
                raise SuiteError(f"{path}: {where}: {key} missing or not a {kind.__name__}")
    streams = manifest.get("streams")
    if not isinstance(streams, list):
        raise SuiteError(f"{path}: no streams list")
    for i, s in enumerate(streams):
        if not isinstance(s, dict):
            raise SuiteError(f"{path}: streams[{i}] is not an object")
        need(s, _STREAM_KEYS, f"streams[{i}]")
        if not NAME_PATTERN.fullmatch(s["name"]) or ".." in s["name"]:
            # the runner names its output files after the stream: no path, no control
            raise SuiteError(f"{path}: streams[{i}]: name {s['name'][:120]!r} is not a stream "
                             f"name (letters, digits, '_', '.', '-', at most 100, no '..')")
        files = [s["file"]]
        if s["valid"]:
            need(s, _VALID_KEYS, f"stream {s['name']}")
            for layer in s["layers"]:
                need(layer, _LAYER_KEYS, f"stream {s['name']} layer")
            if not isinstance(s.get("faces", []), list):
                raise SuiteError(f"{path}: stream {s['name']}: faces is not a list")
            for face in s.get("faces", []):
                need(face, _FACE_KEYS, f"stream {s['name']} face")
                if face.get("enhancement") is not None:
                    need(face["enhancement"], _ENHANCEMENT_KEYS,
                         f"stream {s['name']} face {face['face_id']} enhancement")
            files.append(s["reference"])
            try:
                output_keys([x["layer_id"] for x in s["layers"]],
                            [(f["face_id"], f.get("enhancement") is not None)
                             for f in s.get("faces", [])])
            except OutputKeyCollision as exc:
                raise SuiteError(f"{path}: stream {s['name']}: {exc}") from None
        else:
            need(s, {"expected_clause": str}, f"stream {s['name']}")
            requirement = s.get("requirement")     # since format 1.2's suite
            if requirement is not None and (
                    not isinstance(requirement, str)
                    or not REQUIREMENT_ID.fullmatch(requirement)
                    or clause_of(requirement) != s["expected_clause"]):
                raise SuiteError(f"{path}: stream {s['name']}: requirement {requirement!r} "
                                 f"is not a requirement id of clause {s['expected_clause']}")
        for name in files:
            parts = Path(name).parts
            if Path(name).is_absolute() or ".." in parts or not parts:
                raise SuiteError(f"{path}: stream {s['name']}: {name!r} is not a path inside "
                                 f"the suite directory")


def load_manifest(path: Path) -> dict:
    if not Path(path).is_file():
        raise SuiteError(f"{path}: no such manifest")
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: not a JSON manifest: {exc}") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version not in READABLE_SCHEMA_VERSIONS:
        raise SuiteError(f"{path}: manifest schema_version shall be one of "
                         f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}, got {version!r}")
    _check_manifest(manifest, Path(path))
    return manifest
