"""The conformance suite (conformance/): frozen fixtures, generator, runner, planes, libde265.

The committed streams are never regenerated here: every valid stream must still decode to
the checksums its manifest recorded, and every invalid stream must still be refused with
the recorded clause and error class.  The generator is tested on tiny tables in tmp_path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import refcodec
from refcodec import conformance as conf
from refcodec import packing
from refcodec.cli import main
from refcodec.codec import decode_samples
from refcodec.enums import QuantizerType, SourceDtype, SourceLayout
from refcodec.errors import BitstreamError
from refcodec.face import texture as face_texture
from refcodec.records import LayerHeader, QuantParams
from refcodec.verify import verify

from test_spec import reported_clause_ids

from refcodec.hevc.feed import in_decoder_order

pytestmark = [pytest.mark.conformance, pytest.mark.hevc]

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "conformance"
MANIFEST_PATH = SUITE / "manifest.json"
MANIFEST = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
VALID = [s for s in MANIFEST["streams"] if s["valid"]]
INVALID = [s for s in MANIFEST["streams"] if not s["valid"]]
#: The streams of the tables (features.csv, invalid.csv), without the interop group
#: (tests/test_interop.py).
TABLE_VALID = [s for s in VALID if s.get("group") != "interop"]
TABLE_INVALID = [s for s in INVALID if s.get("group") != "interop"]
FACE_STREAMS = [s["name"] for s in VALID if s["faces"]]
PREDICTOR_STREAMS = [s["name"] for s in VALID
                     if any(f["enhancement"] and f["enhancement"]["predictor"] != "none"
                            for f in s["faces"])]


def _refcodec_argv() -> list[str]:
    exe = shutil.which("refcodec")
    return [exe] if exe else [sys.executable, "-m", "refcodec.cli"]


REFCODEC = " ".join(_refcodec_argv())


def stream_bytes(stream: dict) -> bytes:
    return (SUITE / stream["file"]).read_bytes()


# ---------------------------------------------------------------------------------
# Frozen fixtures
# ---------------------------------------------------------------------------------

def test_manifest_header():
    assert MANIFEST["schema_version"] == conf.SCHEMA_VERSION
    assert MANIFEST["format_version"] == refcodec.FORMAT_VERSION
    assert MANIFEST["generator"]["command"] == (
        "refcodec conformance generate conformance/features.csv -o conformance --invalid "
        "conformance/invalid.csv --interop ../shared/interop")
    assert MANIFEST["skipped_alterations"] == []


def test_stored_files_match_the_manifest():
    listed = set()
    for s in MANIFEST["streams"]:
        data = stream_bytes(s)
        assert hashlib.sha256(data).hexdigest() == s["sha256"], s["name"]
        assert len(data) == s["size"], s["name"]
        listed.add(s["file"])
        if s["valid"]:
            listed.add(s["reference"])
    on_disk = {f"{p.parent.name}/{p.name}" for p in SUITE.glob("*/*") if p.is_file()}
    assert on_disk == listed, "files in conformance/ that the manifest does not list"


def test_suite_is_small():
    """The generated streams stay under 1.6 MB (1 MB up to format 1.1's streams; about
    100 kB for the 24 streams of the format 1.2 syntax; 0.4 MB for the four faces with a
    predictor, whose reference images are 150 x 150 x 3); the interop group, whose payloads
    other encoders wrote (1.9 MB of them) and whose reference tensors are 64 x 56 x 56 and
    larger, under 6 MB more."""
    interop = {f for s in MANIFEST["streams"] if s.get("group") == "interop"
               for f in (s["file"], s.get("reference")) if f}
    files = [p for p in SUITE.rglob("*") if p.is_file()]
    own = sum(p.stat().st_size for p in files
              if p.relative_to(SUITE).as_posix() not in interop)
    group = sum((SUITE / f).stat().st_size for f in interop)
    assert own < 1_600_000, own
    assert group < 6_000_000, group


def test_suite_was_generated_from_the_committed_tables():
    """An edited table without a regenerated suite fails here (python
    tools/gen_conformance.py --force regenerates it)."""
    features = conf.read_features(SUITE / "features.csv")
    assert [s["features"] for s in TABLE_VALID] == [f.to_json() for f in features]
    rows = conf.read_invalid(SUITE / "invalid.csv")
    assert [(s["name"], s["alteration"], s["base"]) for s in TABLE_INVALID] == \
        [(r.name, r.alteration, r.base or s["base"]) for r, s in zip(rows, TABLE_INVALID)]
    assert [s["purpose"] for s in TABLE_INVALID] == \
        [r.purpose or conf.ALTERATIONS[r.alteration].purpose for r in rows]
    assert (SUITE / "index.md").read_text(encoding="utf-8") == conf.render_index(MANIFEST)


@pytest.mark.parametrize("stream", VALID, ids=[s["name"] for s in VALID])
def test_valid_stream_decodes_to_the_recorded_checksums(stream):
    data = stream_bytes(stream)
    parsed = refcodec.read_headers(data)
    tensors = refcodec.decode(data)
    assert list(tensors) == [layer["layer_id"] for layer in stream["layers"]]
    report = verify(data)
    assert report.conformant
    assert bool(report.warnings) == (stream["name"] == "future_minor_version")
    face_arrays = [key for f in stream["faces"]
                   for key in conf.face_keys(f["face_id"])[:3 if f["enhancement"] else 1]]
    with np.load(SUITE / stream["reference"], allow_pickle=False) as ref:
        assert sorted(ref.files) == sorted(list(tensors) + face_arrays)
    check_faces_of(stream, data)
    for layer, entry in zip(parsed.layers, stream["layers"]):
        h = layer.header
        pictures = decode_samples(layer)
        assert conf.planes_md5_hex(pictures, h.sample_bit_depth) == entry["planes_md5"]
        assert layer.sample_md5.hex() == entry["sample_md5"]
        assert refcodec.codec.sample_md5(refcodec.codec.planes_md5(
            pictures, h.sample_bit_depth)).hex() == entry["sample_md5"]
        tensor = tensors[h.layer_id]
        assert list(tensor.shape) == entry["shape"]
        assert tensor.dtype == refcodec.codec.NUMPY_DTYPES[h.source_dtype]
        assert entry["tolerance"] | {"reference_correctly_rounded": None} == \
            conf.tolerance(h) | {"reference_correctly_rounded": None}
        reference = conf.reference_tensor(SUITE, stream, entry)
        if conf.tensor_sha256(tensor) == entry["tensor_sha256"]:
            assert np.array_equal(conf.tensor_bits(reference), conf.tensor_bits(tensor))
        else:   # only the log quantizer may differ on another platform (clause 12.3)
            assert entry["tolerance"]["kind"] == "abs", h.layer_id
            ok, detail = conf.compare_tensor(tensor, reference, entry)
            assert ok, detail
            warnings.warn(f"{stream['name']}: decoded within the tolerance, not bit-exactly",
                          stacklevel=1)


def check_faces_of(stream: dict, data: bytes) -> None:
    """The faces of a valid stream decode to the manifest's checksums and the references:
    embeddings exactly, images exactly or within the predictor's tolerance."""
    if not stream["faces"]:
        return
    arrays, notes = conf.decode_outputs(data)
    assert notes == []
    reference = conf.reference_faces(SUITE, stream)
    for face in stream["faces"]:
        emb, image, texture = conf.face_keys(face["face_id"])
        assert arrays[emb].dtype == np.float32 and arrays[emb].shape == (face["embedding_dim"],)
        assert conf.tensor_sha256(arrays[emb]) == face["embedding_sha256"]
        assert conf.tensor_sha256(reference[emb]) == face["embedding_sha256"]
        enh = face["enhancement"]
        if enh is None:
            assert image not in arrays and texture not in arrays
            continue
        assert list(arrays[image].shape) == enh["image_shape"] and arrays[image].dtype == np.uint8
        assert hashlib.sha256(reference[image]).hexdigest() == enh["image_sha256"]
        assert hashlib.md5(np.ascontiguousarray(arrays[texture].transpose(2, 0, 1))
                           ).hexdigest() == enh["texture_md5"]
        assert np.array_equal(arrays[texture], reference[texture])
        assert enh["tolerance"] == ({"kind": "exact"} if enh["predictor"] == "none" else
                                    {"kind": "abs", "max_abs_error": 1})
        if hashlib.sha256(arrays[image]).hexdigest() != enh["image_sha256"]:
            # only a predictor's floating point may differ on another platform (clause 13.7)
            assert conf.compare_image(arrays[image], reference[image], enh) == \
                (True, "tolerance")
            warnings.warn(f"{stream['name']}: face image within the tolerance, not "
                          f"bit-exactly", stacklevel=1)


