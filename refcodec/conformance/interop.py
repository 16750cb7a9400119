"""The interop group of the conformance suite: HEVC payloads written by other encoders.

``shared/interop/`` (beside the repository) holds Annex-B payloads written by HM 16.17 (the
H.265 reference encoder), kvazaar 2.3.2 and the x265 3.5 command line from the integer
pictures of a few template streams, with each encoder's command line, the MD5 of HM's
decoded pictures and the verdict a verifier should give (its README).  ``wrap`` puts a
payload into the layer of its template stream; ``interop_streams`` wraps every case and
checks it: a payload the README calls conformant shall verify and decode to HM's pictures,
any other shall be refused with the clauses the README names.

sample_md5 of a wrapped payload is computed as an encoder of this format would: from the
payload's decoded picture hash SEIs in output order when every picture has one, else from
the pictures FFmpeg decodes (with one thread).  For payloads FFmpeg decodes correctly the
two agree; for the one it mis-decodes (lossless with implicit RDPCM, clause 10.7) HM wrote
hash SEIs, so sample_md5 is still right.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np

from .. import bitstream
from ..codec import planes_md5, read_headers, sample_md5
from ..errors import BitstreamError
from ..hevc import slices
from .errors import SuiteError

#: Where the interop data lies when REFCODEC_INTEROP_DIR does not say: ``shared/interop``
#: beside the repository (the project's layout, also in CI).
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "interop"
_ROW = re.compile(r"^\|\s*`(?P<name>[^`]+)`\s*\|(?P<cells>.*)\|\s*$")


def interop_dir(path: str | Path | None = None) -> Path | None:
    """The interop folder: ``path``, else $REFCODEC_INTEROP_DIR, else DEFAULT_DIR; None
    when it is not there."""
    found = Path(path or os.environ.get("REFCODEC_INTEROP_DIR") or DEFAULT_DIR)
    return found if (found / "cases.json").is_file() else None


@dataclasses.dataclass(frozen=True)
class InteropCase:
    name: str
    encoder: str
    source: str
    bit_depth: int
    command: str | None
    note: str
    hm_decoded_planes_md5: str
    libde265_equals_hm: bool
    #: the clauses the README's verdict names, in its order; empty: conformant
    verdict_clauses: tuple[str, ...]
    verdict: str

    @property
    def conformant(self) -> bool:
        return not self.verdict_clauses


#: The requirement (spec clause 4.6) each refused case breaks first, as the reference decoder
#: reports it: the interop README gives clause ids only.  The generator checks that every
#: refused case has one and that its clause is the one the reference decoder reports.
REQUIREMENTS = {
    "hm_lossless_implicit_rdpcm": "10.7-a",   # implicit_rdpcm_enabled_flag 1, lossless
    "hm_confwin_explicit": "10.5-a",          # a conformance window that crops
    "x265_confwin_mincu16": "10.5-a",
    "hm_420_main": "10.2-a",                  # general_profile_idc 1 (Main)
    "kvz_intra_q22": "10.2-a",
    "kvz_inter_gop8_q27": "10.2-a",
    "kvz_lossless": "10.2-a",
    "kvz_wpp_slices_small": "10.2-a",
    "kvz_420": "10.2-a",
}


def _verdicts(readme: str) -> dict[str, str]:
    """case name -> the verdict cell of the README's table."""
    header = None
    out = {}
    for line in readme.splitlines():
        if line.startswith("| case |"):
            header = [c.strip() for c in line.strip("|").split("|")]
            continue
        m = _ROW.match(line)
        if header and m:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out[m["name"]] = cells[header.index("verdict")]
    return out


def read_cases(folder: Path) -> list[InteropCase]:
    """The cases of the interop folder, with the verdicts of its README."""
    cases = json.loads((folder / "cases.json").read_text())["cases"]
    verdicts = _verdicts((folder / "README.md").read_text())
    out = []
    for c in cases:
        verdict = verdicts.get(c["name"])
        if verdict is None:
            raise SuiteError(f"{folder}/README.md gives no verdict for {c['name']}")
        clauses = () if verdict == "conformant" else tuple(
            re.findall(r"\b\d+\.\d+\b", verdict.split("(")[0]))
        if verdict != "conformant" and not clauses:
            raise SuiteError(f"{folder}/README.md: verdict {verdict!r} of {c['name']} "
                             f"names no clause")
        out.append(InteropCase(
            name=c["name"], encoder=c["encoder"], source=c["source"],
            bit_depth=c["bit_depth"], command=c.get("command"), note=c.get("note") or "",
            hm_decoded_planes_md5=c["hm_decoded_planes_md5"],
            libde265_equals_hm=bool(c["libde265_equals_hm"]), verdict_clauses=clauses,
            verdict=verdict))
    return out


def payload_sample_md5(payload: bytes, num_pictures: int, height: int, width: int,
                       bit_depth: int) -> bytes:
    """sample_md5 of a payload (clause 8.4.1): from its picture hash SEIs in output order
    when every picture has one, else from the pictures FFmpeg decodes."""
    try:
        hashes = slices.picture_hashes_in_output_order(payload)
    except BitstreamError:
        hashes = None
    if hashes is None or len(hashes) != num_pictures:
        from ..hevc import pyav
        try:
            pictures = pyav.PyAVBackend().decode_pictures(payload, num_pictures, height,
                                                          width, bit_depth)
        except BitstreamError:
            # not the layer's pictures (4:2:0, say): the luma FFmpeg decodes, which a
            # payload refused under clause 10 can carry as well as any other MD5
            pictures = np.stack([np.asarray(f.reformat(format=pyav.PIX_FMT[bit_depth])
                                            .to_ndarray()) for f in pyav.decode_frames(payload)])
        hashes = planes_md5(pictures, bit_depth)
    return sample_md5(hashes)


def wrap(template: bytes, payload: bytes, md5: bytes | None = None) -> bytes:
    """The one-layer ``template`` stream with ``payload`` as its hevc_payload and the
    payload's sample_md5 (computed when ``md5`` is None); lengths and CRCs rewritten."""
    s = read_headers(template)
    if len(s.layers) != 1 or s.faces:
        raise SuiteError("an interop template holds one layer and no face")
    h = s.layers[0].header
    if md5 is None:
        md5 = payload_sample_md5(payload, h.num_pictures, h.picture_height, h.picture_width,
                                 h.sample_bit_depth)
    return bitstream.build_stream(s.header, [(h, md5, payload)])


def wrapped(folder: Path, case: InteropCase) -> bytes:
    template = (folder / "templates" / f"{case.source}.vfc").read_bytes()
    return wrap(template, (folder / "payloads" / f"{case.name}.hevc").read_bytes())
