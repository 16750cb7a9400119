"""The specification (spec/*.md) agrees with the reference software (refcodec/).

* the generated tables and examples are up to date (both generators in check mode);
* every clause id the code reports, names in a syntax field doc or mentions as "clause N"
  is a heading of spec/;
* every "It is a requirement of bitstream conformance that" sentence carries a clause tag,
  and the clause is checked by the reference decoder (its id is passed to an error) or the
  sentence is marked "(not checkable by a decoder)" (clause 12.1);
* the format version of spec/00-index.md is refcodec.FORMAT_VERSION;
* the level table is refcodec.enums.LEVELS;
* relative links of spec/ resolve.

Each check is a function of the spec and code directories, so the ``*_detects_*`` tests can
run it on altered copies and show that it fails when it should.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

import refcodec
from refcodec import enums, syntax
from refcodec.conformance.requirements import read_requirements, requirement_ids

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "spec"
CODE_DIR = ROOT / "refcodec"
TOOLS_DIR = ROOT / "tools"

REQUIREMENT = "It is a requirement of bitstream conformance that"
NOT_CHECKABLE = "(not checkable by a decoder)"
#: A clause id as the code reports it: "8.1.1", "11.2", "10.6".
CLAUSE_ID = re.compile(r"[1-9][0-9]?(?:\.[0-9]+){1,3}")

#: Requirements a decoder could check but the reference decoder does not check yet (no error
#: carries their clause id).  Each entry must still be a gap: test_known_gaps_are_gaps fails
#: once the code reports the clause, so that the entry is removed.
KNOWN_UNCHECKED: dict[str, str] = {
    # "10.2": "needs an SPS parser" -- the form of an entry; none is open at present.
}


def _load_tool(name: str):
    if str(TOOLS_DIR) not in sys.path:
        sys.path.insert(0, str(TOOLS_DIR))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables():
    return _load_tool("gen_spec_tables")


def _hevc_available() -> bool:
    try:
        import av
        av.codec.Codec("libx265", "w")
        av.codec.Codec("hevc", "r")
    except Exception:  # noqa: BLE001 - any failure means: no HEVC here
        return False
    return True


# ----------------------------------------------------------------------------------------
# Collectors (functions of a directory, so that altered copies can be checked)
# ----------------------------------------------------------------------------------------

def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and CLAUSE_ID.fullmatch(n.value)}


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)


def _params(func, is_method: bool) -> list[str]:
    """Positional parameter names of a def, without the self/cls of a method."""
    names = [a.arg for a in func.args.posonlyargs + func.args.args]
    return names[1:] if is_method and names else names


def _default(func, name: str):
    """The default expression of parameter ``name`` of a def, or None."""
    args = func.args
    positional = args.posonlyargs + args.args
    for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults,
                            strict=True):
        if arg.arg == name:
            return default
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if arg.arg == name:
            return default
    return None


def clause_methods(code_dir: Path) -> dict[str, tuple[ast.FunctionDef, bool]]:
    """Method name -> (a method of the package's classes with a ``clause`` parameter, whether
    the name is ambiguous), for the names whose every such method has it at the same position
    (Reader.fail and Located.fail, say); calls on objects other than self go to one of them.
    A name is ambiguous when another class has a method of that name without ``clause``
    (RbspReader.fail): such a call is followed only when its argument there is a clause id."""
    found: dict[str, list] = {}
    other: set[str] = set()
    for path in sorted(code_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for item in cls.body:
                if isinstance(item, _FUNCTION):
                    if "clause" in _params(item, True):
                        found.setdefault(item.name, []).append(item)
                    else:
                        other.add(item.name)
    return {name: (defs[0], name in other) for name, defs in found.items()
            if len({_params(d, True).index("clause") for d in defs}) == 1}


def _scan_file(path: Path, rel: Path, found: dict[str, set[str]],
               unresolved: list[str], methods: dict | None = None) -> None:
    """reported_clause_ids for one source file."""
    methods = methods or {}
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parents = _parents(tree)

    def ancestors(node):
        while node in parents:
            node = parents[node]
            yield node

    def helper(call: ast.Call):
        """The def a call goes to, when the code defines it in a findable scope."""
        f = call.func
        if isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name)
                                                 and f.value.id == "self"):
            # obj.method(...): a method of that name defined in the package whose clause
            # parameter is at the same place in every definition that has one
            found = methods.get(f.attr)
            if found is not None:
                ambiguous.add(id(call))
            return found and found[0]
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                and f.value.id == "self":
            cls = next((a for a in ancestors(call) if isinstance(a, ast.ClassDef)), None)
            if cls is not None:
                for item in cls.body:
                    if isinstance(item, _FUNCTION) and item.name == f.attr:
                        return item
            return None
        if isinstance(f, ast.Name):
            for scope in list(ancestors(call)):
                if isinstance(scope, (*_FUNCTION, ast.Module)):
                    for item in scope.body:
                        if isinstance(item, _FUNCTION) and item.name == f.id:
                            return item
                        if isinstance(item, ast.ClassDef) and item.name == f.id:
                            # constructing a class of this file: its __init__ (an error
                            # class whose clause parameter has a default, for instance)
                            return next((m for m in item.body if isinstance(m, _FUNCTION)
                                         and m.name == "__init__"), None)
        return None

    def resolve(expr: ast.AST, at: ast.AST) -> set[str] | None:
        ids = _strings(expr)
        if ids:
            return ids
        if isinstance(expr, ast.Attribute) and expr.attr == "clause":
            return set()                               # re-raising a reported clause
        if isinstance(expr, ast.Constant) and expr.value is None:
            return set()
        if isinstance(expr, ast.Name):
            for func in (a for a in ancestors(at) if isinstance(a, _FUNCTION)):
                if expr.id in {a.arg for a in func.args.posonlyargs + func.args.args
                               + func.args.kwonlyargs}:
                    return set()                       # forwarded from the caller
                assigned = set()
                for node in ast.walk(func):
                    if isinstance(node, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == expr.id
                            for t in node.targets):
                        assigned |= _strings(node.value)
                if assigned:
                    return assigned
        return None

    ambiguous: set[int] = set()

    def record(expr, node):
        ids = resolve(expr, node)
        if ids is None and id(node) in ambiguous and methods[node.func.attr][1]:
            return       # obj.fail(...) of a class whose fail takes no clause
        if ids is None:
            unresolved.append(f"{rel}:{node.lineno}: {ast.unparse(expr)}")
        for clause in ids or ():
            found.setdefault(clause, set()).add(f"{rel}:{node.lineno}")

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "clause":
                record(kw.value, node)
        func = helper(node)
        if func is None or any(kw.arg == "clause" for kw in node.keywords):
            continue
        names = _params(func, isinstance(parents.get(func), ast.ClassDef)
                        or any(func is m for m, _ in methods.values()))
        if "clause" in names and names.index("clause") < len(node.args):
            record(node.args[names.index("clause")], node)
        elif "clause" in names or "clause" in {a.arg for a in func.args.kwonlyargs}:
            default = _default(func, "clause")
            if default is not None:
                record(default, func)


def reported_clause_ids(code_dir: Path = CODE_DIR) -> tuple[dict[str, set[str]], list[str]]:
    """Clause ids the code passes to its errors, as {clause: {file:line}}, and the clause
    arguments the collector could not follow.

    A clause reaches an error as the ``clause=`` keyword of a call, or as the argument bound
    to a parameter named ``clause`` of a helper defined in the code (found by scope: a method
    of the caller's class for ``self.f(...)``, else an enclosing or module-level def, or the
    ``__init__`` of a class defined there; for ``obj.f(...)``, a method ``f`` of the
    package's classes, clause_methods), or as that parameter's default.  A variable is
    followed through its assignments in the enclosing functions; a parameter (or
    ``exc.clause``) just forwards a clause reported elsewhere.
    """
    found: dict[str, set[str]] = {}
    unresolved: list[str] = []
    methods = clause_methods(code_dir)
    for path in sorted(code_dir.rglob("*.py")):
        _scan_file(path, path.relative_to(code_dir.parent), found, unresolved, methods)
    return found, unresolved


def syntax_doc_clause_ids() -> dict[str, set[str]]:
    """Clause ids of the field docs of refcodec.syntax (every field of every structure)."""
    import construct
    found: dict[str, set[str]] = {}

    def visit(con, where):
        while isinstance(con, construct.Renamed):
            if con.docs:
                found.setdefault(con.docs, set()).add(f"syntax {where}.{con.name}")
            con = con.subcon
        for attr in ("subcons",):
            for sc in getattr(con, attr, []) or []:
                visit(sc, where)
        for attr in ("subcon", "thensubcon"):
            sub = getattr(con, attr, None)
            if isinstance(sub, construct.Construct):
                visit(sub, where)
        for case in (getattr(con, "cases", None) or {}).values():
            visit(case, where)

    for name, con in syntax.STRUCTURES.items():
        visit(con, name)
    return found


MENTION = re.compile(r"\bclauses?\s+([0-9]+(?:\.[0-9]+)*(?:(?:\s*,\s*|\s+and\s+|\s+or\s+)"
                     r"[0-9]+(?:\.[0-9]+)*)*)")


def mentioned_clause_ids(code_dir: Path = CODE_DIR) -> dict[str, set[str]]:
    """Clause ids named in the code's comments and doc strings as 'clause N' / 'clauses N and M'."""
    found: dict[str, set[str]] = {}
    for path in sorted(code_dir.rglob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in MENTION.finditer(line):
                for clause in re.findall(r"[0-9]+(?:\.[0-9]+)*", m.group(1)):
                    found.setdefault(clause, set()).add(
                        f"{path.relative_to(code_dir.parent)}:{lineno}")
    return found


@dataclasses.dataclass(frozen=True)
class Requirement:
    file: str
    line: int
    clause: str | None      # None: a requirement sentence without an identifier
    text: str
    id: str | None = None

    @property
    def not_checkable(self) -> bool:
        return NOT_CHECKABLE in " ".join(self.text.split())


def requirements(spec_dir: Path = SPEC_DIR) -> list[Requirement]:
    """Every requirement of spec/ (refcodec.conformance.requirements reads them), and each
    requirement sentence without an identifier as one with clause None."""
    found, problems = read_requirements(spec_dir)
    return ([Requirement(r.file, r.line, r.clause, r.text, r.id) for r in found]
            + [Requirement(p.file, p.line, None, p.text) for p in problems])


def spec_clause_headings(spec_dir: Path, tables) -> dict:
    return tables.spec_headings(spec_dir)


def level_table(spec_dir: Path, tables) -> list[dict[str, int]]:
    text = (spec_dir / "11-profiles-levels.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- BEGIN GENERATED: levels -->\n(.*?)<!-- END GENERATED -->", text, re.S)
    assert m, "no levels block in 11-profiles-levels.md"
    lines = [line for line in m.group(1).splitlines() if line.startswith("|")]
    header = [c.strip().strip("`") for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append({name: int(re.match(r"\d+", cell).group(0))
                     for name, cell in zip(header, cells, strict=True)})
    return rows


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def broken_links(spec_dir: Path, tables) -> list[str]:
    slugs: dict[str, set[str]] = {}
    for path in spec_dir.glob("*.md"):
        text = tables._strip_fences(path.read_text(encoding="utf-8"))
        slugs[path.name] = {tables.github_slug(m.group(2))
                            for m in tables.HEADING_RE.finditer(text)}
    bad = []
    for path in sorted(spec_dir.glob("*.md")):
        text = tables._strip_fences(path.read_text(encoding="utf-8"))
        for m in LINK.finditer(text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            file = file or path.name
            if file not in slugs:
                if not (spec_dir / file).exists():
                    bad.append(f"{path.name}: link to missing file {target}")
                continue
            if anchor and anchor not in slugs[file]:
                bad.append(f"{path.name}: link to missing anchor {target}")
    return bad


def spec_version(spec_dir: Path) -> list[str]:
    text = (spec_dir / "00-index.md").read_text(encoding="utf-8")
    return re.findall(r"format version\s+(\d+\.\d+)", text, re.I)


# ----------------------------------------------------------------------------------------
# Generated content
# ----------------------------------------------------------------------------------------

def test_generated_tables_are_up_to_date(tables):
    problems = tables.run(SPEC_DIR, tables.renderer_for, tables.required_blocks(), check=True)
    assert problems == [], "\n".join(problems) + "\nrun: python tools/gen_spec_tables.py"


@pytest.mark.hevc
def test_generated_examples_are_up_to_date(tables):
    if not _hevc_available():
        pytest.skip("PyAV without libx265 / the HEVC decoder")
    examples = _load_tool("gen_spec_examples")
    problems = tables.run(SPEC_DIR, examples.renderer_for, set(examples.RENDERERS), check=True)
    assert problems == [], "\n".join(problems) + "\nrun: python tools/gen_spec_examples.py"


def test_every_generated_block_has_one_owner(tables):
    examples = _load_tool("gen_spec_examples")
    for path in sorted(SPEC_DIR.glob("*.md")):
        for name in tables.block_names(path.read_text(encoding="utf-8")):
            owners = [tool for tool, known in (("gen_spec_tables", tables.renderer_for(name)),
                                               ("gen_spec_examples", examples.renderer_for(name)))
                      if known is not None]
            assert len(owners) == 1, \
                f"{path.name}: block {name!r} is owned by {owners or 'no tool'}"


def test_table_tool_check_mode_reports_a_stale_table(tables, tmp_path):
    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec)
    page = spec / "07-syntax.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| u(32) |", "| u(31) |", 1),
                    encoding="utf-8")
    assert tables.main(["--check", "--spec-dir", str(spec)]) == 1
    assert tables.main(["--spec-dir", str(spec)]) == 0          # rewrites it
    assert tables.main(["--check", "--spec-dir", str(spec)]) == 0
    assert page.read_text(encoding="utf-8") == (SPEC_DIR / "07-syntax.md").read_text(
        encoding="utf-8")


def test_table_tool_reports_a_missing_block(tables, tmp_path):
    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec)
    page = spec / "07-syntax.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(re.sub(r"<!-- BEGIN GENERATED: tile_grid -->.*?<!-- END GENERATED -->\n",
                           "", text, flags=re.S), encoding="utf-8")
    problems = tables.run(spec, tables.renderer_for, tables.required_blocks(), check=True)
    assert any("tile_grid" in p for p in problems)