@pytest.mark.parametrize("stream", INVALID, ids=[s["name"] for s in INVALID])
def test_invalid_stream_is_refused_with_the_recorded_clause(stream, tmp_path, capsys):
    data = stream_bytes(stream)
    err, refused_by = conf.reference_refusal(data)
    assert refused_by == stream.get("refused_by", "any")
    assert type(err).__name__ == stream["error_class"]
    assert err.to_dict() == stream["decoder_error"]
    assert err.clause == stream["expected_clause"]
    if refused_by == "any":
        with pytest.raises(BitstreamError) as info:
            refcodec.decode(data)
        assert info.value.to_dict() == stream["decoder_error"]
    report = verify(data)
    clauses = [v.clause for v in report.violations]
    assert clauses == stream["verify_clauses"]
    assert report.exit_code == stream["verify_exit_code"]
    if stream["verify_reports"] == "warning":    # a decoder's limit, not the stream's fault
        assert report.conformant and report.warnings == stream["verify_warnings"]
        assert f"(clause {stream['expected_clause']})" in report.warnings[0]
    else:
        assert (clauses[0] == stream["expected_clause"]) == \
            (stream["verify_reports"] == "first")
    out = tmp_path / "out.npz"
    assert conf.decoder_main(["decode", str(SUITE / stream["file"]), str(out)]) == \
        stream["exit_code"]
    assert not out.exists()
    assert f"[{stream['expected_clause']}]" in capsys.readouterr().err
    code = main(["decode", str(SUITE / stream["file"]), "-o", str(out)])
    # refcodec decode decodes everything, face textures and images included: it refuses
    # exactly what the normative decoder refuses, and leaves no output
    assert code == stream["exit_code"] and not out.exists()
    assert f"[{stream['expected_clause']}]" in capsys.readouterr().err
    # a base-layer decoder (--no-images) refuses only what needs no texture or image
    code = main(["decode", str(SUITE / stream["file"]), "-o", str(out), "--no-images"])
    if refused_by == "any":
        assert code == stream["exit_code"] and not out.exists()
    else:
        assert code == 0 and out.exists()
        out.unlink()


def test_every_clause_the_decoder_checks_has_an_invalid_stream():
    reported, _ = reported_clause_ids()
    covered = {s["expected_clause"] for s in INVALID}
    assert sorted(set(reported) - covered) == [], "clauses without an invalid stream"
    assert covered <= set(reported)


def uncovered_requirements(streams: list[dict], spec: Path | None = None) -> list[str]:
    """The checkable requirements of spec/ that no invalid stream of ``streams`` breaks."""
    covered = {s.get("requirement") for s in streams if not s["valid"]}
    return [rid for rid, r in conf.requirement_ids(spec).items()
            if r.checkable and rid not in covered]


def test_every_checkable_requirement_has_an_invalid_stream():
    """Clause 12.5: every requirement a decoder can check is broken by an invalid stream."""
    assert uncovered_requirements(MANIFEST["streams"]) == [], \
        "checkable requirements without an invalid stream"


def test_every_invalid_stream_names_a_requirement_of_its_clause():
    ids = conf.requirement_ids()
    for s in INVALID:
        rid = s.get("requirement")
        assert rid in ids, f"{s['name']}: requirement {rid!r} is not in spec/"
        assert ids[rid].clause == s["expected_clause"], s["name"]
        assert ids[rid].checkable, f"{s['name']}: {rid} is marked not checkable"


def test_requirement_coverage_detects_a_new_requirement(tmp_path):
    spec = tmp_path / "spec"
    shutil.copytree(SUITE.parent / "spec", spec)
    page = spec / "08-semantics.md"
    page.write_text(page.read_text(encoding="utf-8") +
                    "\n[8.2.7-b] It is a requirement of bitstream conformance that a new rule "
                    "holds.\n\n[8.2.7-c] It is a requirement of bitstream conformance that an "
                    "encoder rule holds (not checkable by a decoder).\n", encoding="utf-8")
    assert uncovered_requirements(MANIFEST["streams"], spec) == ["8.2.7-b"]


def test_generator_refuses_an_unknown_requirement(monkeypatch):
    from refcodec.conformance import generation
    monkeypatch.setattr(generation, "_spec_requirements", lambda: frozenset({"8.1.1-a"}))
    with pytest.raises(conf.SuiteError, match="requirement 8.1.1-b is not a requirement"):
        generation._check_requirement("8.1.1-b", "invalid stream x")
    generation._check_requirement("8.1.1-a", "invalid stream x")


def test_every_alteration_is_in_the_suite():
    used = {s["alteration"] for s in TABLE_INVALID}
    assert set(conf.ALTERATIONS) - used == set()


def test_every_feature_value_is_in_the_suite():
    """Each value of each enumerated element, and the listed special cases, occurs."""
    layers = [layer for s in TABLE_VALID for layer in s["layers"]]
    features = [s["features"] for s in TABLE_VALID]
    assert {x["quantizer"] for x in layers} == {"log", "uniform", "integer", "sqrt"}
    assert {x["bit_depth"] for x in layers} == {8, 10, 12}
    assert {x["dtype"] for x in layers} == {"float32", "float16", "bfloat16"}
    assert {x["layout"] for x in layers} == {"NCHW", "NHWC"}
    assert {f["packing"] for f in features} == {"auto", "channel", "tiled", "dense"}
    # format 1.2: the columns appear in the manifest only when set
    assert {f.get("param_format", "binary32") for f in features} == {"binary32", "binary16"}
    assert {f.get("permutation_coding", "auto") for f in features} == {"auto", "compact",
                                                                       "grouped", "u32"}
    assert {f["pad_mode"] for f in features} == {"replicate", "zero"}
    assert {f["data"] for f in features} == set(conf.DATA_KINDS)
    assert {f["per_channel"] for f in features} == {False, True}
    assert {f["lossless"] for f in features} == {False, True}
    assert any(f["layers"] > 1 for f in features)
    assert {s["level_idc"] for s in VALID} == set(refcodec.LEVELS)
    orders = {f["channel_order"].split(":")[0] for f in features}
    assert {"identity", "reverse", "shuffle"} <= orders and any(";" in o for o in orders)
    sizes = {(f["height"], f["width"]) for f in features}
    assert {(1, 1), (7, 7), (13, 29)} <= sizes
    assert any(h % 8 == 0 and w % 8 == 0 and h != w for h, w in sizes)
    assert any(np.prod(x["shape"]) == refcodec.LEVELS[10].max_layer_elements for x in layers)
    assert any(f["extra_unit"] == "skippable" for f in features)
    assert {f["face"] for f in features} == set(conf.FACE_KINDS)
    faces = [face for s in VALID for face in s["faces"]]
    enhanced = [face["enhancement"] for face in faces if face["enhancement"]]
    assert {e["texture_codec"] for e in enhanced} == {"hevc", "jpeg", "jpeg2000"}
    assert {e["image_shape"][2] for e in enhanced} == {1, 3}
    assert any(s["num_layers"] == 0 for s in VALID) and any(
        s["num_layers"] and s["faces"] for s in VALID)
    assert any(len(s["faces"]) > 1 for s in VALID)
    from refcodec.face import predictor
    assert {e["predictor"] for e in enhanced} == {"none"} | set(predictor.shipped_predictors())


def test_log_references_are_correctly_rounded():
    """conformance/README.md says so: the reference tensors of the log layers equal the
    values of clause 12.3 computed with correctly rounded log2 and exp2."""
    flags = [layer["tolerance"]["reference_correctly_rounded"] for s in VALID
             for layer in s["layers"] if layer["quantizer"] == "log"]
    assert len(flags) > 20 and all(flags)


def test_bfloat16_references_are_bit_patterns():
    stream = next(s for s in VALID if s["name"] == "dtype_bfloat16")
    entry = stream["layers"][0]
    assert entry["reference_encoding"] == "bfloat16-bits-as-uint16"
    with np.load(SUITE / stream["reference"]) as z:
        assert z[entry["layer_id"]].dtype == np.uint16
    assert conf.reference_tensor(SUITE, stream, entry).dtype == ml_dtypes.bfloat16


def test_exercised_clauses_follow_the_headers():
    by_name = {s["name"]: s["clauses"] for s in VALID}
    assert by_name["basic"] == ["9.4.2"]
    assert "8.3.2" in by_name["layout_nhwc"] and "9.5" in by_name["layout_nhwc"]
    assert "8.3.8" in by_name["order_identity_signalled"]
    assert "8.3.9" in by_name["tiled_grid_2x3"] and "8.3.9" not in by_name["packing_channel"]
    assert {"8.1.4", "11.2"} <= set(by_name["level20_channels"])
    assert {"8.2.1", "8.2.2"} <= set(by_name["skippable_units"])
    assert "8.1.2" not in by_name["basic"] and "8.1.6" in by_name["future_minor_version"]
    assert set(by_name["face_base_only"]) == conf.FACE_BASE_CLAUSES | {"8.1.5"}
    assert set(by_name["face_hevc"]) == \
        conf.FACE_BASE_CLAUSES | conf.FACE_ENHANCEMENT_CLAUSES | {"8.1.5"}
    assert "8.1.5" not in by_name["face_with_layer"] and "9.4.2" in by_name["face_with_layer"]
    for name in PREDICTOR_STREAMS:
        assert conf.FACE_PREDICTOR_CLAUSES <= set(by_name[name])


