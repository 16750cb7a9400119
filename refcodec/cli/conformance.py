"""``refcodec conformance``: generate conformance streams, run a decoder over them, write
decoded planes, list the alterations."""

from __future__ import annotations

import json
from pathlib import Path

from .base import EXIT_MISMATCH, EXIT_OK, UsageError, _Parser
from .io import add_hevc_encoder_options, atomic_output, hevc_backend, load_tensors, read_input


#: Options of ``conformance generate --tensors``: the columns of the features table.
_SETTINGS = (("--name", "name"), ("--purpose", "purpose"), ("--qp", "qp"),
             ("--quantizer", "quantizer"), ("--bit-depth", "bit_depth"),
             ("--packing", "packing"), ("--tile-grid", "tile_grid"),
             ("--pad-mode", "pad_mode"), ("--channel-order", "channel_order"),
             ("--layout", "layout"), ("--preset", "preset"), ("--extra-unit", "extra_unit"))
_SETTING_FLAGS = (("--per-channel", "per_channel"), ("--lossless", "lossless"),
                  ("--future-minor", "future_minor"))


def _generate_command(args) -> str:
    """The generate command line, rebuilt from the options (recorded in the manifest)."""
    import shlex
    argv = ["refcodec", "conformance", "generate"]
    if args.features:
        argv.append(args.features)
    argv += ["-o", args.output]
    if args.tensors:
        argv += ["--tensors", args.tensors]
        for flag, column in _SETTINGS:
            if getattr(args, column) is not None:
                argv += [flag, str(getattr(args, column))]
        argv += [flag for flag, column in _SETTING_FLAGS if getattr(args, column)]
    if args.invalid:
        argv += ["--invalid", args.invalid]
    if args.no_invalid:
        argv.append("--no-invalid")
    if args.suite_name != "vfc-conformance":
        argv += ["--suite-name", args.suite_name]
    if args.interop:
        argv += ["--interop", args.interop]
    if args.hevc_encoder:
        argv += ["--hevc-encoder", args.hevc_encoder]
    return shlex.join(argv)


def cmd_conformance_generate(args) -> int:
    from .. import conformance as conf
    if bool(args.features) == bool(args.tensors):
        raise UsageError("give either a features table or --tensors FILE")
    if args.invalid and args.no_invalid:
        raise UsageError("--invalid and --no-invalid exclude each other")
    given = [flag for flag, column in _SETTINGS + _SETTING_FLAGS
             if getattr(args, column) not in (None, False) and column != "purpose"]
    if args.features and given:
        raise UsageError(f"{given[0]} applies to --tensors only; a features table gives the "
                         f"settings of each stream in its columns")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: not a directory")
    try:
        if args.tensors:
            tensors = load_tensors(Path(args.tensors), None)
            if not tensors:
                raise UsageError(f"{args.tensors}: holds no tensor")
            row = {column: str(getattr(args, column)) for _, column in _SETTINGS
                   if getattr(args, column) is not None}
            row.update({column: "1" for _, column in _SETTING_FLAGS if getattr(args, column)})
            row.setdefault("name", Path(args.tensors).stem)
            row.update(batch="0", channels="0", height="0", width="0",
                       layers=str(len(tensors)), data=f"file:{Path(args.tensors).name}")
            features = [conf.parse_features(row, "--tensors")]
        else:
            tensors = None
            features = conf.read_features(Path(args.features))
        invalid = ([] if args.no_invalid else
                   conf.read_invalid(Path(args.invalid)) if args.invalid else None)
        interop = None
        if args.interop:
            from ..conformance.interop import interop_dir
            interop = interop_dir(args.interop)
            if interop is None:
                raise UsageError(f"{args.interop}: not an interop folder (no cases.json)")
        backend = hevc_backend(args.hevc_encoder, args.hevc_encoder_timeout)
        out.mkdir(parents=True, exist_ok=True)
        conf.generate(out, features, invalid=invalid, tensors=tensors, force=args.force,
                      command=_generate_command(args), suite_name=args.suite_name,
                      interop=interop, backend=backend, log=None if args.quiet else print)
    except conf.SuiteError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


