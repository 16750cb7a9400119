"""Every syntax element of a structure, in bitstream order, with where it lies: the walk
behind ``refcodec trace`` (refcodec.trace).

The walk interprets the construct definitions of ``refcodec.syntax`` (the objects the spec
tables are rendered from) node by node: a Struct, BitStruct, Array, If or Switch is
descended into, every other construct is a leaf that construct itself parses.  So a field
added to a structure is traced without any change here.  Nothing is checked: the values
are the bits as they are; the checks are the reader's.  construct Containers do not leave
this module: each element is an ``Element`` holding plain Python values.
"""

from __future__ import annotations

import dataclasses
import io
import re

import construct
from construct import (Array, Container, IfThenElse, Pass, Renamed, Restreamed, Struct, Switch,
                       Transformed)
from construct.core import evaluate


@dataclasses.dataclass(frozen=True)
class Element:
    """One syntax element (``kind`` "field") or the start of a structure or array that
    holds elements (``kind`` "struct"), at ``bit_offset`` bits from the start of the data
    the walk was given plus ``base`` (the offset of that data in the stream)."""

    path: str
    name: str
    kind: str
    depth: int
    bit_offset: int
    #: Length in bits (a structure: all of its elements).
    bits: int
    #: The value as parsed: int, float, bool or bytes; None for a structure.
    value: object
    #: The bits as they are in the stream: "0" and "1" characters for a field of at most
    #: 64 bits, else the first bytes (``raw_bytes``).
    raw: str
    #: The clause the field's documentation names (the spec's semantics clause).
    clause: str | None
    #: The descriptor of the spec's syntax table (u(8), f32, b(len_layer_id), b(*), ...).
    descriptor: str | None = None

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


@dataclasses.dataclass
class Walk:
    """The result of walking one structure: its elements, the bytes consumed and, when the
    data ended before the structure did, the path of the element that could not be read."""

    elements: list[Element]
    consumed: int
    stopped_at: str | None = None


#: Bytes of a long field kept in Element.raw (hex).
RAW_BYTES = 32


def _raw_of_bytes(data: bytes) -> str:
    if len(data) * 8 <= 64:
        return "".join(f"{b:08b}" for b in data)
    head = data[:RAW_BYTES].hex()
    return head + ("..." if len(data) > RAW_BYTES else "")


#: Descriptors of construct's byte-aligned number fields (as in the spec's tables).
_FORMATS = {">B": "u(8)", ">H": "u(16)", ">L": "u(32)", ">I": "u(32)", ">Q": "u(64)",
            ">h": "i(16)", ">f": "f32", ">e": "f16"}


def _descriptor(sc, bits: int) -> str:
    """The descriptor of a leaf as the spec's tables write it."""
    while isinstance(sc, construct.Rebuild):
        sc = sc.subcon
    if isinstance(sc, construct.FormatField) and sc.fmtstr in _FORMATS:
        return _FORMATS[sc.fmtstr]
    if isinstance(sc, construct.Const):
        return f"f({bits})"
    if isinstance(sc, construct.Bytes):
        length = sc.length
        text = vars(length).get("text") if hasattr(length, "__dict__") else None
        text = re.sub(r"this\['(\w+)'\]", r"\1", text or repr(length))
        return f"b({text.replace('this.', '')})"
    if sc is construct.GreedyBytes:
        return "b(*)"
    return f"u({bits})"