# ---------------------------------------------------------------------------------
# Tolerance (clause 12.3)
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,bound,expected", [
    (SourceDtype.FLOAT32, 1.0, -23), (SourceDtype.FLOAT32, 1.999, -23),
    (SourceDtype.FLOAT32, 2.0, -22), (SourceDtype.FLOAT32, 2.0 ** -24, -47),
    (SourceDtype.FLOAT16, 1.0, -10), (SourceDtype.FLOAT16, 65504.0, 5),
    (SourceDtype.FLOAT16, 2.0 ** -24, -24),                  # below e_min: the subnormal ulp
    (SourceDtype.BFLOAT16, 1.0, -7), (SourceDtype.BFLOAT16, 3.0e38, 120),
    (SourceDtype.FLOAT32, 2.0 ** -130, -149),
])
def test_ulp(dtype, bound, expected):
    assert conf.ulp_log2(bound, dtype) == expected


def _header(**kw) -> LayerHeader:
    base = dict(layer_id="x", source_layout=0, source_dtype=SourceDtype.FLOAT32, batch_size=1,
                num_channels=2, height=8, width=8, sample_bit_depth=8,
                quantizer_type=QuantizerType.LOG, per_channel_quant_flag=True,
                quant_params=(QuantParams(min_value=-3.0, max_value=0.5),
                              QuantParams(min_value=0.0, max_value=2.0 ** -30)),
                channel_permutation=None, packing_type=0, tile_rows=1, tile_cols=1,
                pad_mode=0, pad_bottom=0, pad_right=0)
    base.update(kw)
    return LayerHeader(**base)


def test_tolerance_of_a_header():
    tol = conf.tolerance(_header())
    assert [s["bound"] for s in tol["param_sets"]] == [3.0, 2.0 ** -24]
    assert [s["max_abs_error_log2"] for s in tol["param_sets"]] == [1 - 23, -24 - 23]
    assert all(s["max_abs_error"] == 2.0 ** s["max_abs_error_log2"] for s in tol["param_sets"])
    assert conf.tolerance(_header(quantizer_type=QuantizerType.UNIFORM)) == {"kind": "exact"}


def test_correctly_rounded_reference():
    """The decimal log2/exp2 reference of clause 12.3 agrees with refcodec's numpy
    dequantization on the clause 9.4.5 example, and is within the tolerance of it."""
    from refcodec.quant import output_table
    p = QuantParams(min_value=0.0, max_value=10.0)
    exact = conf.correctly_rounded_log_table(p, 8, SourceDtype.FLOAT32)
    ours = output_table(1, p, 8, np.float32)
    assert exact[0] == 0.0 and exact[255] == 10.0
    assert exact[1] == np.float32(0.009447862)
    limit = 2.0 ** conf.ulp_log2(10.0, SourceDtype.FLOAT32)
    assert np.max(np.abs(exact.astype(np.float64) - ours)) <= limit


def _layer_entry(quantizer="log", shape=(1, 2, 1, 3), layout="NCHW", logs=(-20, -10)):
    tol = ({"kind": "exact"} if quantizer != "log" else
           {"kind": "abs", "param_sets": [{"max_abs_error_log2": k} for k in logs]})
    return {"shape": list(shape), "layout": layout, "quantizer": quantizer, "tolerance": tol}


def test_compare_tensor_tolerance_edges():
    ref = np.array([[[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]]], dtype=np.float32)
    entry = _layer_entry()
    assert conf.compare_tensor(ref.copy(), ref, entry) == (True, "exact")
    at_limit = ref.copy()
    at_limit[0, 0] += np.float32(2.0 ** -20)            # exactly the tolerance: passes
    assert conf.compare_tensor(at_limit, ref, entry) == (True, "tolerance")
    over = ref.copy()
    over[0, 0, 0, 0] = np.nextafter(np.float32(1.0 + 2.0 ** -20), np.float32(2))
    ok, detail = conf.compare_tensor(over, ref, entry)
    assert not ok and "1 of 6 values outside the tolerance" in detail
    loose = ref.copy()
    loose[0, 1] += np.float32(2.0 ** -11)               # channel 1 has a larger tolerance
    assert conf.compare_tensor(loose, ref, entry) == (True, "tolerance")
    nan = ref.copy()
    nan[0, 1, 0, 0] = np.nan
    assert not conf.compare_tensor(nan, ref, entry)[0]
    nhwc = _layer_entry(shape=(1, 1, 3, 2), layout="NHWC")
    ref_nhwc = np.ascontiguousarray(ref.transpose(0, 2, 3, 1))
    loose_nhwc = np.ascontiguousarray(loose.transpose(0, 2, 3, 1))
    assert conf.compare_tensor(loose_nhwc, ref_nhwc, nhwc) == (True, "tolerance")
    assert not conf.compare_tensor(loose_nhwc, ref_nhwc, dataclasses.replace(
        conf.Features("x"), layout="NHWC").to_json() | nhwc | {"layout": "NCHW"})[0]


def _log_decoder_outputs(stream: dict, exp2):
    """The tensors of a valid stream's log layers as a decoder whose exp2 is ``exp2``
    computes them (binary64 as clause 4.4 says, then binary32, then the dtype)."""
    s = refcodec.read_headers(stream_bytes(stream))
    for layer, entry in zip(s.layers, stream["layers"]):
        h = layer.header
        if h.quantizer_type != QuantizerType.LOG:
            continue
        q = packing.unpack(decode_samples(layer), packing.Layout.of(h)).astype(np.float64)
        d = float((1 << h.sample_bit_depth) - 1)
        out = np.empty(q.shape, np.float64)
        for c in range(q.shape[1]):
            p = h.quant_params[c if len(h.quant_params) > 1 else 0]
            lo, hi = np.float64(p.min_value), np.float64(p.max_value)
            span = np.log2((hi - lo) + 1.0)
            out[:, c] = lo + (exp2((q[:, c] * span) / d) - 1.0)
        y = out.astype(np.float32).astype(refcodec.codec.NUMPY_DTYPES[h.source_dtype])
        if h.source_layout == SourceLayout.NHWC:
            y = np.ascontiguousarray(y.transpose(0, 2, 3, 1))
        yield y, entry


LOG_STREAMS = [s for s in TABLE_VALID
               if any(layer["quantizer"] == "log" for layer in s["layers"])]


def test_log_streams_need_the_tolerance_and_it_catches_binary32():
    """Clause 12.3 on the suite itself: a decoder whose exp2 is one binary64 unit in the last
    place off (either way) passes every log stream only thanks to the tolerance (its output
    differs from the reference on some streams, within the tolerance everywhere), while a
    decoder that computes in binary32 instead of binary64 (clause 4.4) fails some."""
    up = lambda t: np.nextafter(np.exp2(t), np.inf)        # noqa: E731
    down = lambda t: np.nextafter(np.exp2(t), -np.inf)     # noqa: E731
    needed = 0
    for stream in LOG_STREAMS:
        for exp2 in (up, down):
            for y, entry in _log_decoder_outputs(stream, exp2):
                ok, tier = conf.compare_tensor(y, conf.reference_tensor(SUITE, stream, entry),
                                               entry)
                assert ok, (stream["name"], tier)
                needed += tier == "tolerance"
    assert needed >= 10, needed
    failed = 0
    for stream in LOG_STREAMS[:8]:
        s = refcodec.read_headers(stream_bytes(stream))
        for layer, entry in zip(s.layers, stream["layers"]):
            h = layer.header
            if h.quantizer_type != QuantizerType.LOG or h.source_dtype != SourceDtype.FLOAT32 \
                    or len(h.quant_params) > 1:
                continue
            q = packing.unpack(decode_samples(layer), packing.Layout.of(h)).astype(np.float32)
            p = h.quant_params[0]
            lo, hi = np.float32(p.min_value), np.float32(p.max_value)
            d = np.float32((1 << h.sample_bit_depth) - 1)
            y = lo + (np.exp2((q * np.log2((hi - lo) + np.float32(1))) / d) - np.float32(1))
            if h.source_layout == SourceLayout.NHWC:
                y = np.ascontiguousarray(y.transpose(0, 2, 3, 1))
            failed += not conf.compare_tensor(
                y.astype(np.float32), conf.reference_tensor(SUITE, stream, entry), entry)[0]
    assert failed >= 1


