"""The ``refcodec eval`` subcommand: evaluation on real networks (refcodec.evaluation).

Wire it into the command line with ``add_parser(subparsers)``; the handler returns an
exit code (0 ok, 2 usage error or missing evaluation assets).  ``tools/eval.py`` runs the
same code.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

ALL_CONFIGS = ("baseline", "uniform", "10bit", "per_channel", "tiled")
EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--networks", nargs="+", default=["mobilenet_v2", "craft"],
                   choices=["mobilenet_v2", "craft"], help="networks (default: both)")
    p.add_argument("--splits", action="append", default=[], metavar="NET:S1,S2",
                   help="split points of a network, e.g. mobilenet_v2:conv3,conv5 "
                        "(repeatable; default: all of each network)")
    p.add_argument("--qps", nargs="+", type=int, default=[12, 22, 32, 42],
                   help="QPs (default 12 22 32 42)")
    p.add_argument("--configs", nargs="+", default=list(ALL_CONFIGS), metavar="CONFIG",
                   help="configurations: presets baseline (log quantizer, 8-bit, per tensor, "
                        "one channel per picture), uniform, 10bit, per_channel, tiled, or "
                        "NAME=key:value,... with keys quantizer, bit_depth, per_channel, "
                        "packing, pad_mode, preset (default: all presets; baseline is "
                        "always added, as the BD-rate anchor)")
    p.add_argument("--detection-configs", nargs="+", default=["baseline"], metavar="CONFIG",
                   help="configuration names also run on the detector ('all': every one; "
                        "default: baseline)")
    p.add_argument("--images", type=int, default=36,
                   help="inputs of the classification / retrieval set (1..90, default 36)")
    p.add_argument("--detection-images", type=int, default=6,
                   help="inputs of the detection set (1..16, default 6)")
    p.add_argument("-j", "--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("-o", "--out", default="out/eval",
                   help="output folder (default out/eval, which git ignores; the committed "
                        "results are regenerated with -o docs/eval)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="only re-write the reports (Markdown, CSV, plots) of a saved "
                        "results.json into --out; runs nothing")


def options_from_args(args):
    from ..evaluation import EvalOptions
    splits = {}
    for item in args.splits:
        net, _, names = item.partition(":")
        if not names:
            raise ValueError(f"--splits {item!r}: expected NET:SPLIT,SPLIT")
        splits[net] = [s for s in names.split(",") if s]
    det = None if args.detection_configs == ["all"] else tuple(args.detection_configs)
    return EvalOptions(networks=tuple(args.networks), splits=splits or None,
                       qps=tuple(args.qps), configs=tuple(args.configs),
                       detection_configs=det, images=args.images,
                       detection_images=args.detection_images, workers=args.workers,
                       progress=not args.no_progress)


def run(args, command: str | None = None) -> int:
    """Handler of ``refcodec eval``."""
    try:
        from .. import evaluation
        from ..models import AssetMissing
    except ImportError as exc:
        print(f"refcodec: error: the evaluation needs torch and the evaluation assets "
              f"({exc}); pip install -e '.[torch]' and run tools/install_eval_assets.sh",
              file=sys.stderr)
        return EXIT_USAGE
    if args.render:
        files = evaluation.render(args.render, args.out)
        print("wrote " + ", ".join(f"{args.out}/{f}" for f in files))
        return EXIT_OK
    try:
        opts = options_from_args(args)
        for c in opts.configs:
            evaluation.parse_config(c)
        t0 = time.time()
        result = evaluation.evaluate(opts)
        command = command or "refcodec eval " + " ".join(map(shlex.quote, sys.argv[2:]))
        files = evaluation.write_reports(result, args.out, command)
    except AssetMissing as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, KeyError) as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(evaluation.table3(result["summary"], qps=opts.qps))
    print(f"\n{len(result['jobs'])} jobs in {time.time() - t0:.0f} s; wrote "
          + ", ".join(f"{args.out}/{f}" for f in files))
    return EXIT_OK


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to a subparsers object of argparse."""
    p = subparsers.add_parser(
        "eval", help="evaluate coding on real networks (MobileNetV2, CRAFT) and real images: "
        "rate, fidelity, BD-rate, plots (needs torch and tools/install_eval_assets.sh)")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