@pytest.mark.parametrize("field", [
    "Int32sb", "Float64b", "Int32ul", "lambda_count", "parent_path", "VarInt", "anonymous_struct",
])
def test_table_tool_fails_loudly_on_unknown_constructs(tables, field, monkeypatch):
    import construct as c
    odd = {
        "Int32sb": c.Int32sb,
        "Float64b": c.Float64b,
        "Int32ul": c.Int32ul,
        "lambda_count": c.Array(lambda ctx: 2, c.Int8ub),
        "parent_path": c.Bytes(c.this._.num_channels),
        "VarInt": c.VarInt,
        "anonymous_struct": c.Struct("a" / c.Int8ub),
    }[field]
    probe = c.Struct("num_channels" / c.Int8ub * "8.3.4", "x" / odd * "8.3.4")
    monkeypatch.setitem(syntax.STRUCTURES, "probe", probe)
    with pytest.raises(tables.UnknownConstruct):
        tables.structure_rows("probe")


def test_table_tool_renders_expressions(tables):
    import construct as c
    assert tables.render_expr(c.this.layer_flags.channel_permutation_flag) \
        == "channel_permutation_flag"
    assert tables.render_expr(c.this.packing_type == 1) == "packing_type == 1"
    assert tables.render_expr(c.len_(c.this.layer_id)) == "len(layer_id)"
    assert tables.render_expr(syntax.Expr(lambda ctx: 1, "a ? b : 1")) == "a ? b : 1"


