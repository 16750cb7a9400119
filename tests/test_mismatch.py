"""Mismatch localisation in the conformance runner (issue 17): buggy fake decoders (small
Python scripts run as --decoder templates) that are off by one level in one channel, swap
two channels, transpose the layout or return a wrong picture; the runner names each, says
where the first difference is, and writes the difference images."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import refcodec
from refcodec import conformance as conf
from refcodec import quant
from refcodec.cli import main
from refcodec.conformance import mismatch
from refcodec.pictures import read_png

pytestmark = [pytest.mark.conformance]

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "conformance"
MANIFEST = json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))
STREAMS = {s["name"]: s for s in MANIFEST["streams"]}


def make_suite(tmp_path: Path, names) -> Path:
    suite = tmp_path / "suite"
    streams = []
    for name in names:
        stream = dict(STREAMS[name])
        for key in ("file", "reference"):
            (suite / stream[key]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SUITE / stream[key], suite / stream[key])
        streams.append(stream)
    (suite / "manifest.json").write_text(json.dumps(MANIFEST | {"streams": streams}))
    return suite / "manifest.json"


#: The start of every fake decoder: the reference decoder's output of the stream (from the
#: suite's reference file next to it), to be spoiled.
PRELUDE = """
import sys
from pathlib import Path
import numpy as np
src, out = Path(sys.argv[1]), sys.argv[2]
ref = Path(src).parent.parent / "reference" / (src.stem + ".npz")
with np.load(ref) as z:
    arrays = {k: z[k] for k in z.files}
key = sorted(k for k in arrays if ":" not in k)[0]
x = arrays[key].copy()
"""

BUGS = {
    "swap": "x[:, [0, 2]] = x[:, [2, 0]]\n",
    "transpose": "x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))\n",
    "reshape": "x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(x.shape)\n",
    "repeat_picture": "x[:, 1] = x[:, 0]\n",
    "one_tile": "x[0, 4] = x[0, 4][::-1]\n",
    "offset": "x[:, 3] += 0.5\n",
    "level": """
table = np.load(src.parent.parent / "table.npy")    # the reconstruction values (clause 9.4)
c = x[:, 1]
q = np.abs(table[None, :] - c.reshape(-1, 1)).argmin(1)
x[:, 1] = table[np.where(q < len(table) - 1, q + 1, q - 1)].reshape(c.shape)
""",
}


def fake(tmp_path: Path, bug: str) -> str:
    path = tmp_path / f"fake_{bug}.py"
    path.write_text(PRELUDE + textwrap.dedent(BUGS[bug])
                    + "arrays[key] = x\nnp.savez(out, **arrays)\n")
    return f"{sys.executable} {path} {{input}} {{output}}"


def run(tmp_path, bug, names, **kw):
    manifest = make_suite(tmp_path, names)
    if bug == "level":       # the fake decoder's table, so that it need not import refcodec
        h = refcodec.read_headers((SUITE / STREAMS[names[0]]["file"]).read_bytes()).layers[0]
        np.save(manifest.parent / "table.npy", quant.output_table(
            int(h.header.quantizer_type), h.header.quant_params[0],
            h.header.sample_bit_depth, np.float32))
    decoder, _, _ = conf.command_decoder(fake(tmp_path, bug), 60)
    return conf.run_suite(manifest, decoder, **kw)["results"]


@pytest.mark.parametrize("bug, stream, pattern", [
    ("swap", "basic", "swapped_channels"),
    ("transpose", "basic", "layout_transposed"),
    ("reshape", "basic", "layout_transposed"),
    ("repeat_picture", "basic", "whole_picture"),
    ("offset", "uniform_8bit", "constant_offset"),
    ("one_tile", "tiled_grid_2x3", "one_tile"),
])
def test_runner_names_the_bug(tmp_path, bug, stream, pattern):
    (result,) = run(tmp_path, bug, [stream])
    assert result["status"] == "FAIL"
    (found,) = result["mismatches"]
    assert found["pattern"] == pattern, found
    assert found["layer_id"] == STREAMS[stream]["layers"][0]["layer_id"]
    # and no other pattern is claimed for it: the classifier does not say everything
    assert found["pattern"] in mismatch.PATTERNS


def test_first_difference_and_counts(tmp_path):
    (result,) = run(tmp_path, "level", ["uniform_8bit"])
    (found,) = result["mismatches"]
    assert found["pattern"] == "off_by_one_level"
    assert found["layer_id"] == "uniform_8bit.0"
    ref = np.load(SUITE / STREAMS["uniform_8bit"]["reference"])["uniform_8bit.0"]
    first = found["first"]
    assert first["channel"] == 1 and first["batch"] == 0
    assert (first["row"], first["column"]) == (0, 0)
    assert first["expected"] == float(ref[0, 1, 0, 0])
    data = (SUITE / STREAMS["uniform_8bit"]["file"]).read_bytes()
    h = refcodec.read_headers(data).layers[0].header
    table = quant.output_table(int(h.quantizer_type), h.quant_params[0], 8, np.float32)
    level = int(np.flatnonzero(table == ref[0, 1, 0, 0])[0])
    assert first["decoded"] in (float(table[level + 1]), float(table[level - 1]))
    # channel 1 is picture 1 (one channel per picture): every value of it differs
    assert found["per_channel"] == {"1": 16 * 16} and found["per_picture"] == {"1": 256}
    assert found["differing"] == 256 and found["total"] == ref.size


def test_swapped_channels_are_named(tmp_path):
    (result,) = run(tmp_path, "swap", ["basic"])
    (found,) = result["mismatches"]
    assert found["detail"] == "channel 0 holds channel 2, channel 2 holds channel 0"
    ref = np.load(SUITE / STREAMS["basic"]["reference"])["basic.0"]
    differ = int(np.count_nonzero(ref[:, 0] != ref[:, 2]))     # ReLU maps share zeros
    assert 0 < differ and found["per_channel"] == {"0": differ, "2": differ}


def test_cli_summary_json_and_difference_images(tmp_path, capsys):
    manifest = make_suite(tmp_path, ["basic", "tiled_grid_2x3"])
    images = tmp_path / "diff"
    out = tmp_path / "results.json"
    code = main(["conformance", "run", "--suite", str(manifest), "--decoder",
                 fake(tmp_path, "swap"), "--json", str(out), "--diff-images", str(images),
                 "-q"])
    text = capsys.readouterr().out
    assert code == 1
    assert "swapped_channels: channel 0 holds channel 2" in text
    assert "first at batch 0 channel 0 row 0 column 0 (picture 0" in text
    results = json.loads(out.read_text())["results"]
    for r in results:
        (found,) = r["mismatches"]
        path = Path(found["diff_image"])
        assert path.parent == images and path.is_file()
        image = read_png(path)
        ref = np.load(SUITE / STREAMS[r["name"]]["reference"])
        c, h, w = ref[sorted(ref.files)[0]].shape[1:]
        assert image.dtype == np.uint8 and image.shape[0] >= h and image.shape[1] > 3 * w
    # a path that is a file is refused before anything runs
    (tmp_path / "file").write_text("x")
    code = main(["conformance", "run", "--suite", str(manifest), "--decoder",
                 fake(tmp_path, "swap"), "--diff-images", str(tmp_path / "file"), "-q"])
    assert code == 2
    assert "--diff-images" in capsys.readouterr().err


PLANES_FAKE = """
import sys
from pathlib import Path
import numpy as np
with np.load(Path(sys.argv[1]).parent.parent / "planes.npz") as z:
    planes = dict((k, z[k]) for k in z.files)
