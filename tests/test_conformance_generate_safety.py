"""`refcodec conformance generate` deletes or overwrites only files a previous manifest of its
own lists, and only with --force (issue 14, item 1)."""

import json
from pathlib import Path

import pytest

from refcodec.cli import main

pytestmark = pytest.mark.hevc

TABLE = """\
name,purpose,channels,height,width,quantizer,bit_depth,qp,preset,layers,data,seed,dtype,channel_order
t_uni,tiny,2,8,8,uniform,8,40,ultrafast,1,relu,1,float32,
"""


def _generate(tmp_path, out, *extra):
    (tmp_path / "f.csv").write_text(TABLE)
    (tmp_path / "i.csv").write_text("name,alteration,base,purpose\n")
    return main(["conformance", "generate", str(tmp_path / "f.csv"), "-o", str(out), "-q",
                 "--invalid", str(tmp_path / "i.csv"), *extra])


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("existing", ["streams/mine.vfc", "reference/mine.npz",
                                      "streams/t_uni.vfc", "index.md", "streams/notes.txt"])
def test_no_manifest_refuses_a_folder_with_files(tmp_path, capsys, existing):
    out = tmp_path / "suite"
    (out / existing).parent.mkdir(parents=True)
    (out / existing).write_bytes(b"precious")
    before = _tree(out)
    assert _generate(tmp_path, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("refcodec: error: ")
    assert "no manifest.json" in err and existing in err
    assert _tree(out) == before                            # nothing deleted nor written
    assert _generate(tmp_path, out, "--force") == 2        # --force does not change that
    assert _tree(out) == before


def test_no_manifest_writes_into_an_empty_folder(tmp_path, capsys):
    out = tmp_path / "suite"
    (out / "streams").mkdir(parents=True)
    (out / "other.txt").write_text("not in streams/ or reference/")
    assert _generate(tmp_path, out) == 0
    assert sorted(_tree(out)) == ["index.md", "manifest.json", "other.txt",
                                  "reference/t_uni.npz", "streams/t_uni.vfc"]


def test_force_deletes_only_what_the_previous_manifest_lists(tmp_path, capsys):
    out = tmp_path / "suite"
    assert _generate(tmp_path, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # a previous manifest that also listed 'gone' (removed with --force) ...
    manifest["streams"].append({"name": "gone", "file": "streams/gone.vfc",
                                "reference": "reference/gone.npz"})
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "streams" / "gone.vfc").write_bytes(b"old")
    (out / "reference" / "gone.npz").write_bytes(b"old")
    # ... and files it never listed (kept)
    (out / "streams" / "user.vfc").write_bytes(b"user")
    (out / "reference" / "user.npz").write_bytes(b"user")
    assert _generate(tmp_path, out) == 2                   # no --force: refused
    assert (out / "streams" / "gone.vfc").exists()
    assert _generate(tmp_path, out, "--force") == 0
    tree = _tree(out)
    assert "streams/gone.vfc" not in tree and "reference/gone.npz" not in tree
    assert tree["streams/user.vfc"] == b"user" and tree["reference/user.npz"] == b"user"


def test_unreadable_manifest_is_not_ours(tmp_path, capsys):
    out = tmp_path / "suite"
    assert _generate(tmp_path, out) == 0
    (out / "manifest.json").write_text("{ not json")
    before = _tree(out)
    capsys.readouterr()
    assert _generate(tmp_path, out, "--force") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable manifest" in err
    assert _tree(out) == before
