"""A syntax-element trace of a VFC stream (``refcodec trace``), like HM's decoder trace or
FFmpeg's trace_headers: every syntax element in bitstream order with its byte and bit
offset, its raw bits, its value, its meaning and the clause that defines it.

The container part comes from the construct definitions of ``refcodec.syntax`` (walked by
``refcodec.bitstream.walk``, the same objects the spec tables are rendered from); the HEVC
part from the parameter-set and slice-header readers of ``refcodec.hevc`` themselves,
recorded through ``params.recording``.  Nothing is parsed a second way.

Where the stream breaks a requirement, the trace stops at the element the decoder's first
error names (its path, else its byte offset) and ends with that error: the line
``refcodec decode`` prints.  The checks are the decoder's (``codec.decode_all``; with
``decode=False`` only those that need no picture decoded: the container and the HEVC
parameter sets).

JSON schema (``Trace.to_dict``, ``refcodec trace --json``)::

    {"source": str, "stream_bytes": int, "decoded": bool,
     "entries": [{"kind": "struct" | "field" | "derived" | "note",
                  "path": str,           # syntax path, as in error messages
                  "name": str,           # the spec's name of the element
                  "depth": int,          # nesting (0: stream_header, units)
                  "byte_offset": int,    # byte of the stream where the element starts
                  "bit": int,            # its first bit in that byte, 0 = most significant
                  "bits": int,           # its length in bits (a structure: all of it)
                  "descriptor": str|null,# as in the spec's tables: u(n), i(16), f32,
                                         # f(64), b(len_layer_id), b(16), b(*); H.265's
                                         # u(n), ue(v), se(v)
                  "raw": str,            # its bits ("0"/"1", up to 64) or first bytes (hex)
                  "value": int|float|str|null,   # bytes as hex, non-finite floats as
                                                 # "nan", "inf", "-inf"
                  "meaning": str|null,   # enumeration name, identifier text, CRC check
                  "clause": str|null}],  # "8.3.2", or "H.265 7.3.2.2" for HEVC syntax
     "error": null | {"error", "clause", "offset", "path", "message"}}
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
from collections.abc import Sequence

from . import bitstream, enums, syntax
from .bitstream.walk import Element, walk
from .errors import BitstreamError, RefcodecError
from .hevc import params, slices
from .hevc.annexb import (PPS_NUT, PREFIX_SEI_NUT, SPS_NUT, SUFFIX_SEI_NUT, VPS_NUT,
                          sei_messages, split_nal_units_with_offsets)

#: Syntax element -> the enumeration of refcodec.enums that names its values.
ENUM_FIELDS = {
    "unit_type": "UnitType", "profile_idc": "Profile", "source_layout": "SourceLayout",
    "source_dtype": "SourceDtype", "quantizer_type": "QuantizerType",
    "packing_type": "PackingType", "pad_mode": "PadMode", "payload_codec": "PayloadCodec",
    "param_format": "ParamFormat", "permutation_coding": "PermutationCoding",
    "embedder_idc": "Embedder", "predictor_type": "PredictorType",
    "texture_codec": "TextureCodec",
}
#: Identifiers shown as text.
TEXT_FIELDS = ("layer_id", "face_id", "predictor_id")

#: nal_unit_type names (H.265 Table 7-1).
NAL_UNIT_TYPES = {
    0: "TRAIL_N", 1: "TRAIL_R", 2: "TSA_N", 3: "TSA_R", 4: "STSA_N", 5: "STSA_R",
    6: "RADL_N", 7: "RADL_R", 8: "RASL_N", 9: "RASL_R", 16: "BLA_W_LP", 17: "BLA_W_RADL",
    18: "BLA_N_LP", 19: "IDR_W_RADL", 20: "IDR_N_LP", 21: "CRA_NUT", 32: "VPS_NUT",
    33: "SPS_NUT", 34: "PPS_NUT", 35: "AUD_NUT", 36: "EOS_NUT", 37: "EOB_NUT", 38: "FD_NUT",
    39: "PREFIX_SEI_NUT", 40: "SUFFIX_SEI_NUT"}
#: The H.265 clause of each syntax structure the readers scope.
H265_CLAUSES = {
    "nal_unit_header": "7.3.1.2", "vps": "7.3.2.1", "sps": "7.3.2.2.1", "pps": "7.3.2.3.1",
    "profile_tier_level": "7.3.3", "scaling_list_data": "7.3.4",
    "st_ref_pic_set": "7.3.7", "vui_parameters": "E.2.1", "hrd_parameters": "E.2.2",
    "sub_layer_hrd_parameters": "E.2.3", "sps_range_extension": "7.3.2.2.2",
    "pps_range_extension": "7.3.2.3.2", "slice_segment_header": "7.3.6.1",
    "pred_weight_table": "7.3.6.3", "ref_pic_lists_modification": "7.3.6.2",
    "sei_rbsp": "7.3.2.4"}
SEI_NAMES = {0: "buffering_period", 1: "pic_timing", 5: "user_data_unregistered",
             6: "recovery_point", 129: "active_parameter_sets", 132: "decoded_picture_hash"}


@dataclasses.dataclass
class Entry:
    kind: str
    path: str
    name: str
    depth: int
    bit_offset: int
    bits: int
    descriptor: str | None
    raw: str
    value: object
    meaning: str | None
    clause: str | None

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "name": self.name, "depth": self.depth,
                "byte_offset": self.byte_offset, "bit": self.bit_offset % 8,
                "bits": self.bits, "descriptor": self.descriptor, "raw": self.raw,
                "value": json_value(self.value), "meaning": self.meaning,
                "clause": self.clause}


def json_value(value):
    """A value as the trace shows it: bytes as hex, bools as 0/1, non-finite floats as
    text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def text_value(value) -> str:
    """The value column of the text trace."""
    if value is None:
        return ""
    shown = json_value(value)
    if isinstance(value, bytes) and len(value) > 32:
        return f"{value[:32].hex()}... ({len(value)} bytes)"
    return repr(shown) if isinstance(shown, float) else str(shown)


