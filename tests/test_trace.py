"""refcodec trace: the syntax-element trace of every conformance stream against what
read_headers (and the HEVC readers) give, its offsets against the bytes, its end against
the manifest's recorded error, and the text form against the JSON form."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from pathlib import Path

import numpy as np
import pytest

import refcodec
from refcodec.cli import main
from refcodec.hevc import params
from refcodec.trace import trace

ROOT = Path(__file__).resolve().parents[1] / "conformance"
MANIFEST = json.loads((ROOT / "manifest.json").read_text())
STREAMS = {s["name"]: s for s in MANIFEST["streams"]}
#: Streams beyond this size (HM payloads that repeat their parameter sets in every picture:
#: tens of thousands of trace entries) run in the slow suite only.
LARGE = 100_000


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if STREAMS[n]["size"] > LARGE else n
            for n in names]


VALID = _params(n for n, s in STREAMS.items() if s["valid"])
INVALID = _params(n for n, s in STREAMS.items() if not s["valid"])


def data_of(name: str) -> bytes:
    return (ROOT / STREAMS[name]["file"]).read_bytes()


def by_path(entries) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in entries:
        if e["kind"] in ("field", "derived"):
            out.setdefault(e["path"], []).append(e["value"])
    return out


def plain(value):
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, bool):
        return int(value)
    return value


def _indexed(fields: dict, path: str) -> list:
    """The values of the trace entries ``path[0]``, ``path[1]``, ... in index order."""
    entry = re.compile(re.escape(path) + r"\[(\d+)\]$")
    found = []
    for k, v in fields.items():
        m = entry.match(k)
        if m:
            found.append((int(m.group(1)), v[0]))
    return [v for _, v in sorted(found)]


def check_layer_header(fields: dict, index: int, header) -> int:
    """Every LayerHeader attribute the trace holds under layers[index] equals the
    reader's; returns how many were compared."""
    compared = 0
    prefix = f"layers[{index}]."
    for f in dataclasses.fields(header):
        name, want = f.name, getattr(header, f.name)
        if name == "layer_id":
            assert bytes.fromhex(fields[prefix + name][0]).decode() == want
        elif name == "quant_params":
            for i, p in enumerate(want):
                for attr in ("min_value", "max_value", "offset_value"):
                    if getattr(p, attr) is not None:
                        assert fields[f"{prefix}quant_params[{i}].{attr}"] == [getattr(p, attr)]
        elif name == "channel_permutation" and header.group_bits is not None:
            # grouped_permutation() of format 1.2: the channels sorted by their group
            groups = _indexed(fields, prefix + "grouped_permutation.channel_group")
            assert want == tuple(sorted(range(len(groups)), key=lambda c: (groups[c], c)))
        elif name == "channel_permutation":
            # u(32) entries, or the compact_permutation() of format 1.2
            got = (_indexed(fields, prefix + "channel_permutation")
                   or _indexed(fields, prefix + "compact_permutation.channel_permutation_entry"))
            assert got == (list(want) if want is not None else [])
        elif name in ("group_bits", "channel_groups"):
            got = (fields.get(prefix + "grouped_permutation.group_bits", [None])[0]
                   if name == "group_bits"
                   else _indexed(fields, prefix + "grouped_permutation.channel_group") or None)
            assert got == (list(want) if name == "channel_groups" and want is not None
                           else want), name
        elif name == "per_channel_quant_flag":
            assert fields[prefix + "layer_flags.per_channel_quant_flag"] == [int(want)]
        elif name in ("tile_rows", "tile_cols"):
            got = fields.get(f"{prefix}tile_grid.{name}", [1])
            assert got == [want], name
        elif prefix + name in fields:
            assert fields[prefix + name] == [plain(want)], name
        else:
            continue
        compared += 1
    return compared


def check_against_headers(name: str, result: dict) -> None:
    data = data_of(name)
    stream = refcodec.read_headers(data)
    fields = by_path(result["entries"])
    h = stream.header
    for attr in ("version_major", "version_minor", "profile_idc", "level_idc", "num_layers"):
        assert fields[f"stream_header.{attr}"] == [getattr(h, attr)], attr
    for layer in stream.layers:
        i = layer.index
        assert check_layer_header(fields, i, layer.header) >= 15
        assert fields[f"layers[{i}].sample_md5"] == [layer.sample_md5.hex()]
        lh = layer.header
        # the HEVC readers' view of the payload: the picture size and count
        widths = fields[f"layers[{i}].hevc_payload.sps[0].pic_width_in_luma_samples"]
        assert widths[0] >= lh.picture_width
        firsts = [e for e in result["entries"] if e["path"].startswith(
            f"layers[{i}].hevc_payload.nal_unit[") and e["name"] ==
            "first_slice_segment_in_pic_flag" and e["value"] == 1]
        assert len(firsts) == lh.num_pictures
        qps = [e["value"] for e in result["entries"] if e["name"] == "SliceQpY"
               and e["path"].startswith(f"layers[{i}].")]
        assert qps and all(0 <= q <= 51 for q in qps)
    for face in stream.faces:
        base = f"faces[{face.index}].base"
        assert bytes.fromhex(fields[f"{base}.face_id"][0]).decode() == face.base.face_id
        assert fields[f"{base}.embedding_dim"] == [face.base.embedding_dim]
        assert fields[f"{base}.embedding_step"] == [face.base.embedding_step]
        assert fields[f"{base}.level"] == [list(face.base.levels)]
        if face.enhancement is not None:
            enh = f"faces[{face.index}].enhancement"
            for attr in ("image_height", "image_width", "image_channels", "residual_min",
                         "residual_max"):
                assert fields[f"{enh}.{attr}"] == [getattr(face.enhancement, attr)]
            assert fields[f"{enh}.texture_codec"] == [int(face.enhancement.texture_codec)]


