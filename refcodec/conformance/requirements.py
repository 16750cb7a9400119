"""The requirements of the specification and their identifiers (spec clause 4.6).

Every requirement on bitstreams is a sentence "It is a requirement of bitstream conformance
that ..." with an identifier in brackets before it, ``[8.3.4-b]``: a clause id, a hyphen and
a letter.  A sentence that states several requirements ends in a colon and is followed by a
list whose items each begin with their identifier.  ``read_requirements`` finds them all in
the Markdown files of ``spec/``, so that the conformance generator can check the requirement
an alteration names and a test can check that every checkable requirement has an invalid
stream (clause 12.5).

The spec folder is not part of an installed package: ``spec_dir`` returns None there, and the
checks that need it are skipped (they run from the repository).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

#: The phrase every requirement sentence begins with.
PHRASE = "It is a requirement of bitstream conformance that"
#: The marker of a requirement only an encoder can meet (clause 12.1).
NOT_CHECKABLE = "(not checkable by a decoder)"
#: A requirement identifier: clause id, hyphen, one lower-case letter.
REQUIREMENT_ID = re.compile(r"(?P<clause>[1-9][0-9]?(?:\.[0-9]+){1,3})-(?P<letter>[a-z])")

_TAG = re.compile(r"\[(" + REQUIREMENT_ID.pattern + r")\] ")
#: A tag at the start of a paragraph, or of a list item.
_TAGGED_LINE = re.compile(r"^(?:- )?\[(" + REQUIREMENT_ID.pattern + r")\] ")


def clause_of(requirement_id: str) -> str:
    """The clause id of a requirement identifier (``8.3.4-b`` -> ``8.3.4``): what a decoder
    reports when it finds the requirement broken."""
    return requirement_id.partition("-")[0]


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One requirement: ``id`` (e.g. ``8.3.4-b``), the file and line of its tag, its text
    (for a list item: the introducing sentence and the item)."""

    id: str
    file: str
    line: int
    text: str

    @property
    def clause(self) -> str:
        return clause_of(self.id)

    @property
    def checkable(self) -> bool:
        return NOT_CHECKABLE not in " ".join(self.text.split())


@dataclasses.dataclass(frozen=True)
class Problem:
    """A requirement sentence the reader could not give an identifier to."""

    file: str
    line: int
    text: str


def spec_dir() -> Path | None:
    """The repository's ``spec/`` folder, or None in an installed package."""
    path = Path(__file__).resolve().parents[2] / "spec"
    return path if (path / "00-index.md").is_file() else None


def _paragraphs(text: str):
    """(first line number, paragraph text) of every paragraph outside code blocks."""
    start, lines = None, []
    fence = False
    for number, line in enumerate(text.split("\n"), 1):
        is_fence = line.startswith("```")
        fence ^= is_fence
        if fence or is_fence or (line.startswith("    ") and not lines) or not line.strip():
            if lines:
                yield start, "\n".join(lines)
            start, lines = None, []
            continue
        if start is None:
            start = number
        lines.append(line)
    if lines:
        yield start, "\n".join(lines)


def read_requirements(folder: Path | None = None) -> tuple[list[Requirement], list[Problem]]:
    """Every requirement of the spec, in the order of its files and text, and the requirement
    sentences that carry no identifier (``Problem``: a sentence without a tag, a list item
    without one, a malformed tag)."""
    folder = folder or spec_dir()
    if folder is None:
        raise FileNotFoundError("no spec/ folder: run from the repository")
    found: list[Requirement] = []
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.md")):
        lead = None           # the sentence that introduces a list of requirements
        for line, para in _paragraphs(path.read_text(encoding="utf-8")):
            if para.startswith("- ") and lead is not None:
                for offset, item in _items(para):
                    m = _TAGGED_LINE.match(item)
                    if m is None:
                        problems.append(Problem(path.name, line + offset, item[:80]))
                    else:
                        found.append(Requirement(m.group(1), path.name, line + offset,
                                                 lead + "\n" + item))
                continue
            lead = None
            at = para.find(PHRASE)
            if at < 0 or para[:at].endswith(('"', "“", "'", "`")):
                continue          # no requirement, or the phrase quoted
            m = _TAGGED_LINE.match(para)
            if m is not None and m.end() == at:
                found.append(Requirement(m.group(1), path.name, line, para))
            elif at == 0 and para.rstrip().endswith(":"):
                lead = para       # the items of the next paragraph carry the identifiers
            else:
                problems.append(Problem(path.name, line, para[:80]))
    return found, problems


def _items(para: str):
    """(line offset, text) of each item of a Markdown list paragraph."""
    offset, current = 0, []
    for i, line in enumerate(para.split("\n")):
        if line.startswith("- ") and current:
            yield offset, "\n".join(current)
            offset, current = i, []
        current.append(line)
    if current:
        yield offset, "\n".join(current)


def requirement_ids(folder: Path | None = None) -> dict[str, Requirement]:
    """Identifier -> requirement; raises ValueError on a duplicate identifier."""
    reqs, _ = read_requirements(folder)
    out: dict[str, Requirement] = {}
    for r in reqs:
        if r.id in out:
            first = out[r.id]
            raise ValueError(f"requirement {r.id} is given twice: {first.file}:{first.line} "
                             f"and {r.file}:{r.line}")
        out[r.id] = r
    return out