key = sorted(planes)[0]
p = planes[key]
{bug}
np.savez(sys.argv[2], **planes)
"""


@pytest.mark.parametrize("bug, pattern", [
    ("p[[0, 1]] = p[[1, 0]]", "swapped_channels"),
    ("p[2] = np.where(p[2] < 255, p[2] + 1, p[2] - 1)", "off_by_one_level"),
    ("p[3] = 0", "whole_picture"),
])
def test_planes_mismatch(tmp_path, bug, pattern):
    manifest = make_suite(tmp_path, ["basic"])
    # the reference decoder's pictures, which the fake decoder spoils
    np.savez(manifest.parent / "planes.npz",
             **conf.decode_planes((SUITE / STREAMS["basic"]["file"]).read_bytes()))
    path = tmp_path / "fake_planes.py"
    path.write_text(PLANES_FAKE.format(bug=bug))
    decoder, _, _ = conf.command_decoder(f"{sys.executable} {path} {{input}} {{planes}}", 60)
    images = tmp_path / "diff"
    images.mkdir()
    (result,) = conf.run_suite(manifest, decoder, outputs=False, planes=True,
                               diff_images=images)["results"]
    assert result["status"] == "FAIL"
    (found,) = result["mismatches"]
    assert found["kind"] == "planes" and found["pattern"] == pattern, found
    assert found["first"]["picture"] in (0, 2, 3)
    assert all(Path(p).is_file() for p in found["diff_images"])


def test_analysis_of_equal_arrays_is_none():
    data = (SUITE / STREAMS["basic"]["file"]).read_bytes()
    h = refcodec.read_headers(data).layers[0].header
    x = np.load(SUITE / STREAMS["basic"]["reference"])["basic.0"]
    assert mismatch.analyse_tensor(x, x.copy(), h) is None
    y = x.copy()
    y[0, 0, 3, 5] = np.float32(1234.5)       # one value: located, no pattern claimed
    found = mismatch.analyse_tensor(y, x, h)
    assert (found["first"]["row"], found["first"]["column"]) == (3, 5)
    assert found["first"]["decoded"] == 1234.5
    assert found["differing"] == 1 and found["pattern"] == "unrecognised"
    assert found["detail"] == "1 values of picture 0 differ"
