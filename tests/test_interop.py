"""Payloads written by other HEVC encoders (HM 16.17, kvazaar 2.3.2, the x265 3.5 command
line; ../shared/interop): each gets the verdict its README gives, from verify and from the
decoder, every accepted one decodes to the pictures HM decodes, and the conformance
suite's interop group holds exactly these streams."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import refcodec
from refcodec import verify as verify_mod
from refcodec.codec import decode_samples, read_headers
from refcodec.conformance import interop
from refcodec.errors import BitstreamError

pytestmark = pytest.mark.hevc

FOLDER = interop.interop_dir()
needs_interop = pytest.mark.skipif(FOLDER is None, reason="../shared/interop is absent")
CASES = interop.read_cases(FOLDER) if FOLDER else []
MANIFEST = json.loads((Path(__file__).resolve().parents[1] / "conformance" / "manifest.json")
                      .read_text(encoding="utf-8"))


def planes_md5(pictures: np.ndarray) -> str:
    dtype = np.uint8 if pictures.dtype == np.uint8 else np.dtype("<u2")
    return hashlib.md5(np.ascontiguousarray(pictures, dtype=dtype).tobytes()).hexdigest()


@needs_interop
def test_the_readme_verdicts_are_read():
    assert len(CASES) == len(json.loads((FOLDER / "cases.json").read_text())["cases"]) >= 30
    by_name = {c.name: c for c in CASES}
    assert by_name["hm_intra_rext_q22"].conformant
    assert by_name["hm_420_main"].verdict_clauses == ("10.2", "10.3")
    assert by_name["hm_lossless_implicit_rdpcm"].verdict_clauses == ("10.7",)
    assert {c.encoder for c in CASES} == {"hm", "kvazaar", "x265"}


@needs_interop
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_payload_gets_its_verdict(case):
    data = interop.wrapped(FOLDER, case)
    report = verify_mod.verify(data, source=case.name)
    clauses = sorted({v.clause for v in report.violations})
    assert clauses == sorted(set(case.verdict_clauses)), [str(v) for v in report.violations]
    if case.conformant:
        pictures = decode_samples(read_headers(data).layers[0])
        assert planes_md5(pictures) == case.hm_decoded_planes_md5
        assert report.layers[0].sample_md5_match is True
        refcodec.decode(data)     # the tensor too
    else:
        with pytest.raises(BitstreamError) as info:
            refcodec.decode(data)
        assert info.value.clause == case.verdict_clauses[0]
        assert report.layers[0].decoded is False       # no decode after a clause 10 refusal
        assert "8.4.1" not in clauses


@needs_interop
def test_hm_and_kvazaar_refusals_say_what_was_found():
    by_name = {c.name: c for c in CASES}
    report = verify_mod.verify(interop.wrapped(FOLDER, by_name["kvz_intra_q22"]))
    message = report.violations[0].message
    assert "general_profile_idc 1 (Main)" in message and "4:0:0" in message
    report = verify_mod.verify(interop.wrapped(FOLDER, by_name["hm_confwin_explicit"]))
    assert report.violations[0].message == (
        "the conformance window shall crop nothing (all four offsets 0), got "
        "conf_win_right_offset 8, conf_win_bottom_offset 8")


@needs_interop
def test_the_suite_holds_the_interop_group():
    group = {s["interop"]["case"]: s for s in MANIFEST["streams"]
             if s.get("group") == "interop"}
    assert set(group) == {c.name for c in CASES}
    for case in CASES:
        s = group[case.name]
        assert s["valid"] == case.conformant
        assert s["interop"]["encoder"] == case.encoder
        assert s["interop"]["command"] == case.command
        assert s["interop"]["libde265_equals_hm"] == case.libde265_equals_hm
        if case.conformant:
            assert [x["planes_md5"] for x in s["layers"]] == [case.hm_decoded_planes_md5]
        else:
            assert s["clauses"] == list(case.verdict_clauses)
            assert s["expected_clause"] == case.verdict_clauses[0]


@needs_interop
def test_wrap_rewrites_only_the_payload():
    case = next(c for c in CASES if c.name == "x265_inter_b3_q27")
    template = (FOLDER / "templates" / f"{case.source}.vfc").read_bytes()
    data = interop.wrapped(FOLDER, case)
    a, b = read_headers(template), read_headers(data)
    assert a.layers[0].header == b.layers[0].header and a.header == b.header
    assert b.layers[0].hevc_payload == (FOLDER / "payloads" / f"{case.name}.hevc").read_bytes()
    # sample_md5 from the payload's hash SEIs in output order equals the decoded pictures'
    from refcodec.codec import planes_md5 as picture_md5s, sample_md5
    pictures = decode_samples(b.layers[0])
    assert b.layers[0].sample_md5 == sample_md5(picture_md5s(pictures, 8))