# ----------------------------------------------------------------------------------------
# Clause ids
# ----------------------------------------------------------------------------------------

def test_clause_collector_finds_the_code_checks():
    found, unresolved = reported_clause_ids()
    assert unresolved == [], "clause arguments the test cannot follow:\n" + "\n".join(unresolved)
    # a few ids that are passed in each of the ways the collector knows
    for clause in ("8.1.1",    # positional argument of self.stop
                   "8.3.2",    # through a variable assigned from a dict
                   "8.1.5",    # one arm of a conditional expression
                   "8.4.1",    # clause= keyword (codec.py)
                   "10.6",     # clause= keyword (hevc/pyav.py)
                   "13.3.6"):  # default of the clause parameter of an error class's __init__
                               # (face/entropy.py)
        assert clause in found, clause


def test_every_clause_id_of_the_code_is_a_spec_heading(tables):
    headings = tables.spec_headings(SPEC_DIR)
    reported, _ = reported_clause_ids()
    missing = []
    for source, ids in (("reported by", reported), ("field doc in", syntax_doc_clause_ids()),
                        ("mentioned in", mentioned_clause_ids())):
        for clause, where in sorted(ids.items()):
            if clause not in headings:
                missing.append(f"clause {clause} ({source} {', '.join(sorted(where))})")
    assert missing == [], "clause ids with no heading in spec/:\n" + "\n".join(missing)


