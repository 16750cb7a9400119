"""Identifiers of the units of a stream and selections of them, shared by the two kinds of
unit (feature layers, refcodec.layer; faces, refcodec.face.codec): layer_id, face_id and
predictor_id have one rule (clause 8.3.1), and a decoder asked for some layers or faces
selects them the same way.  Imports nothing of the package but its errors."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import EncoderInputError


def check_id(name: str, what: str) -> None:
    """An identifier the syntax can carry (layer_id, face_id, predictor_id): 1..255 bytes of
    UTF-8 without control characters (clause 8.3.1)."""
    if not isinstance(name, str):
        raise EncoderInputError(f"{what}s shall be strings, got {name!r}")
    raw = name.encode("utf-8", "surrogatepass")
    if not 1 <= len(raw) <= 255:
        raise EncoderInputError(f"{what} {name!r} shall be 1..255 bytes of UTF-8")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise EncoderInputError(f"{what} {name!r} shall not contain control characters")


def selected_names(wanted: Sequence[str] | None, present: Sequence[str],
                   what: str) -> list[str] | None:
    """``wanted`` as a list (None: everything), KeyError when it names something the stream
    lacks."""
    if wanted is None:
        return None
    wanted, present = list(wanted), set(present)
    missing = [n for n in wanted if n not in present]
    if missing:
        raise KeyError(f"the stream has no {what} {missing[0]!r}")
    return wanted


def face_output_keys(face_id: str) -> tuple[str, str, str]:
    """The array names of a face in a decoder's output file (and the conformance suite's
    reference files): its embedding, image and texture."""
    return f"embedding:{face_id}", f"image:{face_id}", f"texture:{face_id}"


class OutputKeyCollision(ValueError):
    """Two things a stream carries would have the same array name in an output file."""


def output_keys(layer_ids: Sequence[str], faces: Sequence[tuple[str, bool]]) -> list[str]:
    """The array names of a decoder's output file for the layers ``layer_ids`` and the faces
    ``faces`` ((face_id, with image and texture)), in stream order; OutputKeyCollision when
    two coincide.  Layer ids and face ids are separate name spaces (clause 13.3.1), so a legal
    layer_id ``embedding:f`` next to a face ``f`` would make a file of one key for both: such
    a stream is refused for this output instead of losing a tensor."""
    keys = list(layer_ids)
    for face_id, enhanced in faces:
        keys += face_output_keys(face_id)[:3 if enhanced else 1]
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise OutputKeyCollision(
                f"the layer id {key!r} is also the output name of a face's "
                f"{key.split(':', 1)[0]}: one file cannot hold both; decode them apart "
                f"(--layer ID, --face ID)")
        seen.add(key)
    return keys
