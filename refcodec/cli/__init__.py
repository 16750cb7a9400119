"""The ``refcodec`` command line: encode, decode, info, verify, conformance, eval.

Errors print one line on stderr and exit non-zero, without a traceback:
0 ok, 1 verification mismatch, 2 usage or bad input file, 3 bitstream error,
4 HEVC backend error.  Output files are written atomically (temporary file + rename), so a
failed run leaves none behind.

The commands live one group per module, each with the ``add_parser(sub)`` that registers its
subcommand: ``layers`` (encode, decode), ``face`` (encode-face), ``info``, ``verify``,
``eval``, ``conformance``; ``io`` holds the files, ``base`` the exit codes and UsageError.
"""

from __future__ import annotations

import argparse
import sys

from .. import FORMAT_VERSION, __version__
from ..errors import EncoderInputError, RefcodecError
from . import conformance, face, info, layers, trace, verify
from . import eval as eval_command
from .base import EXIT_BACKEND, EXIT_BITSTREAM, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from .base import UsageError, _Parser
from .info import face_info, stream_info

__all__ = ["main", "build_parser", "UsageError", "stream_info", "face_info", "EXIT_OK",
           "EXIT_MISMATCH", "EXIT_USAGE", "EXIT_BITSTREAM", "EXIT_BACKEND"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="refcodec", description="VFC feature codec reference software "
                     f"(format {FORMAT_VERSION})")
    parser.add_argument("--version", action="version",
                        version=f"refcodec {__version__} (VFC format {FORMAT_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for command in (layers, face, info, verify, trace, eval_command, conformance):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EncoderInputError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RefcodecError as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"refcodec: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("refcodec: interrupted", file=sys.stderr)
        return 130
