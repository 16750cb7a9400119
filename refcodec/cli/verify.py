"""``refcodec verify``: check a stream against every requirement of the spec."""

from __future__ import annotations

from pathlib import Path

from .io import read_input


def cmd_verify(args) -> int:
    from ..codec import read_headers
    from ..verify import verify
    from .layers import decoder_limits
    data = read_input(Path(args.input))
    limits = decoder_limits(data, args)
    if limits is not None:    # a decoder's lower limits: refused (exit 3) before verifying
        read_headers(data, limits=limits)
    report = verify(data, source=args.input, decode=not args.no_decode)
    print(report.to_json() if args.json else report.to_text())
    return report.exit_code


def add_parser(sub) -> None:
    ver = sub.add_parser("verify", help="check a stream against every requirement of the spec; "
                         "exit 0 conformant, 1 not conformant, 3 unreadable")
    ver.add_argument("input")
    ver.add_argument("--json", action="store_true", help="machine-readable report")
    ver.add_argument("--no-decode", action="store_true",
                     help="check the HEVC parameter sets but do not decode the payloads")
    from .layers import add_limit_options
    add_limit_options(ver, "it is verified")
    ver.set_defaults(func=cmd_verify)
