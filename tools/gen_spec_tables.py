#!/usr/bin/env python3
"""Render the generated tables of the specification from the code.

The syntax tables of ``spec/07-syntax.md`` are produced from the construct objects of
``refcodec.syntax.STRUCTURES`` (the objects that parse and build the bytes), the level
table of ``spec/11-profiles-levels.md`` from ``refcodec.enums.LEVELS`` and the value tables
of the enumerated syntax elements from the ``IntEnum`` classes of ``refcodec.enums``.

Each table lives in a spec file between two markers::

    <!-- BEGIN GENERATED: layer_header -->
    ...
    <!-- END GENERATED -->

The name after ``GENERATED:`` selects the renderer: a structure name of ``STRUCTURES``,
``levels``, ``enum_<ClassName>``, or ``predictor:<predictor_id>`` (a predictor refcodec ships:
identity and layers read from its weights file, for Annex E).  Running the tool rewrites the
content between the markers; ``--check`` rewrites nothing, exits 1 and names every stale or
missing table.

The construct walker knows a fixed list of construct types.  Anything else (a new
construct class, a lambda without text, a path into a parent context) raises
``UnknownConstruct``: the tool never guesses how to present a field.

Usage::

    python tools/gen_spec_tables.py            # rewrite spec/*.md
    python tools/gen_spec_tables.py --check    # exit 1 when a table is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import operator
import re
import sys
import unicodedata
from pathlib import Path

import construct
from construct import expr as cexpr

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from refcodec import enums as renums  # noqa: E402
from refcodec import syntax as rsyntax  # noqa: E402

SPEC_DIR = ROOT / "spec"

BLOCK_RE = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[A-Za-z0-9_.:-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED -->)", re.S)
ANY_MARKER_RE = re.compile(r"<!-- (?:BEGIN GENERATED: [^>]*|END GENERATED) -->")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
#: A clause id at the start of a heading: "8.3.7", "11.2", "9", "A.3", "Annex A".
HEADING_ID_RE = re.compile(r"^(?:Annex\s+)?((?:[0-9]+|[A-Z])(?:\.[0-9]+)*)\b")

INDENT = "&emsp;&emsp;"
LOOP_VARS = "ijkl"


class UnknownConstruct(TypeError):
    """The walker met a construct (or expression) whose presentation it does not know."""


class SpecBlockError(ValueError):
    """A GENERATED block is malformed, unknown or duplicated."""


# ----------------------------------------------------------------------------------------
# Spec headings and links
# ----------------------------------------------------------------------------------------

def github_slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) derive from a heading text."""
    text = heading.strip().lower()
    out = []
    for ch in text:
        if ch in " -":
            out.append("-")
        elif ch == "_" or ch.isalnum():
            out.append(ch)
        elif unicodedata.category(ch).startswith(("L", "N")):
            out.append(ch)
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class Heading:
    clause: str
    file: str
    text: str
    level: int

    @property
    def slug(self) -> str:
        return github_slug(self.text)


def spec_headings(spec_dir: Path = SPEC_DIR) -> dict[str, Heading]:
    """Clause id -> heading, over every spec/*.md (outside fenced code blocks)."""
    found: dict[str, Heading] = {}
    for path in sorted(spec_dir.glob("*.md")):
        text = _strip_fences(path.read_text(encoding="utf-8"))
        for m in HEADING_RE.finditer(text):
            title = m.group(2)
            idm = HEADING_ID_RE.match(title)
            if not idm:
                continue
            clause = idm.group(1)
            if clause in found:
                prev = found[clause]
                raise SpecBlockError(f"clause {clause} is a heading twice: {prev.file} "
                                     f"({prev.text!r}) and {path.name} ({title!r})")
            found[clause] = Heading(clause, path.name, title, len(m.group(1)))
    return found