def check_raw_bits(data: bytes, result: dict) -> None:
    """The raw column of each field is the stream's bits at its offset (an HEVC element
    over an emulation_prevention_three_byte shows the RBSP's bits)."""
    bits_of = None
    for e in result["entries"]:
        if e["kind"] != "field" or e["bits"] > 64 or e["bits"] == 0:
            continue
        start = 8 * e["byte_offset"] + e["bit"]
        first, last = start // 8, (start + e["bits"] - 1) // 8
        chunk = data[first:last + 1]
        bits_of = "".join(f"{b:08b}" for b in chunk)[start % 8:start % 8 + e["bits"]]
        if bits_of != e["raw"]:
            around = data[max(first - 2, 0):last + 3]
            assert e["path"].count("hevc_payload") or e["path"].count("texture_payload")
            assert b"\x00\x00\x03" in around, e


@pytest.mark.parametrize("name", VALID)
def test_trace_of_valid_stream_parses_back_to_read_headers(name):
    data = data_of(name)
    result = trace(data, decode=False).to_dict()
    assert result["error"] is None
    check_against_headers(name, result)
    check_raw_bits(data, result)
    offsets = [(8 * e["byte_offset"] + e["bit"]) for e in result["entries"]
               if e["kind"] == "field"]
    assert offsets == sorted(offsets)        # bitstream order


@pytest.mark.parametrize("name", INVALID)
def test_trace_of_invalid_stream_ends_with_its_recorded_error(name):
    entry = STREAMS[name]
    result = trace(data_of(name))
    assert result.error is not None
    assert result.error.clause == entry["expected_clause"]
    assert result.error.to_dict() == entry["decoder_error"]
    assert result.lines()[-1] == f"refcodec: error: {result.error}"
    # the trace stops at the element the error names
    last = result.entries[-1]
    path = entry["decoder_error"]["path"] or ""
    offset = entry["decoder_error"]["offset"]
    assert (path == last.path or path.startswith(last.path) or any(
        path == e.path or path.startswith(e.path + ".") for e in result.entries)
        or (offset is not None and last.byte_offset <= offset)), (path, last.path)


LINE = re.compile(r"^ *(\d+)\.(\d)  ( *)(\S+)(.*)$")


def _text_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]*", value) and len(value) > 64:
        return f"{value[:64]}... ({len(value) // 2} bytes)"
    return str(value)


@pytest.mark.parametrize("name", ["basic", "face_hevc", "tiled_grid_2x3", "order_shuffle",
                                  "hevc_inter_b_pyramid", "invalid_hevc_bit_depth_mismatch",
                                  "invalid_min_above_max"])
def test_text_and_json_agree(name):
    if name not in STREAMS:
        pytest.skip(f"{name} is not in this suite")
    result = trace(data_of(name))
    lines = result.lines()
    doc = json.loads(result.to_json())
    assert lines[0].startswith("# trace of")
    body = lines[1:-1] if doc["error"] else lines[1:]
    assert len(body) == len(doc["entries"])
    for line, e in zip(body, doc["entries"]):
        m = LINE.match(line)
        assert m, line
        assert (int(m.group(1)), int(m.group(2))) == (e["byte_offset"], e["bit"])
        assert len(m.group(3)) == 2 * e["depth"]
        assert m.group(4) == e["name"]
        rest = m.group(5)
        if e["kind"] == "field":
            assert rest.startswith(f"  {e['descriptor']}  ")
            shown = e["raw"] if len(e["raw"]) <= 64 else e["raw"][:64] + "..."
            assert f"  {shown} = {_text_value(e['value'])}" in rest, (rest, e)
        if e["clause"]:
            assert rest.endswith(f"[{e['clause']}]")
        if e["meaning"]:
            assert f"({e['meaning']})" in rest
    if doc["error"]:
        assert lines[-1].startswith(f"refcodec: error: [{doc['error']['clause']}]")


def test_json_schema_fields():
    doc = trace(data_of("basic")).to_dict()
    assert set(doc) == {"source", "stream_bytes", "decoded", "entries", "error"}
    keys = {"kind", "path", "name", "depth", "byte_offset", "bit", "bits", "descriptor",
            "raw", "value", "meaning", "clause"}
    assert all(set(e) == keys for e in doc["entries"])
    kinds = {e["kind"] for e in doc["entries"]}
    assert {"struct", "field", "derived"} <= kinds
    names = {e["name"] for e in doc["entries"]}
    # the container, the parameter sets and the slice headers
    assert {"magic", "unit_type", "layer_id", "min_value", "sample_md5", "nal_unit_type",
            "general_profile_idc", "pic_width_in_luma_samples", "init_qp_minus26",
            "slice_type", "slice_qp_delta", "PicOrderCntVal"} <= names
    meanings = {e["name"]: e["meaning"] for e in doc["entries"] if e["meaning"]}
    assert meanings["quantizer_type"] == "LOG" and meanings["unit_crc32"] == "matches"