def _plain(value):
    """A parsed leaf value as a plain Python value."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, bool) or isinstance(value, (int, float)) or value is None:
        return value
    return repr(value)


class _Stop(Exception):
    def __init__(self, path: str):
        self.path = path


class _Walker:
    def __init__(self, base_bits: int, depth: int):
        self.base_bits = base_bits
        self.depth0 = depth
        self.out: list[Element] = []

    def leaf(self, sc, stream, ctx, path, name, clause, depth, bit_base, in_bits):
        pos0 = stream.tell()
        try:
            value = sc._parsereport(stream, ctx, path)
        except construct.ConstructError as exc:
            raise _Stop(path) from exc
        pos1 = stream.tell()
        chunk = stream.getvalue()[pos0:pos1]
        if in_bits:           # one byte per bit (construct's bit streams)
            raw, start, bits = "".join(str(b & 1) for b in chunk), bit_base + pos0, pos1 - pos0
        else:
            raw, start, bits = _raw_of_bytes(chunk), bit_base + 8 * pos0, 8 * (pos1 - pos0)
        self.out.append(Element(path, name, "field", depth, start, bits, _plain(value), raw,
                                clause, _descriptor(sc, bits)))
        return value

    def node(self, sc, stream, ctx, path, name, clause, depth, bit_base, in_bits):
        while isinstance(sc, Renamed):
            name = sc.name or name
            clause = sc.docs or clause
            sc = sc.subcon
        if isinstance(sc, Struct):
            return self.struct(sc, stream, ctx, path, name, clause, depth, bit_base,
                               in_bits)
        if isinstance(sc, Array):
            return self.array(sc, stream, ctx, path, name, clause, depth, bit_base, in_bits)
        if isinstance(sc, IfThenElse):
            chosen = sc.thensubcon if evaluate(sc.condfunc, ctx) else sc.elsesubcon
            if chosen is Pass:
                return None
            return self.node(chosen, stream, ctx, path, name, clause, depth, bit_base,
                             in_bits)
        if isinstance(sc, Switch):
            chosen = sc.cases.get(evaluate(sc.keyfunc, ctx), sc.default)
            return self.node(chosen, stream, ctx, path, name, clause, depth, bit_base,
                             in_bits)
        if isinstance(sc, Transformed) and isinstance(sc.decodeamount, int) and \
                sc.decodefunc is construct.bytes2bits:
            # a BitStruct: its bytes as a stream of bits
            pos0 = stream.tell()
            data = stream.read(sc.decodeamount)
            if len(data) < sc.decodeamount:
                raise _Stop(path)
            inner = io.BytesIO(sc.decodefunc(data))
            return self.node(sc.subcon, inner, ctx, path, name, clause, depth,
                             bit_base + 8 * pos0, True)
        if isinstance(sc, Restreamed) and isinstance(sc.subcon, Struct) and not in_bits:
            # a BitStruct whose size depends on the context (compact_permutation()): its
            # bytes found by parsing it once, then walked as a stream of bits
            pos0 = stream.tell()
            try:
                sc._parsereport(stream, ctx, path)
            except construct.ConstructError as exc:
                raise _Stop(path) from exc
            data = stream.getvalue()[pos0:stream.tell()]
            inner = io.BytesIO(construct.bytes2bits(data))
            return self.node(sc.subcon, inner, ctx, path, name, clause, depth,
                             bit_base + 8 * pos0, True)
        return self.leaf(sc, stream, ctx, path, name, clause, depth, bit_base, in_bits)

    def _open(self, path, name, clause, depth, stream, bit_base, in_bits) -> int:
        self.out.append(None)           # replaced once the structure's length is known
        return len(self.out) - 1

    def _close(self, at, path, name, clause, depth, start_bits, end_bits):
        self.out[at] = Element(path, name, "struct", depth, start_bits, end_bits - start_bits,
                               None, "", clause)

    def _bits_at(self, stream, bit_base, in_bits) -> int:
        return bit_base + (stream.tell() if in_bits else 8 * stream.tell())

    def struct(self, sc, stream, ctx, path, name, clause, depth, bit_base, in_bits):
        start = self._bits_at(stream, bit_base, in_bits)
        at = self._open(path, name, clause, depth, stream, bit_base, in_bits)
        obj = Container()
        context = Container(_=ctx, _params=ctx._params, _root=None, _parsing=True,
                            _building=False, _sizing=False, _subcons=sc._subcons, _io=stream,
                            _index=ctx.get("_index", None))
        context._root = context._.get("_root", context)
        try:
            for sub in sc.subcons:
                child = f"{path}.{sub.name}" if path and sub.name else (sub.name or path)
                value = self.node(sub, stream, context, child, sub.name, None, depth + 1,
                                  bit_base, in_bits)
                if sub.name:
                    obj[sub.name] = value
                    context[sub.name] = value
        finally:
            self._close(at, path, name, clause, depth, start,
                        self._bits_at(stream, bit_base, in_bits))
        return obj

    def array(self, sc, stream, ctx, path, name, clause, depth, bit_base, in_bits):
        count = evaluate(sc.count, ctx)
        start = self._bits_at(stream, bit_base, in_bits)
        at = self._open(path, name, clause, depth, stream, bit_base, in_bits)
        items = []
        try:
            for i in range(count):
                ctx._index = i
                items.append(self.node(sc.subcon, stream, ctx, f"{path}[{i}]", f"{name}[{i}]",
                                       clause, depth + 1, bit_base, in_bits))
        finally:
            self._close(at, path, name, clause, depth, start,
                        self._bits_at(stream, bit_base, in_bits))
        return items


def walk(struct, data: bytes, *, path: str, base: int = 0, depth: int = 0,
         **params) -> Walk:
    """The elements of ``struct`` parsed from ``data``, which starts at byte ``base`` of the
    stream; element paths start with ``path``.  Never raises for short data: the walk stops
    at the first element that does not fit (``Walk.stopped_at``).  ``params``: what the
    structure depends on outside itself (the unit_type of a layer_header())."""
    walker = _Walker(8 * base, depth)
    stream = io.BytesIO(bytes(data))
    top = Container(_params=Container(**params), _parsing=True, _building=False,
                    _sizing=False)
    stopped = None
    try:
        walker.node(struct, stream, top, path, path.rsplit(".", 1)[-1], None, depth,
                    8 * base, False)
    except _Stop as exc:
        stopped = exc.path
    elements = [e for e in walker.out if e is not None]
    return Walk(elements, stream.tell(), stopped)