def test_requirements_carry_a_clause_tag():
    reqs = requirements()
    assert len(reqs) > 40
    untagged = [f"{r.file}:{r.line}: {r.text[:70]}..." for r in reqs if r.clause is None]
    assert untagged == [], "requirements without a [clause] tag:\n" + "\n".join(untagged)


def test_requirement_tags_are_spec_clauses(tables):
    headings = tables.spec_headings(SPEC_DIR)
    bad = [f"{r.file}:{r.line}: [{r.clause}]" for r in requirements()
           if r.clause not in headings]
    assert bad == [], "requirement tags that are not headings:\n" + "\n".join(bad)


def test_requirements_are_checked_or_marked_not_checkable():
    reported, _ = reported_clause_ids()
    unchecked = [f"{r.file}:{r.line}: [{r.clause}] {r.text[:70]}..." for r in requirements()
                 if r.clause not in reported and not r.not_checkable
                 and r.clause not in KNOWN_UNCHECKED]
    assert unchecked == [], (
        "requirements whose clause id no error of refcodec/ carries; check them in the "
        f"decoder or mark them {NOT_CHECKABLE!r}:\n" + "\n".join(unchecked))


def test_known_gaps_are_gaps():
    reported, _ = reported_clause_ids()
    tags = {r.clause for r in requirements()}
    for clause, why in KNOWN_UNCHECKED.items():
        assert clause in tags, f"KNOWN_UNCHECKED[{clause!r}] is not a requirement of spec/"
        assert clause not in reported, (
            f"refcodec now reports clause {clause} ({sorted(reported[clause])}): remove it "
            f"from KNOWN_UNCHECKED (listed because: {why})")


