"""``Alteration`` (one way of breaking a valid stream) and ``ALTERATIONS``, which
``_alteration`` fills as ``alterations.layer`` and ``alterations.face`` are imported."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...records import Stream
from ..requirements import REQUIREMENT_ID, clause_of


@dataclasses.dataclass(frozen=True)
class Alteration:
    """One way of breaking a valid stream.  ``requirement`` is the identifier of the
    requirement it breaks (spec clause 4.6, e.g. ``8.3.4-b``); its clause id (``clause``) is
    the one the reference decoder reports first.  ``requires`` says which base streams it
    applies to, beyond ``scope``: ``layer`` alterations need a feature layer, ``face`` ones a face.
    ``verify_warns``: verify finds the altered stream conformant and only warns, naming the
    clause (a decoder's limit, not a fault of the stream: clause 13.4.4)."""

    kind: str
    requirement: str
    purpose: str
    apply: Callable[[bytes, Stream], bytes]
    applies: Callable[[Stream], bool]
    requires: str
    scope: str = "layer"
    verify_warns: bool = False

    def fits(self, s: Stream) -> bool:
        """Whether the alteration applies to the (plain) stream ``s``."""
        if not (s.faces if self.scope == "face" else s.layers):
            return False
        return bool(self.applies(s))

    @property
    def clause(self) -> str:
        """The clause id of ``requirement``: what a decoder reports."""
        return clause_of(self.requirement)

    @property
    def needs(self) -> str:
        return self.requires or ("a face" if self.scope == "face" else "a feature layer")


ALTERATIONS: dict[str, Alteration] = {}


def _alteration(kind: str, requirement: str, purpose: str, requires: str = "",
                applies: Callable[[Stream], bool] = lambda s: True, scope: str = "layer",
                verify_warns: bool = False):
    def register(fn):
        if not REQUIREMENT_ID.fullmatch(requirement):
            raise ValueError(f"alteration {kind}: {requirement!r} is no requirement identifier")
        ALTERATIONS[kind] = Alteration(kind, requirement, purpose, fn, applies, requires, scope,
                                       verify_warns)
        return fn
    return register
