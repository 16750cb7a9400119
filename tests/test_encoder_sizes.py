"""Encoder inputs that would exhaust memory are refused before anything is allocated
(issue 14, point 8): sizes against the highest level (clause 11.2), one line on the CLI."""

import tracemalloc

import numpy as np
import pytest

import refcodec
from refcodec.cli import main
from refcodec.errors import EncoderInputError


def peak_of(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("grid", [(65535, 65535), (3000, 3000)])
def test_a_huge_tile_grid_is_refused_before_packing(grid):
    x = np.zeros((1, 4, 16, 16), np.float32)

    def run():
        with pytest.raises(EncoderInputError, match=r"picture side \d+ exceeds 8192"):
            refcodec.encode(x, refcodec.EncoderConfig(packing="tiled", tile_grid=grid))
    assert peak_of(run) < 16 << 20      # no picture was allocated (they are GBs)


def test_a_huge_tensor_is_refused_before_quantization():
    # a 12000 x 12000 map (576 MB as float32) without the memory: a broadcast view
    x = np.broadcast_to(np.float32(0.5), (1, 1, 12000, 12000))

    def run():
        with pytest.raises(EncoderInputError, match="the limit of level 20"):
            refcodec.encode({"big": x})
    assert peak_of(run) < 16 << 20


def test_nhwc_sizes_are_read_in_their_layout():
    x = np.broadcast_to(np.float32(0.5), (1, 12000, 12000, 1))
    with pytest.raises(EncoderInputError, match="12000x12000 pictures"):
        refcodec.encode({"big": x}, refcodec.EncoderConfig(layout="NHWC"))


@pytest.mark.parametrize("row", ["huge,100000000,16,16,auto,", "grid,4,16,16,tiled,60000x60000"])
def test_conformance_rows_beyond_the_levels_are_refused_at_once(tmp_path, capsys, row):
    table = tmp_path / "t.csv"
    table.write_text("name,channels,height,width,packing,tile_grid\n" + row + "\n")
    out = tmp_path / "suite"
    code = main(["conformance", "generate", str(table), "-o", str(out), "--no-invalid", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "the limit of level 20" in err
    assert not (out / "manifest.json").exists()


def test_encode_face_refuses_a_huge_image_before_decoding_it(tmp_path, capsys):
    from PIL import Image
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((5000, 5000), np.uint8)).save(path)     # 25 Mpixel, small file
    code = main(["encode-face", str(path), "-o", str(tmp_path / "f.vfc")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "5000x5000" in err
    assert not (tmp_path / "f.vfc").exists()


def test_the_level_counts_the_stream_totals():
    """Five layers of 64 MiB fit level 10 one by one but not its 256 MiB total (format
    1.2): the encoder labels the stream level 20."""
    from refcodec import layer
    from refcodec.codec import choose_level
    from refcodec.enums import SourceDtype
    from refcodec.records import QuantParams
    h = layer._layer_header("a", np.empty((1, 1024, 128, 128), np.float32), SourceDtype.FLOAT32,
                            refcodec.EncoderConfig(), [QuantParams(min_value=0.0, max_value=1.0)])
    assert choose_level([h] * 3, [100] * 3).level_idc == 10
    assert choose_level([h] * 5, [100] * 5).level_idc == 20


def test_tensors_beyond_the_stream_total_are_refused_before_coding():
    views = {f"l{i}": np.broadcast_to(np.float32(0), (1, 4096, 256, 256)) for i in range(5)}
    with pytest.raises(EncoderInputError, match="more than the 4294967296"):
        refcodec.encode(views)