def test_not_checkable_marker_is_documented():
    text = (SPEC_DIR / "12-conformance.md").read_text(encoding="utf-8")
    assert NOT_CHECKABLE in text
    assert any(r.not_checkable for r in requirements())


def test_requirement_checker_detects_untagged_and_unchecked(tmp_path):
    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec)
    page = spec / "08-semantics.md"
    page.write_text(page.read_text(encoding="utf-8") +
                    f"\n{REQUIREMENT} a new rule holds.\n\n"
                    f"[9.4-a] {REQUIREMENT} another rule holds.\n\n"
                    f"[9.5] {REQUIREMENT} an old-style tag.\n\n"
                    f"{REQUIREMENT}:\n\n- [9.6-a] a tagged item;\n- an untagged item.\n",
                    encoding="utf-8")
    reqs = requirements(spec)
    reported, _ = reported_clause_ids()
    untagged = [r.text for r in reqs if r.clause is None]
    assert len(untagged) == 3, untagged
    assert any("old-style" in t for t in untagged) and "- an untagged item." in untagged
    assert any(r.id == "9.6-a" for r in reqs)
    assert any(r.clause == "9.4" and r.clause not in reported and not r.not_checkable
               for r in reqs)


def test_requirement_ids_are_unique_and_consecutive():
    """Each clause's requirements are lettered a, b, c, ... without a gap or a repeat
    (clause 4.6)."""
    ids = requirement_ids()        # raises on a repeated identifier
    by_clause: dict[str, list[str]] = {}
    for rid in ids:
        clause, _, letter = rid.partition("-")
        by_clause.setdefault(clause, []).append(letter)
    bad = {c: ls for c, ls in by_clause.items()
           if sorted(ls) != [chr(ord("a") + i) for i in range(len(ls))]}
    assert bad == {}, f"requirement letters with gaps: {bad}"
    assert len(ids) > 100


