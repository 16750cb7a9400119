"""Bytes <-> records: the container layer of VFC (spec clauses 7, 8 and 13).

``parse_stream`` reads and checks a whole bitstream except the HEVC payloads;
``build_stream`` writes one.  This package is the only place that handles construct
Containers and the only place where ``ConstructError`` is caught and converted.

    base.py          CRC-32, the Checker, field locations (shared by reader and writer)
    writer.py        records -> bytes, one builder per syntax structure
    fast.py          the stream and layer headers read with struct (construct's fields)
    reader.py        the Reader: stream_header(), the unit sequence, layer_data(),
                     end_of_stream; parse_stream
    layer_header.py  the reader of layer_header() (clause 8.3)
    face_units.py    the readers of face_base() and face_enhancement() (clause 13)

Checking is done through a ``Checker``: in the default mode the first violation is
raised; ``refcodec verify`` uses a collecting checker that records every violation that
can be found without losing sync with the syntax.
"""

from .base import FACE_UNITS, RESIDUAL_LIMIT, Checker, crc32, field_offset
from .reader import parse_stream
from .writer import (build_face_base, build_face_enhancement, build_layer_data,
                     build_layer_header, build_stream, build_stream_header, build_unit)

_field_offset = field_offset   # the name refcodec.conformance knew it by (until it moves)

__all__ = ["FACE_UNITS", "RESIDUAL_LIMIT", "Checker", "build_face_base",
           "build_face_enhancement", "build_layer_data", "build_layer_header", "build_stream",
           "build_stream_header", "build_unit", "crc32", "field_offset", "parse_stream"]