@dataclasses.dataclass
class Trace:
    source: str
    stream_bytes: int
    entries: list[Entry]
    error: RefcodecError | None
    decoded: bool

    def to_dict(self) -> dict:
        return {"source": self.source, "stream_bytes": self.stream_bytes,
                "decoded": self.decoded, "entries": [e.to_dict() for e in self.entries],
                "error": None if self.error is None else self.error.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def lines(self) -> list[str]:
        """The text trace: ``BYTE.BIT  name  descriptor  raw = value (meaning) [clause]``,
        indented by depth; the last line is the decoder's error, if any."""
        out = [f"# trace of {self.source} ({self.stream_bytes} bytes)"]
        for e in self.entries:
            head = f"{e.byte_offset:>9}.{e.bit_offset % 8}  {'  ' * e.depth}"
            clause = f"  [{e.clause}]" if e.clause else ""
            meaning = f" ({e.meaning})" if e.meaning else ""
            if e.kind == "struct":
                size, unit = (e.bits // 8, "byte") if e.bits % 8 == 0 else (e.bits, "bit")
                out.append(f"{head}{e.name}  {{{size} {unit}{'s' if size != 1 else ''}}}"
                           f"{meaning}{clause}")
            elif e.kind in ("derived", "note"):
                out.append(f"{head}{e.name} = {text_value(e.value)}{meaning}{clause}")
            else:
                raw = e.raw if len(e.raw) <= 64 else e.raw[:64] + "..."
                out.append(f"{head}{e.name}  {e.descriptor or ''}  {raw} = "
                           f"{text_value(e.value)}{meaning}{clause}")
        if self.error is not None:
            out.append(f"refcodec: error: {self.error}")
        return out

    def to_text(self) -> str:
        return "\n".join(self.lines())


# ---- the container ----------------------------------------------------------------------

def _enum_name(name: str, value) -> str | None:
    cls = getattr(enums, ENUM_FIELDS.get(name, ""), None)
    if cls is None or not isinstance(value, int):
        return None
    try:
        return cls(value).name
    except ValueError:
        return "reserved"


def _descriptor(e: Element) -> str | None:
    return e.descriptor if e.kind == "field" else None


def _entry(e: Element, meaning: str | None = None, depth_shift: int = 0) -> Entry:
    value = int(e.value) if isinstance(e.value, bool) else e.value
    if meaning is None and e.kind == "field":
        meaning = _enum_name(e.name, value)
        if e.name in TEXT_FIELDS and isinstance(value, bytes):
            meaning = repr(value.decode("utf-8", "replace"))
    return Entry(e.kind, e.path, e.name, e.depth + depth_shift, e.bit_offset, e.bits,
                 _descriptor(e), e.raw, value, meaning, e.clause)


class _Tracer:
    def __init__(self, data: bytes, layers: set[str] | None, units: set[int] | None):
        self.data = data
        self.layers = layers
        self.units = units
        self.entries: list[Entry] = []
        self.num_layers = 0
        self.face_ids: list[bytes] = []

    def add(self, elements, depth_shift=0, meanings=None):
        for e in elements:
            self.entries.append(_entry(e, (meanings or {}).get(e.path), depth_shift))

    def stream(self) -> None:
        data = self.data
        header = walk(syntax.stream_header, data[:syntax.STREAM_HEADER_SIZE],
                      path="stream_header")
        meanings = {}
        if len(data) >= syntax.STREAM_HEADER_SIZE:
            crc = bitstream.crc32(data[:syntax.STREAM_HEADER_SIZE - 4])
            meanings["stream_header.header_crc32"] = _crc_meaning(
                int.from_bytes(data[16:20], "big"), crc)
        magic_ok = data[:len(syntax.MAGIC)] == syntax.MAGIC
        meanings["stream_header.magic"] = "VFC magic" if magic_ok else "not the VFC magic"
        self.add(header.elements, meanings=meanings)
        if header.stopped_at is not None or not magic_ok:
            return
        pos, index, layer = syntax.STREAM_HEADER_SIZE, 0, None
        while pos < len(data):
            unit = walk(syntax.unit, data[pos:], path=f"units[{index}]", base=pos)
            if unit.stopped_at is not None:
                self.add(unit.elements)
                return
            frame = {e.name: e for e in unit.elements}
            unit_type = frame["unit_type"].value
            payload = frame["unit_payload"].value
            start = pos + syntax.UNIT_PREFIX
            end = pos + unit.consumed
            wanted, layer = self.wanted(index, unit_type, payload, layer)
            if not wanted:
                self.count(unit_type, payload)
            else:
                crc = bitstream.crc32(data[pos:end - 4])
                meanings = {f"units[{index}].unit_crc32": _crc_meaning(
                    frame["unit_crc32"].value, crc)}
                for e in unit.elements:
                    self.entries.append(_entry(e, meanings.get(e.path)))
                    if e.name == "unit_payload":
                        self.payload(unit_type, payload, start, e.depth + 1)
            pos, index = end, index + 1
            if unit_type == enums.UnitType.END_OF_STREAM:
                break
        if pos < len(data):
            rest = data[pos:]
            self.entries.append(Entry("field", "trailing_data", "trailing_data", 0, 8 * pos,
                                      8 * len(rest), f"b({len(rest)})",
                                      _hex_raw(rest), rest, "bytes after end_of_stream",
                                      "8.2.7"))

    def wanted(self, index, unit_type, payload, layer):
        """Whether unit ``index`` is selected; ``layer``: the layer_id of the layer whose
        layer_data comes next (a layer_header unit names it)."""
        headers = (enums.UnitType.LAYER_HEADER, enums.UnitType.LAYER_HEADER_EXT)
        if unit_type in headers:
            n = payload[0] if payload else 0
            layer = bytes(payload[1:1 + n]).decode("utf-8", "replace")
        this = layer if unit_type in headers + (enums.UnitType.LAYER_DATA,) else None
        if unit_type == enums.UnitType.LAYER_DATA:
            layer = None
        ok = True
        if self.units is not None:
            ok = index in self.units
        if self.layers is not None:
            ok = ok and this in self.layers if self.units is None else (
                ok or this in self.layers)
        return ok, (this if unit_type in headers else layer)

    def count(self, unit_type, payload: bytes) -> None:
        """Keep the layer and face numbering of a unit that is not traced."""
        if unit_type == enums.UnitType.LAYER_DATA:
            self.num_layers += 1
        elif unit_type == enums.UnitType.FACE_BASE and _face_version(self.data):
            n = payload[0] if payload else 0
            self.face_ids.append(bytes(payload[1:1 + n]))

    def payload(self, unit_type, payload: bytes, start: int, depth: int) -> None:
        if unit_type in (enums.UnitType.LAYER_HEADER, enums.UnitType.LAYER_HEADER_EXT):
            w = walk(syntax.layer_header, payload, path=f"layers[{self.num_layers}]",
                     base=start, depth=depth, unit_type=int(unit_type))
            self.add(w.elements)
        elif unit_type == enums.UnitType.LAYER_DATA:
            path = f"layers[{self.num_layers}]"
            w = walk(syntax.layer_data, payload, path=path, base=start, depth=depth)
            self.num_layers += 1
            for e in w.elements:
                entry = _entry(e)
                if e.kind == "struct":
                    entry.name = "layer_data"
                self.entries.append(entry)
                if e.name == "hevc_payload" and w.stopped_at is None:
                    self.hevc(e.value, e.byte_offset, f"{path}.hevc_payload", e.depth + 1)
        elif unit_type == enums.UnitType.FACE_BASE and _face_version(self.data):
            path = f"faces[{len(self.face_ids)}].base"
            w = walk(syntax.face_base, payload, path=path, base=start, depth=depth)
            ids = [e.value for e in w.elements if e.name == "face_id"]
            self.face_ids.append(ids[0] if ids else b"")
            self.add(w.elements)
            if w.stopped_at is None:
                self.levels(w.elements, path)
        elif unit_type == enums.UnitType.FACE_ENHANCEMENT and _face_version(self.data):
            n = payload[0] if payload else 0
            face_id = bytes(payload[1:1 + n])
            index = self.face_ids.index(face_id) if face_id in self.face_ids else "?"
            path = f"faces[{index}].enhancement"
            w = walk(syntax.face_enhancement, payload, path=path, base=start, depth=depth)
            codec = [e.value for e in w.elements if e.name == "texture_codec"]
            for e in w.elements:
                self.entries.append(_entry(e))
                if (e.name == "texture_payload" and w.stopped_at is None
                        and codec == [enums.TextureCodec.HEVC]):
                    self.hevc(e.value, e.byte_offset, f"{path}.texture_payload", e.depth + 1)
        elif unit_type != enums.UnitType.END_OF_STREAM:
            self.entries.append(Entry("note", "", "unit_payload", depth, 8 * start,
                                      8 * len(payload), None, "", f"{len(payload)} bytes",
                                      "not interpreted: a unit type this decoder skips",
                                      "8.2.1"))

    def levels(self, elements, path: str) -> None:
        """The levels embedding_payload codes (clause 13.3.6), read by the face decoder's
        own reader, as one derived entry."""
        from .face import entropy
        values = {e.name: e for e in elements}
        payload = values["embedding_payload"]
        try:
            levels = entropy.read_levels(payload.value, values["embedding_dim"].value,
                                         values["eg_order"].value)
        except (entropy.EmbeddingCodeError, ValueError):
            return           # the decoder's error says why (13.3.5, 13.3.6)
        self.entries.append(Entry("derived", f"{path}.level", "level", payload.depth + 1,
                                  payload.bit_offset, payload.bits, None, "", list(levels),
                                  f"{len(levels)} levels, sek(v) with k = eg_order",
                                  "13.3.6"))

    # ---- HEVC payloads ------------------------------------------------------------------

    def hevc(self, payload: bytes, base: int, prefix: str, depth: int) -> None:
        """The NAL units of an hevc_payload (or texture_payload) at byte ``base``."""
        _HevcTracer(self.entries, payload, base, prefix, depth).run()


def _face_version(data: bytes) -> bool:
    return len(data) > 9 and data[9] >= 1


def _crc_meaning(stored: int, computed: int) -> str:
    return "matches" if stored == computed else f"computed {computed:08x}: mismatch"


def _hex_raw(data: bytes) -> str:
    return data[:32].hex() + ("..." if len(data) > 32 else "")


def _descriptor_of(dtype: str) -> str:
    if dtype == "bool":
        return "u(1)"
    if dtype in ("ue", "se"):
        return f"{dtype}(v)"
    if dtype.startswith("u"):
        return f"u({dtype[1:]})"
    return dtype


class _HevcTracer:
    """The NAL units of one payload, the parameter sets and slice segment headers read by
    refcodec.hevc's readers with a recorder attached."""

    def __init__(self, entries: list[Entry], payload: bytes, base: int, prefix: str,
                 depth: int):
        self.entries, self.payload, self.base = entries, payload, base
        self.prefix, self.depth = prefix, depth
        self.nal_start = 0          # absolute byte of the current NAL unit
        self.epb: list[int] = []    # RBSP byte positions before which a 0x03 was removed
        self.keep = ""              # the reader path whose elements are recorded
        self.scopes: dict[str, int] = {}     # open scope path -> entry index
        self.base_depth = depth
        self.last_end = 0           # RBSP bit after the last element recorded

    # the recorder of params.recording
    def record(self, reader, path, dtype, start, end, value):
        if not path.startswith(self.keep + "."):
            return
        rel = path[len(self.keep) + 1:].split(".")
        depth = self.base_depth + 1
        scope = self.keep
        clause = H265_CLAUSES.get(self.keep.rsplit(".", 1)[-1].split("[")[0])
        for name in rel[:-1]:                 # the scopes the reader is inside
            scope = f"{scope}.{name}"
            clause = H265_CLAUSES.get(name.split("[")[0], clause)
            if scope not in self.scopes:
                self.scopes[scope] = len(self.entries)
                self.entries.append(Entry("struct", f"{self.prefix_of(scope)}", name, depth,
                                          self.bit_at(start), 0, None, "", None, None,
                                          f"H.265 {clause}" if clause else None))
            depth += 1
        for open_scope in [s for s in self.scopes if not path.startswith(s + ".")]:
            self._close(open_scope, start)
        bits = end - start
        self.last_end = end
        raw = reader.raw_bits(start, end) if bits <= 64 else \
            reader.raw_bits(start, start + 64) + "..."
        value = int(value) if isinstance(value, bool) else value
        if value is None and bits <= 64:      # an element the reader steps over
            value = int(raw, 2) if bits else 0
        self.entries.append(Entry("field", self.prefix_of(path), rel[-1], depth,
                                  self.bit_at(start), bits, _descriptor_of(dtype), raw,
                                  value, self.meaning(rel[-1], value),
                                  f"H.265 {clause}" if clause else None))

    def _close(self, scope, end_rbsp_bit):
        at = self.scopes.pop(scope)
        self.entries[at].bits = self.bit_at(end_rbsp_bit) - self.entries[at].bit_offset

    def meaning(self, name: str, value) -> str | None:
        if name == "slice_type" and isinstance(value, int):
            return slices.SLICE_TYPE_NAMES.get(value)
        if name == "chroma_format_idc":
            return {0: "4:0:0", 1: "4:2:0", 2: "4:2:2", 3: "4:4:4"}.get(value)
        return None

    def prefix_of(self, reader_path: str) -> str:
        """A reader's path (hevc_payload....) in the stream (layers[i].hevc_payload....)."""
        return self.prefix + reader_path[len(params.PATH):]

    def bit_at(self, rbsp_bit: int) -> int:
        """The absolute bit of RBSP bit ``rbsp_bit`` of the current NAL unit."""
        byte = rbsp_bit // 8
        shift = bisect.bisect_right(self.epb, byte)
        return 8 * (self.nal_start + 2 + byte + shift) + rbsp_bit % 8

    def run(self) -> None:
        walk_state = slices._Walk()
        counts = {VPS_NUT: 0, SPS_NUT: 0, PPS_NUT: 0}
        for index, (offset, unit) in enumerate(split_nal_units_with_offsets(self.payload)):
            self.nal_start = self.base + offset
            where = f"{params.PATH}.nal_unit[{index}]"
            depth = self.depth
            self.entries.append(Entry("struct", self.prefix_of(where), "nal_unit", depth,
                                      8 * self.nal_start, 8 * len(unit), None, "", None,
                                      NAL_UNIT_TYPES.get((unit[0] >> 1) & 0x3F, "reserved"),
                                      "H.265 7.3.1.1"))
            self.nal_header(unit, where, depth + 1)
            if len(unit) < 2:
                return
            nut = (unit[0] >> 1) & 0x3F
            self.epb = _emulation_prevention(unit)
            self.base_depth = depth
            try:
                if (unit[0] & 1) or (unit[1] >> 3) or unit[0] & 0x80 or unit[1] & 7 == 0:
                    continue        # not read by the decoder (nuh_layer_id > 0) or broken
                if nut in counts:
                    name = {VPS_NUT: "vps", SPS_NUT: "sps", PPS_NUT: "pps"}[nut]
                    self.parameter_set(walk_state, unit, offset, index, nut,
                                       f"{params.PATH}.{name}[{counts[nut]}]")
                    counts[nut] += 1
                elif nut in slices.DECODED_VCL_TYPES:
                    self.slice(walk_state, unit, offset, index, nut, where)
                elif nut in (PREFIX_SEI_NUT, SUFFIX_SEI_NUT):
                    self.sei(walk_state, unit, nut, where, depth + 1)
                elif nut == slices.EOS_NUT:
                    walk_state.end_of_sequence()
                elif nut == slices.EOB_NUT:
                    walk_state.end_of_bitstream()
            except BitstreamError as exc:
                for scope in list(self.scopes):
                    self._close(scope, 0)
                self.entries.append(Entry("note", self.prefix_of(where), "reader", depth + 1,
                                          8 * self.nal_start, 0, None, "", str(exc),
                                          "the HEVC reader stops here", None))
                return
            finally:
                for scope in list(self.scopes):
                    self.scopes.pop(scope)

    def nal_header(self, unit: bytes, where: str, depth: int) -> None:
        """nal_unit_header() (H.265 7.3.1.2): its four fields from its two bytes."""
        if len(unit) < 2:
            return
        word = (unit[0] << 8) | unit[1]
        nut = (unit[0] >> 1) & 0x3F
        for name, first, bits, meaning in (
                ("forbidden_zero_bit", 0, 1, None),
                ("nal_unit_type", 1, 6, NAL_UNIT_TYPES.get(nut, "reserved")),
                ("nuh_layer_id", 7, 6, None), ("nuh_temporal_id_plus1", 13, 3, None)):
            value = (word >> (16 - first - bits)) & ((1 << bits) - 1)
            self.entries.append(Entry("field", f"{self.prefix_of(where)}.{name}", name, depth,
                                      8 * self.nal_start + first, bits, f"u({bits})",
                                      format(value, f"0{bits}b"), value, meaning,
                                      "H.265 7.3.1.2"))

    def parameter_set(self, walk_state, unit, offset, index, nut, path) -> None:
        self.keep = path
        depth = self.base_depth + 1
        self.base_depth = depth
        name = path.rsplit(".", 1)[-1].split("[")[0]
        self.entries.append(Entry("struct", self.prefix_of(path), path.rsplit(".", 1)[-1],
                                  depth,
                                  8 * (self.nal_start + 2), 8 * (len(unit) - 2), None, "",
                                  None, None, f"H.265 {H265_CLAUSES[name]}"))
        rbsp = params.rbsp(unit)
        with params.recording(self.record):
            if nut == VPS_NUT:
                params._vps(params.RbspReader(rbsp, offset=offset, path=path))
            elif nut == SPS_NUT:
                active = slices._parse_sps(unit, offset, path)
                walk_state.sps_units[active.sps.sps_seq_parameter_set_id] = active
            else:
                with params.recording(None):
                    walk_state.pps_unit(unit, offset, index,
                                        f"{params.PATH}.nal_unit[{index}]")
                sps_id = next(v[3] for v in walk_state.pps_units.values() if v[1] == index)
                active = walk_state.sps_units.get(sps_id)
                if active is None:
                    params._pps(params.RbspReader(rbsp, offset=offset, path=path))
                    self.entries.append(Entry(
                        "note", self.prefix_of(path), "pps", depth + 1,
                        self.bit_at(self.last_end), 0, None, "",
                        f"SPS {sps_id} not received yet",
                        "the rest of this PPS is read when a slice refers to it", None))
                else:
                    apps = slices._parse_pps(unit, offset, path, active)
                    walk_state.pps_cache[(bytes(unit), id(active))] = apps
        for scope in list(self.scopes):
            self._close(scope, 8 * len(rbsp))

    def slice(self, walk_state, unit, offset, index, nut, where) -> None:
        path = f"{where}.slice_segment_header"
        self.keep = path
        depth = self.base_depth + 1
        self.base_depth = depth
        self.entries.append(Entry("struct", self.prefix_of(path), "slice_segment_header",
                                  depth, 8 * (self.nal_start + 2), 0, None, "", None, None,
                                  "H.265 7.3.6.1"))
        at = len(self.entries) - 1
        with params.recording(self.record):
            walk_state.slice_segment(unit, offset, index, nut, (unit[1] & 7) - 1)
        for scope in list(self.scopes):
            self._close(scope, self.last_end)
        last = self.entries[-1]
        self.entries[at].bits = last.bit_offset + last.bits - self.entries[at].bit_offset
        _, header = walk_state.headers[-1]
        picture = walk_state.current
        derived = []
        if picture is not None and header.first_slice_segment_in_pic_flag:
            derived.append(("PicOrderCntVal", picture.fields["poc"], "8.3.1"))
        if header.slice_qp_y is not None:
            derived.append(("SliceQpY", header.slice_qp_y, "7.4.7.1"))
        for name, value, clause in derived:
            self.entries.append(Entry("derived", f"{self.prefix_of(path)}.{name}", name,
                                      depth + 1, last.bit_offset + last.bits, 0, None, "",
                                      value, None, f"H.265 {clause}"))

    def sei(self, walk_state, unit, nut, where, depth) -> None:
        walk_state.sei(unit, nut)
        for ptype, body in sei_messages(unit):
            name = SEI_NAMES.get(ptype, "reserved_sei_message")
            meaning = f"payloadType {ptype}, {len(body)} bytes"
            value = None
            if ptype == 132 and len(body) >= 17 and body[0] == 0:
                value = bytes(body[1:17])
                meaning += ", MD5 of the luma plane"
            self.entries.append(Entry("derived", f"{self.prefix_of(where)}.sei_message", name,
                                      depth, 8 * self.nal_start, 0, None, "", value, meaning,
                                      "H.265 7.3.5"))


def _emulation_prevention(unit: bytes) -> list[int]:
    """The RBSP byte positions (as annexb.rbsp counts them) before which an
    emulation_prevention_three_byte was removed."""
    body = unit[2:]
    out, start, removed = [], 0, 0
    while True:
        i = body.find(b"\x00\x00\x03", start)
        if i < 0:
            return out
        out.append(i + 2 - removed)
        removed += 1
        start = i + 3


# ---- the decoder's verdict ------------------------------------------------------------

def decoder_error(data: bytes, *, decode: bool = True, layers: Sequence[str] | None = None,
                  backend=None) -> RefcodecError | None:
    """The first error the decoder raises for ``data`` (``refcodec decode``'s: a
    BitstreamError, or a BackendError when the HEVC library fails), or None.
    ``decode=False``: the checks that need no picture decoded (container, the HEVC
    parameter sets of each layer)."""
    from .codec import decode_all, read_headers
    from .layer import payload_violations
    try:
        stream = read_headers(data)
        if not decode:
            for layer in stream.layers:
                if layers is None or layer.header.layer_id in layers:
                    problems = payload_violations(layer)
                    if problems:
                        return problems[0]
            return None
        decode_all(stream, layers=layers, faces=None if layers is None else [],
                   backend=backend)
    except RefcodecError as exc:
        return exc
    return None


def _cut(entries: list[Entry], error: RefcodecError | None) -> list[Entry]:
    """The entries up to the element the error names: the one with its path (or the
    longest path the error's path extends) and everything inside it; without such an
    element, the entries before the error's byte offset."""
    if error is None:
        return entries
    target = error.path or ""
    best, best_len = None, -1
    for i, e in enumerate(entries):
        if not e.path or e.kind == "note":
            continue
        if e.path == target or target.startswith(e.path + ".") or \
                target.startswith(e.path + "["):
            if len(e.path) > best_len:
                best, best_len = i, len(e.path)
            if e.path == target:
                break
    if best is None:
        if error.offset is None:
            return entries
        return [e for e in entries if e.byte_offset < error.offset or
                (e.kind == "struct" and e.byte_offset <= error.offset)]
    end = best + 1
    while end < len(entries) and entries[end].depth > entries[best].depth:
        end += 1
    return entries[:end]


def trace(data: bytes, *, source: str = "<bytes>", layers: Sequence[str] | None = None,
          units: Sequence[int] | None = None, decode: bool = True, backend=None) -> Trace:
    """The trace of a stream: every syntax element (of the selected layers or units, with
    the stream header), cut at the decoder's first error, which ends it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    tracer = _Tracer(data, None if layers is None else set(layers),
                     None if units is None else set(units))
    tracer.stream()
    error = decoder_error(data, decode=decode, layers=layers, backend=backend)
    return Trace(source, len(data), _cut(tracer.entries, error), error, decode)
