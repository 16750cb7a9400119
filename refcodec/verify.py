"""Strict conformance checking of a VFC bitstream (``refcodec verify``).

Unlike the decoder, which stops at the first problem, verify reports every violation it can
find without losing its place in the syntax: container syntax and semantics with their
clause ids, level limits, CRCs, the HEVC parameter sets against the layer headers (clause
10), and, by decoding each payload, the picture count, size and format and ``sample_md5``.

Exit status (CLI): 0 conformant, 1 not conformant, 3 unreadable (not a VFC stream whose
stream header can be read), 4 the HEVC library itself failed.
"""

from __future__ import annotations

import dataclasses
import json

from . import bitstream
from .codec import decode_pictures, payload_violations, sample_md5_violation
from .errors import BitstreamError, UnsupportedFeature
from .syntax import VERSION_MAJOR, VERSION_MINOR


def _no_decode(problems) -> bool:
    """A payload that breaks clause 10 is not decoded: its decoded pictures would say
    nothing (FFmpeg mis-decodes the tools of 10.7, and a payload of another profile, chroma
    format, bit depth, size or picture count is not the layer's), so comparing them with
    sample_md5 would only add a spurious 8.4.1."""
    return any(p.clause.startswith("10.") for p in problems)



@dataclasses.dataclass
class LayerResult:
    index: int
    layer_id: str
    offset: int
    num_pictures: int
    decoded: bool = False
    sample_md5_match: bool | None = None


@dataclasses.dataclass
class FaceResult:
    index: int
    face_id: str
    offset: int
    enhancement: bool
    texture_decoded: bool = False
    texture_md5_match: bool | None = None
    predictor_available: bool | None = None


@dataclasses.dataclass
class Report:
    source: str
    stream_bytes: int
    readable: bool
    violations: list[BitstreamError]
    layers: list[LayerResult]
    format_version: str | None = None
    decoded: bool = True
    warnings: list[str] = dataclasses.field(default_factory=list)
    faces: list[FaceResult] = dataclasses.field(default_factory=list)

    @property
    def conformant(self) -> bool:
        return self.readable and not self.violations

    @property
    def exit_code(self) -> int:
        if not self.readable:
            return 3
        return 0 if self.conformant else 1

    def to_dict(self) -> dict:
        return {
            "source": self.source, "stream_bytes": self.stream_bytes,
            "format_version": self.format_version, "readable": self.readable,
            "conformant": self.conformant, "payloads_decoded": self.decoded,
            "violations": [v.to_dict() for v in self.violations],
            "warnings": self.warnings,
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "faces": [dataclasses.asdict(face) for face in self.faces],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        if not self.readable:
            head = f"{self.source}: UNREADABLE"
        elif self.conformant:
            checked = ("all sample checksums match" if self.decoded
                       else "payloads not decoded")
            faces = f", {len(self.faces)} face(s)" if self.faces else ""
            head = (f"{self.source}: conformant (VFC {self.format_version}, "
                    f"{len(self.layers)} layer(s){faces}, {checked})")
        else:
            n = len(self.violations)
            head = f"{self.source}: NOT CONFORMANT ({n} violation{'s' if n != 1 else ''})"
        return "\n".join([head] + [f"  {v}" for v in self.violations]
                         + [f"  warning: {w}" for w in self.warnings])


def verify(data: bytes, *, source: str = "<bytes>", decode: bool = True,
           backend=None) -> Report:
    """Check a whole bitstream and report every violation found.

    With ``decode=False`` the HEVC payloads are checked up to their parameter sets only.
    A failure of the HEVC library itself (BackendError) is raised, not reported: it says
    nothing about the stream.
    """
    checker = bitstream.Checker(collect=True)
    stream = bitstream.parse_stream(data, checker=checker)
    if stream is None:
        return Report(source, len(data), False, checker.violations, [], decoded=decode)
    violations = list(checker.violations)
    results = []
    for layer in stream.layers:
        h = layer.header
        result = LayerResult(layer.index, h.layer_id, layer.header_offset, h.num_pictures)
        results.append(result)
        problems = payload_violations(layer)
        violations.extend(problems)
        if not decode or _no_decode(problems):
            continue
        try:
            pictures = decode_pictures(layer, backend)
        except BitstreamError as exc:
            violations.append(exc)
            continue
        result.decoded = True
        mismatch = sample_md5_violation(layer, pictures)
        result.sample_md5_match = mismatch is None
        if mismatch:
            violations.append(mismatch)
    warnings = []
    faces = [_check_face(face, decode, backend, violations, warnings) for face in stream.faces]
    version = f"{stream.header.version_major}.{stream.header.version_minor}"
    if stream.header.version_minor > VERSION_MINOR:
        warnings.append(f"version {version} is newer than this checker's "
                        f"{VERSION_MAJOR}.{VERSION_MINOR}: the stream was checked as a "
                        f"{VERSION_MAJOR}.{VERSION_MINOR} stream, with the fields reserved in "
                        f"{VERSION_MAJOR}.{VERSION_MINOR} not checked (clause 8.1.2)")
    return Report(source, len(data), True, violations, results, version, decode, warnings,
                  faces)


def _check_face(face, decode: bool, backend, violations: list, warnings: list) -> FaceResult:
    """Check a face's texture (clause 13.4): the HEVC parameter sets, and when decoding, the
    texture itself against texture_md5.  The predictor is not needed for that: whether this
    decoder has it is reported, not judged (clause 13.4.4)."""
    from .enums import PredictorType, TextureCodec
    from .face import texture
    from .face.codec import decode_texture_checked
    enh = face.enhancement
    result = FaceResult(face.index, face.base.face_id, face.base.offset, enh is not None)
    if enh is None:
        return result
    if enh.predictor_type == PredictorType.NETWORK:
        from .face.codec import check_predictor, predictor_for
        result.predictor_available = True
        try:       # a known predictor shall fit the face (clause 13.4.4)
            found = predictor_for(enh, face.index)
            check_predictor(found, enh, face.base.embedding_dim, face.index)
        except UnsupportedFeature:
            result.predictor_available = False
            warnings.append(f"face {face.base.face_id!r}: predictor {enh.predictor_id!r} "
                            f"(SHA-256 {enh.predictor_sha256.hex()[:16]}...) is not available "
                            f"here: the texture is checked, the face image cannot be "
                            f"reconstructed (clause 13.4.4)")
        except BitstreamError as exc:
            violations.append(exc)
    path = f"faces[{face.index}].enhancement"
    if enh.texture_codec == TextureCodec.HEVC:
        problems = texture.hevc_violations(enh.texture_payload, enh.image_height,
                                           enh.image_width, enh.image_channels,
                                           offset=enh.payload_offset,
                                           path=f"{path}.texture_payload")
        violations.extend(problems)
        if _no_decode(problems):
            return result
    if not decode:
        return result
    try:
        _, warning = decode_texture_checked(face, backend, check_params=False)
    except BitstreamError as exc:
        violations.append(exc)
        if exc.clause == "13.4.7":
            result.texture_decoded, result.texture_md5_match = True, False
        return result
    result.texture_decoded = True
    result.texture_md5_match = warning is None
    if warning:
        warnings.append(warning)
    return result