def test_compare_tensor_exact_quantizers_and_signed_zero():
    ref = np.zeros((1, 1, 1, 2), dtype=np.float32)
    neg = -ref
    ok, detail = conf.compare_tensor(neg, ref, _layer_entry("uniform", (1, 1, 1, 2)))
    assert not ok and "2 of 2 values differ" in detail
    assert conf.compare_tensor(neg, ref, _layer_entry("log", (1, 1, 1, 2), logs=(-20,))) \
        == (True, "tolerance")
    assert "shape" in conf.compare_tensor(ref.reshape(1, 1, 2, 1), ref,
                                          _layer_entry("uniform", (1, 1, 1, 2)))[1]


def test_output_dtypes_the_runner_accepts():
    bf = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    widened, note = conf.as_source_dtype(bf.astype(np.float32), "bfloat16")
    assert widened.dtype == ml_dtypes.bfloat16 and np.array_equal(widened, bf) and note
    bits, _ = conf.as_source_dtype(bf.view(np.uint16), "bfloat16")
    assert np.array_equal(bits, bf)
    assert conf.as_source_dtype(np.array([1.0001], np.float32), "bfloat16")[0] is None
    assert conf.as_source_dtype(bf, "bfloat16")[0] is not None
    assert conf.as_source_dtype(np.zeros(2, np.float32), "float16") == \
        (None, "dtype float32 instead of float16")
    assert conf.as_source_dtype(np.zeros(2, ">f4"), "float32")[0].dtype == np.float32


# ---------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------

TINY = """\
name,purpose,channels,height,width,quantizer,bit_depth,qp,preset,layers,data,seed,dtype,channel_order
t_log,tiny,2,7,7,log,8,40,ultrafast,2,relu,1,float32,reverse
t_int,tiny integer,3,8,8,integer,10,30,ultrafast,1,integer,2,float16,
"""
TINY_INVALID = """name,alteration,base,purpose
bad_md5,sample_md5,t_int,
two,num_layers_too_small,,the second layer is not announced
"""


