"""Import direction: syntax <- bitstream <- codec <- cli; arithmetic modules stay pure."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "refcodec"


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names.add(("." * node.level) + mod)
            if node.level == 0:
                names.add(mod.split(".")[0])
    return names


def modules():
    return {p.relative_to(PKG).as_posix(): imports(p) for p in PKG.rglob("*.py")}


def test_only_pyav_backend_imports_av():
    users = sorted(m for m, names in modules().items() if "av" in names)
    assert users == ["hevc/pyav.py"]


def test_only_syntax_and_bitstream_import_construct():
    users = sorted(m for m, names in modules().items() if "construct" in names)
    assert users and all(m.startswith("bitstream/") for m in users if m != "syntax/__init__.py")
    assert "syntax/__init__.py" in users


def test_arithmetic_modules_are_pure():
    for name in ("quant.py", "packing.py", "records.py", "enums.py", "errors.py"):
        names = modules()[name]
        assert not names & {"construct", "av", ".bitstream", ".syntax", ".codec", ".cli"}, name


def test_syntax_depends_on_nothing_in_the_package():
    assert not any(n.startswith(".") for n in modules()["syntax/__init__.py"])


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside functions
    (a deferred import is a dependency all the same).  ``from .x import y`` depends on the
    submodule x.y when there is one, else on x."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in files else mod
                           for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    deps.add(t)   # a module's own parent packages are not dependencies
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_layers_and_faces_sit_below_the_stream_assembly():
    graph = import_graph()
    for unit in ("refcodec.layer", "refcodec.face.codec", "refcodec.ids"):
        assert "refcodec.codec" not in graph[unit], unit
    assert "refcodec.layer" not in graph["refcodec.face.codec"]
    assert {"refcodec.layer", "refcodec.face.codec"} <= graph["refcodec.codec"]
