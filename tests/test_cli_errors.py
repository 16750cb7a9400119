"""The command line's error model on bad input (issue 14, items 2, 4, 5 and 6): one line
`refcodec: error: ...`, exit 2, no traceback, no file left behind."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refcodec.cli import build_parser, main

pytestmark = pytest.mark.hevc


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    return err.count("\n") == 1 and err.startswith("refcodec: error: ")


@pytest.fixture
def stream(tmp_path):
    x = np.arange(2 * 16 * 16, dtype=np.float32).reshape(1, 2, 16, 16)
    np.save(tmp_path / "x.npy", x)
    assert main(["encode", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.vfc"), "-q",
                 "--preset", "ultrafast"]) == 0
    return tmp_path / "x.vfc"


# ---- item 2 ----

def test_eval_writes_out_eval_by_default():
    args = build_parser().parse_args(["eval"])
    assert args.out == "out/eval"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import eval as tools_eval   # noqa: F401 - tools/eval.py shares the options
    assert "-o docs/eval" in tools_eval.__doc__
    gitignore = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert "/out/" in gitignore


# ---- item 4 ----

@pytest.mark.parametrize("command", ["decode", "encode"])
def test_output_path_checked_before_any_work(tmp_path, stream, capsys, command):
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "dir.vfc").mkdir()
    src = stream if command == "decode" else tmp_path / "x.npy"
    ext = ".npz" if command == "decode" else ".vfc"
    for out, what in ((tmp_path / f"dir{ext}", "is a directory"),
                      (tmp_path / "missing" / f"o{ext}", "does not exist")):
        before = sorted(p.name for p in tmp_path.rglob("*"))
        code, _, err = run(capsys, command, src, "-o", out)
        assert code == 2 and one_line(err) and what in err and ".tmp" not in err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_directory(tmp_path, stream, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run(capsys, "decode", stream, "-o", locked / "o.npz")
        assert code == 2 and one_line(err) and "not writable" in err
    finally:
        locked.chmod(0o755)


# The child takes SIGINT as Python does by default whatever it inherits: a test run started
# in the background by a shell without job control (`cmd &`) ignores SIGINT, and so would
# the child, which is the shell's rule and not refcodec's.
CHILD = """
import signal, sys, time, numpy as np
signal.signal(signal.SIGINT, signal.default_int_handler)
real = np.savez
def slow(fh, **arrays):
    real(fh, **arrays)
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
np.savez = slow
from refcodec.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_writing_leaves_no_file(tmp_path, stream, sig):
    out = tmp_path / "out.npz"
    child = subprocess.Popen([sys.executable, "-c", CHILD, "decode", str(stream), "-o",
                              str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        assert any(p.name.startswith(".out.npz.") for p in tmp_path.iterdir())
        child.send_signal(sig)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    if sig == signal.SIGTERM:
        assert child.returncode == -signal.SIGTERM       # ended as killed by SIGTERM
    assert "Traceback" not in child.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "x.vfc"]


# ---- item 5 ----

def test_empty_layer_id_refused(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.ones((1, 1, 16, 16), np.float32))
    code, _, err = run(capsys, "encode", tmp_path / "x.npy", "-o", tmp_path / "x.vfc",
                       "--layer-id", "")
    assert code == 2 and one_line(err) and "--layer-id" in err
    assert not (tmp_path / "x.vfc").exists()


def test_meta_and_sparse_pt_refused(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    for name, t in (("meta", torch.empty((1, 1, 16, 16), device="meta")),
                    ("sparse", torch.ones((1, 1, 16, 16)).to_sparse())):
        torch.save({"a": t}, tmp_path / f"{name}.pt")
        code, _, err = run(capsys, "encode", tmp_path / f"{name}.pt", "-o", tmp_path / "o.vfc")
        assert code == 2 and one_line(err) and ("meta" in err or "dense" in err), err
    assert not (tmp_path / "o.vfc").exists()


# ---- item 6 ----

def test_inputs_that_are_not_regular_files(tmp_path, stream, capsys):
    fifo = tmp_path / "fifo.vfc"
    os.mkfifo(fifo)
    (tmp_path / "d.npy").mkdir()
    cases = [(["info", tmp_path], "is a directory"),
             (["decode", tmp_path, "-o", tmp_path / "o.npz"], "is a directory"),
             (["decode", fifo, "-o", tmp_path / "o.npz"], "is not a regular file"),
             (["info", "/dev/null"], "is not a regular file"),
             (["encode", tmp_path / "d.npy", "-o", tmp_path / "o.vfc"], "is a directory"),
             (["decode", tmp_path / "nope.vfc", "-o", tmp_path / "o.npz"], "no such file")]
    for argv, what in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and one_line(err) and what in err, (argv, err)


def test_untrusted_pt_refused_in_one_line(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save({"a": torch.ones((1, 1, 16, 16)), "opt": Path("somewhere")},
               tmp_path / "evil.pt")
    code, _, err = run(capsys, "encode", tmp_path / "evil.pt", "-o", tmp_path / "o.vfc")
    assert code == 2 and one_line(err), err
    assert "weights_only" not in err and "only a tensor or a dict of tensors" in err


def test_big_endian_npy_is_read(tmp_path, capsys):
    x = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    np.save(tmp_path / "be.npy", x.astype(">f4"))
    code, _, err = run(capsys, "encode", tmp_path / "be.npy", "-o", tmp_path / "be.vfc",
                       "--quantizer", "integer", "--lossless", "-q", "--preset", "ultrafast")
    assert code == 0, err
    code, _, err = run(capsys, "decode", tmp_path / "be.vfc", "-o", tmp_path / "y.npy", "-q")
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and np.array_equal(y, x)


def test_gray_face_suggests_predictor_none(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image
    Image.fromarray(np.zeros((150, 150, 3), np.uint8)).save(tmp_path / "f.png")
    code, _, err = run(capsys, "encode-face", tmp_path / "f.png", "-o", tmp_path / "f.vfc",
                       "--gray", "--aligned")
    assert code == 2 and one_line(err) and "--predictor none" in err
    assert not (tmp_path / "f.vfc").exists()
