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
