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
    assert users == ["bitstream.py", "syntax/__init__.py"]


def test_arithmetic_modules_are_pure():
    for name in ("quant.py", "packing.py", "records.py", "enums.py", "errors.py"):
        names = modules()[name]
        assert not names & {"construct", "av", ".bitstream", ".syntax", ".codec", ".cli"}, name


def test_syntax_depends_on_nothing_in_the_package():
    assert not any(n.startswith(".") for n in modules()["syntax/__init__.py"])
