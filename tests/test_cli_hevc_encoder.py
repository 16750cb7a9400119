"""refcodec encode / conformance generate --hevc-encoder: another HEVC encoder writes the
payloads (the x265 command line when installed; fake encoders otherwise)."""

import json
import shutil
import sys

import numpy as np
import pytest

import refcodec
from refcodec.verify import verify
from refcodec.cli import main

pytestmark = pytest.mark.hevc
X265 = shutil.which("x265")
needs_x265 = pytest.mark.skipif(X265 is None, reason="the x265 command line is not installed "
                                "(apt-get install -y x265)")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def work(tmp_path):
    x = np.maximum(np.random.default_rng(5).standard_normal((1, 6, 28, 28)), 0)
    np.save(tmp_path / "feat.npy", x.astype(np.float32))
    return tmp_path


@needs_x265
@pytest.mark.parametrize("template", ["x265", "x265-inter"])
def test_encode_with_the_x265_command_line(work, capsys, template):
    out = work / "x.vfc"
    code, text, err = run(capsys, "encode", work / "feat.npy", "-o", out, "--qp", "27",
                          "--hevc-encoder", template)
    assert code == 0, err
    data = out.read_bytes()
    report = verify(data)
    assert report.conformant, report.to_text()
    y = refcodec.decode(data)["feat"]
    assert y.shape == (1, 6, 28, 28)
    # the payload is x265's, not libx265's through PyAV: its own SEIs and parameter sets
    ours = refcodec.encode({"feat": np.load(work / "feat.npy")}, refcodec.EncoderConfig(qp=27))
    assert refcodec.read_headers(data).layers[0].hevc_payload != \
        refcodec.read_headers(ours).layers[0].hevc_payload


def fake_encoder(tmp_path, body: str) -> str:
    script = tmp_path / "fake_encoder.py"
    script.write_text("import sys\n" + body)
    return f"{sys.executable} {script} {{input}} {{output}} {{width}} {{height}} {{frames}}"


def test_a_broken_payload_gives_one_line_and_no_file(work, capsys):
    template = fake_encoder(work, "open(sys.argv[2], 'wb').write(b'\\x00\\x00\\x01junk')\n")
    out = work / "x.vfc"
    code, _, err = run(capsys, "encode", work / "feat.npy", "-o", out, "--hevc-encoder",
                       template)
    assert code == 4 and not out.exists()
    assert err.count("\n") == 1 and err.startswith("refcodec: error: ")


def test_a_failing_encoder_is_named(work, capsys):
    template = fake_encoder(work, "sys.stderr.write('no licence for this\\n'); sys.exit(3)\n")
    code, _, err = run(capsys, "encode", work / "feat.npy", "-o", work / "x.vfc",
                       "--hevc-encoder", template)
    assert code == 4 and "exited with status 3: no licence for this" in err
    assert not (work / "x.vfc").exists()


def test_bad_templates_are_usage_errors(work, capsys):
    code, _, err = run(capsys, "encode", work / "feat.npy", "-o", work / "x.vfc",
                       "--hevc-encoder", "enc {input} {nothing} {output}")
    assert code == 2 and "nothing" in err
    code, _, err = run(capsys, "encode", work / "feat.npy", "-o", work / "x.vfc",
                       "--hevc-encoder", "x265", "--hevc-encoder-timeout", "nan")
    assert code == 2 and "timeout" in err


@needs_x265
def test_generate_a_suite_with_the_x265_command_line(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("name,channels,height,width,qp\nmine,4,16,16,30\n")
    code, _, err = run(capsys, "conformance", "generate", table, "-o", tmp_path / "suite",
                       "--no-invalid", "--hevc-encoder", "x265", "-q")
    assert code == 0, err
    manifest = json.loads((tmp_path / "suite" / "manifest.json").read_text())
    assert "--hevc-encoder x265" in manifest["generator"]["command"]
    (stream,) = manifest["streams"]
    data = (tmp_path / "suite" / stream["file"]).read_bytes()
    assert verify(data).conformant
    code, out, err = run(capsys, "conformance", "run", "--suite",
                         tmp_path / "suite" / "manifest.json", "--decoder",
                         f"{sys.executable} -m refcodec.conformance decode {{input}} "
                         f"{{output}}")
    assert code == 0, out + err
