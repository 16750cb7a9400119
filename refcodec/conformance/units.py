"""Byte-level tools for altered streams: the units of a well-formed VFC stream (``_units``,
``_unit_of``), patching bytes and recomputing header_crc32 / unit_crc32 (``_put``,
``_rehead``, ``_recrc``), replacing a unit, rebuilding a stream with changed layer headers
(``_change_layer0``) and whether a layer is coded losslessly (``_is_lossless``).

Shared by the alterations (``alterations``) and the generator (``generation``: skippable
units, a later minor version); the names keep their underscore: they are not API.  The bits
of HEVC parameter sets are edited by ``refcodec.hevc.edit``.
"""

from __future__ import annotations

import dataclasses

from .. import bitstream
from ..enums import UnitType
from ..hevc import params as hevc_params
from ..records import Layer, Stream, StreamHeader
from ..syntax import STREAM_HEADER_SIZE, UNIT_OVERHEAD, UNIT_PREFIX


@dataclasses.dataclass(frozen=True)
class _Unit:
    pos: int
    unit_type: int
    flags: int
    length: int

    @property
    def payload(self) -> slice:
        return slice(self.pos + UNIT_PREFIX, self.pos + UNIT_PREFIX + self.length)

    @property
    def end(self) -> int:
        return self.pos + UNIT_OVERHEAD + self.length


def _units(data: bytes) -> list[_Unit]:
    """The units of a well-formed stream, in order."""
    out, pos = [], STREAM_HEADER_SIZE
    while pos + UNIT_OVERHEAD <= len(data):
        unit = _Unit(pos, data[pos], data[pos + 1], int.from_bytes(data[pos + 2:pos + 6], "big"))
        out.append(unit)
        pos = unit.end
        if unit.unit_type == UnitType.END_OF_STREAM:
            break
    return out


def _rehead(data: bytes) -> bytes:
    return data[:16] + bitstream.crc32(data[:16]).to_bytes(4, "big") + data[20:]


def _recrc(data: bytes, unit: _Unit) -> bytes:
    end = unit.end
    return data[:end - 4] + bitstream.crc32(data[unit.pos:end - 4]).to_bytes(4, "big") + data[end:]


def _put(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value):]


def _unit_of(data: bytes, unit_type: int, index: int = 0) -> _Unit:
    return [u for u in _units(data) if u.unit_type == unit_type][index]


def _replace_unit(data: bytes, unit: _Unit, new: bytes) -> bytes:
    return data[:unit.pos] + new + data[unit.end:]


def _layers(s: Stream) -> list[tuple]:
    return [(layer.header, layer.sample_md5, layer.hevc_payload) for layer in s.layers]


def _rebuild(s: Stream, header: StreamHeader | None = None, layers=None) -> bytes:
    return bitstream.build_stream(header or s.header, layers if layers is not None else _layers(s))


def _change_layer0(s: Stream, md5=None, payload=None, **fields) -> bytes:
    layers = _layers(s)
    h, m, p = layers[0]
    layers[0] = (dataclasses.replace(h, **fields) if fields else h,
                 m if md5 is None else md5, p if payload is None else payload)
    return _rebuild(s, layers=layers)


def _layer0_header_unit(data: bytes) -> tuple[_Unit, bytes]:
    unit = _unit_of(data, UnitType.LAYER_HEADER)
    return unit, data[unit.payload]


def _patch_layer0_header(data: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite bytes of layer 0's layer_header() and recompute its unit_crc32."""
    unit, _ = _layer0_header_unit(data)
    return _recrc(_put(data, unit.payload.start + offset, value), unit)


def _is_lossless(layer: Layer) -> bool:
    sets = hevc_params.parse_parameter_sets(layer.hevc_payload)
    return any(p.transquant_bypass_enabled_flag for _, p in sets.pps)
