"""The refcodec command line: each command in-process, bad input, one real subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import refcodec
from refcodec.cli import main

from conftest import relu_features

pytestmark = pytest.mark.hevc


@pytest.fixture
def work(tmp_path, rng):
    np.save(tmp_path / "feat.npy", relu_features(rng, (1, 6, 14, 14)))
    np.savez(tmp_path / "multi.npz", conv1=relu_features(rng, (1, 4, 16, 16)),
             pool5=relu_features(rng, (2, 8, 7, 7)).astype(np.float16))
    return tmp_path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files(path):
    return sorted(p.name for p in path.iterdir())


def test_encode_info_decode_npy(work, capsys):
    code, out, err = run(capsys, "encode", work / "feat.npy", "-o", work / "f.vfc", "--qp", "12",
                         "--preset", "ultrafast")
    assert code == 0 and err == "" and "compression rate" in out
    code, out, _ = run(capsys, "info", work / "f.vfc")
    assert code == 0 and "layer 'feat'" in out and "log quantizer" in out
    code, out, _ = run(capsys, "info", work / "f.vfc", "--json")
    info = json.loads(out)
    layer = info["layers"][0]
    assert layer["shape"] == [1, 6, 14, 14] and layer["pad_bottom"] == 2
    assert info["stream_bytes"] == (work / "f.vfc").stat().st_size
    assert info["compression_rate"] == pytest.approx(6 * 14 * 14 * 4 / info["stream_bytes"])
    code, out, _ = run(capsys, "decode", work / "f.vfc", "-o", work / "out.npy")
    assert code == 0
    y = np.load(work / "out.npy")
    x = np.load(work / "feat.npy")
    assert y.shape == x.shape and np.abs(y - x).max() < 0.2


def test_npz_options_and_layer_selection(work, capsys):
    code, _, err = run(capsys, "encode", work / "multi.npz", "-o", work / "m.vfc", "--bit-depth",
                       "10", "--quantizer", "uniform", "--per-channel", "--pad-mode", "zero",
                       "--preset", "ultrafast", "-q")
    assert code == 0, err
    info = json.loads(run(capsys, "info", work / "m.vfc", "--json")[1])
    assert [e["layer_id"] for e in info["layers"]] == ["conv1", "pool5"]
    assert info["layers"][1]["source_dtype"] == "float16"
    assert info["layers"][1]["tile_rows"] == 2 and len(info["layers"][1]["quant_params"]) == 8
    code, _, _ = run(capsys, "decode", work / "m.vfc", "-o", work / "m.npz")
    with np.load(work / "m.npz") as z:
        assert z["pool5"].dtype == np.float16 and z["pool5"].shape == (2, 8, 7, 7)
    code, _, _ = run(capsys, "decode", work / "m.vfc", "-o", work / "p.npy", "--layer", "pool5")
    assert code == 0 and np.load(work / "p.npy").shape == (2, 8, 7, 7)


def test_tiling_and_channel_order_options(work, capsys):
    code, _, err = run(capsys, "encode", work / "feat.npy", "-o", work / "t.vfc", "--packing",
                       "tiled", "--tile-grid", "2x3", "--channel-order", "5,4,3,2,1,0",
                       "--layer-id", "conv5", "--preset", "ultrafast")
    assert code == 0, err
    layer = json.loads(run(capsys, "info", work / "t.vfc", "--json")[1])["layers"][0]
    assert layer["layer_id"] == "conv5" and layer["channel_permutation"] == [5, 4, 3, 2, 1, 0]
    assert (layer["tile_rows"], layer["tile_cols"], layer["num_pictures"]) == (2, 3, 1)


def test_lossless_integer(work, capsys):
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4) - 40
    np.save(work / "int.npy", x)
    code, _, err = run(capsys, "encode", work / "int.npy", "-o", work / "i.vfc", "--quantizer",
                       "integer", "--lossless", "--layout", "NHWC", "--preset", "ultrafast")
    assert code == 0, err
    run(capsys, "decode", work / "i.vfc", "-o", work / "i.npy")
    assert np.array_equal(np.load(work / "i.npy"), x)


def test_torch_pt_files(work, capsys):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(np.load(work / "feat.npy")).to(torch.bfloat16)
    torch.save({"a": t, "b": t.float()}, work / "d.pt")
    code, _, err = run(capsys, "encode", work / "d.pt", "-o", work / "d.vfc", "--preset",
                       "ultrafast")
    assert code == 0, err
    run(capsys, "decode", work / "d.vfc", "-o", work / "o.pt")
    back = torch.load(work / "o.pt", weights_only=True)
    assert back["a"].dtype == torch.bfloat16 and back["b"].dtype == torch.float32
    run(capsys, "decode", work / "d.vfc", "-o", work / "o.npz")
    with np.load(work / "o.npz") as z:
        assert z["a"].dtype == np.float32      # numpy cannot hold bfloat16: widened exactly


# ---------------------------------------------------------------------------------
# bad input: one line on stderr, non-zero exit, no output file left behind
# ---------------------------------------------------------------------------------

def corrupt(work):
    data = bytearray((work / "f.vfc").read_bytes())
    data[40] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("case", [
    "missing", "extension_in", "extension_out", "nan", "inf", "float64", "truncated",
    "corrupted", "bad_qp", "bad_quantizer", "bad_grid", "not_vfc", "decode_ext", "npy_multi",
    "bad_layer", "bad_order", "unreadable_npy", "npz_layer_id", "missing_dir",
])
def test_bad_input(work, capsys, case):
    run(capsys, "encode", work / "feat.npy", "-o", work / "f.vfc", "--preset", "ultrafast")
    np.save(work / "nan.npy", np.full((1, 1, 16, 16), np.nan, np.float32))
    np.save(work / "inf.npy", np.full((1, 1, 16, 16), np.inf, np.float32))
    np.save(work / "f64.npy", np.zeros((1, 1, 16, 16), np.float64))
    (work / "trunc.vfc").write_bytes((work / "f.vfc").read_bytes()[:100])
    (work / "bad.vfc").write_bytes(corrupt(work))
    (work / "text.vfc").write_text("hello")
    (work / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    before = set(files(work))
    enc = ["encode", work / "feat.npy", "-o", work / "new.vfc"]
    argv, code_expected, text = {
        "missing": (["encode", work / "nope.npy", "-o", work / "new.vfc"], 2, "no such file"),
        "extension_in": (["encode", work / "trunc.vfc", "-o", work / "new.vfc"], 2,
                         "input shall be .npy, .npz or .pt"),
        "extension_out": (["encode", work / "feat.npy", "-o", work / "new.bin"], 2,
                          "output shall end in .vfc"),
        "nan": (["encode", work / "nan.npy", "-o", work / "new.vfc"], 2, "non-finite value (nan"),
        "inf": (["encode", work / "inf.npy", "-o", work / "new.vfc"], 2, "non-finite value (inf"),
        "float64": (["encode", work / "f64.npy", "-o", work / "new.vfc"], 2, "float64"),
        "truncated": (["decode", work / "trunc.vfc", "-o", work / "o.npy"], 3, "[8.2.4]"),
        "corrupted": (["decode", work / "bad.vfc", "-o", work / "o.npy"], 3, "[8.2.5]"),
        "bad_qp": (enc + ["--qp", "60"], 2, "qp shall be an integer in 0..51"),
        "bad_quantizer": (enc + ["--quantizer", "cubic"], 2, "invalid choice: 'cubic'"),
        "bad_grid": (enc + ["--packing", "tiled", "--tile-grid", "2by3"], 2, "expected ROWSxCOLS"),
        "not_vfc": (["info", work / "text.vfc"], 3, "[8.1.1] magic shall be"),
        "decode_ext": (["decode", work / "f.vfc", "-o", work / "o.txt"], 2,
                       "output shall be .npy, .npz or .pt"),
        "npy_multi": None,
        "bad_layer": (["decode", work / "f.vfc", "-o", work / "o.npy", "--layer", "zz"], 2,
                      "no layer 'zz'"),
        "bad_order": (enc + ["--channel-order", "0,1"], 2, "permutation of 0..5"),
        "unreadable_npy": (["encode", work / "junk.npy", "-o", work / "new.vfc"], 2,
                           "cannot read .npy file"),
        "npz_layer_id": (["encode", work / "multi.npz", "-o", work / "new.vfc", "--layer-id", "x"],
                         2, "--layer-id applies to .npy"),
        "missing_dir": (["encode", work / "feat.npy", "-o", work / "nodir" / "x.vfc"], 2,
                        "does not exist"),
    }.get(case) or (None, None, None)
    if case == "npy_multi":
        run(capsys, "encode", work / "multi.npz", "-o", work / "m.vfc", "--preset", "ultrafast")
        before = set(files(work))
        argv, code_expected, text = (["decode", work / "m.vfc", "-o", work / "o.npy"], 2,
                                     "the stream carries 2 arrays (2 layers)")
    code, out, err = run(capsys, *argv)
    assert code == code_expected, err
    assert err.count("\n") == 1 and err.startswith("refcodec: error: ") and text in err, err
    assert "Traceback" not in err and out == ""
    assert set(files(work)) == before, "an output or temporary file was left behind"


def test_failed_decode_leaves_no_partial_file(work, capsys, monkeypatch):
    """Even when writing fails half way, neither the output nor a temporary file remains."""
    run(capsys, "encode", work / "feat.npy", "-o", work / "f.vfc", "--preset", "ultrafast")
    before = set(files(work))

    def broken_save(fh, *a, **k):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "save", broken_save)
    code, _, err = run(capsys, "decode", work / "f.vfc", "-o", work / "o.npy")
    assert code == 2 and "No space left on device" in err
    assert set(files(work)) == before


def test_exit_code_backend_error(work, capsys, monkeypatch):
    from refcodec.errors import BackendError
    from refcodec.hevc import pyav

    def fail(*a, **k):
        raise BackendError("libx265 failed: simulated")
    monkeypatch.setattr(pyav, "encode_access_units", fail)
    code, _, err = run(capsys, "encode", work / "feat.npy", "-o", work / "z.vfc")
    assert code == 4 and err == "refcodec: error: libx265 failed: simulated\n"
    assert not (work / "z.vfc").exists()


def test_usage_errors(capsys):
    assert run(capsys, "frobnicate")[0] == 2
    code, _, err = run(capsys, "encode")
    assert code == 2 and err.count("\n") == 1


def test_subprocess_smoke(work):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "refcodec.cli", "encode", str(work / "feat.npy"),
                        "-o", str(work / "s.vfc"), "--preset", "ultrafast"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "refcodec.cli", "decode", str(work / "s.vfc"),
                        "-o", str(work / "s.npy")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and np.load(work / "s.npy").shape == (1, 6, 14, 14)
    data = bytearray((work / "s.vfc").read_bytes())
    data[8] = 7    # version_major 7
    (work / "bad.vfc").write_bytes(bytes(data))
    r = subprocess.run([sys.executable, "-m", "refcodec.cli", "info", str(work / "bad.vfc")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "[8.1.2] version_major 7 is newer than the supported version 1" in r.stderr


def test_output_files_get_the_usual_mode(work, capsys):
    import stat
    old = os.umask(0o022)
    try:
        run(capsys, "encode", work / "feat.npy", "-o", work / "m.vfc", "--preset", "ultrafast")
    finally:
        os.umask(old)
    assert stat.S_IMODE((work / "m.vfc").stat().st_mode) == 0o644


def test_decode_refuses_colliding_output_names(work, capsys):
    """A layer 'embedding:face0' beside a face 'face0' (legal: separate name spaces) would
    lose one array in a .npz: refused before decoding, and each decodes alone."""
    from refcodec.conformance import synthetic_face
    from refcodec.face.codec import FaceConfig
    x = np.maximum(np.random.default_rng(3).standard_normal((1, 2, 16, 16)), 0)
    data = refcodec.encode({"embedding:face0": x.astype(np.float32)},
                           refcodec.EncoderConfig(preset="ultrafast"),
                           faces=[(synthetic_face(0), FaceConfig(enhancement="none",
                                                                  predictor="none"))])
    src = work / "clash.vfc"
    src.write_bytes(data)
    out = work / "clash.npz"
    code, _, err = run(capsys, "decode", src, "-o", out)
    assert code == 2 and not out.exists()
    assert "'embedding:face0' is also the output name of a face's embedding" in err
    assert run(capsys, "decode", src, "-o", out, "--layer", "embedding:face0")[0] == 0
    assert list(np.load(out)) == ["embedding:face0"]
    assert np.load(out)["embedding:face0"].shape == (1, 2, 16, 16)
    code, _, _ = run(capsys, "decode", src, "-o", work / "e.npy", "--face", "face0")
    assert code == 0 and np.load(work / "e.npy").shape == (128,)