def test_repeated_requirement_id_is_refused(tmp_path):
    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec)
    page = spec / "08-semantics.md"
    page.write_text(page.read_text(encoding="utf-8") +
                    f"\n[8.1.3-a] {REQUIREMENT} profile_idc is 1 again.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="8.1.3-a is given twice"):
        requirement_ids(spec)


def test_clause_collector_detects_an_unknown_clause(tmp_path, tables):
    code = tmp_path / "refcodec"
    shutil.copytree(CODE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    (code / "extra.py").write_text(
        "from .errors import ConformanceViolation\n"
        "def check(x):\n"
        "    clause = '8.9.9'\n"
        "    raise ConformanceViolation('x shall be 0', clause=clause)\n", encoding="utf-8")
    reported, _ = reported_clause_ids(code)
    assert "8.9.9" in reported
    assert "8.9.9" not in tables.spec_headings(SPEC_DIR)


# ----------------------------------------------------------------------------------------
# Version, levels, links
# ----------------------------------------------------------------------------------------

def test_spec_version_is_the_format_version():
    versions = spec_version(SPEC_DIR)
    assert versions, "spec/00-index.md does not state 'format version X.Y'"
    assert set(versions) == {refcodec.FORMAT_VERSION}
    history = (SPEC_DIR / "annex-d-history.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| {re.escape(refcodec.FORMAT_VERSION)} \|", history, re.M), \
        "Annex D has no row for the current format version"


def test_level_table_is_refcodec_levels(tables):
    expected = [dataclasses.asdict(level) for level in enums.LEVELS.values()]
    assert level_table(SPEC_DIR, tables) == expected


def test_every_level_limit_is_explained():
    text = (SPEC_DIR / "11-profiles-levels.md").read_text(encoding="utf-8")
    prose = re.sub(r"<!-- BEGIN GENERATED:.*?<!-- END GENERATED -->", "", text, flags=re.S)
    for field in dataclasses.fields(enums.Level):
        if field.name != "level_idc":
            assert f"`{field.name}`" in prose, f"clause 11.2 does not explain {field.name}"


def test_level_checker_detects_a_wrong_value(tmp_path, tables):
    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec)
    page = spec / "11-profiles-levels.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| 10 | 16 |", "| 10 | 17 |"),
                    encoding="utf-8")
    expected = [dataclasses.asdict(level) for level in enums.LEVELS.values()]
    assert level_table(spec, tables) != expected


def test_spec_links_resolve(tables):
    assert broken_links(SPEC_DIR, tables) == []


def test_spec_revision_is_a_changelog_entry():
    index = (SPEC_DIR / "00-index.md").read_text(encoding="utf-8")
    m = re.search(r"Specification revision: \*\*\[([^\]]+)\]\*\*", index)
    assert m, "spec/00-index.md does not name its revision as **[name]**"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(m.group(1))}\]", changelog, re.M), \
        f"CHANGELOG.md has no entry [{m.group(1)}]"


# ----------------------------------------------------------------------------------------
# The pseudo-code of clause 9.3 is what refcodec.packing.unpack does
# ----------------------------------------------------------------------------------------