def test_selection_by_layer_and_unit():
    data = data_of("layers_3")
    stream = refcodec.read_headers(data)
    full = trace(data, decode=False)
    last_id = stream.layers[-1].header.layer_id
    only = trace(data, layers=[last_id], decode=False)
    paths = {e.path for e in only.entries}
    assert any(p.startswith(f"layers[{len(stream.layers) - 1}].") for p in paths) or \
        len(stream.layers) == 1
    assert "stream_header.magic" in paths
    assert len(only.entries) < len(full.entries) or len(stream.layers) == 1
    units = trace(data, units=[0], decode=False)
    assert {e.path.split(".")[0] for e in units.entries} <= {"stream_header", "units[0]",
                                                             "layers[0]"}
    with pytest.raises(KeyError):
        trace(data, layers=["no-such-layer"])


def test_recorder_is_off_by_default():
    reader = params.RbspReader(b"\x80", offset=0, path="x")
    assert reader.recorder is None
    seen = []
    with params.recording(lambda *a: seen.append(a)):
        inner = params.RbspReader(b"\xc0", offset=0, path="x")
        assert inner.flag("a") == 1 and inner.ue("b") == 0
    assert [(a[1], a[3], a[4], a[5]) for a in seen] == [("x.a", 0, 1, 1), ("x.b", 1, 2, 0)]
    assert params.RbspReader(b"\x80", offset=0, path="x").recorder is None


def test_cli(tmp_path, capsys):
    good = ROOT / STREAMS["basic"]["file"]
    assert main(["trace", str(good)]) == 0
    out = capsys.readouterr().out
    assert "slice_segment_header" in out and "refcodec: error" not in out
    assert main(["trace", str(good), "--json", "--no-decode"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] is None and doc["decoded"] is False
    bad = ROOT / STREAMS["invalid_sample_bit_depth"]["file"]
    assert main(["trace", str(bad)]) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("refcodec: error: [8.3.5] ")
    assert main(["trace", str(good), "--layers", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["trace", str(good), "--units", "x"]) == 2
    assert main(["trace", str(tmp_path / "missing.vfc")]) == 2


@pytest.mark.parametrize("name", ["basic", "face_hevc", "hevc_inter_b_pyramid"])
def test_trace_of_damaged_streams(name):
    """Bytes changed anywhere: the trace never raises, and ends with the error the reader
    gives (or none when the reader accepts the bytes)."""
    data = data_of(name)
    rng = np.random.default_rng(17)
    for _ in range(30):
        damaged = bytearray(data)
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            damaged[at] ^= int(rng.integers(1, 256))
        cut = int(rng.integers(len(data) // 2, len(data) + 1))
        damaged = bytes(damaged[:cut])
        result = trace(damaged, decode=False)
        try:
            stream = refcodec.read_headers(damaged)
        except refcodec.BitstreamError as exc:
            assert result.error is not None and str(result.error) == str(exc)
        else:
            from refcodec.layer import payload_violations
            problems = [p for layer in stream.layers for p in payload_violations(layer)]
            assert (result.error is None) == (not problems)
        result.to_json()
        result.to_text()


def spec_descriptors() -> dict[str, set[str]]:
    """Syntax element name (array index dropped) -> the descriptors the spec's generated
    tables give it."""
    rows = re.compile(r"^\| (?:&emsp;)*`([a-z_0-9]+)(?:\[[a-z]\])?` \| ([^|]+?) \|", re.M)
    found: dict[str, set[str]] = {}
    spec = Path(__file__).resolve().parents[1] / "spec"
    for name in ("07-syntax.md", "13-face-layers.md"):
        for element, descriptor in rows.findall((spec / name).read_text()):
            found.setdefault(element, set()).add(descriptor.split(" = ")[0].strip())
    return found


@pytest.mark.parametrize("name", ["basic", "order_shuffle", "tiled_grid_2x3", "face_hevc",
                                  "face_predictor", "layout_nhwc_bfloat16_tiled"])
def test_container_names_and_descriptors_are_the_spec_tables(name):
    """Every container element the trace shows is named as in the spec's syntax tables,
    with the descriptor they give it (the trace walks the same construct definitions)."""
    table = spec_descriptors()
    result = trace(data_of(name), decode=False)
    checked = 0
    for e in result.entries:
        if e.kind != "field" or (e.clause or "").startswith("H.265") or \
                e.name == "trailing_data":
            continue
        element = re.sub(r"\[\d+\]$", "", e.name)
        assert element in table, e.name
        assert e.descriptor in table[element], (e.name, e.descriptor, table[element])
        checked += 1
    assert checked >= 25