#: The longest --timeout (seconds): one day.
_MAX_TIMEOUT = 86400.0


def _run_timeout(text: str) -> float:
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= _MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r}: shall be more than 0 and at most "
                                         f"{_MAX_TIMEOUT:g} seconds")
    return value


def _run_jobs(text: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: shall be at least 1")
    return value


def _run_suite_path(suite: str | None) -> Path:
    """--suite, or conformance/manifest.json of the current directory; when that does not
    exist, the error names the suite of the repository refcodec runs from (if any)."""
    if suite is not None:
        return Path(suite)
    path = Path("conformance/manifest.json")
    if not path.is_file():
        repo = Path(__file__).resolve().parents[2] / "conformance" / "manifest.json"
        hint = (f"; the repository's suite is {repo}: pass --suite {repo}" if repo.is_file()
                else "; pass --suite MANIFEST")
        raise UsageError(f"{path}: no such manifest in the current directory (the default "
                         f"--suite){hint}")
    return path


def _check_json_path(path: Path) -> None:
    """--json is refused before anything runs when it cannot be written."""
    import os
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"--json {path}: is a directory")
    if not directory.is_dir():
        raise UsageError(f"--json {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--json {path}: directory {directory} is not writable")


def _diff_images_dir(text: str) -> Path:
    """--diff-images DIR: created if missing; refused before anything runs otherwise."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--diff-images {path}: {exc.strerror or exc}") from None
    return path


def cmd_conformance_run(args) -> int:
    import sys
    import threading
    from .. import conformance as conf
    from ..conformance import runner
    if args.jobs < 1 or args.timeout <= 0:
        raise UsageError("--jobs shall be at least 1 and --timeout positive")
    suite = _run_suite_path(args.suite)
    if args.json:
        _check_json_path(Path(args.json))
    diff_images = _diff_images_dir(args.diff_images) if args.diff_images else None
    printing = threading.Lock()

    def progress(result, done, total):
        with printing:
            print(runner.progress_line(result, done, total), file=sys.stderr, flush=True)
    try:
        decoder, has_output, has_planes = conf.command_decoder(args.decoder, args.timeout)
        if args.planes and not has_planes:
            raise UsageError("--planes needs a {planes} placeholder in --decoder")
        if not args.planes and not has_output:
            raise UsageError("--decoder has no {output} placeholder (a decoder that writes "
                             "only planes runs with --planes)")
        with runner.handle_signals():
            results = conf.run_suite(suite, decoder, outputs=has_output, planes=has_planes,
                                     streams=args.streams or (), jobs=args.jobs,
                                     progress=None if args.quiet else progress,
                                     diff_images=diff_images)
    except conf.SuiteError as exc:
        raise UsageError(str(exc)) from None
    except runner.RunInterrupted as exc:
        print(f"refcodec: interrupted by signal {exc.signum}: decoders killed, temporary "
              f"folders removed", file=sys.stderr)
        return 128 + exc.signum
    results["decoder"] = args.decoder
    print(conf.format_results(results, args.decoder))
    if args.json:
        with atomic_output(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return EXIT_OK if results["summary"]["failed"] == 0 else EXIT_MISMATCH


def cmd_conformance_planes(args) -> int:
    from .. import conformance as conf
    out = Path(args.output)
    if out.suffix.lower() != ".npz":
        raise UsageError(f"{out}: output shall be .npz (one array of pictures per layer)")
    planes = conf.decode_planes(read_input(Path(args.input)))
    with atomic_output(out) as tmp:
        conf.write_npz(tmp, planes, compress=False)
    if not args.quiet:
        print(f"{out}: " + ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in planes.items()))
    return EXIT_OK


def cmd_conformance_alterations(args) -> int:
    from .. import conformance as conf
    for alt in conf.ALTERATIONS.values():
        needs = f" [needs {alt.requires}]" if alt.requires else ""
        print(f"{alt.kind:30} {alt.requirement:9} {alt.purpose}{needs}")
    return EXIT_OK


def add_parser(sub) -> None:
    conf = sub.add_parser("conformance", help="generate conformance streams, run a decoder "
                          "over them, write decoded planes")
    csub = conf.add_subparsers(dest="conformance_command", required=True, parser_class=_Parser)

    gen = csub.add_parser("generate", help="code the streams of a codec-features table (or "
                          "of --tensors) with references, manifest.json and index.md")
    gen.add_argument("features", nargs="?", help="codec-features table (CSV, one row per "
                     "stream; see conformance/README.md)")
    gen.add_argument("-o", "--output", required=True, help="output directory")
    gen.add_argument("--invalid", metavar="CSV", help="invalid-streams table (default: one "
                     "stream per built-in alteration)")
    gen.add_argument("--no-invalid", action="store_true", help="write no invalid streams")
    gen.add_argument("--force", action="store_true", help="replace an existing manifest")
    gen.add_argument("--suite-name", default="vfc-conformance")
    add_hevc_encoder_options(gen)
    gen.add_argument("--interop", metavar="DIR",
                     help="add the interop group: the payloads of other encoders in DIR "
                          "(cases.json, payloads/, templates/: the layout of shared/interop)")
    gen.add_argument("--tensors", metavar="FILE", help=".npy/.npz/.pt tensors to code, with "
                     "the settings below, instead of a features table")
    settings = gen.add_argument_group("settings for --tensors (columns of the features table)")
    for flag, column in _SETTINGS:
        settings.add_argument(flag, dest=column, type=int if column in ("qp", "bit_depth")
                              else str)
    for flag, column in _SETTING_FLAGS:
        settings.add_argument(flag, dest=column, action="store_true")
    gen.add_argument("-q", "--quiet", action="store_true")
    gen.set_defaults(func=cmd_conformance_generate)

    run = csub.add_parser("run", help="run a decoder command over a conformance suite; exit 0 "
                          "when every stream passes, 1 otherwise")
    run.add_argument("--decoder", required=True, metavar="CMD",
                     help="command line with {input}, {output} (tensors, .npz) and/or "
                          "{planes} (decoded pictures, .npz); run without a shell")
    run.add_argument("--suite", metavar="MANIFEST",
                     help="the suite's manifest (default: conformance/manifest.json)")
    run.add_argument("--json", metavar="FILE", help="write the results as JSON")
    run.add_argument("--planes", action="store_true",
                     help="tier-1 decoder: check the {planes} output; {output} is optional")
    run.add_argument("--timeout", type=_run_timeout, default=120.0,
                     help="seconds per stream (more than 0, at most one day; default 120)")
    run.add_argument("-j", "--jobs", type=_run_jobs, default=1,
                     help="streams decoded in parallel")
    run.add_argument("--streams", action="append", metavar="PATTERN",
                     help="only the streams whose name matches (fnmatch; repeatable)")
    run.add_argument("--diff-images", metavar="DIR",
                     help="write reference | decoded | amplified difference images of each "
                          "failing valid stream to DIR (PNG)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress line per stream on stderr")
    run.set_defaults(func=cmd_conformance_run)

    planes = csub.add_parser("planes", help="decode a stream's HEVC pictures (after every "
                             "check) to .npz, one (P, H, W) array per layer")
    planes.add_argument("input")
    planes.add_argument("-o", "--output", required=True, help=".npz file")
    planes.add_argument("-q", "--quiet", action="store_true")
    planes.set_defaults(func=cmd_conformance_planes)

    alts = csub.add_parser("alterations", help="list the alterations an invalid-streams "
                           "table can name, with the clause each targets")
    alts.set_defaults(func=cmd_conformance_alterations)