def untiling_pseudo_code(spec_dir: Path = SPEC_DIR) -> str:
    """The fenced pseudo-code of clause 9.3.1, translated line by line into Python."""
    text = (spec_dir / "09-decoding.md").read_text(encoding="utf-8")
    section = text[text.index("### 9.3.1"):text.index("### 9.3.2")]
    code = re.search(r"```\n(.*?)```", section, re.S).group(1)
    out = []
    for line in code.splitlines():
        line = re.sub(r"\s*//.*$", "", line).rstrip()
        line = re.sub(r"\s*[{}]\s*$", "", line)
        if not line.strip():
            continue
        m = re.fullmatch(r"(\s*)for \((\w+) = 0; \2 < (.+); \2\+\+\)", line)
        if m:
            line = f"{m.group(1)}for {m.group(2)} in range({m.group(3)}):"
        line = re.sub(r"\bdiv\b", "//", line)
        line = re.sub(r"\bmod\b", "%", line)
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("seed", range(12))
def test_untiling_pseudo_code_matches_packing(seed):
    import numpy as np
    from refcodec import packing
    rng = np.random.default_rng(seed)
    n, c, h, w = (int(v) for v in rng.integers(1, 5, size=4))
    rows, cols = (1, 1) if seed % 3 == 0 else (int(rng.integers(1, 4)), int(rng.integers(2, 4)))
    perm = tuple(int(v) for v in rng.permutation(c)) if seed % 2 else None
    lay = packing.Layout(n, c, h, w, rows, cols, -h % 8 + 8 * (seed % 2), -w % 8,
                         permutation=perm)
    ph, pw = lay.picture_shape
    pictures = rng.integers(0, 256, size=(lay.num_pictures, ph, pw))
    env = dict(batch_size=n, num_channels=c, height=h, width=w, T=lay.tiles, TileCols=cols,
               CodedTileHeight=lay.tile_height, CodedTileWidth=lay.tile_width,
               ChannelOrder=list(perm) if perm else list(range(c)),
               DecPic=pictures, Q=np.full((n, c, h, w), -1))
    exec(untiling_pseudo_code(), env)
    assert np.array_equal(env["Q"], packing.unpack(pictures, lay))


# ----------------------------------------------------------------------------------------
# The formulas of clause 9.4 are what refcodec.quant computes
# ----------------------------------------------------------------------------------------

def dequantization_formulas(spec_dir: Path = SPEC_DIR) -> dict[str, str]:
    """The indented formula blocks of clauses 9.4.1 to 9.4.3, as Python (by clause id)."""
    text = (spec_dir / "09-decoding.md").read_text(encoding="utf-8")
    out = {}
    for clause in ("9.4.1", "9.4.2", "9.4.3"):
        section = re.search(rf"### {re.escape(clause)} .*?\n(.*?)(?=\n### |\n## )", text, re.S)
        lines = [line[4:] for line in section.group(1).splitlines() if line.startswith("    ")]
        out[clause] = "\n".join(line.replace("−", "-") for line in lines) + "\n"
    return out


@pytest.mark.parametrize("depth", [8, 10, 12])
def test_dequantization_formulas_match_quant(depth):
    import numpy as np
    from refcodec import quant
    from refcodec.records import QuantParams
    formulas = dequantization_formulas()
    rng = np.random.default_rng(depth)
    q = np.arange(1 << depth, dtype=np.float64)
    for _ in range(20):
        lo, hi = sorted(float(np.float32(v)) for v in rng.normal(0, 10, size=2))
        for clause, qtype, params in (
                ("9.4.1", quant.UNIFORM, QuantParams(min_value=lo, max_value=hi)),
                ("9.4.2", quant.LOG, QuantParams(min_value=lo, max_value=hi)),
                ("9.4.3", quant.INTEGER, QuantParams(offset_value=float(round(lo))))):
            env = dict(q=q, D=np.float64((1 << depth) - 1), log2=np.log2, exp2=np.exp2,
                       min_value=np.float64(params.min_value or 0.0),
                       max_value=np.float64(params.max_value or 0.0),
                       offset_value=np.float64(params.offset_value or 0.0))
            exec(formulas[clause], env)
            expected = quant.reconstruction_table(qtype, params, depth)
            assert np.array_equal(env["v"].view(np.int64), expected.view(np.int64)), clause
