"""refcodec decode --pictures: the decoded sample planes as PNG (8-bit, 16-bit at 10 and
12 bits) read back exactly, the mosaics, the face textures, and bad folders refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import refcodec
from refcodec import pictures
from refcodec.cli import main
from refcodec.codec import decode_all, decode_samples

ROOT = Path(__file__).resolve().parents[1] / "conformance"
STREAMS = {s["name"]: s for s in json.loads((ROOT / "manifest.json").read_text())["streams"]}


def stream_file(name: str) -> Path:
    return ROOT / STREAMS[name]["file"]


@pytest.mark.parametrize("name, depth", [("basic", 8), ("log_10bit", 10), ("log_12bit", 12),
                                         ("tiled_grid_2x3", 8)])
def test_pictures_read_back_exactly(tmp_path, capsys, name, depth):
    out = tmp_path / "pics"
    assert main(["decode", str(stream_file(name)), "--pictures", str(out)]) == 0
    assert f"pictures in {out}" in capsys.readouterr().out
    stream = refcodec.read_headers(stream_file(name).read_bytes())
    for layer in stream.layers:
        assert layer.header.sample_bit_depth == depth
        planes = decode_samples(layer)
        folder = out / f"layer{layer.index}_{pictures.safe_name(layer.header.layer_id)}"
        files = sorted(folder.glob("picture_*.png"))
        assert len(files) == len(planes) == layer.header.num_pictures
        for path, plane in zip(files, planes):
            got = pictures.read_png(path)
            assert got.dtype == (np.uint8 if depth == 8 else np.uint16)
            assert np.array_equal(got, plane)
        mosaic = pictures.read_png(Path(f"{folder}_mosaic.png"))
        assert mosaic.dtype == np.uint8
        assert mosaic.shape[0] >= layer.header.picture_height
    assert not list(out.glob(".pictures-*"))        # the temporary folder is gone


def test_face_texture_and_layers_with_output(tmp_path):
    name = "face_with_layer" if "face_with_layer" in STREAMS else "face_hevc"
    out = tmp_path / "pics"
    npz = tmp_path / "out.npz"
    assert main(["decode", str(stream_file(name)), "-o", str(npz), "--pictures", str(out),
                 "-q"]) == 0
    arrays, _ = decode_all(stream_file(name).read_bytes())
    textures = [k for k in arrays if k.startswith("texture:")]
    assert textures
    for i, key in enumerate(textures):
        path = out / f"face{i}_{pictures.safe_name(key.split(':', 1)[1])}_texture.png"
        got = pictures.read_png(path)
        want = arrays[key]
        assert np.array_equal(got, want[:, :, 0] if want.shape[2] == 1 else want)
    assert npz.is_file()


def test_bad_pictures_folder(tmp_path, capsys):
    src = str(stream_file("basic"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in (blocker, blocker / "sub"):
        assert main(["decode", src, "--pictures", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("refcodec: error: --pictures ") and err.count("\n") == 1
    assert blocker.read_text() == "x"


def test_no_pictures_left_after_a_refused_stream(tmp_path, capsys):
    out = tmp_path / "pics"
    bad = ROOT / STREAMS["invalid_sample_md5"]["file"]
    assert main(["decode", str(bad), "--pictures", str(out)]) == 3
    assert capsys.readouterr().err.startswith("refcodec: error: [8.4.1]")
    assert list(out.iterdir()) == []


def test_difference_image():
    ref = np.arange(12, dtype=np.float64).reshape(3, 4)
    dec = ref.copy()
    dec[1, 2] += 3
    image = pictures.difference_image(ref, dec)
    assert image.shape == (3, 3 * 4 + 2 * pictures.GAP)
    left, mid = image[:, :4], image[:, 4 + pictures.GAP:8 + pictures.GAP]
    diff = image[:, 8 + 2 * pictures.GAP:]
    assert left[0, 0] == 0 and left[2, 3] == 255
    assert diff[1, 2] == 255 and np.count_nonzero(diff) == 1
    assert mid[1, 2] == round(9 * 255 / 11)       # scaled like the reference
    assert pictures.safe_name("a/b c..") == "a_b_c"