def _strip_fences(text: str) -> str:
    """Blank out fenced code blocks (so '# comment' lines are not headings)."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


@dataclasses.dataclass(frozen=True)
class Context:
    """What a renderer may use: the spec's headings and block locations, and the file the
    block is in (links are relative to it)."""

    headings: dict[str, Heading]
    locations: dict[str, str]
    from_file: str

    @classmethod
    def of(cls, spec_dir: Path, from_file: str = "") -> "Context":
        return cls(spec_headings(spec_dir), block_locations(spec_dir), from_file)

    def link(self, clause: str) -> str:
        if clause not in self.headings:
            raise SpecBlockError(f"clause {clause} has no heading in spec/ (needed by a "
                                 f"generated table in {self.from_file})")
        h = self.headings[clause]
        target = f"#{h.slug}" if h.file == self.from_file else f"{h.file}#{h.slug}"
        return f"[{clause}]({target})"


# ----------------------------------------------------------------------------------------
# Expressions
# ----------------------------------------------------------------------------------------

_OPS = {operator.eq: "==", operator.ne: "!=", operator.lt: "<", operator.le: "<=",
        operator.gt: ">", operator.ge: ">=", operator.add: "+", operator.sub: "-",
        operator.mul: "*", operator.floordiv: "/", operator.mod: "%",
        operator.and_: "&", operator.or_: "|", operator.xor: "^",
        operator.lshift: "<<", operator.rshift: ">>"}
_UNARY = {operator.not_: "!", operator.neg: "-"}


def render_expr(e, *, top: bool = True) -> str:
    """Readable text of a construct expression: ``this.a.b`` -> ``b``; ``len_(this.x)`` ->
    ``len(x)``; ``this.t == 1`` -> ``t == 1``; ``refcodec.syntax.Expr`` -> its text."""
    if isinstance(e, rsyntax.Expr):
        return e.text
    if isinstance(e, bool):
        return "1" if e else "0"
    if isinstance(e, int):
        return str(e)
    if isinstance(e, cexpr.Path):
        fields = []
        node = e
        while True:
            attrs = vars(node)
            parent = attrs["_Path__parent"]
            if parent is None:
                if attrs["_Path__name"] != "this":
                    raise UnknownConstruct(f"expression root {attrs['_Path__name']!r} "
                                           f"(only this.* is rendered)")
                break
            fields.append(attrs["_Path__field"])
            node = parent
        if not fields:
            raise UnknownConstruct("bare 'this' expression")
        if any(not isinstance(f, str) or f.startswith("_") for f in fields):
            raise UnknownConstruct(f"expression {e!r} reaches into a parent context or an "
                                   f"index; the tables cannot show it")
        return fields[0]  # the innermost field: syntax element names are unique
    if isinstance(e, cexpr.FuncPath):
        attrs = vars(e)
        func, operand = attrs["_FuncPath__func"], attrs["_FuncPath__operand"]
        if func is not len or operand is None:
            raise UnknownConstruct(f"expression {e!r}: only len_(...) is rendered")
        return f"len({render_expr(operand)})"
    if isinstance(e, cexpr.BinExpr):
        if e.op not in _OPS:
            raise UnknownConstruct(f"operator {e.op!r} in {e!r}")
        text = f"{render_expr(e.lhs, top=False)} {_OPS[e.op]} {render_expr(e.rhs, top=False)}"
        return text if top else f"({text})"
    if isinstance(e, cexpr.UniExpr):
        if e.op not in _UNARY:
            raise UnknownConstruct(f"operator {e.op!r} in {e!r}")
        return f"{_UNARY[e.op]}{render_expr(e.operand, top=False)}"
    raise UnknownConstruct(f"expression {e!r} of type {type(e).__name__} has no text "
                           f"(wrap a function in refcodec.syntax.Expr)")


# ----------------------------------------------------------------------------------------
# Construct walker
# ----------------------------------------------------------------------------------------

_FORMATS = {">B": "u(8)", ">H": "u(16)", ">L": "u(32)", ">I": "u(32)", ">Q": "u(64)",
            ">h": "i(16)", ">f": "f32", ">e": "f16"}


@dataclasses.dataclass
class Row:
    depth: int
    element: str            # code text
    descriptor: str = ""
    clause: str = ""
    plain: bool = False     # element is pseudo-code (not a syntax element name)
    call: str = ""          # name of the structure this row calls, if any


def named_structures() -> dict[int, str]:
    return {id(obj): name for name, obj in rsyntax.STRUCTURES.items()}


def _unwrap_renamed(con):
    """(name, docs, inner) of a chain of Renamed wrappers."""
    name, docs = None, ""
    while isinstance(con, construct.Renamed):
        name = name or con.name
        docs = docs or (con.docs or "")
        con = con.subcon
    return name, docs, con


def _bitwise_struct(con):
    """The inner Struct of a BitStruct (Bitwise(Struct)), else None."""
    if isinstance(con, construct.Transformed) and isinstance(con.subcon, construct.Struct) \
            and getattr(con, "decodefunc", None) is construct.bytes2bits:
        return con.subcon
    if isinstance(con, construct.Restreamed) and isinstance(con.subcon, construct.Struct):
        return con.subcon
    return None


def scalar_descriptor(con, *, in_bits: bool) -> str | None:
    """Descriptor of a leaf construct, or None when ``con`` is not a leaf."""
    if isinstance(con, construct.Rebuild):
        return scalar_descriptor(con.subcon, in_bits=in_bits)
    if isinstance(con, construct.FormatField):
        if in_bits:
            raise UnknownConstruct(f"byte field {con.fmtstr!r} inside a BitStruct")
        if con.fmtstr not in _FORMATS:
            raise UnknownConstruct(f"FormatField {con.fmtstr!r} (only big-endian unsigned "
                                   f"integers, the signed i(16) and binary32 are defined)")
        return _FORMATS[con.fmtstr]
    if type(con) is construct.Flag.__class__ or con is construct.Flag:
        if not in_bits:
            raise UnknownConstruct("Flag outside a BitStruct (a whole byte): not a descriptor "
                                   "of this specification")
        return "u(1)"
    if isinstance(con, construct.BitsInteger):
        if not in_bits:
            raise UnknownConstruct("BitsInteger outside a BitStruct")
        if con.signed or con.swapped:
            raise UnknownConstruct("signed or little-endian BitsInteger")
        return f"u({render_expr(con.length)})"
    if isinstance(con, construct.Const):
        if not isinstance(con.value, bytes):
            raise UnknownConstruct(f"Const of a non-bytes value {con.value!r}")
        return f"f({8 * len(con.value)}) = `0x{con.value.hex()}`"
    if isinstance(con, construct.Bytes):
        if in_bits:
            raise UnknownConstruct("Bytes inside a BitStruct")
        return f"b({render_expr(con.length)})"
    if con is construct.GreedyBytes:
        if in_bits:
            raise UnknownConstruct("GreedyBytes inside a BitStruct")
        return "b(*)"
    return None


def walk(con, rows: list[Row], depth: int, *, field: str | None, clause: str,
         names: dict[int, str], in_bits: bool = False, loop: int = 0,
         top: bool = False) -> None:
    """Append the table rows of construct ``con`` (a field named ``field``)."""
    if isinstance(con, construct.Renamed):
        name, docs, inner = _unwrap_renamed(con)
        walk(inner, rows, depth, field=name, clause=docs or clause, names=names,
             in_bits=in_bits, loop=loop)
        return

    # a named structure referenced from another one: a call row
    if not top and id(con) in names:
        struct_name = names[id(con)]
        if field is None or field == struct_name:
            call = f"{struct_name}( )"
        elif re.fullmatch(r"\w+(\[[a-z]\])+", field):   # an array element
            call = f"{field} = {struct_name}( )"
        else:
            raise UnknownConstruct(f"field {field!r} holds structure {struct_name}(); the tables "
                                   f"show a structure only under its own name")
        rows.append(Row(depth, call, "", clause, call=struct_name))
        return

    bits_struct = _bitwise_struct(con)
    if bits_struct is not None:
        if in_bits:
            raise UnknownConstruct("BitStruct inside a BitStruct")
        for sc in bits_struct.subcons:
            walk(sc, rows, depth, field=None, clause="", names=names, in_bits=True, loop=loop)
        return
    if isinstance(con, (construct.Transformed, construct.Restreamed)):
        raise UnknownConstruct(f"{type(con).__name__} that is not a BitStruct")

    if isinstance(con, construct.Struct):
        if not top and id(con) not in names:
            raise UnknownConstruct(f"anonymous Struct in field {field!r}: add it to "
                                   f"refcodec.syntax.STRUCTURES so that it gets its own table")
        for sc in con.subcons:
            if not sc.name:
                raise UnknownConstruct(f"unnamed field {sc!r} in a Struct")
            walk(sc, rows, depth, field=None, clause="", names=names, in_bits=in_bits,
                 loop=loop)
        return

    desc = scalar_descriptor(con, in_bits=in_bits)
    if desc is not None:
        if field is None:
            raise UnknownConstruct(f"unnamed leaf {con!r}")
        rows.append(Row(depth, field, desc, clause))
        return

    if isinstance(con, construct.Array):
        if getattr(con, "discard", False):
            raise UnknownConstruct("Array with discard=True")
        if loop >= len(LOOP_VARS):
            raise UnknownConstruct("arrays nested too deeply")
        var = LOOP_VARS[loop]
        count = render_expr(con.count)
        if not re.fullmatch(r"\w+", count):
            count = f"({count})"
        rows.append(Row(depth, f"for ({var} = 0; {var} < {count}; {var}++) {{", "", clause,
                        plain=True))
        element = f"{field}[{var}]" if field else None
        walk(con.subcon, rows, depth + 1, field=element, clause=clause, names=names,
             in_bits=in_bits, loop=loop + 1)
        rows.append(Row(depth, "}", plain=True))
        return

    if isinstance(con, construct.IfThenElse):
        if not isinstance(con.elsesubcon, construct.Pass.__class__) \
                and con.elsesubcon is not construct.Pass:
            raise UnknownConstruct(f"IfThenElse with an else branch in field {field!r}")
        rows.append(Row(depth, f"if ({render_expr(con.condfunc)}) {{", "", "", plain=True))
        walk(con.thensubcon, rows, depth + 1, field=field, clause=clause, names=names,
             in_bits=in_bits, loop=loop)
        rows.append(Row(depth, "}", plain=True))
        return

    if isinstance(con, construct.Switch):
        if con.default is not construct.Pass:
            raise UnknownConstruct(f"Switch with a default branch in field {field!r}")
        key = render_expr(con.keyfunc)
        groups: list[tuple[list, object]] = []
        for value, case in con.cases.items():
            for group in groups:
                if group[1] is case:
                    group[0].append(value)
                    break
            else:
                groups.append(([value], case))
        for i, (values, case) in enumerate(groups):
            cond = " || ".join(f"{key} == {render_expr(v)}" for v in values)
            rows.append(Row(depth, f"{'} else ' if i else ''}if ({cond}) {{", "", "",
                            plain=True))
            walk(case, rows, depth + 1, field=field, clause=clause, names=names,
                 in_bits=in_bits, loop=loop)
        rows.append(Row(depth, "}", plain=True))
        return

    raise UnknownConstruct(f"construct type {type(con).__name__} ({con!r}) in field "
                           f"{field!r}: teach tools/gen_spec_tables.py how to present it")


def structure_rows(name: str) -> list[Row]:
    if name not in rsyntax.STRUCTURES:
        raise SpecBlockError(f"no structure {name!r} in refcodec.syntax.STRUCTURES")
    con = rsyntax.STRUCTURES[name]
    names = named_structures()
    rows = [Row(0, f"{name}( ) {{", plain=True)]
    walk(con, rows, 1, field=None, clause="", names=names, top=True)
    rows.append(Row(0, "}", plain=True))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def block_locations(spec_dir: Path = SPEC_DIR) -> dict[str, str]:
    """Block name -> clause id of the last heading before the block."""
    found: dict[str, str] = {}
    for path in sorted(spec_dir.glob("*.md")):
        text = _strip_fences(path.read_text(encoding="utf-8"))
        marks = [(m.start(), "h", m.group(2)) for m in HEADING_RE.finditer(text)]
        marks += [(m.start(), "b", m.group("name")) for m in BLOCK_RE.finditer(text)]
        current = None
        for _, kind, value in sorted(marks):
            if kind == "h":
                idm = HEADING_ID_RE.match(value)
                current = idm.group(1) if idm else current
            elif current is not None:
                found.setdefault(value, current)
    return found


def render_structure(name: str, ctx: Context) -> str:
    lines = ["| Syntax element | Descriptor | Semantics clause |",
             "|:---|:---|:---|"]
    for row in structure_rows(name):
        element = f"{INDENT * row.depth}`{row.element}`"
        ref = row.clause
        if not ref and row.call and row.call in ctx.locations:
            ref = ctx.locations[row.call]   # a structure call without semantics: its table
        clause = ctx.link(ref) if ref else ""
        lines.append(f"| {_cell(element)} | {_cell(row.descriptor)} | {clause} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# Levels and enumerations
# ----------------------------------------------------------------------------------------

def _number(v: int) -> str:
    if v >= 1024 and v & (v - 1) == 0:
        return f"{v} (2^{v.bit_length() - 1})"
    return str(v)


def render_levels(ctx: Context) -> str:
    fields = [f.name for f in dataclasses.fields(renums.Level)]
    lines = ["| " + " | ".join(f"`{f}`" for f in fields) + " |",
             "|" + "|".join("---:" for _ in fields) + "|"]
    for idc, level in renums.LEVELS.items():
        if level.level_idc != idc:
            raise SpecBlockError(f"LEVELS[{idc}] has level_idc {level.level_idc}")
        values = dataclasses.asdict(level)
        lines.append("| " + " | ".join(_number(values[f]) for f in fields) + " |")
    return "\n".join(lines) + "\n"


#: Enumeration class -> the syntax element it gives values to (its descriptor gives the
#: value range, so the reserved values can be listed).
ENUM_FIELDS = {
    "UnitType": ("unit", "unit_type"),
    "Profile": ("stream_header", "profile_idc"),
    "SourceLayout": ("layer_header", "source_layout"),
    "SourceDtype": ("layer_header", "source_dtype"),
    "QuantizerType": ("layer_header", "quantizer_type"),
    "PackingType": ("layer_header", "packing_type"),
    "PadMode": ("layer_header", "pad_mode"),
    "PayloadCodec": ("layer_header", "payload_codec"),
    "ParamFormat": ("layer_header_ext", "param_format"),
    "PermutationCoding": ("layer_header_ext", "permutation_coding"),
    "Embedder": ("face_base", "embedder_idc"),
    "PredictorType": ("face_enhancement", "predictor_type"),
    "TextureCodec": ("face_enhancement", "texture_codec"),
}


def _field_bits(struct_name: str, field: str) -> int:
    for sc in rsyntax.STRUCTURES[struct_name].subcons:
        if sc.name == field:
            desc = scalar_descriptor(_unwrap_renamed(sc)[2], in_bits=False)
            m = re.fullmatch(r"u\((\d+)\)", desc or "")
            if not m:
                raise UnknownConstruct(f"{struct_name}.{field} is {desc}, not u(n)")
            return int(m.group(1))
    raise SpecBlockError(f"no field {field} in {struct_name}()")


def _ranges(values: list[int]) -> str:
    parts, start = [], None
    for v in values + [None]:
        if start is None:
            start = prev = v
        elif v is not None and v == prev + 1:
            prev = v
        else:
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = prev = v
    return ", ".join(parts)


def render_enum(class_name: str, ctx: Context) -> str:
    cls = getattr(renums, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, enum.IntEnum)):
        raise SpecBlockError(f"refcodec.enums has no IntEnum {class_name}")
    if class_name not in ENUM_FIELDS:
        raise SpecBlockError(f"{class_name}: add it to ENUM_FIELDS in {Path(__file__).name}")
    struct_name, field = ENUM_FIELDS[class_name]
    bits = _field_bits(struct_name, field)
    known = sorted(int(m) for m in cls)
    reserved = [v for v in range(1 << bits) if v not in known]
    lines = [f"| `{field}` | Name |", "|---:|:---|"]
    for member in sorted(cls, key=int):
        lines.append(f"| {int(member)} | `{member.name}` |")
    if reserved:
        lines.append(f"| {_ranges(reserved)} | reserved |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# Shipped predictors (Annex E)
# ----------------------------------------------------------------------------------------

PREDICTOR_BLOCK = "predictor:"


def shipped_predictor_ids() -> list[str]:
    """predictor_id of every weights file refcodec ships (refcodec/face/weights/)."""
    from refcodec.face import predictor as rpredictor
    return sorted(rpredictor.shipped_predictors())


def render_predictor(predictor_id: str, ctx: Context) -> str:
    """Identity, geometry and layers of a shipped predictor, read from its weights file."""
    from refcodec.face import predictor as rpredictor
    shipped = rpredictor.shipped_predictors()
    if predictor_id not in shipped:
        raise SpecBlockError(f"refcodec ships no predictor {predictor_id!r} (weights files: "
                             f"{', '.join(sorted(shipped)) or 'none'})")
    pred = shipped[predictor_id]
    path = rpredictor.WEIGHTS_DIR / f"{predictor_id}{rpredictor.SUFFIX}"
    size = path.stat().st_size
    lines = ["| Property | Value |", "|:---|:---|",
             f"| predictor_id | `{predictor_id}` |",
             f"| weights file | `refcodec/face/weights/{path.name}`, {size} bytes |",
             f"| predictor_sha256 | `{pred.sha256.hex()}` |",
             f"| embedding_dim | {pred.embedding_dim} |",
             f"| output (height x width x channels) | {pred.height} x {pred.width} x "
             f"{pred.channels}, window at crop_top {pred.crop_top}, crop_left "
             f"{pred.crop_left} |",
             f"| parameters | {pred.num_parameters} |",
             "",
             "| Layer | in_channels | out_channels | kernel | stride | padding | activation | "
             "output size |",
             "|---:|---:|---:|---:|---:|---:|:---|:---|"]
    h = w = 1
    for i, layer in enumerate(pred.layers):
        h, w = layer.out_size(h), layer.out_size(w)
        lines.append(f"| {i} | {layer.in_channels} | {layer.out_channels} | {layer.kernel} | "
                     f"{layer.stride} | {layer.padding} | {layer.activation} | "
                     f"{layer.out_channels} x {h} x {w} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------

def renderer_for(name: str):
    """The renderer of block ``name`` (a callable Context -> text), or None."""
    if name in rsyntax.STRUCTURES:
        return lambda ctx: render_structure(name, ctx)
    if name == "levels":
        return render_levels
    if name.startswith("enum_"):
        cls = name[len("enum_"):]
        return lambda ctx: render_enum(cls, ctx)
    if name.startswith(PREDICTOR_BLOCK):
        pid = name[len(PREDICTOR_BLOCK):]
        return lambda ctx: render_predictor(pid, ctx)
    return None


def required_blocks() -> set[str]:
    """Blocks this tool must find somewhere in spec/: every structure, the levels, every
    enumeration and every predictor refcodec ships."""
    return (set(rsyntax.STRUCTURES) | {"levels"} | {f"enum_{c}" for c in ENUM_FIELDS}
            | {f"{PREDICTOR_BLOCK}{pid}" for pid in shipped_predictor_ids()})


def block_names(text: str) -> list[str]:
    return [m.group("name") for m in BLOCK_RE.finditer(text)]


def check_markers(text: str, filename: str) -> None:
    """Every BEGIN has its END and no marker stands alone."""
    matched = sum(2 for _ in BLOCK_RE.finditer(text))
    total = len(ANY_MARKER_RE.findall(text))
    if matched != total:
        raise SpecBlockError(f"{filename}: unbalanced GENERATED markers")


def rewrite(text: str, filename: str, get_renderer, ctx: Context) -> tuple[str, list[str]]:
    """Replace the body of every block that ``get_renderer`` knows; return the new text
    and the names of the blocks whose body changed.  Blocks of other owners are kept."""
    check_markers(text, filename)
    changed: list[str] = []

    def repl(m: re.Match) -> str:
        name = m.group("name")
        render = get_renderer(name)
        if render is None:
            return m.group(0)
        body = render(dataclasses.replace(ctx, from_file=filename))
        if body != m.group("body"):
            changed.append(name)
        return m.group("begin") + body + m.group("end")

    return BLOCK_RE.sub(repl, text), changed


def run(spec_dir: Path, get_renderer, required: set[str], *, check: bool) -> list[str]:
    """Rewrite (or check) every spec file; return the problems found (empty = up to date)."""
    ctx = Context.of(spec_dir)
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in sorted(spec_dir.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for name in block_names(text):
            if get_renderer(name) is None:
                continue
            if name in seen:
                problems.append(f"{path.name}: block {name!r} also appears in {seen[name]}")
            seen[name] = path.name
        new, changed = rewrite(text, path.name, get_renderer, ctx)
        for name in changed:
            problems.append(f"{path.name}: table {name!r} is stale")
        if new != text and not check:
            path.write_text(new, encoding="utf-8")
    for name in sorted(required - set(seen)):
        problems.append(f"no '<!-- BEGIN GENERATED: {name} -->' block in spec/*.md")
    if check:
        return problems
    # after rewriting only missing/duplicate blocks remain problems
    return [p for p in problems if "is stale" not in p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a generated table is stale")
    parser.add_argument("--spec-dir", type=Path, default=SPEC_DIR)
    args = parser.parse_args(argv)
    problems = run(args.spec_dir, renderer_for, required_blocks(), check=args.check)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        if args.check:
            print("run: python tools/gen_spec_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
