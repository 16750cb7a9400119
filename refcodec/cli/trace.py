"""``refcodec trace``: every syntax element of a stream in bitstream order (refcodec.trace)."""

from __future__ import annotations

import sys
from pathlib import Path

from .base import EXIT_OK, UsageError
from .io import read_input


def _ids(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    if not names:
        raise UsageError(f"--layers needs at least one layer id, got {text!r}")
    return names


def _indices(text: str) -> list[int]:
    try:
        found = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise UsageError(f"--units takes unit indices such as 0,2,3, got {text!r}") from None
    if not found or min(found) < 0:
        raise UsageError(f"--units takes unit indices (0 or more), got {text!r}")
    return found


def cmd_trace(args) -> int:
    from ..trace import trace
    data = read_input(Path(args.input))
    try:
        result = trace(data, source=args.input, layers=args.layers, units=args.units,
                       decode=not args.no_decode)
    except KeyError as exc:        # --layers names a layer the stream lacks
        raise UsageError(exc.args[0] if exc.args else str(exc)) from None
    out = result.to_json() if args.json else result.to_text()
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except BrokenPipeError:          # `refcodec trace x.vfc | head`
        sys.stdout = None
    return EXIT_OK if result.error is None else result.error.exit_code


def add_parser(sub) -> None:
    tr = sub.add_parser(
        "trace", help="every syntax element in bitstream order: offset, raw bits, value, "
        "meaning, clause; container and HEVC headers (exit 3 where the stream breaks a "
        "requirement: the last line is the decoder's error)")
    tr.add_argument("input")
    tr.add_argument("--json", action="store_true",
                    help="machine-readable trace (schema in refcodec/trace.py)")
    tr.add_argument("--layers", type=_ids, metavar="ID,..",
                    help="trace only the units of these layers (and the stream header)")
    tr.add_argument("--units", type=_indices, metavar="N,..",
                    help="trace only these units (indices as in units[N]); with --layers, "
                         "a unit either option selects")
    tr.add_argument("--no-decode", action="store_true",
                    help="do not decode the pictures: the error line comes from the checks "
                         "of the container and the HEVC parameter sets only")
    tr.set_defaults(func=cmd_trace)
