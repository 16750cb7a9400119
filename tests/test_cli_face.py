"""`refcodec encode-face`, and `decode` / `info` / `verify` on face streams (real dlib
detection and embedding on a real photograph)."""

import json
from pathlib import Path

import numpy as np
import pytest

from refcodec import cli

models = pytest.importorskip("refcodec.face.models")
if not models.have_face_models():
    pytest.skip("dlib or its model files are not installed (tools/install_eval_assets.sh)",
                allow_module_level=True)
Image = pytest.importorskip("PIL.Image")
skdata = pytest.importorskip("skimage.data")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("face") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)
    return path


@pytest.mark.hevc
def test_encode_face_decode_info_verify(photo, tmp_path, capsys):
    out = tmp_path / "face.vfc"
    code, text, err = run(capsys, "encode-face", photo, "-o", out, "--predictor", "none",
                          "--qp", "30")
    assert code == 0, err
    assert "128-d embedding" in text and "150x150x3 image" in text
    code, text, err = run(capsys, "info", out, "--json")
    info = json.loads(text)
    assert info["format_version"] == "1.1" and info["num_layers"] == 0
    face = info["faces"][0]
    assert face["embedder"] == "dlib_resnet_v1" and face["enhancement"]["texture_codec"] == "hevc"
    code, text, err = run(capsys, "verify", out)
    assert code == 0 and "1 face(s)" in text
    emb, png = tmp_path / "emb.npy", tmp_path / "face.png"
    code, text, err = run(capsys, "decode", out, "-o", emb, "--image", png)
    assert code == 0, err
    decoded = np.load(emb)
    image = np.asarray(Image.open(png))
    assert decoded.shape == (128,) and image.shape == (150, 150, 3)
    # the decoded embedding is the pristine one within the quantizer's step
    fm = models.load_face_models()
    pristine = fm.embed(fm.chip(skdata.astronaut(), fm.detect(skdata.astronaut())[0]))
    assert np.abs(decoded - pristine).max() <= 1 / 512 + 1e-7
    # and the decoded image is still the same person for dlib
    assert models.distance(fm.embed(image), pristine) < models.SAME_PERSON_DISTANCE


@pytest.mark.hevc
def test_encode_face_with_features_and_base_only(photo, tmp_path, capsys):
    feats = tmp_path / "f.npy"
    np.save(feats, np.ones((1, 2, 16, 16), np.float32))
    out = tmp_path / "both.vfc"
    code, _, err = run(capsys, "encode-face", photo, "-o", out, "--enhancement", "none",
                       "--features", feats)
    assert code == 0, err
    code, _, err = run(capsys, "decode", out, "-o", tmp_path / "all.npz")
    assert code == 0, err
    with np.load(tmp_path / "all.npz") as z:
        assert sorted(z.files) == ["embedding:face0", "f"]
    code, _, err = run(capsys, "decode", out, "--image", tmp_path / "x.png")
    assert code == 2 and "no enhancement layer" in err
    assert not (tmp_path / "x.png").exists()


def test_encode_face_errors(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(blank)
    out = tmp_path / "o.vfc"
    code, _, err = run(capsys, "encode-face", blank, "-o", out)
    assert code == 2 and err.count("\n") == 1 and "no face found" in err
    code, _, err = run(capsys, "encode-face", tmp_path / "missing.png", "-o", out)
    assert code == 2 and "no such file" in err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code, _, err = run(capsys, "encode-face", tmp_path / "bad.png", "-o", out)
    assert code == 2 and "cannot read the image" in err
    code, _, err = run(capsys, "encode-face", blank, "-o", tmp_path / "o.bin")
    assert code == 2 and ".vfc" in err
    code, _, err = run(capsys, "encode-face", blank, "-o", out, "--aligned")
    assert code == 2 and "150x150" in err
    code, _, err = run(capsys, "encode-face", blank, "-o", out, "--embedding-step", "0")
    assert code == 2 and "embedding_step" in err
    assert not out.exists() and not list(tmp_path.glob(".o.vfc*"))


@pytest.mark.hevc
def test_decode_image_needs_a_face(tmp_path, capsys):
    feats = tmp_path / "f.npy"
    np.save(feats, np.ones((1, 2, 16, 16), np.float32))
    code, _, _ = run(capsys, "encode", feats, "-o", tmp_path / "f.vfc")
    assert code == 0
    code, _, err = run(capsys, "decode", tmp_path / "f.vfc", "--image", tmp_path / "x.png")
    assert code == 2 and "no face" in err
    code, _, err = run(capsys, "decode", tmp_path / "f.vfc", "--face", "face0", "-o",
                       tmp_path / "x.npy")
    assert code == 2 and "no face" in err
