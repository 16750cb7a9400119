"""The invalid-streams table (conformance/invalid.csv): one row per invalid stream, an
alteration of ``ALTERATIONS`` applied to a valid stream."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .alterations import ALTERATIONS
from .errors import SuiteError
from .features import _check_name, _read_csv


@dataclasses.dataclass(frozen=True)
class InvalidRow:
    """One row of the invalid-streams table: ``alteration`` (a key of ALTERATIONS) applied
    to the valid stream ``base`` (empty: the first valid stream it applies to)."""

    name: str
    alteration: str
    base: str = ""
    purpose: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def read_invalid(path: Path) -> list[InvalidRow]:
    """The rows of an invalid-streams table (columns name, alteration, base, purpose)."""
    out = []
    for where, row in _read_csv(path):
        unknown = sorted(set(row) - {"name", "alteration", "base", "purpose"})
        if unknown:
            raise SuiteError(f"{where}: unknown column(s) {', '.join(unknown)}; the columns "
                             f"are name, alteration, base, purpose")
        cells = {k: (v or "").strip() for k, v in row.items()}
        _check_name(cells.get("name", ""), where)
        if cells.get("alteration") not in ALTERATIONS:
            raise SuiteError(f"{where}: unknown alteration {cells.get('alteration')!r}; "
                             f"see `refcodec conformance alterations`")
        out.append(InvalidRow(**cells))
    return out


def default_invalid_rows() -> list[InvalidRow]:
    """The built-in invalid streams: every alteration once, each on the first valid stream
    it applies to."""
    return [InvalidRow(name=f"invalid_{kind}", alteration=kind) for kind in ALTERATIONS]