def _generate(tmp_path, out, *extra, table=TINY, invalid=TINY_INVALID):
    (tmp_path / "f.csv").write_text(table)
    (tmp_path / "i.csv").write_text(invalid or "")
    argv = ["conformance", "generate", str(tmp_path / "f.csv"), "-o", str(out), "-q"]
    if invalid is not None:
        argv += ["--invalid", str(tmp_path / "i.csv")]
    return main(argv + list(extra))


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_generator_is_deterministic_and_refuses_to_overwrite(tmp_path, capsys):
    assert _generate(tmp_path, tmp_path / "a") == 0
    assert _generate(tmp_path, tmp_path / "b") == 0
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert sorted(a) == ["index.md", "manifest.json", "reference/t_int.npz",
                         "reference/t_log.npz", "streams/bad_md5.vfc", "streams/t_int.vfc",
                         "streams/t_log.vfc", "streams/two.vfc"]
    for name in a:
        if name not in ("manifest.json", "index.md"):      # these name the output directory
            assert a[name] == b[name], name
    ma, mb = (json.loads(x["manifest.json"]) for x in (a, b))
    assert ma["streams"] == mb["streams"]
    capsys.readouterr()
    assert _generate(tmp_path, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and "manifest.json exists" in err
    assert _tree(tmp_path / "a") == a
    (tmp_path / "a" / "streams" / "stale.vfc").write_bytes(b"old")
    assert _generate(tmp_path, tmp_path / "a", "--force") == 0
    # a file the manifest does not list is not the generator's: it stays
    assert _tree(tmp_path / "a") == {**a, "streams/stale.vfc": b"old"}
    m = ma["streams"]
    assert [s["name"] for s in m] == ["t_log", "t_int", "bad_md5", "two"]
    assert [x["layer_id"] for x in m[0]["layers"]] == ["t_log.0", "t_log.1"]
    assert m[0]["layers"][0]["shape"] == [1, 2, 7, 7]
    assert m[1]["layers"][0]["dtype"] == "float16"
    assert m[2]["base"] == "t_int" and m[3]["base"] == "t_log"     # auto: the first that fits
    assert m[3]["purpose"] == "the second layer is not announced"


def test_generator_default_invalid_list(tmp_path):
    table = TINY.splitlines()[0] + "\n" + TINY.splitlines()[1] + "\n"
    assert _generate(tmp_path, tmp_path / "d", table=table, invalid=None) == 0
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    made = {s["alteration"] for s in m["streams"] if not s["valid"]}
    skipped = {s["alteration"]: s["reason"] for s in m["skipped_alterations"]}
    assert made | set(skipped) == set(conf.ALTERATIONS) and not made & set(skipped)
    # the single log stream has two layers and a permutation, but no integer quantizer,
    # float16, lossless coding, CRA picture or second level
    face_alterations = {k for k, alt in conf.ALTERATIONS.items() if alt.scope == "face"}
    assert len(face_alterations) == 42
    assert set(skipped) == {"quant_param_beyond_dtype", "offset_not_integer",
                            "offset_out_of_range", "level_too_low",
                            "hevc_lossless_implicit_rdpcm", "hevc_lossless_transform_skip_rotation",
                            "hevc_rasl_not_output"} | face_alterations | {
                                # format 1.2: a dense layer, a layer_header_ext unit, a
                                # square-root layer, a version 1.2 stream
                                "sqrt_in_version_1_1", "quantizer_type_reserved_1_2",
                                "dense_single_tile", "dense_pad_not_multiple_of_8",
                                "dense_pad_right_not_multiple_of_8",
                                "dense_in_version_1_1", "layer_header_ext_in_version_1_1",
                                "param_format_reserved", "permutation_coding_reserved",
                                "compact_permutation_alignment_bits", "group_bits_zero",
                                "group_bits_above_8", "grouped_permutation_alignment_bits"}
    assert "needs two faces" in skipped["duplicate_face_id"]
    assert "needs an integer quantizer" in skipped["offset_not_integer"]
    for s in m["streams"]:
        if not s["valid"]:
            assert s["expected_clause"] == conf.ALTERATIONS[s["alteration"]].clause


def test_generator_codes_given_tensors(tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "mine.npz", conv=rng.standard_normal((1, 3, 9, 9)).astype(np.float16),
             fc=rng.standard_normal((2, 5, 4, 4)).astype(np.float32))
    out = tmp_path / "suite"
    assert main(["conformance", "generate", "--tensors", str(tmp_path / "mine.npz"), "-o",
                 str(out), "--quantizer", "uniform", "--qp", "40", "--preset", "ultrafast",
                 "--channel-order", "reverse", "--no-invalid", "-q"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    (s,) = m["streams"]
    assert s["name"] == "mine" and s["features"]["data"] == "file:mine.npz"
    assert "--tensors" in m["generator"]["command"] and "--channel-order reverse" in \
        m["generator"]["command"]
    decoded = refcodec.decode((out / s["file"]).read_bytes())
    assert list(decoded) == ["conv", "fc"]
    for entry in s["layers"]:
        ref = conf.reference_tensor(out, s, entry)
        assert np.array_equal(conf.tensor_bits(ref), conf.tensor_bits(decoded[entry["layer_id"]]))
    assert refcodec.read_headers((out / s["file"]).read_bytes()).layers[1].header \
        .channel_permutation == (4, 3, 2, 1, 0)


@pytest.mark.parametrize("table,invalid,message", [
    ("name,colour\nx,red\n", None, "unknown column(s) colour"),
    ("name,qp\nx,abc\n", None, "column qp: bad value 'abc'"),
    ("name,qp\nx,60\n", None, "qp shall be an integer in 0..51"),
    ("name,dtype,quantizer,bit_depth,data\nx,bfloat16,integer,12,integer\n", None,
     "integer data of 12 bits cannot be exact in bfloat16"),
    ("name,quantizer,data\nx,integer,relu\n", None, "the integer quantizer needs integer-valued"),
    ("name,channel_order,channels\nx,1;1,2\n", None, "is not a permutation of 0..1"),
    ("name\nbad name\n", None, "name 'bad name' shall be"),
    ("name\nx\n", "name,alteration\ny,no_such\n", "unknown alteration 'no_such'"),
    ("name,preset\nx,ultrafast\n", "name,alteration,base\ny,tile_grid_single_tile,x\n",
     "does not fit: the alteration needs packing_type 1"),
    ("name,preset\nx,ultrafast\n", "name,alteration,base\ny,magic,z\n", "no valid stream named"),
    ("name,preset\nx,ultrafast\n", "name,alteration\nx,magic\n", "names shall be unique: x"),
    ("name,layers\nx,0\n", None, "layers shall be in 1..256, got 0 (0 only with a face)"),
    ("name,face\nx,png\n", None, "face shall be empty or one of base, hevc, jpeg, jpeg2000"),
    ("name,face,face_channels\nx,hevc,2\n", None, "face_channels shall be 1 or 3, got 2"),
    ("name,face,faces\nx,base,0\n", None, "faces shall be in 1..256, got 0"),
    ("name,face,predictor\nx,hevc,no-such-net\n", None,
     "predictor 'no-such-net' is not shipped with refcodec"),
    ("name,face,predictor\nx,base,some-net\n", None,
     "predictor applies to an enhancement layer"),
    ("name,face,face_qp\nx,hevc,52\n", None, "qp shall be an integer in 0..51, got 52"),
    ("name,preset\nx,ultrafast\n", "name,alteration,base\ny,eg_order,x\n",
     "does not fit: the alteration needs a face"),
])
def test_generator_reports_bad_tables_in_one_line(tmp_path, capsys, table, invalid, message):
    code = _generate(tmp_path, tmp_path / "o", table=table, invalid=invalid or
                     "name,alteration\n")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_generate_usage_errors(tmp_path, capsys):
    assert main(["conformance", "generate", "-o", str(tmp_path)]) == 2
    assert main(["conformance", "generate", str(SUITE / "features.csv"), "-o", str(tmp_path),
                 "--qp", "3"]) == 2
    assert "applies to --tensors only" in capsys.readouterr().err


# ---------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------

def inprocess_decoder(input_path, output, planes):
    """refcodec as a decoder, in this process (the same code as the subprocess): the
    reference decoder's output of python -m refcodec.conformance decode (layers, face
    embeddings, images and textures) and the planes of refcodec conformance planes."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = 0
        if output is not None:
            code = conf.decoder_main(["decode", str(input_path), str(output)])
        if code == 0 and planes is not None:
            code = main(["conformance", "planes", str(input_path), "-o", str(planes), "-q"])
    return conf.DecoderRun(code, err.getvalue())


def test_runner_passes_refcodec_on_the_whole_suite():
    results = conf.run_suite(MANIFEST_PATH, inprocess_decoder, outputs=True, planes=True)
    failed = [(r["name"], r["reasons"]) for r in results["results"] if r["status"] != "PASS"]
    assert failed == []
    s = results["summary"]
    assert (s["valid"]["total"], s["invalid"]["total"]) == (len(VALID), len(INVALID))
    assert s["valid"]["exact"] == len(VALID)
    assert all(r["reported_clause"] for r in results["results"] if not r["valid"])


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


SUBSET = ["basic", "uniform_8bit", "dtype_bfloat16", "layers_3", "layout_nhwc_float16*",
          "invalid_magic", "invalid_sample_md5", "invalid_hevc_chroma_420"]


def test_runner_subprocess_refcodec_decode(tmp_path, capsys):
    argv = ["conformance", "run", "--decoder", f"{REFCODEC} decode {{input}} -o {{output}}",
            "--suite", MANIFEST_PATH, "--json", tmp_path / "r.json", "-j", "2"]
    code, out, err = run_cli(capsys, *argv, *[a for p in SUBSET for a in ("--streams", p)])
    assert code == 0, out + err
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in results["results"]] == ["PASS"] * 8
    assert [r["name"] for r in results["results"]][:2] == ["basic", "uniform_8bit"]
    assert results["checks"] == {"tensors": True, "planes": False}
    assert "8/8 passed: valid 5/5 (5 bit-exact" in out and "invalid 3/3 refused" in out
    assert all(r["exit_code"] == 3 and r["reported_clause"]
               for r in results["results"] if not r["valid"])


def test_runner_subprocess_planes(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "conformance", "run", "--planes", "--suite", MANIFEST_PATH, "-j", "2",
        "--decoder", f"{REFCODEC} conformance planes {{input}} -o {{planes}} -q",
        "--streams", "log_12bit", "--streams", "tiled_grid_2x3", "--streams", "layers_3",
        "--streams", "invalid_hevc_bit_depth_mismatch")
    assert code == 0, out + err
    assert "4/4 passed" in out and "tier 1" in out


@pytest.mark.slow
@pytest.mark.parametrize("template,extra", [
    ("{python} -m refcodec.conformance decode {{input}} {{output}}", []),
    ("{refcodec} conformance planes {{input}} -o {{planes}}", ["--planes"]),
])
def test_runner_subprocess_whole_suite(tmp_path, capsys, template, extra):
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", MANIFEST_PATH, "-j", "2",
                             "--decoder", template.format(refcodec=REFCODEC,
                                                          python=sys.executable), *extra)
    assert code == 0, out
    assert f"{len(VALID) + len(INVALID)}/{len(VALID) + len(INVALID)} passed" in out


BROKEN = r'''
import sys
import numpy as np
import refcodec
from refcodec import conformance
mode, src, dst = sys.argv[1:4]
data = open(src, "rb").read()
try:
    if mode == "planes":
        arrays = conformance.decode_planes(data)
    else:
        arrays = refcodec.decode(data)
except refcodec.BitstreamError as exc:
    if mode == "leave":
        open(dst, "wb").write(b"partial")
    print(exc, file=sys.stderr)
    sys.exit(0 if mode == "accept" else 3)
def plain(v):   # numpy files hold no bfloat16: widen it, as refcodec decode does
    return v.astype(np.float32) if v.dtype.kind != "f" else v
if mode == "offset":   # float16 stays float16, bfloat16 becomes non-bfloat16 float32 values
    arrays = {k: plain(v) + plain(v).dtype.type(1e-3) for k, v in arrays.items()}
elif mode == "planes":
    first = next(iter(arrays))
    arrays[first] = arrays[first].copy()
    arrays[first][0, 0, 0] ^= 1
elif mode == "rename":
    arrays = {k + "_": v for k, v in arrays.items()}
else:
    arrays = {k: plain(v) for k, v in arrays.items()}
np.savez(dst, **arrays)
'''


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    path = tmp_path_factory.mktemp("broken") / "broken_decoder.py"
    path.write_text(BROKEN)
    return path


@pytest.mark.parametrize("mode,expect", [
    ("offset", {"basic": "values outside the tolerance of clause 12.3",
                "uniform_8bit": "values differ from the reference",
                "dtype_bfloat16": "float32 values that are not bfloat16 values",
                "invalid_magic": None}),
    ("accept", {"basic": None, "invalid_magic": "exit status 0 on an invalid stream "
                                                "(expected a refusal, clause 8.1.1)"}),
    ("leave", {"basic": None, "invalid_sample_md5": "left output behind"}),
    ("rename", {"layers_3": "unexpected arrays layers_3.0_, layers_3.1_, layers_3.2_"}),
    ("planes", {"log_10bit": "layer log_10bit.0: planes_md5 ", "invalid_magic": None}),
])
def test_runner_reports_a_broken_decoder(tmp_path, capsys, broken, mode, expect):
    target = "{planes}" if mode == "planes" else "{output}"
    code, out, err = run_cli(
        capsys, "conformance", "run", "--suite", MANIFEST_PATH, "--json", tmp_path / "r.json",
        "-j", "2", "--decoder", f"{sys.executable} {broken} {mode} {{input}} {target}",
        *(["--planes"] if mode == "planes" else []),
        *[a for name in expect for a in ("--streams", name)])
    results = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert set(results) == set(expect)
    for name, reason in expect.items():
        if reason is None:
            assert results[name]["status"] == "PASS", results[name]
        else:
            assert results[name]["status"] == "FAIL", results[name]
            assert reason in " ".join(results[name]["reasons"]), results[name]
            assert f"{name} " in out and "FAIL" in out
    assert code == (1 if any(expect.values()) else 0)


def test_runner_refuses_bad_commands(capsys, tmp_path):
    def run(*argv):
        return run_cli(capsys, "conformance", "run", "--suite", MANIFEST_PATH, *argv)
    for argv, message in [
        (["--decoder", "dec {output}"], "no {input} placeholder"),
        (["--decoder", "dec {input} {out}"], "unknown placeholder(s) {out}"),
        (["--decoder", "dec {input} {output}", "--planes"], "--planes needs a {planes}"),
        (["--decoder", "dec {input} {planes}"], "has no {output} placeholder"),
        (["--decoder", "dec '{input}"], "No closing quotation"),
        (["--decoder", "no-such-decoder-x {input} {output}", "--streams", "basic"],
         "cannot run 'no-such-decoder-x'"),
        (["--decoder", "dec {input} {output}", "--streams", "nothing*"], "no stream of"),
    ]:
        code, out, err = run(*argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    code, _, err = run_cli(capsys, "conformance", "run", "--decoder", "d {input} {output}",
                           "--suite", tmp_path / "none.json")
    assert code == 2 and "no such manifest" in err


def test_runner_never_uses_a_shell(tmp_path, capsys):
    """The decoder command is split with shlex and run without a shell: metacharacters are
    arguments, and a path with spaces stays one argument."""
    suite = tmp_path / "a suite; touch pwned"
    suite.mkdir()
    stream = next(s for s in VALID if s["name"] == "basic")
    (suite / "streams").mkdir()
    (suite / "reference").mkdir()
    shutil.copy(SUITE / stream["file"], suite / stream["file"])
    shutil.copy(SUITE / stream["reference"], suite / stream["reference"])
    (suite / "manifest.json").write_text(json.dumps(MANIFEST | {"streams": [stream]}))
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", suite / "manifest.json",
                             "--decoder", f"{REFCODEC} decode {{input}} -o {{output}} ; touch "
                             f"{tmp_path}/pwned")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert code == 1 and "unrecognized arguments: ; touch" in out


def test_runner_timeout_and_tampered_stream(tmp_path):
    slow, _, _ = conf.command_decoder(f"{sys.executable} -c 'import time; time.sleep(30)' "
                                      f"{{input}} {{output}}", timeout=0.5)
    results = conf.run_suite(MANIFEST_PATH, slow, streams=["qp_51"])
    (r,) = results["results"]
    assert r["status"] == "FAIL" and r["reasons"] == ["timed out after 0.5 s"]
    suite = tmp_path / "s"
    (suite / "streams").mkdir(parents=True)
    stream = next(s for s in VALID if s["name"] == "qp_51")
    (suite / stream["file"]).write_bytes(stream_bytes(stream)[:-1] + b"\x00")
    (suite / "manifest.json").write_text(json.dumps(MANIFEST | {"streams": [stream]}))
    (r,) = conf.run_suite(suite / "manifest.json", inprocess_decoder)["results"]
    assert r["reasons"] == ["stream file streams/qp_51.vfc does not match its sha256"]


def test_runner_accepts_npy_for_one_layer(tmp_path):
    def npy_decoder(input_path, output, planes):
        tensor = next(iter(refcodec.decode(Path(input_path).read_bytes()).values()))
        with open(output, "wb") as fh:      # .npy content in the .npz path
            np.save(fh, tensor)
        return conf.DecoderRun(0)
    results = conf.run_suite(MANIFEST_PATH, npy_decoder, streams=["basic", "layers_3"])
    status = {r["name"]: (r["status"], r["reasons"]) for r in results["results"]}
    assert status["basic"] == ("PASS", [])
    assert status["layers_3"][1] == ["output is one array, the stream has several layers "
                                     "(write .npz)"]


# ---------------------------------------------------------------------------------
# Faces (format 1.1, clause 13)
# ---------------------------------------------------------------------------------

def test_synthetic_faces_are_deterministic_and_of_dlib_scale():
    face = conf.synthetic_face(5)
    again = conf.synthetic_face(5)
    assert np.array_equal(face.image, again.image)
    assert np.array_equal(face.embedding, again.embedding)
    assert face.image.shape == (150, 150, 3) and face.image.dtype == np.uint8
    assert len(np.unique(face.image.reshape(-1, 3), axis=0)) == 5      # five flat regions
    assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
    assert 0.07 < float(face.embedding.std()) < 0.11 and abs(float(face.embedding.mean())) < 0.03
    assert face.embedder == refcodec.enums.Embedder.DLIB_RESNET_V1
    gray = conf.synthetic_face(5, channels=1)
    assert gray.image.shape == (150, 150, 1) and np.array_equal(gray.embedding, face.embedding)
    assert not np.array_equal(conf.synthetic_face(6).image, face.image)


def output_decoder(mutate=None):
    """An in-process decoder writing the reference decoder's outputs, changed by ``mutate``
    (a function of the arrays and the stream name) first."""
    def run(input_path, output, planes):
        try:
            arrays, _ = conf.decode_outputs(Path(input_path).read_bytes())
        except BitstreamError as exc:
            return conf.DecoderRun(3, str(exc))
        if mutate is not None:
            mutate(arrays)
        conf.write_npz(Path(output), arrays, compress=False)
        return conf.DecoderRun(0)
    return run


def run_streams(decoder, *names, manifest=MANIFEST_PATH, **kw) -> dict[str, dict]:
    results = conf.run_suite(manifest, decoder, streams=names, **kw)["results"]
    return {r["name"]: r for r in results}


def shifted(arrays, prefix, by):
    """Every sample of the arrays named prefix:* moved by ``by`` (inwards at 0 and 255)."""
    for key in [k for k in arrays if k.startswith(prefix)]:
        x = arrays[key].astype(np.int64)
        arrays[key] = np.where(x + by <= 255, x + by, x - by).astype(np.uint8)


@pytest.mark.parametrize("mutate,passes,reason", [
    (None, {"face_hevc", "faces_2", "face_base_only", "face_with_layer", "face_jpeg",
            "face_jpeg2000"}, None),
    (lambda a: shifted(a, "image:", 2), {"face_base_only"},
     "67500 of 67500 image samples differ from the reference by more than 0 (largest 2; "
     "exact without a predictor, clause 13.7.3)"),
    (lambda a: shifted(a, "image:", 1), {"face_base_only"}, "by more than 0 (largest 1"),
    (lambda a: [a.pop(k) for k in list(a) if k.startswith("image:")], {"face_base_only"},
     "no image:face0"),
    (lambda a: a.update({k: np.nextafter(v, np.float32(1)) for k, v in a.items()
                         if k.startswith("embedding:")}), set(),
     "128 of 128 embedding values differ from the reference (exact, clause 13.7.1)"),
    (lambda a: a.update({k: v.astype(np.float64) for k, v in a.items()
                         if k.startswith("embedding:")}),
     {"face_hevc", "faces_2", "face_base_only"}, None),
    (lambda a: shifted(a, "texture:", 1), {"face_base_only"}, "texture MD5 "),
    (lambda a: [a.pop(k) for k in list(a) if k.startswith("texture:")],   # optional
     {"face_hevc", "faces_2", "face_base_only"}, None),
    (lambda a: a.update({k: v[:, :, 0] for k, v in a.items()            # H x W for 1 channel
                         if k.startswith("image:") and v.shape[2] == 1}),
     {"face_hevc", "faces_2", "face_base_only"}, None),
    (lambda a: a.update({k: v[:, :, 0] for k, v in a.items() if k.startswith("image:")}),
     {"faces_2", "face_base_only"}, "image uint8[150, 150], expected 8-bit integers of "
     "shape [150, 150, 3]"),
    (lambda a: a.update(extra=np.zeros(1)), set(), "unexpected arrays extra"),
], ids=["reference", "image+2", "image+1", "no_image", "embedding_ulp", "embedding_float64",
        "texture+1", "no_texture", "image_hw_gray", "image_hw_colour", "extra_array"])
def test_runner_checks_face_outputs(mutate, passes, reason):
    names = ["face_hevc", "faces_2", "face_base_only"] if mutate is not None else \
        sorted(passes)
    results = run_streams(output_decoder(mutate), *names)
    for name, r in results.items():
        assert (r["status"] == "PASS") == (name in passes), (name, r)
        if name in passes:
            assert r["tier"] == "exact"
        elif reason is not None and name == "face_hevc":
            assert reason in " ".join(r["reasons"]), r["reasons"]


@pytest.mark.skipif(not PREDICTOR_STREAMS, reason="no stream with a predictor network in the "
                    "suite (refcodec ships no predictor)")
def test_runner_face_image_tolerance_with_a_predictor():
    """With a predictor network a face image may differ by 1 (clause 13.7), not by 2."""
    name = PREDICTOR_STREAMS[0]
    (r,) = run_streams(output_decoder(lambda a: shifted(a, "image:", 1)), name).values()
    assert (r["status"], r["tier"]) == ("PASS", "tolerance"), r
    (r,) = run_streams(output_decoder(lambda a: shifted(a, "image:", 2)), name).values()
    assert r["status"] == "FAIL" and "more than 1 (largest 2; tolerance 1 with a predictor" \
        in r["reasons"][0]


def test_runner_allows_other_jpeg_textures():
    """A JPEG or JPEG 2000 decoder may decode a texture other than the encoder's (clause
    13.7.2): a decoder that shows it (texture:<face_id>) passes with a note and its image is
    not compared (clause 13.7.3); an HEVC texture must match."""
    def other_decoder(arrays):
        shifted(arrays, "texture:", 1)
        shifted(arrays, "image:", 1)
    full = conf.run_suite(MANIFEST_PATH, output_decoder(other_decoder),
                          streams=["face_jpeg", "face_jpeg2000", "face_hevc"])
    results = {r["name"]: r for r in full["results"]}
    for name in ("face_jpeg", "face_jpeg2000"):
        r = results[name]
        assert (r["status"], r["tier"]) == ("PASS", "tolerance"), r
        assert "differs from the encoder's (texture_md5), which clause 13.7.2 allows" in \
            r["notes"][0]
    assert results["face_hevc"]["status"] == "FAIL"
    assert "texture MD5" in results["face_hevc"]["reasons"][0]
    assert "tier 2 tolerance; face face0: the jpeg texture differs" in \
        conf.format_results(full, "d")
    def image_only(arrays):
        shifted(arrays, "image:", 1)
        del arrays["texture:face0"]
    (r,) = run_streams(output_decoder(image_only), "face_jpeg").values()
    assert r["status"] == "FAIL" and r["reasons"][0].endswith(
        "a decoder whose jpeg texture differs from the encoder's may show it with "
        "texture:face0")

    def other_planes(input_path, output, planes_path):
        arrays = conf.decode_planes(Path(input_path).read_bytes())
        shifted(arrays, "texture:", 1)
        conf.write_npz(Path(planes_path), arrays, compress=False)
        return conf.DecoderRun(0)
    results = run_streams(other_planes, "face_jpeg", "face_hevc", outputs=False, planes=True)
    assert results["face_jpeg"]["status"] == "PASS" and results["face_jpeg"]["notes"]
    assert results["face_hevc"]["status"] == "FAIL"


@pytest.fixture
def test_predictor(tmp_path, monkeypatch):
    """A small random predictor network (128-d -> 150 x 150 x 3) shipped for the test: the
    predictor path of the generator and the runner without refcodec's trained weights."""
    from refcodec.face import predictor
    weights = tmp_path / "weights"
    weights.mkdir()
    rng = np.random.default_rng(3)

    def layer(c_in, c_out, stride, activation):
        return predictor.DeconvLayer(
            weight=(rng.standard_normal((c_in, c_out, 10, 10)) * 0.2).astype(np.float32),
            bias=np.zeros(c_out, np.float32), stride=stride, padding=0, activation=activation)
    layers = [layer(128, 4, 1, "relu"), layer(4, 4, 4, "relu"), layer(4, 3, 4, "tanh")]
    predictor.save_predictor_file(weights / "test-net.bin", "test-net", layers, height=150,
                                  width=150, channels=3, crop_top=20, crop_left=20)
    monkeypatch.setattr(predictor, "WEIGHTS_DIR", weights)
    predictor.shipped_predictors.cache_clear()
    yield predictor.shipped_predictors()["test-net"]
    predictor.shipped_predictors.cache_clear()


def test_generator_and_runner_with_a_predictor(tmp_path, test_predictor):
    table = ("name,layers,face,face_channels,predictor,preset,seed\n"
             "f_net,0,hevc,3,test-net,ultrafast,5\n")
    assert _generate(tmp_path, tmp_path / "p", table=table, invalid="name,alteration\n") == 0
    manifest = tmp_path / "p" / "manifest.json"
    (stream,) = json.loads(manifest.read_text())["streams"]
    enh = stream["faces"][0]["enhancement"]
    assert (enh["predictor"], enh["predictor_sha256"]) == ("test-net",
                                                           test_predictor.sha256.hex())
    assert enh["tolerance"] == {"kind": "abs", "max_abs_error": 1}
    assert conf.FACE_PREDICTOR_CLAUSES <= set(stream["clauses"])
    assert "predictor test-net" in stream["description"]
    data = (tmp_path / "p" / stream["file"]).read_bytes()
    assert refcodec.read_headers(data).faces[0].enhancement.predictor_id == "test-net"
    for mutate, status, tier in [(None, "PASS", "exact"),
                                 (lambda a: shifted(a, "image:", 1), "PASS", "tolerance"),
                                 (lambda a: shifted(a, "image:", 2), "FAIL", None)]:
        (r,) = conf.run_suite(manifest, output_decoder(mutate))["results"]
        assert (r["status"], r["tier"]) == (status, tier), r
    assert "more than 1 (largest 2; tolerance 1 with a predictor, clause 13.7.3)" in \
        r["reasons"][0]
    (r,) = conf.run_suite(manifest, inprocess_decoder, outputs=False, planes=True)["results"]
    assert r["status"] == "PASS"


def test_compare_image_tolerance():
    ref = np.full((2, 3, 1), 100, np.uint8)
    exact = {"image_shape": [2, 3, 1], "tolerance": {"kind": "exact"}}
    within = {"image_shape": [2, 3, 1], "tolerance": {"kind": "abs", "max_abs_error": 1}}
    off = ref.copy()
    off[0, 0, 0] = 101
    assert conf.compare_image(ref, ref, exact) == (True, "exact")
    assert conf.compare_image(off, ref, within) == (True, "tolerance")
    assert not conf.compare_image(off, ref, exact)[0]
    off[1, 2, 0] = 98
    ok, detail = conf.compare_image(off, ref, within)
    assert not ok and detail.startswith("1 of 6 image samples differ") and "largest 2" in detail
    assert conf.compare_image(ref[:, :, 0].astype(np.int32), ref, exact) == (True, "exact")
    assert "samples outside 0..255" in conf.compare_image(ref.astype(np.int16) + 200, ref,
                                                           exact)[1]
    assert "expected 8-bit integers" in conf.compare_image(ref.astype(np.float32), ref, exact)[1]


def test_runner_subprocess_faces(tmp_path, capsys):
    """python -m refcodec.conformance decode (an alias of refcodec decode) decodes the face
    streams; refcodec decode --no-images, a base-layer decoder, writes the embeddings but no
    face image."""
    names = ["faces_2", "invalid_unknown_predictor", "invalid_texture_md5"]
    code, out, err = run_cli(
        capsys, "conformance", "run", "--suite", MANIFEST_PATH, "-j", "3", "--json",
        tmp_path / "r.json", "--decoder",
        f"{sys.executable} -m refcodec.conformance decode {{input}} {{output}}",
        *[a for name in names for a in ("--streams", name)])
    assert code == 0, out + err
    results = json.loads((tmp_path / "r.json").read_text())
    assert "3/3 passed: valid 1/1 (1 bit-exact" in out
    assert all(r["reported_clause"] and r["exit_code"] == 3 and r["refused"]
               for r in results["results"] if not r["valid"])
    code, out, _ = run_cli(capsys, "conformance", "run", "--suite", MANIFEST_PATH, "-j", "2",
                           "--decoder", f"{REFCODEC} decode {{input}} -o {{output}} --no-images",
                           "--streams", "face_hevc", "--streams", "face_base_only")
    assert code == 1 and "face_base_only  yes    PASS" in out
    assert "face face0: no image:face0" in out


def test_refcodec_decode_passes_the_whole_suite(tmp_path, capsys):
    """The README's decoder command, with refcodec's own CLI as the decoder, over every
    stream of the suite (valid, invalid, faces, interop), each in a process of its own."""
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", MANIFEST_PATH, "-j", "2",
                             "--json", tmp_path / "r.json",
                             "--decoder", f"{REFCODEC} decode {{input}} -o {{output}}")
    assert code == 0, out + err
    n = len(MANIFEST["streams"])
    assert f"{n}/{n} passed: valid {len(VALID)}/{len(VALID)}" in out


def test_runner_planes_of_faces(capsys):
    """Tier 1 of a face is its decoded texture (texture:<face_id>, MD5 texture_md5); a
    stream refused only when the image is reconstructed is not one for a planes decoder."""
    names = ["face_hevc", "face_jpeg", "faces_2", "face_with_layer", "face_base_only",
             "invalid_unknown_predictor", "invalid_texture_md5"]
    results = conf.run_suite(MANIFEST_PATH, inprocess_decoder, outputs=False, planes=True,
                             streams=names)
    by_name = {r["name"]: r for r in results["results"]}
    assert all(r["status"] == "PASS" for r in by_name.values()), by_name
    assert by_name["invalid_unknown_predictor"]["refused"] is False
    assert by_name["invalid_texture_md5"]["refused"] is True
    assert "accepted (refused only by a decoder of face images)" in \
        conf.format_results(results, "d")
    planes = conf.decode_planes(stream_bytes(next(s for s in VALID if s["name"] == "faces_2")))
    assert sorted(planes) == ["texture:face0", "texture:face1"]

    def broken(input_path, output, planes_path):
        arrays = conf.decode_planes(Path(input_path).read_bytes())
        arrays.pop("texture:face1", None)
        if "texture:face0" in arrays:
            arrays["texture:face0"] = arrays["texture:face0"] ^ 1
        conf.write_npz(Path(planes_path), arrays, compress=False)
        return conf.DecoderRun(0)
    results = run_streams(broken, "faces_2", outputs=False, planes=True)
    assert results["faces_2"]["reasons"] == [
        "face face0: texture MD5 " + face_texture.texture_md5(
            planes["texture:face0"] ^ 1).hex() + ", expected texture_md5 "
        + MANIFEST["streams"][[s["name"] for s in MANIFEST["streams"]].index("faces_2")]
        ["faces"][0]["enhancement"]["texture_md5"], "face face1: no texture:face1"]


def test_runner_reads_manifests_of_schema_1(tmp_path):
    stream = {k: v for k, v in next(s for s in VALID if s["name"] == "basic").items()
              if k != "faces"}
    suite = tmp_path / "s"
    (suite / "streams").mkdir(parents=True)
    (suite / "reference").mkdir()
    shutil.copy(SUITE / stream["file"], suite / stream["file"])
    shutil.copy(SUITE / stream["reference"], suite / stream["reference"])
    (suite / "manifest.json").write_text(json.dumps(MANIFEST | {"schema_version": 1,
                                                                 "streams": [stream]}))
    (r,) = conf.run_suite(suite / "manifest.json", inprocess_decoder)["results"]
    assert r["status"] == "PASS"
    (suite / "manifest.json").write_text(json.dumps(MANIFEST | {"schema_version": 3}))
    with pytest.raises(conf.SuiteError, match="schema_version shall be one of 1, 2, got 3"):
        conf.load_manifest(suite / "manifest.json")


def test_face_decoder_adapter_usage(tmp_path, capsys):
    stream = SUITE / "streams" / "face_hevc.vfc"
    assert conf.decoder_main(["decode", str(stream), str(tmp_path / "o.npy")]) == 2
    assert conf.decoder_main(["decode", str(tmp_path / "none.vfc"), str(tmp_path / "o.npz")]) \
        == 2
    err = capsys.readouterr().err
    assert "output shall be .npz" in err and "none.vfc" in err
    assert conf.decoder_main(["decode", str(stream), str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as z:
        assert sorted(z.files) == ["embedding:face0", "image:face0", "texture:face0"]


TINY_FACES = """\
name,layers,face,faces,face_channels,preset,seed,channels,height,width
f_base,0,base,2,3,ultrafast,1,4,16,16
f_jpeg,1,jpeg,1,1,ultrafast,2,2,8,8
"""


def test_generator_codes_faces(tmp_path):
    invalid = "name,alteration,base,purpose\nbad_eg,eg_order,,\nbad_ch,image_channels,,\n"
    assert _generate(tmp_path, tmp_path / "f", table=TINY_FACES, invalid=invalid) == 0
    m = json.loads((tmp_path / "f" / "manifest.json").read_text())
    base, jpeg, bad_eg, bad_ch = m["streams"]
    assert (base["num_layers"], [f["face_id"] for f in base["faces"]]) == (0, ["face0", "face1"])
    assert all(f["enhancement"] is None for f in base["faces"])
    assert jpeg["num_layers"] == 1 and jpeg["faces"][0]["enhancement"]["image_shape"] == \
        [150, 150, 1]
    assert (bad_eg["base"], bad_ch["base"]) == ("f_base", "f_jpeg")    # the first that fits
    with np.load(tmp_path / "f" / jpeg["reference"]) as z:
        assert sorted(z.files) == ["embedding:face0", "f_jpeg.0", "image:face0",
                                   "texture:face0"]
    results = conf.run_suite(tmp_path / "f" / "manifest.json", inprocess_decoder)
    assert results["summary"]["passed"] == 4


# ---------------------------------------------------------------------------------
# Planes
# ---------------------------------------------------------------------------------

def test_planes_command(tmp_path, capsys):
    stream = next(s for s in VALID if s["name"] == "layers_3")
    out = tmp_path / "p.npz"
    code, text, _ = run_cli(capsys, "conformance", "planes", SUITE / stream["file"], "-o", out)
    assert code == 0 and "layers_3.2 (4, 16, 16) uint8" in text
    with np.load(out) as z:
        for entry in stream["layers"]:
            assert conf.planes_md5_hex(z[entry["layer_id"]], 8) == entry["planes_md5"]
    code, _, err = run_cli(capsys, "conformance", "planes", SUITE / "streams" /
                           "invalid_sample_md5.vfc", "-o", tmp_path / "q.npz")
    assert code == 3 and "[8.4.1]" in err and not (tmp_path / "q.npz").exists()
    code, _, err = run_cli(capsys, "conformance", "planes", SUITE / stream["file"], "-o",
                           tmp_path / "q.npy")
    assert code == 2 and "output shall be .npz" in err


# ---------------------------------------------------------------------------------
# An independent HEVC decoder: libde265
# ---------------------------------------------------------------------------------

DEC265 = shutil.which("dec265") or shutil.which("libde265-dec265")


@pytest.mark.skipif(DEC265 is None, reason="libde265's dec265 is not installed "
                    "(apt-get install -y libde265-examples)")
def test_libde265_decodes_every_payload_to_planes_md5(tmp_path):
    """libde265 writes the raw decoded pictures (luma only for 4:0:0, two bytes
    little-endian above 8 bits): their MD5 is planes_md5."""
    checked = wrong = 0
    for stream in VALID:
        parsed = refcodec.read_headers(stream_bytes(stream))
        # libde265 1.0.11 decodes some interop payloads wrongly (HM is right there): the
        # manifest says which
        right = stream.get("interop", {}).get("libde265_equals_hm", True)
        for layer, entry in zip(parsed.layers, stream["layers"]):
            src, dst = tmp_path / "in.hevc", tmp_path / "out.yuv"
            # libde265, like FFmpeg, needs a PPS after its SPS: fed as the reference decoder
            # feeds FFmpeg (spec clause 10.1; no change for payloads in the usual order)
            src.write_bytes(in_decoder_order(layer.hevc_payload))
            done = subprocess.run([DEC265, "-q", "-o", str(dst), str(src)],
                                  capture_output=True, timeout=120, check=False)
            digest = hashlib.md5(dst.read_bytes()).hexdigest() if dst.exists() else None
            if not right:
                wrong += digest != entry["planes_md5"]
                continue
            assert done.returncode == 0, (stream["name"], done.stderr)
            assert digest == entry["planes_md5"], (stream["name"], entry["layer_id"])
            checked += 1
    marked = [s for s in VALID if not s.get("interop", {}).get("libde265_equals_hm", True)]
    assert checked == sum(len(s["layers"]) for s in VALID) - len(marked)
    assert wrong == len(marked) > 0   # the marks are right: libde265 differs on each


@pytest.mark.skipif(DEC265 is None, reason="libde265's dec265 is not installed "
                    "(apt-get install -y libde265-examples)")
def test_libde265_decodes_every_hevc_texture_to_texture_md5(tmp_path):
    """An HEVC texture is one 4:0:0 picture per channel of Ceil8 size; cropped to the image,
    in channel, row, column order, its MD5 is texture_md5 (clause 13.4.7)."""
    checked = 0
    for stream in VALID:
        parsed = refcodec.read_headers(stream_bytes(stream))
        for face, entry in zip(parsed.faces, stream["faces"]):
            enh = face.enhancement
            if enh is None or entry["enhancement"]["texture_codec"] != "hevc":
                continue
            src, dst = tmp_path / "in.hevc", tmp_path / "out.yuv"
            src.write_bytes(enh.texture_payload)
            done = subprocess.run([DEC265, "-q", "-o", str(dst), str(src)],
                                  capture_output=True, timeout=120, check=False)
            assert done.returncode == 0, (stream["name"], done.stderr)
            h, w, c = enh.image_shape
            planes = np.frombuffer(dst.read_bytes(), np.uint8).reshape(
                c, -(-h // 8) * 8, -(-w // 8) * 8)[:, :h, :w]
            assert hashlib.md5(planes.tobytes()).hexdigest() == \
                entry["enhancement"]["texture_md5"], stream["name"]
            checked += 1
    assert checked >= 5


def test_runner_accepts_any_requirement_the_stream_breaks():
    """Spec clause 12.4: a decoder may report any requirement a bitstream breaks. The
    stream with pad_bottom not a multiple of 8 breaks 8.3.10 and, as a consequence, 10.5."""
    name = "invalid_pad_not_multiple_of_8"
    entry = next(s for s in MANIFEST["streams"] if s["name"] == name)
    assert entry["expected_clause"] == "8.3.10" and "10.5" in entry["verify_clauses"]

    def saying(clause):
        return lambda i, o, p: conf.DecoderRun(3, f"refcodec: error: [{clause}] no\n")

    for clause, reported in (("10.5", True), ("8.3.10", True), ("9.9", False)):
        (r,) = conf.run_suite(MANIFEST_PATH, saying(clause), streams=[name])["results"]
        assert r["status"] == "PASS" and r["refused"]
        assert r["reported_clause"] is reported, clause
        assert r.get("clause") == (clause if reported else None)
