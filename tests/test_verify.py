"""refcodec verify: every violation reported with clause, offset and path; exit codes."""

import dataclasses
import json

import numpy as np
import pytest

import refcodec
from refcodec import bitstream
from refcodec.cli import main
from refcodec.codec import EncoderConfig
from refcodec.verify import verify

from conftest import relu_features

pytestmark = pytest.mark.hevc


@pytest.fixture(scope="module")
def good():
    rng = np.random.default_rng(3)
    return refcodec.encode({"a": relu_features(rng, (1, 3, 16, 16)),
                            "b": relu_features(rng, (1, 4, 7, 7))},
                           EncoderConfig(preset="ultrafast", bit_depth=10))


def rebuild(data, change_header=None, change_layer=None):
    s = refcodec.read_headers(data)
    layers = []
    for layer in s.layers:
        h = layer.header
        md5, payload = layer.sample_md5, layer.hevc_payload
        if change_layer:
            h, md5, payload = change_layer(layer.index, h, md5, payload)
        layers.append((h, md5, payload))
    sh = change_header(s.header) if change_header else s.header
    return bitstream.build_stream(sh, layers)


def test_conformant(good):
    r = verify(good, source="good.vfc")
    assert r.conformant and r.exit_code == 0
    assert [layer.sample_md5_match for layer in r.layers] == [True, True]
    assert r.to_text() == "good.vfc: conformant (VFC 1.0, 2 layer(s), all sample checksums match)"


def test_reports_several_violations(good):
    def change(i, h, md5, payload):
        if i == 0:
            return dataclasses.replace(h, pad_bottom=3), md5, payload       # 8.3.10 (+10.5)
        return h, bytes(16), payload                                         # 8.4.1
    r = verify(rebuild(good, change_layer=change))
    clauses = [v.clause for v in r.violations]
    assert "8.3.10" in clauses and "8.4.1" in clauses and "10.5" in clauses
    assert r.exit_code == 1 and not r.conformant
    md5_violation = next(v for v in r.violations if v.clause == "8.4.1")
    assert md5_violation.path == "layers[1].sample_md5"
    layer1 = refcodec.read_headers(good).layers[1]
    assert md5_violation.offset == layer1.payload_offset - 16 + (
        len(rebuild(good, change_layer=change)) - len(good))


def test_bit_depth_mismatch_is_clause_10_4(good):
    def change(i, h, md5, payload):
        return dataclasses.replace(h, sample_bit_depth=8), md5, payload
    r = verify(rebuild(good, change_layer=change))
    assert {v.clause for v in r.violations} == {"10.4"}
    v = r.violations[0]
    assert v.path.startswith("layers[0].hevc_payload.sps[0]")


def test_unreadable(good):
    r = verify(b"GIF89a" + good)
    assert not r.readable and r.exit_code == 3
    assert r.violations[0].clause == "8.1.1"


def test_truncated_is_reported_not_raised(good):
    r = verify(good[:-30])
    assert r.readable and r.exit_code == 1
    assert r.violations[-1].clause in ("8.2.4", "8.2.6")


def test_no_decode_mode(good):
    r = verify(good, decode=False)
    assert r.conformant and not any(layer.decoded for layer in r.layers)


def test_cli_verify_json_and_exit_codes(good, tmp_path, capsys):
    (tmp_path / "g.vfc").write_bytes(good)
    assert main(["verify", str(tmp_path / "g.vfc")]) == 0
    bad = rebuild(good, change_layer=lambda i, h, m, p: (h, bytes(16), p))
    (tmp_path / "b.vfc").write_bytes(bad)
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "b.vfc"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["conformant"] is False
    assert [v["clause"] for v in report["violations"]] == ["8.4.1", "8.4.1"]
    assert all(isinstance(v["offset"], int) and v["path"] for v in report["violations"])
    (tmp_path / "x.vfc").write_bytes(b"nonsense")
    assert main(["verify", str(tmp_path / "x.vfc")]) == 3


def test_arbitrary_mutations_never_crash(good):
    rng = np.random.default_rng(0)
    for _ in range(200):
        blob = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            blob[rng.integers(0, len(blob))] = rng.integers(0, 256)
        if rng.random() < 0.3:
            blob = blob[:rng.integers(0, len(blob))]
        r = verify(bytes(blob))
        assert r.exit_code in (0, 1, 3)


def test_newer_minor_version_is_a_warning(good):
    data = rebuild(good, change_header=lambda h: dataclasses.replace(h, version_minor=3))
    r = verify(data, source="n.vfc")
    assert r.conformant and r.exit_code == 0
    assert r.warnings and "version 1.3 is newer" in r.warnings[0]
    assert "warning: version 1.3" in r.to_text()
